/**
 * `decode_q4`: rac's packed engine against llama.cpp on the same 4-bit weights, in one run.
 * bench/decode.ts's model (Qwen2-0.5B layer dimensions, 4 layers, 32k vocabulary, tied
 * embeddings) is quantized by `rac prune --method rtn --quant q4_0` (a compressed-tensors
 * directory: int4 Linears, the embedding and tied head on Q8_0) and exported to a Q4_0 GGUF, which
 * holds the very same blocks (token_embd Q8_0). rac decodes the directory with MatMulNBits
 * (accuracy level 4), llama.cpp the GGUF (f32 KV cache, no flash attention), both on the same
 * threads (2; RAC_BENCH_DECODE_THREADS), greedy, 32 new tokens after 32-token prompts, at 1, 8 and
 * 32 streams (as decode.ts measures them, best of 2): `decode_q4` lines per engine and
 * `decode_q4_ratio` {streams, rac_over_llamacpp}.
 *
 * `decode_q4_rss`: peak RSS of a child process that loads the model in rac's engine and decodes
 * 8 streams × 16 tokens, with the q4_0 directory and with the F32 checkpoint it came from, and
 * their ratio `q4_over_f32` (each child: node + tsx + onnxruntime + the model).
 *
 * RAC_BENCH_Q4_SMALL=1: hidden 256, intermediate 704, 2 layers, 4k vocabulary (a quick check
 * that everything runs; the ratios then say little). llama.cpp spin-waits: run the bench alone.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Engine } from '../src/models/engine.ts';
import { Model } from '../src/models/model.ts';
import { writeRandomCheckpoint } from '../src/models/random.ts';
import { exportGguf } from '../src/export/gguf.ts';
import { pruneCheckpoint } from '../src/prune/prune.ts';
import { emit } from './common.ts';
import { bestOf, llamaDecode, QWEN2_0_5B_LAYER, racDecode, withLlamaModel } from './decode.ts';

const THREADS = Number(process.env.RAC_BENCH_DECODE_THREADS ?? 2);
const STREAMS = [1, 8, 32];
const REPS = 2;

/** Peak RSS (KiB) of a child that loads `model` in rac's engine and decodes a few tokens (bench/decode-rss-child.ts). */
function childPeakRss(model: string): number {
  const root = new URL('..', import.meta.url).pathname;
  const res = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench/decode-rss-child.ts'), model, String(THREADS)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (res.status !== 0) throw new Error(`decode RSS child failed on ${model} (exit ${res.status})`);
  return (JSON.parse(res.stdout.trim().split('\n').pop()!) as { max_rss_kib: number }).max_rss_kib;
}

export async function benchDecodeQ4(dir: string): Promise<void> {
  const small = process.env.RAC_BENCH_Q4_SMALL === '1';
  const dims = small ? { hidden: 256, intermediate: 704, heads: 4, kvHeads: 2, headDim: 64 } : QWEN2_0_5B_LAYER;
  const layers = small ? 2 : 4;
  const vocab = small ? 4096 : 32768;
  const f32 = join(dir, 'model');
  writeRandomCheckpoint(f32, { family: 'qwen2', layers, ...dims, tied: true, tokenizerVocab: 512, vocabPad: vocab - 512, seed: 5 });
  const q4 = join(dir, 'model-q4_0');
  const src = Model.open(f32);
  try {
    await pruneCheckpoint(
      src,
      null,
      q4,
      {
        method: 'rtn',
        quant: 'q4_0',
        target: { kind: 'unstructured', sparsity: 0 },
        linears: 'all',
        batchTokens: 4096,
        runtime: { threads: THREADS },
      },
      'bench',
    );
  } finally {
    src.close();
  }
  const gguf = join(dir, 'model-q4_0.gguf');
  const { bytes } = exportGguf({ model: q4, out: gguf, dtype: 'q4_0', warn: () => {} });
  const info = { layers, ...dims, vocab, prompt: 32, new_tokens: 32, threads: THREADS, gguf_bytes: bytes };

  const rac = new Map<number, number>();
  const model = Model.open(q4);
  const engine = await Engine.load(model, { threads: THREADS });
  try {
    for (const streams of STREAMS) {
      const best = await bestOf(REPS, () => racDecode(engine, streams));
      rac.set(streams, best);
      emit({ name: 'decode_q4', engine: 'rac (q4_0 compressed-tensors, MatMulNBits)', streams, tokens_per_s: +best.toFixed(2), ...info });
    }
  } finally {
    await engine.release();
    model.close();
  }

  await withLlamaModel(gguf, 'decode_q4', async (lm) => {
    for (const streams of STREAMS) {
      const best = await bestOf(REPS, () => llamaDecode(lm, streams));
      emit({ name: 'decode_q4', engine: 'llama.cpp (Q4_0 GGUF)', streams, tokens_per_s: +best.toFixed(2), ...info, kv_cache: 'f32' });
      emit({ name: 'decode_q4_ratio', streams, prompt: 32, rac_over_llamacpp: +(rac.get(streams)! / best).toFixed(3) });
    }
  });

  const rssQ4 = childPeakRss(q4);
  const rssF32 = childPeakRss(f32);
  emit({
    name: 'decode_q4_rss',
    rac_q4_peak_rss_mib: +(rssQ4 / 1024).toFixed(1),
    rac_f32_peak_rss_mib: +(rssF32 / 1024).toFixed(1),
    q4_over_f32: +(rssQ4 / rssF32).toFixed(3),
    streams: 8,
    new_tokens: 16,
    layers,
    ...dims,
    vocab,
  });
}
