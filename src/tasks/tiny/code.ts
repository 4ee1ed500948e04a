/**
 * `code` family (format v2): a small computation over stdin stated in a regular English-like spec,
 * with one worked example; the thinking plans, hand-checks the example, and the answer is a
 * fenced Python program. Every problem carries stdin/stdout tests on inputs the prompt does not
 * show (the layout `rac eval --task code` reads: `[{input, output}]`).
 *
 * Three kinds of spec:
 *   expr   `Read two integers a and b on one line. Print a * b - 3.`
 *   list   `Read n, then n integers on one line. Print the sum of the ones greater than 3.`
 *   range  `Read n. For each i from 1 to n that is even, print i + 2.`
 * then `Example: 4 7 gives 25.` and `Write a Python program.`
 *
 *   <think>
 *   read a b
 *   print a * b - 3
 *   check 4 7: 4 * 7 - 3 = 28 - 3 = 25
 *   </think>
 *   ```python
 *   a, b = map(int, input().split())
 *   print(a * b - 3)
 *   ```
 *
 * The program is a fixed rendering of the spec (the expression and the condition are copied
 * verbatim in Python syntax), so the model's job is a faithful translation. The example uses
 * small non-negative numbers (the hand-check stays one-digit arithmetic); the tests use a wider
 * range, negative numbers and empty loops included. Expected outputs are computed here with
 * Python's semantics (`%` takes the sign of the divisor); test/tasks/tiny-v2.test.ts runs gold
 * programs against them in the sandbox.
 */
import { createRng, hashSeed, type Rng } from '../rng.ts';
import { problemId, type TinyCodeTest, type TinyProblem } from './common.ts';

export type CodeKind = 'expr' | 'list' | 'range';
export const CODE_KINDS: readonly CodeKind[] = ['expr', 'list', 'range'];
/** Tests per problem. */
export const CODE_TESTS = 5;

type Op = '+' | '-' | '*';
const OPS: readonly Op[] = ['+', '-', '*'];
const NAME_PAIRS: readonly [string, string][] = [
  ['a', 'b'],
  ['x', 'y'],
  ['m', 'n'],
  ['p', 'q'],
  ['u', 'v'],
  ['s', 't'],
  ['b', 'c'],
  ['j', 'k'],
];

/** A spec's expression as tokens: names/numbers, operators and parentheses. */
type Tok = string;

export interface ExprSpec {
  kind: 'expr';
  names: [string, string];
  tokens: Tok[];
  example: [number, number];
}

export type Filter = { kind: 'all' } | { kind: 'cmp'; op: '>' | '<' | '>=' | '<='; k: number } | { kind: 'mod'; m: number; r: number };

export interface ListSpec {
  kind: 'list';
  agg: 'sum' | 'count' | 'squares' | 'product';
  filter: Filter;
  example: number[];
}

export interface RangeSpec {
  kind: 'range';
  start: number;
  filter: Filter;
  /** Printed expression of i, as tokens. */
  body: Tok[];
  example: number;
}

export type CodeSpec = ExprSpec | ListSpec | RangeSpec;

const pmod = (x: number, m: number) => ((x % m) + m) % m;

function filterText(f: Filter, plural: boolean): string {
  if (f.kind === 'all') return '';
  if (f.kind === 'cmp') {
    const w = { '>': 'greater than', '<': 'less than', '>=': 'at least', '<=': 'at most' }[f.op];
    return `${w} ${f.k}`;
  }
  if (f.m === 2) return f.r === 0 ? 'even' : 'odd';
  void plural;
  return `divisible by ${f.m}`;
}

function filterPython(f: Filter, v: string): string {
  if (f.kind === 'cmp') return `${v} ${f.op} ${f.k}`;
  if (f.kind === 'mod') return `${v} % ${f.m} == ${f.r}`;
  return 'True';
}

function keeps(f: Filter, x: number): boolean {
  if (f.kind === 'all') return true;
  if (f.kind === 'mod') return pmod(x, f.m) === f.r;
  return f.op === '>' ? x > f.k : f.op === '<' ? x < f.k : f.op === '>=' ? x >= f.k : x <= f.k;
}

