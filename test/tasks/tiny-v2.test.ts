/**
 * Format v2 of the tiny tasks (issue 17): self-checking scratchpads with injected, loss-masked
 * errors (arith, trace), the code family, and v1 left exactly as the shipped model's recipe.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batchFeeds, encodeExample, makeTokenizer, trainPool } from '../../scripts/train/data.ts';
import { RECIPES } from '../../scripts/train/recipes.ts';
import { paramSpecs, numelOf, type TinyConfig } from '../../scripts/train/model.ts';
import { countHesitations } from '../../src/study/eval.ts';
import { gradeTiny, thinkSpan } from '../../src/tasks/boxed.ts';
import { extractProgram, runTests } from '../../src/tasks/code.ts';
import { generateSplit, HESITATION_PHRASES, parseHesitation, type Family, type TinyProblem } from '../../src/tasks/tiny/index.ts';
import type { RacTokenizer } from '../../src/io/tokenizer.ts';

const N = 1500;
const cache = new Map<string, TinyProblem[]>();
function v2(split: 'train' | 'calib' | 'eval', f: Family, n = N, seed = 7): TinyProblem[] {
  const key = `${split}/${f}/${n}/${seed}`;
  let v = cache.get(key);
  if (!v) cache.set(key, (v = generateSplit(split, f, n, seed, { format: 'v2' })));
  return v;
}
const v1Of = (p: TinyProblem, split: 'train' | 'calib' | 'eval', seed = 7) =>
  generateSplit(split, p.family, N, seed).find((q) => q.prompt === p.prompt)!;

const scratchLines = (p: TinyProblem) => thinkSpan(p.completion).thinkText.replace(/^\n/, '').replace(/\n$/, '').split('\n');
const pad2 = (n: number) => String(n).padStart(2, '0');

// ---------------------------------------------------------------------------------------------
// The v2 checkers: verify every check and every error block, then strip the checks and the
// error blocks and require the v1 scratchpad of the same prompt (which test/tasks/tiny.test.ts
// verifies step by step with its own independent checker). Returns the wrong values' positions.

interface Checked {
  /** Character offsets in the completion where each injected wrong value starts, and its text. */
  wrongAt: { at: number; text: string }[];
  hesitations: number;
}

function lineOffsets(p: TinyProblem): number[] {
  const start = p.completion.indexOf('<think>\n') + '<think>\n'.length;
  const offs: number[] = [];
  let at = start;
  for (const l of scratchLines(p)) {
    offs.push(at);
    at += l.length + 1;
  }
  return offs;
}

