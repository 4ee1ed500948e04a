/**
 * Asymmetric calibration through the pruner (`asymmetric: true`): the two-stream capture graph
 * against the plain TypeScript reference layer (both outputs, XᵀX of the pruned stream, the cross
 * term X_refᵀX), and end to end — the first layer's target is its own weights, later layers'
 * targets move, and the pruned model's last hidden states on the calibration set sit closer to
 * the dense model's than plain SparseGPT's at the same sparsity.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { leftPad } from '../../src/models/batch.ts';
import { LayerRunner } from '../../src/models/layer-runner.ts';
import { Model } from '../../src/models/model.ts';
import { referenceLayerInputs } from '../../src/models/reference.ts';
import { groupWidth, INPUT_GROUPS, type LayerWeights } from '../../src/models/spec.ts';
import type { CalibSet } from '../../src/prune/calib.ts';
import type { PruneOptions } from '../../src/prune/prune.ts';
import type { PruneSummary } from '../../src/prune/rac-json.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import {
  calibSet,
  embedBatch,
  layoutOf,
  pruneDir,
  randomSequences,
  randomSequencesFor,
  relDiff,
  lastHidden,
  lastHiddenError,
} from '../helpers/prune.ts';

const RT = { threads: 1 };
const QWEN = { family: 'qwen2' as const, seed: 41, hidden: 64, layers: 3, intermediate: 160, anisotropy: 1 };
const HALF = { kind: 'unstructured', sparsity: 0.6 } as const;

/** SparseGPT at HALF, unless `o` says otherwise. */
const prune = (dir: string, calib: CalibSet, out: string, o: Partial<PruneOptions>) =>
  pruneDir(dir, calib, out, { method: 'sparsegpt', target: HALF, ...o });

