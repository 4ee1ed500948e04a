/**
 * Tiny synthetic chain-of-thought tasks for rac's own small reasoning model (issue 4):
 * `arith` (digit-by-digit arithmetic) and `trace` (straight-line program tracing).
 *
 * Splits are disjoint BY CONSTRUCTION: sha256 of the prompt (the canonical problem text)
 * decides a problem's split (first 32 bits mod 100: < 80 train, < 90 calib, else eval), and
 * generateSplit only keeps draws whose hash lands in the requested split.
 */
import { createRng, hashSeed, type Rng } from '../rng.ts';
import { arithPrompt, arithProblem, arithProblemV2, arithSteps, generateArith, sampleArithSpec } from './arith.ts';
import { codePrompt, codeProblem, generateCode, sampleCodeSpec } from './code.ts';
import { ALL_FAMILIES, sha256Hex, TINY_FORMATS, type Family, type Split, type TinyFormat, type TinyProblem } from './common.ts';
import { DEFAULT_INJECT_RATE, planInjection } from './selfcheck.ts';
import { generateTrace, sampleTraceProgram, traceProblem, traceProblemV2, tracePrompt, traceSteps } from './trace.ts';

export {
  ALL_FAMILIES,
  FAMILIES,
  SPLITS,
  TINY_FORMATS,
  renderCompletion,
  type Family,
  type Split,
  type TinyCodeTest,
  type TinyFormat,
  type TinyProblem,
} from './common.ts';
export { DEFAULT_INJECT_RATE, HESITATION_PHRASES, parseHesitation } from './selfcheck.ts';
export * as arith from './arith.ts';
export * as code from './code.ts';
export * as trace from './trace.ts';

/** How generateSplit renders problems. */
export interface SplitOptions {
  /** Scratchpad format (default v1, the shipped model's). The code family exists only in v2. */
  format?: TinyFormat;
  /**
   * v2, train split only: share of problems with one injected error (default
   * DEFAULT_INJECT_RATE). Calib and eval problems are never injected, whatever this says.
   */
  injectRate?: number;
}

/** Percent buckets (of 100) per split: [0, 80) train, [80, 90) calib, [90, 100) eval. */
export const SPLIT_BUCKETS: Readonly<Record<Split, readonly [number, number]>> = {
  train: [0, 80],
  calib: [80, 90],
  eval: [90, 100],
};

/** The split a problem belongs to, decided only by its prompt text. */
export function splitOf(prompt: string): Split {
  const bucket = Number.parseInt(sha256Hex(prompt).slice(0, 8), 16) % 100;
  if (bucket < SPLIT_BUCKETS.train[1]) return 'train';
  if (bucket < SPLIT_BUCKETS.calib[1]) return 'calib';
  return 'eval';
}

export function generateProblem(family: Family, rng: Rng): TinyProblem {
  switch (family) {
    case 'arith':
      return generateArith(rng);
    case 'trace':
      return generateTrace(rng);
    case 'code':
      return generateCode(rng);
    default:
      throw new Error(`unknown tiny task family: ${String(family)}`);
  }
}

/** Draw one problem's prompt cheaply; `build` renders the full record (scratchpad) on demand. */
function drawCandidate(family: Family, rng: Rng): { prompt: string; build: () => TinyProblem } {
  if (family === 'arith') {
    const spec = sampleArithSpec(rng);
    return { prompt: arithPrompt(spec), build: () => arithProblem(spec) };
  }
  if (family === 'code') {
    const spec = sampleCodeSpec(rng);
    return { prompt: codePrompt(spec), build: () => codeProblem(spec) };
  }
  const prog = sampleTraceProgram(rng);
  return { prompt: tracePrompt(prog), build: () => traceProblem(prog) };
}

/** v2 rendering: checks everywhere, and (train split only) a planned injected error. */
function drawCandidateV2(family: Family, rng: Rng, split: Split, seed: number, rate: number): { prompt: string; build: () => TinyProblem } {
  const r = split === 'train' ? rate : 0;
  if (family === 'arith') {
    const spec = sampleArithSpec(rng);
    const prompt = arithPrompt(spec);
    return { prompt, build: () => arithProblemV2(spec, planInjection(prompt, seed, r, arithSteps(spec))) };
  }
  if (family === 'trace') {
    const prog = sampleTraceProgram(rng);
    const prompt = tracePrompt(prog);
    return { prompt, build: () => traceProblemV2(prog, planInjection(prompt, seed, r, traceSteps(prog))) };
  }
  return drawCandidate(family, rng);
}

/**
 * `count` distinct problems of one family that all belong to `split`, deterministic in `seed`.
 * Draws from a stream seeded by (seed, family, split) and keeps only problems whose prompt
 * hashes into `split`, skipping duplicates.
 */
export function generateSplit(split: Split, family: Family, count: number, seed: number, opts: SplitOptions = {}): TinyProblem[] {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`generateSplit: bad count ${count}`);
  if (!ALL_FAMILIES.includes(family)) throw new Error(`unknown tiny task family: ${String(family)}`);
  const format = opts.format ?? 'v1';
  if (!TINY_FORMATS.includes(format)) throw new Error(`unknown tiny task format: ${String(format)}`);
  if (format === 'v1' && family === 'code') throw new Error('the code family exists only in format v2');
  const rate = opts.injectRate ?? DEFAULT_INJECT_RATE;
  if (!(rate >= 0 && rate <= 1)) throw new RangeError(`generateSplit: inject rate ${rate} is not in [0, 1]`);
  const rng = createRng(hashSeed('rac-tiny', family, split, seed));
  const seen = new Set<string>();
  const out: TinyProblem[] = [];
  const maxDraws = 200 * count + 10_000;
  for (let draws = 0; out.length < count; draws++) {
    if (draws >= maxDraws) {
      throw new Error(`generateSplit: only ${out.length}/${count} distinct ${family} problems for ${split} after ${draws} draws`);
    }
    const { prompt, build } = format === 'v1' ? drawCandidate(family, rng) : drawCandidateV2(family, rng, split, seed, rate);
    if (seen.has(prompt) || splitOf(prompt) !== split) continue;
    seen.add(prompt);
    out.push(build());
  }
  return out;
}
