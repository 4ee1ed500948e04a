/**
 * One job description per command — prune, trace, eval — built from `rac` flags or from a
 * `rac run` recipe through the same tables, so both sources parse, validate and default every
 * setting the same way. Every default lives here, once (docs/pruning.md: "Settings and their defaults").
 *
 * A prune setting is one `Field`: its property name, its recipe key, its flag, its kind (the
 * validation) and its default. `addFieldOptions` registers the flags on a commander command;
 * `readFields` reads a recipe mapping; both return the same `PruneSettings`. Runtime options
 * (threads, provider) are part of the job and passed explicitly to what opens sessions.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { parseTokenWeights } from '../compress/hessian.ts';
import type { SparsityTarget } from '../compress/masks.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { parseSourceMap, type CalibShape, type SourceMode } from '../prune/calib-modes.ts';
import type { TraceSelection } from '../prune/select.ts';
import { EXPERT_SCORINGS, type ExpertScoring } from '../compress/expert-scores.ts';
import { MIN_EXPERT_TOKENS, MOE_CALIBRATIONS, type MoeCalibration } from '../prune/options.ts';
import type { SamplingSettings } from '../backends/backend.ts';
import type { TraceSettings } from './trace.ts';
import { RacError } from '../errors.ts';

export const LINEAR_SCOPES = ['all', 'attn', 'mlp'] as const;
export const OVERFLOW_MODES = ['truncate', 'split'] as const;
export const MAGNITUDE_SCOPES = ['layer', 'row'] as const;
export const SPARSITY_PROFILES = ['uniform', 'owl'] as const;
export const SELECT_CORRECT = ['any', 'correct', 'incorrect'] as const;
export const SELECT_DIFFICULTY = ['any', 'mixed'] as const;
export type SparsityProfileKind = (typeof SPARSITY_PROFILES)[number];

/** Per-position weights in XᵀX (rows scaled by √w): prompt, thinking and answer tokens. */
export interface TokenWeights {
  prompt: number;
  think: number;
  answer: number;
}

/**
 * The prune options this build's pruner implements. token_weights and sparsity_profile are
 * parsed everywhere (flags, recipes) but are implemented by the layer loop's owner; until the
 * pruner has them a job asking for them is refused rather than silently run without them.
 */
export const PRUNER_SUPPORTS = { tokenWeights: true, sparsityProfile: true };

type Kind =
  | { t: 'int'; min: number }
  | { t: 'num'; min: number; max: number; openMin?: boolean }
  | { t: 'bool' }
  | { t: 'choice'; values: readonly string[] }
  | { t: 'string' }
  | { t: 'sources' }
  | { t: 'tokenWeights' };

export interface Field {
  /** Property in PruneSettings. */
  prop: keyof PruneSettings;
  /** Recipe key (in `calibration:` or in a `prune:` entry, see `section`). */
  key: string;
  /** Flag of `rac prune` (without the value placeholder). */
  flag: string;
  /** `calibration`: the recipe's calibration section or a prune entry; `prune`: a prune entry only. */
  section: 'calibration' | 'prune';
  kind: Kind;
  help: string;
}

/** Every prune/calibration setting with its default (undefined = off / not set). */
export interface PruneSettings {
  calibTokens: number;
  maxSeqLen: number;
  overflow: (typeof OVERFLOW_MODES)[number];
  pack: boolean;
  batchTokens: number;
  mix?: Partial<Record<SourceMode, number>>;
  mixWeights?: Partial<Record<SourceMode, number>>;
  tokenWeights?: TokenWeights;
  refreshStages: number;
  refreshShare: number;
  twoPassShare: number;
  selectCorrect: (typeof SELECT_CORRECT)[number];
  selectDropTruncated: boolean;
  selectMinTokens: number;
  selectMaxTokens: number;
  selectDifficulty: (typeof SELECT_DIFFICULTY)[number];
  linears: (typeof LINEAR_SCOPES)[number];
  layers: string;
  trueSequential: boolean;
  asymmetric: boolean;
  magnitudeScope: (typeof MAGNITUDE_SCOPES)[number];
  blocksize: number;
  percdamp: number;
  memoryLimitMb: number;
  errorStats: boolean;
  pruneLmHead: boolean;
  sparsityProfile: SparsityProfileKind;
  owlM: number;
  owlLambda: number;
  moeCalibration: MoeCalibration;
  minExpertTokens: number;
  /** MoE: experts to remove per layer before pruning (fraction in (0, 1) or a count; 0 = none). */
  experts: number;
  expertScoring: ExpertScoring;
}

