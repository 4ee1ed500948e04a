/**
 * `rac serve` under hostile or careless requests, over loopback: bounded prompts and tokens per
 * request (an OpenAI-shaped 400 naming the limit, never a 500), a multi-megabyte prompt refused
 * before tokenization without holding the event loop, a huge request that cannot starve a small
 * one, and a shutdown that a half-sent body cannot hold open.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { continuousStats, startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.ts';
import { checkpoint } from '../helpers/checkpoints.ts';

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } };

describe('rac serve request limits', { timeout: 120_000 }, () => {
  let lm: LoadedModel;
  before(async () => {
    lm = await loadModel(checkpoint({ family: 'qwen2', seed: 7 }), { threads: 1 });
  });
  after(async () => {
    if (lm) await closeModel(lm);
  });

  /** Runs `body` against a fresh server, closed in finally. */
  async function withServer(opts: Partial<ServeOptions>, body: (s: RunningServer) => Promise<void>): Promise<void> {
    const server = await startServer({ model: lm.model.dir, loaded: lm, port: 0, ...opts });
    try {
      await body(server);
    } finally {
      await server.close();
    }
  }

  const post = (s: RunningServer, path: string, body: unknown) =>
    fetch(s.url + path, {
      method: 'POST',
      body: typeof body === 'string' ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });

  async function expectError(r: Response, status: number, code: string, message: RegExp): Promise<ErrorBody['error']> {
    const text = await r.text();
    assert.equal(r.status, status, text.slice(0, 300));
    const e = (JSON.parse(text) as ErrorBody).error;
    assert.equal(e.type, 'invalid_request_error');
    assert.equal(e.code, code);
    assert.match(e.message, message);
    return e;
  }

  it('2,000,000 prompts: a 400 naming the 64-prompt limit, not a 500 (stack overflow)', async () => {
    await withServer({ maxBodyBytes: 32 << 20 }, async (s) => {
      const body = `{"prompt":[${Array.from({ length: 2_000_000 }, () => '[1]').join(',')}],"max_tokens":1}`;
      const t0 = performance.now();
      await expectError(
        await post(s, '/v1/completions', body),
        400,
        'too_many_prompts',
        /'prompt' has 2000000 prompts; at most 64 per request/,
      );
      assert.ok(performance.now() - t0 < 10_000);
      // 65 strings too; 64 are served.
      await expectError(
        await post(s, '/v1/completions', { prompt: Array.from({ length: 65 }, () => 'Hi'), max_tokens: 1 }),
        400,
        'too_many_prompts',
        /at most 64/,
      );
      const ok = await post(s, '/v1/completions', { prompt: Array.from({ length: 64 }, () => [1, 2]), max_tokens: 1, temperature: 0 });
      assert.equal(ok.status, 200);
      assert.equal(((await ok.json()) as { choices: unknown[] }).choices.length, 64);
    });
    // The limit is settable.
    await withServer({ maxPromptsPerRequest: 2 }, async (s) => {
      await expectError(
        await post(s, '/v1/completions', { prompt: [[1], [2], [3]], max_tokens: 1 }),
        400,
        'too_many_prompts',
        /'prompt' has 3 prompts; at most 2 per request/,
      );
    });
  });

  it('tokens per request: prompts × n × (prompt + max_tokens) over the limit is a 400 naming it', async () => {
    await withServer({ maxRequestTokens: 100 }, async (s) => {
      const prompt = Array.from({ length: 10 }, (_, i) => i + 1);
      const e = await expectError(
        await post(s, '/v1/completions', { prompt, n: 2, max_tokens: 50 }),
        400,
        'request_too_large',
        /the request asks for 120 tokens \(1 prompt\(s\) × n=2, prompt tokens \+ max_tokens each\); at most 100 tokens per request/,
      );
      assert.equal(e.param, 'prompt');
      const ok = await post(s, '/v1/completions', { prompt, n: 1, max_tokens: 50, temperature: 0 });
      assert.equal(ok.status, 200, await ok.clone().text());
    });
    // Default: 128 × the context (4096 here).
    await withServer({}, async (s) => {
      const r = await post(s, '/v1/completions', { prompt: Array.from({ length: 64 }, () => [1]), n: 9, max_tokens: 1000 });
      await expectError(r, 400, 'request_too_large', new RegExp(`at most ${128 * 4096} tokens per request`));
    });
  });

  it('a 7 MB prompt is refused before tokenization: the 400 comes at once and /health stays responsive', async () => {
    await withServer({}, async (s) => {
      const huge = 'abc '.repeat(1_750_000);
      let worstHealthMs = 0;
      let done = false;
      const health = (async () => {
        while (!done) {
          const t = performance.now();
          const r = await fetch(`${s.url}/health`, { signal: AbortSignal.timeout(30_000) });
          assert.equal(r.status, 200);
          worstHealthMs = Math.max(worstHealthMs, performance.now() - t);
        }
      })();
      try {
        const t0 = performance.now();
        await expectError(
          await post(s, '/v1/completions', { prompt: huge, max_tokens: 1 }),
          400,
          'prompt_too_long',
          /'prompt' has 7000000 characters; prompts over 65536 characters are refused before tokenization/,
        );
        await expectError(
          await post(s, '/v1/chat/completions', { messages: [{ role: 'user', content: huge }], max_tokens: 1 }),
          400,
          'prompt_too_long',
          /the messages' content has 7000000 characters/,
        );
        const both = performance.now() - t0;
        assert.ok(both < 3000, `the two 400s took ${both.toFixed(0)} ms (tokenizing 7 MB takes ~10 s)`);
      } finally {
        done = true;
        await health;
      }
      assert.ok(worstHealthMs < 1000, `a health check waited ${worstHealthMs.toFixed(0)} ms`);
    });
  });

  it('one huge request does not starve a small one: the small one is answered while the huge one runs', async () => {
    // No eos: every sequence runs to max_tokens.
    await withServer({ loaded: { ...lm, eosTokenIds: [] }, maxRunning: 4 }, async (s) => {
      let bigDone = false;
      const big = post(s, '/v1/completions', {
        prompt: Array.from({ length: 64 }, (_, i) => [i + 1, 7, 9]),
        max_tokens: 24,
        temperature: 0,
      }).then(async (r) => {
        bigDone = true;
        return r;
      });
      try {
        const deadline = Date.now() + 30_000;
        while (continuousStats(s.stats).steps < 1) {
          if (Date.now() > deadline) throw new Error('the huge request never started');
          await new Promise((r) => setTimeout(r, 2));
        }
        const small = await post(s, '/v1/completions', { prompt: [3, 4], max_tokens: 2, temperature: 0 });
        assert.equal(small.status, 200);
        assert.equal(bigDone, false, 'the small request was answered only after all 64 sequences of the huge one');
        const b = await big;
        assert.equal(b.status, 200);
        const body = (await b.json()) as { choices: { token_ids: number[] }[] };
        assert.equal(body.choices.length, 64);
        assert.ok(body.choices.every((c) => c.token_ids.length === 24));
        assert.ok(continuousStats(s.stats).peakRequests >= 2, 'the small request shared the decode batch with part of the huge one');
      } finally {
        await big.catch(() => {});
      }
    });
  });

  it('a body larger than the limit is refused while it streams in (no Content-Length)', async () => {
    await withServer({ maxBodyBytes: 64 << 10 }, async (s) => {
      let sock: Socket | undefined;
      try {
        const reply = await new Promise<string>((resolve, reject) => {
          sock = connect(s.port, '127.0.0.1', () => {
            sock!.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
            const chunk = '{"prompt":"' + 'x'.repeat(80 << 10);
            sock!.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`); // the body never ends
          });
          let got = '';
          sock.on('data', (d) => {
            got += d.toString();
            if (got.includes('\r\n\r\n') && got.includes('}}')) resolve(got);
          });
          sock.on('error', reject);
          setTimeout(() => reject(new Error(`no answer: ${got}`)), 10_000).unref();
        });
        assert.match(reply, /^HTTP\/1\.1 413/);
        assert.match(reply, /request body exceeds 65536 bytes/);
      } finally {
        sock?.destroy();
      }
    });
  });

  it('shutdown: a client that sent headers and part of a body cannot keep the server from closing', async () => {
    const server = await startServer({ model: lm.model.dir, loaded: lm, port: 0, shutdownGraceMs: 200 });
    let sock: Socket | undefined;
    let closed: Promise<void> | undefined;
    try {
      sock = connect(server.port, '127.0.0.1');
      const sockClosed = new Promise<void>((ok) => sock!.on('close', () => ok()));
      sock.on('error', () => {});
      let reply = '';
      sock.on('data', (d) => (reply += d.toString()));
      await new Promise<void>((ok) => sock!.on('connect', () => ok()));
      sock.write(
        'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"prompt": "Hel',
      );
      const deadline = Date.now() + 10_000;
      while (server.stats.reading !== 1) {
        if (Date.now() > deadline) throw new Error(`the server never started reading the body (stats ${JSON.stringify(server.stats)})`);
        await new Promise((r) => setTimeout(r, 5));
      }
      const t0 = performance.now();
      closed = server.close();
      const outcome = await Promise.race([
        closed.then(() => 'closed'),
        new Promise<string>((ok) => setTimeout(() => ok('hung'), 10_000).unref()),
      ]);
      const ms = performance.now() - t0;
      assert.equal(outcome, 'closed', 'close() did not resolve within 10 s');
      assert.ok(ms < 200 + 2000 + 1000, `closing took ${ms.toFixed(0)} ms (grace 200 ms)`);
      await sockClosed;
      assert.match(reply, /^HTTP\/1\.1 503 [\s\S]*"code":"shutting_down"/, 'the half-sent request is answered 503, then its socket closed');
    } finally {
      sock?.destroy();
      await (closed ?? server.close());
    }
  });
});
