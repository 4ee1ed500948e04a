import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsGemm } from '../../src/compress/gemm.ts';
import { sparsegptPrune } from '../../src/compress/sparsegpt.ts';
import { countZeros, type SparsityTarget } from '../../src/compress/masks.ts';
import { sparsegptReference64 } from '../../src/compress/sparsegpt-reference.ts';
import { anisotropicInputs, gram64, maxAbs, randn, randomSPD } from './helpers.ts';

const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** H = 2/n·XᵀX as f32 for X (n, cols). */
function hessian(X: Float32Array, n: number, cols: number): Float32Array {
  return Float32Array.from(gram64(X, n, cols, 2 / n));
}

const CASES: { name: string; rows: number; cols: number; target: SparsityTarget }[] = [
  { name: '50% unstructured, 16×256 (two blocks)', rows: 16, cols: 256, target: { kind: 'unstructured', sparsity: 0.5 } },
  { name: '30% unstructured, 16×200 (ragged last block)', rows: 16, cols: 200, target: { kind: 'unstructured', sparsity: 0.3 } },
  { name: '2:4, 16×256', rows: 16, cols: 256, target: { kind: 'nm', n: 2, m: 4 } },
];

for (const { name, rows, cols, target } of CASES) {
  test(`SparseGPT matches a naive unblocked float64 reference: ${name}`, async () => {
    const n = 2 * cols;
    const X = anisotropicInputs(n, cols, 41);
    const H = hessian(X, n, cols);
    const H0 = H.slice();
    const W0 = randn(rows * cols, 42);
    const W = W0.slice();
    const rep = await sparsegptPrune(W, rows, cols, H, target, jsGemm);
    assert.deepEqual(bytes(H), bytes(H0), 'H is not modified');
    const ref = sparsegptReference64(W0, rows, cols, H, target, 128, 0.01);
    let maskDiff = 0;
    for (let i = 0; i < W.length; i++) if ((W[i] === 0) !== (ref.mask[i] === 1)) maskDiff++;
    assert.equal(maskDiff, 0, 'masks differ');
    let err = 0;
    for (let i = 0; i < W.length; i++) err = Math.max(err, Math.abs(W[i] - ref.W[i]));
    assert.ok(err < 1e-4 * maxAbs(ref.W), `max |Ŵ − Ŵ_ref| = ${err} (max |Ŵ_ref| = ${maxAbs(ref.W)})`);
    assert.ok(Math.abs(rep.loss! - ref.loss) < 1e-4 * ref.loss, `loss ${rep.loss} vs ${ref.loss}`);
    assert.equal(rep.retries, 0);
    assert.equal(rep.damp, 0.01);
  });
}

test('SparseGPT realised sparsity is exact per 128-column block; N:M groups hold ≥ N zeros', async () => {
  const [rows, cols, n] = [64, 320, 400];
  const X = anisotropicInputs(n, cols, 51);
  const H = hessian(X, n, cols);
  for (const s of [0.5, 0.3]) {
    const W = randn(rows * cols, 52);
    const rep = await sparsegptPrune(W, rows, cols, H, { kind: 'unstructured', sparsity: s }, jsGemm);
    let total = 0;
    for (let i1 = 0; i1 < cols; i1 += 128) {
      const count = Math.min(128, cols - i1);
      let z = 0;
      for (let r = 0; r < rows; r++) z += countZeros(W.subarray(r * cols + i1, r * cols + i1 + count));
      assert.equal(z, Math.floor(s * rows * count), `s=${s}, block at ${i1}`);
      total += z;
    }
    assert.equal(rep.zeros, total);
    for (const v of W) assert.ok(Number.isFinite(v));
  }
  for (const { n: N, m: M } of [
    { n: 2, m: 4 },
    { n: 4, m: 8 },
    { n: 1, m: 4 },
  ]) {
    const W = randn(rows * cols, 53);
    const rep = await sparsegptPrune(W, rows, cols, H, { kind: 'nm', n: N, m: M }, jsGemm);
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < cols; g += M) {
        const z = countZeros(W.subarray(r * cols + g, r * cols + g + M));
        assert.ok(z >= N, `${N}:${M} row ${r} group ${g}: ${z} zeros`);
      }
    }
    assert.equal(rep.zeros, (rows * cols * N) / M, `${N}:${M} total`);
  }
});

