/**
 * Tiny synthetic chain-of-thought tasks for rac's own small reasoning model (issue 4):
 * `arith` (digit-by-digit arithmetic) and `trace` (straight-line program tracing).
 *
 * Splits are disjoint BY CONSTRUCTION: sha256 of the prompt (the canonical problem text)
 * decides a problem's split (first 32 bits mod 100: < 80 train, < 90 calib, else eval), and
 * generateSplit only keeps draws whose hash lands in the requested split.
 */
import { createRng, hashSeed, type Rng } from '../rng.ts';
import { arithPrompt, arithProblem, generateArith, sampleArithSpec } from './arith.ts';
import { FAMILIES, sha256Hex, type Family, type Split, type TinyProblem } from './common.ts';
import { generateTrace, sampleTraceProgram, traceProblem, tracePrompt } from './trace.ts';

export { FAMILIES, SPLITS, renderCompletion, type Family, type Split, type TinyProblem } from './common.ts';
export * as arith from './arith.ts';
export * as trace from './trace.ts';

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
  const prog = sampleTraceProgram(rng);
  return { prompt: tracePrompt(prog), build: () => traceProblem(prog) };
}

/**
 * `count` distinct problems of one family that all belong to `split`, deterministic in `seed`.
 * Draws from a stream seeded by (seed, family, split) and keeps only problems whose prompt
 * hashes into `split`, skipping duplicates.
 */
export function generateSplit(split: Split, family: Family, count: number, seed: number): TinyProblem[] {
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`generateSplit: bad count ${count}`);
  if (!FAMILIES.includes(family)) throw new Error(`unknown tiny task family: ${String(family)}`);
  const rng = createRng(hashSeed('rac-tiny', family, split, seed));
  const seen = new Set<string>();
  const out: TinyProblem[] = [];
  const maxDraws = 200 * count + 10_000;
  for (let draws = 0; out.length < count; draws++) {
    if (draws >= maxDraws) {
      throw new Error(`generateSplit: only ${out.length}/${count} distinct ${family} problems for ${split} after ${draws} draws`);
    }
    const { prompt, build } = drawCandidate(family, rng);
    if (seen.has(prompt) || splitOf(prompt) !== split) continue;
    seen.add(prompt);
    out.push(build());
  }
  return out;
}
