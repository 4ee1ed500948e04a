// The `legacy` math grader (rac ≤ 0.1, kept to reproduce results graded before the Math-Verify
// rules of math.ts): the last \boxed{…} of a completion, normalized, compared with the gold
// answer as strings, numerically (relative tolerance 1e-6) and symbolically (LaTeX → expression
// via @cortex-js/compute-engine). Nothing here throws on odd input, and parsing is length-guarded.
// Its known false accepts (two equations in the same unknowns; rounded decimals for exact
// answers) are the reason math.ts exists; they are kept here on purpose.
import { ComputeEngine } from '@cortex-js/compute-engine';

/** Longest answer string that is normalized / parsed at all. */
const MAX_ANSWER_CHARS = 1000;
/** Longest element handed to the LaTeX parser. */
const MAX_PARSE_CHARS = 200;
const REL_TOL = 1e-6;

// ---------------------------------------------------------------------------------------------
// Extraction

/** Index just past the brace group opening at `open` (text[open] === '{'), or -1 if unbalanced. */
function matchBrace(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\') {
      i++; // escaped char (\{, \}, \\) never opens or closes a group
      continue;
    }
    if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * Content of the last complete `\boxed{…}` / `\fbox{…}` (nested braces) or `\boxed 5` in a text;
 * an unterminated last box (a completion cut mid-answer) falls back to the one before it.
 */
export function extractBoxedAnswer(text: string): string | null {
  const re = /\\(?:boxed|fbox)(?![a-zA-Z])/g;
  const starts: number[] = [];
  for (let m = re.exec(text); m; m = re.exec(text)) starts.push(m.index + m[0].length);
  for (let k = starts.length - 1; k >= 0; k--) {
    let i = starts[k]!;
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    if (text[i] === '{') {
      const end = matchBrace(text, i);
      if (end < 0) continue;
      return text.slice(i + 1, end - 1).trim();
    }
    if (i > starts[k]!) {
      // \boxed 5 — up to whitespace or '$'
      const m = /^[^\s$]+/.exec(text.slice(i));
      if (m) return m[0].replace(/[.,;]+$/, '');
    }
  }
  return null;
}

/** The answer of a completion (last boxed answer), or null when there is none or it is empty. */
export function extractMathAnswer(completion: string): string | null {
  const a = extractBoxedAnswer(completion);
  return a === null || a.trim() === '' ? null : a;
}

// ---------------------------------------------------------------------------------------------
// Normalization

const TEXT_CMDS = [
  'text',
  'textbf',
  'textit',
  'textrm',
  'textnormal',
  'mbox',
  'mathrm',
  'mathbf',
  'mathit',
  'mathsf',
  'mathtt',
  'operatorname',
];

const UNIT_WORDS = [
  'cm',
  'mm',
  'km',
  'm',
  'meters?',
  'metres?',
  'centimeters?',
  'kilometers?',
  'inch(?:es)?',
  'in',
  'feet',
  'foot',
  'ft',
  'yards?',
  'miles?',
  'units?',
  'sq',
  'square',
  'cubic',
  'degrees?',
  'dollars?',
  'cents?',
  'hours?',
  'hrs?',
  'minutes?',
  'mins?',
  'seconds?',
  'secs?',
  'days?',
  'weeks?',
  'months?',
  'years?',
  'grams?',
  'g',
  'kg',
  'pounds?',
  'lbs?',
  'ounces?',
  'oz',
  'liters?',
  'litres?',
  'mph',
  'people',
  'students',
  'ways',
  'points',
  'times',
];
const UNIT_RE = new RegExp(`^(${UNIT_WORDS.join('|')})(\\^\\{?[23]\\}?)?$`, 'i');

/** Replaces \text{…}-like commands: units after a value are dropped, other text is unwrapped. */
function stripTextCommands(s: string): string {
  const re = new RegExp(`\\\\(?:${TEXT_CMDS.join('|')})\\s*\\{`, 'g');
  for (let guard = 0; guard < 50; guard++) {
    re.lastIndex = 0;
    const m = re.exec(s);
    if (!m) break;
    const open = m.index + m[0].length - 1;
    const end = matchBrace(s, open);
    if (end < 0) {
      s = s.slice(0, m.index) + s.slice(open + 1);
      continue;
    }
    const content = s.slice(open + 1, end - 1);
    const before = s.slice(0, m.index).trim();
    const after = s.slice(end);
    const atEnd = /^\s*(\^\s*\{?\s*[23]\s*\}?)?\s*\.?\s*$/.test(after);
    const unitish = /^\s*[a-zA-Z]/.test(content) && !/^\s*\(?[A-Ea-e]\)?\s*$/.test(content);
    if (before !== '' && /[\d})\]]$/.test(before) && atEnd && unitish) {
      s = before; // "10\text{ cm}^2" → "10"
    } else {
      s = s.slice(0, m.index) + content + after;
    }
  }
  return s;
}

