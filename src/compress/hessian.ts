/**
 * The calibration statistics of a Linear: one owner for how XᵀX is weighted, accumulated and
 * scaled (llm-compressor keeps the same concern in one function, `accumulate_hessian`).
 *
 *   weighting     every calibration token t of a sequence enters as a row √w_t·x_t, with
 *                 w_t = (sequence weight) × (its position class's token weight: prompt, think,
 *                 answer; see TokenWeights); padded positions get row weight 0, so padding never
 *                 enters the statistics. `batchRowWeights` builds these per padded batch.
 *   per batch     S_b = Σ_t w_t·x_tᵀx_t (width, width) — or only its diagonal Σ_t w_t·x_t² (width)
 *                 when a method needs no more (Wanda) — is an ONNX Gemm (ReduceSum) in the capture
 *                 graph (models/graphs.ts), computed by the runtime; this module only sees sums.
 *   accumulation  S = Σ_b S_b, f32 adds of f32 batch sums in batch order (`XtxSum`).
 *   scaling       n = Σ_t w_t over the real tokens (`weightedTokens`); SparseGPT / GPTQ use
 *                 H = 2/n·S (`hessianOf`), the output-error report uses S/n (`secondMoment`),
 *                 Wanda uses diag S unscaled (any positive scale gives the same mask).
 *
 * n counts tokens, not sequences as in the reference (IST-DASLab/sparsegpt `add_batch` scales by
 * the number of samples, each a fixed 2048-token sequence). With sequences of one length the two
 * differ by a constant factor; with ragged sequences (traces of different lengths) counting
 * tokens makes every token count the same, where per-sequence counting would not change the sum
 * but would make n depend on how the tokens are cut into sequences. A global positive scale of H
 * changes neither SparseGPT's mask nor its update (it cancels between w²/U_jj² ranks and
 * err·U_jk), nor Wanda's ranking, nor the damping λ·mean(diag H), which is relative to H too
 * (dead columns are the one exception: their H_jj = 0 is replaced by an absolute 1, which enters
 * mean(diag H); their weights are zeroed either way). It does change the reported OBS loss and
 * the output error, which are per-token averages here.
 */

/** The position classes of a calibration token (ids of `TokenClass` in a per-token class array). */
export const TOKEN_CLASSES = ['prompt', 'think', 'answer'] as const;
export type TokenClass = (typeof TOKEN_CLASSES)[number];
export const CLASS_PROMPT = 0;
export const CLASS_THINK = 1;
export const CLASS_ANSWER = 2;

/**
 * Per-token weights by position class: prompt tokens, thinking tokens (the completion up to and
 * including `</think>`), answer tokens (after it). Multiplied into the sequence weight. Tokens of
 * sequences without class information (plain text, `--calib` files) keep the sequence weight.
 */
export interface TokenWeights {
  prompt: number;
  think: number;
  answer: number;
}

export const UNIFORM_TOKEN_WEIGHTS: Readonly<TokenWeights> = Object.freeze({ prompt: 1, think: 1, answer: 1 });

/** A calibration sequence as the statistics see it. */
export interface WeightedSequence {
  ids: ArrayLike<number>;
  weight: number;
  /** Per token: CLASS_PROMPT | CLASS_THINK | CLASS_ANSWER (absent: unclassified). */
  classes?: Uint8Array;
}

export function isUniform(tw: TokenWeights): boolean {
  return tw.prompt === 1 && tw.think === 1 && tw.answer === 1;
}

export function validateTokenWeights(tw: TokenWeights): void {
  for (const k of TOKEN_CLASSES) {
    const v = tw[k];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0)
      throw new RangeError(`token weight "${k}" must be a finite number ≥ 0, got ${String(v)}`);
  }
}

function classWeights(tw: TokenWeights): [number, number, number] {
  return [tw.prompt, tw.think, tw.answer];
}

/**
 * Row weights (B·T) of one left-padded batch: √(w_seq·w_class) for real tokens, 0 for padding.
 * `valid[b]` marks the real positions of sequence b (the last seq.ids.length of T).
 */
