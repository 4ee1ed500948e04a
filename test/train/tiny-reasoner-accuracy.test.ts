/**
 * The committed tiny reasoner (models/tiny-reasoner) keeps its held-out greedy accuracy: a small
 * sample of `eval` problems per family, generated and graded with rac's own engine.
 * Skipped when the model directory is absent.
 *
 * Two checks: a regression floor at the committed model's measured level (minus sampling slack
 * for N problems), and issue 4's bar (≥ 90% per family), marked `todo` while the committed model
 * is below it (see models/tiny-reasoner/README.md for the measured figures).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { closeModel, loadModel, type LoadedModel } from '../../src/pipeline/loaded.ts';
import { FAMILIES, type Family } from '../../src/tasks/tiny/index.ts';
import { evaluateFamily, GREEDY, type ModeResult } from '../../scripts/train/evaluate.ts';

const MODEL_DIR = fileURLToPath(new URL('../../models/tiny-reasoner', import.meta.url));
const HAVE_MODEL = existsSync(`${MODEL_DIR}/model.safetensors`);
const N = 32;
/** Issue 4's quality bar. */
const BAR = 0.9;
/** Regression floors on these N problems (the committed model's greedy accuracy on them, minus slack). */
const FLOOR: Record<Family, number> = { arith: 0.9, trace: 0.25 };
/** Set to false once the committed model meets the bar. */
const BELOW_BAR = true;

let results: Promise<Record<Family, ModeResult>> | null = null;
function evaluate(): Promise<Record<Family, ModeResult>> {
  results ??= (async () => {
    const m: LoadedModel = await loadModel(MODEL_DIR);
    try {
      const out = {} as Record<Family, ModeResult>;
      for (const family of FAMILIES) out[family] = await evaluateFamily(m, family, N, GREEDY, 0, N);
      return out;
    } finally {
      await closeModel(m);
    }
  })();
  return results;
}

test('committed tiny reasoner: greedy held-out accuracy does not regress', { skip: !HAVE_MODEL }, async () => {
  const r = await evaluate();
  for (const family of FAMILIES) {
    assert.ok(r[family].accuracy >= FLOOR[family], `${family}: greedy accuracy ${(100 * r[family].accuracy).toFixed(1)}% < floor ${100 * FLOOR[family]}%`);
    assert.ok(r[family].closedBoxed >= 0.9, `${family}: only ${(100 * r[family].closedBoxed).toFixed(1)}% closed </think> with a boxed answer`);
  }
});

test(
  'committed tiny reasoner: greedy held-out accuracy ≥ 90% per family (issue 4 bar)',
  { skip: !HAVE_MODEL, todo: BELOW_BAR ? 'the committed model is below the bar; see models/tiny-reasoner/README.md' : false },
  async () => {
    const r = await evaluate();
    for (const family of FAMILIES) {
      assert.ok(r[family].accuracy >= BAR, `${family}: greedy accuracy ${(100 * r[family].accuracy).toFixed(1)}% on ${N} eval problems`);
    }
  },
);
