/**
 * Shared record shape and helpers for the tiny synthetic reasoning tasks (see ./index.ts).
 */
import { createHash } from 'node:crypto';

export type Family = 'arith' | 'trace';
export type Split = 'train' | 'calib' | 'eval';

export const FAMILIES: readonly Family[] = ['arith', 'trace'];
export const SPLITS: readonly Split[] = ['train', 'calib', 'eval'];

export interface TinyProblem {
  /** Stable id: `<family>-<first 12 hex digits of sha256(prompt)>`. */
  id: string;
  family: Family;
  /** The user message text (no chat template applied). */
  prompt: string;
  /** Canonical integer string, e.g. "-42". */
  answer: string;
  /** `<think>\n…scratchpad…\n</think>\nThe answer is \boxed{N}.` */
  completion: string;
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

export function makeProblem(family: Family, prompt: string, answer: string, scratch: readonly string[]): TinyProblem {
  return {
    id: `${family}-${sha256Hex(prompt).slice(0, 12)}`,
    family,
    prompt,
    answer,
    completion: renderCompletion(scratch, answer),
  };
}
