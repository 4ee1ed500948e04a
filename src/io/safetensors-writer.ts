/**
 * safetensors writing: `SafetensorsWriter` lays the header out up front and takes tensors in any
 * order at their offsets, so a multi-GB model never sits in memory; it writes a temp file beside
 * the destination, renamed into place when every tensor is written (io/atomic.ts). Plus the
 * one-call `writeSafetensors` and the shard index as transformers writes it.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import type { AtomicFileWriter } from './atomic.ts';
import { TensorFileWriter, type SlotWording, type TensorSlot } from './tensor-file-writer.ts';
import { DTYPE_SIZES, f32ToBf16, f32ToF16, isF32Convertible, isKnownDtype } from './dtype.ts';
import {
  bytesOf,
  describe,
  errorText,
  INDEX_FILE,
  isDim,
  isPlainFileName,
  isPlainObject,
  MAX_HEADER_BYTES,
  numel,
  SafetensorsError,
  type TensorEntry,
} from './safetensors-header.ts';

const quote = (name: string) => JSON.stringify(name);

const SAFETENSORS_WORDING: SlotWording<TensorEntry> = {
  error: (file, problem) => new SafetensorsError(file, problem),
  quote,
  layout: (e) => `${e.dtype} [${e.shape.join(', ')}]`,
  listMissing: (names) => `${names.slice(0, 10).map(quote).join(', ')}${names.length > 10 ? `, and ${names.length - 10} more` : ''}`,
};

/**
 * Streams one safetensors file: the header is fixed at create(), tensors are written at their
 * offsets in any order, close() checks that each was written exactly once (TensorFileWriter).
 */
export class SafetensorsWriter extends TensorFileWriter<TensorEntry> {
  /** Size of the data section: the sum of all tensor byte lengths (the index's total_size share). */
  readonly dataBytes: number;

  private constructor(file: AtomicFileWriter, slots: Map<string, TensorSlot<TensorEntry>>, dataStart: number, dataBytes: number) {
    super(file, slots, dataStart, SAFETENSORS_WORDING);
    this.dataBytes = dataBytes;
  }

  /**
   * The header bytes (without the 8-byte length) for `entries` laid out in the given order, padded
   * with spaces to a multiple of 8 like the reference writer. `__metadata__` comes first when given.
   */
  static header(
    file: string,
    entries: readonly TensorEntry[],
    metadata?: Record<string, string>,
  ): { bytes: Buffer; offsets: [number, number][] } {
    const fail = (problem: string): never => {
      throw new SafetensorsError(file, problem);
    };
    const parts: string[] = [];
    if (metadata !== undefined) {
      if (!isPlainObject(metadata)) fail('metadata must be an object of strings');
      for (const [k, v] of Object.entries(metadata)) {
        if (typeof v !== 'string') fail(`metadata value for ${JSON.stringify(k)} must be a string (got ${describe(v)})`);
      }
      parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
    }
    const seen = new Set<string>();
    const offsets: [number, number][] = [];
    let cursor = 0;
    for (const e of entries) {
      const q = JSON.stringify(e.name);
      if (typeof e.name !== 'string' || e.name.length === 0) fail(`tensor name must be a non-empty string (got ${describe(e.name)})`);
      if (e.name === '__metadata__') fail('a tensor cannot be named __metadata__');
      if (seen.has(e.name)) fail(`duplicate tensor name ${q}`);
      seen.add(e.name);
      if (typeof e.dtype !== 'string' || !isKnownDtype(e.dtype)) fail(`tensor ${q}: unknown dtype ${describe(e.dtype)}`);
      if (!Array.isArray(e.shape) || !e.shape.every(isDim)) {
        fail(`tensor ${q}: shape must be an array of non-negative integers (got ${describe(e.shape)})`);
      }
      const n = numel(e.shape) * DTYPE_SIZES[e.dtype]!;
      if (!Number.isSafeInteger(n) || !Number.isSafeInteger(cursor + n)) fail(`tensor ${q}: byte size overflows`);
      const off: [number, number] = [cursor, cursor + n];
      offsets.push(off);
      cursor += n;
      parts.push(`${q}:${JSON.stringify({ dtype: e.dtype, shape: e.shape, data_offsets: off })}`);
    }
    const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
    const pad = (8 - (json.length % 8)) % 8;
    const bytes = Buffer.alloc(json.length + pad, 0x20);
    json.copy(bytes, 0);
    if (bytes.length > MAX_HEADER_BYTES) fail(`header would be ${bytes.length} bytes (limit ${MAX_HEADER_BYTES})`);
    return { bytes, offsets };
  }

