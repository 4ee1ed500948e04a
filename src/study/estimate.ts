/**
 * What a long command is about to cost, before it starts: the work (layers × tokens, Hessian
 * sizes, traces × tokens), and a wall time and peak memory estimated from this machine's measured
 * speed.
 *
 * The speed comes from a short calibration through the runtime (src/runtime/gemm.ts): a tiny GEMM
 * (the per-call overhead), a square one (the GEMM rate the O(n³) work runs at), a skinny one (the
 * rate of decode-sized products), and a JS multiply-add loop (the element-wise loops of SparseGPT's
 * sweep, Hessian accumulation, sorting). It is measured once per machine — cpu model, thread count,
 * provider, onnxruntime version — and cached in the user's cache directory
 * (`$XDG_CACHE_HOME/rac/speed.json`, else `~/.cache/rac/speed.json`).
 *
 * The time model counts, for every phase, GEMM flops, runtime calls and JS element operations and
 * sums flops/rate + calls·overhead + ops/js-rate; memory adds the buffers alive at the peak (one
 * layer's f32 weights, its Hessians, both hidden-state stores up to their limit, the embedding
 * table, SparseGPT's factor and working copies) to the process's current resident set.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, homedir } from 'node:os';
import { join } from 'node:path';
import { createOrtGemm } from '../runtime/gemm.ts';
import { runtimeDefaults, type RuntimeOptions } from '../runtime/session.ts';
import type { ModelConfig } from '../models/config.ts';
import { groupWidth, type InputGroup, type LinearSpec } from '../models/spec.ts';
import { makeBatches, type CalibSet } from '../prune/calib.ts';

export interface MachineSpeed {
  /** cpu model | threads | provider | onnxruntime version: what the figures hold for. */
  key: string;
  /** Seconds per runtime call beyond its flops (session run, tensor copies). */
  call_overhead_s: number;
  /** GEMM flop/s at 512×512×512. */
  gemm_flops_per_s: number;
  /** GEMM flop/s at 16×1024×1024 (decode-sized). */
  skinny_flops_per_s: number;
  /** JS multiply-adds per second on Float64Arrays. */
  js_ops_per_s: number;
  /** Seconds to create and first run a session (graph optimisation, arena). */
  session_s: number;
  measured: string;
}

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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Measure this machine's speed (about half a second). */
export async function measureSpeed(runtime: Partial<RuntimeOptions> = {}): Promise<MachineSpeed> {
  const rt = { ...runtimeDefaults(), ...runtime };
  const gemm = createOrtGemm(rt);
  const rand = (n: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;
    return a;
  };
  let first = 0;
  const time = async (m: number, k: number, n: number, reps: number) => {
    const a = rand(m * k);
    const b = rand(k * n);
    const tw = performance.now();
    await gemm.matmul(a, b, m, k, n); // warm-up: session creation, arena
    if (first === 0) first = (performance.now() - tw) / 1000;
    const ts: number[] = [];
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      await gemm.matmul(a, b, m, k, n);
      ts.push((performance.now() - t0) / 1000);
    }
    return median(ts);
  };
  try {
    const tiny = await time(8, 8, 8, 30);
    const sq = await time(512, 512, 512, 5);
    const sk = await time(16, 1024, 1024, 9);
    const overhead = tiny;
    const gemmRate = (2 * 512 ** 3) / Math.max(1e-9, sq - overhead);
    const skinnyRate = (2 * 16 * 1024 * 1024) / Math.max(1e-9, sk - overhead);
    const n = 1 << 22;
    const x = new Float64Array(n).fill(0.5);
    const y = new Float64Array(n).fill(0.25);
    const jsTimes: number[] = [];
    for (let r = 0; r < 5; r++) {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) y[i] -= 0.999 * x[i]!;
      jsTimes.push((performance.now() - t0) / 1000);
    }
    return {
      key: await machineKey(rt),
      call_overhead_s: overhead,
      gemm_flops_per_s: gemmRate,
      skinny_flops_per_s: skinnyRate,
      js_ops_per_s: n / Math.max(1e-9, median(jsTimes)),
      session_s: Math.max(0, first - tiny),
      measured: new Date().toISOString(),
    };
  } finally {
    await gemm.release();
  }
}

