/**
 * GGUF (llama.cpp's model file), version 3, little-endian: a streaming writer and a small
 * validating reader (tests, `rac` checks of its own output).
 *
 * Layout (ggml/docs/gguf.md):
 *   u32 magic "GGUF" · u32 version · u64 tensor_count · u64 kv_count
 *   kv_count × (string key · u32 value_type · value)
 *   tensor_count × (string name · u32 n_dims · u64 ne[n_dims] · u32 ggml_type · u64 offset)
 *   padding to `general.alignment` (default 32) · tensor data, each tensor at an aligned offset
 *   relative to the start of the data section.
 * Strings are u64 length + UTF-8 bytes (no terminator); arrays are u32 element type + u64 count +
 * elements. Dimensions are ggml's `ne`: ne[0] is the innermost (fastest-varying) one, i.e. the
 * REVERSE of a row-major (PyTorch) shape. The writer takes row-major shapes and reverses them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { dequantizeRows, GGML_QUANT_TRAITS, GGML_QUANT_TYPES, type GgmlQuantType } from '../compress/ggml-quants.ts';
import type { AtomicFileWriter } from './atomic.ts';
import { TensorFileWriter, type SlotWording, type TensorSlot } from './tensor-file-writer.ts';
import { f16ToF32, bf16ToF32, f32ToBf16, f32ToF16 } from './dtype.ts';
import { RacError } from '../errors.ts';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

export class GgufError extends RacError {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'GgufError';
  }
}

/** gguf_type: the type tag of a metadata value. */
export enum GgufType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** The ggml tensor types rac writes and reads (ggml_type ids): floats and the block types of compress/ggml-quants.ts. */
export type GgmlTypeName = 'F32' | 'F16' | 'BF16' | GgmlQuantType;
export const GGML_TYPE_ID: Record<GgmlTypeName, number> = {
  F32: 0,
  F16: 1,
  BF16: 30,
  ...(Object.fromEntries(GGML_QUANT_TYPES.map((t) => [t, GGML_QUANT_TRAITS[t].id])) as Record<GgmlQuantType, number>),
};
/** Bytes per block and values per block (ggml type traits: type_size, blck_size). */
const GGML_BLOCK: Record<GgmlTypeName, [number, number]> = {
  F32: [4, 1],
  F16: [2, 1],
  BF16: [2, 1],
  ...(Object.fromEntries(GGML_QUANT_TYPES.map((t) => [t, [GGML_QUANT_TRAITS[t].bytes, GGML_QUANT_TRAITS[t].block]])) as Record<
    GgmlQuantType,
    [number, number]
  >),
};
const isBlockType = (t: GgmlTypeName): t is GgmlQuantType => t !== 'F32' && t !== 'F16' && t !== 'BF16';

/**
 * Bytes of a tensor of `n` values whose innermost dimension is `ne0` (block types need ne0 to be a
 * multiple of their block, as ggml does); NaN when it is not.
 */
export function ggmlTensorBytes(type: GgmlTypeName, ne0: number, n: number): number {
  const [bytes, block] = GGML_BLOCK[type];
  return ne0 % block === 0 ? (n / block) * bytes : NaN;
}
const GGML_TYPE_BY_ID = new Map<number, GgmlTypeName>(Object.entries(GGML_TYPE_ID).map(([k, v]) => [v, k as GgmlTypeName]));

type Scalar = number | bigint | boolean | string;
/** One metadata entry. Arrays carry their element type; nested arrays are not supported. */
export type GgufKv =
  | { key: string; type: Exclude<GgufType, GgufType.ARRAY>; value: Scalar }
  | { key: string; type: GgufType.ARRAY; itemType: Exclude<GgufType, GgufType.ARRAY>; value: Scalar[] };