/**
 * The defaults, once. `max_seq_len` is 8192 from flags and from recipes alike (until v0.1 the CLI
 * used 2048): the default trace is up to 8192 new tokens, and RAC's point is the decode tokens, so
 * the default keeps a whole default trace's chain of thought instead of cutting three quarters.
 */
export const PRUNE_DEFAULTS: PruneSettings = {
  calibTokens: 0,
  maxSeqLen: 8192,
  overflow: 'truncate',
  pack: false,
  batchTokens: 4096,
  refreshStages: 1,
  refreshShare: 1,
  twoPassShare: 0,
  selectCorrect: 'any',
  selectDropTruncated: false,
  selectMinTokens: 0,
  selectMaxTokens: 0,
  selectDifficulty: 'any',
  linears: 'all',
  layers: 'all',
  trueSequential: false,
  asymmetric: false,
  magnitudeScope: 'layer',
  blocksize: 128,
  percdamp: 0.01,
  memoryLimitMb: 4096,
  errorStats: true,
  pruneLmHead: false,
  sparsityProfile: 'uniform',
  // OWL's paper values (M 5, λ 0.08), as llm-compressor's owl_m / owl_lmbda
  owlM: 5,
  owlLambda: 0.08,
  moeCalibration: 'routed',
  minExpertTokens: MIN_EXPERT_TOKENS,
  experts: 0,
  expertScoring: 'reap',
};

/** The settings a recipe defaults differently, and why: a recipe is a whole study at one budget. */
export const RECIPE_DEFAULTS = {
  /** A recipe compares modes at one budget, so it has one: 1M tokens (the paper's). */
  calibTokens: 1_000_000,
} as const;

export const TRACE_DEFAULTS = {
  n: 2,
  maxNewTokens: 8192,
  tokenBudget: 1_000_000,
  temperature: 0.6,
  topP: 0.95,
  topK: 0,
  seed: 0,
  batchSize: 16,
} as const;

export const EVAL_DEFAULTS = { samples: 1, maxNewTokens: 2048, temperature: 0.6, topP: 0.95, topK: 0, seed: 0, batchSize: 16 } as const;

/** A recipe's evaluation runs reasoning models to their end: 32768 new tokens (the paper's). */
export const RECIPE_EVAL_DEFAULTS = { ...EVAL_DEFAULTS, maxNewTokens: 32768 } as const;

const int = (min: number): Kind => ({ t: 'int', min });
const choice = (values: readonly string[]): Kind => ({ t: 'choice', values });

