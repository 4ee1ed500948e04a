// Sandbox for untrusted programs (code-task grading).
//
// Every run happens in a fresh private directory, inside new network, PID and mount namespaces
// (`unshare --net --pid --fork --kill-child --mount --mount-proc`), as an unprivileged user
// (`setpriv` to uid/gid 65534 "nobody", no supplementary groups, no capabilities,
// no_new_privs), under resource limits (`prlimit`: CPU seconds, address space, processes,
// file size, open files, no core dumps), with a clean environment and a wall-clock timeout that
// SIGKILLs the whole process group. Inside the mount namespace every mount is remounted
// read-only, /tmp and /dev/shm are replaced by small private tmpfs mounts and the program runs
// in /tmp/w (a tmpfs copy of its files, or — for compilation — a bind of the host work dir).
// The new network namespace has only a down loopback: no network at all. When the ns init
// process dies, the kernel kills every process left in the PID namespace, so fork bombs and
// setsid() escapes are torn down with it. Descriptors rac itself inherited without
// close-on-exec (e.g. a shell's `exec 40>>file` around `rac eval`) are closed before the
// program runs: it starts with only stdin, stdout and stderr.
//
// Fails closed: when the isolation cannot be set up (not root, unshare refused, tools
// missing) nothing is run and the result carries `sandboxError`.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';

export const SANDBOX_UID = 65534;
export const SANDBOX_GID = 65534;
/** Exit code the setup script uses when the isolation itself could not be built. */
const SETUP_FAILED = 125;

export interface SandboxLimits {
  /** Wall-clock limit; the whole process group is SIGKILLed past it. */
  wallMs: number;
  /** CPU-time limit (RLIMIT_CPU; SIGXCPU at the limit, SIGKILL one second later). */
  cpuSeconds: number;
  /** Address-space limit (RLIMIT_AS) in MiB. */
  memoryMb: number;
  /** RLIMIT_NPROC (counted per real uid, i.e. over all sandboxed processes). Default 64. */
  maxProcesses?: number;
  /** Captured stdout cap in bytes; the run is killed past it. Default 1 MiB. */
  maxOutputBytes?: number;
  /** RLIMIT_FSIZE in MiB and size of the private /tmp tmpfs. Default 64. */
  maxFileMb?: number;
  /**
   * RLIMIT_STACK in MiB. Default 8 (the usual Linux default). glibc reserves this much address
   * space for every thread's stack, so with a large value a few threads exhaust the address-space
   * limit (256 MiB allowed only 3 Python threads under 1 GiB).
   */
  stackMb?: number;
}

export interface SandboxFile {
  name: string;
  content: string | Uint8Array;
  /** File mode, default 0o644. */
  mode?: number;
}

export interface SandboxRequest {
  /** Files placed in the work dir (the program's cwd). */
  files: SandboxFile[];
  /** Command; argv[0] must be an absolute path visible inside the sandbox. */
  argv: string[];
  stdin?: string;
  limits: SandboxLimits;
  /**
   * 'tmpfs' (default): the program works on a private tmpfs copy of its files; nothing it
   * writes reaches the host disk. 'bind': the host work dir itself is mounted writable (used for
   * compilation, so that `collect` can read the outputs back).
   */
  workdir?: 'tmpfs' | 'bind';
  /** Files to read back from the work dir after the run (bind mode only). */
  collect?: string[];
}

export interface SandboxResult {
  /** Exit status of the program; null when killed by a signal or not run. */
  exitCode: number | null;
  /** Signal that ended the program (e.g. 'SIGXCPU', 'SIGKILL'), if any. */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Killed by the wall-clock limit. */
  timedOut: boolean;
  /** Killed because stdout exceeded maxOutputBytes. */
  outputLimitExceeded: boolean;
  ms: number;
  /** Set when the program was not run because the sandbox could not be built. */
  sandboxError?: string;
  collected?: Record<string, Buffer>;
}

// ---------------------------------------------------------------------------------------------
// Concurrency limit

class Semaphore {
  private waiting: (() => void)[] = [];
  private active = 0;
  constructor(public limit: number) {}
  async acquire(): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }
  drain(): void {
    while (this.active < this.limit && this.waiting.length > 0) {
      this.active++;
      this.waiting.shift()!();
    }
  }
}

const slots = new Semaphore(Math.max(1, availableParallelism()));

/** Sets how many sandboxed programs may run at once (process-wide). */
export function setSandboxConcurrency(n: number): void {
  slots.limit = Math.max(1, Math.floor(n));
  slots.drain();
}

// ---------------------------------------------------------------------------------------------
// Tools

const TOOL_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin'];

