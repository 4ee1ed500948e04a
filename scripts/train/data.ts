/**
 * Training data for the tiny reasoner: tokenizer, chat-templated examples, packed batches.
 *
 * Example = prompt ids (chat template, user message, add_generation_prompt) + completion ids
 * (`<think>…</think>\nThe answer is \boxed{N}.<|im_end|>`). Only completion tokens are targets,
 * except the injected wrong tokens of a format-v2 problem (`TinyProblem.noLoss`): they stay in
 * the inputs (the model sees the error it must detect) but are never a target, so the model
 * learns to detect and repair errors without learning to make them.
 * Batches are B rows of T tokens; whole examples are packed first-fit into rows (see
 * `Packer`), positions restart per example and a block-diagonal causal mask separates them.
 */
import { mkdirSync } from 'node:fs';
import { DEFAULT_SPECIAL_TOKENS, QWEN_CHAT_TEMPLATE, trainByteLevelBpe, writeTokenizerFiles } from '../../src/io/bpe.ts';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { generateSplit, type Family, type TinyFormat, type TinyProblem } from '../../src/tasks/tiny/index.ts';
import { headDim, type TinyConfig } from './model.ts';
import type { HostTensor } from '../../src/runtime/session.ts';

export const TOKENIZER_OPTIONS = {
  chatTemplate: QWEN_CHAT_TEMPLATE,
  eosToken: '<|im_end|>',
  padToken: '<|endoftext|>',
  bosToken: null,
  modelMaxLength: 512,
} as const;

/** What a training run draws: the families (mixed in equal shares) and the scratchpad format. */
export interface DataRecipe {
  families: Family[];
  format: TinyFormat;
  /** v2: share of train problems with one injected error. */
  injectRate?: number;
}

export const V1_DATA: DataRecipe = { families: ['arith', 'trace'], format: 'v1' };

/**
 * Train the byte-level BPE on task texts (train split only, every family of the recipe) and write
 * tokenizer files to dir. v1's corpus is exactly the shipped model's.
 */
export async function makeTokenizer(dir: string, seed: number, vocabSize: number, data: DataRecipe = V1_DATA): Promise<RacTokenizer> {
  const corpus: string[] = [];
  for (const fam of data.families) {
    const opts =
      data.format === 'v1' ? undefined : { format: data.format, ...(data.injectRate !== undefined ? { injectRate: data.injectRate } : {}) };
    for (const p of generateSplit('train', fam, 2000, seed + 1_000_003, opts)) {
      corpus.push(`<|im_start|>user\n${p.prompt}<|im_end|>\n<|im_start|>assistant\n${p.completion}<|im_end|>\n`);
    }
  }
  const tj = trainByteLevelBpe({ corpus, vocabSize, specialTokens: DEFAULT_SPECIAL_TOKENS });
  mkdirSync(dir, { recursive: true });
  writeTokenizerFiles(dir, tj, TOKENIZER_OPTIONS);
  return RacTokenizer.load(dir);
}

export interface Example {
  ids: number[];
  /** Number of prompt tokens; ids[promptLen..] is the completion (incl. <|im_end|>). */
  promptLen: number;
  /** Positions in ids (inside the completion) that are never a target: injected wrong tokens. */
  noLoss?: number[];
}

export function promptText(tok: RacTokenizer, p: TinyProblem): string {
  return tok.applyChatTemplate([{ role: 'user', content: p.prompt }], { addGenerationPrompt: true });
}