export function batchRowWeights(
  seqs: readonly WeightedSequence[],
  valid: readonly Uint8Array[],
  T: number,
  tw: TokenWeights = UNIFORM_TOKEN_WEIGHTS,
): Float32Array {
  const rw = new Float32Array(seqs.length * T);
  const cw = classWeights(tw);
  const uniform = isUniform(tw);
  valid.forEach((v, b) => {
    const s = seqs[b]!;
    const sw = Math.sqrt(s.weight);
    const cls = uniform ? undefined : s.classes;
    const off = T - s.ids.length;
    v.forEach((x, t) => {
      if (!x) return;
      rw[b * T + t] = cls ? Math.sqrt(s.weight * cw[cls[t - off]!]!) : sw;
    });
  });
  return rw;
}

/** n = Σ_t w_t over the real tokens of `seqs` (in the given order). */
export function weightedTokens(seqs: readonly WeightedSequence[], tw: TokenWeights = UNIFORM_TOKEN_WEIGHTS): number {
  const cw = classWeights(tw);
  const uniform = isUniform(tw);
  return seqs.reduce((a, s) => {
    if (uniform || !s.classes) return a + s.weight * s.ids.length;
    const count = [0, 0, 0];
    for (const c of s.classes) count[c]!++;
    return a + s.weight * (cw[0] * count[0]! + cw[1] * count[1]! + cw[2] * count[2]!);
  }, 0);
}

/** Tokens per position class over `seqs` (unclassified: sequences without class information). */
export function classCounts(seqs: readonly WeightedSequence[]): Record<TokenClass | 'unclassified', number> {
  const out = { prompt: 0, think: 0, answer: 0, unclassified: 0 };
  for (const s of seqs) {
    if (!s.classes) {
      out.unclassified += s.ids.length;
      continue;
    }
    for (const c of s.classes) out[TOKEN_CLASSES[c]!]++;
  }
  return out;
}

/** Σ over batches of one input group's XᵀX (width²) or of its diagonal (width): f32 adds in batch order. */
export class XtxSum {
  readonly sum: Float32Array;
  constructor(
    readonly width: number,
    readonly diagonal: boolean,
  ) {
    this.sum = new Float32Array(diagonal ? width : width * width);
  }

  add(part: Float32Array): void {
    const acc = this.sum;
    if (part.length !== acc.length) throw new RangeError(`XᵀX part has ${part.length} values, expected ${acc.length}`);
    for (let i = 0; i < acc.length; i++) acc[i]! += part[i]!;
  }

  /** diag S (width), float64. */
  diag(): Float64Array {
    const w = this.width;
    const d = new Float64Array(w);
    if (this.diagonal) d.set(this.sum);
    else for (let j = 0; j < w; j++) d[j] = this.sum[j * w + j]!;
    return d;
  }
}

function full(s: XtxSum, what: string): Float32Array {
  if (s.diagonal) throw new Error(`${what} needs the full XᵀX, but only its diagonal was captured`);
  return s.sum;
}

/** H = 2/n·S (width²), SparseGPT's and GPTQ's Hessian. */
export function hessianOf(s: XtxSum, n: number): Float32Array {
  const x = full(s, 'the Hessian');
  const H = new Float32Array(x.length);
  const k = 2 / n;
  for (let i = 0; i < H.length; i++) H[i] = x[i]! * k;
  return H;
}

/** S/n (width²), the per-token second moment the output error ‖XWᵀ − XŴᵀ‖²/n is read against. */
export function secondMoment(s: XtxSum, n: number): Float32Array {
  const x = full(s, 'the output error');
  const M = new Float32Array(x.length);
  for (let i = 0; i < M.length; i++) M[i] = x[i]! / n;
  return M;
}

/** Parse `prompt=0,think=1,answer=1` (any subset; the rest stay 1). */
export function parseTokenWeights(spec: string, what = '--token-weights'): TokenWeights {
  const out: TokenWeights = { ...UNIFORM_TOKEN_WEIGHTS };
  const seen = new Set<string>();
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([a-z]+)\s*[=:]\s*(\S+)$/.exec(part);
    if (!m) throw new RangeError(`${what}: expected CLASS=NUMBER[,CLASS=NUMBER…] with CLASS prompt | think | answer, got "${part}"`);
    const k = m[1] as TokenClass;
    if (!(TOKEN_CLASSES as readonly string[]).includes(k)) throw new RangeError(`${what}: unknown class "${m[1]}" (prompt, think, answer)`);
    if (seen.has(k)) throw new RangeError(`${what}: "${k}" given twice`);
    seen.add(k);
    const v = Number(m[2]);
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${what}: "${k}" must be a number ≥ 0, got "${m[2]}"`);
    out[k] = v;
  }
  if (seen.size === 0) throw new RangeError(`${what}: empty`);
  return out;
}
