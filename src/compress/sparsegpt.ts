/**
 * SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot (Frantar & Alistarh 2023),
 * https://arxiv.org/abs/2301.00774 — semantics of `SparseGPT.fasterprune` in
 * https://github.com/IST-DASLab/sparsegpt (sparsegpt.py).
 *
 * Lifecycle, per Linear W (rows, cols) with H (cols, cols) = 2/n·Σ xᵀx from calibration:
 *   1. dead columns (H_jj = 0): use H_jj = 1 and set W[:, j] = 0;
 *   2. damp: H + λ·mean(diag H)·I with λ = percdamp; a failed Cholesky retries with
 *      λ ← min(2λ, maxDamp) until λ = maxDamp has failed too, then throws;
 *   3. U upper with UᵀU = H⁻¹ (`inverseUpperFactor`, the reversed-order Cholesky route);
 *   4. for column blocks of B: choose the block's mask (unstructured: exactly
 *      floor(s·rows·B) entries with smallest w²/U_jj², ties → lower row-major index;
 *      N:M: at each group start, per row the n smallest w²/U_jj² of the group, from the
 *      current, already-updated weights), walk the columns: q = masked w,
 *      err = (w − q)/U_jj, W[:, j+1:end] −= err·U[j, j+1:end]; then the lazy batch update
 *      W[:, end:] −= Err_block·U[block, end:] as one GEMM;
 *   5. report loss Σ (w − q)²/U_jj²/2 and the realised sparsity. Masked weights are exact zeros.
 * Differences from the reference, on purpose: the unstructured mask holds exactly
 * floor(s·numel) entries (the reference's `tmp <= sorted[int(numel·s)]` takes one more, or more
 * on ties); sparsity 0 returns W untouched (the reference would still prune one weight per block).
 */
import type { Gemm } from './gemm.ts';
import { inverseUpperFactor, NotPositiveDefiniteError, readBlock32, readBlock64, subtractBlock } from './linalg.ts';
import { GGML_QUANT_TRAITS, GridWalk, legacyScales, type GgmlQuantType } from './ggml-quants.ts';
import { QK, type QuantFormat } from './quant-grids.ts';
import {
  reportFor,
  selectSmallest,
  selectSmallestInGroup,
  validateTarget,
  validateWeight,
  type PruneReport,
  type SparsityTarget,
} from './masks.ts';

export interface SparseGPTOptions {
  /** Columns per block of the lazy batch update and of the unstructured mask (default 128). */
  blocksize?: number;
  /** Initial relative damping λ (default 0.01). */
  percdamp?: number;
  /** Largest λ tried after doubling (default 0.5). */
  maxDamp?: number;
  /** Diagonal block size of the blocked Cholesky / triangular inverse (default 128). */
  linalgBlockSize?: number;
  /** Columns walked in JS between inner GEMM updates inside a block (default 16). */
  subBlock?: number;
  /**
   * Joint sparsification + quantization (the SparseGPT paper's joint mode; GPTQ when the target
   * prunes nothing): every kept weight is rounded to this ggml grid inside the same column walk,
   * masked ones to the grid point nearest 0 (exactly 0 on the symmetric grids: Q4_0, Q8_0, Q3_K,
   * Q6_K, Q5_0), and both errors are propagated. A block's grid (32 columns, or a 256-column
   * super-block for the k-quants) is llama.cpp's choice on the current, already-updated weights
   * when the walk reaches the block's first column (masked weights known by then enter as 0); see
   * GridWalk. A super-block spans whole solver blocks: blocksize must divide 256 or be a multiple.
   */
  quant?: QuantFormat | GgmlQuantType;
  /** With `quant`: the importance matrix (cols values, mean x² per input column) of llama.cpp's block choice. */
  imatrix?: Float32Array;
}

/** A report with the GGUF bytes when `quant` was given (and, for Q4_0/Q8_0, the f16 block scales (rows, cols/32)). */
export interface ObsReport extends PruneReport {
  blocks?: Uint8Array;
  scales?: Float32Array;
}

const GGML_OF_FORMAT: Record<QuantFormat, GgmlQuantType> = { q4_0: 'Q4_0', q8_0: 'Q8_0' };

/**
 * Prune W (rows, cols), row-major f32, in place. H (cols, cols) symmetric f32 is not modified.
 * Sparsity 0 leaves W bit-identical. Throws when H cannot be made PD with λ ≤ maxDamp.
 */
