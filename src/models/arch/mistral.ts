/** Mistral: Llama layout without biases; optional sliding-window attention (`sliding_window`). */
import type { ArchSpec } from '../spec.ts';
import { llamaStyleLinears, llamaStyleNorms } from '../spec.ts';
import { HF_NAMES, parseLlamaStyle } from './common.ts';

export const mistral: ArchSpec = {
  modelTypes: ['mistral'],
  hfArchitecture: 'MistralForCausalLM',
  parseConfig: (r) => parseLlamaStyle(r, { attnBias: { qkv: false, o: false }, qkNorm: false, ropeThetaDefault: 10000, tieDefault: false }),
  ...HF_NAMES,
  linears: llamaStyleLinears,
  norms: llamaStyleNorms,
};
