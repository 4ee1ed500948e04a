/**
 * `rac.json`: the metadata a pruned (or quantized) model directory carries beside its weights —
 * what was done (method, target, options, calibration), per layer and per Linear what it cost and
 * changed, and the quantization record `rac export-gguf` reproduces. The pruner writes it
 * (`formatRacJson`), `rac eval` and `rac report` read it (`readPruningInfo`) through these types.
 * Imports only types from compress / io / models.
 */
import type { GgmlQuantType } from '../compress/ggml-quants.ts';
import type { QuantScheme } from '../compress/quant-schemes.ts';
import type { HubSource } from '../io/hub.ts';
import { readModelJson } from '../io/model-file.ts';
import type { ExpertLinearName, LinearName } from '../models/spec.ts';

/** The file name inside a pruned model directory. */
export const RAC_JSON = 'rac.json';

export type PruneMethod = 'sparsegpt' | 'wanda' | 'magnitude' | 'gptq' | 'rtn' | 'reap' | 'frequency';

export interface LinearReport {
  rows: number;
  cols: number;
  zeros: number;
  sparsity: number;
  /** SparseGPT's OBS loss Σ (w − q)²/U_jj²/2. */
  loss?: number;
  /** Asymmetric calibration: ‖W* − W‖_F / ‖W‖_F, how far the reconstruction target moved from the layer's weights. */
  target_shift?: number;
  /** ‖XWᵀ − XŴᵀ‖²_F / n over the calibration tokens. */
  output_error?: number;
  /** ‖XWᵀ‖²_F / n, to read output_error relative to the signal. */
  output_norm?: number;
  damp?: number;
  retries?: number;
  /** The ggml type the values are on, and how they got there. */
  quant?: GgmlQuantType;
  quant_method?: 'gptq' | 'rtn';
  /** SparseGPT: seconds in damping + factorization, and in the OBS sweep. */
  factor_seconds?: number;
  sweep_seconds?: number;
  seconds: number;
}

/** One expert of a pruned MoE layer: the calibration it saw and its Linears. */
export interface ExpertReport {
  expert: number;
  /** Real calibration tokens the router sent to the expert (Σ over experts = top-k × tokens). */
  tokens: number;
  /**
   * Where its statistics came from: `routed` (its routed tokens), `all` (every token,
   * moe_calibration all), `all_low_tokens` (every token: fewer routed than min_expert_tokens),
   * `none` (magnitude / rtn without statistics).
   */
  statistics: 'routed' | 'all' | 'all_low_tokens' | 'none';
  linears: Partial<Record<ExpertLinearName, LinearReport>>;
}

export interface LayerReport {
  layer: number;
  pruned: boolean;
  /** This layer's unstructured sparsity target (OWL: its own; uniform: omitted). */
  target?: number;
  /** The attention Linears and, in a dense layer, the MLP's; an MoE layer's experts are in `experts`. */
  linears: Partial<Record<LinearName, LinearReport>>;
  /** An MoE layer's experts, in order (pruned layers whose scope includes the MLP). */
  experts?: ExpertReport[];
  /** capture: forward + XᵀX graph; hessian: accumulating and scaling H in JS; factor/sweep: SparseGPT's U and OBS sweep. */
  seconds: {
    capture: number;
    hessian: number;
    prune: number;
    factor: number;
    sweep: number;
    recompute: number;
    write: number;
    total: number;
  };
}

/** Every Linear report of a layer: its attention / dense Linears and, in an MoE layer, every expert's. */
export function layerLinearReports(r: LayerReport): LinearReport[] {
  const out = Object.values(r.linears).filter((x): x is LinearReport => !!x);
  for (const e of r.experts ?? []) for (const x of Object.values(e.linears)) if (x) out.push(x);
  return out;
}

export interface PruneSummary {
  rac_version: string;
  created: string;
  source_model: string;
  /** The Hugging Face id, revision and commit of the source model, when it came from the hub cache. */
  source_hub?: HubSource;
  architecture: string;
  method: PruneMethod;
  sparsity?: number;
  pattern?: string;
  options: Record<string, unknown>;
  calibration: Record<string, unknown> & { tokens: number; sequences: number };
  layers: LayerReport[];
  lm_head?: LinearReport;
  quantization?: QuantizationRecord;
  /** OWL: the statistics' source, M, λ and per layer the outlier ratio, the target and the realized sparsity. */
  sparsity_profile?: OwlRecord;
  /** MoE: experts removed before (or instead of) pruning the rest. */
  expert_removal?: ExpertRemovalRecord;
  totals: { pruned_linears: number; zeros: number; weights: number; sparsity: number; seconds: number };
}

