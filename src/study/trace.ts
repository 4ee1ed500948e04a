/**
 * On-policy traces: the dense model samples its own completions for dataset prompts; one JSONL
 * record per completion, in the row layout of the SGLang RAC example (`input_ids`,
 * `num_prompt_tokens`, `num_decode_tokens`) plus rac's fields (prompt id, prompt/completion ids,
 * text, finish reason, sampling settings, model fingerprint).
 *
 * Durability and resume (the file may be killed at any byte, kill -9 included):
 * - every record is appended with ONE write of `JSON + '\n'`; the file is fsynced every
 *   `fsyncEvery` records and at the end of each wave (before the manifest is rewritten);
 * - the manifest (`OUT.manifest.json`) is rewritten atomically (temp file, fsync, rename);
 * - on start an existing file is read back: a torn last line (no trailing '\n') is truncated away,
 *   the (prompt_id, sample) pairs present are skipped, and generation resumes. Sample i of the
 *   prompt at dataset index r uses PRNG stream r·n + i, so a resumed run writes the records an
 *   uninterrupted run would have written.
 * - the settings that decide a record's content (model, dataset bytes, columns, system prompt,
 *   template flags, n, sampling) must equal the manifest's; the token budget, the row limit and
 *   the batch size may change between runs (raising the budget extends a finished run).
 *
 * The budget: once the prompt+completion tokens of the written records reach it, no new prompt is
 * submitted; requests already in flight (one wave) are finished and written.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { BackendCompletion, BackendRequest, GenerationBackend, SamplingSettings } from '../backends/backend.ts';
import { streamOf } from '../backends/backend.ts';
import type { HubSource } from '../io/hub.ts';
import type { RenderedPrompt } from '../io/datasets.ts';
import { PromptLengthError } from '../io/prompt-bounds.ts';
import { writeFileAtomic } from '../io/atomic.ts';
import { lockOutput } from '../io/lock.ts';
import { JsonlAppender, readJsonlLog, repairJsonlLog } from '../io/jsonl.ts';
import { settingsDiff, type SettingsDiffOptions } from './settings.ts';
import { RacError } from '../errors.ts';

export class TraceError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'TraceError';
  }
}

/** Everything that decides the content of a record (compared on resume). */
export interface TraceSettings {
  dataset: { sha256: string; prompt_column: string; id_column: string | null };
  system: string | null;
  template_flags: Record<string, unknown>;
  n: number;
  max_new_tokens: number;
  temperature: number;
  top_p: number;
  top_k: number;
  seed: number;
  stop: string[];
  /** Grade each trace that has an answer with this task's grader (recorded as `correct`); absent = no grading. */
  grade?: 'math' | 'tiny';
}

export interface TraceRecord {
  prompt_id: string;
  prompt_index: number;
  sample: number;
  prompt_ids: number[];
  completion_ids: number[];
  text: string;
  finish_reason: string;
  sampling: {
    temperature: number;
    top_p: number;
    top_k: number;
    max_new_tokens: number;
    seed: number;
    n: number;
    stream: number;
    stop?: string[];
  };
  model: string;
  input_ids: number[];
  num_prompt_tokens: number;
  num_decode_tokens: number;
  answer?: string;
  /** The completion graded against `answer` (`grade` settings: the grader of `rac eval --task`). */
  correct?: boolean;
}

export interface TracePrompt {
  /** Unique id (the dataset's id column, else the row index). */
  id: string;
  /** Stable position in the dataset: seeds the PRNG streams. */
  index: number;
  answer?: string;
  /**
   * The chat-templated prompt, called once per prompt before any output is written;
   * `contextLength` (the backend's, when known) bounds it (RenderOptions.contextLength).
   */
  render(contextLength?: number): RenderedPrompt;
}

export interface TraceProgress {
  records: number;
  promptTokens: number;
  decodeTokens: number;
  /** Tokens generated in this session, and its wall time. */
  sessionDecodeTokens: number;
  seconds: number;
  tokenBudget: number;
  /** Estimated tokens when the run ends (min of the budget and the dataset's estimate). */
  targetTokens: number;
}

