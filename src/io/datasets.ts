/**
 * Prompt datasets: JSONL, JSON and Parquet rows (the files Hugging Face datasets keep) → records
 * `{ id, index, prompt, answer?, raw }`, and prompts rendered through the model's chat template.
 *
 * - JSONL: one JSON object per line (blank lines skipped).
 * - JSON: an array of row objects; `{ "data": [...] }`; the datasets-server shape
 *   `{ "rows": [{ "row_idx": i, "row": {...} }] }` or `{ "rows": [...] }`; or columns
 *   (`{ "problem": [...], "answer": [...] }`, all arrays of one length).
 * - Parquet (`.parquet`): read with hyparquet; snappy, gzip, brotli, zstd and lz4 pages through
 *   hyparquet-compressors. With a row limit only the rows kept are decoded: row groups and pages
 *   past them are skipped, and inside a page of a flat column in PLAIN or dictionary encoding
 *   (data page v1, or v2 without nulls) decoding stops at the last row kept (the page itself is
 *   still decompressed whole: the format allows no less).
 *
 * Every file is read through model-file.ts's regular-file rule (a FIFO is refused, not waited on).
 *
 * The prompt column defaults to the first of `problem`, `prompt`, `question` present (OpenR1-Math
 * uses `problem`, Codeforces `prompt`); the answer column to `answer` when present; the id column
 * to `id` when every row has a unique scalar id, else the row index. A prompt may also be a list
 * of chat messages (`[{role, content}, ...]`), rendered as such.
 */
import { createHash } from 'node:crypto';
import { basename, dirname, extname, resolve, sep } from 'node:path';
import { hubSourceOf, type HubSource } from './hub.ts';
import { decodeUtf8 } from './jsonl.ts';
import { ModelFileError, readRegularFile } from './model-file.ts';
import { checkPromptChars, checkPromptTokens, PromptLengthError, promptChars } from './prompt-bounds.ts';
import type { ChatMessage, RacTokenizer } from './tokenizer.ts';
import { RacError } from '../errors.ts';

export class DatasetError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}

export type DatasetFormat = 'jsonl' | 'json' | 'parquet';

export interface DatasetRow {
  /** The id column's value as a string, else the row index. Unique within the dataset. */
  id: string;
  /** Position of the row in the file (0-based). */
  index: number;
  /** The prompt text (for a message list: the last user message's content). */
  prompt: string;
  /** The prompt as chat messages, when the column holds a message list. */
  messages?: ChatMessage[];
  answer?: string;
  /** The whole row (BigInt values converted to numbers, or strings when not exact). */
  raw: Record<string, unknown>;
}

export interface LoadDatasetOptions {
  /** Default: the first of problem, prompt, question present in the first row. */
  promptColumn?: string;
  /** Default: `answer` when present (else no answers). */
  answerColumn?: string;
  /** Default: `id` when every row has a unique scalar id, else the row index. */
  idColumn?: string;
  /** Keep the first `limit` rows only. */
  limit?: number;
  /** Default: from the extension (.jsonl/.ndjson, .json, .parquet). */
  format?: DatasetFormat;
}

export interface Dataset {
  /** The file, or for several shards `dir/{shard,shard,…}`. */
  file: string;
  /** The files read, in order (one, or the shards of a split). */
  files: string[];
  /** The Hugging Face dataset (id, revision, commit, config, split) when the files are a hub cache snapshot's. */
  hub?: HubSource;
  format: DatasetFormat;
  /** sha256 of the file's bytes (several shards: of their bytes in order). */
  sha256: string;
  /** Column names of the first row (Parquet: of the schema). */
  columns: string[];
  promptColumn: string;
  answerColumn?: string;
  /** undefined when ids are row indices. */
  idColumn?: string;
  /** Rows in the file or shards (before `limit`). */
  totalRows: number;
  rows: DatasetRow[];
}

export const DEFAULT_PROMPT_COLUMNS = ['problem', 'prompt', 'question'] as const;

/** Largest dataset file (or shard) read: what one Buffer can hold. */
const MAX_DATASET_FILE_BYTES = 2 ** 32 - 1;

