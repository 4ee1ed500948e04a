import { describeValue } from '../../io/model-file.ts';
import { ConfigError, ConfigReader, type ModelConfig } from '../config.ts';
import type { ArchSpec } from '../spec.ts';
import { llama } from './llama.ts';
import { mistral } from './mistral.ts';
import { qwen2 } from './qwen2.ts';
import { qwen3 } from './qwen3.ts';
import { qwen3Moe } from './qwen3-moe.ts';

export const ARCHS: readonly ArchSpec[] = [qwen2, llama, qwen3, mistral, qwen3Moe];

export function supportedModelTypes(): string[] {
  return ARCHS.flatMap((a) => a.modelTypes);
}

/** Resolve a parsed config.json to its family spec and typed config. */
export function resolveArch(file: string, raw: unknown): { spec: ArchSpec; config: ModelConfig } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(file, 'expected a JSON object');
  }
  const r = new ConfigReader(file, raw as Record<string, unknown>);
  const type = r.str('model_type');
  if (!type) throw new ConfigError(file, `missing "model_type" (supported: ${supportedModelTypes().join(', ')})`);
  const spec = ARCHS.find((a) => a.modelTypes.includes(type));
  if (!spec) {
    throw new ConfigError(file, `unsupported model_type ${describeValue(type)} (supported: ${supportedModelTypes().join(', ')})`);
  }
  return { spec, config: spec.parseConfig(r) };
}
