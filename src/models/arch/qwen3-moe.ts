/**
 * Qwen3-MoE (Qwen3-30B-A3B, Qwen3-235B-A22B): Qwen3's attention (per-head q/k RMSNorm before RoPE,
 * explicit head_dim, no bias by default) with Mixture-of-Experts MLPs: in each sparse layer a
 * router `mlp.gate` (E, D) and E SwiGLU experts `mlp.experts.J.{gate,up,down}_proj` of width
 * `moe_intermediate_size`; layers in `mlp_only_layers` (or not on `decoder_sparse_step`) keep a
 * dense `mlp.{gate,up,down}_proj` of `intermediate_size`. Defaults as transformers'
 * Qwen3MoeConfig (norm_topk_prob false, decoder_sparse_step 1).
 */
import { describeValue } from '../../io/model-file.ts';
import { ConfigError, type ConfigReader, type MoeConfig } from '../config.ts';
import type { ArchSpec, ExpertSpec } from '../spec.ts';
import { llamaStyleLinears, llamaStyleNorms } from '../spec.ts';
import { HF_NAMES, parseLlamaStyle } from './common.ts';

function parseMoe(r: ConfigReader, numLayers: number): MoeConfig {
  const numExperts = r.int('num_experts', 128);
  const topK = r.int('num_experts_per_tok', 8);
  const expertIntermediateSize = r.int('moe_intermediate_size', 768);
  const decoderSparseStep = r.int('decoder_sparse_step', 1);
  if (numExperts > 0) {
    if (topK < 1) throw new ConfigError(r.file, `"num_experts_per_tok" must be at least 1, got ${topK}`);
    if (topK > numExperts)
      throw new ConfigError(
        r.file,
        `"num_experts_per_tok" ${topK} is more than "num_experts" ${numExperts}: each token picks k of the E experts`,
      );
    if (expertIntermediateSize < 1)
      throw new ConfigError(r.file, `"moe_intermediate_size" must be a positive integer, got ${expertIntermediateSize}`);
    if (decoderSparseStep < 1) throw new ConfigError(r.file, `"decoder_sparse_step" must be a positive integer, got ${decoderSparseStep}`);
  }
  const raw = r.raw['mlp_only_layers'];
  const mlpOnlyLayers: number[] = [];
  if (raw !== undefined && raw !== null) {
    if (!Array.isArray(raw)) throw new ConfigError(r.file, `"mlp_only_layers" must be a list of layer indices, got ${describeValue(raw)}`);
    for (const x of raw) {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x >= numLayers)
        throw new ConfigError(r.file, `"mlp_only_layers" entry ${describeValue(x)} is not a layer index in [0, ${numLayers})`);
      mlpOnlyLayers.push(x);
    }
  }
  return { numExperts, topK, expertIntermediateSize, normTopKProb: r.bool('norm_topk_prob', false), decoderSparseStep, mlpOnlyLayers };
}

export const qwen3Moe: ArchSpec = {
  modelTypes: ['qwen3_moe'],
  hfArchitecture: 'Qwen3MoeForCausalLM',
  parseConfig: (r) => {
    const c = parseLlamaStyle(r, { attnBias: 'config', qkNorm: true, ropeThetaDefault: 10000, tieDefault: false });
    return { ...c, moe: parseMoe(r, c.numLayers) };
  },
  ...HF_NAMES,
  linears: llamaStyleLinears,
  norms: llamaStyleNorms,
  experts: (cfg): ExpertSpec => {
    const m = cfg.moe!;
    const D = cfg.hiddenSize;
    const I = m.expertIntermediateSize;
    return {
      count: m.numExperts,
      topK: m.topK,
      normTopK: m.normTopKProb,
      routerModule: 'mlp.gate',
      expertModule: (j) => `mlp.experts.${j}`,
      linears: [
        { name: 'gate_proj', module: 'gate_proj', group: 'mlp_in', rows: I, cols: D, bias: false },
        { name: 'up_proj', module: 'up_proj', group: 'mlp_in', rows: I, cols: D, bias: false },
        { name: 'down_proj', module: 'down_proj', group: 'mlp_out', rows: D, cols: I, bias: false },
      ],
    };
  },
};