// ---- expression evaluation, one operation at a time (Python precedence: * before + -) --------

function reduceOnce(t: (string | number)[]): (string | number)[] {
  const open = t.lastIndexOf('(');
  if (open >= 0) {
    const close = t.indexOf(')', open);
    const inner = t.slice(open + 1, close);
    if (inner.length === 1) return [...t.slice(0, open), inner[0]!, ...t.slice(close + 1)];
    return [...t.slice(0, open + 1), ...reduceOnce(inner), ...t.slice(close)];
  }
  let i = t.indexOf('*');
  if (i < 0) i = t.findIndex((x) => x === '+' || x === '-');
  const a = t[i - 1] as number;
  const b = t[i + 1] as number;
  const v = t[i] === '*' ? a * b : t[i] === '+' ? a + b : a - b;
  return [...t.slice(0, i - 1), v, ...t.slice(i + 2)];
}

const render = (t: (string | number)[]) => t.map(String).join(' ').replace(/\( /g, '(').replace(/ \)/g, ')');

/** `4 * 7 - 3 = 28 - 3 = 25`: the expression with values substituted, reduced step by step. */
function evalSteps(tokens: Tok[], env: Record<string, number>): { text: string; value: number } {
  let t: (string | number)[] = tokens.map((x) => (x in env ? env[x]! : /^\d+$/.test(x) ? Number(x) : x));
  const parts = [render(t)];
  while (t.length > 1) {
    t = reduceOnce(t);
    if (t.filter((x) => x !== '(' && x !== ')').length === t.length || t.length === 1) parts.push(render(t));
  }
  return { text: parts.join(' = '), value: t[0] as number };
}

function evalValue(tokens: Tok[], env: Record<string, number>): number {
  let t: (string | number)[] = tokens.map((x) => (x in env ? env[x]! : /^\d+$/.test(x) ? Number(x) : x));
  while (t.length > 1) t = reduceOnce(t);
  return t[0] as number;
}

// ---- sampling --------------------------------------------------------------------------------

function sampleFilter(rng: Rng, allowAll: boolean): Filter {
  const r = rng.int(allowAll ? 0 : 1, 9);
  if (r === 0) return { kind: 'all' };
  if (r <= 4) return { kind: 'cmp', op: rng.pick(['>', '<', '>=', '<='] as const), k: rng.int(0, 9) };
  if (r <= 7) return { kind: 'mod', m: 2, r: rng.int(0, 1) };
  return { kind: 'mod', m: rng.int(3, 5), r: 0 };
}

export function sampleCodeSpec(rng: Rng): CodeSpec {
  const kind = rng.pick(CODE_KINDS);
  if (kind === 'expr') {
    const names = rng.pick(NAME_PAIRS);
    const [u, v] = rng.bool(0.8) ? names : ([names[1], names[0]] as [string, string]);
    const o1 = rng.pick(OPS);
    const o2 = rng.pick(OPS);
    const k = String(rng.int(1, 9));
    const form = rng.int(0, 4);
    const tokens =
      form === 0
        ? [u, o1, v]
        : form === 1
          ? [u, o1, v, o2, k]
          : form === 2
            ? ['(', u, o1, v, ')', '*', k]
            : form === 3
              ? [u, o1, k, o2, v]
              : [u, '*', u, o1, v];
    return { kind, names, tokens, example: [rng.int(1, 9), rng.int(1, 9)] };
  }
  if (kind === 'list') {
    const agg = rng.pick(['sum', 'count', 'squares', 'product'] as const);
    const filter = sampleFilter(rng, agg !== 'count');
    const n = rng.int(2, 5);
    return { kind, agg, filter, example: Array.from({ length: n }, () => rng.int(0, 9)) };
  }
  const filter = sampleFilter(rng, true);
  const form = rng.int(0, 4);
  const k = String(rng.int(1, 9));
  const body = form === 0 ? ['i'] : form === 1 ? ['i', '*', 'i'] : form === 2 ? ['i', '*', k] : form === 3 ? ['i', '+', k] : ['i', '-', k];
  return { kind: 'range', start: rng.int(0, 2), filter, body, example: rng.int(1, 7) };
}

// ---- rendering ---------------------------------------------------------------------------------