test('SparseGPT sparsity 0 leaves W bit-identical (even with dead columns)', async () => {
  const [rows, cols] = [8, 64];
  const H = Float32Array.from(randomSPD(cols, 61));
  for (let j = 0; j < cols; j++) H[5 * cols + j] = H[j * cols + 5] = 0;
  const W0 = randn(rows * cols, 62);
  const W = W0.slice();
  const rep = await sparsegptPrune(W, rows, cols, H, { kind: 'unstructured', sparsity: 0 }, jsGemm);
  assert.deepEqual(bytes(W), bytes(W0));
  assert.equal(rep.zeros, 0);
});

test('rank-deficient Hessians: dead columns, duplicated columns, fewer samples than columns', async () => {
  const [rows, cols] = [32, 160];
  const target: SparsityTarget = { kind: 'unstructured', sparsity: 0.5 };
  const dead = [3, 77, 159];
  const cases: { name: string; n: number; edit: (X: Float32Array, n: number) => void }[] = [
    {
      name: 'dead columns',
      n: 400,
      edit: (X, n) =>
        dead.forEach((j) => {
          for (let s = 0; s < n; s++) X[s * cols + j] = 0;
        }),
    },
    {
      name: 'duplicated columns',
      n: 400,
      edit: (X, n) => {
        for (let s = 0; s < n; s++) for (let j = 0; j < 40; j++) X[s * cols + j + 40] = X[s * cols + j];
      },
    },
    { name: 'n = 20 samples < cols', n: 20, edit: () => {} },
  ];
  for (const { name, n, edit } of cases) {
    const X = anisotropicInputs(n, cols, 71);
    edit(X, n);
    const H = hessian(X, n, cols);
    const W = randn(rows * cols, 72);
    const rep = await sparsegptPrune(W, rows, cols, H, target, jsGemm);
    for (let i = 0; i < W.length; i++) assert.ok(Number.isFinite(W[i]), `${name}: W[${i}] = ${W[i]}`);
    assert.ok(Number.isFinite(rep.loss!) && rep.loss! >= 0, `${name}: loss ${rep.loss}`);
    assert.equal(rep.zeros, Math.floor(0.5 * rows * 128) + Math.floor(0.5 * rows * 32), name);
    if (name === 'dead columns') {
      for (const j of dead) for (let r = 0; r < rows; r++) assert.equal(W[r * cols + j], 0, `dead column ${j}`);
    }
  }
});

test('an indefinite Hessian escalates the damping (reported), and a hopeless one throws', async () => {
  const [rows, cols] = [16, 64];
  // H = I with one 2×2 coupling of 1.03: eigenvalue −0.03. Damping λ·mean(diag)=λ: 0.01 and 0.02 fail, 0.04 works.
  const H = new Float32Array(cols * cols);
  for (let j = 0; j < cols; j++) H[j * cols + j] = 1;
  H[10 * cols + 11] = H[11 * cols + 10] = 1.03;
  const W = randn(rows * cols, 81);
  const rep = await sparsegptPrune(W, rows, cols, H, { kind: 'unstructured', sparsity: 0.5 }, jsGemm);
  assert.equal(rep.retries, 2);
  assert.equal(rep.damp, 0.04);
  assert.equal(rep.zeros, rows * cols * 0.5);
  for (const v of W) assert.ok(Number.isFinite(v));

  H[10 * cols + 11] = H[11 * cols + 10] = 1.9; // eigenvalue −0.9: even λ = 0.5 fails
  await assert.rejects(
    sparsegptPrune(randn(rows * cols, 82), rows, cols, H, { kind: 'nm', n: 2, m: 4 }, jsGemm),
    /Cholesky of the damped Hessian failed for every damping up to 0\.5·mean\(diag H\) \(7 attempts/,
  );
  await assert.rejects(
    sparsegptPrune(randn(rows * cols, 83), rows, cols, H.subarray(1), { kind: 'unstructured', sparsity: 0.5 }, jsGemm),
    /H has 4095 elements, expected cols² = 64²/,
  );
  await assert.rejects(
    sparsegptPrune(randn(rows * cols, 84), rows, cols, H, { kind: 'nm', n: 2, m: 4 }, jsGemm, { blocksize: 126 }),
    /blocksize 126 must be a multiple of M = 4/,
  );
});