/** Constructors for metadata entries. */
export const kv = {
  u32: (key: string, value: number): GgufKv => ({ key, type: GgufType.UINT32, value }),
  i32: (key: string, value: number): GgufKv => ({ key, type: GgufType.INT32, value }),
  u64: (key: string, value: number | bigint): GgufKv => ({ key, type: GgufType.UINT64, value }),
  f32: (key: string, value: number): GgufKv => ({ key, type: GgufType.FLOAT32, value }),
  bool: (key: string, value: boolean): GgufKv => ({ key, type: GgufType.BOOL, value }),
  str: (key: string, value: string): GgufKv => ({ key, type: GgufType.STRING, value }),
  strs: (key: string, value: string[]): GgufKv => ({ key, type: GgufType.ARRAY, itemType: GgufType.STRING, value }),
  i32s: (key: string, value: number[]): GgufKv => ({ key, type: GgufType.ARRAY, itemType: GgufType.INT32, value }),
  f32s: (key: string, value: number[]): GgufKv => ({ key, type: GgufType.ARRAY, itemType: GgufType.FLOAT32, value }),
};

/** A tensor to write: `shape` is row-major (PyTorch order); the file stores it reversed. */
export interface GgufTensorEntry {
  name: string;
  type: GgmlTypeName;
  shape: number[];
}

const SCALAR_SIZE: Partial<Record<GgufType, number>> = {
  [GgufType.UINT8]: 1,
  [GgufType.INT8]: 1,
  [GgufType.UINT16]: 2,
  [GgufType.INT16]: 2,
  [GgufType.UINT32]: 4,
  [GgufType.INT32]: 4,
  [GgufType.FLOAT32]: 4,
  [GgufType.BOOL]: 1,
  [GgufType.UINT64]: 8,
  [GgufType.INT64]: 8,
  [GgufType.FLOAT64]: 8,
};

/** Growable little-endian byte sink for the header. */
class Sink {
  private buf = Buffer.alloc(1 << 16);
  length = 0;
  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.length + n) cap *= 2;
    const nb = Buffer.alloc(cap);
    this.buf.copy(nb, 0, 0, this.length);
    this.buf = nb;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.length);
    this.length += 1;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.length);
    this.length += 4;
  }
  u64(v: number | bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.length);
    this.length += 8;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.ensure(b.length);
    b.copy(this.buf, this.length);
    this.length += b.length;
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.ensure(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  scalar(file: string, key: string, type: GgufType, v: Scalar): void {
    const bad = (): never => {
      throw new GgufError(file, `metadata "${key}": value ${JSON.stringify(String(v))} does not fit type ${GgufType[type]}`);
    };
    const int = (lo: number, hi: number): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) bad();
      return v as number;
    };
    switch (type) {
      case GgufType.UINT8:
        this.u8(int(0, 0xff));
        return;
      case GgufType.INT8:
        this.ensure(1);
        this.buf.writeInt8(int(-0x80, 0x7f), this.length);
        this.length += 1;
        return;
      case GgufType.UINT16:
        this.ensure(2);
        this.buf.writeUInt16LE(int(0, 0xffff), this.length);
        this.length += 2;
        return;
      case GgufType.INT16:
        this.ensure(2);
        this.buf.writeInt16LE(int(-0x8000, 0x7fff), this.length);
        this.length += 2;
        return;
      case GgufType.UINT32:
        this.u32(int(0, 0xffffffff));
        return;
      case GgufType.INT32:
        this.ensure(4);
        this.buf.writeInt32LE(int(-0x80000000, 0x7fffffff), this.length);
        this.length += 4;
        return;
      case GgufType.FLOAT32:
        if (typeof v !== 'number') bad();
        this.ensure(4);
        this.buf.writeFloatLE(v as number, this.length);
        this.length += 4;
        return;
      case GgufType.FLOAT64:
        if (typeof v !== 'number') bad();
        this.ensure(8);
        this.buf.writeDoubleLE(v as number, this.length);
        this.length += 8;
        return;
      case GgufType.BOOL:
        if (typeof v !== 'boolean') bad();
        this.u8(v ? 1 : 0);
        return;
      case GgufType.STRING:
        if (typeof v !== 'string') bad();
        this.str(v as string);
        return;
      case GgufType.UINT64:
      case GgufType.INT64: {
        if (typeof v !== 'bigint' && (typeof v !== 'number' || !Number.isSafeInteger(v))) bad();
        const b = BigInt(v as number | bigint);
        this.ensure(8);
        if (type === GgufType.UINT64) {
          if (b < 0n || b >= 1n << 64n) bad();
          this.buf.writeBigUInt64LE(b, this.length);
        } else {
          if (b < -(1n << 63n) || b >= 1n << 63n) bad();
          this.buf.writeBigInt64LE(b, this.length);
        }
        this.length += 8;
        return;
      }
      default:
        throw new GgufError(file, `metadata "${key}": unsupported value type ${String(type)}`);
    }
  }
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

