/**
 * `evaluate`: sample completions for a dataset's problems (or one of the paper's benchmarks by
 * name), grade them, and write results.json — accuracy, pass@k, generated length, truncation,
 * hesitations, and length against the dense model's results when given. Resumable.
 */
import { openBackend, type OpenBackendOptions } from '../backends/index.ts';
import { UsageError } from '../errors.ts';
import { resolveDataset } from '../io/hub.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import {
  codeLimits,
  DEFAULT_CODE_LIMITS,
  graderFor,
  runEval,
  type EvalConfig,
  type EvalHooks,
  type EvalResults,
  type EvalTask,
} from '../study/eval.ts';
import { EVAL_DEFAULTS, evalSamplingOf } from '../study/job.ts';
import { benchmark, type BenchmarkName } from '../tasks/benchmarks.ts';

export interface EvalJob {
  model: string;
  /** results.json to write (its samples log beside it; an interrupted run resumes). */
  out: string;
  /** Problems (JSONL, JSON or Parquet; a list: the shards of one dataset) — or `benchmark`. */
  dataset?: string | string[];
  task?: EvalTask;
  /** A paper benchmark (math500, aime24, aime25, gpqa-diamond, lcb): its hub dataset, prompt, task, samples and sampling; the fields given here win. */
  benchmark?: BenchmarkName;
  grader?: string;
  columns?: EvalConfig['columns'];
  system?: string;
  templateFlags?: Record<string, unknown>;
  samples?: number;
  maxNewTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  stop?: string[];
  limit?: number;
  batchSize?: number;
  codeLimits?: { wallSeconds?: number; cpuSeconds?: number; memoryMb?: number };
  /** The dense model's results.json on the same problems: adds vs_dense (length inflation). */
  dense?: string;
  backend?: Omit<OpenBackendOptions, 'model' | 'batchSize' | 'runtime'>;
  runtime?: Partial<RuntimeOptions>;
  log?: (line: string) => void;
  onProgress?: EvalHooks['onProgress'];
}

/** Evaluate a model; returns what results.json holds. */
export async function evaluate(job: EvalJob): Promise<EvalResults> {
  const bm = job.benchmark ? benchmark(job.benchmark) : null;
  const task = job.task ?? bm?.task;
  if (!task) throw new UsageError('give --task (or --benchmark)');
  if (bm && task !== bm.task) throw new UsageError(`--benchmark ${bm.name} is a ${bm.task} task, not ${task}`);
  let dataset = job.dataset;
  if (dataset === undefined) {
    if (!bm) throw new UsageError('give --dataset (or --benchmark)');
    const r = await resolveDataset(
      bm.dataset.id,
      { config: bm.dataset.config, split: bm.dataset.split },
      { ...(job.log ? { log: job.log } : {}) },
    );
    dataset = r.files;
    job.log?.(
      `benchmark ${bm.name}: dataset ${bm.dataset.id} (${bm.dataset.config}/${bm.dataset.split}) → ${r.files.length} Parquet shard${r.files.length === 1 ? '' : 's'}`,
    );
  }
  let grader: string;
  try {
    grader = graderFor(task, job.grader);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const sampling = {
    temperature: job.temperature ?? bm?.sampling.temperature ?? EVAL_DEFAULTS.temperature,
    topP: job.topP ?? bm?.sampling.topP ?? EVAL_DEFAULTS.topP,
    topK: job.topK ?? EVAL_DEFAULTS.topK,
    maxNewTokens: job.maxNewTokens ?? bm?.sampling.maxNewTokens ?? EVAL_DEFAULTS.maxNewTokens,
    seed: job.seed ?? EVAL_DEFAULTS.seed,
    ...(job.stop ? { stop: job.stop } : {}),
  };
  const limits = {
    wallSeconds: job.codeLimits?.wallSeconds ?? bm?.codeLimits?.wallSeconds ?? DEFAULT_CODE_LIMITS.wallMs / 1000,
    cpuSeconds: job.codeLimits?.cpuSeconds ?? bm?.codeLimits?.cpuSeconds ?? DEFAULT_CODE_LIMITS.cpuSeconds,
    memoryMb: job.codeLimits?.memoryMb ?? DEFAULT_CODE_LIMITS.memoryMb,
  };
  const tok = await RacTokenizer.load(job.model);
  const backend = await openBackend({
    backend: 'local',
    ...job.backend,
    model: job.model,
    batchSize: job.batchSize ?? EVAL_DEFAULTS.batchSize,
    runtime: job.runtime ?? {},
    ...(job.log ? { log: job.log } : {}),
  });
  try {
    return await runEval(
      {
        model: job.model,
        dataset,
        task,
        grader,
        ...(bm ? { benchmark: bm.name } : {}),
        columns: job.columns ?? {},
        ...(job.system !== undefined ? { system: job.system } : {}),
        ...(job.templateFlags ? { templateExtra: job.templateFlags } : {}),
        samples: job.samples ?? bm?.samples ?? EVAL_DEFAULTS.samples,
        sampling: evalSamplingOf(sampling),
        ...(job.limit !== undefined ? { limit: job.limit } : {}),
        codeLimits: codeLimits(limits),
        out: job.out,
        ...(job.dense !== undefined ? { dense: job.dense } : {}),
      },
      backend,
      tok,
      { ...(job.log ? { log: job.log } : {}), ...(job.onProgress ? { onProgress: job.onProgress } : {}) },
    );
  } finally {
    await backend.close();
  }
}
