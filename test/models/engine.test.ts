import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Engine } from '../../src/models/engine.ts';
import { Model } from '../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { checkpoint, maxAbsDiff } from '../helpers/checkpoints.ts';
import { itMatchesReference, SEQS } from '../helpers/engine.ts';

const ATOL = 1e-4;

const CASES: [string, RandomCheckpointOptions][] = [
  ['qwen2 (q/k/v bias, GQA 4:2, untied)', { family: 'qwen2', seed: 1 }],
  ['qwen2 tied head, bf16 weights', { family: 'qwen2', seed: 2, tied: true, dtype: 'BF16' }],
  [
    'llama (llama3 rope scaling, GQA 8:2, f16)',
    { family: 'llama', seed: 3, heads: 8, kvHeads: 2, hidden: 64, llama3Rope: true, dtype: 'F16' },
  ],
  ['qwen3 (q/k norm, head_dim ≠ hidden/heads)', { family: 'qwen3', seed: 4, heads: 4, kvHeads: 1, headDim: 24 }],
  ['mistral (sliding window 5, 3 layers, sharded)', { family: 'mistral', seed: 5, layers: 3, slidingWindow: 5, shards: 3 }],
];

describe('ORT engine vs plain TypeScript reference', () => {
  const engines: Engine[] = [];
  after(async () => {
    for (const e of engines) await e.release();
  });
  for (const [label, opts] of CASES) itMatchesReference(label, opts, ATOL, engines);

  it('prefill + incremental decode reproduce the full forward', async () => {
    const model = Model.open(checkpoint({ family: 'qwen2', seed: 1 }));
    const engine = await Engine.load(model, { threads: 1 });
    engines.push(engine);
    const V = model.config.vocabSize;
    const prompts = [SEQS[1]!, SEQS[2]!];
    const cont = [
      [8, 9, 10, 11],
      [12, 13, 14, 15],
    ];
    const { lastLogits, cache } = await engine.prefill(prompts);
    const steps: Float32Array[] = [lastLogits];
    for (let t = 0; t < 4; t++)
      steps.push(
        await engine.decode(
          cache,
          cont.map((c) => c[t]!),
        ),
      );
    for (let b = 0; b < 2; b++) {
      const full = await engine.forward([[...prompts[b]!, ...cont[b]!]]);
      for (let t = 0; t <= 4; t++) {
        const pos = prompts[b]!.length - 1 + t;
        const want = full[0]!.subarray(pos * V, (pos + 1) * V);
        const have = steps[t]!.subarray(b * V, (b + 1) * V);
        assert.ok(maxAbsDiff(have, want) <= ATOL, `seq ${b} step ${t}`);
      }
    }
  });

  it('weights as inputs, a head split over the vocabulary and the baked default give the same logits', async () => {
    const model = Model.open(checkpoint({ family: 'qwen2', seed: 1 }));
    const V = model.config.vocabSize;
    const D = model.config.hiddenSize;
    const baked = await Engine.load(model, { threads: 1 });
    engines.push(baked);
    const inputs = await Engine.load(model, { threads: 1, bakeWeights: false });
    engines.push(inputs);
    // a limit below one layer's weights and a third of the head: layers fall back to inputs, the
    // head is baked in three vocabulary chunks
    const split = await Engine.load(model, { threads: 1, bakeLimitBytes: Math.ceil((V * D * 4) / 3) + 1 });
    engines.push(split);
    const want = await inputs.forward(SEQS);
    for (const [name, e] of [
      ['baked', baked],
      ['split', split],
    ] as const) {
      const got = await e.forward(SEQS);
      for (let b = 0; b < SEQS.length; b++) assert.ok(maxAbsDiff(got[b]!, want[b]!) <= 1e-5, `${name}, sequence ${b}`);
      const a = await e.prefill([SEQS[1]!, SEQS[2]!]);
      const r = await inputs.prefill([SEQS[1]!, SEQS[2]!]);
      assert.ok(maxAbsDiff(await e.decode(a.cache, [8, 9]), await inputs.decode(r.cache, [8, 9])) <= 1e-5, `${name}, decode`);
    }
  });
});