/** rac.json `sparsity_profile` (OWL, compress/owl.ts). */
export interface OwlRecord {
  profile: 'owl';
  m: number;
  lambda: number;
  statistics: string;
  seconds: number;
  /** Σ p_l·target_l / Σ p_l over the pruned weights (the requested sparsity, up to rounding). */
  mean_target: number;
  layers: { layer: number; outlier_ratio: number; target: number; sparsity: number; weights: number }[];
}

/**
 * rac.json `expert_removal`: whole experts removed from every MoE layer (REAP or routed-token
 * frequency, compress/expert-scores.ts), before any other pruning of the same run.
 */
export interface ExpertRemovalRecord {
  scoring: 'reap' | 'frequency';
  /** Experts per MoE layer before and after; the same in every layer (one num_experts in config.json). */
  experts_before: number;
  experts_after: number;
  /** Parameters of the checkpoint before and after. */
  parameters_before: number;
  parameters_after: number;
  /** Calibration of the scores (as PruneSummary.calibration). */
  calibration: Record<string, unknown> & { tokens: number; sequences: number };
  seconds: number;
  layers: {
    layer: number;
    /** Removed expert ids (of the input model), ascending. */
    removed: number[];
    /** Every expert of the input model: routed calibration tokens, its score, whether it was removed. */
    experts: { expert: number; tokens: number; score: number; removed: boolean }[];
  }[];
}

/** How a quantized model directory stores its quantized tensors (QuantizationRecord.layout). */
export type QuantLayout = 'compressed-tensors' | 'gguf-blocks';

/**
 * rac.json `quantization` as rac wrote it before GGUF blocks (q4_0 / q8_0 only): every tensor F32
 * on the grid, each value d·k with d the f16 scale of its 32-block in `scales_file` (F16 (rows,
 * cols/32) per tensor). Still loaded, and exported (export/gguf.ts re-encodes the blocks).
 */
export interface LegacyQuantizationRecord {
  format: 'q4_0' | 'q8_0';
  block: number;
  tensors: Record<string, { format: 'q4_0' | 'q8_0'; method: 'gptq' | 'rtn' | 'joint'; rows: number; cols: number }>;
  scales_file: string;
  bits_per_weight: number;
  skipped: string[];
  sparsity_after: number;
}

/** rac.json `quantization`: what `rac export-gguf --dtype SCHEME` writes byte for byte. */
export interface QuantizationRecord {
  /** The scheme (`--quant`): one ggml type, or a llama.cpp mix. */
  format: QuantScheme;
  /** llama-quantize's file type of the same per-tensor assignment. */
  file_type: string;
  /**
   * How the quantized tensors are stored (QUANT_LAYOUT in options.ts):
   * - `compressed-tensors` (schemes q4_0, q8_0): the quantized Linears are pack-quantized
   *   (`weight_packed`, F16 `weight_scale` per 32 weights: the GGUF block's d and codes, bit for
   *   bit; `quantization_config` in config.json); the embedding (and an untied lm_head), which are
   *   not Linears, F32 with their GGUF blocks in `blocks_file`.
   * - `gguf-blocks` (the k-quants and llama.cpp's mixes, whose two-level scales and mins
   *   compressed-tensors cannot express): every quantized tensor F32 (its blocks dequantized),
   *   its GGUF blocks in `blocks_file`.
   * Absent in rac.json files written before the field (read as `gguf-blocks`).
   */
  layout?: QuantLayout;
  /**
   * The quantized tensors: their values are the dequantization of their GGUF blocks, exactly —
   * blocks in `blocks_file` (U8 (rows, row bytes), Hugging Face row order), or for a packed Linear
   * its weight_packed / weight_scale.
   */
  tensors: Record<
    string,
    { type: GgmlQuantType; method: 'gptq' | 'rtn' | 'joint'; rows: number; cols: number; imatrix: boolean; fallback_from?: GgmlQuantType }
  >;
  /** How many tensors got each type. */
  types: Record<string, number>;
  blocks_file: string;
  /** Block bytes · 8 / weights over the quantized tensors. */
  bits_per_weight: number;
  /** The importance matrix the quantizers used (llama-quantize --imatrix). */
  imatrix?: { file?: string; sha256?: string; datasets: string[]; chunk_count: number; tensors_with_entry: number };
  /** Tensors the scheme keeps float (rows not a multiple of 32), kept as they were. */
  skipped: string[];
  /** Zeros / weights over the quantized Linears, measured after quantization. */
  sparsity_after: number;
}

/** The file's text: the summary as indented JSON with a final newline. */
export function formatRacJson(summary: PruneSummary): string {
  return JSON.stringify(summary, null, 2) + '\n';
}

