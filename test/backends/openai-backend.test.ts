/**
 * OpenAIBackend over real HTTP on loopback: against `rac serve` it reproduces LocalBackend; against
 * a scripted fake server (500s, 429 + Retry-After, stalls, dropped connections, strict servers)
 * every request's result is delivered exactly once.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import type { BackendCompletion, BackendRequest, SamplingSettings } from '../../src/backends/backend.ts';
import { openBackend } from '../../src/backends/index.ts';
import { LocalBackend } from '../../src/backends/local.ts';
import { OpenAIBackend, requestSeed } from '../../src/backends/openai.ts';
import { startServer, type RunningServer } from '../../src/serve/server.ts';
import { checkpoint } from '../helpers/checkpoints.ts';

const settings = (o: Partial<SamplingSettings> = {}): SamplingSettings => ({
  temperature: 0,
  topP: 1,
  topK: 0,
  maxNewTokens: 8,
  seed: 11,
  ...o,
});

async function collect(backend: { generate: LocalBackend['generate'] }, reqs: BackendRequest[], s: SamplingSettings) {
  const got = new Map<number, BackendCompletion[]>();
  const calls: number[] = [];
  await backend.generate(reqs, s, {
    onResult: (r, cs) => {
      calls.push(r.index);
      got.set(r.index, cs);
    },
  });
  return { got, calls };
}

describe('OpenAIBackend against rac serve', { timeout: 60_000 }, () => {
  let dir: string;
  let server: RunningServer;
  let local: LocalBackend;
  let tok: RacTokenizer;
  before(async () => {
    dir = checkpoint({ family: 'qwen2', seed: 7 });
    server = await startServer({ model: dir, port: 0, runtime: { threads: 1 }, maxBatch: 8 });
    local = await LocalBackend.open(dir, { runtime: { threads: 1 } });
    tok = local.lm.tokenizer;
  });
  after(async () => {
    await local?.close();
    await server?.close();
  });

  const requests = (): BackendRequest[] =>
    ['Compute 12 + 5 =', 'The quick brown fox', 'def add(a, b):', 'Hello there'].map((t, i) => {
      const text = tok.applyChatTemplate([{ role: 'user', content: t }], { addGenerationPrompt: true });
      return { index: 3 + i * 2, prompt: tok.encode(text, { addSpecialTokens: false }), promptText: text, n: 2 };
    });

  it('reproduces the local greedy results exactly (ids, text, finish reasons), n = 2', async () => {
    const backend = await openBackend({ backend: 'openai', baseUrl: server.url, concurrency: 3 });
    try {
      assert.equal(backend.name, 'openai');
      assert.equal(backend.fingerprint, `openai:${server.url}/v1:${server.modelName}`);
      const s = settings({ maxNewTokens: 12 });
      const want = await collect(local, requests(), s);
      const got = await collect(backend, requests(), s);
      assert.equal(got.calls.length, 4);
      assert.deepEqual(
        [...got.calls].sort((a, b) => a - b),
        [3, 5, 7, 9],
      );
      for (const r of requests()) assert.deepEqual(got.got.get(r.index), want.got.get(r.index), `request ${r.index}`);
      const reasons = new Set([...got.got.values()].flat().map((c) => c.finishReason));
      assert.ok(reasons.size >= 1);
    } finally {
      await backend.close();
    }
  });

  it('reproduces local seeded sampling too (rac serve takes the PRNG stream)', async () => {
    const backend = await OpenAIBackend.open({ baseUrl: `${server.url}/v1/` });
    try {
      assert.equal(backend.isRac, true);
      const s = settings({ temperature: 0.9, topP: 0.95, topK: 50, maxNewTokens: 8, seed: 77, stopStrings: ['\n\n'] });
      const want = await collect(local, requests(), s);
      const got = await collect(backend, requests(), s);
      for (const r of requests()) assert.deepEqual(got.got.get(r.index), want.got.get(r.index), `request ${r.index}`);
    } finally {
      await backend.close();
    }
  });

  it('sends text prompts when told to (--prompt-format text) and still gets exact ids', async () => {
    const backend = await OpenAIBackend.open({ baseUrl: server.url, promptFormat: 'text', tokenizer: dir });
    try {
      assert.equal(backend.promptFormat, 'text');
      assert.equal(backend.idSource, 'token_ids');
      assert.match(backend.fingerprint, /;prompt=text$/);
      const s = settings({ maxNewTokens: 6 });
      const reqs = requests().slice(0, 2);
      const want = await collect(local, reqs, s);
      const got = await collect(backend, reqs, s);
      for (const r of reqs) assert.deepEqual(got.got.get(r.index), want.got.get(r.index));
    } finally {
      await backend.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A scripted fake server.

type Fault = '500' | '429' | 'stall' | 'drop' | '400' | 'always500' | 'badjson';

interface FakeOptions {
  /** Refuse token-id prompts with 400. */
  textOnly?: boolean;
  /** Refuse unknown fields (return_token_ids, return_tokens_as_token_ids, top_k) with 400. */
  strict?: boolean;
  /** Support logprobs with return_tokens_as_token_ids (else logprobs are refused when strict). */
  logprobs?: boolean;
  /** Faults by request key (the prompt, as JSON), applied to the first attempt (always500: every). */
  faults?: Map<string, Fault>;
  apiKey?: string;
  /** What completions say (default: ids = prompt ids + 1). */
  textFor?: (prompt: unknown) => string;
}

