/**
 * The tiny-reasoner evaluation's code path (scripts/train/evaluate.ts): sampled completions per
 * problem, programs run on the problems' tests in the sandbox, pass@k and hesitations reported.
 * A random-weight model of the v2 tokenizer writes no program, so every figure is 0 — this checks
 * the plumbing and the shape, not a model.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTokenizer } from '../../scripts/train/data.ts';
import { evaluateFamily, SAMPLED } from '../../scripts/train/evaluate.ts';
import { exportHf } from '../../scripts/train/export.ts';
import { initParams, paramSpecs, type TinyConfig } from '../../scripts/train/model.ts';
import { RECIPES } from '../../scripts/train/recipes.ts';
import { closeModel, loadModel } from '../../src/models/loaded.ts';
import { createRng } from '../../src/tasks/rng.ts';

const isRoot = process.platform === 'linux' && process.getuid?.() === 0;

test('evaluateFamily(code): k samples per problem, sandboxed tests, pass@1 and pass@k', {
  skip: isRoot ? false : 'the sandbox needs root',
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rac-eval-code-'));
  try {
    const tok = await makeTokenizer(join(dir, 'tok'), 0, RECIPES.v2.tokenizerVocab, RECIPES.v2.data);
    const cfg: TinyConfig = {
      vocab: tok.vocabSize,
      hidden: 32,
      layers: 1,
      heads: 2,
      kvHeads: 1,
      intermediate: 48,
      ropeTheta: 10000,
      eps: 1e-6,
    };
    const rng = createRng(3);
    exportHf(
      join(dir, 'model'),
      cfg,
      initParams(paramSpecs(cfg), () => rng.next()),
      join(dir, 'tok'),
    );
    const m = await loadModel(join(dir, 'model'), { threads: 1 });
    try {
      const r = await evaluateFamily(m, 'code', 2, SAMPLED, 0, 8, { samples: 3 });
      assert.equal(r.family, 'code');
      assert.equal(r.n, 2);
      assert.equal(r.samples, 3);
      assert.deepEqual(Object.keys(r.passAt!).sort(), ['1', '3']);
      assert.equal(r.accuracy, 0);
      assert.equal(r.passAt!['1'], 0);
      assert.equal(r.errors.length, 6, 'every sample graded (and failed)');
      assert.ok(r.meanCompletionTokens > 0);
      assert.ok(r.hesitationsPerSample >= 0);
    } finally {
      await closeModel(m);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
