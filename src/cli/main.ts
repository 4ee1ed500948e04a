/**
 * rac — Reasoning-Aware Compression. Commands parse arguments and call library functions only.
 * Exit codes: 0 ok · 1 runtime failure (bad file, model error) · 2 usage error.
 */
import { Command, CommanderError } from 'commander';
import { UsageError } from '../errors.ts';
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

export function buildProgram(): Command {
  const program = new Command()
    .name('rac')
    .description('Reasoning-Aware Compression: prune reasoning LLMs calibrated on their own chains of thought')
    .version(RAC_VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const reg of [info, generate, logits, trace, prune, imatrix, evaluate, report, run, exportGguf, serve]) reg(program);
  for (const c of program.commands) c.exitOverride();
  addHubResolution(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version exit 0; usage errors were printed by commander
      return e.exitCode === 0 ? 0 : 2;
    }
    // Library errors (RacError) are one-line messages for the user; a UsageError is a usage error (exit 2).
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`rac: error: ${msg}\n`);
    if (process.env.RAC_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
}

// A closed pipe (`rac … | head`) ends the command quietly.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});
process.exitCode = await main(process.argv.slice(2));
