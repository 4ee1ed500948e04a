/**
 * llama.cpp as the oracle for quantized GGUF: a checkpoint quantized by rac (GPTQ, joint
 * SparseGPT + quantization, RTN; with an importance matrix from rac imatrix) is exported as Q4_0 /
 * Q8_0 / k-quant GGUF (one type, and llama.cpp's mixes) and run in llama.cpp through
 * node-llama-cpp; rac's engine runs the same model from its directory, dequantized at load (the
 * values the GGUF blocks reproduce bit for bit — test/prune/quant.test.ts). q4_0 / q8_0 directories
 * are compressed-tensors; rac's engine also runs them on its packed path (MatMulNBits, int8
 * activations, as llama.cpp's Q4_0/Q8_0 dot products quantize activations to 8 bits), which must
 * agree with both GGUFs within PROB_ATOL too (measured: ≤ 9.8e-2 on the tiny reasoner against the
 * F32 GGUF).
 *
 * The weights are identical — the same model exported as F32 GGUF agrees with rac to < 1e-4 in
 * llama.cpp — but llama.cpp's CPU dot products for quantized weights quantize the activations to
 * 8 bits (Q8_0 blocks of 32; Q8_K super-blocks of 256 for the k-quants) first, so its logits are not
 * an f32 matmul's. The tolerances (the same for every type) are set from the gaps measured here
 * (printed at the end), with headroom:
 *   next-token probabilities, teacher forced at up to 9 positions per prompt: max |Δp| < PROB_ATOL
 *   at every position, and < MEAN_ATOL on average;
 *   greedy continuations of 32 tokens: identical, or parting only where rac's top-2 margin < TIE.
 * Set RAC_SKIP_LLAMA_CPP=1 where the node-llama-cpp binary cannot load.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { QuantScheme } from '../../src/compress/quant-schemes.ts';
import type { Imatrix } from '../../src/io/imatrix.ts';
import { Engine } from '../../src/models/engine.ts';
import { Model } from '../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { exportGguf } from '../../src/export/gguf.ts';
import { computeImatrix } from '../../src/prune/imatrix.ts';
import { pruneCheckpoint, type PruneOptions } from '../../src/prune/prune.ts';
import { checkpoint, SMALL_LLAMA, SMALL_MOE, SMALL_QWEN2, tempDir } from '../helpers/checkpoints.ts';
import { llamaGreedy, llamaNextProbs, loadGguf, racGreedy, racNextProbs, skipLlamaCpp, top2Margin, useLlama } from '../helpers/llamacpp.ts';
import { calibSet, randomSequences } from '../helpers/prune.ts';

const NEW_TOKENS = 32;
// Measured (node-llama-cpp 3.21.1, CPU): max |Δp| 7.4e-2 (tiny reasoner, q8_0), 5.8e-2 (q4_0),
// 1.1e-3 (random llama); k-quants and mixes on the random 256-wide qwen2 / llama: ≤ 2.7e-3 (mean
// ≤ 7.9e-4; random weights give flat distributions, so these gaps are small in absolute terms);
// mean over positions ≤ 1.9e-2; greedy splits at rac margins ≥ 1.35e-2. Against the F32 GGUF of
// the same quantized model: ≤ 9.4e-6. Tolerances: twice the measured.
const PROB_ATOL = Number(process.env.RAC_QUANT_PROB_ATOL ?? 0.15);
const MEAN_ATOL = 0.04;
/** A greedy split is accepted where rac's top-2 margin is within what |Δp| ≤ PROB_ATOL can flip. */
const TIE = Number(process.env.RAC_QUANT_TIE ?? 0.15);
/** The same model as an F32 GGUF: llama.cpp then runs an f32 matmul over the very same weights. */
const F32_PROB_ATOL = 1e-4;
const THREADS = 1;

type Quantize = Pick<PruneOptions, 'method' | 'target'> & { calib: boolean; imatrix?: boolean };
const GPTQ: Quantize = { method: 'gptq', target: { kind: 'unstructured', sparsity: 0 }, calib: true };
const JOINT: Quantize = { method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 }, calib: true };
const RTN: Quantize = { method: 'rtn', target: { kind: 'unstructured', sparsity: 0 }, calib: false };
const RTN_IM: Quantize = { ...RTN, imatrix: true };
const GPTQ_IM: Quantize = { ...GPTQ, imatrix: true };

