/**
 * Format v2's self-checks and injected errors, shared by the arith and trace families.
 *
 * Every checkable step (a column of a sum/difference/product, a traced line's one operation) is
 * followed by a short check that recomputes it another way. In a share of TRAIN problems (the
 * injection rate, a setting of generateSplit) one step is written with a wrong value (marked with
 * `wrong()` so the trainer gives those tokens no loss), the check run on that wrong value exposes
 * the mismatch, a hesitation phrase names it (`Wait, 8 is not 7.`) and the step is redone
 * correctly. Calib and eval problems never carry an injected error.
 *
 * The phrases use every word `rac eval` counts as a hesitation (src/study/eval.ts: "wait",
 * "but wait", "alternatively", "hmm"), one hesitation per phrase.
 */
import { createRng, hashSeed, type Rng } from '../rng.ts';

/** Default share of train problems with one injected error (format v2). */
export const DEFAULT_INJECT_RATE = 0.15;

/** `{got}` is what the check computed, `{want}` what it should equal. */
export const HESITATION_PHRASES: readonly string[] = [
  'Wait, {got} is not {want}.',
  'But wait, {got} is not {want}.',
  'Hmm, {got} is not {want}.',
  'Alternatively, redo it: {got} is not {want}.',
];

/** A hesitation phrase (drawn from HESITATION_PHRASES) naming the failed comparison. */
export function hesitation(rng: Rng, got: string, want: string): string {
  return rng.pick(HESITATION_PHRASES).replace('{got}', got).replace('{want}', want);
}

/** Parse a hesitation phrase at the start of `text`: its got/want and length, or null. */
export function parseHesitation(text: string): { got: string; want: string; length: number } | null {
  const m = /^(?:Wait, |But wait, |Hmm, |Alternatively, redo it: )(-?\d+) is not (-?\d+)\./.exec(text);
  return m ? { got: m[1]!, want: m[2]!, length: m[0].length } : null;
}

/** Where a problem's one injected error goes: the step index, and the rng that draws the wrong value and the phrase. */
export interface Injection {
  step: number;
  rng: Rng;
}

/**
 * Where (if anywhere) a problem's one injected error goes: null for no injection, else the step
 * index in [0, steps) and the rng that draws the wrong value and the phrase. Deterministic in
 * (seed, prompt); only the train split is ever injected.
 */
export function planInjection(prompt: string, seed: number, rate: number, steps: number): Injection | null {
  if (!(rate > 0) || steps <= 0) return null;
  const rng = createRng(hashSeed('rac-tiny-inject', seed, prompt));
  if (!rng.bool(rate)) return null;
  return { step: rng.int(0, steps - 1), rng };
}

/** Counts the checkable steps of one solve and fires (returns the plan's rng) at the planned one. */
export class Fault {
  private n = 0;
  constructor(private readonly plan: Injection | null) {}
  next(): Rng | null {
    const hit = this.plan !== null && this.n === this.plan.step;
    this.n++;
    return hit ? this.plan!.rng : null;
  }
  /** Steps seen so far. */
  get steps(): number {
    return this.n;
  }
}

/**
 * A wrong value for `right` in [lo, hi]: mostly near misses (±1, ±2, ±10), otherwise uniform.
 * Never equal to `right`; `ok` may veto candidates (e.g. a check that must stay non-negative).
 */
export function wrongValue(rng: Rng, right: number, lo: number, hi: number, ok: (v: number) => boolean = () => true): number {
  const near = [right + 1, right - 1, right + 2, right - 2, right + 10, right - 10].filter((v) => v >= lo && v <= hi && ok(v));
  if (near.length > 0 && rng.bool(0.7)) return rng.pick(near);
  const all: number[] = [];
  for (let v = lo; v <= hi; v++) if (v !== right && ok(v)) all.push(v);
  if (all.length === 0) throw new Error(`wrongValue: no wrong value for ${right} in [${lo}, ${hi}]`);
  return rng.pick(all);
}
