/**
 * Batched autoregressive generation with a KV cache.
 *
 * Prompts are prefilled together (left-padded); each step appends one token per live sequence.
 * Finished sequences leave the batch (their cache rows are dropped), so long stragglers don't
 * pay for the finished ones. Every request has its own PRNG stream, so results do not depend on
 * batch composition.
 */
import type { DecodeStream, RacTokenizer } from '../io/tokenizer.ts';
import type { Engine } from './engine.ts';
import { Rng, sampleToken, validateSampling, type SamplingParams } from './sampling.ts';

export type FinishReason = 'stop' | 'length';

export interface GenerationRequest {
  /** Prompt token ids (already chat-templated if wanted). */
  prompt: number[];
  /** PRNG stream for this request (e.g. prompt index × n + sample index). */
  stream: number;
  /**
   * Per-request overrides of the options' sampling settings, so requests with different settings
   * can share a batch (e.g. `rac serve`); each sequence samples from its own PRNG either way.
   */
  sampling?: Partial<RequestSampling>;
  /** When aborted, the sequence leaves the batch at the next step (its Completion has `aborted`). */
  signal?: AbortSignal;
}

/** The settings a request may override. */
export interface RequestSampling extends SamplingParams {
  maxNewTokens: number;
  seed: number;
  stopStrings?: string[];
}

export interface GenerateOptions extends SamplingParams {
  maxNewTokens: number;
  seed: number;
  /** Generation stops after any of these ids (the id is kept in `ids`, not in `text`). */
  eosTokenIds: number[];
  /** Generation stops when the text contains one of these (text is cut before it). */
  stopStrings?: string[];
  /** Max sequences decoded together. */
  batchSize?: number;
  onProgress?: (p: GenerateProgress) => void;
  /** Called as each request finishes (for streaming results to disk). */
  onComplete?: (index: number, c: Completion) => void | Promise<void>;
  /**
   * Called for every sampled token (eos included) before the request's onComplete: `text` is
   * the newly completed text ('' while a character is unfinished, and for eos). The deltas may
   * run past a stop string; the Completion's text is cut before it.
   */
  onToken?: (index: number, id: number, text: string) => void;
}

export interface GenerateProgress {
  done: number;
  total: number;
  active: number;
  newTokens: number;
}

export interface Completion {
  ids: number[];
  text: string;
  finishReason: FinishReason;
  /** Index of the first stop string matched, when finishReason is 'stop' by a stop string. */
  stop?: string;
  /** Set when the request's signal ended it early (finishReason is then 'length'). */
  aborted?: boolean;
}

/** One sequence being generated: its settings, PRNG and output so far (generate() and `rac serve`). */
export interface SequenceState {
  index: number;
  rng: Rng;
  params: SamplingParams;
  maxNewTokens: number;
  stops: string[];
  signal: AbortSignal | undefined;
  ids: number[];
  text: string;
  stream: DecodeStream | null;
}

/**
 * A sequence's state before its first token; its new tokens stop where prompt + completion fill
 * the model's context `ctx`.
 */
export function startSequence(
  index: number,
  req: GenerationRequest,
  st: { params: SamplingParams; maxNewTokens: number; seed: number; stops: string[] },
  tokenizer: RacTokenizer | null,
  ctx: number,
): SequenceState {
  return {
    index,
    rng: new Rng(st.seed, req.stream),
    params: st.params,
    maxNewTokens: Math.min(st.maxNewTokens, ctx - req.prompt.length),
    stops: st.stops,
    signal: req.signal,
    ids: [],
    text: '',
    stream: tokenizer ? tokenizer.decodeStream() : null,
  };
}

/** How a sequence ended after a token, or null while it goes on. */
export type SequenceEnd = { reason: FinishReason; stop?: string } | null;

/**
 * Append a sampled token to a sequence: its text delta ('' for eos or an unfinished character)
 * and whether it ended — eos, a stop string in the new text (plus an overlap), or max new tokens.
 */
export function advanceSequence(l: SequenceState, tok: number, eos: ReadonlySet<number>): { delta: string; end: SequenceEnd } {
  l.ids.push(tok);
  if (eos.has(tok)) return { delta: '', end: { reason: 'stop' } };
  const prevLen = l.text.length;
  if (l.stream) l.text += l.stream.push(tok);
  const delta = l.text.slice(prevLen);
  // Only the new text (plus an overlap) can complete a stop string.
  const hit = l.text.length > prevLen ? l.stops.find((s) => l.text.indexOf(s, Math.max(0, prevLen - s.length + 1)) >= 0) : undefined;
  if (hit !== undefined) return { delta, end: { reason: 'stop', stop: hit } };
  if (l.ids.length >= l.maxNewTokens) return { delta, end: { reason: 'length' } };
  return { delta, end: null };
}

/** A finished sequence's Completion (text flushed, cut before the stop string). */
export function completionOf(l: SequenceState, reason: FinishReason, stop?: string, aborted = false): Completion {
  let text = l.text;
  if (l.stream) text += l.stream.flush();
  if (stop !== undefined) text = text.slice(0, text.indexOf(stop));
  const c: Completion = { ids: l.ids, text, finishReason: reason };
  if (stop !== undefined) c.stop = stop;
  if (aborted) c.aborted = true;
  return c;
}

