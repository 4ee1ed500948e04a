/**
 * OWL: Outlier Weighed Layerwise sparsity (Yin et al. 2023, https://arxiv.org/abs/2310.05694;
 * llm-compressor `sparsity_profile="owl"`): layers with more outliers are pruned less.
 *
 *   score      A_ij = |W_ij|·‖X_j‖₂ (Wanda's score; ‖X_j‖² = diag XᵀX of the Linear's inputs)
 *   outliers   D_l = share of the scores of ALL pruned Linears of layer l that exceed M × their
 *              mean (one pool per layer, as in the paper's code)
 *   targets    s_l = s − λ·z_l / max_k |z_k| with z_l = D_l − D̄, D̄ the mean of D weighted by
 *              each layer's pruned parameter count p_l
 * so every s_l lies in [s − λ, s + λ] (the layer(s) furthest from the mean reach the bound) and
 * Σ p_l·s_l / Σ p_l = s exactly (up to float rounding): the requested sparsity over all pruned
 * weights. The paper min–max normalizes D to [0, 2λ] and centres it on its plain mean, which
 * spans 2λ but can leave [s − λ, s + λ] when D is skewed; centring on the weighted mean and
 * scaling by the largest deviation keeps both the bound and the exact average. Equal D: uniform.
 */

export interface OwlOptions {
  /** Outlier threshold: a score above M × the layer's mean score is an outlier (default 5). */
  m: number;
  /** Largest deviation of a layer's target from the requested sparsity (default 0.08). */
  lambda: number;
}

export const OWL_DEFAULTS: Readonly<OwlOptions> = Object.freeze({ m: 5, lambda: 0.08 });

/** One Linear's weights and the column norms ‖X_j‖ of its inputs. */
export interface ScoredLinear {
  W: Float32Array;
  rows: number;
  cols: number;
  /** (cols) ‖X_j‖₂ */
  colNorm: ArrayLike<number>;
}

/** D_l: the share of A_ij = |W_ij|·‖X_j‖ over all of `linears` above m × their mean. */
export function outlierRatio(linears: readonly ScoredLinear[], m: number): number {
  if (!(m > 0) || !Number.isFinite(m)) throw new RangeError(`OWL: M must be a finite number > 0, got ${m}`);
  let sum = 0;
  let count = 0;
  for (const { W, rows, cols, colNorm } of linears) {
    if (W.length !== rows * cols || colNorm.length !== cols)
      throw new RangeError(`OWL: a ${rows}×${cols} Linear needs ${rows * cols} weights and ${cols} column norms`);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) sum += Math.abs(W[r * cols + j]!) * colNorm[j]!;
    count += rows * cols;
  }
  if (count === 0) return 0;
  const threshold = (m * sum) / count;
  let above = 0;
  for (const { W, rows, cols, colNorm } of linears) {
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) if (Math.abs(W[r * cols + j]!) * colNorm[j]! > threshold) above++;
  }
  return above / count;
}

/** Per-layer sparsities from outlier ratios D_l and pruned parameter counts p_l (see the module comment). */
export function owlTargets(ratios: readonly number[], params: readonly number[], sparsity: number, lambda: number): number[] {
  if (ratios.length !== params.length) throw new RangeError(`OWL: ${ratios.length} outlier ratios for ${params.length} layers`);
  if (!(lambda >= 0) || !Number.isFinite(lambda)) throw new RangeError(`OWL: lambda must be a finite number ≥ 0, got ${lambda}`);
  if (sparsity - lambda < 0 || sparsity + lambda >= 1) {
    throw new RangeError(`OWL: sparsity ${sparsity} ± lambda ${lambda} leaves [0, 1); use a smaller lambda`);
  }
  const P = params.reduce((a, p) => a + p, 0);
  if (!(P > 0)) throw new RangeError('OWL: no pruned parameters');
  const mean = ratios.reduce((a, d, i) => a + d * params[i]!, 0) / P;
  const z = ratios.map((d) => d - mean);
  const zmax = Math.max(...z.map(Math.abs));
  if (!(zmax > 0)) return ratios.map(() => sparsity);
  return z.map((zl) => sparsity - (lambda * zl) / zmax);
}