const GGUF_WORDING: SlotWording<GgufTensorEntry> = {
  error: (file, problem) => new GgufError(file, problem),
  quote: (name) => `"${name}"`,
  layout: (e) => `${e.type} [${e.shape.join(', ')}]`,
  listMissing: (names) => names.slice(0, 10).join(', '),
};

/**
 * Streams one GGUF file. The header (metadata + tensor infos) is fixed at create(); tensors are
 * written at their offsets in any order (TensorFileWriter). The file is written as
 * `<out>.tmp-<pid>` and renamed to `<out>` by close() once every tensor is in: an interrupted
 * export never leaves a partial file under the final name.
 */
export class GgufWriter extends TensorFileWriter<GgufTensorEntry> {
  readonly alignment: number;
  readonly fileBytes: number;

  private constructor(
    file: AtomicFileWriter,
    slots: Map<string, TensorSlot<GgufTensorEntry>>,
    alignment: number,
    dataStart: number,
    fileBytes: number,
  ) {
    super(file, slots, dataStart, GGUF_WORDING);
    this.alignment = alignment;
    this.fileBytes = fileBytes;
  }

  /**
   * Serialises the header. `general.alignment` in `kvs` (a u32) sets the alignment; otherwise 32.
   */
  static header(
    file: string,
    kvs: readonly GgufKv[],
    tensors: readonly GgufTensorEntry[],
  ): { bytes: Buffer; alignment: number; offsets: number[]; dataBytes: number } {
    const fail = (problem: string): never => {
      throw new GgufError(file, problem);
    };
    const keys = new Set<string>();
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    for (const e of kvs) {
      if (typeof e.key !== 'string' || e.key.length === 0) fail('metadata key must be a non-empty string');
      if (keys.has(e.key)) fail(`duplicate metadata key "${e.key}"`);
      keys.add(e.key);
      if (e.key === 'general.alignment') {
        if (e.type !== GgufType.UINT32) fail('general.alignment must be a UINT32');
        const a = e.value as number;
        if (!Number.isInteger(a) || a < 8 || (a & (a - 1)) !== 0) fail(`general.alignment must be a power of two ≥ 8, got ${a}`);
        alignment = a;
      }
    }
    const s = new Sink();
    s.u32(GGUF_MAGIC);
    s.u32(GGUF_VERSION);
    s.u64(tensors.length);
    s.u64(kvs.length);
    for (const e of kvs) {
      s.str(e.key);
      s.u32(e.type);
      if (e.type === GgufType.ARRAY) {
        if (e.itemType === (GgufType.ARRAY as number)) fail(`metadata "${e.key}": nested arrays are not supported`);
        s.u32(e.itemType);
        s.u64(e.value.length);
        for (const v of e.value) s.scalar(file, e.key, e.itemType, v);
      } else {
        s.scalar(file, e.key, e.type, e.value);
      }
    }
    const names = new Set<string>();
    const offsets: number[] = [];
    let cursor = 0;
    for (const t of tensors) {
      if (typeof t.name !== 'string' || t.name.length === 0) fail('tensor name must be a non-empty string');
      if (Buffer.byteLength(t.name, 'utf8') >= 64) fail(`tensor name "${t.name}" is longer than llama.cpp's 63-byte limit`);
      if (names.has(t.name)) fail(`duplicate tensor name "${t.name}"`);
      names.add(t.name);
      if (!(t.type in GGML_TYPE_ID)) fail(`tensor "${t.name}": unsupported type ${String(t.type)}`);
      if (t.shape.length < 1 || t.shape.length > 4 || !t.shape.every((d) => Number.isSafeInteger(d) && d > 0)) {
        fail(`tensor "${t.name}": shape must have 1 to 4 positive dimensions, got [${t.shape.join(', ')}]`);
      }
      const tb = ggmlTensorBytes(t.type, t.shape[t.shape.length - 1]!, numel(t.shape));
      if (!Number.isFinite(tb))
        fail(
          `tensor "${t.name}": ${t.type} needs rows of a multiple of ${GGML_BLOCK[t.type][1]} values, got ${t.shape[t.shape.length - 1]}`,
        );
      s.str(t.name);
      s.u32(t.shape.length);
      for (let i = t.shape.length - 1; i >= 0; i--) s.u64(t.shape[i]!); // ne[0] = innermost
      s.u32(GGML_TYPE_ID[t.type]);
      cursor = alignUp(cursor, alignment);
      s.u64(cursor);
      offsets.push(cursor);
      cursor += tb;
    }
    s.pad(alignment);
    return { bytes: Buffer.from(s.bytes()), alignment, offsets, dataBytes: alignUp(cursor, alignment) };
  }

