/**
 * The generate() extensions `rac serve` batches with: per-request sampling overrides, onToken
 * deltas, and per-request abort signals.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generate, type GenerateOptions, type GenerationRequest } from '../../src/models/generate.ts';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { checkpoint } from '../helpers/checkpoints.ts';

describe('generate: per-request settings, onToken, abort', { timeout: 60_000 }, () => {
  let lm: LoadedModel;
  before(async () => {
    lm = await loadModel(checkpoint({ family: 'qwen2', seed: 7 }), { threads: 1 });
  });
  after(async () => {
    if (lm) await closeModel(lm);
  });
  const base = (o: Partial<GenerateOptions> = {}): GenerateOptions => ({
    temperature: 0,
    topP: 1,
    topK: 0,
    seed: 0,
    maxNewTokens: 8,
    eosTokenIds: [],
    ...o,
  });
  const P = [
    [5, 17, 33, 2, 90, 41, 7],
    [200, 4, 99],
    [1, 2, 3, 4, 5],
  ];

  it('requests with different settings in one batch each get what they get alone', async () => {
    const reqs: GenerationRequest[] = [
      { prompt: P[0]!, stream: 0 },
      { prompt: P[1]!, stream: 4, sampling: { temperature: 0.8, topK: 30, seed: 9, maxNewTokens: 5 } },
      { prompt: P[2]!, stream: 1, sampling: { temperature: 1.1, topP: 0.9, seed: 3, maxNewTokens: 11 } },
    ];
    const together = await generate(lm.engine, lm.tokenizer, reqs, base());
    const alone = [
      (await generate(lm.engine, lm.tokenizer, [{ prompt: P[0]!, stream: 0 }], base()))[0],
      (
        await generate(
          lm.engine,
          lm.tokenizer,
          [{ prompt: P[1]!, stream: 4 }],
          base({ temperature: 0.8, topK: 30, seed: 9, maxNewTokens: 5 }),
        )
      )[0],
      (
        await generate(
          lm.engine,
          lm.tokenizer,
          [{ prompt: P[2]!, stream: 1 }],
          base({ temperature: 1.1, topP: 0.9, seed: 3, maxNewTokens: 11 }),
        )
      )[0],
    ];
    assert.deepEqual(together, alone);
    assert.deepEqual(
      together.map((c) => c.ids.length),
      [8, 5, 11],
    );
    await assert.rejects(generate(lm.engine, lm.tokenizer, [{ prompt: P[0]!, stream: 0, sampling: { topP: 0 } }], base()), /top_p/);
  });

  it('onToken sees every id and text deltas adding up to the text', async () => {
    const ids: number[][] = [[], []];
    const text = ['', ''];
    const out = await generate(
      lm.engine,
      lm.tokenizer,
      P.slice(0, 2).map((prompt, i) => ({ prompt, stream: i })),
      base({
        temperature: 0.9,
        seed: 4,
        maxNewTokens: 12,
        onToken: (k, id, t) => {
          ids[k]!.push(id);
          text[k] += t;
        },
      }),
    );
    for (let k = 0; k < 2; k++) {
      assert.deepEqual(ids[k], out[k]!.ids);
      assert.ok(out[k]!.text.startsWith(text[k]!));
      assert.equal(out[k]!.text, lm.tokenizer.decode(out[k]!.ids));
      assert.ok(text[k]!.length >= out[k]!.text.length - 2, 'only an unfinished character may be held back');
    }
  });

  it('an aborted request leaves the batch; the others are unaffected', async () => {
    const ac = new AbortController();
    let steps = 0;
    const out = await generate(
      lm.engine,
      lm.tokenizer,
      [
        { prompt: P[0]!, stream: 0, signal: ac.signal },
        { prompt: P[1]!, stream: 1 },
      ],
      base({
        maxNewTokens: 10,
        onToken: (k) => {
          if (k === 0 && ++steps === 3) ac.abort();
        },
      }),
    );
    assert.equal(out[0]!.aborted, true);
    assert.equal(out[0]!.ids.length, 3);
    assert.equal(out[0]!.finishReason, 'length');
    const [alone] = await generate(lm.engine, lm.tokenizer, [{ prompt: P[1]!, stream: 1 }], base({ maxNewTokens: 10 }));
    assert.deepEqual(out[1], alone);
    const pre = AbortSignal.abort();
    const [none] = await generate(lm.engine, lm.tokenizer, [{ prompt: P[2]!, stream: 0, signal: pre }], base());
    assert.deepEqual(none, { ids: [], text: '', finishReason: 'length', aborted: true });
  });
});
