/**
 * Which ggml type each tensor of a model gets under a quantization scheme — for the mixes,
 * exactly as llama.cpp's `llama-quantize` decides (src/llama-quant.cpp: `llama_tensor_get_type`,
 * `llama_tensor_get_type_impl`, `tensor_type_fallback`), keyed by GGUF tensor names.
 *
 * Schemes (the names `rac prune --quant` and `rac export-gguf --dtype` take):
 * - one type: q4_0, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k — every decoder Linear in that type;
 *   token_embd and output in Q8_0 (`llama-quantize --pure --token-embedding-type q8_0
 *   --output-tensor-type q8_0`). A k-quant needs rows that are a multiple of 256: a Linear whose
 *   rows are not is refused (llama-quantize would fall back to a legacy type; the mixes do that).
 * - llama.cpp's mixes: q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, and q2_k_mix (what
 *   `llama-quantize … Q2_K` writes: the Q2_K file type is itself a mix). Per tensor as
 *   llama-quantize assigns it — attn_v / ffn_down bumped on the layers `use_more_bits` picks,
 *   output (and tied token_embd) Q6_K, the 70B rule — including its fallbacks for rows that are
 *   not a multiple of 256 (Q2_K/Q3_K → Q4_0, Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0).
 *
 * Rows that are not a multiple of 32 stay F32 in every scheme (llama-quantize writes F16 there).
 * Tensors are visited in llama.cpp's order (the model loader's map: layer number, then name),
 * which is what its counters (i_attention_wv, i_ffn_down) count in. Mixture-of-experts models
 * (qwen3_moe) get llama.cpp's n_expert rules on their stacked ffn_*_exps tensors.
 */
import { GGML_QUANT_TRAITS, type GgmlQuantType } from './ggml-quants.ts';

export const PURE_SCHEMES = ['q4_0', 'q8_0', 'q2_k', 'q3_k', 'q4_k', 'q5_k', 'q6_k'] as const;
export const MIX_SCHEMES = ['q2_k_mix', 'q3_k_s', 'q3_k_m', 'q3_k_l', 'q4_k_s', 'q4_k_m', 'q5_k_s', 'q5_k_m'] as const;
export type PureScheme = (typeof PURE_SCHEMES)[number];
export type MixScheme = (typeof MIX_SCHEMES)[number];
export type QuantScheme = PureScheme | MixScheme;
export const QUANT_SCHEMES: readonly QuantScheme[] = [...PURE_SCHEMES, ...MIX_SCHEMES];

export function isQuantScheme(s: string): s is QuantScheme {
  return (QUANT_SCHEMES as readonly string[]).includes(s);
}

/** The scheme's default type (llama_ftype_get_default_type) and its llama-quantize file type name. */
export const SCHEME_INFO: Record<QuantScheme, { type: GgmlQuantType; ftype: string; fileType: number }> = {
  q4_0: { type: 'Q4_0', ftype: 'Q4_0', fileType: 2 },
  q8_0: { type: 'Q8_0', ftype: 'Q8_0', fileType: 7 },
  q2_k: { type: 'Q2_K', ftype: 'Q2_K', fileType: 10 },
  q3_k: { type: 'Q3_K', ftype: 'Q3_K_S', fileType: 11 },
  q4_k: { type: 'Q4_K', ftype: 'Q4_K_S', fileType: 14 },
  q5_k: { type: 'Q5_K', ftype: 'Q5_K_S', fileType: 16 },
  q6_k: { type: 'Q6_K', ftype: 'Q6_K', fileType: 18 },
  q2_k_mix: { type: 'Q2_K', ftype: 'Q2_K', fileType: 10 },
  q3_k_s: { type: 'Q3_K', ftype: 'Q3_K_S', fileType: 11 },
  q3_k_m: { type: 'Q3_K', ftype: 'Q3_K_M', fileType: 12 },
  q3_k_l: { type: 'Q3_K', ftype: 'Q3_K_L', fileType: 13 },
  q4_k_s: { type: 'Q4_K', ftype: 'Q4_K_S', fileType: 14 },
  q4_k_m: { type: 'Q4_K', ftype: 'Q4_K_M', fileType: 15 },
  q5_k_s: { type: 'Q5_K', ftype: 'Q5_K_S', fileType: 16 },
  q5_k_m: { type: 'Q5_K', ftype: 'Q5_K_M', fileType: 17 },
};

/** The type of token_embd / output in the one-type schemes. */
export const PURE_OUTPUT_TYPE: GgmlQuantType = 'Q8_0';

export function isMixScheme(s: QuantScheme): s is MixScheme {
  return (MIX_SCHEMES as readonly string[]).includes(s);
}

/** The llama-quantize arguments that write the same file as rac's scheme (for the checks). */
export function llamaQuantizeArgs(s: QuantScheme): string[] {
  const ft = SCHEME_INFO[s].ftype;
  return isMixScheme(s) ? [ft] : ['--pure', '--token-embedding-type', 'q8_0', '--output-tensor-type', 'q8_0', ft];
}

