/**
 * What the two tensor-file writers share (GGUF: gguf.ts, safetensors: safetensors-writer.ts): the
 * header is laid out up front, so every tensor has a slot at a fixed offset of the data section;
 * tensors are written into their slots once each, in any order, into `<path>.tmp-<pid>`, which
 * close() renames into place once every slot is filled (atomic.ts). The formats differ only in
 * their header, their error class and how their messages name a tensor (SlotWording).
 */
import { AtomicFileWriter } from './atomic.ts';

export interface TensorSlot<E> {
  /** The header entry (name, type, shape) as the format describes it. */
  entry: E;
  /** Offset of the tensor's first byte, relative to the data section. */
  begin: number;
  bytes: number;
  written: boolean;
}

/** How one format words the errors of its writer. */
export interface SlotWording<E> {
  /** The format's error naming its file. */
  error(file: string, problem: string): Error;
  /** A tensor name as the messages quote it. */
  quote(name: string): string;
  /** The entry's type and shape, after a byte count that does not match it. */
  layout(entry: E): string;
  /** The unwritten names as close() lists them. */
  listMissing(names: readonly string[]): string;
}

/** Streams one tensor file whose header (and so every tensor's slot) was fixed when it was opened. */
export class TensorFileWriter<E extends { name: string }> {
  /** Absolute path. */
  readonly path: string;
  /** Absolute file offset of the data section. */
  readonly dataStart: number;

  protected constructor(
    private readonly file: AtomicFileWriter,
    private readonly slots: Map<string, TensorSlot<E>>,
    dataStart: number,
    private readonly wording: SlotWording<E>,
  ) {
    this.path = file.path;
    this.dataStart = dataStart;
  }

  /**
   * Opens `<file>.tmp-<pid>`, writes the header parts one after the other from byte 0, and sizes
   * the file to `fileBytes` (the data section reads as zeros until written, padding included).
   * `fail` words the two ways this can go wrong; a file whose header failed is removed.
   */
  protected static openFile(
    file: string,
    header: readonly Uint8Array[],
    fileBytes: number,
    fail: { create(e: unknown): Error; header(e: unknown): Error },
  ): AtomicFileWriter {
    let out: AtomicFileWriter;
    try {
      out = new AtomicFileWriter(file);
    } catch (e) {
      throw fail.create(e);
    }
    try {
      let at = 0;
      for (const part of header) {
        out.writeAt(part, at);
        at += part.byteLength;
      }
      out.setSize(fileBytes);
    } catch (e) {
      out.discard();
      throw fail.header(e);
    }
    return out;
  }

  /** Writes the raw little-endian bytes of one tensor at its offset. */
  write(name: string, data: Uint8Array): void {
    const s = this.slot(name);
    if (!this.file.isOpen) throw this.fail(`write of ${this.wording.quote(name)} after close()`);
    if (s.written) throw this.fail(`tensor ${this.wording.quote(name)} written twice`);
    if (data.byteLength !== s.bytes) {
      throw this.fail(
        `tensor ${this.wording.quote(name)}: got ${data.byteLength} bytes, expected ${s.bytes} (${this.wording.layout(s.entry)})`,
      );
    }
    this.file.writeAt(data, this.dataStart + s.begin);
    s.written = true;
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
      throw this.fail(`${missing.length} tensor(s) never written: ${this.wording.listMissing(missing)}`);
    }
    this.file.commit();
  }

  /** Closes without checks and removes the partial file. */
  abort(): void {
    this.file.discard();
  }

  /** The slot of `name`; throws when the header has no such tensor. */
  protected slot(name: string): TensorSlot<E> {
    const s = this.slots.get(name);
    if (!s) throw this.fail(`no tensor ${this.wording.quote(name)} in this file's header`);
    return s;
  }

  protected fail(problem: string): Error {
    return this.wording.error(this.path, problem);
  }
}