  static create(file: string, kvs: readonly GgufKv[], tensors: readonly GgufTensorEntry[]): GgufWriter {
    const abs = path.resolve(file);
    const { bytes, alignment, offsets, dataBytes } = GgufWriter.header(abs, kvs, tensors);
    const slots = new Map<string, TensorSlot<GgufTensorEntry>>();
    tensors.forEach((t, i) => {
      slots.set(t.name, {
        entry: { ...t, shape: t.shape.slice() },
        begin: offsets[i]!,
        bytes: ggmlTensorBytes(t.type, t.shape[t.shape.length - 1]!, numel(t.shape)),
        written: false,
      });
    });
    // Padding after the last tensor (and between tensors) reads as zeros.
    const out = TensorFileWriter.openFile(abs, [bytes], bytes.length + dataBytes, {
      create: (e) => new GgufError(abs, `cannot create ${abs}.tmp-${process.pid} (${(e as Error).message})`),
      header: (e) => new GgufError(abs, `cannot write header (${(e as Error).message})`),
    });
    return new GgufWriter(out, slots, alignment, bytes.length, bytes.length + dataBytes);
  }

  /** Narrows f32 values to the tensor's type (F16/BF16 round to nearest even) and writes them. */
  writeF32(name: string, data: Float32Array): void {
    const { entry } = this.slot(name);
    const n = numel(entry.shape);
    if (data.length !== n) throw this.fail(`tensor "${name}": got ${data.length} values, expected ${n}`);
    const type = entry.type;
    if (isBlockType(type)) throw this.fail(`tensor "${name}" is ${type}: write its blocks with write()`);
    const typed = type === 'F32' ? data : type === 'F16' ? f32ToF16(data) : f32ToBf16(data);
    this.write(name, new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength));
  }
}

// ---------------------------------------------------------------------------------------------
// Reader

export type GgufValue = Scalar | Scalar[];

export interface GgufTensorInfo {
  name: string;
  /** ggml `ne`: ne[0] innermost. */
  ne: number[];
  /** Row-major shape (ne reversed). */
  shape: number[];
  typeId: number;
  /** The type's name when rac knows it (F32, F16, BF16, Q4_0, Q8_0), else undefined. */
  type: GgmlTypeName | undefined;
  /** Offset relative to the data section. */
  offset: number;
}

export interface GgufFile {
  file: string;
  version: number;
  metadata: Map<string, GgufValue>;
  /** The declared type of each metadata value (ARRAY entries: the item type in `itemTypes`). */
  types: Map<string, GgufType>;
  itemTypes: Map<string, GgufType>;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute file offset of the data section. */
  dataStart: number;
  fileBytes: number;
}

