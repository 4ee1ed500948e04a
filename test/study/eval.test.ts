/**
 * `rac eval` library: hesitation counting, the sample log (torn-line repair, duplicates),
 * metrics (accuracy, unbiased pass@k, lengths, per family), grading of math / tiny / code through
 * a scripted backend, resume and the settings manifest.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import {
  computeMetrics,
  countHesitations,
  loadEvalProblems,
  parseTests,
  passKs,
  readSampleLog,
  runEval,
  samplesPath,
  wallSeconds,
  type EvalConfig,
  type SampleRecord,
} from '../../src/study/eval.ts';
import { passAtK } from '../../src/tasks/passk.ts';
import { sandboxAvailable } from '../../src/tasks/sandbox.ts';
import { ScriptedBackend } from '../helpers/backends.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';

function rec(p: Partial<SampleRecord> & { problem_id: string; sample: number }): SampleRecord {
  return {
    index: 0,
    family: null,
    correct: false,
    extracted: null,
    tokens: 10,
    think_tokens: 0,
    closed_think: false,
    finish_reason: 'stop',
    hesitations: { wait: 0, alternatively: 0, hmm: 0, but_wait: 0 },
    text: '',
    run: 'r1',
    elapsed: 1,
    ...p,
  };
}

const SAMPLING = { temperature: 0.6, topP: 0.95, topK: 0, maxNewTokens: 64, seed: 1 };

let tok: RacTokenizer;
before(async () => {
  tok = await RacTokenizer.load(checkpoint({ family: 'qwen2', seed: 5, layers: 1, hidden: 32, heads: 2 }));
});

describe('hesitation words', () => {
  it('counts whole words case-insensitively, "But wait" apart from "Wait", without double counting', () => {
    const h = countHesitations(
      'Wait, so 3. But wait, 4? WAIT. Hmm... hmmm. Alternatively: but,wait. awaited waits wait-list Hm Hmmingbird',
    );
    assert.deepEqual(h, { wait: 3, alternatively: 1, hmm: 2, but_wait: 2 });
    assert.deepEqual(countHesitations(''), { wait: 0, alternatively: 0, hmm: 0, but_wait: 0 });
  });
});

describe('metrics', () => {
  it('accuracy is the mean over problems of the mean over samples; pass@k is unbiased', () => {
    // p1: 1 of 4 correct, p2: 4 of 4, p3: 0 of 4 — but p1 has more samples than p2? no: all K=4.
    const rs: SampleRecord[] = [];
    const correct = { p1: [true, false, false, false], p2: [true, true, true, true], p3: [false, false, false, false] };
    for (const [id, cs] of Object.entries(correct))
      cs.forEach((c, i) =>
        rs.push(
          rec({ problem_id: id, sample: i, correct: c, tokens: c ? 10 : 30, extracted: c ? '1' : null, family: id === 'p3' ? 'b' : 'a' }),
        ),
      );
    rs[5]!.finish_reason = 'length';
    rs[2]!.hesitations = { wait: 2, alternatively: 1, hmm: 0, but_wait: 1 };
    const { metrics: m, perFamily } = computeMetrics(rs, 4, 2);
    assert.equal(m.accuracy, (0.25 + 1 + 0) / 3);
    assert.deepEqual(Object.keys(m.pass_at_k), ['1', '2', '4']);
    assert.equal(m.pass_at_k['1'], m.accuracy);
    assert.equal(m.pass_at_k['2'], (passAtK(4, 1, 2) + 1 + 0) / 3);
    assert.equal(m.pass_at_k['2'], (0.5 + 1) / 3);
    assert.equal(m.pass_at_k['4'], 2 / 3);
    assert.equal(m.mean_tokens.all, (5 * 10 + 7 * 30) / 12);
    assert.equal(m.mean_tokens.correct, 10);
    assert.equal(m.mean_tokens.incorrect, 30);
    assert.equal(m.truncated, 1 / 12);
    assert.equal(m.boxed, 5 / 12);
    assert.equal(m.hesitations.total, 4);
    assert.equal(m.hesitations.per_1k_tokens, (1000 * 4) / 260);
    assert.equal(m.tokens_per_second, 260 / 2);
    assert.equal(m.problems, 3);
    assert.deepEqual(perFamily, {
      a: {
        accuracy: 0.625,
        mean_tokens: (5 * 10 + 3 * 30) / 8,
        truncated: 1 / 8,
        n: 2,
        pass_at_k: { '1': 0.625, '2': (passAtK(4, 1, 2) + 1) / 2, '4': 1 },
        hesitations_per_sample: 4 / 8,
      },
      b: { accuracy: 0, mean_tokens: 30, truncated: 0, n: 1, pass_at_k: { '1': 0, '2': 0, '4': 0 }, hesitations_per_sample: 0 },
    });
    assert.equal(computeMetrics([rec({ problem_id: 'x', sample: 0 })], 1, 1).perFamily, undefined);
  });

  it('pass@k ks are powers of two up to K, plus K', () => {
    assert.deepEqual(passKs(1), [1]);
    assert.deepEqual(passKs(8), [1, 2, 4, 8]);
    assert.deepEqual(passKs(6), [1, 2, 4, 6]);
  });

  it('wall time adds the runs of a resumed evaluation', () => {
    const rs = [
      rec({ problem_id: 'a', sample: 0, run: 'r1', elapsed: 3 }),
      rec({ problem_id: 'a', sample: 1, run: 'r1', elapsed: 5 }),
      rec({ problem_id: 'b', sample: 0, run: 'r2', elapsed: 2 }),
    ];
    assert.equal(wallSeconds(rs), 7);
    assert.equal(wallSeconds(rs, { run: 'r2', seconds: 4 }), 9);
  });
});

describe('sample log', () => {
  it('repairs a torn last line, drops duplicates, refuses a corrupt complete line (last or not)', () => {
    const dir = tempDir('evallog');
    const p = join(dir, 'r.json.samples.jsonl');
    const a = JSON.stringify(rec({ problem_id: 'a', sample: 0 }));
    const b = JSON.stringify(rec({ problem_id: 'b', sample: 0, correct: true }));
    writeFileSync(p, `${a}\n${b}\n${a}\n${b.slice(0, 20)}`);
    const rs = readSampleLog(p);
    assert.deepEqual(
      rs.map((r) => r.problem_id),
      ['a', 'b'],
    );
    assert.equal(readFileSync(p, 'utf8'), `${a}\n${b}\n${a}\n`, 'torn tail truncated away');
    // A complete line that does not parse is not a torn write (a crash cannot end a line it cut):
    // refused like trace's, naming the line, and the file is left as it is.
    writeFileSync(p, `${a}\n{"problem_id": tru\n`);
    assert.throws(() => readSampleLog(p), /r\.json\.samples\.jsonl:2: corrupt sample record .*delete the file to start over/);
    assert.equal(readFileSync(p, 'utf8'), `${a}\n{"problem_id": tru\n`);
    writeFileSync(p, `${a}\nnot json\n${b}\n`);
    assert.throws(() => readSampleLog(p), /corrupt sample record/);
    assert.deepEqual(readSampleLog(join(dir, 'absent')), []);
  });
});

describe('datasets', () => {
  it('reads JSONL and JSON rows with column names; ids default to row numbers; tests in both layouts', async () => {
    const dir = tempDir('evalds');
    const jl = join(dir, 'd.jsonl');
    writeFileSync(jl, '{"q": "1+1", "a": 2, "fam": "x"}\n\n{"q": "2+2", "a": "4"}\n');
    const cols = { prompt: 'q', answer: 'a', family: 'fam' };
    const ps = (await loadEvalProblems(jl, 'math', cols)).problems;
    assert.deepEqual(
      ps.map((p) => [p.index, p.id, p.prompt, p.answer, p.family]),
      [
        [0, '0', '1+1', '2', 'x'],
        [1, '1', '2+2', '4', null],
      ],
    );
    assert.equal((await loadEvalProblems(jl, 'math', cols, 1)).problems.length, 1);
    await assert.rejects(loadEvalProblems(jl, 'math', { prompt: 'prompt' }), /no column "prompt"/);
    const js = join(dir, 'd.json');
    writeFileSync(js, JSON.stringify([{ id: 'c1', problem: 'p', tests: JSON.stringify({ inputs: ['1\n'], outputs: ['2\n'] }) }]));
    const code = await loadEvalProblems(js, 'code');
    assert.deepEqual(code.problems[0]!.tests, [{ input: '1\n', output: '2\n' }]);
    assert.equal(code.problems[0]!.id, 'c1');
    assert.equal(code.columns.prompt, 'problem');
    await assert.rejects(loadEvalProblems(js, 'math'), /answer/);
    assert.deepEqual(parseTests([{ input: 'a', output: 'b' }], 'x'), [{ input: 'a', output: 'b' }]);
    assert.throws(() => parseTests([{ input: 1 }], 'x'), /string input and output/);
  });
});

function config(dir: string, dataset: string, task: EvalConfig['task'], samples: number, extra: Partial<EvalConfig> = {}): EvalConfig {
  return { model: 'scripted-model', dataset, task, samples, sampling: SAMPLING, out: join(dir, 'results.json'), ...extra };
}

describe('runEval with a scripted backend', () => {
  it('grades math answers symbolically, records samples, and resumes without regenerating', async () => {
    const dir = tempDir('evalmath');
    const ds = join(dir, 'math.jsonl');
    writeFileSync(
      ds,
      [
        { id: 'half', prompt: 'What is 1/2?', answer: '\\frac{1}{2}', family: 'frac' },
        { id: 'pi', prompt: 'Area of the unit circle?', answer: '\\pi', family: 'geo' },
        { id: 'int', prompt: 'Interval?', answer: '(0, 1]', family: 'geo' },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const answers: Record<number, string[]> = {
      0: ['<think>Hmm. Wait, 1/2.</think> So \\boxed{0.5}', '<think>But wait</think>\\boxed{\\dfrac{1}{2}}', 'no box at all'],
      1: ['\\boxed{3.14}', '<think>', '\\boxed{\\pi}'],
      2: ['\\boxed{(0,1]}', '\\boxed{[0,1]}', '\\boxed{(0, 1)}'],
    };
    const script = (i: number, s: number) => ({
      text: answers[i]![s]!,
      finish: (answers[i]![s] === '<think>' ? 'length' : 'stop') as 'stop' | 'length',
    });
    const first = new ScriptedBackend(script, 2);
    await assert.rejects(runEval(config(dir, ds, 'math', 3), first, tok), /backend died/);
    assert.equal(existsSync(join(dir, 'results.json')), false, 'no results.json before the end');
    assert.equal(readSampleLog(samplesPath(join(dir, 'results.json'))).length, 6);

    const second = new ScriptedBackend(script);
    const res = await runEval(config(dir, ds, 'math', 3), second, tok);
    assert.deepEqual(second.calls, [{ index: 2, n: 3 }], 'only the unfinished problem is generated again');
    assert.deepEqual(
      res.samples.map((s) => [s.problem_id, s.sample, s.correct]),
      [
        ['half', 0, true],
        ['half', 1, true],
        ['half', 2, false],
        ['pi', 0, false],
        ['pi', 1, false],
        ['pi', 2, true],
        ['int', 0, true],
        ['int', 1, false],
        ['int', 2, false],
      ],
    );
    const m = res.metrics;
    assert.equal(m.accuracy, (2 / 3 + 1 / 3 + 1 / 3) / 3);
    assert.equal(m.truncated, 1 / 9);
    assert.equal(m.boxed, 7 / 9);
    assert.equal(m.closed_think, 2 / 9);
    assert.equal(m.hesitations.hmm, 1);
    assert.equal(m.hesitations.wait, 1);
    assert.equal(m.hesitations.but_wait, 1);
    assert.ok(m.mean_think_tokens > 0);
    assert.deepEqual(Object.keys(res.per_family!), ['frac', 'geo']);
    assert.equal(res.dataset.problems, 3);
    assert.equal(res.model.fingerprint, 'sha256:scripted');
    const onDisk = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
    assert.deepEqual(onDisk.metrics.pass_at_k, res.metrics.pass_at_k);

    // Changed settings are refused; --limit may change.
    await assert.rejects(
      runEval(config(dir, ds, 'math', 3, { sampling: { ...SAMPLING, seed: 2 } }), new ScriptedBackend(script), tok),
      /settings differ.*sampling/,
    );
    await assert.rejects(runEval(config(dir, ds, 'math', 2), new ScriptedBackend(script), tok), /settings differ.*samples/);
    const third = new ScriptedBackend(script);
    const lim = await runEval(config(dir, ds, 'math', 3, { limit: 1 }), third, tok);
    assert.equal(third.calls.length, 0);
    assert.equal(lim.dataset.problems, 1);
    assert.equal(lim.metrics.accuracy, 2 / 3);
  });

  it('tiny task: exact integer answers', async () => {
    const dir = tempDir('evaltiny');
    const ds = join(dir, 't.jsonl');
    writeFileSync(ds, `${JSON.stringify({ id: 'a', prompt: 'x', answer: '-42', family: 'arith' })}\n`);
    const res = await runEval(
      config(dir, ds, 'tiny', 4),
      new ScriptedBackend((_i, s) => ({ text: ['\\boxed{-42}', '\\boxed{-042}', '\\boxed{42}', '\\boxed{-42.0}'][s]! })),
      tok,
    );
    assert.deepEqual(
      res.samples.map((s) => s.correct),
      [true, true, false, false],
    );
    assert.equal(res.metrics.pass_at_k['4'], 1);
    assert.equal(res.metrics.pass_at_k['2'], passAtK(4, 2, 2));
  });

  it('code task: programs run against stdin/stdout tests in the sandbox', async (t) => {
    const sb = await sandboxAvailable();
    if (!sb.ok) {
      t.skip(`sandbox unavailable: ${sb.reason}`);
      return;
    }
    const dir = tempDir('evalcode');
    const ds = join(dir, 'c.jsonl');
    writeFileSync(
      ds,
      `${JSON.stringify({
        id: 'double',
        prompt: 'double n',
        tests: [
          { input: '2\n', output: '4\n' },
          { input: '5\n', output: '10\n' },
        ],
      })}\n`,
    );
    const programs = [
      '```python\nprint(int(input())*2)\n```',
      '```python\nprint(int(input())+2)\n```',
      'no code',
      '```python\nwhile True: pass\n```',
    ];
    const res = await runEval(
      config(dir, ds, 'code', 4, { codeLimits: { wallMs: 3000, cpuSeconds: 1, memoryMb: 256 } }),
      new ScriptedBackend((_i, s) => ({ text: programs[s]! })),
      tok,
    );
    assert.deepEqual(
      res.samples.map((s) => [s.correct, s.tests_passed]),
      [
        [true, 2],
        [false, 1],
        [false, 0],
        [false, 0],
      ],
    );
    assert.equal(res.metrics.accuracy, 0.25);
    assert.equal(res.metrics.pass_at_k['2'], passAtK(4, 1, 2));
  });

  it('a samples log without a manifest is refused', async () => {
    const dir = tempDir('evalnoman');
    const ds = join(dir, 't.jsonl');
    writeFileSync(ds, `${JSON.stringify({ prompt: 'x', answer: '1' })}\n`);
    appendFileSync(samplesPath(join(dir, 'results.json')), '');
    await assert.rejects(runEval(config(dir, ds, 'tiny', 1), new ScriptedBackend(() => ({ text: '' })), tok), /without a manifest/);
  });
});

describe('length inflation against the dense model (vs_dense)', () => {
  it('mean tokens ÷ dense on the same problems, correct ones on problems both solve, truncation', async () => {
    const dir = tempDir('evallen');
    const ds = join(dir, 't.jsonl');
    writeFileSync(ds, ['1', '2', '3'].map((a, i) => JSON.stringify({ id: `p${i}`, prompt: 'x', answer: a })).join('\n'));
    // tokens = text length (the scripted backend's ids): \boxed{1} is 9 tokens
    const dense = await runEval(
      config(dir, ds, 'tiny', 2, { out: join(dir, 'dense.json') }),
      new ScriptedBackend((i, s) => ({ text: s === 0 ? `\\boxed{${i + 1}}` : `${'.'.repeat(11)}\\boxed{${i === 2 ? 9 : i + 1}}` })),
      tok,
    );
    assert.deepEqual(
      dense.samples.map((s) => [s.tokens, s.correct]),
      [
        [9, true],
        [20, true],
        [9, true],
        [20, true],
        [9, true],
        [20, false],
      ],
    );
    // the compressed model: problem 0 right and twice as long, problem 1 wrong (cut at the budget), problem 2 right
    const texts = [
      ['.'.repeat(9) + '\\boxed{1}', '.'.repeat(31) + '\\boxed{1}'],
      ['.'.repeat(55), '.'.repeat(55)],
      ['\\boxed{3}', '\\boxed{3}'],
    ];
    const res = await runEval(
      config(dir, ds, 'tiny', 2, { out: join(dir, 'pruned.json'), dense: join(dir, 'dense.json') }),
      new ScriptedBackend((i, s) => ({ text: texts[i]![s]!, finish: i === 1 ? 'length' : 'stop' })),
      tok,
    );
    const v = res.vs_dense!;
    assert.equal(v.problems, 3);
    assert.equal(v.mean_tokens, (18 + 40 + 55 + 55 + 9 + 9) / 6);
    assert.equal(v.dense_mean_tokens, (9 + 20 + 9 + 20 + 9 + 20) / 6);
    assert.equal(v.tokens_ratio, v.mean_tokens / v.dense_mean_tokens);
    // correct only, on problems both solve (0 and 2): pruned (18 + 40 + 9 + 9)/4, dense (9 + 20 + 9)/3
    assert.equal(v.problems_both_correct, 2);
    assert.equal(v.tokens_ratio_correct, (18 + 40 + 9 + 9) / 4 / ((9 + 20 + 9) / 3));
    assert.equal(v.truncated, 2 / 6);
    assert.equal(v.dense_truncated, 0);
    assert.equal(JSON.parse(readFileSync(join(dir, 'pruned.json'), 'utf8')).vs_dense.tokens_ratio, v.tokens_ratio);
    // another dataset is refused
    const other = join(dir, 'o.jsonl');
    writeFileSync(other, `${JSON.stringify({ id: 'p0', prompt: 'y', answer: '1' })}\n`);
    await assert.rejects(
      runEval(
        config(dir, other, 'tiny', 1, { out: join(dir, 'o.json'), dense: join(dir, 'dense.json') }),
        new ScriptedBackend(() => ({ text: '' })),
        tok,
      ),
      /the dense results are of another dataset/,
    );
  });
});
