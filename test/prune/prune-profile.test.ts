/**
 * Per-token position-class weights and OWL layer sparsity through pruneCheckpoint: default token
 * weights change nothing (bit for bit), prompt weight 0 builds XᵀX from decode tokens only, OWL's
 * per-layer targets stay in bounds and average to the requested sparsity over the pruned weights.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { batchRowWeights, CLASS_ANSWER, CLASS_PROMPT, CLASS_THINK } from '../../src/compress/hessian.ts';
import type { SparsityTarget } from '../../src/compress/masks.ts';
import { leftPad } from '../../src/models/batch.ts';
import { LayerRunner } from '../../src/models/layer-runner.ts';
import { Model } from '../../src/models/model.ts';
import { makeLayerBatch, referenceLayerInputs } from '../../src/models/reference.ts';
import { groupWidth, INPUT_GROUPS } from '../../src/models/spec.ts';
import type { CalibSequence, CalibSet } from '../../src/prune/calib.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { calibSet, pruneDir, randomSequences, randomSequencesFor, tensorHashes } from '../helpers/prune.ts';

const RT = { threads: 1 };
const QWEN = { family: 'qwen2' as const, seed: 31, hidden: 64, layers: 3, intermediate: 160, anisotropy: 1 };

/** Classes like a trace: a prompt of a third, thinking, an answer of the last fifth. */
function withClasses(seqs: CalibSequence[]): CalibSequence[] {
  return seqs.map((s) => {
    const n = s.ids.length;
    const c = new Uint8Array(n).fill(CLASS_THINK);
    c.fill(CLASS_PROMPT, 0, Math.floor(n / 3));
    c.fill(CLASS_ANSWER, n - Math.floor(n / 5));
    return { ...s, classes: c };
  });
}

function calibFor(dir: string, seed: number, classes: boolean): CalibSet {
  const seqs = randomSequencesFor(dir, 16, 30, 90, seed);
  return calibSet(classes ? withClasses(seqs) : seqs);
}

describe('token weights', () => {
  it('default weights are bit-identical to sequences without classes and to explicit 1,1,1', async () => {
    const dir = checkpoint(QWEN);
    const plain = calibFor(dir, 5, false);
    const classed = calibSet(withClasses(plain.sequences));
    const base = { method: 'sparsegpt' as const, target: { kind: 'unstructured', sparsity: 0.5 } as SparsityTarget };
    const out = ['a', 'b', 'c'].map((k) => join(tempDir(`tw-${k}`), 'out'));
    const a = await pruneDir(dir, plain, out[0]!, base);
    const b = await pruneDir(dir, classed, out[1]!, base);
    const c = await pruneDir(dir, classed, out[2]!, { ...base, tokenWeights: { prompt: 1, think: 1, answer: 1 } });
    const hashes = out.map((o) => tensorHashes(o));
    assert.deepEqual(hashes[1], hashes[0], 'classes with default weights: same tensors');
    assert.deepEqual(hashes[2], hashes[0], 'explicit 1,1,1: same tensors');
    for (const [x, y] of [
      [a, b],
      [a, c],
    ] as const) {
      assert.deepEqual(
        x.layers.map((l) => Object.values(l.linears).map((r) => [r!.zeros, r!.loss, r!.output_error])),
        y.layers.map((l) => Object.values(l.linears).map((r) => [r!.zeros, r!.loss, r!.output_error])),
      );
    }
    assert.deepEqual(c.options['token_weights'], { prompt: 1, think: 1, answer: 1 });
  });

  it('prompt weight 0: the captured XᵀX is the sum over decode tokens only', async () => {
    const model = Model.open(checkpoint({ ...QWEN, layers: 1 }));
    const cfg = model.config;
    const runner = await LayerRunner.create(model.spec, cfg, RT);
    after(() => runner.release());
    const seqs = withClasses(randomSequences(cfg.vocabSize, 3, 6, 11, 9));
    const pb = leftPad(seqs.map((s) => s.ids));
    const D = cfg.hiddenSize;
    const E = model.embedding();
    const hidden = new Float32Array(pb.B * pb.T * D);
    for (let i = 0; i < pb.ids.length; i++) hidden.set(E.subarray(pb.ids[i]! * D, (pb.ids[i]! + 1) * D), i * D);
    const w = model.layerWeights(0);
    const rw = batchRowWeights(seqs, pb.valid, pb.T, { prompt: 0, think: 1, answer: 1 });
    const got = await runner.capture(runner.weightFeeds(w), hidden, pb, rw);
    // decode rows: real positions whose class is not prompt
    const decode = new Uint8Array(pb.B * pb.T);
    pb.valid.forEach((v, b) => {
      const off = pb.T - seqs[b]!.ids.length;
      v.forEach((x, t) => (decode[b * pb.T + t] = x && seqs[b]!.classes![t - off] !== CLASS_PROMPT ? 1 : 0));
    });
    assert.ok(decode.some((x) => x) && decode.some((x, i) => !x && rw[i] === 0 && pb.valid[Math.floor(i / pb.T)]![i % pb.T]));
    const ref = referenceLayerInputs(
      cfg,
      w,
      hidden,
      makeLayerBatch(
        pb.B,
        pb.T,
        pb.valid.map((v) => Array.from(v)),
      ),
    );
    for (const g of INPUT_GROUPS) {
      const n = groupWidth(cfg, g);
      const X = ref.inputs[g]!;
      const H = new Float64Array(n * n);
      for (let r = 0; r < pb.B * pb.T; r++) {
        if (!decode[r]) continue;
        for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) H[i * n + j]! += X[r * n + i]! * X[r * n + j]!;
      }
      let d = 0;
      let m = 0;
      for (let i = 0; i < H.length; i++) {
        d = Math.max(d, Math.abs(got.xtx[g][i]! - H[i]!));
        m = Math.max(m, Math.abs(H[i]!));
      }
      assert.ok(d / m < 1e-5, `${g}: relative error ${d / m}`);
    }
    model.close();
  });

  it('prompt weight 0 on prompt-only calibration is refused (no weight left); the weights are recorded', async () => {
    const dir = checkpoint({ ...QWEN, layers: 1 });
    const c = calibFor(dir, 6, true);
    const promptOnly = calibSet(c.sequences.map((s) => ({ ...s, classes: new Uint8Array(s.ids.length).fill(CLASS_PROMPT) })));
    await assert.rejects(
      pruneDir(dir, promptOnly, join(tempDir('tw-none'), 'out'), {
        method: 'wanda',
        target: { kind: 'unstructured', sparsity: 0.5 },
        tokenWeights: { prompt: 0, think: 1, answer: 1 },
      }),
      /leave no calibration token/,
    );
    const s = await pruneDir(dir, c, join(tempDir('tw-rec'), 'out'), {
      method: 'wanda',
      target: { kind: 'unstructured', sparsity: 0.5 },
      tokenWeights: { prompt: 0, think: 1, answer: 2 },
    });
    assert.deepEqual(s.options['token_weights'], { prompt: 0, think: 1, answer: 2 });
    const counts = s.calibration['token_classes'] as Record<string, number>;
    assert.equal(counts['prompt']! + counts['think']! + counts['answer']!, c.tokens);
  });
});

