import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  countZeros,
  parsePattern,
  parseSparsity,
  parseSparsityTarget,
  rowwiseMask,
  selectSmallest,
  targetFraction,
  validateTarget,
} from '../../src/compress/masks.ts';

test('parseSparsity accepts [0, 1) and rejects the rest', () => {
  assert.equal(parseSparsity('0.5'), 0.5);
  assert.equal(parseSparsity(' 0 '), 0);
  assert.equal(parseSparsity(0.25), 0.25);
  for (const bad of ['1', '-0.1', '', 'abc', '0.5x', 'NaN', 1.5]) {
    assert.throws(() => parseSparsity(bad), /sparsity must be a number in \[0, 1\)/, String(bad));
  }
});

test('parsePattern parses N:M with 1 ≤ N < M', () => {
  assert.deepEqual(parsePattern('2:4'), { n: 2, m: 4 });
  assert.deepEqual(parsePattern(' 4 : 8 '), { n: 4, m: 8 });
  assert.throws(() => parsePattern('4:4'), /N must be < M/);
  assert.throws(() => parsePattern('5:4'), /N must be < M/);
  assert.throws(() => parsePattern('1:0'), /M must be > 0/);
  assert.throws(() => parsePattern('0:4'), /N must be ≥ 1/);
  assert.throws(() => parsePattern('2/4'), /must look like "2:4"/);
  assert.throws(() => parsePattern('2.5:4'), /must look like "2:4"/);
  assert.deepEqual(parseSparsityTarget('2:4'), { kind: 'nm', n: 2, m: 4 });
  assert.deepEqual(parseSparsityTarget('0.4'), { kind: 'unstructured', sparsity: 0.4 });
  assert.equal(targetFraction({ kind: 'nm', n: 1, m: 4 }), 0.25);
  assert.throws(() => validateTarget({ kind: 'nm', n: 2, m: 4 }, 10), /cols divisible by M/);
  assert.throws(() => validateTarget({ kind: 'unstructured', sparsity: 1 }, 10), /\[0, 1\)/);
});

test('selectSmallest marks exactly k entries, ties broken by lower index', () => {
  const scores = Float64Array.from([3, 1, 2, 1, 1, 0, 5]);
  for (let k = 0; k <= scores.length; k++) {
    const mask = new Uint8Array(scores.length);
    selectSmallest(scores, k, mask);
    assert.equal(countZeros(mask), scores.length - k, `k=${k}`);
  }
  const mask = new Uint8Array(scores.length);
  selectSmallest(scores, 3, mask); // 0, then two of the three 1s: indices 1 and 3
  assert.deepEqual([...mask], [0, 1, 0, 1, 0, 1, 0]);
  const allEqual = new Uint8Array(6);
  selectSmallest(new Float64Array(6).fill(2), 4, allEqual);
  assert.deepEqual([...allEqual], [1, 1, 1, 1, 0, 0]);
});

test('rowwiseMask: N:M picks the N smallest of each group of M in each row', () => {
  const scores = Float64Array.from([4, 3, 2, 1, 1, 1, 0, 9, /* row 1 */ 5, 6, 7, 8, 2, 2, 2, 2]);
  const mask = rowwiseMask(scores, 2, 8, { kind: 'nm', n: 2, m: 4 });
  assert.deepEqual([...mask], [0, 0, 1, 1, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 0, 0]);
  const un = rowwiseMask(scores, 2, 8, { kind: 'unstructured', sparsity: 0.3 }); // floor(2.4) = 2 per row
  assert.deepEqual([...un], [0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0]);
});

test('kthSmallest equals the sorted order at every rank, with many ties', async () => {
  const { kthSmallest } = await import('../../src/compress/masks.ts');
  let s = 7;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
  for (const [n, distinct] of [
    [1, 1],
    [2, 2],
    [50, 3],
    [257, 1000],
    [1000, 10],
    [333, 2],
  ] as const) {
    const a = Float64Array.from({ length: n }, () => Math.floor(rnd() * distinct) / distinct);
    const sorted = Float64Array.from(a).sort();
    for (let k = 0; k < n; k += Math.max(1, Math.floor(n / 37))) {
      assert.equal(kthSmallest(Float64Array.from(a), k), sorted[k], `n=${n} k=${k}`);
    }
  }
});
