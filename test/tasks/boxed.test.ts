import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradeTiny, lastBoxed, normalizeInteger, thinkSpan } from '../../src/tasks/boxed.ts';

test('lastBoxed: braces, nesting, last box wins', () => {
  assert.equal(lastBoxed('The answer is \\boxed{42}.'), '42');
  assert.equal(lastBoxed('$\\boxed{\\frac{1}{2}}$'), '\\frac{1}{2}');
  assert.equal(lastBoxed('\\boxed{{a}{b{c}}} end'), '{a}{b{c}}');
  assert.equal(lastBoxed('first \\boxed{1} then \\boxed{2} finally \\boxed{-3}.'), '-3');
  assert.equal(lastBoxed('\\fbox{7}'), '7');
  assert.equal(lastBoxed('\\boxed{1} and \\fbox{8}'), '8');
  assert.equal(lastBoxed('\\boxed {5}'), '5');
  assert.equal(lastBoxed('\\boxed{\\{x\\}}'), '\\{x\\}');
  assert.equal(lastBoxed('\\boxed{}'), '');
});

test('lastBoxed: brace-less form up to whitespace or $', () => {
  assert.equal(lastBoxed('so $\\boxed 12$ done'), '12');
  assert.equal(lastBoxed('\\boxed 1,234 is it'), '1,234');
  assert.equal(lastBoxed('\\boxed{3} then \\boxed 9'), '9');
});

test('lastBoxed: missing or unbalanced gives null', () => {
  assert.equal(lastBoxed('no box here, answer 5'), null);
  assert.equal(lastBoxed(''), null);
  assert.equal(lastBoxed('\\boxed{12'), null);
  assert.equal(lastBoxed('\\boxed{\\frac{1}{2}'), null);
  assert.equal(lastBoxed('\\boxed{1} and later \\boxed{2'), null, 'the last box decides, even when broken');
  assert.equal(lastBoxed('\\boxed'), null);
  assert.equal(lastBoxed('\\boxed $'), null);
  assert.equal(lastBoxed('\\boxedx{3}'), null, 'a different command is not a box');
});

test('normalizeInteger: canonical forms and rejections', () => {
  const cases: Array<[string, string | null]> = [
    ['42', '42'],
    [' 4 2 ', '42'],
    ['$42$', '42'],
    ['42.', '42'],
    ['+42', '42'],
    ['007', '7'],
    ['-007', '-7'],
    ['-0', '0'],
    ['0', '0'],
    ['000', '0'],
    ['1,234', '1234'],
    ['-1,234,567', '-1234567'],
    ['1{,}234', '1234'],
    ['1\\,234', '1234'],
    ['\u221212', '-12'],
    ['{12}', '12'],
    ['\\text{12}', '12'],
    ['1.5', null],
    ['1.0', null],
    ['12,34', null],
    ['1,2345', null],
    ['\\frac{1}{2}', null],
    ['', null],
    ['-', null],
    ['12a', null],
    ['--3', null],
    ['1e3', null],
  ];
  for (const [raw, want] of cases) assert.equal(normalizeInteger(raw), want, JSON.stringify(raw));
});

test('gradeTiny: positive cases', () => {
  const ok = (completion: string, answer: string) =>
    assert.equal(gradeTiny(completion, answer).correct, true, `${completion} vs ${answer}`);
  ok('<think>\n…\n</think>\nThe answer is \\boxed{12}.', '12');
  ok('\\boxed{-12}', '-12');
  ok('\\boxed{007}', '7');
  ok('\\boxed{-0}', '0');
  ok('\\boxed{+5}', '5');
  ok('\\boxed{1,234}', '1234');
  ok('\\boxed{1{,}234}', '1234');
  ok('$\\boxed{ 42 }$', '42');
  ok('\\boxed{42.}', '42');
  ok('\\boxed 42.', '42');
  ok('\\boxed{3} no wait \\boxed{4}', '4');
  ok('\\boxed{-7}', '-007');
  assert.deepEqual(gradeTiny('x \\boxed{ 12 } y', '12'), { correct: true, extracted: ' 12 ' });
});

test('gradeTiny: negative cases', () => {
  const bad = (completion: string, answer: string) =>
    assert.equal(gradeTiny(completion, answer).correct, false, `${completion} vs ${answer}`);
  bad('\\boxed{12}', '-12');
  bad('\\boxed{-12}', '12');
  bad('\\boxed{120}', '12');
  bad('\\boxed{12}', '120');
  bad('\\boxed{1.5}', '1');
  bad('\\boxed{1.5}', '1.5'); // non-integers never match
  bad('\\boxed{\\frac{1}{2}}', '0');
  bad('The answer is 12.', '12');
  bad('\\boxed{4} no wait \\boxed{3}', '4');
  bad('\\boxed{12', '12');
  bad('\\boxed{}', '0');
  assert.deepEqual(gradeTiny('The answer is 12.', '12'), { correct: false, extracted: null });
  assert.deepEqual(gradeTiny('\\boxed{13}', '12'), { correct: false, extracted: '13' });
});

test('thinkSpan: closed, unclosed, and opening tag in the prompt', () => {
  assert.deepEqual(thinkSpan('<think>\nabc\n</think>\nThe answer is \\boxed{1}.'), {
    closed: true,
    thinkText: '\nabc\n',
    afterThink: '\nThe answer is \\boxed{1}.',
  });
  assert.deepEqual(thinkSpan('<think>\nstill going'), { closed: false, thinkText: '\nstill going', afterThink: '' });
  assert.deepEqual(thinkSpan('reasoning</think>done'), { closed: true, thinkText: 'reasoning', afterThink: 'done' });
  assert.deepEqual(thinkSpan('no tags'), { closed: false, thinkText: 'no tags', afterThink: '' });
});
