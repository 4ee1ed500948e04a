/** Llama 1–3 (Llama-3 `rope_scaling` included): `attention_bias` applies to q/k/v/o, default off. */
import type { ArchSpec } from '../spec.ts';
import { llamaStyleLinears, llamaStyleNorms } from '../spec.ts';
import { HF_NAMES, parseLlamaStyle } from './common.ts';

export const llama: ArchSpec = {
  modelTypes: ['llama'],
  hfArchitecture: 'LlamaForCausalLM',
  parseConfig: (r) => parseLlamaStyle(r, { attnBias: 'config', qkNorm: false, ropeThetaDefault: 10000, tieDefault: false }),
  ...HF_NAMES,
  linears: llamaStyleLinears,
  norms: llamaStyleNorms,
};
