/**
 * The `rac` command tree: every command with its options, argument parsers and actions. main.ts
 * runs it; the docs check (test/docs/docs.test.ts) builds it with the hub hook left out and the
 * actions replaced, to parse every documented command line without running it.
 */
import { Command } from 'commander';
import { RAC_VERSION } from '../version.ts';
import { register as evaluate } from './commands/eval.ts';
import { register as exportGguf } from './commands/export-gguf.ts';
import { register as generate } from './commands/generate.ts';
import { register as imatrix } from './commands/imatrix.ts';
import { register as info } from './commands/info.ts';
import { register as logits } from './commands/logits.ts';
import { register as prune } from './commands/prune.ts';
import { register as report } from './commands/report.ts';
import { register as run } from './commands/run.ts';
import { register as serve } from './commands/serve.ts';
import { register as trace } from './commands/trace.ts';
import { addHubResolution } from './hub-options.ts';

export interface ProgramOptions {
  /**
   * Resolve Hugging Face ids given as --model / --dataset before an action runs (default true).
   * Off, the id options are still registered; nothing touches the hub cache or the network.
   */
  resolveHubIds?: boolean;
}

export function buildProgram(opts: ProgramOptions = {}): Command {
  const program = new Command()
    .name('rac')
    .description('Reasoning-Aware Compression: prune reasoning LLMs calibrated on their own chains of thought')
    .version(RAC_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const reg of [info, generate, logits, trace, prune, imatrix, evaluate, report, run, exportGguf, serve]) reg(program);
  for (const c of program.commands) c.exitOverride();
  addHubResolution(program, { resolve: opts.resolveHubIds ?? true });
  return program;
}
