/**
 * What a long command is about to cost, before it starts: the work (layers × tokens, Hessian
 * sizes, traces × tokens), and a wall time and peak memory estimated from this machine's measured
 * speed.
 *
 * The speed comes from a short calibration (about a second) through the same code the commands
 * run: GEMMs of the shapes the solvers use (tiny: the per-call overhead; 1024³: the bulk;
 * 16×1024×1024: decode-sized products; inner dimension 128 and 16: the blocked Cholesky / inverse
 * and SparseGPT's lazy and in-block updates, much slower per flop than the peak), a JS
 * multiply-add loop, and a two-layer random model: its decode step at batch 1 (the fixed cost of
 * one decoder-layer session run), at batch 32 over a 1,024-slot KV cache (the cost per cache byte a
 * step reads, with the per-step JS that scales with it), its layer forward at two shapes of equal
 * tokens (the cost per attention-score element), and sampling (per vocabulary entry). It is
 * measured once per machine — cpu model, thread count, provider, onnxruntime version — and cached
 * in the user's cache directory (`$XDG_CACHE_HOME/rac/speed.json`, else `~/.cache/rac/speed.json`);
 * an entry of an older calibration version is measured again.
 *
 * The time model counts, for every phase, its GEMM flops at the rate of their shape, its session
 * calls, its attention-score elements and cache bytes, and its JS element operations; memory adds
 * the buffers alive at the peak to the process's resident set when the command starts (node,
 * onnxruntime, the tokenizer and data already loaded).
 */
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeOnSignal } from '../io/temp-cleanup.ts';
import { createOrtGemm } from '../runtime/gemm.ts';
import { runtimeDefaults, type RuntimeOptions } from '../runtime/session.ts';
import { leftPad } from '../models/batch.ts';
import type { ModelConfig } from '../models/config.ts';
import { Engine, KvCache } from '../models/engine.ts';
import { LayerRunner } from '../models/layer-runner.ts';
import { Model } from '../models/model.ts';
import { writeRandomCheckpoint } from '../models/random.ts';
import { Rng, sampleToken } from '../models/sampling.ts';
import { groupWidth, isMoeLayer, type InputGroup, type LinearSpec } from '../models/spec.ts';
import { makeBatches, type CalibSet } from '../prune/calib.ts';

/** Bumped whenever the calibration measures something new: older cache entries are re-measured. */
export const SPEED_VERSION = 2;

export interface MachineSpeed {
  /** The calibration's version (SPEED_VERSION when measured). */
  version: number;
  /** cpu model | threads | provider | onnxruntime version: what the figures hold for. */
  key: string;
  /** Seconds per runtime call beyond its flops (session run, tensor copies): an 8×8×8 GEMM. */
  call_overhead_s: number;
  /** GEMM flop/s at 1024×1024×1024 (the bulk: layer forwards, XᵀX). */
  gemm_flops_per_s: number;
  /** GEMM flop/s at 16×1024×1024 (decode-sized). */
  skinny_flops_per_s: number;
  /** GEMM flop/s at 512×128×512 (inner dimension 128: Cholesky/inverse panels, lazy batch updates). */
  panel_flops_per_s: number;
  /** GEMM flop/s at 512×16×512 (inner dimension 16: SparseGPT's in-block sub-block updates). */
  thin_flops_per_s: number;
  /** JS multiply-adds per second on Float64Arrays. */
  js_ops_per_s: number;
  /** Seconds per decoder-layer session run beyond its flops (a batch-1 decode step over 2 layers). */
  layer_call_s: number;
  /** Seconds per attention-score element (B·H·T·S per layer) of a layer forward: mask, softmax, mixing. */
  score_s: number;
  /** Seconds per byte of KV cache (keys and values, every layer) a decode step reads, its per-step JS included. */
  kv_byte_s: number;
  /** Seconds per vocabulary entry of sampling one token (softmax, nucleus; T 0.6, top-p 0.95). */
  sample_s: number;
  /** Seconds to create and first run a decoder-layer session (graph optimisation, arena). */
  session_s: number;
  measured: string;
}

/** The measured figures of a MachineSpeed: a cached entry is used only when every one is a positive number. */
export const NUMERIC_FIELDS = [
  'call_overhead_s',
  'gemm_flops_per_s',
  'skinny_flops_per_s',
  'panel_flops_per_s',
  'thin_flops_per_s',
  'js_ops_per_s',
  'layer_call_s',
  'score_s',
  'kv_byte_s',
  'sample_s',
  'session_s',
] as const;

export function racCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'rac');
}

async function ortVersion(): Promise<string> {
  try {
    const pkg = (await import('onnxruntime-node/package.json', { with: { type: 'json' } })) as { default: { version: string } };
    return pkg.default.version;
  } catch {
    return 'unknown';
  }
}

async function machineKey(rt: RuntimeOptions): Promise<string> {
  const threads = rt.threads > 0 ? rt.threads : availableParallelism();
  return `${cpus()[0]?.model.trim() ?? 'unknown cpu'} | ${threads} threads | ${rt.provider} | onnxruntime ${await ortVersion()}`;
}

/**
 * The fastest of `reps` runs after a warm-up (as bench/common.ts times): a run the scheduler
 * preempted says nothing about the machine, so on a shared machine the estimate is for the share
 * of it the command gets when it runs uncontended.
 */
