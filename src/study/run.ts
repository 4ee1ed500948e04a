// Room src/study: the jobs of a study — traces (trace.ts), evaluation (eval.ts), `rac run` over a
// recipe (this file) and the cost estimate printed before long work (estimate.ts). May import every
// room below it: compress, io, runtime, tasks, models, prune, export, backends, report; not serve or
// cli (README: Layout).
/**
 * `rac run`: the whole study from one recipe — on-policy traces, pruning for every
 * method × target × calibration mode, evaluation of the dense and every pruned model, the report.
 *
 * Every step's output lives under a name derived from a content hash of its inputs (model
 * fingerprint, dataset sha256, settings), so a rerun after a crash skips what is done and resumes
 * what is not (trace and eval resume mid-file; a pruned model is complete or absent).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import YAML from 'yaml';
import { targetLabel, targetOf, type SparsityTarget } from '../compress/masks.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { loadDataset, renderPrompt } from '../io/datasets.ts';
import { ModelFileError, readRegularFile } from '../io/model-file.ts';
import { parseHubId, resolveDataset, resolveModel, type DatasetSplit, type HubOptions } from '../io/hub.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import { Model } from '../models/model.ts';
import type { GenerationBackend } from '../backends/backend.ts';
import { openBackend, type OpenBackendOptions } from '../backends/index.ts';
import { buildCalibSet, type CalibMode } from '../prune/calib-modes.ts';
import { codeLimits, graderFor, runEval, traceGrader, type EvalTask } from './eval.ts';
import { benchmark, isBenchmark, type BenchmarkName } from '../tasks/benchmarks.ts';
import {
  calibShapeOf,
  fieldsOf,
  PRUNE_DEFAULTS,
  prunerOptionsOf,
  readFields,
  RECIPE_DEFAULTS,
  RECIPE_EVAL_DEFAULTS,
  selectionOf,
  settingsProblem,
  TRACE_DEFAULTS,
  traceSettingsOf,
  evalSamplingOf,
  usesPolicy,
  type PruneSettings,
  type TraceJob,
} from './job.ts';
import { prunePolicy, traceGenerator, variantLabel } from './policy.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import type { SandboxLimits } from '../tasks/sandbox.ts';
import { isQuantScheme, QUANT_SCHEMES, type QuantScheme } from '../compress/quant-schemes.ts';
import {
  EXPERT_METHODS,
  parseLayerSelection,
  PRUNE_METHODS,
  pruneCheckpoint,
  QUANT_METHODS,
  type LinearScope,
  type PruneMethod,
} from '../prune/prune.ts';
import { runTrace, type TraceManifest, type TracePrompt, type TraceSettings } from './trace.ts';
import { hashOf } from './settings.ts';
import { buildReport } from '../report/html.ts';
import { RacError } from '../errors.ts';

export class RecipeError extends RacError {
  constructor(file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'RecipeError';
  }
}

/**
 * Bounds on a recipe, checked before the work they would cause: the file's size before it is
 * parsed, the `prune:` entries before any is read (identical entries are kept once), and the
 * pruned models they make (entries × targets × calibration modes × quantize).
 */
export const RECIPE_LIMITS = { maxBytes: 1 << 20, maxPruneEntries: 1000, maxModels: 1000 } as const;

/** The file `rac run` writes into its `out` first: a directory holding it is a rac run directory. */
export const RUN_MARKER = 'rac-run.json';

export interface PruneSpec {
  method: PruneMethod;
  /** Calibration modes (ignored by magnitude and rtn). */
  calib: CalibMode[];
  targets: SparsityTarget[];
  linears: LinearScope;
  /** The quantization axis: null = not quantized; a scheme (q4_0, q4_k_m, …) = joint with sparsegpt, RTN after wanda/magnitude. */
  quantize: (QuantScheme | null)[];
  /** Every prune / calibration setting of this entry: the recipe's `calibration:` section, then the entry's own keys. */
  settings: PruneSettings;
}

export interface Recipe {
  file: string;
  model: string;
  out: string;
  task: EvalTask;
  system?: string;
  templateFlags: Record<string, unknown>;
  /**
   * calib / eval: a path, or a Hugging Face dataset id (kept as written, with `calibSplit` /
   * `evalSplit`: config and split) until runRecipe resolves it to the split's Parquet shards.
   */
  datasets: {
    calib: string | readonly string[];
    eval: string | readonly string[];
    calibSplit?: DatasetSplit;
    evalSplit?: DatasetSplit;
    /** `eval` named a benchmark (math500, lcb, …): its hub dataset, prompts and answers. */
    evalBenchmark?: BenchmarkName;
    text: string[];
    promptColumn?: string;
    answerColumn?: string;
    idColumn?: string;
  };
  trace: TraceJob;
  /** The `calibration:` section over the defaults (each prune entry may override its keys). */
  calibration: PruneSettings;
  prune: PruneSpec[];
  /** `prune:` entries dropped because an identical entry came before (any key order). */
  duplicatePruneEntries: number;
  eval: {
    samples: number;
    maxNewTokens: number;
    temperature: number;
    topP: number;
    topK: number;
    seed: number;
    limit?: number;
    batchSize: number;
    codeLimits?: SandboxLimits;
    /** The grader (eval.ts GRADERS; default: the task's first). */
    grader: string;
  };
  backend: Omit<OpenBackendOptions, 'backend' | 'model' | 'gguf'> & { backend: 'local' | 'llama.cpp' | 'openai' };
}

