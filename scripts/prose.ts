/**
 * The plain-text calibration corpus of the demo and the studies (the C4 stand-in: English prose
 * unrelated to the tasks): the project's own documentation, README.md then docs/*.md in name
 * order, joined by blank lines — deterministic for a given checkout. (Until the docs moved to
 * docs/, the README alone was this corpus.)
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export function projectProse(root: string): string {
  const pages = readdirSync(join(root, 'docs'))
    .filter((n) => n.endsWith('.md'))
    .sort()
    .map((n) => join('docs', n));
  return ['README.md', ...pages].map((f) => readFileSync(join(root, f), 'utf8').replace(/\n*$/, '\n')).join('\n');
}
