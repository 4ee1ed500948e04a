/**
 * `trace`: the dense model's own completions for a dataset's prompts, appended to a traces JSONL
 * with its manifest (resumable; stops at a token budget) — on the local engine, llama.cpp or an
 * OpenAI-compatible server.
 */
import { openBackend, type OpenBackendOptions } from '../backends/index.ts';
import { loadDataset, renderPrompt, type Dataset } from '../io/datasets.ts';
import { hubSourceOf } from '../io/hub.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { traceGrader } from '../study/eval.ts';
import { TRACE_DEFAULTS, traceSettingsOf, type TraceJob as TraceSettingsJob } from '../study/job.ts';
import { runTrace, type TraceManifest, type TracePrompt, type TraceProgress } from '../study/trace.ts';
import { RAC_VERSION } from '../version.ts';

export interface TraceJob extends Partial<TraceSettingsJob> {
  /** The model whose tokenizer and chat template render the prompts (and, on the local backend, generates). */
  model: string;
  /** Prompts: JSONL, JSON or Parquet rows (a list: the shards of one dataset). */
  dataset: string | string[];
  /** Traces JSONL (appended; the manifest beside it). */
  out: string;
  promptColumn?: string;
  idColumn?: string;
  limit?: number;
  system?: string;
  templateFlags?: Record<string, unknown>;
  /** The generation backend (default local) and its options. */
  backend?: Omit<OpenBackendOptions, 'model' | 'batchSize' | 'runtime'>;
  runtime?: Partial<RuntimeOptions>;
  /** Called before generating: the dataset and the backend's name and fingerprint. */
  onStart?: (e: { data: Dataset; backend: string; fingerprint: string }) => void;
  onProgress?: (p: TraceProgress) => void;
  log?: (line: string) => void;
}

/** Trace a model on a dataset; returns the final manifest. */
export async function trace(job: TraceJob): Promise<TraceManifest> {
  const j: TraceSettingsJob = { ...TRACE_DEFAULTS, ...job };
  const data = await loadDataset(job.dataset, { promptColumn: job.promptColumn, idColumn: job.idColumn, limit: job.limit });
  const tokenizer = await RacTokenizer.load(job.model);
  const templateFlags = job.templateFlags ?? {};
  const backend = await openBackend({
    backend: 'local',
    ...job.backend,
    model: job.model,
    batchSize: j.batchSize,
    runtime: job.runtime ?? {},
    ...(job.log ? { log: job.log } : {}),
  });
  try {
    job.onStart?.({ data, backend: backend.name, fingerprint: backend.fingerprint });
    const prompts: TracePrompt[] = data.rows.map((row) => ({
      id: row.id,
      index: row.index,
      ...(row.answer !== undefined ? { answer: row.answer } : {}),
      render: (contextLength?: number) =>
        renderPrompt(tokenizer, row, { system: job.system, templateFlags, ...(contextLength !== undefined ? { contextLength } : {}) }),
    }));
    const modelHub = hubSourceOf(job.model);
    return await runTrace({
      out: job.out,
      backend,
      prompts,
      settings: traceSettingsOf(j, data, job.system, templateFlags),
      tokenBudget: j.tokenBudget,
      batchSize: j.batchSize,
      dataset: { file: data.file, rows: data.rows.length, ...(data.hub ? { hub: data.hub } : {}) },
      ...(modelHub ? { modelHub } : {}),
      version: RAC_VERSION,
      ...(j.grade ? { grader: traceGrader(j.grade)! } : {}),
      ...(job.onProgress ? { onProgress: job.onProgress } : {}),
    });
  } finally {
    await backend.close();
  }
}
