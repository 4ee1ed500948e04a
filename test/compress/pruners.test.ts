import { test } from 'node:test';
import assert from 'node:assert/strict';
import { magnitudePrune } from '../../src/compress/magnitude.ts';
import { wandaPrune } from '../../src/compress/wanda.ts';
import { countZeros, type SparsityTarget } from '../../src/compress/masks.ts';
import { randn, rng } from './helpers.ts';

const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Zeros in each row of a (rows, cols) matrix. */
function rowZeros(W: Float32Array, rows: number, cols: number): number[] {
  return Array.from({ length: rows }, (_, r) => countZeros(W.subarray(r * cols, (r + 1) * cols)));
}

/** Asserts every group of m consecutive columns of every row holds exactly n zeros (W has no other zeros). */
function assertNM(W: Float32Array, rows: number, cols: number, n: number, m: number): void {
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += m) {
      const z = countZeros(W.subarray(r * cols + g, r * cols + g + m));
      assert.ok(z >= n, `row ${r}, group at ${g}: ${z} zeros < ${n}`);
      assert.equal(z, n, `row ${r}, group at ${g}`);
    }
  }
}

const NM = [
  { n: 2, m: 4 },
  { n: 4, m: 8 },
  { n: 1, m: 4 },
];

test('magnitude per layer: exactly floor(s·rows·cols) zeros, all pruned |w| ≤ all kept |w|', () => {
  const [rows, cols] = [64, 200];
  for (const s of [0.5, 0.37, 0.9]) {
    const W0 = randn(rows * cols, 11);
    const W = W0.slice();
    const rep = magnitudePrune(W, rows, cols, { kind: 'unstructured', sparsity: s });
    const k = Math.floor(s * rows * cols);
    assert.equal(countZeros(W), k);
    assert.equal(rep.zeros, k);
    assert.equal(rep.total, rows * cols);
    assert.equal(rep.sparsity, k / (rows * cols));
    let maxPruned = 0;
    let minKept = Infinity;
    for (let i = 0; i < W.length; i++) {
      if (W[i] === 0) maxPruned = Math.max(maxPruned, Math.abs(W0[i]));
      else {
        assert.equal(W[i], W0[i], 'kept weights are untouched');
        minKept = Math.min(minKept, Math.abs(W0[i]));
      }
    }
    assert.ok(maxPruned <= minKept, `s=${s}: pruned up to ${maxPruned}, kept from ${minKept}`);
    // Rows are not balanced under a layer-wide threshold, unlike scope 'row'.
    const perRow = rowZeros(W, rows, cols);
    assert.ok(new Set(perRow).size > 1);
  }
});

test('magnitude per row and N:M: exact counts per row and per group', () => {
  const [rows, cols] = [48, 256];
  const W = randn(rows * cols, 12);
  magnitudePrune(W, rows, cols, { kind: 'unstructured', sparsity: 0.37 }, { scope: 'row' });
  assert.deepEqual(rowZeros(W, rows, cols), new Array(rows).fill(Math.floor(0.37 * cols)));
  for (const { n, m } of NM) {
    const W0 = randn(rows * cols, 13 + m);
    const W1 = W0.slice();
    const rep = magnitudePrune(W1, rows, cols, { kind: 'nm', n, m });
    assertNM(W1, rows, cols, n, m);
    assert.equal(rep.sparsity, n / m);
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < cols; g += m) {
        const grp = Array.from(W0.subarray(r * cols + g, r * cols + g + m), (v, c) => ({ v: Math.abs(v), c }));
        const kept = grp.filter((e) => W1[r * cols + g + e.c] !== 0);
        const pruned = grp.filter((e) => W1[r * cols + g + e.c] === 0);
        assert.ok(Math.max(...pruned.map((e) => e.v)) <= Math.min(...kept.map((e) => e.v)));
      }
    }
  }
});

