/**
 * Prefill throughput of the engine on a 2-layer model with Qwen2-1.5B layer dimensions
 * (hidden 1536, intermediate 8960, 12 heads, 2 KV heads, head dim 128, vocabulary cut to 32k),
 * 2,048 tokens, as achieved GFLOPS and efficiency = achieved ÷ gemm_peak of the same run.
 */
import { Engine } from '../src/models/engine.ts';
import { Model } from '../src/models/model.ts';
import { writeRandomCheckpoint } from '../src/models/random.ts';
import { emit, timeBest } from './common.ts';

export const QWEN2_1_5B_LAYER = { hidden: 1536, intermediate: 8960, heads: 12, kvHeads: 2, headDim: 128 };

export async function benchPrefill(dir: string, gemmGflops: number, tokens = 2048, batch = 1): Promise<void> {
  writeRandomCheckpoint(dir, { family: 'qwen2', layers: 2, ...QWEN2_1_5B_LAYER, tokenizerVocab: 512, vocabPad: 32768 - 512, seed: 3 });
  const model = Model.open(dir);
  const engine = await Engine.load(model);
  const c = model.config;
  const T = tokens / batch;
  const seqs = Array.from({ length: batch }, (_, b) => Array.from({ length: T }, (_, t) => (t * 7 + b * 13) % 512));
  const seconds = await timeBest(() => engine.prefill(seqs), 3);
  const linearParams =
    c.hiddenSize * (c.numHeads * c.headDim + 2 * c.numKvHeads * c.headDim) +
    c.numHeads * c.headDim * c.hiddenSize +
    3 * c.hiddenSize * c.intermediateSize;
  const linearFlops = 2 * tokens * linearParams * c.numLayers;
  const attnFlops = 2 * 2 * batch * c.numHeads * T * T * c.headDim * c.numLayers; // scores + context, full T×T as computed
  const headFlops = 2 * batch * c.vocabSize * c.hiddenSize; // last position per sequence
  const flops = linearFlops + attnFlops + headFlops;
  const gflops = flops / seconds / 1e9;
  emit({
    name: 'prefill',
    tokens,
    batch,
    layers: c.numLayers,
    seconds: +seconds.toFixed(4),
    gflops: +gflops.toFixed(2),
    efficiency: +(gflops / gemmGflops).toFixed(3),
  });
  await engine.release();
  model.close();
}
