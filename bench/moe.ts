/**
 * Mixture-of-Experts benchmarks on a model with Qwen3-30B-A3B's per-layer shapes (hidden 2048,
 * 32 / 4 heads of 128, 128 experts of width 768, top-8 renormalized), a few layers
 * (RAC_BENCH_MOE_LAYERS, default 2), vocabulary cut to 32k, tied embeddings, random BF16 weights:
 * - `decode_moe` / `decode_moe_ratio`: decode tokens/s of rac's engine (only the routed experts
 *   run, one baked session each) and of llama.cpp (node-llama-cpp, the same model exported to an
 *   F32 GGUF, F32 KV cache), 1, 8 and 32 streams after 32-token prompts, same threads, in one run
 *   (measured as `decode`: decode steps only, best of 2); `memory_read`, the machine's read rate
 *   in the same run, against which `decode_moe_profile` sets the experts' streaming rate and
 *   `decode_moe_ratio` the ratio's ceiling were rac's expert calls to stream at that rate;
 * - `prune_moe`: SparseGPT 50% of every Linear (attention and each expert with its own routed
 *   statistics) on 4,096 calibration tokens in a child process: seconds per MoE layer (and per
 *   phase) and peak RSS.
 * RAC_BENCH_MOE_SMALL=1 runs the same at hidden 256 with 16 experts of 128 (a quick check).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportGguf } from '../src/export/gguf.ts';
import { Engine } from '../src/models/engine.ts';
import { Model } from '../src/models/model.ts';
import { Session } from '../src/runtime/session.ts';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../src/models/random.ts';
import { emit, memoryReadRate } from './common.ts';
import { bestOf, llamaDecode, racDecode, withLlamaModel } from './decode.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const THREADS = Number(process.env.RAC_BENCH_DECODE_THREADS ?? 2);
const REPS = 2;
const STREAMS = [1, 8, 32];

/** Qwen3-30B-A3B's layer (48 of them there; vocabulary 151,936). */
export const QWEN3_30B_A3B_LAYER = {
  hidden: 2048,
  heads: 32,
  kvHeads: 4,
  headDim: 128,
  intermediate: 6144,
  moe: { experts: 128, topK: 8, expertIntermediate: 768 },
};
const SMALL_LAYER = {
  hidden: 256,
  heads: 4,
  kvHeads: 2,
  headDim: 64,
  intermediate: 768,
  moe: { experts: 16, topK: 4, expertIntermediate: 128 },
};

function benchModel(dir: string): { ckpt: string; opts: RandomCheckpointOptions } {
  const small = process.env.RAC_BENCH_MOE_SMALL === '1';
  const layers = Number(process.env.RAC_BENCH_MOE_LAYERS ?? 2);
  const opts: RandomCheckpointOptions = {
    family: 'qwen3_moe',
    layers,
    ...(small ? SMALL_LAYER : QWEN3_30B_A3B_LAYER),
    tied: true,
    dtype: 'BF16',
    tokenizerVocab: 512,
    vocabPad: 32768 - 512,
    seed: 7,
  };
  const ckpt = join(dir, 'model');
  writeRandomCheckpoint(ckpt, opts);
  return { ckpt, opts };
}

function dimsOf(o: RandomCheckpointOptions): Record<string, unknown> {
  return {
    layers: o.layers,
    hidden: o.hidden,
    heads: o.heads,
    kv_heads: o.kvHeads,
    head_dim: o.headDim,
    ...o.moe,
    vocab: 32768,
    threads: THREADS,
  };
}

