/**
 * Continuous batching in `rac serve`: the slot KV cache against the engine's own decode, and over
 * loopback sequences joining and leaving the running batch at every step — a request joined
 * mid-batch gets exactly the greedy tokens it gets alone (the shipped tiny-reasoner), the caps on
 * running sequences and on KV tokens (with preemption), a disconnect freeing a row, and streams
 * flushed per step. Every wait is on a condition; every server is closed in finally.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generate } from '../../src/models/generate.ts';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { continuousStats, startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.ts';
import { checkpoint, maxAbsDiff } from '../helpers/checkpoints.ts';

const TINY_REASONER = join(fileURLToPath(new URL('../..', import.meta.url)), 'models', 'tiny-reasoner');

async function waitFor(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** A streaming completion read chunk by chunk: token ids as they arrive, and when it ended. */
function streamCompletion(s: RunningServer, body: Record<string, unknown>, signal?: AbortSignal) {
  const st = { ids: [] as number[], chunks: 0, done: false, firstAt: 0, endAt: 0, error: null as unknown };
  const finished = (async () => {
    const res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      body: JSON.stringify({ ...body, stream: true }),
      ...(signal ? { signal } : {}),
    });
    assert.equal(res.status, 200);
    const dec = new TextDecoder();
    let buf = '';
    for await (const part of res.body!) {
      buf += dec.decode(part as Uint8Array, { stream: true });
      let i: number;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const ev = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (ev === 'data: [DONE]') {
          st.done = true;
          st.endAt = performance.now();
          continue;
        }
        const j = JSON.parse(ev.slice('data: '.length)) as { choices: { token_ids: number[] }[] };
        for (const c of j.choices) {
          if (c.token_ids.length > 0 && st.chunks === 0) st.firstAt = performance.now();
          st.ids.push(...c.token_ids);
        }
        st.chunks++;
      }
    }
  })().catch((e) => {
    st.error = e;
  });
  return { st, finished };
}

const post = async (s: RunningServer, body: unknown) => {
  const r = await fetch(`${s.url}/v1/completions`, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(60_000) });
  return {
    status: r.status,
    body: (await r.json()) as { choices: { token_ids: number[]; finish_reason: string }[]; error?: { code: string; message: string } },
  };
};

