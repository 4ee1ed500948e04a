/**
 * GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers (Frantar,
 * Ashkboos, Hoefler, Alistarh 2022), https://arxiv.org/abs/2210.17323 — the semantics of
 * `GPTQ.fasterquant` in https://github.com/IST-DASLab/gptq, on the GGUF grids of quant-grids.ts.
 *
 * It is SparseGPT's OBS column walk with "round to the grid" instead of "zero the masked", so it
 * runs through the same solver (`sparsegptPrune` with `quant` and a target that prunes nothing):
 * the same H, dead columns (H_jj = 0 → H_jj = 1, W[:, j] = 0), damping λ·mean(diag H) with the
 * doubling retries, and the same upper factor U (UᵀU = H⁻¹). Per column j: q = grid(w),
 * err = (w − q)/U_jj, W[:, j+1:block] −= err·U[j, j+1:block]; then the lazy batch update of the
 * later blocks as GEMMs. The scale of each 32-wide quantization block is computed from the
 * already-updated weights when the walk reaches the block's first column (the reference's
 * `groupsize` behaviour, `static_groups=False`), rounded to f16, so the file stores exactly what
 * GPTQ decided; the k-quants' 256-column super-blocks take llama.cpp's choice of scales, mins and
 * super-scales on the current weights when the walk reaches them (ggml-quants.ts GridWalk). No
 * act-order (columns are walked in their natural order).
 */
import type { Gemm } from './gemm.ts';
import type { GgmlQuantType } from './ggml-quants.ts';
import type { QuantFormat } from './quant-grids.ts';
import { sparsegptPrune, type ObsReport, type SparseGPTOptions } from './sparsegpt.ts';

export type GptqOptions = Omit<SparseGPTOptions, 'quant'>;

/**
 * Quantize W (rows, cols), row-major f32, in place to `fmt` by GPTQ on H (cols, cols) = 2/n·Σ xᵀx.
 * Returns the report with the GGUF bytes (`blocks`; every W value is their dequantization, exactly)
 * and, for q4_0/q8_0, the f16 block scales (rows, cols/32). `opts.imatrix` steers llama.cpp's
 * choice of each block's scales (k-quants: each 256-column super-block's) as llama-quantize's.
 */
export async function gptqQuantize(
  W: Float32Array,
  rows: number,
  cols: number,
  H: Float32Array,
  fmt: QuantFormat | GgmlQuantType,
  gemm: Gemm,
  opts: GptqOptions = {},
): Promise<ObsReport & { blocks: Uint8Array }> {
  const r = await sparsegptPrune(W, rows, cols, H, { kind: 'unstructured', sparsity: 0 }, gemm, { ...opts, quant: fmt });
  return r as ObsReport & { blocks: Uint8Array };
}
