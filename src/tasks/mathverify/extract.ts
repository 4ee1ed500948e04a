// Answer extraction in Math-Verify's order (its parser.py, v0.8.0, which lighteval's math metrics
// use): regexes grouped by priority — "final answer is … I hope" (0), "final answer … is" (50),
// \boxed (boxedPriority, 50 by default), "answer:" (100), "answer" (200), then any math
// environment or number (300). Within a priority the match that ends last is tried first
// (longest first among equal ends); the first one that parses is the answer. A match whose text
// does not parse leaves its normalized string as a fallback, compared with the other side's
// string only.
import { normalizeLatex } from './normalize.ts';
import { parseLatex, parsePythonExpr } from './parse.ts';
import { finiteSet, pct, type Node } from './ast.ts';

export interface ExtractionTargets {
  /** LaTeX environments and boxes; boxedPriority 0 tries boxes before "final answer is". */
  latex?: { boxedPriority: number } | false;
  /** Plain numbers and arithmetic expressions. */
  expr?: boolean;
}

export const DEFAULT_TARGETS: Required<ExtractionTargets> = { latex: { boxedPriority: 50 }, expr: true };

export interface Extracted {
  /** The parsed answer, or null when no match parsed. */
  value: Node | null;
  /** The answer's text: the parsed match's normalized text, else the first match's (the fallback). */
  text: string | null;
  /** Compared as strings only: the first match's text (Math-Verify's fallback_mode first_match). */
  fallback: string | null;
}

