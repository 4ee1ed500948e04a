/**
 * Write the tiny reasoning tasks as JSONL splits (one TinyProblem per line, families interleaved).
 *
 *   tsx scripts/make-tiny-dataset.ts --out DIR [--seed S] [--train N] [--calib N] [--eval N]
 *       [--format v1|v2] [--inject-rate R]
 *
 * Counts are PER FAMILY (so `--eval 500` writes 500 arith + 500 trace = 1000 lines).
 * `--format v2` (issue 17) writes the self-checking scratchpads (train problems may carry an
 * injected error, with its `noLoss` spans) and also `<split>-code.jsonl`: the code family, one
 * row per problem with its stdin/stdout `tests`, the layout `rac eval --task code` reads.
 * Each file is written to a temporary name in DIR and renamed into place.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  FAMILIES,
  SPLITS,
  generateSplit,
  type Family,
  type Split,
  type SplitOptions,
  type TinyFormat,
  type TinyProblem,
} from '../src/tasks/tiny/index.ts';

const DEFAULTS: Record<Split, number> = { train: 20_000, calib: 256, eval: 500 };

function usage(msg?: string): never {
  if (msg) console.error(`error: ${msg}`);
  console.error(
    'usage: tsx scripts/make-tiny-dataset.ts --out DIR [--seed S] [--train N] [--calib N] [--eval N] [--format v1|v2] [--inject-rate R]',
  );
  process.exit(2);
}

function parseCount(name: string, v: string | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) usage(`--${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

function main(): void {
  // biome-ignore lint/suspicious/noImplicitAnyLet: typed by the parseArgs call that assigns it inside the try
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        out: { type: 'string' },
        seed: { type: 'string', default: '0' },
        train: { type: 'string' },
        calib: { type: 'string' },
        eval: { type: 'string' },
        format: { type: 'string', default: 'v1' },
        'inject-rate': { type: 'string' },
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

  const format = values.format as TinyFormat;
  if (format !== 'v1' && format !== 'v2') usage(`--format must be v1 or v2, got ${JSON.stringify(values.format)}`);
  const rateText = values['inject-rate'];
  if (rateText !== undefined && (format !== 'v2' || !/^(0(\.\d+)?|1(\.0*)?)$/.test(rateText)))
    usage('--inject-rate takes a number in [0, 1], with --format v2');
  const opts: SplitOptions = format === 'v1' ? {} : { format, ...(rateText !== undefined ? { injectRate: Number(rateText) } : {}) };

  const outDir = resolve(values.out);
  const files: [string, Family[]][] = [['', [...FAMILIES]], ...(format === 'v2' ? ([['-code', ['code']]] as [string, Family[]][]) : [])];
  // Everything is generated before anything is written: bad input leaves no partial output.
  const outputs: { file: string; rows: TinyProblem[]; families: Family[]; split: Split }[] = [];
  for (const split of SPLITS) {
    for (const [suffix, families] of files) {
      const perFamily = families.map((f) => generateSplit(split, f, counts[split], seed, opts));
      const rows: TinyProblem[] = [];
      for (let i = 0; i < counts[split]; i++) for (const list of perFamily) rows.push(list[i] as TinyProblem);
      outputs.push({ file: join(outDir, `${split}${suffix}.jsonl`), rows, families, split });
    }
  }
  mkdirSync(outDir, { recursive: true });
  for (const { file, rows, families, split } of outputs) {
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''));
    renameSync(tmp, file);
    console.log(`${file}: ${rows.length} problems (${counts[split]} per family: ${families.join(', ')}; format ${format}, seed ${seed})`);
  }
}

main();