/** Reads through a file descriptor in chunks; every read is bounds-checked against the file. */
class Cursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly fail: (p: string) => never,
  ) {}
  private need(n: number, what: string): number {
    if (n < 0 || this.pos + n > this.size) this.fail(`truncated: ${what} needs ${n} bytes at offset ${this.pos}, file has ${this.size}`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, 1 << 20), this.size - this.pos);
      this.buf = Buffer.alloc(len);
      let done = 0;
      while (done < len) {
        const r = fs.readSync(this.fd, this.buf, done, len - done, this.pos + done);
        if (r === 0) this.fail(`short read at offset ${this.pos + done}`);
        done += r;
      }
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }
  /** Reads through `f` at the position need() returns (need() may replace the buffer: call it first). */
  private at<T>(n: number, what: string, f: (b: Buffer, at: number) => T): T {
    const at = this.need(n, what);
    return f(this.buf, at);
  }
  u8(what: string): number {
    return this.at(1, what, (b, at) => b.readUInt8(at));
  }
  u32(what: string): number {
    return this.at(4, what, (b, at) => b.readUInt32LE(at));
  }
  u64(what: string): number {
    const v = this.at(8, what, (b, at) => b.readBigUInt64LE(at));
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is too large`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.u64(`${what} length`);
    if (n > this.size - this.pos) this.fail(`${what}: string of ${n} bytes at offset ${this.pos} runs past the end of the file`);
    const at = this.need(n, what);
    return this.buf.toString('utf8', at, at + n);
  }
  scalar(type: GgufType, what: string): Scalar {
    switch (type) {
      case GgufType.UINT8:
        return this.u8(what);
      case GgufType.INT8:
        return this.at(1, what, (b, at) => b.readInt8(at));
      case GgufType.UINT16:
        return this.at(2, what, (b, at) => b.readUInt16LE(at));
      case GgufType.INT16:
        return this.at(2, what, (b, at) => b.readInt16LE(at));
      case GgufType.UINT32:
        return this.u32(what);
      case GgufType.INT32:
        return this.at(4, what, (b, at) => b.readInt32LE(at));
      case GgufType.FLOAT32:
        return this.at(4, what, (b, at) => b.readFloatLE(at));
      case GgufType.FLOAT64:
        return this.at(8, what, (b, at) => b.readDoubleLE(at));
      case GgufType.BOOL: {
        const b = this.u8(what);
        if (b > 1) this.fail(`${what}: bool byte ${b}`);
        return b === 1;
      }
      case GgufType.STRING:
        return this.str(what);
      case GgufType.UINT64:
        return this.at(8, what, (b, at) => b.readBigUInt64LE(at));
      case GgufType.INT64:
        return this.at(8, what, (b, at) => b.readBigInt64LE(at));
      default:
        return this.fail(`${what}: unknown value type ${type}`);
    }
  }
}

/** Parses and validates a GGUF file's header (metadata and tensor infos; data is not read). */
export function readGguf(file: string): GgufFile {
  const abs = path.resolve(file);
  const fail = (problem: string): never => {
    throw new GgufError(abs, problem);
  };
  let fd: number;
  try {
    fd = fs.openSync(abs, 'r');
  } catch (e) {
    return fail(`cannot open (${(e as Error).message})`);
  }
  try {
    const size = fs.fstatSync(fd).size;
    const c = new Cursor(fd, size, fail);
    const magic = c.u32('magic');
    if (magic !== GGUF_MAGIC) fail(`not a GGUF file (magic 0x${magic.toString(16)})`);
    const version = c.u32('version');
    if (version !== 2 && version !== 3) fail(`unsupported GGUF version ${version}`);
    const nTensors = c.u64('tensor count');
    const nKv = c.u64('metadata count');
    // Each entry takes at least 8 bytes of the file: a cheap bound against absurd counts.
    if (nTensors > size / 8 || nKv > size / 8) fail(`tensor count ${nTensors} / metadata count ${nKv} cannot fit in ${size} bytes`);
    const metadata = new Map<string, GgufValue>();
    const types = new Map<string, GgufType>();
    const itemTypes = new Map<string, GgufType>();
    for (let i = 0; i < nKv; i++) {
      const key = c.str(`metadata key #${i}`);
      if (metadata.has(key)) fail(`duplicate metadata key "${key}"`);
      const type = c.u32(`type of "${key}"`) as GgufType;
      types.set(key, type);
      if (type === GgufType.ARRAY) {
        const it = c.u32(`item type of "${key}"`) as GgufType;
        if (it === GgufType.ARRAY) fail(`metadata "${key}": nested arrays are not supported`);
        const n = c.u64(`length of "${key}"`);
        const minItem = SCALAR_SIZE[it] ?? 8;
        if (n * minItem > size - c.pos) fail(`metadata "${key}": array of ${n} items runs past the end of the file`);
        const arr: Scalar[] = new Array(n);
        for (let j = 0; j < n; j++) arr[j] = c.scalar(it, `"${key}"[${j}]`);
        itemTypes.set(key, it);
        metadata.set(key, arr);
      } else {
        metadata.set(key, c.scalar(type, `"${key}"`));
      }
    }
    let alignment = GGUF_DEFAULT_ALIGNMENT;
    if (metadata.has('general.alignment')) {
      const a = metadata.get('general.alignment');
      if (types.get('general.alignment') !== GgufType.UINT32 || typeof a !== 'number' || a === 0 || (a & (a - 1)) !== 0) {
        fail(`general.alignment must be a power-of-two UINT32, got ${String(a)}`);
      }
      alignment = a as number;
    }
    const tensors: GgufTensorInfo[] = [];
    const names = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      const name = c.str(`tensor name #${i}`);
      if (names.has(name)) fail(`duplicate tensor name "${name}"`);
      names.add(name);
      const nd = c.u32(`dims of "${name}"`);
      if (nd < 1 || nd > 4) fail(`tensor "${name}": ${nd} dimensions (1 to 4 allowed)`);
      const ne: number[] = [];
      for (let d = 0; d < nd; d++) ne.push(c.u64(`ne[${d}] of "${name}"`));
      const typeId = c.u32(`type of "${name}"`);
      const offset = c.u64(`offset of "${name}"`);
      if (offset % alignment !== 0) fail(`tensor "${name}": offset ${offset} is not a multiple of the alignment ${alignment}`);
      tensors.push({ name, ne, shape: ne.slice().reverse(), typeId, type: GGML_TYPE_BY_ID.get(typeId), offset });
    }
    const dataStart = alignUp(c.pos, alignment);
    for (const t of tensors) {
      if (!t.type) continue; // other quantized types: sizes not checked here
      const bytes = ggmlTensorBytes(t.type, t.ne[0]!, numel(t.ne));
      if (!Number.isFinite(bytes)) fail(`tensor "${t.name}": ${t.type} with ne[0] = ${t.ne[0]} (not a multiple of its block)`);
      if (dataStart + t.offset + bytes > size)
        fail(`tensor "${t.name}": data [${t.offset}, ${t.offset + bytes}) runs past the end of the file`);
    }
    const spans = tensors
      .filter((t) => t.type)
      .map((t) => ({ name: t.name, begin: t.offset, end: t.offset + ggmlTensorBytes(t.type!, t.ne[0]!, numel(t.ne)) }))
      .sort((a, b) => a.begin - b.begin);
    for (let i = 1; i < spans.length; i++) {
      if (spans[i]!.begin < spans[i - 1]!.end) fail(`tensors "${spans[i - 1]!.name}" and "${spans[i]!.name}" overlap`);
    }
    return { file: abs, version, metadata, types, itemTypes, tensors, alignment, dataStart, fileBytes: size };
  } finally {
    fs.closeSync(fd);
  }
}

