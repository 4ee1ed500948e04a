/**
 * `rac eval`: sample K completions per problem through a GenerationBackend, grade them (math,
 * code, tiny), and summarise accuracy AND length (DESIGN §5: length is a first-class metric).
 *
 * Resumable like `rac trace`: every graded sample is appended to `<out>.samples.jsonl` as soon as
 * its problem is done (all K samples of one problem in one write); a manifest `<out>.manifest.json`
 * pins the settings that decide the samples. A restart with the same settings repairs a torn last
 * line, skips the (problem_id, sample) pairs already recorded and continues; PRNG streams depend
 * only on the problem's dataset index and the sample number, so a resumed run draws the same
 * samples as an uninterrupted one. `<out>` itself is written atomically (temp + rename) at the
 * end, from every recorded sample of the selected problems.
 *
 * Hesitation words (counted case-insensitively as whole words, no double counting):
 *   but_wait       "but wait" / "but, wait"
 *   wait           every other "wait" (so the "wait" of a "But wait" is NOT counted again)
 *   alternatively  "alternatively"
 *   hmm            "hmm", "hmmm", … (two or more m's)
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { hubSourceOf, type HubSource } from '../io/hub.ts';
import { loadDataset, renderPrompt } from '../io/datasets.ts';
import { checkPromptChars, checkPromptTokens, PromptLengthError } from '../io/prompt-bounds.ts';
import type { ChatMessage, RacTokenizer } from '../io/tokenizer.ts';
import { thinkSpan, gradeTiny } from '../tasks/boxed.ts';
import { benchmark, isCallBased, type BenchmarkName } from '../tasks/benchmarks.ts';
import { gradeChoice } from '../tasks/choice.ts';
import { CODE_GRADERS, extractProgram, runTests, type CodeGrader, type CodeTest } from '../tasks/code.ts';
import { gradeMath, MATH_GRADERS, type MathGrader } from '../tasks/math.ts';
import { passAtK } from '../tasks/passk.ts';
import type { SandboxLimits } from '../tasks/sandbox.ts';
import type { BackendCompletion, BackendRequest, GenerationBackend, SamplingSettings } from '../backends/backend.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { JsonlAppender, readJsonlLog, repairJsonlLog } from '../io/jsonl.ts';
import { settingsDiff } from './settings.ts';
import { readPruningInfo, type PruningInfo } from '../prune/rac-json.ts';
import { lockOutput } from '../io/lock.ts';
import { lengthSamplesOf, lengthVsDense, type LengthVsDense } from '../report/length.ts';

export type EvalTask = 'math' | 'code' | 'tiny' | 'choice';
export const EVAL_TASKS: readonly EvalTask[] = ['math', 'code', 'tiny', 'choice'];

/**
 * The graders of each task, the default first: math `math-verify` (Math-Verify's verdicts) or
 * `legacy` (rac ≤ 0.1); code `livecodebench` (its output checker) or `legacy` (exact lines);
 * tiny `exact` (the integer in the last box); choice `letter` (the chosen letter).
 */
export const GRADERS: Record<EvalTask, readonly string[]> = {
  math: MATH_GRADERS,
  code: CODE_GRADERS,
  tiny: ['exact'],
  choice: ['letter'],
};

/** The grader named for a task (its default when none is), or an error naming the valid ones. */
export function graderFor(task: EvalTask, name?: string): string {
  const valid = GRADERS[task];
  if (name === undefined) return valid[0]!;
  if (!valid.includes(name)) throw new Error(`grader "${name}" does not grade the ${task} task (${valid.join(', ')})`);
  return name;
}

export interface EvalColumns {
  prompt: string;
  answer: string;
  id: string;
  tests: string;
  family: string;
}

export const DEFAULT_COLUMNS: EvalColumns = { prompt: 'prompt', answer: 'answer', id: 'id', tests: 'tests', family: 'family' };

export interface EvalProblem {
  /** Position in the dataset file (seeds the PRNG streams; stable under --limit). */
  index: number;
  id: string;
  prompt: string;
  answer: string | null;
  tests: CodeTest[] | null;
  family: string | null;
  /** The prompt as chat messages, when the dataset column holds a message list. */
  messages?: ChatMessage[];
}

