/**
 * Pruning benchmarks.
 * prune_layer: SparseGPT 50% on one decoder layer with Qwen2-1.5B dimensions and 16,384
 *   calibration tokens, through the real pipeline; seconds per phase and
 *   efficiency = (flops of the phases ÷ seconds) ÷ gemm_peak of the same run.
 * prune_layer_wanda: the same layer and tokens pruned by Wanda 50%: seconds per phase (capture
 *   is what Wanda's statistics cost: only the diagonal of XᵀX is needed).
 * capture_variants: one 4,096-token batch (2 × 2,048) through that layer, alternating the full
 *   XᵀX capture, the diagonal-only capture and the plain forward (twice each, best kept), so the
 *   three are compared under the same load.
 * prune_rss: peak RSS of `rac prune` on a 4-layer and a 16-layer model of the same width
 *   (child processes, so each peak is its own), and their ratio.
 * prune_real (opt-in, tens of minutes): a real-size model — Qwen2-1.5B's full shape (28 layers,
 *   vocabulary 151,936, BF16 weights, random values) — pruned by SparseGPT 50% with the same
 *   16,384 tokens in a child process: peak RSS and the per-layer time as a ratio to prune_layer's
 *   layer measured in the same run.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { embedRows, leftPad } from '../src/models/batch.ts';
import { LayerRunner } from '../src/models/layer-runner.ts';
import { Model } from '../src/models/model.ts';
import { writeRandomCheckpoint } from '../src/models/random.ts';
import { pruneCheckpoint } from '../src/prune/prune.ts';
import { emit } from './common.ts';
import { QWEN2_1_5B_LAYER } from './prefill.ts';

const PHASES = ['capture', 'hessian', 'factor', 'sweep', 'recompute'] as const;
type Phase = (typeof PHASES)[number];

const root = new URL('..', import.meta.url).pathname;

function calibFile(path: string, tokens: number, seqLen: number, vocab: number): void {
  const lines: string[] = [];
  let s = 12345;
  for (let done = 0; done < tokens; done += seqLen) {
    const ids = Array.from({ length: Math.min(seqLen, tokens - done) }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return (s >>> 8) % vocab;
    });
    lines.push(JSON.stringify({ input_ids: ids }));
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

export interface LayerShape {
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Qwen2.5-7B / DeepSeek-R1-Distill-Qwen-7B: 28 layers of this shape, vocabulary 152,064. */
export const QWEN2_7B_LAYER: LayerShape = { hidden: 3584, intermediate: 18944, heads: 28, kvHeads: 4, headDim: 128 };

/**
 * Flops of each SparseGPT phase for one decoder layer at `tokens` calibration tokens in sequences
 * of `seqLen`: capture and recompute are the layer's forward (its seven Linears plus the full T×T
 * attention as computed), hessian the XᵀX of the four distinct Linear inputs plus the sum over
 * 4,096-token batches, factor the Cholesky + triangular inverse (2n³/3 per Linear), sweep the
 * lazy block updates (rows·cols² + rows·cols·128). The same model `prune_layer`'s efficiency uses;
 * `prune_real` scales each measured phase by these ratios to project other token counts and shapes.
 */
export function layerPhaseFlops(l: LayerShape, tokens: number, seqLen: number): Record<Phase, number> {
  const D = l.hidden;
  const I = l.intermediate;
  const q = l.heads * l.headDim;
  const kv = l.kvHeads * l.headDim;
  const linParams = D * (q + 2 * kv) + q * D + 3 * D * I;
  const forward = 2 * tokens * linParams + 4 * l.heads * l.headDim * tokens * seqLen;
  const xtx = 2 * tokens * (D * D + q * q + D * D + I * I);
  const hessianAdds = (tokens / 4096) * (2 * D * D + q * q + I * I);
  const linears = [
    [q, D],
    [kv, D],
    [kv, D],
    [D, q],
    [I, D],
    [I, D],
    [D, I],
  ] as const;
  let factor = 0;
  let sweep = 0;
  for (const [rows, cols] of linears) {
    factor += (2 * cols ** 3) / 3;
    sweep += rows * cols * cols + rows * cols * 128;
  }
  return { capture: forward, hessian: xtx + hessianAdds, factor, sweep, recompute: forward };
}

