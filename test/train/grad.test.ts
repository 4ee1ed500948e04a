/**
 * The training graph's hand-derived gradients match central finite differences of its own loss,
 * for every parameter tensor of a tiny Qwen2 config (packed rows, padding, GQA, tied head) and of
 * a tiny Qwen3-MoE config (q/k norms, explicit head_dim, router softmax, top-k renormalized
 * gates, load-balancing loss).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng } from '../../src/tasks/rng.ts';
import { batchFeeds, type Example } from '../../scripts/train/data.ts';
import { initParams, paramSpecs, Params, type TinyConfig } from '../../scripts/train/model.ts';
import { StepRunner } from '../../scripts/train/step.ts';
import { relDiff } from '../helpers/prune.ts';

const qwen2: TinyConfig = { vocab: 23, hidden: 16, layers: 2, heads: 4, kvHeads: 2, intermediate: 24, ropeTheta: 10000, eps: 1e-6 };
const moe: TinyConfig = {
  ...qwen2,
  headDim: 6,
  moe: { experts: 4, topK: 2, expertIntermediate: 8, auxCoef: 0.05 },
};

function randomExample(cfg: TinyConfig, rng: ReturnType<typeof createRng>, len: number, promptLen: number): Example {
  return { ids: Array.from({ length: len }, () => rng.int(0, cfg.vocab - 1)), promptLen };
}

test('every gradient matches central finite differences of the loss (qwen2)', () => checkGradients(qwen2, 1e-2));
// Smaller steps: a finite difference across a top-k boundary would measure the jump, not the slope.
test('every gradient matches central finite differences of the loss (qwen3_moe)', () => checkGradients(moe, 2e-3));

async function checkGradients(cfg: TinyConfig, eps: number): Promise<void> {
  const rng = createRng(1234);
  const specs = paramSpecs(cfg);
  // Larger-than-usual init and perturbed norms/biases so every gradient is non-trivial.
  const p = initParams(
    specs.map((s) => ({ ...s, init: s.init.kind === 'normal' ? { kind: 'normal' as const, std: 0.4 } : s.init })),
    () => rng.next(),
  );
  for (const s of specs) {
    if (s.init.kind !== 'normal') {
      const v = p.get(s.name);
      for (let i = 0; i < v.length; i++) v[i]! += 0.3 * (rng.next() - 0.5);
    }
  }
  const T = 10;
  const rows: Example[][] = [[randomExample(cfg, rng, 4, 1), randomExample(cfg, rng, 6, 2)], [randomExample(cfg, rng, 7, 3)]];
  const { feeds } = batchFeeds(cfg, rows, T, 0);
  const runner = await StepRunner.create(cfg, { batch: 2, seq: T }, { threads: 1 });
  try {
    const base = await runner.run(p, feeds);
    assert.ok(Number.isFinite(base.loss) && base.loss > 0);
    const grad = base.grad!;
    const lossAt = async (flat: Float32Array) => (await runner.run(new Params(specs, flat), feeds)).loss;
    let off = 0;
    for (const s of specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const g = grad.subarray(off, off + n);
      const gnorm = Math.hypot(...g);
      // Direction: half the gradient's own direction, half a random one (unit norm).
      const u = new Float64Array(n);
      for (let i = 0; i < n; i++) u[i] = (gnorm > 0 ? g[i]! / gnorm : 0) + (rng.next() - 0.5) / Math.sqrt(n);
      const un = Math.hypot(...u);
      for (let i = 0; i < n; i++) u[i]! /= un;
      let analytic = 0;
      for (let i = 0; i < n; i++) analytic += g[i]! * u[i]!;
      const plus = p.flat.slice();
      const minus = p.flat.slice();
      for (let i = 0; i < n; i++) {
        plus[off + i]! += eps * u[i]!;
        minus[off + i]! -= eps * u[i]!;
      }
      const fd = ((await lossAt(plus)) - (await lossAt(minus))) / (2 * eps);
      if (process.env.GRAD_VERBOSE) console.log(s.name, analytic, fd, gnorm);
      const tol = 2e-3 + 2e-2 * Math.abs(analytic);
      assert.ok(
        Math.abs(fd - analytic) <= tol,
        `${s.name}: analytic ${analytic.toExponential(4)} vs finite difference ${fd.toExponential(4)} (|g| ${gnorm.toExponential(3)})`,
      );
      off += n;
    }
  } finally {
    await runner.release();
  }
}

// The sparse MoE path (each expert on its routed rows, the default) against the dense reference
// (every expert on every token, weighted): same loss, logits and gradients — with 16 experts and
// 2 × 9 tokens some experts get no row at all, so empty segments are exercised too.
test('sparse experts equal the dense reference: loss, logits and every gradient (qwen3_moe)', async () => {
  const cfg: TinyConfig = { ...moe, moe: { experts: 16, topK: 2, expertIntermediate: 8, auxCoef: 0.05 } };
  const rng = createRng(77);
  const specs = paramSpecs(cfg);
  const p = initParams(
    specs.map((s) => ({ ...s, init: s.init.kind === 'normal' ? { kind: 'normal' as const, std: 0.4 } : s.init })),
    () => rng.next(),
  );
  const T = 9;
  const rows: Example[][] = [[randomExample(cfg, rng, 4, 1), randomExample(cfg, rng, 5, 2)], [randomExample(cfg, rng, 7, 3)]];
  const { feeds } = batchFeeds(cfg, rows, T, 0);
  const sparse = await StepRunner.create(cfg, { batch: 2, seq: T, logits: true }, { threads: 1 });
  const dense = await StepRunner.create(cfg, { batch: 2, seq: T, logits: true, denseExperts: true }, { threads: 1 });
  try {
    const a = await sparse.run(p, feeds);
    const b = await dense.run(p, feeds);
    assert.ok(
      a.loads.some((l) => l.some((x) => x === 0)),
      'some expert gets no routed token (the empty segment is tested)',
    );
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(b.loss), `loss ${a.loss} vs ${b.loss}`);
    assert.ok(relDiff(a.logits!, b.logits!) < 1e-5, 'logits');
    let off = 0;
    for (const s of specs) {
      const n = s.shape.reduce((x, y) => x * y, 1);
      const r = relDiff(a.grad!.subarray(off, off + n), b.grad!.subarray(off, off + n));
      assert.ok(r < 1e-5, `grad.${s.name}: relative difference ${r}`);
      off += n;
    }
  } finally {
    await sparse.release();
    await dense.release();
  }
});
