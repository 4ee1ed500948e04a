/**
 * The committed tiny reasoner (models/tiny-reasoner) keeps issue 4's bar: greedy accuracy ≥ 90% per
 * family on a sample of held-out `eval` problems, generated and graded with rac's own engine, and
 * (nearly) every completion closes </think> with a boxed answer. Skipped when the model directory
 * is absent. The card (models/tiny-reasoner/README.md) has the figures on 500 problems per family.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { FAMILIES, type Family } from '../../src/tasks/tiny/index.ts';
import { evaluateFamily, GREEDY, type ModeResult } from '../../scripts/train/evaluate.ts';

const MODEL_DIR = fileURLToPath(new URL('../../models/tiny-reasoner', import.meta.url));
const HAVE_MODEL = existsSync(`${MODEL_DIR}/model.safetensors`);
const N = 64;
/** Issue 4's quality bar. */
const BAR = 0.9;

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

test('committed tiny reasoner: greedy held-out accuracy ≥ 90% per family (issue 4 bar)', { skip: !HAVE_MODEL }, async () => {
  const r = await evaluate();
  for (const family of FAMILIES) {
    assert.ok(
      r[family].accuracy >= BAR,
      `${family}: greedy accuracy ${(100 * r[family].accuracy).toFixed(1)}% on ${N} eval problems < ${100 * BAR}%`,
    );
    assert.ok(
      r[family].closedBoxed >= 0.95,
      `${family}: only ${(100 * r[family].closedBoxed).toFixed(1)}% closed </think> with a boxed answer`,
    );
  }
});
