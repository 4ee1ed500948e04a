/**
 * Resumable training checkpoints: one file = 8-byte header length + JSON header + f32 params,
 * Adam m, Adam v. Written to a temp file, fsynced and renamed (atomic on one filesystem).
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { DataRecipe, PackState } from './data.ts';
import type { TinyConfig } from './model.ts';
import type { OptimConfig } from './optim.ts';

export interface CheckpointMeta {
  version: 1;
  /** The recipe (scripts/train/recipes.ts); absent in v1 checkpoints (written before recipes). */
  recipe?: 'v1' | 'v2' | 'moe';
  /** What the run draws (families, format, inject rate); absent = v1's. */
  data?: DataRecipe;
  cfg: TinyConfig;
  optim: OptimConfig;
  seed: number;
  batch: number;
  seq: number;
  poolPerFamily: number;
  /** Steps done (the next step to run). */
  step: number;
  totalSteps: number;
  pack: PackState;
  tokensSeen: number;
  targetTokensSeen: number;
  /** Wall seconds spent training so far (across resumes). */
  trainSeconds: number;
  size: number;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  params: Float32Array;
  m: Float32Array;
  v: Float32Array;
}

export function saveCheckpoint(file: string, c: Checkpoint): void {
  const head = Buffer.from(JSON.stringify(c.meta), 'utf8');
  const pad = (4 - ((8 + head.length) % 4)) % 4;
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(head.length + pad));
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    let pos = 0;
    const put = (b: Uint8Array) => {
      let off = 0;
      while (off < b.byteLength) off += writeSync(fd, b, off, b.byteLength - off, pos + off);
      pos += b.byteLength;
    };
    put(len);
    put(Buffer.concat([head, Buffer.alloc(pad, 0x20)]));
    for (const a of [c.params, c.m, c.v]) put(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

export function loadCheckpoint(file: string): Checkpoint {
  const buf = readFileSync(file);
  const hl = Number(buf.readBigUInt64LE(0));
  const meta = JSON.parse(buf.subarray(8, 8 + hl).toString('utf8')) as CheckpointMeta;
  if (meta.version !== 1) throw new Error(`${file}: unknown checkpoint version ${meta.version}`);
  const n = meta.size;
  const start = 8 + hl;
  if (buf.length !== start + 3 * n * 4) throw new Error(`${file}: truncated (${buf.length} bytes, expected ${start + 12 * n})`);
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + start + 12 * n));
  return { meta, params: all.slice(0, n), m: all.slice(n, 2 * n), v: all.slice(2 * n, 3 * n) };
}
