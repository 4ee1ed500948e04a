/**
 * Complete random-weight Hugging Face checkpoints for any supported family, deterministic by seed:
 * config.json, safetensors (single or sharded, F32/F16/BF16), a byte-level BPE tokenizer.json
 * with a Qwen-style chat template, and generation_config.json. Tests and benchmarks make what
 * they need with this; nothing large is committed.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DEFAULT_SPECIAL_TOKENS, QWEN_CHAT_TEMPLATE, trainByteLevelBpe, writeTokenizerFiles } from '../io/bpe.ts';
import { SafetensorsWriter, writeShardedIndex } from '../io/safetensors-writer.ts';
import { resolveArch } from './arch/index.ts';
import { layerExperts, layerLinears } from './spec.ts';
import { Rng } from './sampling.ts';

export type Family = 'qwen2' | 'llama' | 'qwen3' | 'mistral' | 'qwen3_moe';
export const FAMILIES: readonly Family[] = ['qwen2', 'llama', 'qwen3', 'mistral', 'qwen3_moe'];

/** The MoE fields of a `qwen3_moe` random checkpoint (defaults: 8 experts, top-2, width 2·hidden, renormalized). */
export interface RandomMoeOptions {
  experts?: number;
  topK?: number;
  expertIntermediate?: number;
  normTopK?: boolean;
  /** Layers with a dense MLP of `intermediate` instead. */
  mlpOnlyLayers?: number[];
  decoderSparseStep?: number;
}

export interface RandomCheckpointOptions {
  family: Family;
  seed?: number;
  layers?: number;
  hidden?: number;
  intermediate?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  /** Tokenizer vocabulary (bytes + merges + specials); config vocab_size may be padded above it. */
  tokenizerVocab?: number;
  /** Extra rows in the embedding beyond the tokenizer (real checkpoints pad to a multiple of 64/128). */
  vocabPad?: number;
  dtype?: 'F32' | 'F16' | 'BF16';
  tied?: boolean;
  /** Llama-3 style rope scaling (llama family). */
  llama3Rope?: boolean;
  slidingWindow?: number;
  /** Write this many shards with an index (0 or 1 = single model.safetensors). */
  shards?: number;
  /** Weight scale multiplier (default 1): init std = scale / sqrt(fan_in). */
  scale?: number;
  /**
   * Anisotropic activations, as in trained LLMs: RMSNorm weights spread log-uniformly over
   * [e^-a, e^a] with a few outlier channels ×8, and correlated embedding dimensions. Linear
   * inputs are then far from white noise (what pruning tests need). 0 = off (default).
   */
  anisotropy?: number;
  /** qwen3_moe only. */
  moe?: RandomMoeOptions;
}

const CORPUS = [
  'The quick brown fox jumps over the lazy dog. A reasoning model thinks before it answers.',
  'Compute 12345 + 678 = 13023. Then 9 * 7 = 63, carry 6. The answer is \\boxed{42}.',
  'def add(a, b):\n    return a + b\n\nprint(add(2, 3))\n',
  'Let x = 3 and y = x * 4 - 2. Then y = 10, so x + y = 13.',
  'Wait, let me check that again. Alternatively, we can subtract first. Hmm, but wait.',
  'Pruning removes weights; calibration on chains of thought keeps the model accurate.',
  'Réponse : 3,14 ≈ π. 数学 推理. Ünïcödé tëxt and emoji 🙂 too.',
  '<think>\nStep 1: 4 + 5 = 9.\nStep 2: 9 * 2 = 18.\n</think>\nThe answer is 18.',
];

/** The tokenizer used by random checkpoints (cached per vocabulary size). */
const tokenizerCache = new Map<number, Record<string, unknown>>();
export function randomTokenizerJson(vocab: number): Record<string, unknown> {
  let tj = tokenizerCache.get(vocab);
  if (!tj) {
    const corpus = Array.from({ length: 4 }, () => CORPUS).flat();
    tj = trainByteLevelBpe({ corpus, vocabSize: vocab, specialTokens: DEFAULT_SPECIAL_TOKENS });
    tokenizerCache.set(vocab, tj);
  }
  return tj;
}

