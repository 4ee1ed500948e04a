/**
 * `npm run demo` (CI's first command) runs end to end, shrunk: every count smaller, the same
 * script and recipe shape. Its run directory is new on the first run and a rac run on the second
 * (which resumes), so rac's refusal of an `out` holding other files must not trip over the
 * demo's own recipe and data.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { tempDir } from '../helpers/checkpoints.ts';
import { ROOT } from '../helpers/cli.ts';

const MODEL = join(ROOT, 'models', 'tiny-reasoner-v2');

it('npm run demo: recipe and data beside the run directory, a table and report.html, and a rerun resumes', {
  timeout: 300_000,
  skip: !existsSync(join(MODEL, 'model.safetensors')),
}, () => {
  const dir = tempDir('demo');
  try {
    const out = join(dir, 'demo-out');
    const argv = [
      '--import',
      import.meta.resolve('tsx'),
      join(ROOT, 'scripts/demo.ts'),
      '--out',
      out,
      '--eval-per-family',
      '1',
      '--sparsity',
      '0.5',
      '--trace-budget',
      '1500',
      '--calib-tokens',
      '1024',
    ];
    const env = { ...process.env, RAC_THREADS: '1' };
    for (const pass of ['first', 'rerun']) {
      const r = spawnSync(process.execPath, argv, { cwd: dir, encoding: 'utf8', env });
      assert.equal(r.status, 0, `${pass} run: ${r.stderr.slice(-2000)}`);
      assert.match(r.stdout + r.stderr, /sparsegpt-rac-s50/, `${pass} run prints the table`);
    }
    assert.deepEqual(readdirSync(join(dir, 'demo-out-in')).sort(), ['data', 'recipe.json']);
    assert.ok(existsSync(join(out, 'report.html')));
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
    const rows = summary.rows.map(
      (r: { method: string; calib?: string; sparsity: number }) => `${r.method}-${r.calib ?? ''}-${r.sparsity}`,
    );
    for (const row of ['sparsegpt-prompt-0.5', 'sparsegpt-rac-0.5', 'sparsegpt-text-0.5', 'wanda-rac-0.5'])
      assert.ok(rows.includes(row), `summary.json has ${row}: ${rows}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
