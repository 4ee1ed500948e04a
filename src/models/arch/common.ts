import { describeValue } from '../../io/model-file.ts';
import { ConfigError, type ConfigReader, type ModelConfig } from '../config.ts';

/** `hidden_act` values the engine computes (graphs.ts and reference.ts use SiLU). */
const MAX_SIZE = 2 ** 31 - 1;

export const SUPPORTED_ACTIVATIONS: readonly string[] = ['silu', 'swish'];

/** Fields every Llama-style family reads the same way; families override the flags. */
export function parseLlamaStyle(
  r: ConfigReader,
  flags: {
    /** Fixed attention biases (Qwen2: q/k/v yes, o no), or 'config' to read `attention_bias` for q/k/v/o. */
    attnBias: { qkv: boolean; o: boolean } | 'config';
    qkNorm: boolean;
    ropeThetaDefault: number;
    tieDefault: boolean;
  },
): ModelConfig {
  const pos = (key: string, fallback?: number): number => {
    const v = r.int(key, fallback);
    if (v < 1) throw new ConfigError(r.file, `"${key}" must be a positive integer, got ${v}`);
    // Positions are int32 and GGUF stores these as u32: anything larger is not a real model.
    if (v > MAX_SIZE) throw new ConfigError(r.file, `"${key}" ${v} is implausibly large (limit ${MAX_SIZE})`);
    return v;
  };
  const posNum = (key: string, fallback: number): number => {
    const v = r.num(key, fallback);
    if (!(v > 0)) throw new ConfigError(r.file, `"${key}" must be a positive number, got ${v}`);
    return v;
  };
  // Every supported family computes its MLP as silu(gate)·up; HF's "swish" is the same function.
  const act = r.str('hidden_act') ?? 'silu';
  if (!SUPPORTED_ACTIVATIONS.includes(act)) {
    throw new ConfigError(
      r.file,
      `"hidden_act" ${describeValue(act)} is not supported (rac computes ${SUPPORTED_ACTIVATIONS.join(' / ')})`,
    );
  }
  const hiddenSize = r.int('hidden_size');
  const numHeads = r.int('num_attention_heads');
  const numKvHeads = r.int('num_key_value_heads', numHeads);
  if (numHeads === 0 || numKvHeads === 0 || hiddenSize === 0) {
    throw new ConfigError(r.file, 'hidden_size, num_attention_heads and num_key_value_heads must be positive');
  }
  const headDim = r.has('head_dim') ? r.int('head_dim') : hiddenSize / numHeads;
  if (!Number.isInteger(headDim)) {
    throw new ConfigError(r.file, `hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`);
  }
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(r.file, `num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`);
  }
  if (headDim % 2 !== 0) throw new ConfigError(r.file, `head_dim ${headDim} must be even for rotary embeddings`);
  const useSliding = r.bool('use_sliding_window', r.has('sliding_window') && !r.has('use_sliding_window'));
  const sw = useSliding && r.has('sliding_window') ? pos('sliding_window') : null;
  const vocabSize = pos('vocab_size');
  const bosTokenId = r.has('bos_token_id') ? r.int('bos_token_id') : null;
  const eosTokenIds = r.intList('eos_token_id');
  for (const [key, ids] of [
    ['bos_token_id', bosTokenId === null ? [] : [bosTokenId]],
    ['eos_token_id', eosTokenIds],
  ] as const) {
    for (const id of ids) {
      if (id < 0 || id >= vocabSize)
        throw new ConfigError(r.file, `"${key}" ${id} is outside the vocabulary [0, ${vocabSize}) (vocab_size)`);
    }
  }
  const attnBias = flags.attnBias === 'config' ? r.bool('attention_bias', false) : null;
  return {
    modelType: r.str('model_type') ?? '',
    hiddenSize,
    intermediateSize: pos('intermediate_size'),
    numLayers: pos('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    vocabSize,
    rmsNormEps: posNum('rms_norm_eps', 1e-6),
    ropeTheta: posNum('rope_theta', flags.ropeThetaDefault),
    ropeScaling: r.ropeScaling(),
    maxPositionEmbeddings: pos('max_position_embeddings', 32768),
    tieWordEmbeddings: r.bool('tie_word_embeddings', flags.tieDefault),
    qkvBias: attnBias ?? (flags.attnBias as { qkv: boolean }).qkv,
    oBias: attnBias ?? (flags.attnBias as { o: boolean }).o,
    mlpBias: r.bool('mlp_bias', false),
    qkNorm: flags.qkNorm,
    slidingWindow: sw,
    moe: null,
    torchDtype: r.str('torch_dtype') ?? r.str('dtype'),
    bosTokenId,
    eosTokenIds,
    raw: r.raw,
  };
}

export const HF_NAMES = {
  layerPrefix: (i: number) => `model.layers.${i}.`,
  embedName: 'model.embed_tokens.weight',
  finalNormName: 'model.norm.weight',
  lmHeadName: 'lm_head.weight',
} as const;
