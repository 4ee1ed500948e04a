/**
 * The one matrix-multiply door of the pruning algorithms. Every O(n³) step of `compress/`
 * (blocked Cholesky, triangular inverse, SparseGPT's lazy batch update) calls `Gemm.matmul`;
 * the pipeline plugs in an onnxruntime-backed implementation, tests use `jsGemm`.
 */

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
}

export interface Gemm {
  /**
   * C (m×n) = op(A)·op(B), row-major f32. op(A) is m×k: A is m×k, or k×m when transA.
   * op(B) is k×n: B is k×n, or n×k when transB. Inputs are not modified; C is a fresh array.
   */
  matmul(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts?: GemmOptions): Promise<Float32Array>;
}

function checkShapes(a: Float32Array, b: Float32Array, m: number, k: number, n: number): void {
  for (const [name, v] of [
    ['m', m],
    ['k', k],
    ['n', n],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`gemm: ${name} must be a non-negative integer, got ${v}`);
  }
  if (a.length !== m * k) throw new RangeError(`gemm: A has ${a.length} elements, expected m·k = ${m}·${k}`);
  if (b.length !== k * n) throw new RangeError(`gemm: B has ${b.length} elements, expected k·n = ${k}·${n}`);
}

/** Plain-JS reference: i-k-j loop with a float64 row accumulator. For tests and tiny sizes. */
export function matmulJs(a: Float32Array, b: Float32Array, m: number, k: number, n: number, opts: GemmOptions = {}): Float32Array {
  checkShapes(a, b, m, k, n);
  // Normalise op(A) to a row-major m×k and op(B) to a row-major k×n (copies are O(mk + kn)).
  let A = a;
  if (opts.transA) {
    A = new Float32Array(m * k); // (m, k)
    for (let p = 0; p < k; p++) for (let i = 0; i < m; i++) A[i * k + p] = a[p * m + i];
  }
  let B = b;
  if (opts.transB) {
    B = new Float32Array(k * n); // (k, n)
    for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) B[p * n + j] = b[j * k + p];
  }
  const C = new Float32Array(m * n); // (m, n)
  const acc = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    const ai = i * k;
    for (let p = 0; p < k; p++) {
      const aip = A[ai + p];
      const bp = p * n;
      for (let j = 0; j < n; j++) acc[j] += aip * B[bp + j];
    }
    const ci = i * n;
    for (let j = 0; j < n; j++) C[ci + j] = acc[j];
  }
  return C;
}

export const jsGemm: Gemm = {
  matmul: async (a, b, m, k, n, opts) => matmulJs(a, b, m, k, n, opts),
};
