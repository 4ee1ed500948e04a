#!/usr/bin/env -S npx tsx
/**
 * `npm run demo`: the mission on the shipped tiny reasoner (models/tiny-reasoner-v2, issue 17:
 * the self-checking reasoner that says "Wait" when a check fails and writes programs).
 *   1. calibration prompts and held-out evaluation problems from the tiny task generators, all
 *      three families — arith, trace, code (disjoint by construction: a hash of each problem
 *      decides its split); code rows carry their stdin/stdout tests (graded in the sandbox);
 *   2. `rac run`: the dense model's own traces → SparseGPT with prompt-only, RAC and text
 *      calibration (equal token budgets), Wanda and magnitude, at the paper's 40% and 50% → evaluation of
 *      the dense and every pruned model → table, report.html and summary.json in demo-out/.
 *      Each problem gets 2 sampled completions (T 0.6), so the table shows pass@1/pass@2 for code
 *      and hesitations per sample beside mean tokens; 40 eval problems per family (the sandbox
 *      runs each code completion on five tests, ≈ 0.25 s of the 2 cores; `--eval-per-family`
 *      for more); a 480-token generation budget (v2 products run to 438 tokens).
 * A rerun resumes: finished steps are skipped.
 *
 * `--model models/tiny-reasoner` runs the first tiny reasoner (format v1: arith and trace, greedy,
 * 200 problems per family); `--format v1|v2` for another directory.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { ALL_FAMILIES, FAMILIES, generateSplit, type TinyProblem } from '../src/tasks/tiny/index.ts';
import { projectProse } from './prose.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'demo-out' },
    model: { type: 'string' },
    'eval-per-family': { type: 'string' },
    format: { type: 'string' },
    sparsity: { type: 'string', default: '0.4,0.5' },
  },
});
const root = new URL('..', import.meta.url).pathname;
const model = values.model ?? join(root, 'models', 'tiny-reasoner-v2');
if (!existsSync(join(model, 'model.safetensors'))) {
  console.error(
    `demo: ${model} is missing; run \`npm run train:tiny-reasoner${basename(model) === 'tiny-reasoner' ? '' : ' -- --recipe v2'}\` to make it`,
  );
  process.exit(1);
}
const format = values.format ?? (basename(model) === 'tiny-reasoner-v2' ? 'v2' : 'v1');
if (format !== 'v1' && format !== 'v2') {
  console.error(`demo: --format must be v1 or v2, got ${JSON.stringify(format)}`);
  process.exit(2);
}
const v2 = format === 'v2';
const out = join(root, values.out!);
const data = join(out, 'data');
mkdirSync(data, { recursive: true });

const writeJsonl = (path: string, rows: object[]) => {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  renameSync(tmp, path);
};
const interleave = <T>(lists: T[][]): T[] => {
  const outList: T[] = [];
  for (let i = 0; i < Math.max(...lists.map((l) => l.length)); i++) for (const l of lists) if (i < l.length) outList.push(l[i]!);
  return outList;
};
const strip = ({ id, family, prompt, answer, tests }: TinyProblem) => ({ id, family, prompt, answer, ...(tests ? { tests } : {}) });
const perFamily = Number(values['eval-per-family'] ?? (v2 ? '40' : '200'));
const families = v2 ? ALL_FAMILIES : FAMILIES;
const opts = v2 ? { format: 'v2' as const } : {};
// Calibration prompts: traces use the first ones (up to the trace budget); prompt-only
// calibration draws as many as it needs to fill the same token budget.
writeJsonl(join(data, 'calib.jsonl'), interleave(families.map((f) => generateSplit('calib', f, 400, 1, opts).map(strip))));
writeJsonl(join(data, 'eval.jsonl'), interleave(families.map((f) => generateSplit('eval', f, perFamily, 2, opts).map(strip))));
// Plain text (the C4 stand-in): English prose unrelated to the tasks, the project's docs.
writeFileSync(join(data, 'text.md'), projectProse(root));

const sparsities = values.sparsity!.split(',').map(Number);
const recipe = {
  model,
  out: '.',
  task: 'tiny',
  datasets: { calib: 'data/calib.jsonl', eval: 'data/eval.jsonl', text: ['data/text.md'] },
  trace: { n: 2, max_new_tokens: 512, temperature: 0.6, top_p: 0.95, seed: 0, token_budget: 48000, batch_size: 128 },
  calibration: { tokens: 16384, max_seq_len: 512, batch_tokens: 8192 },
  prune: [
    { method: 'sparsegpt', calib: ['prompt', 'rac', 'text'], sparsity: sparsities },
    { method: 'wanda', calib: ['rac'], sparsity: sparsities },
    { method: 'magnitude', sparsity: sparsities },
  ],
  eval: v2
    ? { samples: 2, max_new_tokens: 480, temperature: 0.6, top_p: 0.95, seed: 0, batch_size: 200 }
    : { samples: 1, max_new_tokens: 400, temperature: 0, top_p: 1, seed: 0, batch_size: 200 },
};
writeFileSync(join(out, 'recipe.json'), JSON.stringify(recipe, null, 2) + '\n');
console.error(`demo: recipe → ${join(out, 'recipe.json')}`);
const r = spawnSync(process.execPath, [join(root, 'bin/rac.js'), 'run', '--config', join(out, 'recipe.json')], { stdio: 'inherit' });
process.exit(r.status ?? 1);
