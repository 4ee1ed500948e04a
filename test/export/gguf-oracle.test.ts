/**
 * llama.cpp as the oracle: export a checkpoint to GGUF (f32), run it in llama.cpp through
 * node-llama-cpp, and compare with rac's engine on token ids (no tokenizer in between):
 * - greedy continuations of 64 tokens from several prompts must be identical. If they part, the
 *   step where they part must be a near-tie in rac's own next-token distribution (top-2
 *   probability margin < TIE); anything else fails;
 * - next-token probabilities, teacher-forced over prompt + continuation, at several positions:
 *   max |Δp| over the whole vocabulary < PROB_ATOL.
 * llama.cpp runs with an F32 KV cache (its default is F16) and without flash attention, so both
 * engines compute in f32 and differ only by summation order.
 *
 * node-llama-cpp is a devDependency with its CPU binary from the npm registry; set
 * RAC_SKIP_LLAMA_CPP=1 to skip where that binary cannot load.
 * The tiny reasoner (models/tiny-reasoner) is included when that directory exists.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { Engine } from '../../src/models/engine.ts';
import { Model } from '../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { exportGguf } from '../../src/export/gguf.ts';
import { pruneCheckpoint } from '../../src/prune/prune.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { llamaGreedy, llamaNextProbs, loadGguf, racGreedy, racNextProbs, skipLlamaCpp, top2Margin, useLlama } from '../helpers/llamacpp.ts';
import { calibSet, randomSequences } from '../helpers/prune.ts';

const NEW_TOKENS = 64;
const PROB_ATOL = 1e-4;
const LOGP_ATOL = 1e-3;
const LOGP_FLOOR = 1e-6;
const TIE = 1e-4;
const THREADS = 1;

const CASES: [string, RandomCheckpointOptions][] = [
  ['qwen2 (q/k/v bias, tied output)', { family: 'qwen2', seed: 11, hidden: 128, heads: 4, kvHeads: 2, layers: 2, tied: true }],
  [
    'llama (permuted q/k, llama3 rope → rope_freqs)',
    { family: 'llama', seed: 12, hidden: 128, heads: 4, kvHeads: 2, layers: 2, llama3Rope: true },
  ],
  ['qwen3 (q/k norm, head_dim 48 ≠ 128/4)', { family: 'qwen3', seed: 13, hidden: 128, heads: 4, kvHeads: 2, layers: 2, headDim: 48 }],
  [
    'qwen3_moe → qwen3moe (8 experts, top-2 renormalized, head_dim 48, stacked expert tensors)',
    {
      family: 'qwen3_moe',
      seed: 15,
      hidden: 128,
      heads: 4,
      kvHeads: 2,
      layers: 2,
      headDim: 48,
      moe: { experts: 8, topK: 2, expertIntermediate: 96 },
    },
  ],
  [
    'mistral → llama (vocab padded with [PAD] tokens)',
    { family: 'mistral', seed: 14, hidden: 128, heads: 4, kvHeads: 1, layers: 2, vocabPad: 21 },
  ],
];

const MOE_CASE = CASES.find(([, o]) => o.family === 'qwen3_moe')![1];

/** `dir`'s checkpoint with half of each layer's experts removed by REAP on random calibration ids. */
async function expertsRemoved(dir: string): Promise<string> {
  const model = Model.open(dir);
  const out = join(tempDir('gguf-reap'), 'model');
  try {
    await pruneCheckpoint(
      model,
      calibSet(randomSequences(model.config.vocabSize, 8, 16, 40, 3)),
      out,
      {
        method: 'reap',
        target: { kind: 'unstructured', sparsity: 0 },
        linears: 'all',
        batchTokens: 4096,
        runtime: { threads: THREADS },
        removeExperts: { scoring: 'reap', experts: 0.5 },
      },
      'test',
    );
    return out;
  } finally {
    model.close();
  }
}

