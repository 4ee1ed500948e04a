/**
 * A Hugging Face model directory on disk: config.json, safetensors (single or sharded),
 * tokenizer and generation files. Architecture-agnostic: src/models/model.ts maps it to an ArchSpec.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ModelFileError, readModelJson } from './model-file.ts';
import { SafetensorsModel } from './safetensors.ts';
import { RacError } from '../errors.ts';

export class CheckpointError extends RacError {
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

/**
 * `dir/name` parsed as JSON through model-file.ts (no symlink escape, regular files only, errors
 * quoting at most a short escaped excerpt); a missing file is "file not found".
 */
export function readModelJsonFile(dir: string, name: string): unknown {
  let v: unknown;
  try {
    v = readModelJson(dir, name);
  } catch (e) {
    if (e instanceof ModelFileError) throw new CheckpointError(e.message);
    throw e;
  }
  if (v === undefined) throw new CheckpointError(`${join(resolve(dir), name)}: file not found`);
  return v;
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
  const configRaw = readModelJsonFile(abs, 'config.json');
  const tensors = SafetensorsModel.open(abs);
  return { dir: abs, configPath, configRaw, tensors };
}