export function encodeExample(tok: RacTokenizer, p: TinyProblem): Example {
  const prompt = tok.encode(promptText(tok, p), { addSpecialTokens: false });
  const text = `${p.completion}<|im_end|>`;
  const completion = tok.encode(text, { addSpecialTokens: false });
  if (!p.noLoss || p.noLoss.length === 0) return { ids: [...prompt, ...completion], promptLen: prompt.length };
  // Encode the completion piece by piece at the span borders, so each wrong span is whole tokens;
  // the pieces must tokenize exactly as the whole text does (the model, generating, produces the
  // whole text's tokens), which holds when spans are runs of digits (each digit is a pre-token).
  const ids: number[] = [];
  const noLoss: number[] = [];
  let at = 0;
  for (const [a, b] of p.noLoss) {
    if (!(a >= at && b > a && b <= p.completion.length)) throw new Error(`${p.id}: bad no-loss span [${a}, ${b})`);
    ids.push(...tok.encode(text.slice(at, a), { addSpecialTokens: false }));
    const wrongIds = tok.encode(text.slice(a, b), { addSpecialTokens: false });
    for (let i = 0; i < wrongIds.length; i++) noLoss.push(prompt.length + ids.length + i);
    ids.push(...wrongIds);
    at = b;
  }
  ids.push(...tok.encode(text.slice(at), { addSpecialTokens: false }));
  if (ids.length !== completion.length || ids.some((t, i) => t !== completion[i])) {
    throw new Error(`${p.id}: the no-loss spans do not fall on token borders`);
  }
  return { ids: [...prompt, ...ids], promptLen: prompt.length, noLoss };
}

/**
 * The training problem stream: the recipe's families interleaved in equal shares, deterministic
 * in seed. v1 (arith, trace) is exactly the shipped model's stream.
 */
export function trainPool(perFamily: number, seed: number, data: DataRecipe = V1_DATA): TinyProblem[] {
  const opts =
    data.format === 'v1' ? undefined : { format: data.format, ...(data.injectRate !== undefined ? { injectRate: data.injectRate } : {}) };
  const lists = data.families.map((f) => generateSplit('train', f, perFamily, seed, opts));
  const out: TinyProblem[] = [];
  for (let i = 0; i < perFamily; i++) for (const l of lists) out.push(l[i]!);
  return out;
}

