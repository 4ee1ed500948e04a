/**
 * The format-v2 tiny reasoners' bars on a small held-out sample, with rac's engine — issue 17's
 * for models/tiny-reasoner-v2 and issue 29's for the MoE one, models/tiny-moe-reasoner: greedy
 * accuracy ≥ 90% on arith and trace, code pass@1 ≥ 80% and pass@8 ≥ 90% (T 0.6, top-p 0.95,
 * programs run on each problem's tests in the sandbox), ≥ 95% of completions closing </think>
 * with an answer, and the dense model rarely hesitating. Each is skipped until its model is
 * trained (`npm run train:tiny-reasoner -- --recipe v2|moe`, see the models' cards) and, for code,
 * without root (the sandbox needs it).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { evaluateFamily, GREEDY, SAMPLED, type ModeResult } from '../../scripts/train/evaluate.ts';

const isRoot = process.platform === 'linux' && process.getuid?.() === 0;
const N = 64;
const N_CODE = 24;
/**
 * Greedy bars per family, and how often the dense model may hesitate ("rarely": hesitation words
 * per arith/trace completion). The MoE model repairs a slip in about one arith completion in
 * eight (0.127 per completion on 300 problems, its card says so; 0.266 on these first 64;
 * tiny-reasoner-v2 0.000): its test holds 0.4, so a model that hesitates its way through every
 * problem still fails. Issue 29 sets no hesitation bar for it.
 */
const MODELS = [
  { name: 'tiny-reasoner-v2', recipe: 'v2', greedy: { arith: 0.9, trace: 0.9 }, hesitations: 0.1 },
  { name: 'tiny-moe-reasoner', recipe: 'moe', greedy: { arith: 0.9, trace: 0.9 }, hesitations: 0.4 },
] as const;

for (const spec of MODELS) {
  const dir = fileURLToPath(new URL(`../../models/${spec.name}`, import.meta.url));
  const missing = existsSync(`${dir}/model.safetensors`) ? false : `models/${spec.name} is not trained yet (--recipe ${spec.recipe})`;
  const withModel = async <T>(f: (m: LoadedModel) => Promise<T>): Promise<T> => {
    const m = await loadModel(dir);
    try {
      return await f(m);
    } finally {
      await closeModel(m);
    }
  };

  describe(spec.name, () => {
    const { arith, trace } = spec.greedy;
    test(`greedy accuracy ≥ ${100 * arith}% on arith and ≥ ${100 * trace}% on trace, ≥ 95% closed, few hesitations`, {
      skip: missing,
    }, async () => {
      const rs: ModeResult[] = await withModel(async (m) => [
        await evaluateFamily(m, 'arith', N, GREEDY, 0, N),
        await evaluateFamily(m, 'trace', N, GREEDY, 0, N),
      ]);
      for (const r of rs) {
        const bar = spec.greedy[r.family as 'arith' | 'trace'];
        assert.ok(
          r.accuracy >= bar,
          `${r.family}: greedy accuracy ${(100 * r.accuracy).toFixed(1)}% on ${N} eval problems < ${100 * bar}%`,
        );
        assert.ok(r.closedBoxed >= 0.95, `${r.family}: only ${(100 * r.closedBoxed).toFixed(1)}% closed </think> with a boxed answer`);
        assert.ok(
          r.hesitationsPerSample <= spec.hesitations,
          `${r.family}: ${r.hesitationsPerSample.toFixed(3)} hesitations per completion`,
        );
      }
    });

    test('code pass@1 ≥ 80% and pass@8 ≥ 90% (sampled, T 0.6)', {
      skip: missing || (!isRoot ? 'the sandbox needs root' : false),
    }, async () => {
      const r = await withModel((m) => evaluateFamily(m, 'code', N_CODE, SAMPLED, 0, 64, { samples: 8 }));
      assert.ok(r.passAt!['1']! >= 0.8, `code pass@1 ${(100 * r.passAt!['1']!).toFixed(1)}% on ${N_CODE} problems × 8 samples < 80%`);
      assert.ok(r.passAt!['8']! >= 0.9, `code pass@8 ${(100 * r.passAt!['8']!).toFixed(1)}% < 90%`);
      assert.ok(r.closedBoxed >= 0.95, `code: only ${(100 * r.closedBoxed).toFixed(1)}% closed </think> with a program`);
    });
  });
}