/** This machine's speed: from the cache when measured before with the same key, else measured now and cached. */
export async function machineSpeed(opts: { runtime?: Partial<RuntimeOptions>; env?: NodeJS.ProcessEnv } = {}): Promise<MachineSpeed & { cached: boolean; file: string }> {
  const rt = { ...runtimeDefaults(), ...opts.runtime };
  const dir = racCacheDir(opts.env);
  const file = join(dir, 'speed.json');
  const key = await machineKey(rt);
  let all: Record<string, MachineSpeed> = {};
  try {
    const j = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (j && typeof j === 'object' && !Array.isArray(j)) all = j as Record<string, MachineSpeed>;
  } catch {
    /* no cache yet, or unreadable: measure */
  }
  const hit = all[key];
  if (hit && [hit.call_overhead_s, hit.gemm_flops_per_s, hit.skinny_flops_per_s, hit.js_ops_per_s, hit.session_s].every((x) => typeof x === 'number' && x > 0 && Number.isFinite(x))) {
    return { ...hit, cached: true, file };
  }
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
 * ~1.55× the planned intermediates plus ~76 MiB for the sessions themselves; startup is ~6 session
 * creations. Validated on a third shape (README: the estimate).
 */
const ARENA_FACTOR = 1.55;
const SESSION_BYTES = 76 * 2 ** 20;
const STARTUP_SESSIONS = 6;

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
}

export interface Estimate {
  /** What will be done, one line per item. */
  work: string[];
  seconds: number;
  /** Seconds per phase. */
  phases: Record<string, number>;
  peakBytes: number;
}

interface Cost {
  flops: number;
  skinnyFlops: number;
  calls: number;
  js: number;
}

const zero = (): Cost => ({ flops: 0, skinnyFlops: 0, calls: 0, js: 0 });
const secondsOf = (c: Cost, s: MachineSpeed) => c.flops / s.gemm_flops_per_s + c.skinnyFlops / s.skinny_flops_per_s + c.calls * s.call_overhead_s + c.js / s.js_ops_per_s;