type Obj = Record<string, unknown>;

/** Read and validate a recipe (YAML or JSON); paths resolve relative to the recipe file. */
export function loadRecipe(path: string): Recipe {
  const file = resolve(path);
  let bytes: Buffer | undefined;
  try {
    // A FIFO is refused, not waited on; a file over the size bound is refused before it is read.
    bytes = readRegularFile(file, RECIPE_LIMITS.maxBytes, 'a recipe');
  } catch (e) {
    if (e instanceof ModelFileError) throw new RecipeError(file, e.problem);
    throw e;
  }
  if (bytes === undefined) throw new RecipeError(file, 'file not found');
  let raw: unknown;
  try {
    const text = bytes.toString('utf8');
    raw = file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new RecipeError(file, `cannot parse (${(e as Error).message})`);
  }
  const fail = (m: string): never => {
    throw new RecipeError(file, m);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('expected a mapping at the top level');
  const r = raw as Obj;
  const known = ['model', 'out', 'task', 'system', 'template_flags', 'datasets', 'trace', 'calibration', 'prune', 'eval', 'backend'];
  for (const k of Object.keys(r)) if (!known.includes(k)) fail(`unknown key "${k}" (known: ${known.join(', ')})`);
  const base = dirname(file);
  const p = (v: unknown, what: string): string => {
    if (typeof v !== 'string' || !v) fail(`"${what}" must be a path`);
    return isAbsolute(v as string) ? (v as string) : join(base, v as string);
  };
  const sub = (k: string, known: readonly string[]): Obj => mapping(r[k] ?? {}, k, known, fail);
  const wrap = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      return fail((e as Error).message);
    }
  };
  const num = (o: Obj, k: string, def: number, where: string, int = false): number => {
    const v = o[k] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (int && !Number.isInteger(v)))
      fail(`"${where}.${k}" must be a ${int ? 'non-negative integer' : 'number ≥ 0'}`);
    return v as number;
  };
  const task = (r['task'] ?? 'tiny') as EvalTask;
  if (!['math', 'code', 'tiny', 'choice'].includes(task)) fail(`"task" must be math, code, tiny or choice`);
  const ds = sub('datasets', ['calib', 'eval', 'text', 'prompt_column', 'answer_column', 'id_column']);
  const calibDs = datasetSpec(ds['calib'], 'datasets.calib', p, fail);
  // datasets.eval may name a benchmark (math500, aime24, aime25, gpqa-diamond, lcb) when no such path exists.
  const evalBenchmark =
    typeof ds['eval'] === 'string' && isBenchmark(ds['eval']) && !existsSync(p(ds['eval'], 'datasets.eval')) ? ds['eval'] : undefined;
  const evalDs = evalBenchmark
    ? {
        spec: benchmark(evalBenchmark).dataset.id,
        split: { config: benchmark(evalBenchmark).dataset.config, split: benchmark(evalBenchmark).dataset.split },
      }
    : datasetSpec(ds['eval'], 'datasets.eval', p, fail);
  if (evalBenchmark && benchmark(evalBenchmark).task !== task)
    fail(`"datasets.eval": benchmark ${evalBenchmark} is a ${benchmark(evalBenchmark).task} task, but "task" is ${task}`);
  const bm = evalBenchmark ? benchmark(evalBenchmark) : null;
  const text =
    ds['text'] === undefined ? [] : (Array.isArray(ds['text']) ? ds['text'] : [ds['text']]).map((t, i) => p(t, `datasets.text[${i}]`));
  const tr = sub('trace', ['n', 'max_new_tokens', 'temperature', 'top_p', 'top_k', 'seed', 'token_budget', 'batch_size']);
  const calibFields = fieldsOf('calibration');
  const ca = sub(
    'calibration',
    calibFields.map((f) => f.key),
  );
  const calibration = wrap(() => readFields(ca, 'calibration', { ...PRUNE_DEFAULTS, ...RECIPE_DEFAULTS }, calibFields));
  const ev = sub('eval', [
    'samples',
    'max_new_tokens',
    'temperature',
    'top_p',
    'top_k',
    'seed',
    'limit',
    'batch_size',
    'code_limits',
    'grader',
  ]);
  if (ev['grader'] !== undefined && typeof ev['grader'] !== 'string') fail('"eval.grader" must be a string');
  const grader = wrap(() => graderFor(task, ev['grader'] as string | undefined));
  const be = sub('backend', [...RECIPE_BACKEND_KEYS]);
  const prune = r['prune'];
  if (!Array.isArray(prune) || prune.length === 0) fail('"prune" must be a non-empty list of {method, calib, sparsity | pattern}');
  if ((prune as unknown[]).length > RECIPE_LIMITS.maxPruneEntries)
    fail(`"prune" has ${(prune as unknown[]).length} entries; a recipe may have at most ${RECIPE_LIMITS.maxPruneEntries}`);
  // Identical entries (in any key order) are one: the first is kept, with its index in messages.
  const seen = new Set<string>();
  const entries = (prune as unknown[]).flatMap((x, i) => {
    const key = canonicalJson(x);
    if (seen.has(key)) return [];
    seen.add(key);
    return [{ x, i }];
  });
  const once = <T>(xs: T[]): T[] => {
    const keys = new Set<string>();
    return xs.filter((v) => {
      const k = JSON.stringify(v);
      if (keys.has(k)) return false;
      keys.add(k);
      return true;
    });
  };
  const specs: PruneSpec[] = entries.map(({ x, i }) => {
    const where = `prune[${i}]`;
    if (typeof x !== 'object' || x === null) fail(`${where} must be a mapping`);
    const o = x as Obj;
    const entryKeys = ['method', 'calib', 'sparsity', 'pattern', 'quantize', ...fieldsOf('prune').map((f) => f.key)];
    for (const k of Object.keys(o)) if (!entryKeys.includes(k)) fail(`${where}: unknown key "${k}" (known: ${entryKeys.join(', ')})`);
    const method = o['method'] as PruneMethod;
    const methods = [...PRUNE_METHODS, ...EXPERT_METHODS, ...QUANT_METHODS];
    if (!methods.includes(method)) fail(`${where}.method must be one of ${methods.join(', ')}`);
    const expertsOnly = EXPERT_METHODS.includes(method);
    const quantOnly = QUANT_METHODS.includes(method);
    const noCalib = method === 'magnitude' || method === 'rtn';
    const list = (v: unknown) => (v === undefined ? [] : Array.isArray(v) ? once(v) : [v]);
    const calib = list(o['calib']) as CalibMode[];
    for (const c of calib) if (!['prompt', 'rac', 'text', 'mix'].includes(c)) fail(`${where}.calib: unknown mode "${String(c)}"`);
    if (!noCalib && calib.length === 0) fail(`${where}.calib: ${method} needs at least one calibration mode`);
    const targets: SparsityTarget[] = [];
    try {
      for (const s of list(o['sparsity'])) targets.push(targetOf({ sparsity: s as number }));
      for (const s of list(o['pattern'])) targets.push(targetOf({ pattern: String(s) }));
    } catch (e) {
      fail(`${where}: ${(e as Error).message}`);
    }
    if (expertsOnly || quantOnly) {
      // reap / frequency remove whole experts (`experts`), gptq / rtn quantize (`quantize`); they prune no weight.
      const does = expertsOnly ? 'removes experts (experts: …)' : 'only quantizes (quantize: …)';
      if (targets.length > 0) fail(`${where}: method ${method} ${does}; it takes no sparsity or pattern`);
      targets.push({ kind: 'unstructured', sparsity: 0 });
    }
    if (targets.length === 0) fail(`${where}: give sparsity and/or pattern`);
    const uniqueTargets = once(targets);
    targets.splice(0, targets.length, ...uniqueTargets);
    const settings = wrap(() => readFields(o, where, calibration, fieldsOf('prune')));
    if (expertsOnly && !(settings.experts > 0))
      fail(`${where}: method ${method} needs experts (a fraction in (0, 1) or a count per layer)`);
    const linears = settings.linears as LinearScope;
    for (const c of calib) {
      for (const t of targets) {
        const problem = settingsProblem(settings, c, t);
        if (problem) fail(`${where}: ${problem}`);
      }
    }
    const quantize = (o['quantize'] === undefined ? [null] : list(o['quantize'])) as (QuantScheme | null)[];
    for (const q of quantize)
      if (q !== null && !isQuantScheme(String(q)))
        fail(`${where}.quantize: each entry must be null or one of ${QUANT_SCHEMES.join(', ')}, got ${JSON.stringify(q)}`);
    if (quantize.length === 0) fail(`${where}.quantize: give at least one entry (null = not quantized)`);
    if (quantOnly && quantize.some((q) => q === null))
      fail(`${where}: method ${method} quantizes: give quantize (one or more of ${QUANT_SCHEMES.join(', ')}; no null)`);
    if (usesPolicy(settings) && quantize.some((q) => q !== null))
      fail(`${where}: staged refresh / two-pass mix do not quantize (quantize: [null])`);
    return { method, calib: noCalib ? [] : calib, targets, linears, quantize, settings };
  });
  const models = specs.reduce((a, sp) => a + sp.targets.length * Math.max(1, sp.calib.length) * sp.quantize.length, 0);
  if (models > RECIPE_LIMITS.maxModels) fail(`"prune" makes ${models} pruned models; a recipe may make at most ${RECIPE_LIMITS.maxModels}`);
  const backendKind = (be['kind'] ?? be['backend'] ?? 'local') as 'local' | 'llama.cpp' | 'openai';
  if (backendKind !== 'local' && backendKind !== 'llama.cpp' && backendKind !== 'openai')
    fail('"backend.kind" must be local, llama.cpp or openai');
  // A recipe generates with several models (dense, then every pruned one): the llama.cpp backend
  // exports each model directory to a temporary GGUF, so a fixed GGUF file cannot be named.
  if (be['gguf'] !== undefined)
    fail('"backend.gguf": a recipe runs several models; the llama.cpp backend exports each one to a temporary GGUF (remove "gguf")');
  return {
    file,
    model: modelSpec(r['model'], p),
    out: p(r['out'] ?? 'rac-out', 'out'),
    task,
    ...(typeof r['system'] === 'string' ? { system: r['system'] } : {}),
    templateFlags: (r['template_flags'] as Obj | undefined) ?? {},
    datasets: {
      calib: calibDs.spec,
      eval: evalDs.spec,
      ...(calibDs.split ? { calibSplit: calibDs.split } : {}),
      ...(evalDs.split ? { evalSplit: evalDs.split } : {}),
      ...(evalBenchmark ? { evalBenchmark } : {}),
      text,
      ...(typeof ds['prompt_column'] === 'string' ? { promptColumn: ds['prompt_column'] } : {}),
      ...(typeof ds['answer_column'] === 'string' ? { answerColumn: ds['answer_column'] } : {}),
      ...(typeof ds['id_column'] === 'string' ? { idColumn: ds['id_column'] } : {}),
    },
    trace: {
      n: num(tr, 'n', TRACE_DEFAULTS.n, 'trace', true),
      maxNewTokens: num(tr, 'max_new_tokens', TRACE_DEFAULTS.maxNewTokens, 'trace', true),
      temperature: num(tr, 'temperature', TRACE_DEFAULTS.temperature, 'trace'),
      topP: num(tr, 'top_p', TRACE_DEFAULTS.topP, 'trace'),
      topK: num(tr, 'top_k', TRACE_DEFAULTS.topK, 'trace', true),
      seed: num(tr, 'seed', TRACE_DEFAULTS.seed, 'trace', true),
      tokenBudget: num(tr, 'token_budget', TRACE_DEFAULTS.tokenBudget, 'trace', true),
      batchSize: num(tr, 'batch_size', TRACE_DEFAULTS.batchSize, 'trace', true),
    },
    calibration,
    prune: specs,
    duplicatePruneEntries: (prune as unknown[]).length - entries.length,
    eval: {
      samples: num(ev, 'samples', bm?.samples ?? RECIPE_EVAL_DEFAULTS.samples, 'eval', true),
      maxNewTokens: num(ev, 'max_new_tokens', RECIPE_EVAL_DEFAULTS.maxNewTokens, 'eval', true),
      temperature: num(ev, 'temperature', RECIPE_EVAL_DEFAULTS.temperature, 'eval'),
      topP: num(ev, 'top_p', RECIPE_EVAL_DEFAULTS.topP, 'eval'),
      topK: num(ev, 'top_k', RECIPE_EVAL_DEFAULTS.topK, 'eval', true),
      seed: num(ev, 'seed', RECIPE_EVAL_DEFAULTS.seed, 'eval', true),
      ...(ev['limit'] !== undefined ? { limit: num(ev, 'limit', 0, 'eval', true) } : {}),
      batchSize: num(ev, 'batch_size', RECIPE_EVAL_DEFAULTS.batchSize, 'eval', true),
      ...(ev['code_limits'] !== undefined
        ? { codeLimits: recipeCodeLimits(ev['code_limits'], fail) }
        : bm?.codeLimits
          ? { codeLimits: codeLimits({ wallSeconds: bm.codeLimits.wallSeconds, cpuSeconds: bm.codeLimits.cpuSeconds }) }
          : {}),
      grader,
    },
    backend: { ...(be as object), backend: backendKind } as Recipe['backend'],
  };
}