function checkArithV2(p: TinyProblem, v1: TinyProblem): Checked {
  const lines = scratchLines(p);
  const offs = lineOffsets(p);
  const out: string[] = [];
  const wrongAt: Checked['wrongAt'] = [];
  let hesitations = 0;
  const ADD = /^(\d): (\d)\+(\d)\+(\d)=(\d\d) (\d\d)-(\d)-(\d)=(\d+)( \d+\+\d+ \d+)?$/;
  const SUB = /^(\d): ([01])(\d)-(\d)-([01])=(\d) (\d)\+(\d)\+([01])=(\d\d)( \d+-\d+ \d+)?$/;
  const MUL = /^(\d): (\d)\*(\d)\+(\d)=(\d\d) (\d)\*(\d)\+(\d)=(\d\d)( \d+ \d+)?$/;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    let m: RegExpExecArray | null;
    let step: string | null = null; // the v1 line
    let got = '';
    let want = '';
    let valueAt = -1;
    let value = '';
    let regs: string | undefined;
    if ((m = ADD.exec(line))) {
      const [, k, a, b, c, ss, ss2, b2, c2, back] = m as unknown as string[];
      regs = m[10];
      assert.equal(ss2, ss, `check copies the sum: ${line}`);
      assert.equal(b2, b, line);
      assert.equal(c2, c, line);
      assert.equal(Number(back), Number(ss) - Number(b) - Number(c), `subtract back: ${line}`);
      [got, want] = [back!, a!];
      valueAt = line.indexOf('=') + 1;
      value = ss!;
      step = `${k}: ${a}+${b}+${c}=${ss}${regs ?? ''}`;
    } else if ((m = SUB.exec(line))) {
      const [, k, x, a, b, r, d, d2, b2, r2, back] = m as unknown as string[];
      regs = m[11];
      assert.equal(d2, d, line);
      assert.equal(b2, b, line);
      assert.equal(r2, r, line);
      assert.equal(back, pad2(Number(d) + Number(b) + Number(r)), `add back: ${line}`);
      [got, want] = [back!, `${x}${a}`];
      valueAt = line.indexOf('=') + 1;
      value = d!;
      step = `${k}: ${x}${a}-${b}-${r}=${d}${regs ?? ''}`;
    } else if ((m = MUL.exec(line))) {
      const [, k, a, d, c, ss, d2, a2, c2, again] = m as unknown as string[];
      regs = m[10];
      assert.equal(d2, d, line);
      assert.equal(a2, a, line);
      assert.equal(c2, c, line);
      assert.equal(again, pad2(Number(d) * Number(a) + Number(c)), `second decomposition: ${line}`);
      [got, want] = [again!, ss!];
      valueAt = line.indexOf('=') + 1;
      value = ss!;
      step = `${k}: ${a}*${d}+${c}=${ss}${regs ?? ''}`;
    }
    if (step === null) {
      assert.equal(parseHesitation(line), null, `hesitation without a failed check: ${line}`);
      out.push(line);
      continue;
    }
    if (regs !== undefined) {
      assert.equal(got, want, `a complete step line passes its check: ${line}`);
      out.push(step);
      continue;
    }
    // An error block: the check failed, a hesitation names it, the step is redone.
    assert.notEqual(got, want, `an unfinished step line fails its check: ${line}`);
    const h = parseHesitation(lines[i + 1] ?? '');
    assert.ok(h, `a failed check is followed by a hesitation: ${lines[i + 1]}`);
    assert.equal(h.length, lines[i + 1]!.length, lines[i + 1]);
    assert.deepEqual([h.got, h.want], [got, want], `the hesitation names the mismatch: ${lines[i + 1]}`);
    const redo = lines[i + 2] ?? '';
    assert.ok(redo.startsWith(line.slice(0, valueAt)), `the step is redone: ${redo}`);
    wrongAt.push({ at: offs[i]! + valueAt, text: value });
    hesitations++;
    i++; // the redo line is checked as a normal line next
  }
  assert.deepEqual(out, scratchLines(v1), `stripped of checks and repairs, the v1 scratchpad: ${p.prompt}`);
  assert.equal(p.completion.slice(p.completion.indexOf('</think>')), v1.completion.slice(v1.completion.indexOf('</think>')));
  return { wrongAt, hesitations };
}

