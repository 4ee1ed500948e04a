/** Shared fixtures for the compress tests: seeded random matrices and float64 references. */

/** mulberry32: a small seeded uniform [0, 1) generator. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box–Muller). */
export function gaussian(seed: number): () => number {
  const u = rng(seed);
  return () => {
    const a = Math.max(u(), 1e-300);
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * u());
  };
}

export function randn(len: number, seed: number): Float32Array {
  const g = gaussian(seed);
  const out = new Float32Array(len);
  for (let i = 0; i < len; i++) out[i] = g();
  return out;
}

/** H = scale·XᵀX (cols, cols) in float64 for X (n, cols). */
export function gram64(X: ArrayLike<number>, n: number, cols: number, scale = 1): Float64Array {
  const H = new Float64Array(cols * cols);
  for (let s = 0; s < n; s++) {
    const o = s * cols;
    for (let i = 0; i < cols; i++) {
      const xi = X[o + i];
      if (xi === 0) continue;
      const hi = i * cols;
      for (let j = 0; j < cols; j++) H[hi + j] += xi * X[o + j];
    }
  }
  for (let i = 0; i < H.length; i++) H[i] *= scale;
  return H;
}

/** A random SPD matrix: XᵀX/n for X (n = 2·size + 7, size) Gaussian with column scales in [0.5, 2]. */
export function randomSPD(size: number, seed: number): Float64Array {
  const n = 2 * size + 7;
  const X = randn(n * size, seed);
  const u = rng(seed + 1);
  const scale = Array.from({ length: size }, () => 0.5 + 1.5 * u());
  for (let s = 0; s < n; s++) for (let j = 0; j < size; j++) X[s * size + j] *= scale[j];
  return gram64(X, n, size, 1 / n);
}

/**
 * Anisotropic calibration inputs X = Z·A (n, cols): A = (I + G/√cols)·diag(scale), column
 * scales log-uniform over 100×, and 4 outlier columns ×3 — correlated, badly scaled.
 * (With outliers ×10 on top, i.e. a 1000× std range, SparseGPT's damping 0.01·mean(diag H) is
 * dominated by the outliers and over-regularises the rest: it then loses to Wanda at 50%
 * unstructured unless percdamp is lowered. That is the reference's damping, not a bug.)
 */
export function anisotropicInputs(n: number, cols: number, seed: number): Float32Array {
  const Z = randn(n * cols, seed);
  const G = randn(cols * cols, seed + 1);
  const u = rng(seed + 2);
  const scale = Array.from({ length: cols }, () => Math.pow(100, u()));
  for (let k = 0; k < 4; k++) scale[Math.floor(u() * cols)] *= 3;
  const A = new Float64Array(cols * cols); // (cols, cols)
  for (let i = 0; i < cols; i++) {
    for (let j = 0; j < cols; j++) A[i * cols + j] = ((i === j ? 1 : 0) + G[i * cols + j] / Math.sqrt(cols)) * scale[j];
  }
  const X = new Float32Array(n * cols);
  const row = new Float64Array(cols);
  for (let s = 0; s < n; s++) {
    row.fill(0);
    for (let p = 0; p < cols; p++) {
      const z = Z[s * cols + p];
      for (let j = 0; j < cols; j++) row[j] += z * A[p * cols + j];
    }
    X.set(row, s * cols);
  }
  return X;
}

/** ‖X·Wᵀ − X·Ŵᵀ‖²_F computed directly from X (n, cols), W and Ŵ (rows, cols), float64. */
export function reconstructionError(X: Float32Array, n: number, W: Float32Array, What: Float32Array, rows: number, cols: number): number {
  const D = new Float64Array(rows * cols);
  for (let i = 0; i < D.length; i++) D[i] = W[i] - What[i];
  let total = 0;
  for (let s = 0; s < n; s++) {
    const o = s * cols;
    for (let r = 0; r < rows; r++) {
      let v = 0;
      const dr = r * cols;
      for (let j = 0; j < cols; j++) v += X[o + j] * D[dr + j];
      total += v * v;
    }
  }
  return total;
}

// The float64 reference linear algebra lives beside the fast SparseGPT, as its readable definition.
export { cholesky64, invertLower64, matmul64, transpose64, upperFactorReference64 } from '../../src/compress/sparsegpt-reference.ts';

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
