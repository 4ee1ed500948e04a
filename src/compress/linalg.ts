/**
 * Blocked dense linear algebra for SparseGPT on row-major f32 matrices, with the bulk
 * (every O(n³) term) routed through `Gemm` and only O(nb³) diagonal-block kernels in JS
 * (float64 inside). Matrices are n×n, stored row-major in one Float32Array; routines that
 * say "in place" overwrite their argument and allocate only O(n·nb + panel) scratch.
 *
 * The SparseGPT factor: U upper-triangular with UᵀU = H⁻¹ (the reference computes
 * cholesky(H) → cholesky_inverse → cholesky(·, upper=True)). We use the reversed-order
 * Cholesky identity instead, which needs one Cholesky and one triangular inverse, never forms
 * H⁻¹ explicitly, and yields the same U (the Cholesky factor with positive diagonal is unique):
 *
 *   J = the reversal permutation (J = Jᵀ = J⁻¹).  Factor  J·H·J = L·Lᵀ  (L lower).
 *   Then H = (J L J)(J L J)ᵀ with V = J L J upper, so H⁻¹ = V⁻ᵀ V⁻¹ = Uᵀ U with
 *   U = V⁻¹ = J · L⁻¹ · J, upper with positive diagonal.
 *
 * In row-major storage J·M·J is the flat array reversed, so the permutations are free.
 * Cost ≈ n³/3 (Cholesky) + n³/3 (triangular inverse) flops, against ≈ 4n³/3 for the reference
 * route; element traffic in JS is O(n³/nb) for the strided write-back of GEMM results.
 */
import type { Gemm } from './gemm.ts';
import { RacError } from '../errors.ts';

/** Cholesky met a pivot that is not a finite positive number: the matrix is not (numerically) PD. */
export class NotPositiveDefiniteError extends RacError {
  constructor(
    readonly pivot: number,
    readonly value: number,
  ) {
    super(`matrix is not positive definite: Cholesky pivot ${pivot} is ${value}`);
    this.name = 'NotPositiveDefiniteError';
  }
}

export interface BlockOptions {
  /** Width of the diagonal blocks factored in JS (default 128). */
  blockSize?: number;
  /** Height of the row panels of the trailing GEMM updates (default max(4·blockSize, 512)). */
  panelRows?: number;
}

function blockSizes(opts: BlockOptions): { nb: number; rp: number } {
  const nb = opts.blockSize ?? 128;
  if (!Number.isInteger(nb) || nb < 1) throw new RangeError(`blockSize must be a positive integer, got ${nb}`);
  const rp = opts.panelRows ?? Math.max(4 * nb, 512);
  if (!Number.isInteger(rp) || rp < 1) throw new RangeError(`panelRows must be a positive integer, got ${rp}`);
  return { nb, rp };
}