export interface TraceOptions {
  out: string;
  backend: GenerationBackend;
  prompts: TracePrompt[];
  settings: TraceSettings;
  /** Stop submitting prompts once written prompt+completion tokens reach this (0 = no limit). */
  tokenBudget: number;
  /** Sequences (prompts × n) submitted to the backend per wave. */
  batchSize: number;
  /** fsync after this many records (default 32); also at the end of every wave. */
  fsyncEvery?: number;
  /** Recorded in the manifest (hub: the Hugging Face dataset and commit the rows came from). */
  dataset?: { file: string; rows: number; hub?: HubSource };
  /** The Hugging Face model and commit the backend runs, recorded in the manifest. */
  modelHub?: HubSource;
  version?: string;
  onProgress?(p: TraceProgress): void;
  /** Called after each record is written (tests). */
  onRecord?(r: TraceRecord): void;
  /** The grader of `settings.grade` (traceGrader in eval.ts): required when it is set. */
  grader?: (text: string, answer: string) => boolean;
}

export interface TraceManifest {
  format: 'rac-traces/1';
  rac_version?: string;
  traces: string;
  settings: TraceSettings;
  model: string;
  /** The Hugging Face id, revision and commit of the model, when it came from the hub cache. */
  model_hub?: HubSource;
  backend: string;
  token_budget: number;
  batch_size: number;
  dataset?: { file: string; rows: number; hub?: HubSource };
  counts: { records: number; prompts: number; complete_prompts: number; finish: Record<string, number> };
  tokens: { prompt: number; decode: number; total: number };
  decode_share: number;
  status: 'running' | 'budget' | 'dataset';
  created: string;
  updated: string;
}

/** Template flags are free-form: compared whole. */
const TRACE_DIFF: SettingsDiffOptions = { leaves: ['template_flags'] };

export function manifestPath(out: string): string {
  return `${resolve(out)}.manifest.json`;
}

export interface ReadTraces {
  records: TraceRecord[];
  /** Bytes of complete lines. */
  validBytes: number;
  /** Bytes after the last newline (a torn last line), 0 when none. */
  tornBytes: number;
}

/**
 * Read a traces file. A torn last line (bytes after the last '\n') is reported, not parsed; a
 * complete line that is not a JSON object is an error naming the line.
 */
export function readTraceFile(path: string): ReadTraces {
  const log = readJsonlLog(resolve(path), { error: (m) => new TraceError(m) });
  return { records: log.rows.map((r) => r.row as unknown as TraceRecord), validBytes: log.validBytes, tornBytes: log.tornBytes };
}

function samplingOf(s: TraceSettings, stream: number): TraceRecord['sampling'] {
  return {
    temperature: s.temperature,
    top_p: s.top_p,
    top_k: s.top_k,
    max_new_tokens: s.max_new_tokens,
    seed: s.seed,
    n: s.n,
    stream,
    ...(s.stop.length ? { stop: s.stop } : {}),
  };
}

/**
 * Generate traces into `opts.out`, resuming what is there. Returns the final manifest. Holds the
 * output's lock (`<out>.lock`) throughout: a second writer on the same --out is refused.
 */
export async function runTrace(opts: TraceOptions): Promise<TraceManifest> {
  const lock = lockOutput(resolve(opts.out), 'traces');
  try {
    return await runTraceLocked(opts);
  } finally {
    lock.release();
  }
}

