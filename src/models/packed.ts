/**
 * Packed Linears in the engine: a compressed-tensors Linear (io/compressed-tensors.ts) — or a
 * table rac keeps on the Q8_0 grid — as onnxruntime's `MatMulNBits` weight (runtime/graph.ts),
 * so the engine holds 4- or 8-bit codes and runs int8-activation kernels instead of an f32 Gemm.
 *
 * The packed bytes are MatMulNBits' B as they are (both pack a row's codes + 2^(b−1) lowest bits
 * first; symmetric = MatMulNBits' default zero point 2^(b−1)). What is converted:
 * - the block: MatMulNBits wants a power of two ≥ 16; a group size that is not one (or a
 *   channel-wise scale, one group of `cols`) is split into blocks of the largest power of two ≤ 128
 *   dividing it, each block repeating its group's scale and zero point — the same values;
 * - zero points: compressed-tensors packs them along the rows, MatMulNBits along each row's blocks;
 * - activation order (g_idx): the columns are permuted so each group is contiguous, and the graph
 *   gathers the input's columns in the same order (x·Wᵀ = x[:, π]·W[:, π]ᵀ) — onnxruntime's own
 *   g_idx input has no 8-bit kernel and dequantizes the weight on every call;
 * - accuracy level 4 (int8 activations per block; measured, see docs/compressed-tensors.md: the engine's packed path).
 * A Linear none of this fits (a group size with no power-of-two divisor ≥ 16) runs dequantized.
 *
 * Also here: a layer's (and an expert's) weights for the engine, packed where the checkpoint is.
 */
import type { GridTable, PackedLinear } from '../io/compressed-tensors.ts';
import type { Feeds } from './batch.ts';
import { ROUTER_INPUT, weightInputName, type PackedMatMul } from './graphs.ts';
import type { Model } from './model.ts';
import { layerLinears, type ExpertLinearName, type LinearName } from './spec.ts';

export type { PackedMatMul } from './graphs.ts';

/** MatMulNBits' accuracy_level for packed Linears: 4 = int8 activations (see docs/compressed-tensors.md: the engine's packed path). */
export const PACKED_ACCURACY_LEVEL = 4;

/** The largest power of two ≤ 128 dividing n, or 0 when it is below 16. */
function blockFor(n: number): number {
  let b = 128;
  while (b >= 16 && n % b !== 0) b /= 2;
  return b >= 16 ? b : 0;
}

/** A compressed-tensors Linear as a MatMulNBits weight, or null when its groups cannot be blocked (it then runs dequantized). */
export function packedMatMul(p: PackedLinear): PackedMatMul | null {
  const { rows: N, cols: K, bits, groupSize } = p;
  const block = blockFor(groupSize);
  if (block === 0) return null;
  const G = K / groupSize;
  const per = groupSize / block; // blocks per group
  const nb = K / block;
  let B = p.packed;
  let perm: Int32Array | null = null;
  if (p.gIdx) {
    // Columns sorted by group (stable): group g's columns become g·groupSize …; codes moved with them.
    const order = Array.from({ length: K }, (_, c) => c).sort((a, b) => p.gIdx![a]! - p.gIdx![b]! || a - b);
    perm = Int32Array.from(order);
    const rowBytes = (K * bits) / 8;
    B = new Uint8Array(N * rowBytes);
    for (let r = 0; r < N; r++) {
      const src = r * rowBytes;
      for (let c = 0; c < K; c++) {
        const s = perm[c]!;
        if (bits === 8) B[src + c] = p.packed[src + s]!;
        else B[src + (c >> 1)]! |= ((p.packed[src + (s >> 1)]! >> ((s & 1) << 2)) & 0x0f) << ((c & 1) << 2);
      }
    }
  }
  let scales = p.scales;
  if (per > 1) {
    scales = new Float32Array(N * nb);
    for (let i = 0; i < N * G; i++) scales.fill(p.scales[i]!, i * per, (i + 1) * per);
  }
  let zeroPoints: Uint8Array | null = null;
  if (p.zeroPoints) {
    const half = 1 << (bits - 1);
    const zpRow = bits === 8 ? nb : Math.ceil(nb / 2);
    zeroPoints = new Uint8Array(N * zpRow);
    for (let r = 0; r < N; r++) {
      for (let b = 0; b < nb; b++) {
        const u = p.zeroPoints[r * G + Math.floor(b / per)]! + half;
        if (bits === 8) zeroPoints[r * zpRow + b] = u;
        else zeroPoints[r * zpRow + (b >> 1)]! |= u << ((b & 1) << 2);
      }
    }
  }
  return { weight: { K, N, bits, blockSize: block, B, scales, zeroPoints }, perm };
}

/** A Q8_0 table (rows, cols) as an 8-bit MatMulNBits weight, blocks of 32 (the LM head of rac's quantized output): its bytes, not a copy. */
export function gridMatMul(t: GridTable): PackedMatMul {
  return { weight: { K: t.cols, N: t.rows, bits: 8, blockSize: 32, B: t.u, scales: t.scales, zeroPoints: null }, perm: null };
}

/** One layer's weights for the engine: feeds for the float ones, MatMulNBits weights for the packed Linears. */
export interface PackedLayer {
  feeds: Feeds;
  packed: Partial<Record<LinearName, PackedMatMul>>;
  /** An MoE layer's experts: per expert its float feeds and packed Linears. */
  experts: { feeds: Feeds; packed: Partial<Record<ExpertLinearName, PackedMatMul>> }[] | null;
}

/** A Linear weight: packed when the checkpoint packs it and MatMulNBits can run it, else f32. */
function linearOf(model: Model, name: string): { packed: PackedMatMul } | { data: Float32Array } {
  const p = model.packedLinear(name);
  const m = p ? packedMatMul(p) : null;
  return m ? { packed: m } : { data: model.read(name) };
}

/** Layer i's weights as the engine's layer graph (and expert graphs) take them. */
export function packedLayer(model: Model, i: number): PackedLayer {
  const { spec, config: c } = model;
  const feeds: Feeds = {};
  const packed: PackedLayer['packed'] = {};
  for (const l of layerLinears(spec, c, i)) {
    const w = linearOf(model, model.tensorName(i, l.module));
    if ('packed' in w) packed[l.name] = w.packed;
    else feeds[weightInputName('w', l.name)] = { data: w.data, dims: [l.rows, l.cols] };
    if (l.bias) feeds[weightInputName('b', l.name)] = { data: model.read(model.tensorName(i, l.module, 'bias')), dims: [l.rows] };
  }
  for (const n of spec.norms(c)) feeds[weightInputName('w', n.name)] = { data: model.read(model.tensorName(i, n.module)), dims: [n.size] };
  const ex = model.experts(i);
  if (!ex) return { feeds, packed, experts: null };
  feeds[ROUTER_INPUT] = { data: model.read(model.tensorName(i, ex.routerModule)), dims: [ex.count, c.hiddenSize] };
  const experts: NonNullable<PackedLayer['experts']> = [];
  for (let j = 0; j < ex.count; j++) {
    const e: NonNullable<PackedLayer['experts']>[number] = { feeds: {}, packed: {} };
    for (const l of ex.linears) {
      const w = linearOf(model, model.expertTensorName(i, j, l.module));
      if ('packed' in w) e.packed[l.name] = w.packed;
      else e.feeds[weightInputName('w', l.name)] = { data: w.data, dims: [l.rows, l.cols] };
    }
    experts.push(e);
  }
  return { feeds, packed, experts };
}
