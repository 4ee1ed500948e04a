/**
 * llama.cpp (node-llama-cpp, in process) as the oracle of the GGUF export tests: loaded on the
 * CPU, GGUFs run with contexts that compute as rac's engine does (f32 KV cache, no flash
 * attention), greedy continuations and teacher-forced next-token probabilities on both sides, and
 * the softmax and top-2 margin they are compared with.
 * node-llama-cpp is a devDependency with its CPU binary from the npm registry; set
 * RAC_SKIP_LLAMA_CPP=1 where that binary cannot load.
 */
import { after, before } from 'node:test';
import type { Engine } from '../../src/models/engine.ts';
import { generate } from '../../src/models/generate.ts';

type NodeLlamaCpp = typeof import('node-llama-cpp');
type Token = import('node-llama-cpp').Token;
type ControlledInput = import('node-llama-cpp').ControlledEvaluateInputItem;
export type Llama = Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
export type LlamaModel = Awaited<ReturnType<Llama['loadModel']>>;
export type LlamaContext = Awaited<ReturnType<LlamaModel['createContext']>>;
export type LlamaSequence = ReturnType<LlamaContext['getSequence']>;

/** A suite's `skip` option: the reason when RAC_SKIP_LLAMA_CPP=1, else false. */
export const skipLlamaCpp: string | false = process.env.RAC_SKIP_LLAMA_CPP === '1' ? 'RAC_SKIP_LLAMA_CPP=1' : false;

/**
 * Inside a describe: llama.cpp (CPU, prebuilt binary, errors only) loaded before the suite's tests
 * and disposed after them; the lines the tests push to `stats` are printed under `title` at the end.
 */
export function useLlama(title: string): { llama: () => Llama; stats: string[] } {
  let llama: Llama | undefined;
  const stats: string[] = [];
  before(async () => {
    const nlc: NodeLlamaCpp = await import('node-llama-cpp');
    llama = await nlc.getLlama({ gpu: false, build: 'never', logLevel: nlc.LlamaLogLevel.error });
  });
  after(async () => {
    await llama?.dispose();
    if (stats.length) process.stderr.write(`${title}:\n  ${stats.join('\n  ')}\n`);
  });
  return { llama: () => llama!, stats };
}

/**
 * `gguf` loaded on the CPU with one sequence of `contextSize` tokens that computes as rac's engine
 * does: f32 KV cache (llama.cpp's default is f16) and no flash attention, so both engines compute
 * in f32 and differ only by summation order.
 */
export async function loadGguf(
  llama: Llama,
  gguf: string,
  contextSize: number,
  threads: number,
): Promise<{ lm: LlamaModel; ctx: LlamaContext }> {
  const lm = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const ctx = await lm.createContext({
    contextSize,
    sequences: 1,
    threads,
    flashAttention: false,
    experimentalKvCacheKeyType: 'F32',
    experimentalKvCacheValueType: 'F32',
  });
  return { lm, ctx };
}

/** rac's greedy continuations of `prompts`, `n` tokens each, one sequence at a time, never stopping early. */
export async function racGreedy(engine: Engine, prompts: number[][], n: number): Promise<number[][]> {
  const out = await generate(
    engine,
    null,
    prompts.map((prompt, i) => ({ prompt, stream: i })),
    { maxNewTokens: n, seed: 0, eosTokenIds: [], temperature: 0, topP: 1, topK: 0, batchSize: 1 },
  );
  return out.map((c) => c.ids);
}

/** llama.cpp's greedy continuation of `prompt` (temperature 0 = argmax), end-of-generation tokens included and not stopping: at most `n` tokens. */
export async function llamaGreedy(seq: LlamaSequence, prompt: number[], n: number): Promise<number[]> {
  await seq.clearHistory();
  const out: number[] = [];
  for await (const t of seq.evaluate(prompt as Token[], { temperature: 0, yieldEogToken: true })) {
    out.push(t);
    if (out.length >= n) break;
  }
  return out;
}

/**
 * llama.cpp's next-token probabilities before continuation token k, for each k in `steps`,
 * teacher-forced on `full` (the prompt of `promptLength` tokens, then the continuation) up to
 * continuation token `upto`: one vector over the vocabulary of `V` tokens per step (tokens llama.cpp
 * left out at 0). A step llama.cpp gave no probabilities for is missing from the map.
 */
export async function llamaNextProbs(
  seq: LlamaSequence,
  full: number[],
  promptLength: number,
  upto: number,
  steps: readonly number[],
  V: number,
): Promise<Map<number, Float64Array>> {
  await seq.clearHistory();
  const input = full.slice(0, promptLength + upto).map((t, idx) => {
    const k = idx - (promptLength - 1);
    const token = t as Token;
    return steps.includes(k) ? ([token, { generateNext: { probabilities: true } }] as ControlledInput) : token;
  });
  const res = await seq.controlledEvaluate(input);
  const out = new Map<number, Float64Array>();
  for (const k of steps) {
    const probs = res[promptLength - 1 + k]?.next.probabilities;
    if (!probs) continue;
    const p = new Float64Array(V);
    for (let v = 0; v < V; v++) p[v] = probs.get(v as Token) ?? 0;
    out.set(k, p);
  }
  return out;
}

/**
 * rac's next-token distribution before continuation token k, from the logits of one teacher-forced
 * forward over prompt + continuation (`logits`: (positions, V)).
 */
export function racNextProbs(logits: Float32Array, promptLength: number, V: number): (k: number) => Float64Array {
  return (k) => softmax(logits, (promptLength - 1 + k) * V, V);
}

/** softmax of logits[off, off + V) in float64. */
export function softmax(logits: Float32Array, off: number, V: number): Float64Array {
  let mx = -Infinity;
  for (let i = 0; i < V; i++) mx = Math.max(mx, logits[off + i]!);
  const p = new Float64Array(V);
  let s = 0;
  for (let i = 0; i < V; i++) s += p[i] = Math.exp(logits[off + i]! - mx);
  for (let i = 0; i < V; i++) p[i]! /= s;
  return p;
}

/** The gap between the two largest probabilities: a greedy choice below a small margin is a near-tie. */
export function top2Margin(p: Float64Array): number {
  let a = -1;
  let b = -1;
  for (const x of p) {
    if (x > a) [a, b] = [x, a];
    else if (x > b) b = x;
  }
  return a - b;
}
