/**
 * Calibration modes: the CalibSet the pruner reads, built from a dataset, a traces file or text.
 *
 *   prompt  chat-templated prompts only (what prompt-only calibration sees). Prompts are short, so
 *           more prompts are drawn, in dataset order, until the token budget is filled — never
 *           cycled: a dataset that runs out is reported in `source` (exhausted) and used as is.
 *   rac     prompt + completion token ids from a traces file (the model's own chain of thought):
 *           rac's records or SGLang RAC rows; `input_ids` when present, else
 *           prompt_ids + completion_ids. The decode share of the kept tokens is recorded.
 *
 * Position classes (for per-token weights, PruneOptions.tokenWeights): `prompt` and `rac`
 * sequences carry a class per token — prompt tokens; thinking tokens (the completion up to and
 * including the first `</think>`, found by the tokenizer's `</think>` id or its token sequence;
 * a completion without it is all thinking: a chain of thought cut at the length limit); answer
 * tokens (after it). Packing separators are answer tokens (they end the previous document).
 * `text` sequences are unclassified.
 *   text    plain text files (.txt/.md: one document each) or JSONL files with a text field (one
 *           document per row), tokenized and chunked to max_seq_len (generic, C4-like data).
 *   mix     a weighted mix: `{ rac: 0.75, text: 0.25 }` are shares of the token budget, plus an
 *           optional per-source sequence weight (rows scaled by √w before XᵀX).
 *
 * Every mode is cut to exactly the token budget when there is enough data, so modes compared at
 * one budget see the same number of tokens. Sequences longer than max_seq_len are truncated
 * (default) or split into chunks; with `pack`, consecutive documents (of one weight) are
 * concatenated — separated by the eos token — and cut into max_seq_len chunks, so no sequence is
 * short. Padding never enters the statistics either way (the pruner masks it).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { CalibError, validateLimits, type CalibSequence, type CalibSet } from './calib.ts';
import { loadDataset, renderPrompt, rowLabel, type LoadDatasetOptions } from '../io/datasets.ts';
import { decodeUtf8, jsonlObjects, jsonlObjectsFromBytes } from '../io/jsonl.ts';
import type { RacTokenizer } from '../io/tokenizer.ts';
import { selectTraces, type TraceSelection } from './select.ts';
import { CLASS_ANSWER, CLASS_PROMPT, CLASS_THINK, classCounts } from '../compress/hessian.ts';

export const CALIB_MODES = ['prompt', 'rac', 'text', 'mix'] as const;
export type CalibMode = (typeof CALIB_MODES)[number];
export type SourceMode = Exclude<CalibMode, 'mix'>;

export interface CalibShape {
  /** Tokens kept in total (0 = everything available; `mix` needs a budget). */
  tokenBudget: number;
  maxSeqLen: number;
  overflow?: 'truncate' | 'split';
  /** Concatenate documents (eos-separated) and cut into max_seq_len chunks. */
  pack?: boolean;
}

export interface DatasetSource extends Pick<LoadDatasetOptions, 'promptColumn' | 'idColumn' | 'limit'> {
  /** A dataset file, or the shards of one split. */
  path: string | readonly string[];
  system?: string;
  templateFlags?: Record<string, unknown>;
}

export interface CalibModeInputs {
  /** For `prompt`. */
  dataset?: DatasetSource;
  /** For `rac`: one or more traces files, read in order. */
  traces?: string[];
  /** For `text`: .txt/.md files (a document each) or .jsonl/.json files (a document per row). */
  textFiles?: string[];
  /** The JSONL field holding the text (default `text`). */
  textField?: string;
  /** For `mix`: token shares per source (normalized to sum 1). */
  mix?: Partial<Record<SourceMode, number>>;
  /** Per-source sequence weights (default 1). */
  weights?: Partial<Record<SourceMode, number>>;
  /** Trace selection, applied to every traces file before the budget. */
  select?: TraceSelection | null;
  /**
   * For `rac`: several trace sets, each with its share of the budget (largest remainder) and the
   * name of the model that produced it (`dense`, `pruned pass 1`, …), recorded per set with its
   * tokens. Replaces `traces` when given.
   */
  traceSets?: TraceSet[];
}

