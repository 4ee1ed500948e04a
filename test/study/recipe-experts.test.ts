/**
 * Recipes with methods that prune no weight: MoE expert removal (`method: reap|frequency` with
 * `experts`, and `experts` beside another method) and quantization alone (`method: gptq|rtn` with
 * `quantize`).
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRecipe } from '../../src/study/run.ts';
import { tempDir } from '../helpers/checkpoints.ts';

const HEAD = 'model: m\nout: study\ndatasets: {calib: c.jsonl, eval: e.jsonl}\n';
const recipe = (entries: string) => {
  const f = join(tempDir('recipe-experts'), 'r.yaml');
  writeFileSync(f, `${HEAD}prune:\n${entries}`);
  return f;
};

describe('recipes: expert removal', () => {
  it('reads reap / frequency entries and experts beside sparsegpt', () => {
    const r = loadRecipe(
      recipe(
        '  - {method: reap, calib: [prompt, rac], experts: 0.5}\n  - {method: sparsegpt, calib: [rac], sparsity: 0, quantize: q4_0, experts: 0.25, expert_scoring: frequency}\n',
      ),
    );
    assert.equal(r.prune[0]!.method, 'reap');
    assert.deepEqual(r.prune[0]!.targets, [{ kind: 'unstructured', sparsity: 0 }]);
    assert.equal(r.prune[0]!.settings.experts, 0.5);
    assert.equal(r.prune[1]!.settings.expertScoring, 'frequency');
  });
  it('refuses reap without experts, or with a sparsity', () => {
    assert.throws(() => loadRecipe(recipe('  - {method: reap, calib: [rac]}\n')), /prune\[0\]: method reap needs experts/);
    assert.throws(
      () => loadRecipe(recipe('  - {method: frequency, calib: [rac], experts: 2, sparsity: 0.5}\n')),
      /takes no sparsity or pattern/,
    );
  });
  it('reads gptq / rtn entries (quantization alone; rtn needs no calibration)', () => {
    const r = loadRecipe(
      recipe('  - {method: gptq, calib: [rac], quantize: [q4_0, q8_0], experts: 0.5}\n  - {method: rtn, calib: [rac], quantize: q4_k_m}\n'),
    );
    assert.deepEqual(r.prune[0]!.targets, [{ kind: 'unstructured', sparsity: 0 }]);
    assert.deepEqual(r.prune[0]!.quantize, ['q4_0', 'q8_0']);
    assert.deepEqual(r.prune[1]!.calib, []);
  });
  it('refuses gptq without a scheme, with null, or with a sparsity', () => {
    assert.throws(() => loadRecipe(recipe('  - {method: gptq, calib: [rac]}\n')), /prune\[0\]: method gptq quantizes: give quantize/);
    assert.throws(() => loadRecipe(recipe('  - {method: rtn, quantize: [null, q4_0]}\n')), /method rtn quantizes: give quantize/);
    assert.throws(() => loadRecipe(recipe('  - {method: gptq, calib: [rac], sparsity: 0.5, quantize: q4_0}\n')), /only quantizes/);
  });
});
