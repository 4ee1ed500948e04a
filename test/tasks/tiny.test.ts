import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRng } from '../../src/tasks/rng.ts';
import {
  FAMILIES,
  SPLITS,
  generateProblem,
  generateSplit,
  splitOf,
  type Family,
  type Split,
  type TinyProblem,
} from '../../src/tasks/tiny/index.ts';
import { gradeTiny, lastBoxed, thinkSpan } from '../../src/tasks/boxed.ts';

// ---------------------------------------------------------------------------------------------
// Shared data: 5,000 problems per split per family (generated once).
const N = 5000;
const data = new Map<string, TinyProblem[]>();
function split(s: Split, f: Family): TinyProblem[] {
  const key = `${s}/${f}`;
  let v = data.get(key);
  if (!v) {
    v = generateSplit(s, f, N, 12345);
    data.set(key, v);
  }
  return v;
}
function all(f: Family): TinyProblem[] {
  return SPLITS.flatMap((s) => split(s, f));
}

// ---------------------------------------------------------------------------------------------
// Independent oracles (written here, not shared with the generators).

function evalArithPrompt(prompt: string): number {
  const m = /^Compute (\d+) ([-+*]) (\d+)\.$/.exec(prompt);
  assert.ok(m, `bad arith prompt ${JSON.stringify(prompt)}`);
  const a = Number(m[1]);
  const b = Number(m[3]);
  if (m[2] === '+') return a + b;
  if (m[2] === '-') return a - b;
  return a * b;
}

/** Tiny interpreter for the straight-line programs; returns the printed value and every state. */
function runProgram(prompt: string): { printed: number; states: Map<string, number>[]; nVars: number; nLines: number } {
  const lines = prompt.split('\n');
  assert.equal(lines.pop(), 'What does it print?');
  const env = new Map<string, number>();
  const states: Map<string, number>[] = [];
  let printed: number | undefined;
  const value = (tok: string): number => {
    if (/^\d+$/.test(tok)) return Number(tok);
    const v = env.get(tok);
    assert.ok(v !== undefined, `use of unassigned ${tok}`);
    return v;
  };
  for (const line of lines) {
    const pm = /^print\(([a-z])\)$/.exec(line);
    if (pm) {
      printed = value(pm[1] as string);
      continue;
    }
    assert.equal(printed, undefined, 'statement after print');
    const toks = line.split(' ');
    assert.ok(/^[a-z]$/.test(toks[0] as string) && toks[1] === '=', `bad line ${line}`);
    let v: number;
    if (toks.length === 3) v = value(toks[2] as string);
    else {
      assert.equal(toks.length, 5, `bad line ${line}`);
      const x = value(toks[2] as string);
      const y = value(toks[4] as string);
      const op = toks[3];
      v = op === '+' ? x + y : op === '-' ? x - y : op === '*' ? x * y : NaN;
    }
    env.set(toks[0] as string, v);
    states.push(new Map(env));
  }
  assert.ok(printed !== undefined, 'no print');
  return { printed, states, nVars: env.size, nLines: states.length };
}

// ---------------------------------------------------------------------------------------------
// Scratchpad checkers: re-derive every step from the lines alone.

function digits(s: string): number[] {
  return [...s].map(Number);
}

