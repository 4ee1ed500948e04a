import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { Engine } from '../../src/models/engine.ts';
import { generate, type GenerateOptions, type GenerateProgress, type GenerationRequest } from '../../src/models/generate.ts';
import { Model } from '../../src/models/model.ts';
import { argmax } from '../../src/models/sampling.ts';
import { checkpoint } from '../helpers/checkpoints.ts';

/** A logit gap below this counts as a tie between the KV-cache and full-forward paths. */
const TIE_ATOL = 1e-4;

const PROMPTS = [[5, 17, 33, 2, 90, 41, 7, 250, 11], [200, 4, 99], [1, 2, 3, 4, 5], [77]];

const greedy = (maxNewTokens: number, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  temperature: 0,
  topP: 1,
  topK: 0,
  seed: 0,
  maxNewTokens,
  eosTokenIds: [],
  ...extra,
});

const sampled = (seed: number, extra: Partial<GenerateOptions> = {}): GenerateOptions => ({
  temperature: 0.8,
  topP: 0.9,
  topK: 20,
  seed,
  maxNewTokens: 10,
  eosTokenIds: [],
  ...extra,
});

const reqs = (prompts: number[][], streams = prompts.map((_, i) => i)): GenerationRequest[] =>
  prompts.map((prompt, i) => ({ prompt, stream: streams[i]! }));

