/**
 * `rac.json`: the metadata a pruned (or quantized) model directory carries beside its weights —
 * what was done (method, target, options, calibration), per layer and per Linear what it cost and
 * changed, and the quantization record `rac export-gguf` reproduces. The pruner writes it
 * (`formatRacJson`), `rac eval` and `rac report` read it (`readPruningInfo`) through these types.
 * Imports only types from compress / io / models.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { QuantFormat } from '../compress/quant-grids.ts';
import type { HubSource } from '../io/hub.ts';
import type { ExpertLinearName, LinearName } from '../models/spec.ts';

/** The file name inside a pruned model directory. */
export const RAC_JSON = 'rac.json';

export type PruneMethod = 'sparsegpt' | 'wanda' | 'magnitude' | 'gptq' | 'rtn';

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
  /** The GGUF grid the values are on, and how they got there. */
  quant?: QuantFormat;
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

/** rac.json `quantization`: what `rac export-gguf --dtype q4_0|q8_0` reproduces bit for bit. */
export interface QuantizationRecord {
  format: QuantFormat;
  block: number;
  /**
   * `compressed-tensors`: the quantized Linears are pack-quantized (weight_packed, F16 weight_scale
   * per 32 weights: d, bit for bit), `scales_file` holds only the embedding's / untied lm_head's.
   * Absent (rac before compressed-tensors output): every tensor F32 on the grid, all scales in `scales_file`.
   */
  layout?: 'compressed-tensors';
  /** Every value of these tensors is d·k exactly, d the f16 scale of its 32-block (weight_scale or `scales_file`). */
  tensors: Record<string, { format: QuantFormat; method: 'gptq' | 'rtn' | 'joint'; rows: number; cols: number }>;
  scales_file: string;
  bits_per_weight: number;
  /** Tensors left unquantized (rows not a multiple of 32), kept as they were. */
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
  /** MoE models: per pruned MoE layer, the calibration tokens routed to each expert. */
  experts?: ExpertCoverage[];
}

/** One MoE layer's expert coverage: calibration tokens routed to each expert, in expert order. */
export interface ExpertCoverage {
  layer: number;
  tokens: number[];
}

/** The experts' coverage of a rac.json's layers (absent when no layer reports experts). */
function expertCoverage(layers: unknown): ExpertCoverage[] | undefined {
  if (!Array.isArray(layers)) return undefined;
  const out: ExpertCoverage[] = [];
  for (const l of layers as Partial<LayerReport>[]) {
    if (!l || typeof l.layer !== 'number' || !Array.isArray(l.experts)) continue;
    out.push({ layer: l.layer, tokens: l.experts.map((e) => (typeof e?.tokens === 'number' ? e.tokens : 0)) });
  }
  return out.length > 0 ? out : undefined;
}

/** Pruning facts from `<dir>/rac.json`, or null when the directory has none (a dense model). */
export function readPruningInfo(dir: string): PruningInfo | null {
  const p = join(dir, RAC_JSON);
  if (!existsSync(p)) return null;
  const j = JSON.parse(readFileSync(p, 'utf8')) as Partial<Record<keyof PruneSummary, unknown>>;
  if (typeof j.method !== 'string') return null;
  const calib = j.calibration && typeof j.calibration === 'object' ? (j.calibration as Record<string, unknown>) : undefined;
  const totals = j.totals as { sparsity?: unknown } | undefined;
  const coverage = expertCoverage(j.layers);
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
  };
}