describe('continuous batching', { timeout: 180_000 }, () => {
  let lm: LoadedModel;
  let tiny: LoadedModel;
  before(async () => {
    lm = await loadModel(checkpoint({ family: 'qwen2', seed: 7 }), { threads: 1 });
    tiny = await loadModel(TINY_REASONER, { threads: 1 });
  });
  after(async () => {
    if (lm) await closeModel(lm);
    if (tiny) await closeModel(tiny);
  });

  async function withServer(
    opts: Partial<ServeOptions> & { loaded: LoadedModel },
    body: (s: RunningServer) => Promise<void>,
  ): Promise<void> {
    const server = await startServer({ model: opts.loaded.model.dir, port: 0, ...opts });
    try {
      await body(server);
    } finally {
      await server.close();
    }
  }

  it('the slot cache decodes as the engine does alone, through joins and leaves (float tolerance)', async () => {
    const e = lm.engine;
    const prompts = [
      [5, 17, 33, 2, 90, 41, 7],
      [200, 4, 99],
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
    ];
    // Alone: each prompt prefilled and decoded by itself with the left-padded KvCache.
    const steps = 6;
    const feed = (p: number, t: number) => (p * 37 + t * 11 + 3) % 300;
    const alone: Float32Array[][] = [];
    for (let p = 0; p < prompts.length; p++) {
      const { cache } = await e.prefill([prompts[p]!]);
      const out: Float32Array[] = [];
      for (let t = 0; t < steps; t++) out.push(await e.decode(cache, [feed(p, t)]));
      alone.push(out);
    }
    // Slots: prompt 0 and 1 start together; 1 leaves after 2 steps, 2 joins at step 3.
    const slots = e.slotCache();
    slots.resize(2, 64);
    for (const p of [0, 1]) {
      const { cache } = await e.prefill([prompts[p]!], 1);
      slots.append(cache, 0, prompts[p]!.length);
    }
    const rows = [0, 1];
    const t = [0, 0];
    let worst = 0;
    for (let step = 0; step < steps + 3; step++) {
      if (step === 2) {
        const moved = slots.remove(0); // prompt 0 leaves after 2 tokens: prompt 1's row moves up
        assert.equal(moved, 1);
        rows.splice(0, 1);
        t.splice(0, 1);
      }
      if (step === 3) {
        const { cache } = await e.prefill([prompts[2]!], 1);
        slots.append(cache, 0, prompts[2]!.length);
        rows.push(2);
        t.push(0);
      }
      if (rows.length === 0 || t.every((x) => x >= steps)) break;
      const logits = await e.decodeSlots(
        slots,
        rows.map((p, i) => feed(p, t[i]!)),
      );
      const V = e.config.vocabSize;
      rows.forEach((p, i) => {
        if (t[i]! < steps) worst = Math.max(worst, maxAbsDiff(logits.subarray(i * V, (i + 1) * V), alone[p]![t[i]!]!));
        t[i]!++;
      });
    }
    assert.ok(worst < 1e-4, `max |Δ logit| ${worst}`);
    // Prompt 1 decoded at every one of the 9 steps; prompt 2 at the 6 from its join.
    assert.deepEqual(slots.lens, [prompts[1]!.length + 9, prompts[2]!.length + 6]);
  });

  it('a greedy request joined mid-batch gets the tokens it gets alone, and leaves before the long one ends (tiny-reasoner)', async () => {
    const loaded = { ...tiny, eosTokenIds: [] };
    // What the offline generator gives alone (before the server runs anything).
    const prompt = 'What is 12 + 30?';
    const [want] = await generate(tiny.engine, tiny.tokenizer, [{ prompt: tiny.tokenizer.encode(prompt), stream: 0 }], {
      temperature: 0,
      topP: 1,
      topK: 0,
      seed: 0,
      maxNewTokens: 40,
      eosTokenIds: [],
    });
    await withServer({ loaded }, async (s) => {
      const long = streamCompletion(s, { prompt: 'Compute 7 * 8 + 3. ', max_tokens: 400, temperature: 0 });
      try {
        await waitFor('the long request to be decoding', () => long.st.ids.length >= 3);
        const r = await post(s, { prompt, max_tokens: 40, temperature: 0 });
        assert.equal(r.status, 200);
        assert.deepEqual(r.body.choices[0]!.token_ids, want!.ids);
        assert.equal(long.st.done, false, 'the joined request left while the long one kept decoding');
        assert.ok(continuousStats(s.stats).peakRunning >= 2);
        await long.finished;
        assert.equal(long.st.error, null);
        assert.equal(long.st.ids.length, 400);
        // The long one, too, is what it is alone.
        const [wantLong] = await generate(
          tiny.engine,
          tiny.tokenizer,
          [{ prompt: tiny.tokenizer.encode('Compute 7 * 8 + 3. '), stream: 0 }],
          {
            temperature: 0,
            topP: 1,
            topK: 0,
            seed: 0,
            maxNewTokens: 400,
            eosTokenIds: [],
          },
        );
        assert.deepEqual(long.st.ids, wantLong!.ids);
      } finally {
        await long.finished;
      }
    });
  });

  it('--max-running: a request beyond the cap waits and is admitted when a sequence leaves', async () => {
    await withServer({ loaded: { ...lm, eosTokenIds: [] }, maxRunning: 1 }, async (s) => {
      const a = streamCompletion(s, { prompt: [5, 6, 7], max_tokens: 60, temperature: 0 });
      try {
        await waitFor('A to be decoding', () => a.st.ids.length >= 1);
        const b = streamCompletion(s, { prompt: [8, 9], max_tokens: 5, temperature: 0 });
        await waitFor('B to wait', () => continuousStats(s.stats).waiting === 1);
        assert.equal(continuousStats(s.stats).running, 1);
        await Promise.all([a.finished, b.finished]);
        assert.equal(a.st.error, null);
        assert.equal(b.st.error, null);
        assert.equal(a.st.ids.length, 60);
        assert.equal(b.st.ids.length, 5);
        // B waited while A ran, never ran beside it, and was admitted once A left.
        const st = continuousStats(s.stats);
        assert.equal(st.peakRunning, 1);
        assert.equal(st.admitted, 2);
        assert.equal(st.waiting, 0);
      } finally {
        await a.finished;
      }
    });
  });

  it('--max-kv-tokens: the cache stays within the cap, the newest sequence is preempted and recomputed, outputs unchanged (tiny-reasoner)', async () => {
    const loaded = { ...tiny, eosTokenIds: [] };
    const prompts = ['What is 2 + 2?', 'Compute 9 - 4.', 'Is 7 prime?'].map((p) => tiny.tokenizer.encode(p));
    const want = await generate(
      tiny.engine,
      tiny.tokenizer,
      prompts.map((prompt) => ({ prompt, stream: 0 })),
      { temperature: 0, topP: 1, topK: 0, seed: 0, maxNewTokens: 30, eosTokenIds: [], batchSize: 1 },
    );
    const longest = Math.max(...prompts.map((p) => p.length));
    const cap = 2 * (longest + 30) - 10; // two fit at first, not at their full length
    await withServer({ loaded, maxKvTokens: cap }, async (s) => {
      const got = await Promise.all(prompts.map((prompt) => post(s, { prompt, max_tokens: 30, temperature: 0 })));
      got.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.deepEqual(r.body.choices[0]!.token_ids, want[i]!.ids, `prompt ${i}`);
      });
      const st = continuousStats(s.stats);
      assert.ok(st.peakKvTokens <= cap, `peak ${st.peakKvTokens} > cap ${cap}`);
      assert.ok(st.preempted >= 1, 'a sequence was preempted');
      assert.ok(st.peakRunning >= 2);
      // A request that cannot fit alone is refused up front.
      const big = await post(s, { prompt: prompts[0], max_tokens: cap, temperature: 0 });
      assert.equal(big.status, 400);
      assert.equal(big.body.error!.code, 'request_too_large');
      assert.match(big.body.error!.message, /--max-kv-tokens/);
    });
  });

  it('a client that disconnects frees its row for the next request', async () => {
    await withServer({ loaded: { ...lm, eosTokenIds: [] }, maxRunning: 1 }, async (s) => {
      const ac = new AbortController();
      const a = streamCompletion(s, { prompt: [5, 6, 7], max_tokens: 3000, temperature: 0 }, ac.signal);
      try {
        await waitFor('A to be decoding', () => a.st.ids.length >= 1);
        const b = post(s, { prompt: [8, 9], max_tokens: 4, temperature: 0 });
        await waitFor('B to wait', () => continuousStats(s.stats).waiting === 1);
        ac.abort();
        const rb = await b;
        assert.equal(rb.status, 200);
        assert.equal(rb.body.choices[0]!.token_ids.length, 4);
        assert.ok(a.st.ids.length < 3000, 'A was cut short');
        await waitFor('the batch to empty', () => continuousStats(s.stats).running === 0);
        assert.equal(continuousStats(s.stats).admitted, 2);
      } finally {
        ac.abort();
        await a.finished;
      }
    });
  });

  it('--scheduler window still serves (kept to measure against): concurrent requests each get what they get alone', async () => {
    await withServer({ loaded: lm, scheduler: 'window', batchWindowMs: 50 }, async (s) => {
      const a = { prompt: [5, 6, 7, 8], max_tokens: 9, temperature: 0 };
      const b = { prompt: [9, 10], max_tokens: 5, temperature: 0.7, seed: 3 };
      const [ra, rb] = await Promise.all([post(s, a), post(s, b)]);
      const [sa, sb] = [await post(s, a), await post(s, b)];
      assert.deepEqual(ra.body.choices, sa.body.choices);
      assert.deepEqual(rb.body.choices, sb.body.choices);
      const st = s.stats;
      assert.equal(st.scheduler, 'window');
      assert.ok(st.scheduler === 'window' && st.batches >= 3);
      assert.throws(() => continuousStats(st), /window scheduler/);
    });
  });

  it('streams are flushed per step: the first tokens arrive while the sequence is still decoding', async () => {
    await withServer({ loaded: { ...lm, eosTokenIds: [] } }, async (s) => {
      const ac = new AbortController();
      const a = streamCompletion(s, { prompt: [5, 6, 7], max_tokens: 3000, temperature: 0 }, ac.signal);
      try {
        await waitFor('a first token chunk', () => a.st.ids.length >= 1);
        const st = continuousStats(s.stats);
        assert.equal(st.running, 1, 'still decoding');
        assert.ok(st.steps < 2999, `the first chunk came after ${st.steps} steps`);
        // One chunk per step: tokens keep arriving one at a time.
        await waitFor('more chunks', () => a.st.chunks >= 5);
        assert.equal(a.st.done, false);
      } finally {
        ac.abort();
        await a.finished;
      }
    });
  });
});
