/**
 * A model's quantization plan under a scheme: the ggml type of each tensor (decided over the whole
 * model by compress/quant-schemes.ts, as llama-quantize decides it on the GGUF) and the importance
 * weights each tensor's quantizer gets from an imatrix (llama-quantize's lookup by GGUF name,
 * sums / count). `rac prune --quant` and `rac export-gguf --dtype` share it, so a tensor gets the
 * same type whether rac quantized it while pruning or quantizes it on export.
 */
import type { GgmlQuantType } from '../compress/ggml-quants.ts';
import { GGUF_ARCH, GGUF_LINEAR, schemeTypes, type QuantScheme, type SchemeTensor, type TensorType } from '../compress/quant-schemes.ts';
import { imatrixWeights, type Imatrix } from '../io/imatrix.ts';
import type { Model } from '../models/model.ts';
import { hasMoeLayers, layerLinears } from '../models/spec.ts';
import { RacError } from '../errors.ts';

export interface PlannedTensor extends TensorType {
  /** GGUF name (blk.N.attn_q.weight, token_embd.weight, output.weight; an MoE expert's stacked blk.N.ffn_down_exps.weight). */
  gguf: string;
  rows: number;
  cols: number;
  /** An MoE expert's index in its stacked GGUF tensor (its slice of a per-expert imatrix entry). */
  expert?: number;
}

export interface QuantPlan {
  scheme: QuantScheme;
  /** Hugging Face tensor name → its plan (every 2-D weight the scheme covers; type null: kept float). */
  tensors: Map<string, PlannedTensor>;
  /** The importance weights of a tensor (cols values), or undefined when the matrix has none for it. */
  imatrix(hfName: string): Float32Array | undefined;
}

export class QuantPlanError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'QuantPlanError';
  }
}

/**
 * The GGUF name of every 2-D weight of `m` (HF name → GGUF name and shape). An MoE layer's experts
 * map to their layer's stacked tensor (`blk.N.ffn_gate_exps.weight` …), one type for all of them;
 * the router (`ffn_gate_inp`) is never quantized (llama-quantize keeps it F32) and is not listed.
 */
export function ggufWeights(m: Model): Map<string, { gguf: string; rows: number; cols: number; expert?: number }> {
  const c = m.config;
  const out = new Map<string, { gguf: string; rows: number; cols: number; expert?: number }>();
  out.set(m.spec.embedName, { gguf: 'token_embd.weight', rows: c.vocabSize, cols: c.hiddenSize });
  for (let l = 0; l < c.numLayers; l++) {
    for (const ls of layerLinears(m.spec, c, l)) {
      out.set(m.tensorName(l, ls.module), { gguf: `blk.${l}.${GGUF_LINEAR[ls.name]}.weight`, rows: ls.rows, cols: ls.cols });
    }
    const ex = m.experts(l);
    if (!ex) continue;
    for (let j = 0; j < ex.count; j++) {
      for (const ls of ex.linears) {
        out.set(m.expertTensorName(l, j, ls.module), {
          gguf: `blk.${l}.${GGUF_LINEAR[ls.name]}_exps.weight`,
          rows: ls.rows,
          cols: ls.cols,
          expert: j,
        });
      }
    }
  }
  if (!m.tiedHead) out.set(m.spec.lmHeadName, { gguf: 'output.weight', rows: c.vocabSize, cols: c.hiddenSize });
  return out;
}

/**
 * The plan of `scheme` for `m`, with `imatrix` when given (checked: an entry whose size is not
 * the tensor's row length is an error, as in llama-quantize — token_embd excepted).
 * Throws QuantPlanError (a one-type k-quant scheme and a Linear whose rows are not a multiple of 256).
 */
export function quantPlan(m: Model, scheme: QuantScheme, imatrix?: Imatrix, imatrixFile = 'the importance matrix'): QuantPlan {
  const arch = GGUF_ARCH[m.config.modelType];
  if (!arch) throw new QuantPlanError(`${m.dir}/config.json: no GGUF mapping for model_type "${m.config.modelType}"`);
  const weights = ggufWeights(m);
  // One entry per GGUF tensor (an MoE layer's experts share their stacked tensor).
  const list: SchemeTensor[] = [];
  const seen = new Set<string>();
  for (const [hf, w] of weights) {
    if (seen.has(w.gguf)) continue;
    seen.add(w.gguf);
    list.push({ name: w.gguf, ne0: w.cols, label: hf });
  }
  let types: Map<string, TensorType>;
  try {
    types = schemeTypes(
      scheme,
      {
        arch,
        nLayer: m.config.numLayers,
        nHead: m.config.numHeads,
        nHeadKv: m.config.numKvHeads,
        ...(m.config.moe && hasMoeLayers(m.config) ? { nExpert: m.config.moe.numExperts } : {}),
      },
      list,
      !!imatrix,
    );
  } catch (e) {
    throw new QuantPlanError(`${m.dir}: --quant ${scheme}: ${(e as Error).message}`);
  }
  const tensors = new Map<string, PlannedTensor>();
  for (const [hf, w] of weights) {
    const t = types.get(w.gguf);
    if (t) tensors.set(hf, { ...t, ...w });
  }
  const cache = new Map<string, Float32Array | undefined>();
  if (imatrix && ![...tensors.values()].some((t) => t.type && imatrix.entries.has(t.gguf)))
    throw new QuantPlanError(
      `${imatrixFile}: no entry for any tensor --quant ${scheme} quantizes (it has ${[...imatrix.entries.keys()].slice(0, 3).join(', ')}…; rac and llama-imatrix name them blk.N.attn_q.weight …)`,
    );
  return {
    scheme,
    tensors,
    imatrix(hf) {
      if (!imatrix) return undefined;
      if (cache.has(hf)) return cache.get(hf);
      const t = tensors.get(hf);
      const e = t ? imatrix.entries.get(t.gguf) : undefined;
      let w: Float32Array | undefined;
      if (t && e) {
        // An MoE expert reads its slice of the stacked tensor's per-expert entry (E × cols values).
        const want = t.expert !== undefined ? t.cols * e.counts.length : t.cols;
        if (e.sums.length !== want || (t.expert !== undefined && t.expert >= e.counts.length)) {
          if (t.gguf !== 'token_embd.weight')
            throw new QuantPlanError(
              `${imatrixFile}: "${t.gguf}" has ${e.sums.length} values, but ${hf} has rows of ${t.cols} (an imatrix of another model?)`,
            );
        } else {
          const all = imatrixWeights(e);
          w = t.expert !== undefined ? all.slice(t.expert * t.cols, (t.expert + 1) * t.cols) : all;
        }
      }
      cache.set(hf, w);
      return w;
    },
  };
}

/** The tensors of a plan that are quantized (type not null), as [HF name, type]. */
export function quantizedTensors(plan: QuantPlan): [string, GgmlQuantType][] {
  return [...plan.tensors].filter(([, t]) => t.type !== null).map(([hf, t]) => [hf, t.type!]);
}