function fixFracs(s: string): string {
  // \frac12 → \frac{1}{2}, \frac1{2} → \frac{1}{2}, \frac{1}2 → \frac{1}{2}
  s = s.replace(/\\frac(\d)(\d)/g, '\\frac{$1}{$2}');
  s = s.replace(/\\frac(\d)\{/g, '\\frac{$1}{');
  s = s.replace(/\\frac\{([^{}]*)\}(\d)/g, '\\frac{$1}{$2}');
  s = s.replace(/\\frac([a-zA-Z])([a-zA-Z\d])/g, '\\frac{$1}{$2}');
  s = s.replace(/\\sqrt(\d|[a-zA-Z](?![a-zA-Z]))/g, '\\sqrt{$1}');
  return s;
}

/**
 * Canonical string form of an answer: spaces, \left/\right, thin spaces, $, \dfrac/\tfrac,
 * \text{…} (units dropped, text unwrapped), degrees, percent signs, trailing periods, thousands
 * separators (outside tuples), a single "x =" prefix, \frac12 shorthands and "(C)" choices.
 */
export function normalizeMathAnswer(input: string): string {
  let s = String(input ?? '').trim();
  if (s.length > MAX_ANSWER_CHARS) return s;
  s = s.replace(/\\(?:displaystyle|textstyle|scriptstyle)(?![a-zA-Z])/g, '');
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|biggl|biggr|big|Big|bigg|Bigg)(?![a-zA-Z])\s*/g, '');
  s = s.replace(/\\[dt]frac(?![a-zA-Z])/g, '\\frac');
  s = s.replace(/\\(?:!|,|;|:|quad|qquad)(?![a-zA-Z])/g, '');
  s = s.replace(/\\ /g, '');
  s = s.replace(/~/g, '');
  s = s.replace(/\\\$/g, '').replace(/\$/g, '');
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|°/g, '');
  s = s.replace(/\\%|%/g, '');
  s = stripTextCommands(s).trim();
  s = s.replace(/\{,\}/g, '');
  // Thousands separators, only when the whole answer is one number ("1,000" but not "1, 000").
  if (/^-?\d{1,3}(,\d{3})+(\.\d+)?\.?$/.test(s)) s = s.replace(/,/g, '');
  s = s.replace(/\s+/g, '');
  // Unit words written without \text after a number: "10cm", "5dollars".
  {
    const m = /^(-?[\d.,]+|\\frac\{[^{}]*\}\{[^{}]*\})([a-zA-Z].*)$/.exec(s);
    if (m && UNIT_RE.test(m[2]!)) s = m[1]!;
  }
  s = s.replace(/[.。]+$/, '');
  // A single "x =" / "\theta =" prefix on a single answer.
  {
    const m = /^([a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?=(.+)$/.exec(s);
    if (m && !m[2]!.includes('=')) s = m[2]!;
  }
  s = fixFracs(s);
  s = s.replace(/(^|[^\d\w}])\.(\d)/g, '$10.$2');
  // Multiple-choice answers "(C)" → "C".
  {
    const m = /^\(([A-Ea-e])\)$/.exec(s);
    if (m) s = m[1]!.toUpperCase();
  }
  // Trivial outer braces.
  while (s.startsWith('{') && s.endsWith('}') && matchBrace(s, 0) === s.length) s = s.slice(1, -1);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Structure: tuples, intervals, sets, unions, plain comma lists

interface Structured {
  open: string; // '(' '[' '\{' or '' for a plain list
  close: string;
  items: string[];
}

/** Splits at top-level occurrences of `sep` (bracket depth 0). */
function splitTop(s: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '\\') {
      if (s.startsWith(sep, i) && depth === 0) {
        out.push(s.slice(last, i));
        last = i + sep.length;
        i += sep.length - 1;
        continue;
      }
      const next = s[i + 1];
      if (next === '{') depth++;
      else if (next === '}') depth--;
      i++;
      continue;
    }
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ')' || ch === ']' || ch === '}') depth--;
    else if (depth === 0 && s.startsWith(sep, i)) {
      out.push(s.slice(last, i));
      last = i + sep.length;
      i += sep.length - 1;
    }
  }
  out.push(s.slice(last));
  return out;
}

