import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadRecipe, RecipeError, runRecipe } from '../../src/study/run.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { writeTinyDataset } from '../helpers/datasets.ts';

function study(): string {
  const d = tempDir('run');
  writeTinyDataset(join(d, 'calib.jsonl'), 'calib', 12);
  writeTinyDataset(join(d, 'eval.jsonl'), 'eval', 3);
  writeFileSync(join(d, 'text.txt'), 'Plain prose about nothing in particular, for calibration. '.repeat(80));
  const model = checkpoint({ family: 'qwen2', seed: 21, layers: 2, hidden: 64 });
  writeFileSync(
    join(d, 'recipe.yaml'),
    `model: ${model}
out: out
task: tiny
datasets: {calib: calib.jsonl, eval: eval.jsonl, text: [text.txt]}
trace: {n: 2, max_new_tokens: 12, token_budget: 800, batch_size: 8}
calibration: {tokens: 600, max_seq_len: 96, batch_tokens: 1024}
prune:
  - {method: sparsegpt, calib: [prompt, rac, text], sparsity: 0.5}
  - {method: magnitude, pattern: '2:4'}
eval: {samples: 1, max_new_tokens: 12, temperature: 0, top_p: 1, batch_size: 8}
`,
  );
  return join(d, 'recipe.yaml');
}

describe('rac run', () => {
  it('runs the study, writes summary.json in the documented shape, and a rerun skips every step', async () => {
    const recipe = loadRecipe(study());
    const log1: string[] = [];
    const r1 = await runRecipe(recipe, { log: (l) => log1.push(l) }, 'test');
    const s = JSON.parse(readFileSync(r1.summary, 'utf8'));
    assert.equal(s.eval_problems, 6);
    assert.equal(typeof s.dense.accuracy, 'number');
    assert.equal(typeof s.dense.mean_tokens, 'number');
    const rows = s.rows as {
      method: string;
      calib: string | null;
      sparsity?: number;
      pattern?: string;
      calib_tokens: number | null;
      accuracy: number;
      mean_tokens: number;
    }[];
    assert.deepEqual(rows.map((r) => `${r.method}/${r.calib}/${r.sparsity ?? r.pattern}`).sort(), [
      'magnitude/null/2:4',
      'sparsegpt/prompt/0.5',
      'sparsegpt/rac/0.5',
      'sparsegpt/text/0.5',
    ]);
    for (const r of rows.filter((x) => x.method === 'sparsegpt'))
      assert.equal(r.calib_tokens, 600, 'equal calibration budgets across modes');
    assert.ok(existsSync(r1.report));
    assert.equal(r1.results.length, 5);
    // The dense model is evaluated by the backend that wrote its traces (same batch size), before pruning.
    const denseAt = log1.findIndex((l) => /\(1\/5\) dense: accuracy/.test(l));
    assert.ok(denseAt > 0 && denseAt < log1.findIndex((l) => l.startsWith('[2/4]')), log1.join('\n'));

    const log2: string[] = [];
    const r2 = await runRecipe(recipe, { log: (l) => log2.push(l) }, 'test');
    assert.equal(log2.filter((l) => l.includes('skipped')).length, 4 + 5, log2.join('\n'));
    assert.deepEqual(JSON.parse(readFileSync(r2.summary, 'utf8')).rows, s.rows);

    // With another evaluation batch size the dense model gets its own backend in step 3.
    const log3: string[] = [];
    await runRecipe({ ...recipe, eval: { ...recipe.eval, batchSize: 4 } }, { log: (l) => log3.push(l) }, 'test');
    const dense3 = log3.findIndex((l) => /\(1\/5\) dense: accuracy/.test(l));
    assert.ok(dense3 > log3.findIndex((l) => l.startsWith('[3/4]')), log3.join('\n'));
  });

  it('rejects a bad recipe with the file and the problem', () => {
    const p = study();
    writeFileSync(p, readFileSync(p, 'utf8').replace('method: magnitude', 'method: obs'));
    assert.throws(
      () => loadRecipe(p),
      (e: unknown) => e instanceof RecipeError && e.message.includes(p) && /prune\[1\]\.method/.test(e.message),
    );
    writeFileSync(p, 'model: x\nunknown_key: 1\n');
    assert.throws(() => loadRecipe(p), /unknown key "unknown_key"/);
    // eval.code_limits: partial limits over the defaults; absent, nothing is added (result names stay put).
    const q = study();
    assert.equal(loadRecipe(q).eval.codeLimits, undefined);
    const withLimits = readFileSync(q, 'utf8').replace(
      'top_p: 1, batch_size: 8}\n',
      'top_p: 1, batch_size: 8, code_limits: {cpu_seconds: 2, memory_mb: 512}}\n',
    );
    assert.notEqual(withLimits, readFileSync(q, 'utf8'));
    writeFileSync(q, withLimits);
    assert.deepEqual(loadRecipe(q).eval.codeLimits, { wallMs: 10_000, cpuSeconds: 2, memoryMb: 512 });
    writeFileSync(q, withLimits.replace('cpu_seconds: 2', 'cpu_secs: 2'));
    assert.throws(
      () => loadRecipe(q),
      (e: unknown) => e instanceof RecipeError && e.message.includes(q) && /code_limits.*unknown key "cpu_secs"/.test(e.message),
    );
    writeFileSync(q, withLimits.replace('cpu_seconds: 2', 'cpu_seconds: 0'));
    assert.throws(() => loadRecipe(q), /eval\.code_limits\.cpu_seconds" must be a positive number/);
    // A misspelt setting in any section is refused rather than silently defaulted.
    const good = readFileSync(study(), 'utf8');
    for (const [from, to, where] of [
      ['token_budget: 800', 'token_budgt: 800', 'trace'],
      ['batch_tokens: 1024', 'batch_token: 1024', 'calibration'],
      ['max_new_tokens: 12, temperature: 0', 'max_new_token: 12, temperature: 0', 'eval'],
      ['text: [text.txt]', 'texts: [text.txt]', 'datasets'],
    ] as const) {
      writeFileSync(q, good.replace(from, to));
      assert.throws(() => loadRecipe(q), new RegExp(`"${where}": unknown key "${to.split(':')[0]}"`), where);
    }
    writeFileSync(q, `${good}backend: {kind: openai, base_url: http://127.0.0.1:1}\n`);
    assert.throws(() => loadRecipe(q), /"backend": unknown key "base_url"/);
  });
});