/** The raw bytes of one tensor of a parsed file (a type rac knows). */
export function readGgufTensorBytes(g: GgufFile, name: string): Uint8Array {
  const t = g.tensors.find((x) => x.name === name);
  if (!t) throw new GgufError(g.file, `no tensor "${name}"`);
  if (!t.type) throw new GgufError(g.file, `tensor "${name}" has ggml type ${t.typeId}; rac reads ${Object.keys(GGML_TYPE_ID).join(', ')}`);
  const n = numel(t.ne);
  const bytes = Buffer.alloc(ggmlTensorBytes(t.type, t.ne[0]!, n));
  const fd = fs.openSync(g.file, 'r');
  try {
    let done = 0;
    while (done < bytes.length) {
      const r = fs.readSync(fd, bytes, done, bytes.length - done, g.dataStart + t.offset + done);
      if (r === 0) throw new GgufError(g.file, `short read in tensor "${name}"`);
      done += r;
    }
  } finally {
    fs.closeSync(fd);
  }
  return new Uint8Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

/** Reads one tensor of a parsed file (float or block type), decoded to f32 (row-major, `shape` order). */
export function readGgufTensorF32(g: GgufFile, name: string): Float32Array {
  const bytes = readGgufTensorBytes(g, name);
  const t = g.tensors.find((x) => x.name === name)!;
  const type = t.type!;
  if (isBlockType(type)) return dequantizeRows(type, bytes, numel(t.ne));
  if (type === 'F32') return new Float32Array(bytes.buffer);
  const u16 = new Uint16Array(bytes.buffer);
  return type === 'F16' ? f16ToF32(u16) : bf16ToF32(u16);
}
