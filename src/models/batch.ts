/**
 * Feeds shared by every decoder-layer graph: left-padded batches, additive attention masks,
 * RoPE tables and the per-layer weight inputs.
 */
import type { HostTensor } from '../runtime/session.ts';
import type { ModelConfig } from './config.ts';
import { ROUTER_INPUT, weightInputName } from './graphs.ts';
import { ropeCosSin } from './rope.ts';
import { linearWeight, type ArchSpec, type ExpertSpec, type LayerWeights, type MoeWeights } from './spec.ts';

export const MASK_NEG = -1e9;

export type Feeds = Record<string, HostTensor>;

export interface PaddedBatch {
  /** (B·T) token ids, left-padded. */
  ids: Int32Array;
  /** Per sequence: which of the T columns hold real tokens. */
  valid: Uint8Array[];
  /** (B·T) HF position ids: cumsum(valid) − 1, pads at 1. */
  positions: Int32Array;
  B: number;
  T: number;
}

/** Left-pad a batch (sequence b's real tokens end at column T − 1). */
export function leftPad(seqs: readonly (readonly number[])[], padId = 0): PaddedBatch {
  const B = seqs.length;
  let T = 1;
  for (const s of seqs) T = Math.max(T, s.length);
  const ids = new Int32Array(B * T).fill(padId);
  const positions = new Int32Array(B * T).fill(1);
  const valid: Uint8Array[] = [];
  seqs.forEach((s, b) => {
    if (s.length === 0) throw new Error(`sequence ${b} is empty`);
    const off = T - s.length;
    const v = new Uint8Array(T);
    for (let t = 0; t < s.length; t++) {
      ids[b * T + off + t] = s[t]!;
      positions[b * T + off + t] = t;
      v[off + t] = 1;
    }
    valid.push(v);
  });
  return { ids, valid, positions, B, T };
}

/**
 * Additive mask (B, 1, 1, T, S) for T queries at columns S−T..S−1: key j is visible to query
 * column c iff j ≤ c, key j is a real token, and (sliding window) c − j < window.
 */
export function attentionMask(valid: readonly Uint8Array[], T: number, S: number, window: number | null): HostTensor {
  const B = valid.length;
  const m = new Float32Array(B * T * S).fill(MASK_NEG);
  for (let b = 0; b < B; b++) {
    const vb = valid[b]!;
    for (let t = 0; t < T; t++) {
      const c = S - T + t;
      const row = (b * T + t) * S;
      const lo = window ? Math.max(0, c - window + 1) : 0;
      for (let j = lo; j <= c; j++) if (vb[j]) m[row + j] = 0;
    }
  }
  return { data: m, dims: [B, 1, 1, T, S] };
}

/**
 * Additive mask (B, 1, 1, 1, C + 1) for one new token per sequence attending to a KV cache of
 * capacity C with S filled slots (`valid[b]` of length S) plus itself at column C. Slots ≥ S are
 * masked; with a sliding window, cache slot j is visible iff S − j < window.
 */
export function decodeMask(valid: readonly Uint8Array[], S: number, C: number, window: number | null): HostTensor {
  const B = valid.length;
  const W = C + 1;
  const m = new Float32Array(B * W).fill(MASK_NEG);
  const lo = window ? Math.max(0, S - window + 1) : 0;
  for (let b = 0; b < B; b++) {
    const vb = valid[b]!;
    for (let j = lo; j < S; j++) if (vb[j]) m[b * W + j] = 0;
    m[b * W + C] = 0;
  }
  return { data: m, dims: [B, 1, 1, 1, W] };
}

/** cos/sin feeds (B, T, hd) for a (B, T) grid of position ids. */
export function ropeFeeds(cfg: ModelConfig, positions: Int32Array, B: number, T: number): { cos: HostTensor; sin: HostTensor } {
  const { cos, sin } = ropeCosSin(cfg, positions);
  const hd = cfg.headDim;
  return { cos: { data: cos, dims: [B, T, hd] }, sin: { data: sin, dims: [B, T, hd] } };
}

/** The layer graph's weight inputs for one layer (an MoE layer's: attention, norms and the router). */
export function weightFeeds(spec: ArchSpec, cfg: ModelConfig, w: LayerWeights): Feeds {
  const f: Feeds = {};
  for (const l of spec.linears(cfg)) {
    if (w.moe && (l.group === 'mlp_in' || l.group === 'mlp_out')) continue;
    f[weightInputName('w', l.name)] = { data: linearWeight(w, l.name), dims: [l.rows, l.cols] };
    if (l.bias) f[weightInputName('b', l.name)] = { data: w.biases[l.name]!, dims: [l.rows] };
  }
  for (const n of spec.norms(cfg)) f[weightInputName('w', n.name)] = { data: w.norms[n.name]!, dims: [n.size] };
  if (w.moe) f[ROUTER_INPUT] = { data: w.moe.router, dims: [w.moe.experts.length, cfg.hiddenSize] };
  return f;
}

/** The expert graph's weight inputs for expert j of an MoE layer. */
export function expertFeeds(ex: ExpertSpec, moe: MoeWeights, j: number): Feeds {
  const f: Feeds = {};
  for (const l of ex.linears) f[weightInputName('w', l.name)] = { data: moe.experts[j]![l.name], dims: [l.rows, l.cols] };
  return f;
}

/** Embedding rows for ids: (ids.length, D). */
export function embedRows(E: Float32Array, cfg: ModelConfig, ids: ArrayLike<number>): Float32Array {
  const D = cfg.hiddenSize;
  const V = cfg.vocabSize;
  const out = new Float32Array(ids.length * D);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`token id ${id} out of range [0, ${V})`);
    out.set(E.subarray(id * D, (id + 1) * D), i * D);
  }
  return out;
}
