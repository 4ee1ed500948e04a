#!/usr/bin/env -S npx tsx
/**
 * The data of examples/moe-study.yaml and moe-study-val.yaml (issue 29, the tiny MoE reasoner),
 * made as `npm run demo` makes its own (format v2: arith, trace, code with stdin/stdout tests):
 *
 *   npx tsx scripts/make-moe-study-data.ts [--out examples/data-moe] [--eval-per-family 100]
 *
 *   calib.jsonl  400 calibration prompts per family (seed 1)
 *   val.jsonl    the next 100 calibration-split prompts per family: the validation split options
 *                are chosen on (disjoint from calib.jsonl; never an eval problem)
 *   eval.jsonl   held-out problems per family (seed 2)
 *   text.md      plain text for text calibration (the C4 stand-in): the project's docs, README.md
 *                then docs/*.md in name order (scripts/prose.ts)
 * Splits are disjoint by construction (a hash of each problem decides its split).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ALL_FAMILIES, generateSplit, type TinyProblem } from '../src/tasks/tiny/index.ts';
import { projectProse } from './prose.ts';

const { values } = parseArgs({
  options: { out: { type: 'string', default: 'examples/data-moe' }, 'eval-per-family': { type: 'string', default: '100' } },
  strict: true,
});
const root = resolve(new URL('..', import.meta.url).pathname);
const out = resolve(values.out!);
mkdirSync(out, { recursive: true });
const strip = ({ id, family, prompt, answer, tests }: TinyProblem) => ({ id, family, prompt, answer, ...(tests ? { tests } : {}) });
const interleave = (lists: TinyProblem[][]): TinyProblem[] => lists[0]!.flatMap((_, i) => lists.map((l) => l[i]!).filter(Boolean));
const write = (name: string, rows: TinyProblem[]) => {
  const file = join(out, name);
  writeFileSync(`${file}.tmp-${process.pid}`, `${rows.map((r) => JSON.stringify(strip(r))).join('\n')}\n`);
  renameSync(`${file}.tmp-${process.pid}`, file);
  console.log(`${file}: ${rows.length} problems`);
};
const opts = { format: 'v2' as const };
const calib = ALL_FAMILIES.map((f) => generateSplit('calib', f, 500, 1, opts));
write('calib.jsonl', interleave(calib.map((l) => l.slice(0, 400))));
write('val.jsonl', interleave(calib.map((l) => l.slice(400))));
write('eval.jsonl', interleave(ALL_FAMILIES.map((f) => generateSplit('eval', f, Number(values['eval-per-family']), 2, opts))));
writeFileSync(join(out, 'text.md'), projectProse(root));