/** `model:` is a path (relative to the recipe) or, when no such path exists, a Hugging Face id `org/name[@revision]`. */
/**
 * A recipe's `datasets.calib` / `datasets.eval`: a path (relative to the recipe), a hub id
 * `org/name[@revision]` when no such path exists (config `default`, split `train`, as --dataset),
 * or a mapping `{id, config, split}`.
 */
function datasetSpec(
  v: unknown,
  where: string,
  p: (v: unknown, what: string) => string,
  fail: (m: string) => never,
): { spec: string; split?: DatasetSplit } {
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = mapping(v, where, ['id', 'config', 'split'], fail);
    if (typeof o['id'] !== 'string' || !parseHubId(o['id'])) fail(`"${where}.id" must be a Hugging Face dataset id org/name[@revision]`);
    for (const k of ['config', 'split'] as const)
      if (o[k] !== undefined && (typeof o[k] !== 'string' || !o[k])) fail(`"${where}.${k}" must be a non-empty string`);
    const split: DatasetSplit = {
      ...(o['config'] ? { config: o['config'] as string } : {}),
      ...(o['split'] ? { split: o['split'] as string } : {}),
    };
    return { spec: o['id'] as string, split };
  }
  if (typeof v !== 'string' || !v) fail(`"${where}" must be a path, a Hugging Face dataset id, or {id, config, split}`);
  const path = p(v, where);
  return { spec: !existsSync(path) && parseHubId(v as string) ? (v as string) : path };
}

