/**
 * Outputs never destroy inputs or each other (issue #24): `rac export-gguf` refuses an output
 * equal to or inside its input model (the model's weights were overwritten) and an existing
 * output unless --force; two `rac prune` into one --out cannot both run (one result was lost).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { lockPath } from '../../src/io/lock.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, assertCliError, racWith, startRac } from '../helpers/cli.ts';
import { copyCheckpoint } from '../helpers/corrupt.ts';
import { killChild, waitFor } from '../helpers/wait.ts';

/** `rac` with two minutes to finish (the helper's default is one). */
const rac = (...args: string[]) => racWith({ timeoutMs: 120_000 }, ...args);

const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');

describe('rac export-gguf: never over its input, never over an existing file without --force', () => {
  it('an output equal to or inside the input model is refused, the model untouched (before: --out M/model.safetensors replaced the weights, exit 0)', async () => {
    const m = copyCheckpoint(
      checkpoint({ family: 'qwen2', seed: 41, layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64 }),
      'gguf-in',
    );
    const before = Object.fromEntries(readdirSync(m).map((f) => [f, sha(join(m, f))]));
    const link = join(tempDir('gguf-link'), 'weights.gguf');
    symlinkSync(join(m, 'model.safetensors'), link);
    for (const [out, force] of [
      [join(m, 'model.safetensors'), []],
      [join(m, 'model.safetensors'), ['--force']],
      [m, ['--force']],
      [join(m, 'sub', 'x.gguf'), []],
      [link, ['--force']],
    ] as const) {
      const r = await rac('export-gguf', '--model', m, '--out', out, ...force);
      assertCliError(r, [], /: the output (\(.*\) )?(is|lies inside) the input model directory .*; choose an --out outside it/);
      assert.ok(r.stderr.includes(out), r.stderr);
    }
    assert.deepEqual(Object.fromEntries(readdirSync(m).map((f) => [f, sha(join(m, f))])), before, 'the model is untouched');
  });

  it('an existing output is refused unless --force (before: replaced silently)', async () => {
    const m = checkpoint({ family: 'qwen2', seed: 41, layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64 });
    const out = join(tempDir('gguf-exists'), 'mine.gguf');
    writeFileSync(out, 'my file\n');
    const r = await rac('export-gguf', '--model', m, '--out', out);
    assertCliError(r, [], new RegExp(`${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: exists; pass --force to replace it`));
    assert.equal(readFileSync(out, 'utf8'), 'my file\n');
    const forced = await rac('export-gguf', '--model', m, '--out', out, '--force', '-q');
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(readFileSync(out).subarray(0, 4).toString(), 'GGUF');
  });
});

describe('rac prune: one writer per --out', () => {
  it('a second prune into the same --out fails with one line while the first runs; the first result is kept (before: both reported success, one result lost)', async () => {
    const model = checkpoint({ family: 'qwen2', seed: 43, layers: 4, hidden: 64, heads: 4, kvHeads: 2, intermediate: 128 });
    const dir = tempDir('prune-lock');
    const ds = join(dir, 'prompts.jsonl');
    writeFileSync(ds, Array.from({ length: 64 }, (_, i) => JSON.stringify({ id: i, prompt: `Compute ${i} + ${i}.` })).join('\n') + '\n');
    const out = join(dir, 'pruned');
    const args = (method: string) =>
      argv`prune -q --threads 1 --model ${model} --method ${method} --sparsity 0.5 --calib-mode prompt --dataset ${ds}
        --calib-tokens 2048 --out ${out}`;
    const { child: first, exit: firstExit } = startRac(args('sparsegpt'));
    try {
      // The first run holds the output (its lock, or with no lock its temp directory); it is then
      // stopped, so the second certainly runs while the first is in the middle of its work.
      await waitFor(
        'the first prune to take its output',
        () => existsSync(lockPath(out)) || readdirSync(dir).some((n) => n.startsWith('.pruned.tmp-')),
        { timeoutMs: 60_000, intervalMs: 2 },
      );
      first.kill('SIGSTOP');
      const second = await rac(...args('wanda'));
      first.kill('SIGCONT');
      assertCliError(
        second,
        [],
        new RegExp(
          `pruned: pruned model in use by another rac process \\(pid ${first.pid}, lock .*pruned\\.lock\\); wait for it to finish, or use another --out`,
        ),
      );
      const e = await firstExit;
      assert.equal(e.code, 0, e.stderr);
    } finally {
      first.kill('SIGCONT');
      killChild(first);
      await firstExit;
    }
    assert.equal(JSON.parse(readFileSync(join(out, 'rac.json'), 'utf8')).method, 'sparsegpt', 'the first run’s result is the output');
    assert.ok(!existsSync(lockPath(out)), 'the lock is released');
    assert.deepEqual(readdirSync(dir).sort(), ['pruned', 'prompts.jsonl'].sort());
  });
});
