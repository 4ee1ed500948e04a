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

export interface PlannedTensor extends TensorType {
  /** GGUF name (blk.N.attn_q.weight, token_embd.weight, output.weight). */
  gguf: string;
  rows: number;
  cols: number;
}

export interface QuantPlan {
  scheme: QuantScheme;
  /** Hugging Face tensor name → its plan (every 2-D weight the scheme covers; type null: kept float). */
  tensors: Map<string, PlannedTensor>;
  /** The importance weights of a tensor (cols values), or undefined when the matrix has none for it. */
  imatrix(hfName: string): Float32Array | undefined;
}

export class QuantPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuantPlanError';
  }
}

/** The GGUF name of every 2-D weight of `m` (HF name → GGUF name and shape). */
export function ggufWeights(m: Model): Map<string, { gguf: string; rows: number; cols: number }> {
  const c = m.config;
  const out = new Map<string, { gguf: string; rows: number; cols: number }>();
  out.set(m.spec.embedName, { gguf: 'token_embd.weight', rows: c.vocabSize, cols: c.hiddenSize });
  for (let l = 0; l < c.numLayers; l++) {
    for (const ls of m.spec.linears(c)) {
      out.set(m.tensorName(l, ls.module), { gguf: `blk.${l}.${GGUF_LINEAR[ls.name]}.weight`, rows: ls.rows, cols: ls.cols });
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
  const list: SchemeTensor[] = [...weights].map(([hf, w]) => ({ name: w.gguf, ne0: w.cols, label: hf }));
  let types: Map<string, TensorType>;
  try {
    types = schemeTypes(
      scheme,
      { arch, nLayer: m.config.numLayers, nHead: m.config.numHeads, nHeadKv: m.config.numKvHeads },
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
        if (e.sums.length !== t.cols) {
          if (t.gguf !== 'token_embd.weight')
            throw new QuantPlanError(
              `${imatrixFile}: "${t.gguf}" has ${e.sums.length} values, but ${hf} has rows of ${t.cols} (an imatrix of another model?)`,
            );
        } else w = imatrixWeights(e);
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