function findTool(name: string): string | null {
  for (const d of TOOL_DIRS) {
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return null;
}

/** A python3 that the unprivileged sandbox user can execute (not a shim under /root). */
export function sandboxPython(): string | null {
  const env = process.env.RAC_SANDBOX_PYTHON;
  if (env && existsSync(env)) return env;
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3', '/bin/python3']) if (existsSync(p)) return p;
  return null;
}

interface Tools {
  unshare: string;
  setpriv: string;
  prlimit: string;
  sh: string;
  /** Runs the setup script: dash cannot close descriptors above 9, bash can. */
  bash: string;
}

function tools(): Tools | string {
  const out: Partial<Tools> = {};
  const missing: string[] = [];
  for (const name of ['unshare', 'setpriv', 'prlimit', 'sh', 'bash'] as const) {
    const p = findTool(name);
    if (p) out[name] = p;
    else missing.push(name);
  }
  if (missing.length > 0) {
    return `sandbox tools missing: ${missing.join(', ')} (install the Debian packages util-linux and bash)`;
  }
  return out as Tools;
}

// The setup script runs (bash) as root inside the new namespaces, then runs the program as nobody.
// $1 = mode (tmpfs|bind), $2 = tmpfs size MiB, $3 = colon-separated paths to hide, rest = argv.
const SETUP_SCRIPT = `
set -u
set -f
die() { echo "rac-sandbox: $*" >&2; exit ${SETUP_FAILED}; }
mode=$1; tmpmb=$2; hide=$3; shift 3
# Close every inherited descriptor but stdin/stdout/stderr and the status pipe (3, closed for the
# program below), then check that none is left: fail closed rather than hand one to the program.
set +f
for fd in /proc/self/fd/*; do
  fd=\${fd##*/}
  case $fd in 0|1|2|3) ;; *) eval "exec $fd>&-" ;; esac
done
for fd in /proc/self/fd/*; do
  fd=\${fd##*/}
  # (the listing includes the directory's own descriptor, closed by now: dup it to test)
  case $fd in 0|1|2|3) ;; *) { true >&"$fd"; } 2>/dev/null && die "cannot close the inherited descriptor $fd" ;; esac
done
set -f
mount -o remount,bind,ro / || die "cannot remount / read-only"
for m in $(awk '{print $5}' /proc/self/mountinfo); do
  [ "$m" = / ] || mount -o remount,bind,ro "$m" 2>/dev/null || true
done
if [ -n "$hide" ]; then
  IFS=:
  for h in $hide; do
    [ -d "$h" ] && { mount -t tmpfs -o ro,size=4k,mode=0755 tmpfs "$h" || die "cannot hide $h"; }
  done
  unset IFS
fi
mount -t tmpfs -o size=\${tmpmb}m,mode=1777,nosuid,nodev tmpfs /tmp || die "cannot mount a private /tmp"
if [ -d /dev/shm ]; then
  mount -t tmpfs -o size=16m,mode=1777,nosuid,nodev tmpfs /dev/shm || die "cannot mount a private /dev/shm"
fi
mkdir /tmp/w || die "cannot create the work dir"
if [ "$mode" = bind ]; then
  mount --bind /proc/self/cwd /tmp/w && mount -o remount,bind,rw /tmp/w || die "cannot bind the work dir"
else
  cp -a ./. /tmp/w/ || die "cannot copy the work files"
  chown ${SANDBOX_UID}:${SANDBOX_GID} /tmp/w || die "cannot chown the work dir"
fi
cd /tmp/w || die "cannot enter the work dir"
unset OLDPWD
"$@" 3>&-
echo "$?" >&3
`;

const SIGNALS: Record<number, string> = {
  1: 'SIGHUP',
  2: 'SIGINT',
  3: 'SIGQUIT',
  4: 'SIGILL',
  5: 'SIGTRAP',
  6: 'SIGABRT',
  7: 'SIGBUS',
  8: 'SIGFPE',
  9: 'SIGKILL',
  10: 'SIGUSR1',
  11: 'SIGSEGV',
  12: 'SIGUSR2',
  13: 'SIGPIPE',
  14: 'SIGALRM',
  15: 'SIGTERM',
  24: 'SIGXCPU',
  25: 'SIGXFSZ',
  31: 'SIGSYS',
};

let preflight: Promise<{ ok: boolean; reason?: string }> | null = null;

/**
 * Checks once per process that the sandbox can be built and isolates: runs as root, the
 * namespaces can be created, the program runs as uid 65534 and sees no network interface but
 * loopback. Cached.
 */
export function sandboxAvailable(): Promise<{ ok: boolean; reason?: string }> {
  preflight ??= (async () => {
    if (process.platform !== 'linux') return { ok: false, reason: 'sandbox needs Linux namespaces' };
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      return {
        ok: false,
        reason: 'sandbox needs root (unshare --net/--pid/--mount and setpriv to uid 65534); refusing to run untrusted code unisolated',
      };
    }
    const t = tools();
    if (typeof t === 'string') return { ok: false, reason: t };
    const r = await rawRun(t, {
      files: [],
      argv: [t.sh, '-c', 'id -u; cat /proc/net/dev'],
      limits: { wallMs: 10_000, cpuSeconds: 5, memoryMb: 256 },
    });
    if (r.sandboxError) return { ok: false, reason: r.sandboxError };
    const lines = r.stdout.split('\n');
    if (r.exitCode !== 0 || lines[0]?.trim() !== String(SANDBOX_UID)) {
      return { ok: false, reason: `sandbox self-test failed (exit ${r.exitCode}): ${r.stdout}${r.stderr}`.trim() };
    }
    const ifaces = lines
      .slice(1)
      .map((l) => /^\s*([^\s:]+):/.exec(l)?.[1])
      .filter((x): x is string => !!x);
    if (ifaces.some((i) => i !== 'lo')) {
      return { ok: false, reason: `sandbox network namespace is not empty: ${ifaces.join(', ')}` };
    }
    return { ok: true };
  })();
  return preflight;
}

