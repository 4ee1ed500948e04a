/**
 * Issue 17's bars for models/tiny-reasoner-v2 on a small held-out sample, with rac's engine:
 * greedy accuracy ≥ 90% on arith and trace, code pass@1 ≥ 80% and pass@8 ≥ 90% (T 0.6, top-p 0.95,
 * programs run on each problem's tests in the sandbox), ≥ 95% of completions closing </think> with
 * an answer, and the dense model rarely hesitating. Skipped until the model is trained
 * (`npm run train:tiny-reasoner -- --recipe v2`, see models/tiny-reasoner-v2/RECIPE.md) and,
 * for code, without root (the sandbox needs it).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { evaluateFamily, GREEDY, SAMPLED, type ModeResult } from '../../scripts/train/evaluate.ts';

const MODEL_DIR = fileURLToPath(new URL('../../models/tiny-reasoner-v2', import.meta.url));
const HAVE_MODEL = existsSync(`${MODEL_DIR}/model.safetensors`);
const isRoot = process.platform === 'linux' && process.getuid?.() === 0;
const N = 64;
const N_CODE = 24;
/** The dense model "rarely hesitates": at most this many hesitation words per completion. */
const DENSE_HESITATIONS = 0.1;

async function withModel<T>(f: (m: LoadedModel) => Promise<T>): Promise<T> {
  const m = await loadModel(MODEL_DIR);
  try {
    return await f(m);
  } finally {
    await closeModel(m);
  }
}

test('tiny-reasoner-v2: greedy accuracy ≥ 90% on arith and trace, ≥ 95% closed, few hesitations', {
  skip: HAVE_MODEL ? false : 'models/tiny-reasoner-v2 is not trained yet',
}, async () => {
  const rs: ModeResult[] = await withModel(async (m) => [
    await evaluateFamily(m, 'arith', N, GREEDY, 0, N),
    await evaluateFamily(m, 'trace', N, GREEDY, 0, N),
  ]);
  for (const r of rs) {
    assert.ok(r.accuracy >= 0.9, `${r.family}: greedy accuracy ${(100 * r.accuracy).toFixed(1)}% on ${N} eval problems < 90%`);
    assert.ok(r.closedBoxed >= 0.95, `${r.family}: only ${(100 * r.closedBoxed).toFixed(1)}% closed </think> with a boxed answer`);
    assert.ok(r.hesitationsPerSample <= DENSE_HESITATIONS, `${r.family}: ${r.hesitationsPerSample.toFixed(3)} hesitations per completion`);
  }
});

test('tiny-reasoner-v2: code pass@1 ≥ 80% and pass@8 ≥ 90% (sampled, T 0.6)', {
  skip: !HAVE_MODEL ? 'models/tiny-reasoner-v2 is not trained yet' : !isRoot ? 'the sandbox needs root' : false,
}, async () => {
  const r = await withModel((m) => evaluateFamily(m, 'code', N_CODE, SAMPLED, 0, 64, { samples: 8 }));
  assert.ok(r.passAt!['1']! >= 0.8, `code pass@1 ${(100 * r.passAt!['1']!).toFixed(1)}% on ${N_CODE} problems × 8 samples < 80%`);
  assert.ok(r.passAt!['8']! >= 0.9, `code pass@8 ${(100 * r.passAt!['8']!).toFixed(1)}% < 90%`);
  assert.ok(r.closedBoxed >= 0.95, `code: only ${(100 * r.closedBoxed).toFixed(1)}% closed </think> with a program`);
});
