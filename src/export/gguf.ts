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
import { dequantizeRows, quantizeRows, rowBytes, type GgmlQuantType } from '../compress/ggml-quants.ts';
import { encodeBlocks, QK, QuantRangeError } from '../compress/quant-grids.ts';
import { GGUF_ARCH, GGUF_LINEAR, isQuantScheme, QUANT_SCHEMES, SCHEME_INFO, type QuantScheme } from '../compress/quant-schemes.ts';
import { readImatrix } from '../io/imatrix.ts';
import { isWithin, ModelFileError, modelDirRoots, parseJsonText, readModelText, realPathOf } from '../io/model-file.ts';
import { GgufWriter, kv, type GgmlTypeName, type GgufKv, type GgufTensorEntry } from '../io/gguf.ts';
import { SafetensorsFile } from '../io/safetensors.ts';
import { QWEN2_PRETOKENIZE_REGEX } from '../io/bpe.ts';
import type { ModelConfig } from '../models/config.ts';
import { Model } from '../models/model.ts';
import { hasMoeLayers, layerLinears, type ExpertLinearName, type LinearName, type NormName } from '../models/spec.ts';
import { quantPlan, type QuantPlan } from '../prune/quant-plan.ts';
import { RAC_JSON, type LegacyQuantizationRecord, type QuantizationRecord } from '../prune/rac-json.ts';
import { RacError } from '../errors.ts';
import { f16ToF32 } from '../io/dtype.ts';
import { packedGgufBlocks } from './gguf-packed.ts';

/** Float dtypes, or a quantization scheme (compress/quant-schemes.ts: q4_0 … q6_k, llama.cpp's mixes q4_k_m …). */
export type GgufDtype = 'f32' | 'f16' | 'bf16' | QuantScheme;
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'bf16', ...QUANT_SCHEMES];