export interface TraceSet {
  producer: string;
  files: string[];
  share: number;
}

export interface CalibModeContext {
  tokenizer: RacTokenizer | null;
  vocabSize: number;
}

/** One tokenized document: ids and which of them are prompt tokens. */
interface Doc {
  ids: number[];
  /** Leading prompt tokens (prompt-only docs: all; text: 0). */
  promptLen: number;
  /** Per-token position classes (prompt / rac docs); absent for text. */
  classes?: Uint8Array;
  weight: number;
}

interface Piece {
  ids: number[];
  prompt: number;
  classes?: Uint8Array;
  weight: number;
}

/** Position classes of a prompt + completion: prompt, thinking through the first `</think>` (all of it when none), answer. */
export function positionClasses(ids: readonly number[], promptLen: number, thinkEnd: readonly number[] | null): Uint8Array {
  const c = new Uint8Array(ids.length).fill(CLASS_THINK);
  c.fill(CLASS_PROMPT, 0, promptLen);
  const end = thinkEnd && thinkEnd.length > 0 ? findSeq(ids, thinkEnd, promptLen) : -1;
  if (end >= 0) c.fill(CLASS_ANSWER, end + thinkEnd!.length);
  return c;
}

function findSeq(ids: readonly number[], pat: readonly number[], from: number): number {
  outer: for (let i = from; i + pat.length <= ids.length; i++) {
    for (let k = 0; k < pat.length; k++) if (ids[i + k] !== pat[k]) continue outer;
    return i;
  }
  return -1;
}

/** The token ids of `</think>`: its own id when the vocabulary has one, else how it encodes (null without a tokenizer). */
export function thinkEndIds(tok: RacTokenizer | null): number[] | null {
  if (!tok) return null;
  const id = tok.tokenToId('</think>');
  if (id !== undefined) return [id];
  const ids = tok.encode('</think>', { addSpecialTokens: false });
  return ids.length > 0 ? ids : null;
}

interface Component {
  mode: SourceMode;
  sequences: CalibSequence[];
  tokens: number;
  promptTokens: number;
  source: Record<string, unknown>;
}

function fileHash(path: string, what: string): { file: string; sha256: string; bytes: Buffer } {
  const file = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CalibError(`${file}: ${code === 'ENOENT' ? `${what} not found` : `cannot read (${code})`}`);
  }
  return { file, sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
}

function checkIds(ids: unknown, vocabSize: number, where: string, field: string): number[] {
  if (!Array.isArray(ids)) throw new CalibError(`${where}: "${field}" must be an array of token ids`);
  for (const x of ids) {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= vocabSize)
      throw new CalibError(`${where}: "${field}": token id ${JSON.stringify(x)} is not an integer in [0, ${vocabSize})`);
  }
  return ids as number[];
}

/**
 * Shape documents into sequences under the limits, in order, stopping at the budget (the last
 * sequence cut to fit exactly). Returns the pieces and whether the documents ran out first.
 */
