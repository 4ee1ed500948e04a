/**
 * The paper's benchmarks by name (src/tasks/benchmarks.ts): each preset resolves its hub dataset
 * through a cache laid out as huggingface_hub lays it out (a few rows, offline), turns rows into
 * lighteval's prompts, answers and tests, and an evaluation records its benchmark and grader;
 * `rac run` recipes take the names as `datasets.eval`.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { before, describe, it } from 'node:test';
import { resolveDataset } from '../../src/io/hub.ts';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import {
  streamOf,
  type BackendCompletion,
  type BackendRequest,
  type GenerationBackend,
  type GenerationHooks,
} from '../../src/backends/backend.ts';
import { graderFor, loadEvalProblems, runEval } from '../../src/study/eval.ts';
import { loadRecipe, resolveRecipeDatasets } from '../../src/study/run.ts';
import { benchmark, BENCHMARKS, decodePrivateTests, GPQA_INSTRUCTION, MATH_PROMPT } from '../../src/tasks/benchmarks.ts';
import { extractChoice, gradeChoice } from '../../src/tasks/choice.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { commitOf, writeCachedRepo } from '../helpers/hub.ts';
import { writeParquet } from '../helpers/parquet.ts';

/** base64(zlib(pickle(str))) as LiveCodeBench stores private tests (pickle protocol 4, BINUNICODE). */
function encodePrivate(tests: { input: string; output: string }[]): string {
  const body = Buffer.from(JSON.stringify(tests), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(body.length);
  const inner = Buffer.concat([Buffer.from([0x58]), len, body, Buffer.from([0x94, 0x2e])]);
  const frame = Buffer.alloc(8);
  frame.writeBigUInt64LE(BigInt(inner.length));
  return deflateSync(Buffer.concat([Buffer.from([0x80, 0x04, 0x95]), frame, inner])).toString('base64');
}

function parquet(dir: string, name: string, columns: Record<string, string[]>): Buffer {
  const f = join(dir, name);
  writeParquet(f, columns);
  return readFileSync(f);
}

describe('benchmarks: lighteval presets from the hub cache', () => {
  const pq = tempDir('bm-pq');
  const hub = tempDir('bm-hub');
  const c = commitOf('benchmarks');
  const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' };
  writeCachedRepo(
    hub,
    'dataset',
    'HuggingFaceH4/MATH-500',
    c,
    {
      'data/test-00000-of-00001.parquet': parquet(pq, 'math.parquet', {
        problem: ['What is $1+1$?', 'Simplify $\\frac{6}{8}$.', 'Solve $x^2=4$ for $x>0$.'],
        solution: ['$1+1=\\boxed{2}$', '$\\boxed{\\frac34}$', '$x=\\boxed{2}$'],
        answer: ['2', '\\frac{3}{4}', '2'],
        unique_id: ['test/a/1.json', 'test/b/2.json', 'test/c/3.json'],
      }),
    },
    { main: c },
  );
  writeCachedRepo(
    hub,
    'dataset',
    'lighteval/code_generation_lite',
    c,
    {
      'v4_v5/test-00000-of-00001.parquet': parquet(pq, 'lcb.parquet', {
        question_id: ['abc301_a', 'leet_1'],
        question_content: ['Read two integers and print their sum.', 'Return the sum.'],
        starter_code: ['', 'class Solution:\n    def add(self, a: int, b: int) -> int:\n        '],
        public_test_cases: [JSON.stringify([{ input: '1 2\n', output: '3\n', testtype: 'stdin' }]), '[]'],
        private_test_cases: [encodePrivate([{ input: '5 7\n', output: '12\n' }]), encodePrivate([])],
        metadata: ['{}', '{"func_name": "add"}'],
      }),
    },
    { main: c },
  );
  writeCachedRepo(
    hub,
    'dataset',
    'Idavidrein/gpqa',
    c,
    {
      'gpqa_diamond/train-00000-of-00001.parquet': parquet(pq, 'gpqa.parquet', {
        Question: ['  Which is a noble gas?  '],
        'Correct Answer': ['Argon'],
        'Incorrect Answer 1': ['Sodium'],
        'Incorrect Answer 2': ['Iron '],
        'Incorrect Answer 3': ['Carbon'],
        'Record ID': ['rec1'],
      }),
    },
    { main: c },
  );

  let tok: RacTokenizer;
  before(async () => {
    tok = await RacTokenizer.load(checkpoint({ family: 'qwen2', seed: 5, layers: 1, hidden: 32, heads: 2 }));
  });

  it('every preset names its lighteval task, hub dataset, fields and the paper sampling', () => {
    assert.deepEqual([...BENCHMARKS], ['math500', 'aime24', 'aime25', 'gpqa-diamond', 'lcb']);
    assert.deepEqual(benchmark('math500').dataset, { id: 'HuggingFaceH4/MATH-500', config: 'default', split: 'test' });
    assert.deepEqual(benchmark('aime24').dataset, { id: 'HuggingFaceH4/aime_2024', config: 'default', split: 'train' });
    assert.deepEqual(benchmark('aime25').dataset, { id: 'yentinglin/aime_2025', config: 'default', split: 'train' });
    assert.deepEqual(benchmark('gpqa-diamond').dataset, { id: 'Idavidrein/gpqa', config: 'gpqa_diamond', split: 'train' });
    assert.deepEqual(benchmark('lcb').dataset, { id: 'lighteval/code_generation_lite', config: 'v4_v5', split: 'test' });
    for (const name of BENCHMARKS) assert.deepEqual(benchmark(name).sampling, { temperature: 0.6, topP: 0.95, maxNewTokens: 32768 });
    assert.equal(benchmark('lcb').samples, 16);
    assert.equal(benchmark('math500').samples, 4);
    assert.throws(() => benchmark('math-500'), /unknown benchmark "math-500"/);
  });

  it('math500: prompts in lighteval wording, answers from the answer field, graded by Math-Verify rules', async () => {
    const r = await resolveDataset('HuggingFaceH4/MATH-500', { config: 'default', split: 'test' }, { env });
    const loaded = await loadEvalProblems(r.files, 'math', {}, undefined, 'math500');
    assert.equal(loaded.problems.length, 3);
    assert.equal(loaded.problems[1]!.prompt, MATH_PROMPT.replace('{Question}', 'Simplify $\\frac{6}{8}$.'));
    assert.equal(loaded.problems[1]!.answer, '\\frac{3}{4}');
    assert.equal(loaded.problems[1]!.id, 'test/b/2.json');
    const out = join(tempDir('bm-eval'), 'math500.json');
    const answers = [
      'So the answer is $\\boxed{2}$.',
      'Therefore, the final answer is: $\\boxed{0.75}$. I hope it is correct',
      'x = -2 or 2, so $\\boxed{\\pm 2}$',
    ];
    const res = await runEval(
      {
        model: 'scripted',
        dataset: r.files,
        task: 'math',
        benchmark: 'math500',
        samples: 1,
        sampling: { temperature: 0.6, topP: 0.95, topK: 0, maxNewTokens: 64, seed: 0 },
        out,
      },
      new Scripted((i) => answers[i]!),
      tok,
    );
    assert.equal(res.grader, 'math-verify');
    assert.equal(res.benchmark, 'math500');
    assert.deepEqual(
      res.samples.map((s) => [s.correct, s.extracted]),
      [
        [true, '2'],
        [true, '0.75'],
        [false, '\\pm 2'],
      ],
    );
    assert.deepEqual(res.dataset.hub, {
      type: 'dataset',
      id: 'HuggingFaceH4/MATH-500',
      revision: 'main',
      commit: c,
      config: 'default',
      split: 'test',
    });
    const manifest = JSON.parse(readFileSync(`${out}.manifest.json`, 'utf8'));
    assert.equal(manifest.grader, 'math-verify');
    assert.equal(manifest.benchmark, 'math500');
    // The legacy grader on the same samples is another evaluation: a resume with it is refused.
    await assert.rejects(
      runEval(
        {
          model: 'scripted',
          dataset: r.files,
          task: 'math',
          benchmark: 'math500',
          grader: 'legacy',
          samples: 1,
          sampling: { temperature: 0.6, topP: 0.95, topK: 0, maxNewTokens: 64, seed: 0 },
          out,
        },
        new Scripted((i) => answers[i]!),
        tok,
      ),
      /settings differ from the interrupted run \(grader\)|settings differ/,
    );
  });

  it('lcb: public and private tests (zlib + pickle), the stdin prompt; call-based problems left out', async () => {
    assert.deepEqual(decodePrivateTests(encodePrivate([{ input: 'a', output: 'b' }])), [{ input: 'a', output: 'b' }]);
    const r = await resolveDataset('lighteval/code_generation_lite', { config: 'v4_v5', split: 'test' }, { env });
    const loaded = await loadEvalProblems(r.files, 'code', {}, undefined, 'lcb');
    assert.equal(loaded.skipped, 1);
    assert.equal(loaded.problems.length, 1);
    const p = loaded.problems[0]!;
    assert.equal(p.id, 'abc301_a');
    assert.deepEqual(p.tests, [
      { input: '1 2\n', output: '3\n' },
      { input: '5 7\n', output: '12\n' },
    ]);
    assert.match(p.prompt, /^You will be given a question \(problem specification\)/);
    assert.match(p.prompt, /Read the inputs from stdin solve the problem/);
    assert.deepEqual(benchmark('lcb').codeLimits, { wallSeconds: 6, cpuSeconds: 6 });
  });

  it('gpqa-diamond: four choices in a fixed shuffle, the instruction, the gold letter; letters extracted', async () => {
    const r = await resolveDataset('Idavidrein/gpqa', { config: 'gpqa_diamond', split: 'train' }, { env });
    const loaded = await loadEvalProblems(r.files, 'choice', {}, undefined, 'gpqa-diamond');
    const p = loaded.problems[0]!;
    assert.ok(p.prompt.startsWith(`${GPQA_INSTRUCTION}\n\nWhich is a noble gas?\n\nA) `));
    const letter = p.answer!;
    assert.match(p.prompt, new RegExp(`\\n${letter}\\) Argon(\\n|$)`));
    assert.match(p.prompt, /\) Iron(\n|$)/); // choices stripped
    assert.equal(extractChoice('Thinking... the answer could be A or B.\nAnswer: C'), 'C');
    assert.equal(extractChoice('**Final Answer**: the final answer is D'), 'D');
    assert.equal(extractChoice('no letter here'), null);
    assert.equal(gradeChoice(`Answer: ${letter}`, letter).correct, true);
    assert.equal(graderFor('choice'), 'letter');
  });

  it('rac run: datasets.eval takes a benchmark name; its task must match the recipe task', async () => {
    const dir = tempDir('bm-recipe');
    writeFileSync(join(dir, 'calib.jsonl'), '{"problem": "p"}\n');
    const file = join(dir, 'recipe.yaml');
    writeFileSync(
      file,
      'model: m\nout: study\ntask: math\ndatasets: {calib: calib.jsonl, eval: math500}\neval: {grader: legacy}\nprune:\n  - {method: magnitude, sparsity: [0.5]}\n',
    );
    const recipe = loadRecipe(file);
    assert.equal(recipe.datasets.evalBenchmark, 'math500');
    assert.equal(recipe.datasets.eval, 'HuggingFaceH4/MATH-500');
    assert.deepEqual(recipe.datasets.evalSplit, { config: 'default', split: 'test' });
    assert.equal(recipe.eval.samples, 4);
    assert.equal(recipe.eval.grader, 'legacy');
    const resolved = await resolveRecipeDatasets(recipe, { env });
    assert.match(String(resolved.datasets.eval), /data\/test-00000-of-00001\.parquet$/);
    writeFileSync(
      file,
      'model: m\nout: study\ntask: math\ndatasets: {calib: calib.jsonl, eval: lcb}\nprune:\n  - {method: magnitude, sparsity: [0.5]}\n',
    );
    assert.throws(() => loadRecipe(file), /benchmark lcb is a code task, but "task" is math/);
    writeFileSync(
      file,
      'model: m\nout: study\ntask: math\ndatasets: {calib: calib.jsonl, eval: math500}\neval: {grader: exact}\nprune:\n  - {method: magnitude, sparsity: [0.5]}\n',
    );
    assert.throws(() => loadRecipe(file), /grader "exact" does not grade the math task \(math-verify, legacy\)/);
  });
});

/** A backend that answers problem i with text(i). */
class Scripted implements GenerationBackend {
  readonly name = 'scripted';
  readonly fingerprint = 'sha256:scripted';
  constructor(private readonly text: (index: number) => string) {}
  async generate(requests: BackendRequest[], _s: unknown, hooks: GenerationHooks): Promise<void> {
    for (const r of requests) {
      const out: BackendCompletion[] = [];
      for (let i = 0; i < r.n; i++) {
        void streamOf(r.index, r.n, i);
        const t = this.text(r.index);
        out.push({ ids: Array.from({ length: t.length }, (_, j) => j), text: t, finishReason: 'stop' });
      }
      await hooks.onResult(r, out);
    }
  }
  async close(): Promise<void> {}
}
