/**
 * safetensors reading and writing, streamed through positional file I/O.
 *
 * Format (https://github.com/huggingface/safetensors): u64 little-endian header length N, then N
 * bytes of UTF-8 JSON `{"__metadata__": {str: str}?, name: {dtype, shape, data_offsets: [b, e]}…}`
 * (padded with spaces to a multiple of 8 by the reference writer), then the data section; offsets
 * are relative to the data section, which the tensors must cover exactly: no gaps, no overlaps,
 * no trailing bytes.
 *
 * Readers hold a file descriptor and read only the header at open; tensors are read one at a time
 * at their offsets. The writer lays the header out up front and takes tensors in any order, so a
 * multi-GB model never sits in memory; it writes a temp file beside the destination, renamed into
 * place when every tensor is written (`io/atomic.ts`). Every problem is a `SafetensorsError`
 * naming the file.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  DTYPE_SIZES,
  bf16ToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  findNonFinite,
  isF32Convertible,
  isKnownDtype,
} from './dtype.ts';
import { AtomicFileWriter } from './atomic.ts';
import { ModelFileError, modelDirRoots, modelFilePath } from './model-file.ts';

export { findNonFinite };

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
const IO_CHUNK = 1 << 30;

/** A problem with one safetensors file (or model directory / index); the message starts with its path. */
export class SafetensorsError extends Error {
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

function errorText(e: unknown): string {
  if (e instanceof Error) return (e as NodeJS.ErrnoException).code ? `${(e as NodeJS.ErrnoException).code}: ${e.message}` : e.message;
  return String(e);
}

function describe(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isDim(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Number of elements of `shape` (1 for a scalar); may exceed 2^53 for absurd shapes (then unsafe). */
function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function readFully(fd: number, target: Uint8Array, position: number): number {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(IO_CHUNK, target.length - done);
    const got = fs.readSync(fd, target, done, want, position + done);
    if (got === 0) break;
    done += got;
  }
  return done;
}

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * The members of a JSON object text, in document order, each with the raw text of its value.
 * `text` must already be known to be valid JSON whose top level is an object. Needed because
 * JSON.parse drops duplicate keys silently and moves integer-like keys ("0", "1") to the front.
 */
function objectMembers(text: string): { key: string; raw: string }[] {
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
function parseJsonObject(
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

// ---------------------------------------------------------------------------------------------
// reading one file

/** One safetensors file, open for reading. Only the header is read at open. */
export class SafetensorsFile {
  /** Absolute path. */
  readonly path: string;
  /** Tensors in header order. */
  readonly tensors: Map<string, TensorInfo>;
  /** The header's `__metadata__` map, if any. */
  readonly metadata: Record<string, string> | undefined;
  /** Byte offset of the data section (8 + header length). */
  readonly dataStart: number;
  private fd: number | undefined;

  private constructor(
    file: string,
    fd: number,
    tensors: Map<string, TensorInfo>,
    metadata: Record<string, string> | undefined,
    dataStart: number,
  ) {
    this.path = file;
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
    this.dataStart = dataStart;
  }

  static open(file: string): SafetensorsFile {
    const abs = path.resolve(file);
    const fail = (problem: string): never => {
      throw new SafetensorsError(abs, problem);
    };
    let fd: number;
    try {
      // Non-blocking, so that a FIFO in place of a shard is refused by the fstat below instead of
      // blocking the open until a writer appears.
      fd = fs.openSync(abs, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
    } catch (e) {
      return fail(`cannot open (${errorText(e)})`);
    }
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) fail(`not a regular file (${st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'a device or other special file'})`);
      const size = st.size;
      if (size < 8) fail(`file too short: ${size} bytes, a safetensors file starts with an 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      if (readFully(fd, lenBuf, 0) !== 8) fail('short read of the header length');
      const n64 = lenBuf.readBigUInt64LE(0);
      if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} is absurd (limit ${MAX_HEADER_BYTES} bytes)`);
      const n = Number(n64);
      if (8 + n > size) fail(`header length ${n} runs past the end of the file (${size} bytes)`);
      const headerBytes = Buffer.alloc(n);
      if (readFully(fd, headerBytes, 8) !== n) fail('short read of the header');
      const { members } = parseJsonObject(headerBytes, fail, 'header');
      const dataStart = 8 + n;
      const dataLength = size - dataStart;
      const tensors = parseHeader(abs, members, dataStart, dataLength, fail);
      return new SafetensorsFile(abs, fd, tensors.tensors, tensors.metadata, dataStart);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  /** Header entry of `name`; throws when absent. */
  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, `no tensor ${JSON.stringify(name)}`);
    return t;
  }

  /** The raw little-endian bytes of one tensor (a fresh, unpooled buffer starting at offset 0). */
  readRaw(name: string): Buffer {
    const t = this.info(name);
    const ab = new ArrayBuffer(t.byteLength);
    this.readInto(t, new Uint8Array(ab));
    return Buffer.from(ab);
  }

  /** One F32/F16/BF16 tensor widened to float32 (row-major, as stored). */
  readF32(name: string): Float32Array {
    const t = this.info(name);
    if (!isF32Convertible(t.dtype)) {
      throw new SafetensorsError(this.path, `tensor ${JSON.stringify(name)} has dtype ${t.dtype}; readF32 reads only F32, F16 and BF16`);
    }
    const ab = new ArrayBuffer(t.byteLength);
    this.readInto(t, new Uint8Array(ab));
    if (t.dtype === 'F32') return new Float32Array(ab);
    if (t.dtype === 'F16') return f16ToF32(new Uint16Array(ab));
    return bf16ToF32(new Uint16Array(ab));
  }

  close(): void {
    if (this.fd !== undefined) {
      fs.closeSync(this.fd);
      this.fd = undefined;
    }
  }

  private readInto(t: TensorInfo, target: Uint8Array): void {
    if (this.fd === undefined) throw new SafetensorsError(this.path, `read of ${JSON.stringify(t.name)} after close()`);
    const got = readFully(this.fd, target, t.start);
    if (got !== t.byteLength) {
      throw new SafetensorsError(
        this.path,
        `short read of tensor ${JSON.stringify(t.name)}: ${got} of ${t.byteLength} bytes (file changed since open?)`,
      );
    }
  }
}

/** Validates the header members against the data section; returns tensors in header order. */
function parseHeader(
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
function isPlainFileName(name: string): boolean {
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

/** An HF model directory: `model.safetensors`, or shards listed in `model.safetensors.index.json`. */
export class SafetensorsModel {
  /** Absolute path of the model directory. */
  readonly dir: string;
  /** Shard file names, sorted. */
  readonly shards: string[];
  /** The index's `metadata` object (e.g. `{total_size}`), when sharded and present. */
  readonly indexMetadata: Record<string, unknown> | undefined;
  private readonly files: Map<string, SafetensorsFile>;
  private readonly where: Map<string, string>;
  private readonly order: string[];

  private constructor(
    dir: string,
    files: Map<string, SafetensorsFile>,
    indexMetadata: Record<string, unknown> | undefined,
  ) {
    this.dir = dir;
    this.files = files;
    this.shards = [...files.keys()].sort();
    this.indexMetadata = indexMetadata;
    this.where = new Map();
    this.order = [];
    for (const shard of this.shards) {
      for (const name of files.get(shard)!.tensors.keys()) {
        this.where.set(name, shard);
        this.order.push(name);
      }
    }
  }

  static open(dir: string): SafetensorsModel {
    const absDir = path.resolve(dir);
    let st: fs.Stats;
    try {
      st = fs.statSync(absDir);
    } catch (e) {
      throw new SafetensorsError(absDir, `cannot open model directory (${errorText(e)})`);
    }
    if (!st.isDirectory()) throw new SafetensorsError(absDir, 'not a directory');
    // Every file is checked by model-file.ts: inside the directory (or its hub cache blobs) and regular.
    const asStError = <T>(f: () => T): T => {
      try {
        return f();
      } catch (e) {
        if (e instanceof ModelFileError) throw new SafetensorsError(e.file, e.problem);
        throw e;
      }
    };
    const roots = asStError(() => modelDirRoots(absDir));
    const indexPath = asStError(() => modelFilePath(absDir, INDEX_FILE, roots));
    if (indexPath !== undefined) return SafetensorsModel.openSharded(absDir, indexPath, roots);
    const single = asStError(() => modelFilePath(absDir, SINGLE_FILE, roots));
    if (single !== undefined) {
      const f = SafetensorsFile.open(single);
      return new SafetensorsModel(absDir, new Map([[SINGLE_FILE, f]]), undefined);
    }
    throw new SafetensorsError(absDir, `no ${SINGLE_FILE} or ${INDEX_FILE} in this directory`);
  }

  private static openSharded(absDir: string, indexPath: string, roots: readonly string[]): SafetensorsModel {
    const fail = (problem: string): never => {
      throw new SafetensorsError(indexPath, problem);
    };
    let bytes: Buffer;
    try {
      const fd = fs.openSync(indexPath, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
      try {
        if (!fs.fstatSync(fd).isFile()) fail('not a regular file');
        bytes = fs.readFileSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    } catch (e) {
      if (e instanceof SafetensorsError) throw e;
      return fail(`cannot read (${errorText(e)})`);
    }
    const { value, members } = parseJsonObject(bytes, fail, 'index');
    let indexMetadata: Record<string, unknown> | undefined;
    if ('metadata' in value && value.metadata !== null) {
      if (!isPlainObject(value.metadata)) fail(`metadata must be an object (got ${describe(value.metadata)})`);
      indexMetadata = value.metadata as Record<string, unknown>;
    }
    const wm = members.filter((m) => m.key === 'weight_map');
    if (wm.length === 0) fail('no weight_map');
    if (wm.length > 1) fail('duplicate weight_map');
    if (!isPlainObject(value.weight_map)) fail(`weight_map must be an object (got ${describe(value.weight_map)})`);
    // weight_map: tensor name → shard file name, checked in document order for duplicates
    const weightMap = new Map<string, string>();
    for (const { key, raw } of objectMembers(wm[0]!.raw)) {
      const q = JSON.stringify(key);
      if (weightMap.has(key)) fail(`weight_map: duplicate tensor name ${q}`);
      const shard: unknown = JSON.parse(raw);
      if (typeof shard !== 'string') fail(`weight_map: tensor ${q} maps to ${describe(shard)}, not a file name`);
      if (!isPlainFileName(shard as string)) {
        fail(`weight_map: tensor ${q} maps to shard ${JSON.stringify(shard)}, which is not a plain file name inside the model directory`);
      }
      weightMap.set(key, shard as string);
    }
    const shardNames = [...new Set(weightMap.values())].sort();
    const files = new Map<string, SafetensorsFile>();
    try {
      for (const shard of shardNames) {
        let p: string | undefined;
        try {
          p = modelFilePath(absDir, shard, roots);
        } catch (e) {
          if (e instanceof ModelFileError) fail(`shard ${JSON.stringify(shard)} ${e.problem}`);
          throw e;
        }
        if (p === undefined) fail(`shard ${JSON.stringify(shard)} does not exist`);
        files.set(shard, SafetensorsFile.open(p!));
      }
      for (const [name, shard] of weightMap) {
        if (!files.get(shard)!.tensors.has(name)) {
          fail(`weight_map puts tensor ${JSON.stringify(name)} in shard ${JSON.stringify(shard)}, whose header has no such tensor`);
        }
      }
      for (const [shard, f] of files) {
        for (const name of f.tensors.keys()) {
          const mapped = weightMap.get(name);
          if (mapped !== shard) {
            fail(
              `shard ${JSON.stringify(shard)} holds tensor ${JSON.stringify(name)}, which weight_map ${mapped === undefined ? 'does not list' : `assigns to ${JSON.stringify(mapped)}`}`,
            );
          }
        }
      }
    } catch (e) {
      for (const f of files.values()) f.close();
      throw e;
    }
    return new SafetensorsModel(absDir, files, indexMetadata);
  }

  /** Every tensor name: shards in sorted order, each in header (on-disk) order. */
  names(): string[] {
    return this.order.slice();
  }

  has(name: string): boolean {
    return this.where.has(name);
  }

  /** The shard file name holding `name`. */
  shardOf(name: string): string {
    const s = this.where.get(name);
    if (s === undefined) throw new SafetensorsError(this.dir, `no tensor ${JSON.stringify(name)} in this model`);
    return s;
  }

  info(name: string): TensorInfo {
    return this.files.get(this.shardOf(name))!.info(name);
  }

  readRaw(name: string): Buffer {
    return this.files.get(this.shardOf(name))!.readRaw(name);
  }

  readF32(name: string): Float32Array {
    return this.files.get(this.shardOf(name))!.readF32(name);
  }

  /** The open file of one shard (by file name). */
  shard(file: string): SafetensorsFile {
    const f = this.files.get(file);
    if (!f) throw new SafetensorsError(this.dir, `no shard ${JSON.stringify(file)} in this model`);
    return f;
  }

  close(): void {
    for (const f of this.files.values()) f.close();
  }
}

// ---------------------------------------------------------------------------------------------
// writing

interface WriterSlot {
  entry: TensorEntry;
  begin: number;
  end: number;
  written: boolean;
}

/**
 * Streams one safetensors file: the header is fixed at create(), tensors are written at their
 * offsets in any order, close() checks that each was written exactly once.
 */
export class SafetensorsWriter {
  /** Absolute path. */
  readonly path: string;
  /** Byte offset of the data section (8 + padded header length). */
  readonly dataStart: number;
  /** Size of the data section: the sum of all tensor byte lengths (the index's total_size share). */
  readonly dataBytes: number;
  private readonly slots: Map<string, WriterSlot>;
  private readonly file: AtomicFileWriter;

  private constructor(file: AtomicFileWriter, slots: Map<string, WriterSlot>, dataStart: number, dataBytes: number) {
    this.path = file.path;
    this.file = file;
    this.slots = slots;
    this.dataStart = dataStart;
    this.dataBytes = dataBytes;
  }

  /**
   * The header bytes (without the 8-byte length) for `entries` laid out in the given order, padded
   * with spaces to a multiple of 8 like the reference writer. `__metadata__` comes first when given.
   */
  static header(file: string, entries: readonly TensorEntry[], metadata?: Record<string, string>): { bytes: Buffer; offsets: [number, number][] } {
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
    const slots = new Map<string, WriterSlot>();
    entries.forEach((e, i) => {
      const [begin, end] = offsets[i]!;
      slots.set(e.name, { entry: { name: e.name, dtype: e.dtype, shape: e.shape.slice() }, begin, end, written: false });
    });
    const dataBytes = offsets.length ? offsets[offsets.length - 1]![1] : 0;
    let out: AtomicFileWriter;
    try {
      out = new AtomicFileWriter(abs);
    } catch (e) {
      throw new SafetensorsError(abs, `cannot create (${errorText(e)})`);
    }
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(bytes.length), 0);
      out.writeAt(len, 0);
      out.writeAt(bytes, 8);
      out.setSize(8 + bytes.length + dataBytes);
    } catch (e) {
      out.discard();
      throw new SafetensorsError(abs, `cannot write header (${errorText(e)})`);
    }
    return new SafetensorsWriter(out, slots, 8 + bytes.length, dataBytes);
  }

  /** Header entry and data-section offsets of `name`. */
  entry(name: string): { name: string; dtype: string; shape: number[]; begin: number; end: number } {
    const s = this.slot(name);
    return { ...s.entry, shape: s.entry.shape.slice(), begin: s.begin, end: s.end };
  }

  /** Writes the raw little-endian bytes of one tensor at its offset. */
  write(name: string, data: Uint8Array): void {
    const s = this.slot(name);
    if (!this.file.isOpen) throw new SafetensorsError(this.path, `write of ${JSON.stringify(name)} after close()`);
    if (s.written) throw new SafetensorsError(this.path, `tensor ${JSON.stringify(name)} written twice`);
    const want = s.end - s.begin;
    if (data.byteLength !== want) {
      throw new SafetensorsError(
        this.path,
        `tensor ${JSON.stringify(name)}: got ${data.byteLength} bytes, expected ${want} (${s.entry.dtype} [${s.entry.shape.join(', ')}])`,
      );
    }
    this.file.writeAt(data, this.dataStart + s.begin);
    s.written = true;
  }

  /** Narrows float32 values to the entry's dtype (F32, F16 or BF16; RNE) and writes them. */
  writeF32(name: string, data: Float32Array): void {
    const s = this.slot(name);
    const { dtype, shape } = s.entry;
    if (!isF32Convertible(dtype)) {
      throw new SafetensorsError(this.path, `tensor ${JSON.stringify(name)} has dtype ${dtype}; writeF32 writes only F32, F16 and BF16`);
    }
    const n = numel(shape);
    if (data.length !== n) {
      throw new SafetensorsError(this.path, `tensor ${JSON.stringify(name)}: got ${data.length} values, expected ${n} ([${shape.join(', ')}])`);
    }
    const bytes = dtype === 'F32' ? bytesOf(data) : bytesOf(dtype === 'F16' ? f32ToF16(data) : f32ToBf16(data));
    this.write(name, bytes);
  }

  /** Names not yet written. */
  missing(): string[] {
    return [...this.slots.values()].filter((s) => !s.written).map((s) => s.entry.name);
  }

  /**
   * Checks every tensor was written, then fsyncs, closes and renames the file into place. Throws
   * naming the missing tensors (and removes the partial file).
   */
  close(): void {
    if (!this.file.isOpen) return;
    const missing = this.missing();
    if (missing.length) {
      this.file.discard();
      const shown = missing.slice(0, 10).map((m) => JSON.stringify(m)).join(', ');
      throw new SafetensorsError(
        this.path,
        `${missing.length} tensor(s) never written: ${shown}${missing.length > 10 ? `, and ${missing.length - 10} more` : ''}`,
      );
    }
    this.file.commit();
  }

  /** Closes without checks and removes the partial file. */
  abort(): void {
    this.file.discard();
  }

  private slot(name: string): WriterSlot {
    const s = this.slots.get(name);
    if (!s) throw new SafetensorsError(this.path, `no tensor ${JSON.stringify(name)} in this file's header`);
    return s;
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
