/**
 * The pruner's options and constants, shared by the layer loop (prune.ts), its layer steps and
 * the one-Linear solver (linear.ts).
 */
import type { OwlOptions } from '../compress/owl.ts';
import type { TokenWeights } from '../compress/hessian.ts';
import type { SparsityTarget } from '../compress/masks.ts';
import type { QuantFormat } from '../compress/quant-grids.ts';
import type { Model } from '../models/model.ts';
import type { LinearName } from '../models/spec.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import type { LayerReport, PruneMethod } from './rac-json.ts';

/** The pruning methods (recipes' `methods`). */
export const PRUNE_METHODS: readonly PruneMethod[] = ['sparsegpt', 'wanda', 'magnitude'];
/** Quantization-only methods: need `quant`, prune nothing (rtn reads no calibration). */
export const QUANT_METHODS: readonly PruneMethod[] = ['gptq', 'rtn'];
/**
 * The earlier layout's sidecar: the f16 block scales of every quantized tensor (`<name>` → F16
 * (rows, cols/32)), beside F32 values on the grid. rac now writes compressed-tensors
 * (ct-output.ts); directories in this layout still load and export (export/gguf.ts).
 */
export const QUANT_SCALES_FILE = 'quant_scales.safetensors';
/** The embedding / untied output table's grid when a model is quantized (see README: GGUF). */
export const EMBEDDING_QUANT: QuantFormat = 'q8_0';
export type LinearScope = 'all' | 'attn' | 'mlp';
/**
 * Where an MoE expert's calibration statistics come from: `routed` — the tokens the router sends
 * to it (what the expert computes on; llama.cpp's imatrix counts them so); `all` — every token
 * (llm-compressor's moe_calibrate_all_experts), while the layer's output stays the routed mixture.
 */
export type MoeCalibration = 'routed' | 'all';
export const MOE_CALIBRATIONS: readonly MoeCalibration[] = ['routed', 'all'];

export interface PruneOptions {
  method: PruneMethod;
  /**
   * Quantize to a GGUF grid: gptq (alone), sparsegpt (joint: one OBS walk prunes and quantizes),
   * rtn / wanda / magnitude (round to nearest after any pruning). The embedding table (and an
   * untied lm_head) is rounded to q8_0. Quantized Linears are written compressed-tensors
   * pack-quantized (ct-output.ts); the q8_0 tables as F32 values on the grid, their f16 scales
   * in q8_0_scales.safetensors.
   */
  quant?: QuantFormat;
  target: SparsityTarget;
  /** Which Linears of each selected layer: all, attention (q/k/v/o) or MLP (gate/up/down). */
  linears: LinearScope;
  /** Selected layer indices (default: every layer). */
  layers?: number[];
  /** Re-capture the MLP inputs after pruning the attention Linears. */
  trueSequential?: boolean;
  magnitudeScope?: 'layer' | 'row';
  blocksize?: number;
  percdamp?: number;
  /** Padded tokens per calibration batch (B·T). */
  batchTokens: number;
  /** Bytes of hidden states kept in memory per store before spilling to disk. */
  memoryLimitBytes?: number;
  /**
   * Also prune lm_head, calibrated on the final-normed hidden states of the pruned model. Refused
   * for tied embeddings (it would prune the embedding table too). Default false.
   */
  pruneLmHead?: boolean;
  /**
   * Per-token weights by position class (prompt / think / answer tokens of `prompt` and `rac`
   * calibration sequences), multiplied into the sequence weight: rows enter XᵀX scaled by √w and
   * n = Σ w (compress/hessian.ts). Default 1,1,1 (bit-identical to no token weights); prompt 0 =
   * decode tokens only. Unclassified sequences (text, --calib files) keep their sequence weight.
   */
  tokenWeights?: TokenWeights;
  /**
   * Per-layer sparsity: 'uniform' (default: every layer at `target`) or OWL (compress/owl.ts):
   * per-layer targets within sparsity ± lambda from the outlier ratio of |W|·‖X‖ (M × the layer's
   * mean), averaging to the target over all pruned weights. ‖X‖ comes from a pre-pass of the
   * DENSE model over the calibration set. Unstructured targets and pruning methods only.
   */
  sparsityProfile?: 'uniform' | { owl: OwlOptions };
  /**
   * Asymmetric calibration (compress/asymmetric.ts, GPTAQ's objective): SparseGPT / GPTQ
   * reconstruct the outputs the INPUT checkpoint's layer gives on its own stream, ‖XWᵀ − X̃Ŵᵀ‖²,
   * instead of the dense weights on the pruned model's stream, ‖X̃Wᵀ − X̃Ŵᵀ‖², so the error the
   * layers before left is corrected rather than carried on. A second (reference) stream of hidden
   * states runs beside the pruned one: twice the capture forward, two more hidden stores, and
   * one (cols, cols) solve per Linear. Default false.
   */
  asymmetric?: boolean;
  /**
   * With `asymmetric`: the model whose stream is reconstructed (default: the input model). Staged
   * refresh prunes a partly pruned checkpoint and passes the dense model here, so every stage
   * reconstructs the dense model's outputs. Same architecture and shapes as the input model.
   */
  reference?: Model;
  /** Compute ‖XWᵀ − XŴᵀ‖²/n per Linear (one extra GEMM pass per Linear). Default true. */
  errorStats?: boolean;
  /** MoE layers: each expert's statistics from its routed tokens or from every token (default routed, see README: MoE). */
  moeCalibration?: MoeCalibration;
  /**
   * MoE layers, routed calibration: an expert routed fewer real calibration tokens than this gets its
   * statistics from every token instead (recorded per expert in rac.json). Default MIN_EXPERT_TOKENS.
   */
  minExpertTokens?: number;
  overwrite?: boolean;
  runtime?: Partial<RuntimeOptions>;
  onProgress?: (e: PruneProgress) => void;
}

export interface PruneProgress {
  layer: number;
  layers: number;
  phase: 'capture' | 'prune' | 'recompute' | 'write' | 'done';
  batch?: number;
  batches?: number;
  linear?: LinearName;
  /** MoE layers: the expert being pruned. */
  expert?: number;
  report?: LayerReport;
}

/** Default of `minExpertTokens`: below it an expert's Hessian is a handful of outer products (see README: MoE). */
export const MIN_EXPERT_TOKENS = 32;
