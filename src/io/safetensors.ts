/**
 * safetensors reading, streamed through positional file I/O: one file (`SafetensorsFile`) or a
 * model directory, single-file or sharded (`SafetensorsModel`). Readers hold a file descriptor
 * and read only the header at open (safetensors-header.ts parses it); tensors are read one at a
 * time at their offsets. Every problem is a `SafetensorsError` naming the file. The writer is
 * safetensors-writer.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bf16ToF32, f16ToF32, findNonFinite, isF32Convertible } from './dtype.ts';
import { ModelFileError, modelDirRoots, modelFilePath } from './model-file.ts';
import {
  describe,
  errorText,
  INDEX_FILE,
  IO_CHUNK,
  isPlainFileName,
  isPlainObject,
  MAX_HEADER_BYTES,
  objectMembers,
  parseHeader,
  parseJsonObject,
  SafetensorsError,
  SINGLE_FILE,
  type TensorInfo,
} from './safetensors-header.ts';

export { findNonFinite };
export { INDEX_FILE, MAX_HEADER_BYTES, SafetensorsError, SINGLE_FILE, type TensorEntry, type TensorInfo } from './safetensors-header.ts';

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
      if (!st.isFile())
        fail(
          `not a regular file (${st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a directory' : st.isSocket() ? 'a socket' : 'a device or other special file'})`,
        );
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

  /**
   * `byteLength` bytes of one tensor's data from byte `offset` (a slice of its rows, say), into the
   * start of `into` when given (a buffer reused across reads; returned as its subarray).
   */
  readRange(name: string, offset: number, byteLength: number, into?: Uint8Array): Uint8Array {
    const t = this.info(name);
    if (
      !(
        Number.isSafeInteger(offset) &&
        Number.isSafeInteger(byteLength) &&
        offset >= 0 &&
        byteLength >= 0 &&
        offset + byteLength <= t.byteLength
      )
    )
      throw new SafetensorsError(
        this.path,
        `bytes [${offset}, ${offset + byteLength}) are outside tensor ${JSON.stringify(name)} (${t.byteLength} bytes)`,
      );
    if (into && into.byteLength < byteLength) throw new RangeError(`readRange: ${byteLength} bytes into a ${into.byteLength}-byte buffer`);
    const out = into ? into.subarray(0, byteLength) : new Uint8Array(byteLength);
    this.readInto({ ...t, start: t.start + offset, byteLength }, out);
    return out;
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

  private constructor(dir: string, files: Map<string, SafetensorsFile>, indexMetadata: Record<string, unknown> | undefined) {
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

  readRange(name: string, offset: number, byteLength: number, into?: Uint8Array): Uint8Array {
    return this.files.get(this.shardOf(name))!.readRange(name, offset, byteLength, into);
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
