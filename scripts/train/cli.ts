/**
 * Command-line flags of the tiny-reasoner scripts (train, eval, diagnose) through node:util's
 * parseArgs, strict: an unknown flag or a flag without its value is an error.
 */
import { parseArgs } from 'node:util';

export type FlagSpec = Record<string, { type: 'string' } | { type: 'boolean' }>;
export type FlagValues = Record<string, string | boolean | undefined>;

export function parseFlags(argv: string[], options: FlagSpec): FlagValues {
  return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as FlagValues;
}

/** `--name N` as a number (`fallback` when absent). */
export function numberFlag(v: FlagValues, name: string, fallback: number): number;
export function numberFlag(v: FlagValues, name: string, fallback: null): number | null;
export function numberFlag(v: FlagValues, name: string, fallback: number | null): number | null {
  const s = v[name];
  if (s === undefined) return fallback;
  return Number(s);
}

export function stringFlag(v: FlagValues, name: string): string | undefined {
  const s = v[name];
  return typeof s === 'string' ? s : undefined;
}