/**
 * The recipe with its dataset ids resolved (the hub cache; downloads when allowed) to the split's
 * Parquet shards, in order; paths stay as they are.
 */
export async function resolveRecipeDatasets(recipe: Recipe, opts: HubOptions = {}): Promise<Recipe> {
  const one = async (spec: string | readonly string[], split: DatasetSplit | undefined): Promise<string | readonly string[]> => {
    if (typeof spec !== 'string' || (split === undefined && existsSync(spec))) return spec;
    const r = await resolveDataset(spec, split ?? {}, opts);
    if (r.source)
      opts.log?.(
        `dataset ${r.source.id}@${r.source.revision} (${r.source.config}/${r.source.split}) → ${r.files.length} Parquet shard${r.files.length === 1 ? '' : 's'} of ${r.source.commit}`,
      );
    return r.files.length === 1 ? r.files[0]! : r.files;
  };
  return {
    ...recipe,
    datasets: {
      ...recipe.datasets,
      calib: await one(recipe.datasets.calib, recipe.datasets.calibSplit),
      eval: await one(recipe.datasets.eval, recipe.datasets.evalSplit),
    },
  };
}

function modelSpec(v: unknown, p: (v: unknown, what: string) => string): string {
  const path = p(v, 'model');
  return !existsSync(path) && parseHubId(v as string) ? (v as string) : path;
}