function checkTraceV2(p: TinyProblem, v1: TinyProblem): Checked {
  const lines = scratchLines(p);
  const offs = lineOffsets(p);
  const out: string[] = [];
  const wrongAt: Checked['wrongAt'] = [];
  let hesitations = 0;
  const check = (x: number, op: string, y: number, v: number): { text: string; got: number; want: number } =>
    op === '+'
      ? { text: `${v} - ${y} = ${v - y}`, got: v - y, want: x }
      : op === '-'
        ? { text: `${v} + ${y} = ${v + y}`, got: v + y, want: x }
        : { text: `${y} * ${x} = ${x * y}`, got: x * y, want: v };
  lines.forEach((line, k) => {
    const m = /^(line \d+: [a-z] = \S+ [-+*] \S+ ; \S+ ([-+*]) \S+ = )((\d+) [-+*] (\d+) = )(.*)$/.exec(line);
    if (!m) {
      assert.equal(parseHesitation(line.replace(/^.*? ; /, '')), null, line);
      assert.ok(!/Wait|Hmm|Alternatively/.test(line), `no hesitation outside a checked operation: ${line}`);
      out.push(line);
      return;
    }
    const [, head, op, bare, xs, ys] = m as unknown as string[];
    const x = Number(xs);
    const y = Number(ys);
    let rest = m[6]!;
    let pos = head!.length + bare!.length;
    // Error blocks: `W ; <check of W> ; <hesitation> <bare>` (each one failed, named, redone).
    for (;;) {
      const w = /^(\d+) ; /.exec(rest)!;
      const v = Number(w[1]);
      const c = check(x, op!, y, v);
      assert.ok(rest.slice(w[0].length).startsWith(`${c.text} ; `), `the check is computed: ${line}`);
      const after = rest.slice(w[0].length + c.text.length + 3);
      if (c.got === c.want) {
        assert.equal(v, op === '+' ? x + y : op === '-' ? x - y : x * y, `a passing check means the right value: ${line}`);
        const tail = after;
        out.push(`${head}${bare}${v} ; ${tail}`);
        break;
      }
      const h = parseHesitation(after);
      assert.ok(h, `a failed check is followed by a hesitation: ${line}`);
      assert.deepEqual([h.got, h.want], [String(c.got), String(c.want)], `the hesitation names the mismatch: ${line}`);
      assert.ok(after.slice(h.length).startsWith(` ${bare}`), `the operation is redone: ${line}`);
      wrongAt.push({ at: offs[k]! + pos, text: w[1]! });
      hesitations++;
      const skip = w[0].length + c.text.length + 3 + h.length + 1 + bare!.length;
      pos += skip;
      rest = rest.slice(skip);
    }
  });
  assert.deepEqual(out, scratchLines(v1), `stripped of checks and repairs, the v1 scratchpad: ${p.prompt}`);
  assert.equal(p.completion.slice(p.completion.indexOf('</think>')), v1.completion.slice(v1.completion.indexOf('</think>')));
  return { wrongAt, hesitations };
}

const checkV2 = (p: TinyProblem, v1: TinyProblem) => (p.family === 'arith' ? checkArithV2(p, v1) : checkTraceV2(p, v1));

// ---------------------------------------------------------------------------------------------

test("v1 is unchanged: the generators and the train pool match today's (golden hashes), and the tokenizer is the shipped one", async () => {
  const h = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 16);
  // Computed with the generators as of commit f5f9a01 (before format v2 existed).
  const golden: Record<string, string> = {
    'arith/train/0': '657ff46658e0a947',
    'arith/eval/0': '31ecaad6abedbe02',
    'trace/train/0': '0f1cc98f799b8bcd',
    'trace/eval/0': '469414e12eadb296',
    'arith/calib/1': 'ef7ac0701abffed5',
    'trace/calib/1': '7ae1c925e75e8928',
    'arith/train/12345': '5ce5130847dccf58',
    'trace/eval/12345': 'a874beca21e519cd',
  };
  for (const [key, want] of Object.entries(golden)) {
    const [f, s, seed] = key.split('/') as [Family, 'train', string];
    assert.equal(h(generateSplit(s, f, 300, Number(seed))), want, key);
    assert.equal(h(generateSplit(s, f, 300, Number(seed), { format: 'v1' })), want, `${key} with format v1`);
  }
  assert.equal(h(trainPool(300, 0)), 'c94c2d72b6096e84');
  assert.equal(h(trainPool(300, 0, RECIPES.v1.data)), 'c94c2d72b6096e84');
  const dir = mkdtempSync(join(tmpdir(), 'rac-tok-v1-'));
  try {
    await makeTokenizer(dir, 0, RECIPES.v1.tokenizerVocab, RECIPES.v1.data);
    const shipped = new URL('../../models/tiny-reasoner/', import.meta.url).pathname;
    for (const f of ['tokenizer.json', 'tokenizer_config.json'])
      assert.ok(readFileSync(join(dir, f)).equals(readFileSync(join(shipped, f))), f);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => generateSplit('train', 'code', 3, 0), /only in format v2/);
});

