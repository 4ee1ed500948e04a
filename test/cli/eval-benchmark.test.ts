/**
 * `rac eval --benchmark NAME`: the preset's hub dataset (from an offline cache with a few rows),
 * task and sampling reach the manifest; a flag given on the command line wins; a grader of
 * another task is a usage error.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, racWith } from '../helpers/cli.ts';
import { commitOf, writeCachedRepo } from '../helpers/hub.ts';
import { writeParquet } from '../helpers/parquet.ts';

it('eval --benchmark math500: preset dataset, task, sampling and grader in the manifest; flags override', async () => {
  const model = checkpoint({ family: 'qwen2', seed: 11 });
  const pq = tempDir('cli-bm-pq');
  writeParquet(join(pq, 'm.parquet'), {
    problem: ['What is $1+1$?', 'What is $2+2$?'],
    answer: ['2', '4'],
    unique_id: ['a', 'b'],
  });
  const hub = tempDir('cli-bm-hub');
  const c = commitOf('cli-benchmark');
  writeCachedRepo(
    hub,
    'dataset',
    'HuggingFaceH4/MATH-500',
    c,
    { 'data/test-00000-of-00001.parquet': readFileSync(join(pq, 'm.parquet')) },
    { main: c },
  );
  // The offline hub cache, and two minutes to finish (the helper's default is one).
  const rac = (...args: string[]) => racWith({ env: { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' }, timeoutMs: 120_000 }, ...args);
  const out = join(tempDir('cli-bm'), 'r.json');
  const r = await rac(
    ...argv`eval -q --threads 1 --model ${model} --benchmark math500 --limit 1 --samples 2 --max-new-tokens 3 --out ${out}`,
  );
  assert.equal(r.code, 0, r.stderr);
  const m = JSON.parse(readFileSync(`${out}.manifest.json`, 'utf8'));
  assert.equal(m.task, 'math');
  assert.equal(m.grader, 'math-verify');
  assert.equal(m.benchmark, 'math500');
  assert.equal(m.samples, 2); // the flag, not the preset's 4
  assert.deepEqual([m.sampling.temperature, m.sampling.top_p, m.sampling.max_new_tokens], [0.6, 0.95, 3]);
  const res = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(res.dataset.hub.id, 'HuggingFaceH4/MATH-500');
  assert.equal(res.dataset.problems, 1);
  assert.match(res.samples[0].text, /./);

  const bad = await rac(
    ...argv`eval -q --model ${model} --benchmark math500 --grader livecodebench --out ${join(tempDir('cli-bm2'), 'r.json')}`,
  );
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /grader "livecodebench" does not grade the math task \(math-verify, legacy\)/);
  const none = await rac('eval', '-q', '--model', model, '--out', join(tempDir('cli-bm3'), 'r.json'));
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /give --task \(or --benchmark\)/);
});