function aggText(s: ListSpec): string {
  const f = filterText(s.filter, true);
  if (s.agg === 'count') return `how many are ${f}`;
  const what = { sum: 'the sum', squares: 'the sum of the squares', product: 'the product' }[s.agg];
  if (s.filter.kind === 'all')
    return s.agg === 'squares' ? 'the sum of their squares' : `${s.agg === 'sum' ? 'their sum' : 'their product'}`;
  const ones = s.filter.kind === 'mod' && s.filter.m === 2 ? `the ${f} ones` : `the ones ${f}`;
  return `${what} of ${ones}`;
}

export function codeSpecText(s: CodeSpec): string {
  if (s.kind === 'expr') return `Read two integers ${s.names[0]} and ${s.names[1]} on one line. Print ${render(s.tokens)}.`;
  if (s.kind === 'list') return `Read n, then n integers on one line. Print ${aggText(s)}.`;
  const cond =
    s.filter.kind === 'all'
      ? ''
      : s.filter.kind === 'cmp'
        ? ` that is ${filterText(s.filter, false)}`
        : ` that is ${filterText(s.filter, false)}`;
  return `Read n. For each i from ${s.start} to n${cond}, print ${render(s.body)}.`;
}

/** The stdin of an input (lines). */
function stdinOf(s: CodeSpec, input: number[] | number): string {
  if (s.kind === 'expr') return `${(input as number[]).join(' ')}\n`;
  if (s.kind === 'list') return `${(input as number[]).length}\n${(input as number[]).join(' ')}\n`;
  return `${input as number}\n`;
}

/** Output lines of the program on an input. */
export function runSpec(s: CodeSpec, input: number[] | number): string[] {
  if (s.kind === 'expr') {
    const [x, y] = input as number[];
    return [String(evalValue(s.tokens, { [s.names[0]]: x!, [s.names[1]]: y! }))];
  }
  if (s.kind === 'list') {
    const xs = (input as number[]).filter((x) => keeps(s.filter, x));
    const v =
      s.agg === 'sum'
        ? xs.reduce((a, x) => a + x, 0)
        : s.agg === 'count'
          ? xs.length
          : s.agg === 'squares'
            ? xs.reduce((a, x) => a + x * x, 0)
            : xs.reduce((a, x) => a * x, 1);
    return [String(v)];
  }
  const out: string[] = [];
  for (let i = s.start; i <= (input as number); i++) if (keeps(s.filter, i)) out.push(String(evalValue(s.body, { i })));
  return out;
}

function exampleText(s: CodeSpec): string {
  const out = runSpec(s, s.example);
  const gives = out.length === 0 ? 'nothing' : out.join(' ');
  if (s.kind === 'list') return `Example: ${s.example.length} then ${s.example.join(' ')} gives ${gives}.`;
  if (s.kind === 'expr') return `Example: ${s.example.join(' ')} gives ${gives}.`;
  return `Example: ${s.example} gives ${gives}.`;
}

export const CODE_QUESTION = 'Write a Python program.';

export function codePrompt(s: CodeSpec): string {
  return `${codeSpecText(s)}\n${exampleText(s)}\n${CODE_QUESTION}`;
}

/** The gold Python program. */
export function codeProgram(s: CodeSpec): string {
  if (s.kind === 'expr') return `${s.names[0]}, ${s.names[1]} = map(int, input().split())\nprint(${render(s.tokens)})`;
  if (s.kind === 'list') {
    const upd = { sum: 's = s + x', count: 's = s + 1', squares: 's = s + x * x', product: 's = s * x' }[s.agg];
    const init = s.agg === 'product' ? 1 : 0;
    const head = `n = int(input())\nxs = list(map(int, input().split()))\ns = ${init}\nfor x in xs:\n`;
    const loop = s.filter.kind === 'all' ? `    ${upd}\n` : `    if ${filterPython(s.filter, 'x')}:\n        ${upd}\n`;
    return `${head}${loop}print(s)`;
  }
  const head = `n = int(input())\nfor i in range(${s.start}, n + 1):\n`;
  const pr = `print(${render(s.body)})`;
  return s.filter.kind === 'all' ? `${head}    ${pr}` : `${head}    if ${filterPython(s.filter, 'i')}:\n        ${pr}`;
}