describe('generate (random qwen2 checkpoint)', () => {
  let model: Model;
  let engine: Engine;
  let tokenizer: RacTokenizer;
  before(async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 7 });
    model = Model.open(dir);
    engine = await Engine.load(model, { threads: 1 });
    tokenizer = await RacTokenizer.load(dir);
  });
  after(async () => {
    await engine.release();
    model.close();
  });

  it('greedy is identical run to run and equals argmax over a full forward of the growing sequence', async () => {
    const N = 12;
    const [a] = await generate(engine, null, reqs([PROMPTS[0]!]), greedy(N));
    const [b] = await generate(engine, null, reqs([PROMPTS[0]!]), greedy(N));
    assert.deepEqual(b!.ids, a!.ids);
    assert.equal(a!.ids.length, N);
    const V = model.config.vocabSize;
    const seq = [...PROMPTS[0]!];
    for (let t = 0; t < N; t++) {
      const [logits] = await engine.forward([seq]);
      const off = (seq.length - 1) * V;
      const best = argmax(logits!, off, V);
      const tok = a!.ids[t]!;
      // Greedy must pick the full forward's argmax, up to a tie within TIE_ATOL.
      const gap = logits![off + best]! - logits![off + tok]!;
      assert.ok(gap <= TIE_ATOL, `step ${t}: generate chose ${tok}, forward argmax is ${best} (gap ${gap})`);
      seq.push(tok);
    }
    // the golden path is not degenerate: more than one distinct token
    assert.ok(new Set(a!.ids).size > 1, `ids ${a!.ids}`);
  });

  it('a batch of different prompt lengths gives each prompt its greedy tokens alone', async () => {
    const batched = await generate(engine, null, reqs(PROMPTS), greedy(8));
    const small = await generate(engine, null, reqs(PROMPTS), greedy(8, { batchSize: 3 }));
    for (let i = 0; i < PROMPTS.length; i++) {
      const [alone] = await generate(engine, null, reqs([PROMPTS[i]!]), greedy(8));
      assert.deepEqual(batched[i]!.ids, alone!.ids, `prompt ${i} (length ${PROMPTS[i]!.length}) in a batch of ${PROMPTS.length}`);
      assert.deepEqual(small[i]!.ids, alone!.ids, `prompt ${i} with batchSize 3`);
    }
  });

  it('seeded sampling is reproducible, seed-dependent, and independent of batch composition', async () => {
    const a = await generate(engine, null, reqs(PROMPTS), sampled(123));
    const again = await generate(engine, null, reqs(PROMPTS), sampled(123));
    assert.deepEqual(
      again.map((c) => c.ids),
      a.map((c) => c.ids),
      'same seed, same tokens',
    );

    const other = await generate(engine, null, reqs(PROMPTS), sampled(124));
    const differ = other.filter((c, i) => c.ids.join() !== a[i]!.ids.join()).length;
    assert.ok(differ >= 2, `only ${differ} of ${PROMPTS.length} completions changed with the seed`);

    // sampling is not greedy here (else the checks above would be vacuous)
    const g = await generate(engine, null, reqs(PROMPTS), greedy(10));
    assert.ok(
      a.some((c, i) => c.ids.join() !== g[i]!.ids.join()),
      'sampled completions equal greedy ones',
    );

    const one = await generate(engine, null, reqs(PROMPTS), sampled(123, { batchSize: 1 }));
    assert.deepEqual(
      one.map((c) => c.ids),
      a.map((c) => c.ids),
      'batchSize 1',
    );

    // request 2 alone, and requests reordered: each keeps its stream's tokens
    const [alone] = await generate(engine, null, [{ prompt: PROMPTS[2]!, stream: 2 }], sampled(123));
    assert.deepEqual(alone!.ids, a[2]!.ids, 'stream 2 alone');
    const swapped = await generate(
      engine,
      null,
      [
        { prompt: PROMPTS[3]!, stream: 3 },
        { prompt: PROMPTS[0]!, stream: 0 },
      ],
      sampled(123),
    );
    assert.deepEqual(
      swapped.map((c) => c.ids),
      [a[3]!.ids, a[0]!.ids],
      'reordered subset',
    );

    // the same prompt on two streams draws two different samples
    const twins = await generate(engine, null, reqs([PROMPTS[1]!, PROMPTS[1]!]), sampled(123));
    assert.notDeepEqual(twins[0]!.ids, twins[1]!.ids, 'two streams, same prompt');
  });

  it('maxNewTokens ends with finishReason "length" and exactly that many ids', async () => {
    for (const n of [1, 5]) {
      const out = await generate(engine, tokenizer, reqs(PROMPTS), greedy(n));
      for (const c of out) {
        assert.equal(c.finishReason, 'length');
        assert.equal(c.ids.length, n);
        assert.equal(c.text, tokenizer.decode(c.ids));
      }
    }
  });

  it('an eos id stops with "stop" at the step greedy reaches it; the id ends ids, not text', async () => {
    const [free] = await generate(engine, tokenizer, reqs([PROMPTS[1]!]), greedy(16));
    const ids = free!.ids;
    // first step ≥ 2 whose token has not appeared before
    const k = ids.findIndex((t, i) => i >= 2 && !ids.slice(0, i).includes(t));
    assert.ok(k > 0, `no fresh token in ${ids}`);
    const eos = ids[k]!;
    const [c] = await generate(engine, tokenizer, reqs([PROMPTS[1]!]), greedy(16, { eosTokenIds: [9999, eos] }));
    assert.equal(c!.finishReason, 'stop');
    assert.deepEqual(c!.ids, ids.slice(0, k + 1));
    assert.equal(c!.ids.at(-1), eos);
    assert.equal(c!.text, tokenizer.decode(ids.slice(0, k)));
    assert.equal(c!.stop, undefined);
  });

  it('a stop string cuts the text before it with finishReason "stop"', async () => {
    const [free] = await generate(engine, tokenizer, reqs([PROMPTS[0]!]), greedy(24));
    const full = free!.text;
    assert.equal(full, tokenizer.decode(free!.ids));
    // a 2-character printable-ASCII stop string whose first occurrence is at a ≥ 1
    let stop: string | undefined;
    for (let a = 1; a + 2 <= full.length && !stop; a++) {
      const s = full.slice(a, a + 2);
      if (/^[\x21-\x7e]{2}$/.test(s) && full.indexOf(s) === a) stop = s;
    }
    assert.ok(stop, `no usable stop string in ${JSON.stringify(full)}`);
    const cut = full.indexOf(stop);
    const [c] = await generate(engine, tokenizer, reqs([PROMPTS[0]!]), greedy(24, { stopStrings: ['\u0000never', stop] }));
    assert.equal(c!.finishReason, 'stop');
    assert.equal(c!.stop, stop);
    assert.equal(c!.text, full.slice(0, cut));
    // generation stopped at the token that completed the stop string
    assert.deepEqual(c!.ids, free!.ids.slice(0, c!.ids.length));
    assert.ok(tokenizer.decode(c!.ids).includes(stop), 'stop string is in the decoded ids');
    assert.ok(!tokenizer.decode(c!.ids.slice(0, -1)).includes(stop), 'stopped late');
  });

  it('onProgress reaches done === total; onComplete fires once per request', async () => {
    const seen: GenerateProgress[] = [];
    const completed: number[] = [];
    const out = await generate(engine, null, reqs(PROMPTS), {
      ...greedy(6, { batchSize: 3 }),
      onProgress: (p) => seen.push({ ...p }),
      onComplete: (i) => {
        completed.push(i);
      },
    });
    assert.ok(seen.length >= 6, `${seen.length} progress calls`);
    for (let i = 1; i < seen.length; i++) {
      assert.ok(seen[i]!.done >= seen[i - 1]!.done, 'done never decreases');
      assert.ok(seen[i]!.newTokens > seen[i - 1]!.newTokens, 'newTokens grows');
    }
    for (const p of seen) assert.equal(p.total, PROMPTS.length);
    const last = seen.at(-1)!;
    assert.equal(last.done, last.total);
    assert.equal(last.active, 0);
    assert.equal(
      last.newTokens,
      out.reduce((a, c) => a + c.ids.length, 0),
    );
    assert.deepEqual([...completed].sort(), [0, 1, 2, 3]);
  });

  it('rejects bad options', async () => {
    await assert.rejects(generate(engine, null, reqs([[1]]), greedy(0)), /max new tokens/);
    await assert.rejects(generate(engine, null, reqs([[1]]), greedy(2, { temperature: -1 })), /temperature/);
    await assert.rejects(generate(engine, null, reqs([[1]]), greedy(2, { stopStrings: ['x'] })), /tokenizer/);
    await assert.rejects(generate(engine, null, reqs([[1]]), greedy(2, { batchSize: 0 })), /batch size/);
  });
});