  static create(file: string, entries: readonly TensorEntry[], metadata?: Record<string, string>): SafetensorsWriter {
    const abs = path.resolve(file);
    const { bytes, offsets } = SafetensorsWriter.header(abs, entries, metadata);
    const slots = new Map<string, TensorSlot<TensorEntry>>();
    entries.forEach((e, i) => {
      const [begin, end] = offsets[i]!;
      slots.set(e.name, { entry: { name: e.name, dtype: e.dtype, shape: e.shape.slice() }, begin, bytes: end - begin, written: false });
    });
    const dataBytes = offsets.length ? offsets[offsets.length - 1]![1] : 0;
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(bytes.length), 0);
    const out = TensorFileWriter.openFile(abs, [len, bytes], 8 + bytes.length + dataBytes, {
      create: (e) => new SafetensorsError(abs, `cannot create (${errorText(e)})`),
      header: (e) => new SafetensorsError(abs, `cannot write header (${errorText(e)})`),
    });
    return new SafetensorsWriter(out, slots, 8 + bytes.length, dataBytes);
  }

  /** Header entry and data-section offsets of `name`. */
  entry(name: string): { name: string; dtype: string; shape: number[]; begin: number; end: number } {
    const s = this.slot(name);
    return { ...s.entry, shape: s.entry.shape.slice(), begin: s.begin, end: s.begin + s.bytes };
  }

  /** Narrows float32 values to the entry's dtype (F32, F16 or BF16; RNE) and writes them. */
  writeF32(name: string, data: Float32Array): void {
    const { dtype, shape } = this.slot(name).entry;
    if (!isF32Convertible(dtype)) {
      throw this.fail(`tensor ${quote(name)} has dtype ${dtype}; writeF32 writes only F32, F16 and BF16`);
    }
    const n = numel(shape);
    if (data.length !== n) {
      throw this.fail(`tensor ${quote(name)}: got ${data.length} values, expected ${n} ([${shape.join(', ')}])`);
    }
    const bytes = dtype === 'F32' ? bytesOf(data) : bytesOf(dtype === 'F16' ? f32ToF16(data) : f32ToBf16(data));
    this.write(name, bytes);
  }
}

/** Writes a small safetensors file in one call. Float32Array data is narrowed to F32/F16/BF16; bytes are written as is. */
export function writeSafetensors(
  file: string,
  tensors: readonly { name: string; dtype: string; shape: number[]; data: Float32Array | Uint8Array }[],
  metadata?: Record<string, string>,
): void {
  const w = SafetensorsWriter.create(file, tensors, metadata);
  try {
    for (const t of tensors) {
      if (t.data instanceof Float32Array) w.writeF32(t.name, t.data);
      else w.write(t.name, t.data);
    }
    w.close();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/** Compares strings by Unicode code point (Python's str order, used by json.dumps(sort_keys=True)). */
function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    if (xs !== ys) return xs ? 1 : -1; // a surrogate (astral code point) sorts after any BMP unit
    return x - y;
  }
  return a.length - b.length;
}

/** JSON string literal as Python's json.dumps writes it by default (ensure_ascii). */
function pyJsonString(s: string): string {
  return JSON.stringify(s).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Writes `<dir>/model.safetensors.index.json` as transformers' save_pretrained does
 * (`json.dumps(index, indent=2, sort_keys=True) + "\n"`).
 */
export function writeShardedIndex(dir: string, weightMap: Record<string, string>, totalSize: number): void {
  const file = path.join(path.resolve(dir), INDEX_FILE);
  if (!Number.isSafeInteger(totalSize) || totalSize < 0) {
    throw new SafetensorsError(file, `total_size must be a non-negative integer (got ${describe(totalSize)})`);
  }
  const keys = Object.keys(weightMap).sort(compareCodePoints);
  for (const k of keys) {
    const shard = weightMap[k];
    if (typeof shard !== 'string' || !isPlainFileName(shard)) {
      throw new SafetensorsError(file, `weight_map: tensor ${JSON.stringify(k)} maps to ${describe(shard)}, not a plain file name`);
    }
  }
  const body = keys.map((k) => `    ${pyJsonString(k)}: ${pyJsonString(weightMap[k]!)}`).join(',\n');
  const text =
    '{\n' +
    '  "metadata": {\n' +
    `    "total_size": ${totalSize}\n` +
    '  },\n' +
    `  "weight_map": ${keys.length ? `{\n${body}\n  }` : '{}'}\n` +
    '}\n';
  fs.writeFileSync(file, text);
}
