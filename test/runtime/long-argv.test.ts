/**
 * onnxruntime 1.30's telemetry (1DS) reads the process's command line (/proc/self/cmdline) when
 * the first session is created and runs a std::regex over it, which overflows the stack — SIGSEGV —
 * once the command line passes ~20–30 k characters: a long `--prompt`, `--system` or `--stop`
 * crashed rac. src/runtime/session.ts turns the telemetry off (ORT_DISABLE_TELEMETRY=1, unless
 * the user set it), so the command line never reaches onnxruntime.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkpoint } from '../helpers/checkpoints.ts';
import { argv, racWith } from '../helpers/cli.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function run(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      args,
      { cwd: ROOT, timeout: 120_000, maxBuffer: 16 << 20, env: { ...process.env, ORT_DISABLE_TELEMETRY: '', ...env } },
      (err, stdout, stderr) =>
        resolve({
          code: err ? (typeof err.code === 'number' ? err.code : null) : 0,
          signal: (err as { signal?: string } | null)?.signal ?? null,
          stdout,
          stderr,
        }),
    ),
  );
}

describe('a long command line does not crash onnxruntime (Linux)', { skip: process.platform !== 'linux' && 'Linux only' }, () => {
  it('rac generate with a 60,000-character --stop string loads the engine and answers (before: SIGSEGV)', async () => {
    const model = checkpoint({ family: 'qwen2', seed: 3, layers: 1, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64 });
    const stop = 'z'.repeat(60_000);
    const r = await racWith(
      { env: { ORT_DISABLE_TELEMETRY: '' }, timeoutMs: 120_000 },
      ...argv`generate -q --threads 1 --model ${model} --prompt Hello --max-new-tokens 2 --json --stop ${stop}`,
    );
    assert.equal(r.signal, null, `rac died by ${r.signal}: ${r.stderr.slice(-300)}`);
    assert.equal(r.code, 0, r.stderr.slice(-300));
    assert.equal((JSON.parse(r.stdout) as { completions: unknown[] }).completions.length, 1);
  });

  it('a session created directly (src/runtime/session.ts) with 60,000 characters of arguments', async () => {
    const mod = fileURLToPath(new URL('../../src/runtime/gemm.ts', import.meta.url));
    const code = `import('tsx/esm/api').then(async (t) => { t.register(); const { createOrtGemm } = await import(${JSON.stringify(mod)}); const g = createOrtGemm({ threads: 1 }); const c = await g.matmul(new Float32Array([1, 2]), new Float32Array([3, 4]), 1, 2, 1); console.log(c[0]); await g.release(); })`;
    const r = await run(['-e', code, 'x'.repeat(60_000)]);
    assert.equal(r.signal, null, `died by ${r.signal}`);
    assert.equal(r.stdout.trim(), '11');
  });
});
