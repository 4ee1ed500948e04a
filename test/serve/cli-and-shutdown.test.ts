/**
 * `rac serve` as a process (starts, answers, exits 0 on SIGTERM) and the in-process shutdown path
 * (a running request is aborted after the grace period, close() resolves, the port is released).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { continuousStats, startServer } from '../../src/serve/server.ts';
import { checkpoint } from '../helpers/checkpoints.ts';
import { argv, rac, startRac } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

describe('rac serve CLI', { timeout: 60_000 }, () => {
  it('starts on a free port, answers /v1/models and a completion, exits 0 on SIGTERM', async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 7 });
    const { child, exit } = startRac(argv`serve --model ${dir} --port 0 --threads 1 --served-model-name cli-tiny`);
    let stderr = '';
    const exited = exit.then((e) => e.code);
    const killer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    try {
      const url = await new Promise<string>((ok, fail) => {
        child.stderr!.on('data', (c: Buffer) => {
          stderr += c.toString();
          const m = /at (http:\/\/127\.0\.0\.1:\d+)\/v1/.exec(stderr);
          if (m) ok(m[1]!);
        });
        void exited.then((code) => fail(new Error(`exited ${code} before listening: ${stderr}`)));
      });
      const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
      assert.deepEqual(
        models.data.map((m) => m.id),
        ['cli-tiny'],
      );
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ model: 'cli-tiny', prompt: 'Hello', max_tokens: 3, temperature: 0 }),
      });
      assert.equal(r.status, 200);
      const body = (await r.json()) as { choices: { token_ids: number[] }[] };
      assert.ok(body.choices[0]!.token_ids.length >= 1);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
      assert.match(stderr, /SIGTERM: shutting down/);
      assert.equal((await exit).stdout, '');
      await assert.rejects(fetch(`${url}/v1/models`), 'the port is closed');
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
  });
});

describe('rac serve connection flags', { timeout: 60_000 }, () => {
  it('--header-timeout, --request-timeout, --keep-alive-timeout and --max-connections reach the server', async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 7 });
    const args = argv`--header-timeout 0.5 --request-timeout 1 --keep-alive-timeout 0.5 --max-connections 1`;
    const { child, exit } = startRac(['serve', '--model', dir, '--port', '0', '--threads', '1', ...args]);
    let stderr = '';
    const exited = exit.then((e) => e.code);
    const socks: ReturnType<typeof connect>[] = [];
    try {
      const url = await new Promise<string>((ok, fail) => {
        child.stderr!.on('data', (c: Buffer) => {
          stderr += c.toString();
          const m = /at (http:\/\/127\.0\.0\.1:(\d+))\/v1/.exec(stderr);
          if (m) ok(m[1]!);
        });
        void exited.then((code) => fail(new Error(`exited ${code} before listening: ${stderr}`)));
      });
      const port = Number(new URL(url).port);
      // One silent connection holds the only slot: a second is answered 503 …
      const idle = connect(port, '127.0.0.1');
      socks.push(idle);
      idle.on('error', () => {});
      const idleClosed = new Promise<number>((ok) => idle.on('close', () => ok(performance.now())));
      await new Promise<void>((ok) => idle.on('connect', () => ok()));
      const t0 = performance.now();
      const over = await fetch(`${url}/health`).catch((e: unknown) => e as Error);
      assert.ok(!(over instanceof Error), String(over));
      assert.equal(over.status, 503);
      assert.match(await over.text(), /too_many_connections/);
      // … until the silent one is cut at the header timeout; then the server answers again.
      const closedAt = await Promise.race([
        idleClosed,
        new Promise<number>((_, no) => setTimeout(() => no(new Error('the silent connection was never cut')), 10_000).unref()),
      ]);
      assert.ok(closedAt - t0 < 500 + 2000, `the silent connection was cut after ${(closedAt - t0).toFixed(0)} ms`);
      const ok = await waitFor('a free slot', async () => {
        const r = await fetch(`${url}/health`, { headers: { connection: 'close' } });
        return r.status === 200 ? r : null;
      });
      assert.equal(ok.status, 200);
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    } finally {
      for (const sk of socks) sk.destroy();
      child.kill('SIGKILL');
    }
  });

  it('a header timeout longer than the request timeout, or a zero one, is a usage error', async () => {
    for (const bad of [
      ['--header-timeout', '0'],
      ['--max-connections', '0'],
    ]) {
      const r = await rac('serve', '--model', 'nowhere', ...bad);
      assert.equal(r.code, 2, r.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    }
  });
});

describe('rac serve CLI flags', { timeout: 60_000 }, () => {
  it('refuses an unknown --scheduler with a one-line error and exit code 2', async () => {
    const r = await rac('serve', '--model', 'nowhere', '--scheduler', 'fifo');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /scheduler must be continuous or window, got "fifo"/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
});

describe('rac serve shutdown', { timeout: 60_000 }, () => {
  let lm: LoadedModel;
  before(async () => {
    lm = await loadModel(checkpoint({ family: 'qwen2', seed: 7 }), { threads: 1 });
  });
  after(async () => {
    if (lm) await closeModel(lm);
  });

  it('lets a running request finish within the grace period', async () => {
    // No eos ids: the request runs its 200 tokens, long enough to be seen running.
    const server = await startServer({ model: lm.model.dir, loaded: { ...lm, eosTokenIds: [] }, port: 0, shutdownGraceMs: 20_000 });
    let closed = false;
    try {
      const pending = fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ prompt: 'Hello', max_tokens: 200, temperature: 0 }),
      });
      pending.catch(() => {}); // awaited below; a failure before that must not become an unhandled rejection
      await waitFor('the request to reach the server', () => server.stats.active === 1);
      await server.close();
      closed = true;
      const r = await pending;
      assert.equal(r.status, 200);
      const body = (await r.json()) as { choices: { token_ids: number[]; finish_reason: string }[] };
      assert.equal(body.choices.length, 1);
      assert.equal(body.choices[0]!.token_ids.length, 200, 'the request ran to its end during the grace period');
      assert.equal(body.choices[0]!.finish_reason, 'length');
      await assert.rejects(fetch(`${server.url}/v1/models`));
    } finally {
      if (!closed) await server.close();
    }
  });

  it('aborts a running (streaming) request once the grace period is over', async () => {
    // No eos ids: the request would run to its 3000 tokens.
    const server = await startServer({ model: lm.model.dir, loaded: { ...lm, eosTokenIds: [] }, port: 0, shutdownGraceMs: 0 });
    try {
      const res = await fetch(`${server.url}/v1/completions`, {
        method: 'POST',
        body: JSON.stringify({ prompt: 'Hello', max_tokens: 3000, temperature: 0, stream: true }),
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      await reader.read(); // the first chunk: generation is running
      const t0 = Date.now();
      await server.close();
      assert.ok(Date.now() - t0 < 10_000);
      let rest = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        rest += Buffer.from(value).toString();
      }
      assert.match(rest, /"code":"shutting_down"/);
      assert.match(rest, /data: \[DONE\]\n\n$/);
      assert.equal(continuousStats(server.stats).admitted, 1);
    } finally {
      await server.close(); // a no-op once closed; releases the port when an assertion above failed
    }
  });
});
