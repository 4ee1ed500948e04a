/**
 * SparseGPT's readable definition, in float64, unblocked: what `sparsegptPrune` (sparsegpt.ts)
 * computes fast and what its tests compare against (masks equal, weights within f32 rounding).
 *
 *   H ← H with dead columns (H_jj = 0) set to 1 and W[:, j] = 0; H += percdamp·mean(diag H)·I
 *   U ← upper Cholesky factor of H⁻¹, by the reference route (cholesky → inverse → cholesky)
 *   for each column j: (unstructured) at each block start of B columns choose the block's mask,
 *     exactly floor(s·rows·B) smallest w²/U_jj², ties → lower row-major index; (N:M) at each group
 *     start, per row the n smallest of its m; then q = masked w, err = (w − q)/U_jj and every
 *     LATER column gets its share at once: W[:, j+1:] −= err·U[j, j+1:] (no lazy batching)
 *   loss = Σ err²/2.
 * No GEMM, no blocking, O(rows·cols²) in JS: for small matrices only.
 */
import type { SparsityTarget } from './masks.ts';

/** Lower Cholesky factor in float64 (textbook, unblocked). Throws on a non-positive pivot. */
export function cholesky64(A: ArrayLike<number>, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    let d = A[j * n + j];
    for (let p = 0; p < j; p++) d -= L[j * n + p] ** 2;
    if (!(d > 0)) throw new Error(`cholesky64: pivot ${j} = ${d}`);
    L[j * n + j] = Math.sqrt(d);
    for (let i = j + 1; i < n; i++) {
      let v = A[i * n + j];
      for (let p = 0; p < j; p++) v -= L[i * n + p] * L[j * n + p];
      L[i * n + j] = v / L[j * n + j];
    }
  }
  return L;
}

/** Inverse of a lower-triangular float64 matrix by forward substitution. */
export function invertLower64(L: Float64Array, n: number): Float64Array {
  const X = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    X[j * n + j] = 1 / L[j * n + j];
    for (let i = j + 1; i < n; i++) {
      let v = 0;
      for (let p = j; p < i; p++) v += L[i * n + p] * X[p * n + j];
      X[i * n + j] = -v / L[i * n + i];
    }
  }
  return X;
}

/** C = A·B for dense float64 (m, k)·(k, n). */
export function matmul64(A: ArrayLike<number>, B: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      const a = A[i * k + p];
      for (let j = 0; j < n; j++) C[i * n + j] += a * B[p * n + j];
    }
  }
  return C;
}

export function transpose64(A: ArrayLike<number>, m: number, n: number): Float64Array {
  const T = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) T[j * m + i] = A[i * n + j];
  return T;
}

/**
 * The SparseGPT reference route in float64: L = chol(H), H⁻¹ = L⁻ᵀL⁻¹, U = upper chol(H⁻¹)
 * (cholesky → cholesky_inverse → cholesky(upper=True) in IST-DASLab/sparsegpt).
 */
export function upperFactorReference64(H: ArrayLike<number>, n: number): Float64Array {
  const Li = invertLower64(cholesky64(H, n), n);
  const Hinv = matmul64(transpose64(Li, n, n), Li, n, n, n);
  return transpose64(cholesky64(Hinv, n), n, n); // Hinv = Lh·Lhᵀ → U = Lhᵀ, UᵀU = Hinv
}

/** Indices [0, len) of the k smallest scores, ties → lower index (a plain sort). */
function smallestK(scores: number[], k: number): number[] {
  return scores
    .map((v, i) => ({ v, i }))
    .sort((a, b) => a.v - b.v || a.i - b.i)
    .slice(0, k)
    .map((e) => e.i);
}

/**
 * Naive float64 SparseGPT: the reference U route, no blocking of the updates (every column's
 * error goes to ALL later columns at once), the mask chosen per block of B columns (unstructured)
 * or per group of m (N:M) from the current weights.
 */
export function sparsegptReference64(
  W0: Float32Array,
  rows: number,
  cols: number,
  H0: Float32Array,
  target: SparsityTarget,
  B = 128,
  percdamp = 0.01,
): { W: Float64Array; mask: Uint8Array; loss: number } {
  const W = Float64Array.from(W0);
  const H = Float64Array.from(H0);
  let mean = 0;
  for (let j = 0; j < cols; j++) {
    if (H[j * cols + j] === 0) {
      H[j * cols + j] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + j] = 0;
    }
    mean += H[j * cols + j] / cols;
  }
  for (let j = 0; j < cols; j++) H[j * cols + j] += percdamp * mean;
  const U = upperFactorReference64(H, cols);
  const mask = new Uint8Array(rows * cols);
  const score = (r: number, c: number) => W[r * cols + c] ** 2 / U[c * cols + c] ** 2;
  let loss = 0;
  for (let j = 0; j < cols; j++) {
    if (target.kind === 'unstructured' && j % B === 0) {
      const end = Math.min(j + B, cols);
      const count = end - j;
      const s: number[] = [];
      for (let r = 0; r < rows; r++) for (let c = j; c < end; c++) s.push(score(r, c));
      for (const idx of smallestK(s, Math.floor(target.sparsity * rows * count))) {
        mask[Math.floor(idx / count) * cols + j + (idx % count)] = 1;
      }
    }
    if (target.kind === 'nm' && j % target.m === 0) {
      for (let r = 0; r < rows; r++) {
        const s = Array.from({ length: target.m }, (_, c) => score(r, j + c));
        for (const c of smallestK(s, target.n)) mask[r * cols + j + c] = 1;
      }
    }
    const d = U[j * cols + j];
    for (let r = 0; r < rows; r++) {
      const w = W[r * cols + j];
      const q = mask[r * cols + j] ? 0 : w;
      const err = (w - q) / d;
      loss += (err * err) / 2;
      W[r * cols + j] = q;
      for (let c = j + 1; c < cols; c++) W[r * cols + c] -= err * U[j * cols + c];
    }
  }
  return { W, mask, loss };
}