test('v2 is unchanged: its generators match the ones v1 and v2 shared blocks were merged from (golden hashes)', () => {
  const h = (x: unknown) => createHash('sha256').update(JSON.stringify(x)).digest('hex').slice(0, 16);
  // Computed with the separate v1 and v2 block builders (before they became one, issue 30).
  const golden: Record<string, string> = {
    'arith/train/0': 'f30a214a46c8f338',
    'arith/eval/0': 'cb2d9988bf7b1a3c',
    'trace/train/0': '5d0f8b2d8e01f229',
    'trace/calib/0': 'e5313656ac22d123',
  };
  for (const [key, want] of Object.entries(golden)) {
    const [f, s, seed] = key.split('/') as [Family, 'train', string];
    assert.equal(h(generateSplit(s, f, 300, Number(seed), { format: 'v2' })), want, key);
  }
  // Half the train problems injected: every kind of wrong step and hesitation is in the hash.
  assert.equal(h(generateSplit('train', 'arith', 300, 0, { format: 'v2', injectRate: 0.5 })), '5d06bdc5ed97adc0');
  assert.equal(h(generateSplit('train', 'trace', 300, 0, { format: 'v2', injectRate: 0.5 })), 'b2a89418934ce60b');
});

test("v2 problems are v1's problems (same prompts, same split) with checked scratchpads and the same answers", () => {
  for (const f of ['arith', 'trace'] as const) {
    for (const split of ['train', 'eval'] as const) {
      const a = generateSplit(split, f, 200, 3);
      const b = generateSplit(split, f, 200, 3, { format: 'v2' });
      assert.deepEqual(
        b.map((p) => [p.id, p.prompt, p.answer]),
        a.map((p) => [p.id, p.prompt, p.answer]),
      );
      b.forEach((p) => assert.deepEqual(gradeTiny(p.completion, p.answer), { correct: true, extracted: p.answer }));
    }
  }
});

test('v2 checker accepts every gold scratchpad; each injected error is exposed by its check, named by a hesitation and redone', () => {
  for (const f of ['arith', 'trace'] as const) {
    const train = v2('train', f);
    const v1 = new Map(generateSplit('train', f, N, 7).map((q) => [q.prompt, q]));
    let injected = 0;
    for (const p of train) {
      const c = checkV2(p, v1.get(p.prompt)!);
      // Exactly the injected wrong values are masked, and nothing else.
      assert.deepEqual(
        (p.noLoss ?? []).map(([a, b]) => ({ at: a, text: p.completion.slice(a, b) })),
        c.wrongAt,
        p.prompt,
      );
      assert.ok(c.hesitations <= 1);
      if (c.hesitations) injected++;
      const hes = countHesitations(p.completion);
      assert.equal(hes.wait + hes.but_wait + hes.hmm + hes.alternatively, c.hesitations, `rac eval counts the hesitation: ${p.completion}`);
    }
    const rate = injected / train.length;
    // 15% of problems are drawn for injection; trace programs without a binary line have no step to inject.
    assert.ok(rate > (f === 'arith' ? 0.12 : 0.1) && rate < 0.18, `${f}: injected ${injected}/${train.length}`);
    // Eval (and calib) problems never carry an injected error.
    for (const split of ['eval', 'calib'] as const) {
      const ps = v2(split, f, 500);
      const v1s = new Map(generateSplit(split, f, 500, 7).map((q) => [q.prompt, q]));
      for (const p of ps) {
        assert.equal(p.noLoss, undefined);
        assert.equal(checkV2(p, v1s.get(p.prompt)!).hesitations, 0);
      }
    }
  }
  // Every phrasing occurs (arith and trace train together).
  const all = [...v2('train', 'arith'), ...v2('train', 'trace')].map((p) => p.completion).join('\n');
  for (const ph of HESITATION_PHRASES) assert.ok(all.includes(ph.slice(0, ph.indexOf('{'))), ph);
});

