// Math-task grading. The default grader, `math-verify`, gives the verdicts of Math-Verify (the
// grader lighteval runs for MATH-500 and AIME, and so the one behind the papers' numbers):
// the answer is found as it finds it (boxes, "final answer is", "answer:", the last math or
// number; src/tasks/mathverify/extract.ts), normalized as latex2sympy2_extended does
// (normalize.ts), parsed (parse.ts) and compared with its rules (compare.ts). `legacy` is the
// grader of rac ≤ 0.1 (math-legacy.ts), kept so that old results can be reproduced.
// Nothing here throws on odd input.
import { DEFAULT_TARGETS, extractAnswer, parseAnswerLatex, type Extracted, type ExtractionTargets } from './mathverify/extract.ts';
import { normalizeLatex } from './mathverify/normalize.ts';
import { exprEq } from './mathverify/compare.ts';
import { gradeMathLegacy } from './math-legacy.ts';

export type { ExtractionTargets } from './mathverify/extract.ts';

export const MATH_GRADERS = ['math-verify', 'legacy'] as const;
export type MathGrader = (typeof MATH_GRADERS)[number];

export interface MathGradeOptions {
  /** Default `math-verify`. */
  grader?: MathGrader;
  /** Decimal places to which a decimal answer is compared (Math-Verify's float_rounding). Default 6. */
  precision?: number;
  /** Where the completion's answer is looked for (default: LaTeX, boxes at priority 50, and plain numbers). */
  targets?: ExtractionTargets;
}

export interface MathGrade {
  correct: boolean;
  /** The extracted answer (normalized), null when the completion has none. */
  extracted: string | null;
}

/** Longest answer text compared at all. */
const MAX_ANSWER_CHARS = 2000;

/** Whether a text is a bare answer (no box, no math delimiters): then the whole text is the answer. */
function isBare(text: string): boolean {
  return !/\\boxed|\\fbox|(?<!\\)\$|\\\[|\\\(/.test(text);
}

/** A bare answer, read whole as LaTeX. */
function bareAnswer(text: string): Extracted {
  if (text.trim() === '' || text.length > MAX_ANSWER_CHARS) return { value: null, text: null, fallback: null };
  const normalized = normalizeLatex(text, 'all');
  return { value: parseAnswerLatex(normalized), text: normalized, fallback: normalized };
}

const goldCache = new Map<string, Extracted>();

/**
 * A gold answer: a bare answer (MATH's `answer` column: `\frac{14}{3}`, `(3, \frac{\pi}{2})`) is
 * read whole; one with a box or math delimiters (a worked solution) is extracted as a prediction is.
 */
export function goldAnswer(gold: string, targets: ExtractionTargets = DEFAULT_TARGETS): Extracted {
  const k = `${JSON.stringify(targets)}\u0000${gold}`;
  let g = goldCache.get(k);
  if (!g) {
    g = isBare(gold) ? bareAnswer(gold) : extractAnswer(gold, targets);
    if (goldCache.size > 5000) goldCache.clear();
    goldCache.set(k, g);
  }
  return g;
}

/** Whether two extracted answers agree: parsed with parsed, else the two fallback texts as strings. */
function agree(gold: Extracted, pred: Extracted, precision: number): boolean {
  if (gold.value !== null && pred.value !== null && exprEq(gold.value, pred.value, precision)) return true;
  const g = gold.fallback?.trim() ?? '';
  const p = pred.fallback?.trim() ?? '';
  return g !== '' && g === p;
}

/** The answer a completion gives (normalized text), or null when none is found. */
export function extractMathAnswer(completion: string, targets: ExtractionTargets = DEFAULT_TARGETS): string | null {
  return extractAnswer(completion, targets).text;
}

/** Whether two bare answers are equivalent (`gold` is the reference; the rules are not symmetric). */
export function mathEqual(pred: string, gold: string, precision = 6): boolean {
  if (typeof pred !== 'string' || typeof gold !== 'string') return false;
  return agree(bareAnswer(gold), bareAnswer(pred), precision);
}

/** Grades a completion against a gold answer (bare, or a solution with a \boxed{…}). */
export function gradeMath(completion: string, gold: string, opts: MathGradeOptions = {}): MathGrade {
  if (opts.grader === 'legacy') return gradeMathLegacy(completion, gold);
  const targets = opts.targets ?? DEFAULT_TARGETS;
  const pred = extractAnswer(completion, targets);
  const extracted = pred.text;
  if (pred.value === null && pred.fallback === null) return { correct: false, extracted: null };
  return { correct: agree(goldAnswer(gold, targets), pred, opts.precision ?? 6), extracted };
}
