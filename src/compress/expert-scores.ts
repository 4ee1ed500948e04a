/**
 * Expert saliency for removing whole experts from an MoE layer (pure math on per-token sums).
 *
 *   REAP (Cerebras, arXiv 2510.13999): S_j = mean over the calibration tokens routed to expert j of
 *        g_j(x)·‖f_j(x)‖₂ — g_j the router's weight for j (softmax over all E experts, divided by
 *        the top-k sum when the model renormalizes) and f_j(x) the expert's output before weighting.
 *   frequency (the baseline): S_j = the number of tokens routed to j.
 * With token weights w_t (calibration weighting), both are weighted: Σ w·g·‖f‖ / Σ w and Σ w. An
 * expert no token is routed to scores 0. The `remove` lowest-scoring experts of a layer go (ties:
 * the higher index first, so the result is deterministic); llama.cpp and HF configs hold one
 * expert count, so the count is the same in every layer.
 */

export type ExpertScoring = 'reap' | 'frequency';
export const EXPERT_SCORINGS: readonly ExpertScoring[] = ['reap', 'frequency'];

/** Running sums of one MoE layer's experts over the calibration tokens. */
export class ExpertSaliency {
  /** Σ w·g·‖f‖ per expert. */
  readonly reapSum: Float64Array;
  /** Σ w per expert (weighted routed tokens). */
  readonly weight: Float64Array;
  /** Routed tokens per expert (unweighted, real tokens). */
  readonly tokens: Float64Array;

  constructor(readonly experts: number) {
    this.reapSum = new Float64Array(experts);
    this.weight = new Float64Array(experts);
    this.tokens = new Float64Array(experts);
  }

  /**
   * Add expert j's routed rows: gate weights g (n), the expert's outputs before weighting
   * f (n, D) row-major, and token weights w (n).
   */
  add(j: number, g: ArrayLike<number>, f: Float32Array, D: number, w: ArrayLike<number>): void {
    const n = g.length;
    if (f.length !== n * D || w.length !== n)
      throw new RangeError(`expert ${j}: ${n} gates, ${f.length} outputs, ${w.length} weights for D ${D}`);
    for (let r = 0; r < n; r++) {
      let ss = 0;
      for (let d = 0; d < D; d++) ss += f[r * D + d]! * f[r * D + d]!;
      this.reapSum[j]! += w[r]! * g[r]! * Math.sqrt(ss);
      this.weight[j]! += w[r]!;
      this.tokens[j]!++;
    }
  }

  /** Per-expert scores under a scoring rule. */
  scores(rule: ExpertScoring): Float64Array {
    if (rule === 'frequency') return Float64Array.from(this.weight);
    return this.reapSum.map((s, j) => (this.weight[j]! > 0 ? s / this.weight[j]! : 0));
  }
}

/**
 * The experts to remove: the `remove` lowest scores (ties: higher index first), ascending by index.
 */
export function lowestExperts(scores: ArrayLike<number>, remove: number): number[] {
  const E = scores.length;
  if (!Number.isInteger(remove) || remove < 0 || remove > E) throw new RangeError(`cannot remove ${remove} of ${E} experts`);
  const order = Array.from({ length: E }, (_, j) => j).sort((a, b) => scores[a]! - scores[b]! || b - a);
  return order.slice(0, remove).sort((a, b) => a - b);
}

/**
 * How many experts a target removes from each layer: a fraction in (0, 1) of E (rounded to the
 * nearest count) or a whole count ≥ 1. Refused: removing none, removing all, or leaving fewer
 * experts than each token picks (top-k).
 */
export function expertsToRemove(target: number, experts: number, topK: number): number {
  if (!Number.isFinite(target) || target <= 0)
    throw new RangeError(`--experts ${target}: remove at least one expert (a fraction in (0, 1) or a count ≥ 1)`);
  const n = target < 1 ? Math.round(target * experts) : target;
  if (!Number.isInteger(n)) throw new RangeError(`--experts ${target}: a count of experts must be a whole number`);
  if (n < 1) throw new RangeError(`--experts ${target}: ${target} of ${experts} experts rounds to none removed`);
  if (n >= experts) throw new RangeError(`--experts ${target}: removing ${n} of ${experts} experts leaves none`);
  if (experts - n < topK)
    throw new RangeError(
      `--experts ${target}: removing ${n} of ${experts} experts leaves ${experts - n}, fewer than the ${topK} each token is routed to`,
    );
  return n;
}
