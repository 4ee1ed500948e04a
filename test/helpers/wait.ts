/**
 * Synchronisation for tests: wait for a condition itself, never for a fixed time. `waitFor` polls
 * with a deadline and fails with what it was waiting for, so a slow machine only makes a test
 * slower, and a condition that never comes fails the test instead of hanging it.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';

export interface WaitOptions {
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
  /** Poll interval (default 5 ms). */
  intervalMs?: number;
}

/** Resolves with the first truthy value of `probe()`; rejects naming `what` after the deadline. */
export async function waitFor<T>(what: string, probe: () => T | Promise<T>, opts: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const intervalMs = opts.intervalMs ?? 5;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Kills `child` (SIGKILL) unless it has already exited; for `finally` blocks. */
export function killChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** The non-empty lines of a file now (0 when it does not exist): what a running command has recorded so far. */
export function lineCount(path: string): number {
  return existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '').length
    : 0;
}
