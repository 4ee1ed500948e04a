/**
 * Answer extraction and grading for `\boxed{…}` answers (the tiny tasks, and any integer task).
 */

const BOX_COMMAND = /\\(?:boxed|fbox)(?![A-Za-z])/g;

/**
 * Parse the box whose command ends at `pos` (just after `\boxed` / `\fbox`).
 * Returns its content, or null when it is unbalanced / empty-unbraced / not a box.
 */
function parseBoxAt(text: string, pos: number): string | null {
  let i = pos;
  while (i < text.length && /\s/.test(text[i] as string)) i++;
  if (text[i] === '{') {
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      const ch = text[j];
      if (ch === '\\') {
        j++; // an escaped character (\{ \} \\) never opens or closes a group
        continue;
      }
      if (ch === '{') depth++;
      else if (ch === '}') {
        depth--;
        if (depth === 0) return text.slice(i + 1, j);
      }
    }
    return null; // unbalanced
  }
  if (i === pos) return null; // `\boxed5`: not valid LaTeX, no box
  const m = /^[^\s$]+/.exec(text.slice(i));
  return m ? m[0] : null;
}

/**
 * Content of the LAST `\boxed{…}` / `\fbox{…}` in `text` (nested braces handled), or of a
 * brace-less `\boxed N` (up to whitespace or `$`). "Last" means the command that starts last,
 * as in the usual `rfind("\\boxed")` convention, so `\boxed{\boxed{3}}` gives "3".
 * Returns null when there is no box, or when the last box is unbalanced or empty-unbraced.
 */
export function lastBoxed(text: string): string | null {
  let lastEnd = -1;
  for (const m of text.matchAll(BOX_COMMAND)) lastEnd = (m.index ?? 0) + m[0].length;
  if (lastEnd < 0) return null;
  return parseBoxAt(text, lastEnd);
}

/**
 * Canonical integer string for an answer, or null if it is not an integer.
 * Strips whitespace, `$`, LaTeX spacing (`\,` `\!` `\;` `\ `), a `\text{…}`/`\mathrm{…}` wrapper,
 * outer braces, one trailing `.`, a leading `+`, leading zeros (`-007` → `-7`, `-0` → `0`) and
 * thousands separators (`1,234`, `1{,}234`; groups must be of three digits). A Unicode minus
 * (U+2212) counts as `-`. Decimals (`1.5`, `1.0`), fractions and anything else return null.
 */
export function normalizeInteger(raw: string): string | null {
  let s = raw.replace(/\\[,!;: ]/g, '').replace(/[\s$]/g, '');
  s = s.replace(/\u2212/g, '-');
  for (;;) {
    const wrapped = /^\\(?:text|textbf|mathrm|mathbf)\{(.*)\}$/.exec(s) ?? /^\{(.*)\}$/.exec(s);
    if (!wrapped || !balanced(wrapped[1] as string)) break;
    s = wrapped[1] as string;
  }
  s = s.replace(/\.$/, '');
  s = s.replace(/\{,\}/g, ',');
  const m = /^([+-]?)(\d{1,3}(?:,\d{3})+|\d+)$/.exec(s);
  if (!m) return null;
  const digits = (m[2] as string).replace(/,/g, '').replace(/^0+(?=\d)/, '');
  if (digits === '0') return '0';
  return m[1] === '-' ? `-${digits}` : digits;
}

function balanced(s: string): boolean {
  let depth = 0;
  for (const ch of s) {
    if (ch === '{') depth++;
    else if (ch === '}' && --depth < 0) return false;
  }
  return depth === 0;
}

export interface TinyGrade {
  correct: boolean;
  /** Raw content of the last box, or null when there is none. */
  extracted: string | null;
}

/**
 * Exact integer match of the completion's last `\boxed{…}` against `answer`, after
 * normalizeInteger on both sides. No box, an unbalanced box, or a non-integer is incorrect.
 */
export function gradeTiny(completion: string, answer: string): TinyGrade {
  const extracted = lastBoxed(completion);
  if (extracted === null) return { correct: false, extracted };
  const got = normalizeInteger(extracted);
  const want = normalizeInteger(answer);
  return { correct: got !== null && want !== null && got === want, extracted };
}

export interface ThinkSpan {
  /** Whether `</think>` appeared. */
  closed: boolean;
  /** Text inside the think block (from after `<think>`, or from the start when the opening tag
   * is absent, e.g. when a chat template already put it in the prompt) up to `</think>`, or to
   * the end when unclosed. */
  thinkText: string;
  /** Text after `</think>`; empty when unclosed. */
  afterThink: string;
}

export function thinkSpan(text: string): ThinkSpan {
  const OPEN = '<think>';
  const CLOSE = '</think>';
  const open = text.indexOf(OPEN);
  const start = open >= 0 ? open + OPEN.length : 0;
  const close = text.indexOf(CLOSE, start);
  if (close < 0) return { closed: false, thinkText: text.slice(start), afterThink: '' };
  return { closed: true, thinkText: text.slice(start, close), afterThink: text.slice(close + CLOSE.length) };
}
