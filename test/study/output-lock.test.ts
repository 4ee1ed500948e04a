/**
 * One writer per output: a second `rac trace` / `rac eval` on the same --out is refused while the
 * first runs (it used to run too and double every record); a lock left by a dead process is taken
 * over. Plus the lock helper itself (src/io/lock.ts).
 */
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs, { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { LockError, lockOutput, lockPath } from '../../src/io/lock.ts';
import { readTraceFile } from '../../src/study/trace.ts';
import { generateSplit } from '../../src/tasks/tiny/index.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, startRac } from '../helpers/cli.ts';
import { lineCount } from '../helpers/wait.ts';

async function waitFor(what: string, cond: () => boolean, child: ChildProcess, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the first process ended before ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A pid that is certainly not running: a child that has exited and been reaped. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('output lock (src/io/lock.ts)', () => {
  it('a second lock on the same output is refused naming the owner; after release it is free again', () => {
    const target = join(tempDir('lock'), 'out.jsonl');
    const a = lockOutput(target, 'traces');
    try {
      assert.ok(existsSync(lockPath(target)));
      assert.equal(JSON.parse(readFileSync(lockPath(target), 'utf8')).pid, process.pid);
      assert.throws(
        () => lockOutput(target, 'traces'),
        (e: unknown) => {
          assert.ok(e instanceof LockError);
          assert.match(e.message, new RegExp(`traces in use by another rac process \\(pid ${process.pid}, lock .*out\\.jsonl\\.lock\\)`));
          assert.doesNotMatch(e.message, /\n/);
          return true;
        },
      );
    } finally {
      a.release();
    }
    assert.equal(existsSync(lockPath(target)), false, 'released: the lock file is gone');
    lockOutput(target).release();
  });

  it('a stale lock (dead pid, or a reused pid with another start time, or garbage) is taken over', () => {
    const dir = tempDir('lock-stale');
    const target = join(dir, 'out.json');
    for (const stale of [
      JSON.stringify({ pid: deadPid(), host: hostname(), start: null }),
      JSON.stringify({ pid: process.pid, host: hostname(), start: '1' }), // our pid, but another process's start time
      'not a lock',
    ]) {
      writeFileSync(lockPath(target), stale);
      const l = lockOutput(target);
      assert.equal(JSON.parse(readFileSync(lockPath(target), 'utf8')).pid, process.pid);
      l.release();
      assert.equal(existsSync(lockPath(target)), false);
    }
    // Another host's lock cannot be checked: refused, with the way out named.
    writeFileSync(lockPath(target), JSON.stringify({ pid: 1, host: `not-${hostname()}`, start: null }));
    assert.throws(() => lockOutput(target), /pid 1 on host not-.*remove .*out\.json\.lock if that process is gone/);
  });
  it('a second taker that removes the same stale lock in between cannot make two holders', () => {
    // The interleaving that let two processes both take a stale lock: A has found the lock stale and
    // is about to remove it; B, in that instant, finds it stale too and takes it over. A must not
    // then remove B's fresh lock and take it as well. B runs inside A's removal (fs.unlinkSync of
    // the lock, patched for this test), with this process's pid: a lock B holds is live for A.
    const target = join(tempDir('lock-interleave'), 'out.json');
    writeFileSync(lockPath(target), JSON.stringify({ pid: deadPid(), host: hostname(), start: null }));
    const unlink = fs.unlinkSync;
    let b: ReturnType<typeof lockOutput> | Error | null = null;
    fs.unlinkSync = (p: fs.PathLike) => {
      if (b === null && String(p) === lockPath(target)) {
        try {
          b = lockOutput(target);
        } catch (e) {
          b = e as Error;
        }
      }
      unlink(p);
    };
    syncBuiltinESMExports();
    let a: ReturnType<typeof lockOutput> | Error;
    try {
      try {
        a = lockOutput(target);
      } catch (e) {
        a = e as Error;
      }
    } finally {
      fs.unlinkSync = unlink;
      syncBuiltinESMExports();
    }
    const holders = [a, b].filter((x) => x !== null && !(x instanceof Error));
    for (const h of holders) (h as ReturnType<typeof lockOutput>).release();
    assert.notEqual(b, null, 'the second taker ran');
    assert.equal(holders.length, 1, `holders: ${holders.length} (A: ${String(a)}, B: ${String(b)})`);
    assert.equal(existsSync(lockPath(target)), false);
  });

  it('several takers of one stale lock at the same moment: exactly one gets it (the takeover is atomic)', async () => {
    // Threads of this process (one pid, one start time): a lock one of them holds is held for the
    // others. Each round writes a stale lock and lets every thread try at once.
    const dir = tempDir('lock-race');
    const target = join(dir, 'out.json');
    const N = 4;
    const ROUNDS = 100;
    const shared = new SharedArrayBuffer(4 * (2 + N));
    const s = new Int32Array(shared);
    const workers = Array.from(
      { length: N },
      (_, index) =>
        // (a worker's entry is loaded before --import hooks apply: it registers tsx, then imports the .ts)
        new Worker(
          `import('tsx/esm/api').then((m) => { m.register(); return import(${JSON.stringify(String(new URL('../helpers/lock-race-worker.ts', import.meta.url)))}); })`,
          { eval: true, workerData: { target, index, rounds: ROUNDS, shared } },
        ),
    );
    let failed: unknown = null;
    const finished = workers.map(
      (w) =>
        new Promise<void>((ok, fail) => {
          w.on('message', () => ok());
          w.on('error', (e) => {
            failed = e;
            fail(e);
          });
        }),
    );
    for (const f of finished) f.catch(() => {});
    const doubles: number[] = [];
    try {
      const stale = JSON.stringify({ pid: deadPid(), host: hostname(), start: null });
      for (let round = 1; round <= ROUNDS; round++) {
        writeFileSync(lockPath(target), stale);
        Atomics.store(s, 0, round);
        const deadline = Date.now() + 30_000;
        while (Array.from({ length: N }, (_, w) => Atomics.load(s, 2 + w)).some((a) => a === 0)) {
          if (failed) throw failed;
          if (Date.now() > deadline) throw new Error(`round ${round}: a worker never answered`);
          await new Promise((r) => setImmediate(r));
        }
        const took = Array.from({ length: N }, (_, w) => Atomics.load(s, 2 + w)).filter((a) => a === 1).length;
        if (took !== 1) doubles.push(took);
        Atomics.store(s, 1, round);
        Atomics.notify(s, 1);
        while (Array.from({ length: N }, (_, w) => Atomics.load(s, 2 + w)).some((a) => a !== 0)) {
          if (Date.now() > deadline) throw new Error(`round ${round}: a worker never released`);
          await new Promise((r) => setImmediate(r));
        }
        rmSync(lockPath(target), { force: true });
      }
      await Promise.all(finished);
    } finally {
      for (const w of workers) await w.terminate();
    }
    assert.deepEqual(doubles, [], `rounds where the number of takers was not 1: ${doubles.join(', ')}`);
    assert.deepEqual(
      readdirSync(dir).filter((f) => f !== 'out.json.lock'),
      [],
      'no temp or claim files are left behind',
    );
  });
});

describe('rac trace / rac eval: one writer per --out', () => {
  const model = checkpoint({ family: 'qwen2', seed: 31, layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64 });

  it('trace: a second process on the same --out fails with one line while the first holds the lock; a stale lock is taken over', async () => {
    const work = tempDir('trace-lock');
    const ds = join(work, 'prompts.jsonl');
    // Long enough that the first run is still going when the second has started and been refused.
    const rows = generateSplit('calib', 'arith', 4000, 3);
    writeFileSync(ds, rows.map((p) => JSON.stringify({ id: p.id, prompt: p.prompt })).join('\n') + '\n');
    const out = join(work, 'traces.jsonl');
    const args = argv`trace -q --model ${model} --dataset ${ds} --n 2 --max-new-tokens 48 --token-budget 0 --batch-size 2
      --threads 1 --out ${out}`;
    const first = startRac(args);
    try {
      await waitFor('the first record', () => lineCount(out) >= 1, first.child);
      const second = await startRac(args).exit;
      assert.equal(first.child.exitCode, null, 'the first run was still going while the second was refused');
      assert.equal(second.code, 1, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(
          `^rac: error: .*traces\\.jsonl: traces in use by another rac process \\(pid ${first.child.pid}, lock .*traces\\.jsonl\\.lock\\); wait for it to finish, or use another --out\\n$`,
        ),
      );
      assert.equal(second.stdout, '');
    } finally {
      first.child.kill('SIGKILL');
      await first.exit;
    }
    // The killed run left its lock behind; its pid is gone, so the next run takes it over.
    assert.ok(existsSync(lockPath(out)), 'SIGKILL leaves the lock');
    // (--token-budget is not a resume setting: 1 token stops the rerun at once.)
    const again = await startRac(args.map((a, i) => (args[i - 1] === '--token-budget' ? '1' : a))).exit;
    assert.equal(again.code, 0, again.stderr);
    assert.equal(existsSync(lockPath(out)), false, 'the rerun released the lock it took over');
    const recs = readTraceFile(out).records;
    assert.ok(recs.length >= 1);
    assert.equal(new Set(recs.map((r) => `${r.prompt_id}/${r.sample}`)).size, recs.length, 'no record written twice');
  });

  it('trace: SIGTERM removes the lock (the process still dies by the signal)', async () => {
    const work = tempDir('trace-lock-term');
    const ds = join(work, 'prompts.jsonl');
    writeFileSync(
      ds,
      generateSplit('calib', 'arith', 4000, 4)
        .map((p) => JSON.stringify({ id: p.id, prompt: p.prompt }))
        .join('\n') + '\n',
    );
    const out = join(work, 'traces.jsonl');
    const run = startRac(
      argv`trace -q --model ${model} --dataset ${ds} --n 1 --max-new-tokens 48 --token-budget 0 --threads 1 --out ${out}`,
    );
    try {
      await waitFor('the first record', () => lineCount(out) >= 1, run.child);
      assert.ok(existsSync(lockPath(out)));
      run.child.kill('SIGTERM');
      const r = await run.exit;
      assert.equal(r.signal, 'SIGTERM', r.stderr);
      assert.equal(existsSync(lockPath(out)), false, 'the lock is gone');
    } finally {
      run.child.kill('SIGKILL');
      await run.exit;
    }
  });

  it('eval: a second process on the same --out fails with one line; a stale lock is taken over', async () => {
    const work = tempDir('eval-lock');
    const ds = join(work, 'tiny.jsonl');
    const rows = [...generateSplit('eval', 'arith', 2000, 0), ...generateSplit('eval', 'trace', 2000, 0)];
    writeFileSync(ds, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(work, 'results.json');
    const log = `${out}.samples.jsonl`;
    const args = (limit: number) =>
      argv`eval -q --model ${model} --dataset ${ds} --task tiny --samples 2 --max-new-tokens 48 --temperature 1 --seed 7
        --batch-size 1 --threads 1 --limit ${limit} --out ${out}`;
    const first = startRac(args(rows.length));
    try {
      await waitFor('the first sample', () => lineCount(log) >= 1, first.child);
      const second = await startRac(args(rows.length)).exit;
      assert.equal(first.child.exitCode, null, 'the first run was still going while the second was refused');
      assert.equal(second.code, 1, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(
          `^rac: error: .*results\\.json: evaluation output in use by another rac process \\(pid ${first.child.pid}, lock .*results\\.json\\.lock\\); wait for it to finish, or use another --out\\n$`,
        ),
      );
    } finally {
      first.child.kill('SIGKILL');
      await first.exit;
    }
    assert.ok(existsSync(lockPath(out)), 'SIGKILL leaves the lock');
    // The rerun takes the dead process's lock over and finishes the first problem (--limit 1).
    const again = await startRac(args(1)).exit;
    assert.equal(again.code, 0, again.stderr);
    assert.equal(existsSync(lockPath(out)), false);
    assert.equal(JSON.parse(readFileSync(out, 'utf8')).samples.length, 2);
  });
});
