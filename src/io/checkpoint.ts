/**
 * A Hugging Face model directory on disk: config.json, safetensors (single or sharded),
 * tokenizer and generation files. Architecture-agnostic: src/models/model.ts maps it to an ArchSpec.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SafetensorsModel } from './safetensors.ts';

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

/** Files beside the weights that a pruned copy carries over unchanged. */
export const SIDECAR_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'chat_template.jinja',
  'chat_template.json',
  'README.md',
  'LICENSE',
] as const;

export function readJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CheckpointError(`${path}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code ?? String(e)})`}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

export interface CheckpointDir {
  dir: string;
  configPath: string;
  configRaw: unknown;
  tensors: SafetensorsModel;
}

/** Open a model directory: parse config.json and index the safetensors (headers only). */
export function openCheckpointDir(dir: string): CheckpointDir {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) {
    throw new CheckpointError(`${abs}: not a model directory (expected config.json and safetensors weights)`);
  }
  const configPath = join(abs, 'config.json');
  const configRaw = readJsonFile(configPath);
  const tensors = SafetensorsModel.open(abs);
  return { dir: abs, configPath, configRaw, tensors };
}