function shape(
  docs: Iterable<Doc>,
  l: CalibShape,
  sep: number | undefined,
): { pieces: Piece[]; tokens: number; promptTokens: number; exhausted: boolean; docsUsed: number } {
  const budget = l.tokenBudget > 0 ? l.tokenBudget : Infinity;
  const pieces: Piece[] = [];
  let tokens = 0;
  let promptTokens = 0;
  let docsUsed = 0;
  const emit = (ids: number[], prompt: number, weight: number, classes: Uint8Array | undefined): boolean => {
    const take = Math.min(ids.length, budget - tokens);
    if (take <= 0) return false;
    const p: Piece = take < ids.length ? { ids: ids.slice(0, take), prompt: Math.min(prompt, take), weight } : { ids, prompt, weight };
    if (classes) p.classes = classes.length === p.ids.length ? classes : classes.slice(0, p.ids.length);
    pieces.push(p);
    tokens += p.ids.length;
    promptTokens += p.prompt;
    return tokens < budget;
  };
  // packing state
  let buf: number[] = [];
  let bufClasses: number[] = [];
  let bufClassed = true; // every document packed into buf has classes
  let bufPrompt = 0;
  let bufWeight = 1;
  const flush = (): boolean => {
    if (buf.length === 0) return true;
    const ok = emit(buf, bufPrompt, bufWeight, bufClassed ? Uint8Array.from(bufClasses) : undefined);
    buf = [];
    bufClasses = [];
    bufClassed = true;
    bufPrompt = 0;
    return ok;
  };
  for (const d of docs) {
    if (tokens >= budget) return { pieces, tokens, promptTokens, exhausted: false, docsUsed };
    if (d.ids.length === 0) continue;
    docsUsed++;
    if (!l.pack) {
      if (d.ids.length <= l.maxSeqLen || l.overflow !== 'split') {
        const ids = d.ids.slice(0, l.maxSeqLen);
        if (!emit(ids, Math.min(d.promptLen, ids.length), d.weight, d.classes?.subarray(0, ids.length)))
          return { pieces, tokens, promptTokens, exhausted: false, docsUsed };
      } else {
        for (let i = 0; i < d.ids.length; i += l.maxSeqLen) {
          const ids = d.ids.slice(i, i + l.maxSeqLen);
          const prompt = Math.max(0, Math.min(d.promptLen - i, ids.length));
          if (!emit(ids, prompt, d.weight, d.classes?.slice(i, i + ids.length)))
            return { pieces, tokens, promptTokens, exhausted: false, docsUsed };
        }
      }
      continue;
    }
    // pack: documents of one weight share sequences; a weight change starts a new sequence
    if (buf.length > 0 && d.weight !== bufWeight && !flush()) return { pieces, tokens, promptTokens, exhausted: false, docsUsed };
    bufWeight = d.weight;
    const ids = sep !== undefined && buf.length > 0 ? [sep, ...d.ids] : d.ids;
    const promptStart = ids.length - d.ids.length; // the separator is not prompt
    const cls = d.classes ? (promptStart > 0 ? [CLASS_ANSWER, ...d.classes] : d.classes) : null;
    for (let i = 0; i < ids.length; ) {
      const take = Math.min(l.maxSeqLen - buf.length, ids.length - i);
      const lo = Math.max(i, promptStart);
      const hi = Math.min(i + take, promptStart + d.promptLen);
      bufPrompt += Math.max(0, hi - lo);
      for (let k = i; k < i + take; k++) buf.push(ids[k]!);
      if (cls) for (let k = i; k < i + take; k++) bufClasses.push(cls[k]!);
      else bufClassed = false;
      i += take;
      if (buf.length >= l.maxSeqLen && !flush()) return { pieces, tokens, promptTokens, exhausted: false, docsUsed };
    }
  }
  flush();
  return { pieces, tokens, promptTokens, exhausted: tokens < budget, docsUsed };
}

function finishComponent(mode: SourceMode, r: ReturnType<typeof shape>, source: Record<string, unknown>, l: CalibShape): Component {
  if (r.tokens === 0) throw new CalibError(`${mode} calibration: no tokens (${JSON.stringify(source['files'] ?? source['file'] ?? '')})`);
  const share = r.tokens > 0 ? (r.tokens - r.promptTokens) / r.tokens : 0;
  return {
    mode,
    sequences: r.pieces.map((p) => (p.classes ? { ids: p.ids, weight: p.weight, classes: p.classes } : { ids: p.ids, weight: p.weight })),
    tokens: r.tokens,
    promptTokens: r.promptTokens,
    source: {
      mode,
      ...source,
      tokens: r.tokens,
      sequences: r.pieces.length,
      prompt_tokens: r.promptTokens,
      ...(mode === 'rac' ? thinkAnswerTokens(r.pieces) : {}),
      ...(mode === 'rac' ? { decode_tokens: r.tokens - r.promptTokens, decode_share: share } : {}),
      token_budget: l.tokenBudget,
      exhausted: l.tokenBudget > 0 && r.exhausted,
      ...(l.tokenBudget > 0 && r.exhausted
        ? { note: `the ${mode} source ran out: ${r.tokens} of ${l.tokenBudget} budget tokens (no cycling)` }
        : {}),
    },
  };
}