/** llama.cpp's architecture for each Hugging Face model_type rac exports (as convert_hf_to_gguf.py). */
export const GGUF_ARCH: Record<string, 'qwen2' | 'qwen3' | 'llama' | 'qwen3moe'> = {
  qwen2: 'qwen2',
  qwen3: 'qwen3',
  llama: 'llama',
  mistral: 'llama',
  qwen3_moe: 'qwen3moe',
};

/** The decoder Linears' GGUF names (blk.N.<name>.weight), by Hugging Face module name. */
export const GGUF_LINEAR: Record<string, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

/** What the type rules need to know of the model (llama.cpp's hparams). */
export interface SchemeModel {
  /** GGUF architecture: qwen2 | qwen3 | llama. */
  arch: string;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  /** Experts per MoE layer (0 / 1: dense). */
  nExpert?: number;
}

/** A 2-D weight: its GGUF name and ne0 (the row length, the input width). */
export interface SchemeTensor {
  name: string;
  ne0: number;
  /** The Hugging Face name, for messages. */
  label?: string;
}

/** A tensor's assignment: its type, or null (kept float); `fallbackFrom` when llama's fallback applied. */
export interface TensorType {
  type: GgmlQuantType | null;
  fallbackFrom?: GgmlQuantType;
}

export class SchemeError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'SchemeError';
  }
}

type Category =
  | 'output'
  | 'token_embd'
  | 'attn_qkv'
  | 'attn_kv_b'
  | 'attn_v'
  | 'attn_k'
  | 'attn_q'
  | 'attn_output'
  | 'ffn_up'
  | 'ffn_gate'
  | 'ffn_down'
  | 'other';

/** tensor_get_category. */
function categoryOf(name: string): Category {
  if (name === 'output.weight') return 'output';
  if (name === 'token_embd.weight' || name === 'per_layer_token_embd.weight') return 'token_embd';
  for (const c of ['attn_qkv', 'attn_kv_b', 'attn_v', 'attn_k', 'attn_q', 'attn_output'] as const)
    if (name.includes(`${c}.weight`)) return c;
  for (const c of ['ffn_up', 'ffn_gate', 'ffn_down'] as const) if (name.includes(c)) return c;
  return 'other';
}

/** tensor_allows_quantization, for the tensors rac's dense families have (all 2-D here). */
function allowsQuantization(name: string): boolean {
  return name.endsWith('weight') && !name.includes('_norm.weight') && !name.includes('ffn_gate_inp.weight');
}