function checkSquare(a: ArrayLike<number>, n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${what}: n must be a non-negative integer, got ${n}`);
  if (a.length !== n * n) throw new RangeError(`${what}: matrix has ${a.length} elements, expected n² = ${n}²`);
}

// ---------------------------------------------------------------- small dense JS kernels (float64)

/**
 * In-place lower Cholesky of a small dense s×s float64 matrix (reads the lower triangle, writes
 * L there, zeroes the strict upper). `offset` only labels the failing pivot in the error.
 */
export function choleskyKernel(D: Float64Array, s: number, offset = 0): void {
  for (let j = 0; j < s; j++) {
    const rj = j * s;
    let d = D[rj + j];
    for (let p = 0; p < j; p++) d -= D[rj + p] * D[rj + p];
    if (!(d > 0) || !Number.isFinite(d)) throw new NotPositiveDefiniteError(offset + j, d);
    const ljj = Math.sqrt(d);
    D[rj + j] = ljj;
    for (let i = j + 1; i < s; i++) {
      const ri = i * s;
      let v = D[ri + j];
      for (let p = 0; p < j; p++) v -= D[ri + p] * D[rj + p];
      D[ri + j] = v / ljj;
    }
    for (let c = j + 1; c < s; c++) D[rj + c] = 0;
  }
}

/** Inverse of a small s×s lower-triangular float64 matrix (strict upper ignored); a fresh array. */
export function invertLowerKernel(L: Float64Array, s: number): Float64Array {
  const X = new Float64Array(s * s); // (s, s) lower
  for (let j = 0; j < s; j++) {
    X[j * s + j] = 1 / L[j * s + j];
    for (let i = j + 1; i < s; i++) {
      const ri = i * s;
      let v = 0;
      for (let p = j; p < i; p++) v += L[ri + p] * X[p * s + j];
      X[ri + j] = -v / L[ri + i];
    }
  }
  return X;
}

// ---------------------------------------------------------------- strided block copies

type Matrix = Float32Array | Float64Array;

/** Copy A[r0:r0+h, c0:c0+w] (row stride lda) into a fresh contiguous h×w Float64Array. */
export function readBlock64(A: Matrix, lda: number, r0: number, c0: number, h: number, w: number): Float64Array {
  const out = new Float64Array(h * w);
  for (let i = 0; i < h; i++) {
    const src = (r0 + i) * lda + c0;
    for (let j = 0; j < w; j++) out[i * w + j] = A[src + j];
  }
  return out;
}

/** Copy A[r0:r0+h, c0:c0+w] into a fresh contiguous h×w Float32Array. */
export function readBlock32(A: Matrix, lda: number, r0: number, c0: number, h: number, w: number): Float32Array {
  const out = new Float32Array(h * w);
  if (A instanceof Float32Array) {
    for (let i = 0; i < h; i++) out.set(A.subarray((r0 + i) * lda + c0, (r0 + i) * lda + c0 + w), i * w);
    return out;
  }
  for (let i = 0; i < h; i++) {
    const src = (r0 + i) * lda + c0;
    for (let j = 0; j < w; j++) out[i * w + j] = A[src + j];
  }
  return out;
}

/** A[r0:r0+h, c0:c0+w] = src (h×w, contiguous). */
export function writeBlock(A: Matrix, lda: number, r0: number, c0: number, h: number, w: number, src: ArrayLike<number>): void {
  for (let i = 0; i < h; i++) {
    const dst = (r0 + i) * lda + c0;
    for (let j = 0; j < w; j++) A[dst + j] = src[i * w + j];
  }
}

/** A[r0:r0+h, c0:c0+w] −= src (h×w, contiguous). */
export function subtractBlock(A: Matrix, lda: number, r0: number, c0: number, h: number, w: number, src: ArrayLike<number>): void {
  for (let i = 0; i < h; i++) {
    const dst = (r0 + i) * lda + c0;
    const o = i * w;
    for (let j = 0; j < w; j++) A[dst + j] -= src[o + j];
  }
}

function zeroStrictUpper(A: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) A.fill(0, i * n + i + 1, (i + 1) * n);
}

// ---------------------------------------------------------------- blocked routines

/**
 * In-place blocked right-looking Cholesky A = L·Lᵀ of a symmetric n×n f32 matrix (only the lower
 * triangle is read). On return A holds L with its strict upper triangle zeroed.
 * Per diagonal block k: factor L_kk in JS; L_21 = A_21·L_kk⁻ᵀ as one GEMM (L_kk⁻¹ from JS);
 * trailing A_22 −= L_21·L_21ᵀ as GEMMs over row panels, lower trapezoid only.
 * Throws NotPositiveDefiniteError on a non-positive or non-finite pivot (A is then garbage).
 */
export async function cholesky(A: Float32Array, n: number, gemm: Gemm, opts: BlockOptions = {}): Promise<void> {
  checkSquare(A, n, 'cholesky');
  const { nb, rp } = blockSizes(opts);
  for (let k0 = 0; k0 < n; k0 += nb) {
    const k1 = Math.min(k0 + nb, n);
    const kb = k1 - k0;
    const Lkk = readBlock64(A, n, k0, k0, kb, kb); // (kb, kb)
    choleskyKernel(Lkk, kb, k0);
    writeBlock(A, n, k0, k0, kb, kb, Lkk);
    if (k1 === n) break;
    const m2 = n - k1;
    // L_21 = A_21 · L_kk⁻ᵀ
    const Xkk = Float32Array.from(invertLowerKernel(Lkk, kb)); // (kb, kb)
    const A21 = readBlock32(A, n, k1, k0, m2, kb); // (m2, kb)
    const L21 = await gemm.matmul(A21, Xkk, m2, kb, kb, { transB: true }); // (m2, kb)
    writeBlock(A, n, k1, k0, m2, kb, L21);
    // A_22 −= L_21 · L_21ᵀ, lower part, one GEMM per row panel [r0, r1).
    for (let r0 = k1; r0 < n; r0 += rp) {
      const r1 = Math.min(r0 + rp, n);
      const h = r1 - r0;
      const w = r1 - k1; // columns k1 .. r1 cover the panel's lower trapezoid
      const P = await gemm.matmul(L21.subarray((r0 - k1) * kb, (r1 - k1) * kb), L21.subarray(0, w * kb), h, kb, w, {
        transB: true,
      }); // (h, w)
      for (let i = 0; i < h; i++) {
        const row = (r0 + i) * n + k1;
        const last = r0 + i - k1; // diagonal column within the panel
        for (let j = 0; j <= last; j++) A[row + j] -= P[i * w + j];
      }
    }
  }
  zeroStrictUpper(A, n);
}

/**
 * In-place blocked inverse of an n×n lower-triangular f32 matrix (strict upper ignored, zeroed
 * on return). LAPACK trtri order, last block column first: with X_22 = L_22⁻¹ already in place,
 * X_21 = −X_22·L_21·L_kk⁻¹ (GEMMs over row panels of X_22's lower trapezoid, then one GEMM),
 * X_kk = L_kk⁻¹ in JS.
 */
export async function invertLower(A: Float32Array, n: number, gemm: Gemm, opts: BlockOptions = {}): Promise<void> {
  checkSquare(A, n, 'invertLower');
  const { nb, rp } = blockSizes(opts);
  zeroStrictUpper(A, n);
  const lastStart = n === 0 ? -1 : Math.floor((n - 1) / nb) * nb;
  for (let j0 = lastStart; j0 >= 0; j0 -= nb) {
    const j1 = Math.min(j0 + nb, n);
    const jb = j1 - j0;
    const Xjj64 = invertLowerKernel(readBlock64(A, n, j0, j0, jb, jb), jb); // (jb, jb)
    for (let i = 0; i < jb; i++) {
      if (!Number.isFinite(Xjj64[i * jb + i])) throw new NotPositiveDefiniteError(j0 + i, A[(j0 + i) * n + j0 + i]);
    }
    if (j1 < n) {
      const m2 = n - j1;
      const L21 = readBlock32(A, n, j1, j0, m2, jb); // (m2, jb)
      const T = new Float32Array(m2 * jb); // (m2, jb) = X_22 · L_21
      for (let r0 = j1; r0 < n; r0 += rp) {
        const r1 = Math.min(r0 + rp, n);
        const h = r1 - r0;
        const w = r1 - j1; // X_22[r0:r1, j1:r1]; entries above the diagonal are zero
        const Xp = readBlock32(A, n, r0, j1, h, w); // (h, w)
        const P = await gemm.matmul(Xp, L21.subarray(0, w * jb), h, w, jb); // (h, jb)
        T.set(P, (r0 - j1) * jb);
      }
      const X21 = await gemm.matmul(T, Float32Array.from(Xjj64), m2, jb, jb); // (m2, jb)
      for (let i = 0; i < X21.length; i++) X21[i] = -X21[i];
      writeBlock(A, n, j1, j0, m2, jb, X21);
    }
    writeBlock(A, n, j0, j0, jb, jb, Xjj64);
  }
}

export interface InverseFactorOptions extends BlockOptions {
  /** Use these values as the diagonal of H instead of H's own (SparseGPT: dead-column fix + damping). */
  diagonal?: Float64Array | Float32Array;
}

/**
 * U (n×n, upper, positive diagonal) with UᵀU = H⁻¹, for symmetric positive-definite H (f32,
 * row-major; only its lower triangle and diagonal are read after reversal, i.e. its upper
 * triangle; for a symmetric H that is the same). H is not modified. Returns a fresh array.
 * Memory: one n×n f32 work array (the result) plus O(n·panel) scratch.
 * Throws NotPositiveDefiniteError when H (with `diagonal`) is not numerically PD.
 */
export async function inverseUpperFactor(H: Float32Array, n: number, gemm: Gemm, opts: InverseFactorOptions = {}): Promise<Float32Array> {
  checkSquare(H, n, 'inverseUpperFactor');
  const N = n * n;
  const A = new Float32Array(N); // (n, n) = J·H·J
  for (let idx = 0; idx < N; idx++) A[idx] = H[N - 1 - idx];
  if (opts.diagonal) {
    if (opts.diagonal.length !== n) throw new RangeError(`inverseUpperFactor: diagonal has ${opts.diagonal.length} entries, expected ${n}`);
    for (let i = 0; i < n; i++) A[i * n + i] = opts.diagonal[n - 1 - i];
  }
  await cholesky(A, n, gemm, opts); // A = L
  await invertLower(A, n, gemm, opts); // A = L⁻¹
  A.reverse(); // U = J·L⁻¹·J
  return A;
}
