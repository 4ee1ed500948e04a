// LaTeX normalization before parsing, with the rules of latex2sympy2_extended's normalize_latex
// under the configuration lighteval and Math-Verify use (basic LaTeX, units, malformed operators,
// nits; boxed contents taken "all" inside a math environment, "last" for a bare \boxed{…}).
// Written from reading that library (v1.10.2, the one Math-Verify 0.8.0 pins); the quirks are
// kept on purpose, since both the gold and the prediction go through them and the verdicts
// should be the evaluator's.

export type BoxedMode = 'all' | 'last' | 'none';

/** Python's str.strip() whitespace. */
const isSpace = (c: string | undefined): boolean => c !== undefined && /\s/.test(c);

/** Index of the last `sub` that ends at or before `end` (Python's rfind(sub, 0, end)), or -1. */
function rfind(text: string, sub: string, end: number): number {
  const from = end - sub.length;
  return from < 0 ? -1 : text.lastIndexOf(sub, from);
}

/** The closing brace of the group opening at `open`, searching below `maxPos` (braces are not escaped). */
function closingBrace(text: string, open: number, maxPos: number): number {
  let depth = 1;
  for (let i = open + 1; i < maxPos; i++) {
    const ch = text[i];
    if (ch === '{') depth++;
    else if (ch === '}' && --depth === 0) return i;
  }
  return -1;
}

const SEPARATOR = /and|or|,|;/;

/**
 * The contents of `\boxed{…}` / `\fbox{…}`, right to left. "last": the last box, and the boxes
 * before it while each is close to the next (under 10 characters apart) or, up to 70 characters
 * apart, differs from it and is separated by and / or / , / ;. "all": every box. Several boxes are
 * joined with commas; a box left open takes the rest of the text; no box returns the text.
 */
export function extractBoxedContent(text: string, mode: 'last' | 'all'): string {
  const results: string[] = [];
  let currentPos = text.length;
  let maxPos = text.length;
  let lastBoxedStart = -1;
  for (;;) {
    const boxedIdx = rfind(text, '\\boxed', currentPos);
    const fboxIdx = rfind(text, '\\fbox', currentPos);
    if (boxedIdx < 0 && fboxIdx < 0) break;
    const start = Math.max(boxedIdx, fboxIdx);
    let next = start + (boxedIdx > fboxIdx ? 6 : 5);
    while (next < maxPos && isSpace(text[next])) next++;
    if (next >= maxPos) break;
    if (text[next] !== '{') {
      if (results.length === 0) results.push(text.slice(next));
      break;
    }
    const close = closingBrace(text, next, maxPos);
    if (close < 0) {
      if (results.length === 0) results.push(text.slice(next));
      break;
    }
    const content = text.slice(next + 1, close).trim();
    if (mode === 'last' && lastBoxedStart >= 0) {
      const between = text.slice(close + 1, lastBoxedStart);
      const later = results[results.length - 1] ?? '';
      const near = between.length < 10 || (content !== later && between.length < 70 && SEPARATOR.test(between));
      if (!near) break;
    }
    results.push(content);
    lastBoxedStart = start;
    maxPos = start;
    currentPos = start;
  }
  return results.length === 0 ? text : results.reverse().join(',');
}

// ---------------------------------------------------------------------------------------------
// Basic LaTeX

const LEFT =
  /\\m?left(\\\{|\{|\\\||\||\[|\(|\\rbracl|\\lgroup|\\lbrace|\\lbrack|\\vert|\\lvert|\\lceil|\\lfloor|\\vert|\\lvert|\\langle|\\llcorner|\\ulcorner)/g;
const RIGHT =
  /\\m?right(\\\}|\}|\\\||\||\]|\)|\\rbrack|\\rgroup|\\rbrace|\\rbrack|\\vert|\\rvert|\\rceil|\\rfloor|\\vert|\\rvert|\\rangle|\\lrcorner|\\urcorner)/g;
