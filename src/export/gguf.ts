// Room src/export: checkpoints into other formats — GGUF for llama.cpp and Ollama (this file). May
// import compress, io, runtime, tasks, models and prune (a quantized model's rac.json record);
// nothing above (README: Layout).
/**
 * Hugging Face checkpoint → GGUF, as llama.cpp's `convert_hf_to_gguf.py` writes it, so llama.cpp
 * and Ollama run rac's (pruned) models.
 *
 * Replicated from the converter:
 * - architectures: qwen2 → `qwen2`, qwen3 → `qwen3`, llama and mistral → `llama`;
 * - tensor names (`token_embd`, `blk.N.attn_q`, …, `output_norm`, `output` — omitted when tied);
 *   dims reversed (ggml ne[0] = innermost), data unchanged row-major;
 * - the `llama` arch rotates pairs (x[2i], x[2i+1]) where HF rotates halves (x[i], x[i+hd/2]), so
 *   the converter permutes the rows of q_proj/k_proj (weights and biases) within each head:
 *   new row h·hd + 2i + j ← old row h·hd + j·hd/2 + i. qwen2/qwen3 (NEOX rope) are not permuted;
 * - Llama-3 rope scaling becomes the `rope_freqs.weight` tensor of per-frequency divisors;
 *   linear scaling becomes `rope.scaling.type`/`rope.scaling.factor`;
 * - with f16/bf16 output, 2-D tensors are narrowed (round to nearest even) and 1-D tensors (norms,
 *   biases, rope factors) stay F32;
 * - tokenizer: `gpt2` model (byte-level BPE), tokens in id order with gaps filled by `[PAD{id}]`
 *   (type UNUSED), token types NORMAL / CONTROL (special added tokens and ones that look special,
 *   `<|…|>`) / USER_DEFINED (other added tokens), merges as "a b", the pre-tokenizer name
 *   recognised from the tokenizer.json split regexes, special token ids from
 *   tokenizer_config.json then config.json, add_bos/add_eos, chat template.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { encodeBlocks, QK, rtnQuantize, type QuantFormat } from '../compress/quant-grids.ts';
import { f16ToF32 } from '../io/dtype.ts';
import { ModelFileError, parseJsonText, readModelText } from '../io/model-file.ts';
import { GgufWriter, kv, type GgmlTypeName, type GgufKv, type GgufTensorEntry } from '../io/gguf.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { QWEN2_PRETOKENIZE_REGEX } from '../io/bpe.ts';
import type { ModelConfig } from '../models/config.ts';
import { Model } from '../models/model.ts';
import { hasMoeLayers, layerLinears, type ExpertLinearName, type LinearName, type NormName } from '../models/spec.ts';
import { RAC_JSON, type QuantizationRecord } from '../prune/rac-json.ts';
import { packedGgufBlocks } from './gguf-packed.ts';

export type GgufDtype = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'];
/** The grid of token_embd / output in a quantized export (llama-quantize keeps them at ≥ 6 bits). */
export const OUTPUT_QUANT: QuantFormat = 'q8_0';

export class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportError';
  }
}

export interface ExportGgufOptions {
  model: string;
  out: string;
  dtype?: GgufDtype;
  /** `general.name`; default: the model directory's name. */
  name?: string;
  /** `tokenizer.ggml.pre`, when rac does not recognise the tokenizer's pre-tokenizer. */
  tokenizerPre?: string;
  warn?: (message: string) => void;
  onProgress?: (done: number, total: number, tensor: string) => void;
}

export interface ExportGgufResult {
  out: string;
  arch: string;
  dtype: GgufDtype;
  tensors: number;
  bytes: number;
  vocab: number;
  tokenizerPre: string;
  tiedOutput: boolean;
}

/** llama.cpp architecture for each HF model_type. */
const GGUF_ARCH: Record<string, 'qwen2' | 'qwen3' | 'llama' | 'qwen3moe'> = {
  qwen2: 'qwen2',
  qwen3: 'qwen3',
  llama: 'llama',
  mistral: 'llama',
  qwen3_moe: 'qwen3moe',
};

/** An MoE layer's stacked expert tensors: ggml ne {cols, rows, experts} = row-major (E, rows, cols), experts in order. */
const EXPERTS_GGUF: Record<ExpertLinearName, string> = { gate_proj: 'ffn_gate_exps', up_proj: 'ffn_up_exps', down_proj: 'ffn_down_exps' };