describe('asymmetric calibration', () => {
  it('the two-stream capture matches the reference layer on both streams', async () => {
    const model = Model.open(checkpoint({ ...QWEN, layers: 1 }));
    after(() => model.close());
    const cfg = model.config;
    const runner = await LayerRunner.create(model.spec, cfg, RT);
    after(() => runner.release());
    const seqs = randomSequences(cfg.vocabSize, 3, 6, 11, 9);
    const pb = leftPad(seqs.map((s) => s.ids));
    const hRef = embedBatch(model, pb);
    const hPruned = hRef.map((x, i) => x + 0.05 * Math.sin(i)); // another stream, same layout
    const dense = model.layerWeights(0);
    const pruned: LayerWeights = { ...dense, linears: { ...dense.linears } };
    for (const k of Object.keys(pruned.linears) as (keyof LayerWeights['linears'])[])
      pruned.linears[k] = dense.linears[k]!.map((x, i) => (i % 2 ? 0 : x));
    const rw = new Float32Array(pb.B * pb.T);
    pb.valid.forEach((v, b) => v.forEach((x, t) => (rw[b * pb.T + t] = x ? 1 : 0)));
    const got = await runner.captureCross(runner.weightFeeds(pruned), runner.weightFeeds(dense), hPruned, hRef, pb, rw);
    const a = referenceLayerInputs(cfg, pruned, hPruned, layoutOf(pb));
    const b = referenceLayerInputs(cfg, dense, hRef, layoutOf(pb));
    const valid = (i: number) => rw[Math.floor(i / cfg.hiddenSize)]! > 0;
    const pick = (x: Float32Array) => x.filter((_, i) => valid(i));
    assert.ok(relDiff(pick(got.out), pick(a.out)) < 1e-5, 'pruned stream output');
    assert.ok(relDiff(pick(got.outRef), pick(b.out)) < 1e-5, 'reference stream output');
    for (const g of INPUT_GROUPS) {
      const n = groupWidth(cfg, g);
      const X = a.inputs[g]!;
      const R = b.inputs[g]!;
      const H = new Float64Array(n * n);
      const C = new Float64Array(n * n);
      for (let r = 0; r < pb.B * pb.T; r++) {
        if (!rw[r]) continue;
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            H[i * n + j]! += X[r * n + i]! * X[r * n + j]!;
            C[i * n + j]! += R[r * n + i]! * X[r * n + j]!;
          }
        }
      }
      assert.ok(relDiff(got.xtx[g], H) < 1e-5, `${g}: XᵀX`);
      assert.ok(relDiff(got.cross[g], C) < 1e-5, `${g}: X_refᵀX`);
    }
  });

  it('reconstructs the dense model better than plain SparseGPT; layer 0 keeps its own target', async () => {
    const dir = checkpoint(QWEN);
    const calib = calibSet(randomSequencesFor(dir, 24, 30, 90, 5));
    const plainOut = join(tempDir('asym-plain'), 'out');
    const asymOut = join(tempDir('asym-on'), 'out');
    await prune(dir, calib, plainOut, {});
    const s = await prune(dir, calib, asymOut, { asymmetric: true });
    assert.equal(s.options['asymmetric'], true);
    const shifts = s.layers.map((l) => Math.max(...Object.values(l.linears).map((r) => r!.target_shift!)));
    // Layer 0: both streams are the embeddings; only o_proj/MLP inputs differ (q/k/v are pruned in the same capture).
    const l0qkv = ['q_proj', 'k_proj', 'v_proj'].map((k) => s.layers[0]!.linears[k as 'q_proj']!.target_shift!);
    for (const x of l0qkv) assert.ok(x < 1e-4, `layer 0 q/k/v target shift ${x}`);
    assert.ok(shifts[2]! > 1e-3, `layer 2 target shift ${shifts[2]}`);
    for (const l of s.layers) for (const r of Object.values(l.linears)) assert.ok(Math.abs(r!.sparsity - 0.6) < 0.01);
    // The final hidden states on the calibration sequences, against the dense model's.
    const pb = leftPad(calib.sequences.map((x) => x.ids));
    const want = lastHidden(dir, pb);
    const ePlain = lastHiddenError(plainOut, pb, want);
    const eAsym = lastHiddenError(asymOut, pb, want);
    assert.ok(eAsym < ePlain, `final hidden error: asymmetric ${eAsym} vs plain ${ePlain}`);
  });

  it('a reference model (staged refresh: the dense one) is what a partly pruned checkpoint reconstructs', async () => {
    const dir = checkpoint(QWEN);
    const calib = calibSet(randomSequencesFor(dir, 8, 20, 40, 7));
    const stage0 = join(tempDir('asym-stage0'), 'out');
    await prune(dir, calib, stage0, { layers: [0] });
    const qkvShift = (s: PruneSummary) =>
      Math.max(...['q_proj', 'k_proj', 'v_proj'].map((k) => s.layers[1]!.linears[k as 'q_proj']!.target_shift!));
    // Without a reference, layer 1's inputs come through the stage's own (pruned) layer 0 on both streams.
    const self = await prune(stage0, calib, join(tempDir('asym-self'), 'out'), { layers: [1, 2], asymmetric: true });
    assert.ok(qkvShift(self) < 1e-4, `self reference: layer 1 q/k/v shift ${qkvShift(self)}`);
    const dense = Model.open(dir);
    try {
      const withRef = await prune(stage0, calib, join(tempDir('asym-ref'), 'out'), { layers: [1, 2], asymmetric: true, reference: dense });
      assert.ok(qkvShift(withRef) > 1e-3, `dense reference: layer 1 q/k/v shift ${qkvShift(withRef)}`);
    } finally {
      dense.close();
    }
  });

  it('GPTQ takes the same target (quantization only, no pruning)', async () => {
    const dir = checkpoint({ ...QWEN, layers: 2 });
    const calib = calibSet(randomSequencesFor(dir, 8, 20, 40, 8));
    const s = await prune(dir, calib, join(tempDir('asym-gptq'), 'out'), {
      method: 'gptq',
      quant: 'q8_0',
      target: { kind: 'unstructured', sparsity: 0 },
      asymmetric: true,
    });
    assert.equal(s.options['asymmetric'], true);
    const l1 = Object.values(s.layers[1]!.linears);
    assert.ok(l1.every((r) => r!.quant === 'Q8_0' && r!.zeros < r!.rows * r!.cols));
    assert.ok(Math.max(...l1.map((r) => r!.target_shift!)) > 1e-4, 'layer 1 targets move: layer 0 was quantized');
  });

  it('is refused for methods without a reconstruction solver', async () => {
    const dir = checkpoint({ ...QWEN, layers: 1 });
    const calib = calibSet(randomSequencesFor(dir, 4, 10, 20, 6));
    await assert.rejects(
      prune(dir, calib, join(tempDir('asym-wanda'), 'out'), { method: 'wanda', asymmetric: true }),
      /--asymmetric .* wanda/,
    );
  });
});