/** Check one W-column add/sub block starting at lines[i]; returns the index after it and the value. */
function checkColumnBlock(lines: string[], i: number, A0: string, B0: string, op: '+' | '-'): { next: number; value: number } {
  const W = A0.length;
  let A = A0;
  let B = B0;
  let R = '0'.repeat(W);
  let c = 0;
  for (let k = 1; k <= W; k++) {
    const line = lines[i++] as string;
    const re = op === '+' ? /^(\d): (\d)\+(\d)\+(\d)=(\d\d) (\d+)\+(\d+) (\d+)$/ : /^(\d): ([01])(\d)-(\d)-([01])=(\d) (\d+)-(\d+) (\d+)$/;
    const m = re.exec(line);
    assert.ok(m, `step line ${JSON.stringify(line)}`);
    assert.equal(Number(m[1]), k, `step index in ${line}`);
    let digit: number;
    if (op === '+') {
      const [, , a, b, cin, ss] = m as unknown as string[];
      assert.equal(Number(a), Number(A[W - 1]), `column digit of A in ${line}`);
      assert.equal(Number(b), Number(B[W - 1]), `column digit of B in ${line}`);
      assert.equal(Number(cin), c, `carry in ${line}`);
      assert.equal(Number(ss), Number(a) + Number(b) + c, `column sum in ${line}`);
      c = Number((ss as string)[0]);
      digit = Number((ss as string)[1]);
    } else {
      const [, , x, a, b, bin, d] = m as unknown as string[];
      assert.equal(Number(a), Number(A[W - 1]), `column digit of A in ${line}`);
      assert.equal(Number(b), Number(B[W - 1]), `column digit of B in ${line}`);
      assert.equal(Number(bin), c, `borrow in ${line}`);
      const raw = Number(a) - Number(b) - c;
      assert.equal(Number(x), raw < 0 ? 1 : 0, `borrow out in ${line}`);
      assert.equal(Number(d), raw + 10 * Number(x), `column difference in ${line}`);
      c = Number(x);
      digit = Number(d);
    }
    A = '0' + A.slice(0, W - 1);
    B = '0' + B.slice(0, W - 1);
    R = String(digit) + R.slice(0, W - 1);
    const [regA, regB, regR] = op === '+' ? [m[6], m[7], m[8]] : [m[7], m[8], m[9]];
    assert.equal(regA, A, `A register in ${line}`);
    assert.equal(regB, B, `B register in ${line}`);
    assert.equal(regR, R, `result register in ${line}`);
  }
  if (op === '-') assert.equal(c, 0, 'final borrow');
  return { next: i, value: Number(`${c}${R}`) };
}

function checkMulDigitBlock(lines: string[], i: number, A0: string, d: number): { next: number; value: number } {
  const W = A0.length;
  let A = A0;
  let R = '0'.repeat(W);
  let c = 0;
  for (let k = 1; k <= W; k++) {
    const line = lines[i++] as string;
    const m = /^(\d): (\d)\*(\d)\+(\d)=(\d\d) (\d+) (\d+)$/.exec(line);
    assert.ok(m, `mul step line ${JSON.stringify(line)}`);
    const [, idx, a, dd, cin, ss, regA, regR] = m as unknown as string[];
    assert.equal(Number(idx), k);
    assert.equal(Number(a), Number(A[W - 1]), `multiplicand digit in ${line}`);
    assert.equal(Number(dd), d, `multiplier digit in ${line}`);
    assert.equal(Number(cin), c, `carry in ${line}`);
    assert.equal(Number(ss), Number(a) * d + c, `product in ${line}`);
    c = Number((ss as string)[0]);
    A = '0' + A.slice(0, W - 1);
    R = (ss as string)[1] + R.slice(0, W - 1);
    assert.equal(regA, A, `A register in ${line}`);
    assert.equal(regR, R, `result register in ${line}`);
  }
  return { next: i, value: Number(`${c}${R}`) };
}

/** Verify an arith scratchpad step by step from the prompt alone; returns the value it derives. */
function checkArithScratch(p: TinyProblem): number {
  const m = /^Compute (\d+) ([-+*]) (\d+)\.$/.exec(p.prompt);
  assert.ok(m);
  const a = Number(m[1]);
  const op = m[2] as '+' | '-' | '*';
  const b = Number(m[3]);
  const { closed, thinkText } = thinkSpan(p.completion);
  assert.ok(closed);
  const lines = thinkText.replace(/^\n/, '').replace(/\n$/, '').split('\n');
  const pad = (n: number, w: number) => String(n).padStart(w, '0');
  let i = 0;
  let value: number;
  if (op === '+' || op === '-') {
    const neg = op === '-' && a < b;
    const [x, y] = neg ? [b, a] : [a, b];
    const header = `${pad(x, 5)}${op}${pad(y, 5)}`;
    assert.equal(lines[i++], neg ? `-(${header})` : header);
    const blk = checkColumnBlock(lines, i, pad(x, 5), pad(y, 5), op);
    i = blk.next;
    value = neg ? -blk.value : blk.value;
  } else {
    assert.equal(lines[i++], `${pad(a, 3)}*${pad(b, 2)}`);
    const [d1, d0] = digits(pad(b, 2)) as [number, number];
    assert.equal(lines[i++], `${pad(a, 3)}*${d0}`);
    const p0 = checkMulDigitBlock(lines, i, pad(a, 3), d0);
    i = p0.next;
    assert.equal(lines[i++], `=${p0.value}`);
    assert.equal(lines[i++], `${pad(a, 3)}*${d1}0`);
    const p1 = checkMulDigitBlock(lines, i, pad(a, 3), d1);
    i = p1.next;
    assert.equal(lines[i++], `=${p1.value * 10}`);
    assert.equal(lines[i++], `${pad(p0.value, 5)}+${pad(p1.value * 10, 5)}`);
    const s = checkColumnBlock(lines, i, pad(p0.value, 5), pad(p1.value * 10, 5), '+');
    i = s.next;
    value = s.value;
  }
  assert.equal(lines[i++], `=${value}`);
  assert.equal(i, lines.length, 'extra scratchpad lines');
  return value;
}

