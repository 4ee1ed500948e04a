/**
 * Calibration sets: sequences of token ids with per-sequence weights, cut to a token budget.
 *
 * The pruner reads token ids, never re-tokenized text, so traces collected anywhere (rac, SGLang,
 * vLLM) calibrate exactly what the model generated. A JSONL row is one of:
 *   {"input_ids": [...]}                 ids as they are (SGLang RAC rows also carry
 *                                        num_prompt_tokens / num_decode_tokens; kept as is)
 *   {"text": "..."}                      plain text, tokenized with the model's tokenizer
 * with an optional positive "weight" (the sequence's rows enter XᵀX scaled by √weight).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { batchRowWeights, weightedTokens, type TokenWeights } from '../compress/hessian.ts';
import { decodeUtf8, jsonlObjects } from '../io/jsonl.ts';
import { leftPad, type PaddedBatch } from '../models/batch.ts';
import { RacError } from '../errors.ts';

export interface CalibSequence {
  ids: number[];
  weight: number;
  /**
   * Per token, its position class (compress/hessian.ts CLASS_PROMPT | CLASS_THINK | CLASS_ANSWER)
   * for per-token weights (PruneOptions.tokenWeights); 1 byte a token. Absent: unclassified
   * (plain text, --calib files), every token keeps the sequence weight.
   */
  classes?: Uint8Array;
}

export interface CalibSet {
  sequences: CalibSequence[];
  /** Real tokens over all sequences (after truncation and the budget cut). */
  tokens: number;
  /** Where it came from, for rac.json. */
  source: Record<string, unknown>;
}

export interface CalibLimits {
  /** Keep at most this many tokens in total; the last sequence is cut to fit (0 = no limit). */
  tokenBudget: number;
  /** Longer sequences are truncated (`truncate`, default) or split into chunks (`split`). */
  maxSeqLen: number;
  overflow?: 'truncate' | 'split';
}

export class CalibError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'CalibError';
  }
}

export interface TextEncoder {
  encode(text: string): number[];
}

export function validateLimits(l: CalibLimits): void {
  if (!Number.isInteger(l.tokenBudget) || l.tokenBudget < 0)
    throw new CalibError(`token budget must be an integer ≥ 0, got ${l.tokenBudget}`);
  if (!Number.isInteger(l.maxSeqLen) || l.maxSeqLen < 1)
    throw new CalibError(`max sequence length must be an integer ≥ 1, got ${l.maxSeqLen}`);
}

/** Apply max length and the token budget to raw sequences, in order. */
export function limitSequences(raw: CalibSequence[], l: CalibLimits): { sequences: CalibSequence[]; tokens: number } {
  validateLimits(l);
  const out: CalibSequence[] = [];
  let tokens = 0;
  const budget = l.tokenBudget > 0 ? l.tokenBudget : Infinity;
  for (const s of raw) {
    const pieces: number[][] = [];
    if (s.ids.length <= l.maxSeqLen || l.overflow !== 'split') pieces.push(s.ids.slice(0, l.maxSeqLen));
    else for (let i = 0; i < s.ids.length; i += l.maxSeqLen) pieces.push(s.ids.slice(i, i + l.maxSeqLen));
    for (const p of pieces) {
      if (tokens >= budget) return { sequences: out, tokens };
      const take = p.slice(0, Math.min(p.length, budget - tokens));
      if (take.length === 0) continue;
      out.push({ ids: take, weight: s.weight });
      tokens += take.length;
    }
  }
  return { sequences: out, tokens };
}

