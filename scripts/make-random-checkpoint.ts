#!/usr/bin/env -S npx tsx
/**
 * Write a deterministic random-weight HF checkpoint of any supported family.
 *   tsx scripts/make-random-checkpoint.ts --family qwen2 --out /tmp/qwen2-tiny [--layers 2] [--hidden 64]
 *     [--intermediate 192] [--heads 4] [--kv-heads 2] [--head-dim N] [--vocab 384] [--vocab-pad 0]
 *     [--dtype F32|F16|BF16] [--tied] [--llama3-rope] [--sliding-window N] [--shards N] [--seed 0]
 *   qwen3_moe: [--experts 8] [--top-k 2] [--expert-intermediate N] [--no-norm-topk] [--mlp-only-layers 0,3]
 *     [--decoder-sparse-step 1]
 */
import { parseArgs } from 'node:util';
import { FAMILIES, writeRandomCheckpoint, type Family } from '../src/models/random.ts';

const { values } = parseArgs({
  options: {
    family: { type: 'string', default: 'qwen2' },
    out: { type: 'string' },
    layers: { type: 'string' },
    hidden: { type: 'string' },
    intermediate: { type: 'string' },
    heads: { type: 'string' },
    'kv-heads': { type: 'string' },
    'head-dim': { type: 'string' },
    vocab: { type: 'string' },
    'vocab-pad': { type: 'string' },
    dtype: { type: 'string', default: 'F32' },
    tied: { type: 'boolean', default: false },
    'llama3-rope': { type: 'boolean', default: false },
    'sliding-window': { type: 'string' },
    shards: { type: 'string' },
    seed: { type: 'string', default: '0' },
    experts: { type: 'string' },
    'top-k': { type: 'string' },
    'expert-intermediate': { type: 'string' },
    'no-norm-topk': { type: 'boolean', default: false },
    'mlp-only-layers': { type: 'string' },
    'decoder-sparse-step': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help || !values.out) {
  console.error('usage: tsx scripts/make-random-checkpoint.ts --family qwen2|llama|qwen3|mistral|qwen3_moe --out DIR [options]');
  process.exit(values.help ? 0 : 2);
}
if (!FAMILIES.includes(values.family as Family)) {
  console.error(`unknown family "${values.family}" (supported: ${FAMILIES.join(', ')})`);
  process.exit(2);
}
if (!['F32', 'F16', 'BF16'].includes(values.dtype!)) {
  console.error(`unknown dtype "${values.dtype}" (supported: F32, F16, BF16)`);
  process.exit(2);
}
const int = (v: string | undefined) => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`expected a non-negative integer, got "${v}"`);
    process.exit(2);
  }
  return n;
};
const moeFlags = ['experts', 'top-k', 'expert-intermediate', 'no-norm-topk', 'mlp-only-layers', 'decoder-sparse-step'] as const;
const moe =
  values.family === 'qwen3_moe' || moeFlags.some((f) => values[f] !== undefined && values[f] !== false)
    ? {
        experts: int(values.experts),
        topK: int(values['top-k']),
        expertIntermediate: int(values['expert-intermediate']),
        normTopK: !values['no-norm-topk'],
        mlpOnlyLayers: values['mlp-only-layers']?.split(',').map((x) => int(x.trim())!),
        decoderSparseStep: int(values['decoder-sparse-step']),
      }
    : undefined;
const cfg = writeRandomCheckpoint(values.out, {
  moe,
  family: values.family as Family,
  seed: int(values.seed),
  layers: int(values.layers),
  hidden: int(values.hidden),
  intermediate: int(values.intermediate),
  heads: int(values.heads),
  kvHeads: int(values['kv-heads']),
  headDim: int(values['head-dim']),
  tokenizerVocab: int(values.vocab),
  vocabPad: int(values['vocab-pad']),
  dtype: values.dtype as 'F32' | 'F16' | 'BF16',
  tied: values.tied,
  llama3Rope: values['llama3-rope'],
  slidingWindow: int(values['sliding-window']),
  shards: int(values.shards),
});
console.error(`wrote ${values.family} checkpoint to ${values.out} (vocab ${cfg['vocab_size']}, ${cfg['num_hidden_layers']} layers)`);