async function runTraceLocked(opts: TraceOptions): Promise<TraceManifest> {
  const out = resolve(opts.out);
  const mpath = manifestPath(out);
  const s = opts.settings;
  const model = opts.backend.fingerprint;
  if (!Number.isInteger(s.n) || s.n < 1) throw new TraceError(`n must be a positive integer, got ${s.n}`);
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1)
    throw new TraceError(`batch size must be a positive integer, got ${opts.batchSize}`);
  if (!Number.isInteger(opts.tokenBudget) || opts.tokenBudget < 0)
    throw new TraceError(`token budget must be an integer ≥ 0, got ${opts.tokenBudget}`);
  const fsyncEvery = opts.fsyncEvery ?? 32;
  if (s.grade && !opts.grader) throw new TraceError(`settings.grade is ${s.grade} but no grader was given`);
  const grader = s.grade ? opts.grader : undefined;
  const ids = new Set<string>();
  for (const p of opts.prompts) {
    if (ids.has(p.id)) throw new TraceError(`duplicate prompt id "${p.id}"`);
    ids.add(p.id);
  }

  // ---- the previous run, if any
  let created = new Date().toISOString();
  let prev: TraceManifest | null = null;
  if (existsSync(mpath)) {
    try {
      prev = JSON.parse(readFileSync(mpath, 'utf8')) as TraceManifest;
    } catch (e) {
      throw new TraceError(`${mpath}: unreadable manifest (${(e as Error).message}); move it away to start over`);
    }
    const diff = settingsDiff(prev.settings, s, TRACE_DIFF);
    if (prev.model !== model) diff.unshift('model');
    if (diff.length) {
      const show = (o: unknown, k: string) =>
        JSON.stringify(
          k === 'model'
            ? (o as TraceManifest).model
            : k.split('.').reduce<unknown>((x, p) => (x as Record<string, unknown> | undefined)?.[p], (o as TraceManifest).settings),
        );
      throw new TraceError(
        `${out} was made with different settings; resume needs the same ones, or choose another --out. Differences: ` +
          diff.map((k) => `${k}: was ${show(prev, k)}, now ${show({ settings: s, model }, k)}`).join('; '),
      );
    }
    created = prev.created ?? created;
  }
  const done = new Map<string, Set<number>>();
  let promptTokens = 0;
  let decodeTokens = 0;
  let records = 0;
  const finish: Record<string, number> = {};
  const count = (r: TraceRecord) => {
    let set = done.get(r.prompt_id);
    if (!set) done.set(r.prompt_id, (set = new Set()));
    set.add(r.sample);
    promptTokens += r.num_prompt_tokens;
    decodeTokens += r.num_decode_tokens;
    records++;
    finish[r.finish_reason] = (finish[r.finish_reason] ?? 0) + 1;
  };
  if (existsSync(out)) {
    const got = readTraceFile(out);
    // A write cut short by a crash: drop the partial line (its record is regenerated).
    repairJsonlLog(out, got);
    got.records.forEach((r, i) => {
      const where = `${out}: record ${i + 1}`;
      if (typeof r.prompt_id !== 'string' || !Number.isInteger(r.sample) || !Array.isArray(r.input_ids))
        throw new TraceError(`${where}: not a rac trace record (prompt_id, sample, input_ids)`);
      if (r.model !== model) throw new TraceError(`${where}: made by model ${r.model}, this model is ${model}; use another --out`);
      if (!prev) {
        const d = settingsDiff(r.sampling, samplingOf(s, r.sampling?.stream), TRACE_DIFF);
        if (d.length)
          throw new TraceError(`${where}: sampled with other settings (${d.join(', ')}) and ${mpath} is missing; use another --out`);
      }
      if (done.get(r.prompt_id)?.has(r.sample)) throw new TraceError(`${where}: duplicate (prompt_id ${r.prompt_id}, sample ${r.sample})`);
      count(r);
    });
  }

  const budget = opts.tokenBudget > 0 ? opts.tokenBudget : Infinity;
  const manifest = (status: TraceManifest['status']): TraceManifest => {
    const total = promptTokens + decodeTokens;
    let complete = 0;
    for (const set of done.values()) if (set.size >= s.n) complete++;
    return {
      format: 'rac-traces/1',
      ...(opts.version ? { rac_version: opts.version } : {}),
      traces: out,
      settings: s,
      model,
      ...(opts.modelHub ? { model_hub: opts.modelHub } : {}),
      backend: opts.backend.name,
      token_budget: opts.tokenBudget,
      batch_size: opts.batchSize,
      ...(opts.dataset ? { dataset: opts.dataset } : {}),
      counts: { records, prompts: done.size, complete_prompts: complete, finish: { ...finish } },
      tokens: { prompt: promptTokens, decode: decodeTokens, total },
      decode_share: total > 0 ? decodeTokens / total : 0,
      status,
      created,
      updated: new Date().toISOString(),
    };
  };
  // ---- what is left, in dataset order, rendered before any output is written: a prompt that is
  // empty or cannot fit the context is refused naming its row, leaving no files behind.
  const todo = opts.prompts.filter((p) => (done.get(p.id)?.size ?? 0) < s.n);
  const where = (p: TracePrompt) => `${opts.dataset ? `${opts.dataset.file}: ` : ''}row ${p.index} (id ${JSON.stringify(p.id)})`;
  const rendered = new Map<string, RenderedPrompt>();
  for (const p of todo) {
    let r: RenderedPrompt;
    try {
      r = p.render(opts.backend.contextLength);
    } catch (e) {
      if (e instanceof PromptLengthError) throw new TraceError(`${where(p)}: ${e.message}`);
      throw e;
    }
    if (r.ids.length === 0) throw new TraceError(`${where(p)}: the prompt is empty after tokenization`);
    rendered.set(p.id, r);
  }

  // Temp manifests of runs killed while writing one are stale.
  const tmpPrefix = `.${basename(mpath)}.tmp-`;
  for (const f of readdirSync(dirname(mpath))) if (f.startsWith(tmpPrefix)) rmSync(join(dirname(mpath), f), { force: true });
  writeFileAtomic(mpath, JSON.stringify(manifest('running'), null, 2) + '\n');

  const log = new JsonlAppender(out);
  let sinceSync = 0;
  const t0 = performance.now();
  let sessionDecode = 0;
  const avgRecordTokens = () => (records > 0 ? (promptTokens + decodeTokens) / records : 0);
  const progress = () => {
    if (!opts.onProgress) return;
    const total = promptTokens + decodeTokens;
    const left = todo.length - submitted;
    const estimate = total + left * s.n * avgRecordTokens() + inFlightEstimate;
    opts.onProgress({
      records,
      promptTokens,
      decodeTokens,
      sessionDecodeTokens: sessionDecode,
      seconds: (performance.now() - t0) / 1000,
      tokenBudget: opts.tokenBudget,
      targetTokens: Math.min(budget, estimate),
    });
  };
  let submitted = 0;
  let inFlightEstimate = 0;
  const sampling: SamplingSettings = {
    temperature: s.temperature,
    topP: s.top_p,
    topK: s.top_k,
    maxNewTokens: s.max_new_tokens,
    seed: s.seed,
    ...(s.stop.length ? { stopStrings: s.stop } : {}),
  };
  const perWave = Math.max(1, Math.floor(opts.batchSize / s.n));
  let status: TraceManifest['status'] = 'dataset';
  try {
    while (submitted < todo.length) {
      if (promptTokens + decodeTokens >= budget) {
        status = 'budget';
        break;
      }
      const wave = todo.slice(submitted, submitted + perWave);
      submitted += wave.length;
      const byIndex = new Map<number, { p: TracePrompt; r: RenderedPrompt }>();
      const requests: BackendRequest[] = wave.map((p) => {
        const r = rendered.get(p.id)!;
        byIndex.set(p.index, { p, r });
        return { index: p.index, prompt: r.ids, promptText: r.text, n: s.n };
      });
      inFlightEstimate = wave.length * s.n * avgRecordTokens();
      await opts.backend.generate(requests, sampling, {
        onResult: (req: BackendRequest, completions: BackendCompletion[]) => {
          const { p, r } = byIndex.get(req.index)!;
          const have = done.get(p.id);
          completions.forEach((c, i) => {
            if (have?.has(i)) return; // written before a crash
            const rec: TraceRecord = {
              prompt_id: p.id,
              prompt_index: p.index,
              sample: i,
              prompt_ids: r.ids,
              completion_ids: c.ids,
              text: c.text,
              finish_reason: c.finishReason,
              sampling: samplingOf(s, streamOf(p.index, s.n, i)),
              model,
              input_ids: [...r.ids, ...c.ids],
              num_prompt_tokens: r.ids.length,
              num_decode_tokens: c.ids.length,
              ...(p.answer !== undefined ? { answer: p.answer } : {}),
              ...(grader && p.answer !== undefined ? { correct: grader(c.text, p.answer) } : {}),
            };
            log.append([rec]);
            count(rec);
            sessionDecode += c.ids.length;
            inFlightEstimate = Math.max(0, inFlightEstimate - rec.input_ids.length);
            if (++sinceSync >= fsyncEvery) {
              log.sync();
              sinceSync = 0;
            }
            opts.onRecord?.(rec);
          });
          progress();
        },
        onProgress: () => {},
      });
      inFlightEstimate = 0;
      log.sync();
      sinceSync = 0;
      writeFileAtomic(mpath, JSON.stringify(manifest('running'), null, 2) + '\n');
      progress();
    }
    if (submitted >= todo.length && promptTokens + decodeTokens >= budget) status = 'budget';
  } finally {
    log.close();
  }
  const m = manifest(status);
  writeFileAtomic(mpath, JSON.stringify(m, null, 2) + '\n');
  return m;
}