export class ExportError extends RacError {
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
  /** An importance matrix for the tensors quantized on export (as llama-quantize --imatrix); not for ones rac already quantized. */
  imatrix?: string;
  warn?: (message: string) => void;
  onProgress?: (done: number, total: number, tensor: string) => void;
  /** Replace an existing `out` (default: refuse it). An output in the input model is refused whatever this says. */
  force?: boolean;
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

/** An MoE layer's stacked expert tensors: ggml ne {cols, rows, experts} = row-major (E, rows, cols), experts in order. */
const EXPERTS_GGUF: Record<ExpertLinearName, string> = { gate_proj: 'ffn_gate_exps', up_proj: 'ffn_up_exps', down_proj: 'ffn_down_exps' };

const LINEAR_GGUF = GGUF_LINEAR as Record<LinearName, string>;

const NORM_GGUF: Record<NormName, string> = {
  input_layernorm: 'attn_norm',
  post_attention_layernorm: 'ffn_norm',
  q_norm: 'attn_q_norm',
  k_norm: 'attn_k_norm',
};

/** gguf LlamaFileType of the float dtypes (the schemes': SCHEME_INFO). */
const FLOAT_FILE_TYPE: Record<'f32' | 'f16' | 'bf16', number> = { f32: 0, f16: 1, bf16: 32 };
const FLOAT_TYPE: Record<'f32' | 'f16' | 'bf16', GgmlTypeName> = { f32: 'F32', f16: 'F16', bf16: 'BF16' };

/** A rac-quantized model's record (rac.json `quantization`) with its GGUF block bytes, read lazily. */
interface QuantSource {
  scheme: QuantScheme;
  tensors: QuantizationRecord['tensors'];
  blocks: (name: string) => Uint8Array;
  close: () => void;
}

/**
 * The quantization record of a rac-quantized model directory, and its GGUF blocks: from
 * `blocks_file` (the `gguf-blocks` layout, and the embedding / untied lm_head of the
 * `compressed-tensors` one — its packed Linears are read from the checkpoint, export/gguf-packed.ts),
 * or, for rac's first layout (q4_0 / q8_0, `scales_file` of f16 block scales beside F32 values on
 * the grid), re-encoded from the values and their scales — exactly what that rac would have written.
 */
function openQuantSource(dir: string, read: (name: string) => Float32Array): QuantSource | null {
  const racJson = join(dir, RAC_JSON);
  if (!existsSync(racJson)) return null;
  const rec = readJson(dir, RAC_JSON)['quantization'] as Partial<Record<keyof QuantizationRecord, unknown>> | undefined; // checked below
  if (rec === undefined) return null;
  if (!rec || typeof rec !== 'object' || !rec.tensors || typeof rec.tensors !== 'object')
    throw new ExportError(`${racJson}: malformed "quantization" section (needs "tensors")`);
  const legacy = rec as Partial<Record<keyof LegacyQuantizationRecord, unknown>>;
  if (rec.blocks_file === undefined && typeof legacy.scales_file === 'string') return openLegacyQuantSource(dir, legacy, read);
  if (typeof rec.blocks_file !== 'string' || /[\\/]/.test(rec.blocks_file) || typeof rec.format !== 'string' || !isQuantScheme(rec.format))
    throw new ExportError(
      `${racJson}: the "quantization" section has no plain "blocks_file" name and scheme "format" (nor an earlier rac's "scales_file"); quantize the model again`,
    );
  const file = join(dir, rec.blocks_file);
  if (!existsSync(file)) throw new ExportError(`${file}: missing (rac.json says the model is quantized; its GGUF blocks live there)`);
  const st = SafetensorsFile.open(file);
  const tensors = rec.tensors as QuantSource['tensors'];
  return {
    scheme: rec.format,
    tensors,
    blocks: (name) => {
      const t = st.tensors.get(name);
      const q = tensors[name]!;
      const rb = rowBytes(q.type, q.cols);
      if (t?.dtype !== 'U8' || t.shape.length !== 2 || t.shape[0] !== q.rows || t.shape[1] !== rb)
        throw new ExportError(`${file}: no U8 [${q.rows}, ${rb}] ${q.type} blocks for "${name}"`);
      const raw = st.readRaw(name);
      return new Uint8Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
    },
    close: () => st.close(),
  };
}

/** rac's first quantized layout (QUANT_SCALES_FILE): blocks encoded from the F32 values on the grid and their f16 scales. */
function openLegacyQuantSource(
  dir: string,
  rec: Partial<Record<keyof LegacyQuantizationRecord, unknown>>,
  read: (name: string) => Float32Array,
): QuantSource {
  const racJson = join(dir, RAC_JSON);
  const scheme = rec.format;
  const scalesFile = rec.scales_file as string;
  if ((scheme !== 'q4_0' && scheme !== 'q8_0') || /[\\/]/.test(scalesFile))
    throw new ExportError(
      `${racJson}: malformed "quantization" section (format ${JSON.stringify(scheme)} with "scales_file"; expected q4_0 or q8_0)`,
    );
  const file = join(dir, scalesFile);
  if (!existsSync(file)) throw new ExportError(`${file}: missing (rac.json says the model is quantized; its block scales live there)`);
  const tensors: QuantSource['tensors'] = {};
  for (const [name, t] of Object.entries(rec.tensors as Record<string, Partial<LegacyQuantizationRecord['tensors'][string]>>)) {
    if (!t || (t.format !== 'q4_0' && t.format !== 'q8_0') || typeof t.rows !== 'number' || typeof t.cols !== 'number')
      throw new ExportError(`${racJson}: malformed quantization entry for "${name}"`);
    tensors[name] = {
      type: t.format === 'q4_0' ? 'Q4_0' : 'Q8_0',
      method: t.method ?? 'rtn',
      rows: t.rows,
      cols: t.cols,
      imatrix: false,
    };
  }
  const st = SafetensorsFile.open(file);
  return {
    scheme,
    tensors,
    blocks: (name) => {
      const q = tensors[name]!;
      const t = st.tensors.get(name);
      if (t?.dtype !== 'F16' || t.shape.length !== 2 || t.shape[0] !== q.rows || t.shape[1] !== q.cols / QK)
        throw new ExportError(`${file}: no F16 [${q.rows}, ${q.cols / QK}] scales for "${name}"`);
      const raw = st.readRaw(name);
      const scales = f16ToF32(new Uint16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)));
      try {
        return encodeBlocks(q.type === 'Q4_0' ? 'q4_0' : 'q8_0', read(name), scales, q.rows, q.cols);
      } catch (e) {
        if (!(e instanceof QuantRangeError)) throw e;
        throw new ExportError(`${dir}: "${name}": ${e.message}; the weights no longer match the scales recorded in rac.json`);
      }
    },
    close: () => st.close(),
  };
}

