// Exclusive lock on an output file, so that two rac processes never write the same output.
//
// The lock is a file `<output>.lock` holding its owner's pid, host and process start time. It is
// written to a temp file first and hard-linked into place: link(2) fails with EEXIST when a lock is
// there (like O_EXCL), and the lock never exists half-written. A lock whose owner is gone (no such
// pid, or the pid now belongs to a process started at another time) is stale and taken over; a lock
// from another host cannot be checked and is refused. Released by `release()` or on SIGINT/SIGTERM;
// a process killed by SIGKILL leaves a stale lock that the next run takes over.
//
// Taking over a stale lock is atomic: reading it, finding it stale and removing it are three steps,
// and between them another process may take the lock over and write its own — which a plain
// "remove if still the same" would then delete. So the remover first claims that very lock file
// (named by its inode and modification time) with a hard link `<lock>.stale-<ino>-<mtime>`; link(2)
// lets only one process claim it. Holding the claim, it checks that the lock is still that file and
// removes it; nobody else can remove it meanwhile, and a new lock can only appear once it is gone.
// A claim whose owner died is removed by the next taker.
import { linkSync, lstatSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pidAlive, removeOnSignal } from './temp-cleanup.ts';
import { RacError } from '../errors.ts';

export class LockError extends RacError {
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

/** Sleep `ms` synchronously (the lock is taken synchronously). */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** The lock file's identity: its inode and modification time (ns). */
function identity(path: string): string | 'absent' {
  try {
    const st = lstatSync(path, { bigint: true });
    return `${st.ino}-${st.mtimeNs}`;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw e;
  }
}

/**
 * Removes the stale lock `path` whose identity was `id` when it was found stale, unless another
 * process is doing so or has done so. `tmp` is this process's lock file (linked as the claim).
 * Returns false when another live process holds the claim (try again shortly).
 */
function removeStale(path: string, id: string, text: string, tmp: string): boolean {
  const claim = `${path}.stale-${id}`;
  try {
    linkSync(tmp, claim);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    // Another taker holds the claim; if it died holding it, the claim goes and we try again.
    const owner = readLock(claim);
    if (owner !== 'absent' && owner !== null && held(owner)) return false;
    rmSync(claim, { force: true });
    return false;
  }
  try {
    // Still the very file found stale (same inode, same mtime, same text)? Only the claim's holder
    // removes it, and its owner is gone, so it cannot change between this check and the unlink.
    if (identity(path) === id && readText(path) === text) {
      try {
        unlinkSync(path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  } finally {
    rmSync(claim, { force: true });
  }
  return true;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
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
  let contended = false;
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(tmp, path);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const id = identity(path);
      const text = readText(path);
      const info = readLock(path);
      if (id === 'absent' || text === null || info === 'absent') continue; // released meanwhile: try again
      if (info !== null && held(info)) {
        const other = info.host === me.host ? `pid ${info.pid}` : `pid ${info.pid} on host ${info.host}`;
        throw new LockError(
          `${target}: ${what} in use by another rac process (${other}, lock ${path}); wait for it to finish, or use another --out` +
            (info.host === me.host ? '' : `; remove ${path} if that process is gone`),
        );
      }
      if (attempt >= 50)
        throw new LockError(
          contended
            ? `${target}: another rac process is taking over the stale lock ${path}; try again`
            : `${target}: cannot take the stale lock ${path}; remove it if no rac process is writing ${target}`,
        );
      // Stale (owner gone) or unreadable: remove it — atomically, see the header.
      contended = !removeStale(path, id, text, tmp);
      if (contended) pause(10);
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