function checkTraceScratch(p: TinyProblem): void {
  const run = runProgram(p.prompt);
  const prog = p.prompt.split('\n').slice(0, run.nLines);
  const { closed, thinkText } = thinkSpan(p.completion);
  assert.ok(closed);
  const lines = thinkText.replace(/^\n/, '').replace(/\n$/, '').split('\n');
  assert.equal(lines.length, run.nLines + 1);
  run.states.forEach((state, k) => {
    const line = lines[k] as string;
    assert.ok(line.startsWith(`line ${k + 1}: ${prog[k]}`), `line ${k + 1} restates the statement: ${line}`);
    const target = (prog[k] as string)[0] as string;
    const sm = / ; state (.*)$/.exec(line);
    assert.ok(sm, line);
    const written = (sm[1] as string).split(' ').map((kv) => /^([A-Z])(\d+)$/.exec(kv) ?? assert.fail(`binding ${kv} in ${line}`));
    assert.deepEqual(
      written.map(([, n, v]) => [n!.toLowerCase(), Number(v)]),
      [...state].map(([n, v]) => [n, v]),
      `state after line ${k + 1}: ${line}`,
    );
    // The assignment right before " ; state" is the target's new value.
    const am = / ; ([A-Z])(\d+) ; state/.exec(line);
    assert.ok(am, line);
    assert.equal(am[1], target.toUpperCase(), line);
    assert.equal(Number(am[2]), state.get(target));
    // Fetches `Xv` carry the values of the previous state; the bare numbers repeat them.
    const prev = k === 0 ? new Map<string, number>() : (run.states[k - 1] as Map<string, number>);
    const operand = (t: string, f: string, n: string) => {
      if (/^\d+$/.test(t)) {
        assert.equal(f, t, `literal operand in ${line}`);
      } else {
        assert.equal(f, `${t.toUpperCase()}${prev.get(t)}`, `fetched operand in ${line}`);
      }
      assert.equal(Number(n), /^\d+$/.test(t) ? Number(t) : prev.get(t), `operand value in ${line}`);
    };
    const bm = /^line \d+: [a-z] = (\w+) ([-+*]) (\w+) ; (\S+) \2 (\S+) = (\d+) \2 (\d+) = (\d+) ;/.exec(line);
    const um = /^line \d+: [a-z] = ([a-z]) ; (\S+) = (\d+) ;/.exec(line);
    if (bm) {
      operand(bm[1]!, bm[4]!, bm[6]!);
      operand(bm[3]!, bm[5]!, bm[7]!);
      assert.equal(Number(bm[8]), state.get(target), `result in ${line}`);
    } else if (um) {
      operand(um[1]!, um[2]!, um[3]!);
    } else {
      assert.match(line, /^line \d+: [a-z] = \d+ ; [A-Z]\d+ ; state/, `literal assignment ${line}`);
    }
  });
  const printVar = p.prompt.split('\n')[run.nLines]!.slice(6, 7);
  assert.equal(lines[run.nLines], `print(${printVar}) ; ${printVar.toUpperCase()}${run.printed}`);
}

// ---------------------------------------------------------------------------------------------

test('rng: deterministic streams, different seeds differ, int() stays in range', () => {
  const xs = (seed: number) => {
    const r = createRng(seed);
    return Array.from({ length: 8 }, () => r.nextU32());
  };
  assert.deepEqual(xs(1), xs(1));
  assert.notDeepEqual(xs(1), xs(2));
  const r = createRng('abc');
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 7000; i++) {
    const v = r.int(3, 9);
    assert.ok(Number.isInteger(v) && v >= 3 && v <= 9);
    counts[v - 3]++;
  }
  for (const c of counts) assert.ok(c > 800 && c < 1200, `roughly uniform: ${counts.join(',')}`);
});

