/**
 * Outputs that appear whole or not at all: written to a temp file beside the destination,
 * fsynced, and renamed into place. A crash leaves at most the temp file, never a partial file under
 * the real name.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

const IO_CHUNK = 1 << 30;

/** Write `text` to a temp file beside `path`, fsync, and rename it into place. */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * A binary file written at offsets (the safetensors and GGUF writers): the bytes go to
 * `<path>.tmp-<pid>`; `commit()` fsyncs, closes and renames it to `path`; `discard()` closes and
 * removes it. Errors are the system's (the format writers name their file and what failed).
 */
export class AtomicFileWriter {
  /** Absolute destination. */
  readonly path: string;
  readonly tmpPath: string;
  private fd: number | undefined;

  constructor(path: string) {
    this.path = resolve(path);
    this.tmpPath = `${this.path}.tmp-${process.pid}`;
    this.fd = openSync(this.tmpPath, 'w');
  }

  /** False once committed or discarded. */
  get isOpen(): boolean {
    return this.fd !== undefined;
  }

  /** Writes all of `data` at byte `position`, at most 1 GiB per system call (they take 32-bit lengths). */
  writeAt(data: Uint8Array, position: number): void {
    const fd = this.openFd();
    let done = 0;
    while (done < data.byteLength) done += writeSync(fd, data, done, Math.min(IO_CHUNK, data.byteLength - done), position + done);
  }

  /** Sets the file's size (bytes never written read as zeros). */
  setSize(bytes: number): void {
    ftruncateSync(this.openFd(), bytes);
  }

  /** fsync, close, rename into place. */
  commit(): void {
    const fd = this.openFd();
    this.fd = undefined;
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(this.tmpPath, this.path);
  }

  /** Close (when open) and remove the temp file; the destination is untouched. */
  discard(): void {
    if (this.fd !== undefined) {
      const fd = this.fd;
      this.fd = undefined;
      closeSync(fd);
    }
    rmSync(this.tmpPath, { force: true });
  }

  private openFd(): number {
    if (this.fd === undefined) throw new Error(`${this.path}: already closed`);
    return this.fd;
  }
}