export function validateGenerateOptions(o: GenerateOptions): void {
  validateSampling(o);
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1)
    throw new Error(`max new tokens must be a positive integer, got ${o.maxNewTokens}`);
  if (!Number.isInteger(o.seed)) throw new Error(`seed must be an integer, got ${o.seed}`);
  if (o.batchSize !== undefined && (!Number.isInteger(o.batchSize) || o.batchSize < 1)) {
    throw new Error(`batch size must be a positive integer, got ${o.batchSize}`);
  }
}

/** Refuses a logits row holding NaN or +Inf (or nothing above -Inf): no token can be sampled from it. */
export function checkLogits(logits: Float32Array, offset: number, V: number, request: number, step: number): void {
  let max = -Infinity;
  for (let i = 0; i < V; i++) {
    const x = logits[offset + i]!;
    if (Number.isNaN(x) || x === Infinity) {
      throw new Error(
        `the model's logits are not finite (${x} for token ${i}, request ${request}, new token ${step + 1}): the weights hold non-finite values or config.json's values overflow the computation`,
      );
    }
    if (x > max) max = x;
  }
  if (max === -Infinity)
    throw new Error(`the model's logits are all -Infinity (request ${request}, new token ${step + 1}): no token can be sampled`);
}

export async function generate(
  engine: Engine,
  tokenizer: RacTokenizer | null,
  requests: GenerationRequest[],
  opts: GenerateOptions,
): Promise<Completion[]> {
  validateGenerateOptions(opts);
  const stopsOf = (ss: string[] | undefined) => ss?.filter((s) => s.length > 0) ?? [];
  const shared = { params: opts as SamplingParams, maxNewTokens: opts.maxNewTokens, seed: opts.seed, stops: stopsOf(opts.stopStrings) };
  const settings = requests.map((r) => {
    const o = r.sampling;
    if (!o) return shared;
    const m: RequestSampling = {
      temperature: o.temperature ?? opts.temperature,
      topP: o.topP ?? opts.topP,
      topK: o.topK ?? opts.topK,
      maxNewTokens: o.maxNewTokens ?? opts.maxNewTokens,
      seed: o.seed ?? opts.seed,
      stopStrings: o.stopStrings ?? opts.stopStrings,
    };
    validateGenerateOptions({ ...m, eosTokenIds: [] });
    return { params: m as SamplingParams, maxNewTokens: m.maxNewTokens, seed: m.seed, stops: stopsOf(m.stopStrings) };
  });
  if (!tokenizer && settings.some((s) => s.stops.length > 0)) throw new Error('stop strings need a tokenizer');
  const V = engine.config.vocabSize;
  // No sequence runs past the model's context: a prompt must leave room for one new token, and
  // generation stops ('length') when prompt + completion fill the context.
  const ctx = engine.config.maxPositionEmbeddings;
  requests.forEach((r, i) => {
    if (r.prompt.length + 1 > ctx) {
      throw new Error(
        `request ${i}: the prompt has ${r.prompt.length} tokens; the model's context is ${ctx} tokens (max_position_embeddings), so it leaves no room for a new token`,
      );
    }
  });
  const eos = new Set(opts.eosTokenIds);
  const results: Completion[] = new Array(requests.length);
  const batchSize = opts.batchSize ?? 16;
  let done = 0;
  let newTokens = 0;

  const finish = async (l: SequenceState, reason: FinishReason, stop?: string, aborted = false) => {
    const c = completionOf(l, reason, stop, aborted);
    results[l.index] = c;
    done++;
    await opts.onComplete?.(l.index, c);
  };

  // Longest prompts together wastes the least padding.
  const order = requests.map((_, i) => i).sort((a, b) => requests[b]!.prompt.length - requests[a]!.prompt.length || a - b);
  for (let b0 = 0; b0 < order.length; b0 += batchSize) {
    const idx = order.slice(b0, b0 + batchSize);
    let live: SequenceState[] = [];
    for (const i of idx) {
      const st = settings[i]!;
      const l = startSequence(i, requests[i]!, st, tokenizer, ctx);
      if (l.signal?.aborted) await finish(l, 'length', undefined, true);
      else live.push(l);
    }
    if (live.length === 0) continue;
    const { lastLogits, cache } = await engine.prefill(live.map((l) => requests[l.index]!.prompt));
    let logits = lastLogits;
    for (let step = 0; live.length > 0; step++) {
      const next: number[] = [];
      const keep: number[] = [];
      const still: SequenceState[] = [];
      for (let r = 0; r < live.length; r++) {
        const l = live[r]!;
        if (l.signal?.aborted) {
          await finish(l, 'length', undefined, true);
          continue;
        }
        checkLogits(logits, r * V, V, l.index, step);
        const tok = sampleToken(logits, r * V, V, l.params, l.rng);
        newTokens++;
        const { delta, end } = advanceSequence(l, tok, eos);
        opts.onToken?.(l.index, tok, delta);
        if (end) {
          await finish(l, end.reason, end.stop);
          continue;
        }
        next.push(tok);
        keep.push(r);
        still.push(l);
      }
      opts.onProgress?.({ done, total: requests.length, active: still.length, newTokens });
      if (still.length === 0) break;
      if (still.length < live.length) cache.select(keep);
      live = still;
      logits = await engine.decode(cache, next);
    }
  }
  return results;
}