/** Returns the layer's seconds in its phases (capture through recompute), for prune_real's ratio. */
export async function benchPruneLayer(dir: string, gemmGflops: number, tokens = 16384, seqLen = 2048): Promise<number> {
  return layerBench(dir, 'sparsegpt', gemmGflops, tokens, seqLen);
}

/** Wanda 50% on the prune_layer layer: seconds per phase (no efficiency: its flops are the forward passes). */
export async function benchPruneLayerWanda(dir: string, tokens = 16384, seqLen = 2048): Promise<number> {
  return layerBench(dir, 'wanda', null, tokens, seqLen);
}

async function layerBench(
  dir: string,
  method: 'sparsegpt' | 'wanda',
  gemmGflops: number | null,
  tokens: number,
  seqLen: number,
): Promise<number> {
  const ck = join(dir, 'model');
  writeRandomCheckpoint(ck, { family: 'qwen2', layers: 1, ...QWEN2_1_5B_LAYER, tokenizerVocab: 512, anisotropy: 1, seed: 5 });
  const model = Model.open(ck);
  const c = model.config;
  const seqs = [];
  let s = 7;
  for (let done = 0; done < tokens; done += seqLen) {
    seqs.push({ ids: Array.from({ length: seqLen }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % 400), weight: 1 });
  }
  const t0 = performance.now();
  const summary = await pruneCheckpoint(
    model,
    { sequences: seqs, tokens, source: { kind: 'synthetic' } },
    join(dir, 'out'),
    { method, target: { kind: 'unstructured', sparsity: 0.5 }, linears: 'all', batchTokens: 4096, errorStats: false },
    'bench',
  );
  const wall = (performance.now() - t0) / 1000;
  model.close();
  const sec = summary.layers[0]!.seconds;
  if (method === 'wanda') {
    const phases = { capture: sec.capture, hessian: sec.hessian, prune: sec.prune, recompute: sec.recompute };
    const seconds = Object.values(phases).reduce((a, b) => a + b, 0);
    emit({
      name: 'prune_layer_wanda',
      tokens,
      seconds: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, +v.toFixed(3)])),
      total_seconds: +seconds.toFixed(2),
      wall_seconds: +wall.toFixed(2),
    });
    return seconds;
  }
  const f = layerPhaseFlops(
    { hidden: c.hiddenSize, intermediate: c.intermediateSize, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim },
    tokens,
    seqLen,
  );
  const phases = { capture: sec.capture, hessian: sec.hessian, factorization: sec.factor, obs_sweep: sec.sweep, recompute: sec.recompute };
  const flops = PHASES.reduce((acc, p) => acc + f[p], 0);
  const seconds = Object.values(phases).reduce((a, b) => a + b, 0);
  const gflops = flops / seconds / 1e9;
  emit({
    name: 'prune_layer',
    tokens,
    seconds: Object.fromEntries(Object.entries(phases).map(([k, v]) => [k, +v.toFixed(3)])),
    total_seconds: +seconds.toFixed(2),
    wall_seconds: +wall.toFixed(2),
    gflop: +(flops / 1e9).toFixed(1),
    gflops: +gflops.toFixed(2),
    efficiency: +(gflops / gemmGflops!).toFixed(3),
  });
  return seconds;
}