export async function benchDecodeMoe(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const { ckpt, opts } = benchModel(dir);
  const gguf = join(dir, 'model-f32.gguf');
  exportGguf({ model: ckpt, out: gguf, dtype: 'f32', warn: () => {} });
  const dims = dimsOf(opts);
  const rac = new Map<number, number>();
  const atMemoryRate = new Map<number, number>();
  const model = Model.open(ckpt);
  const t0 = performance.now();
  const engine = await Engine.load(model, { threads: THREADS });
  const loadSeconds = (performance.now() - t0) / 1000;
  try {
    for (const streams of STREAMS) {
      const best = await bestOf(REPS, () => racDecode(engine, streams));
      rac.set(streams, best);
      emit({ name: 'decode_moe', engine: 'rac', streams, tokens_per_s: +best.toFixed(2), load_seconds: +loadSeconds.toFixed(1), ...dims });
    }
    const mem = await memoryReadRate(THREADS);
    emit({ name: 'memory_read', gb_per_s: +mem.gb_per_s.toFixed(1), mib: mem.bytes / 2 ** 20, threads: THREADS });
    for (const streams of STREAMS) {
      const p = await profiledDecode(engine, streams, opts);
      emit({ name: 'decode_moe_profile', streams, ...p, expert_over_memory_read: +(p.expert_weight_gb_per_s / mem.gb_per_s).toFixed(2) });
      // The speed-up rac would get if its routed-expert calls streamed at the machine's read rate
      // with everything else unchanged (Amdahl over the expert share).
      atMemoryRate.set(streams, 1 / (1 - p.expert_share * (1 - Math.min(1, p.expert_weight_gb_per_s / mem.gb_per_s))));
    }
  } finally {
    await engine.release();
    model.close();
  }
  await withLlamaModel(gguf, 'decode_moe', async (lm) => {
    for (const streams of STREAMS) {
      const best = await bestOf(REPS, () => llamaDecode(lm, streams));
      emit({ name: 'decode_moe', engine: 'llama.cpp', streams, tokens_per_s: +best.toFixed(2), kv_cache: 'f32', ...dims });
      const ratio = rac.get(streams)! / best;
      emit({
        name: 'decode_moe_ratio',
        streams,
        rac_over_llamacpp: +ratio.toFixed(3),
        // The ratio's ceiling with rac's expert calls at the memory_read rate.
        if_experts_at_memory_read: +(ratio * atMemoryRate.get(streams)!).toFixed(3),
      });
    }
  });
}

/**
 * One more decode pass (prefill included) with every session call timed: the share of the wall
 * time spent inside onnxruntime sessions, and per routed-expert call its time and the rate at
 * which it streams the expert's F32 weights (3·I·D·4 bytes) — where a decode step's time goes.
 */
async function profiledDecode(engine: Engine, streams: number, o: RandomCheckpointOptions): Promise<Record<string, number>> {
  const expertBytes = 3 * o.moe!.expertIntermediate! * o.hidden! * 4;
  let inSessions = 0;
  let expertMs = 0;
  let expertCalls = 0;
  const run = Session.prototype.run;
  Session.prototype.run = async function (this: Session, ...args: Parameters<Session['run']>) {
    const t0 = performance.now();
    try {
      return await run.apply(this, args);
    } finally {
      const dt = performance.now() - t0;
      inSessions += dt;
      if (/ expert \d+$/.test(this.name)) {
        expertMs += dt;
        expertCalls++;
      }
    }
  };
  const t0 = performance.now();
  try {
    await racDecode(engine, streams);
  } finally {
    Session.prototype.run = run;
  }
  const wall = performance.now() - t0;
  return {
    in_sessions_share: +(inSessions / wall).toFixed(3),
    expert_calls: expertCalls,
    expert_share: +(expertMs / wall).toFixed(3),
    expert_us_per_call: +((1000 * expertMs) / expertCalls).toFixed(0),
    expert_weight_gb_per_s: +(expertBytes / (expertMs / expertCalls / 1000) / 1e9).toFixed(1),
  };
}

export function benchPruneMoe(dir: string, tokens = 4096): void {
  mkdirSync(dir, { recursive: true });
  const { ckpt, opts } = benchModel(dir);
  const calib = join(dir, 'calib.jsonl');
  let s = 4242;
  const lines: string[] = [];
  for (let done = 0; done < tokens; done += 512) {
    const ids = Array.from({ length: 512 }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return (s >>> 8) % 500;
    });
    lines.push(JSON.stringify({ input_ids: ids }));
  }
  writeFileSync(calib, `${lines.join('\n')}\n`);
  const res = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(root, 'bench/prune-child.ts'), ckpt, calib, join(dir, 'out'), '--json'],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  if (res.status !== 0) throw new Error(`prune child failed (exit ${res.status})`);
  const r = JSON.parse(res.stdout.trim().split('\n').pop()!) as {
    max_rss_kib: number;
    layer_seconds: number[];
    layer_phases: Record<string, number>[];
    total_seconds: number;
  };
  const sorted = [...r.layer_seconds].sort((a, b) => a - b);
  emit({
    name: 'prune_moe',
    method: 'sparsegpt 50%',
    calib_tokens: tokens,
    ...dimsOf(opts),
    layer_seconds: r.layer_seconds.map((x) => +x.toFixed(1)),
    median_layer_seconds: +sorted[Math.floor(sorted.length / 2)]!.toFixed(1),
    layer_phases: r.layer_phases.map((p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, +v.toFixed(1)]))),
    peak_rss_gib: +(r.max_rss_kib / 2 ** 20).toFixed(2),
    total_seconds: +r.total_seconds.toFixed(1),
  });
}
