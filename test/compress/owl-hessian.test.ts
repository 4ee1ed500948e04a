import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  batchRowWeights,
  CLASS_ANSWER,
  CLASS_PROMPT,
  CLASS_THINK,
  hessianOf,
  parseTokenWeights,
  weightedTokens,
  XtxSum,
} from '../../src/compress/hessian.ts';
import { outlierRatio, owlTargets } from '../../src/compress/owl.ts';
import { leftPad } from '../../src/models/batch.ts';
import { randn, rng } from './helpers.ts';

const bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

test('row weights: uniform token weights give √(sequence weight) exactly (the former formula), padding 0', () => {
  const seqs = [
    { ids: [1, 2, 3, 4, 5], weight: 1, classes: Uint8Array.from([0, 0, 1, 1, 2]) },
    { ids: [7, 8], weight: 4 },
    { ids: [9, 9, 9], weight: 0.3, classes: Uint8Array.from([0, 1, 2]) },
  ];
  const pb = leftPad(seqs.map((s) => s.ids));
  const old = new Float32Array(pb.B * pb.T);
  pb.valid.forEach((v, b) => v.forEach((x, t) => (old[b * pb.T + t] = x ? Math.sqrt(seqs[b]!.weight) : 0)));
  assert.deepEqual(bytes(batchRowWeights(seqs, pb.valid, pb.T)), bytes(old));
  assert.deepEqual(bytes(batchRowWeights(seqs, pb.valid, pb.T, { prompt: 1, think: 1, answer: 1 })), bytes(old));
  assert.equal(weightedTokens(seqs), 5 + 8 + 0.3 * 3);
  // prompt 0, answer 4: by class; the unclassified sequence keeps √4
  const rw = batchRowWeights(seqs, pb.valid, pb.T, { prompt: 0, think: 1, answer: 4 });
  const T = pb.T;
  assert.deepEqual(Array.from(rw.subarray(0, T)), [0, 0, 1, 1, 2]);
  assert.deepEqual(Array.from(rw.subarray(T, 2 * T)), [0, 0, 0, 2, 2]);
  assert.deepEqual(
    Array.from(rw.subarray(2 * T, 3 * T)).map((x) => +x.toFixed(6)),
    [0, 0, 0, +Math.sqrt(0.3).toFixed(6), +Math.sqrt(1.2).toFixed(6)],
  );
  assert.equal(weightedTokens(seqs, { prompt: 0, think: 1, answer: 4 }), 1 * (2 + 4) + 4 * 2 + 0.3 * (1 + 4));
  assert.deepEqual([CLASS_PROMPT, CLASS_THINK, CLASS_ANSWER], [0, 1, 2]);
});

test('parseTokenWeights: subsets default to 1; bad input is one clear error', () => {
  assert.deepEqual(parseTokenWeights('prompt=0'), { prompt: 0, think: 1, answer: 1 });
  assert.deepEqual(parseTokenWeights('prompt=0.5,think=2,answer=0'), { prompt: 0.5, think: 2, answer: 0 });
  assert.throws(() => parseTokenWeights('prompt=-1'), /--token-weights: "prompt" must be a number ≥ 0/);
  assert.throws(() => parseTokenWeights('decode=1'), /unknown class "decode"/);
  assert.throws(() => parseTokenWeights('prompt=1,prompt=0'), /given twice/);
});

test('XtxSum: f32 sums in order, diag of full and diagonal-only agree, H = 2/n·S', () => {
  const a = randn(9, 1);
  const b = randn(9, 2);
  const s = new XtxSum(3, false);
  s.add(a);
  s.add(b);
  for (let i = 0; i < 9; i++) assert.equal(s.sum[i], Math.fround(a[i]! + b[i]!));
  const d = new XtxSum(3, true);
  d.add(Float32Array.from([a[0]!, a[4]!, a[8]!]));
  d.add(Float32Array.from([b[0]!, b[4]!, b[8]!]));
  assert.deepEqual(Array.from(d.diag()), Array.from(s.diag()));
  const H = hessianOf(s, 7);
  for (let i = 0; i < 9; i++) assert.equal(H[i], Math.fround(s.sum[i]! * (2 / 7)));
  assert.throws(() => hessianOf(d, 7), /only its diagonal/);
});

