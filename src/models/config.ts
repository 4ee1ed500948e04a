/**
 * A Hugging Face `config.json`, parsed and validated once into the fields the engine uses.
 * Family-specific defaults and quirks live in each ArchSpec (src/models/arch/*), not here.
 */

import { describeValue } from '../io/model-file.ts';
import { RacError } from '../errors.ts';

export type RopeScaling =
  | { type: 'default' }
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export interface ModelConfig {
  modelType: string;
  hiddenSize: number; // D
  intermediateSize: number; // I
  numLayers: number; // L
  numHeads: number; // H
  numKvHeads: number; // Hkv (GQA when < H)
  headDim: number; // hd
  vocabSize: number; // V
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2). */
  qkvBias: boolean;
  /** o_proj and MLP projections carry a bias (Llama `attention_bias`/`mlp_bias`); rare. */
  oBias: boolean;
  mlpBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3). */
  qkNorm: boolean;
  /** Sliding-window attention span in tokens, or null for full attention. */
  slidingWindow: number | null;
  /** Mixture-of-Experts MLPs (Qwen3-MoE), or null for a dense model. */
  moe: MoeConfig | null;
  /** The dtype the checkpoint declares (`torch_dtype`/`dtype`), informational. */
  torchDtype: string | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The raw JSON, kept so writers can copy it unchanged. */
  raw: Record<string, unknown>;
}

/**
 * The MoE fields of a Qwen3-MoE config.json. A layer is sparse iff it is not in `mlpOnlyLayers`
 * and (layer + 1) is a multiple of `decoderSparseStep` (transformers' rule); the other layers
 * have a dense MLP of `intermediateSize`.
 */
export interface MoeConfig {
  numExperts: number; // E
  topK: number; // k (num_experts_per_tok)
  expertIntermediateSize: number; // moe_intermediate_size
  /** Divide the top-k router probabilities by their sum (norm_topk_prob; transformers' default false). */
  normTopKProb: boolean;
  decoderSparseStep: number;
  mlpOnlyLayers: number[];
}

export class ConfigError extends RacError {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** Typed field access with errors naming the file and the key. */
export class ConfigReader {
  constructor(
    readonly file: string,
    readonly raw: Record<string, unknown>,
  ) {}

  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }

  int(key: string, fallback?: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(this.file, `missing required integer "${key}"`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new ConfigError(this.file, `"${key}" must be a non-negative integer, got ${describeValue(v)}`);
    }
    return v;
  }

  num(key: string, fallback?: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(this.file, `missing required number "${key}"`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new ConfigError(this.file, `"${key}" must be a finite number, got ${describeValue(v)}`);
    }
    return v;
  }

  /** A finite number > 0. */
  positive(key: string, fallback?: number): number {
    const v = this.num(key, fallback);
    if (!(v > 0)) throw new ConfigError(this.file, `"${key}" must be a positive number, got ${v}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(this.file, `"${key}" must be a boolean, got ${describeValue(v)}`);
    return v;
  }

  str(key: string): string | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw new ConfigError(this.file, `"${key}" must be a string, got ${describeValue(v)}`);
    return v;
  }

  /** `eos_token_id` may be an int or a list of ints. */
  intList(key: string): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    const arr = Array.isArray(v) ? v : [v];
    for (const x of arr) {
      if (typeof x !== 'number' || !Number.isInteger(x)) {
        throw new ConfigError(this.file, `"${key}" must be an integer or a list of integers, got ${describeValue(v)}`);
      }
    }
    return arr as number[];
  }

  ropeScaling(): RopeScaling {
    const rs = this.raw['rope_scaling'];
    if (rs === undefined || rs === null) return { type: 'default' };
    if (typeof rs !== 'object' || Array.isArray(rs)) {
      throw new ConfigError(this.file, `"rope_scaling" must be an object, got ${describeValue(rs)}`);
    }
    const r = new ConfigReader(this.file, rs as Record<string, unknown>);
    const type = r.str('rope_type') ?? r.str('type') ?? 'default';
    switch (type) {
      case 'default':
        return { type: 'default' };
      case 'linear':
        return { type: 'linear', factor: r.positive('factor') };
      case 'llama3':
        return {
          type: 'llama3',
          factor: r.positive('factor'),
          lowFreqFactor: r.positive('low_freq_factor'),
          highFreqFactor: r.positive('high_freq_factor'),
          originalMaxPositionEmbeddings: r.int('original_max_position_embeddings'),
        };
      default:
        throw new ConfigError(this.file, `rope_scaling type ${describeValue(type)} is not supported (supported: default, linear, llama3)`);
    }
  }
}
