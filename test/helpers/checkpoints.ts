/** Random checkpoints for tests, written once per process into a temp dir. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Model } from '../../src/models/model.ts';
import type { WeightSource } from '../../src/models/reference.ts';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../../src/models/random.ts';

let root: string | null = null;
const made = new Map<string, string>();

export function tempRoot(): string {
  if (!root) {
    root = mkdtempSync(join(tmpdir(), 'rac-test-'));
    process.on('exit', () => rmSync(root!, { recursive: true, force: true }));
  }
  return root;
}

export function tempDir(name: string): string {
  return mkdtempSync(join(tempRoot(), `${name}-`));
}

/** Path of a random checkpoint with these options (made on first use). */
/** Small random checkpoints of the three families the quantization tests cover (2 layers, hidden 128). */
export const SMALL_QWEN2: RandomCheckpointOptions = { family: 'qwen2', seed: 11, hidden: 128, heads: 4, kvHeads: 2, layers: 2, tied: true };
export const SMALL_LLAMA: RandomCheckpointOptions = { family: 'llama', seed: 12, hidden: 128, heads: 4, kvHeads: 2, layers: 2 };
export const SMALL_MOE: RandomCheckpointOptions = {
  family: 'qwen3_moe',
  seed: 13,
  hidden: 128,
  heads: 4,
  kvHeads: 2,
  layers: 2,
  moe: { experts: 4, topK: 2, expertIntermediate: 96 },
};

export function checkpoint(opts: RandomCheckpointOptions): string {
  const key = JSON.stringify(opts);
  let dir = made.get(key);
  if (!dir) {
    dir = join(tempRoot(), `ck-${made.size}-${opts.family}`);
    writeRandomCheckpoint(dir, opts);
    made.set(key, dir);
  }
  return dir;
}

export function weightSource(m: Model): WeightSource {
  return { get: (n) => m.read(n), has: (n) => m.stored(n) };
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}