async function timeBest(fn: () => Promise<unknown> | unknown, reps: number): Promise<number> {
  await fn(); // warm-up
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

/** KV cache bytes (keys and values, every layer) of B sequences at capacity C. */
export function kvBytes(cfg: Pick<ModelConfig, 'numLayers' | 'numKvHeads' | 'headDim'>, B: number, C: number): number {
  return 2 * 4 * cfg.numLayers * B * cfg.numKvHeads * cfg.headDim * C;
}

/** Attention-score elements of one decode step (every layer, every head, the whole capacity). */
const decodeScores = (cfg: Pick<ModelConfig, 'numLayers' | 'numHeads'>, B: number, C: number) => cfg.numLayers * B * cfg.numHeads * (C + 1);
/** JS element operations of one decode step beyond the vocabulary: the mask (B·C), the cache's validity rows. */
const decodeJs = (B: number, C: number) => 2 * B * C;

/** Linear weights of one decoder layer. */
const layerParams = (linears: LinearSpec[]) => linears.reduce((a, l) => a + l.rows * l.cols, 0);

/** The calibration model: 2 layers, D 64, 4 heads (2 KV), a vocabulary of about 1,000. */
const CAL = { layers: 2, hidden: 64, intermediate: 128, heads: 4, kvHeads: 2 };

/** Measure this machine's speed (about a second). */
export async function measureSpeed(runtime: Partial<RuntimeOptions> = {}): Promise<MachineSpeed> {
  const rt = { ...runtimeDefaults(), ...runtime };
  const gemm = createOrtGemm(rt);
  const rand = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
    return a;
  };
  const dir = mkdtempSync(join(tmpdir(), 'rac-speed-'));
  const cleanup = removeOnSignal(dir); // the calibration model, removed on a signal too
  let model: Model | null = null;
  let engine: Engine | null = null;
  let runner: LayerRunner | null = null;
  try {
    const time = async (m: number, k: number, n: number, reps: number) => {
      const a = rand(m * k);
      const b = rand(k * n);
      return timeBest(() => gemm.matmul(a, b, m, k, n), reps);
    };
    const overhead = await time(8, 8, 8, 30);
    const rate = (m: number, k: number, n: number, t: number) => (2 * m * k * n) / Math.max(1e-9, t - overhead);
    const gemmRate = rate(1024, 1024, 1024, await time(1024, 1024, 1024, 3));
    const skinnyRate = rate(16, 1024, 1024, await time(16, 1024, 1024, 9));
    const panelRate = rate(512, 128, 512, await time(512, 128, 512, 9));
    const thinRate = rate(512, 16, 512, await time(512, 16, 512, 9));
    const n = 1 << 21;
    const x = new Float64Array(n).fill(0.5);
    const y = new Float64Array(n).fill(0.25);
    const jsRate =
      n /
      (await timeBest(() => {
        for (let i = 0; i < n; i++) y[i] -= 0.999 * x[i]!;
      }, 5));

    // The engine and the layer runner on a 2-layer random model.
    writeRandomCheckpoint(dir, {
      family: 'qwen2',
      layers: CAL.layers,
      hidden: CAL.hidden,
      intermediate: CAL.intermediate,
      heads: CAL.heads,
      kvHeads: CAL.kvHeads,
      tokenizerVocab: 261,
      vocabPad: 763,
      seed: 1,
    });
    model = Model.open(dir, { warn: () => {} });
    const cfg = model.config;
    const lin = layerParams(model.spec.linears(cfg));
    const V = cfg.vocabSize;
    const ts = performance.now();
    runner = await LayerRunner.create(model.spec, cfg, rt);
    const sessionS = (performance.now() - ts) / 1000 / 2;
    engine = await Engine.load(model, rt);
    const step = async (B: number, S: number, reps: number) => {
      const C = Math.ceil((S + 2 + reps) / 64) * 64;
      const cache = KvCache.allocate(cfg.numLayers, B, cfg.numKvHeads, cfg.headDim, C);
      cache.S = S;
      cache.valid = Array.from({ length: B }, () => new Uint8Array(S).fill(1));
      cache.nextPos = new Array<number>(B).fill(S);
      const toks = new Array<number>(B).fill(3);
      return { t: await timeBest(() => engine!.decode(cache, toks), reps), C: cache.C };
    };
    // Layer forwards of 1,024 tokens each: 32 × 32 (few score elements) and 2 × 512 (many).
    const w = runner.weightFeeds(model.layerWeights(0));
    const fwd = async (B: number, T: number) => {
      const pb = leftPad(Array.from({ length: B }, () => new Array<number>(T).fill(1)));
      const h = rand(B * T * cfg.hiddenSize);
      return timeBest(() => runner!.forward(w, h, pb), 5);
    };
    const tShort = await fwd(32, 32);
    const tLong = await fwd(2, 512);
    const scoreS = Math.max(1e-13, (tLong - tShort) / (cfg.numHeads * (2 * 512 * 512 - 32 * 32 * 32)));
    const decodeFlops = (B: number) => 2 * B * (cfg.numLayers * lin + V * cfg.hiddenSize);
    const s1 = await step(1, 8, 15);
    const layerCall = Math.max(1e-6, (s1.t - overhead - decodeFlops(1) / skinnyRate) / cfg.numLayers);
    const sKv = await step(32, 900, 7);
    // What scales with B·C beyond the cache bytes: the score elements (per head) and the mask's JS.
    const perStep = (B: number, C: number) => decodeFlops(B) / skinnyRate + decodeScores(cfg, B, C) * scoreS + decodeJs(B, C) / jsRate;
    const kvByte = Math.max(
      1e-13,
      (sKv.t - s1.t - perStep(32, sKv.C) + perStep(1, s1.C)) / (kvBytes(cfg, 32, sKv.C) - kvBytes(cfg, 1, s1.C)),
    );
    // Sampling: 32 rows of a peaked distribution (a few likely tokens, as a trained model's).
    const logits = new Float32Array(32 * V);
    for (let i = 0; i < logits.length; i++) logits[i] = (i * 2654435761) % 61 === 0 ? 10 : 2 * Math.abs(Math.sin(i * 12.9898));
    const rng = new Rng(0, 0);
    const sampleS =
      (await timeBest(() => {
        for (let r = 0; r < 32; r++) sampleToken(logits, r * V, V, { temperature: 0.6, topP: 0.95, topK: 0 }, rng);
      }, 9)) /
      (32 * V);
    return {
      version: SPEED_VERSION,
      key: await machineKey(rt),
      call_overhead_s: overhead,
      gemm_flops_per_s: gemmRate,
      skinny_flops_per_s: skinnyRate,
      panel_flops_per_s: panelRate,
      thin_flops_per_s: thinRate,
      js_ops_per_s: jsRate,
      layer_call_s: layerCall,
      score_s: scoreS,
      kv_byte_s: kvByte,
      sample_s: Math.max(1e-12, sampleS),
      session_s: sessionS,
      measured: new Date().toISOString(),
    };
  } finally {
    await engine?.release();
    await runner?.release();
    model?.close();
    await gemm.release();
    rmSync(dir, { recursive: true, force: true });
    cleanup.release();
  }
}

