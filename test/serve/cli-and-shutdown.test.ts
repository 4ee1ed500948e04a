/**
 * `rac serve` as a process (starts, answers, exits 0 on SIGTERM) and the in-process shutdown path
 * (a running request is aborted after the grace period, close() resolves, the port is released).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { continuousStats, startServer } from '../../src/serve/server.ts';
import { checkpoint } from '../helpers/checkpoints.ts';
import { waitFor } from '../helpers/wait.ts';

const ROOT = join(import.meta.dirname, '..', '..');

describe('rac serve CLI', { timeout: 60_000 }, () => {
  it('starts on a free port, answers /v1/models and a completion, exits 0 on SIGTERM', async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 7 });
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin/rac.js'), 'serve', '--model', dir, '--port', '0', '--threads', '1', '--served-model-name', 'cli-tiny'],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 50_000);
    try {
      const url = await new Promise<string>((ok, fail) => {
        child.stderr.on('data', (c: Buffer) => {
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
      assert.equal(stdout, '');
      await assert.rejects(fetch(`${url}/v1/models`), 'the port is closed');
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
  });
});

describe('rac serve CLI flags', { timeout: 60_000 }, () => {
  it('refuses an unknown --scheduler with a one-line error and exit code 2', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'bin/rac.js'), 'serve', '--model', 'nowhere', '--scheduler', 'fifo'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    assert.equal(r.status, 2, r.stderr);
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
