/** Shared helpers for the pruning-pipeline tests: synthetic calibration sets, hashes, mask checks. */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsModel } from '../../src/io/safetensors.ts';
import type { leftPad } from '../../src/models/batch.ts';
import { Model } from '../../src/models/model.ts';
import { makeLayerBatch, referenceLayerInputs } from '../../src/models/reference.ts';
import { Rng } from '../../src/models/sampling.ts';
import type { CalibSequence, CalibSet } from '../../src/prune/calib.ts';
import { pruneCheckpoint, type PruneOptions } from '../../src/prune/prune.ts';
import type { PruneSummary } from '../../src/prune/rac-json.ts';

/** `n` sequences of random ids in [0, vocab), lengths uniform in [minLen, maxLen], weight 1. */
export function randomSequences(vocab: number, n: number, minLen: number, maxLen: number, seed: number): CalibSequence[] {
  const rng = new Rng(seed, 0xca1b);
  return Array.from({ length: n }, () => {
    const len = minLen + Math.floor(rng.next() * (maxLen - minLen + 1));
    return { ids: Array.from({ length: len }, () => Math.floor(rng.next() * vocab)), weight: 1 };
  });
}

/** `randomSequences` over the vocabulary of the checkpoint in `dir`. */
export function randomSequencesFor(dir: string, n: number, minLen: number, maxLen: number, seed: number): CalibSequence[] {
  const m = Model.open(dir);
  const V = m.config.vocabSize;
  m.close();
  return randomSequences(V, n, minLen, maxLen, seed);
}

/**
 * pruneCheckpoint on the checkpoint in `dir` (opened and closed here): every Linear, batches of
 * 512 tokens, one thread, version "test-version", unless `o` says otherwise.
 */
export async function pruneDir(
  dir: string,
  calib: CalibSet | null,
  out: string,
  o: Partial<PruneOptions> & Pick<PruneOptions, 'method' | 'target'>,
): Promise<PruneSummary> {
  const model = Model.open(dir);
  try {
    return await pruneCheckpoint(model, calib, out, { linears: 'all', batchTokens: 512, runtime: { threads: 1 }, ...o }, 'test-version');
  } finally {
    model.close();
  }
}

/** Writes `sequences` as a calibration file of `input_ids` rows (what `rac prune --calib` reads); returns `file`. */
export function writeCalibIds(file: string, sequences: readonly CalibSequence[]): string {
  writeFileSync(file, sequences.map((s) => JSON.stringify({ input_ids: s.ids })).join('\n') + '\n');
  return file;
}

export function calibSet(sequences: CalibSequence[]): CalibSet {
  return { sequences, tokens: sequences.reduce((a, s) => a + s.ids.length, 0), source: { kind: 'test' } };
}

export function sha256(b: Uint8Array | string): string {
  return createHash('sha256').update(b).digest('hex');
}

export function fileHash(path: string): string {
  return sha256(readFileSync(path));
}

/** sha256 of every tensor's stored bytes, by name. */
export function tensorHashes(dir: string): Map<string, string> {
  const m = SafetensorsModel.open(dir);
  try {
    return new Map(m.names().map((n) => [n, sha256(m.readRaw(n))]));
  } finally {
    m.close();
  }
}

/** Every tensor of a checkpoint widened to f32, plus dtype and shard, by name. */
export function readAll(dir: string): Map<string, { data: Float32Array; dtype: string; shape: number[]; shard: string }> {
  const m = SafetensorsModel.open(dir);
  try {
    const out = new Map<string, { data: Float32Array; dtype: string; shape: number[]; shard: string }>();
    for (const n of m.names()) {
      const i = m.info(n);
      out.set(n, { data: m.readF32(n), dtype: i.dtype, shape: [...i.shape], shard: m.shardOf(n) });
    }
    return out;
  } finally {
    m.close();
  }
}

export function shardFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
}

/** Entries of `dir` (missing → []). */
export function entries(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

export function readSummary(dir: string): PruneSummary {
  return JSON.parse(readFileSync(join(dir, 'rac.json'), 'utf8')) as PruneSummary;
}

export function zerosIn(W: Float32Array, from = 0, to = W.length): number {
  let z = 0;
  for (let i = from; i < to; i++) if (W[i] === 0) z++;
  return z;
}

/** Zeros per row, per column block [c0, c1). */
export function zerosInBlock(W: Float32Array, rows: number, cols: number, c0: number, c1: number): number {
  let z = 0;
  for (let r = 0; r < rows; r++) for (let c = c0; c < c1; c++) if (W[r * cols + c] === 0) z++;
  return z;
}

/** The smallest zero count over all groups of m consecutive columns of every row. */
export function minZerosPerGroup(W: Float32Array, rows: number, cols: number, m: number): number {
  let min = Infinity;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += m) {
      let z = 0;
      for (let c = g; c < g + m; c++) if (W[r * cols + c] === 0) z++;
      min = Math.min(min, z);
    }
  }
  return min;
}

/** max |a − b| / max |b| */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return m === 0 ? d : d / m;
}

/** The embedding rows of a left-padded batch (B·T, D): a layer's input. */
export function embedBatch(model: Model, pb: ReturnType<typeof leftPad>): Float32Array {
  const D = model.config.hiddenSize;
  const E = model.embedding();
  const h = new Float32Array(pb.B * pb.T * D);
  for (let i = 0; i < pb.ids.length; i++) h.set(E.subarray(pb.ids[i]! * D, (pb.ids[i]! + 1) * D), i * D);
  return h;
}

/** The reference forward's layout of a left-padded batch. */
export function layoutOf(pb: ReturnType<typeof leftPad>): ReturnType<typeof makeLayerBatch> {
  return makeLayerBatch(
    pb.B,
    pb.T,
    pb.valid.map((v) => Array.from(v)),
  );
}

/** The last layer's outputs (B·T, D) of the checkpoint in `dir` on a batch, by the reference forward (MoE layers included). */
export function lastHidden(dir: string, pb: ReturnType<typeof leftPad>): Float32Array {
  const m = Model.open(dir);
  try {
    let h = embedBatch(m, pb);
    for (let l = 0; l < m.config.numLayers; l++) h = referenceLayerInputs(m.config, m.layerWeights(l), h, layoutOf(pb), m.experts(l)).out;
    return h;
  } finally {
    m.close();
  }
}

/** Σ (h − want)² over the real (unpadded) rows of the batch, h the last hidden states of the checkpoint in `dir`. */
export function lastHiddenError(dir: string, pb: ReturnType<typeof leftPad>, want: Float32Array): number {
  const h = lastHidden(dir, pb);
  const D = h.length / (pb.B * pb.T);
  let e = 0;
  for (let i = 0; i < h.length; i++) if (pb.valid[Math.floor(i / (pb.T * D))]![Math.floor(i / D) % pb.T]) e += (h[i]! - want[i]!) ** 2;
  return e;
}