/** Keys of a recipe's `backend` mapping: the kind and openBackend's options a recipe may set. */
const RECIPE_BACKEND_KEYS = [
  'kind',
  'backend',
  'gguf',
  'exportDtype',
  'threads',
  'contextSize',
  'baseUrl',
  'apiKeyEnv',
  'servedModel',
  'concurrency',
  'promptFormat',
  'tokenizer',
  'timeoutMs',
  'maxAttempts',
  'backoffMs',
] as const;

/** JSON with every mapping's keys sorted: equal for values that differ only in key order. */
function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.keys(x as Obj)
            .sort()
            .map((k) => [k, (x as Obj)[k]]),
        )
      : x,
  );
}

/**
 * Refuses an `out` that exists and holds anything but a rac run: a run directory has the marker
 * file (or, from rac before the marker, a traces/traces-<hash>.jsonl).
 */
export function checkRunDir(out: string): void {
  let names: string[];
  try {
    if (!statSync(out).isDirectory()) throw new RecipeError(out, 'exists and is not a directory; "out" must be a directory');
    names = readdirSync(out);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (names.length === 0 || names.includes(RUN_MARKER)) return;
  let legacy = false;
  try {
    legacy = readdirSync(join(out, 'traces')).some((f) => /^traces-[0-9a-f]{12}\.jsonl$/.test(f));
  } catch {
    /* no traces/ */
  }
  if (legacy) return;
  const shown = names.sort().slice(0, 5).join(', ') + (names.length > 5 ? `, … (${names.length} entries)` : '');
  throw new RecipeError(
    out,
    `not a rac run directory (it holds ${shown}); choose an empty or new "out", or a directory an earlier rac run wrote`,
  );
}

/** A recipe mapping at `where` with only `known` keys: a misspelt setting must not silently fall back to its default. */
function mapping(v: unknown, where: string, known: readonly string[], fail: (m: string) => never): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(`"${where}" must be a mapping (keys: ${known.join(', ')})`);
  for (const key of Object.keys(v as Obj)) if (!known.includes(key)) fail(`"${where}": unknown key "${key}" (known: ${known.join(', ')})`);
  return v as Obj;
}

/** `eval.code_limits: {wall_seconds, cpu_seconds, memory_mb}` (each optional) → sandbox limits. */
function recipeCodeLimits(v: unknown, fail: (m: string) => never): SandboxLimits {
  const known = ['wall_seconds', 'cpu_seconds', 'memory_mb'];
  const o = mapping(v, 'eval.code_limits', known, fail);
  const pos = (k: string): number | undefined => {
    const x = o[k];
    if (x === undefined) return undefined;
    if (typeof x !== 'number' || !Number.isFinite(x) || x <= 0) fail(`"eval.code_limits.${k}" must be a positive number`);
    return x as number;
  };
  const [wallSeconds, cpuSeconds, memoryMb] = known.map(pos);
  return codeLimits({ wallSeconds, cpuSeconds, memoryMb });
}

function fileSha(path: string | readonly string[]): string {
  if (typeof path === 'string') return createHash('sha256').update(readFileSync(path)).digest('hex');
  const h = createHash('sha256');
  for (const f of path) h.update(readFileSync(f));
  return h.digest('hex');
}

export interface RunHooks {
  log(line: string): void;
}

export interface RunResult {
  traces: TraceManifest;
  results: string[];
  report: string;
  summary: string;
  summaryJson: Record<string, unknown>;
}

async function withBackend<T>(
  recipe: Recipe,
  model: string,
  batchSize: number,
  runtime: Partial<RuntimeOptions>,
  fn: (b: GenerationBackend) => Promise<T>,
): Promise<T> {
  const b = await openBackend({ ...recipe.backend, model, batchSize, runtime });
  try {
    return await fn(b);
  } finally {
    await b.close();
  }
}

