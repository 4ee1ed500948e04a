#!/usr/bin/env -S npx tsx
/**
 * The data of examples/ablation-60.yaml (issue 16), made as `npm run demo` makes its own:
 *
 *   npx tsx scripts/make-ablation-data.ts [--out examples/data]
 *
 *   calib.jsonl  400 calibration prompts per family (arith, trace; seed 1: the demo's calib.jsonl)
 *   val.jsonl    the next 100 calibration-split prompts per family: the validation split the new
 *                options' settings are chosen on (disjoint from calib.jsonl; never an eval problem)
 *   eval.jsonl   200 held-out problems per family (seed 2: the demo's eval.jsonl)
 *
 * Splits are disjoint by construction (a hash of each problem decides its split; within the calib
 * split, val.jsonl continues where calib.jsonl stops). Files are written to temp names and renamed.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FAMILIES, generateSplit, type TinyProblem } from '../src/tasks/tiny/index.ts';

const { values } = parseArgs({ options: { out: { type: 'string', default: 'examples/data' } }, strict: true });
const out = resolve(values.out!);
mkdirSync(out, { recursive: true });
const strip = ({ id, family, prompt, answer }: TinyProblem) => ({ id, family, prompt, answer });
const interleave = (lists: TinyProblem[][]): TinyProblem[] => lists[0]!.flatMap((_, i) => lists.map((l) => l[i]!));
const write = (name: string, rows: TinyProblem[]) => {
  const file = join(out, name);
  writeFileSync(`${file}.tmp-${process.pid}`, rows.map((r) => JSON.stringify(strip(r))).join('\n') + '\n');
  renameSync(`${file}.tmp-${process.pid}`, file);
  console.log(`${file}: ${rows.length} problems`);
};
const calib = FAMILIES.map((f) => generateSplit('calib', f, 500, 1));
write('calib.jsonl', interleave(calib.map((l) => l.slice(0, 400))));
write('val.jsonl', interleave(calib.map((l) => l.slice(400))));
write('eval.jsonl', interleave(FAMILIES.map((f) => generateSplit('eval', f, 200, 2))));
