/**
 * The cost estimate before long work (src/study/estimate.ts): the machine speed is measured
 * once and cached per machine key in $XDG_CACHE_HOME/rac; the prune estimate counts what the
 * pipeline does (Hessian sizes, tokens, phases that scale with them); `--dry-run` prints only the
 * estimate and writes nothing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Model } from '../../src/models/model.ts';
import {
  estimatePrune,
  estimateTrace,
  kvBytes,
  machineSpeed,
  NUMERIC_FIELDS,
  secondsOf,
  sparsegptCost,
  SPEED_VERSION,
  waveCost,
  zeroCost,
  type Cost,
  type MachineSpeed,
  type PruneWork,
} from '../../src/study/estimate.ts';
import { scopeLinears } from '../../src/prune/prune.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, racWith } from '../helpers/cli.ts';
import { calibSet, randomSequences, writeCalibIds } from '../helpers/prune.ts';

const SPEED: MachineSpeed = {
  version: SPEED_VERSION,
  key: 'test',
  call_overhead_s: 1e-5,
  gemm_flops_per_s: 1e10,
  skinny_flops_per_s: 5e9,
  panel_flops_per_s: 4e9,
  thin_flops_per_s: 1e9,
  js_ops_per_s: 1e8,
  layer_call_s: 2e-4,
  score_s: 1e-9,
  kv_byte_s: 1e-10,
  sample_s: 2e-8,
  session_s: 0.01,
  measured: '',
};
const CK = { family: 'qwen2' as const, layers: 3, hidden: 64, intermediate: 160, heads: 4, kvHeads: 2, vocab: 96, seed: 2 };

describe('estimate', () => {
  it('measures the machine once and then reads it from the cache', async () => {
    const env = { XDG_CACHE_HOME: tempDir('rac-cache') };
    const a = await machineSpeed({ env, runtime: { threads: 1 } });
    assert.equal(a.cached, false);
    assert.equal(a.file, join(env.XDG_CACHE_HOME, 'rac', 'speed.json'));
    assert.equal(a.version, SPEED_VERSION);
    // Every measured figure: the fixture (typed MachineSpeed) has each numeric field once.
    assert.deepEqual(
      [...NUMERIC_FIELDS].sort(),
      Object.keys(SPEED)
        .filter((k) => k !== 'version' && typeof SPEED[k as keyof MachineSpeed] === 'number')
        .sort(),
    );
    for (const k of NUMERIC_FIELDS) assert.ok(a[k] > 0 && Number.isFinite(a[k]), k);
    assert.match(a.key, /\| 1 threads \| cpu \| onnxruntime /);
    const b = await machineSpeed({ env, runtime: { threads: 1 } });
    assert.equal(b.cached, true);
    assert.equal(b.gemm_flops_per_s, a.gemm_flops_per_s);
    const onDisk = JSON.parse(readFileSync(a.file, 'utf8')) as Record<string, MachineSpeed>;
    assert.deepEqual(Object.keys(onDisk), [a.key]);
  });

  it('measures again over a cache entry of an older calibration version', async () => {
    const env = { XDG_CACHE_HOME: tempDir('rac-cache-old') };
    const dir = join(env.XDG_CACHE_HOME, 'rac');
    mkdirSync(dir, { recursive: true });
    const probe = await machineSpeed({ env: { XDG_CACHE_HOME: tempDir('rac-cache-probe') }, runtime: { threads: 1 } });
    // A version-1 entry (no version field, fewer figures) under this machine's key.
    const old = {
      key: probe.key,
      call_overhead_s: 1,
      gemm_flops_per_s: 1,
      skinny_flops_per_s: 1,
      js_ops_per_s: 1,
      session_s: 1,
      measured: '',
    };
    writeFileSync(join(dir, 'speed.json'), JSON.stringify({ [probe.key]: old }));
    const s = await machineSpeed({ env, runtime: { threads: 1 } });
    assert.equal(s.cached, false);
    assert.equal(s.version, SPEED_VERSION);
    const onDisk = JSON.parse(readFileSync(join(dir, 'speed.json'), 'utf8')) as Record<string, MachineSpeed>;
    assert.equal(onDisk[probe.key]!.version, SPEED_VERSION);
  });

  it('prices every ingredient at its own rate', () => {
    const one = (k: keyof Cost, v: number) => secondsOf({ ...zeroCost(), [k]: v }, SPEED);
    assert.equal(one('flops', 1e10), 1);
    assert.equal(one('skinnyFlops', 5e9), 1);
    assert.equal(one('panelFlops', 4e9), 1);
    assert.equal(one('thinFlops', 1e9), 1);
    assert.equal(one('calls', 1e5), 1);
    assert.equal(one('layerCalls', 5e3), 1);
    assert.equal(one('scores', 1e9), 1);
    assert.equal(one('kvBytes', 1e10), 1);
    assert.equal(one('sampled', 5e7), 1);
    assert.equal(one('js', 1e8), 1);
  });

  it("SparseGPT's ingredients scale as the solver's loops: factor with cols³, sweep with rows·cols² and rows·cols·blocksize", () => {
    const a = sparsegptCost(256, 512);
    const rows2 = sparsegptCost(512, 512);
    const cols2 = sparsegptCost(256, 1024);
    const b64 = sparsegptCost(256, 512, 64);
    // The factor depends on cols only.
    assert.deepEqual(rows2.factor, a.factor);
    assert.equal(cols2.factor.panelFlops / a.factor.panelFlops, 8);
    assert.equal(a.factor.panelFlops, (2 / 3) * 512 ** 3);
    // The lazy batch updates: rows·cols²; the in-block sub-block GEMMs: rows·cols·B.
    assert.equal(a.sweep.panelFlops, 256 * 512 * 512);
    assert.equal(rows2.sweep.panelFlops / a.sweep.panelFlops, 2);
    assert.equal(cols2.sweep.panelFlops / a.sweep.panelFlops, 4);
    assert.equal(a.sweep.thinFlops / b64.sweep.thinFlops, 2);
    assert.ok(rows2.sweep.js > 1.9 * a.sweep.js && rows2.sweep.js < 2.1 * a.sweep.js);
  });

  it('a decode wave: layer calls per step, cache bytes with the batch, sampling with the batch and the vocabulary', () => {
    const m = Model.open(checkpoint(CK));
    try {
      const cfg = m.config;
      const lin = m.spec.linears(cfg);
      const w = waveCost(cfg, lin, 4, 16, 100);
      const w2 = waveCost(cfg, lin, 8, 16, 100);
      assert.equal(w.decode.layerCalls, 100 * cfg.numLayers);
      assert.equal(w2.decode.layerCalls, w.decode.layerCalls);
      assert.equal(w.decode.calls, 100);
      assert.equal(w.decode.sampled, 100 * 4 * cfg.vocabSize);
      assert.equal(w2.decode.kvBytes / w.decode.kvBytes, 2);
      assert.equal(w2.decode.sampled / w.decode.sampled, 2);
      // The cache grows as KvCache.reserve grows it: 16 + 64 → 128 slots, then ×1.5 in multiples of 64.
      assert.equal(w.capacity, 128);
      assert.equal(waveCost(cfg, lin, 4, 16, 200).capacity, 320); // 128 → 192 → 320
      assert.equal(waveCost(cfg, lin, 4, 16, 10).decode.kvBytes, 10 * kvBytes(cfg, 4, 128));
      // Longer waves cost more than linearly in steps (attention over a growing cache).
      assert.ok(waveCost(cfg, lin, 4, 16, 200).decode.kvBytes > 2 * w.decode.kvBytes);
      // Prefill: one layer call per layer, scores B·H·T² per layer.
      assert.equal(w.prefill.layerCalls, cfg.numLayers);
      assert.equal(w.prefill.scores, cfg.numLayers * 4 * cfg.numHeads * 16 * 16);
    } finally {
      m.close();
    }
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
      assert.equal(
        e1.work[1],
        'Hessians per layer: attn_in 64² (0.0 MiB), attn_out 64² (0.0 MiB), mlp_in 64² (0.0 MiB), mlp_out 160² (0.1 MiB)',
      );
      // Capture and recompute are linear in the tokens; the solver does not depend on them.
      assert.ok(Math.abs(e2.phases['capture']! / e1.phases['capture']! - 2) < 0.05, `${e2.phases['capture']} vs ${e1.phases['capture']}`);
      assert.ok(Math.abs(e2.phases['recompute']! / e1.phases['recompute']! - 2) < 0.05);
      assert.equal(e2.phases['prune'], e1.phases['prune']);
      // The solver's time is linear in the layers selected (plus a one-time JIT warm-up).
      const one = estimatePrune(cfg, lin, small, { ...work, layers: [1] }, SPEED, 0);
      const two = estimatePrune(cfg, lin, small, { ...work, layers: [0, 1] }, SPEED, 0);
      for (const k of ['prune', 'factor', 'sweep', 'capture'] as const) {
        assert.ok(Math.abs(e1.phases[k]! - two.phases[k]! - (two.phases[k]! - one.phases[k]!)) < 1e-9, k);
      }
      // Recompute runs on every layer, selected or not.
      assert.equal(one.phases['recompute'], e1.phases['recompute']);
      assert.ok(e2.peakBytes > e1.peakBytes);
      const mag = estimatePrune(cfg, lin, small, { ...work, method: 'magnitude', errorStats: false }, SPEED, 0);
      assert.equal(mag.work[1], 'no Hessians (magnitude without error statistics)');
      assert.equal(mag.phases['capture'], 0);
      // OWL's dense pre-pass: one more forward per layer (= the recompute pass) in capture
      const owl = estimatePrune(cfg, lin, small, { ...work, owl: true }, SPEED, 0);
      assert.ok(
        Math.abs(owl.phases['capture']! - e1.phases['capture']! - e1.phases['recompute']!) < 1e-9 * e1.phases['recompute']! + 1e-12,
      );
      // Asymmetric calibration (sparsegpt): two streams in every capture — exactly twice the
      // capture and hessian work; more solver work per Linear; two more stores in memory
      const asym = estimatePrune(cfg, lin, small, { ...work, asymmetric: true }, SPEED, 0);
      assert.ok(Math.abs(asym.phases['capture']! / e1.phases['capture']! - 2) < 1e-9);
      assert.ok(Math.abs(asym.phases['hessian']! / e1.phases['hessian']! - 2) < 1e-9);
      assert.ok(asym.phases['factor']! > e1.phases['factor']! && asym.phases['prune']! > e1.phases['prune']!);
      assert.equal(asym.phases['recompute'], e1.phases['recompute']);
      assert.ok(asym.peakBytes > e1.peakBytes);
      // Wanda without error statistics captures diag(XᵀX) only: less capture work than with them
      const wStats = estimatePrune(cfg, lin, small, { ...work, method: 'wanda' }, SPEED, 0);
      const wDiag = estimatePrune(cfg, lin, small, { ...work, method: 'wanda', errorStats: false }, SPEED, 0);
      assert.ok(wDiag.phases['capture']! < wStats.phases['capture']!);
    } finally {
      m.close();
    }
  });

  it('an MoE model: experts priced per routed slot, solved and held per expert; dense layers at their own cost', () => {
    const moeCk = (experts: number, mlpOnlyLayers: number[] = []) =>
      Model.open(
        checkpoint({
          family: 'qwen3_moe',
          seed: 5,
          layers: 2,
          hidden: 64,
          moe: { experts, topK: 2, expertIntermediate: 48, mlpOnlyLayers },
        }),
      );
    const calib = calibSet(randomSequences(96, 8, 32, 32, 1));
    const est = (m: Model, o: Partial<PruneWork> = {}) => {
      const lin = scopeLinears(m.spec, m.config, 'all');
      return estimatePrune(m.config, lin, calib, { method: 'sparsegpt', layers: [0, 1], linears: lin, batchTokens: 256, ...o }, SPEED, 0);
    };
    const [m4, m8, mixed] = [moeCk(4), moeCk(8), moeCk(4, [1])];
    try {
      const e4 = est(m4);
      const e8 = est(m8);
      assert.match(e4.work[1]!, /; experts 4 × \(mlp_in 64², mlp_out 48²\) \(0\.1 MiB\)$/);
      assert.ok(!/mlp_out \d+² \(/.test(e4.work[1]!.split(';')[0]!), 'no dense mlp_out in a model without dense layers');
      // Twice the experts at the same top-k: the same routed expert flops, twice the experts to
      // solve and to hold statistics for (4·E·(D² + I²) bytes, twice over in the peak).
      assert.ok(e8.phases['factor']! > 1.9 * (e4.phases['factor']! - 0.06e9 / SPEED.js_ops_per_s));
      // Δ peak: two copies of the layer's weights (4 more experts and router rows) and two of its statistics.
      assert.equal(e8.peakBytes - e4.peakBytes, 2 * 4 * 4 * (3 * 64 * 48 + 64) + 2 * 4 * 4 * (64 * 64 + 48 * 48));
      // `all` calibration: every expert on every token (more capture), gate/up sharing the layer's mlp_in.
      const all = est(m4, { moeCalibration: 'all' });
      assert.ok(all.phases['capture']! > e4.phases['capture']!);
      assert.match(all.work[1]!, /experts 4 × \(mlp_out 48²\)/);
      // A dense MLP layer (mlp_only_layers) is priced as a dense layer: the mix lies between.
      const mix = est(mixed);
      assert.ok(mix.work[1]!.includes(`mlp_out ${mixed.config.intermediateSize}²`), mix.work[1]);
      assert.notEqual(mix.phases['recompute'], e4.phases['recompute']);
    } finally {
      for (const m of [m4, m8, mixed]) m.close();
    }
  });

  it('bounds a trace by the token budget', () => {
    const e = estimateTrace(
      null,
      [],
      { promptTokens: [10, 10, 10, 10], prompts: 4, n: 2, maxNewTokens: 40, tokenBudget: 150, batchSize: 4 },
      null,
      0,
    );
    // 2·(10+40) = 100 per prompt: the second prompt reaches the budget.
    assert.equal(e.work[0], '2 of 4 prompts × 2 = 4 traces in 1 wave of ≤ 4, ≤ 40 new tokens each');
    assert.equal(e.work[1], '≤ 200 tokens (40 prompt + ≤ 160 generated); token budget 150');
    assert.ok(Number.isNaN(e.seconds));
    // The budget is checked before each wave, as runTrace does: a second wave when 200 < 250.
    const e2 = estimateTrace(
      null,
      [],
      { promptTokens: [10, 10, 10, 10, 10], prompts: 5, n: 2, maxNewTokens: 40, tokenBudget: 250, batchSize: 4 },
      null,
      0,
    );
    assert.equal(e2.work[0], '4 of 5 prompts × 2 = 8 traces in 2 waves of ≤ 4, ≤ 40 new tokens each');
  });

  it("clips generation at the model's context and prices waves, not tokens alone", () => {
    const m = Model.open(checkpoint(CK));
    try {
      const cfg = { ...m.config, maxPositionEmbeddings: 30 };
      const lin = m.spec.linears(cfg);
      const w = { promptTokens: [10, 10, 10, 10], prompts: 4, n: 1, maxNewTokens: 40, tokenBudget: 0, batchSize: 2 };
      const e = estimateTrace(cfg, lin, w, SPEED, 0);
      assert.equal(e.work[1], '≤ 120 tokens (40 prompt + ≤ 80 generated)');
      // The same tokens in one wave of 4 take half the decode steps: fewer layer calls.
      const one = estimateTrace(cfg, lin, { ...w, batchSize: 4 }, SPEED, 0);
      assert.ok(one.phases['decode']! < e.phases['decode']!);
      assert.ok(one.peakBytes > e.peakBytes, 'a wider batch holds a larger KV cache');
    } finally {
      m.close();
    }
  });

  it('rac trace --dry-run prints the waves, time and memory, writes nothing and exits 0', async () => {
    const dir = checkpoint(CK);
    const tmp = tempDir('dry-trace');
    const data = join(tmp, 'prompts.jsonl');
    writeFileSync(data, Array.from({ length: 6 }, (_, i) => JSON.stringify({ prompt: `question ${i}` })).join('\n') + '\n');
    const out = join(tmp, 'traces.jsonl');
    const r = await racWith(
      { env: { XDG_CACHE_HOME: join(tmp, 'cache') } },
      ...argv`trace --model ${dir} --dataset ${data} --n 2 --max-new-tokens 16 --batch-size 4 --token-budget 0 --out ${out} --dry-run
        --json --threads 1`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(out), 'a dry run wrote --out');
    assert.match(r.stderr, /trace: 6 of 6 prompts × 2 = 12 traces in 3 waves of ≤ 4, ≤ 16 new tokens each/);
    assert.match(r.stderr, /trace: estimated [\d.]+s \(startup [\d.]+s, prefill [\d.]+s, decode [\d.]+s\), peak memory ≈ \d+ MiB/);
    const j = JSON.parse(r.stdout) as { seconds: number; peak_bytes: number; phases: Record<string, number> };
    assert.ok(j.seconds > 0 && j.peak_bytes > 0 && j.phases['decode']! > 0);
  });

  it('rac prune --dry-run prints the estimate, writes nothing and exits 0', async () => {
    const dir = checkpoint(CK);
    const tmp = tempDir('dry');
    const calib = writeCalibIds(join(tmp, 'calib.jsonl'), randomSequences(96, 6, 20, 40, 3));
    const out = join(tmp, 'out');
    const r = await racWith(
      { env: { XDG_CACHE_HOME: join(tmp, 'cache') } },
      ...argv`prune --model ${dir} --method sparsegpt --sparsity 0.5 --calib ${calib} --out ${out} --dry-run --json --threads 1`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(out), 'a dry run wrote --out');
    assert.match(r.stderr, /prune: 3 of 3 layers × \d+ calibration tokens/);
    assert.match(r.stderr, /prune: estimated [\d.]+s .* peak memory ≈ \d+ MiB/);
    assert.ok(!/^layer /m.test(r.stderr), 'a dry run pruned');
    const j = JSON.parse(r.stdout) as { seconds: number; peak_bytes: number; work: string[] };
    assert.ok(j.seconds > 0 && j.peak_bytes > 0);
    assert.ok(existsSync(join(tmp, 'cache', 'rac', 'speed.json')));
  });

  it('rac prune --dry-run on an MoE model prices its experts', async () => {
    const dir = checkpoint({ family: 'qwen3_moe', seed: 5, layers: 2, hidden: 64, moe: { experts: 4, topK: 2, expertIntermediate: 48 } });
    const tmp = tempDir('dry-moe');
    const calib = writeCalibIds(join(tmp, 'calib.jsonl'), randomSequences(96, 4, 20, 40, 3));
    const out = join(tmp, 'out');
    const r = await racWith(
      { env: { XDG_CACHE_HOME: join(tmp, 'cache') } },
      ...argv`prune --model ${dir} --method sparsegpt --sparsity 0.5 --calib ${calib} --out ${out} --dry-run --threads 1`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(out), 'a dry run wrote --out');
    assert.match(
      r.stderr,
      /Hessians per layer: attn_in 64² \([\d.]+ MiB\), attn_out \d+² \([\d.]+ MiB\), mlp_in 64² \([\d.]+ MiB\); experts 4 × \(mlp_in 64², mlp_out 48²\)/,
    );
    assert.match(r.stderr, /prune: estimated [\d.]+s .* peak memory ≈ \d+ MiB/);
  });
});
