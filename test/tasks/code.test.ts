import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, extractProgram, normalizeOutput, outputsMatch } from '../../src/tasks/code.ts';
import { meanPassAtK, passAtK } from '../../src/tasks/passk.ts';

const PY = 'a, b = map(int, input().split())\nprint(a + b)';

test('extractProgram: last fenced block, language tags', () => {
  const c = 'Idea...\n```python\nprint(1)\n```\nBetter:\n```py\n' + PY + '\n```\nDone.';
  assert.deepEqual(extractProgram(c), { lang: 'python', code: PY });
  assert.deepEqual(extractProgram('```cpp\nint main(){}\n```'), { lang: 'cpp', code: 'int main(){}' });
  assert.deepEqual(extractProgram('```c++\nint main(){}\n```'), { lang: 'cpp', code: 'int main(){}' });
  assert.deepEqual(extractProgram('```\nprint(2)\n```'), { lang: null, code: 'print(2)' });
  assert.equal(extractProgram('no code at all'), null);
  assert.equal(extractProgram('```python\n\n```'), null);
});

test('extractProgram: fences inside <think> are ignored when a post-think block exists', () => {
  const c = '<think>\ntry\n```python\nprint("draft")\n```\n</think>\nFinal:\n```python\nprint("final")\n```\n';
  assert.deepEqual(extractProgram(c), { lang: 'python', code: 'print("final")' });
  // No block after </think>: fall back to the last block anywhere.
  const d = '<think>\n```python\nprint("draft")\n```\n</think>\nI could not finish.';
  assert.deepEqual(extractProgram(d), { lang: 'python', code: 'print("draft")' });
});

test('extractProgram: a tagged block wins over a later sample-output block; closed over unterminated', () => {
  const c = '```python\n' + PY + '\n```\nSample:\n```text\n5\n```\n';
  assert.deepEqual(extractProgram(c), { lang: 'python', code: PY });
  const cut = '```python\nprint(1)\n```\nnow improved:\n```python\nprint(2';
  assert.deepEqual(extractProgram(cut), { lang: 'python', code: 'print(1)' });
  assert.deepEqual(extractProgram('```python\nprint(3)'), { lang: 'python', code: 'print(3)' });
});

test('legacy output comparison: trailing spaces / newlines / CRLF ignored, inner differences kept', () => {
  assert.equal(normalizeOutput('1 2  \r\n3\n\n\n'), '1 2\n3');
  assert.ok(outputsMatch('5\n', '5', 'legacy'));
  assert.ok(outputsMatch('1 2 \n3  \n', '1 2\n3\n', 'legacy'));
  assert.ok(!outputsMatch('1  2', '1 2', 'legacy'));
  assert.ok(!outputsMatch('6\n', '5\n', 'legacy'));
  assert.ok(!outputsMatch('5\n5', '5', 'legacy'));
});

test('classify maps sandbox outcomes to statuses (fail closed when not run)', () => {
  const L = { wallMs: 1000, cpuSeconds: 1, memoryMb: 256 };
  const base = { exitCode: 0, signal: null, stdout: '5\n', stderr: '', timedOut: false, outputLimitExceeded: false, ms: 10 };
  assert.equal(classify(base, '5', L).status, 'ok');
  assert.equal(classify({ ...base, stdout: '6' }, '5', L).status, 'wrong');
  assert.equal(classify({ ...base, exitCode: null, signal: 'SIGKILL', timedOut: true }, '5', L).status, 'timeout');
  assert.equal(classify({ ...base, exitCode: null, signal: 'SIGXCPU' }, '5', L).status, 'timeout');
  assert.equal(classify({ ...base, exitCode: 1, stderr: 'MemoryError' }, '5', L).status, 'memory');
  assert.equal(classify({ ...base, exitCode: 1, stdout: '5', stderr: 'Traceback' }, '5', L).status, 'runtime_error');
  assert.equal(classify({ ...base, outputLimitExceeded: true, exitCode: null, signal: 'SIGKILL' }, '5', L).status, 'wrong');
  const notRun = classify({ ...base, exitCode: null, stdout: '', sandboxError: 'no unshare' }, '', L);
  assert.equal(notRun.status, 'runtime_error');
  assert.match(notRun.detail ?? '', /no unshare/);
});

