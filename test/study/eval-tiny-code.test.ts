/**
 * Issue 17 item 4's plumbing: a `tiny` dataset may hold the tiny reasoner's code family (rows with
 * stdin/stdout tests, graded by their tests in the sandbox); results carry per-family pass@k and
 * hesitations per sample, summary.json a `hesitations` figure, and `rac run`'s table both.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, it } from 'node:test';
import { printSummaryTable } from '../../src/cli/commands/run.ts';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { loadEvalProblems, runEval } from '../../src/study/eval.ts';
import { groupRows, loadReportInput, summarize } from '../../src/report/data.ts';
import { passAtK } from '../../src/tasks/passk.ts';
import { sandboxAvailable } from '../../src/tasks/sandbox.ts';
import { generateSplit } from '../../src/tasks/tiny/index.ts';
import { ScriptedBackend } from '../helpers/backends.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';

let tok: RacTokenizer;
before(async () => {
  tok = await RacTokenizer.load(checkpoint({ family: 'qwen2', seed: 5, layers: 1, hidden: 32, heads: 2 }));
});

it('tiny task with code rows: code graded by its tests, per-family pass@k and hesitations, summary and table', async (t) => {
  const sb = await sandboxAvailable();
  if (!sb.ok) {
    t.skip(`sandbox unavailable: ${sb.reason}`);
    return;
  }
  const dir = tempDir('evaltinycode');
  const ds = join(dir, 'eval.jsonl');
  const arith = generateSplit('eval', 'arith', 1, 0, { format: 'v2' })[0]!;
  const code = generateSplit('eval', 'code', 2, 0, { format: 'v2' });
  const rows = [arith, ...code].map(({ id, family, prompt, answer, tests }) => ({
    id,
    family,
    prompt,
    answer,
    ...(tests ? { tests } : {}),
  }));
  writeFileSync(ds, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const loaded = await loadEvalProblems(ds, 'tiny');
  assert.equal(loaded.problems[0]!.tests, null);
  assert.deepEqual(loaded.problems[1]!.tests, code[0]!.tests);

  const fence = (prog: string) => `<think>\nplan\n</think>\n\`\`\`python\n${prog}\n\`\`\``;
  // Problem 1: samples 0 and 1 right; problem 2: only sample 3 right. Arith: 1 of 4, with hesitations.
  const script = (i: number, s: number): string => {
    if (i === 0) return s === 0 ? `<think>Wait, 3 is not 4.</think>\\boxed{${arith.answer}}` : '<think>Hmm, but wait</think>\\boxed{0}';
    const p = code[i - 1]!;
    const right = i === 1 ? s < 2 : s === 3;
    return fence(right ? p.answer : 'print(12345)');
  };
  const res = await runEval(
    {
      model: 'scripted-model',
      dataset: ds,
      task: 'tiny',
      samples: 4,
      sampling: { temperature: 0.6, topP: 0.95, topK: 0, maxNewTokens: 64, seed: 1 },
      out: join(dir, 'results.json'),
      codeLimits: { wallMs: 10_000, cpuSeconds: 2, memoryMb: 256 },
    },
    new ScriptedBackend((i, s) => ({ text: script(i, s) })),
    tok,
  );
  const codeSamples = res.samples.filter((s) => s.family === 'code');
  assert.deepEqual(
    codeSamples.map((s) => s.correct),
    [true, true, false, false, false, false, false, true],
  );
  assert.ok(codeSamples.every((s) => s.tests_total === 5));
  const pf = res.per_family!;
  assert.deepEqual(pf['code']!.pass_at_k, { '1': (0.5 + 0.25) / 2, '2': (passAtK(4, 2, 2) + passAtK(4, 1, 2)) / 2, '4': 1 });
  assert.equal(pf['code']!.hesitations_per_sample, 0);
  assert.deepEqual(pf['arith']!.pass_at_k, { '1': 0.25, '2': passAtK(4, 1, 2), '4': 1 });
  // "Wait" once, then three × ("Hmm" + "but wait") = 7 hesitations over 4 arith samples.
  assert.equal(pf['arith']!.hesitations_per_sample, 7 / 4);
  assert.equal(res.metrics.hesitations.per_sample, 7 / 12);

  const summary = summarize(groupRows(loadReportInput(join(dir, 'results.json'))));
  const dense = summary['dense'] as { hesitations: number; per_family: Record<string, { pass_at_k: Record<string, number> }> };
  assert.equal(dense.hesitations, 7 / 12);
  assert.equal(dense.per_family['code']!.pass_at_k['4'], 1);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  try {
    printSummaryTable(summary);
  } finally {
    process.stdout.write = write;
  }
  const [head, denseLine] = out.trimEnd().split('\n');
  assert.match(head!, /hes\/sample +pass@1 arith +pass@4 arith +pass@1 code +pass@4 code$/);
  assert.match(denseLine!, / 0\.58 +25\.0% +100\.0% +37\.5% +100\.0%$/);
});