export async function benchCaptureVariants(dir: string): Promise<void> {
  const ck = join(dir, 'model');
  writeRandomCheckpoint(ck, { family: 'qwen2', layers: 1, ...QWEN2_1_5B_LAYER, tokenizerVocab: 512, anisotropy: 1, seed: 5 });
  const model = Model.open(ck);
  const runner = await LayerRunner.create(model.spec, model.config, {});
  try {
    let s = 7;
    const pb = leftPad([0, 1].map(() => Array.from({ length: 2048 }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 8) % 400)));
    const hidden = embedRows(model.embedding(), model.config, pb.ids);
    const rw = new Float32Array(pb.B * pb.T).fill(1);
    const feeds = runner.weightFeeds(model.layerWeights(0));
    const best = { full_xtx: Infinity, diagonal: Infinity, forward: Infinity };
    for (let rep = 0; rep < 2; rep++) {
      for (const k of Object.keys(best) as (keyof typeof best)[]) {
        const t0 = performance.now();
        if (k === 'full_xtx') await runner.capture(feeds, hidden, pb, rw);
        else if (k === 'diagonal') await runner.captureDiagonal(feeds, hidden, pb, rw);
        else await runner.forward(feeds, hidden, pb);
        best[k] = Math.min(best[k], (performance.now() - t0) / 1000);
      }
    }
    emit({
      name: 'capture_variants',
      tokens: 4096,
      seconds: Object.fromEntries(Object.entries(best).map(([k, v]) => [k, +v.toFixed(3)])),
      diagonal_over_full: +(best.diagonal / best.full_xtx).toFixed(3),
      diagonal_over_forward: +(best.diagonal / best.forward).toFixed(3),
    });
  } finally {
    await runner.release();
    model.close();
  }
}

/** Peak RSS (KiB) of a pruning run in its own process (bench/prune-child.ts reports maxRSS). */
function peakRssKiB(model: string, calib: string, out: string): number {
  const res = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench/prune-child.ts'), model, calib, out], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (res.status !== 0) throw new Error(`prune child failed (exit ${res.status})`);
  return Number(res.stdout.trim());
}

export function benchPruneRss(dir: string): void {
  const widths = { hidden: 1024, intermediate: 2816, heads: 8, kvHeads: 2 };
  mkdirSync(dir, { recursive: true });
  const calib = join(dir, 'calib.jsonl');
  calibFile(calib, 4096, 512, 400);
  const peaks: Record<number, number> = {};
  for (const layers of [4, 16]) {
    const ck = join(dir, `rss-${layers}`);
    writeRandomCheckpoint(ck, { family: 'qwen2', layers, ...widths, tokenizerVocab: 512, seed: 9 });
    peaks[layers] = peakRssKiB(ck, calib, join(dir, `rss-out-${layers}`)) / 1024;
  }
  emit({
    name: 'prune_rss',
    hidden: widths.hidden,
    rss_mib_4_layers: +peaks[4]!.toFixed(1),
    rss_mib_16_layers: +peaks[16]!.toFixed(1),
    ratio: +(peaks[16]! / peaks[4]!).toFixed(3),
  });
}