test('passAtK: unbiased estimator', () => {
  assert.equal(passAtK(10, 10, 1), 1);
  assert.equal(passAtK(10, 10, 5), 1);
  assert.equal(passAtK(10, 0, 1), 0);
  assert.equal(passAtK(10, 0, 10), 0);
  for (let c = 0; c <= 7; c++) assert.ok(Math.abs(passAtK(7, c, 1) - c / 7) < 1e-12);
  // n=5, c=2, k=2: 1 − C(3,2)/C(5,2) = 1 − 3/10 = 0.7
  assert.ok(Math.abs(passAtK(5, 2, 2) - 0.7) < 1e-12);
  // n=10, c=3, k=5: 1 − C(7,5)/C(10,5) = 1 − 21/252 = 11/12
  assert.ok(Math.abs(passAtK(10, 3, 5) - 11 / 12) < 1e-12);
  // n−c < k → 1
  assert.equal(passAtK(4, 2, 3), 1);
  // stable for large n (binomials would overflow)
  const big = passAtK(2000, 1, 1000);
  assert.ok(Math.abs(big - 0.5) < 1e-9);
  assert.throws(() => passAtK(3, 4, 1), RangeError);
  assert.throws(() => passAtK(3, 1, 4), RangeError);
  assert.throws(() => passAtK(3, 1, 0), RangeError);
  assert.ok(
    Math.abs(
      meanPassAtK(
        [
          { n: 4, c: 4 },
          { n: 4, c: 0 },
        ],
        1,
      ) - 0.5,
    ) < 1e-12,
  );
});

/**
 * LiveCodeBench's stdin/stdout checker (lcb_runner/evaluation/testing_util.py grade_stdio, the
 * one lighteval's lcb:codegeneration runs): [program output, expected output, verdict].
 */
const LCB_TABLE: [string, string, boolean][] = [
  // whitespace: each line stripped at both ends, the whole output stripped
  ['5', '5\n', true],
  ['  5  \n', '5', true],
  ['\t5\r\n', '5', true],
  ['1 2 \n3  \n\n\n', '1 2\n3\n', true],
  ['\n\n5', '5', true], // leading blank lines go with the strip
  // tokens: a line of numbers compares token by token, so runs of spaces do not matter
  ['1 2  3', '1 2 3', true],
  ['1\t2 3', '1 2 3', true],
  ['a  b', 'a b', false], // not numbers: the lines must be equal
  ['YES', 'yes', false],
  // blank lines inside the output count as lines
  ['1\n\n2', '1\n2', false],
  ['5\n5', '5', false],
  // numbers are Python Decimals, equal exactly: no float tolerance
  ['1.0', '1', true],
  ['1.50 2', '1.5 2.0', true],
  ['1e3', '1000', true],
  ['-0', '0', true],
  ['0.1', '0.10000001', false],
  ['3.14159', '3.141590000', true],
  ['0.3333333333', '0.333333333', false],
  ['1_000', '1000', true], // Python's Decimal accepts digit separators
  ['nan', 'nan', true], // equal lines pass before any number is read
  ['nan 1', 'NaN 1', false], // NaN never equals NaN
  ['inf', 'Infinity', true],
  ['1,5', '1.5', false],
  ['50000000000000000', '50000000000000001', false],
];

test('LiveCodeBench output comparison: whitespace, blank lines, numbers as Decimals', () => {
  for (const [out, exp, ok] of LCB_TABLE) assert.equal(outputsMatch(out, exp), ok, `${JSON.stringify(out)} vs ${JSON.stringify(exp)}`);
  // the legacy grader was stricter on spaces between tokens
  assert.equal(outputsMatch('1 2  3', '1 2 3', 'legacy'), false);
});
