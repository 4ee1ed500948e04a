/**
 * The safetensors format, shared by the reader (safetensors.ts) and the writer
 * (safetensors-writer.ts): its constants, `SafetensorsError`, the tensor entry types, and the
 * parsing and validation of a header.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, then N
 * bytes of UTF-8 JSON `{"__metadata__": {str: str}?, name: {dtype, shape, data_offsets: [b, e]}…}`
 * (padded with spaces to a multiple of 8 by the reference writer), then the data section; offsets
 * are relative to the data section, which the tensors must cover exactly: no gaps, no overlaps,
 * no trailing bytes.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { DTYPE_SIZES, isKnownDtype } from './dtype.ts';
import { RacError } from '../errors.ts';

if (os.endianness() !== 'LE') {
  throw new Error('rac reads and writes safetensors through typed-array views and needs a little-endian host');
}

/** The reference implementation's limit on the header size. */
export const MAX_HEADER_BYTES = 100_000_000;
/** The file name of a single-file checkpoint. */
export const SINGLE_FILE = 'model.safetensors';
/** The file name of the shard index of a sharded checkpoint. */
export const INDEX_FILE = 'model.safetensors.index.json';

/** Largest chunk handed to one readSync/writeSync call (they take 32-bit lengths). */
export const IO_CHUNK = 1 << 30;

/** A problem with one safetensors file (or model directory / index); the message starts with its path. */
export class SafetensorsError extends RacError {
  readonly file: string;
  readonly problem: string;
  constructor(file: string, problem: string) {
    const oneLine = problem.replace(/\s*[\r\n]+\s*/g, ' ');
    super(`${file}: ${oneLine}`);
    this.name = 'SafetensorsError';
    this.file = file;
    this.problem = oneLine;
  }
}

/** Where one tensor lives. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: number[];
  /** Absolute path of the file holding the tensor. */
  readonly file: string;
  /** Absolute byte offset of the tensor's first byte in `file`. */
  readonly start: number;
  readonly byteLength: number;
}

/** A tensor to be written: its header entry. */
export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
}

// ---------------------------------------------------------------------------------------------
// small helpers

export function errorText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ? `${(e as NodeJS.ErrnoException).code}: ${e.message}` : e.message;
  return String(e);
}