/** What `<model>/rac.json` says about a pruned model (absent for a dense one): the facts a results.json records. */
export interface PruningInfo {
  /** PruneSummary.method, as read (not checked against PruneMethod). */
  method: string;
  sparsity?: PruneSummary['sparsity'];
  pattern?: PruneSummary['pattern'];
  source_model?: PruneSummary['source_model'];
  /** The Hugging Face id, revision and commit of the source model, when it came from the hub cache. */
  source_hub?: PruneSummary['source_hub'];
  /** PruneSummary.calibration without its large nested values (≥ 2,000 characters of JSON). */
  calibration?: Record<string, unknown>;
  /** PruneSummary.totals.sparsity. */
  realised_sparsity?: number;
  /** MoE models: per pruned MoE layer, the calibration tokens routed to each expert (with expert removal: scores, removed). */
  experts?: ExpertCoverage[];
  /** Expert removal: experts per layer before → after, and the scoring. */
  expert_removal?: { scoring: string; experts_before: number; experts_after: number };
  /** The quantization scheme (rac.json quantization.format) and whether an importance matrix steered it. */
  quant?: { scheme: string; imatrix: boolean };
}

/**
 * One MoE layer's expert coverage: calibration tokens routed to each expert, in expert order —
 * with expert removal, of the input model's experts, with their scores and which were removed.
 */
export interface ExpertCoverage {
  layer: number;
  tokens: number[];
  scores?: number[];
  removed?: boolean[];
}

/** The experts' coverage of a rac.json: expert removal's record, else the layers' per-expert pruning (absent when neither). */
function expertCoverage(j: Partial<Record<keyof PruneSummary, unknown>>): ExpertCoverage[] | undefined {
  const num = (x: unknown) => (typeof x === 'number' ? x : 0);
  const removal = j.expert_removal as Partial<ExpertRemovalRecord> | undefined;
  const out: ExpertCoverage[] = [];
  if (removal && Array.isArray(removal.layers)) {
    for (const l of removal.layers) {
      if (!l || typeof l.layer !== 'number' || !Array.isArray(l.experts)) continue;
      out.push({
        layer: l.layer,
        tokens: l.experts.map((e) => num(e?.tokens)),
        scores: l.experts.map((e) => num(e?.score)),
        removed: l.experts.map((e) => e?.removed === true),
      });
    }
  } else if (Array.isArray(j.layers)) {
    for (const l of j.layers as Partial<LayerReport>[]) {
      if (!l || typeof l.layer !== 'number' || !Array.isArray(l.experts)) continue;
      out.push({ layer: l.layer, tokens: l.experts.map((e) => num(e?.tokens)) });
    }
  }
  return out.length > 0 ? out : undefined;
}

/** Pruning facts from `<dir>/rac.json`, or null when the directory has none (a dense model). */
export function readPruningInfo(dir: string): PruningInfo | null {
  // Through the model-directory reader: a FIFO or a link out of the directory is refused.
  const j = readModelJson(dir, RAC_JSON) as Partial<Record<keyof PruneSummary, unknown>> | undefined;
  if (j === undefined || j === null || typeof j !== 'object') return null;
  if (typeof j.method !== 'string') return null;
  const calib = j.calibration && typeof j.calibration === 'object' ? (j.calibration as Record<string, unknown>) : undefined;
  const totals = j.totals as { sparsity?: unknown } | undefined;
  const coverage = expertCoverage(j);
  const er = j.expert_removal as Partial<ExpertRemovalRecord> | undefined;
  const removal =
    er && typeof er.scoring === 'string' && typeof er.experts_before === 'number' && typeof er.experts_after === 'number'
      ? { scoring: er.scoring, experts_before: er.experts_before, experts_after: er.experts_after }
      : undefined;
  const q = j.quantization as { format?: unknown; imatrix?: unknown } | undefined;
  return {
    method: j.method,
    ...(typeof j.sparsity === 'number' ? { sparsity: j.sparsity } : {}),
    ...(typeof j.pattern === 'string' ? { pattern: j.pattern } : {}),
    ...(typeof j.source_model === 'string' ? { source_model: j.source_model } : {}),
    ...(j.source_hub && typeof j.source_hub === 'object' ? { source_hub: j.source_hub as HubSource } : {}),
    ...(calib
      ? {
          calibration: Object.fromEntries(
            Object.entries(calib).filter(([, v]) => typeof v !== 'object' || v === null || JSON.stringify(v).length < 2000),
          ),
        }
      : {}),
    ...(typeof totals?.sparsity === 'number' ? { realised_sparsity: totals.sparsity } : {}),
    ...(coverage ? { experts: coverage } : {}),
    ...(removal ? { expert_removal: removal } : {}),
    ...(typeof q?.format === 'string' ? { quant: { scheme: q.format, imatrix: !!q.imatrix } } : {}),
  };
}
