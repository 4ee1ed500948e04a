/**
 * Asymmetric calibration (GPTAQ / "GPTQv2", ICML 2025): a layer of the compressed model sees the
 * compressed model's own inputs X̃ (the earlier layers are pruned already), but it should give
 * the outputs the DENSE model computes from the dense model's inputs X. Plain SparseGPT/GPTQ
 * minimise ‖X̃Wᵀ − X̃Ŵᵀ‖², reconstructing the dense weights on the pruned inputs, so the error of
 * the layers before is carried on; the asymmetric objective is ‖XWᵀ − X̃Ŵᵀ‖².
 *
 * It splits exactly (the normal equations make the residual orthogonal to X̃):
 *   ‖XWᵀ − X̃Ŵᵀ‖² = ‖XWᵀ − X̃W*ᵀ‖² + ‖X̃(W* − Ŵ)ᵀ‖²,   W* = W·C·H⁻¹,
 * with H = X̃ᵀX̃ and C = XᵀX̃ (both over the calibration tokens, rows weighted alike). The first
 * term does not depend on Ŵ, so the asymmetric problem is the ordinary one for the target W*:
 * SparseGPT/GPTQ run unchanged on W* with X̃'s Hessian. (GPTAQ folds the same correction into the
 * column walk instead; the least-squares target is the same solution written as one step.)
 *
 * Damped as SparseGPT damps H: W* = (W·C + λW)(H + λI)⁻¹, λ = percdamp · mean diag H — the ridge
 * solution of ‖XWᵀ − X̃W*ᵀ‖² + λ‖W* − W‖², so W* = W exactly when X̃ = X (the first layer), and
 * the target stays near W along directions X̃ hardly spans.
 *
 * Pure math on typed arrays; every O(n³) step goes through `Gemm`.
 */
import type { Gemm } from './gemm.ts';
import { inverseUpperFactor, NotPositiveDefiniteError } from './linalg.ts';

export interface AsymmetricOptions {
  /** Relative damping λ / mean diag H (default 0.01, SparseGPT's). */
  percdamp?: number;
  /** Largest relative λ tried (doubling) when H + λI is not numerically PD (default 0.5). */
  maxDamp?: number;
}

export interface AsymmetricReport {
  /** Relative damping used. */
  damp: number;
  /** ‖W* − W‖_F / ‖W‖_F: how far the target moved from the dense weights. */
  shift: number;
}

/**
 * Replace W (rows, cols, row-major f32) in place by the asymmetric target W* = (W·C + λW)(H + λI)⁻¹.
 * H (cols, cols) is the pruned-input Hessian and C (cols, cols) the cross term XᵀX̃ (dense-model
 * inputs ᵀ · pruned-model inputs), both with the same scale (SparseGPT's 2/n). Columns dead in H
 * (H_jj = 0: the input never fires on the pruned model) keep W's column as it is.
 */
export async function asymmetricTarget(
  W: Float32Array,
  rows: number,
  cols: number,
  H: Float32Array,
  C: Float32Array,
  gemm: Gemm,
  opts: AsymmetricOptions = {},
): Promise<AsymmetricReport> {
  if (W.length !== rows * cols) throw new RangeError(`asymmetricTarget: W has ${W.length} elements, expected ${rows}·${cols}`);
  if (H.length !== cols * cols) throw new RangeError(`asymmetricTarget: H has ${H.length} elements, expected ${cols}²`);
  if (C.length !== cols * cols) throw new RangeError(`asymmetricTarget: C has ${C.length} elements, expected ${cols}²`);
  const percdamp = opts.percdamp ?? 0.01;
  const maxDamp = opts.maxDamp ?? 0.5;
  if (!(percdamp > 0) || !Number.isFinite(percdamp)) throw new RangeError(`asymmetricTarget: percdamp must be > 0, got ${percdamp}`);
  let diagSum = 0;
  let live = 0;
  const dead = new Uint8Array(cols);
  for (let j = 0; j < cols; j++) {
    const h = H[j * cols + j]!;
    if (!Number.isFinite(h)) throw new RangeError(`asymmetricTarget: H[${j}, ${j}] is ${h}`);
    if (h === 0) dead[j] = 1;
    else {
      diagSum += h;
      live++;
    }
  }
  if (live === 0) return { damp: percdamp, shift: 0 };
  const mean = diagSum / live;
  // M = W·C + λW. A dead column j has C[:, j] = 0 (X̃_j ≡ 0), so M's column is λW_j, and with
  // H + λI's j-th row and column e_j·λ, W*_j = W_j (the column stays).
  const WC = await gemm.matmul(W, C, rows, cols, cols);
  for (let damp = percdamp; ; damp *= 2) {
    const lambda = damp * mean;
    const diag = new Float64Array(cols);
    for (let j = 0; j < cols; j++) diag[j] = (dead[j] ? 0 : H[j * cols + j]!) + lambda;
    let U: Float32Array;
    try {
      U = await inverseUpperFactor(H, cols, gemm, { diagonal: diag }); // UᵀU = (H + λI)⁻¹
    } catch (e) {
      if (e instanceof NotPositiveDefiniteError && damp * 2 <= maxDamp) continue;
      throw e;
    }
    const M = new Float32Array(WC.length);
    for (let i = 0; i < M.length; i++) M[i] = WC[i]! + lambda * W[i]!;
    // W* = M·Uᵀ·U
    const MUt = await gemm.matmul(M, U, rows, cols, cols, { transB: true });
    const Wstar = await gemm.matmul(MUt, U, rows, cols, cols);
    let num = 0;
    let den = 0;
    for (let i = 0; i < W.length; i++) {
      const d = Wstar[i]! - W[i]!;
      num += d * d;
      den += W[i]! * W[i]!;
    }
    for (let i = 0; i < W.length; i++) if (!Number.isFinite(Wstar[i]!)) throw new RangeError('asymmetricTarget: the target is not finite');
    W.set(Wstar);
    return { damp, shift: den > 0 ? Math.sqrt(num / den) : 0 };
  }
}