describe('OWL layer sparsity', () => {
  for (const method of ['sparsegpt', 'wanda', 'magnitude'] as const) {
    it(`${method}: per-layer targets in [s − λ, s + λ], weighted mean = s, realized sparsity follows the targets`, async () => {
      const dir = checkpoint(QWEN);
      const s = 0.5;
      const lambda = 0.08;
      const sum = await pruneDir(dir, calibFor(dir, 7, true), join(tempDir(`owl-${method}`), 'out'), {
        method,
        target: { kind: 'unstructured', sparsity: s },
        sparsityProfile: { owl: { m: 3, lambda } },
        ...(method === 'magnitude' ? { magnitudeScope: 'row' as const } : {}),
      });
      const p = sum.sparsity_profile!;
      assert.equal(p.profile, 'owl');
      assert.equal(p.layers.length, 3);
      assert.ok(Math.abs(p.mean_target - s) < 1e-12, `mean target ${p.mean_target}`);
      assert.ok(
        p.layers.some((l) => Math.abs(Math.abs(l.target - s) - lambda) < 1e-12),
        'the furthest layer is at the bound',
      );
      const P = p.layers.reduce((a, l) => a + l.weights, 0);
      let zeros = 0;
      for (const l of p.layers) {
        assert.ok(l.target >= s - lambda - 1e-12 && l.target <= s + lambda + 1e-12, `layer ${l.layer}: ${l.target}`);
        assert.equal(sum.layers[l.layer]!.target, l.target);
        // realized = the target up to the floor of each row (Wanda, magnitude by row) or 128-column block (SparseGPT)
        for (const r of Object.values(sum.layers[l.layer]!.linears)) {
          const units = method === 'sparsegpt' ? Math.ceil(r!.cols / 128) : r!.rows;
          assert.ok(
            r!.zeros <= l.target * r!.rows * r!.cols && r!.zeros > l.target * r!.rows * r!.cols - units,
            `layer ${l.layer}: ${r!.zeros} zeros for target ${l.target}`,
          );
        }
        zeros += l.sparsity * l.weights;
      }
      assert.ok(Math.abs(zeros / P - sum.totals.sparsity) < 1e-12);
      assert.ok(Math.abs(sum.totals.sparsity - s) < 0.01, `realized ${sum.totals.sparsity}`);
      assert.deepEqual(sum.options['sparsity_profile'], { owl: { m: 3, lambda } });
    });
  }

  it('is refused with N:M and with quantization-only methods', async () => {
    const dir = checkpoint({ ...QWEN, layers: 1 });
    const c = calibFor(dir, 8, false);
    await assert.rejects(
      pruneDir(dir, c, join(tempDir('owl-nm'), 'out'), {
        method: 'sparsegpt',
        target: { kind: 'nm', n: 2, m: 4 },
        sparsityProfile: { owl: { m: 5, lambda: 0.08 } },
      }),
      /needs an unstructured --sparsity/,
    );
    await assert.rejects(
      pruneDir(dir, c, join(tempDir('owl-lam'), 'out'), {
        method: 'wanda',
        target: { kind: 'unstructured', sparsity: 0.05 },
        sparsityProfile: { owl: { m: 5, lambda: 0.08 } },
      }),
      /leaves \[0, 1\)/,
    );
  });
});
