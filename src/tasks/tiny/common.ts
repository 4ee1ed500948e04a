/**
 * Shared record shape and helpers for the tiny synthetic reasoning tasks (see ./index.ts).
 */
import { createHash } from 'node:crypto';

/** `arith` and `trace` end in `\boxed{N}`; `code` ends in a fenced Python program (format v2). */
export type Family = 'arith' | 'trace' | 'code';
export type Split = 'train' | 'calib' | 'eval';

/** The boxed-answer families (format v1's two; the shipped model's). */
export const FAMILIES: readonly Family[] = ['arith', 'trace'];
/** Every family, code included (format v2's mix). */
export const ALL_FAMILIES: readonly Family[] = ['arith', 'trace', 'code'];
export const SPLITS: readonly Split[] = ['train', 'calib', 'eval'];

/**
 * Scratchpad format. `v1`: the shipped model's (plain steps). `v2`: every step is followed by a
 * check that recomputes it another way, and train-split problems may carry an injected error that
 * the check exposes, followed by a hesitation phrase and the redone step (see ./selfcheck.ts).
 */
export type TinyFormat = 'v1' | 'v2';
export const TINY_FORMATS: readonly TinyFormat[] = ['v1', 'v2'];

/** One stdin/stdout test of a code problem (the layout `rac eval --task code` reads). */
export interface TinyCodeTest {
  input: string;
  output: string;
}

export interface TinyProblem {
  /** Stable id: `<family>-<first 12 hex digits of sha256(prompt)>`. */
  id: string;
  family: Family;
  /** The user message text (no chat template applied). */
  prompt: string;
  /** Canonical integer string, e.g. "-42". */
  answer: string;
  /** `<think>\n…scratchpad…\n</think>\nThe answer is \boxed{N}.` (code: `…</think>\n```python …```) */
  completion: string;
  /**
   * Format v2, train split only: character spans [start, end) of `completion` holding injected
   * wrong tokens (no loss there; they stay in the context). Absent when nothing was injected.
   */
  noLoss?: [number, number][];
  /** Code family: stdin/stdout tests (inputs the prompt does not show). */
  tests?: TinyCodeTest[];
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** Zero-pad a non-negative integer to `width` digits. */
export function pad(n: number, width: number): string {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`pad: expected a non-negative integer, got ${n}`);
  const s = String(n);
  if (s.length > width) throw new RangeError(`pad: ${n} does not fit in ${width} digits`);
  return '0'.repeat(width - s.length) + s;
}

/** Strip leading zeros from a digit string ("00420" → "420", "000" → "0"). */
export function stripZeros(digits: string): string {
  const s = digits.replace(/^0+/, '');
  return s === '' ? '0' : s;
}

/** Assemble the completion from scratchpad lines and the final integer answer. */
export function renderCompletion(scratch: readonly string[], answer: string): string {
  return `<think>\n${scratch.join('\n')}\n</think>\nThe answer is \\boxed{${answer}}.`;
}

export function problemId(family: Family, prompt: string): string {
  return `${family}-${sha256Hex(prompt).slice(0, 12)}`;
}

export function makeProblem(family: Family, prompt: string, answer: string, scratch: readonly string[]): TinyProblem {
  return {
    id: problemId(family, prompt),
    family,
    prompt,
    answer,
    completion: renderCompletion(scratch, answer),
  };
}

// Injected wrong tokens are written between these two private-use characters while a v2
// scratchpad is built; extractNoLoss removes them and returns the spans they enclosed.
export const WRONG_OPEN = '\uE000';
export const WRONG_CLOSE = '\uE001';

/** Mark `text` as injected wrong tokens (see extractNoLoss). */
export function wrong(text: string): string {
  return `${WRONG_OPEN}${text}${WRONG_CLOSE}`;
}

/** Remove the wrong-token markers from `marked`; returns the clean text and the marked spans. */
export function extractNoLoss(marked: string): { text: string; spans: [number, number][] } {
  let text = '';
  const spans: [number, number][] = [];
  let open = -1;
  for (const ch of marked) {
    if (ch === WRONG_OPEN) {
      if (open >= 0) throw new Error('extractNoLoss: nested marker');
      open = text.length;
    } else if (ch === WRONG_CLOSE) {
      if (open < 0) throw new Error('extractNoLoss: unbalanced marker');
      spans.push([open, text.length]);
      open = -1;
    } else text += ch;
  }
  if (open >= 0) throw new Error('extractNoLoss: unclosed marker');
  return { text, spans };
}

/** A boxed-answer problem from marked scratchpad lines (v2): markers become `noLoss` spans. */
export function makeMarkedProblem(family: Family, prompt: string, answer: string, scratch: readonly string[]): TinyProblem {
  const { text, spans } = extractNoLoss(renderCompletion(scratch, answer));
  return { id: problemId(family, prompt), family, prompt, answer, completion: text, ...(spans.length > 0 ? { noLoss: spans } : {}) };
}
