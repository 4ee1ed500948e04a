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

/** The Linears of one expert of an MoE layer (each reads the expert's rows of the `mlp_in` / `mlp_out` group). */
export type ExpertLinearName = 'gate_proj' | 'up_proj' | 'down_proj';

/**
 * The Mixture-of-Experts block of a sparse layer: a router (E, D) without bias, E experts each a
 * SwiGLU MLP of width I. Routing: softmax over all E router logits (f32), the k largest kept,
 * divided by their sum when `normTopK`; the output is Σ w·down(silu(gate x)·up x).
 */
export interface ExpertSpec {
  count: number; // E
  topK: number; // k
  normTopK: boolean;
  /** The router weight's module relative to the layer prefix (tensor `<module>.weight`, (E, D)). */
  routerModule: string;
  /** Expert j's module prefix relative to the layer prefix, e.g. `mlp.experts.3`. */
  expertModule(j: number): string;
  /** One expert's Linears; `module` is relative to expertModule(j); no biases. */
  linears: (LinearSpec & { name: ExpertLinearName })[];
}

/** One MoE layer's expert weights, f32, HF layout. */
export interface MoeWeights {
  router: Float32Array; // (E, D)
  experts: Record<ExpertLinearName, Float32Array>[]; // per expert: gate/up (I, D), down (D, I)
}

/**
 * One decoder layer's weights, f32, in HF layout (Linear weight is [out, in], row-major). An MoE
 * layer holds only the attention Linears in `linears`, its MLP in `moe`.
 */
export interface LayerWeights {
  linears: Partial<Record<LinearName, Float32Array>>; // (rows, cols)
  biases: Partial<Record<LinearName, Float32Array>>; // (rows)
  norms: Partial<Record<NormName, Float32Array>>; // (size)
  moe?: MoeWeights;
}

/** A layer's Linear weight by name; a missing one is a loading bug, named. */
export function linearWeight(w: LayerWeights, name: LinearName): Float32Array {
  const t = w.linears[name];
  if (!t) throw new Error(`layer weights lack Linear "${name}"`);
  return t;
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
  /** A dense layer's Linears (an MoE layer has the attention ones of these, see layerLinears). */
  linears(cfg: ModelConfig): LinearSpec[];
  norms(cfg: ModelConfig): NormSpec[];
  /** The MoE block of a sparse layer (families with experts only; see isMoeLayer). */
  experts?(cfg: ModelConfig): ExpertSpec;
}

/** Whether layer i has an MoE block (transformers' Qwen3-MoE rule; false for dense models). */
export function isMoeLayer(cfg: ModelConfig, i: number): boolean {
  const m = cfg.moe;
  return !!m && m.numExperts > 0 && !m.mlpOnlyLayers.includes(i) && (i + 1) % m.decoderSparseStep === 0;
}

/** Layer i's Linears: all of spec.linears for a dense layer, the attention ones for an MoE layer. */
export function layerLinears(spec: ArchSpec, cfg: ModelConfig, i: number): LinearSpec[] {
  const all = spec.linears(cfg);
  return isMoeLayer(cfg, i) ? all.filter((l) => l.group === 'attn_in' || l.group === 'attn_out') : all;
}

/** Layer i's MoE block, or null for a dense layer. */
export function layerExperts(spec: ArchSpec, cfg: ModelConfig, i: number): ExpertSpec | null {
  if (!isMoeLayer(cfg, i)) return null;
  if (!spec.experts) throw new Error(`${cfg.modelType}: config.json declares experts but the family has no MoE block`);
  return spec.experts(cfg);
}

/** Whether any layer has an MoE block. */
export function hasMoeLayers(cfg: ModelConfig): boolean {
  for (let i = 0; i < cfg.numLayers; i++) if (isMoeLayer(cfg, i)) return true;
  return false;
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

/** The input width of each group in an MoE expert (mlp_out is the expert's width). */
export function expertGroupWidth(cfg: ModelConfig, g: 'mlp_in' | 'mlp_out'): number {
  return g === 'mlp_in' ? cfg.hiddenSize : cfg.moe!.expertIntermediateSize;
}

export const INPUT_GROUPS: readonly InputGroup[] = ['attn_in', 'attn_out', 'mlp_in', 'mlp_out'];
