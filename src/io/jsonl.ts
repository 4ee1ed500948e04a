/** JSON Lines: one JSON object per line, errors naming file:line; append-only logs with their torn-line repair. */
import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { RacError } from '../errors.ts';

export class JsonlError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'JsonlError';
  }
}

export interface JsonlRow {
  row: Record<string, unknown>;
  /** `file:line`, for error messages. */
  where: string;
  /** 0-based line index. */
  line: number;
}

/**
 * Index of the first byte that is not part of a well-formed UTF-8 sequence (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), or -1 when all of it is UTF-8.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || c < (k === 1 ? lo : 0x80) || c > (k === 1 ? hi : 0xbf)) return i;
    }
    i += need + 1;
  }
  return -1;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decodes UTF-8 text, refusing malformed bytes (which a lenient decoder silently turns into
 * U+FFFD): the error names the file, the line and the byte offset. A leading BOM is dropped.
 */
export function decodeUtf8(bytes: Uint8Array, file: string, error: (message: string) => Error = (m) => new JsonlError(m)): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    let line = 1;
    for (let i = 0; i < at; i++) if (bytes[i] === 0x0a) line++;
    const hex = (bytes[at] ?? 0).toString(16).padStart(2, '0');
    throw error(`${file}:${line}: invalid UTF-8 (byte 0x${hex} at offset ${at}); the file must be UTF-8 text`);
  }
}

/**
 * `jsonlObjects` over the bytes of a file, decoded strictly as UTF-8. With `ignoreTornTail`, the
 * bytes after the last '\n' (a torn write, possibly cut inside a character) are left out first.
 */
export function jsonlObjectsFromBytes(
  bytes: Uint8Array,
  file: string,
  opts: { ignoreTornTail?: boolean; error?: (message: string) => Error } = {},
): Generator<JsonlRow> {
  const body = opts.ignoreTornTail ? bytes.subarray(0, bytes.lastIndexOf(0x0a) + 1) : bytes;
  return jsonlObjects(decodeUtf8(body, file, opts.error), file, opts);
}

/**
 * The objects of a JSONL text, in order; blank lines skipped. With `ignoreTornTail`, a last line
 * without its '\n' (a writer still running, or killed mid-write) is left out instead of parsed.
 */
export function* jsonlObjects(
  text: string,
  file: string,
  opts: { ignoreTornTail?: boolean; error?: (message: string) => Error } = {},
): Generator<JsonlRow> {
  const fail = opts.error ?? ((m: string) => new JsonlError(m));
  let body = text;
  if (opts.ignoreTornTail) {
    const end = text.lastIndexOf('\n');
    body = end >= 0 ? text.slice(0, end) : '';
  }
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const where = `${file}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw fail(`${where}: invalid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail(`${where}: expected a JSON object per line`);
    yield { row: v as Record<string, unknown>, where, line: i };
  }
}

// ---------------------------------------------------------------------------------------------
// Append-only logs (`rac trace`'s traces file, `rac eval`'s samples log)
//
// The writer appends complete lines only, each append one write. Killed at any byte (kill -9
// included), a log ends in at most one torn write: the bytes after its last '\n'. A reader leaves
// those bytes out (not decoded, not parsed) and reports them; `repairJsonlLog` truncates them away
// before the writer appends again. Every complete line must be a JSON object: anything else is an
// error naming file:line, never dropped, because a crash cannot produce it.

export interface JsonlLog {
  rows: JsonlRow[];
  /** Bytes of complete lines. */
  validBytes: number;
  /** Bytes after the last '\n' (a torn last line), 0 when none. */
  tornBytes: number;
}

export interface JsonlLogOptions {
  /** What a line holds, for errors: `corrupt <record> (…)`. Default "record". */
  record?: string;
  /** Appended to a corrupt-line error, e.g. what to do about it. */
  hint?: string;
  error?: (message: string) => Error;
}

/** Reads an append-only JSONL log (see above); a missing or unreadable file is an error naming it. */
export function readJsonlLog(file: string, opts: JsonlLogOptions = {}): JsonlLog {
  const fail = opts.error ?? ((m: string) => new JsonlError(m));
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw fail(`${file}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code})`}`);
  }
  const validBytes = buf.lastIndexOf(0x0a) + 1;
  const text = decodeUtf8(buf.subarray(0, validBytes), file, fail);
  const record = opts.record ?? 'record';
  const hint = opts.hint ? `; ${opts.hint}` : '';
  const rows: JsonlRow[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    const where = `${file}:${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw fail(`${where}: corrupt ${record} (${(e as Error).message})${hint}`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw fail(`${where}: expected a JSON object${hint}`);
    rows.push({ row: v as Record<string, unknown>, where, line: i });
  }
  return { rows, validBytes, tornBytes: buf.length - validBytes };
}

/** Truncates a log's torn last line away (to `log.validBytes`) and fsyncs; nothing when it has none. */
export function repairJsonlLog(file: string, log: Pick<JsonlLog, 'validBytes' | 'tornBytes'>): void {
  if (log.tornBytes === 0) return;
  const fd = openSync(file, 'r+');
  try {
    ftruncateSync(fd, log.validBytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The writing end of an append-only JSONL log: each `append` is one write of complete lines. */
export class JsonlAppender {
  private readonly fd: number;

  constructor(readonly file: string) {
    this.fd = openSync(file, 'a');
  }

  /** Appends one line per record (JSON), all in one write. */
  append(records: readonly unknown[]): void {
    if (records.length === 0) return;
    const data = Buffer.from(records.map((r) => JSON.stringify(r) + '\n').join(''), 'utf8');
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off);
  }

  sync(): void {
    fsyncSync(this.fd);
  }

  /** fsyncs and closes. */
  close(): void {
    try {
      fsyncSync(this.fd);
    } finally {
      closeSync(this.fd);
    }
  }
}
