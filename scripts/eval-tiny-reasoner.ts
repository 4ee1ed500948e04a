/**
 * Evaluate a tiny-reasoner HF directory with rac's own engine on held-out `eval` problems.
 *
 *   npx tsx scripts/eval-tiny-reasoner.ts --model models/tiny-reasoner [--n 500] [--temperature T]
 *       [--top-p 0.95] [--seed 0] [--batch 64] [--threads 0] [--json out.json]
 *       [--families arith,trace[,code]] [--code-samples 8] [--split eval|calib]
 *
 * Without --temperature it runs both greedy (T=0) and sampled (T=0.6, top-p 0.95). Prints, per
 * family and mode: accuracy (gradeTiny: last \boxed{} exact match), fraction of completions that
 * close </think> and then give a boxed answer, mean prompt / completion lengths in tokens and
 * hesitations per completion. The code family (format v2 models; needs the sandbox, i.e. root)
 * draws --code-samples completions per problem in sampled mode (1 greedy) and reports pass@1 and
 * pass@k from the problems' stdin/stdout tests.
 */
import { writeFileSync } from 'node:fs';
import { closeModel, loadModel } from '../src/models/loaded.ts';
import { ALL_FAMILIES, FAMILIES, type Family } from '../src/tasks/tiny/index.ts';
import { numberFlag, parseFlags, stringFlag } from './train/cli.ts';
import { evaluateFamily, GREEDY, SAMPLED, type Mode, type ModeResult } from './train/evaluate.ts';

interface Args {
  model: string;
  n: number;
  temperature: number | null;
  topP: number;
  seed: number;
  batch: number;
  threads: number;
  json: string | null;
  families: Family[];
  showErrors: number;
  codeSamples: number;
  /** `calib`: the calibration split, for choices made while training (never the eval problems). */
  split: 'eval' | 'calib';
}

function parseArgs(argv: string[]): Args {
  const S = { type: 'string' } as const;
  const v = parseFlags(argv, {
    model: S,
    n: S,
    temperature: S,
    'top-p': S,
    seed: S,
    batch: S,
    threads: S,
    json: S,
    families: S,
    'show-errors': S,
    'code-samples': S,
    split: S,
  });
  const families = stringFlag(v, 'families');
  const a: Args = {
    model: stringFlag(v, 'model') ?? '',
    n: numberFlag(v, 'n', 500),
    temperature: numberFlag(v, 'temperature', null),
    topP: numberFlag(v, 'top-p', 0.95),
    seed: numberFlag(v, 'seed', 0),
    batch: numberFlag(v, 'batch', 64),
    threads: numberFlag(v, 'threads', 0),
    json: stringFlag(v, 'json') ?? null,
    families: families === undefined ? [...FAMILIES] : (families.split(',') as Family[]),
    showErrors: numberFlag(v, 'show-errors', 0),
    codeSamples: numberFlag(v, 'code-samples', 8),
    split: (stringFlag(v, 'split') ?? 'eval') as Args['split'],
  };
  if (a.split !== 'eval' && a.split !== 'calib') throw new Error(`--split: ${JSON.stringify(a.split)} is not eval or calib`);
  for (const f of a.families) if (!ALL_FAMILIES.includes(f)) throw new Error(`--families: unknown family ${JSON.stringify(f)}`);
  if (!Number.isInteger(a.codeSamples) || a.codeSamples < 1) throw new Error('--code-samples must be a positive integer');
  if (!a.model) throw new Error('--model DIR is required');
  return a;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const m = await loadModel(args.model, args.threads ? { threads: args.threads } : {});
  const modes: Mode[] =
    args.temperature === null
      ? [GREEDY, SAMPLED]
      : [
          {
            mode: args.temperature === 0 ? 'greedy' : 'sampled',
            temperature: args.temperature,
            topP: args.temperature === 0 ? 1 : args.topP,
          },
        ];
  const results: ModeResult[] = [];
  try {
    for (const family of args.families) {
      for (const mode of modes) {
        const samples = family === 'code' && mode.temperature > 0 ? args.codeSamples : 1;
        const r = await evaluateFamily(m, family, args.n, mode, args.seed, args.batch, { samples, split: args.split });
        results.push(r);
        const pass = r.passAt
          ? `  ${Object.entries(r.passAt)
              .map(([k, v]) => `pass@${k} ${(100 * v).toFixed(1)}%`)
              .join('  ')}`
          : '';
        console.log(
          `${family.padEnd(6)} ${mode.mode.padEnd(8)} T=${mode.temperature} top_p=${mode.topP}  n=${r.n}  accuracy ${(100 * r.accuracy).toFixed(1)}%${pass}  ` +
            `closed+${family === 'code' ? 'program' : 'boxed'} ${(100 * r.closedBoxed).toFixed(1)}%  truncated ${(100 * r.truncated).toFixed(1)}%  ` +
            `prompt ${r.meanPromptTokens.toFixed(1)} tok  completion ${r.meanCompletionTokens.toFixed(1)} tok  hesitations ${r.hesitationsPerSample.toFixed(3)}/sample  (${r.seconds.toFixed(0)} s)`,
        );
        for (const e of r.errors.slice(0, args.showErrors))
          console.log(`--- wrong (want ${e.problem.answer}):\n${e.problem.prompt}\n${e.text}\n`);
      }
    }
  } finally {
    await closeModel(m);
  }
  // Overall mean lengths (both families, greedy) and the completion/prompt ratio.
  for (const mode of modes) {
    const rs = results.filter((r) => r.mode === mode.mode);
    const p = rs.reduce((s, r) => s + r.meanPromptTokens, 0) / rs.length;
    const c = rs.reduce((s, r) => s + r.meanCompletionTokens, 0) / rs.length;
    console.log(`${mode.mode}: mean prompt ${p.toFixed(1)} tok, mean completion ${c.toFixed(1)} tok, ratio ${(c / p).toFixed(2)}×`);
  }
  if (args.json)
    writeFileSync(
      args.json,
      JSON.stringify({ model: args.model, n: args.n, seed: args.seed, results: results.map(({ errors: _e, ...r }) => r) }, null, 2) + '\n',
    );
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
