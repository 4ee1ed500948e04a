// Exclusive lock on an output file, so that two rac processes never write the same output.
//
// The lock is a file `<output>.lock` holding its owner's pid, host and process start time. It is
// written to a temp file first and hard-linked into place: link(2) fails with EEXIST when a lock is
// there (like O_EXCL), and the lock never exists half-written. A lock whose owner is gone (no such
// pid, or the pid now belongs to a process started at another time) is stale and taken over; a lock
// from another host cannot be checked and is refused. Released by `release()` or on SIGINT/SIGTERM;
// a process killed by SIGKILL leaves a stale lock that the next run takes over.
import { linkSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pidAlive, removeOnSignal } from './temp-cleanup.ts';

export class LockError extends Error {
  override name = 'LockError';
}

export interface OutputLock {
  /** Path of the lock file. */
  path: string;
  /** Removes the lock (only if it is still this process's). Idempotent. */
  release(): void;
}

interface LockInfo {
  pid: number;
  host: string;
  /** Start time of the process (Linux: /proc/<pid>/stat field 22), null where unknown. */
  start: string | null;
}

export function lockPath(target: string): string {
  return `${target}.lock`;
}

/** Start time of a process in clock ticks since boot (Linux), null where unavailable. */
function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19] ?? null; // field 22 overall
  } catch {
    return null;
  }
}

function readLock(path: string): LockInfo | null | 'absent' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
  try {
    const o = JSON.parse(text) as Partial<LockInfo>;
    if (Number.isInteger(o.pid) && (o.pid as number) > 0 && typeof o.host === 'string') {
      return { pid: o.pid as number, host: o.host, start: typeof o.start === 'string' ? o.start : null };
    }
  } catch {
    /* not ours or damaged */
  }
  return null;
}

/** Whether the lock's owner is still running (false: the lock is stale). */
function held(info: LockInfo): boolean {
  if (info.host !== hostname()) return true; // cannot check another host's processes
  if (!pidAlive(info.pid)) return false;
  const now = processStart(info.pid);
  // The pid was reused by a process started later than the lock's owner.
  if (info.start !== null && now !== null && now !== info.start) return false;
  return true;
}

/**
 * Takes the exclusive lock on `target` (an output path) or throws a LockError naming the owner.
 * `what` names the output in the message (e.g. "traces").
 */
export function lockOutput(target: string, what = 'output'): OutputLock {
  const path = lockPath(target);
  const me: LockInfo = { pid: process.pid, host: hostname(), start: processStart(process.pid) };
  const text = JSON.stringify(me) + '\n';
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  try {
    writeFileSync(tmp, text, { flag: 'wx', mode: 0o644 });
  } catch (e) {
    throw new LockError(`${target}: cannot create the lock ${path} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const info = readLock(path);
      if (info === 'absent') continue; // released meanwhile: try again
      if (info !== null && held(info)) {
        const other = info.host === me.host ? `pid ${info.pid}` : `pid ${info.pid} on host ${info.host}`;
        throw new LockError(
          `${target}: ${what} in use by another rac process (${other}, lock ${path}); wait for it to finish, or use another --out` +
            (info.host === me.host ? '' : `; remove ${path} if that process is gone`),
        );
      }
      if (attempt >= 5)
        throw new LockError(`${target}: cannot take the stale lock ${path}; remove it if no rac process is writing ${target}`);
      // Stale (owner gone) or unreadable: remove it, but only if it is still the same lock.
      const again = readLock(path);
      if (JSON.stringify(again) === JSON.stringify(info)) {
        try {
          unlinkSync(path);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
    }
  } finally {
    rmSync(tmp, { force: true });
  }
  // SIGINT/SIGTERM remove the lock too (SIGKILL leaves it: stale, taken over by the next run).
  const onSignal = removeOnSignal(path);
  let released = false;
  return {
    path,
    release() {
      if (released) return;
      released = true;
      onSignal.release();
      const info = readLock(path);
      if (info !== 'absent' && info !== null && info.pid === me.pid && info.host === me.host && info.start === me.start) {
        rmSync(path, { force: true });
      }
    },
  };
}
