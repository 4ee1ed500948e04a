/**
 * Export the trainer's parameters as a Hugging Face directory (F32, tied embeddings) — Qwen2, or
 * Qwen3-MoE for a config with `moe` — written to a temp dir beside `out` and renamed into place.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { writeTokenizerFiles } from '../../src/io/bpe.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { TOKENIZER_OPTIONS } from './data.ts';
import { headDim, type Params, type TinyConfig } from './model.ts';

export const MAX_POSITIONS = 512;

function tokenId(tj: { added_tokens: { id: number; content: string }[] }, s: string): number {
  const t = tj.added_tokens.find((a) => a.content === s);
  if (!t) throw new Error(`tokenizer lacks ${s}`);
  return t.id;
}

export function hfConfig(c: TinyConfig, imEnd: number, endOfText: number): Record<string, unknown> {
  const moe = c.moe
    ? {
        architectures: ['Qwen3MoeForCausalLM'],
        model_type: 'qwen3_moe',
        head_dim: headDim(c),
        attention_bias: false,
        num_experts: c.moe.experts,
        num_experts_per_tok: c.moe.topK,
        moe_intermediate_size: c.moe.expertIntermediate,
        norm_topk_prob: true,
        decoder_sparse_step: 1,
        mlp_only_layers: [],
        router_aux_loss_coef: c.moe.auxCoef,
        output_router_logits: false,
      }
    : null;
  return {
    architectures: ['Qwen2ForCausalLM'],
    model_type: 'qwen2',
    ...moe,
    hidden_size: c.hidden,
    intermediate_size: c.intermediate,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    num_key_value_heads: c.kvHeads,
    max_position_embeddings: MAX_POSITIONS,
    max_window_layers: c.layers,
    use_sliding_window: false,
    sliding_window: null,
    rms_norm_eps: c.eps,
    rope_theta: c.ropeTheta,
    vocab_size: c.vocab,
    tie_word_embeddings: true,
    bos_token_id: endOfText,
    eos_token_id: imEnd,
    hidden_act: 'silu',
    attention_dropout: 0.0,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: 'float32',
  };
}

/** HF tensors (name, shape, data) from the fused training layout. */
export function hfTensors(c: TinyConfig, p: Params): { name: string; dtype: string; shape: number[]; data: Float32Array }[] {
  const D = c.hidden;
  const hd = headDim(c);
  const Q = c.heads * hd;
  const K = c.kvHeads * hd;
  const I = c.intermediate;
  const out: { name: string; dtype: string; shape: number[]; data: Float32Array }[] = [];
  const put = (name: string, shape: number[], data: Float32Array) => out.push({ name, dtype: 'F32', shape, data: data.slice() });
  put('model.embed_tokens.weight', [c.vocab, D], p.get('embed'));
  for (let l = 0; l < c.layers; l++) {
    const pre = `model.layers.${l}.`;
    if (c.moe) {
      const { experts: E, expertIntermediate: Ie } = c.moe;
      const wqkv = p.get(`l${l}.wqkv`);
      const wgu = p.get(`l${l}.wgu`); // (2·E·Ie, D): all gates, then all ups
      const wd = p.get(`l${l}.wd`); // (D, E·Ie): expert j's down_proj is columns j·Ie..(j+1)·Ie
      put(`${pre}input_layernorm.weight`, [D], p.get(`l${l}.ln1`));
      put(`${pre}self_attn.q_proj.weight`, [Q, D], wqkv.subarray(0, Q * D));
      put(`${pre}self_attn.k_proj.weight`, [K, D], wqkv.subarray(Q * D, (Q + K) * D));
      put(`${pre}self_attn.v_proj.weight`, [K, D], wqkv.subarray((Q + K) * D, (Q + 2 * K) * D));
      put(`${pre}self_attn.q_norm.weight`, [hd], p.get(`l${l}.qn`));
      put(`${pre}self_attn.k_norm.weight`, [hd], p.get(`l${l}.kn`));
      put(`${pre}self_attn.o_proj.weight`, [D, Q], p.get(`l${l}.wo`));
      put(`${pre}post_attention_layernorm.weight`, [D], p.get(`l${l}.ln2`));
      put(`${pre}mlp.gate.weight`, [E, D], p.get(`l${l}.router`));
      for (let j = 0; j < E; j++) {
        const ex = `${pre}mlp.experts.${j}.`;
        put(`${ex}gate_proj.weight`, [Ie, D], wgu.subarray(j * Ie * D, (j + 1) * Ie * D));
        put(`${ex}up_proj.weight`, [Ie, D], wgu.subarray((E + j) * Ie * D, (E + j + 1) * Ie * D));
        const down = new Float32Array(D * Ie); // (D, Ie)
        for (let d = 0; d < D; d++) down.set(wd.subarray(d * E * Ie + j * Ie, d * E * Ie + (j + 1) * Ie), d * Ie);
        put(`${ex}down_proj.weight`, [D, Ie], down);
      }
      continue;
    }
    const wqkv = p.get(`l${l}.wqkv`);
    const bqkv = p.get(`l${l}.bqkv`);
    const wgu = p.get(`l${l}.wgu`);
    put(`${pre}input_layernorm.weight`, [D], p.get(`l${l}.ln1`));
    put(`${pre}self_attn.q_proj.weight`, [Q, D], wqkv.subarray(0, Q * D));
    put(`${pre}self_attn.q_proj.bias`, [Q], bqkv.subarray(0, Q));
    put(`${pre}self_attn.k_proj.weight`, [K, D], wqkv.subarray(Q * D, (Q + K) * D));
    put(`${pre}self_attn.k_proj.bias`, [K], bqkv.subarray(Q, Q + K));
    put(`${pre}self_attn.v_proj.weight`, [K, D], wqkv.subarray((Q + K) * D, (Q + 2 * K) * D));
    put(`${pre}self_attn.v_proj.bias`, [K], bqkv.subarray(Q + K, Q + 2 * K));
    put(`${pre}self_attn.o_proj.weight`, [D, Q], p.get(`l${l}.wo`));
    put(`${pre}post_attention_layernorm.weight`, [D], p.get(`l${l}.ln2`));
    put(`${pre}mlp.gate_proj.weight`, [I, D], wgu.subarray(0, I * D));
    put(`${pre}mlp.up_proj.weight`, [I, D], wgu.subarray(I * D, 2 * I * D));
    put(`${pre}mlp.down_proj.weight`, [D, I], p.get(`l${l}.wd`));
  }
  put('model.norm.weight', [D], p.get('lnf'));
  return out;
}