test('v2 checker rejects corrupted scratchpads', () => {
  const arith = v2('train', 'arith');
  const trace = v2('train', 'trace');
  const v1 = (p: TinyProblem) => v1Of(p, 'train');
  const corrupt = (p: TinyProblem, re: RegExp, f: (...m: string[]) => string) => {
    const c = p.completion.replace(re, f as never);
    assert.notEqual(c, p.completion, `corruption applies: ${re}`);
    return { ...p, completion: c };
  };
  // A wrong column sum whose check still claims to pass.
  const add = arith.find((p) => / \+ /.test(p.prompt) && !p.noLoss)!;
  assert.throws(() =>
    checkV2(
      corrupt(add, /(\n1: \d\+\d\+\d=)(\d)(\d)/, (_m, h, a, b) => `${h}${a}${(Number(b) + 1) % 10}`),
      v1(add),
    ),
  );
  // A check that does not subtract back correctly.
  assert.throws(() =>
    checkV2(
      corrupt(add, /(\n2: \d\+\d\+\d=\d\d \d\d-\d-\d=)(\d)/, (_m, h, d) => `${h}${(Number(d) + 1) % 10}`),
      v1(add),
    ),
  );
  // A product check that copies a wrong value.
  const mul = arith.find((p) => / \* /.test(p.prompt) && !p.noLoss && /\n1: [1-9]\*[2-9]/.test(p.completion))!;
  assert.throws(() =>
    checkV2(
      corrupt(
        mul,
        /(\n1: \d\*\d\+\d=)(\d\d) (\d\*\d\+\d=)(\d\d)/,
        (_m, h, a, h2) => `${h}${pad2((Number(a) + 1) % 100)} ${h2}${pad2((Number(a) + 1) % 100)}`,
      ),
      v1(mul),
    ),
  );
  // An injected error whose hesitation is dropped, or whose redo is wrong.
  const inj = arith.find((p) => p.noLoss && / \+ /.test(p.prompt))!;
  assert.throws(() =>
    checkV2(
      corrupt(inj, /\n(?:Wait|But wait|Hmm|Alternatively)[^\n]*/, () => ''),
      v1(inj),
    ),
  );
  assert.throws(() =>
    checkV2(
      corrupt(inj, /( is not )(\d+)/, (_m, h, d) => `${h}${Number(d) + 1}`),
      v1(inj),
    ),
  );
  // Trace: a wrong result with a passing-looking check, a wrong check, a hesitation with no failure.
  const tr = trace.find((p) => !p.noLoss && /line 2: [a-z] = \S+ \+ /.test(p.completion))!;
  assert.throws(() =>
    checkV2(
      corrupt(tr, /(line 2: [^;]+; [^=]+= [^=]+= )(\d+)/, (_m, h, v) => `${h}${Number(v) + 1}`),
      v1(tr),
    ),
  );
  assert.throws(() =>
    checkV2(
      corrupt(tr, /(line 2: [^;]+; [^;]+; \d+ - \d+ = )(\d+)/, (_m, h, v) => `${h}${Number(v) + 1}`),
      v1(tr),
    ),
  );
  const trInj = trace.find((p) => p.noLoss)!;
  assert.throws(() =>
    checkV2(
      corrupt(trInj, /(?:Wait|But wait|Hmm|Alternatively, redo it),? /, () => ''),
      v1(trInj),
    ),
  );
  assert.throws(() =>
    checkV2(
      corrupt(trInj, /( is not )(\d+)/, (_m, h, d) => `${h}${Number(d) + 1}`),
      v1(trInj),
    ),
  );
});

let tokV2: RacTokenizer | null = null;
let tokDir: string | null = null;
async function v2Tokenizer(): Promise<RacTokenizer> {
  if (!tokV2) {
    tokDir = mkdtempSync(join(tmpdir(), 'rac-tok-v2-'));
    tokV2 = await makeTokenizer(tokDir, 0, RECIPES.v2.tokenizerVocab, RECIPES.v2.data);
  }
  return tokV2;
}
test.after(() => {
  if (tokDir) rmSync(tokDir, { recursive: true, force: true });
});