/** Thinking and answer tokens of the kept rac sequences (rac.json: the position classes token weights act on). */
function thinkAnswerTokens(pieces: Piece[]): { think_tokens: number; answer_tokens: number } {
  const c = classCounts(pieces.map((p) => ({ ids: p.ids, weight: p.weight, ...(p.classes ? { classes: p.classes } : {}) })));
  return { think_tokens: c.think, answer_tokens: c.answer };
}

/** `prompt`: chat-templated prompts, drawn in dataset order until the budget is full. */
export async function buildPromptComponent(ds: DatasetSource, ctx: CalibModeContext, l: CalibShape, weight = 1): Promise<Component> {
  if (!ctx.tokenizer) throw new CalibError('prompt calibration needs the model tokenizer (tokenizer.json)');
  const tok = ctx.tokenizer;
  const data = await loadDataset(ds.path, { promptColumn: ds.promptColumn, idColumn: ds.idColumn, limit: ds.limit });
  const opts = { system: ds.system, templateFlags: ds.templateFlags };
  function* docs(): Generator<Doc> {
    for (const row of data.rows) {
      const ids = renderPrompt(tok, row, { ...opts, where: rowLabel(data.file, row) }).ids;
      yield { ids, promptLen: ids.length, classes: new Uint8Array(ids.length).fill(CLASS_PROMPT), weight };
    }
  }
  const r = shape(docs(), l, tok.eosTokenId);
  return finishComponent(
    'prompt',
    r,
    {
      files: [{ file: data.file, sha256: data.sha256, ...(data.hub ? { hub: data.hub } : {}) }],
      prompt_column: data.promptColumn,
      system: ds.system ?? null,
      template_flags: ds.templateFlags ?? {},
      prompts_used: r.docsUsed,
      prompts_available: data.rows.length,
      weight,
    },
    l,
  );
}

/** The ids of a trace row (rac or SGLang): input_ids, else prompt_ids + completion_ids. */
export function traceRowIds(row: Record<string, unknown>, vocabSize: number, where: string): { ids: number[]; promptLen: number } {
  if (row['input_ids'] !== undefined) {
    const ids = checkIds(row['input_ids'], vocabSize, where, 'input_ids');
    let promptLen: number;
    if (typeof row['num_prompt_tokens'] === 'number') promptLen = row['num_prompt_tokens'];
    else if (Array.isArray(row['prompt_ids'])) promptLen = row['prompt_ids'].length;
    else throw new CalibError(`${where}: "input_ids" without "num_prompt_tokens" or "prompt_ids" (cannot tell prompt from completion)`);
    if (!Number.isInteger(promptLen) || promptLen < 0 || promptLen > ids.length)
      throw new CalibError(`${where}: prompt length ${promptLen} does not fit ${ids.length} input_ids`);
    return { ids, promptLen };
  }
  if (row['prompt_ids'] !== undefined && row['completion_ids'] !== undefined) {
    const p = checkIds(row['prompt_ids'], vocabSize, where, 'prompt_ids');
    const c = checkIds(row['completion_ids'], vocabSize, where, 'completion_ids');
    return { ids: [...p, ...c], promptLen: p.length };
  }
  throw new CalibError(
    `${where}: a trace row needs "input_ids" or "prompt_ids" + "completion_ids"; has ${Object.keys(row).join(', ') || 'no fields'}`,
  );
}

