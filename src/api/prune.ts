/**
 * `prune`: prune and/or quantize (or remove MoE experts from) a checkpoint, as `rac prune` does —
 * settings checked once (UsageError), the output locked and refused when it exists (unless
 * `overwrite`), the calibration set built from its description, then the layer loop (or staged
 * refresh / two-pass mix, which trace the partly pruned model on the way). `planPrune` stops after
 * the checks and the calibration set (for an estimate or a dry run); `prune` does it all.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { openBackend } from '../backends/index.ts';
import { targetOf, type SparsityTarget } from '../compress/masks.ts';
import { QUANT_SCHEMES, type QuantScheme } from '../compress/quant-schemes.ts';
import { UsageError } from '../errors.ts';
import { CheckpointError } from '../io/checkpoint.ts';
import { loadDataset, renderPrompt } from '../io/datasets.ts';
import { readImatrix, type Imatrix } from '../io/imatrix.ts';
import { lockOutput } from '../io/lock.ts';
import type { RacTokenizer } from '../io/tokenizer.ts';
import { Model } from '../models/model.ts';
import type { CalibSet } from '../prune/calib.ts';
import {
  EXPERT_METHODS,
  parseLayerSelection,
  pruneCheckpoint,
  QUANT_METHODS,
  refuseCompressed,
  type PruneMethod,
  type PruneProgress,
} from '../prune/prune.ts';
import type { PruneSummary } from '../prune/rac-json.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { traceGrader } from '../study/eval.ts';
import { PRUNE_DEFAULTS, prunerOptionsOf, settingsProblem, usesPolicy, type PruneSettings } from '../study/job.ts';
import { prunePolicy, traceBudgetOf, traceGenerator, variantLabel } from '../study/policy.ts';
import { manifestPath, type TraceManifest } from '../study/trace.ts';
import { RAC_VERSION } from '../version.ts';
import { buildCalibration, calibrationProblem, type CalibrationSpec } from './calibration.ts';

/** A pruning job: what `rac prune` takes, as data. */
export interface PruneJob {
  /** Model directory (a hub id is resolved by `resolveModelId` first). */
  model: string;
  /** Output directory (written to a temp dir, renamed into place). */
  out: string;
  method: PruneMethod;
  /** Unstructured sparsity in [0, 1) — or `pattern` (N:M, e.g. "2:4"); neither for gptq / rtn / reap / frequency. */
  sparsity?: number;
  pattern?: string;
  /** Quantize to ggml types (one type or a llama.cpp mix). */
  quant?: QuantScheme;
  /** An importance matrix file (rac imatrix or llama-imatrix) for the quantizers. */
  imatrix?: string;
  calibration?: CalibrationSpec;
  /** Every prune / calibration setting (defaults: PRUNE_DEFAULTS). */
  settings?: Partial<PruneSettings>;
  /** Staged refresh / two-pass mix: grade the regenerated traces (math | tiny). */
  task?: 'math' | 'tiny';
  /** Staged refresh / two-pass mix: where the pruned models' traces go (default: OUT.policy-traces beside `out`). */
  policyTraces?: string;
  overwrite?: boolean;
  runtime?: Partial<RuntimeOptions>;
  onProgress?: (e: PruneProgress) => void;
  /** Lines of progress that are not per layer (policy traces). */
  log?: (line: string) => void;
}

/** A checked job with its model open and its calibration set built: what pruning will do. */
export interface PrunePlan {
  job: PruneJob;
  settings: PruneSettings;
  target: SparsityTarget;
  model: Model;
  calib: CalibSet | null;
  tokenizer: RacTokenizer | null;
  imatrix: Imatrix | undefined;
  layers: number[];
  /** Release the model and the output lock (prune does it for you). */
  close(): void;
}