test('loss mask: the injected wrong tokens are inputs but never targets, every other completion token is a target', async () => {
  const tok = await v2Tokenizer();
  const ps = [
    ...v2('train', 'arith')
      .filter((p) => p.noLoss)
      .slice(0, 40),
    ...v2('train', 'trace')
      .filter((p) => p.noLoss)
      .slice(0, 40),
  ];
  assert.ok(ps.length === 80);
  const cfg: TinyConfig = {
    vocab: tok.vocabSize,
    hidden: 32,
    layers: 1,
    heads: 2,
    kvHeads: 1,
    intermediate: 48,
    ropeTheta: 10000,
    eps: 1e-6,
  };
  for (const p of ps) {
    const ex = encodeExample(tok, p);
    const plain = encodeExample(tok, { ...p, noLoss: undefined });
    assert.deepEqual(ex.ids, plain.ids, 'the mask does not change the tokens');
    const wrongText = p.noLoss!.map(([a, b]) => p.completion.slice(a, b)).join('');
    assert.equal(ex.noLoss!.map((i) => tok.decode([ex.ids[i]!])).join(''), wrongText, 'masked tokens are the wrong value');
    assert.equal(ex.noLoss!.length, wrongText.length, 'one token per wrong digit');
    const { feeds, targets } = batchFeeds(cfg, [[ex]], ex.ids.length + 8, tok.padTokenId!);
    const w = feeds['weights']!.data as Float32Array;
    const tg = feeds['targets']!.data as Float32Array;
    const completionTargets = ex.ids.length - ex.promptLen; // positions promptLen-1 … L-2 predict the completion
    assert.equal(targets, completionTargets - ex.noLoss!.length);
    for (let n = 0; n + 1 < ex.ids.length; n++) {
      const isTarget = n + 1 >= ex.promptLen && !ex.noLoss!.includes(n + 1);
      assert.equal(w[n]! > 0, isTarget, `position ${n} → token ${n + 1} (${JSON.stringify(tok.decode([ex.ids[n + 1]!]))})`);
      if (isTarget) assert.equal(tg[n * cfg.vocab + ex.ids[n + 1]!], w[n]);
    }
    // The wrong tokens are still in the inputs.
    const ids = feeds['ids']!.data as BigInt64Array;
    for (const i of ex.noLoss!) assert.equal(Number(ids[i]!), ex.ids[i]);
  }
});

test('code family: specs, prompts with one example, hand-checked thinking, fenced program, five unseen tests', async () => {
  const ps = v2('train', 'code', 600);
  const kinds = { expr: 0, list: 0, range: 0 };
  for (const p of ps) {
    assert.equal(p.family, 'code');
    assert.match(p.prompt, /^Read [^\n]+\nExample: [^\n]+ gives [^\n]+\.\nWrite a Python program\.$/);
    kinds[/^Read two/.test(p.prompt) ? 'expr' : /^Read n, then/.test(p.prompt) ? 'list' : 'range']++;
    const span = thinkSpan(p.completion);
    assert.ok(span.closed);
    assert.match(span.thinkText, /\ncheck [^\n]+\n$/);
    const prog = extractProgram(p.completion);
    assert.deepEqual(prog, { lang: 'python', code: p.answer });
    assert.equal(p.tests!.length, 5);
    assert.equal(new Set(p.tests!.map((t) => t.input)).size, 5, 'distinct test inputs');
    const example = /\nExample: (.*) gives /.exec(p.prompt)![1]!.replace(' then ', '\n');
    for (const t of p.tests!) assert.notEqual(t.input.trim(), example, `tests do not repeat the prompt's example: ${p.prompt}`);
    assert.equal(p.noLoss, undefined);
    assert.equal(countHesitations(p.completion).wait, 0);
  }
  for (const [k, n] of Object.entries(kinds)) assert.ok(n > ps.length / 5, `${k}: ${n}`);
  // The tokenizer is trained on code texts too: program words are single tokens in v2's, not v1's.
  const tok = await v2Tokenizer();
  for (const w of ['print', ' input', ' int', ' range', ' for', ' if'])
    assert.equal(tok.encode(w, { addSpecialTokens: false }).length, 1, `v2 tokenizer: ${JSON.stringify(w)}`);
  const v1tok = JSON.parse(readFileSync(new URL('../../models/tiny-reasoner/tokenizer.json', import.meta.url), 'utf8')) as {
    model: { vocab: Record<string, number> };
  };
  for (const w of ['Ġrange', 'Ġint', 'Ġinput', 'Ġfor']) assert.ok(!(w in v1tok.model.vocab), `v1 tokenizer (unchanged) has no ${w}`);
});