/** Whether the bracket opening at 0 closes exactly at the end of s. */
function enclosesAll(s: string, openLen: number, closeLen: number): boolean {
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === '\\') {
      const next = s[i + 1];
      if (next === '{') depth++;
      else if (next === '}') {
        depth--;
        if (depth === 0 && i + 2 < s.length) return false;
      }
      i++;
      continue;
    }
    if (ch === '(' || ch === '[' || ch === '{') depth++;
    else if (ch === ')' || ch === ']' || ch === '}') {
      depth--;
      if (depth === 0 && i < s.length - 1) return false;
    }
  }
  void openLen;
  void closeLen;
  return depth === 0;
}

function structure(s: string): Structured | null {
  if (s.startsWith('\\{') && s.endsWith('\\}') && enclosesAll(s, 2, 2)) {
    return { open: '\\{', close: '\\}', items: splitTop(s.slice(2, -2), ',') };
  }
  const first = s[0];
  const last = s[s.length - 1];
  if ((first === '(' || first === '[') && (last === ')' || last === ']') && s.length >= 2) {
    // Interval brackets may be mismatched, "(1,2]", so check depth with (/[ as equivalent.
    let depth = 0;
    let ok = true;
    for (let i = 0; i < s.length; i++) {
      const ch = s[i]!;
      if (ch === '\\') {
        i++;
        continue;
      }
      if (ch === '(' || ch === '[' || ch === '{') depth++;
      else if (ch === ')' || ch === ']' || ch === '}') {
        depth--;
        if (depth === 0 && i < s.length - 1) ok = false;
      }
    }
    if (ok && depth === 0) {
      const items = splitTop(s.slice(1, -1), ',');
      if (items.length >= 2) return { open: first, close: last, items };
    }
  }
  const items = splitTop(s, ',');
  if (items.length >= 2) return { open: '', close: '', items };
  return null;
}

// ---------------------------------------------------------------------------------------------
// Numeric / symbolic equality

let engine: ComputeEngine | null = null;
let engineUses = 0;

function ce(): ComputeEngine {
  // A fresh engine now and then: parsing declares every unknown symbol it meets.
  if (engine === null || engineUses++ > 2000) {
    engine = new ComputeEngine();
    engineUses = 0;
  }
  return engine;
}

/** LaTeX the parser should not be given (unsupported or too expensive to evaluate). */
function unsafeForParser(s: string): boolean {
  if (s.length === 0 || s.length > MAX_PARSE_CHARS) return true;
  if (/\d{40,}/.test(s)) return true;
  // Factorials of big numbers, towers of powers.
  if (/!/.test(s) && /\d{4,}/.test(s)) return true;
  if ((s.match(/\^/g) ?? []).length > 4) return true;
  if (/\\(?:binom|choose|int|sum|prod|lim|begin|matrix|cases)(?![a-zA-Z])/.test(s)) return true;
  return false;
}

type Parsed = ReturnType<ComputeEngine['parse']>;

/**
 * Runs `f` with console.error silenced: compute-engine prints "Invalid type tuple<…>" there for
 * some answers it then handles (nothing rac needs to see).
 */
function quiet<R>(f: () => R): R {
  const orig = console.error;
  console.error = () => {};
  try {
    return f();
  } finally {
    console.error = orig;
  }
}

function parseLatex(s: string): Parsed | null {
  if (unsafeForParser(s)) return null;
  try {
    const e = ce().parse(s);
    if (!e || !e.isValid) return null;
    return e;
  } catch {
    return null;
  }
}

function closeNum(a: number, b: number): boolean {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  return Math.abs(a - b) <= REL_TOL * Math.max(1, Math.abs(a), Math.abs(b));
}

function numeric(e: Parsed): { re: number; im: number } | null {
  try {
    const n = e.N();
    const re = n.re;
    const im = n.im;
    if (typeof re !== 'number' || !Number.isFinite(re)) return null;
    return { re, im: typeof im === 'number' && Number.isFinite(im) ? im : 0 };
  } catch {
    return null;
  }
}

function unknowns(e: Parsed): string[] {
  try {
    return [...(e.unknowns ?? [])].sort();
  } catch {
    return [];
  }
}