/** The job's problem as one line (null when it can run). */
export function pruneJobProblem(job: PruneJob, st: PruneSettings): string | null {
  const quantOnly = QUANT_METHODS.includes(job.method);
  const expertsOnly = EXPERT_METHODS.includes(job.method);
  if (quantOnly && !job.quant) return `--method ${job.method} needs --quant (${QUANT_SCHEMES.join(', ')})`;
  if (job.imatrix !== undefined && !job.quant) return '--imatrix is for quantization: give --quant';
  if (quantOnly && (job.pattern !== undefined || (job.sparsity !== undefined && job.sparsity !== 0)))
    return `--method ${job.method} only quantizes; for pruning + quantization use --method sparsegpt --quant, or rtn on a pruned model`;
  if (expertsOnly && (job.sparsity !== undefined || job.pattern !== undefined || job.quant))
    return `--method ${job.method} only removes experts (--experts); prune or quantize the rest with another method and --experts`;
  if (expertsOnly && !(st.experts > 0))
    return `--method ${job.method} needs --experts (a fraction in (0, 1) or a count of experts per layer)`;
  if (!quantOnly && !expertsOnly && (job.sparsity === undefined) === (job.pattern === undefined))
    return 'give exactly one of --sparsity or --pattern';
  const calib = calibrationProblem(job.calibration, st, job.method === 'rtn');
  if (calib) return calib;
  let target: SparsityTarget;
  try {
    target = targetOfJob(job);
  } catch (e) {
    return (e as Error).message;
  }
  const c = job.calibration;
  const problem = settingsProblem(st, c?.file !== undefined ? 'file' : (c?.mode ?? null), target);
  if (problem) return problem;
  if (usesPolicy(st) && c?.dataset === undefined)
    return 'staged refresh / two-pass mix need --dataset (the calibration prompts the traces were made from)';
  if (usesPolicy(st) && job.quant) return 'staged refresh / two-pass mix do not quantize (prune, then run rtn or gptq on the result)';
  if (st.sparsityProfile === 'owl' && quantOnly) return `--sparsity-profile owl needs a pruning method, not ${job.method}`;
  return null;
}

function targetOfJob(job: PruneJob): SparsityTarget {
  if (job.pattern !== undefined) return targetOf({ pattern: job.pattern });
  return targetOf({ sparsity: job.sparsity ?? 0 });
}

/**
 * Check the job (UsageError), lock its output (unless `dryRun`; an existing output is refused
 * without `overwrite`), open the model and build the calibration set.
 */
export async function planPrune(job: PruneJob, opts: { dryRun?: boolean } = {}): Promise<PrunePlan> {
  const settings: PruneSettings = { ...PRUNE_DEFAULTS, ...job.settings };
  const problem = pruneJobProblem(job, settings);
  if (problem) throw new UsageError(problem);
  const target = targetOfJob(job);
  // One writer per output, as trace and eval: the lock is taken before any work, and an existing
  // output is refused (without overwrite) before the calibration set is built.
  const outDir = resolve(job.out);
  if (!opts.dryRun) mkdirSync(dirname(outDir), { recursive: true });
  const lock = opts.dryRun ? null : lockOutput(outDir, 'pruned model');
  let model: Model | null = null;
  try {
    if (existsSync(outDir) && !job.overwrite && !opts.dryRun)
      throw new CheckpointError(`${outDir}: already exists (choose another --out, or pass --overwrite)`);
    model = Model.open(job.model);
    refuseCompressed(model); // before the calibration set is built
    const layers = parseLayerSelection(settings.layers, model.config.numLayers);
    const { calib, tokenizer } = await buildCalibration(job.calibration, settings, model);
    const imatrix = job.imatrix !== undefined ? readImatrix(job.imatrix) : undefined;
    const m = model;
    return {
      job,
      settings,
      target,
      model: m,
      calib,
      tokenizer,
      imatrix,
      layers,
      close: () => {
        m.close();
        lock?.release();
      },
    };
  } catch (e) {
    model?.close();
    lock?.release();
    throw e;
  }
}

