import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { leftPad } from '../../src/models/batch.ts';
import { LayerRunner } from '../../src/models/layer-runner.ts';
import { Model } from '../../src/models/model.ts';
import { makeLayerBatch, referenceLayerInputs } from '../../src/models/reference.ts';
import { groupWidth, INPUT_GROUPS } from '../../src/models/spec.ts';
import { checkpoint } from '../helpers/checkpoints.ts';

/** max |a − b| / max |b| */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / m;
}

describe('capture graph: XᵀX per Linear input group', () => {
  const runners: LayerRunner[] = [];
  after(async () => {
    for (const r of runners) await r.release();
  });

  for (const family of ['qwen2', 'qwen3'] as const) {
    it(`${family}: equals a float64 naive sum over real tokens (rel 1e-5), weighted rows, padding ignored`, async () => {
      const model = Model.open(checkpoint({ family, seed: 11, hidden: 48, heads: 4, kvHeads: 2, intermediate: 96 }));
      const cfg = model.config;
      const runner = await LayerRunner.create(model.spec, cfg, { threads: 1 });
      runners.push(runner);
      const w = model.layerWeights(1);
      const seqs = [
        [3, 40, 7, 99, 150, 2, 8, 31, 64],
        [10, 20],
        [5, 6, 7, 8, 9],
      ];
      const seqWeight = [1, 4, 0.25];
      const pb = leftPad(seqs);
      const D = cfg.hiddenSize;
      const E = model.embedding();
      const hidden = new Float32Array(pb.B * pb.T * D);
      for (let i = 0; i < pb.ids.length; i++) hidden.set(E.subarray(pb.ids[i]! * D, (pb.ids[i]! + 1) * D), i * D);
      const rowW = new Float32Array(pb.B * pb.T);
      pb.valid.forEach((v, b) => v.forEach((x, t) => (rowW[b * pb.T + t] = x ? Math.sqrt(seqWeight[b]!) : 0)));
      const got = await runner.capture(runner.weightFeeds(w), hidden, pb, rowW);

      const mask = pb.valid.map((v) => Array.from(v));
      const ref = referenceLayerInputs(cfg, w, hidden, makeLayerBatch(pb.B, pb.T, mask));
      for (const g of INPUT_GROUPS) {
        const n = groupWidth(cfg, g);
        const X = ref.inputs[g]!;
        const H = new Float64Array(n * n);
        for (let r = 0; r < pb.B * pb.T; r++) {
          const wr = rowW[r]! * rowW[r]!;
          if (wr === 0) continue;
          for (let i = 0; i < n; i++) {
            const xi = X[r * n + i]! * wr;
            for (let j = 0; j < n; j++) H[i * n + j]! += xi * X[r * n + j]!;
          }
        }
        const e = relErr(got.xtx[g], H);
        assert.ok(e < 1e-5, `${g}: relative error ${e}`);
      }

      // Padding changes nothing: a batch with an extra padded row and longer padding
      const seqs2 = [...seqs, [1]];
      const pb2 = leftPad(seqs2);
      const hidden2 = new Float32Array(pb2.B * pb2.T * D);
      for (let i = 0; i < pb2.ids.length; i++) hidden2.set(E.subarray(pb2.ids[i]! * D, (pb2.ids[i]! + 1) * D), i * D);
      const rowW2 = new Float32Array(pb2.B * pb2.T);
      pb2.valid.forEach((v, b) => v.forEach((x, t) => (rowW2[b * pb2.T + t] = x && b < 3 ? Math.sqrt(seqWeight[b]!) : 0)));
      const got2 = await runner.capture(runner.weightFeeds(w), hidden2, pb2, rowW2);
      for (const g of INPUT_GROUPS) {
        const e = relErr(got2.xtx[g], got.xtx[g]);
        assert.ok(e < 1e-5, `${g} with an extra zero-weight row: relative change ${e}`);
      }
      // and the layer output equals the plain forward
      const plain = await runner.forward(runner.weightFeeds(w), hidden, pb);
      assert.ok(relErr(got.out, plain) < 1e-6);
      // the diagonal-only variant: diag(XᵀX) of the full capture, and the same output
      const diag = await runner.captureDiagonal(runner.weightFeeds(w), hidden, pb, rowW);
      for (const g of INPUT_GROUPS) {
        const n = groupWidth(cfg, g);
        assert.equal(diag.xtx[g].length, n);
        const full = Array.from({ length: n }, (_, j) => got.xtx[g][j * n + j]!);
        assert.ok(relErr(diag.xtx[g], full) < 1e-5, `${g}: diagonal capture vs diag of XᵀX`);
      }
      assert.ok(relErr(diag.out, plain) < 1e-6);
    });
  }
});
