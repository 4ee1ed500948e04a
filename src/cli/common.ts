/** Options and helpers shared by every command. */
import { InvalidArgumentError, type Command } from 'commander';
import type { Provider } from '../runtime/session.ts';

export interface RuntimeFlags {
  threads?: number;
  provider?: Provider;
  quiet?: boolean;
}

export function int(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer ≥ ${min}, got "${v}"`);
    return n;
  };
}

export function float(name: string, lo: number, hi: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < lo || n > hi) throw new InvalidArgumentError(`${name} must be a number in [${lo}, ${hi}], got "${v}"`);
    return n;
  };
}

export function addRuntimeOptions(cmd: Command): Command {
  return cmd
    .option('--threads <n>', 'onnxruntime intra-op threads (0 = one per core)', int('threads'))
    .option('--provider <name>', 'execution provider: cpu | cuda', (v: string) => {
      if (v !== 'cpu' && v !== 'cuda') throw new InvalidArgumentError(`provider must be cpu or cuda, got "${v}"`);
      return v as Provider;
    })
    .option('-q, --quiet', 'no progress on stderr');
}

/**
 * A usage error found inside an action (not by commander's parsing): printed with the usage hint,
 * exit code 2. (An error thrown from an action would reach main() as a silent CommanderError.)
 */
export function usage(cmd: Command, message: string): never {
  return cmd.error(`error: ${message}`, { exitCode: 2, code: 'rac.usage' });
}

export function printJson(x: unknown): void {
  process.stdout.write(JSON.stringify(x) + '\n');
}
