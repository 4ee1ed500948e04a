/**
 * `generation_config.json` of an HF model directory: stop ids and the sampling defaults the model
 * ships with. Missing ids fall back to `config.json` (eos_token_id, bos_token_id, pad_token_id).
 */

import { join } from 'node:path';
import { describeValue, ModelFileError, readModelJson } from './model-file.ts';
import { RacError } from '../errors.ts';

export interface GenerationConfig {
  /** Every id that ends generation (HF allows an int or a list); may be empty. */
  eosTokenIds: number[];
  bosTokenId?: number;
  padTokenId?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  doSample?: boolean;
  maxNewTokens?: number;
}

export class GenerationConfigError extends RacError {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'GenerationConfigError';
  }
}

/** `dir/name` through model-file.ts (no symlink escape, regular files only); undefined when absent. */
function readJsonObject(dir: string, name: string): Record<string, unknown> | undefined {
  let parsed: unknown;
  try {
    parsed = readModelJson(dir, name);
  } catch (e) {
    if (e instanceof ModelFileError) throw new GenerationConfigError(e.file, e.problem);
    throw e;
  }
  if (parsed === undefined) return undefined;
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new GenerationConfigError(join(dir, name), 'expected a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

/** eos_token_id: int | int[] | null/absent (→ undefined). */
function eosIds(file: string, v: unknown): number[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (isId(v)) return [v];
  if (Array.isArray(v) && v.every(isId)) return [...new Set(v)];
  throw new GenerationConfigError(file, `"eos_token_id" must be an integer or a list of integers, got ${describeValue(v)}`);
}

function optId(file: string, raw: Record<string, unknown>, key: string): number | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  // Some configs write a one-element list for bos/pad too.
  if (Array.isArray(v) && v.length === 1 && isId(v[0])) return v[0];
  if (!isId(v)) throw new GenerationConfigError(file, `"${key}" must be a non-negative integer, got ${describeValue(v)}`);
  return v;
}

function optNumber(file: string, raw: Record<string, unknown>, key: string): number | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new GenerationConfigError(file, `"${key}" must be a number, got ${describeValue(v)}`);
  }
  return v;
}

function optInt(file: string, raw: Record<string, unknown>, key: string): number | undefined {
  const v = optNumber(file, raw, key);
  if (v !== undefined && !Number.isInteger(v)) {
    throw new GenerationConfigError(file, `"${key}" must be an integer, got ${v}`);
  }
  return v;
}

function optBool(file: string, raw: Record<string, unknown>, key: string): boolean | undefined {
  const v = raw[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new GenerationConfigError(file, `"${key}" must be a boolean, got ${describeValue(v)}`);
  return v;
}

/**
 * Reads `dir/generation_config.json` when present; ids it lacks come from `configJson` (or, when
 * not given, `dir/config.json` if present). Malformed JSON or fields → error naming the file.
 */
export function loadGenerationConfig(dir: string, configJson?: Record<string, unknown>, vocabSize?: number): GenerationConfig {
  const genPath = join(dir, 'generation_config.json');
  const gen = readJsonObject(dir, 'generation_config.json') ?? {};

  const cfgPath = join(dir, 'config.json');
  const cfg: Record<string, unknown> = configJson ?? readJsonObject(dir, 'config.json') ?? {};

  const out: GenerationConfig = {
    eosTokenIds: eosIds(genPath, gen.eos_token_id) ?? eosIds(cfgPath, cfg.eos_token_id) ?? [],
  };
  if (vocabSize !== undefined) {
    // Ids the model can never produce (or embed) are a broken file, not a stop condition.
    for (const key of ['eos_token_id', 'bos_token_id', 'pad_token_id']) {
      const v = gen[key];
      for (const id of Array.isArray(v) ? v : [v]) {
        if (isId(id) && id >= vocabSize)
          throw new GenerationConfigError(genPath, `"${key}" ${id} is outside the model's vocabulary [0, ${vocabSize})`);
      }
    }
  }
  const bos = optId(genPath, gen, 'bos_token_id') ?? optId(cfgPath, cfg, 'bos_token_id');
  const pad = optId(genPath, gen, 'pad_token_id') ?? optId(cfgPath, cfg, 'pad_token_id');
  if (bos !== undefined) out.bosTokenId = bos;
  if (pad !== undefined) out.padTokenId = pad;
  const temperature = optNumber(genPath, gen, 'temperature');
  const topP = optNumber(genPath, gen, 'top_p');
  const topK = optInt(genPath, gen, 'top_k');
  const doSample = optBool(genPath, gen, 'do_sample');
  const maxNewTokens = optInt(genPath, gen, 'max_new_tokens');
  if (temperature !== undefined) out.temperature = temperature;
  if (topP !== undefined) out.topP = topP;
  if (topK !== undefined) out.topK = topK;
  if (doSample !== undefined) out.doSample = doSample;
  if (maxNewTokens !== undefined) out.maxNewTokens = maxNewTokens;
  return out;
}
