/** examples/library.ts (the library API: prune, then load and generate) runs as its header says. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { ROOT } from '../helpers/cli.ts';
import { randomSequences } from '../helpers/prune.ts';

it('examples/library.ts prunes a checkpoint and generates from the result', () => {
  const dir = tempDir('example');
  const calib = join(dir, 'calib.jsonl');
  writeFileSync(
    calib,
    `${randomSequences(300, 8, 20, 40, 2)
      .map((s) => JSON.stringify({ input_ids: s.ids }))
      .join('\n')}\n`,
  );
  const out = join(dir, 'pruned');
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'examples', 'library.ts'), checkpoint({ family: 'qwen2', seed: 9 }), calib, out],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, RAC_THREADS: '1' },
    },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /pruned 14 Linears to 50\.0% →/);
  const last = JSON.parse(r.stdout.trim().split('\n').pop()!) as { tokens: number };
  assert.equal(last.tokens, 8);
  assert.ok(existsSync(join(out, 'rac.json')));
  const bad = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'examples', 'library.ts'), join(dir, 'missing'), calib, join(dir, 'x')],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  assert.equal(bad.status, 1);
  assert.match(bad.stderr.trim(), /^\w+Error: .*missing/);
});
