/**
 * `rac serve` under hostile or careless requests, over loopback: bounded prompts and tokens per
 * request (an OpenAI-shaped 400 naming the limit, never a 500), a multi-megabyte prompt refused
 * before tokenization without holding the event loop, a huge request that cannot starve a small
 * one, and a shutdown that a half-sent body cannot hold open.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
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

  async function waitUntil(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
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

  /** A raw connection: what it received, and whether (and when) the server closed it. */
  function rawClient(port: number) {
    const sock = connect(port, '127.0.0.1');
    const state = { got: '', closedAt: 0 };
    sock.on('data', (d) => (state.got += d.toString()));
    sock.on('error', () => {});
    const closed = new Promise<void>((ok) =>
      sock.on('close', () => {
        state.closedAt = performance.now();
        ok();
      }),
    );
    const connected = new Promise<void>((ok) => sock.on('connect', () => ok()));
    return { sock, state, closed, connected };
  }

  /** Writes `text` one byte every `gapMs` until the socket closes. */
  function drip(sock: Socket, text: string, gapMs: number): () => void {
    let i = 0;
    const timer = setInterval(() => {
      if (sock.destroyed || i >= text.length) return clearInterval(timer);
      sock.write(text[i++]!);
    }, gapMs);
    return () => clearInterval(timer);
  }

  /** Resolves when `p` settles, rejects after `ms`. */
  const within = <T>(ms: number, p: Promise<T>, what: string): Promise<T> => {
    let t: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<T>((_, no) => {
        t = setTimeout(() => no(new Error(`${what}: not within ${ms} ms`)), ms);
      }),
    ]).finally(() => clearTimeout(t));
  };

  it('slowloris: headers dripped at 1 byte / 200 ms are cut at --header-timeout; a body dripped so is cut at --request-timeout (before: held for ever)', async () => {
    await withServer({ headersTimeoutMs: 1000, requestTimeoutMs: 2000 }, async (s) => {
      const head = rawClient(s.port);
      const body = rawClient(s.port);
      const mute = rawClient(s.port); // connects and sends nothing at all
      const stops: (() => void)[] = [];
      try {
        await Promise.all([head.connected, body.connected, mute.connected]);
        const t0 = performance.now();
        stops.push(drip(head.sock, 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n', 200));
        body.sock.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n');
        stops.push(drip(body.sock, `{"prompt": "${'x'.repeat(380)}"}`, 200));
        await within(8000, head.closed, 'the header slowloris closed');
        await within(8000, body.closed, 'the body slowloris closed');
        await within(8000, mute.closed, 'the silent connection closed');
        assert.ok(mute.state.closedAt - t0 < 1000 + 1500, `silent connection cut after ${(mute.state.closedAt - t0).toFixed(0)} ms`);
        assert.ok(head.state.closedAt - t0 < 1000 + 1500, `headers cut after ${(head.state.closedAt - t0).toFixed(0)} ms`);
        assert.ok(body.state.closedAt - t0 < 2000 + 1500, `body cut after ${(body.state.closedAt - t0).toFixed(0)} ms`);
        assert.match(body.state.got, /^HTTP\/1\.1 408 /);
        // The server still serves.
        assert.equal((await fetch(`${s.url}/health`)).status, 200);
      } finally {
        for (const stop of stops) stop();
        head.sock.destroy();
        body.sock.destroy();
        mute.sock.destroy();
      }
    });
  });

  it('an idle keep-alive connection is closed after --keep-alive-timeout', async () => {
    await withServer({ keepAliveTimeoutMs: 300 }, async (s) => {
      const c = rawClient(s.port);
      try {
        await c.connected;
        c.sock.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
        const t0 = performance.now();
        await within(5000, c.closed, 'the idle connection closed');
        assert.match(c.state.got, /^HTTP\/1\.1 200 /);
        assert.ok(c.state.closedAt - t0 < 300 + 1500, `closed after ${(c.state.closedAt - t0).toFixed(0)} ms`);
      } finally {
        c.sock.destroy();
      }
    });
  });

  it('connections over --max-connections get a 503 and are closed; the held ones do not block the server for ever (before: no cap)', async () => {
    await withServer({ maxConnections: 3, headersTimeoutMs: 60_000, requestTimeoutMs: 60_000 }, async (s) => {
      const held = [rawClient(s.port), rawClient(s.port), rawClient(s.port)];
      const extra: ReturnType<typeof rawClient>[] = [];
      try {
        await Promise.all(held.map((c) => c.connected));
        for (const c of held) c.sock.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"pro');
        await waitUntil(() => s.stats.reading === 3, 'the three held requests to be read');
        const over = rawClient(s.port);
        extra.push(over);
        await within(5000, over.closed, 'the connection over the cap closed');
        assert.match(over.state.got, /^HTTP\/1\.1 503 [\s\S]*"code":"too_many_connections"/);
        assert.match(over.state.got, /at most 3 connections \(--max-connections\)/);
        for (const c of held) assert.equal(c.sock.destroyed, false, 'the held connections stay');
        // One goes: a new connection is served.
        held[0]!.sock.destroy();
        await held[0]!.closed;
        await waitUntil(() => s.stats.reading === 2, 'the server to see it go');
        const r = await fetch(`${s.url}/health`);
        assert.equal(r.status, 200);
      } finally {
        for (const c of [...held, ...extra]) c.sock.destroy();
      }
    });
  });

  it('a body over --max-body-mb: Python urllib (which sends the whole body before reading) sees the 413 (before: "Broken pipe")', async (t) => {
    const py = await new Promise<boolean>((ok) => execFile('python3', ['-c', 'print(1)'], (err) => ok(!err)));
    if (!py) return t.skip('python3 is not installed');
    await withServer({ maxBodyBytes: 1 << 20 }, async (s) => {
      const script = [
        'import json, sys, urllib.request, urllib.error',
        `data = json.dumps({"prompt": "x" * (6 << 20), "max_tokens": 1}).encode()`,
        `req = urllib.request.Request("${s.url}/v1/completions", data=data, headers={"Content-Type": "application/json"})`,
        'try:',
        '    urllib.request.urlopen(req, timeout=30)',
        '    print("200")',
        'except urllib.error.HTTPError as e:',
        '    print(e.code, json.loads(e.read())["error"]["code"])',
        'except Exception as e:',
        '    print("failed:", type(e).__name__, e)',
      ].join('\n');
      for (let round = 0; round < 3; round++) {
        const out = await new Promise<string>((ok) =>
          execFile('python3', ['-c', script], { timeout: 60_000 }, (err, stdout, stderr) =>
            ok(err ? `exit ${err.code}: ${stderr}` : stdout.trim()),
          ),
        );
        assert.equal(out, '413 request_too_large', `round ${round}`);
      }
      assert.equal((await fetch(`${s.url}/health`)).status, 200);
    });
  });

  it('chat: a user (or system) message with content null is a 400 like OpenAI; an assistant message may have it (before: 200)', async () => {
    await withServer({}, async (s) => {
      for (const role of ['user', 'system']) {
        const e = await expectError(
          await post(s, '/v1/chat/completions', { messages: [{ role, content: null }], max_tokens: 1 }),
          400,
          'invalid_type',
          /Invalid value for 'content': expected a string, got null/,
        );
        assert.equal(e.param, 'messages.[0].content');
      }
      const ok = await post(s, '/v1/chat/completions', {
        messages: [
          { role: 'user', content: 'Hi' },
          { role: 'assistant', content: null },
          { role: 'user', content: 'Again' },
        ],
        max_tokens: 1,
        temperature: 0,
      });
      assert.equal(ok.status, 200, await ok.clone().text());
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