const QWEN = SMALL_QWEN2;
const LLAMA = SMALL_LLAMA;
const MOE = SMALL_MOE;
const MOE256: RandomCheckpointOptions = { ...MOE, seed: 15, hidden: 256, moe: { experts: 4, topK: 2, expertIntermediate: 256 } };
/** k-quants need rows of multiples of 256 (untied: tied random qwen2 heads give near one-hot distributions). */
const QWEN256: RandomCheckpointOptions = { family: 'qwen2', seed: 13, hidden: 256, heads: 4, kvHeads: 2, layers: 2, intermediate: 512 };
const LLAMA256: RandomCheckpointOptions = { family: 'llama', seed: 14, hidden: 256, heads: 4, kvHeads: 2, layers: 2, intermediate: 512 };
const CASES: [string, () => string, QuantScheme, Quantize][] = [
  ['qwen2 random, GPTQ q4_0', () => checkpoint(QWEN), 'q4_0', GPTQ],
  ['qwen2 random, GPTQ q8_0', () => checkpoint(QWEN), 'q8_0', GPTQ],
  ['qwen2 random, RTN q4_0 + rac imatrix (compressed-tensors)', () => checkpoint(QWEN), 'q4_0', RTN_IM],
  ['llama random (permuted q/k), joint 50% + q4_0', () => checkpoint(LLAMA), 'q4_0', JOINT],
  ['qwen2 random 256, GPTQ q4_k_m', () => checkpoint(QWEN256), 'q4_k_m', GPTQ],
  ['qwen2 random 256, RTN q2_k_mix + rac imatrix', () => checkpoint(QWEN256), 'q2_k_mix', RTN_IM],
  ['qwen2 random 256, GPTQ q3_k_m + rac imatrix', () => checkpoint(QWEN256), 'q3_k_m', GPTQ_IM],
  ['qwen2 random 256, RTN q6_k', () => checkpoint(QWEN256), 'q6_k', RTN],
  ['llama random 256 (permuted q/k, untied), joint 50% + q4_k', () => checkpoint(LLAMA256), 'q4_k', JOINT],
  ['llama random 256, RTN q5_k_m + rac imatrix', () => checkpoint(LLAMA256), 'q5_k_m', RTN_IM],
  ['qwen3_moe random (per-expert GPTQ, stacked expert blocks), q4_0', () => checkpoint(MOE), 'q4_0', GPTQ],
  ['qwen3_moe random, joint 50% + q8_0 per expert', () => checkpoint(MOE), 'q8_0', JOINT],
  ['qwen3_moe random 256 (stacked experts share a type), GPTQ q4_k_m', () => checkpoint(MOE256), 'q4_k_m', GPTQ],
];
const TINY = join(process.cwd(), 'models', 'tiny-reasoner');
if (existsSync(join(TINY, 'config.json'))) {
  CASES.push(['tiny reasoner, RTN q4_0', () => TINY, 'q4_0', RTN], ['tiny reasoner, GPTQ q8_0', () => TINY, 'q8_0', GPTQ]);
}

const PROMPTS = [
  [10, 20, 30, 40, 50, 60],
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
  [200, 7, 9],
];