function maxId(tj: Record<string, unknown>): number {
  const model = tj['model'] as { vocab: Record<string, number> };
  let m = Math.max(...Object.values(model.vocab));
  for (const t of (tj['added_tokens'] as { id: number }[]) ?? []) m = Math.max(m, t.id);
  return m;
}

function gaussian(rng: Rng): number {
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Write a random checkpoint into `dir` (created; replaced if present). Returns the config. */
export function writeRandomCheckpoint(dir: string, o: RandomCheckpointOptions): Record<string, unknown> {
  const seed = o.seed ?? 0;
  const tj = randomTokenizerJson(o.tokenizerVocab ?? 384);
  const tokVocab = maxId(tj) + 1;
  const vocab = tokVocab + (o.vocabPad ?? 0);
  const heads = o.heads ?? 4;
  const hidden = o.hidden ?? 64;
  const headDim = o.headDim ?? hidden / heads;
  const added = tj['added_tokens'] as { id: number; content: string }[];
  const idOf = (s: string) => added.find((t) => t.content === s)!.id;
  const eos = idOf('<|im_end|>');
  const endoftext = idOf('<|endoftext|>');

  const qwen3Like = o.family === 'qwen3' || o.family === 'qwen3_moe';
  const raw: Record<string, unknown> = {
    architectures: [
      {
        qwen2: 'Qwen2ForCausalLM',
        llama: 'LlamaForCausalLM',
        qwen3: 'Qwen3ForCausalLM',
        mistral: 'MistralForCausalLM',
        qwen3_moe: 'Qwen3MoeForCausalLM',
      }[o.family],
    ],
    model_type: o.family,
    hidden_size: hidden,
    intermediate_size: o.intermediate ?? hidden * 3,
    num_hidden_layers: o.layers ?? 2,
    num_attention_heads: heads,
    num_key_value_heads: o.kvHeads ?? Math.max(1, heads / 2),
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-6,
    rope_theta: qwen3Like ? 1000000 : 10000,
    vocab_size: vocab,
    tie_word_embeddings: o.tied ?? false,
    bos_token_id: endoftext,
    eos_token_id: eos,
    hidden_act: 'silu',
    torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[o.dtype ?? 'F32'],
  };
  if (o.headDim !== undefined || qwen3Like) raw['head_dim'] = headDim;
  if (qwen3Like) raw['attention_bias'] = false;
  if (o.family === 'qwen3_moe') {
    const m = o.moe ?? {};
    Object.assign(raw, {
      num_experts: m.experts ?? 8,
      num_experts_per_tok: m.topK ?? 2,
      moe_intermediate_size: m.expertIntermediate ?? hidden * 2,
      norm_topk_prob: m.normTopK ?? true,
      decoder_sparse_step: m.decoderSparseStep ?? 1,
      mlp_only_layers: m.mlpOnlyLayers ?? [],
      router_aux_loss_coef: 0.001,
    });
  } else if (o.moe) throw new Error(`--experts and the other MoE options need --family qwen3_moe, not ${o.family}`);
  if (o.llama3Rope) {
    raw['rope_scaling'] = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
    raw['rope_theta'] = 500000;
  }
  if (o.slidingWindow !== undefined) {
    raw['sliding_window'] = o.slidingWindow;
    if (o.family !== 'mistral') raw['use_sliding_window'] = true;
  }
  const { spec, config } = resolveArch('config.json', raw);

  const rng = new Rng(seed, 0x5eed);
  const scale = o.scale ?? 1;
  const tensors: { name: string; shape: number[]; init: 'normal' | 'norm' | 'bias'; fanIn: number }[] = [];
  tensors.push({ name: spec.embedName, shape: [vocab, hidden], init: 'normal', fanIn: 1 });
  for (let i = 0; i < config.numLayers; i++) {
    const p = spec.layerPrefix(i);
    for (const n of spec.norms(config)) tensors.push({ name: `${p}${n.module}.weight`, shape: [n.size], init: 'norm', fanIn: 1 });
    for (const l of layerLinears(spec, config, i)) {
      tensors.push({ name: `${p}${l.module}.weight`, shape: [l.rows, l.cols], init: 'normal', fanIn: l.cols });
      if (l.bias) tensors.push({ name: `${p}${l.module}.bias`, shape: [l.rows], init: 'bias', fanIn: 1 });
    }
    const ex = layerExperts(spec, config, i);
    if (!ex) continue;
    tensors.push({ name: `${p}${ex.routerModule}.weight`, shape: [ex.count, hidden], init: 'normal', fanIn: hidden });
    for (let j = 0; j < ex.count; j++) {
      for (const l of ex.linears) {
        tensors.push({ name: `${p}${ex.expertModule(j)}.${l.module}.weight`, shape: [l.rows, l.cols], init: 'normal', fanIn: l.cols });
      }
    }
  }
  tensors.push({ name: spec.finalNormName, shape: [hidden], init: 'norm', fanIn: 1 });
  if (!config.tieWordEmbeddings) tensors.push({ name: spec.lmHeadName, shape: [vocab, hidden], init: 'normal', fanIn: hidden });

  const aniso = o.anisotropy ?? 0;
  const dtype = o.dtype ?? 'F32';
  const out = resolve(dir);
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const nShards = Math.max(1, o.shards ?? 1);
  const per = Math.ceil(tensors.length / nShards);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < nShards; s++) {
    const part = tensors.slice(s * per, (s + 1) * per);
    if (part.length === 0) continue;
    const file =
      nShards === 1 ? 'model.safetensors' : `model-${String(s + 1).padStart(5, '0')}-of-${String(nShards).padStart(5, '0')}.safetensors`;
    const w = SafetensorsWriter.create(
      join(tmp, file),
      part.map((t) => ({ name: t.name, dtype, shape: t.shape })),
      { format: 'pt' },
    );
    for (const t of part) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      const std = t.init === 'normal' ? scale / Math.sqrt(t.fanIn) : 0.1;
      for (let j = 0; j < n; j++) data[j] = (t.init === 'norm' ? 1 : 0) + std * gaussian(rng);
      if (aniso > 0 && t.init === 'norm') {
        for (let j = 0; j < n; j++) data[j] = Math.exp(aniso * (2 * rng.next() - 1)) * (j % 17 === 3 ? 8 : 1);
      }
      if (aniso > 0 && t.name === spec.embedName) {
        // mix each row with a few shared directions: correlated dimensions
        const k = 4;
        const dirs = Array.from({ length: k }, () => Float32Array.from({ length: hidden }, () => gaussian(rng)));
        for (let r = 0; r < vocab; r++) {
          for (let d = 0; d < k; d++) {
            const c = gaussian(rng) * 1.5;
            for (let j = 0; j < hidden; j++) data[r * hidden + j]! += c * dirs[d]![j]!;
          }
        }
      }
      w.writeF32(t.name, data);
      weightMap[t.name] = file;
    }
    w.close();
    total += w.dataBytes;
  }
  if (nShards > 1) writeShardedIndex(tmp, weightMap, total);

  writeFileSync(join(tmp, 'config.json'), JSON.stringify(raw, null, 2) + '\n');
  writeFileSync(
    join(tmp, 'generation_config.json'),
    JSON.stringify({ bos_token_id: endoftext, eos_token_id: [eos, endoftext], do_sample: true, temperature: 0.6, top_p: 0.95 }, null, 2) +
      '\n',
  );
  writeTokenizerFiles(tmp, tj, {
    chatTemplate: QWEN_CHAT_TEMPLATE,
    eosToken: '<|im_end|>',
    padToken: '<|endoftext|>',
    bosToken: null,
    modelMaxLength: 4096,
  });
  mkdirSync(dirname(out), { recursive: true });
  rmSync(out, { recursive: true, force: true });
  renameSync(tmp, out);
  return raw;
}