/** Plain reference: pool every |W|·‖X‖, count those above m × the pool's mean. */
function outlierRatioRef(lin: { W: Float32Array; rows: number; cols: number; colNorm: number[] }[], m: number): number {
  const pool: number[] = [];
  for (const { W, rows, cols, colNorm } of lin)
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) pool.push(Math.abs(W[r * cols + j]!) * colNorm[j]!);
  const mean = pool.reduce((a, x) => a + x, 0) / pool.length;
  return pool.filter((x) => x > m * mean).length / pool.length;
}

test('OWL outlier ratio: a constructed layer with known outliers, and random layers vs a plain reference', () => {
  // 2 Linears, 100 weights; all scores 1 except 3 of 100 at 100: mean = (97 + 300)/100 = 3.97, 5×mean = 19.85 → 3 outliers
  const W1 = new Float32Array(40).fill(1);
  W1[5] = 100;
  const W2 = new Float32Array(60).fill(0.5);
  W2[0] = 50;
  W2[59] = 50;
  const lin = [
    { W: W1, rows: 4, cols: 10, colNorm: new Array(10).fill(1) },
    { W: W2, rows: 6, cols: 10, colNorm: new Array(10).fill(2) },
  ];
  assert.equal(outlierRatio(lin, 5), 0.03);
  assert.equal(outlierRatio(lin, 5), outlierRatioRef(lin, 5));
  assert.equal(outlierRatio(lin, 200), 0);
  const r = rng(3);
  for (let k = 0; k < 5; k++) {
    const L = [
      { W: randn(12 * 20, 10 + k), rows: 12, cols: 20, colNorm: Array.from({ length: 20 }, () => (r() < 0.1 ? 20 : 1) * r()) },
      { W: randn(7 * 33, 20 + k), rows: 7, cols: 33, colNorm: Array.from({ length: 33 }, () => r()) },
    ];
    for (const m of [1, 2, 5]) assert.equal(outlierRatio(L, m), outlierRatioRef(L, m), `case ${k}, M = ${m}`);
  }
});

test('OWL targets: within [s − λ, s + λ], the furthest layer at the bound, weighted mean = s, more outliers → less sparsity', () => {
  const r = rng(5);
  for (let k = 0; k < 20; k++) {
    const L = 2 + Math.floor(r() * 30);
    const ratios = Array.from({ length: L }, () => r() * 0.05);
    const params = Array.from({ length: L }, () => 1 + Math.floor(r() * 1e6));
    const s = 0.3 + r() * 0.4;
    const lambda = 0.01 + r() * 0.1;
    const t = owlTargets(ratios, params, s, lambda);
    const P = params.reduce((a, p) => a + p, 0);
    const mean = t.reduce((a, x, i) => a + x * params[i]!, 0) / P;
    assert.ok(Math.abs(mean - s) < 1e-12, `weighted mean ${mean} vs ${s}`);
    for (const x of t) assert.ok(x >= s - lambda - 1e-15 && x <= s + lambda + 1e-15, `${x} outside ${s} ± ${lambda}`);
    assert.ok(Math.abs(Math.max(...t.map((x) => Math.abs(x - s))) - lambda) < 1e-12, 'the furthest layer is at the bound');
    for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) if (ratios[i]! > ratios[j]!) assert.ok(t[i]! <= t[j]!);
  }
  assert.deepEqual(owlTargets([0.02, 0.02], [5, 7], 0.5, 0.08), [0.5, 0.5]);
  assert.throws(() => owlTargets([0.1, 0.2], [1, 1], 0.05, 0.08), /leaves \[0, 1\)/);
});
