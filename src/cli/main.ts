/**
 * rac — Reasoning-Aware Compression. Commands parse arguments and call library functions only.
 * Exit codes: 0 ok · 1 runtime failure (bad file, model error) · 2 usage error.
 */
import { CommanderError } from 'commander';
import { UsageError } from '../errors.ts';
import { buildProgram } from './program.ts';

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
