// The default math grader (`math-verify`): Math-Verify's verdicts, measured on its own unit-test
// cases (fixtures/math-verify-cases.json), and the rules behind them one by one.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { extractMathAnswer, gradeMath, mathEqual } from '../../src/tasks/math.ts';
import { extractBoxedContent, normalizeLatex } from '../../src/tasks/mathverify/normalize.ts';

interface FixtureCase {
  source: string;
  line: number;
  gold: string;
  pred: string;
  expected: 0 | 1;
  extraction: ('latex' | 'expr')[];
  boxedPriority: number;
  precision: number;
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/math-verify-cases.json', import.meta.url), 'utf8')) as { cases: FixtureCase[] };

function verdict(c: FixtureCase): 0 | 1 {
  const targets = {
    latex: c.extraction.includes('latex') ? { boxedPriority: c.boxedPriority } : (false as const),
    expr: c.extraction.includes('expr'),
  };
  return gradeMath(c.pred, c.gold, { targets, precision: c.precision }).correct ? 1 : 0;
}

/** The differences docs/evaluation.md lists (Math-Verify loose by design; rac strict). */
const KNOWN_DIFFERENCES = [
  'tests/test_all.py::test_number_extraction:70', // 1000,99 read as 1000.99 (decimal comma)
  'tests/test_all.py::test_number_extraction:71', // 1,22 = 1.22 (decimal comma)
  'tests/test_all.py::test_number_extraction:72', // 2,74 = 2.74 (decimal comma)
  'tests/test_all.py::test_number_extraction:87', // 0,111 = 0.111 (decimal comma)
  'tests/test_all.py::test_math_extraction_additional_cases:754', // (1,3) = {1,3} (a pair is not a set)
];

test("Math-Verify's own test cases: ≥ 97% agreement, and only the differences docs/evaluation.md lists", () => {
  const differ = fixture.cases.filter((c) => verdict(c) !== c.expected).map((c) => `${c.source}:${c.line}`);
  const agree = fixture.cases.length - differ.length;
  assert.ok(fixture.cases.length >= 260, `${fixture.cases.length} cases`);
  assert.ok(agree / fixture.cases.length >= 0.97, `agreement ${agree}/${fixture.cases.length}`);
  assert.deepEqual(differ, KNOWN_DIFFERENCES);
});

test('false accepts of the legacy grader are rejected', () => {
  // Two different equations in the same unknowns (both sides "false" made them equal).
  assert.equal(mathEqual('x+y=2', 'x+y=1'), false);
  assert.equal(mathEqual('2x+3y-z=4', 'x+y+z=1'), false);
  assert.equal(gradeMath('the plane is $\\boxed{x - 2y + z = 3}$', 'x-2y+z-1=0').correct, false);
  // Rounded decimals for exact answers (a fixed 1e-6 relative tolerance accepted them).
  assert.equal(mathEqual('7068.58', '2250\\pi'), false);
  assert.equal(mathEqual('70.993', '12\\sqrt{35}'), false);
  assert.equal(mathEqual('3.999999', '4'), false);
  // Equal matrices whose rows end in "\\ " or "\\" and a newline (control-space stripping broke them).
  const m = '\\begin{pmatrix} 1 & -2 \\\\ \\frac{1}{5} & 4 \\end{pmatrix}';
  assert.equal(mathEqual('\\begin{pmatrix} 1 & -2 \\\\ 1/5 & 4 \\end{pmatrix}', m), true);
  assert.equal(mathEqual('\\begin{bmatrix}1&-2\\\\\n0.2&4\\end{bmatrix}', m), true);
  assert.equal(mathEqual('\\begin{pmatrix} 1 & -2 \\\\ 0.2 & 5 \\end{pmatrix}', m), false);
});

test('equivalent equations compare as equations', () => {
  assert.equal(mathEqual('y=-\\frac12x+\\frac34', '2x+4y-3=0'), true);
  assert.equal(mathEqual('-34x-45y+20z-100=0', '34x+45y-20z+100=0'), true);
  assert.equal(mathEqual('x^2/16 + y^2/12 = 1/4', 'x^2/4 + y^2/3 = 1'), true);
  assert.equal(mathEqual('y = 2x + 1', 'y = 2x - 1'), false);
});

test('decimals compare rounded to 6 places, exact numbers exactly', () => {
  assert.equal(mathEqual('0.333333', '\\frac13'), true);
  assert.equal(mathEqual('0.3333', '\\frac13'), false);
  assert.equal(mathEqual('7068.583471', '2250\\pi'), true);
  assert.equal(mathEqual('6.283185', '2\\pi'), true);
  assert.equal(mathEqual('\\frac{x}{7}+\\frac{2}{7}', '\\frac{x+2}{7}'), true);
  assert.equal(mathEqual('\\sec^2(y)', '\\tan^2(y)+1'), true);
  assert.equal(mathEqual('x+1', 'x+2n+1'), false);
  assert.equal(mathEqual('4\\sqrt{2}', '4'), false);
  assert.equal(mathEqual('11111111101', '11111111100'), false);
});

test('extraction order: boxes, "final answer is", "answer:", then the last math or number', () => {
  assert.equal(extractMathAnswer('The final answer is $3$. Later: $\\boxed{4}$'), '4'); // same priority: the later one
  assert.equal(extractMathAnswer('Final Answer: The largest $n$ is 34.'), '34');
  assert.equal(extractMathAnswer('Answer \\[ 9 \\]'), '9');
  assert.equal(extractMathAnswer('so $x=2$ and then $y=5$ at the end'), 'y=5');
  assert.equal(extractMathAnswer('no answer here at all'), null);
  assert.equal(gradeMath('Therefore, the final answer is: $\\boxed{\\dfrac{3}{4}}$. I hope it is correct', '0.75').correct, true);
  assert.equal(gradeMath('The answer is 0.75.', '\\frac34').correct, true);
  assert.equal(gradeMath('Final Answer: The largest $n$ is 34.', '34').correct, true);
});

test('several boxes are one answer when close or separated by and / or / ,', () => {
  assert.equal(extractBoxedContent('\\boxed{1},\\boxed{2},\\boxed{3}', 'last'), '1,2,3');
  assert.equal(extractBoxedContent('\\boxed{1} no no no no no \\boxed{2}', 'last'), '2');
  assert.equal(gradeMath('\\boxed{1},\\boxed{2},\\boxed{3}', '\\{1,2,3\\}').correct, true);
  assert.equal(gradeMath('$$\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$$', '(2, 2), (6, 2)').correct, true);
  assert.equal(gradeMath('\\boxed{1} and \\boxed{2} and \\boxed{3}', '1, 2, 3').correct, true);
});

test('labels and chains: (p,q) = (3,2), x = 5+5+1 = 11, f(x) = 1, |AB| = 1, x ≈ 11', () => {
  assert.equal(mathEqual('(3,2)', '(p,q)=(3,2)'), true);
  assert.equal(mathEqual('x = 5+5+1 = 11', '11'), true);
  assert.equal(mathEqual('x = 5+5+1 = 7 = 11', 'x = 11'), true);
  assert.equal(mathEqual('1', 'f(x)=1'), true);
  assert.equal(mathEqual('1', '|AB|=1'), true);
  assert.equal(mathEqual('x \\approx 11', '11'), true);
  assert.equal(mathEqual('11a+c', '7 = 11a+c'), false);
  assert.equal(mathEqual('1', '2x + z = 1'), false);
});

test('relations and intervals', () => {
  assert.equal(mathEqual('x \\in [-2,7]', '[-2,7]'), true);
  assert.equal(mathEqual('(0,1)', '0<f(x)<1'), true);
  assert.equal(mathEqual('5 \\ge x', 'x \\le 5'), true);
  assert.equal(mathEqual('-x > -1', 'x < 1'), true);
  assert.equal(mathEqual('x > -1', 'x < 1'), false);
  assert.equal(
    mathEqual('z \\in \\left[-\\frac{3}{2}, -1\\right] \\cup \\left[1, \\frac{3}{2}\\right]', '1\\leq|z|\\leq \\frac{3}{2}'),
    true,
  );
  assert.equal(mathEqual('[0,1)', '(0,1)'), false);
  assert.equal(mathEqual('(-\\infty, 2] \\cup [2, 5)', '(-\\infty, 5)'), true);
});

test('sets, lists and tuples; ±', () => {
  assert.equal(mathEqual('2, 1', '1, 2'), true);
  assert.equal(mathEqual('\\{2, 1\\}', '1, 2'), true);
  assert.equal(mathEqual('(2,1)', '(1,2)'), false);
  assert.equal(mathEqual('\\{1, 3\\}', '(1,3)'), false); // rac: a set written with braces is not a pair
  assert.equal(mathEqual('\\{-2021, 2021\\}', '\\pm 2021'), true);
  assert.equal(mathEqual('2021', '\\pm 2021'), false);
  assert.equal(mathEqual('1+\\sqrt{19}, 1-\\sqrt{19}', '1 \\pm \\sqrt{19}'), true);
  assert.equal(mathEqual('-5, \\frac{14}{3}', 'x = -5,\\ p = \\frac{14}{3}'), true);
  assert.equal(mathEqual('32, 349', '32349'), false);
});

test('units, percent words, \\cfrac and thousands separators', () => {
  assert.equal(gradeMath('28 percent', '28\\%').correct, true);
  assert.equal(gradeMath('$\\boxed{28 pct}$', '28\\%').correct, true);
  assert.equal(mathEqual('50', '50\\%'), false); // 50% is 1/2
  assert.equal(mathEqual('0.5', '50\\%'), true);
  assert.equal(mathEqual('15\\mbox{ cm}^2', '15'), true);
  assert.equal(mathEqual('125\\textnormal{ miles}', '125'), true);
  assert.equal(mathEqual('\\cfrac{1}{3}', '1/3'), true);
  assert.equal(mathEqual('11,\\! 111,\\! 111,\\! 100', '11111111100'), true);
  assert.equal(mathEqual('14{,}916', '14916'), true);
  assert.equal(mathEqual('\\text{(C)}', 'C'), true);
  assert.equal(mathEqual('Evelyn', '\\text{Evelyn}'), true);
  assert.equal(normalizeLatex('\\frac12 + \\sqrt3', 'none'), '\\frac{1}{2} + \\sqrt{3}');
});

test('the grader never throws and never hangs on hostile input', () => {
  const hostile = [
    '\\frac{',
    '}}}{{{',
    '\\sqrt',
    '1000000!',
    '9^{9^{9^{9^{9}}}}',
    '\\binom{100000}{50000}',
    'x'.repeat(5000),
    '('.repeat(300) + ')'.repeat(300),
    '\\left(\\right.',
    '\\begin{pmatrix}1&2\\end{pmatrix}',
    '1'.repeat(500),
    '$'.repeat(2000),
    `${'\\boxed{'.repeat(200)}1`,
    `$$${'a '.repeat(20_000)}`,
  ];
  const t0 = performance.now();
  for (const h of hostile) {
    assert.equal(typeof mathEqual(h, '5'), 'boolean');
    assert.equal(typeof mathEqual('5', h), 'boolean');
    assert.equal(typeof gradeMath(h, h).correct, 'boolean');
  }
  assert.ok(performance.now() - t0 < 10_000, 'hostile answers graded quickly');
});

test('gradeMath keeps the extracted answer; --grader legacy runs the old rules', () => {
  assert.deepEqual(gradeMath('<think>maybe \\boxed{3}</think> So $\\boxed{\\dfrac{3}{4}}$.', '0.75'), {
    correct: true,
    extracted: '\\frac{3}{4}',
  });
  assert.deepEqual(gradeMath('\\boxed{4}', '\\boxed{5}'), { correct: false, extracted: '4' });
  assert.equal(gradeMath('\\boxed{5}', 'The answer is \\boxed{5}.').correct, true);
  assert.deepEqual(gradeMath('nothing', '5'), { correct: false, extracted: null });
  // legacy: the last box only, so no answer in prose
  assert.deepEqual(gradeMath('The answer is 0.75.', '0.75', { grader: 'legacy' }), { correct: false, extracted: null });
  assert.equal(gradeMath('$\\boxed{7068.58}$', '2250\\pi', { grader: 'legacy' }).correct, true);
  assert.equal(gradeMath('$\\boxed{7068.58}$', '2250\\pi').correct, false);
});
