/**
 * The cost estimate before long work (src/study/estimate.ts): the machine speed is measured
 * once and cached per machine key in $XDG_CACHE_HOME/rac; the prune estimate counts what the
 * pipeline does (Hessian sizes, tokens, phases that scale with them); `--dry-run` prints only the
 * estimate and writes nothing.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Model } from '../../src/models/model.ts';
import { estimatePrune, estimateTrace, machineSpeed, type MachineSpeed } from '../../src/study/estimate.ts';
import { scopeLinears } from '../../src/prune/prune.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { calibSet, randomSequences } from '../helpers/prune.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SPEED: MachineSpeed = { key: 'test', call_overhead_s: 1e-5, gemm_flops_per_s: 1e10, skinny_flops_per_s: 5e9, js_ops_per_s: 1e8, session_s: 0.01, measured: '' };
const CK = { family: 'qwen2' as const, layers: 3, hidden: 64, intermediate: 160, heads: 4, kvHeads: 2, vocab: 96, seed: 2 };

describe('estimate', () => {
  it('measures the machine once and then reads it from the cache', async () => {
    const env = { XDG_CACHE_HOME: tempDir('rac-cache') };
    const a = await machineSpeed({ env, runtime: { threads: 1 } });
    assert.equal(a.cached, false);
    assert.equal(a.file, join(env.XDG_CACHE_HOME, 'rac', 'speed.json'));
    for (const k of ['call_overhead_s', 'gemm_flops_per_s', 'skinny_flops_per_s', 'js_ops_per_s'] as const) assert.ok(a[k] > 0 && Number.isFinite(a[k]), k);
    assert.match(a.key, /\| 1 threads \| cpu \| onnxruntime /);
    const b = await machineSpeed({ env, runtime: { threads: 1 } });
    assert.equal(b.cached, true);
    assert.equal(b.gemm_flops_per_s, a.gemm_flops_per_s);
    const onDisk = JSON.parse(readFileSync(a.file, 'utf8')) as Record<string, MachineSpeed>;
    assert.deepEqual(Object.keys(onDisk), [a.key]);
  });

  it('counts Hessians and tokens; work scales with the calibration tokens and the layers selected', () => {
    const m = Model.open(checkpoint(CK));
    try {
      const cfg = m.config;
      const lin = scopeLinears(m.spec, cfg, 'all');
      const small = calibSet(randomSequences(96, 8, 32, 32, 1));
      const big = calibSet(randomSequences(96, 16, 32, 32, 1));
      const work = { method: 'sparsegpt' as const, layers: [0, 1, 2], linears: lin, batchTokens: 256 };
      const e1 = estimatePrune(cfg, lin, small, work, SPEED, 0);
      const e2 = estimatePrune(cfg, lin, big, work, SPEED, 0);
      assert.match(e1.work[0]!, /^3 of 3 layers × 256 calibration tokens \(256 padded, 1 batches/);
      assert.equal(e1.work[1], 'Hessians per layer: attn_in 64² (0.0 MiB), attn_out 64² (0.0 MiB), mlp_in 64² (0.0 MiB), mlp_out 160² (0.1 MiB)');
      // Capture and recompute are linear in the tokens; the solver does not depend on them.
      assert.ok(Math.abs(e2.phases['capture']! / e1.phases['capture']! - 2) < 0.05, `${e2.phases['capture']} vs ${e1.phases['capture']}`);
      assert.ok(Math.abs(e2.phases['recompute']! / e1.phases['recompute']! - 2) < 0.05);
      assert.equal(e2.phases['prune'], e1.phases['prune']);
      const one = estimatePrune(cfg, lin, small, { ...work, layers: [1] }, SPEED, 0);
      assert.ok(Math.abs(one.phases['prune']! * 3 - e1.phases['prune']!) < 1e-9);
      assert.ok(e2.peakBytes > e1.peakBytes);
      const mag = estimatePrune(cfg, lin, small, { ...work, method: 'magnitude', errorStats: false }, SPEED, 0);
      assert.equal(mag.work[1], 'no Hessians (magnitude without error statistics)');
      assert.equal(mag.phases['capture'], 0);
      // OWL's dense pre-pass: one more forward per layer (= the recompute pass) in capture
      const owl = estimatePrune(cfg, lin, small, { ...work, owl: true }, SPEED, 0);
      assert.ok(Math.abs(owl.phases['capture']! - e1.phases['capture']! - e1.phases['recompute']!) < 1e-9 * e1.phases['recompute']! + 1e-12);
      // Wanda without error statistics captures diag(XᵀX) only: less capture work than with them
      const wStats = estimatePrune(cfg, lin, small, { ...work, method: 'wanda' }, SPEED, 0);
      const wDiag = estimatePrune(cfg, lin, small, { ...work, method: 'wanda', errorStats: false }, SPEED, 0);
      assert.ok(wDiag.phases['capture']! < wStats.phases['capture']!);
    } finally {
      m.close();
    }
  });

  it('bounds a trace by the token budget', () => {
    const e = estimateTrace(null, [], { promptTokens: [10, 10, 10, 10], prompts: 4, n: 2, maxNewTokens: 40, tokenBudget: 150, batchSize: 4 }, null, 0);
    // 2·(10+40) = 100 per prompt: the second prompt reaches the budget.
    assert.equal(e.work[0], '2 of 4 prompts × 2 = 4 traces, ≤ 40 new tokens each');
    assert.equal(e.work[1], '≤ 200 tokens (40 prompt + ≤ 160 generated); token budget 150');
    assert.ok(Number.isNaN(e.seconds));
  });

  it('rac prune --dry-run prints the estimate, writes nothing and exits 0', async () => {
    const dir = checkpoint(CK);
    const tmp = tempDir('dry');
    const calib = join(tmp, 'calib.jsonl');
    writeFileSync(calib, randomSequences(96, 6, 20, 40, 3).map((s) => JSON.stringify({ input_ids: s.ids })).join('\n') + '\n');
    const out = join(tmp, 'out');
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(ROOT, 'bin/rac.js'), 'prune', '--model', dir, '--method', 'sparsegpt', '--sparsity', '0.5', '--calib', calib, '--out', out, '--dry-run', '--json', '--threads', '1'],
        { cwd: ROOT, env: { ...process.env, XDG_CACHE_HOME: join(tmp, 'cache') }, timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
      );
    });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(out), 'a dry run wrote --out');
    assert.match(r.stderr, /prune: 3 of 3 layers × \d+ calibration tokens/);
    assert.match(r.stderr, /prune: estimated [\d.]+s .* peak memory ≈ \d+ MiB/);
    assert.ok(!/^layer /m.test(r.stderr), 'a dry run pruned');
    const j = JSON.parse(r.stdout) as { seconds: number; peak_bytes: number; work: string[] };
    assert.ok(j.seconds > 0 && j.peak_bytes > 0);
    assert.ok(existsSync(join(tmp, 'cache', 'rac', 'speed.json')));
  });
});
