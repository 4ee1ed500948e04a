/**
 * `computeImatrix` (src/prune/imatrix.ts) against the plain-TypeScript reference forward: per weight
 * tensor, Σ x² per input column over the real tokens of every sequence (run one by one, unpadded),
 * and the token count — independent of the batching (padding never counts), with per-token weights
 * (prompt 0: decode tokens only, the count Σ w), and the output projection only when asked (untied).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLASS_PROMPT, CLASS_THINK } from '../../src/compress/hessian.ts';
import { GGUF_LINEAR } from '../../src/compress/quant-schemes.ts';
import { Model } from '../../src/models/model.ts';
import { embedTokens, loadLayerWeights, makeLayerBatch, referenceLayerInputs, rmsNorm } from '../../src/models/reference.ts';
import { groupWidth } from '../../src/models/spec.ts';
import type { CalibSequence } from '../../src/prune/calib.ts';
import { computeImatrix } from '../../src/prune/imatrix.ts';
import { checkpoint, weightSource } from '../helpers/checkpoints.ts';
import { calibSet, randomSequences } from '../helpers/prune.ts';

const CK = { family: 'llama', seed: 41, hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 96 } as const;
const RT = { threads: 1 };

/** Σ w·x² per column of every Linear's input and Σ w, sequence by sequence through the reference forward. */
function referenceImatrix(m: Model, seqs: CalibSequence[], classWeight = [1, 1, 1]): { sums: Map<string, Float64Array>; count: number } {
  const { spec, config: cfg } = m;
  const ws = weightSource(m);
  const sums = new Map<string, Float64Array>();
  let count = 0;
  for (const s of seqs) {
    const T = s.ids.length;
    const w = Array.from({ length: T }, (_, t) => s.weight * (s.classes ? classWeight[s.classes[t]!]! : 1));
    count += w.reduce((a, b) => a + b, 0);
    let h = embedTokens(spec, cfg, ws, [s.ids]);
    for (let l = 0; l < cfg.numLayers; l++) {
      const { out, inputs } = referenceLayerInputs(cfg, loadLayerWeights(spec, cfg, ws, l), h, makeLayerBatch(1, T));
      for (const ls of spec.linears(cfg)) {
        const name = `blk.${l}.${GGUF_LINEAR[ls.name]}.weight`;
        const width = groupWidth(cfg, ls.group);
        const acc = sums.get(name) ?? new Float64Array(width);
        const x = inputs[ls.group]!;
        for (let t = 0; t < T; t++) for (let j = 0; j < width; j++) acc[j]! += w[t]! * x[t * width + j]! ** 2;
        sums.set(name, acc);
      }
      h = out;
    }
    const normed = rmsNorm(h, m.finalNorm(), cfg.rmsNormEps, T, cfg.hiddenSize);
    const acc = sums.get('output.weight') ?? new Float64Array(cfg.hiddenSize);
    for (let t = 0; t < T; t++) for (let j = 0; j < cfg.hiddenSize; j++) acc[j]! += w[t]! * normed[t * cfg.hiddenSize + j]! ** 2;
    sums.set('output.weight', acc);
  }
  return { sums, count };
}

function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), 1e-12));
  return d;
}