const LINEAR_GGUF: Record<LinearName, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

const NORM_GGUF: Record<NormName, string> = {
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
  q_norm: 'attn_q_norm',
  k_norm: 'attn_k_norm',
};

/** gguf LlamaFileType. */
const FILE_TYPE: Record<GgufDtype, number> = { f32: 0, f16: 1, bf16: 32, q4_0: 2, q8_0: 7 };
const WEIGHT_TYPE: Record<GgufDtype, GgmlTypeName> = { f32: 'F32', f16: 'F16', bf16: 'BF16', q4_0: 'Q4_0', q8_0: 'Q8_0' };
const GGML_OF: Record<QuantFormat, GgmlTypeName> = { q4_0: 'Q4_0', q8_0: 'Q8_0' };

/** A rac-quantized model's record (rac.json `quantization`) with its f16 scales, read lazily. */
interface QuantSource {
  tensors: QuantizationRecord['tensors'];
  scales: (name: string) => Float32Array;
  close: () => void;
}

function openQuantSource(dir: string): QuantSource | null {
  const racJson = join(dir, RAC_JSON);
  if (!existsSync(racJson)) return null;
  const rec = readJson(dir, RAC_JSON)['quantization'] as { tensors?: unknown; scales_file?: unknown } | undefined; // a QuantizationRecord, checked below
  if (rec === undefined) return null;
  if (
    !rec ||
    typeof rec !== 'object' ||
    !rec.tensors ||
    typeof rec.tensors !== 'object' ||
    typeof rec.scales_file !== 'string' ||
    /[\\/]/.test(rec.scales_file)
  ) {
    throw new ExportError(`${racJson}: malformed "quantization" section (needs "tensors" and a plain "scales_file" name)`);
  }
  const file = join(dir, rec.scales_file);
  if (!existsSync(file)) throw new ExportError(`${file}: missing (rac.json says the model is quantized; its block scales live there)`);
  const st = SafetensorsFile.open(file);
  const tensors = rec.tensors as QuantSource['tensors'];
  return {
    tensors,
    scales: (name) => {
      const t = st.tensors.get(name);
      const q = tensors[name]!;
      if (!t || t.dtype !== 'F16' || t.shape.length !== 2 || t.shape[0] !== q.rows || t.shape[1] !== q.cols / QK) {
        throw new ExportError(`${file}: no F16 [${q.rows}, ${q.cols / QK}] scales for "${name}"`);
      }
      const raw = st.readRaw(name);
      return f16ToF32(new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)));
    },
    close: () => st.close(),
  };
}

/** gguf TokenType. */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/**
 * llama.cpp's converter permute(): rows of q/k (weight (rows, cols) or bias (rows, 1)) from HF's
 * rotate-half order to the interleaved order of the `llama` rope, per head.
 */
