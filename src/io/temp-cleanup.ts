// Temp directories (and lock files) that must not outlive the process: removed on SIGINT/SIGTERM (then the signal
// is re-raised, so the process still dies by it) and at exit. SIGKILL cannot be caught: the next
// run removes the directories whose owner process is gone (`removeStaleTempDirs`), which is why
// their names carry the owner's pid.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Whether a process with this pid exists (EPERM: it exists, owned by someone else). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const live = new Set<string>();
const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
let installed = false;

function removeAll(): void {
  for (const p of live) rmSync(p, { recursive: true, force: true });
  live.clear();
}

function onSignal(sig: NodeJS.Signals): void {
  removeAll();
  uninstall();
  // Die by the signal as without this handler, unless someone else (e.g. rac serve) handles it.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

function uninstall(): void {
  if (!installed) return;
  installed = false;
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.removeListener('exit', removeAll);
}

/** Removes `path` (recursively) if the process gets SIGINT/SIGTERM or exits before `release()`. */
export function removeOnSignal(path: string): { release(): void } {
  live.add(path);
  if (!installed) {
    installed = true;
    for (const s of SIGNALS) process.on(s, onSignal);
    process.on('exit', removeAll);
  }
  return {
    release() {
      live.delete(path);
      if (live.size === 0) uninstall();
    },
  };
}

/**
 * Removes the entries of `dir` named `<prefix><pid>-…` whose process is gone (or that carry this
 * process's pid but are not its live temp dirs: a pid reused after a crash). Returns their names.
 */
export function removeStaleTempDirs(dir: string, prefix: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)-/.exec(name.slice(prefix.length));
    if (!m) continue;
    const pid = Number(m[1]);
    const path = join(dir, name);
    const stale = pid === process.pid ? !live.has(path) : !pidAlive(pid);
    if (!stale) continue;
    rmSync(path, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