export interface EvalConfig {
  /** Model directory (or backend model name), recorded so `rac report` can read `<dir>/rac.json`. */
  model: string;
  /** A dataset file, or the shards of one split (read in order as one dataset). */
  dataset: string | readonly string[];
  task: EvalTask;
  columns?: Partial<EvalColumns>;
  system?: string;
  /** Extra chat-template variables (e.g. enable_thinking). */
  templateExtra?: Record<string, unknown>;
  samples: number;
  sampling: Omit<SamplingSettings, 'stopStrings'> & { stopStrings?: string[] };
  limit?: number;
  out: string;
  /** Sandbox limits for the code task. */
  codeLimits?: SandboxLimits;
  /** The grader (GRADERS; default: the task's first). */
  grader?: string;
  /** Rows are this benchmark's (src/tasks/benchmarks.ts): its prompt, answer and tests fields. */
  benchmark?: BenchmarkName;
  /** The dense model's results.json on the same problems: results.json gets `vs_dense` (length inflation). */
  dense?: string;
}

export interface SampleRecord {
  problem_id: string;
  /** Dataset index of the problem. */
  index: number;
  sample: number;
  family: string | null;
  correct: boolean;
  extracted: string | null;
  tokens: number;
  think_tokens: number;
  closed_think: boolean;
  finish_reason: 'stop' | 'length';
  hesitations: HesitationCounts;
  /** Code task: tests passed / total. */
  tests_passed?: number;
  tests_total?: number;
  text: string;
  /** Run that produced the record, and seconds since that run started (for wall time across resumes). */
  run: string;
  elapsed: number;
}

export interface HesitationCounts {
  wait: number;
  alternatively: number;
  hmm: number;
  but_wait: number;
}

export interface EvalMetrics {
  accuracy: number;
  pass_at_k: Record<string, number>;
  mean_tokens: { all: number; correct: number | null; incorrect: number | null };
  mean_think_tokens: number;
  truncated: number;
  closed_think: number;
  boxed: number;
  hesitations: HesitationCounts & { total: number; per_sample: number; per_1k_tokens: number };
  wall_seconds: number;
  tokens_per_second: number;
  samples: number;
  problems: number;
}

export interface FamilyMetrics {
  accuracy: number;
  mean_tokens: number;
  truncated: number;
  n: number;
  /** pass@k for k = 1, 2, 4, … ≤ K over the family's problems (as metrics.pass_at_k). */
  pass_at_k: Record<string, number>;
  /** Hesitation words per sample (as metrics.hesitations.per_sample). */
  hesitations_per_sample: number;
}

export interface EvalResults {
  rac_eval: 1;
  created: string;
  /** hub: the Hugging Face id, revision and commit, when the model directory is a hub cache snapshot. */
  model: { dir: string; fingerprint: string; backend: string; hub?: HubSource; pruning?: PruningInfo };
  task: EvalTask;
  /** The grader that decided `correct` (GRADERS). */
  grader: string;
  /** The benchmark preset the problems came from, null for a plain dataset. */
  benchmark: BenchmarkName | null;
  /** hub: the Hugging Face dataset, commit, config and split the problems came from. */
  dataset: { file: string; sha256: string; problems: number; columns: EvalColumns; system: string | null; hub?: HubSource };
  sampling: { samples: number; temperature: number; top_p: number; top_k: number; max_new_tokens: number; seed: number; stop: string[] };
  metrics: EvalMetrics;
  per_family?: Record<string, FamilyMetrics>;
  /** Mean tokens ÷ the dense model's on the same problems (all; correct ones), and truncation (report/length.ts). */
  vs_dense?: LengthVsDense & { dense: string };
  samples: Array<Omit<SampleRecord, 'run' | 'elapsed' | 'index' | 'hesitations'>>;
}

// ---------------------------------------------------------------------------------------------
// Hesitations

const BUT_WAIT = /\bbut\s*,?\s+wait\b|\bbut,wait\b/gi;
const WAIT = /\bwait\b/gi;
const ALTERNATIVELY = /\balternatively\b/gi;
const HMM = /\bhmm+\b/gi;