/** A cached entry is used only when it is of this calibration version and every figure is a positive number. */
function usable(s: unknown): s is MachineSpeed {
  if (!s || typeof s !== 'object') return false;
  const o = s as Record<string, unknown>;
  return (
    o['version'] === SPEED_VERSION && NUMERIC_FIELDS.every((k) => typeof o[k] === 'number' && (o[k] as number) > 0 && Number.isFinite(o[k]))
  );
}

/** This machine's speed: from the cache when measured before with the same key and version, else measured now and cached. */
export async function machineSpeed(
  opts: { runtime?: Partial<RuntimeOptions>; env?: NodeJS.ProcessEnv } = {},
): Promise<MachineSpeed & { cached: boolean; file: string }> {
  const rt = { ...runtimeDefaults(), ...opts.runtime };
  const dir = racCacheDir(opts.env);
  const file = join(dir, 'speed.json');
  const key = await machineKey(rt);
  let all: Record<string, unknown> = {};
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (j && typeof j === 'object' && !Array.isArray(j)) all = j as Record<string, unknown>;
  } catch {
    /* no cache yet, or unreadable: measure */
  }
  const hit = all[key];
  if (usable(hit)) return { ...hit, cached: true, file };
  const s = await measureSpeed(rt);
  all[s.key] = s;
  try {
    mkdirSync(dir, { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    writeFileSync(tmp, JSON.stringify(all, null, 2) + '\n');
    renameSync(tmp, file);
  } catch {
    /* a read-only cache only costs a re-measurement next time */
  }
  return { ...s, cached: false, file };
}

// ---- pruning

/**
 * Fitted on this project's build machine (2-core Xeon, onnxruntime 1.30 CPU) from two prunes (the
 * tiny reasoner, 4158 prompt tokens; a random 4-layer D=512 qwen2, 16k tokens): the arena holds
 * ~1.55× the planned intermediates plus ~76 MiB for the sessions themselves. Validated on a third
 * shape (docs/pruning.md: the estimate).
 */
const ARENA_FACTOR = 1.55;
const SESSION_BYTES = 76 * 2 ** 20;
/** Sessions created before the first layer: the layer runner's two, the solver's GEMM variants. */
const STARTUP_SESSIONS = 4;
/**
 * The solvers' first Linears run before V8 has optimised their loops (a 352×128 SparseGPT prune:
 * ~250 ms cold, 5 ms warm): a one-time cost, in JS operations at the measured rate, per phase.
 * Fitted on the tiny reasoner's demo prune (docs/pruning.md: the estimate); negligible for real sizes.
 */
const WARMUP_JS = { factor: 0.06e9, sweep: 0.25e9, other: 0.06e9 };

export interface PruneWork {
  method: 'sparsegpt' | 'wanda' | 'magnitude';
  layers: number[];
  linears: LinearSpec[];
  batchTokens: number;
  blocksize?: number;
  errorStats?: boolean;
  trueSequential?: boolean;
  memoryLimitBytes?: number;
  pruneLmHead?: boolean;
  /** OWL (--sparsity-profile owl): a dense pre-pass forwards every layer up to the last selected one once more. */
  owl?: boolean;
  /**
   * Asymmetric calibration (--asymmetric, sparsegpt): every capture runs the layer on two streams
   * and adds a cross term per group; per Linear one more factorization and three (r, c, c) GEMMs;
   * two more hidden-state stores and a dense copy of the layer's weights.
   */
  asymmetric?: boolean;
  /** MoE layers: each expert's statistics from its routed tokens (default) or from every token. */
  moeCalibration?: 'routed' | 'all';
}

export interface Estimate {
  /** What will be done, one line per item. */
  work: string[];
  seconds: number;
  /** Seconds per phase (prune: the names of rac.json's per-layer `seconds`, summed over layers). */
  phases: Record<string, number>;
  peakBytes: number;
}

/**
 * What a phase does, in the units the calibration prices: GEMM flops by shape, session calls
 * (GEMM-sized and decoder-layer-sized), attention-score elements, KV-cache bytes read, sampled
 * vocabulary entries and JS element operations.
 */
export interface Cost {
  flops: number;
  skinnyFlops: number;
  panelFlops: number;
  thinFlops: number;
  calls: number;
  layerCalls: number;
  scores: number;
  kvBytes: number;
  sampled: number;
  js: number;
}

export const zeroCost = (): Cost => ({
  flops: 0,
  skinnyFlops: 0,
  panelFlops: 0,
  thinFlops: 0,
  calls: 0,
  layerCalls: 0,
  scores: 0,
  kvBytes: 0,
  sampled: 0,
  js: 0,
});

export function secondsOf(c: Cost, s: MachineSpeed): number {
  return (
    c.flops / s.gemm_flops_per_s +
    c.skinnyFlops / s.skinny_flops_per_s +
    c.panelFlops / s.panel_flops_per_s +
    c.thinFlops / s.thin_flops_per_s +
    c.calls * s.call_overhead_s +
    c.layerCalls * s.layer_call_s +
    c.scores * s.score_s +
    c.kvBytes * s.kv_byte_s +
    c.sampled * s.sample_s +
    c.js / s.js_ops_per_s
  );
}

/** A decoder layer's forward over a B×T batch: its Linears' flops and its attention. */
function layerForward(cost: Cost, cfg: ModelConfig, linears: LinearSpec[], B: number, T: number, times = 1): void {
  cost.flops += times * (2 * B * T * layerParams(linears) + 4 * B * T * T * cfg.numHeads * cfg.headDim);
  cost.scores += times * B * cfg.numHeads * T * T;
  cost.layerCalls += times;
}

/**
 * SparseGPT's solver on one (rows, cols) Linear (src/compress/sparsegpt.ts, linalg.ts), split as
 * rac.json reports it: `factor` (U with UᵀU = H⁻¹: blocked Cholesky, triangular inverse) and
 * `sweep` (the column walk, its in-block sub-block GEMMs, the lazy batch updates).
 */
export function sparsegptCost(r: number, c: number, B = 128, nb = 128, sb = 16): { factor: Cost; sweep: Cost } {
  const rp = Math.max(4 * nb, 512);
  const factor = zeroCost();
  // Cholesky: trailing updates (c³/3 flops in k=nb panels) and their lower-trapezoid subtraction in
  // JS (Σ (c−k)²/2 ≈ c³/(6·nb)); the inverse's c³/3 flops in panels; each diagonal block factored
  // and inverted in JS (c·nb²/3 each); the reversal and block copies (~6c²).
  factor.panelFlops += (2 / 3) * c ** 3;
  factor.js += c ** 3 / (6 * nb) + (2 / 3) * c * nb * nb + 6 * c * c;
  const blocks = Math.ceil(c / nb);
  factor.calls += 2 * blocks + 2 * blocks * Math.ceil(c / (2 * rp));
  const sweep = zeroCost();
  // The column walk (rows × cols × sb/2 updates), the masks' scores and selection, the sub-block
  // GEMMs (k = sb: ~rows·cols·B flops) with their subtraction, and the lazy batch updates (k = B:
  // rows·cols² flops) with theirs.
  sweep.js += r * c * (sb / 2 + 6 + Math.log2(Math.max(2, r * B))) + (r * c * B) / (2 * sb) + (r * c * c) / (2 * B) + (c * c) / 2;
  sweep.thinFlops += r * c * B;
  sweep.panelFlops += r * c * c;
  sweep.calls += Math.ceil(c / sb) + Math.ceil(c / B);
  return { factor, sweep };
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 2 ** 24 ? 1 : 0)} MiB`;

const add = (a: Cost, b: Cost, times = 1) => {
  for (const k of Object.keys(a) as (keyof Cost)[]) a[k] += times * b[k];
};

/** The cost of `rac prune` on this calibration set, before it runs. */
export function estimatePrune(
  cfg: ModelConfig,
  allLinears: LinearSpec[],
  calib: CalibSet,
  w: PruneWork,
  speed: MachineSpeed,
  baseRssBytes = process.memoryUsage().rss,
): Estimate {
  const L = cfg.numLayers;
  const D = cfg.hiddenSize;
  const batches = makeBatches(calib.sequences, w.batchTokens).map((b) => ({ B: b.length, T: Math.max(1, ...b.map((s) => s.ids.length)) }));
  const padded = batches.reduce((a, b) => a + b.B * b.T, 0);
  const groups = [...new Set(w.linears.map((l) => l.group))] as InputGroup[];
  // Wanda without error statistics captures only diag(XᵀX): width, not width², per group.
  const diagonalOnly = w.method === 'wanda' && w.errorStats === false;
  const statWidth = (g: InputGroup) => (diagonalOnly ? groupWidth(cfg, g) : groupWidth(cfg, g) ** 2);
  const hessBytes = groups.reduce((a, g) => a + 4 * statWidth(g), 0);
  const needStats = w.method !== 'magnitude' || w.errorStats !== false;
  const errorStats = w.errorStats !== false;
  const B = w.blocksize ?? 128;
  const stages = w.trueSequential && groups.some((g) => g.startsWith('attn')) && groups.some((g) => g.startsWith('mlp')) ? 2 : 1;

  // Per layer: one forward per batch (capture adds XᵀX of every group), the hidden-state copies.
  const forward = zeroCost();
  for (const b of batches) layerForward(forward, cfg, allLinears, b.B, b.T);
  forward.js += 2 * padded * D; // the stores' get/put and the graph's output copy
  const asym = !!w.asymmetric && w.method === 'sparsegpt';
  const streams = asym ? 2 : 1;
  const capture = zeroCost();
  add(capture, forward, stages * streams);
  capture.flops += streams * batches.reduce((a, b) => a + groups.reduce((s, g) => s + 2 * b.B * b.T * statWidth(g), 0), 0);
  const hessian = zeroCost();
  hessian.js += streams * batches.length * (hessBytes / 4);
  /** The solver on one layer's Linears of (rows, cols). */
  const solve = (linears: readonly { rows: number; cols: number }[]) => {
    const factor = zeroCost();
    const sweep = zeroCost();
    const other = zeroCost();
    for (const ls of linears) {
      const r = ls.rows;
      const c = ls.cols;
      if (w.method === 'sparsegpt') {
        const sg = sparsegptCost(r, c, B);
        add(factor, sg.factor);
        add(sweep, sg.sweep);
        other.js += 3 * c * c; // the dead-column scan, the damped diagonal
        if (asym) {
          // the target W* = (W·C + λW)·Uᵀ·U: (H + λI)'s factorization and three (r, c, c) GEMMs
          add(factor, sg.factor);
          other.flops += 3 * 2 * r * c * c;
          other.calls += 3;
          other.js += 6 * r * c + 2 * c * c;
        }
      } else if (w.method === 'wanda') {
        other.js += r * c * (4 + Math.log2(Math.max(2, c)));
      } else {
        other.js += r * c * (2 + Math.log2(Math.max(2, r * c)));
      }
      if (needStats && errorStats) {
        other.flops += 2 * 2 * r * c * c;
        other.calls += 2;
        other.js += 4 * r * c;
      }
    }
    return { factor, sweep, other };
  };
  // An MoE model's layers differ: its MoE layers are priced by moeLayerWork (the dense costs above
  // stay for its dense layers).
  const isMoe = (l: number) => isMoeLayer(cfg, l);
  const moeAll = Array.from({ length: L }, (_, l) => l).filter(isMoe).length;
  const moe = moeAll > 0 ? moeLayerWork(cfg, w, calib, allLinears, streams, stages) : null;
  const denseSel = w.layers.filter((l) => !isMoe(l)).length;
  const moeSel = w.layers.length - denseSel;
  const { factor, sweep, other } = solve(w.linears);
  const moeSolve = solve(moe?.linears ?? []);
  /** Σ over layers of a per-layer cost, dense and MoE layers each at their own. */
  const over = (dense: Cost, moeCost: Cost | null, nDense: number, nMoe: number) =>
    nDense * secondsOf(dense, speed) + (moeCost ? nMoe * secondsOf(moeCost, speed) : 0);
  const nSel = w.layers.length;
  const phases: Record<string, number> = {
    startup: (needStats ? STARTUP_SESSIONS : 2) * speed.session_s,
    capture: needStats ? over(capture, moe?.capture ?? null, denseSel, moeSel) : 0,
    hessian: needStats ? over(hessian, moe?.hessian ?? null, denseSel, moeSel) : 0,
    factor: over(factor, moeSolve.factor, denseSel, moeSel),
    sweep: over(sweep, moeSolve.sweep, denseSel, moeSel),
    prune: 0,
    recompute: over(forward, moe?.forward ?? null, L - moeAll, moeAll),
  };
  // OWL's dense pre-pass: one forward (diagonal capture) of every layer up to the last selected one.
  if (w.owl && nSel > 0) {
    const upTo = Array.from({ length: Math.max(...w.layers) + 1 }, (_, l) => l);
    const nMoe = upTo.filter(isMoe).length;
    phases['capture']! += over(forward, moe?.forward ?? null, upTo.length - nMoe, nMoe);
  }
  if (nSel > 0 && w.method === 'sparsegpt') {
    phases['factor']! += WARMUP_JS.factor / speed.js_ops_per_s;
    phases['sweep']! += WARMUP_JS.sweep / speed.js_ops_per_s;
  }
  const otherWarmup = nSel > 0 ? WARMUP_JS.other / speed.js_ops_per_s : 0;
  phases['prune'] = phases['factor']! + phases['sweep']! + over(other, moeSolve.other, denseSel, moeSel) + otherWarmup;
  if (w.pruneLmHead) {
    const r = cfg.vocabSize;
    const head = zeroCost();
    head.flops += 2 * padded * D * D + (errorStats ? 4 * r * D * D : 0);
    head.js += r * D * 8;
    if (w.method === 'sparsegpt') {
      const sg = sparsegptCost(r, D, B);
      add(head, sg.factor);
      add(head, sg.sweep);
    }
    phases['lm_head'] = secondsOf(head, speed);
  }
  // rac.json's `prune` holds factor and sweep; the total counts each once.
  const seconds = Object.entries(phases).reduce((a, [k, v]) => (k === 'factor' || k === 'sweep' ? a : a + v), 0);

  // Peak memory: what lives through a layer's prune step.
  const storeBytes = Math.min(padded * D * 4, w.memoryLimitBytes ?? 4 * 2 ** 30);
  // (an MoE model without a dense layer holds no dense MLP: its MoE layers' figures alone)
  const anyDense = L - moeAll > 0;
  const layerWeights = Math.max(anyDense ? 4 * layerParams(allLinears) : 0, moe?.weightBytes ?? 0);
  const embedding = 4 * cfg.vocabSize * D;
  const widest = w.linears.reduce((m, l) => (l.rows * l.cols > m.rows * m.cols ? l : m), w.linears[0] ?? { rows: 0, cols: 0 });
  const solver =
    w.method === 'sparsegpt'
      ? 4 * (2 * widest.cols ** 2 + 3 * widest.rows * widest.cols + B * widest.cols)
      : 4 * 2 * widest.rows * widest.cols;
  // onnxruntime keeps each layer session's intermediate buffers (the widest batch's: attention
  // scores and probabilities, every Linear's output) in its arena; two sessions (forward, capture).
  const maxBatch = Math.max(0, ...batches.map((b) => b.B * b.T));
  const qkv = cfg.numHeads * cfg.headDim + 2 * cfg.numKvHeads * cfg.headDim;
  const perSession =
    4 * maxBatch * (qkv + 2 * D + 3 * cfg.intermediateSize) + 2 * 4 * Math.max(0, ...batches.map((b) => b.B * b.T * b.T)) * cfg.numHeads;
  const activations = ARENA_FACTOR * (needStats ? 2 : 1) * perSession + SESSION_BYTES;
  const statBytes = Math.max(anyDense ? hessBytes : 0, moe?.statBytes ?? 0);
  const fixed =
    2 * streams * storeBytes + (2 + (asym ? 1 : 0)) * layerWeights + embedding + (needStats ? 2 * streams * statBytes : 0) + solver;
  const peakBytes = baseRssBytes + fixed + activations;

  // An MoE model lists its MoE layers' groups (and its dense layers' when it has any).
  const listed = moe ? groups.filter((g) => anyDense || g !== 'mlp_out') : groups;
  const hess =
    listed.map((g) => `${g} ${groupWidth(cfg, g)}² (${mib(4 * groupWidth(cfg, g) ** 2)})`).join(', ') + (moe ? `; ${moe.hessianText}` : '');
  const solverFlops = (f: Cost, sw: Cost, o: Cost) => f.panelFlops + sw.panelFlops + sw.thinFlops + o.flops;
  const gflop =
    (denseSel * (capture.flops + solverFlops(factor, sweep, other)) +
      (moe ? moeSel * (moe.capture.flops + solverFlops(moeSolve.factor, moeSolve.sweep, moeSolve.other)) : 0) +
      (L - moeAll) * forward.flops +
      (moe ? moeAll * moe.forward.flops : 0)) /
    1e9;
  const work = [
    `${w.layers.length} of ${L} layers × ${calib.tokens.toLocaleString('en-US')} calibration tokens (${padded.toLocaleString('en-US')} padded, ${batches.length} batches of ≤ ${w.batchTokens} tokens), ${w.linears.length} Linears per layer`,
    needStats ? `Hessians per layer: ${hess}` : 'no Hessians (magnitude without error statistics)',
    `GEMM work ${gflop.toFixed(1)} GFLOP; hidden-state stores 2 × ${mib(padded * D * 4)}${padded * D * 4 > storeBytes ? ` (spilled to disk above ${mib(storeBytes)})` : ''}`,
  ];
  return { work, seconds, phases, peakBytes };
}

/**
 * One MoE layer of `rac prune` (prune/experts.ts), per layer: the layer graph up to the routing
 * (attention and router) on every batch, each expert with tokens on its routed rows (k slots per
 * real token); the capture adds XᵀX of attention's groups and mlp_in, and each expert's own of
 * mlp_in and mlp_out over its rows (under `all`: every expert on every token, mlp_out only); the
 * Hessian sums in JS per expert and batch; the solver on E × (gate, up, down) when the scope has
 * the MLP. Memory: the layer's weights and every expert's statistics at once.
 */
function moeLayerWork(
  cfg: ModelConfig,
  w: PruneWork,
  calib: CalibSet,
  allLinears: LinearSpec[],
  streams: number,
  stages: number,
): {
  forward: Cost;
  capture: Cost;
  hessian: Cost;
  linears: { rows: number; cols: number }[];
  weightBytes: number;
  statBytes: number;
  hessianText: string;
} {
  const m = cfg.moe!;
  const D = cfg.hiddenSize;
  const E = m.numExperts;
  const k = m.topK;
  const I = m.expertIntermediateSize;
  const all = w.moeCalibration === 'all';
  const diagonal = w.method === 'wanda' && w.errorStats === false;
  const attn = allLinears.filter((l) => l.group === 'attn_in' || l.group === 'attn_out');
  const batches = makeBatches(calib.sequences, w.batchTokens).map((b) => ({
    B: b.length,
    T: Math.max(1, ...b.map((s) => s.ids.length)),
    tokens: b.reduce((a, s) => a + s.ids.length, 0),
  }));
  const expertFlops = 2 * 3 * D * I; // one row through gate, up and down
  /** The layer graph up to the routing on a batch: attention Linears, scores, the router. */
  const attnFlops = (b: { B: number; T: number }) =>
    2 * b.B * b.T * (layerParams(attn) + E * D) + 4 * b.B * b.T * b.T * cfg.numHeads * cfg.headDim;
  const forward = zeroCost();
  for (const b of batches) {
    const N = b.B * b.T;
    forward.flops += attnFlops(b) + k * b.tokens * expertFlops;
    forward.scores += b.B * cfg.numHeads * b.T * b.T;
    forward.layerCalls += 1;
    forward.calls += Math.min(E, k * b.tokens);
    forward.js += 2 * N * D + 2 * k * b.tokens * D; // the stores; gathering the rows and adding the outputs back
  }
  const groups: [string, number][] = [
    ['attn_in', D],
    ['attn_out', cfg.numHeads * cfg.headDim],
    ['mlp_in', D],
  ];
  const sq = (x: number) => (diagonal ? x : x * x);
  const groupStat = groups.reduce((a, [, g]) => a + sq(g), 0); // the layer graph's XᵀX floats
  const expertStat = all ? sq(I) : sq(D) + sq(I); // one expert's own
  const capture = zeroCost();
  const hessian = zeroCost();
  for (const b of batches) {
    const N = b.B * b.T;
    const rows = all ? E * b.tokens : k * b.tokens; // expert rows captured
    const calls = all ? E : Math.min(E, k * b.tokens);
    // the layer graph in every stage; the experts' captures once (and the reference experts' forward with asymmetric)
    capture.flops += streams * stages * (attnFlops(b) + 2 * N * groupStat);
    capture.flops += streams * rows * (expertFlops + 2 * expertStat) + (streams - 1) * k * b.tokens * expertFlops;
    capture.scores += streams * stages * b.B * cfg.numHeads * b.T * b.T;
    capture.layerCalls += stages;
    capture.calls += calls + (streams - 1) * Math.min(E, k * b.tokens);
    capture.js += streams * (2 * N * D + 2 * rows * D);
    hessian.js += streams * (groupStat + calls * expertStat);
  }
  const scoped = w.linears.some((l) => l.group === 'mlp_in' || l.group === 'mlp_out');
  const expertLinears = [
    { rows: I, cols: D },
    { rows: I, cols: D },
    { rows: D, cols: I },
  ];
  const linears = [
    ...w.linears.filter((l) => l.group === 'attn_in' || l.group === 'attn_out'),
    ...(scoped ? Array.from({ length: E }, () => expertLinears).flat() : []),
  ];
  return {
    forward,
    capture,
    hessian,
    linears,
    weightBytes: 4 * (layerParams(attn) + E * D + E * 3 * D * I),
    statBytes: 4 * (groupStat + E * expertStat),
    hessianText: `experts ${E} × (${all ? '' : `mlp_in ${D}², `}mlp_out ${I}²) (${mib(4 * E * expertStat)})`,
  };
}

// ---- traces

export interface TraceWork {
  /** Prompt token counts, in dataset order (read only as far as the budget reaches). */
  promptTokens: Iterable<number>;
  /** Prompts in the dataset. */
  prompts: number;
  n: number;
  maxNewTokens: number;
  /** 0 = the whole dataset. */
  tokenBudget: number;
  batchSize: number;
}

/** KV-cache capacity after growing from `c` to hold `need` slots (KvCache.reserve: ×1.5, multiples of 64). */
const grow = (c: number, need: number) => (need <= c ? c : Math.ceil(Math.max(need, c * 1.5) / 64) * 64);

/**
 * One generate() batch (a wave): prefill B prompts padded to T0, then `steps` decode steps of
 * the whole batch, the cache growing as KvCache does. Returns the prefill and decode costs and the
 * largest cache capacity.
 */
export function waveCost(
  cfg: ModelConfig,
  linears: LinearSpec[],
  B: number,
  T0: number,
  steps: number,
): { prefill: Cost; decode: Cost; capacity: number } {
  const L = cfg.numLayers;
  const V = cfg.vocabSize;
  const D = cfg.hiddenSize;
  const lin = layerParams(linears);
  const prefill = zeroCost();
  layerForward(prefill, cfg, linears, B, T0, L);
  prefill.flops += 2 * B * D * V;
  prefill.calls += 1;
  const decode = zeroCost();
  let C = Math.ceil((T0 + 64) / 64) * 64;
  let S = T0;
  for (let t = 0; t < steps; t++) {
    C = grow(C, S + 1);
    // Every layer attends over the whole capacity (masked beyond S).
    decode.kvBytes += kvBytes(cfg, B, C);
    decode.scores += decodeScores(cfg, B, C);
    decode.js += decodeJs(B, C);
    S++;
  }
  decode.skinnyFlops += steps * 2 * B * (L * lin + D * V) + 4 * L * B * cfg.numHeads * cfg.headDim * (steps * T0 + (steps * steps) / 2);
  decode.layerCalls += steps * L;
  decode.calls += steps; // the head
  decode.sampled += steps * B * V;
  decode.js += steps * B * (V + 2 * D); // the logits check, embedding rows
  return { prefill, decode, capacity: C };
}

/**
 * The cost of `rac trace` from scratch, if every completion runs to max_new_tokens (or the model's
 * context): prompts are submitted in waves of ⌊batch/n⌋ as runTrace does until the budget is met
 * (checked before each wave), each wave one prefill and up to max_new_tokens decode steps. Early
 * stops make waves shorter and, for the same budget, submit more of them. `cfg` is null for a
 * backend rac does not run (no time estimate).
 */
export function estimateTrace(
  cfg: ModelConfig | null,
  linears: LinearSpec[],
  w: TraceWork,
  speed: MachineSpeed | null,
  baseRssBytes = process.memoryUsage().rss,
): Estimate {
  const budget = w.tokenBudget > 0 ? w.tokenBudget : Infinity;
  const ctx = cfg?.maxPositionEmbeddings ?? Infinity;
  const perWave = Math.max(1, Math.floor(w.batchSize / w.n));
  const waves: { prompts: number; longest: number; steps: number }[] = [];
  let prompts = 0;
  let promptTok = 0;
  let decodeTok = 0;
  let cur: { prompts: number; longest: number; steps: number } | null = null;
  for (const p of w.promptTokens) {
    if (!cur) {
      if (promptTok + decodeTok >= budget) break;
      cur = { prompts: 0, longest: 0, steps: 0 };
      waves.push(cur);
    }
    const gen = Math.max(0, Math.min(w.maxNewTokens, ctx - p));
    prompts++;
    cur.prompts++;
    cur.longest = Math.max(cur.longest, p);
    cur.steps = Math.max(cur.steps, gen);
    promptTok += w.n * p;
    decodeTok += w.n * gen;
    if (cur.prompts === perWave) cur = null;
  }
  const traces = prompts * w.n;
  const work = [
    `${prompts.toLocaleString('en-US')} of ${w.prompts.toLocaleString('en-US')} prompts × ${w.n} = ${traces.toLocaleString('en-US')} traces in ${waves.length} wave${waves.length === 1 ? '' : 's'} of ≤ ${perWave * w.n}, ≤ ${w.maxNewTokens} new tokens each`,
    `≤ ${(promptTok + decodeTok).toLocaleString('en-US')} tokens (${promptTok.toLocaleString('en-US')} prompt + ≤ ${decodeTok.toLocaleString('en-US')} generated)${Number.isFinite(budget) ? `; token budget ${budget.toLocaleString('en-US')}` : ''}`,
  ];
  if (!cfg || !speed) return { work, seconds: NaN, phases: {}, peakBytes: NaN };
  const prefill = zeroCost();
  const decode = zeroCost();
  let capacity = 0;
  let widest = 0;
  let prefillArena = 0;
  for (const wv of waves) {
    const B = wv.prompts * w.n;
    const c = waveCost(cfg, linears, B, wv.longest, wv.steps);
    add(prefill, c.prefill);
    add(decode, c.decode);
    if (kvBytes(cfg, B, c.capacity) > kvBytes(cfg, widest, capacity)) {
      capacity = c.capacity;
      widest = B;
    }
    const D = cfg.hiddenSize;
    prefillArena = Math.max(
      prefillArena,
      4 * B * wv.longest * (3 * D + 3 * cfg.intermediateSize + cfg.vocabSize / cfg.numLayers) +
        2 * 4 * B * cfg.numHeads * wv.longest * wv.longest,
    );
  }
  // Startup: the engine's sessions (one per layer, the head), each created and first run.
  const phases = { startup: (cfg.numLayers + 1) * speed.session_s, prefill: secondsOf(prefill, speed), decode: secondsOf(decode, speed) };
  const kv = kvBytes(cfg, widest, capacity);
  const params = cfg.numLayers * layerParams(linears) + cfg.vocabSize * cfg.hiddenSize;
  // f32 weights twice (the model's, the sessions' pre-packed copy), the KV cache with the copies
  // a batch leaves behind as sequences finish (KvCache.select / reserve allocate a new cache; the
  // old ones are collected lazily: KV_GARBAGE, fitted below), the widest prefill's activations.
  const peakBytes = baseRssBytes + 2 * 4 * params + KV_GARBAGE * kv + ARENA_FACTOR * prefillArena;
  work.push(`KV cache ≤ ${mib(kv)} (${widest} sequences × ${capacity} slots × ${cfg.numLayers} layers)`);
  return { work, seconds: phases.startup + phases.prefill + phases.decode, phases, peakBytes };
}

/**
 * Live KV-cache copies at the peak of a trace, in units of the largest cache: fitted on one wave of
 * the tiny reasoner (128 sequences, 611 MiB peak RSS; docs/pruning.md: the estimate), where finished
 * sequences leave the batch one by one and each departure copies the cache.
 */
const KV_GARBAGE = 2.5;

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The estimate as stderr lines, prefixed by the command's name. */
export function estimateLines(cmd: string, e: Estimate, speed: (MachineSpeed & { cached?: boolean }) | null): string[] {
  const lines = e.work.map((l) => `${cmd}: ${l}`);
  if (Number.isFinite(e.seconds) && speed) {
    const ph = Object.entries(e.phases)
      .map(([k, v]) => `${k} ${formatSeconds(v)}`)
      .join(', ');
    lines.push(
      `${cmd}: estimated ${formatSeconds(e.seconds)} (${ph}), peak memory ≈ ${mib(e.peakBytes)} — from this machine's measured speed: GEMM ${(speed.gemm_flops_per_s / 1e9).toFixed(1)} GFLOP/s, ` +
        `skinny ${(speed.skinny_flops_per_s / 1e9).toFixed(1)} GFLOP/s, panel ${(speed.panel_flops_per_s / 1e9).toFixed(1)} GFLOP/s, ${(speed.call_overhead_s * 1e6).toFixed(0)} µs per call, ` +
        `${(speed.layer_call_s * 1e6).toFixed(0)} µs per layer call${speed.cached ? ' (cached)' : ''}`,
    );
  } else {
    lines.push(`${cmd}: no time estimate for this backend (rac does not run its model)`);
  }
  return lines;
}
