import type { Command } from 'commander';
import { loadRecipe, runRecipe } from '../../study/run.ts';
import { RAC_VERSION } from '../../version.ts';
import { addRuntimeOptions, printJson, type RuntimeFlags } from '../common.ts';
import { runtimeOf } from '../../study/job.ts';

interface Opts extends RuntimeFlags {
  config: string;
  json?: boolean;
}

interface SummaryRow {
  method: string;
  calib: string | null;
  sparsity?: number;
  pattern?: string;
  accuracy: number;
  mean_tokens: number;
  truncated: number | null;
  /** Hesitation words per sample. */
  hesitations?: number;
  per_family?: Record<string, { pass_at_k?: Record<string, number> }>;
}

/** The study's table on stdout (hesitations per sample and per-family pass@k columns when the summary has them). */
export function printSummaryTable(summary: Record<string, unknown>): void {
  const dense = summary['dense'] as (Omit<SummaryRow, 'method' | 'calib'> & { truncated: number }) | undefined;
  const rows = (summary['rows'] as SummaryRow[] | undefined) ?? [];
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
  const all = [...(dense ? [dense] : []), ...rows];
  const hasHes = all.some((r) => r.hesitations !== undefined);
  // Families evaluated with several samples (e.g. code): pass@1 and pass@K (the largest k).
  const passCols = [...new Set(all.flatMap((r) => Object.keys(r.per_family ?? {})))]
    .sort()
    .map((f) => ({ f, k: Math.max(0, ...all.flatMap((r) => Object.keys(r.per_family?.[f]?.pass_at_k ?? {}).map(Number))) }))
    .filter((c) => c.k > 1);
  const extra = (r: Omit<SummaryRow, 'method' | 'calib'>) => [
    ...(hasHes ? [r.hesitations === undefined ? '-' : r.hesitations.toFixed(2)] : []),
    ...passCols.flatMap((c) => [1, c.k].map((k) => pct(r.per_family?.[c.f]?.pass_at_k?.[String(k)]))),
  ];
  const table: string[][] = [
    [
      'method',
      'calib',
      'target',
      'accuracy',
      'Δacc',
      'mean tokens',
      'Δtokens',
      'truncated',
      ...(hasHes ? ['hes/sample'] : []),
      ...passCols.flatMap((c) => [`pass@1 ${c.f}`, `pass@${c.k} ${c.f}`]),
    ],
  ];
  if (dense)
    table.push(['dense', '-', '-', pct(dense.accuracy), '', dense.mean_tokens.toFixed(1), '', pct(dense.truncated), ...extra(dense)]);
  for (const r of rows) {
    table.push([
      r.method,
      r.calib ?? '-',
      r.pattern ?? (r.sparsity !== undefined ? `${(100 * r.sparsity).toFixed(0)}%` : '-'),
      pct(r.accuracy),
      dense ? `${(100 * (r.accuracy - dense.accuracy)).toFixed(1)}` : '',
      r.mean_tokens.toFixed(1),
      dense ? `${r.mean_tokens - dense.mean_tokens >= 0 ? '+' : ''}${(r.mean_tokens - dense.mean_tokens).toFixed(1)}` : '',
      pct(r.truncated),
      ...extra(r),
    ]);
  }
  const w = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) process.stdout.write(r.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ') + '\n');
}

export function register(program: Command): void {
  const cmd = program
    .command('run')
    .description(
      'the whole study from a recipe: traces, pruning (method × target × calibration), evaluation, report; resumes after a crash',
    )
    .requiredOption('--config <file>', 'recipe (.yaml or .json); paths inside resolve relative to it')
    .option('--json', 'print summary.json');
  addRuntimeOptions(cmd).action(async (o: Opts) => {
    const recipe = loadRecipe(o.config);
    const r = await runRecipe(
      recipe,
      { log: (line) => (o.quiet ? undefined : process.stderr.write(line + '\n')) },
      RAC_VERSION,
      runtimeOf(o),
    );
    if (o.json) return printJson(r.summaryJson);
    printSummaryTable(r.summaryJson);
    process.stdout.write(`report: ${r.report}\nsummary: ${r.summary}\n`);
  });
}
