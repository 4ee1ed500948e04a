/**
 * Hidden states of the calibration batches between layers: in memory while they fit the limit,
 * otherwise in a temp file (positional reads/writes, one slot per batch). Two stores alternate
 * (layer input, layer output), so memory does not grow with depth.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export class HiddenStore {
  private readonly mem: (Float32Array | null)[] | null;
  private readonly offsets: number[] = [];
  private fd: number | null = null;
  private dir: string | null = null;

  /** `sizes`: floats per batch. Spills to disk when their bytes exceed `memoryBytes`. */
  constructor(
    readonly sizes: number[],
    memoryBytes: number,
    tmpRoot = tmpdir(),
  ) {
    const total = sizes.reduce((a, b) => a + b, 0) * 4;
    if (total <= memoryBytes) {
      this.mem = sizes.map(() => null);
    } else {
      this.mem = null;
      this.dir = mkdtempSync(join(tmpRoot, 'rac-hidden-'));
      this.fd = openSync(join(this.dir, 'hidden.f32'), 'w+');
      let off = 0;
      for (const s of sizes) {
        this.offsets.push(off);
        off += s * 4;
      }
    }
  }

  get onDisk(): boolean {
    return this.mem === null;
  }

  put(i: number, data: Float32Array): void {
    if (data.length !== this.sizes[i]) throw new RangeError(`hidden batch ${i}: ${data.length} values, expected ${this.sizes[i]}`);
    if (this.mem) {
      this.mem[i] = data;
      return;
    }
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    let done = 0;
    while (done < buf.length) done += writeSync(this.fd!, buf, done, buf.length - done, this.offsets[i]! + done);
  }

  get(i: number): Float32Array {
    if (this.mem) {
      const d = this.mem[i];
      if (!d) throw new Error(`hidden batch ${i} was never stored`);
      return d;
    }
    const out = new Float32Array(this.sizes[i]!);
    const buf = Buffer.from(out.buffer);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(this.fd!, buf, done, buf.length - done, this.offsets[i]! + done);
      if (n === 0) throw new Error(`hidden batch ${i}: short read from the spill file`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.mem) this.mem.fill(null);
    if (this.fd !== null) closeSync(this.fd);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.fd = null;
    this.dir = null;
  }
}