/** Write the complete HF directory `out` (replaced atomically) from params and a tokenizer dir. */
export function exportHf(out: string, c: TinyConfig, p: Params, tokenizerDir: string, metadata: Record<string, string> = {}): void {
  const dir = resolve(out);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const tj = JSON.parse(readFileSync(join(tokenizerDir, 'tokenizer.json'), 'utf8'));
  const imEnd = tokenId(tj, '<|im_end|>');
  const eot = tokenId(tj, '<|endoftext|>');
  writeSafetensors(join(tmp, 'model.safetensors'), hfTensors(c, p), { format: 'pt', ...metadata });
  writeFileSync(join(tmp, 'config.json'), JSON.stringify(hfConfig(c, imEnd, eot), null, 2) + '\n');
  writeFileSync(
    join(tmp, 'generation_config.json'),
    JSON.stringify({ bos_token_id: eot, eos_token_id: [imEnd, eot], do_sample: true, temperature: 0.6, top_p: 0.95 }, null, 2) + '\n',
  );
  writeTokenizerFiles(tmp, tj, TOKENIZER_OPTIONS);
  // Keep files already in `out` that the export does not write (the model card README.md, v2's RECIPE.md).
  const keep = ['README.md', 'RECIPE.md'];
  for (const k of keep) {
    try {
      writeFileSync(join(tmp, k), readFileSync(join(dir, k)));
    } catch {
      /* absent */
    }
  }
  mkdirSync(dirname(dir), { recursive: true });
  const old = `${dir}.old-${process.pid}`;
  rmSync(old, { recursive: true, force: true });
  try {
    renameSync(dir, old);
  } catch {
    /* no previous export */
  }
  renameSync(tmp, dir);
  rmSync(old, { recursive: true, force: true });
}