/** llama_model_loader's weight order: layer number (−1 outside blocks) first, then the name (bytewise). */
export function llamaTensorOrder(a: string, b: string): number {
  const layer = (s: string) => {
    const m = /^blk\.(-?\d+)\./.exec(s);
    return m ? Number(m[1]) : -1;
  };
  const la = layer(a);
  const lb = layer(b);
  if (la !== lb) return la - lb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The mix with the same default type, suggested when a one-type scheme meets rows it cannot hold. */
const SAME_TYPE_MIX: Partial<Record<PureScheme, MixScheme>> = { q2_k: 'q2_k_mix', q3_k: 'q3_k_s', q4_k: 'q4_k_s', q5_k: 'q5_k_s' };

const block = (t: GgmlQuantType) => GGML_QUANT_TRAITS[t].block;

/** tensor_type_fallback: the type llama-quantize uses when ne0 is not a multiple of the target's block. */
export function llamaFallback(t: GgmlQuantType, ne0: number): GgmlQuantType | null {
  if (ne0 % block(t) === 0) return t;
  const to: Partial<Record<GgmlQuantType, GgmlQuantType>> = { Q2_K: 'Q4_0', Q3_K: 'Q4_0', Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0' };
  const r = to[t] ?? t;
  return ne0 % block(r) === 0 ? r : null; // llama: F16; rac keeps such tensors F32
}

/**
 * The type of every quantizable tensor under `scheme`: a map GGUF name → assignment (tensors
 * not quantized — 1-D, norms — are absent). Throws SchemeError for a one-type k-quant scheme and
 * a decoder Linear whose rows are not a multiple of 256.
 */
export function schemeTypes(
  scheme: QuantScheme,
  model: SchemeModel,
  tensors: readonly SchemeTensor[],
  hasImatrix = false,
): Map<string, TensorType> {
  void hasImatrix; // decides types only for IQ / Q4_0 / Q5_0 file types, which rac's mixes are not
  const sorted = [...tensors].filter((t) => allowsQuantization(t.name)).sort((a, b) => llamaTensorOrder(a.name, b.name));
  const out = new Map<string, TensorType>();
  const def = SCHEME_INFO[scheme].type;
  if (!isMixScheme(scheme)) {
    for (const t of sorted) {
      const cat = categoryOf(t.name);
      if (cat === 'output' || cat === 'token_embd') {
        out.set(t.name, { type: t.ne0 % block(PURE_OUTPUT_TYPE) === 0 ? PURE_OUTPUT_TYPE : null });
        continue;
      }
      if (t.ne0 % block(def) !== 0) {
        const fb = llamaFallback(def, t.ne0);
        if (def.endsWith('_K')) {
          throw new SchemeError(
            `${t.label ? `${t.label} (${t.name})` : t.name}: rows of ${t.ne0} weights are not a multiple of 256, the ${def} super-block; ` +
              `llama-quantize would write it as ${fb ?? 'F16'} instead — use the llama.cpp mix ${SAME_TYPE_MIX[scheme as PureScheme] ?? 'q5_k_m'}, which falls back the same way, or a model whose widths are multiples of 256`,
          );
        }
        out.set(t.name, { type: null });
        continue;
      }
      out.set(t.name, { type: def });
    }
    return out;
  }
  const ftype = SCHEME_INFO[scheme].ftype;
  const nExpert = Math.max(1, model.nExpert ?? 0);
  const nGqa = model.nHeadKv ? Math.floor(model.nHead / model.nHeadKv) : 0;
  const is70B = model.nLayer === 80 && ((model.arch === 'llama' && model.nHead !== model.nHeadKv) || model.arch === 'qwen2');
  const hasOutput = sorted.some((t) => t.name === 'output.weight');
  const nAttentionWv = sorted.filter((t) => ['attn_v', 'attn_qkv', 'attn_kv_b'].includes(categoryOf(t.name))).length;
  const nFfn = model.nLayer;
  let iAttentionWv = 0;
  let iFfnDown = 0;
  const useMoreBits = (i: number, n: number) => i < Math.floor(n / 8) || i >= Math.floor((7 * n) / 8) || (i - Math.floor(n / 8)) % 3 === 2;
  const layerOf = (name: string, counter: number): number => {
    if (nExpert <= 1) return counter;
    const m = /^blk\.(\d+)\./.exec(name);
    if (!m) throw new SchemeError(`${name}: cannot determine the layer`);
    return Number(m[1]);
  };
  for (const t of sorted) {
    const cat = categoryOf(t.name);
    let nt: GgmlQuantType = def;
    if (cat === 'output' || (!hasOutput && cat === 'token_embd')) {
      if (t.ne0 % block(nt) !== 0) nt = 'Q8_0';
      else if (nt !== 'Q8_0') nt = 'Q6_K';
    } else if (cat === 'token_embd') {
      // untied token_embd keeps the default type for the k-quant mixes
    } else if (cat === 'attn_v' || cat === 'attn_qkv' || cat === 'attn_kv_b') {
      if (ftype === 'Q2_K') nt = nGqa >= 4 ? 'Q4_K' : 'Q3_K';
      else if (ftype === 'Q3_K_M') nt = iAttentionWv < 2 ? 'Q5_K' : 'Q4_K';
      else if (ftype === 'Q3_K_L') nt = 'Q5_K';
      else if ((ftype === 'Q4_K_M' || ftype === 'Q5_K_M') && useMoreBits(iAttentionWv, nAttentionWv)) nt = 'Q6_K';
      else if (ftype === 'Q4_K_S' && iAttentionWv < 4) nt = 'Q5_K';
      if (is70B && (nt === 'Q3_K' || nt === 'Q4_K')) nt = 'Q5_K';
      if (nExpert === 8) nt = 'Q8_0';
      iAttentionWv++;
    } else if (cat === 'attn_k') {
      if (nExpert === 8) nt = 'Q8_0';
    } else if (cat === 'ffn_down') {
      const i = layerOf(t.name, iFfnDown);
      const n = nFfn;
      if (ftype === 'Q2_K') nt = 'Q3_K';
      else if (ftype === 'Q3_K_M')
        nt = i < Math.floor(n / 16) ? 'Q5_K' : 'Q4_K'; // (non-Falcon: use_more_bits or not, Q4_K)
      else if (ftype === 'Q3_K_L') nt = 'Q5_K';
      else if (ftype === 'Q4_K_M') {
        if (useMoreBits(i, n)) nt = 'Q6_K';
      } else if (ftype === 'Q5_K_M' && useMoreBits(i, n)) nt = 'Q6_K';
      else if (ftype === 'Q4_K_S' && i < Math.floor(n / 8)) nt = 'Q5_K';
      iFfnDown++;
    } else if (cat === 'attn_output') {
      if (nExpert === 8) {
        if (['Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q4_K_S', 'Q4_K_M'].includes(ftype)) nt = 'Q5_K';
      } else if (ftype === 'Q2_K') nt = 'Q3_K';
      else if (ftype === 'Q3_K_M') nt = 'Q4_K';
      else if (ftype === 'Q3_K_L') nt = 'Q5_K';
    }
    const fb = llamaFallback(nt, t.ne0);
    out.set(t.name, fb === nt ? { type: nt } : { type: fb, fallbackFrom: nt });
  }
  return out;
}
