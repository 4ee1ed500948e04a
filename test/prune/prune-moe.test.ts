/**
 * Pruning and quantizing Qwen3-MoE checkpoints: every expert Linear is solved with its own
 * statistics (exact sparsity in each), the router and every other untouched tensor stay byte for
 * byte, rac.json counts the tokens routed to each expert (summing to top-k × calibration tokens
 * per MoE layer), the low-token rule and `all` calibration are recorded per expert, and the
 * pruned checkpoint runs in the engine as the reference forward says it should.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SparsityTarget } from '../../src/compress/masks.ts';
import { outlierRatio, type ScoredLinear } from '../../src/compress/owl.ts';
import { leftPad } from '../../src/models/batch.ts';
import { Engine } from '../../src/models/engine.ts';
import { Model } from '../../src/models/model.ts';
import { makeLayerBatch, referenceForward, referenceLayerInputs } from '../../src/models/reference.ts';
import { pruneCheckpoint, scopeLinears, type PruneOptions } from '../../src/prune/prune.ts';
import type { PruneMethod } from '../../src/prune/rac-json.ts';
import { checkpoint, maxAbsDiff, tempDir, weightSource } from '../helpers/checkpoints.ts';
import { calibSet, randomSequences, readAll, readSummary, tensorHashes, zerosIn } from '../helpers/prune.ts';

const RT = { threads: 1 };
const HALF: SparsityTarget = { kind: 'unstructured', sparsity: 0.5 };
const SRC = {
  family: 'qwen3_moe' as const,
  seed: 31,
  layers: 3,
  hidden: 64,
  moe: { experts: 4, topK: 2, expertIntermediate: 64, mlpOnlyLayers: [1] },
};

describe('pruning a Qwen3-MoE checkpoint', () => {
  let model: Model;
  const calib = calibSet(randomSequences(300, 10, 12, 30, 5));
  const realTokens = calib.sequences.reduce((a, s) => a + s.ids.length, 0);
  const run = async (o: Partial<PruneOptions> & { method: PruneMethod; target: SparsityTarget }) => {
    const out = join(tempDir('moe-pruned'), 'out');
    const summary = await pruneCheckpoint(model, calib, out, { linears: 'all', batchTokens: 256, runtime: RT, ...o }, 'test');
    return { out, summary };
  };
  before(() => {
    model = Model.open(checkpoint(SRC));
  });
  after(() => model.close());

  it('SparseGPT 50%: exact sparsity in every expert and attention Linear; router, norms, embeddings byte-identical', async () => {
    const { out, summary } = await run({ method: 'sparsegpt', target: HALF });
    const src = tensorHashes(model.dir);
    const dst = tensorHashes(out);
    const tensors = readAll(out);
    for (const [name, h] of src) {
      const pruned = /\.(q|k|v|o)_proj\.weight$|\.experts\.\d+\.(gate|up|down)_proj\.weight$|\.mlp\.(gate|up|down)_proj\.weight$/.test(
        name,
      );
      if (!pruned) {
        assert.equal(dst.get(name), h, `${name} is untouched`);
        continue;
      }
      const W = tensors.get(name)!.data;
      assert.equal(zerosIn(W), W.length / 2, `${name}: exactly half zero`);
    }
    assert.ok(
      dst.has('model.layers.0.mlp.gate.weight') && dst.get('model.layers.0.mlp.gate.weight') === src.get('model.layers.0.mlp.gate.weight'),
    );
    const moeLayers = summary.layers.filter((l) => l.experts);
    assert.deepEqual(
      moeLayers.map((l) => l.layer),
      [0, 2],
    );
    assert.equal(summary.layers[1]!.experts, undefined, 'the dense layer has no experts');
    assert.ok(summary.layers[1]!.linears.down_proj, 'the dense layer prunes its MLP');
    for (const l of moeLayers) {
      assert.equal(l.experts!.length, 4);
      assert.equal(
        l.experts!.reduce((a, e) => a + e.tokens, 0),
        2 * realTokens,
        `layer ${l.layer}: routed tokens sum to top-k × calibration tokens`,
      );
      for (const e of l.experts!) {
        assert.equal(e.statistics, e.tokens >= 32 ? 'routed' : 'all_low_tokens');
        for (const lr of Object.values(e.linears)) assert.equal(lr!.sparsity, 0.5);
      }
    }
    assert.equal((summary.options as Record<string, unknown>)['moe_calibration'], 'routed');
    assert.equal((summary.options as Record<string, unknown>)['min_expert_tokens'], 32);
    assert.equal(summary.totals.pruned_linears, 3 * 4 + 3 + 2 * 4 * 3, 'attention ×3 layers, dense MLP, 2 MoE layers × 4 experts × 3');
    assert.equal(summary.totals.sparsity, 0.5);
    assert.deepEqual(
      readSummary(out).layers[0]!.experts!.map((e) => e.tokens),
      summary.layers[0]!.experts!.map((e) => e.tokens),
    );

    // The pruned checkpoint runs: engine logits equal the reference forward of its weights.
    const pruned = Model.open(out);
    const engine = await Engine.load(pruned, RT);
    try {
      const seq = calib.sequences[0]!.ids as number[];
      const [got] = await engine.forward([seq]);
      const [want] = referenceForward(pruned.spec, pruned.config, weightSource(pruned), [seq]);
      assert.ok(maxAbsDiff(got!, want!) <= 1e-4);
    } finally {
      await engine.release();
      pruned.close();
    }
  });

  it('the low-token rule: with a minimum above every count, each expert is calibrated on every token and says so', async () => {
    const { summary } = await run({ method: 'sparsegpt', target: HALF, minExpertTokens: 10_000, linears: 'mlp' });
    for (const l of summary.layers.filter((x) => x.experts)) {
      for (const e of l.experts!) assert.equal(e.statistics, 'all_low_tokens');
    }
  });

  it('all-token calibration is recorded per expert and prunes to the same exact sparsity; its masks differ from routed', async () => {
    const a = await run({ method: 'sparsegpt', target: HALF, moeCalibration: 'all', linears: 'mlp' });
    const r = await run({ method: 'sparsegpt', target: HALF, moeCalibration: 'routed', minExpertTokens: 0, linears: 'mlp' });
    for (const l of a.summary.layers.filter((x) => x.experts)) for (const e of l.experts!) assert.equal(e.statistics, 'all');
    assert.equal(a.summary.totals.sparsity, 0.5);
    const name = 'model.layers.0.mlp.experts.1.down_proj.weight';
    assert.notEqual(tensorHashes(a.out).get(name), tensorHashes(r.out).get(name));
    assert.equal((a.summary.options as Record<string, unknown>)['moe_calibration'], 'all');
  });

  it('true-sequential and Wanda run on MoE layers; GPTQ q4_0 puts every expert on the grid and leaves the router', async () => {
    const seq = await run({ method: 'sparsegpt', target: HALF, trueSequential: true });
    assert.equal(seq.summary.totals.sparsity, 0.5);
    const wanda = await run({ method: 'wanda', target: HALF });
    assert.equal(wanda.summary.totals.sparsity, 0.5);
    const q = await run({ method: 'gptq', target: { kind: 'unstructured', sparsity: 0 }, quant: 'q4_0' });
    const tensors = q.summary.quantization!.tensors;
    assert.ok(tensors['model.layers.2.mlp.experts.3.down_proj.weight'], 'experts are quantized');
    assert.equal(tensors['model.layers.0.mlp.gate.weight'], undefined, 'the router is not');
    assert.equal(tensorHashes(q.out).get('model.layers.0.mlp.gate.weight'), tensorHashes(model.dir).get('model.layers.0.mlp.gate.weight'));
  });

  it("OWL: each layer's outlier ratio over its attention and every expert (routed column norms), targets averaging to the sparsity", async () => {
    const owl = { m: 3, lambda: 0.08 };
    const { out, summary } = await run({ method: 'sparsegpt', target: HALF, sparsityProfile: { owl } });
    const rec = summary.sparsity_profile!;
    // The oracle: the reference forward of the dense model over the calibration set, one batch.
    const cfg = model.config;
    const D = cfg.hiddenSize;
    const pb = leftPad(calib.sequences.map((s) => s.ids));
    const layout = makeLayerBatch(
      pb.B,
      pb.T,
      pb.valid.map((v) => Array.from(v)),
    );
    const real = (r: number) => pb.valid[Math.floor(r / pb.T)]![r % pb.T] === 1;
    const colNorm = (X: Float32Array, rows: readonly number[], width: number) => {
      const s = new Float64Array(width);
      for (const r of rows) for (let j = 0; j < width; j++) s[j]! += X[r * width + j]! ** 2;
      return s.map(Math.sqrt);
    };
    const E = model.embedding();
    let h: Float32Array = new Float32Array(pb.B * pb.T * D);
    for (let i = 0; i < pb.ids.length; i++) h.set(E.subarray(pb.ids[i]! * D, (pb.ids[i]! + 1) * D), i * D);
    const allRows = Array.from({ length: pb.B * pb.T }, (_, r) => r).filter(real);
    for (let l = 0; l < cfg.numLayers; l++) {
      const w = model.layerWeights(l);
      const ex = model.experts(l);
      const ref = referenceLayerInputs(cfg, w, h, layout, ex);
      const scored: ScoredLinear[] = [];
      for (const ls of scopeLinears(model.spec, cfg, 'all')) {
        if (ex && (ls.group === 'mlp_in' || ls.group === 'mlp_out')) continue;
        const width = ls.cols;
        scored.push({ W: w.linears[ls.name]!, rows: ls.rows, cols: ls.cols, colNorm: colNorm(ref.inputs[ls.group]!, allRows, width) });
      }
      if (ex) {
        ref.inputs.experts!.forEach((e, j) => {
          const routed = e.rows.map((r, i) => [r, i] as const).filter(([r]) => real(r));
          const x = colNorm(
            ref.inputs.mlp_in!,
            routed.map(([r]) => r),
            D,
          );
          const I = ex.linears[2]!.cols;
          const act = colNorm(
            e.act,
            routed.map(([, i]) => i),
            I,
          );
          for (const ls of ex.linears)
            scored.push({ W: w.moe!.experts[j]![ls.name], rows: ls.rows, cols: ls.cols, colNorm: ls.group === 'mlp_in' ? x : act });
        });
      }
      const got = rec.layers[l]!;
      const count = scored.reduce((a, s) => a + s.rows * s.cols, 0);
      assert.equal(got.weights, count, `layer ${l}: pruned weights (every expert counted)`);
      assert.ok(Math.abs(got.outlier_ratio - outlierRatio(scored, owl.m)) <= 3 / count, `layer ${l}: outlier ratio ${got.outlier_ratio}`);
      h = ref.out;
    }
    const ratios = rec.layers.map((x) => x.outlier_ratio);
    assert.ok(Math.max(...ratios) > Math.min(...ratios), 'the layers differ');
    assert.ok(Math.abs(rec.mean_target - 0.5) < 1e-9, `mean target ${rec.mean_target}`);
    // Every expert of a layer is pruned at its layer's target.
    const tensors = readAll(out);
    for (const x of rec.layers) {
      assert.ok(Math.abs(x.target - 0.5) <= owl.lambda + 1e-9);
      const W = tensors.get(`model.layers.${x.layer}.self_attn.q_proj.weight`)!.data;
      assert.ok(Math.abs(zerosIn(W) / W.length - x.target) < 0.01, `layer ${x.layer}: q_proj at its target`);
      if (model.experts(x.layer)) {
        const e = tensors.get(`model.layers.${x.layer}.mlp.experts.3.down_proj.weight`)!.data;
        assert.ok(Math.abs(zerosIn(e) / e.length - x.target) < 0.01, `layer ${x.layer}: an expert at its target`);
      }
    }
    assert.ok(Math.abs(summary.totals.sparsity - 0.5) < 0.005, `overall sparsity ${summary.totals.sparsity}`);
  });
});