interface Fake {
  url: string;
  /** Completion bodies received (probes included). */
  bodies: Record<string, unknown>[];
  attempts: Map<string, number>;
  close(): Promise<void>;
}

async function fakeServer(o: FakeOptions): Promise<Fake> {
  const bodies: Record<string, unknown>[] = [];
  const attempts = new Map<string, number>();
  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      if (o.apiKey && req.headers.authorization !== `Bearer ${o.apiKey}`) return send(res, 401, { error: { message: 'bad key' } });
      if (req.url === '/v1/models')
        return send(res, 200, { object: 'list', data: [{ id: 'fake-model', object: 'model', owned_by: 'someone' }] });
      if (req.url !== '/v1/completions' || req.method !== 'POST') return send(res, 404, { error: { message: 'no' } });
      const b = JSON.parse(Buffer.concat(parts).toString()) as Record<string, unknown>;
      bodies.push(b);
      const isIds = Array.isArray(b.prompt);
      if (o.textOnly && isIds) return send(res, 400, { error: { message: 'prompt must be a string' } });
      if (o.strict) {
        for (const k of Object.keys(b)) {
          if (
            ![
              'model',
              'prompt',
              'n',
              'max_tokens',
              'temperature',
              'top_p',
              'seed',
              'stop',
              ...(o.logprobs ? ['logprobs', 'return_tokens_as_token_ids'] : []),
            ].includes(k)
          ) {
            return send(res, 400, { error: { message: `unknown field ${k}` } });
          }
        }
      }
      const key = JSON.stringify(b.prompt);
      const k = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, k);
      const fault = o.faults?.get(key);
      if (fault === 'always500' || (k === 1 && fault === '500')) return send(res, 500, { error: { message: 'internal' } });
      if (k === 1 && fault === '429') return send(res, 429, { error: { message: 'slow down' } }, { 'retry-after': '1' });
      if (k === 1 && fault === 'stall') return; // never answers
      if (k === 1 && fault === 'drop') return req.socket.destroy();
      if (k === 1 && fault === 'badjson') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"choices": [');
      }
      if (fault === '400') return send(res, 400, { error: { message: 'nope, never' } });
      const n = (b.n as number | undefined) ?? 1;
      const max = b.max_tokens as number;
      const choices = Array.from({ length: n }, (_, i) => {
        let ids: number[];
        let text: string;
        if (o.textFor) {
          text = o.textFor(b.prompt);
          ids = [];
        } else {
          const p = isIds ? (b.prompt as number[]) : [...String(b.prompt)].map((ch) => ch.charCodeAt(0));
          ids = [...p.map((x) => x + 1 + i), 999].slice(0, max);
          text = ids.join(' ');
        }
        const choice: Record<string, unknown> = { index: i, text, finish_reason: ids.length < max && !o.textFor ? 'stop' : 'length' };
        if (o.textFor) choice.finish_reason = 'stop';
        if (b.return_token_ids) choice.token_ids = ids;
        else if (b.logprobs && b.return_tokens_as_token_ids) choice.logprobs = { tokens: ids.map((x) => `token_id:${x}`) };
        return choice;
      });
      // out of index order, which servers may do
      send(res, 200, { id: 'x', object: 'text_completion', model: 'fake-model', choices: choices.reverse() });
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    bodies,
    attempts,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((ok) => server.close(() => ok()));
    },
  };
}

const fakeReqs = (count: number, n = 2): BackendRequest[] =>
  Array.from({ length: count }, (_, i) => ({ index: 100 + i, prompt: [10 * (i + 1), 10 * (i + 1) + 1], promptText: `p${i}`, n }));