/** Run (or resume) the study described by `recipe`. */
export async function runRecipe(
  recipe0: Recipe,
  hooks: RunHooks,
  version: string,
  runtime: Partial<RuntimeOptions> = {},
): Promise<RunResult> {
  const log = hooks.log;
  // The output directory is checked before anything else: rac never writes into a directory it did not make.
  checkRunDir(recipe0.out);
  if (recipe0.duplicatePruneEntries > 0)
    log(
      `recipe: ${recipe0.duplicatePruneEntries} prune entr${recipe0.duplicatePruneEntries === 1 ? 'y' : 'ies'} identical to an earlier one, dropped`,
    );
  // A hub id resolves to its cached snapshot once; every step then reads that directory.
  const hubLog = (line: string) => log(`      ${line}`);
  const hub = await resolveModel(recipe0.model, { log: hubLog });
  const recipe: Recipe = { ...(await resolveRecipeDatasets(recipe0, { log: hubLog })), model: hub.dir };
  const title = hub.source ? `${hub.source.id}@${hub.source.revision}` : recipe.model;
  const out = recipe.out;
  mkdirSync(out, { recursive: true });
  if (!existsSync(join(out, RUN_MARKER)))
    writeFileAtomic(
      join(out, RUN_MARKER),
      `${JSON.stringify({ rac_run: 1, recipe: recipe.file, created: new Date().toISOString(), version }, null, 2)}\n`,
    );
  const dense = Model.open(recipe.model);
  const vocabSize = dense.config.vocabSize;
  const denseConfig = dense.config;
  dense.close();
  const tokenizer = await RacTokenizer.load(recipe.model);

  // 1. On-policy traces of the dense model on the calibration prompts.
  const calibData = await loadDataset(recipe.datasets.calib, {
    promptColumn: recipe.datasets.promptColumn,
    idColumn: recipe.datasets.idColumn,
    ...(recipe.datasets.answerColumn ? { answerColumn: recipe.datasets.answerColumn } : {}),
  });
  const grader = traceGrader(recipe.task);
  // Calibration prompts with answers are graded as they are traced (trace selection reads it).
  const grade = grader && calibData.rows.some((r) => r.answer !== undefined) ? (recipe.task as 'math' | 'tiny') : undefined;
  const tset: TraceSettings = traceSettingsOf(
    { ...recipe.trace, ...(grade ? { grade } : {}) },
    calibData,
    recipe.system,
    recipe.templateFlags,
  );
  const prompts: TracePrompt[] = calibData.rows.map((row) => ({
    id: row.id,
    index: row.index,
    ...(tset.grade && row.answer !== undefined ? { answer: row.answer } : {}),
    render: (contextLength?: number) =>
      renderPrompt(tokenizer, row, {
        system: recipe.system,
        templateFlags: recipe.templateFlags,
        ...(contextLength !== undefined ? { contextLength } : {}),
      }),
  }));
  let lastLog = 0;
  // Evaluation of one model (the dense one or a pruned one) on the held-out problems, cached by
  // the backend's fingerprint and the evaluation settings.
  const evalSha = fileSha(recipe.datasets.eval);
  // The pruned models to make: method × target × calibration mode (named once the traces exist).
  // (a model two entries both ask for — e.g. sparsity 0.5 and [0.5] — is made and evaluated once)
  const planned = new Set<string>();
  const plans = recipe.prune
    .flatMap((spec) =>
      spec.targets.flatMap((target) =>
        (spec.calib.length ? spec.calib : [null]).flatMap((calib: CalibMode | null) =>
          spec.quantize.map((quant) => ({ spec, target, calib, quant })),
        ),
      ),
    )
    .filter((p) => {
      const k = JSON.stringify([p.spec.method, p.spec.linears, p.spec.settings, p.target, p.calib, p.quant]);
      if (planned.has(k)) return false;
      planned.add(k);
      return true;
    });
  const evalTotal = 1 + plans.length;
  // The grader names an evaluation's verdicts (math and code changed theirs); tiny has one grader, and its evaluations keep their names.
  const { grader: _grader, ...evalNoGrader } = recipe.eval;
  const evalKey = recipe.task === 'tiny' ? evalNoGrader : recipe.eval;
  /** `dense`: the dense model's results (pruned models: results.json gets vs_dense, the length ratios). */
  const evaluateWith = async (backend: GenerationBackend, name: string, dir: string, i: number, dense?: string): Promise<string> => {
    const tag = `(${i + 1}/${evalTotal}) ${name}`;
    const file = join(
      out,
      'evals',
      `${name}-${hashOf({ fp: backend.fingerprint, evalSha, ev: evalKey, task: recipe.task, system: recipe.system ?? null, t: recipe.templateFlags, ...(recipe.datasets.evalBenchmark ? { bench: recipe.datasets.evalBenchmark } : {}) })}.json`,
    );
    if (existsSync(file)) {
      log(`      ${tag}: evaluated before, skipped`);
      return file;
    }
    mkdirSync(dirname(file), { recursive: true });
    const t0 = performance.now();
    const r = await runEval(
      {
        model: dir,
        dataset: recipe.datasets.eval,
        task: recipe.task,
        columns: {
          ...(recipe.datasets.promptColumn ? { prompt: recipe.datasets.promptColumn } : {}),
          ...(recipe.datasets.answerColumn ? { answer: recipe.datasets.answerColumn } : {}),
          ...(recipe.datasets.idColumn ? { id: recipe.datasets.idColumn } : {}),
        },
        ...(recipe.system ? { system: recipe.system } : {}),
        templateExtra: recipe.templateFlags,
        samples: recipe.eval.samples,
        sampling: evalSamplingOf(recipe.eval),
        ...(recipe.eval.limit ? { limit: recipe.eval.limit } : {}),
        ...(recipe.eval.codeLimits ? { codeLimits: recipe.eval.codeLimits } : {}),
        grader: recipe.eval.grader,
        ...(recipe.datasets.evalBenchmark ? { benchmark: recipe.datasets.evalBenchmark } : {}),
        out: file,
        ...(dense ? { dense } : {}),
      },
      backend,
      tokenizer,
      {
        onProgress: (p) => {
          if (Date.now() - lastLog < 10_000) return;
          lastLog = Date.now();
          log(`      ${tag}: ${p.done}/${p.total} problems, ${p.newTokens} tokens, ${((performance.now() - t0) / 1000).toFixed(0)}s`);
        },
      },
    );
    log(
      `      ${tag}: accuracy ${(100 * r.metrics.accuracy).toFixed(1)}%, mean ${r.metrics.mean_tokens.all.toFixed(0)} tokens${r.vs_dense?.tokens_ratio != null ? ` (×${r.vs_dense.tokens_ratio.toFixed(2)} dense)` : ''}, truncated ${(100 * r.metrics.truncated).toFixed(1)}%, ${((performance.now() - t0) / 1000).toFixed(1)}s`,
    );
    return file;
  };
  const evalScope = `${typeof recipe.datasets.eval === 'string' && recipe.datasets.eval === recipe0.datasets.eval ? recipe.datasets.eval : `${String(recipe0.datasets.eval)} (${recipe0.datasets.evalSplit?.config ?? 'default'}/${recipe0.datasets.evalSplit?.split ?? 'train'})`}${recipe.eval.limit ? ` (first ${recipe.eval.limit} problems)` : ''}`;
  const evaluateDense = (backend: GenerationBackend): Promise<string> => {
    log(`      dense model on ${evalScope}`);
    return evaluateWith(backend, 'dense', recipe.model, 0);
  };

  // One dense backend serves its fingerprint (which names every derived output), the traces and
  // the dense evaluation: the dense model is opened (or, for llama.cpp, exported) once.
  const { denseId, tracesPath, traces, denseEval } = await withBackend(
    recipe,
    recipe.model,
    recipe.trace.batchSize,
    runtime,
    async (backend) => {
      const denseId = backend.fingerprint;
      const tracesPath = join(out, 'traces', `traces-${hashOf({ model: denseId, tset, budget: recipe.trace.tokenBudget })}.jsonl`);
      mkdirSync(dirname(tracesPath), { recursive: true });
      log(
        `[1/4] traces: dense model on ${calibData.rows.length} calibration prompts × ${recipe.trace.n}, budget ${recipe.trace.tokenBudget} tokens → ${tracesPath}`,
      );
      const traces = await runTrace({
        out: tracesPath,
        backend,
        prompts,
        settings: tset,
        tokenBudget: recipe.trace.tokenBudget,
        batchSize: recipe.trace.batchSize,
        dataset: { file: calibData.file, rows: calibData.rows.length, ...(calibData.hub ? { hub: calibData.hub } : {}) },
        ...(hub.source ? { modelHub: hub.source } : {}),
        ...(tset.grade && grader ? { grader } : {}),
        version,
        onProgress: (p) => {
          if (Date.now() - lastLog < 5000) return;
          lastLog = Date.now();
          log(
            `      ${p.promptTokens + p.decodeTokens} tokens, ${p.records} records, ${(p.sessionDecodeTokens / Math.max(p.seconds, 1e-9)).toFixed(0)} decode tok/s`,
          );
        },
      });
      log(`      ${traces.counts.records} traces, ${traces.tokens.total} tokens, decode share ${(100 * traces.decode_share).toFixed(1)}%`);
      // The backend's batch size is fixed when it opens: reuse it when evaluation asks for the same.
      const denseEval = recipe.eval.batchSize === recipe.trace.batchSize ? await evaluateDense(backend) : null;
      return { denseId, tracesPath, traces, denseEval };
    },
  );

  // 2. Pruning: method × target × calibration mode, each into a content-addressed directory.
  const textShas = recipe.datasets.text.map(fileSha);
  const traceSha = fileSha(tracesPath);
  const jobs = plans.map(({ spec, target, calib, quant }) => {
    const key = {
      ...(quant ? { quant } : {}),
      model: denseId,
      method: spec.method,
      target,
      linears: spec.linears,
      calib,
      calibInputs:
        calib === null
          ? null
          : {
              calibSha: calibData.sha256,
              traceSha,
              textShas,
              c: spec.settings,
              tflags: recipe.templateFlags,
              system: recipe.system ?? null,
            },
      ...(calib === null ? { settings: spec.settings } : {}),
    };
    const variant = calib === null ? undefined : variantLabel(spec.settings);
    const st = spec.settings;
    const experts = st.experts > 0 ? `experts${st.experts}${EXPERT_METHODS.includes(spec.method) ? '' : `${st.expertScoring}`}` : null;
    const what = EXPERT_METHODS.includes(spec.method) ? experts! : `${experts ? `${experts}-` : ''}${targetLabel(target)}`;
    const name = `${spec.method}-${calib ?? 'nocalib'}${variant ? `+${variant.replace(/[^A-Za-z0-9.+-]/g, '_')}` : ''}-${what}${quant ? `-${quant}` : ''}`;
    return { name, dir: join(out, 'models', `${name}-${hashOf(key)}`), spec, target, calib, quant };
  });
  log(`[2/4] pruning: ${jobs.length} models`);
  // Staged refresh / two-pass mix trace pruned models as the dense one was traced (traces/ keeps them: reruns resume).
  const policyGenerator = traceGenerator({
    prompts,
    settings: tset,
    batchSize: recipe.trace.batchSize,
    dir: join(out, 'traces'),
    open: (dir) => openBackend({ ...recipe.backend, model: dir, batchSize: recipe.trace.batchSize, runtime }),
    ...(tset.grade && grader ? { grader } : {}),
    dataset: { file: calibData.file, rows: calibData.rows.length },
    version,
    log: (line) => log(`      policy traces: ${line}`),
  });
  for (const [i, j] of jobs.entries()) {
    if (existsSync(join(j.dir, 'rac.json'))) {
      log(`      (${i + 1}/${jobs.length}) ${j.name}: done before, skipped`);
      continue;
    }
    const t0 = performance.now();
    const st = j.spec.settings;
    const layers = parseLayerSelection(st.layers, denseConfig.numLayers);
    if (j.calib !== null && usesPolicy(st)) {
      const s = await prunePolicy({
        model: recipe.model,
        out: j.dir,
        method: j.spec.method,
        target: j.target,
        settings: st,
        runtime,
        denseTraces: [tracesPath],
        denseTraceBudget: recipe.trace.tokenBudget,
        ctx: { tokenizer, vocabSize },
        generate: policyGenerator,
        overwrite: true,
        version,
        log: (line) => log(`      ${line}`),
      });
      const pol = s.calibration['policy'] as { traces_generated: number; trace_seconds: number };
      log(
        `      (${i + 1}/${jobs.length}) ${j.name}: ${(100 * s.totals.sparsity).toFixed(1)}% sparse, ${s.calibration.tokens} calibration tokens, ` +
          `${pol.traces_generated} traces generated in ${pol.trace_seconds.toFixed(1)}s, ${((performance.now() - t0) / 1000).toFixed(1)}s`,
      );
      continue;
    }
    const calibSet = await buildCalibSet(
      j.calib ?? 'prompt',
      {
        dataset: {
          path: recipe.datasets.calib,
          promptColumn: recipe.datasets.promptColumn,
          idColumn: recipe.datasets.idColumn,
          system: recipe.system,
          templateFlags: recipe.templateFlags,
        },
        traces: [tracesPath],
        textFiles: recipe.datasets.text,
        select: selectionOf(st),
        ...(st.mix ? { mix: st.mix } : {}),
        ...(st.mixWeights ? { weights: st.mixWeights } : {}),
      },
      { tokenizer, vocabSize },
      calibShapeOf(st),
    );
    const variant = j.calib === null ? undefined : variantLabel(st);
    if (variant) calibSet.source['variant'] = variant;
    const model = Model.open(recipe.model);
    try {
      const s = await pruneCheckpoint(
        model,
        calibSet,
        j.dir,
        {
          method: j.spec.method,
          target: j.target,
          layers,
          ...prunerOptionsOf(st, runtime),
          overwrite: true,
          ...(j.quant ? { quant: j.quant } : {}),
        },
        version,
      );
      const er = s.expert_removal;
      log(
        `      (${i + 1}/${jobs.length}) ${j.name}: ${er ? `${er.experts_before} → ${er.experts_after} experts, ` : ''}${(100 * s.totals.sparsity).toFixed(1)}% sparse, ${calibSet.tokens} calibration tokens, ${((performance.now() - t0) / 1000).toFixed(1)}s`,
      );
    } finally {
      model.close();
    }
  }

  // 3. Evaluation of every pruned model (and of the dense one, unless step 1 did it).
  log(`[3/4] evaluation: ${jobs.length} pruned models${denseEval === null ? ' and the dense one' : ''} on ${evalScope}`);
  const results: string[] = [denseEval ?? (await withBackend(recipe, recipe.model, recipe.eval.batchSize, runtime, evaluateDense))];
  for (const [i, j] of jobs.entries())
    results.push(
      await withBackend(recipe, j.dir, recipe.eval.batchSize, runtime, (backend) =>
        evaluateWith(backend, j.name, j.dir, i + 1, results[0]),
      ),
    );

  // 4. Report and summary.
  const report = join(out, 'report.html');
  const summary = join(out, 'summary.json');
  const built = buildReport(results, report, { summary, title: `rac study: ${title}` });
  log(`[4/4] report → ${report}, summary → ${summary}`);
  return { traces, results, report, summary, summaryJson: built.summary };
}