export function describe(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isDim(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Number of elements of `shape` (1 for a scalar); may exceed 2^53 for absurd shapes (then unsafe). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * The members of a JSON object text, in document order, each with the raw text of its value.
 * `text` must already be known to be valid JSON whose top level is an object. Needed because
 * JSON.parse drops duplicate keys silently and moves integer-like keys ("0", "1") to the front.
 */
export function objectMembers(text: string): { key: string; raw: string }[] {
  const out: { key: string; raw: string }[] = [];
  let i = 0;
  const ws = () => {
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) i++;
      else break;
    }
  };
  const skipString = () => {
    // text[i] === '"'
    i++;
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x5c) i += 2;
      else if (c === 0x22) {
        i++;
        return;
      } else i++;
    }
  };
  const skipValue = () => {
    const c = text[i];
    if (c === '"') return skipString();
    if (c === '{' || c === '[') {
      let depth = 0;
      while (i < text.length) {
        const d = text[i];
        if (d === '"') {
          skipString();
          continue;
        }
        if (d === '{' || d === '[') depth++;
        else if (d === '}' || d === ']') {
          depth--;
          if (depth === 0) {
            i++;
            return;
          }
        }
        i++;
      }
      return;
    }
    while (i < text.length && !',}] \t\n\r'.includes(text[i]!)) i++;
  };
  ws();
  i++; // '{'
  ws();
  if (text[i] === '}') return out;
  for (;;) {
    ws();
    const k0 = i;
    skipString();
    const key = JSON.parse(text.slice(k0, i)) as string;
    ws();
    i++; // ':'
    ws();
    const v0 = i;
    skipValue();
    out.push({ key, raw: text.slice(v0, i) });
    ws();
    if (text[i] === ',') {
      i++;
      continue;
    }
    return out;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Parses `bytes` as a UTF-8 JSON object; the members come back in order, duplicates reported. */
export function parseJsonObject(
  bytes: Uint8Array,
  fail: (problem: string) => never,
  what: string,
): { value: Record<string, unknown>; members: { key: string; raw: string }[] } {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return fail(`${what} is not valid UTF-8`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return fail(`${what} is not valid JSON (${errorText(e)})`);
  }
  if (!isPlainObject(value)) return fail(`${what} is not a JSON object (got ${describe(value)})`);
  return { value, members: objectMembers(text) };
}

/** Validates the header members against the data section; returns tensors in header order. */
export function parseHeader(
  file: string,
  members: { key: string; raw: string }[],
  dataStart: number,
  dataLength: number,
  fail: (problem: string) => never,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> | undefined } {
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> | undefined;
  let sawMetadata = false;
  const spans: { name: string; begin: number; end: number }[] = [];
  for (const { key: name, raw } of members) {
    const value: unknown = JSON.parse(raw);
    if (name === '__metadata__') {
      if (sawMetadata) fail('duplicate __metadata__ entry in header');
      sawMetadata = true;
      if (!isPlainObject(value)) fail(`__metadata__ must be an object of strings (got ${describe(value)})`);
      const m = value as Record<string, unknown>;
      for (const [k, v] of Object.entries(m)) {
        if (typeof v !== 'string') fail(`__metadata__ value for ${JSON.stringify(k)} must be a string (got ${describe(v)})`);
      }
      metadata = m as Record<string, string>;
      continue;
    }
    const q = JSON.stringify(name);
    if (tensors.has(name)) fail(`duplicate tensor name ${q} in header`);
    if (!isPlainObject(value)) fail(`tensor ${q}: entry must be an object (got ${describe(value)})`);
    const e = value as Record<string, unknown>;
    for (const field of ['dtype', 'shape', 'data_offsets']) {
      if (!(field in e)) fail(`tensor ${q}: missing ${field}`);
    }
    if (typeof e.dtype !== 'string') fail(`tensor ${q}: dtype must be a string (got ${describe(e.dtype)})`);
    const dtype = e.dtype as string;
    if (!isKnownDtype(dtype)) fail(`tensor ${q}: unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every(isDim)) {
      fail(`tensor ${q}: shape must be an array of non-negative integers (got ${describe(e.shape)})`);
    }
    const shape = (e.shape as number[]).slice();
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isDim)) {
      fail(`tensor ${q}: data_offsets must be [begin, end] with non-negative integers (got ${describe(offs)})`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(`tensor ${q}: data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataLength) {
      fail(`tensor ${q}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataLength} bytes)`);
    }
    const expected = numel(shape) * DTYPE_SIZES[dtype]!;
    if (end - begin !== expected) {
      fail(
        `tensor ${q}: byte length ${end - begin} from data_offsets does not match shape [${shape.join(', ')}] × ${dtype} (${DTYPE_SIZES[dtype]} bytes) = ${expected}`,
      );
    }
    tensors.set(name, { name, dtype, shape, file, start: dataStart + begin, byteLength: end - begin });
    spans.push({ name, begin, end });
  }
  // The data section must be covered exactly, as the reference reader requires.
  spans.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let prev: { name: string; begin: number; end: number } | undefined;
  for (const s of spans) {
    if (s.begin < cursor) {
      fail(
        `tensor ${JSON.stringify(s.name)} (bytes [${s.begin}, ${s.end}]) overlaps tensor ${JSON.stringify(prev!.name)} (bytes [${prev!.begin}, ${prev!.end}])`,
      );
    }
    if (s.begin > cursor) {
      fail(`gap in the data section: bytes [${cursor}, ${s.begin}) before tensor ${JSON.stringify(s.name)} belong to no tensor`);
    }
    cursor = s.end;
    prev = s;
  }
  if (cursor !== dataLength) {
    fail(`${dataLength - cursor} trailing bytes after the last tensor (data section is ${dataLength} bytes, tensors cover ${cursor})`);
  }
  return { tensors, metadata };
}

// ---------------------------------------------------------------------------------------------
// reading a model directory

/** A plain relative file name: no directory part, not `.`/`..`, no NUL. */
export function isPlainFileName(name: string): boolean {
  return (
    name.length > 0 &&
    name !== '.' &&
    name !== '..' &&
    !name.includes('/') &&
    !name.includes('\\') &&
    !name.includes('\0') &&
    !path.isAbsolute(name)
  );
}
