/**
 * The pruner's options and constants, shared by the layer loop (prune.ts), its layer steps and
 * the one-Linear solver (linear.ts).
 */
import type { OwlOptions } from '../compress/owl.ts';
import type { TokenWeights } from '../compress/hessian.ts';
import type { SparsityTarget } from '../compress/masks.ts';
import type { QuantScheme } from '../compress/quant-schemes.ts';
import { BLOCKS_FILE } from '../io/compressed-tensors.ts';
import type { Imatrix } from '../io/imatrix.ts';
import type { Model } from '../models/model.ts';
import type { LinearName } from '../models/spec.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import type { ExpertRemovalRecord, LayerReport, PruneMethod, QuantLayout } from './rac-json.ts';

/** The pruning methods (recipes' `methods`). */
export const PRUNE_METHODS: readonly PruneMethod[] = ['sparsegpt', 'wanda', 'magnitude'];
/** Expert-removal methods (MoE models): remove whole experts, prune nothing else. */
export const EXPERT_METHODS: readonly PruneMethod[] = ['reap', 'frequency'];
/** Quantization-only methods: need `quant`, prune nothing (rtn reads no calibration). */
export const QUANT_METHODS: readonly PruneMethod[] = ['gptq', 'rtn'];
/**
 * The sidecar with the GGUF block bytes of the quantized tensors stored as F32 (`<name>` → U8
 * (rows, row bytes), HF row order): every quantized tensor in the `gguf-blocks` layout, the
 * embedding / untied lm_head in the `compressed-tensors` one.
 */
export const QUANT_BLOCKS_FILE = BLOCKS_FILE;
/**
 * The sidecar of rac's first quantized layout (q4_0 / q8_0 before GGUF blocks): the f16 block
 * scales of every quantized tensor (`<name>` → F16 (rows, cols/32)), beside F32 values on the
 * grid. rac no longer writes it; such directories still load and export (export/gguf.ts).
 */
export const QUANT_SCALES_FILE = 'quant_scales.safetensors';
/**
 * The schemes whose quantized Linears rac writes compressed-tensors pack-quantized (ct-output.ts):
 * Q4_0 and Q8_0 are exactly its symmetric int4 / int8 with group size 32 and f16 scales. The
 * k-quants and the mixes keep the `gguf-blocks` layout: their two-level scales (and mins) have no
 * compressed-tensors form.
 */
export const PACKED_SCHEMES = ['q4_0', 'q8_0'] as const;
export type PackedScheme = (typeof PACKED_SCHEMES)[number];

export function isPackedScheme(s: QuantScheme): s is PackedScheme {
  return (PACKED_SCHEMES as readonly string[]).includes(s);
}

/** The layout `rac prune --quant SCHEME` writes. */
export function quantLayout(s: QuantScheme): QuantLayout {
  return isPackedScheme(s) ? 'compressed-tensors' : 'gguf-blocks';
}
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
   * Quantize to ggml types under a scheme (compress/quant-schemes.ts: one type, or a llama.cpp
   * mix with its per-tensor types): gptq (alone), sparsegpt (joint: one OBS walk prunes and
   * quantizes), rtn / wanda / magnitude (round to nearest after any pruning, llama.cpp's quantizer
   * byte for byte). The embedding table (and an untied lm_head) gets the scheme's type for it by
   * RTN (GPTQ with pruneLmHead). q4_0 / q8_0: the quantized Linears are written compressed-tensors
   * pack-quantized (ct-output.ts), the embedding / untied lm_head as F32 with their GGUF blocks in
   * quant_blocks.safetensors; every other scheme: quantized tensors as F32 dequantized values,
   * their GGUF block bytes in quant_blocks.safetensors (quantLayout).
   */
  quant?: QuantScheme;
  /** An importance matrix (llama-imatrix's format) for the quantizers' block choices, as llama-quantize --imatrix. */
  imatrix?: Imatrix;
  /** Where `imatrix` was read (recorded with its sha256). */
  imatrixFile?: string;
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
  /**
   * MoE models: remove whole experts first — `scoring` REAP or routed-token frequency, `experts` a
   * fraction in (0, 1) or a count per layer (prune/expert-removal.ts). Required by methods reap /
   * frequency (which do only that); with any other method, the rest is then pruned / quantized
   * as usual on the same calibration set. rac.json `expert_removal` records it.
   */
  removeExperts?: { scoring: 'reap' | 'frequency'; experts: number };
  /** Internal (composition): the run's original source, and the expert removal done before this stage. */
  provenance?: { source: Model; expertRemoval: ExpertRemovalRecord };
  /** MoE layers: each expert's statistics from its routed tokens or from every token (default routed, see docs/moe.md). */
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

/** Default of `minExpertTokens`: below it an expert's Hessian is a handful of outer products (see docs/moe.md). */
export const MIN_EXPERT_TOKENS = 32;
