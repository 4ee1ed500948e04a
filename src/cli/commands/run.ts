import type { Command } from 'commander';
import { loadRecipe, runRecipe } from '../../pipeline/run.ts';
import { RAC_VERSION } from '../../version.ts';
import { addRuntimeOptions, applyRuntime, printJson, type RuntimeFlags } from '../common.ts';

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
}

/** The study's table on stdout. */
export function printSummaryTable(summary: Record<string, unknown>): void {
  const dense = summary['dense'] as { accuracy: number; mean_tokens: number; truncated: number } | undefined;
  const rows = (summary['rows'] as SummaryRow[] | undefined) ?? [];
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);
  const table: string[][] = [['method', 'calib', 'target', 'accuracy', 'Δacc', 'mean tokens', 'Δtokens', 'truncated']];
  if (dense) table.push(['dense', '-', '-', pct(dense.accuracy), '', dense.mean_tokens.toFixed(1), '', pct(dense.truncated)]);
  for (const r of rows) {
    table.push([
      r.method,
      r.calib ?? '-',
      r.pattern ?? (r.sparsity !== undefined ? `${(100 * r.sparsity).toFixed(0)}%` : '-'),
      pct(r.accuracy),
      dense ? `${(100 * (r.accuracy - dense.accuracy)).toFixed(1)}` : '',
      r.mean_tokens.toFixed(1),
      dense ? `${(r.mean_tokens - dense.mean_tokens >= 0 ? '+' : '')}${(r.mean_tokens - dense.mean_tokens).toFixed(1)}` : '',
      pct(r.truncated),
    ]);
  }
  const w = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  for (const r of table) process.stdout.write(r.map((c, i) => (i < 3 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ') + '\n');
}

export function register(program: Command): void {
  const cmd = program
    .command('run')
    .description('the whole study from a recipe: traces, pruning (method × target × calibration), evaluation, report; resumes after a crash')
    .requiredOption('--config <file>', 'recipe (.yaml or .json); paths inside resolve relative to it')
    .option('--json', 'print summary.json');
  addRuntimeOptions(cmd).action(async (o: Opts) => {
    applyRuntime(o);
    const recipe = loadRecipe(o.config);
    const r = await runRecipe(recipe, { log: (line) => (o.quiet ? undefined : process.stderr.write(line + '\n')) }, RAC_VERSION);
    if (o.json) return printJson(r.summaryJson);
    printSummaryTable(r.summaryJson);
    process.stdout.write(`report: ${r.report}\nsummary: ${r.summary}\n`);
  });
}
