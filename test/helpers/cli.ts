/** Running the `rac` command in a child process, as a user would (tests that check exit codes and output). */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node bin/rac.js …args` in the repository root; resolves with the exit code and output (never rejects). */
export function rac(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin/rac.js'), ...args],
      { cwd: ROOT, env: { ...process.env, RAC_DEBUG: '' }, maxBuffer: 64 << 20, timeout: 60_000 },
      (err, stdout, stderr) => done({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}
