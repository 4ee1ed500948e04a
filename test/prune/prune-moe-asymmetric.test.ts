/**
 * Asymmetric calibration on Qwen3-MoE layers: the two-stream MoE layer capture and expert capture
 * against the plain TypeScript reference on both streams (routing, XᵀX of the pruned stream, the
 * cross terms X_refᵀX of attention, the experts' input and each expert's activations), and end to
 * end — layer 0's attention keeps its own target, later experts' targets move, every expert is
 * exactly as sparse as asked, and the pruned model's last hidden states sit closer to the dense
 * model's than plain SparseGPT's; `all` calibration, the low-token rule and true-sequential run
 * with it, after expert removal and against a dense reference model (staged).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SparsityTarget } from '../../src/compress/masks.ts';
import { expertFeeds, leftPad } from '../../src/models/batch.ts';
import { LayerRunner } from '../../src/models/layer-runner.ts';
import { Model } from '../../src/models/model.ts';
import { gatherRows } from '../../src/models/moe.ts';
import { linear, referenceLayerInputs, silu } from '../../src/models/reference.ts';
import type { LayerWeights, MoeWeights } from '../../src/models/spec.ts';
import type { PruneOptions } from '../../src/prune/prune.ts';
import type { PruneSummary } from '../../src/prune/rac-json.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import {
  calibSet,
  embedBatch,
  lastHidden,
  lastHiddenError,
  layoutOf,
  pruneDir,
  randomSequences,
  randomSequencesFor,
  readAll,
  relDiff,
  zerosIn,
} from '../helpers/prune.ts';

const RT = { threads: 1 };
const HALF: SparsityTarget = { kind: 'unstructured', sparsity: 0.5 };
const MOE = {
  family: 'qwen3_moe' as const,
  seed: 43,
  layers: 3,
  hidden: 64,
  moe: { experts: 4, topK: 2, expertIntermediate: 64, mlpOnlyLayers: [1] },
};

/** Σ_r w_r² · a_r b_rᵀ (float64) over rows of A (n, p) and X (n, q): (p, q). */
function weightedCross(A: ArrayLike<number>, X: ArrayLike<number>, w: ArrayLike<number>, p: number, q: number): Float64Array {
  const out = new Float64Array(p * q);
  for (let r = 0; r < w.length; r++) {
    const w2 = w[r]! * w[r]!;
    if (!w2) continue;
    for (let i = 0; i < p; i++) for (let j = 0; j < q; j++) out[i * q + j]! += w2 * A[r * p + i]! * X[r * q + j]!;
  }
  return out;
}

/** An expert's activation silu(gate x)·up x on rows x (n, D), in the reference's arithmetic. */
function expertAct(moe: MoeWeights, j: number, x: Float32Array, n: number, D: number, I: number): Float32Array {
  const e = moe.experts[j]!;
  const g = linear(x, e.gate_proj, null, n, D, I);
  const u = linear(x, e.up_proj, null, n, D, I);
  return g.map((v, i) => Math.fround(silu(v)) * u[i]!);
}

const prune = (dir: string, calib: ReturnType<typeof calibSet>, out: string, o: Partial<PruneOptions>) =>
  pruneDir(dir, calib, out, { method: 'sparsegpt', target: HALF, runtime: RT, ...o });

function expertShift(s: PruneSummary, layer: number): number {
  return Math.max(...s.layers[layer]!.experts!.flatMap((e) => Object.values(e.linears).map((r) => r!.target_shift ?? 0)));
}