export const PRUNE_FIELDS: readonly Field[] = [
  {
    prop: 'calibTokens',
    key: 'tokens',
    flag: '--calib-tokens',
    section: 'calibration',
    kind: int(0),
    help: 'calibration token budget, equal across modes when comparing them (0 = everything)',
  },
  {
    prop: 'maxSeqLen',
    key: 'max_seq_len',
    flag: '--max-seq-len',
    section: 'calibration',
    kind: int(1),
    help: 'longest calibration sequence',
  },
  {
    prop: 'overflow',
    key: 'overflow',
    flag: '--overflow',
    section: 'calibration',
    kind: choice(OVERFLOW_MODES),
    help: 'longer sequences: truncate | split',
  },
  {
    prop: 'pack',
    key: 'pack',
    flag: '--pack',
    section: 'calibration',
    kind: { t: 'bool' },
    help: 'concatenate documents (eos-separated) into max-seq-len chunks (--calib-mode)',
  },
  {
    prop: 'batchTokens',
    key: 'batch_tokens',
    flag: '--batch-tokens',
    section: 'calibration',
    kind: int(1),
    help: 'padded tokens per calibration batch',
  },
  {
    prop: 'mix',
    key: 'mix',
    flag: '--mix',
    section: 'calibration',
    kind: { t: 'sources' },
    help: 'for --calib-mode mix: token shares of the budget, e.g. rac:0.75,text:0.25',
  },
  {
    prop: 'mixWeights',
    key: 'mix_weights',
    flag: '--mix-weights',
    section: 'calibration',
    kind: { t: 'sources' },
    help: 'per-source sequence weights, e.g. rac:1,text:0.5 (rows scaled by √w in XᵀX)',
  },
  {
    prop: 'tokenWeights',
    key: 'token_weights',
    flag: '--token-weights',
    section: 'calibration',
    kind: { t: 'tokenWeights' },
    help: 'per-position weights in XᵀX, e.g. prompt:0,think:1,answer:1 (prompt 0 = decode tokens only)',
  },
  {
    prop: 'refreshStages',
    key: 'refresh_stages',
    flag: '--refresh-stages',
    section: 'calibration',
    kind: int(1),
    help: 'staged refresh: prune the layers in N stages, each later stage calibrated on traces regenerated by the partly pruned model (1 = off)',
  },
  {
    prop: 'refreshShare',
    key: 'refresh_share',
    flag: '--refresh-share',
    section: 'calibration',
    kind: { t: 'num', min: 0, max: 1, openMin: true },
    help: "staged refresh: share of each later stage's calibration tokens from regenerated traces (the rest: the dense model's)",
  },
  {
    prop: 'twoPassShare',
    key: 'two_pass_share',
    flag: '--two-pass-share',
    section: 'calibration',
    kind: { t: 'num', min: 0, max: 1 },
    help: 'two-pass mix: prune once, trace that pruned model, prune the dense model again with this share of the tokens from its traces (0 = off)',
  },
  {
    prop: 'selectCorrect',
    key: 'select_correct',
    flag: '--select-correct',
    section: 'calibration',
    kind: choice(SELECT_CORRECT),
    help: 'trace selection by grade: any | correct | incorrect (rows graded when traced)',
  },
  {
    prop: 'selectDropTruncated',
    key: 'select_drop_truncated',
    flag: '--select-drop-truncated',
    section: 'calibration',
    kind: { t: 'bool' },
    help: 'trace selection: drop traces cut at max-new-tokens',
  },
  {
    prop: 'selectMinTokens',
    key: 'select_min_tokens',
    flag: '--select-min-tokens',
    section: 'calibration',
    kind: int(0),
    help: 'trace selection: keep completions of at least this many tokens (0 = no bound)',
  },
  {
    prop: 'selectMaxTokens',
    key: 'select_max_tokens',
    flag: '--select-max-tokens',
    section: 'calibration',
    kind: int(0),
    help: 'trace selection: keep completions of at most this many tokens (0 = no bound)',
  },
  {
    prop: 'selectDifficulty',
    key: 'select_difficulty',
    flag: '--select-difficulty',
    section: 'calibration',
    kind: choice(SELECT_DIFFICULTY),
    help: "trace selection: mixed = prompts the traces' model solves in some but not all samples (n ≥ 2)",
  },
  {
    prop: 'linears',
    key: 'linears',
    flag: '--linears',
    section: 'prune',
    kind: choice(LINEAR_SCOPES),
    help: 'which Linears: all | attn | mlp',
  },
  {
    prop: 'layers',
    key: 'layers',
    flag: '--layers',
    section: 'prune',
    kind: { t: 'string' },
    help: 'which layers: all | first | middle | last | indices and ranges (0,3-5)',
  },
  {
    prop: 'trueSequential',
    key: 'true_sequential',
    flag: '--true-sequential',
    section: 'prune',
    kind: { t: 'bool' },
    help: 're-capture MLP inputs after pruning attention',
  },
  {
    prop: 'moeCalibration',
    key: 'moe_calibration',
    flag: '--moe-calibration',
    section: 'prune',
    kind: choice(MOE_CALIBRATIONS),
    help: "MoE experts' statistics: routed = the tokens routed to each expert | all = every token (the output stays routed)",
  },
  {
    prop: 'experts',
    key: 'experts',
    flag: '--experts',
    section: 'prune',
    kind: { t: 'num', min: 0, max: 1_000_000 },
    help: 'MoE: remove this many experts per layer first (a fraction in (0, 1) or a count); required by --method reap|frequency',
  },
  {
    prop: 'expertScoring',
    key: 'expert_scoring',
    flag: '--expert-scoring',
    section: 'prune',
    kind: choice(EXPERT_SCORINGS),
    help: 'MoE, --experts with another method: score experts by reap (saliency) | frequency (routed tokens)',
  },
  {
    prop: 'minExpertTokens',
    key: 'min_expert_tokens',
    flag: '--min-expert-tokens',
    section: 'prune',
    kind: int(0),
    help: 'MoE, routed: an expert routed fewer calibration tokens is calibrated on every token instead',
  },
  {
    prop: 'asymmetric',
    key: 'asymmetric',
    flag: '--asymmetric',
    section: 'prune',
    kind: { t: 'bool' },
    help: "sparsegpt/gptq reconstruct the input model's outputs on its own stream (GPTAQ's asymmetric calibration)",
  },
  {
    prop: 'magnitudeScope',
    key: 'magnitude_scope',
    flag: '--magnitude-scope',
    section: 'prune',
    kind: choice(MAGNITUDE_SCOPES),
    help: 'magnitude threshold per layer | row',
  },
  { prop: 'blocksize', key: 'blocksize', flag: '--blocksize', section: 'prune', kind: int(1), help: 'SparseGPT block size' },
  {
    prop: 'percdamp',
    key: 'percdamp',
    flag: '--percdamp',
    section: 'prune',
    kind: { t: 'num', min: 0, max: 1 },
    help: 'SparseGPT damping, fraction of mean(diag H)',
  },
  {
    prop: 'memoryLimitMb',
    key: 'memory_limit_mb',
    flag: '--memory-limit-mb',
    section: 'prune',
    kind: int(1),
    help: 'hidden states kept in memory per store before spilling to disk',
  },
  {
    prop: 'errorStats',
    key: 'error_stats',
    flag: '--error-stats',
    section: 'prune',
    kind: { t: 'bool' },
    help: 'the per-Linear output error (one GEMM pass per Linear)',
  },
  {
    prop: 'pruneLmHead',
    key: 'prune_lm_head',
    flag: '--prune-lm-head',
    section: 'prune',
    kind: { t: 'bool' },
    help: 'also prune lm_head, calibrated on the final hidden states (untied heads only)',
  },
  {
    prop: 'sparsityProfile',
    key: 'sparsity_profile',
    flag: '--sparsity-profile',
    section: 'prune',
    kind: choice(SPARSITY_PROFILES),
    help: 'per-layer targets: uniform | owl (outlier-weighted, averaging to the target)',
  },
  {
    prop: 'owlM',
    key: 'owl_m',
    flag: '--owl-m',
    section: 'prune',
    kind: { t: 'num', min: 0, max: 1e6, openMin: true },
    help: "OWL: outlier threshold M (a weight is an outlier when its |W|·‖X‖ exceeds M × the layer's mean)",
  },
  {
    prop: 'owlLambda',
    key: 'owl_lambda',
    flag: '--owl-lambda',
    section: 'prune',
    kind: { t: 'num', min: 0, max: 1 },
    help: 'OWL: largest deviation λ of a layer target from the mean target',
  },
];