/** Paths hidden (covered by an empty read-only tmpfs) inside the sandbox: the host's cwd (repo). */
function defaultHidden(): string[] {
  const cwd = process.cwd();
  const py = sandboxPython() ?? '';
  if (cwd === '/' || ['/usr', '/bin', '/lib', '/etc', '/tmp'].some((p) => cwd === p || p.startsWith(cwd + '/'))) return [];
  if (py.startsWith(cwd + '/') || cwd.includes(':')) return [];
  return [cwd];
}

/**
 * Runs one program in a fresh sandbox. Never throws for program misbehaviour; a sandbox that
 * cannot be built yields `sandboxError` (fail closed).
 */
export async function runInSandbox(req: SandboxRequest): Promise<SandboxResult> {
  const pre = await sandboxAvailable();
  if (!pre.ok) return notRun(pre.reason ?? 'sandbox unavailable');
  const t = tools();
  if (typeof t === 'string') return notRun(t);
  await slots.acquire();
  try {
    return await rawRun(t, req);
  } finally {
    slots.release();
  }
}

function notRun(reason: string): SandboxResult {
  return {
    exitCode: null,
    signal: null,
    stdout: '',
    stderr: '',
    timedOut: false,
    outputLimitExceeded: false,
    ms: 0,
    sandboxError: reason,
  };
}