describe('asymmetric calibration on MoE layers', () => {
  it('the two-stream MoE layer and expert captures match the reference on both streams', async () => {
    const model = Model.open(checkpoint({ ...MOE, layers: 1, moe: { ...MOE.moe, mlpOnlyLayers: [] } }));
    after(() => model.close());
    const cfg = model.config;
    const D = cfg.hiddenSize;
    const ex = model.experts(0)!;
    const I = ex.linears[0]!.rows;
    const runner = await LayerRunner.create(model.spec, cfg, RT);
    after(() => runner.release());
    const pb = leftPad(randomSequences(cfg.vocabSize, 4, 6, 11, 9).map((s) => s.ids));
    const N = pb.B * pb.T;
    const hRef = embedBatch(model, pb);
    const hPruned = hRef.map((x, i) => x + 0.05 * Math.sin(i)); // another stream, same layout
    const dense = model.layerWeights(0);
    const half = (w: Float32Array) => w.map((x, i) => (i % 2 ? 0 : x));
    const pruned: LayerWeights = {
      ...dense,
      linears: Object.fromEntries(Object.entries(dense.linears).map(([k, v]) => [k, half(v!)])),
      moe: {
        router: dense.moe!.router,
        experts: dense.moe!.experts.map((e) => ({ gate_proj: half(e.gate_proj), up_proj: half(e.up_proj), down_proj: half(e.down_proj) })),
      },
    };
    const rw = new Float32Array(N);
    pb.valid.forEach((v, b) => v.forEach((x, t) => (rw[b * pb.T + t] = x ? 1 : 0)));
    const got = await runner.moeRouteCross(ex, runner.weightFeeds(pruned), runner.weightFeeds(dense), hPruned, hRef, pb, rw);
    const a = referenceLayerInputs(cfg, pruned, hPruned, layoutOf(pb), ex);
    const b = referenceLayerInputs(cfg, dense, hRef, layoutOf(pb), ex);
    const real = (rows: number[]) => rows.filter((r) => rw[r]! > 0);
    for (const [name, stream, want] of [
      ['pruned', got.own, a],
      ['reference', got.ref, b],
    ] as const) {
      const pick = (x: Float32Array) => x.filter((_, i) => rw[Math.floor(i / D)]! > 0); // padding rows differ
      assert.ok(relDiff(pick(stream.moeIn), pick(want.inputs.mlp_in!)) < 1e-5, `${name} stream: the experts' input`);
      for (let j = 0; j < ex.count; j++)
        assert.deepEqual(Array.from(stream.groups[j]!.rows), real(want.inputs.experts![j]!.rows), `${name} stream: expert ${j}'s rows`);
    }
    for (const g of ['attn_in', 'attn_out', 'mlp_in'] as const) {
      const X = a.inputs[g]!;
      const R = b.inputs[g]!;
      const n = X.length / N;
      assert.ok(relDiff(got.xtx[g]!, weightedCross(X, X, rw, n, n)) < 1e-5, `${g}: XᵀX`);
      assert.ok(relDiff(got.cross[g]!, weightedCross(R, X, rw, n, n)) < 1e-5, `${g}: X_refᵀX`);
    }
    // Each expert on the rows the pruned stream routes to it, both streams' inputs of those rows.
    for (let j = 0; j < ex.count; j++) {
      const rows = got.own.groups[j]!.rows;
      if (rows.length === 0) continue;
      const tw = new Float32Array(rows.length).fill(1);
      const x = gatherRows(a.inputs.mlp_in!, D, rows);
      const xr = gatherRows(b.inputs.mlp_in!, D, rows);
      const c = await runner.expertCaptureCross(
        ex,
        expertFeeds(ex, pruned.moe!, j),
        expertFeeds(ex, dense.moe!, j),
        gatherRows(got.own.moeIn, D, rows),
        gatherRows(got.ref.moeIn, D, rows),
        tw,
      );
      const act = expertAct(pruned.moe!, j, x, rows.length, D, I);
      const actRef = expertAct(dense.moe!, j, xr, rows.length, D, I);
      assert.ok(relDiff(c.xtx.mlp_in, weightedCross(x, x, tw, D, D)) < 1e-5, `expert ${j}: mlp_in XᵀX`);
      assert.ok(relDiff(c.cross.mlp_in, weightedCross(xr, x, tw, D, D)) < 1e-5, `expert ${j}: mlp_in X_refᵀX`);
      assert.ok(relDiff(c.xtx.mlp_out, weightedCross(act, act, tw, I, I)) < 1e-4, `expert ${j}: mlp_out XᵀX`);
      assert.ok(relDiff(c.cross.mlp_out, weightedCross(actRef, act, tw, I, I)) < 1e-4, `expert ${j}: mlp_out X_refᵀX`);
    }
  });

  it('reconstructs the dense model better than plain SparseGPT; exact sparsity in every expert', async () => {
    const dir = checkpoint(MOE);
    const calib = calibSet(randomSequencesFor(dir, 24, 30, 90, 5));
    const plainOut = join(tempDir('moe-asym-plain'), 'out');
    const asymOut = join(tempDir('moe-asym-on'), 'out');
    await prune(dir, calib, plainOut, {});
    const s = await prune(dir, calib, asymOut, { asymmetric: true });
    assert.equal(s.options['asymmetric'], true);
    // Layer 0: both streams are the embeddings, so q/k/v (pruned in the same capture) keep their own target.
    for (const k of ['q_proj', 'k_proj', 'v_proj'] as const) assert.ok(s.layers[0]!.linears[k]!.target_shift! < 1e-4, `layer 0 ${k}`);
    assert.ok(expertShift(s, 2) > 1e-3, `layer 2's experts' target shift ${expertShift(s, 2)}`);
    for (const [name, t] of readAll(asymOut))
      if (/\.experts\.\d+\.(gate|up|down)_proj\.weight$/.test(name))
        assert.equal(zerosIn(t.data), t.data.length / 2, `${name}: exactly half zero`);
    const pb = leftPad(calib.sequences.map((x) => x.ids));
    const want = lastHidden(dir, pb);
    const ePlain = lastHiddenError(plainOut, pb, want);
    const eAsym = lastHiddenError(asymOut, pb, want);
    assert.ok(eAsym < ePlain, `final hidden error: asymmetric ${eAsym} vs plain ${ePlain}`);
  });

  it('runs with `all` calibration, the low-token rule, true-sequential and GPTQ', async () => {
    const dir = checkpoint({ ...MOE, layers: 2, moe: { ...MOE.moe, mlpOnlyLayers: [] } });
    const calib = calibSet(randomSequencesFor(dir, 8, 20, 40, 7));
    const all = await prune(dir, calib, join(tempDir('moe-asym-all'), 'out'), {
      asymmetric: true,
      moeCalibration: 'all',
      trueSequential: true,
    });
    assert.ok(all.layers[1]!.experts!.every((e) => e.statistics === 'all'));
    assert.ok(expertShift(all, 1) > 1e-3, `all: layer 1's experts move (${expertShift(all, 1)})`);
    // Every expert under the low-token rule (fewer than 10,000 routed tokens).
    const low = await prune(dir, calib, join(tempDir('moe-asym-low'), 'out'), { asymmetric: true, minExpertTokens: 10_000 });
    assert.ok(low.layers[1]!.experts!.every((e) => e.statistics === 'all_low_tokens'));
    assert.ok(expertShift(low, 1) > 1e-3, `low-token rule: layer 1's experts move (${expertShift(low, 1)})`);
    for (const s of [all, low]) assert.equal(s.totals.sparsity, 0.5);
    const q = await prune(dir, calib, join(tempDir('moe-asym-gptq'), 'out'), {
      method: 'gptq',
      quant: 'q8_0',
      target: { kind: 'unstructured', sparsity: 0 },
      asymmetric: true,
    });
    const experts = q.layers[1]!.experts!.flatMap((e) => Object.values(e.linears));
    assert.ok(experts.every((r) => r!.quant === 'Q8_0'));
    assert.ok(expertShift(q, 1) > 1e-4, 'layer 1 experts move: layer 0 was quantized');
  });

  it('composes: after expert removal (the smaller model is its own reference), and against a dense reference model', async () => {
    const dir = checkpoint({ ...MOE, layers: 2, moe: { ...MOE.moe, mlpOnlyLayers: [] } });
    const calib = calibSet(randomSequencesFor(dir, 8, 20, 40, 9));
    const removed = await prune(dir, calib, join(tempDir('moe-asym-reap'), 'out'), {
      asymmetric: true,
      removeExperts: { scoring: 'reap', experts: 1 },
    });
    assert.equal(removed.layers[1]!.experts!.length, 3, 'one expert of four removed');
    assert.ok(expertShift(removed, 1) > 1e-3, `after removal: layer 1's experts move (${expertShift(removed, 1)})`);
    // Staged: layer 0 pruned first; then layer 1 against the dense model (its stream differs from layer 0 on).
    const stage0 = join(tempDir('moe-asym-stage0'), 'out');
    await prune(dir, calib, stage0, { layers: [0] });
    const attnShift = (s: PruneSummary) =>
      Math.max(...['q_proj', 'k_proj', 'v_proj'].map((k) => s.layers[1]!.linears[k as 'q_proj']!.target_shift!));
    const self = await prune(stage0, calib, join(tempDir('moe-asym-self'), 'out'), { layers: [1], asymmetric: true });
    assert.ok(attnShift(self) < 1e-4, `self reference: layer 1 q/k/v shift ${attnShift(self)}`);
    const dense = Model.open(dir);
    try {
      const withRef = await prune(stage0, calib, join(tempDir('moe-asym-ref'), 'out'), { layers: [1], asymmetric: true, reference: dense });
      assert.ok(attnShift(withRef) > 1e-3, `dense reference: layer 1 q/k/v shift ${attnShift(withRef)}`);
      assert.ok(expertShift(withRef, 1) > 1e-3, `dense reference: layer 1's experts move (${expertShift(withRef, 1)})`);
    } finally {
      dense.close();
    }
  });
});