/** `rac`: prompt + completion ids from traces files (optionally selected before the budget). */
export function buildRacComponent(
  paths: string[],
  ctx: CalibModeContext,
  l: CalibShape,
  weight = 1,
  select?: TraceSelection | null,
): Component {
  if (paths.length === 0) throw new CalibError('rac calibration needs a traces file (--traces)');
  const files = paths.map((p) => fileHash(p, 'traces file'));
  const thinkEnd = thinkEndIds(ctx.tokenizer);
  const rows: { row: Record<string, unknown>; where: string }[] = [];
  for (const f of files) {
    // A torn last line (a trace run still going or killed) is ignored.
    for (const r of jsonlObjectsFromBytes(f.bytes, f.file, { ignoreTornTail: true, error: (m) => new CalibError(m) })) rows.push(r);
  }
  const chosen = select ? selectTraces(rows, select) : null;
  const models = new Set<string>();
  function* docs(): Generator<Doc> {
    for (const { row, where } of chosen ? chosen.kept : rows) {
      const { ids, promptLen } = traceRowIds(row, ctx.vocabSize, where);
      const w = row['weight'] ?? 1;
      if (typeof w !== 'number' || !(w > 0) || !Number.isFinite(w))
        throw new CalibError(`${where}: "weight" must be a positive number, got ${JSON.stringify(w)}`);
      if (typeof row['model'] === 'string') models.add(row['model']);
      yield { ids, promptLen, classes: positionClasses(ids, promptLen, thinkEnd), weight: weight * w };
    }
  }
  const r = shape(docs(), l, ctx.tokenizer?.eosTokenId);
  return finishComponent(
    'rac',
    r,
    {
      files: files.map(({ file, sha256 }) => ({ file, sha256 })),
      rows_used: r.docsUsed,
      rows_read: rows.length,
      ...(models.size ? { models: [...models] } : {}),
      ...(chosen ? { selection: { ...select, ...chosen.counts } } : {}),
      weight,
    },
    l,
  );
}

/** `text`: plain text documents, tokenized (with the tokenizer's special tokens) and chunked. */
export function buildTextComponent(paths: string[], textField: string, ctx: CalibModeContext, l: CalibShape, weight = 1): Component {
  if (paths.length === 0) throw new CalibError('text calibration needs text files (--text-files)');
  if (!ctx.tokenizer) throw new CalibError('text calibration needs the model tokenizer (tokenizer.json)');
  const tok = ctx.tokenizer;
  const files = paths.map((p) => fileHash(p, 'text file'));
  // Text longer than max_seq_len is chunked in this mode (that is what plain text is for).
  const lt: CalibShape = { ...l, overflow: 'split' };
  function* docs(): Generator<Doc> {
    for (const f of files) {
      const ext = extname(f.file).toLowerCase();
      const text = decodeUtf8(f.bytes, f.file, (m) => new CalibError(m));
      if (ext === '.jsonl' || ext === '.ndjson') {
        for (const { row, where } of jsonlObjects(text, f.file, { error: (m) => new CalibError(m) })) {
          const t = row[textField];
          if (typeof t !== 'string') throw new CalibError(`${where}: no string field "${textField}" (use --text-field)`);
          yield { ids: tok.encode(t), promptLen: 0, weight };
        }
      } else if (ext === '.json') {
        let v: unknown;
        try {
          v = JSON.parse(text);
        } catch (e) {
          throw new CalibError(`${f.file}: invalid JSON (${(e as Error).message})`);
        }
        const list = Array.isArray(v) ? v : (v as Record<string, unknown> | null)?.['data'];
        if (!Array.isArray(list)) throw new CalibError(`${f.file}: expected an array of rows or {"data": [...]}`);
        for (let i = 0; i < list.length; i++) {
          const t = typeof list[i] === 'string' ? list[i] : (list[i] as Record<string, unknown> | null)?.[textField];
          if (typeof t !== 'string') throw new CalibError(`${f.file}: row ${i}: no string field "${textField}" (use --text-field)`);
          yield { ids: tok.encode(t as string), promptLen: 0, weight };
        }
      } else {
        yield { ids: tok.encode(text), promptLen: 0, weight };
      }
    }
  }
  const r = shape(docs(), lt, tok.eosTokenId);
  return finishComponent(
    'text',
    r,
    { files: files.map(({ file, sha256 }) => ({ file, sha256 })), text_field: textField, documents_used: r.docsUsed, weight },
    lt,
  );
}

