/** `rac serve` over real HTTP on loopback, driven by the official `openai` npm client. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { generate, type Completion, type GenerateOptions } from '../../src/models/generate.ts';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { startServer, type RunningServer } from '../../src/serve/server.ts';
import { checkpoint } from '../helpers/checkpoints.ts';

type Choice = { text: string; finish_reason: string; token_ids: number[] };

describe('rac serve (OpenAI client over loopback)', { timeout: 60_000 }, () => {
  let lm: LoadedModel;
  let server: RunningServer;
  let client: OpenAI;
  let model: string;

  /** What the engine gives for these prompt ids alone (stream k = sample k). */
  const direct = (prompt: number[], o: Partial<GenerateOptions> & { n?: number } = {}): Promise<Completion[]> =>
    generate(
      lm.engine,
      lm.tokenizer,
      Array.from({ length: o.n ?? 1 }, (_, i) => ({ prompt, stream: i })),
      { temperature: 0, topP: 1, topK: 0, seed: 0, maxNewTokens: 8, eosTokenIds: lm.eosTokenIds, ...o },
    );

  const raw = (path: string, init: RequestInit = {}) => fetch(server.url + path, { ...init, signal: AbortSignal.timeout(20_000) });

  before(async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 7 });
    lm = await loadModel(dir, { threads: 1 });
    server = await startServer({ model: dir, loaded: lm, port: 0, maxBodyBytes: 64 << 10, servedModelName: 'tiny' });
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
    model = server.modelName;
  });
  after(async () => {
    await server?.close();
    if (lm) await closeModel(lm);
  });

  it('lists the served model', async () => {
    const page = await client.models.list();
    assert.deepEqual(
      page.data.map((m) => [m.id, m.owned_by]),
      [['tiny', 'rac']],
    );
    assert.equal((await client.models.retrieve('tiny')).id, 'tiny');
  });

  it('completes a text prompt and a token-id prompt like the engine does (greedy)', async () => {
    const text = 'Compute 12 + 5 =';
    const ids = lm.tokenizer.encode(text);
    const [want] = await direct(ids, { maxNewTokens: 10 });
    const a = await client.completions.create({ model, prompt: text, max_tokens: 10, temperature: 0 });
    const ca = a.choices[0] as unknown as Choice;
    assert.equal(ca.text, want!.text);
    assert.deepEqual(ca.token_ids, want!.ids);
    assert.equal(ca.finish_reason, want!.finishReason);
    assert.equal(a.model, 'tiny');
    assert.deepEqual(a.usage, {
      prompt_tokens: ids.length,
      completion_tokens: want!.ids.length,
      total_tokens: ids.length + want!.ids.length,
    });
    const b = await client.completions.create({ model, prompt: ids, max_tokens: 10, temperature: 0 });
    assert.equal(b.choices[0]!.text, want!.text);
    assert.deepEqual((b.choices[0] as unknown as Choice).token_ids, want!.ids);
  });

  it('takes several prompts with n samples; seeded sampling is reproducible and matches the engine', async () => {
    const prompts = [
      [5, 17, 33, 2, 90],
      [200, 4, 99, 7],
    ];
    const req = { model, prompt: prompts, n: 2, max_tokens: 6, temperature: 0.9, top_p: 0.95, top_k: 40, seed: 1234 } as const;
    const r1 = await client.completions.create(req as unknown as OpenAI.CompletionCreateParamsNonStreaming);
    const r2 = await client.completions.create(req as unknown as OpenAI.CompletionCreateParamsNonStreaming);
    assert.equal(r1.choices.length, 4);
    assert.deepEqual(
      r1.choices.map((c) => c.index),
      [0, 1, 2, 3],
    );
    assert.deepEqual(r1.choices, r2.choices);
    // choice p·n + i is sample i of prompt p, PRNG stream p·n + i of the request's seed
    for (let p = 0; p < 2; p++) {
      const streams = [p * 2, p * 2 + 1];
      const want = await generate(
        lm.engine,
        lm.tokenizer,
        streams.map((stream) => ({ prompt: prompts[p]!, stream })),
        { temperature: 0.9, topP: 0.95, topK: 40, seed: 1234, maxNewTokens: 6, eosTokenIds: lm.eosTokenIds },
      );
      for (let i = 0; i < 2; i++) {
        const c = r1.choices[p * 2 + i] as unknown as Choice;
        assert.deepEqual(c.token_ids, want[i]!.ids, `prompt ${p} sample ${i}`);
        assert.equal(c.text, want[i]!.text);
      }
    }
    const other = await client.completions.create({ ...req, seed: 99 } as unknown as OpenAI.CompletionCreateParamsNonStreaming);
    assert.notDeepEqual(
      other.choices.map((c) => (c as unknown as Choice).token_ids),
      r1.choices.map((c) => (c as unknown as Choice).token_ids),
    );
  });

  it('chat: messages through the chat template; chat_template_kwargs reach the template', async () => {
    const messages = [{ role: 'user' as const, content: 'What is 4 + 5?' }];
    const text = lm.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    const ids = lm.tokenizer.encode(text, { addSpecialTokens: false });
    const [want] = await direct(ids, { maxNewTokens: 8 });
    const r = await client.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0 });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, want!.text);
    assert.equal(r.choices[0]!.finish_reason, want!.finishReason);
    assert.equal(r.usage!.prompt_tokens, ids.length);
    const noThink = await client.chat.completions.create({
      model,
      messages,
      max_tokens: 2,
      temperature: 0,
      chat_template_kwargs: { enable_thinking: false },
    } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const noThinkIds = lm.tokenizer.encode(
      lm.tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, extra: { enable_thinking: false } }),
      {
        addSpecialTokens: false,
      },
    );
    assert.ok(noThinkIds.length > ids.length);
    assert.equal(noThink.usage!.prompt_tokens, noThinkIds.length);
  });

  it('streams: the deltas add up to the non-streamed text (greedy, with and without stop strings)', async () => {
    const free = await client.completions.create({ model, prompt: 'Hello there', max_tokens: 24, temperature: 0 });
    const t = free.choices[0]!.text;
    assert.ok(t.length >= 8, `a long enough greedy text: ${JSON.stringify(t)}`);
    // A stop string from the middle of the free text (and a long one never hit, held back meanwhile).
    const mid = Math.floor(t.length / 2);
    for (const stop of [undefined, [t.slice(mid, mid + 2), 'never-ever-here']]) {
      const base = { model, prompt: 'Hello there', max_tokens: 24, temperature: 0, ...(stop ? { stop } : {}) };
      const whole = await client.completions.create(base);
      const stream = await client.completions.create({ ...base, stream: true, stream_options: { include_usage: true } });
      let text = '';
      const ids: number[] = [];
      let finish: string | null = null;
      let usage: unknown = null;
      let chunks = 0;
      for await (const ch of stream) {
        chunks++;
        if (ch.usage) usage = ch.usage;
        for (const c of ch.choices) {
          text += c.text;
          ids.push(...((c as unknown as Choice).token_ids ?? []));
          if (c.finish_reason) finish = c.finish_reason;
        }
      }
      const w = whole.choices[0] as unknown as Choice;
      assert.equal(text, w.text, `stop ${JSON.stringify(stop)}`);
      assert.deepEqual(ids, w.token_ids);
      assert.equal(finish, w.finish_reason);
      if (stop) {
        assert.equal(w.finish_reason, 'stop', 'the stop string is hit');
        assert.equal(w.text, t.slice(0, t.indexOf(stop[0]!)));
      }
      assert.deepEqual(usage, whole.usage);
      assert.ok(chunks >= 2);
    }
    const messages = [{ role: 'user' as const, content: 'Say something.' }];
    const whole = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
    const stream = await client.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0, stream: true });
    let text = '';
    let role: string | undefined;
    let finish: string | null = null;
    for await (const ch of stream) {
      for (const c of ch.choices) {
        role ??= c.delta.role;
        text += c.delta.content ?? '';
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.equal(role, 'assistant');
    assert.equal(text, whole.choices[0]!.message.content);
    assert.equal(finish, whole.choices[0]!.finish_reason);
  });

  it('answers bad requests with OpenAI-style errors and 4xx codes', async () => {
    const expectError = async (p: Promise<unknown>, status: number, param?: string) => {
      await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof OpenAI.APIError, String(e));
        assert.equal(e.status, status);
        assert.equal(e.type, 'invalid_request_error');
        if (param) assert.equal(e.param, param);
        return true;
      });
    };
    await expectError(client.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 2 }), 404, 'model');
    await expectError(client.completions.create({ model, prompt: 'x', max_tokens: 2, temperature: -1 }), 400, 'temperature');
    await expectError(
      client.completions.create({ model, prompt: 'x', max_tokens: 2, temperature: 'hot' as unknown as number }),
      400,
      'temperature',
    );
    await expectError(client.completions.create({ model, prompt: 'x', max_tokens: 0 }), 400, 'max_tokens');
    await expectError(client.completions.create({ model, prompt: [[1, 2], []] as unknown as number[][], max_tokens: 2 }), 400, 'prompt');
    await expectError(client.completions.create({ model, prompt: [1, 1e9], max_tokens: 2 }), 400, 'prompt');
    await expectError(client.completions.create({ model, prompt: 'x', max_tokens: 5000 }), 400, 'max_tokens');
    await expectError(client.chat.completions.create({ model, messages: [], max_tokens: 2 }), 400, 'messages');

    const check = async (res: Response, status: number, code?: string) => {
      assert.equal(res.status, status);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const body = (await res.json()) as { error: { message: string; type: string; param: unknown; code: unknown } };
      assert.equal(typeof body.error.message, 'string');
      assert.equal(body.error.type, 'invalid_request_error');
      assert.ok('param' in body.error && 'code' in body.error);
      if (code) assert.equal(body.error.code, code);
      return res;
    };
    await check(
      await raw('/v1/completions', { method: 'POST', body: '{"prompt": "x",', headers: { 'content-type': 'application/json' } }),
      400,
      'invalid_json',
    );
    await check(await raw('/v1/completions', { method: 'POST', body: '[1, 2]' }), 400);
    const r405 = await check(await raw('/v1/completions'), 405, 'method_not_allowed');
    assert.equal(r405.headers.get('allow'), 'POST');
    await check(await raw('/v1/models', { method: 'DELETE' }), 405);
    await check(await raw('/v1/nothing-here'), 404, 'not_found');
    await check(await raw('/v1/models/other'), 404, 'model_not_found');
    await check(
      await raw('/v1/completions', { method: 'POST', body: JSON.stringify({ prompt: 'x'.repeat(100_000) }) }),
      413,
      'request_too_large',
    );
    // still serving after all that
    const ok = await client.completions.create({ model, prompt: 'x', max_tokens: 2, temperature: 0 });
    assert.equal(ok.choices.length, 1);
  });

  it('decodes concurrent requests together, each getting what it gets alone', async () => {
    const a = { model, prompt: 'Let x = 3 and', max_tokens: 10, temperature: 0 };
    const b = {
      model,
      prompt: [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18],
      max_tokens: 7,
      temperature: 0.8,
      top_k: 20,
      seed: 5,
      stop: ['a'],
    };
    const [ra, rb] = await Promise.all([
      client.completions.create(a),
      client.completions.create(b as unknown as OpenAI.CompletionCreateParamsNonStreaming),
    ]);
    const sa = await client.completions.create(a);
    const sb = await client.completions.create(b as unknown as OpenAI.CompletionCreateParamsNonStreaming);
    assert.deepEqual(ra.choices, sa.choices);
    assert.deepEqual(rb.choices, sb.choices);
  });
});