test('generators are deterministic by seed', () => {
  for (const f of FAMILIES) {
    const a = generateSplit('train', f, 200, 7);
    const b = generateSplit('train', f, 200, 7);
    const c = generateSplit('train', f, 200, 8);
    assert.deepEqual(a, b, `${f}: same seed, same problems`);
    assert.notDeepEqual(
      a.map((p) => p.prompt),
      c.map((p) => p.prompt),
      `${f}: different seed, different problems`,
    );
    const overlap = c.filter((p) => new Set(a.map((q) => q.prompt)).has(p.prompt)).length;
    assert.ok(overlap < 100, `${f}: seeds 7 and 8 mostly differ (overlap ${overlap})`);
    const r1 = createRng(99);
    const r2 = createRng(99);
    for (let i = 0; i < 20; i++) assert.deepEqual(generateProblem(f, r1), generateProblem(f, r2));
  }
});

test('splits are disjoint by construction (5,000 per split per family) and splitOf agrees', () => {
  for (const f of FAMILIES) {
    const owner = new Map<string, Split>();
    for (const s of SPLITS) {
      const ps = split(s, f);
      assert.equal(ps.length, N);
      const prompts = new Set(ps.map((p) => p.prompt));
      assert.equal(prompts.size, N, `${f}/${s}: no duplicates within the split`);
      for (const p of ps) {
        assert.equal(p.family, f);
        assert.equal(splitOf(p.prompt), s, `${f}/${s}: splitOf agrees for ${JSON.stringify(p.prompt)}`);
        const prev = owner.get(p.prompt);
        assert.ok(prev === undefined, `${f}: ${JSON.stringify(p.prompt)} in both ${prev} and ${s}`);
        owner.set(p.prompt, s);
        assert.equal(p.id, `${f}-${createHash('sha256').update(p.prompt).digest('hex').slice(0, 12)}`);
      }
    }
    assert.equal(new Set(all(f).map((p) => p.id)).size, 3 * N, `${f}: ids unique across splits`);
  }
  // The split sizes of the hash buckets are about 80/10/10 of a random stream.
  const r = createRng(5);
  const tally: Record<Split, number> = { train: 0, calib: 0, eval: 0 };
  for (let i = 0; i < 4000; i++) tally[splitOf(generateProblem('arith', r).prompt)]++;
  assert.ok(tally.train > 3000 && tally.calib > 250 && tally.eval > 250, JSON.stringify(tally));
});

test('every completion is well formed and its boxed answer equals an independent evaluation', () => {
  for (const f of FAMILIES) {
    for (const p of all(f)) {
      const truth = f === 'arith' ? evalArithPrompt(p.prompt) : runProgram(p.prompt).printed;
      assert.equal(p.answer, String(truth), `${p.id}: ${JSON.stringify(p.prompt)}`);
      assert.ok(p.completion.startsWith('<think>\n'), p.id);
      assert.ok(p.completion.endsWith(`\n</think>\nThe answer is \\boxed{${p.answer}}.`), p.id);
      const span = thinkSpan(p.completion);
      assert.ok(span.closed);
      assert.equal(lastBoxed(p.completion), p.answer);
      assert.deepEqual(gradeTiny(p.completion, p.answer), { correct: true, extracted: p.answer });
      assert.ok(p.completion.length <= 600, `${p.id}: completion ${p.completion.length} chars`);
    }
  }
});

test('arith covers +, -, * and negative results, within the specified operand sizes', () => {
  const ps = all('arith');
  const ops = { '+': 0, '-': 0, '*': 0 };
  let negatives = 0;
  let fiveDigit = 0;
  for (const p of ps) {
    const m = /^Compute (\d+) ([-+*]) (\d+)\.$/.exec(p.prompt)!;
    const a = Number(m[1]);
    const b = Number(m[3]);
    const op = m[2] as '+' | '-' | '*';
    ops[op]++;
    if (op === '*') assert.ok(a < 1000 && b < 100, p.prompt);
    else assert.ok(a < 100000 && b < 100000, p.prompt);
    if (a >= 10000 || b >= 10000) fiveDigit++;
    if (p.answer.startsWith('-')) negatives++;
  }
  for (const [op, n] of Object.entries(ops)) assert.ok(n > ps.length / 5, `op ${op}: ${n}`);
  assert.ok(negatives > ps.length / 10, `negatives: ${negatives}`);
  assert.ok(fiveDigit > ps.length / 10, `five-digit operands: ${fiveDigit}`);
});