/** The thinking: the plan, then the example worked by hand. */
export function codeThinking(s: CodeSpec): string[] {
  if (s.kind === 'expr') {
    const [x, y] = s.example;
    const steps = evalSteps(s.tokens, { [s.names[0]]: x, [s.names[1]]: y });
    return [`read ${s.names[0]} ${s.names[1]}`, `print ${render(s.tokens)}`, `check ${x} ${y}: ${steps.text}`];
  }
  const keepText = (f: Filter, v: string) => (f.kind === 'all' ? '' : `if ${filterPython(f, v)}, `);
  if (s.kind === 'list') {
    const upd = { sum: 'add x', count: 'add 1', squares: 'add x * x', product: 'multiply by x' }[s.agg];
    const kept = s.example.filter((x) => keeps(s.filter, x));
    let acc = s.agg === 'product' ? 1 : 0;
    const run: string[] = [];
    for (const x of kept) {
      const term = s.agg === 'count' ? 1 : s.agg === 'squares' ? x * x : x;
      const next = s.agg === 'product' ? acc * term : acc + term;
      run.push(`${acc} ${s.agg === 'product' ? '*' : '+'} ${term} = ${next}`);
      acc = next;
    }
    const keepPart = s.filter.kind === 'all' ? '' : `keep ${kept.length === 0 ? 'none' : kept.join(' ')} ; `;
    return [
      'read n, then the list',
      `start at ${s.agg === 'product' ? 1 : 0} ; for each x: ${keepText(s.filter, 'x')}${upd}`,
      `check ${s.example.join(' ')}: ${keepPart}${run.length === 0 ? `stays ${acc}` : run.join(' ; ')}`,
    ];
  }
  const is: number[] = [];
  for (let i = s.start; i <= s.example; i++) if (keeps(s.filter, i)) is.push(i);
  const outs = runSpec(s, s.example);
  return [
    'read n',
    `for i from ${s.start} to n: ${keepText(s.filter, 'i')}print ${render(s.body)}`,
    `check ${s.example}: i = ${is.length === 0 ? 'none' : is.join(' ')} ; print ${outs.length === 0 ? 'nothing' : outs.join(' ')}`,
  ];
}

/** Test inputs (distinct, none equal to the example), deterministic in the prompt. */
function testInputs(s: CodeSpec, prompt: string): (number[] | number)[] {
  const rng = createRng(hashSeed('rac-tiny-code-tests', prompt));
  const seen = new Set<string>([JSON.stringify(s.example)]);
  const out: (number[] | number)[] = [];
  for (let guard = 0; out.length < CODE_TESTS && guard < 1000; guard++) {
    const x: number[] | number =
      s.kind === 'expr'
        ? [rng.int(-20, 60), rng.int(-20, 60)]
        : s.kind === 'list'
          ? Array.from({ length: rng.int(out.length === 0 ? 0 : 1, 8) }, () => rng.int(-10, 30))
          : out.length === 0
            ? 0
            : rng.int(1, 15);
    const key = JSON.stringify(x);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(x);
  }
  return out;
}

export function codeTests(s: CodeSpec, prompt = codePrompt(s)): TinyCodeTest[] {
  return testInputs(s, prompt).map((x) => {
    const lines = runSpec(s, x);
    return { input: stdinOf(s, x), output: lines.length === 0 ? '' : `${lines.join('\n')}\n` };
  });
}

export function renderCodeCompletion(thinking: readonly string[], program: string): string {
  return `<think>\n${thinking.join('\n')}\n</think>\n\`\`\`python\n${program}\n\`\`\``;
}

export function codeProblem(s: CodeSpec): TinyProblem {
  const prompt = codePrompt(s);
  const program = codeProgram(s);
  return {
    id: problemId('code', prompt),
    family: 'code',
    prompt,
    answer: program,
    completion: renderCodeCompletion(codeThinking(s), program),
    tests: codeTests(s, prompt),
  };
}

export function generateCode(rng: Rng): TinyProblem {
  return codeProblem(sampleCodeSpec(rng));
}
