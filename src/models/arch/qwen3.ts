/** Qwen3: per-head RMSNorm on q and k (q_norm/k_norm) before RoPE, no q/k/v bias by default. */
import type { ArchSpec } from '../spec.ts';
import { llamaStyleLinears, llamaStyleNorms } from '../spec.ts';
import { HF_NAMES, parseLlamaStyle } from './common.ts';

export const qwen3: ArchSpec = {
  modelTypes: ['qwen3'],
  hfArchitecture: 'Qwen3ForCausalLM',
  parseConfig: (r) => parseLlamaStyle(r, { attnBias: 'config', qkNorm: true, ropeThetaDefault: 1000000, tieDefault: false }),
  ...HF_NAMES,
  linears: llamaStyleLinears,
  norms: llamaStyleNorms,
};
