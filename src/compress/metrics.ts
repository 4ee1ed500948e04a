/**
 * Layer reconstruction error expressed through the Hessian: for D = W − Ŵ (rows, cols) and
 * H = c·XᵀX (cols, cols), trace(D·H·Dᵀ) = c·‖X·Wᵀ − X·Ŵᵀ‖²_F, the layer's output squared error
 * on the calibration set (c = 2/n for SparseGPT's H).
 */
import type { Gemm } from './gemm.ts';

function check(W: Float32Array, What: Float32Array, H: ArrayLike<number>, rows: number, cols: number): void {
  if (W.length !== rows * cols || What.length !== rows * cols) {
    throw new RangeError(`outputError: W and Ŵ must have rows·cols = ${rows}·${cols} elements, got ${W.length} and ${What.length}`);
  }
  if (H.length !== cols * cols) throw new RangeError(`outputError: H has ${H.length} elements, expected cols² = ${cols}²`);
}

/** trace((W − Ŵ)·H·(W − Ŵ)ᵀ) in plain JS, float64 accumulation; O(rows·cols²): tests and small layers. */
export function outputError(W: Float32Array, What: Float32Array, H: Float32Array | Float64Array, rows: number, cols: number): number {
  check(W, What, H, rows, cols);
  const d = new Float64Array(cols); // (cols) one row of D
  let total = 0;
  for (let r = 0; r < rows; r++) {
    let any = false;
    for (let j = 0; j < cols; j++) {
      d[j] = W[r * cols + j] - What[r * cols + j];
      if (d[j] !== 0) any = true;
    }
    if (!any) continue;
    for (let i = 0; i < cols; i++) {
      const di = d[i];
      if (di === 0) continue;
      let s = 0;
      const hi = i * cols;
      for (let j = 0; j < cols; j++) s += H[hi + j] * d[j];
      total += di * s;
    }
  }
  return total;
}

/** The same through one GEMM: P = D·H (rows, cols), then Σ D∘P in float64. */
export async function outputErrorGemm(
  W: Float32Array,
  What: Float32Array,
  H: Float32Array,
  rows: number,
  cols: number,
  gemm: Gemm,
): Promise<number> {
  check(W, What, H, rows, cols);
  const D = new Float32Array(rows * cols); // (rows, cols)
  for (let i = 0; i < D.length; i++) D[i] = W[i] - What[i];
  const P = await gemm.matmul(D, H, rows, cols, cols); // (rows, cols)
  let total = 0;
  for (let i = 0; i < D.length; i++) total += D[i] * P[i];
  return total;
}
