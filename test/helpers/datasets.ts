/** Small dataset files the study and backend tests run on. */
import { writeFileSync } from 'node:fs';
import { FAMILIES, generateSplit, type Split } from '../../src/tasks/tiny/index.ts';

/**
 * Writes a tiny-task dataset as `rac run` and `rac trace --task tiny` read it: `n` problems of
 * each boxed family (arith, trace) from `split` (seed 1), one `{ id, family, prompt, answer }` row each.
 */
export function writeTinyDataset(file: string, split: Split, n: number): string {
  const rows = FAMILIES.flatMap((f) => generateSplit(split, f, n, 1)).map(({ id, family, prompt, answer }) =>
    JSON.stringify({ id, family, prompt, answer }),
  );
  writeFileSync(file, rows.join('\n') + '\n');
  return file;
}

/** Writes four short prompts of different kinds (sum, code, greeting, instruction) as rows `{ id: 'p0'…'p3', prompt }`. */
export function writeFourPrompts(file: string): string {
  writeFileSync(
    file,
    ['Compute 12 + 5.', 'x = 3\nprint(x * 2)', 'Hello there', 'Count to five.']
      .map((p, i) => JSON.stringify({ id: `p${i}`, prompt: p }))
      .join('\n') + '\n',
  );
  return file;
}
