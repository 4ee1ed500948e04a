/**
 * Decode throughput of rac's engine and of llama.cpp (node-llama-cpp, the same model exported to
 * an f32 GGUF) in the same run, on the same threads (2 each), greedy:
 * - 1, 8, 32 and 128 streams after 32-token prompts, and 1 and 8 streams after 2,048-token
 *   prompts (long context: attention over the cache dominates): rac decodes the streams as one
 *   batch through generate(); llama.cpp runs them as sequences of one context, evaluated together
 *   (node-llama-cpp batches concurrent sequences into one decode).
 * Model: Qwen2-0.5B layer dimensions (hidden 896, intermediate 4864, 14 heads, 2 KV heads,
 * head dim 64, q/k/v bias, tied embeddings), 4 layers, vocabulary cut to 32k; f32 weights in
 * both engines and an f32 KV cache in llama.cpp (its default is f16), no flash attention.
 * Prompts of 32 tokens; tokens/s counts decode steps only: from the step that produced each
 * stream's first token to the last one, (new tokens − 1) × streams ÷ that time. Best of 2 runs.
 */
import { join } from 'node:path';
import { Engine } from '../src/models/engine.ts';
import { generate } from '../src/models/generate.ts';
import { Model } from '../src/models/model.ts';
import { writeRandomCheckpoint } from '../src/models/random.ts';
import { exportGguf } from '../src/export/gguf.ts';
import { emit } from './common.ts';

export const QWEN2_0_5B_LAYER = { hidden: 896, intermediate: 4864, heads: 14, kvHeads: 2, headDim: 64 };
const THREADS = Number(process.env.RAC_BENCH_DECODE_THREADS ?? 2);
const PROMPT = 32;
const NEW_TOKENS = 32;
const REPS = 2;
/** [streams, prompt tokens]: short prompts at 1–128 streams, then 2,048 tokens already in the cache. */
const CASES: [number, number][] = [
  [1, PROMPT],
  [8, PROMPT],
  [32, PROMPT],
  [128, PROMPT],
  [1, 2048],
  [8, 2048],
];

function prompts(n: number, len: number): number[][] {
  return Array.from({ length: n }, (_, s) => Array.from({ length: len }, (_, t) => (t * 31 + s * 17 + 3) % 500));
}

export async function racDecode(engine: Engine, streams: number, len = PROMPT): Promise<number> {
  let first = 0;
  let last = 0;
  let steps = 0;
  await generate(
    engine,
    null,
    prompts(streams, len).map((prompt, i) => ({ prompt, stream: i })),
    {
      maxNewTokens: NEW_TOKENS,
      seed: 0,
      eosTokenIds: [],
      temperature: 0,
      topP: 1,
      topK: 0,
      batchSize: streams,
      onProgress: () => {
        const now = performance.now();
        if (steps === 0) first = now; // after prefill + the first sampled token
        last = now;
        steps++;
      },
    },
  );
  if (steps !== NEW_TOKENS) throw new Error(`rac decode: ${steps} steps, expected ${NEW_TOKENS}`);
  return ((NEW_TOKENS - 1) * streams) / ((last - first) / 1000);
}

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;
export type LlamaModel = Awaited<ReturnType<Awaited<ReturnType<NodeLlamaCpp['getLlama']>>['loadModel']>>;

export async function llamaDecode(lm: LlamaModel, streams: number, len = PROMPT): Promise<number> {
  const ctx = await lm.createContext({
    contextSize: streams * (len + NEW_TOKENS + 16),
    sequences: streams,
    threads: { ideal: THREADS, min: THREADS },
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  try {
    const firsts: number[] = [];
    const lasts: number[] = [];
    await Promise.all(
      prompts(streams, len).map(async (prompt) => {
        const seq = ctx.getSequence();
        let n = 0;
        for await (const _ of seq.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
          void _;
          const now = performance.now();
          if (n === 0) firsts.push(now);
          n++;
          if (n >= NEW_TOKENS) {
            lasts.push(now);
            break;
          }
        }
        if (n !== NEW_TOKENS) throw new Error(`llama.cpp decode: ${n} tokens, expected ${NEW_TOKENS}`);
      }),
    );
    return ((NEW_TOKENS - 1) * streams) / ((Math.max(...lasts) - Math.max(...firsts)) / 1000);
  } finally {
    await ctx.dispose();
  }
}

/** Best of `reps` runs of a throughput measurement. */
export async function bestOf(reps: number, run: () => Promise<number>): Promise<number> {
  let best = 0;
  for (let r = 0; r < reps; r++) best = Math.max(best, await run());
  return best;
}

/**
 * Runs `use` on the GGUF loaded in llama.cpp (node-llama-cpp, CPU), releasing both afterwards;
 * when node-llama-cpp cannot load, emits a `skipped` line under `name` instead.
 */
export async function withLlamaModel(gguf: string, name: string, use: (lm: LlamaModel) => Promise<void>): Promise<void> {
  let nlc: NodeLlamaCpp;
  try {
    nlc = await import('node-llama-cpp');
  } catch (e) {
    emit({ name, engine: 'llama.cpp', skipped: `node-llama-cpp unavailable (${(e as Error).message.split('\n')[0]})` });
    return;
  }
  const llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error });
  try {
    const lm = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
    try {
      await use(lm);
    } finally {
      await lm.dispose();
    }
  } finally {
    await llama.dispose();
  }
}

export async function benchDecode(dir: string): Promise<void> {
  const ckpt = join(dir, 'model');
  writeRandomCheckpoint(ckpt, {
    family: 'qwen2',
    layers: 4,
    ...QWEN2_0_5B_LAYER,
    tied: true,
    tokenizerVocab: 512,
    vocabPad: 32768 - 512,
    seed: 5,
  });
  const gguf = join(dir, 'model-f32.gguf');
  exportGguf({ model: ckpt, out: gguf, dtype: 'f32', warn: () => {} });
  const dims = { layers: 4, ...QWEN2_0_5B_LAYER, vocab: 32768, prompt: PROMPT, new_tokens: NEW_TOKENS, threads: THREADS };

  const model = Model.open(ckpt);
  const engine = await Engine.load(model, { threads: THREADS });
  const rac = new Map<string, number>();
  try {
    for (const [streams, len] of CASES) {
      const best = await bestOf(REPS, () => racDecode(engine, streams, len));
      rac.set(`${streams}/${len}`, best);
      emit({ name: 'decode', engine: 'rac', streams, tokens_per_s: +best.toFixed(2), ...dims, prompt: len });
    }
  } finally {
    await engine.release();
    model.close();
  }

  await withLlamaModel(gguf, 'decode', async (lm) => {
    for (const [streams, len] of CASES) {
      const best = await bestOf(REPS, () => llamaDecode(lm, streams, len));
      emit({ name: 'decode', engine: 'llama.cpp', streams, tokens_per_s: +best.toFixed(2), ...dims, prompt: len, kv_cache: 'f32' });
      emit({ name: 'decode_ratio', streams, prompt: len, rac_over_llamacpp: +(rac.get(`${streams}/${len}`)! / best).toFixed(3) });
    }
  });
}