/** Parse `rac:0.75,text:0.25` (mix shares, or per-source weights). */
export function parseSourceMap(spec: string, what: string): Partial<Record<SourceMode, number>> {
  const out: Partial<Record<SourceMode, number>> = {};
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9_]+)\s*[:=]\s*([0-9.eE+-]+)$/.exec(part);
    if (!m) throw new CalibError(`${what}: expected SOURCE:NUMBER[,SOURCE:NUMBER…], got "${part}"`);
    const k = m[1] as SourceMode;
    if (!(['prompt', 'rac', 'text'] as string[]).includes(k)) throw new CalibError(`${what}: unknown source "${m[1]}" (prompt, rac, text)`);
    if (k in out) throw new CalibError(`${what}: "${k}" given twice`);
    const v = Number(m[2]);
    if (!Number.isFinite(v) || v < 0) throw new CalibError(`${what}: "${k}" must be a number ≥ 0, got "${m[2]}"`);
    out[k] = v;
  }
  if (Object.keys(out).length === 0) throw new CalibError(`${what}: empty`);
  return out;
}

/** Integer token budgets per source from shares (largest remainder: they sum to the budget). */
export function splitBudget(budget: number, shares: Partial<Record<SourceMode, number>>): [SourceMode, number][] {
  const entries = (Object.entries(shares) as [SourceMode, number][]).filter(([, v]) => v > 0);
  const sum = entries.reduce((a, [, v]) => a + v, 0);
  if (!(sum > 0)) throw new CalibError('mix: the shares must not all be 0');
  const exact = entries.map(([k, v]) => [k, (budget * v) / sum] as const);
  const out = exact.map(([k, x]) => [k, Math.floor(x)] as [SourceMode, number]);
  let left = budget - out.reduce((a, [, v]) => a + v, 0);
  const order = exact.map(([, x], i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left <= 0) break;
    out[i]![1]++;
    left--;
  }
  return out;
}

/** `rac` from several trace sets: the budget split by their shares, each set recorded with its producer and tokens. */
function buildTraceSetsComponent(
  sets: TraceSet[],
  select: TraceSelection | null,
  ctx: CalibModeContext,
  l: CalibShape,
  weight: number,
): Component {
  if (sets.length === 0) throw new CalibError('rac calibration needs a trace set');
  const live = sets.filter((t) => t.share > 0);
  if (l.tokenBudget <= 0 && live.length > 1) throw new CalibError('rac calibration from several trace sets needs a token budget to split');
  const budgets =
    l.tokenBudget > 0
      ? splitShares(
          l.tokenBudget,
          live.map((t) => t.share),
        )
      : [0];
  const comps = live.map((t, i) => ({ t, c: buildRacComponent(t.files, ctx, { ...l, tokenBudget: budgets[i]! }, weight, select) }));
  const tokens = comps.reduce((a, { c }) => a + c.tokens, 0);
  const promptTokens = comps.reduce((a, { c }) => a + c.promptTokens, 0);
  const r = { pieces: [], tokens, promptTokens, exhausted: comps.some(({ c }) => c.source['exhausted'] === true), docsUsed: 0 };
  const out = finishComponent(
    'rac',
    r,
    {
      files: comps.flatMap(({ c }) => c.source['files'] as unknown[]),
      trace_sets: comps.map(({ t, c }) => ({ producer: t.producer, share: t.share, ...c.source })),
      weight,
    },
    l,
  );
  return { ...out, sequences: comps.flatMap(({ c }) => c.sequences) };
}