export async function sparsegptPrune(
  W: Float32Array,
  rows: number,
  cols: number,
  H: Float32Array,
  target: SparsityTarget,
  gemm: Gemm,
  opts: SparseGPTOptions = {},
): Promise<ObsReport> {
  const t0 = performance.now();
  validateWeight(W, rows, cols, 'sparsegptPrune');
  const quant: GgmlQuantType | undefined = opts.quant
    ? (GGML_OF_FORMAT[opts.quant as QuantFormat] ?? (opts.quant as GgmlQuantType))
    : undefined;
  const QB = quant ? GGML_QUANT_TRAITS[quant].block : QK; // columns per quantization block
  validateTarget(target, cols);
  if (H.length !== cols * cols) throw new RangeError(`sparsegptPrune: H has ${H.length} elements, expected cols² = ${cols}²`);
  const B = opts.blocksize ?? 128;
  // Inner sub-block of the column walk: a multiple of M for N:M, so groups never straddle it.
  let sb = target.kind === 'nm' ? target.m * Math.max(1, Math.round((opts.subBlock ?? 16) / target.m)) : (opts.subBlock ?? 16);
  if (quant) {
    // Quantization blocks start at sub-block starts, where W1 is fully updated: sb must divide QK.
    if (cols % QB !== 0) throw new RangeError(`sparsegptPrune: quantization to ${quant} needs cols divisible by ${QB}, got cols = ${cols}`);
    if (QB === QK && (opts.blocksize ?? 128) % QK !== 0)
      throw new RangeError(`sparsegptPrune: quantization needs a blocksize divisible by ${QK}, got ${opts.blocksize}`);
    const bs = opts.blocksize ?? 128;
    if (QB > QK && bs % QB !== 0 && QB % bs !== 0)
      throw new RangeError(
        `sparsegptPrune: quantization to ${quant} needs a blocksize that divides ${QB} or is a multiple of it, got ${bs}`,
      );
    if (target.kind === 'nm' && QK % target.m !== 0)
      throw new RangeError(`sparsegptPrune: quantization with N:M needs M dividing ${QK}, got M = ${target.m}`);
    sb = target.kind === 'nm' ? Math.max(sb, target.m) : sb;
    while (QK % sb !== 0) sb--;
  }
  const percdamp = opts.percdamp ?? 0.01;
  const maxDamp = opts.maxDamp ?? 0.5;
  if (!Number.isInteger(B) || B < 1) throw new RangeError(`sparsegptPrune: blocksize must be a positive integer, got ${B}`);
  if (!(percdamp > 0) || !Number.isFinite(percdamp)) throw new RangeError(`sparsegptPrune: percdamp must be > 0, got ${percdamp}`);
  if (!(maxDamp >= percdamp) || !Number.isFinite(maxDamp)) {
    throw new RangeError(`sparsegptPrune: maxDamp must be finite and ≥ percdamp (${percdamp}), got ${maxDamp}`);
  }
  if (target.kind === 'nm' && B % target.m !== 0) {
    throw new RangeError(`sparsegptPrune: blocksize ${B} must be a multiple of M = ${target.m} so N:M groups do not straddle blocks`);
  }
  const seconds = () => (performance.now() - t0) / 1000;
  if (!quant && target.kind === 'unstructured' && target.sparsity === 0) return reportFor(W, { loss: 0, seconds: seconds() });
  // The grid, decided block by block; sigma² of the legacy types' matrix path from the input rows.
  const grid = quant ? new GridWalk(quant, rows, cols, W, opts.imatrix) : undefined;

  // 1. Dead columns.
  const diag = new Float64Array(cols); // (cols) diagonal of H after the dead-column fix
  let diagSum = 0;
  for (let j = 0; j < cols; j++) {
    const h = H[j * cols + j];
    if (!Number.isFinite(h)) throw new RangeError(`sparsegptPrune: H[${j}, ${j}] is ${h}`);
    if (h === 0) {
      diag[j] = 1;
      for (let r = 0; r < rows; r++) W[r * cols + j] = 0;
    } else {
      diag[j] = h;
    }
    diagSum += diag[j];
  }
  const meanDiag = diagSum / cols;

  // 2–3. Damping with retries, U with UᵀU = (H + damp·I)⁻¹.
  const tf = performance.now();
  let lambda = percdamp;
  let retries = 0;
  let U: Float32Array; // (cols, cols) upper
  for (;;) {
    const damped = new Float64Array(cols);
    for (let j = 0; j < cols; j++) damped[j] = diag[j] + lambda * meanDiag;
    try {
      U = await inverseUpperFactor(H, cols, gemm, { diagonal: damped, blockSize: opts.linalgBlockSize });
      for (let i = 0; i < U.length; i++) if (!Number.isFinite(U[i])) throw new NotPositiveDefiniteError(Math.floor(i / cols), U[i]);
      break;
    } catch (e) {
      if (!(e instanceof NotPositiveDefiniteError)) throw e;
      if (lambda >= maxDamp) {
        throw new Error(
          `sparsegptPrune: Cholesky of the damped Hessian failed for every damping up to ${maxDamp}·mean(diag H) ` +
            `(${retries + 1} attempts, last: ${e.message}); H (${cols}×${cols}) is not positive semi-definite`,
        );
      }
      lambda = Math.min(2 * lambda, maxDamp);
      retries++;
    }
  }

  const factorSeconds = (performance.now() - tf) / 1000;

  // 4. Column blocks.
  let loss = 0;
  const tmp = new Float64Array(rows * B); // (rows, count) scores w²/U_jj²
  const mask = new Uint8Array(rows * B); // (rows, count) 1 = prune
  for (let i1 = 0; i1 < cols; i1 += B) {
    const i2 = Math.min(i1 + B, cols);
    const count = i2 - i1;
    const U1 = readBlock64(U!, cols, i1, i1, count, count); // (count, count) = U[i1:i2, i1:i2], upper
    const W1 = readBlock64(W, cols, 0, i1, rows, count); // (rows, count) working copy of W[:, i1:i2]
    const Err1 = new Float32Array(rows * count); // (rows, count)
    mask.fill(0);
    if (target.kind === 'unstructured') {
      const scores = tmp.subarray(0, rows * count);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < count; c++) {
          const d = U1[c * count + c];
          const w = W1[r * count + c];
          scores[r * count + c] = (w * w) / (d * d);
        }
      }
      selectSmallest(scores, Math.floor(target.sparsity * rows * count), mask);
    }
    // Walk the block's columns in sub-blocks of `sb`: inside a sub-block the OBS updates run in
    // JS; the rest of the block gets each sub-block's errors in one GEMM (a second, inner level
    // of the same lazy batching), so the JS work is O(rows·cols·sb) instead of O(rows·cols·B).
    for (let j0 = 0; j0 < count; j0 += sb) {
      const j1 = Math.min(j0 + sb, count);
      for (let j = j0; j < j1; j++) {
        if (grid && (i1 + j) % QB === 0) {
          // A quantization block starts: its grid from the current weights of columns i1+j … +QB —
          // W1 inside this solver block (masked ones, when known, as 0), W past it (the lazy
          // updates of every earlier block are in: blocks start at super-block starts).
          const known = target.kind === 'unstructured';
          for (let r = 0; r < rows; r++) {
            grid.start(r, (i1 + j) / QB, (c) =>
              j + c < count ? (known && mask[r * count + j + c] ? 0 : W1[r * count + j + c]!) : W[r * cols + i1 + j + c]!,
            );
          }
        }
        if (target.kind === 'nm' && j % target.m === 0) {
          for (let r = 0; r < rows; r++) {
            for (let c = j; c < j + target.m; c++) {
              const d = U1[c * count + c];
              const w = W1[r * count + c];
              tmp[r * count + c] = (w * w) / (d * d);
            }
            selectSmallestInGroup(tmp, r * count + j, target.m, target.n, mask);
          }
        }
        const d = U1[j * count + j];
        const Uj = j * count;
        for (let r = 0; r < rows; r++) {
          const o = r * count;
          const w = W1[o + j];
          const q = grid ? grid.round(r, i1 + j, mask[o + j] ? 0 : w) : mask[o + j] ? 0 : w;
          W[r * cols + i1 + j] = q;
          if (q === w) continue; // err = 0: nothing to propagate
          const err = (w - q) / d;
          loss += (err * err) / 2;
          Err1[o + j] = err;
          for (let c = j + 1; c < j1; c++) W1[o + c] -= err * U1[Uj + c];
        }
      }
      if (j1 < count) {
        // W1[:, j1:count] −= Err1[:, j0:j1] · U1[j0:j1, j1:count]
        const w = j1 - j0;
        const rest = count - j1;
        const E = readBlock32(Err1, count, 0, j0, rows, w); // (rows, w)
        const Us = readBlock32(U1, count, j0, j1, w, rest); // (w, rest)
        subtractBlock(W1, count, 0, j1, rows, rest, await gemm.matmul(E, Us, rows, w, rest));
      }
    }
    // Lazy batch update of all later columns: W[:, i2:] −= Err1 · U[i1:i2, i2:].
    if (i2 < cols) {
      const rest = cols - i2;
      const Ub = readBlock32(U!, cols, i1, i2, count, rest); // (count, rest) = U[i1:i2, i2:]
      subtractBlock(W, cols, 0, i2, rows, rest, await gemm.matmul(Err1, Ub, rows, count, rest));
    }
  }
  const blocks = grid?.blocks();
  const scales = blocks && (quant === 'Q4_0' || quant === 'Q8_0') ? legacyScales(blocks, quant, rows * cols) : undefined;
  return {
    ...reportFor(W, { loss, damp: lambda, retries, seconds: seconds(), factorSeconds }),
    ...(blocks ? { blocks } : {}),
    ...(scales ? { scales } : {}),
  };
}