function count(re: RegExp, text: string): number {
  return (text.match(re) ?? []).length;
}

/** Hesitation words in a text; see the module comment for the rules. */
export function countHesitations(text: string): HesitationCounts {
  const butWait = count(BUT_WAIT, text);
  return { wait: count(WAIT, text) - butWait, alternatively: count(ALTERNATIVELY, text), hmm: count(HMM, text), but_wait: butWait };
}

// ---------------------------------------------------------------------------------------------
// Dataset

function asText(v: unknown): string | null {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** Code tests from a column: [{input, output}], {inputs: [], outputs: []}, or either as a JSON string. */
export function parseTests(v: unknown, where: string): CodeTest[] {
  let x = v;
  if (typeof x === 'string') {
    try {
      x = JSON.parse(x);
    } catch {
      throw new Error(`${where}: tests are a string but not JSON`);
    }
  }
  if (Array.isArray(x)) {
    return x.map((t, i) => {
      const o = t as Record<string, unknown>;
      const input = o?.input ?? o?.stdin;
      const output = o?.output ?? o?.stdout ?? o?.expected_output;
      if (typeof input !== 'string' || typeof output !== 'string') throw new Error(`${where}: test ${i} needs string input and output`);
      return { input, output };
    });
  }
  if (x && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    const ins = o.inputs ?? o.input;
    const outs = o.outputs ?? o.output;
    if (Array.isArray(ins) && Array.isArray(outs) && ins.length === outs.length) {
      return ins.map((inp, i) => ({ input: String(inp), output: String(outs[i]) }));
    }
  }
  throw new Error(`${where}: tests must be [{input, output}] or {inputs, outputs}`);
}

export interface LoadedProblems {
  file: string;
  sha256: string;
  hub?: HubSource;
  /** The columns actually used (defaults resolved by loadDataset). */
  columns: EvalColumns;
  problems: EvalProblem[];
  /** Rows left out (a code benchmark's call-based problems). */
  skipped?: number;
}

/** Problems of a JSONL / JSON / Parquet dataset (src/io/datasets.ts) for a task. */
export async function loadEvalProblems(
  file: string | readonly string[],
  task: EvalTask,
  columns: Partial<EvalColumns> = {},
  limit?: number,
  bench?: BenchmarkName,
): Promise<LoadedProblems> {
  if (bench) return loadBenchmarkProblems(file, bench, limit);
  const ds = await loadDataset(file, {
    ...(columns.prompt !== undefined ? { promptColumn: columns.prompt } : {}),
    ...(task !== 'code' ? { answerColumn: columns.answer ?? 'answer' } : {}),
    ...(columns.id !== undefined ? { idColumn: columns.id } : {}),
    ...(limit !== undefined ? { limit } : {}),
  });
  const testsCol = columns.tests ?? DEFAULT_COLUMNS.tests;
  const familyCol = columns.family ?? DEFAULT_COLUMNS.family;
  const problems = ds.rows.map((r): EvalProblem => {
    const where = `${ds.file}: row ${r.index}`;
    let answer: string | null = null;
    let tests: CodeTest[] | null = null;
    if (task === 'code') {
      if (r.raw[testsCol] === undefined || r.raw[testsCol] === null)
        throw new Error(`${where}: no tests column "${testsCol}" (columns: ${ds.columns.join(', ')})`);
      tests = parseTests(r.raw[testsCol], where);
    } else if (task === 'tiny' && r.raw[testsCol] !== undefined && r.raw[testsCol] !== null) {
      // The tiny reasoner's code family (format v2) in a tiny dataset: graded by its tests.
      tests = parseTests(r.raw[testsCol], where);
    } else {
      if (r.answer === undefined) throw new Error(`${where}: no answer in column "${ds.answerColumn ?? columns.answer ?? 'answer'}"`);
      answer = r.answer;
    }
    return {
      index: r.index,
      id: r.id,
      prompt: r.prompt,
      ...(r.messages ? { messages: r.messages } : {}),
      answer,
      tests,
      family: asText(r.raw[familyCol]),
    };
  });
  return {
    file: ds.file,
    sha256: ds.sha256,
    ...(ds.hub ? { hub: ds.hub } : {}),
    columns: {
      prompt: ds.promptColumn,
      answer: task === 'code' ? '' : (ds.answerColumn ?? 'answer'),
      id: ds.idColumn ?? '(row index)',
      tests: task === 'code' ? testsCol : '',
      family: familyCol,
    },
    problems,
  };
}

/** A benchmark's rows as problems: its prompt wording, answer or tests (call-based code rows left out). */
async function loadBenchmarkProblems(file: string | readonly string[], name: BenchmarkName, limit?: number): Promise<LoadedProblems> {
  const b = benchmark(name);
  const ds = await loadDataset(file, { promptColumn: b.fields[0]!, ...(limit !== undefined ? { limit } : {}) });
  const rows = b.task === 'code' ? ds.rows.filter((r) => !isCallBased(r.raw)) : ds.rows;
  const seen = new Set<string>();
  const problems = rows.map((r): EvalProblem => {
    let p: ReturnType<typeof b.problem>;
    try {
      p = b.problem(r.raw, r.index);
    } catch (e) {
      throw new Error(`${ds.file}: ${(e as Error).message}`);
    }
    const id = seen.has(p.id) ? `${p.id}#${r.index}` : p.id;
    seen.add(id);
    return { index: r.index, id, prompt: p.prompt, answer: p.answer, tests: p.tests, family: null };
  });
  return {
    file: ds.file,
    sha256: ds.sha256,
    ...(ds.hub ? { hub: ds.hub } : {}),
    columns: {
      prompt: `${name} prompt`,
      answer: b.task === 'code' ? '' : `${name} answer`,
      id: `${name} id`,
      tests: b.task === 'code' ? `${name} tests` : '',
      family: '',
    },
    problems,
    ...(rows.length < ds.rows.length ? { skipped: ds.rows.length - rows.length } : {}),
  };
}

/** Prompt ids and text: the model's chat template (generation prompt added) when it has one. */
export function renderEvalPrompt(
  tok: RacTokenizer,
  p: Pick<EvalProblem, 'prompt' | 'messages'>,
  system?: string,
  extra?: Record<string, unknown>,
  contextLength?: number,
): { ids: number[]; text: string } {
  if (tok.chatTemplate) {
    return renderPrompt(tok, p.messages ?? p.prompt, {
      ...(system !== undefined ? { system } : {}),
      ...(extra ? { templateFlags: extra } : {}),
      ...(contextLength !== undefined ? { contextLength } : {}),
    });
  }
  const text = system ? `${system}\n\n${p.prompt}` : p.prompt;
  if (contextLength !== undefined) checkPromptChars(text.length, tok, contextLength);
  const ids = tok.encode(text, { addSpecialTokens: true });
  if (contextLength !== undefined) checkPromptTokens(ids.length, contextLength);
  return { ids, text };
}

// ---------------------------------------------------------------------------------------------
// Metrics

const mean = (xs: number[]): number => (xs.length === 0 ? Number.NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
const meanOrNull = (xs: number[]): number | null => (xs.length === 0 ? null : mean(xs));

/** k = 1, 2, 4, … ≤ K, plus K itself. */
export function passKs(K: number): number[] {
  const ks: number[] = [];
  for (let k = 1; k <= K; k *= 2) ks.push(k);
  if (ks[ks.length - 1] !== K) ks.push(K);
  return ks;
}

/** Wall time over runs: per run, the largest `elapsed` recorded (plus the current run's own time). */
export function wallSeconds(records: SampleRecord[], current?: { run: string; seconds: number }): number {
  const perRun = new Map<string, number>();
  for (const r of records) perRun.set(r.run, Math.max(perRun.get(r.run) ?? 0, r.elapsed));
  if (current) perRun.set(current.run, Math.max(perRun.get(current.run) ?? 0, current.seconds));
  let s = 0;
  for (const v of perRun.values()) s += v;
  return s;
}

/** Metrics over the records of the given problems (K samples each). */
export function computeMetrics(
  records: SampleRecord[],
  K: number,
  wall: number,
): { metrics: EvalMetrics; perFamily?: Record<string, FamilyMetrics> } {
  const byProblem = new Map<string, SampleRecord[]>();
  for (const r of records) {
    let l = byProblem.get(r.problem_id);
    if (!l) byProblem.set(r.problem_id, (l = []));
    l.push(r);
  }
  const problems = [...byProblem.values()];
  const accuracy = mean(problems.map((l) => mean(l.map((r) => (r.correct ? 1 : 0)))));
  const passOf = (ps: SampleRecord[][]): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const k of passKs(K)) {
      const vals = ps.filter((l) => l.length >= k).map((l) => passAtK(l.length, l.filter((r) => r.correct).length, k));
      out[String(k)] = mean(vals);
    }
    return out;
  };
  const hesitationsOf = (r: SampleRecord) => r.hesitations.wait + r.hesitations.alternatively + r.hesitations.hmm + r.hesitations.but_wait;
  const pass = passOf(problems);
  const tokens = records.map((r) => r.tokens);
  const totalTokens = tokens.reduce((a, b) => a + b, 0);
  const h: HesitationCounts = { wait: 0, alternatively: 0, hmm: 0, but_wait: 0 };
  for (const r of records) for (const k of Object.keys(h) as (keyof HesitationCounts)[]) h[k] += r.hesitations[k];
  const hTotal = h.wait + h.alternatively + h.hmm + h.but_wait;
  const metrics: EvalMetrics = {
    accuracy,
    pass_at_k: pass,
    mean_tokens: {
      all: mean(tokens),
      correct: meanOrNull(records.filter((r) => r.correct).map((r) => r.tokens)),
      incorrect: meanOrNull(records.filter((r) => !r.correct).map((r) => r.tokens)),
    },
    mean_think_tokens: mean(records.map((r) => r.think_tokens)),
    truncated: mean(records.map((r) => (r.finish_reason === 'length' ? 1 : 0))),
    closed_think: mean(records.map((r) => (r.closed_think ? 1 : 0))),
    boxed: mean(records.map((r) => (r.extracted !== null ? 1 : 0))),
    hesitations: {
      ...h,
      total: hTotal,
      per_sample: records.length ? hTotal / records.length : Number.NaN,
      per_1k_tokens: totalTokens ? (1000 * hTotal) / totalTokens : 0,
    },
    wall_seconds: wall,
    tokens_per_second: wall > 0 ? totalTokens / wall : 0,
    samples: records.length,
    problems: problems.length,
  };
  let perFamily: Record<string, FamilyMetrics> | undefined;
  if (records.some((r) => r.family !== null)) {
    perFamily = {};
    const fams = [...new Set(records.map((r) => r.family ?? '(none)'))].sort();
    for (const f of fams) {
      const rs = records.filter((r) => (r.family ?? '(none)') === f);
      const ps = problems.filter((l) => (l[0]!.family ?? '(none)') === f);
      perFamily[f] = {
        accuracy: mean(ps.map((l) => mean(l.map((r) => (r.correct ? 1 : 0))))),
        mean_tokens: mean(rs.map((r) => r.tokens)),
        truncated: mean(rs.map((r) => (r.finish_reason === 'length' ? 1 : 0))),
        n: ps.length,
        pass_at_k: passOf(ps),
        hesitations_per_sample: mean(rs.map(hesitationsOf)),
      };
    }
  }
  return { metrics, ...(perFamily ? { perFamily } : {}) };
}