/** Integer parts of `budget` by shares (largest remainder: they sum to the budget). */
export function splitShares(budget: number, shares: number[]): number[] {
  const sum = shares.reduce((a, v) => a + v, 0);
  if (!(sum > 0)) throw new CalibError('the shares must not all be 0');
  const exact = shares.map((v) => (budget * v) / sum);
  const out = exact.map(Math.floor);
  let left = budget - out.reduce((a, v) => a + v, 0);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left <= 0) break;
    out[i]!++;
    left--;
  }
  return out;
}

async function buildComponent(
  mode: SourceMode,
  inputs: CalibModeInputs,
  ctx: CalibModeContext,
  l: CalibShape,
  weight: number,
): Promise<Component> {
  switch (mode) {
    case 'prompt':
      if (!inputs.dataset) throw new CalibError('prompt calibration needs a dataset (--dataset)');
      return buildPromptComponent(inputs.dataset, ctx, l, weight);
    case 'rac':
      if (inputs.traceSets) return buildTraceSetsComponent(inputs.traceSets, inputs.select ?? null, ctx, l, weight);
      return buildRacComponent(inputs.traces ?? [], ctx, l, weight, inputs.select ?? null);
    case 'text':
      return buildTextComponent(inputs.textFiles ?? [], inputs.textField ?? 'text', ctx, l, weight);
  }
}

/** Build the calibration set of one mode. */
export async function buildCalibSet(mode: CalibMode, inputs: CalibModeInputs, ctx: CalibModeContext, l: CalibShape): Promise<CalibSet> {
  validateLimits(l);
  if (!CALIB_MODES.includes(mode)) throw new CalibError(`unknown calibration mode "${mode}" (${CALIB_MODES.join(', ')})`);
  const weights = inputs.weights ?? {};
  for (const [k, w] of Object.entries(weights)) if (!(w > 0)) throw new CalibError(`sequence weight of "${k}" must be > 0, got ${w}`);
  const common = { max_seq_len: l.maxSeqLen, overflow: l.overflow ?? 'truncate', pack: !!l.pack, token_budget: l.tokenBudget };
  if (mode !== 'mix') {
    const c = await buildComponent(mode, inputs, ctx, l, weights[mode] ?? 1);
    return { sequences: c.sequences, tokens: c.tokens, source: { kind: 'mode', ...c.source, ...common } };
  }
  if (!inputs.mix) throw new CalibError('mix calibration needs shares (--mix rac:0.75,text:0.25)');
  if (l.tokenBudget <= 0) throw new CalibError('mix calibration needs a token budget (--calib-tokens) to split');
  const parts = splitBudget(l.tokenBudget, inputs.mix);
  const comps: Component[] = [];
  for (const [m, budget] of parts) {
    if (budget === 0) continue;
    comps.push(await buildComponent(m, inputs, ctx, { ...l, tokenBudget: budget }, weights[m] ?? 1));
  }
  const tokens = comps.reduce((a, c) => a + c.tokens, 0);
  const promptTokens = comps.filter((c) => c.mode !== 'text').reduce((a, c) => a + c.promptTokens, 0);
  const sum = Object.values(inputs.mix).reduce((a, v) => a + (v ?? 0), 0);
  const rac = comps.find((c) => c.mode === 'rac');
  return {
    sequences: comps.flatMap((c) => c.sequences),
    tokens,
    source: {
      kind: 'mode',
      mode: 'mix',
      ...common,
      tokens,
      shares: Object.fromEntries(Object.entries(inputs.mix).map(([k, v]) => [k, (v ?? 0) / sum])),
      weights: Object.fromEntries(comps.map((c) => [c.mode, c.source['weight']])),
      files: comps.flatMap((c) => (c.source['files'] as unknown[]) ?? []),
      components: comps.map((c) => c.source),
      ...(rac ? { decode_share_rac: rac.source['decode_share'] } : {}),
      prompt_tokens: promptTokens,
      exhausted: comps.some((c) => c.source['exhausted'] === true),
    },
  };
}