async function rawRun(t: Tools, req: SandboxRequest): Promise<SandboxResult> {
  const { limits } = req;
  const mode = req.workdir ?? 'tmpfs';
  const maxOut = limits.maxOutputBytes ?? 1 << 20;
  const maxErr = 64 << 10;
  const fileMb = Math.max(1, Math.floor(limits.maxFileMb ?? 64));
  const cpu = Math.max(1, Math.ceil(limits.cpuSeconds));
  const asBytes = Math.max(16, Math.floor(limits.memoryMb)) * 1024 * 1024;
  const nproc = Math.max(1, Math.floor(limits.maxProcesses ?? 64));
  const stackBytes = Math.min(asBytes, Math.max(1, Math.floor(limits.stackMb ?? 8)) * 1024 * 1024);

  const dir = await mkdtemp(join(tmpdir(), 'rac-sbx-'));
  try {
    await chmod(dir, 0o700);
    for (const f of req.files) {
      if (f.name.includes('/') || f.name === '.' || f.name === '..') throw new Error(`bad sandbox file name ${f.name}`);
      const p = join(dir, f.name);
      await writeFile(p, f.content);
      await chmod(p, f.mode ?? 0o644);
    }
    if (mode === 'bind') await chown(dir, SANDBOX_UID, SANDBOX_GID);

    const inner = [
      t.setpriv,
      `--reuid=${SANDBOX_UID}`,
      `--regid=${SANDBOX_GID}`,
      '--clear-groups',
      '--no-new-privs',
      '--bounding-set=-all',
      '--',
      t.prlimit,
      `--cpu=${cpu}:${cpu + 1}`,
      `--as=${asBytes}`,
      `--nproc=${nproc}`,
      `--fsize=${fileMb * 1024 * 1024}`,
      '--nofile=64',
      '--core=0',
      `--stack=${stackBytes}`,
      '--',
      ...req.argv,
    ];
    const args = [
      '--net',
      '--pid',
      '--fork',
      '--kill-child',
      '--mount',
      '--propagation',
      'private',
      '--mount-proc',
      t.bash,
      '-c',
      SETUP_SCRIPT,
      'rac-sandbox',
      mode,
      String(fileMb),
      defaultHidden().join(':'),
      ...inner,
    ];

    const started = performance.now();
    const child = spawn(t.unshare, args, {
      cwd: dir,
      // MALLOC_ARENA_MAX: glibc gives every new thread its own malloc arena, a 64 MiB
      // address-space reservation each, so 14 threads exhausted a 1 GiB limit (with 8 MiB stacks).
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', HOME: '/tmp/w', MALLOC_ARENA_MAX: '2' },
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
      detached: true,
    });

    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    let statusText = '';
    let timedOut = false;
    let outputLimitExceeded = false;
    let spawnError: string | null = null;
    let killed = false;

    const killGroup = () => {
      if (killed) return;
      killed = true;
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        try {
          child.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    };

    child.stdout!.on('data', (d: Buffer) => {
      if (outputLimitExceeded) return;
      // Any byte past the cap is over it — including a chunk arriving after one that filled the
      // cap exactly (pipes deliver 64 KiB chunks, and the default cap is 16 of them).
      const room = maxOut - outBytes;
      if (d.length > room) {
        out.push(d.subarray(0, room));
        outBytes = maxOut;
        outputLimitExceeded = true;
        killGroup();
      } else {
        out.push(d);
        outBytes += d.length;
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      if (errBytes >= maxErr) return;
      const part = d.subarray(0, maxErr - errBytes);
      err.push(part);
      errBytes += part.length;
    });
    const statusStream = child.stdio[3] as NodeJS.ReadableStream | null;
    statusStream?.on('data', (d: Buffer | string) => {
      if (statusText.length < 64) statusText += d.toString();
    });
    statusStream?.on('error', () => {});
    child.stdin!.on('error', () => {}); // EPIPE when the program does not read its input
    child.stdin!.end(req.stdin ?? '');

    const timer = setTimeout(
      () => {
        timedOut = true;
        killGroup();
      },
      Math.max(1, limits.wallMs),
    );

    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      let done = false;
      let guard: NodeJS.Timeout | undefined;
      const finish = (c: number | null, s: NodeJS.Signals | null) => {
        if (done) return;
        done = true;
        if (guard) clearTimeout(guard);
        resolve({ code: c, signal: s });
      };
      child.on('error', (e) => {
        spawnError = `cannot start ${t.unshare}: ${e.message}`;
        finish(null, null);
      });
      child.on('close', (c, s) => finish(c, s));
      // If the streams stay open after the process exited and was killed, do not hang.
      child.on('exit', (c, s) => {
        guard = setTimeout(() => {
          killGroup();
          for (const st of [child.stdout, child.stderr, statusStream]) (st as { destroy?: () => void } | null)?.destroy?.();
          finish(c, s);
        }, 2000);
      });
    });
    clearTimeout(timer);
    // The whole group goes, even when the run ended normally (nothing may outlive it).
    if (!killed && child.pid !== undefined) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* group already empty */
      }
    }
    const ms = performance.now() - started;
    const stdout = Buffer.concat(out).toString('utf8');
    const stderr = Buffer.concat(err).toString('utf8');

    if (spawnError) return { ...notRun(spawnError), ms };
    const st = statusText.trim();
    if (st === '') {
      // The program never finished under the setup script: setup failure, or killed by us.
      if (!timedOut && !outputLimitExceeded) {
        const setupMsg = stderr.split('\n').find((l) => l.startsWith('rac-sandbox:') || l.startsWith('unshare:'));
        if (code === SETUP_FAILED || setupMsg || code !== 0 || signal) {
          return {
            ...notRun(`sandbox setup failed: ${(setupMsg ?? stderr.trim()) || `unshare exit ${code ?? signal}`}`),
            ms,
          };
        }
      }
      return { exitCode: null, signal: 'SIGKILL', stdout, stderr, timedOut, outputLimitExceeded, ms };
    }
    const status = Number.parseInt(st, 10);
    let exitCode: number | null = status;
    let sig: string | null = null;
    if (status > 128 && status < 128 + 65) {
      exitCode = null;
      sig = SIGNALS[status - 128] ?? `SIG${status - 128}`;
    }
    const result: SandboxResult = { exitCode, signal: sig, stdout, stderr, timedOut, outputLimitExceeded, ms };
    if (mode === 'bind' && req.collect) {
      result.collected = {};
      for (const name of req.collect) {
        if (name.includes('/')) continue;
        try {
          // Only regular files (a symlink could point at a host secret), bounded in size.
          const info = await lstat(join(dir, name));
          if (info.isFile() && info.size <= fileMb * 1024 * 1024) result.collected[name] = await readFile(join(dir, name));
        } catch {
          /* not produced */
        }
      }
    }
    return result;
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
}
