/** Qwen2 (and DeepSeek-R1-Distill-Qwen): q/k/v carry a bias, o does not; tied head on small sizes. */
import type { ArchSpec } from '../spec.ts';
import { llamaStyleLinears, llamaStyleNorms } from '../spec.ts';
import { HF_NAMES, parseLlamaStyle } from './common.ts';

export const qwen2: ArchSpec = {
  modelTypes: ['qwen2'],
  hfArchitecture: 'Qwen2ForCausalLM',
  parseConfig: (r) => parseLlamaStyle(r, { attnBias: { qkv: true, o: false }, qkNorm: false, ropeThetaDefault: 10000, tieDefault: false }),
  ...HF_NAMES,
  linears: llamaStyleLinears,
  norms: llamaStyleNorms,
};