/** Rows of a (rows, rowLen) byte matrix permuted as permuteQk permutes weight rows. */
function permuteRowsBytes(b: Uint8Array, rows: number, heads: number): Uint8Array {
  const hd = rows / heads;
  const half = hd / 2;
  const rl = b.length / rows;
  const out = new Uint8Array(b.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++)
        out.set(b.subarray((h * hd + j * half + i) * rl, (h * hd + j * half + i + 1) * rl), (h * hd + 2 * i + j) * rl);
  return out;
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
  const fileType = dtype === 'f32' || dtype === 'f16' || dtype === 'bf16' ? FLOAT_FILE_TYPE[dtype] : SCHEME_INFO[dtype].fileType;
  kvs.push(kv.u32('general.file_type', fileType), kv.u32('general.quantization_version', 2));
  return kvs;
}

function planTensors(
  m: Model,
  arch: string,
  dtype: GgufDtype,
  qs: QuantSource | null,
  plan: QuantPlan | null,
  warn: (s: string) => void = () => {},
): PlannedTensor[] {
  let requantized = 0;
  const { spec, config: c } = m;
  const permute = arch === 'llama';
  const out: PlannedTensor[] = [];
  /**
   * One HF tensor's blocks of `type`: a compressed-tensors Linear on that grid's codes and scales,
   * its recorded rac blocks (checked against its weights), else llama.cpp's quantizer.
   */
  const blocksOf = (hf: string, type: GgmlQuantType, data: () => Float32Array, rows: number, cols: number, heads: number) => {
    const packed = m.packedLinear(hf);
    if (packed) {
      const direct = type === 'Q4_0' || type === 'Q8_0' ? packedGgufBlocks(packed, type === 'Q4_0' ? 'q4_0' : 'q8_0', heads) : null;
      if (direct) return direct;
      if (requantized++ === 0)
        warn(
          `${m.dir}: "${hf}" is int${packed.bits} in groups of ${packed.groupSize}${packed.zeroPoints ? ' with zero points' : ''}${packed.gIdx ? ' and g_idx' : ''}, not ${type}'s grid: its dequantized weights are quantized to ${type} (a second quantization; likewise any other such Linear)`,
        );
    }
    const rec = packed ? undefined : qs?.tensors[hf];
    if (rec) {
      // rac quantized it: its recorded blocks, checked against the weights in the checkpoint
      const b = qs!.blocks(hf);
      const values = dequantizeRows(type, b, rows * cols);
      const w = m.read(hf);
      for (let i = 0; i < w.length; i++) {
        if (Object.is(w[i], values[i]) || w[i] === values[i]) continue;
        throw new ExportError(
          `${m.dir}: "${hf}" [${Math.floor(i / cols)}, ${i % cols}] is ${w[i]}, but its recorded ${type} blocks give ${values[i]}; the weights no longer match rac.json's quantization`,
        );
      }
      return heads > 0 ? permuteRowsBytes(b, rows, heads) : b;
    }
    // anything else: llama.cpp's quantizer, on the (permuted) weights
    return quantizeRows(type, data(), rows, cols, plan!.imatrix(hf));
  };
  /**
   * One GGUF tensor of row-major `shape` made of the HF tensors `parts` stacked along the first
   * axis (one for a plain tensor; E for an MoE layer's experts, which share one type). `hf`: the
   * checkpoint tensor (its type under the scheme, its recorded blocks); `heads`: the llama q/k
   * permutation (rows move together with their blocks).
   */
  const addStacked = (name: string, shape: number[], parts: { hf?: string; data: () => Float32Array }[], heads = 0) => {
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
    if (!plan) return out.push({ name, type: FLOAT_TYPE[dtype as 'f32'], shape, data });
    const cols = shape[shape.length - 1]!;
    const rows = shape.slice(parts.length === 1 ? 0 : 1, -1).reduce((a, b) => a * b, 1); // of one part
    const hf0 = parts[0]!.hf;
    const type: GgmlQuantType | null = hf0 !== undefined ? (plan.tensors.get(hf0)?.type ?? null) : null;
    // A quantized export: rows the scheme keeps float (not whole blocks) stay F32 (exact).
    if (!type) return out.push({ name, type: 'F32', shape, data });
    for (const p of parts) {
      const rec = p.hf !== undefined ? qs?.tensors[p.hf] : undefined;
      if (rec && rec.type !== type)
        throw new ExportError(
          `${m.dir}: "${p.hf}" was quantized to ${rec.type}, but --dtype ${dtype} stores it as ${type}; export with --dtype ${qs!.scheme} (or f32)`,
        );
    }
    const blocks = () => {
      const bs = parts.map((p) => blocksOf(p.hf!, type, p.data, rows, cols, heads));
      if (bs.length === 1) return bs[0]!;
      const all = new Uint8Array(bs.reduce((a, b) => a + b.byteLength, 0));
      let off = 0;
      for (const b of bs) {
        all.set(b, off);
        off += b.byteLength;
      }
      return all;
    };
    out.push({ name, type, shape, data, blocks });
  };
  const add = (name: string, shape: number[], data: () => Float32Array, hf?: string, heads = 0) =>
    addStacked(name, shape, [{ ...(hf !== undefined ? { hf } : {}), data }], heads);

  add('token_embd.weight', [c.vocabSize, c.hiddenSize], () => m.read(spec.embedName), spec.embedName);
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
      addStacked(`${blk}.${EXPERTS_GGUF[l.name]}.weight`, [ex.count, l.rows, l.cols], parts);
    }
  }
  add('output_norm.weight', [c.hiddenSize], () => m.read(spec.finalNormName));
  if (!m.tiedHead) add('output.weight', [c.vocabSize, c.hiddenSize], () => m.read(spec.lmHeadName), spec.lmHeadName);
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
  // The output may not be (or be inside) the input model, its real directory or — for a hub
  // snapshot — the blobs its files link to: writing there would replace what is being read.
  const outReal = realPathOf(out);
  let roots = [resolve(o.model)];
  try {
    roots = [...roots, ...modelDirRoots(o.model)];
  } catch {
    /* no such model directory: Model.open below says so */
  }
  for (const root of roots)
    if (isWithin(outReal, root) || isWithin(out, root))
      throw new ExportError(
        `${out}: the output${outReal !== out ? ` (${outReal})` : ''} ${outReal === root || out === root ? 'is' : 'lies inside'} the input model directory ${root}; choose an --out outside it`,
      );
  const m = Model.open(o.model, { warn });
  let qs: QuantSource | null = null;
  try {
    if (existsSync(out) && !isFile(out)) throw new ExportError(`${out}: exists and is not a file`);
    if (existsSync(out) && !o.force) throw new ExportError(`${out}: exists; pass --force to replace it`);
    qs = openQuantSource(m.dir, (name) => m.read(name));
    if (qs && (dtype === 'f16' || dtype === 'bf16')) {
      warn(`${m.dir}: the model is quantized (rac.json, ${qs.scheme}); its values are exact in f32 or ${qs.scheme} GGUF, not in ${dtype}`);
    }
    if (qs && dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16' && dtype !== qs.scheme)
      throw new ExportError(`${m.dir}: the model was quantized as ${qs.scheme} (rac.json); export it with --dtype ${qs.scheme} (or f32)`);
    if (o.imatrix !== undefined && (dtype === 'f32' || dtype === 'f16' || dtype === 'bf16'))
      throw new ExportError(`--imatrix is for quantized exports; --dtype ${dtype} does not quantize`);
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
    const qplan =
      dtype === 'f32' || dtype === 'f16' || dtype === 'bf16'
        ? null
        : quantPlan(m, dtype, o.imatrix !== undefined ? readImatrix(o.imatrix) : undefined, o.imatrix);
    const plan = planTensors(m, arch, dtype, qs, qplan, warn);
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