describe('quantized GGUF (Q4_0/Q8_0, k-quants and mixes) vs llama.cpp (node-llama-cpp)', { skip: skipLlamaCpp }, () => {
  const { llama, stats } = useLlama('quantized gguf oracle');

  for (const [label, dirOf, fmt, q] of CASES) {
    it(`${label}: llama.cpp agrees with rac's engine on the dequantized model`, async () => {
      const src = dirOf();
      const dir = join(tempDir('quant'), 'm');
      const srcModel = Model.open(src);
      try {
        const seqs = calibSet(randomSequences(srcModel.config.vocabSize, 16, 30, 80, 3));
        const calib = q.calib ? seqs : null;
        let imatrix: Imatrix | undefined;
        if (q.imatrix) imatrix = (await computeImatrix(srcModel, seqs, { batchTokens: 1024, runtime: { threads: THREADS } })).imatrix;
        const s = await pruneCheckpoint(
          srcModel,
          calib,
          dir,
          {
            method: q.method,
            target: q.target,
            quant: fmt,
            ...(imatrix ? { imatrix } : {}),
            linears: 'all',
            blocksize: fmt.includes('_k') ? 256 : 128,
            batchTokens: 1024,
            runtime: { threads: THREADS },
          },
          'test',
        );
        if (q.imatrix)
          assert.ok(
            Object.values(s.quantization!.tensors).some((t) => t.imatrix),
            'the imatrix reached the quantizers',
          );
      } finally {
        srcModel.close();
      }
      const gguf = join(tempDir('gguf'), 'model.gguf');
      exportGguf({ model: dir, out: gguf, dtype: fmt, warn: () => {} });
      const ggufF32 = join(tempDir('gguf'), 'model-f32.gguf');
      exportGguf({ model: dir, out: ggufF32, dtype: 'f32', warn: () => {} });

      const model = Model.open(dir);
      const engine = await Engine.load(model, { threads: THREADS, packedWeights: 'dequantize' });
      // q4_0 / q8_0: rac's own packed path (MatMulNBits, int8 activations) against the same llama.cpp runs.
      const native = model.compressed ? await Engine.load(model, { threads: THREADS }) : null;
      const { lm, ctx } = await loadGguf(llama(), gguf, 128, THREADS);
      const { lm: lm32, ctx: ctx32 } = await loadGguf(llama(), ggufF32, 128, THREADS);
      try {
        const V = model.config.vocabSize;
        const prompts = PROMPTS.map((p) => p.map((t) => t % V));
        const seq = ctx.getSequence();
        const racOut = await racGreedy(engine, prompts, NEW_TOKENS);
        let worst = 0;
        let worst32 = 0;
        let worstNative = 0;
        let worstNative32 = 0;
        let sum = 0;
        let compared = 0;
        let splits = 0;
        let minMargin = Infinity;
        for (let pi = 0; pi < prompts.length; pi++) {
          const prompt = prompts[pi]!;
          const ours = racOut[pi]!;
          const theirs = await llamaGreedy(seq, prompt, NEW_TOKENS);
          const full = [...prompt, ...ours];
          const [logits] = await engine.forward([full]);
          const racP = racNextProbs(logits!, prompt.length, V);
          const nativeP = native ? racNextProbs((await native.forward([full]))[0]!, prompt.length, V) : null;
          const split = ours.findIndex((t, k) => t !== theirs[k]);
          if (split >= 0) {
            const margin = top2Margin(racP(split));
            minMargin = Math.min(minMargin, margin);
            assert.ok(
              margin < TIE,
              `prompt ${pi}: continuations part at step ${split} where rac's top-2 margin is ${margin.toExponential(2)} ≥ ${TIE}`,
            );
            splits++;
          }
          const upto = split >= 0 ? split : NEW_TOKENS - 1;
          const steps = [0, ...Array.from({ length: 8 }, (_, j) => 4 * j + 3)].filter((k) => k <= upto);
          const res = await llamaNextProbs(seq, full, prompt.length, upto, steps, V);
          const seq32 = ctx32.getSequence();
          const res32 = await llamaNextProbs(seq32, full, prompt.length, upto, steps, V);
          seq32.dispose();
          for (const k of steps) {
            const probs = res.get(k);
            const probs32 = res32.get(k);
            assert.ok(probs && probs32, `prompt ${pi}: no probabilities at step ${k}`);
            const ref = racP(k);
            let d = 0;
            let d32 = 0;
            for (let v = 0; v < V; v++) {
              d = Math.max(d, Math.abs(probs[v]! - ref[v]!));
              d32 = Math.max(d32, Math.abs(probs32[v]! - ref[v]!));
            }
            if (nativeP) {
              const nat = nativeP(k);
              let dn = 0;
              let dn32 = 0;
              for (let v = 0; v < V; v++) {
                dn = Math.max(dn, Math.abs(probs[v]! - nat[v]!));
                dn32 = Math.max(dn32, Math.abs(probs32[v]! - nat[v]!));
              }
              assert.ok(
                dn < PROB_ATOL,
                `prompt ${pi} step ${k}: rac's packed engine vs the ${fmt} GGUF, max |Δp| = ${dn.toExponential(2)}`,
              );
              assert.ok(
                dn32 < PROB_ATOL,
                `prompt ${pi} step ${k}: rac's packed engine vs the F32 GGUF, max |Δp| = ${dn32.toExponential(2)}`,
              );
              worstNative = Math.max(worstNative, dn);
              worstNative32 = Math.max(worstNative32, dn32);
            }
            assert.ok(
              d32 < F32_PROB_ATOL,
              `prompt ${pi} step ${k}: F32 GGUF of the quantized model, max |Δp| = ${d32.toExponential(2)} ≥ ${F32_PROB_ATOL}`,
            );
            worst32 = Math.max(worst32, d32);
            assert.ok(d < PROB_ATOL, `prompt ${pi} step ${k}: max |Δp| = ${d.toExponential(2)} ≥ ${PROB_ATOL}`);
            worst = Math.max(worst, d);
            sum += d;
            compared++;
          }
        }
        assert.ok(sum / compared < MEAN_ATOL, `mean max |Δp| over positions ${(sum / compared).toExponential(2)} ≥ ${MEAN_ATOL}`);
        stats.push(
          `${label}: ${compared} distributions, ${fmt} GGUF max |Δp| ${worst.toExponential(2)} (mean ${(sum / compared).toExponential(2)}), F32 GGUF ${worst32.toExponential(2)}; greedy splits ${splits}/${prompts.length}${splits ? ` (smallest margin ${minMargin.toExponential(2)})` : ''}${native ? `; rac packed (MatMulNBits) vs ${fmt} GGUF ${worstNative.toExponential(2)}, vs F32 GGUF ${worstNative32.toExponential(2)}` : ''}`,
        );
      } finally {
        await ctx.dispose();
        await lm.dispose();
        await ctx32.dispose();
        await lm32.dispose();
        await engine.release();
        await native?.release();
        model.close();
      }
    });
  }
});