export function detectFormat(path: string): DatasetFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.json') return 'json';
  if (ext === '.parquet' || ext === '.pq') return 'parquet';
  throw new DatasetError(`${path}: unknown dataset format "${ext || '(no extension)'}" (expected .jsonl, .json or .parquet)`);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** BigInt (Parquet INT64) → number when exact, else string; recursively. */
function plain(x: unknown): unknown {
  if (typeof x === 'bigint') return Number.isSafeInteger(Number(x)) ? Number(x) : x.toString();
  if (Array.isArray(x)) return x.map(plain);
  if (x instanceof Date) return x.toISOString();
  if (x instanceof Uint8Array) return Buffer.from(x).toString('utf8');
  if (isRecord(x)) {
    const o: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) o[k] = plain(v);
    return o;
  }
  return x;
}

function readJsonlRows(file: string, text: string, limit: number): { rows: Record<string, unknown>[]; where: string[]; total: number } {
  const rows: Record<string, unknown>[] = [];
  const where: string[] = [];
  const lines = text.split('\n');
  let total = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    total++;
    if (rows.length >= limit) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DatasetError(`${file}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
    if (!isRecord(v))
      throw new DatasetError(`${file}:${i + 1}: expected a JSON object per line, got ${Array.isArray(v) ? 'an array' : typeof v}`);
    rows.push(v);
    where.push(`${file}:${i + 1} (row ${rows.length - 1})`);
  }
  return { rows, where, total };
}

function readJsonRows(file: string, text: string): Record<string, unknown>[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new DatasetError(`${file}: invalid JSON (${(e as Error).message})`);
  }
  let list: unknown;
  if (Array.isArray(v)) list = v;
  else if (isRecord(v) && Array.isArray(v['data'])) list = v['data'];
  else if (isRecord(v) && Array.isArray(v['rows'])) {
    list = (v['rows'] as unknown[]).map((r) => (isRecord(r) && isRecord(r['row']) && 'row_idx' in r ? r['row'] : r));
  } else if (isRecord(v) && Object.keys(v).length > 0 && Object.values(v).every((c) => Array.isArray(c))) {
    const cols = Object.entries(v) as [string, unknown[]][];
    const n = cols[0]![1].length;
    const bad = cols.find(([, c]) => c.length !== n);
    if (bad) throw new DatasetError(`${file}: column "${bad[0]}" has ${bad[1].length} values, column "${cols[0]![0]}" has ${n}`);
    list = Array.from({ length: n }, (_, i) => Object.fromEntries(cols.map(([k, c]) => [k, c[i]])));
  } else {
    throw new DatasetError(`${file}: expected an array of rows, {"data": [...]}, {"rows": [...]} or an object of column arrays`);
  }
  const rows = list as unknown[];
  rows.forEach((r, i) => {
    if (!isRecord(r))
      throw new DatasetError(
        `${file}: row ${i}: expected a JSON object, got ${Array.isArray(r) ? 'an array' : r === null ? 'null' : typeof r}`,
      );
  });
  return rows as Record<string, unknown>[];
}

async function readParquetRows(
  file: string,
  bytes: Buffer,
  limit: number,
): Promise<{ rows: Record<string, unknown>[]; columns: string[]; total: number }> {
  const { parquetMetadata, parquetReadObjects, parquetSchema } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  // A file read whole owns its ArrayBuffer: no copy.
  const buf = (
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? bytes.buffer
      : bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  ) as ArrayBuffer;
  let metadata: ReturnType<typeof parquetMetadata>;
  try {
    metadata = parquetMetadata(buf);
  } catch (e) {
    throw new DatasetError(`${file}: not a readable Parquet file (${(e as Error).message})`);
  }
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  const total = Number(metadata.num_rows);
  const want = Math.min(total, limit);
  try {
    const prefix = want < total ? await readParquetPrefix(buf, metadata, want, compressors) : null;
    const rows =
      prefix ?? ((await parquetReadObjects({ file: buf, metadata, compressors, rowStart: 0, rowEnd: want })) as Record<string, unknown>[]);
    return { rows, columns, total };
  } catch (e) {
    throw new DatasetError(`${file}: cannot read Parquet rows (${(e as Error).message})`);
  }
}

type ParquetMetadata = import('hyparquet').FileMetaData;

/**
 * The first `n` rows of a Parquet file whose columns are all flat (no nesting, no repetition),
 * decoding no value past row n: hyparquet reads a column chunk page by page but decodes each page
 * whole, so a page is handed to its page reader with `num_values` cut to the rows still needed
 * where the encoding is sequential (PLAIN, PLAIN_DICTIONARY, RLE_DICTIONARY; data page v1, or v2
 * without nulls). Null for a file of another shape (the caller reads it the general way).
 */
async function readParquetPrefix(
  buf: ArrayBuffer,
  metadata: ParquetMetadata,
  n: number,
  compressors: import('hyparquet').Compressors,
): Promise<Record<string, unknown>[] | null> {
  const { parquetSchema } = await import('hyparquet');
  const { parquetHeader, readPage } = await import('hyparquet/src/column.js');
  const { convert, DEFAULT_PARSERS } = await import('hyparquet/src/convert.js');
  const { getTreePath } = await import('hyparquet/src/schema.js');
  const tree = parquetSchema(metadata);
  if (!tree.children.every((c) => c.children.length === 0 && c.element.repetition_type !== 'REPEATED')) return null;
  const sequential = new Set(['PLAIN', 'PLAIN_DICTIONARY', 'RLE_DICTIONARY']);
  const rows: Record<string, unknown>[] = [];
  for (const group of metadata.row_groups) {
    if (rows.length >= n) break;
    const take = Math.min(n - rows.length, Number(group.num_rows));
    const cols: [string, unknown[]][] = [];
    for (const chunk of group.columns) {
      const meta = chunk.meta_data;
      if (!meta || chunk.file_path) return null;
      const schemaPath = getTreePath(tree, meta.path_in_schema);
      const decoder = {
        pathInSchema: meta.path_in_schema,
        element: schemaPath[schemaPath.length - 1]!.element,
        schemaPath,
        compressors,
        ...meta,
        parsers: DEFAULT_PARSERS,
      };
      // (as hyparquet: a missing or zero dictionary offset means the chunk starts at its first data page)
      const start = Number(meta.dictionary_page_offset || meta.data_page_offset);
      const reader = { view: new DataView(buf, start, Number(meta.total_compressed_size)), offset: 0 };
      let dictionary: unknown;
      const values: unknown[] = [];
      while (values.length < take && reader.offset < reader.view.byteLength - 1) {
        const header = parquetHeader(reader);
        const need = take - values.length;
        let page = header;
        const v1 = header.data_page_header;
        const v2 = header.data_page_header_v2;
        if (header.type === 'DATA_PAGE' && v1 && v1.num_values > need && sequential.has(v1.encoding))
          page = { ...header, data_page_header: { ...v1, num_values: need } };
        else if (header.type === 'DATA_PAGE_V2' && v2 && v2.num_nulls === 0 && v2.num_values > need && sequential.has(v2.encoding))
          page = { ...header, data_page_header_v2: { ...v2, num_values: need, num_rows: need } };
        // biome-ignore lint/suspicious/noExplicitAny: hyparquet's internal page reader is untyped JS
        const r = readPage(reader, page, decoder as any, dictionary as any, undefined, 0);
        if (header.type === 'DICTIONARY_PAGE') {
          // biome-ignore lint/suspicious/noExplicitAny: as above
          dictionary = convert(r.data as any, decoder as any);
        } else if (r.data) for (let i = 0; i < r.data.length && values.length < take; i++) values.push(r.data[i]);
      }
      if (values.length < take) throw new Error(`column ${meta.path_in_schema.join('.')} has ${values.length} of ${take} rows`);
      cols.push([meta.path_in_schema[0]!, values]);
    }
    for (let i = 0; i < take; i++) rows.push(Object.fromEntries(cols.map(([name, v]) => [name, v[i]])));
  }
  return rows;
}

function asMessages(v: unknown): ChatMessage[] | null {
  if (!Array.isArray(v) || v.length === 0) return null;
  if (!v.every((m) => isRecord(m) && typeof m['role'] === 'string' && typeof m['content'] === 'string')) return null;
  return v.map((m) => ({ role: (m as ChatMessage).role, content: (m as ChatMessage).content }));
}

function scalarText(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return null;
}

/** The label of a dataset read from several shards: their directory and names, `dir/{a,b}`. */
function shardsLabel(files: string[]): string {
  if (files.length === 1) return files[0]!;
  const dir = dirname(files[0]!);
  return files.every((f) => dirname(f) === dir) ? `${dir}${sep}{${files.map((f) => basename(f)).join(',')}}` : files.join(', ');
}

async function readRows(
  file: string,
  format: DatasetFormat,
  bytes: Buffer,
  limit: number,
): Promise<{ rows: Record<string, unknown>[]; where: (i: number) => string; columns?: string[]; total: number }> {
  if (format === 'jsonl') {
    const r = readJsonlRows(
      file,
      decodeUtf8(bytes, file, (m) => new DatasetError(m)),
      limit,
    );
    return { rows: r.rows, total: r.total, where: (i) => r.where[i]! };
  }
  if (format === 'json') {
    const all = readJsonRows(
      file,
      decodeUtf8(bytes, file, (m) => new DatasetError(m)),
    );
    return { rows: all.slice(0, Math.min(all.length, limit)), total: all.length, where: (i) => `${file}: row ${i}` };
  }
  const r = await readParquetRows(file, bytes, limit);
  return {
    rows: r.rows.map((x) => plain(x) as Record<string, unknown>),
    columns: r.columns,
    total: r.total,
    where: (i) => `${file}: row ${i}`,
  };
}

/**
 * Read a dataset file — or the shards of one split, in order, as one dataset — and map its rows
 * to prompts, answers and ids. The sha256 is of the bytes of every shard in order (one file: its
 * own sha256); row indices count across shards.
 */
export async function loadDataset(path: string | readonly string[], opts: LoadDatasetOptions = {}): Promise<Dataset> {
  const files = (typeof path === 'string' ? [path] : [...path]).map((p) => resolve(p));
  if (files.length === 0) throw new DatasetError('a dataset needs at least one file');
  const file = shardsLabel(files);
  const format = opts.format ?? detectFormat(files[0]!);
  for (const f of files)
    if ((opts.format ?? detectFormat(f)) !== format) throw new DatasetError(`${f}: a ${detectFormat(f)} shard among ${format} shards`);
  const limit = opts.limit ?? Infinity;
  if (!(limit >= 0)) throw new DatasetError(`dataset limit must be ≥ 0, got ${opts.limit}`);
  const hash = createHash('sha256');
  const rawRows: Record<string, unknown>[] = [];
  const whereParts: { start: number; where: (i: number) => string }[] = [];
  let columns: string[] | undefined;
  let total = 0;
  for (const f of files) {
    let bytes: Buffer | undefined;
    try {
      bytes = readRegularFile(f, MAX_DATASET_FILE_BYTES, 'a dataset file');
    } catch (e) {
      if (e instanceof ModelFileError) throw new DatasetError(e.message);
      throw e;
    }
    if (bytes === undefined) throw new DatasetError(`${f}: file not found`);
    hash.update(bytes);
    const r = await readRows(f, format, bytes, Math.max(0, limit - rawRows.length));
    if (columns === undefined) columns = r.columns;
    whereParts.push({ start: rawRows.length, where: r.where });
    for (const row of r.rows) rawRows.push(row);
    total += r.total;
  }
  const sha256 = hash.digest('hex');
  const where = (i: number): string => {
    let k = whereParts.length - 1;
    while (k > 0 && whereParts[k]!.start > i) k--;
    const part = whereParts[k]!;
    return files.length === 1 ? part.where(i) : `${part.where(i - part.start)} (dataset row ${i})`;
  };
  if (total === 0) throw new DatasetError(`${file}: no rows`);
  columns ??= rawRows.length ? Object.keys(rawRows[0]!) : [];
  const available = () => `available columns: ${columns!.join(', ') || '(none)'}`;
  const has = (c: string) => columns!.includes(c) || (rawRows.length > 0 && c in rawRows[0]!);

  let promptColumn = opts.promptColumn;
  if (promptColumn === undefined) {
    promptColumn = DEFAULT_PROMPT_COLUMNS.find(has);
    if (promptColumn === undefined)
      throw new DatasetError(
        `${file}: no prompt column (looked for ${DEFAULT_PROMPT_COLUMNS.join(', ')}; pass --prompt-column); ${available()}`,
      );
  } else if (!has(promptColumn)) {
    throw new DatasetError(`${file}: no column "${promptColumn}" (prompt column); ${available()}`);
  }
  let answerColumn = opts.answerColumn;
  if (answerColumn === undefined) answerColumn = has('answer') ? 'answer' : undefined;
  else if (!has(answerColumn)) throw new DatasetError(`${file}: no column "${answerColumn}" (answer column); ${available()}`);
  let idColumn = opts.idColumn;
  if (idColumn !== undefined && !has(idColumn)) throw new DatasetError(`${file}: no column "${idColumn}" (id column); ${available()}`);
  if (idColumn === undefined && has('id')) {
    // Automatic ids only when they are usable: scalar and unique on every row.
    const seen = new Set<string>();
    const ok = rawRows.every((r) => {
      const s = scalarText(r['id']);
      if (s === null || s === '' || seen.has(s)) return false;
      seen.add(s);
      return true;
    });
    if (ok) idColumn = 'id';
  }

  const rows: DatasetRow[] = [];
  const ids = new Map<string, number>();
  rawRows.forEach((r0, i) => {
    const raw = r0;
    const missing = (c: string, what: string) => new DatasetError(`${where(i)}: missing ${what} column "${c}"; ${available()}`);
    if (!(promptColumn! in raw)) throw missing(promptColumn!, 'prompt');
    const pv = raw[promptColumn!];
    let prompt: string;
    let messages: ChatMessage[] | undefined;
    const asMsgs = asMessages(pv);
    if (typeof pv === 'string') prompt = pv;
    else if (asMsgs) {
      messages = asMsgs;
      prompt = [...asMsgs].reverse().find((m) => m.role === 'user')?.content ?? asMsgs[asMsgs.length - 1]!.content;
    } else {
      throw new DatasetError(
        `${where(i)}: prompt column "${promptColumn}" must be a string or a list of {role, content} messages, got ${pv === null ? 'null' : Array.isArray(pv) ? 'an array' : typeof pv}`,
      );
    }
    if (prompt.trim() === '' && !messages) throw new DatasetError(`${where(i)}: prompt column "${promptColumn}" is empty`);
    let answer: string | undefined;
    if (answerColumn !== undefined) {
      if (!(answerColumn in raw)) {
        if (opts.answerColumn !== undefined) throw missing(answerColumn, 'answer');
      } else if (raw[answerColumn] !== null && raw[answerColumn] !== undefined) {
        const a = raw[answerColumn];
        answer = scalarText(a) ?? JSON.stringify(a);
      }
    }
    let id = String(i);
    if (idColumn !== undefined) {
      if (!(idColumn in raw)) throw missing(idColumn, 'id');
      const s = scalarText(raw[idColumn]);
      if (s === null || s === '')
        throw new DatasetError(
          `${where(i)}: id column "${idColumn}" must be a non-empty string or number, got ${JSON.stringify(raw[idColumn])}`,
        );
      id = s;
    }
    const prev = ids.get(id);
    if (prev !== undefined) throw new DatasetError(`${where(i)}: duplicate id "${id}" (also row ${prev}) in column "${idColumn}"`);
    ids.set(id, i);
    rows.push({ id, index: i, prompt, ...(messages ? { messages } : {}), ...(answer !== undefined ? { answer } : {}), raw });
  });
  const hub = hubSourceOf(files[0]!);
  return {
    file,
    files,
    ...(hub ? { hub } : {}),
    format,
    sha256,
    columns,
    promptColumn: promptColumn!,
    ...(answerColumn ? { answerColumn } : {}),
    ...(idColumn ? { idColumn } : {}),
    totalRows: total,
    rows,
  };
}

export interface RenderOptions {
  /** A system message placed before the user message (ignored when the row's messages have one). */
  system?: string;
  /** Extra chat template variables, e.g. `{ enable_thinking: false }`. */
  templateFlags?: Record<string, unknown>;
  /**
   * The model's context in tokens: a prompt that cannot fit it (with one new token) is refused
   * with a PromptLengthError, by its length in characters before it is tokenized when possible.
   */
  contextLength?: number;
  /**
   * Names the prompt in a PromptLengthError, e.g. `file: row 3 (id "x")` (`rowLabel`). Without a
   * context length, a prompt longer than the chat template may render is still refused before it
   * is rendered, so the error names the prompt rather than the template.
   */
  where?: string;
}

/** How errors name a dataset row: `file: row 3 (id "x")`. */
export function rowLabel(file: string, row: Pick<DatasetRow, 'index' | 'id'>): string {
  return `${file}: row ${row.index} (id ${JSON.stringify(row.id)})`;
}

export interface RenderedPrompt {
  text: string;
  ids: number[];
}

/** The chat messages of a prompt: [system], user. */
export function promptMessages(prompt: string | ChatMessage[], system?: string): ChatMessage[] {
  const msgs: ChatMessage[] = typeof prompt === 'string' ? [{ role: 'user', content: prompt }] : prompt.map((m) => ({ ...m }));
  if (system !== undefined && system !== '' && !msgs.some((m) => m.role === 'system')) msgs.unshift({ role: 'system', content: system });
  return msgs;
}

/**
 * Render a prompt with the model's chat template (add_generation_prompt) and tokenize it without
 * adding special tokens again (the template carries them), as apply_chat_template(tokenize=True).
 */
export function renderPrompt(
  tokenizer: RacTokenizer,
  prompt: string | ChatMessage[] | DatasetRow,
  opts: RenderOptions = {},
): RenderedPrompt {
  const p = typeof prompt === 'object' && !Array.isArray(prompt) ? (prompt.messages ?? prompt.prompt) : prompt;
  const ctx = opts.contextLength;
  try {
    const chars = promptChars(p, opts.system);
    if (ctx !== undefined) checkPromptChars(chars, tokenizer, ctx);
    // Whatever the context, a template's output is bounded: a prompt over the bound is the prompt's fault.
    const maxChars = tokenizer.templateLimits.maxChars;
    if (chars > maxChars)
      throw new PromptLengthError(
        `the prompt has ${chars} characters; a chat template renders at most ${maxChars} characters, so it is refused before rendering`,
      );
    const text = tokenizer.applyChatTemplate(promptMessages(p, opts.system), {
      addGenerationPrompt: true,
      extra: opts.templateFlags ?? {},
    });
    if (ctx !== undefined) checkPromptChars(text.length, tokenizer, ctx);
    const ids = tokenizer.encode(text, { addSpecialTokens: false });
    if (ctx !== undefined) checkPromptTokens(ids.length, ctx);
    return { text, ids };
  } catch (e) {
    if (opts.where !== undefined && e instanceof PromptLengthError) throw new PromptLengthError(`${opts.where}: ${e.message}`);
    throw e;
  }
}

/**
 * Parse template flags given as `key=value` (values parsed as JSON when they are JSON: true,
 * false, numbers, null, quoted strings; otherwise kept as strings).
 */
export function parseTemplateFlag(spec: string): [string, unknown] {
  const eq = spec.indexOf('=');
  if (eq <= 0) throw new DatasetError(`template flag must be key=value, got "${spec}"`);
  const key = spec.slice(0, eq).trim();
  const v = spec.slice(eq + 1);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new DatasetError(`template flag name must be an identifier, got "${key}"`);
  try {
    return [key, JSON.parse(v)];
  } catch {
    return [key, v];
  }
}