const isRoot = process.platform === 'linux' && process.getuid?.() === 0;
test('gold code programs pass their own tests in the sandbox; a wrong program fails them', {
  skip: isRoot ? false : 'the sandbox needs root (unshare + setpriv)',
}, async () => {
  const ps = v2('eval', 'code', 60);
  const pick = ['Read two', 'Read n, then', 'Read n. For'].flatMap((h) => ps.filter((p) => p.prompt.startsWith(h)).slice(0, 3));
  assert.equal(pick.length, 9);
  const limits = { wallMs: 20_000, cpuSeconds: 5, memoryMb: 512, maxProcesses: 512, maxFileMb: 16 };
  for (const p of pick) {
    const r = await runTests(extractProgram(p.completion), p.tests!, limits);
    assert.ok(r.passed, `${p.prompt}\n${p.answer}\n${JSON.stringify(r.results)}`);
  }
  const bad = { lang: 'python' as const, code: pick[0]!.answer.replace(/print\((.*)\)$/, 'print($1 + 1)') };
  assert.equal((await runTests(bad, pick[0]!.tests!, limits)).passed, false);
});

test('recipe v2 stays within 2.5M parameters and its longest train example fits the sequence', async () => {
  const tok = await v2Tokenizer();
  const cfg: TinyConfig = { ...RECIPES.v2.model, vocab: tok.vocabSize };
  const params = paramSpecs(cfg).reduce((s, p) => s + numelOf(p.shape), 0);
  assert.equal(params, 804_992);
  assert.ok(params <= 2_500_000);
  const pool = trainPool(300, 0, RECIPES.v2.data);
  assert.equal(pool.length, 900);
  assert.deepEqual(
    pool.slice(0, 3).map((p) => p.family),
    ['arith', 'trace', 'code'],
  );
  const longest = Math.max(...pool.map((p) => encodeExample(tok, p).ids.length));
  assert.ok(longest <= RECIPES.v2.seq, `longest example ${longest} tokens`);
});

test('make-tiny-dataset --format v2 writes the v2 splits and code files that rac eval --task code reads', async () => {
  const { execFileSync, spawnSync } = await import('node:child_process');
  const { readdirSync, existsSync } = await import('node:fs');
  const { loadEvalProblems } = await import('../../src/study/eval.ts');
  const dir = mkdtempSync(join(tmpdir(), 'rac-tiny-v2-data-'));
  try {
    const root = new URL('../../', import.meta.url).pathname;
    const script = join(root, 'scripts/make-tiny-dataset.ts');
    execFileSync(
      process.execPath,
      ['--import', 'tsx', script, '--out', dir, '--format', 'v2', '--train', '40', '--calib', '3', '--eval', '6'],
      { cwd: root, stdio: 'pipe' },
    );
    assert.deepEqual(readdirSync(dir).sort(), [
      'calib-code.jsonl',
      'calib.jsonl',
      'eval-code.jsonl',
      'eval.jsonl',
      'train-code.jsonl',
      'train.jsonl',
    ]);
    const code = await loadEvalProblems(join(dir, 'eval-code.jsonl'), 'code');
    assert.equal(code.problems.length, 6);
    const gold = generateSplit('eval', 'code', 6, 0, { format: 'v2' });
    code.problems.forEach((p, i) => {
      assert.equal(p.prompt, gold[i]!.prompt);
      assert.deepEqual(p.tests, gold[i]!.tests);
      assert.equal(p.family, 'code');
    });
    const tiny = await loadEvalProblems(join(dir, 'eval.jsonl'), 'tiny');
    assert.deepEqual(
      tiny.problems.map((p) => p.family),
      ['arith', 'trace', 'arith', 'trace', 'arith', 'trace', 'arith', 'trace', 'arith', 'trace', 'arith', 'trace'],
    );
    const train = readFileSync(join(dir, 'train.jsonl'), 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as TinyProblem);
    assert.deepEqual(
      train.filter((p) => p.family === 'arith'),
      generateSplit('train', 'arith', 40, 0, { format: 'v2' }),
    );
    // Bad input: one line naming the problem, non-zero exit, nothing written.
    const bad = join(dir, 'bad');
    const r = spawnSync(process.execPath, ['--import', 'tsx', script, '--out', bad, '--format', 'v3'], { cwd: root, encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--format must be v1 or v2/);
    assert.ok(!existsSync(bad));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
