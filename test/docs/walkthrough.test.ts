/**
 * The README's walk-through runs as written: its code block (the one after the
 * `<!-- walkthrough: … -->` marker) is read from README.md and every command in it is run in
 * order in an empty directory — `npx tsx SCRIPT` as `node --import tsx SCRIPT`, `npx rac` as
 * `node bin/rac.js`, repository paths (models/, scripts/) made absolute. Only the counts shrink,
 * so the test takes seconds instead of minutes: each flag in SMALL must appear in the block with
 * a value, and is given the small one. Then the outputs are what the README says they are.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { tempDir } from '../helpers/checkpoints.ts';
import { ROOT } from '../helpers/cli.ts';
import { racArgs, readDocs, shellCommands, shellLines, splitFences } from '../helpers/markdown.ts';

/** The walk-through's counts, shrunk: problems per family, trace and calibration token budgets. */
const SMALL: Record<string, string> = { '--calib': '8', '--eval': '4', '--token-budget': '3000', '--calib-tokens': '2048' };

function walkthrough(): { line: number; words: string[] }[] {
  const readme = readDocs(ROOT)[0]!;
  const marker = readme.lines.findIndex((l) => l.startsWith('<!-- walkthrough:'));
  assert.ok(marker >= 0, 'README.md has a <!-- walkthrough: … --> marker');
  const fence = splitFences(readme).fences.find((f) => f.line > marker + 1);
  assert.ok(fence && fence.lang === 'sh' && fence.line === marker + 2, 'the marker is followed by a ```sh block');
  return shellLines(fence).flatMap(({ line, text }) => shellCommands(text).map((c) => ({ line, words: c.words })));
}

it("the README's walk-through runs: data → trace → prune (RAC and prompt-only) → eval → report", { timeout: 240_000 }, () => {
  const steps = walkthrough();
  assert.ok(steps.length >= 6, `${steps.length} commands in the walk-through`);
  const seen = new Set<string>();
  const cwd = tempDir('walkthrough');
  try {
    for (const { line, words } of steps) {
      const abs = (w: string) => (/^(models|scripts)\//.test(w) ? join(ROOT, w) : w);
      const args = words.map((w, i) => {
        const small = SMALL[words[i - 1] ?? ''];
        if (small !== undefined) {
          seen.add(words[i - 1]!);
          return small;
        }
        return abs(w);
      });
      const rac = racArgs(words);
      let argv: string[];
      if (rac) argv = [join(ROOT, 'bin/rac.js'), ...args.slice(args.length - rac.length)];
      // tsx resolved here: the run's directory has no node_modules
      else if (words[0] === 'npx' && words[1] === 'tsx') argv = ['--import', import.meta.resolve('tsx'), ...args.slice(2)];
      else throw new Error(`README.md:${line}: the walk-through runs rac and npx tsx only, not ${words[0]}`);
      const r = spawnSync(process.execPath, argv, { cwd, encoding: 'utf8', env: { ...process.env, RAC_THREADS: '1' } });
      assert.equal(r.status, 0, `README.md:${line}: ${words.join(' ')}\n${r.stderr}`);
    }
    assert.deepEqual([...seen].sort(), Object.keys(SMALL).sort(), 'every shrunk flag is in the walk-through');

    const walk = join(cwd, 'walk');
    const json = (f: string) => JSON.parse(readFileSync(join(walk, f), 'utf8'));
    const trace = json('traces.jsonl.manifest.json');
    assert.ok(trace.counts.records > 0 && trace.decode_share > 0.5, 'traces of the dense model, mostly decode tokens');
    assert.equal(json('rac-50/rac.json').calibration.mode, 'rac');
    assert.equal(json('prompt-50/rac.json').calibration.mode, 'prompt');
    for (const f of ['dense.json', 'rac-50.json', 'prompt-50.json']) {
      const res = json(f);
      assert.equal(res.dataset.problems, 8, `${f}: 4 problems per family × 2 families`);
      assert.ok(res.metrics.accuracy >= 0 && res.metrics.accuracy <= 1);
    }
    assert.ok(json('rac-50.json').vs_dense, 'rac-50.json compares its lengths with the dense model (--dense)');
    const html = readFileSync(join(walk, 'report.html'), 'utf8');
    assert.match(html, /<svg/);
    assert.match(html, /sparsegpt/);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