export class JobError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'JobError';
  }
}

function tokenWeightsOf(spec: unknown, where: string): TokenWeights {
  let o: Record<string, unknown>;
  if (typeof spec === 'string') {
    // Flag spelling: the pruner's parser (one syntax, one message).
    try {
      return parseTokenWeights(spec, where);
    } catch (e) {
      throw new JobError((e as Error).message);
    }
  } else if (spec && typeof spec === 'object' && !Array.isArray(spec)) o = spec as Record<string, unknown>;
  else throw new JobError(`${where}: expected {prompt, think, answer} weights`);
  const out: TokenWeights = { prompt: 1, think: 1, answer: 1 };
  for (const [k, v] of Object.entries(o)) {
    if (!(k in out)) throw new JobError(`${where}: unknown class "${k}" (prompt, think, answer)`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new JobError(`${where}: "${k}" must be a number ≥ 0`);
    out[k as keyof TokenWeights] = v;
  }
  if (out.prompt + out.think + out.answer === 0) throw new JobError(`${where}: the weights must not all be 0`);
  return out;
}

/** Validate one value of a field; `text` values (flags) are converted, recipe values must have the type. */
export function fieldValue(f: Field, v: unknown, where: string, text: boolean): unknown {
  const k = f.kind;
  const fail = (what: string): never => {
    throw new JobError(`${where} must be ${what}, got ${JSON.stringify(v)}`);
  };
  switch (k.t) {
    case 'int':
    case 'num': {
      const n = text && typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
      if (typeof n !== 'number' || !Number.isFinite(n))
        return fail(k.t === 'int' ? `an integer ≥ ${k.min}` : `a number in ${k.openMin ? '(' : '['}${k.min}, ${k.max}]`);
      if (k.t === 'int') {
        if (!Number.isInteger(n) || n < k.min) return fail(`an integer ≥ ${k.min}`);
      } else if (n > k.max || (k.openMin ? n <= k.min : n < k.min)) return fail(`a number in ${k.openMin ? '(' : '['}${k.min}, ${k.max}]`);
      return n;
    }
    case 'bool':
      if (typeof v !== 'boolean') return fail('true or false');
      return v;
    case 'choice':
      if (typeof v !== 'string' || !k.values.includes(v)) return fail(`one of ${k.values.join(', ')}`);
      return v;
    case 'string':
      if (typeof v !== 'string' || !v) return fail('a string');
      return v;
    case 'sources':
      try {
        if (typeof v === 'string') return parseSourceMap(v, where);
        if (v && typeof v === 'object' && !Array.isArray(v))
          return parseSourceMap(
            Object.entries(v)
              .map(([a, b]) => `${a}:${String(b)}`)
              .join(','),
            where,
          );
      } catch (e) {
        throw new JobError((e as Error).message);
      }
      return fail('SOURCE:NUMBER pairs (prompt, rac, text)');
    case 'tokenWeights':
      return tokenWeightsOf(v, where);
  }
}

/** Register every field as a flag of `cmd` (defaults shown in --help from PRUNE_DEFAULTS). */
export function addFieldOptions(cmd: Command, fields: readonly Field[] = PRUNE_FIELDS): Command {
  for (const f of fields) {
    const def = PRUNE_DEFAULTS[f.prop];
    if (f.kind.t === 'bool') {
      if (def === true) cmd.option(`--no-${f.flag.slice(2)}`, `skip: ${f.help}`);
      else cmd.option(f.flag, f.help);
      continue;
    }
    const parse = (v: string) => {
      try {
        return fieldValue(f, v, f.flag, true);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    };
    const placeholder = f.kind.t === 'choice' ? '<name>' : f.kind.t === 'sources' || f.kind.t === 'tokenWeights' ? '<spec>' : '<n>';
    cmd.option(`${f.flag} ${placeholder}`, f.help + (def !== undefined ? ` (default: ${String(def)})` : ''), parse);
  }
  return cmd;
}

/** PruneSettings from parsed flags (commander's camelCase properties; unset = default). */
export function settingsFromFlags(o: Record<string, unknown>, fields: readonly Field[] = PRUNE_FIELDS): PruneSettings {
  const s: Record<string, unknown> = { ...PRUNE_DEFAULTS };
  for (const f of fields) if (o[f.prop] !== undefined) s[f.prop] = o[f.prop];
  return s as unknown as PruneSettings;
}

/** The fields a recipe mapping may hold in `section` (a prune entry holds both). */
export function fieldsOf(section: 'calibration' | 'prune'): readonly Field[] {
  return section === 'calibration' ? PRUNE_FIELDS.filter((f) => f.section === 'calibration') : PRUNE_FIELDS;
}

/** Read the fields present in a recipe mapping over `base`; keys not in `fields` are left to the caller. */
export function readFields(o: Record<string, unknown>, where: string, base: PruneSettings, fields: readonly Field[]): PruneSettings {
  const s: Record<string, unknown> = { ...base };
  for (const f of fields) if (o[f.key] !== undefined) s[f.prop] = fieldValue(f, o[f.key], `"${where}.${f.key}"`, false);
  return s as unknown as PruneSettings;
}

/** The calibration shape (budget, length, packing) of the settings. */
export function calibShapeOf(s: PruneSettings): CalibShape {
  return { tokenBudget: s.calibTokens, maxSeqLen: s.maxSeqLen, overflow: s.overflow, pack: s.pack };
}

/** The trace selection of the settings, or null when it keeps every row. */
export function selectionOf(s: PruneSettings): TraceSelection | null {
  const sel: TraceSelection = {
    correct: s.selectCorrect,
    dropTruncated: s.selectDropTruncated,
    minTokens: s.selectMinTokens,
    maxTokens: s.selectMaxTokens,
    difficulty: s.selectDifficulty,
  };
  const off = sel.correct === 'any' && !sel.dropTruncated && sel.minTokens === 0 && sel.maxTokens === 0 && sel.difficulty === 'any';
  return off ? null : sel;
}

/** Whether these settings need traces from a pruned model (staged refresh or two-pass mix). */
export function usesPolicy(s: PruneSettings): boolean {
  return s.refreshStages > 1 || s.twoPassShare > 0;
}

/** Combinations that cannot run, as one message (null when fine). */
export function settingsProblem(s: PruneSettings, calibMode: string | null, target?: SparsityTarget): string | null {
  if (s.selectMaxTokens > 0 && s.selectMaxTokens < s.selectMinTokens)
    return `select max tokens (${s.selectMaxTokens}) is below select min tokens (${s.selectMinTokens})`;
  if (selectionOf(s) && calibMode !== 'rac' && calibMode !== 'mix')
    return 'trace selection (select_*) needs calibration mode rac or mix (it selects traces)';
  if (usesPolicy(s) && calibMode !== 'rac') return 'staged refresh and two-pass mix need calibration mode rac (they regenerate traces)';
  if (s.refreshStages > 1 && s.twoPassShare > 0) return 'staged refresh and two-pass mix are alternatives; give one';
  if (usesPolicy(s) && s.calibTokens === 0) return 'staged refresh and two-pass mix need a calibration token budget (they split it)';
  if (s.tokenWeights && !PRUNER_SUPPORTS.tokenWeights) return 'token_weights: this build of the pruner has no per-position weights yet';
  if (s.sparsityProfile !== 'uniform' && !PRUNER_SUPPORTS.sparsityProfile)
    return `sparsity_profile ${s.sparsityProfile}: this build of the pruner has only uniform targets yet`;
  if (target?.kind === 'nm' && s.sparsityProfile === 'owl')
    return '--sparsity-profile owl needs --sparsity (unstructured), not --pattern (recipes: sparsity_profile owl needs sparsity, not pattern)';
  return null;
}

/** The prune options of the settings that the pruner reads directly (besides method, target, layers). */
export function prunerOptionsOf(s: PruneSettings, runtime: Partial<RuntimeOptions>) {
  return {
    linears: s.linears,
    trueSequential: s.trueSequential,
    ...(s.asymmetric ? { asymmetric: true } : {}),
    magnitudeScope: s.magnitudeScope,
    blocksize: s.blocksize,
    percdamp: s.percdamp,
    batchTokens: s.batchTokens,
    memoryLimitBytes: s.memoryLimitMb * 2 ** 20,
    errorStats: s.errorStats,
    pruneLmHead: s.pruneLmHead,
    moeCalibration: s.moeCalibration,
    minExpertTokens: s.minExpertTokens,
    ...(s.experts > 0 ? { removeExperts: { scoring: s.expertScoring, experts: s.experts } } : {}),
    runtime,
    ...(s.tokenWeights ? { tokenWeights: s.tokenWeights } : {}),
    ...(s.sparsityProfile === 'owl' ? { sparsityProfile: { owl: { m: s.owlM, lambda: s.owlLambda } } } : {}),
  };
}

/** The runtime options of `--threads` / `--provider` (env RAC_THREADS / RAC_PROVIDER otherwise). */
export function runtimeOf(flags: {
  threads?: number | undefined;
  provider?: RuntimeOptions['provider'] | undefined;
}): Partial<RuntimeOptions> {
  return {
    ...(flags.threads !== undefined ? { threads: flags.threads } : {}),
    ...(flags.provider !== undefined ? { provider: flags.provider } : {}),
  };
}

/** A trace job's sampling and budget (the `trace:` section of a recipe, `rac trace`'s flags). */
export interface TraceJob {
  n: number;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  tokenBudget: number;
  batchSize: number;
  stop?: string[];
  /** Grade each trace whose prompt has an answer with this task's grader. */
  grade?: 'math' | 'tiny';
}

/** The settings that decide a trace's content (compared on resume), from a trace job and its dataset. */
export function traceSettingsOf(
  job: TraceJob,
  data: { sha256: string; promptColumn: string; idColumn?: string | undefined },
  system: string | undefined,
  templateFlags: Record<string, unknown>,
): TraceSettings {
  return {
    dataset: { sha256: data.sha256, prompt_column: data.promptColumn, id_column: data.idColumn ?? null },
    system: system ?? null,
    template_flags: templateFlags,
    n: job.n,
    max_new_tokens: job.maxNewTokens,
    temperature: job.temperature,
    top_p: job.topP,
    top_k: job.topK,
    seed: job.seed,
    stop: job.stop ?? [],
    ...(job.grade ? { grade: job.grade } : {}),
  };
}

/** An evaluation's sampling (the `eval:` section of a recipe, `rac eval`'s flags). */
export function evalSamplingOf(e: {
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed: number;
  stop?: string[] | undefined;
}): SamplingSettings {
  return {
    temperature: e.temperature,
    topP: e.topP,
    topK: e.topK,
    maxNewTokens: e.maxNewTokens,
    seed: e.seed,
    ...(e.stop ? { stopStrings: e.stop } : {}),
  };
}