/** Read a calibration JSONL file (rows of input_ids or text, optional weight). */
export function readCalibJsonl(path: string, tokenizer: TextEncoder | null, vocabSize: number, limits: CalibLimits): CalibSet {
  const file = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CalibError(`${file}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code})`}`);
  }
  const text = decodeUtf8(bytes, file, (m) => new CalibError(m));
  validateLimits(limits);
  const raw: CalibSequence[] = [];
  let kinds = new Set<string>();
  let rawTokens = 0;
  const budget = limits.tokenBudget > 0 ? limits.tokenBudget : Infinity;
  for (const { row: r, where } of jsonlObjects(text, file, { error: (m) => new CalibError(m) })) {
    if (rawTokens >= budget * 2 + limits.maxSeqLen) break;
    const weight = r['weight'] ?? 1;
    if (typeof weight !== 'number' || !(weight > 0) || !Number.isFinite(weight))
      throw new CalibError(`${where}: "weight" must be a positive number, got ${JSON.stringify(weight)}`);
    let ids: number[];
    if (r['input_ids'] !== undefined) {
      const v = r['input_ids'];
      if (!Array.isArray(v) || v.length === 0) throw new CalibError(`${where}: "input_ids" must be a non-empty array of token ids`);
      for (const x of v) {
        if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= vocabSize) {
          throw new CalibError(`${where}: token id ${JSON.stringify(x)} is not an integer in [0, ${vocabSize})`);
        }
      }
      ids = v as number[];
      kinds.add('input_ids');
    } else if (typeof r['text'] === 'string') {
      if (!tokenizer) throw new CalibError(`${where}: a "text" row needs the model's tokenizer`);
      ids = tokenizer.encode(r['text']);
      if (ids.length === 0) continue;
      kinds.add('text');
    } else {
      throw new CalibError(`${where}: expected "input_ids" (array) or "text" (string)`);
    }
    raw.push({ ids, weight });
    // Count what the row will contribute: truncation keeps at most maxSeqLen of it (counting the
    // full length would stop reading before the budget is filled when rows are long).
    rawTokens += limits.overflow === 'split' ? ids.length : Math.min(ids.length, limits.maxSeqLen);
  }
  if (raw.length === 0) throw new CalibError(`${file}: no calibration rows`);
  const { sequences, tokens } = limitSequences(raw, limits);
  const sha256 = createHash('sha256').update(text).digest('hex');
  kinds = new Set([...kinds].sort());
  return {
    sequences,
    tokens,
    source: {
      kind: 'jsonl',
      file,
      sha256,
      rows: [...kinds].join('+'),
      sequences: sequences.length,
      max_seq_len: limits.maxSeqLen,
      token_budget: limits.tokenBudget,
    },
  };
}

/**
 * Group sequences into batches of at most `batchTokens` padded tokens (B·T), longest first so
 * similar lengths share a batch. A single sequence longer than batchTokens gets its own batch.
 */
export function makeBatches(seqs: CalibSequence[], batchTokens: number): CalibSequence[][] {
  if (!Number.isInteger(batchTokens) || batchTokens < 1) throw new CalibError(`batch tokens must be an integer ≥ 1, got ${batchTokens}`);
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[b]!.ids.length - seqs[a]!.ids.length || a - b);
  const batches: CalibSequence[][] = [];
  let cur: CalibSequence[] = [];
  let T = 0;
  for (const i of order) {
    const s = seqs[i]!;
    const t = Math.max(T, s.ids.length);
    if (cur.length > 0 && t * (cur.length + 1) > batchTokens) {
      batches.push(cur);
      cur = [];
      T = 0;
    }
    cur.push(s);
    T = Math.max(T, s.ids.length);
  }
  if (cur.length) batches.push(cur);
  return batches;
}

/**
 * A calibration set as the layer loops read it: left-padded batches of about `batchTokens`
 * tokens, their row weights (√ of sequence × token weight, 0 for padding) and n = Σ w.
 */
export function calibBatches(
  calib: CalibSet,
  batchTokens: number,
  tokenWeights: TokenWeights,
): { padded: PaddedBatch[]; rowWeights: Float32Array[]; n: number } {
  const batches = makeBatches(calib.sequences, batchTokens);
  const padded = batches.map((b) => leftPad(b.map((s) => s.ids)));
  const rowWeights = padded.map((pb, bi) => batchRowWeights(batches[bi]!, pb.valid, pb.T, tokenWeights));
  return { padded, rowWeights, n: weightedTokens(batches.flat(), tokenWeights) };
}
