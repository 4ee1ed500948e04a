/**
 * `rac trace` crash safety, for real: a child `rac trace` (local backend, tiny random checkpoint)
 * is SIGKILLed mid-run twice, then the same command runs to completion. The result must equal an
 * uninterrupted run record for record: no duplicate (prompt_id, sample), no lost record, no
 * corrupt line.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { manifestPath, readTraceFile, type TraceManifest, type TraceRecord } from '../../src/study/trace.ts';
import { generateSplit } from '../../src/tasks/tiny/index.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, startRac } from '../helpers/cli.ts';
import { killChild, waitFor } from '../helpers/wait.ts';

const PROMPTS = 24;
const N = 2;

/** `rac trace …args` in the background, with stack traces on; killed after the tests if still running. */
function start(args: string[]) {
  const run = startRac(['trace', ...args], { env: { RAC_DEBUG: '1' } });
  children.push(run.child);
  return run;
}

/** Complete lines in the file now (0 when absent). */
function completeLines(path: string): number {
  try {
    const b = readFileSync(path);
    let n = 0;
    for (const x of b) if (x === 0x0a) n++;
    return n;
  } catch {
    return 0;
  }
}

async function killWhen(args: string[], out: string, atLeast: number): Promise<number> {
  const { child, exit } = start(args);
  await waitFor(`${atLeast} records in ${out}`, () => completeLines(out) >= atLeast || child.exitCode !== null, { timeoutMs: 45_000 });
  child.kill('SIGKILL');
  const r = await exit;
  assert.equal(r.signal, 'SIGKILL', `the child must die by SIGKILL mid-run (exit ${r.code}); stderr: ${r.stderr}`);
  return completeLines(out);
}

/** Every child this file started, killed when the file's tests end (a failed assertion included). */
const children: ChildProcess[] = [];
after(() => children.forEach(killChild));

describe('rac trace: kill -9 and resume', () => {
  it('two SIGKILLs mid-run, then the same command completes: records equal an uninterrupted run', async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 77, layers: 2, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64 });
    const work = tempDir('trace-kill');
    const ds = join(work, 'calib.jsonl');
    const problems = [...generateSplit('calib', 'arith', PROMPTS / 2, 1), ...generateSplit('calib', 'trace', PROMPTS / 2, 1)];
    writeFileSync(ds, problems.map((p) => JSON.stringify({ id: p.id, prompt: p.prompt, answer: p.answer })).join('\n') + '\n');
    const args = (
      out: string,
    ) => argv`--model ${dir} --dataset ${ds} --n ${N} --max-new-tokens 12 --token-budget 0 --temperature 0.8 --top-p 0.95 --seed 5
        --batch-size 2 --threads 1 --out ${out}`;

    const ref = join(work, 'ref.jsonl');
    const refRun = start(args(ref)).exit; // runs alongside the killed one
    const out = join(work, 'killed.jsonl');
    const first = await killWhen(args(out), out, 1);
    assert.ok(first >= 1 && first < PROMPTS * N, `killed after ${first} records`);
    const second = await killWhen(args(out), out, first + 6);
    assert.ok(second > first && second < PROMPTS * N, `killed again after ${second} records`);
    const fin = await start(args(out)).exit;
    assert.equal(fin.code, 0, fin.stderr);
    assert.match(fin.stdout, /decode share \d+\.\d%/);
    const r = await refRun;
    assert.equal(r.code, 0, r.stderr);

    const got = readTraceFile(out);
    const want = readTraceFile(ref);
    assert.equal(got.tornBytes, 0, 'no torn last line');
    assert.equal(want.records.length, PROMPTS * N);
    const key = (x: TraceRecord) => `${x.prompt_id}#${x.sample}`;
    const keys = got.records.map(key);
    assert.equal(new Set(keys).size, keys.length, 'no duplicate (prompt_id, sample)');
    assert.equal(got.records.length, want.records.length, 'no lost record');
    const refMap = new Map(want.records.map((x) => [key(x), x]));
    for (const x of got.records) assert.deepEqual(x, refMap.get(key(x)), `record ${key(x)}`);
    // every line is one JSON object ending in '\n'
    const text = readFileSync(out, 'utf8');
    assert.ok(text.endsWith('\n'));
    for (const line of text.trimEnd().split('\n')) JSON.parse(line);

    const m = JSON.parse(readFileSync(manifestPath(out), 'utf8')) as TraceManifest;
    const mr = JSON.parse(readFileSync(manifestPath(ref), 'utf8')) as TraceManifest;
    assert.deepEqual(m.counts, mr.counts);
    assert.deepEqual(m.tokens, mr.tokens);
    assert.equal(m.decode_share, mr.decode_share);
    assert.equal(m.status, 'dataset');
  });
});
