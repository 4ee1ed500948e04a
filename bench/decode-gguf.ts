/**
 * llama.cpp decode throughput of one model stored as F32, F16, Q8_0 and Q4_0 GGUF, as ratios to
 * F32 measured in the same run (what low-bit weights buy at decode time, where the weights are
 * streamed from memory once per token). The model is bench/decode.ts's (Qwen2-0.5B layer
 * dimensions, 4 layers, 32k vocabulary, tied embeddings); Q8_0/Q4_0 by rac's export (llama.cpp's
 * reference RTN for an unquantized model; token_embd in Q8_0). One stream, greedy, 32-token
 * prompt, 32 new tokens, f32 KV cache, 2 threads, best of 2 runs.
 * RAC_BENCH_GGUF_SMALL=1 uses hidden 128 / intermediate 352 instead (a quick check that it runs).
 */
import { join } from 'node:path';
import { writeRandomCheckpoint } from '../src/models/random.ts';
import { exportGguf, type GgufDtype } from '../src/export/gguf.ts';
import { emit } from './common.ts';
import { llamaDecode, QWEN2_0_5B_LAYER } from './decode.ts';

const TYPES: GgufDtype[] = ['f32', 'f16', 'q8_0', 'q4_0'];
const REPS = 2;

export async function benchDecodeGguf(dir: string): Promise<void> {
  const small = process.env.RAC_BENCH_GGUF_SMALL === '1';
  const dims = small ? { hidden: 128, intermediate: 352, heads: 4, kvHeads: 2, headDim: 32 } : QWEN2_0_5B_LAYER;
  const ckpt = join(dir, 'model');
  writeRandomCheckpoint(ckpt, { family: 'qwen2', layers: 4, ...dims, tied: true, tokenizerVocab: 512, vocabPad: 32768 - 512, seed: 5 });
  let nlc: typeof import('node-llama-cpp');
  try {
    nlc = await import('node-llama-cpp');
  } catch (e) {
    emit({ name: 'decode_gguf', skipped: `node-llama-cpp unavailable (${(e as Error).message.split('\n')[0]})` });
    return;
  }
  const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error });
  const tps: Partial<Record<GgufDtype, number>> = {};
  try {
    for (const dtype of TYPES) {
      const gguf = join(dir, `model-${dtype}.gguf`);
      const { bytes } = exportGguf({ model: ckpt, out: gguf, dtype, warn: () => {} });
      const lm = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
      try {
        let best = 0;
        for (let r = 0; r < REPS; r++) best = Math.max(best, await llamaDecode(lm, 1));
        tps[dtype] = best;
        emit({
          name: 'decode_gguf',
          dtype,
          tokens_per_s: +best.toFixed(2),
          over_f32: +(best / tps.f32!).toFixed(3),
          file_bytes: bytes,
          layers: 4,
          ...dims,
          vocab: 32768,
          streams: 1,
        });
      } finally {
        await lm.dispose();
      }
    }
  } finally {
    await llama.dispose();
  }
}
