/**
 * rac's inference engine reproduces the trainer's forward logits on an exported tiny random
 * model: the trainer's fused layout, RoPE, GQA head order, packing (block-diagonal mask,
 * per-example positions) and tied head mean exactly what the Qwen2 export says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '../../src/tasks/rng.ts';
import { loadModel, closeModel } from '../../src/models/loaded.ts';
import { batchFeeds, makeTokenizer, type Example } from '../../scripts/train/data.ts';
import { exportHf } from '../../scripts/train/export.ts';
import { initParams, paramSpecs, type TinyConfig } from '../../scripts/train/model.ts';
import { StepRunner } from '../../scripts/train/step.ts';

const QWEN2: Omit<TinyConfig, 'vocab'> = { hidden: 32, layers: 2, heads: 4, kvHeads: 2, intermediate: 48, ropeTheta: 10000, eps: 1e-6 };

test('engine logits match the training graph within 1e-4 (packed rows, GQA, tied head)', () => parity(QWEN2));

test('engine logits match the training graph within 1e-4 (qwen3_moe export: q/k norms, head_dim, experts)', () =>
  parity({ ...QWEN2, headDim: 12, moe: { experts: 4, topK: 2, expertIntermediate: 16, auxCoef: 0.01 } }));

async function parity(shape: Omit<TinyConfig, 'vocab'>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rac-tiny-parity-'));
  try {
    const tok = await makeTokenizer(join(dir, 'tok'), 7, 300);
    const cfg: TinyConfig = { ...shape, vocab: tok.vocabSize };
    const rng = createRng(99);
    const specs = paramSpecs(cfg);
    const p = initParams(
      specs.map((s) => ({ ...s, init: s.init.kind === 'normal' ? { kind: 'normal' as const, std: 0.3 } : s.init })),
      () => rng.next(),
    );
    for (const s of specs) {
      if (s.init.kind !== 'normal') {
        const v = p.get(s.name);
        for (let i = 0; i < v.length; i++) v[i]! += 0.5 * (rng.next() - 0.5);
      }
    }
    exportHf(join(dir, 'model'), cfg, p, join(dir, 'tok'));

    const seq = (n: number) => Array.from({ length: n }, () => rng.int(0, cfg.vocab - 1));
    const a = seq(9);
    const b = seq(13);
    const c = seq(20);
    const T = 24;
    const rows: Example[][] = [
      [
        { ids: a, promptLen: 1 },
        { ids: b, promptLen: 1 },
      ], // two packed examples, 2 padding slots
      [{ ids: c, promptLen: 1 }],
    ];
    const runner = await StepRunner.create(cfg, { batch: 2, seq: T, logits: true, grads: false }, { threads: 1 });
    const { logits } = await runner.run(p, batchFeeds(cfg, rows, T, 0).feeds);
    await runner.release();
    const V = cfg.vocab;
    const trainer = (row: number, start: number, len: number) => logits!.subarray((row * T + start) * V, (row * T + start + len) * V);

    const m = await loadModel(join(dir, 'model'), { threads: 1 });
    try {
      const eng = await m.engine.forward([a, b, c]);
      const want = [trainer(0, 0, a.length), trainer(0, a.length, b.length), trainer(1, 0, c.length)];
      let maxDiff = 0;
      for (let i = 0; i < 3; i++) {
        assert.equal(eng[i]!.length, want[i]!.length);
        for (let j = 0; j < want[i]!.length; j++) maxDiff = Math.max(maxDiff, Math.abs(eng[i]![j]! - want[i]![j]!));
      }
      if (process.env.PARITY_VERBOSE) console.log('max diff', maxDiff, 'logit scale', Math.max(...want[2]!.slice(0, 50)));
      assert.ok(maxDiff < 1e-4, `max |engine − trainer| = ${maxDiff}`);
    } finally {
      await closeModel(m);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