/** `word` matched case-insensitively (JavaScript has no inline (?i:…)). */
const ci = (word: string): string =>
  [...word].map((c) => (/[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c === ' ' ? ' ' : `\\${c}`)).join('');

// ---------------------------------------------------------------------------------------------
// Expressions and numbers

const NUMBER =
  '(?<!\\d)(?:' +
  '(?<integer1>-?[1-9]\\d{0,2}(?:[ ,]\\d{3})+)(?<decimal1>\\.\\d+)?|' +
  // rac: a decimal point only; Math-Verify also reads "2,74" as 2.74 (docs/evaluation.md: differences from Math-Verify)
  '(?<integer2>-?\\d+)(?<decimal2>\\.\\d+)|' +
  '(?<decimal3>\\.\\d+)|' +
  '(?<integer3>-?\\d+)' +
  ')(?<percent>\\s*(?:%|[Pp]ercent|\\s*[Pp]ercentage|\\s*[Pp]ct))?';
const OPS = '\\+\\-\\*\\×\\/\\^\\(\\)\\÷';
const EXPR_CHARS = `[\\d\\.\\s${OPS}]`;
const EXPR = `(?<expr>-?\\(?-?\\d${EXPR_CHARS}*[${OPS}]${EXPR_CHARS}+\\)?)`;
const CURRENCY = '[$€£¥₹₽₪₩₫฿₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₴₵₶₷₸₹₺₻₼₽₾₿]';
const EXPR_PREFIX = '(?:^|\\s|=)(?:\\*\\*)?';
const EXPR_SUFFIX = '(?:\\*\\*)?(?:\\.|,|:|\\s|\\)|\\$|$)';
const EXPR_ANCHORED = `(?:${EXPR_PREFIX}${EXPR}${EXPR_SUFFIX})`;
const NUMBER_ANCHORED = `(?:${EXPR_PREFIX}${CURRENCY}?${NUMBER})`;
const EXPR_OR_NUMBER = `(?:${EXPR_ANCHORED}|${NUMBER_ANCHORED})`;
const ANSWER = ci('answer');

function exprPatterns(): [RegExp, number][] {
  const p: [string, number][] = [
    [`${ci('final answer is')}:?\\s*${EXPR_OR_NUMBER}\\.?\\s?I hope`, 0],
    [`${ci('final answer')}.{0,100}?\\s+is:?${EXPR_OR_NUMBER}`, 50],
    [`${ANSWER}:(?:.{0,100}=\\s*|.{0,50}?)${EXPR_OR_NUMBER}(?!\\s*=)`, 100],
    [`${ANSWER}(?:.{0,100}=\\s*|.{0,50}?)${EXPR_OR_NUMBER}(?!\\s*=)`, 200],
    [EXPR_ANCHORED, 300],
    [NUMBER_ANCHORED, 300],
  ];
  return p.map(([re, prio]) => [new RegExp(re, 'g'), prio]);
}

// ---------------------------------------------------------------------------------------------
// LaTeX environments

function envPattern(prefix: string, boxed: boolean): string {
  const percent = `(?<${prefix}percent>(?:\\\\?%|[Pp]ercent|[Pp]ercentage|[Pp]ct))`;
  let displayDollar = '(?:[^$]|\\$(?!\\$))';
  let displayBracket = '(?:[^\\\\]|\\\\(?!\\]))';
  let inlineDollar = '(?:\\\\[$]|[^\\n$])';
  let inlineParen = '(?:[^\\\\\\n]|\\\\(?!\\)))';
  let inlineBracket = '[^\\n\\]\\[]';
  const box = (c: string) => `${c}*?\\\\boxed\\{${c}+?\\}${c}*?`;
  if (boxed) {
    displayDollar = box(displayDollar);
    displayBracket = box(displayBracket);
    inlineDollar = box(inlineDollar);
    inlineParen = box(inlineParen);
    inlineBracket = box(inlineBracket);
  } else {
    displayDollar += '+?';
    displayBracket += '+?';
    inlineDollar += '+?';
    inlineParen += '+?';
    inlineBracket += '+?';
  }
  const alts = [
    `(?<!\\\\)\\$\\$(?<${prefix}latexDisplayDollar>${displayDollar})(?<!\\\\)\\$\\$`,
    `(?<!\\\\)\\\\\\[(?<${prefix}latexDisplayBracket>${displayBracket})(?<!\\\\)\\\\\\]`,
    `(?<!\\\\|\\d)\\$(?<${prefix}latexInlineDollar>${inlineDollar})(?<!\\\\)\\$`,
    `(?<!\\\\)\\\\\\((?<${prefix}latexInlineParenthesis>${inlineParen})(?<!\\\\)\\\\\\)`,
    `\\s\\[(?<${prefix}latexInlineBracket>${inlineBracket})\\]\\s`,
  ];
  if (!boxed) {
    const n = '-?\\d+(?:[.,]\\d+)?';
    alts.push(`(?<${prefix}latexFraction>-?\\\\frac\\{${n}\\}\\{${n}\\})`);
  }
  return `(?:(?:${alts.join('|')})\\s*${percent}?)`;
}

const NEXT_PREFIXES = ['next1_', 'next2_', 'next3_', 'next4_', 'next5_'];
const PREFIXES = ['first_', ...NEXT_PREFIXES];

function latexPatterns(boxedPriority: number): [RegExp, number][] {
  const envs = envPattern('first_', false) + NEXT_PREFIXES.map((p) => `(?:\\s*(?:,?and|,?or|,)\\s*${envPattern(p, false)})?`).join('');
  const p: [string, number][] = [
    [`${ci('final answer is')}:?\\s*${envs}\\.?\\s?I hope`, 0],
    [`${ci('final answer')}.{0,100}?\\s+is:?\\s*${envs}`, 50],
    [`${ANSWER}:.{0,50}?${envs}`, 100],
    [`${ANSWER}.{0,50}?${envs}`, 200],
    [envs, 300],
  ];
  if (boxedPriority >= 0) {
    const boxedEnvs =
      envPattern('first_', true) + NEXT_PREFIXES.map((q) => `\\s*(?:\\s*(?:,?and|,?or|,)\\s*${envPattern(q, true)})?`).join('');
    p.push([boxedEnvs, boxedPriority]);
    p.push(['(?<first_latexBoxed>\\\\boxed\\{.+\\})', boxedPriority]);
  }
  return p.map(([re, prio]) => [new RegExp(re, 'gs'), prio]);
}

const LATEX_CACHE = new Map<number, [RegExp, number][]>();
let EXPR_CACHE: [RegExp, number][] | null = null;

// ---------------------------------------------------------------------------------------------
// From a match to an answer

interface Candidate {
  match: RegExpExecArray;
  kind: 'latex' | 'expr';
}

/** A number or expression match: the number (thousands separators and leading zeros dropped), or the expression. */
function fromExpr(m: RegExpExecArray): { value: Node | null; text: string } {
  const g = m.groups ?? {};
  let integer = g['integer1'] ?? g['integer2'] ?? g['integer3'] ?? '';
  const decimal = g['decimal1'] ?? g['decimal2'] ?? g['decimal3'] ?? '';
  if (integer || decimal) {
    integer = integer.replace(/[, ]/g, '').replace(/^0+/, '');
    if (integer === '') integer = '0';
    const text = `${integer}${decimal}`;
    const value = parsePythonExpr(text);
    return { value: value && g['percent'] ? pct(value) : value, text };
  }
  const expr = g['expr'] ?? '';
  if (expr) return { value: parsePythonExpr(expr.replace(/\n/g, ' ')), text: expr };
  return { value: null, text: expr };
}

/** The last equation's right side, when the text has no , or ; and more than two = parts. */
function lastEquation(latex: string): string {
  if (latex.includes(',') || latex.includes(';')) return latex;
  const parts = latex.split(/(?<![\\<!>])=/);
  return parts.length > 2 ? parts[parts.length - 1]! : latex;
}

/** Parses normalized LaTeX, retrying with the last equation's right side. */
export function parseAnswerLatex(latex: string): Node | null {
  const v = parseLatex(latex);
  if (v !== null) return v;
  const last = lastEquation(latex);
  return last !== latex ? parseLatex(last) : null;
}

/** A LaTeX match: every environment it joined (and / or / ,), normalized and parsed; several parsed ones form a set. */
function fromLatex(m: RegExpExecArray): { value: Node | null; text: string } {
  const g = m.groups ?? {};
  const values: (Node | null)[] = [];
  const texts: string[] = [];
  for (const prefix of PREFIXES) {
    let latex: string | undefined;
    let kind = '';
    for (const [name, v] of Object.entries(g)) {
      if (v !== undefined && name.startsWith(`${prefix}latex`)) {
        latex = v;
        kind = name.slice(prefix.length);
        break;
      }
    }
    if (latex === undefined) continue;
    const normalized = normalizeLatex(latex, kind === 'latexBoxed' ? 'last' : 'all');
    texts.push(normalized);
    let v = parseAnswerLatex(normalized);
    if (v !== null && g[`${prefix}percent`]) v = pct(v);
    values.push(v);
  }
  if (values.length === 0) return { value: null, text: '' };
  if (values.length > 1 && values.every((v) => v !== null)) {
    const items: Node[] = [];
    for (const v of values as Node[]) {
      if (v.k === 'set') items.push(...v.items);
      else items.push(v);
    }
    return { value: finiteSet(items, 'list'), text: texts.join(' and ') };
  }
  return { value: values[0]!, text: texts[0]! };
}

/**
 * Longest text searched whole; a longer one is searched in its last MAX_TEXT characters. A
 * 32,768-token completion is ~130,000 characters (searched in ~20 ms), so only a runaway text is cut.
 */
const MAX_TEXT = 400_000;

/**
 * The answer of a text under the given targets, as Math-Verify's parse() finds it (see the module
 * comment). Never throws.
 */
export function extractAnswer(input: string, targets: ExtractionTargets = DEFAULT_TARGETS): Extracted {
  const text = input.length > MAX_TEXT ? input.slice(input.length - MAX_TEXT) : input;
  const patterns: { re: RegExp; prio: number; kind: 'latex' | 'expr' }[] = [];
  if (targets.latex) {
    const bp = targets.latex.boxedPriority;
    let l = LATEX_CACHE.get(bp);
    if (!l) LATEX_CACHE.set(bp, (l = latexPatterns(bp)));
    for (const [re, prio] of l) patterns.push({ re, prio, kind: 'latex' });
  }
  if (targets.expr) {
    EXPR_CACHE ??= exprPatterns();
    for (const [re, prio] of EXPR_CACHE) patterns.push({ re, prio, kind: 'expr' });
  }
  const prios = [...new Set(patterns.map((p) => p.prio))].sort((a, b) => a - b);
  let fallback: string | null = null;
  for (const prio of prios) {
    const cands: Candidate[] = [];
    for (const p of patterns) {
      if (p.prio !== prio) continue;
      p.re.lastIndex = 0;
      for (let m = p.re.exec(text); m; m = p.re.exec(text)) {
        cands.push({ match: m, kind: p.kind });
        if (m[0].length === 0) p.re.lastIndex++;
      }
    }
    // Rightmost end first; among equal ends the longest (leftmost start).
    cands.sort((a, b) => end(b.match) - end(a.match) || a.match.index - b.match.index);
    for (const c of cands) {
      const r = c.kind === 'latex' ? fromLatex(c.match) : fromExpr(c.match);
      if (r.text && fallback === null) fallback = r.text;
      if (r.value !== null) return { value: r.value, text: r.text, fallback };
    }
  }
  return { value: null, text: fallback, fallback };
}

const end = (m: RegExpExecArray): number => m.index + m[0].length;