test('arith scratchpads are faithful: every carry, borrow, partial product and register checks out', () => {
  for (const p of all('arith')) assert.equal(String(checkArithScratch(p)), p.answer, p.prompt);
  // The checker can fail: corrupt one carry in an addition that has one.
  const p = all('arith').find((q) => / \+ /.test(q.prompt) && /\+1=/.test(q.completion))!;
  const bad = { ...p, completion: p.completion.replace(/\+1=/, '+0=') };
  assert.throws(() => checkArithScratch(bad));
});

test('trace programs: 2–4 variables, 3–6 lines, bounded values, faithful state lines', () => {
  const ps = all('trace');
  const nv = new Set<number>();
  const nl = new Set<number>();
  for (const p of ps) {
    const run = runProgram(p.prompt);
    assert.ok(run.nVars >= 2 && run.nVars <= 4, p.prompt);
    assert.ok(run.nLines >= 3 && run.nLines <= 6, p.prompt);
    nv.add(run.nVars);
    nl.add(run.nLines);
    for (const st of run.states) for (const v of st.values()) assert.ok(Number.isInteger(v) && v >= 0 && v < 10000, p.prompt);
    const stmts = p.prompt.split('\n').slice(0, run.nLines);
    assert.equal(new Set(stmts).size, stmts.length, `distinct statements: ${p.prompt}`);
    checkTraceScratch(p);
  }
  assert.deepEqual([...nv].sort(), [2, 3, 4]);
  assert.deepEqual([...nl].sort(), [3, 4, 5, 6]);
  const ops = new Set(ps.flatMap((p) => p.prompt.match(/ [-+*] /g) ?? []));
  assert.deepEqual([...ops].sort(), [' * ', ' + ', ' - ']);
  // The checker can fail: corrupt a state value.
  const p = ps[0] as TinyProblem;
  const bad = { ...p, completion: p.completion.replace(/state ([A-Z])(\d+)/, (_m, n, v) => `state ${n}${Number(v) + 1}`) };
  assert.notEqual(bad.completion, p.completion);
  assert.throws(() => checkTraceScratch(bad));
  // …or a fetched value (`Xv` before the bare numbers) that is not the previous state's.
  const q = ps.find((r) => /line 2: [a-z] = [a-z] [-+*] /.test(r.completion))!;
  const badFetch = {
    ...q,
    completion: q.completion.replace(/(line 2: [a-z] = [a-z] [-+*] \w+ ; [A-Z])(\d+)/, (_m, h, v) => `${h}${Number(v) + 1}`),
  };
  assert.notEqual(badFetch.completion, q.completion);
  assert.throws(() => checkTraceScratch(badFetch));
});

test('completions carry the reasoning: mean completion ≥ 3× mean prompt length per family', () => {
  for (const f of FAMILIES) {
    const ps = all(f);
    const mp = ps.reduce((s, p) => s + p.prompt.length, 0) / ps.length;
    const mc = ps.reduce((s, p) => s + p.completion.length, 0) / ps.length;
    assert.ok(mc >= 3 * mp, `${f}: mean prompt ${mp.toFixed(1)}, mean completion ${mc.toFixed(1)}`);
    assert.ok(mc <= 350, `${f}: mean completion ${mc.toFixed(1)} stays short`);
  }
});

test('make-tiny-dataset writes interleaved, split-consistent JSONL', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rac-tiny-'));
  try {
    const root = new URL('../../', import.meta.url).pathname;
    execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        join(root, 'scripts/make-tiny-dataset.ts'),
        '--out',
        dir,
        '--seed',
        '3',
        '--train',
        '30',
        '--calib',
        '5',
        '--eval',
        '7',
      ],
      { cwd: root, stdio: 'pipe' },
    );
    assert.deepEqual(readdirSync(dir).sort(), ['calib.jsonl', 'eval.jsonl', 'train.jsonl']);
    const counts: Record<Split, number> = { train: 30, calib: 5, eval: 7 };
    for (const s of SPLITS) {
      const rows = readFileSync(join(dir, `${s}.jsonl`), 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l) as TinyProblem);
      assert.equal(rows.length, 2 * counts[s]);
      rows.forEach((r, i) => {
        assert.equal(r.family, FAMILIES[i % 2]);
        assert.equal(splitOf(r.prompt), s);
      });
      assert.deepEqual(
        rows.filter((r) => r.family === 'arith'),
        generateSplit(s, 'arith', counts[s], 3),
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