const PERMUTATION = /\(([a-zA-Z0-9+\-*/\\ ]+?)\)_\{([a-zA-Z0-9+\-*/\\ ]+?)\}/g;
const REMOVE = /\\mathrm\{th\}|\\!\s*|\\text\s*\{\s*\}|\\\$|\$|(?<!\\)["']|\\displaystyle/g;

/** One pass of replacements, the first alternative matching at a position winning. */
const REPLACEMENTS: [string, string, string][] = [
  ['math', '\\\\math(?:rm|it|bf)', '\\text'],
  ['text', '\\\\text(?:normal|bf|it|rm)', '\\text'],
  ['frac', '\\\\(?:d|t|c)frac', '\\frac'],
  ['decimal_space', '\\s\\.', ' 0.'],
  ['decimal_brace', '\\{\\.', '{0.'],
  ['approx', '~=', '\\approx'],
  ['comma', '\\s*\\{\\s*,\\s*\\}', ','],
  ['and_or', '(?<![a-zA-Z])(?:,?\\s*(?:and|or))(?![a-zA-Z])', ','],
  ['and_or_text', '(?:,?\\s*\\\\text\\{\\s*(?:and|or)\\s*\\})', ','],
  ['backslash_space', '(?<!\\\\)\\\\\\s', ' '],
  ['infinity', 'infinity', '\\infty'],
  ['dot', ',?(?:\\\\ldots)', ' '],
  ['percentage', '\\s*percentage', '\\%'],
  ['percentage_in_text', '\\\\text\\{percentage\\}', '\\%'],
  ['percent', '\\s*percent', '\\%'],
  ['percent_in_text', '\\\\text\\{percent\\}', '\\%'],
  ['pct', '\\s*pct', '\\%'],
  ['pct_in_text', '\\\\text\\{pct\\}', '\\%'],
  ['inf', '(?:(?<!\\\\)inf(?!inity))', '\\infty'],
  ['sqrt', ' sqrt', '\\sqrt'],
];
const REPLACE_RE = new RegExp(REPLACEMENTS.map(([name, re]) => `(?<${name}>${re})`).join('|'), 'g');
const REPLACE_WITH = new Map(REPLACEMENTS.map(([name, , to]) => [name, to]));

function replaceInLatex(text: string): string {
  return text.replace(REPLACE_RE, (...args: unknown[]) => {
    const groups = args[args.length - 1] as Record<string, string | undefined>;
    for (const [name, to] of REPLACE_WITH) if (groups[name] !== undefined) return to;
    return '';
  });
}

// ---------------------------------------------------------------------------------------------
// Units: a trailing \text{…} / \mbox{…} (with ^2 / ^3), then trailing unit words after a digit,
// a brace or a space. The word list is the library's, its oddities included ("integer" "point"
// concatenate to one word there; "." in "q ." and the like matches any character).

const UNIT_WORDS = [
  'integerpoint',
  'feet',
  'sue',
  'digit',
  'pound',
  'meal',
  'edge',
  'student',
  'children ticket',
  'multiple',
  'east',
  'degree',
  'mph',
  'kmph',
  'ft',
  'm square',
  ' m east',
  'sq m',
  'deg',
  'mile',
  'q .',
  'monkey',
  'prime',
  'ratio',
  'profit of rs',
  'rd',
  'o',
  'gm',
  'p . m',
  'lb',
  'tile',
  'per',
  'dm',
  'lt',
  'gain',
  'ab',
  'way',
  'west',
  'a .',
  'b .',
  'c .',
  'd .',
  'e .',
  'f .',
  'g .',
  'h .',
  't',
  'h',
  'no change',
  'men',
  'soldier',
  'pie',
  'bc',
  'excess',
  'st',
  'inches',
  'noon',
  'cent',
  'by',
  'gal',
  'kmh',
  'c',
  'acre',
  'rise',
  'a . m',
  'th',
  'π r 2',
  'sq',
  'mark',
  'l',
  'toy',
  'coin',
  'sq . m',
  'gallon',
  '° f',
  'profit',
  'minw',
  'yr',
  'women',
  'am',
  'pm',
  'hr',
  'cu cm',
  'square',
  'v â € ™',
  'are',
  'rupee',
  'rounds',
  'cubic',
  'cc',
  'mtr',
  's',
  'ohm',
  'number',
  'kmph',
  'day',
  'hour',
  'minute',
  'min',
  'second',
  'man',
  'woman',
  'sec',
  'cube',
  'mt',
  'sq inch',
  'mp',
  '∏ cm ³',
  'hectare',
  'more',
  'sec',
  'unit',
  'cu . m',
  'cm 2',
  'rs .',
  'rs',
  'kg',
  'g',
  'month',
  'km',
  'm',
  'cm',
  'mm',
  'apple',
  'liter',
  'loss',
  'yard',
  'pure',
  'year',
  'increase',
  'decrease',
  'd',
  'less',
  'Surface',
  'litre',
  'pi sq m',
  's .',
  'metre',
  'meter',
  'inch',
];
const UNITS = new RegExp(`(\\d|\\}|\\s)\\s*(?:(?:${UNIT_WORDS.join('|')})(?:s|es)?)\\s*$`);
const UNIT_TEXT = /(\\(?:text|mbox)\{.*?\})(\^\d|\{\^\d\})?$/;

// ---------------------------------------------------------------------------------------------
// Malformed operators

const MALFORMED: [RegExp, string][] = [
  [/\^\s?\((.*?)\)/g, '^{$1}'],
  [/sqrt\s?\((.*?)\)/g, '\\sqrt{$1}'],
  [/\\frac\s?(\d)\s?(\d+)/g, '\\frac{$1}{$2}'],
  [/\\log_\s?(\d)\s?(\d+)/g, '\\log_{$1}{$2}'],
  [/\\frac\s?\{(.*?)\}\s?(\d)/g, '\\frac{$1}{$2}'],
  [/\\frac\s?(\d)\s?\{(.*?)\}/g, '\\frac{$1}{$2}'],
  [/\\sqrt\s?(\d)/g, '\\sqrt{$1}'],
];

/** Python's str.lstrip(). */
const lstrip = (s: string): string => s.replace(/^\s+/, '');

/** `\sqrt3` → `\sqrt{3}` (the first character after \sqrt when it is not a brace or bracket). */
function fixSqrt(text: string): string {
  if (!text.includes('\\sqrt')) return text;
  const parts = text.split('\\sqrt');
  let out = parts[0]!;
  for (const p0 of parts.slice(1)) {
    const p = lstrip(p0);
    out += p.length > 0 && p[0] !== '{' && p[0] !== '[' ? `\\sqrt{${p[0]}}${p.slice(1)}` : `\\sqrt${p}`;
  }
  return out;
}

/** `\frac12` → `\frac{1}{2}`, `\frac1{2}` → `\frac{1}{2}`; a \frac with under two characters after it leaves the text as it was. */
function fixFracs(text: string): string {
  const parts = text.split('\\frac');
  let out = parts[0]!;
  for (const p0 of parts.slice(1)) {
    const p = lstrip(p0);
    out += '\\frac';
    if (p.length > 0 && p[0] === '{') out += p;
    else if (p.length < 2) return text;
    else {
      const a = p[0]!;
      const b = p[1]!;
      out += b !== '{' ? `{${a}}{${b}}${p.slice(2)}` : `{${a}}${b}${p.slice(2)}`;
    }
  }
  return out;
}

/** `3/4` (the whole text, two integers) → `\frac{3}{4}`. */
function fixSlash(text: string): string {
  const parts = text.split('/');
  if (parts.length !== 2) return text;
  const int = (s: string): bigint | null => (/^\s*[+-]?\d+(?:_\d+)*\s*$/.test(s) ? BigInt(s.trim().replace(/_/g, '')) : null);
  const a = int(parts[0]!);
  const b = int(parts[1]!);
  if (a === null || b === null || text !== `${a}/${b}`) return text;
  return `\\frac{${a}}{${b}}`;
}

/** The normalized LaTeX of an extracted answer (see the module comment). */
export function normalizeLatex(input: string, boxed: BoxedMode): string {
  let text = input;
  if (boxed !== 'none') text = extractBoxedContent(text, boxed);

  // Basic LaTeX
  text = text.split('\\mathrm{T}').join('T');
  text = text.split('\\mathrm{d}').join('d').split('{\\rm d}').join('d');
  text = text.split('\\left[\\begin{matrix}').join('\\begin{bmatrix}').split('\\end{matrix}\\right]').join('\\end{bmatrix}');
  text = text.replace(LEFT, '$1').replace(RIGHT, '$1');
  text = text.replace(PERMUTATION, '\\frac{($1)!}{(($1)-($2))!}');
  text = text.replace(REMOVE, '');
  text = replaceInLatex(text);
  text = text.replace(/[\n\t]/g, ' ');
  if (!text.includes('matrix')) text = text.replace(/\\\\(?=[a-zA-Z])/g, '\\');

  // Units
  {
    const t = text.replace(UNIT_TEXT, '').trim();
    if (t !== '' && t !== text) text = t;
    for (let i = 0; i < 2; i++) {
      const u = text.replace(UNITS, '$1');
      if (u !== '' && u !== text) text = u;
    }
  }

  // Nits
  if (text.length > 0 && text[0] === '.') text = `0${text}`;
  if (text === '0.5') text = '\\frac{1}{2}';

  // Malformed operators
  for (const [re, to] of MALFORMED) text = text.replace(re, to);
  text = text.split(' sqrt').join('\\sqrt');
  text = fixSqrt(text);
  text = fixFracs(text);
  text = fixSlash(text);
  return text.trim();
}