/** Prune a planned job (see prune); leaves the plan open. */
export async function executePrune(plan: PrunePlan): Promise<PruneSummary> {
  const { job, settings: st, target, model, calib, tokenizer, imatrix, layers } = plan;
  const runtime = job.runtime ?? {};
  const variant = variantLabel(st);
  if (calib && variant) calib.source['variant'] = variant;
  if (usesPolicy(st)) {
    const traces = job.calibration?.traces ?? [];
    return prunePolicy({
      model: job.model,
      out: job.out,
      method: job.method,
      target,
      settings: st,
      runtime,
      denseTraces: traces,
      denseTraceBudget: traceBudgetOf(traces[0]!) ?? 0,
      ctx: { tokenizer, vocabSize: model.config.vocabSize },
      generate: await policyGenerator(job, runtime, tokenizer!),
      overwrite: job.overwrite,
      version: RAC_VERSION,
      log: (line) => job.log?.(line),
      ...(job.onProgress ? { onProgress: job.onProgress } : {}),
    });
  }
  return pruneCheckpoint(
    model,
    calib,
    job.out,
    {
      method: job.method,
      ...(job.quant ? { quant: job.quant } : {}),
      ...(imatrix ? { imatrix, imatrixFile: job.imatrix } : {}),
      target,
      layers,
      ...prunerOptionsOf(st, runtime),
      overwrite: job.overwrite,
      ...(job.onProgress ? { onProgress: job.onProgress } : {}),
    },
    RAC_VERSION,
  );
}

/** Prune (and/or quantize, or remove experts from) a checkpoint: the summary written as `out`/rac.json. */
export async function prune(job: PruneJob): Promise<PruneSummary> {
  const plan = await planPrune(job);
  try {
    return await executePrune(plan);
  } finally {
    plan.close();
  }
}

/** The trace generator of staged refresh / two-pass mix: the local backend, the dense traces' settings, the dataset's prompts. */
async function policyGenerator(job: PruneJob, runtime: Partial<RuntimeOptions>, tokenizer: RacTokenizer) {
  const c = job.calibration!;
  const mpath = manifestPath(c.traces![0]!);
  let m: TraceManifest;
  try {
    m = JSON.parse(readFileSync(mpath, 'utf8')) as TraceManifest;
  } catch (e) {
    throw new CheckpointError(
      `${mpath}: staged refresh / two-pass mix trace the pruned model with the dense traces' settings, read from their manifest (${(e as Error).message})`,
    );
  }
  const data = await loadDataset(c.dataset!, {
    promptColumn: m.settings.dataset.prompt_column,
    ...(m.settings.dataset.id_column ? { idColumn: m.settings.dataset.id_column } : {}),
    limit: c.limit,
  });
  if (data.sha256 !== m.settings.dataset.sha256)
    throw new CheckpointError(`${data.file}: not the dataset ${c.traces![0]} was traced from (sha256 differs from its manifest)`);
  // The prompts rendered as the dense traces' were (their manifest's system prompt and template flags).
  const system = m.settings.system ?? undefined;
  const templateFlags = m.settings.template_flags;
  const grade = job.task ?? m.settings.grade;
  const grader = grade ? traceGrader(grade) : null;
  return traceGenerator({
    prompts: data.rows.map((row) => ({
      id: row.id,
      index: row.index,
      ...(row.answer !== undefined ? { answer: row.answer } : {}),
      render: (contextLength?: number) =>
        renderPrompt(tokenizer, row, { system, templateFlags, ...(contextLength !== undefined ? { contextLength } : {}) }),
    })),
    settings: { ...m.settings, ...(grader ? { grade } : {}) },
    batchSize: m.batch_size,
    dir: job.policyTraces ?? join(job.out, '..', `${job.out.replace(/\/+$/, '').split('/').pop()}.policy-traces`),
    open: (dir) => openBackend({ backend: 'local', model: dir, batchSize: m.batch_size, runtime }),
    ...(grader ? { grader } : {}),
    dataset: { file: data.file, rows: data.rows.length },
    version: RAC_VERSION,
    ...(job.log ? { log: (line: string) => job.log!(`policy traces: ${line}`) } : {}),
  });
}
