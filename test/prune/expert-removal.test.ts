/**
 * Removing whole experts (REAP, routed-token frequency): the scores equal a plain float64
 * computation from the reference forward; the smaller checkpoint (num_experts lowered, router rows
 * sliced, experts renumbered) computes exactly what the unpruned model computes with the removed
 * experts' router logits at −∞, with and without norm_topk_prob; targets that remove none, all,
 * or leave fewer experts than top-k are refused in one line; expert removal composes with
 * SparseGPT in one run.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { expertsToRemove, lowestExperts } from '../../src/compress/expert-scores.ts';
import {
  embedTokens,
  linear,
  makeLayerBatch,
  referenceForward,
  referenceLayerInputs,
  loadLayerWeights,
} from '../../src/models/reference.ts';
import { Engine } from '../../src/models/engine.ts';
import { Model } from '../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { pruneCheckpoint } from '../../src/prune/prune.ts';
import type { PruneSummary } from '../../src/prune/rac-json.ts';
import { checkpoint, maxAbsDiff, tempDir, weightSource } from '../helpers/checkpoints.ts';
import { calibSet, randomSequences } from '../helpers/prune.ts';

const RT = { threads: 1 };
const ZERO = { kind: 'unstructured' as const, sparsity: 0 };
const base = (normTopK: boolean): RandomCheckpointOptions => ({
  family: 'qwen3_moe',
  seed: normTopK ? 61 : 62,
  layers: 2,
  hidden: 64,
  moe: { experts: 8, topK: 2, expertIntermediate: 32, normTopK },
});

async function remove(dir: string, scoring: 'reap' | 'frequency', experts: number, seqs = randomSequences(300, 6, 10, 24, 9)) {
  const model = Model.open(dir);
  const out = join(tempDir('experts'), 'out');
  try {
    const summary = await pruneCheckpoint(
      model,
      calibSet(seqs),
      out,
      { method: scoring, target: ZERO, linears: 'all', batchTokens: 10_000, runtime: RT, removeExperts: { scoring, experts } },
      'test',
    );
    return { out, summary, seqs };
  } finally {
    model.close();
  }
}

describe('expert removal', () => {
  it('REAP scores equal mean g·‖f‖ over each expert’s routed tokens, computed in float64 from the reference forward', async () => {
    const dir = checkpoint(base(true));
    const { summary, seqs } = await remove(dir, 'reap', 0.25);
    const m = Model.open(dir);
    try {
      // Layer 0 sees the embeddings of one left-padded batch (batchTokens holds every sequence).
      const T = Math.max(...seqs.map((s) => s.ids.length));
      const ids = seqs.map((s) => [...new Array<number>(T - s.ids.length).fill(0), ...s.ids]);
      const mask = seqs.map((s) => [...new Array<number>(T - s.ids.length).fill(0), ...new Array<number>(s.ids.length).fill(1)]);
      const ws = weightSource(m);
      const w = loadLayerWeights(m.spec, m.config, ws, 0);
      const ex = m.experts(0)!;
      const ref = referenceLayerInputs(m.config, w, embedTokens(m.spec, m.config, ws, ids), makeLayerBatch(seqs.length, T, mask), ex);
      const D = m.config.hiddenSize;
      const rec = summary.expert_removal!.layers[0]!;
      for (let j = 0; j < ex.count; j++) {
        const e = ref.inputs.experts![j]!;
        const real = e.rows.map((row, r) => [row, r] as const).filter(([row]) => mask[Math.floor(row / T)]![row % T] === 1);
        const f = linear(e.act, w.moe!.experts[j]!.down_proj, null, e.rows.length, ex.linears[2]!.cols, D);
        let s = 0;
        for (const [, r] of real) {
          let ss = 0;
          for (let d = 0; d < D; d++) ss += f[r * D + d]! ** 2;
          s += e.weights[r]! * Math.sqrt(ss);
        }
        const want = real.length ? s / real.length : 0;
        assert.equal(rec.experts[j]!.tokens, real.length, `expert ${j}: routed tokens`);
        assert.ok(
          Math.abs(rec.experts[j]!.score - want) <= 1e-5 * Math.max(1, want),
          `expert ${j}: score ${rec.experts[j]!.score} vs ${want}`,
        );
      }
      assert.deepEqual(
        rec.removed,
        lowestExperts(
          rec.experts.map((e) => e.score),
          2,
        ),
      );
    } finally {
      m.close();
    }
  });

  for (const normTopK of [true, false]) {
    it(`the smaller checkpoint equals the unpruned one with the removed experts’ logits at −∞ (norm_topk_prob ${normTopK})`, async () => {
      const dir = checkpoint(base(normTopK));
      const { out, summary } = await remove(dir, 'frequency', 3);
      const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(cfg['num_experts'], 5);
      assert.equal(summary.expert_removal!.experts_after, 5);
      const small = Model.open(out);
      const orig = Model.open(dir);
      const engine = await Engine.load(small, RT);
      try {
        assert.deepEqual(small.tensors.info('model.layers.1.mlp.gate.weight').shape, [5, 64]);
        assert.equal(small.tensors.has('model.layers.0.mlp.experts.5.gate_proj.weight'), false);
        // the kept experts in order: renumbered expert i holds the i-th kept one's weights
        const kept = Array.from({ length: 8 }, (_, j) => j).filter((j) => !summary.expert_removal!.layers[1]!.removed.includes(j));
        assert.deepEqual(
          small.read('model.layers.1.mlp.experts.2.up_proj.weight'),
          orig.read(`model.layers.1.mlp.experts.${kept[2]}.up_proj.weight`),
        );
        const masked = new Map(summary.expert_removal!.layers.map((l) => [l.layer, new Set(l.removed)]));
        const seq = [5, 17, 33, 2, 90, 41, 7, 250, 11];
        const [got] = await engine.forward([seq]);
        const [want] = referenceForward(orig.spec, orig.config, weightSource(orig), [seq], { maskedExperts: masked });
        assert.ok(maxAbsDiff(got!, want!) <= 1e-4, `max |Δlogit| ${maxAbsDiff(got!, want!)}`);
        const [unmasked] = referenceForward(orig.spec, orig.config, weightSource(orig), [seq]);
        assert.ok(maxAbsDiff(got!, unmasked!) > 1e-3, 'removing experts changes the model');
        // frequency scores are the routed-token counts
        for (const l of summary.expert_removal!.layers) for (const e of l.experts) assert.equal(e.score, e.tokens);
        assert.equal(summary.expert_removal!.parameters_after, small.parameterCount());
      } finally {
        await engine.release();
        small.close();
        orig.close();
      }
    });
  }

  it('refuses removing none, all, or leaving fewer experts than top-k, in one line', async () => {
    assert.throws(() => expertsToRemove(0, 8, 2), /--experts 0: remove at least one expert/);
    assert.throws(() => expertsToRemove(0.01, 8, 2), /0\.01 of 8 experts rounds to none removed/);
    assert.throws(() => expertsToRemove(8, 8, 2), /removing 8 of 8 experts leaves none/);
    assert.throws(() => expertsToRemove(7, 8, 2), /leaves 1, fewer than the 2 each token is routed to/);
    assert.throws(() => expertsToRemove(2.5, 8, 2), /a count of experts must be a whole number/);
    assert.equal(expertsToRemove(0.5, 8, 2), 4);
    await assert.rejects(remove(checkpoint(base(true)), 'reap', 8), /--experts 8: removing 8 of 8 experts leaves none/);
    const dense = checkpoint({ family: 'qwen2', seed: 1 });
    await assert.rejects(remove(dense, 'reap', 0.5), /removes experts, but qwen2 has no Mixture-of-Experts layer/);
  });

  it('composes: experts removed, then SparseGPT 50% on what is left, recorded in one rac.json', async () => {
    const dir = checkpoint(base(true));
    const m = Model.open(dir);
    const out = join(tempDir('experts-sgpt'), 'out');
    let s: PruneSummary;
    try {
      s = await pruneCheckpoint(
        m,
        calibSet(randomSequences(300, 6, 10, 24, 9)),
        out,
        {
          method: 'sparsegpt',
          target: { kind: 'unstructured', sparsity: 0.5 },
          linears: 'all',
          batchTokens: 4096,
          runtime: RT,
          removeExperts: { scoring: 'reap', experts: 0.5 },
        },
        'test',
      );
    } finally {
      m.close();
    }
    assert.equal(s.method, 'sparsegpt');
    assert.equal(s.source_model, dir);
    assert.equal(s.expert_removal!.experts_after, 4);
    assert.equal(s.totals.sparsity, 0.5);
    assert.equal(s.layers[0]!.experts!.length, 4);
    const saved = JSON.parse(readFileSync(join(out, 'rac.json'), 'utf8')) as PruneSummary;
    assert.equal(saved.expert_removal!.scoring, 'reap');
    assert.match(readFileSync(join(out, 'README.md'), 'utf8'), /4 of 8 experts removed, then 50\.00% unstructured/);
  });
});