const PROMPTS = [
  [10, 20, 30, 40, 50, 60],
  [300, 7],
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
];

const TEXTS = [
  'The quick brown fox jumps over the lazy dog.',
  'Compute 12345 + 678 = 13023, so the answer is \\boxed{42}.',
  '<|im_start|>user\nWhat is 9 * 7?<|im_end|>\n<|im_start|>assistant\n<think>\nStep 1.\n</think>\n63',
  '  def add(a, b):\n\treturn a + b  \n',
];

describe('GGUF export vs llama.cpp (node-llama-cpp)', { skip: skipLlamaCpp }, () => {
  const { llama, stats } = useLlama('gguf oracle');

  const cases: [string, () => string | Promise<string>][] = CASES.map(([label, o]) => [label, () => checkpoint(o)]);
  // Expert removal's output is an ordinary qwen3_moe checkpoint: llama.cpp runs it as rac does.
  cases.push(['qwen3_moe with half its experts removed (REAP): 4 of 8 left', () => expertsRemoved(checkpoint(MOE_CASE))]);
  const tiny = join(process.cwd(), 'models', 'tiny-reasoner');
  if (existsSync(join(tiny, 'config.json'))) cases.push(['tiny reasoner (models/tiny-reasoner)', () => tiny]);
  else it('tiny reasoner (models/tiny-reasoner)', { skip: `${tiny} does not exist yet` }, () => {});
  // The shipped MoE reasoner, whole and with half its experts removed (issue 29's 50% GGUF).
  const tinyMoe = join(process.cwd(), 'models', 'tiny-moe-reasoner');
  if (existsSync(join(tinyMoe, 'config.json'))) {
    cases.push(['tiny MoE reasoner (models/tiny-moe-reasoner)', () => tinyMoe]);
    const m = Model.open(tinyMoe);
    const E = m.config.moe!.numExperts;
    m.close();
    cases.push([`tiny MoE reasoner with half its experts removed (REAP): ${E / 2} of ${E} left`, () => expertsRemoved(tinyMoe)]);
  } else it('tiny MoE reasoner (models/tiny-moe-reasoner)', { skip: `${tinyMoe} does not exist yet` }, () => {});

  for (const [label, dirOf] of cases) {
    it(`${label}: identical greedy continuations, probabilities within ${PROB_ATOL}`, async () => {
      const timing = { export: 0, load: 0, racGen: 0, llamaGen: 0, racForward: 0, llamaProbs: 0 };
      let t1 = performance.now();
      const lap = (k: keyof typeof timing) => {
        const now = performance.now();
        timing[k] += now - t1;
        t1 = now;
      };
      const dir = await dirOf();
      const gguf = join(tempDir('gguf'), 'model.gguf');
      exportGguf({ model: dir, out: gguf, dtype: 'f32', warn: () => {} });
      lap('export');

      const model = Model.open(dir);
      const engine = await Engine.load(model, { threads: THREADS });
      const { lm, ctx } = await loadGguf(llama(), gguf, 256, THREADS);
      lap('load');
      try {
        const V = model.config.vocabSize;
        // The vocabulary metadata: llama.cpp tokenizes text as rac's tokenizer does.
        const tok = await RacTokenizer.load(dir);
        for (const text of TEXTS) {
          assert.deepEqual(
            lm.tokenize(text, true),
            tok.encode(text, { addSpecialTokens: false }),
            `tokenization of ${JSON.stringify(text)}`,
          );
        }
        if (tok.eosTokenId !== undefined) assert.equal(lm.tokens.eos, tok.eosTokenId);
        // Fixed id prompts (folded into the vocabulary), plus a chat-templated question.
        const prompts = PROMPTS.map((p) => p.map((t) => t % V));
        if (tok.chatTemplate !== undefined) {
          const chat = tok.applyChatTemplate([{ role: 'user', content: 'What is 12 + 30? Think step by step.' }], {
            addGenerationPrompt: true,
          });
          prompts.push(tok.encode(chat, { addSpecialTokens: false }));
        }
        const seq = ctx.getSequence();
        const racOut = await racGreedy(engine, prompts, NEW_TOKENS);
        lap('racGen');
        let worst = 0;
        let worstLog = 0;
        let compared = 0;
        let ties = 0;
        for (let pi = 0; pi < prompts.length; pi++) {
          const prompt = prompts[pi]!;
          const ours = racOut[pi]!;
          assert.equal(ours.length, NEW_TOKENS);

          // llama.cpp greedy (temperature 0 = argmax), EOG tokens included and not stopping.
          lap('load');
          const theirs = await llamaGreedy(seq, prompt, NEW_TOKENS);

          lap('llamaGen');
          // rac's distributions along prompt + its continuation (teacher forced).
          const full = [...prompt, ...ours];
          const [logits] = await engine.forward([full]);
          lap('racForward');
          const racP = racNextProbs(logits!, prompt.length, V); // before continuation token k

          const split = ours.findIndex((t, k) => t !== theirs[k]);
          if (split >= 0) {
            const margin = top2Margin(racP(split));
            assert.ok(
              margin < TIE,
              `prompt ${pi}: continuations part at step ${split} (rac ${ours[split]}, llama.cpp ${theirs[split]}) where rac's top-2 margin is ${margin.toExponential(2)} ≥ ${TIE}\n rac:       ${ours.join(',')}\n llama.cpp: ${theirs.join(',')}`,
            );
            ties++;
          }
          assert.equal(theirs.length, NEW_TOKENS, `prompt ${pi}: llama.cpp stopped after ${theirs.length} tokens`);

          // llama.cpp probabilities at every 8th continuation step, teacher-forced on rac's tokens.
          const upto = split >= 0 ? split : NEW_TOKENS - 1;
          const steps = [0, ...Array.from({ length: 8 }, (_, j) => 8 * j + 7)].filter((k) => k <= upto);
          const res = await llamaNextProbs(seq, full, prompt.length, upto, steps, V);
          lap('llamaProbs');
          for (const k of steps) {
            const probs = res.get(k);
            assert.ok(probs, `prompt ${pi}: no probabilities from llama.cpp at step ${k}`);
            const ref = racP(k);
            let d = 0;
            let dl = 0;
            let mass = 0;
            for (let v = 0; v < V; v++) {
              const q = probs[v]!;
              mass += q;
              d = Math.max(d, Math.abs(q - ref[v]!));
              if (ref[v]! > LOGP_FLOOR) dl = Math.max(dl, Math.abs(Math.log(Math.max(q, 1e-300)) - Math.log(ref[v]!)));
            }
            assert.ok(Math.abs(mass - 1) < 1e-3, `prompt ${pi} step ${k}: llama.cpp probabilities sum to ${mass}`);
            assert.ok(d < PROB_ATOL, `prompt ${pi} step ${k}: max |Δp| = ${d.toExponential(2)} ≥ ${PROB_ATOL}`);
            assert.ok(
              dl < LOGP_ATOL,
              `prompt ${pi} step ${k}: max |Δ ln p| = ${dl.toExponential(2)} ≥ ${LOGP_ATOL} (tokens with p > ${LOGP_FLOOR})`,
            );
            worst = Math.max(worst, d);
            worstLog = Math.max(worstLog, dl);
            compared++;
          }
        }
        stats.push(
          `${label}: ${compared} distributions, max |Δp| ${worst.toExponential(2)}, max |Δ ln p| ${worstLog.toExponential(2)}, near-tie splits ${ties}/${prompts.length}; ms ${JSON.stringify(Object.fromEntries(Object.entries(timing).map(([k, v]) => [k, Math.round(v)])))}`,
        );
      } finally {
        await ctx.dispose();
        await lm.dispose();
        await engine.release();
        model.close();
      }
    });
  }
});