export function permuteQk(w: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  if (rows % heads !== 0 || (rows / heads) % 2 !== 0)
    throw new ExportError(`permute: ${rows} rows do not split into ${heads} heads of even size`);
  const hd = rows / heads;
  const half = hd / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * hd + j * half + i;
        const dst = h * hd + 2 * i + j;
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

/** The converter's Llama-3 `rope_freqs` factors: one divisor per rotary frequency (hd/2). */
export function llama3RopeFactors(c: ModelConfig): Float32Array {
  const rs = c.ropeScaling;
  if (rs.type !== 'llama3') throw new ExportError('llama3RopeFactors: the config has no llama3 rope scaling');
  const dim = c.headDim;
  const lowWavelen = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
  const highWavelen = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
  const out = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const freq = Math.fround(1 / Math.fround(Math.pow(c.ropeTheta, Math.fround((2 * i) / dim))));
    const wavelen = (2 * Math.PI) / freq;
    if (wavelen < highWavelen) out[i] = 1;
    else if (wavelen > lowWavelen) out[i] = rs.factor;
    else {
      const smooth = (rs.originalMaxPositionEmbeddings / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / rs.factor + smooth);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

/** The Llama-3 pre-tokenizer regex (llama.cpp pre name `llama-bpe`). */
export const LLAMA3_PRETOKENIZE_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

interface AddedToken {
  id: number;
  content: string;
  special?: boolean;
}

/** The Split regexes of a tokenizer.json pre_tokenizer, in order. */
function splitRegexes(pre: unknown): string[] {
  const out: string[] = [];
  const walk = (p: unknown) => {
    if (!p || typeof p !== 'object') return;
    const o = p as Record<string, unknown>;
    if (o.type === 'Sequence' && Array.isArray(o.pretokenizers)) for (const q of o.pretokenizers) walk(q);
    else if (o.type === 'Split') {
      const pat = o.pattern as { Regex?: string; String?: string } | undefined;
      if (pat?.Regex !== undefined) out.push(pat.Regex);
      else if (pat?.String !== undefined) out.push(pat.String);
    }
  };
  walk(pre);
  return out;
}

function hasByteLevel(x: unknown): boolean {
  if (!x || typeof x !== 'object') return false;
  const o = x as Record<string, unknown>;
  if (o.type === 'ByteLevel') return true;
  for (const k of ['pretokenizers', 'decoders', 'processors']) {
    if (Array.isArray(o[k]) && (o[k] as unknown[]).some(hasByteLevel)) return true;
  }
  return false;
}

/**
 * llama.cpp's pre-tokenizer name for a tokenizer.json, recognised by its split regexes (the
 * converter hashes a sample encoding instead; rac compares the regexes those hashes stand for).
 */
export function detectTokenizerPre(tj: Record<string, unknown>, arch: string): string | null {
  const rx = splitRegexes(tj.pre_tokenizer);
  if (rx.length === 1 && rx[0] === QWEN2_PRETOKENIZE_REGEX) return 'qwen2';
  if (rx.length === 1 && rx[0] === LLAMA3_PRETOKENIZE_REGEX) return 'llama-bpe';
  // DeepSeek-V3 / R1 (and R1-Distill-Qwen): digits in 1–3, CJK runs, then the main regex.
  if (rx.length === 3 && rx[0] === '\\p{N}{1,3}' && rx[1]!.startsWith('[一-龥'))
    return arch === 'qwen2' ? 'deepseek-r1-qwen' : 'deepseek-v3';
  return null;
}

/** Whether the converter would call a token CONTROL though it is not marked special. */
function looksSpecial(t: string): boolean {
  return (
    ['<pad>', '<mask>', '<2mass>', '[@BOS@]'].includes(t) ||
    (t.startsWith('<|') && t.endsWith('|>')) ||
    (t.startsWith('<｜') && t.endsWith('｜>')) ||
    (t.startsWith('<unused') && t.endsWith('>'))
  );
}

function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}

/** A model directory's file through model-file.ts (no symlink escape, regular files only); undefined when absent. */
function readText(dir: string, name: string): string | undefined {
  try {
    return readModelText(dir, name);
  } catch (e) {
    if (e instanceof ModelFileError) throw new ExportError(e.message);
    throw e;
  }
}

function readJson(dir: string, name: string, optional = false): Record<string, unknown> {
  const file = join(dir, name);
  const text = readText(dir, name);
  if (text === undefined) {
    if (optional) return {};
    throw new ExportError(`${file}: missing (GGUF export needs the tokenizer)`);
  }
  let v: unknown;
  try {
    v = parseJsonText(file, text);
  } catch (e) {
    throw new ExportError((e as Error).message);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ExportError(`${file}: expected a JSON object`);
  return v as Record<string, unknown>;
}

export interface GgufTokenizer {
  kvs: GgufKv[];
  pre: string;
  tokens: string[];
  tokenTypes: number[];
}

/** `tokenizer.ggml.*` metadata for a byte-level BPE tokenizer.json, padded to `vocabSize`. */
export function tokenizerMetadata(
  dir: string,
  vocabSize: number,
  arch: string,
  configRaw: Record<string, unknown>,
  opts: { tokenizerPre?: string } = {},
): GgufTokenizer {
  const tjPath = join(dir, 'tokenizer.json');
  const tcPath = join(dir, 'tokenizer_config.json');
  const tj = readJson(dir, 'tokenizer.json');
  const tc = readJson(dir, 'tokenizer_config.json', true);
  const model = tj.model as { type?: string; vocab?: Record<string, number>; merges?: unknown[] } | undefined;
  if (!model || model.type !== 'BPE' || !model.vocab || typeof model.vocab !== 'object') {
    throw new ExportError(
      `${tjPath}: rac exports only byte-level BPE tokenizers (tokenizer.ggml.model "gpt2"); this one has model type ${JSON.stringify(model?.type)}`,
    );
  }
  if (!hasByteLevel(tj.pre_tokenizer) && !hasByteLevel(tj.decoder)) {
    throw new ExportError(
      `${tjPath}: the BPE tokenizer is not byte-level (no ByteLevel pre-tokenizer or decoder); SentencePiece-style vocabularies are not supported`,
    );
  }
  const pre = opts.tokenizerPre ?? detectTokenizerPre(tj, arch);
  if (!pre) {
    const rx = splitRegexes(tj.pre_tokenizer);
    throw new ExportError(
      `${tjPath}: unrecognised pre-tokenizer (split regexes: ${JSON.stringify(rx)}); pass --tokenizer-pre NAME with llama.cpp's name for it (e.g. qwen2, llama-bpe, deepseek-r1-qwen)`,
    );
  }

  const byId = new Map<number, string>();
  for (const [tok, id] of Object.entries(model.vocab)) {
    if (!Number.isInteger(id) || id < 0)
      throw new ExportError(`${tjPath}: token ${JSON.stringify(tok)} has invalid id ${JSON.stringify(id)}`);
    byId.set(id, tok);
  }
  const added = new Map<number, AddedToken>();
  for (const t of (tj.added_tokens ?? []) as AddedToken[]) {
    if (!Number.isInteger(t.id) || typeof t.content !== 'string')
      throw new ExportError(`${tjPath}: malformed added token ${JSON.stringify(t)}`);
    byId.set(t.id, t.content);
    added.set(t.id, t);
  }
  const maxId = Math.max(...byId.keys());
  if (maxId >= vocabSize) {
    throw new ExportError(`${tjPath}: token id ${maxId} is outside the model's vocab_size ${vocabSize} (config.json)`);
  }
  const tokens: string[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) {
    const tok = byId.get(i);
    if (tok === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.UNUSED;
      continue;
    }
    tokens[i] = tok;
    const a = added.get(i);
    types[i] = a ? (a.special || looksSpecial(tok) ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED) : TOKEN_TYPE.NORMAL;
  }

  const merges: string[] = [];
  for (const m of model.merges ?? []) {
    if (typeof m === 'string') merges.push(m);
    else if (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === 'string')) merges.push(`${m[0]} ${m[1]}`);
    else throw new ExportError(`${tjPath}: malformed merge ${JSON.stringify(m)}`);
  }

  const kvs: GgufKv[] = [
    kv.str('tokenizer.ggml.model', 'gpt2'),
    kv.str('tokenizer.ggml.pre', pre),
    kv.strs('tokenizer.ggml.tokens', tokens),
    kv.i32s('tokenizer.ggml.token_type', types),
    kv.strs('tokenizer.ggml.merges', merges),
  ];

  // Special tokens: tokenizer_config.json names (looked up among the added tokens), then
  // config.json `<typ>_token_id` for the ones still unset — gguf-py's SpecialVocab order.
  const contentId = new Map<string, number>();
  for (const t of added.values()) contentId.set(t.content, t.id);
  const specialKeys: [string, string][] = [
    ['bos', 'bos_token_id'],
    ['eos', 'eos_token_id'],
    ['unk', 'unknown_token_id'],
    ['sep', 'seperator_token_id'], // sic: gguf's key
    ['pad', 'padding_token_id'],
    ['cls', 'cls_token_id'],
    ['mask', 'mask_token_id'],
  ];
  const ids: Record<string, number> = {};
  for (const [typ] of specialKeys) {
    const s = tokenString(tc[`${typ}_token`]);
    const id = s === undefined ? undefined : (contentId.get(s) ?? model.vocab[s]);
    if (id !== undefined) ids[typ] = id;
  }
  for (const [typ] of specialKeys) {
    const v = configRaw[`${typ}_token_id`];
    if (ids[typ] === undefined && typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < vocabSize) ids[typ] = v;
  }
  for (const [typ, key] of specialKeys) if (ids[typ] !== undefined) kvs.push(kv.u32(`tokenizer.ggml.${key}`, ids[typ]!));

  // add_bos/add_eos: tokenizer_config.json when it says, else the post-processor's template.
  const tpl = templateAdds(tj.post_processor, byId.get(ids.bos ?? -1), byId.get(ids.eos ?? -1));
  const addBos = typeof tc.add_bos_token === 'boolean' ? tc.add_bos_token : (tpl.bos ?? false);
  kvs.push(kv.bool('tokenizer.ggml.add_bos_token', addBos));
  const addEos = typeof tc.add_eos_token === 'boolean' ? tc.add_eos_token : tpl.eos;
  if (addEos !== undefined) kvs.push(kv.bool('tokenizer.ggml.add_eos_token', addEos));

  const chat = chatTemplate(dir, tc, tcPath);
  if (chat !== undefined) kvs.push(kv.str('tokenizer.chat_template', chat));
  return { kvs, pre, tokens, tokenTypes: types };
}

/** Whether a TemplateProcessing post-processor adds BOS first / EOS last to a single sequence. */
function templateAdds(pp: unknown, bos: string | undefined, eos: string | undefined): { bos?: boolean; eos?: boolean } {
  if (!pp || typeof pp !== 'object') return {};
  const o = pp as Record<string, unknown>;
  if (o.type === 'Sequence' && Array.isArray(o.processors)) {
    for (const p of o.processors) {
      const r = templateAdds(p, bos, eos);
      if (r.bos !== undefined || r.eos !== undefined) return r;
    }
    return {};
  }
  if (o.type !== 'TemplateProcessing' || !Array.isArray(o.single)) return {};
  const single = o.single as Record<string, { id?: string }>[];
  const special = (x: Record<string, { id?: string }> | undefined) => x?.SpecialToken?.id;
  return { bos: bos !== undefined && special(single[0]) === bos, eos: eos !== undefined && special(single[single.length - 1]) === eos };
}

function chatTemplate(dir: string, tc: Record<string, unknown>, tcPath: string): string | undefined {
  const ct = tc.chat_template;
  if (typeof ct === 'string') return ct;
  if (Array.isArray(ct)) {
    const pick =
      (ct as { name?: unknown; template?: unknown }[]).find((e) => e?.name === 'default') ?? (ct.length === 1 ? ct[0] : undefined);
    if (!pick || typeof pick.template !== 'string') throw new ExportError(`${tcPath}: chat_template list has no "default" entry`);
    return pick.template;
  }
  return readText(dir, 'chat_template.jinja');
}

// ---------------------------------------------------------------------------------------------
// Model

interface PlannedTensor extends GgufTensorEntry {
  /** Produces the f32 data (row-major, `shape`). */
  data: () => Float32Array;
  /** Quantized types: the GGUF blocks. */
  blocks?: () => Uint8Array;
}

/** Hyperparameter metadata (`{arch}.*`, `general.*`). */
function modelMetadata(arch: string, c: ModelConfig, name: string, dtype: GgufDtype): GgufKv[] {
  const kvs: GgufKv[] = [
    kv.str('general.architecture', arch),
    kv.str('general.type', 'model'),
    kv.str('general.name', name),
    kv.u32('general.alignment', 32),
    kv.u32(`${arch}.context_length`, c.maxPositionEmbeddings),
    kv.u32(`${arch}.embedding_length`, c.hiddenSize),
    kv.u32(`${arch}.feed_forward_length`, c.intermediateSize),
    kv.u32(`${arch}.block_count`, c.numLayers),
    kv.u32(`${arch}.attention.head_count`, c.numHeads),
    kv.u32(`${arch}.attention.head_count_kv`, c.numKvHeads),
    kv.f32(`${arch}.rope.freq_base`, c.ropeTheta),
    kv.f32(`${arch}.attention.layer_norm_rms_epsilon`, c.rmsNormEps),
  ];
  if (c.raw['head_dim'] !== undefined || c.headDim * c.numHeads !== c.hiddenSize) {
    kvs.push(kv.u32(`${arch}.attention.key_length`, c.headDim), kv.u32(`${arch}.attention.value_length`, c.headDim));
  }
  if (arch === 'llama') {
    kvs.push(kv.u32(`${arch}.vocab_size`, c.vocabSize), kv.u32(`${arch}.rope.dimension_count`, c.headDim));
  }
  if (c.moe && hasMoeLayers(c)) {
    kvs.push(
      kv.u32(`${arch}.expert_count`, c.moe.numExperts),
      kv.u32(`${arch}.expert_used_count`, c.moe.topK),
      kv.u32(`${arch}.expert_feed_forward_length`, c.moe.expertIntermediateSize),
    );
  }
  if (c.ropeScaling.type === 'linear') {
    kvs.push(kv.str(`${arch}.rope.scaling.type`, 'linear'), kv.f32(`${arch}.rope.scaling.factor`, c.ropeScaling.factor));
  }
  kvs.push(kv.u32('general.file_type', FILE_TYPE[dtype]), kv.u32('general.quantization_version', 2));
  return kvs;
}

function planTensors(
  m: Model,
  arch: string,
  dtype: GgufDtype,
  qs: QuantSource | null,
  warn: (s: string) => void = () => {},
): PlannedTensor[] {
  let requantized = 0;
  const { spec, config: c } = m;
  const wt = WEIGHT_TYPE[dtype];
  const quant = dtype === 'q4_0' || dtype === 'q8_0' ? dtype : null;
  const permute = arch === 'llama';
  const out: PlannedTensor[] = [];
  /**
   * `hf`: the checkpoint tensor (for its recorded quantization); `fmt`: its grid in a quantized
   * export; `heads`: the llama q/k permutation (rows move together with their block scales).
   */
  /** The blocks of one HF tensor (rows, cols) on grid `fmt`: its recorded rac quantization, else llama.cpp's RTN. */
  const blocksOf = (
    hf: string | undefined,
    name: string,
    w0: Float32Array,
    rows: number,
    cols: number,
    fmt: QuantFormat,
    heads: number,
  ) => {
    // A compressed-tensors Linear on this grid: its codes and scales are the blocks.
    const packed = hf !== undefined ? m.packedLinear(hf) : null;
    const direct = packed ? packedGgufBlocks(packed, fmt, heads) : null;
    if (direct) return direct;
    if (packed && requantized++ === 0)
      warn(
        `${m.dir}: "${hf}" is int${packed.bits} in groups of ${packed.groupSize}${packed.zeroPoints ? ' with zero points' : ''}${packed.gIdx ? ' and g_idx' : ''}, not ${fmt}'s grid: its dequantized weights are rounded to ${fmt} (a second quantization; likewise any other such Linear)`,
      );
    const rec = hf !== undefined && !packed ? qs?.tensors[hf] : undefined;
    let w = w0; // permuted already when heads > 0
    let scales: Float32Array;
    if (rec) {
      scales = qs!.scales(hf!);
      if (heads > 0) scales = permuteQk(scales, rows, cols / QK, heads);
    } else {
      w = w.slice();
      scales = rtnQuantize(w, rows, cols, fmt).scales; // llama.cpp's reference quantizer
    }
    try {
      return encodeBlocks(fmt, w, scales, rows, cols);
    } catch (e) {
      throw new ExportError(
        `${m.dir}: "${hf ?? name}": ${(e as Error).message}; the weights no longer match the scales recorded in rac.json`,
      );
    }
  };
  const checkFormat = (hf: string, fmt: QuantFormat) => {
    const rec = qs?.tensors[hf];
    if (rec && rec.format !== fmt) {
      throw new ExportError(
        `${m.dir}: "${hf}" was quantized to ${rec.format}, but a ${dtype} GGUF stores it as ${fmt}; export with --dtype ${rec.format} (or f32)`,
      );
    }
  };
  /**
   * One GGUF tensor of row-major `shape` made of the HF tensors `hfs` stacked along the first axis
   * (one for a plain tensor; E for an MoE layer's experts). `fmt`: its grid in a quantized export;
   * `heads`: the llama q/k permutation (rows move together with their block scales).
   */
  const addStacked = (name: string, shape: number[], parts: { hf?: string; data: () => Float32Array }[], fmt?: QuantFormat, heads = 0) => {
    const data =
      parts.length === 1
        ? parts[0]!.data
        : () => {
            const per = shape.slice(1).reduce((a, b) => a * b, 1);
            const all = new Float32Array(per * parts.length);
            parts.forEach((p, i) => all.set(p.data(), i * per));
            return all;
          };
    if (shape.length < 2) return out.push({ name, type: 'F32', shape, data });
    const cols = shape[shape.length - 1]!;
    const rows = shape.slice(parts.length === 1 ? 0 : 1, -1).reduce((a, b) => a * b, 1); // of one part
    if (!quant || !fmt || cols % QK !== 0) {
      // Float exports; and in quantized ones, rows that are not whole blocks stay F32 (exact).
      return out.push({ name, type: quant ? 'F32' : wt, shape, data });
    }
    for (const p of parts) if (p.hf !== undefined) checkFormat(p.hf, fmt);
    const blocks = () => {
      const bs = parts.map((p) => blocksOf(p.hf, name, p.data(), rows, cols, fmt, heads));
      if (bs.length === 1) return bs[0]!;
      const all = new Uint8Array(bs.reduce((a, b) => a + b.byteLength, 0));
      let off = 0;
      for (const b of bs) {
        all.set(b, off);
        off += b.byteLength;
      }
      return all;
    };
    out.push({ name, type: GGML_OF[fmt], shape, data, blocks });
  };
  const add = (name: string, shape: number[], data: () => Float32Array, hf?: string, fmt?: QuantFormat, heads = 0) =>
    addStacked(name, shape, [{ ...(hf !== undefined ? { hf } : {}), data }], fmt, heads);
  const outFmt: QuantFormat | undefined = quant ? OUTPUT_QUANT : undefined;
  const linFmt: QuantFormat | undefined = quant ?? undefined;

  add('token_embd.weight', [c.vocabSize, c.hiddenSize], () => m.read(spec.embedName), spec.embedName, outFmt);
  if (c.ropeScaling.type === 'llama3') add('rope_freqs.weight', [c.headDim / 2], () => llama3RopeFactors(c));
  for (let i = 0; i < c.numLayers; i++) {
    const blk = `blk.${i}`;
    for (const n of spec.norms(c)) add(`${blk}.${NORM_GGUF[n.name]}.weight`, [n.size], () => m.read(m.tensorName(i, n.module)));
    for (const l of layerLinears(spec, c, i)) {
      const heads = l.name === 'q_proj' ? c.numHeads : l.name === 'k_proj' ? c.numKvHeads : 0;
      const perm = permute && heads > 0;
      add(
        `${blk}.${LINEAR_GGUF[l.name]}.weight`,
        [l.rows, l.cols],
        () => {
          const w = m.read(m.tensorName(i, l.module));
          return perm ? permuteQk(w, l.rows, l.cols, heads) : w;
        },
        m.tensorName(i, l.module),
        linFmt,
        perm ? heads : 0,
      );
      if (l.bias) {
        add(`${blk}.${LINEAR_GGUF[l.name]}.bias`, [l.rows], () => {
          const b = m.read(m.tensorName(i, l.module, 'bias'));
          return perm ? permuteQk(b, l.rows, 1, heads) : b;
        });
      }
    }
    const ex = m.experts(i);
    if (!ex) continue;
    // The router stays F32 in every export (llama.cpp's converter and llama-quantize keep ffn_gate_inp so).
    out.push({
      name: `${blk}.ffn_gate_inp.weight`,
      type: 'F32',
      shape: [ex.count, c.hiddenSize],
      data: () => m.read(m.tensorName(i, ex.routerModule)),
    });
    for (const l of ex.linears) {
      const parts = Array.from({ length: ex.count }, (_, j) => {
        const hf = m.expertTensorName(i, j, l.module);
        return { hf, data: () => m.read(hf) };
      });
      addStacked(`${blk}.${EXPERTS_GGUF[l.name]}.weight`, [ex.count, l.rows, l.cols], parts, linFmt);
    }
  }
  add('output_norm.weight', [c.hiddenSize], () => m.read(spec.finalNormName));
  if (!m.tiedHead) add('output.weight', [c.vocabSize, c.hiddenSize], () => m.read(spec.lmHeadName), spec.lmHeadName, outFmt);
  return out;
}

/** Refuse what llama.cpp's architecture cannot represent; warn where it will behave differently. */
function checkSupported(m: Model, arch: string, warn: (s: string) => void): void {
  const c = m.config;
  const where = `${m.dir}/config.json`;
  if (arch !== 'llama') {
    if (c.oBias) throw new ExportError(`${where}: ${c.modelType} with an o_proj bias (attention_bias) has no llama.cpp ${arch} equivalent`);
    if (c.mlpBias) throw new ExportError(`${where}: ${c.modelType} with MLP biases (mlp_bias) has no llama.cpp ${arch} equivalent`);
    if ((arch === 'qwen3' || arch === 'qwen3moe') && c.qkvBias)
      throw new ExportError(`${where}: ${c.modelType} with q/k/v biases (attention_bias) has no llama.cpp ${arch} equivalent`);
    if (c.ropeScaling.type === 'llama3') throw new ExportError(`${where}: llama3 rope scaling is exported only for the llama architecture`);
  }
  if (arch === 'qwen3moe' && c.moe) {
    // llama.cpp's qwen3moe renormalizes the top-k weights and has an MoE block in every layer.
    if (!c.moe.normTopKProb)
      throw new ExportError(
        `${where}: norm_topk_prob is false, but llama.cpp's qwen3moe always divides the top-k routing weights by their sum: the GGUF would compute another model (rac runs it as it is)`,
      );
    const dense = Array.from({ length: c.numLayers }, (_, i) => i).filter((i) => !m.experts(i));
    if (dense.length > 0)
      throw new ExportError(
        `${where}: layer${dense.length === 1 ? '' : 's'} ${dense.join(', ')} ha${dense.length === 1 ? 's' : 've'} a dense MLP (mlp_only_layers / decoder_sparse_step), but llama.cpp's qwen3moe has an MoE block in every layer (rac runs it as it is)`,
      );
  }
  if (c.slidingWindow !== null && c.slidingWindow < c.maxPositionEmbeddings) {
    warn(
      `${where}: sliding_window ${c.slidingWindow} is not carried into GGUF (llama.cpp's ${arch} attends to the whole context, as its converter assumes); outputs differ once a sequence exceeds ${c.slidingWindow} tokens`,
    );
  }
}

/** Convert a HF model directory to a GGUF file. The file appears under `out` only when complete. */
export function exportGguf(o: ExportGgufOptions): ExportGgufResult {
  const dtype = o.dtype ?? 'f32';
  if (!GGUF_DTYPES.includes(dtype)) throw new ExportError(`dtype must be one of ${GGUF_DTYPES.join(', ')}, got "${String(dtype)}"`);
  const warn = o.warn ?? ((s: string) => process.stderr.write(`warning: ${s}\n`));
  const out = resolve(o.out);
  const m = Model.open(o.model, { warn });
  let qs: QuantSource | null = null;
  try {
    qs = openQuantSource(m.dir);
    if (qs && (dtype === 'f16' || dtype === 'bf16')) {
      warn(`${m.dir}: the model is quantized (rac.json); its grid values are exact in f32, q4_0 or q8_0 GGUF, not in ${dtype}`);
    }
    const arch = GGUF_ARCH[m.config.modelType];
    if (!arch)
      throw new ExportError(
        `${m.dir}/config.json: no GGUF mapping for model_type "${m.config.modelType}" (supported: ${Object.keys(GGUF_ARCH).join(', ')})`,
      );
    checkSupported(m, arch, warn);
    const tok = tokenizerMetadata(
      m.dir,
      m.config.vocabSize,
      arch,
      m.config.raw,
      o.tokenizerPre !== undefined ? { tokenizerPre: o.tokenizerPre } : {},
    );
    const name = o.name ?? basename(m.dir);
    const kvs = [...modelMetadata(arch, m.config, name, dtype), ...tok.kvs];
    const plan = planTensors(m, arch, dtype, qs, warn);
    if (existsSync(out) && !isFile(out)) throw new ExportError(`${out}: exists and is not a file`);
    mkdirSync(dirname(out), { recursive: true });
    const w = GgufWriter.create(out, kvs, plan);
    try {
      plan.forEach((t, i) => {
        if (t.blocks) w.write(t.name, t.blocks());
        else w.writeF32(t.name, t.data());
        o.onProgress?.(i + 1, plan.length, t.name);
      });
      w.close();
    } catch (e) {
      w.abort();
      throw e;
    }
    return {
      out,
      arch,
      dtype,
      tensors: plan.length,
      bytes: w.fileBytes,
      vocab: m.config.vocabSize,
      tokenizerPre: tok.pre,
      tiedOutput: m.tiedHead,
    };
  } finally {
    qs?.close();
    m.close();
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}