/** Deterministic permutation of [0, n) (Fisher–Yates with a seeded uniform source). */
export function permutation(n: number, uniform: () => number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(uniform() * (i + 1));
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

/** Resumable packing state: the next stream index and the examples deferred to the next batch. */
export interface PackState {
  cursor: number;
  deferred: number[];
}

/** A batch layout: per row, the example stream indices packed in it (in order). */
export type Packing = number[][];

/**
 * First-fit packing of the stream into B rows of T tokens. Deferred examples go first; an
 * example that fits no row is deferred (at most `maxDeferred`, after which the batch closes).
 */
export function packBatch(
  state: PackState,
  lengthOf: (index: number) => number,
  B: number,
  T: number,
  maxDeferred = 16,
): { packing: Packing; next: PackState } {
  const rows: number[][] = Array.from({ length: B }, () => []);
  const free = new Array<number>(B).fill(T);
  const deferred: number[] = [];
  let cursor = state.cursor;
  const queue = [...state.deferred];
  for (;;) {
    const idx = queue.length > 0 ? queue.shift()! : cursor++;
    const len = lengthOf(idx);
    if (len > T) continue; // never fits: dropped (does not happen with T ≥ the longest example)
    const r = free.findIndex((f) => f >= len);
    if (r >= 0) {
      rows[r]!.push(idx);
      free[r]! -= len;
    } else deferred.push(idx);
    if (deferred.length >= maxDeferred || free.every((f) => f < 48)) break;
  }
  deferred.push(...queue);
  return { packing: rows, next: { cursor, deferred } };
}

const NEG = -1e9;

/** RoPE tables (maxPos, hd) for positions 0..maxPos-1, rotate-half layout (as src/models/rope.ts). */
export function ropeTable(c: TinyConfig, maxPos: number): { cos: Float32Array; sin: Float32Array } {
  const hd = headDim(c);
  const half = hd / 2;
  const cos = new Float32Array(maxPos * hd);
  const sin = new Float32Array(maxPos * hd);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * (1 / Math.pow(c.ropeTheta, (2 * i) / hd));
      cos[p * hd + i] = cos[p * hd + half + i] = Math.cos(a);
      sin[p * hd + i] = sin[p * hd + half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

export interface BatchFeeds {
  feeds: Record<string, HostTensor>;
  /** Tokens in real examples (excluding padding). */
  tokens: number;
  /** Target (completion) tokens, injected wrong tokens excluded. */
  targets: number;
}

/**
 * Feeds for one packed batch. `rows[r]` lists the examples of row r; padding uses `padId`,
 * attends only to itself and has no target.
 */
export function batchFeeds(c: TinyConfig, rows: Example[][], T: number, padId: number, rope = ropeTable(c, T)): BatchFeeds {
  const B = rows.length;
  const N = B * T;
  const V = c.vocab;
  const hd = headDim(c);
  const ids = new BigInt64Array(N).fill(BigInt(padId));
  const onehot = new Float32Array(N * V);
  const cos = new Float32Array(N * hd);
  const sin = new Float32Array(N * hd);
  const mask = new Float32Array(B * T * T).fill(NEG);
  const targets = new Float32Array(N * V);
  const weights = new Float32Array(N);
  const tgtIdx: number[] = [];
  const tgtTok: number[] = [];
  let tokens = 0;
  for (let b = 0; b < B; b++) {
    let off = 0;
    for (const ex of rows[b]!) {
      const L = ex.ids.length;
      const skip = ex.noLoss && ex.noLoss.length > 0 ? new Set(ex.noLoss) : null;
      if (off + L > T) throw new Error(`row ${b} overflows ${T} tokens`);
      for (let i = 0; i < L; i++) {
        const n = b * T + off + i;
        ids[n] = BigInt(ex.ids[i]!);
        cos.set(rope.cos.subarray(i * hd, (i + 1) * hd), n * hd);
        sin.set(rope.sin.subarray(i * hd, (i + 1) * hd), n * hd);
        const mrow = (b * T + off + i) * T;
        mask.fill(0, mrow + off, mrow + off + i + 1);
        if (i + 1 < L && i + 1 >= ex.promptLen && !(skip !== null && skip.has(i + 1))) {
          tgtIdx.push(n);
          tgtTok.push(ex.ids[i + 1]!);
        }
      }
      off += L;
      tokens += L;
    }
    for (let t = off; t < T; t++) {
      const n = b * T + t;
      cos.set(rope.cos.subarray(0, hd), n * hd);
      sin.set(rope.sin.subarray(0, hd), n * hd);
      mask[(b * T + t) * T + t] = 0;
    }
  }
  for (let n = 0; n < N; n++) onehot[n * V + Number(ids[n]!)] = 1;
  const w = tgtIdx.length > 0 ? 1 / tgtIdx.length : 0;
  // MoE: each real token's share of the load-balancing means (padding 0).
  const real = c.moe ? new Float32Array(N) : null;
  if (real && tokens > 0) {
    for (let b = 0; b < B; b++) {
      const used = rows[b]!.reduce((a, ex) => a + ex.ids.length, 0);
      real.fill(1 / tokens, b * T, b * T + used);
    }
  }
  tgtIdx.forEach((n, i) => {
    targets[n * V + tgtTok[i]!] = w;
    weights[n] = w;
  });
  return {
    feeds: {
      ids: { data: ids, dims: [N] },
      onehot: { data: onehot, dims: [N, V] },
      cos: { data: cos, dims: [B, T, hd] },
      sin: { data: sin, dims: [B, T, hd] },
      mask: { data: mask, dims: [B, 1, 1, T, T] },
      targets: { data: targets, dims: [N, V] },
      weights: { data: weights, dims: [N, 1] },
      ...(real ? { real: { data: real, dims: [N, 1] } } : {}),
    },
    tokens,
    targets: tgtIdx.length,
  };
}
