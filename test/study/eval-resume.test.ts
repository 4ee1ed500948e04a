/**
 * `rac eval` crash-resume end to end: a child `rac eval` is killed with SIGKILL mid-run, a torn
 * half record is appended to its sample log, and the same command run again must finish with
 * exactly the metrics and samples of an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { generateSplit } from '../../src/tasks/tiny/index.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, rac, startRac } from '../helpers/cli.ts';
import { killChild, lineCount, waitFor } from '../helpers/wait.ts';

function comparable(path: string) {
  const r = JSON.parse(readFileSync(path, 'utf8'));
  const { wall_seconds: _w, tokens_per_second: _t, ...metrics } = r.metrics;
  return { metrics, per_family: r.per_family, samples: r.samples, dataset: r.dataset.problems, fingerprint: r.model.fingerprint };
}

describe('rac eval resume', () => {
  it('a kill -9 mid-run and a rerun give the metrics of an uninterrupted run', async () => {
    const model = checkpoint({ family: 'qwen2', seed: 21, layers: 1, hidden: 32, heads: 2 });
    const dir = tempDir('evalresume');
    const ds = join(dir, 'tiny.jsonl');
    const rows = [...generateSplit('eval', 'arith', 4, 0), ...generateSplit('eval', 'trace', 4, 0)];
    writeFileSync(ds, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const K = 2;
    const total = rows.length * K;
    const args = (out: string) =>
      argv`eval --model ${model} --dataset ${ds} --task tiny --samples ${K} --max-new-tokens 64 --temperature 1 --top-p 0.95
        --seed 7 --batch-size 1 --threads 1 --out ${out} --json`;

    const full = join(dir, 'full.json');
    const a = await rac(...args(full));
    assert.equal(a.code, 0, a.stderr);

    const out = join(dir, 'resumed.json');
    const log = `${out}.samples.jsonl`;
    const { child, exit: exited } = startRac(args(out));
    let seen = 0;
    try {
      await waitFor('2 recorded samples', () => (seen = lineCount(log)) >= 2 || child.exitCode !== null, { timeoutMs: 50_000 });
    } finally {
      killChild(child);
    }
    await exited;
    const after = lineCount(log);
    assert.ok(seen >= 2, 'the child recorded samples before the kill');
    assert.ok(after < total, `the kill came too late (${after}/${total} samples already recorded)`);
    assert.equal(existsSync(out), false, 'no results.json from the killed run');
    // A torn write: half a record without its newline.
    const first = readFileSync(log, 'utf8').split('\n')[0]!;
    appendFileSync(log, first.slice(0, Math.floor(first.length / 2)));

    const b = await rac(...args(out));
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /resuming: \d+ of 16 samples/);
    assert.equal(lineCount(log), total, 'each sample recorded exactly once');
    assert.deepEqual(comparable(out), comparable(full));
    assert.deepEqual(JSON.parse(b.stdout).accuracy, JSON.parse(a.stdout).accuracy);

    // Finished: a third run generates nothing and rewrites the same results.
    const c = await rac(...args(out));
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(comparable(out), comparable(full));

    // Other settings against the same log are refused with a one-line error.
    const d = await rac(...args(out).slice(0, -3), '--seed', '8', '--out', out);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /^rac: error: .*settings differ from the interrupted run \(sampling\)/);
  });
});
