/**
 * Write the tiny reasoning tasks as JSONL splits (one TinyProblem per line, families interleaved).
 *
 *   tsx scripts/make-tiny-dataset.ts --out DIR [--seed S] [--train N] [--calib N] [--eval N]
 *
 * Counts are PER FAMILY (so `--eval 500` writes 500 arith + 500 trace = 1000 lines).
 * Each file is written to a temporary name in DIR and renamed into place.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FAMILIES, SPLITS, generateSplit, type Split, type TinyProblem } from '../src/tasks/tiny.ts';

const DEFAULTS: Record<Split, number> = { train: 20_000, calib: 256, eval: 500 };

function usage(msg?: string): never {
  if (msg) console.error(`error: ${msg}`);
  console.error('usage: tsx scripts/make-tiny-dataset.ts --out DIR [--seed S] [--train N] [--calib N] [--eval N]');
  process.exit(2);
}

function parseCount(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) usage(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function main(): void {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        out: { type: 'string' },
        seed: { type: 'string', default: '0' },
        train: { type: 'string' },
        calib: { type: 'string' },
        eval: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (e) {
    usage((e as Error).message);
  }
  if (values.help) usage();
  if (!values.out) usage('--out is required');
  if (!/^-?\d+$/.test(values.seed)) usage(`--seed must be an integer, got ${JSON.stringify(values.seed)}`);
  const seed = Number(values.seed);
  const counts: Record<Split, number> = {
    train: parseCount('train', values.train, DEFAULTS.train),
    calib: parseCount('calib', values.calib, DEFAULTS.calib),
    eval: parseCount('eval', values.eval, DEFAULTS.eval),
  };

  const outDir = resolve(values.out);
  mkdirSync(outDir, { recursive: true });
  for (const split of SPLITS) {
    const perFamily = FAMILIES.map((f) => generateSplit(split, f, counts[split], seed));
    const rows: TinyProblem[] = [];
    for (let i = 0; i < counts[split]; i++) for (const list of perFamily) rows.push(list[i] as TinyProblem);
    const file = join(outDir, `${split}.jsonl`);
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
    renameSync(tmp, file);
    console.log(`${file}: ${rows.length} problems (${counts[split]} per family, seed ${seed})`);
  }
}

main();