/** What the fake server answers for request r (ids prompt, token ids returned). */
const expected = (r: BackendRequest, max: number): BackendCompletion[] =>
  Array.from({ length: r.n }, (_, i) => {
    const ids = [...r.prompt.map((x) => x + 1 + i), 999].slice(0, max);
    return { ids, text: ids.join(' '), finishReason: ids.length < max ? 'stop' : 'length' };
  });

describe('OpenAIBackend against a misbehaving server', { timeout: 60_000 }, () => {
  it('survives 500, 429 + Retry-After, stalls, dropped connections and broken JSON: every result exactly once', async () => {
    const reqs = fakeReqs(10);
    const faults = new Map<string, Fault>();
    const kinds: Fault[] = ['500', '429', 'stall', 'drop', 'badjson', '500', 'stall'];
    kinds.forEach((f, i) => faults.set(JSON.stringify(reqs[i]!.prompt), f));
    const fake = await fakeServer({ faults });
    const logs: string[] = [];
    let backend: OpenAIBackend | undefined;
    try {
      backend = await OpenAIBackend.open({
        baseUrl: fake.url,
        concurrency: 4,
        timeoutMs: 400,
        backoffMs: 20,
        maxAttempts: 4,
        log: (l) => logs.push(l),
      });
      assert.equal(backend.fingerprint, `openai:${fake.url}/v1:fake-model`);
      assert.equal(backend.promptFormat, 'ids');
      assert.equal(backend.idSource, 'token_ids');
      const t0 = Date.now();
      const s = settings({ maxNewTokens: 3, seed: 5 });
      const progress: number[] = [];
      const calls: number[] = [];
      const got = new Map<number, BackendCompletion[]>();
      await backend.generate(reqs, s, {
        onResult: async (r, cs) => {
          calls.push(r.index);
          got.set(r.index, cs);
          await new Promise((ok) => setTimeout(ok, 2)); // deliveries never overlap
        },
        onProgress: (p) => progress.push(p.done),
      });
      assert.ok(Date.now() - t0 >= 950, 'Retry-After: 1 was honoured');
      assert.equal(calls.length, reqs.length, 'no loss, no duplicate');
      assert.deepEqual(
        [...calls].sort((a, b) => a - b),
        reqs.map((r) => r.index),
      );
      for (const r of reqs) assert.deepEqual(got.get(r.index), expected(r, 3), `request ${r.index}`);
      assert.deepEqual(
        progress,
        reqs.map((_, i) => i + 1),
      );
      for (let i = 0; i < kinds.length; i++)
        assert.ok(fake.attempts.get(JSON.stringify(reqs[i]!.prompt))! >= 2, `request ${i} (${kinds[i]}) was retried`);
      // Each request carries its own derived seed, the same on every attempt.
      for (const r of reqs) {
        const sent = fake.bodies.filter((b) => JSON.stringify(b.prompt) === JSON.stringify(r.prompt));
        assert.ok(sent.every((b) => b.seed === requestSeed(5, r.index) && b.n === 2 && b.max_tokens === 3 && b.temperature === 0));
      }
      assert.equal(new Set(reqs.map((r) => requestSeed(5, r.index))).size, reqs.length);
      assert.ok(logs.some((l) => /retrying/.test(l)));
    } finally {
      await backend?.close();
      await fake.close();
    }
  });

  it('gives up on a request after maxAttempts, delivers the others once, and rejects; a 400 is not retried', async () => {
    const reqs = fakeReqs(6);
    const faults = new Map<string, Fault>([[JSON.stringify(reqs[1]!.prompt), 'always500']]);
    const fake = await fakeServer({ faults });
    let backend: OpenAIBackend | undefined;
    try {
      backend = await OpenAIBackend.open({ baseUrl: fake.url, concurrency: 6, backoffMs: 5, maxAttempts: 3 });
      const calls: number[] = [];
      await assert.rejects(
        backend.generate(reqs, settings({ maxNewTokens: 4 }), { onResult: (r) => void calls.push(r.index) }),
        /HTTP 500.*after 3 attempts/,
      );
      assert.equal(fake.attempts.get(JSON.stringify(reqs[1]!.prompt)), 3);
      assert.deepEqual(
        [...calls].sort((a, b) => a - b),
        [100, 102, 103, 104, 105],
      );
    } finally {
      await backend?.close();
      await fake.close();
    }
    const fake2 = await fakeServer({ faults: new Map([[JSON.stringify(reqs[0]!.prompt), '400' as Fault]]) });
    let b2: OpenAIBackend | undefined;
    try {
      b2 = await OpenAIBackend.open({ baseUrl: fake2.url, concurrency: 1, backoffMs: 5, maxAttempts: 5 });
      await assert.rejects(b2.generate(reqs.slice(0, 1), settings(), { onResult: () => {} }), /HTTP 400.*nope, never/);
      assert.equal(fake2.attempts.get(JSON.stringify(reqs[0]!.prompt)), 1);
    } finally {
      await b2?.close();
      await fake2.close();
    }
  });

  it('probes a strict server: text prompts, ids from logprobs, or re-tokenized text (recorded in the fingerprint)', async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 7 });
    const tok = await RacTokenizer.load(dir);
    const reqs = fakeReqs(3, 1);

    const lp = await fakeServer({ strict: true, logprobs: true });
    let b1: OpenAIBackend | undefined;
    try {
      b1 = await OpenAIBackend.open({ baseUrl: lp.url });
      assert.equal(b1.idSource, 'logprobs');
      assert.equal(b1.promptFormat, 'ids');
      assert.equal(b1.fingerprint, `openai:${lp.url}/v1:fake-model`);
      const { got } = await collect(b1, reqs, settings({ maxNewTokens: 5 }));
      for (const r of reqs) assert.deepEqual(got.get(r.index), expected(r, 5));
      assert.ok(lp.bodies.slice(-3).every((b) => !('top_k' in b) && !('return_token_ids' in b)));
    } finally {
      await b1?.close();
      await lp.close();
    }

    const words = ['Compute 12345', 'The answer is 42.', 'Hmm, but wait'];
    const textOnly = await fakeServer({ strict: true, textOnly: true, textFor: (p) => words[Number(String(p).slice(1))] ?? 'x' });
    let b2: Awaited<ReturnType<typeof openBackend>> | undefined;
    try {
      await assert.rejects(OpenAIBackend.open({ baseUrl: textOnly.url }), /returns no completion token ids; pass the model's tokenizer/);
      b2 = await openBackend({ backend: 'openai', baseUrl: textOnly.url, model: dir });
      assert.match(b2.fingerprint, new RegExp(`^openai:${textOnly.url}/v1:fake-model;prompt=text;ids=retokenized:[0-9a-f]{12}$`));
      const { got } = await collect(b2, reqs, settings({ maxNewTokens: 20 }));
      const sent = textOnly.bodies.slice(-3);
      assert.deepEqual(
        sent.map((b) => b.prompt).sort(),
        reqs.map((r) => r.promptText),
      );
      for (const [i, r] of reqs.entries()) {
        // stopped without a stop string → stopped on eos, which the local engine keeps in ids
        assert.deepEqual(got.get(r.index), [
          { ids: [...tok.encode(words[i]!, { addSpecialTokens: false }), tok.eosTokenId!], text: words[i]!, finishReason: 'stop' },
        ]);
      }
    } finally {
      await b2?.close();
      await textOnly.close();
    }
  });

  it('sends the API key from the named environment variable and never logs it', async () => {
    const key = 'sk-test-' + 'a1b2c3d4e5';
    const fake = await fakeServer({ apiKey: key, faults: new Map([[JSON.stringify([10, 11]), '500' as Fault]]) });
    const logs: string[] = [];
    process.env.RAC_TEST_OPENAI_KEY = key;
    try {
      await assert.rejects(
        OpenAIBackend.open({ baseUrl: fake.url, apiKeyEnv: 'RAC_TEST_OPENAI_KEY_MISSING' }),
        /RAC_TEST_OPENAI_KEY_MISSING .*not set/,
      );
      await assert.rejects(OpenAIBackend.open({ baseUrl: fake.url, maxAttempts: 1 }), /HTTP 401/);
      const backend = await OpenAIBackend.open({
        baseUrl: fake.url,
        apiKeyEnv: 'RAC_TEST_OPENAI_KEY',
        backoffMs: 5,
        log: (l) => logs.push(l),
      });
      try {
        const { calls } = await collect(backend, fakeReqs(1), settings());
        assert.deepEqual(calls, [100]);
        assert.ok(logs.length >= 1);
        assert.ok(logs.every((l) => !l.includes(key)));
        assert.ok(!backend.fingerprint.includes(key));
      } finally {
        await backend.close();
      }
    } finally {
      delete process.env.RAC_TEST_OPENAI_KEY;
      await fake.close();
    }
  });
});