export function benchPruneReal(dir: string, layerSeconds: number | null, tokens = 16384, seqLen = 2048): void {
  mkdirSync(dir, { recursive: true });
  const ck = join(dir, 'model');
  const t0 = performance.now();
  // DeepSeek-R1-Distill-Qwen-1.5B's shapes (Qwen2-1.5B: tied embeddings off in the distill, on here —
  // the embedding is not pruned either way), BF16, two shards as the real checkpoint.
  writeRandomCheckpoint(ck, {
    family: 'qwen2',
    layers: 28,
    ...QWEN2_1_5B_LAYER,
    tied: true,
    dtype: 'BF16',
    tokenizerVocab: 512,
    vocabPad: 151936 - 512,
    shards: 2,
    anisotropy: 1,
    seed: 5,
  });
  const writeSeconds = (performance.now() - t0) / 1000;
  const calib = join(dir, 'calib.jsonl');
  calibFile(calib, tokens, seqLen, 400);
  // RAC_BENCH_REAL_LAYERS=N prunes only the first N layers (all 28 are still read, run forward and
  // written, so peak RSS and load/write are the whole model's); the default prunes all 28.
  const only = process.env.RAC_BENCH_REAL_LAYERS ? Number(process.env.RAC_BENCH_REAL_LAYERS) : null;
  if (only !== null && !(Number.isInteger(only) && only >= 1 && only <= 28))
    throw new Error('RAC_BENCH_REAL_LAYERS must be an integer in [1, 28]');
  const res = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      join(root, 'bench/prune-child.ts'),
      '--json',
      ...(only ? ['--layers', String(only)] : []),
      ck,
      calib,
      join(dir, 'out'),
    ],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 1 << 22,
    },
  );
  if (res.status !== 0) throw new Error(`prune_real child failed (exit ${res.status})`);
  const r = JSON.parse(res.stdout.trim()) as {
    max_rss_kib: number;
    layer_seconds: number[];
    layer_phases: Record<Phase, number>[];
    total_seconds: number;
  };
  const sorted = [...r.layer_seconds].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const layers = r.layer_seconds.length;
  // Everything but the pruned layers' phases: reading, writing, and the forward of unpruned layers.
  const overhead = r.total_seconds - r.layer_seconds.reduce((a, b) => a + b, 0);
  // Projection: each phase's median seconds per layer, scaled by its flop ratio (layerPhaseFlops).
  const phaseMedian = Object.fromEntries(
    PHASES.map((p) => {
      const v = r.layer_phases.map((x) => x[p]).sort((a, b) => a - b);
      return [p, v[Math.floor(v.length / 2)]!];
    }),
  ) as Record<Phase, number>;
  const base = layerPhaseFlops(QWEN2_1_5B_LAYER, tokens, seqLen);
  const project = (shape: LayerShape, t: number, paramRatio: number) => {
    const f = layerPhaseFlops(shape, t, seqLen);
    const perLayer = PHASES.reduce((acc, p) => acc + phaseMedian[p] * (f[p] / base[p]), 0);
    // With only some layers pruned, the unpruned layers' forward is in `overhead`; the projection
    // counts 28 pruned layers plus the read/write share only when all 28 were pruned.
    const io = layers === 28 ? overhead : 0;
    return { layer_seconds: +perLayer.toFixed(1), total_hours: +((perLayer * 28 + io * paramRatio) / 3600).toFixed(2) };
  };
  const ratio7b = 7.62 / 1.78; // parameters (billions), for reading and writing the checkpoint
  emit({
    name: 'prune_real',
    model: 'Qwen2-1.5B shape (28 layers, hidden 1536, intermediate 8960, vocab 151936, bf16, random, 2 shards)',
    tokens,
    checkpoint_write_seconds: +writeSeconds.toFixed(1),
    peak_rss_gib: +(r.max_rss_kib / 2 ** 20).toFixed(2),
    layers_pruned: layers,
    layer_seconds_median: +median.toFixed(2),
    layer_seconds_max: +sorted[sorted.length - 1]!.toFixed(2),
    phase_seconds_median: Object.fromEntries(PHASES.map((p) => [p, +phaseMedian[p].toFixed(2)])),
    load_write_seconds: +overhead.toFixed(1),
    total_seconds: +r.total_seconds.toFixed(1),
    ...(layerSeconds ? { prune_layer_seconds: +layerSeconds.toFixed(2), layer_ratio: +(median / layerSeconds).toFixed(3) } : {}),
    projection: {
      note: 'per-phase median × flop ratio of the phase (capture/recompute ∝ tokens, hessian ∝ tokens·d², factor ∝ d³, sweep ∝ rows·cols²); 28 layers + load/write × parameter ratio; same machine',
      qwen_1_5b_1m_tokens: project(QWEN2_1_5B_LAYER, 1 << 20, 1),
      qwen_7b_16k_tokens: project(QWEN2_7B_LAYER, tokens, ratio7b),
      qwen_7b_1m_tokens: project(QWEN2_7B_LAYER, 1 << 20, ratio7b),
    },
  });
}
