/** The trace-role labelling behind scripts/diagnose-tiny-reasoner.ts. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { traceRoles, type Role } from '../../scripts/diagnose-tiny-reasoner.ts';
import { traceProblem } from '../../src/tasks/tiny/trace.ts';

test('traceRoles labels statements, fetched values, numbers, results, assignments, states and the print', () => {
  const p = traceProblem({
    lines: [
      { target: 'a', expr: { kind: 'atom', x: { kind: 'lit', value: 4 } } },
      { target: 'b', expr: { kind: 'bin', x: { kind: 'var', name: 'a' }, op: '*', y: { kind: 'lit', value: 3 } } },
      { target: 'a', expr: { kind: 'atom', x: { kind: 'var', name: 'b' } } },
    ],
    print: 'a',
  });
  const text = p.completion;
  const roles = traceRoles(text);
  /** Maximal runs of characters labelled `want`. */
  const spans = (want: Role) => {
    const out: string[] = [];
    for (let i = 0; i < text.length; ) {
      if (roles[i] !== want) {
        i++;
        continue;
      }
      let j = i;
      while (j < text.length && roles[j] === want) j++;
      out.push(text.slice(i, j));
      i = j;
    }
    return out;
  };
  assert.match(text, /line 2: b = a \* 3 ; A4 \* 3 = 4 \* 3 = 12 ; B12 ; state A4 B12/);
  assert.deepEqual(spans('stmt'), ['a = 4', 'b = a * 3', 'a = b']);
  assert.deepEqual(spans('fetch'), ['4', '12']);
  assert.deepEqual(spans('subst'), ['4 * 3', '12']);
  assert.deepEqual(spans('result'), ['12']);
  assert.deepEqual(spans('assign'), ['4', '12', '12']);
  assert.deepEqual(spans('state'), ['4', '4', '12', '12', '12']);
  assert.deepEqual(spans('print'), ['12']);
});
