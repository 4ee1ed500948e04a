/** Running the `rac` command in a child process, as a user would (tests that check exit codes and output). */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** The `rac` command. */
export const RAC = join(ROOT, 'bin/rac.js');

export interface Run {
  /** The exit code; -1 when the child ended on a signal (killed at its timeout, say). */
  code: number;
  stdout: string;
  stderr: string;
  /** Wall time of the run. */
  ms: number;
  /** Whether the child was killed at its timeout. */
  killed: boolean;
  /** The signal that ended the child, if one did. */
  signal: NodeJS.Signals | null;
}

export interface RacOptions {
  /** Variables set over the test's environment (where RAC_DEBUG is cleared: errors are one line). */
  env?: Record<string, string>;
  /** Kill the child after this long (default 60 s; 0: never). */
  timeoutMs?: number;
  /** The signal that kills it then (default SIGTERM). */
  killSignal?: NodeJS.Signals;
}

/** `node bin/rac.js …args` in the repository root; resolves with the exit code and output (never rejects). */
export function rac(...args: string[]): Promise<Run> {
  return racWith({}, ...args);
}

/** `rac(…args)` with another environment, timeout or kill signal. */
export function racWith(opts: RacOptions, ...args: string[]): Promise<Run> {
  const t0 = performance.now();
  return new Promise((done) => {
    execFile(
      process.execPath,
      [RAC, ...args],
      {
        cwd: ROOT,
        env: { ...process.env, RAC_DEBUG: '', ...opts.env },
        maxBuffer: 64 << 20,
        timeout: opts.timeoutMs ?? 60_000,
        ...(opts.killSignal ? { killSignal: opts.killSignal } : {}),
      },
      (err, stdout, stderr) =>
        done({
          code: err ? (typeof err.code === 'number' ? err.code : -1) : 0,
          stdout,
          stderr,
          ms: performance.now() - t0,
          killed: !!err?.killed,
          signal: err?.signal ?? null,
        }),
    );
  });
}

/** Exit 1, nothing on stdout, and exactly one stderr line `rac: error: …` mentioning each string and matching `problem`. */
export function assertCliError(r: Run, mentions: string[], problem: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}; stderr: ${r.stderr}`);
  assert.equal(r.stdout, '', 'stdout must stay empty');
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `stderr is not one line: ${JSON.stringify(r.stderr)}`);
  assert.ok(lines[0]!.startsWith('rac: error: '), lines[0]);
  for (const m of mentions) assert.ok(lines[0]!.includes(m), `${lines[0]} does not mention ${m}`);
  assert.match(lines[0]!, problem);
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * `rac …args` started in the background (tests that kill it, or talk to it, while it runs): the
 * child, and its exit once its output is drained.
 */
export function startRac(args: string[], opts: Pick<RacOptions, 'env'> = {}): { child: ChildProcess; exit: Promise<Exit> } {
  const child = spawn(process.execPath, [RAC, ...args], {
    cwd: ROOT,
    env: { ...process.env, RAC_DEBUG: '', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  // 'close' comes after 'exit' once stdout and stderr are drained: the output is complete.
  const exit = new Promise<Exit>((done) => child.on('close', (code, signal) => done({ code, signal, stdout, stderr })));
  return { child, exit };
}

/**
 * A command line written as one string: the literal text splits at white space, and each `${value}`
 * is one argument, whole (a path with spaces stays one). `argv\`prune --model ${dir} --sparsity 0.5\``
 * is `['prune', '--model', dir, '--sparsity', '0.5']`.
 */
export function argv(text: TemplateStringsArray, ...values: (string | number)[]): string[] {
  const out: string[] = [];
  text.forEach((part, i) => {
    if (i > 0 && /^\S/.test(part)) throw new Error(`argv: text right after the value ${String(values[i - 1])} (leave a space)`);
    if (i < values.length && /\S$/.test(part)) throw new Error(`argv: text right before the value ${String(values[i])} (leave a space)`);
    out.push(...part.split(/\s+/).filter((w) => w !== ''));
    if (i < values.length) out.push(String(values[i]));
  });
  return out;
}
