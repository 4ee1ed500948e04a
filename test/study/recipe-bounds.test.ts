/**
 * Recipes and `rac run`'s output under hostile or careless input (issue #24): a recipe is bounded
 * in size before it is parsed, a FIFO is refused rather than waited on, the prune entries are
 * bounded and identical ones deduplicated before any work, and `rac run` never writes into a
 * non-empty directory that is not a rac run directory.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRecipe, RECIPE_LIMITS, RecipeError, runRecipe } from '../../src/study/run.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { racWith } from '../helpers/cli.ts';

const HEAD = 'model: m\nout: study\ndatasets: {calib: c.jsonl, eval: e.jsonl}\n';

describe('recipe bounds', () => {
  it('a recipe over the size limit is refused before it is parsed (before: a 50 MB YAML took 26 s and 2 GB)', () => {
    const f = join(tempDir('recipe-size'), 'big.yaml');
    const pad = `# ${'x'.repeat(1022)}\n`.repeat(8 * 1024); // 8 MiB of comment lines
    writeFileSync(f, `${HEAD}prune:\n  - {method: magnitude, sparsity: 0.5}\n${pad}`);
    const t0 = performance.now();
    assert.throws(
      () => loadRecipe(f),
      (e: unknown) => {
        assert.ok(e instanceof RecipeError, String(e));
        assert.equal(
          e.message,
          `${f}: is ${readFileSync(f).length} bytes, more than the ${RECIPE_LIMITS.maxBytes}-byte limit for a recipe`,
        );
        return true;
      },
    );
    assert.ok(performance.now() - t0 < 1000, `refusing took ${(performance.now() - t0).toFixed(0)} ms`);
    assert.equal(RECIPE_LIMITS.maxBytes, 1 << 20);
  });

  it('prune entries: more than the limit are refused before any is read; identical ones are kept once (before: 600,000 ran for minutes at 3.5 GB)', () => {
    const dir = tempDir('recipe-entries');
    const f = join(dir, 'r.yaml');
    const n = RECIPE_LIMITS.maxPruneEntries + 1;
    writeFileSync(f, `${HEAD}prune:\n${'  - {method: magnitude, sparsity: 0.5}\n'.repeat(n)}`);
    assert.throws(
      () => loadRecipe(f),
      new RegExp(
        `${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: "prune" has ${n} entries; a recipe may have at most ${RECIPE_LIMITS.maxPruneEntries}$`,
      ),
    );
    writeFileSync(
      f,
      `${HEAD}prune:\n${'  - {method: magnitude, sparsity: 0.5}\n'.repeat(3)}  - {sparsity: 0.5, method: magnitude}\n  - {method: magnitude, sparsity: [0.5, 0.5, 0.6]}\n`,
    );
    const r = loadRecipe(f);
    assert.equal(r.prune.length, 2, 'identical entries (in any key order) are one');
    assert.equal(r.duplicatePruneEntries, 3);
    assert.deepEqual(
      r.prune[1]!.targets.map((t) => JSON.stringify(t)),
      [...new Set(r.prune[1]!.targets.map((t) => JSON.stringify(t)))],
      'a repeated target within an entry is one',
    );
    assert.equal(r.prune[1]!.targets.length, 2);
    // The models a recipe makes (entries × targets × modes × quantize) are bounded too.
    const many = Array.from({ length: RECIPE_LIMITS.maxModels + 1 }, (_, i) => (i / (RECIPE_LIMITS.maxModels + 1)).toFixed(6)).join(', ');
    writeFileSync(f, `${HEAD}prune:\n  - {method: magnitude, sparsity: [${many}]}\n`);
    assert.throws(
      () => loadRecipe(f),
      new RegExp(`makes ${RECIPE_LIMITS.maxModels + 1} pruned models; a recipe may make at most ${RECIPE_LIMITS.maxModels}`),
    );
  });

  it('a recipe that is a FIFO is refused at once with one line (before: rac run hung)', async () => {
    const dir = tempDir('recipe-fifo');
    const f = join(dir, 'recipe.yaml');
    execFileSync('mkfifo', [f]);
    const r = await racWith({ timeoutMs: 30_000, killSignal: 'SIGKILL' }, 'run', '--config', f);
    assert.equal(r.killed, false, 'rac run hung on the FIFO');
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, `rac: error: ${f}: is a FIFO, not a regular file\n`);
    assert.equal(r.stdout, '');
  });
});

describe('rac run output directory', () => {
  it("a non-empty --out that is not a rac run directory is refused before anything is written (before: the user's summary.json and report.html were overwritten)", async () => {
    const dir = tempDir('run-out');
    const model = checkpoint({ family: 'qwen2', seed: 23, layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64 });
    writeFileSync(join(dir, 'c.jsonl'), `${JSON.stringify({ id: 'a', prompt: 'Compute 1 + 1.', answer: '2' })}\n`);
    writeFileSync(join(dir, 'e.jsonl'), `${JSON.stringify({ id: 'b', prompt: 'Compute 2 + 2.', answer: '4' })}\n`);
    const out = join(dir, 'mine');
    mkdirSync(out);
    writeFileSync(join(out, 'summary.json'), '{"mine": true}\n');
    writeFileSync(join(out, 'report.html'), '<p>my report</p>\n');
    const f = join(dir, 'recipe.yaml');
    writeFileSync(
      f,
      `model: ${model}\nout: mine\ntask: tiny\ndatasets: {calib: c.jsonl, eval: e.jsonl}\ntrace: {n: 1, max_new_tokens: 2, token_budget: 0}\ncalibration: {tokens: 16, max_seq_len: 16}\nprune:\n  - {method: magnitude, sparsity: 0.5}\neval: {samples: 1, max_new_tokens: 2, temperature: 0}\n`,
    );
    const r = await racWith({ killSignal: 'SIGKILL' }, 'run', '-q', '--threads', '1', '--config', f);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stderr,
      `rac: error: ${out}: not a rac run directory (it holds report.html, summary.json); choose an empty or new "out", or a directory an earlier rac run wrote\n`,
    );
    assert.deepEqual(readdirSync(out).sort(), ['report.html', 'summary.json']);
    assert.equal(readFileSync(join(out, 'summary.json'), 'utf8'), '{"mine": true}\n');
    assert.equal(readFileSync(join(out, 'report.html'), 'utf8'), '<p>my report</p>\n');
    // An empty directory is fine, and the run directory it becomes is accepted again.
    const recipe = loadRecipe(f);
    const fresh = join(dir, 'fresh');
    mkdirSync(fresh);
    await runRecipe({ ...recipe, out: fresh }, { log: () => {} }, 'test', { threads: 1 });
    assert.ok(readdirSync(fresh).includes('rac-run.json'));
    await runRecipe({ ...recipe, out: fresh }, { log: () => {} }, 'test', { threads: 1 });
  });
});
