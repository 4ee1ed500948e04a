/**
 * The random checkpoints rac is compared with llama.cpp on (scripts/check-llamacpp.ts) and the
 * goldens made from them (test/export/llamacpp-goldens.test.ts): deterministic from their options.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PURE_SCHEMES, QUANT_SCHEMES, type QuantScheme } from '../../../src/compress/quant-schemes.ts';
import type { Imatrix } from '../../../src/io/imatrix.ts';
import { RacTokenizer } from '../../../src/io/tokenizer.ts';
import type { Model } from '../../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../../src/models/random.ts';
import { buildCalibSet } from '../../../src/prune/calib-modes.ts';
import { computeImatrix } from '../../../src/prune/imatrix.ts';

export const GOLDEN_DIR = join(import.meta.dirname, '.');
/** llama-imatrix's -c: the chunk length both tools cut the text into. */
export const IMATRIX_CTX = 128;

/** rac's importance matrix of `model` on `text` cut as llama-imatrix cuts it: chunks of IMATRIX_CTX tokens, the remainder dropped. */
export async function racImatrixLikeLlama(model: Model, text: string, run: { batchTokens: number; threads: number }): Promise<Imatrix> {
  const tok = await RacTokenizer.load(model.dir);
  const n = tok.encode(readFileSync(text, 'utf8')).length;
  const calib = await buildCalibSet(
    'text',
    { textFiles: [text] },
    { tokenizer: tok, vocabSize: model.config.vocabSize },
    { tokenBudget: Math.floor(n / IMATRIX_CTX) * IMATRIX_CTX, maxSeqLen: IMATRIX_CTX, overflow: 'split' },
  );
  return (await computeImatrix(model, calib, { batchTokens: run.batchTokens, runtime: { threads: run.threads } })).imatrix;
}

export interface CheckModel {
  key: string;
  opts: RandomCheckpointOptions;
  /** The schemes compared (one-type k-quants need widths that are multiples of 256). */
  schemes: readonly QuantScheme[];
}

const MIXES_AND_LEGACY = QUANT_SCHEMES.filter((s) => !(PURE_SCHEMES as readonly string[]).includes(s) || s === 'q4_0' || s === 'q8_0');

/** The check's models: every width a multiple of 256 (qwen2); an intermediate of 352 (llama: fallbacks, permuted q/k, untied output). */
export const CHECK_MODELS: readonly CheckModel[] = [
  {
    key: 'qwen2-256',
    opts: { family: 'qwen2', seed: 2701, layers: 8, hidden: 256, intermediate: 512, heads: 4, kvHeads: 2, tied: true },
    schemes: QUANT_SCHEMES,
  },
  {
    key: 'llama-352',
    opts: { family: 'llama', seed: 2702, layers: 4, hidden: 256, intermediate: 352, heads: 4, kvHeads: 1 },
    schemes: MIXES_AND_LEGACY,
  },
];

/** The goldens' models: the same families, two layers (npm test quantizes them with every scheme). */
export const GOLDEN_MODELS: readonly CheckModel[] = [
  {
    key: 'qwen2-256-small',
    opts: { family: 'qwen2', seed: 2703, layers: 2, hidden: 256, intermediate: 256, heads: 2, kvHeads: 1, tied: true },
    schemes: QUANT_SCHEMES,
  },
  {
    key: 'llama-352-small',
    opts: { family: 'llama', seed: 2704, layers: 2, hidden: 256, intermediate: 352, heads: 4, kvHeads: 1 },
    schemes: MIXES_AND_LEGACY,
  },
];