/** FLOPs of one decoder layer's forward over a B×T batch (linears + attention scores and mixing). */
function layerForwardFlops(cfg: ModelConfig, linears: LinearSpec[], B: number, T: number): number {
  const lin = linears.reduce((a, l) => a + l.rows * l.cols, 0);
  return 2 * B * T * lin + 4 * B * T * T * cfg.numHeads * cfg.headDim;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 2 ** 24 ? 1 : 0)} MiB`;

/** The cost of `rac prune` on this calibration set, before it runs. */
export function estimatePrune(cfg: ModelConfig, allLinears: LinearSpec[], calib: CalibSet, w: PruneWork, speed: MachineSpeed, baseRssBytes = process.memoryUsage().rss): Estimate {
  const L = cfg.numLayers;
  const D = cfg.hiddenSize;
  const selected = new Set(w.layers);
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
  const sb = 16;

  const capture = zero();
  const prune = zero();
  const recompute = zero();
  const fwd = batches.reduce((a, b) => a + layerForwardFlops(cfg, allLinears, b.B, b.T), 0);
  const xtx = batches.reduce((a, b) => a + groups.reduce((s, g) => s + 2 * b.B * b.T * statWidth(g), 0), 0);
  const stages = w.trueSequential && groups.some((g) => g.startsWith('attn')) && groups.some((g) => g.startsWith('mlp')) ? 2 : 1;
  const lastSelected = Math.max(-1, ...selected);
  for (let l = 0; l < L; l++) {
    if (w.owl && l <= lastSelected) {
      capture.flops += fwd; // the dense pre-pass (diagonal capture)
      capture.calls += batches.length;
      capture.js += padded * D;
    }
    recompute.flops += fwd;
    recompute.calls += batches.length;
    recompute.js += padded * D; // the hidden-state copies between stores
    if (!selected.has(l)) continue;
    if (needStats) {
      capture.flops += stages * fwd + xtx;
      capture.calls += stages * batches.length;
      capture.js += batches.length * (hessBytes / 4) + padded * D;
    }
    for (const ls of w.linears) {
      const r = ls.rows;
      const c = ls.cols;
      if (w.method === 'sparsegpt') {
        prune.flops += (2 / 3) * c ** 3 + r * c * c + r * c * B; // factor (Cholesky + triangular inverse), lazy batch updates, in-block sub-block updates
        prune.calls += 2 * Math.ceil(c / 128) + Math.ceil(c / B) + Math.ceil(c / sb);
        prune.js += 3 * c * c + r * c * (sb / 2 + 4) + (r * c * c) / (2 * B) + (r * c * B) / (2 * sb) + r * c * Math.log2(Math.max(2, r * B)) / B;
      } else if (w.method === 'wanda') {
        prune.js += r * c * (4 + Math.log2(Math.max(2, c)));
      } else {
        prune.js += r * c * (2 + Math.log2(Math.max(2, r * c)));
      }
      if (needStats && errorStats) {
        prune.flops += 2 * 2 * r * c * c;
        prune.calls += 2;
        prune.js += 4 * r * c;
      }
    }
  }
  if (w.pruneLmHead) {
    const r = cfg.vocabSize;
    prune.flops += 2 * padded * D * D + (w.method === 'sparsegpt' ? (2 / 3) * D ** 3 + r * D * D : 0) + (errorStats ? 4 * r * D * D : 0);
    prune.js += r * D * 8;
  }
  // Startup: the layer sessions (forward, capture) and the GEMM sessions, each created and first run.
  const phases = { startup: STARTUP_SESSIONS * speed.session_s, capture: secondsOf(capture, speed), prune: secondsOf(prune, speed), recompute: secondsOf(recompute, speed) };
  const seconds = phases.startup + phases.capture + phases.prune + phases.recompute;

  // Peak memory: what lives through a layer's prune step.
  const storeBytes = Math.min(padded * D * 4, w.memoryLimitBytes ?? 4 * 2 ** 30);
  const layerWeights = 4 * allLinears.reduce((a, l) => a + l.rows * l.cols, 0);
  const embedding = 4 * cfg.vocabSize * D;
  const widest = w.linears.reduce((m, l) => (l.rows * l.cols > m.rows * m.cols ? l : m), w.linears[0] ?? { rows: 0, cols: 0 });
  const solver = w.method === 'sparsegpt' ? 4 * (2 * widest.cols ** 2 + 3 * widest.rows * widest.cols + B * widest.cols) : 4 * 2 * widest.rows * widest.cols;
  // onnxruntime keeps each layer session's intermediate buffers (the widest batch's: attention
  // scores and probabilities, every Linear's output) in its arena; two sessions (forward, capture).
  const maxBatch = Math.max(0, ...batches.map((b) => b.B * b.T));
  const qkv = cfg.numHeads * cfg.headDim + 2 * cfg.numKvHeads * cfg.headDim;
  const perSession = 4 * maxBatch * (qkv + 2 * D + 3 * cfg.intermediateSize) + 2 * 4 * Math.max(0, ...batches.map((b) => b.B * b.T * b.T)) * cfg.numHeads;
  const activations = ARENA_FACTOR * (needStats ? 2 : 1) * perSession + SESSION_BYTES;
  const fixed = 2 * storeBytes + 2 * layerWeights + embedding + (needStats ? 2 * hessBytes : 0) + solver;
  const peakBytes = baseRssBytes + fixed + activations;

  const hess = groups.map((g) => `${g} ${groupWidth(cfg, g)}² (${mib(4 * groupWidth(cfg, g) ** 2)})`).join(', ');
  const work = [
    `${w.layers.length} of ${L} layers × ${calib.tokens.toLocaleString('en-US')} calibration tokens (${padded.toLocaleString('en-US')} padded, ${batches.length} batches of ≤ ${w.batchTokens} tokens), ${w.linears.length} Linears per layer`,
    needStats ? `Hessians per layer: ${hess}` : 'no Hessians (magnitude without error statistics)',
    `GEMM work ${((capture.flops + prune.flops + recompute.flops) / 1e9).toFixed(1)} GFLOP; hidden-state stores 2 × ${mib(padded * D * 4)}${padded * D * 4 > storeBytes ? ` (spilled to disk above ${mib(storeBytes)})` : ''}`,
  ];
  return { work, seconds, phases, peakBytes };
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

/**
 * The cost of `rac trace` from scratch: the prompts submitted until the budget is met when every
 * completion runs to max_new_tokens (an upper bound on the tokens; early stops submit more prompts
 * for the same budget). `cfg` is null for a backend rac does not run (no time estimate).
 */
export function estimateTrace(cfg: ModelConfig | null, linears: LinearSpec[], w: TraceWork, speed: MachineSpeed | null, baseRssBytes = process.memoryUsage().rss): Estimate {
  const budget = w.tokenBudget > 0 ? w.tokenBudget : Infinity;
  let prompts = 0;
  let promptTok = 0;
  let decodeTok = 0;
  let longest = 0;
  for (const p of w.promptTokens) {
    if (promptTok + decodeTok >= budget) break;
    prompts++;
    promptTok += w.n * p;
    decodeTok += w.n * w.maxNewTokens;
    longest = Math.max(longest, p);
  }
  const traces = prompts * w.n;
  const work = [
    `${prompts.toLocaleString('en-US')} of ${w.prompts.toLocaleString('en-US')} prompts × ${w.n} = ${traces.toLocaleString('en-US')} traces, ≤ ${w.maxNewTokens} new tokens each`,
    `≤ ${(promptTok + decodeTok).toLocaleString('en-US')} tokens (${promptTok.toLocaleString('en-US')} prompt + ≤ ${decodeTok.toLocaleString('en-US')} generated)${Number.isFinite(budget) ? `; token budget ${budget.toLocaleString('en-US')}` : ''}`,
  ];
  if (!cfg || !speed) return { work, seconds: NaN, phases: {}, peakBytes: NaN };
  const L = cfg.numLayers;
  const D = cfg.hiddenSize;
  const lin = L * linears.reduce((a, l) => a + l.rows * l.cols, 0) + cfg.vocabSize * D;
  const ctx = longest + w.maxNewTokens;
  const kvWidth = cfg.numKvHeads * cfg.headDim;
  const b = Math.max(1, Math.min(w.batchSize, traces));
  // Decode: one engine call per step for the batch; each token costs its linears and its attention over the context so far.
  const steps = Math.ceil(traces / b) * w.maxNewTokens;
  const decode: Cost = { flops: 0, skinnyFlops: decodeTok * (2 * lin + 4 * L * (ctx / 2) * cfg.numHeads * cfg.headDim), calls: steps * (L + 1), js: decodeTok * cfg.vocabSize * 3 };
  const prefill: Cost = { flops: promptTok * 2 * lin + 4 * L * w.n * prompts * longest * longest * cfg.numHeads * cfg.headDim, skinnyFlops: 0, calls: Math.ceil(traces / b) * (L + 1), js: 0 };
  const phases = { prefill: secondsOf(prefill, speed), decode: secondsOf(decode, speed) };
  const kvBytes = 4 * 2 * L * kvWidth * ctx * b;
  // f32 weights (the embedding table besides), the KV cache, the logits and prefill activations of one batch.
  const peakBytes = baseRssBytes + 4 * lin + 4 * cfg.vocabSize * D + kvBytes + 4 * b * longest * (3 * D + 3 * cfg.intermediateSize + cfg.vocabSize);
  work.push(`KV cache ≤ ${mib(kvBytes)} (${b} sequences × ${ctx} positions × ${L} layers)`);
  return { work, seconds: phases.prefill + phases.decode, phases, peakBytes };
}

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
    const ph = Object.entries(e.phases).map(([k, v]) => `${k} ${formatSeconds(v)}`).join(', ');
    lines.push(
      `${cmd}: estimated ${formatSeconds(e.seconds)} (${ph}), peak memory ≈ ${mib(e.peakBytes)} — from this machine's measured speed: GEMM ${(speed.gemm_flops_per_s / 1e9).toFixed(1)} GFLOP/s, ` +
        `skinny ${(speed.skinny_flops_per_s / 1e9).toFixed(1)} GFLOP/s, ${(speed.call_overhead_s * 1e6).toFixed(0)} µs per call${speed.cached ? ' (cached)' : ''}`,
    );
  } else {
    lines.push(`${cmd}: no time estimate for this backend (rac does not run its model)`);
  }
  return lines;
}
