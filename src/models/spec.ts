/**
 * ArchSpec: everything the generic engine and pruner need to know about one model family.
 * Each family (src/models/arch/*.ts) declares its defaults and quirks here; generic code
 * reads flags (`qkvBias`, `qkNorm`, …) and never tests a model name.
 */
import type { ConfigReader, ModelConfig } from './config.ts';

/** The Linear layers of a decoder layer, by their HF attribute names. */
export type LinearName = 'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj';

/**
 * Linears that read the same input tensor form one group: one Hessian XᵀX serves them all.
 * attn_in: input_layernorm output → q/k/v; attn_out: attention context → o;
 * mlp_in: post_attention_layernorm output → gate/up; mlp_out: act(gate)·up → down.
 */
export type InputGroup = 'attn_in' | 'attn_out' | 'mlp_in' | 'mlp_out';

export interface LinearSpec {
  name: LinearName;
  /** Tensor name relative to the layer prefix, e.g. `self_attn.q_proj`. */
  module: string;
  group: InputGroup;
  /** Weight shape [rows, cols] = [out_features, in_features]. */
  rows: number;
  cols: number;
  bias: boolean;
}

/** Non-Linear per-layer tensors: norms. `qNorm`/`kNorm` only when config.qkNorm. */
export type NormName = 'input_layernorm' | 'post_attention_layernorm' | 'q_norm' | 'k_norm';

export interface NormSpec {
  name: NormName;
  module: string; // relative to the layer prefix
  size: number;
}

/** One decoder layer's weights, f32, in HF layout (Linear weight is [out, in], row-major). */
export interface LayerWeights {
  linears: Record<LinearName, Float32Array>; // (rows, cols)
  biases: Partial<Record<LinearName, Float32Array>>; // (rows)
  norms: Partial<Record<NormName, Float32Array>>; // (size)
}

export interface ArchSpec {
  /** HF `model_type` values this spec serves. */
  modelTypes: readonly string[];
  /** The HF `architectures` entry written to config.json for this family. */
  hfArchitecture: string;
  /** config.json → ModelConfig with this family's defaults. */
  parseConfig(cfg: ConfigReader): ModelConfig;
  /** Prefix of layer i's tensors, e.g. `model.layers.3.`. */
  layerPrefix(i: number): string;
  embedName: string; // (V, D)
  finalNormName: string; // (D)
  lmHeadName: string; // (V, D); absent when tied
  linears(cfg: ModelConfig): LinearSpec[];
  norms(cfg: ModelConfig): NormSpec[];
}

/** Standard Llama-style decoder-layer layout shared by every supported family. */
export function llamaStyleLinears(cfg: ModelConfig): LinearSpec[] {
  const D = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const I = cfg.intermediateSize;
  return [
    { name: 'q_proj', module: 'self_attn.q_proj', group: 'attn_in', rows: q, cols: D, bias: cfg.qkvBias },
    { name: 'k_proj', module: 'self_attn.k_proj', group: 'attn_in', rows: kv, cols: D, bias: cfg.qkvBias },
    { name: 'v_proj', module: 'self_attn.v_proj', group: 'attn_in', rows: kv, cols: D, bias: cfg.qkvBias },
    { name: 'o_proj', module: 'self_attn.o_proj', group: 'attn_out', rows: D, cols: q, bias: cfg.oBias },
    { name: 'gate_proj', module: 'mlp.gate_proj', group: 'mlp_in', rows: I, cols: D, bias: cfg.mlpBias },
    { name: 'up_proj', module: 'mlp.up_proj', group: 'mlp_in', rows: I, cols: D, bias: cfg.mlpBias },
    { name: 'down_proj', module: 'mlp.down_proj', group: 'mlp_out', rows: D, cols: I, bias: cfg.mlpBias },
  ];
}

export function llamaStyleNorms(cfg: ModelConfig): NormSpec[] {
  const norms: NormSpec[] = [
    { name: 'input_layernorm', module: 'input_layernorm', size: cfg.hiddenSize },
    { name: 'post_attention_layernorm', module: 'post_attention_layernorm', size: cfg.hiddenSize },
  ];
  if (cfg.qkNorm) {
    norms.push({ name: 'q_norm', module: 'self_attn.q_norm', size: cfg.headDim });
    norms.push({ name: 'k_norm', module: 'self_attn.k_norm', size: cfg.headDim });
  }
  return norms;
}

/** The input width of each group, for Hessian sizes. */
export function groupWidth(cfg: ModelConfig, g: InputGroup): number {
  switch (g) {
    case 'attn_in':
    case 'mlp_in':
      return cfg.hiddenSize;
    case 'attn_out':
      return cfg.numHeads * cfg.headDim;
    case 'mlp_out':
      return cfg.intermediateSize;
  }
}

export const INPUT_GROUPS: readonly InputGroup[] = ['attn_in', 'attn_out', 'mlp_in', 'mlp_out'];
