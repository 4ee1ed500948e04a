/**
 * Wanda: Pruning by Weights and activations (Sun, Liu, Bair, Kolter 2023),
 * https://arxiv.org/abs/2306.11695 — reference https://github.com/locuslab/wanda.
 *
 * Lifecycle: calibration accumulates ‖X_j‖² per input column j (the diagonal of XᵀX; any
 * positive global scale gives the same mask) → score S_ij = |W_ij|·‖X_j‖ → per output row,
 * zero exactly floor(s·cols) smallest scores (unstructured; ties → lower column), or the n
 * smallest of every m consecutive columns (N:M) → no weight update → report.
 */
import { applyMask, reportFor, rowwiseMask, validateTarget, validateWeight, type PruneReport, type SparsityTarget } from './masks.ts';

/** Prune W (rows, cols), row-major f32, in place. colSqNorm: (cols) = ‖X_j‖². */
export function wandaPrune(
  W: Float32Array,
  rows: number,
  cols: number,
  colSqNorm: Float64Array | Float32Array,
  target: SparsityTarget,
): PruneReport {
  const t0 = performance.now();
  validateWeight(W, rows, cols, 'wandaPrune');
  validateTarget(target, cols);
  if (colSqNorm.length !== cols) throw new RangeError(`wandaPrune: colSqNorm has ${colSqNorm.length} entries, expected cols = ${cols}`);
  const colNorm = new Float64Array(cols); // (cols) = ‖X_j‖
  for (let j = 0; j < cols; j++) {
    const v = colSqNorm[j];
    if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`wandaPrune: colSqNorm[${j}] must be finite and ≥ 0, got ${v}`);
    colNorm[j] = Math.sqrt(v);
  }
  if (target.kind === 'unstructured' && target.sparsity === 0) return reportFor(W, { seconds: (performance.now() - t0) / 1000 });
  const scores = new Float64Array(W.length); // (rows, cols)
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) scores[o + j] = Math.abs(W[o + j]) * colNorm[j];
  }
  applyMask(W, rowwiseMask(scores, rows, cols, target));
  return reportFor(W, { seconds: (performance.now() - t0) / 1000 });
}