/** Equality of two single (non-list) answers, already normalized. */
function scalarEqual(a: string, b: string): boolean {
  if (a === b) return true;
  if (a === '' || b === '') return false;
  const ea = parseLatex(a);
  const eb = parseLatex(b);
  if (!ea || !eb) return false;
  const na = numeric(ea);
  const nb = numeric(eb);
  if (na && nb) return closeNum(na.re, nb.re) && closeNum(na.im, nb.im);
  if (na || nb) return false; // a number vs a non-number
  try {
    if (ea.isEqual(eb) === true) return true;
  } catch {
    /* fall through */
  }
  try {
    const d = ce().box(['Subtract', ea, eb]).simplify();
    if (d.is(0)) return true;
  } catch {
    /* fall through */
  }
  // Same free variables: compare at a few fixed points.
  const ua = unknowns(ea);
  const ub = unknowns(eb);
  if (ua.length === 0 || ua.length > 4 || ua.join(',') !== ub.join(',')) return false;
  const points = [
    [0.37, 1.21, -0.83, 2.05],
    [1.73, -0.59, 0.44, 1.37],
    [-1.19, 0.91, 2.63, -0.27],
  ];
  try {
    for (const p of points) {
      const sub: Record<string, number> = {};
      ua.forEach((u, i) => (sub[u] = p[i]!));
      const va = numeric(ea.subs(sub));
      const vb = numeric(eb.subs(sub));
      if (!va || !vb || !closeNum(va.re, vb.re) || !closeNum(va.im, vb.im)) return false;
    }
    return true;
  } catch {
    return false;
  }
}

function unorderedEqual(a: string[], b: string[], eq: (x: string, y: string) => boolean): boolean {
  if (a.length !== b.length) return false;
  const used = new Array<boolean>(b.length).fill(false);
  for (const x of a) {
    let found = -1;
    for (let j = 0; j < b.length; j++) {
      if (!used[j] && eq(x, b[j]!)) {
        found = j;
        break;
      }
    }
    if (found < 0) return false;
    used[found] = true;
  }
  return true;
}

function equalNormalized(a: string, b: string, depth: number): boolean {
  if (a === b) return true;
  if (depth > 4) return false;
  // Unions of intervals / sets, compared piece by piece in order.
  const ua = splitTop(a, '\\cup');
  const ub = splitTop(b, '\\cup');
  if (ua.length > 1 || ub.length > 1) {
    return ua.length === ub.length && ua.every((x, i) => equalNormalized(x, ub[i]!, depth + 1));
  }
  const sa = structure(a);
  const sb = structure(b);
  if (sa || sb) {
    if (!sa || !sb) return false;
    const isSet = (s: Structured) => s.open === '\\{' || s.open === '';
    if (isSet(sa) && isSet(sb)) {
      // "x=1, x=2" lists solutions: drop a per-item "x=".
      const strip = (x: string) => x.replace(/^(?:[a-zA-Z]|\\[a-zA-Z]+)=(?!.*=)/, '');
      return unorderedEqual(sa.items.map(strip), sb.items.map(strip), (x, y) => equalNormalized(x, y, depth + 1));
    }
    if (sa.open !== sb.open || sa.close !== sb.close || sa.items.length !== sb.items.length) return false;
    return sa.items.every((x, i) => equalNormalized(x, sb.items[i]!, depth + 1));
  }
  return scalarEqual(a, b);
}

/**
 * Whether a predicted answer equals the gold answer: same normalized string, numerically equal
 * (relative tolerance 1e-6), or symbolically equal; tuples and intervals element-wise (brackets
 * must match), sets and plain comma lists irrespective of order. Never throws.
 */
export function mathEqual(pred: string, gold: string): boolean {
  return quiet(() => mathEqualLoud(pred, gold));
}

function mathEqualLoud(pred: string, gold: string): boolean {
  try {
    if (typeof pred !== 'string' || typeof gold !== 'string') return false;
    if (pred.length > MAX_ANSWER_CHARS || gold.length > MAX_ANSWER_CHARS) return pred.trim() === gold.trim();
    const a = normalizeMathAnswer(pred);
    const b = normalizeMathAnswer(gold);
    if (a === '' || b === '') return false;
    return equalNormalized(a, b, 0);
  } catch {
    return false;
  }
}

export interface MathGrade {
  correct: boolean;
  /** The extracted answer (last \boxed{…}), null when the completion has none. */
  extracted: string | null;
}

/** Grades a completion against a gold answer (the gold may itself contain a \boxed{…}). */
export function gradeMathLegacy(completion: string, gold: string): MathGrade {
  const extracted = extractMathAnswer(completion);
  if (extracted === null) return { correct: false, extracted };
  const g = /\\(?:boxed|fbox)(?![a-zA-Z])/.test(gold) ? (extractBoxedAnswer(gold) ?? gold) : gold;
  return { correct: mathEqual(extracted, g), extracted };
}
