import type { Command } from 'commander';
import { buildReport } from '../../report/html.ts';

interface Opts {
  out: string;
  summary?: string;
  title?: string;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('report')
    .description('a self-contained HTML report (table + inline SVG plots) from rac eval results.json files and/or summary.json files')
    .argument(
      '<results...>',
      "results.json files from rac eval (labels from the model dir's rac.json; dense when absent) or summary.json files",
    )
    .requiredOption('--out <file>', 'report.html (written to a temp file and renamed)')
    .option('--summary <file>', 'also write a machine-readable summary.json (dense + one row per pruned model, the claim per sparsity)')
    .option('--title <text>', 'page title')
    .option('-q, --quiet', 'print nothing')
    .action((inputs: string[], o: Opts) => {
      const r = buildReport(inputs, o.out, { ...(o.summary ? { summary: o.summary } : {}), ...(o.title ? { title: o.title } : {}) });
      if (!o.quiet) {
        process.stderr.write(
          `rac report: ${r.rows.length} results in ${r.groups.length} model group(s) → ${o.out}${o.summary ? `, ${o.summary}` : ''}\n`,
        );
      }
    });
}
