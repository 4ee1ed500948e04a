/**
 * Magnitude pruning: zero the weights of smallest |W|.
 * Baseline of SparseGPT (https://arxiv.org/abs/2301.00774) and Wanda (https://arxiv.org/abs/2306.11695).
 *
 * Lifecycle: no calibration statistics → score |W_ij| → mask (per layer: exactly
 * floor(s·rows·cols) smallest over the whole matrix, the reference default; per row: exactly
 * floor(s·cols) per row; N:M: the n smallest of every m consecutive columns of each row) →
 * zero in place → report.
 */
import {
  applyMask,
  reportFor,
  rowwiseMask,
  selectSmallest,
  validateTarget,
  validateWeight,
  type PruneReport,
  type SparsityTarget,
} from './masks.ts';

export interface MagnitudeOptions {
  /** Unstructured threshold over the whole layer (reference) or within each row. Default 'layer'. */
  scope?: 'layer' | 'row';
}

/** Prune W (rows, cols), row-major f32, in place. Sparsity 0 leaves W bit-identical. */
export function magnitudePrune(
  W: Float32Array,
  rows: number,
  cols: number,
  target: SparsityTarget,
  opts: MagnitudeOptions = {},
): PruneReport {
  const t0 = performance.now();
  validateWeight(W, rows, cols, 'magnitudePrune');
  validateTarget(target, cols);
  const scope = opts.scope ?? 'layer';
  if (scope !== 'layer' && scope !== 'row') throw new RangeError(`magnitudePrune: scope must be 'layer' or 'row', got ${String(scope)}`);
  if (target.kind === 'unstructured' && target.sparsity === 0) return reportFor(W, { seconds: (performance.now() - t0) / 1000 });
  const scores = new Float64Array(W.length); // (rows, cols) = |W|
  for (let i = 0; i < W.length; i++) scores[i] = Math.abs(W[i]);
  let mask: Uint8Array;
  if (target.kind === 'unstructured' && scope === 'layer') {
    mask = new Uint8Array(W.length);
    selectSmallest(scores, Math.floor(target.sparsity * W.length), mask);
  } else {
    mask = rowwiseMask(scores, rows, cols, target);
  }
  applyMask(W, mask);
  return reportFor(W, { seconds: (performance.now() - t0) / 1000 });
}