// ---------------------------------------------------------------------------------------------
// Resumable sample log

export function samplesPath(out: string): string {
  return `${out}.samples.jsonl`;
}
export function manifestPath(out: string): string {
  return `${out}.manifest.json`;
}

/**
 * Records of a samples log, repairing a torn last line (truncated away) and dropping duplicate
 * (problem_id, sample) pairs (first kept). A complete line that is not a sample record is an error.
 */
export function readSampleLog(path: string): SampleRecord[] {
  if (!existsSync(path)) return [];
  const hint = 'delete the file to start over';
  const log = readJsonlLog(path, { record: 'sample record', hint, error: (m) => new Error(m) });
  const out: SampleRecord[] = [];
  const seen = new Set<string>();
  for (const { row, where } of log.rows) {
    const rec = row as unknown as SampleRecord;
    if (typeof rec.problem_id !== 'string' || !Number.isInteger(rec.sample))
      throw new Error(`${where}: corrupt sample record (not a sample record); ${hint}`);
    const key = `${rec.problem_id}\u0000${rec.sample}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(rec);
  }
  repairJsonlLog(path, log);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The run

export interface EvalHooks {
  log?(msg: string): void;
  onProgress?(p: { done: number; total: number; newTokens: number }): void;
}

export const DEFAULT_CODE_LIMITS: SandboxLimits = { wallMs: 10_000, cpuSeconds: 5, memoryMb: 1024 };

/** Per-test sandbox limits for the `code` task: the given ones over DEFAULT_CODE_LIMITS. */
export function codeLimits(o: {
  wallSeconds?: number | undefined;
  cpuSeconds?: number | undefined;
  memoryMb?: number | undefined;
}): SandboxLimits {
  const check = (v: number | undefined, what: string) => {
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new Error(`${what} must be a positive number, got ${v}`);
  };
  check(o.wallSeconds, 'code wall-clock limit (seconds)');
  check(o.cpuSeconds, 'code CPU limit (seconds)');
  check(o.memoryMb, 'code memory limit (MiB)');
  return {
    wallMs: o.wallSeconds !== undefined ? Math.round(o.wallSeconds * 1000) : DEFAULT_CODE_LIMITS.wallMs,
    cpuSeconds: o.cpuSeconds ?? DEFAULT_CODE_LIMITS.cpuSeconds,
    memoryMb: o.memoryMb ?? DEFAULT_CODE_LIMITS.memoryMb,
  };
}

/**
 * The grader `rac trace` applies to a trace when its prompt has an answer: the same as this
 * module's for math and tiny answers (null for code rows, graded by tests in a sandbox at eval time).
 */
export function traceGrader(task: EvalTask): ((text: string, answer: string) => boolean) | null {
  if (task === 'tiny') return (text, answer) => gradeTiny(text, answer).correct;
  if (task === 'math') return (text, answer) => gradeMath(text, answer).correct;
  if (task === 'choice') return (text, answer) => gradeChoice(text, answer).correct;
  return null;
}

async function grade(
  task: EvalTask,
  grader: string,
  p: EvalProblem,
  text: string,
  limits: SandboxLimits,
): Promise<Pick<SampleRecord, 'correct' | 'extracted' | 'tests_passed' | 'tests_total'>> {
  // A tiny row with tests (the code family) is graded as the code task grades it.
  if (task === 'tiny' && p.tests === null) return gradeTiny(text, p.answer!);
  if (task === 'math') return gradeMath(text, p.answer!, { grader: grader as MathGrader });
  if (task === 'choice') return gradeChoice(text, p.answer!);
  const prog = extractProgram(text);
  const tests = p.tests!;
  const r = await runTests(prog, tests, limits, task === 'code' ? { grader: grader as CodeGrader } : {});
  return {
    correct: r.passed,
    extracted: prog ? prog.code : null,
    tests_passed: r.results.filter((t) => t.status === 'ok').length,
    tests_total: tests.length,
  };
}

/**
 * Runs (or resumes) an evaluation and writes `cfg.out`. The tokenizer renders prompts and counts
 * think tokens; the backend generates.
 */
export async function runEval(cfg: EvalConfig, backend: GenerationBackend, tok: RacTokenizer, hooks: EvalHooks = {}): Promise<EvalResults> {
  // One writer per output: the sample log is appended, a second process would double it.
  const lock = lockOutput(resolve(cfg.out), 'evaluation output');
  try {
    return await runEvalLocked(cfg, backend, tok, hooks);
  } finally {
    lock.release();
  }
}

async function runEvalLocked(cfg: EvalConfig, backend: GenerationBackend, tok: RacTokenizer, hooks: EvalHooks): Promise<EvalResults> {
  if (!Number.isInteger(cfg.samples) || cfg.samples < 1) throw new Error(`samples must be ≥ 1, got ${cfg.samples}`);
  const out = resolve(cfg.out);
  const grader = graderFor(cfg.task, cfg.grader);
  if (cfg.benchmark && benchmark(cfg.benchmark).task !== cfg.task)
    throw new Error(`benchmark ${cfg.benchmark} is a ${benchmark(cfg.benchmark).task} task, not ${cfg.task}`);
  const loaded = await loadEvalProblems(cfg.dataset, cfg.task, cfg.columns ?? {}, cfg.limit, cfg.benchmark);
  if (loaded.skipped) hooks.log?.(`${loaded.skipped} call-based problems left out (rac runs stdin/stdout programs)`);
  const { columns, problems, sha256: sha, file: datasetFile, hub: datasetHub } = loaded;
  if (problems.length === 0) throw new Error(`${datasetFile}: no problems`);
  const K = cfg.samples;
  const s = cfg.sampling;
  const sampling: SamplingSettings = {
    temperature: s.temperature,
    topP: s.topP,
    topK: s.topK,
    maxNewTokens: s.maxNewTokens,
    seed: s.seed,
    ...(s.stopStrings?.length ? { stopStrings: s.stopStrings } : {}),
  };
  const limits = cfg.codeLimits ?? DEFAULT_CODE_LIMITS;

  // The manifest: everything that decides a sample's text or grade. --limit and the batch size
  // may change between runs (records are keyed by problem id and sample number).
  const manifest = {
    rac_eval_manifest: 1,
    model_fingerprint: backend.fingerprint,
    backend: backend.name,
    task: cfg.task,
    grader,
    benchmark: cfg.benchmark ?? null,
    dataset_sha256: sha,
    columns,
    system: cfg.system ?? null,
    template_extra: cfg.templateExtra ?? null,
    samples: K,
    sampling: {
      temperature: sampling.temperature,
      top_p: sampling.topP,
      top_k: sampling.topK,
      max_new_tokens: sampling.maxNewTokens,
      seed: sampling.seed,
      stop: sampling.stopStrings ?? [],
    },
    ...(cfg.task === 'code' ? { code_limits: limits } : {}),
  };
  const mPath = manifestPath(out);
  const sPath = samplesPath(out);
  const resuming = existsSync(mPath);
  if (resuming) {
    const old = JSON.parse(readFileSync(mPath, 'utf8')) as Record<string, unknown>;
    const diff = settingsDiff(old, manifest, { depth: 1 }); // top-level keys name what differs
    if (diff.length) {
      throw new Error(
        `${mPath}: settings differ from the interrupted run (${diff.join(', ')}); use another --out or delete ${basename(sPath)} and ${basename(mPath)}`,
      );
    }
  } else if (existsSync(sPath)) throw new Error(`${sPath} exists without a manifest; delete it or use another --out`);

  const records = resuming ? readSampleLog(sPath) : [];
  const done = new Set(records.map((r) => `${r.problem_id}\u0000${r.sample}`));
  const todo = problems.filter((p) => Array.from({ length: K }, (_, i) => i).some((i) => !done.has(`${p.id}\u0000${i}`)));
  // Every prompt is rendered (and checked against the context) before any output exists: a
  // prompt that cannot fit is refused naming its file and row, and leaves no files behind.
  const requests: BackendRequest[] = todo.map((p) => {
    try {
      const r = renderEvalPrompt(tok, p, cfg.system, cfg.templateExtra, backend.contextLength);
      return { index: p.index, prompt: r.ids, promptText: r.text, n: K };
    } catch (e) {
      if (e instanceof PromptLengthError)
        throw new PromptLengthError(`${datasetFile}: row ${p.index} (id ${JSON.stringify(p.id)}): ${e.message}`);
      throw e;
    }
  });
  if (!resuming) writeFileAtomic(mPath, JSON.stringify(manifest, null, 2) + '\n');
  const selected = new Set(problems.map((p) => p.id));
  const already = records.filter((r) => selected.has(r.problem_id)).length;
  if (already > 0) hooks.log?.(`resuming: ${already} of ${problems.length * K} samples already in ${basename(sPath)}`);

  const run = `${Date.now().toString(36)}-${process.pid}`;
  const t0 = performance.now();
  const byIndex = new Map(problems.map((p) => [p.index, p]));
  if (todo.length > 0) {
    const log = new JsonlAppender(sPath);
    try {
      await backend.generate(requests, sampling, {
        onProgress: hooks.onProgress,
        onResult: async (req: BackendRequest, completions: BackendCompletion[]) => {
          const p = byIndex.get(req.index)!;
          const lines: SampleRecord[] = [];
          for (let i = 0; i < completions.length; i++) {
            const key = `${p.id}\u0000${i}`;
            if (done.has(key)) continue;
            const c = completions[i]!;
            const g = await grade(cfg.task, grader, p, c.text, limits);
            const span = thinkSpan(c.text);
            const hasThink = span.closed || c.text.includes('<think>');
            const rec: SampleRecord = {
              problem_id: p.id,
              index: p.index,
              sample: i,
              family: p.family,
              ...g,
              tokens: c.ids.length,
              think_tokens: hasThink && span.thinkText.length ? tok.encode(span.thinkText, { addSpecialTokens: false }).length : 0,
              closed_think: span.closed,
              finish_reason: c.finishReason,
              hesitations: countHesitations(c.text),
              text: c.text,
              run,
              elapsed: (performance.now() - t0) / 1000,
            };
            lines.push(rec);
            records.push(rec);
            done.add(key);
          }
          if (lines.length) {
            log.append(lines);
            log.sync();
          }
        },
      });
    } finally {
      log.close();
    }
  }
  const seconds = (performance.now() - t0) / 1000;

  const mine = records.filter((r) => selected.has(r.problem_id) && r.sample < K);
  mine.sort((a, b) => a.index - b.index || a.sample - b.sample);
  const missing = problems.length * K - mine.length;
  if (missing !== 0) throw new Error(`internal: ${missing} samples missing after generation`);
  const { metrics, perFamily } = computeMetrics(mine, K, wallSeconds(mine, { run, seconds }));
  const modelDir = existsSync(cfg.model) ? resolve(cfg.model) : cfg.model;
  let vsDense: EvalResults['vs_dense'];
  if (cfg.dense !== undefined) {
    const file = resolve(cfg.dense);
    let dense: unknown;
    try {
      dense = JSON.parse(readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`${file}: cannot read the dense results (${(e as Error).message})`);
    }
    const ds = lengthSamplesOf(dense);
    if (!ds) throw new Error(`${file}: not a results.json with samples (rac eval's output)`);
    if ((dense as EvalResults).dataset?.sha256 !== sha)
      throw new Error(`${file}: the dense results are of another dataset (sha256 differs); length ratios need the same problems`);
    const v = lengthVsDense(mine, ds);
    if (!v) throw new Error(`${file}: no problem in common with this evaluation`);
    vsDense = { dense: file, ...v };
  }
  const pruning = existsSync(cfg.model) ? readPruningInfo(modelDir) : null;
  const modelHub = existsSync(cfg.model) ? hubSourceOf(modelDir) : null;
  const results: EvalResults = {
    rac_eval: 1,
    created: new Date().toISOString(),
    model: {
      dir: modelDir,
      fingerprint: backend.fingerprint,
      backend: backend.name,
      ...(modelHub ? { hub: modelHub } : {}),
      ...(pruning ? { pruning } : {}),
    },
    task: cfg.task,
    grader,
    benchmark: cfg.benchmark ?? null,
    dataset: {
      file: datasetFile,
      sha256: sha,
      problems: problems.length,
      columns,
      system: cfg.system ?? null,
      ...(datasetHub ? { hub: datasetHub } : {}),
    },
    sampling: { samples: K, ...manifest.sampling },
    metrics,
    ...(perFamily ? { per_family: perFamily } : {}),
    ...(vsDense ? { vs_dense: vsDense } : {}),
    samples: mine.map((r) => ({
      problem_id: r.problem_id,
      sample: r.sample,
      family: r.family,
      correct: r.correct,
      extracted: r.extracted,
      tokens: r.tokens,
      think_tokens: r.think_tokens,
      closed_think: r.closed_think,
      finish_reason: r.finish_reason,
      ...(r.tests_total !== undefined ? { tests_passed: r.tests_passed, tests_total: r.tests_total } : {}),
      text: r.text,
    })),
  };
  writeFileAtomic(out, JSON.stringify(results, null, 2) + '\n');
  return results;
}