test('Wanda: per-row exact sparsity, score order |W|·‖X_j‖, N:M groups, and it differs from magnitude', () => {
  const [rows, cols] = [64, 192];
  const u = rng(5);
  const colSqNorm = Float64Array.from({ length: cols }, () => Math.pow(1e4, u())); // norms span 100×
  for (const s of [0.5, 0.3]) {
    const W0 = randn(rows * cols, 21);
    const W = W0.slice();
    const rep = wandaPrune(W, rows, cols, colSqNorm, { kind: 'unstructured', sparsity: s });
    const k = Math.floor(s * cols);
    assert.deepEqual(rowZeros(W, rows, cols), new Array(rows).fill(k));
    assert.equal(rep.zeros, rows * k);
    for (let r = 0; r < rows; r++) {
      let maxPruned = 0;
      let minKept = Infinity;
      for (let j = 0; j < cols; j++) {
        const score = Math.abs(W0[r * cols + j]) * Math.sqrt(colSqNorm[j]);
        if (W[r * cols + j] === 0) maxPruned = Math.max(maxPruned, score);
        else minKept = Math.min(minKept, score);
      }
      assert.ok(maxPruned <= minKept, `row ${r}`);
    }
    const M = W0.slice();
    magnitudePrune(M, rows, cols, { kind: 'unstructured', sparsity: s }, { scope: 'row' });
    let differ = 0;
    for (let i = 0; i < W.length; i++) if ((W[i] === 0) !== (M[i] === 0)) differ++;
    assert.ok(differ > W.length / 10, `Wanda and magnitude masks differ in only ${differ} entries`);
  }
  for (const { n, m } of NM) {
    const W = randn(rows * cols, 22 + m);
    const rep = wandaPrune(W, rows, cols, colSqNorm, { kind: 'nm', n, m });
    assertNM(W, rows, cols, n, m);
    assert.equal(rep.sparsity, n / m);
  }
});

test('sparsity 0 leaves W bit-identical', () => {
  const [rows, cols] = [8, 16];
  const W0 = randn(rows * cols, 31);
  W0[3] = -0;
  W0[5] = 0;
  const target: SparsityTarget = { kind: 'unstructured', sparsity: 0 };
  for (const prune of [
    (W: Float32Array) => magnitudePrune(W, rows, cols, target),
    (W: Float32Array) => magnitudePrune(W, rows, cols, target, { scope: 'row' }),
    (W: Float32Array) => wandaPrune(W, rows, cols, new Float64Array(cols).fill(1), target),
  ]) {
    const W = W0.slice();
    const rep = prune(W);
    assert.deepEqual(bytes(W), bytes(W0));
    assert.equal(rep.zeros, 2);
  }
});

test('invalid inputs are rejected with clear errors', () => {
  const W = randn(4 * 8, 1);
  const t: SparsityTarget = { kind: 'unstructured', sparsity: 0.5 };
  assert.throws(() => magnitudePrune(W, 4, 7, t), /W has 32 elements, expected rows·cols = 4·7/);
  assert.throws(() => magnitudePrune(W, 4, 8, { kind: 'unstructured', sparsity: 1 }), /\[0, 1\)/);
  assert.throws(() => magnitudePrune(W, 4, 8, { kind: 'nm', n: 2, m: 3 }), /cols divisible by M/);
  assert.throws(() => magnitudePrune(W, 4, 8, { kind: 'nm', n: 4, m: 4 }), /1 ≤ N < M/);
  assert.throws(() => wandaPrune(W, 4, 8, new Float64Array(7), t), /colSqNorm has 7 entries/);
  assert.throws(() => wandaPrune(W, 4, 8, new Float64Array(8).fill(-1), t), /colSqNorm\[0\] must be finite and ≥ 0/);
  const bad = W.slice();
  bad[9] = NaN;
  assert.throws(() => magnitudePrune(bad, 4, 8, t), /W\[1, 1\] is NaN/);
});
