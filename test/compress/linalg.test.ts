import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsGemm, matmulJs } from '../../src/compress/gemm.ts';
import { cholesky, inverseUpperFactor, invertLower, NotPositiveDefiniteError } from '../../src/compress/linalg.ts';
import {
  cholesky64,
  invertLower64,
  matmul64,
  maxAbs,
  maxAbsDiff,
  randn,
  randomSPD,
  transpose64,
  upperFactorReference64,
} from './helpers.ts';

// Sizes deliberately not multiples of the block sizes; small blocks/panels exercise many GEMM steps.
const CASES = [
  { n: 1, blockSize: 128, panelRows: undefined },
  { n: 37, blockSize: 8, panelRows: 11 },
  { n: 130, blockSize: 16, panelRows: 40 },
  { n: 260, blockSize: 128, panelRows: undefined },
  { n: 200, blockSize: 32, panelRows: 70 },
];

test('jsGemm matches a float64 product for every transpose combination', () => {
  const [m, k, n] = [7, 5, 9];
  const A = randn(m * k, 1); // (m, k)
  const B = randn(k * n, 2); // (k, n)
  const ref = matmul64(A, B, m, k, n);
  const At = Float32Array.from(transpose64(A, m, k)); // (k, m)
  const Bt = Float32Array.from(transpose64(B, k, n)); // (n, k)
  for (const [a, b, opts] of [
    [A, B, {}],
    [At, B, { transA: true }],
    [A, Bt, { transB: true }],
    [At, Bt, { transA: true, transB: true }],
  ] as const) {
    const C = matmulJs(a, b, m, k, n, opts);
    assert.ok(maxAbsDiff(C, ref) < 1e-5, `${JSON.stringify(opts)}: ${maxAbsDiff(C, ref)}`);
  }
  assert.throws(() => matmulJs(A, B, m, k + 1, n), /A has 35 elements/);
});

for (const { n, blockSize, panelRows } of CASES) {
  test(`blocked Cholesky, triangular inverse and U factor: n=${n}, block ${blockSize}, panel ${panelRows ?? 'default'}`, async () => {
    const H64 = randomSPD(n, 100 + n + blockSize);
    const H = Float32Array.from(H64);
    const opts = { blockSize, panelRows };

    // Cholesky vs the textbook float64 factor.
    const Lref = cholesky64(H64, n);
    const L = Float32Array.from(H);
    await cholesky(L, n, jsGemm, opts);
    for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) assert.equal(L[i * n + j], 0, `L[${i},${j}] above diagonal`);
    const errL = maxAbsDiff(L, Lref) / maxAbs(Lref);
    assert.ok(errL < 1e-5, `Cholesky relative error ${errL}`);

    // Triangular inverse vs float64 forward substitution, and L·L⁻¹ ≈ I.
    const X = Float32Array.from(L);
    await invertLower(X, n, jsGemm, opts);
    const Xref = invertLower64(Lref, n);
    const errX = maxAbsDiff(X, Xref) / maxAbs(Xref);
    assert.ok(errX < 1e-5, `triangular inverse relative error ${errX}`);
    const LX = matmul64(Lref, X, n, n, n);
    for (let i = 0; i < n; i++) LX[i * n + i] -= 1;
    assert.ok(maxAbs(LX) < 1e-5, `L·L⁻¹ − I = ${maxAbs(LX)}`);

    // U: upper, positive diagonal, UᵀU·H ≈ I, and equal to the reference route's factor.
    const U = await inverseUpperFactor(H, n, jsGemm, opts);
    assert.deepEqual(H, Float32Array.from(H64), 'H is not modified');
    for (let i = 0; i < n; i++) {
      assert.ok(U[i * n + i] > 0, `U[${i},${i}] = ${U[i * n + i]}`);
      for (let j = 0; j < i; j++) assert.equal(U[i * n + j], 0, `U[${i},${j}] below diagonal`);
    }
    const UtUH = matmul64(matmul64(transpose64(U, n, n), U, n, n, n), H64, n, n, n);
    for (let i = 0; i < n; i++) UtUH[i * n + i] -= 1;
    assert.ok(maxAbs(UtUH) < 1e-5, `UᵀU·H − I = ${maxAbs(UtUH)}`);
    const Uref = upperFactorReference64(H64, n);
    const errU = maxAbsDiff(U, Uref) / maxAbs(Uref);
    assert.ok(errU < 1e-5, `U vs reference route, relative error ${errU}`);
  });
}

test('the diagonal override replaces H’s diagonal (SparseGPT damping) without touching H', async () => {
  const n = 50;
  const H64 = randomSPD(n, 7);
  const H = Float32Array.from(H64);
  const diagonal = new Float64Array(n);
  const Hd = Float64Array.from(H64);
  for (let i = 0; i < n; i++) {
    diagonal[i] = H64[i * n + i] + 0.3;
    Hd[i * n + i] = diagonal[i];
  }
  const U = await inverseUpperFactor(H, n, jsGemm, { diagonal, blockSize: 16 });
  const err = maxAbsDiff(U, upperFactorReference64(Hd, n)) / maxAbs(U);
  assert.ok(err < 1e-5, `relative error ${err}`);
});

test('a matrix that is not positive definite throws NotPositiveDefiniteError with the pivot', async () => {
  const n = 40;
  const H = Float32Array.from(randomSPD(n, 3));
  // Make the leading 2×2 of the REVERSED matrix indefinite: columns n−1 and n−2 of H.
  const a = n - 1;
  const b = n - 2;
  H[a * n + b] = H[b * n + a] = 2 * Math.sqrt(H[a * n + a] * H[b * n + b]);
  await assert.rejects(inverseUpperFactor(H, n, jsGemm, { blockSize: 16 }), (e: unknown) => {
    assert.ok(e instanceof NotPositiveDefiniteError);
    assert.equal(e.pivot, 1);
    assert.ok(e.value < 0);
    return true;
  });
  const Z = new Float32Array(n * n);
  await assert.rejects(cholesky(Z, n, jsGemm), NotPositiveDefiniteError);
  const N = Float32Array.from(randomSPD(n, 4));
  N[20 * n + 20] = NaN;
  await assert.rejects(cholesky(N, n, jsGemm, { blockSize: 8 }), NotPositiveDefiniteError);
});
