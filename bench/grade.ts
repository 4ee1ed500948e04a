/**
 * `npm run bench -- grade_math`: CPU time to grade 500 math completions with the default grader
 * (Math-Verify's rules) and with the legacy one, in the same run. The completions are built from
 * MATH-style answers (integers, fractions, radicals, π, tuples, intervals, matrices, equations,
 * text) behind ~2 KB of reasoning with inline math, half boxed and half "The final answer is".
 */
import { gradeMath, type MathGrader } from '../src/tasks/math.ts';
import { emit } from './common.ts';

const ANSWERS: [string, string][] = [
  ['42', '42'],
  ['\\frac{14}{3}', '\\dfrac{14}{3}'],
  ['3\\sqrt{13}', '\\sqrt{117}'],
  ['\\left( 3, \\frac{\\pi}{2} \\right)', '(3, \\pi/2)'],
  ['[-2, 7]', 'x \\in [-2,7]'],
  ['(-\\infty, -3] \\cup [2, \\infty)', '(-\\infty,-3]\\cup[2,\\infty)'],
  ['\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}', '\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}'],
  ['2x + 4y - 3 = 0', 'y = -\\frac{1}{2}x + \\frac{3}{4}'],
  ['\\text{Evelyn}', '\\text{Evelyn}'],
  ['1 \\pm \\sqrt{19}', '1+\\sqrt{19}, 1-\\sqrt{19}'],
  ['16386.17', '\\$16,386.17'],
  ['2250\\pi', '7068.58'],
  ['x^2+2x+1', '(x+1)^2'],
  ['\\frac{\\sqrt{3}}{2}', '0.866025'],
  ['20\\%', '0.2'],
  ['-\\frac{1}{2}', '-0.5'],
];

function completion(i: number, pred: string): string {
  const steps = Array.from(
    { length: 12 },
    (_, k) => `Step ${k + 1}: we have $a_{${k}} = ${k * 3 + (i % 7)}$ and so $\\frac{${k + 1}}{${k + 2}} \\cdot ${i % 5} = ${k}$. `,
  ).join('');
  return i % 2 === 0
    ? `<think>${steps}</think>\nSo the answer is $\\boxed{${pred}}$.`
    : `${steps}\nTherefore, the final answer is: $${pred}$. I hope it is correct`;
}

export function benchGradeMath(): void {
  const n = 500;
  const cases = Array.from({ length: n }, (_, i) => {
    const [gold, pred] = ANSWERS[i % ANSWERS.length]!;
    return { gold, text: completion(i, pred) };
  });
  for (const grader of ['math-verify', 'legacy'] as MathGrader[]) {
    gradeMath(cases[0]!.text, cases[0]!.gold, { grader }); // load / warm up
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    let correct = 0;
    for (const c of cases) if (gradeMath(c.text, c.gold, { grader }).correct) correct++;
    const cpu = process.cpuUsage(c0);
    emit({
      name: 'grade_math',
      grader,
      completions: n,
      cpu_seconds: +((cpu.user + cpu.system) / 1e6).toFixed(3),
      wall_seconds: +((performance.now() - t0) / 1000).toFixed(3),
      correct,
    });
  }
}