describe('rac imatrix (computeImatrix)', () => {
  const dir = checkpoint(CK);

  it('equals Σx² of the reference forward per tensor, whatever the batching; counts are the real tokens', async () => {
    const m = Model.open(dir);
    try {
      const seqs = randomSequences(m.config.vocabSize, 9, 5, 40, 3);
      const ref = referenceImatrix(m, seqs);
      const real = seqs.reduce((a, s) => a + s.ids.length, 0);
      assert.equal(ref.count, real);
      for (const batchTokens of [48, 4096]) {
        const r = await computeImatrix(m, calibSet(seqs), { batchTokens, runtime: RT, processOutput: true });
        assert.equal(r.tokens, real);
        assert.equal(r.imatrix.entries.size, m.config.numLayers * 7 + 1, 'seven Linears per layer + output (untied, asked for)');
        for (const [name, e] of r.imatrix.entries) {
          assert.deepEqual(e.counts, [real], `${name} count`);
          const d = maxRel(e.sums, ref.sums.get(name)!);
          assert.ok(d < 2e-4, `batch ${batchTokens}, ${name}: max relative |Δ| ${d.toExponential(2)}`);
        }
        // q/k/v read one input: the same sums under three names
        assert.deepEqual(r.imatrix.entries.get('blk.1.attn_q.weight')!.sums, r.imatrix.entries.get('blk.1.attn_v.weight')!.sums);
      }
      const noOut = await computeImatrix(m, calibSet(seqs), { batchTokens: 4096, runtime: RT });
      assert.ok(!noOut.imatrix.entries.has('output.weight'), "llama-imatrix's default: no output entry");
    } finally {
      m.close();
    }
  });

  it('token weights: prompt 0 counts decode tokens only; a sequence weight scales sums and count', async () => {
    const m = Model.open(dir);
    try {
      const seqs = randomSequences(m.config.vocabSize, 6, 10, 30, 4).map((s, i) => {
        const classes = new Uint8Array(s.ids.length).fill(CLASS_THINK);
        classes.fill(CLASS_PROMPT, 0, 4);
        return { ...s, classes, weight: i === 2 ? 2 : 1 };
      });
      const ref = referenceImatrix(m, seqs, [0, 1, 1]);
      const r = await computeImatrix(m, calibSet(seqs), { batchTokens: 64, runtime: RT, tokenWeights: { prompt: 0, think: 1, answer: 1 } });
      assert.equal(r.tokens, ref.count);
      assert.equal(
        ref.count,
        seqs.reduce((a, s) => a + (s.ids.length - 4) * s.weight, 0),
      );
      for (const [name, e] of r.imatrix.entries) {
        assert.deepEqual(e.counts, [ref.count]);
        assert.ok(maxRel(e.sums, ref.sums.get(name)!) < 2e-4, name);
      }
    } finally {
      m.close();
    }
  });

  it('a tied head has no output entry even when asked (llama-imatrix never sees token_embd in a matmul)', async () => {
    const m = Model.open(checkpoint({ ...CK, family: 'qwen2', tied: true }));
    try {
      const r = await computeImatrix(m, calibSet(randomSequences(m.config.vocabSize, 3, 8, 16, 5)), {
        batchTokens: 256,
        runtime: RT,
        processOutput: true,
      });
      assert.ok(!r.imatrix.entries.has('output.weight'));
      assert.ok(r.imatrix.entries.has('blk.0.ffn_down.weight'));
    } finally {
      m.close();
    }
  });
});

describe('rac imatrix: MoE layers', () => {
  it('per-expert entries: each expert’s Σ x² over the tokens routed to it, side by side, with its own count', async () => {
    const dir = checkpoint({ family: 'qwen3_moe', seed: 43, hidden: 64, layers: 2, moe: { experts: 4, topK: 2, expertIntermediate: 32 } });
    const m = Model.open(dir);
    try {
      const seqs = randomSequences(300, 5, 8, 20, 4);
      const r = await computeImatrix(m, calibSet(seqs), { batchTokens: 64, runtime: RT });
      const { spec, config: cfg } = m;
      const ws = weightSource(m);
      const E = 4;
      const D = cfg.hiddenSize;
      const I = cfg.moe!.expertIntermediateSize;
      const want = new Map<string, { sums: Float64Array; counts: Float64Array }>();
      const entry = (name: string, width: number) => {
        let e = want.get(name);
        if (!e) want.set(name, (e = { sums: new Float64Array(E * width), counts: new Float64Array(E) }));
        return e;
      };
      for (const s of seqs) {
        const T = s.ids.length;
        let h = embedTokens(spec, cfg, ws, [s.ids]);
        for (let l = 0; l < cfg.numLayers; l++) {
          const ex = m.experts(l)!;
          const { out, inputs } = referenceLayerInputs(cfg, loadLayerWeights(spec, cfg, ws, l), h, makeLayerBatch(1, T), ex);
          for (let j = 0; j < E; j++) {
            const xe = inputs.experts![j]!;
            for (const [gguf, width, rowOf] of [
              ['ffn_gate_exps', D, (r: number) => inputs.mlp_in.subarray(xe.rows[r]! * D, (xe.rows[r]! + 1) * D)],
              ['ffn_down_exps', I, (r: number) => xe.act.subarray(r * I, (r + 1) * I)],
            ] as const) {
              const e = entry(`blk.${l}.${gguf}.weight`, width);
              for (let r = 0; r < xe.rows.length; r++) {
                const x = rowOf(r);
                for (let c = 0; c < width; c++) e.sums[j * width + c]! += x[c]! ** 2;
                e.counts[j]!++;
              }
            }
          }
          h = out;
        }
      }
      for (const [name, w] of want) {
        const got = r.imatrix.entries.get(name)!;
        assert.ok(got, `${name} is written`);
        assert.deepEqual(got.counts, [...w.counts], `${name}: per-expert counts`);
        assert.ok(maxRel(got.sums, w.sums) < 1e-4, `${name}: sums (max rel ${maxRel(got.sums, w.sums)})`);
      }
      assert.deepEqual(r.imatrix.entries.get('blk.1.ffn_up_exps.weight')!.sums, r.imatrix.entries.get('blk.1.ffn_gate_exps.weight')!.sums);
      assert.equal(
        r.imatrix.entries.get('blk.0.attn_q.weight')!.counts[0],
        seqs.reduce((a, s) => a + s.ids.length, 0),
      );
    } finally {
      m.close();
    }
  });
});
