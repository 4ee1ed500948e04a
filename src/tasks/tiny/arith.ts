/**
 * `arith` family: a + b, a - b (a, b < 100000; the difference may be negative) and a * b
 * (a < 1000, b < 100), each solved digit by digit in a written scratchpad.
 *
 * Scratchpad design (for a ~1M-parameter, 4-layer Qwen2 with RoPE and a small byte-level BPE):
 *
 *  - Digits need no separators. The Qwen2 pre-tokenizer splits every `\p{N}` character on its own,
 *    so a byte-level BPE trained behind it keeps each digit a single token; spaces between digits
 *    would only double the sequence length. All scratchpad punctuation is single characters
 *    separated by digits, so every line of one kind has the same token count.
 *  - Every column step is ONE line of FIXED width that holds the whole machine state as
 *    zero-padded shift registers:
 *        `k: 1+7+0=08 00482+00093 80000`
 *         │  │ │ │  │  └ operands shifted right one digit ┘ └ result register
 *         │  └─┴─┴─ this column's digits and carry-in     (new digit enters on the left)
 *         └ step index
 *    Because every step line has the same width L and the registers shift by exactly one digit
 *    per line, each token of line k+1 depends only on tokens of line k at CONSTANT relative
 *    offsets (L+1 for register digits; fixed offsets for "the last digit of A/B" and the carry).
 *    That is exactly what RoPE attention learns most easily; no counting or digit-position
 *    alignment across variable distances is needed except when the operands are first copied
 *    (right-aligned, zero-padded) from the prompt into the header line, and when the final
 *    register is copied without its leading zeros.
 *  - Column order is least-significant first, so each carry/borrow is local (the previous
 *    line's tens digit `ss[0]` / borrow flag). The result register accumulates the digits
 *    most-significant-first, so after the last step it *is* the answer (zero padded) and the
 *    closing `=N` line is a plain copy.
 *  - The step index `k:` makes termination local (W steps per block).
 *
 * Addition (W = 5): lines `k: a+b+c=ss A+B R`, ss = a+b+c as two digits (ss[0] is the carry).
 *   The answer is the final carry followed by R, leading zeros stripped.
 * Subtraction (W = 5): lines `k: Xa-b-r=d A-B R` where X is the new borrow (0/1) and `Xa` = 10X+a,
 *   d = 10X + a - b - r. If a < b the header is `-(B-A)` and b - a is computed, then negated.
 * Multiplication (a padded to 3 digits, b to 2): one block per multiplier digit (units, then tens):
 *   `AAA*d` (tens block: `AAA*d0`) then lines `k: a*d+c=ss A R` (W = 3), then `=partial`
 *   (the tens partial shifted by appending 0), then the two partials are summed exactly as in an
 *   addition (W = 5; 999 * 99 < 100000).
 *
 * Example (487 * 56):
 *   487*56 / 487*6 / 1: 7*6+0=42 048 200 / 2: 8*6+4=52 004 220 / 3: 4*6+5=29 000 922 / =2922 /
 *   487*50 / … / =24350 / 02922+24350 / 1: 2+0+0=02 00292+02435 20000 / … / =27272
 */
import type { Rng } from '../rng.ts';
import { makeProblem, pad, stripZeros, type TinyProblem } from './common.ts';

export type ArithOp = '+' | '-' | '*';

export interface ArithSpec {
  a: number;
  op: ArithOp;
  b: number;
}

/** Register width for addition / subtraction / partial-product sums. */
export const ADD_WIDTH = 5;
/** Multiplicand width (the multiplier has 2 digits). */
export const MUL_WIDTH = 3;

export function arithPrompt({ a, op, b }: ArithSpec): string {
  return `Compute ${a} ${op} ${b}.`;
}

/** Parse a prompt produced by arithPrompt back into its spec (null if it is not one). */
export function parseArithPrompt(prompt: string): ArithSpec | null {
  const m = /^Compute (\d+) ([-+*]) (\d+)\.$/.exec(prompt);
  if (!m) return null;
  return { a: Number(m[1]), op: m[2] as ArithOp, b: Number(m[3]) };
}

interface Block {
  lines: string[];
  /** Final carry (0 for subtraction). */
  carry: number;
  /** Final result register (W digits, most significant first). */
  reg: string;
}

/** Column-by-column addition of two non-negative numbers < 10^W. */
export function addBlock(a: number, b: number, width = ADD_WIDTH): Block {
  let A = pad(a, width);
  let B = pad(b, width);
  let R = '0'.repeat(width);
  let c = 0;
  const lines: string[] = [];
  for (let k = 1; k <= width; k++) {
    const da = Number(A[width - 1]);
    const db = Number(B[width - 1]);
    const ss = pad(da + db + c, 2);
    A = '0' + A.slice(0, width - 1);
    B = '0' + B.slice(0, width - 1);
    R = ss[1] + R.slice(0, width - 1);
    lines.push(`${k}: ${da}+${db}+${c}=${ss} ${A}+${B} ${R}`);
    c = Number(ss[0]);
  }
  return { lines, carry: c, reg: R };
}

/** Column-by-column subtraction a - b with borrows; requires a >= b >= 0, both < 10^W. */
export function subBlock(a: number, b: number, width = ADD_WIDTH): Block {
  if (a < b) throw new RangeError('subBlock: a < b');
  let A = pad(a, width);
  let B = pad(b, width);
  let R = '0'.repeat(width);
  let r = 0;
  const lines: string[] = [];
  for (let k = 1; k <= width; k++) {
    const da = Number(A[width - 1]);
    const db = Number(B[width - 1]);
    const x = da - db - r < 0 ? 1 : 0;
    const d = 10 * x + da - db - r;
    A = '0' + A.slice(0, width - 1);
    B = '0' + B.slice(0, width - 1);
    R = String(d) + R.slice(0, width - 1);
    lines.push(`${k}: ${x}${da}-${db}-${r}=${d} ${A}-${B} ${R}`);
    r = x;
  }
  if (r !== 0) throw new Error('subBlock: final borrow'); // impossible when a >= b
  return { lines, carry: 0, reg: R };
}

/** Multiply a (< 10^MUL_WIDTH) by one digit d, digit by digit with carries. */
export function mulDigitBlock(a: number, d: number, width = MUL_WIDTH): Block {
  let A = pad(a, width);
  let R = '0'.repeat(width);
  let c = 0;
  const lines: string[] = [];
  for (let k = 1; k <= width; k++) {
    const da = Number(A[width - 1]);
    const ss = pad(da * d + c, 2);
    A = '0' + A.slice(0, width - 1);
    R = ss[1] + R.slice(0, width - 1);
    lines.push(`${k}: ${da}*${d}+${c}=${ss} ${A} ${R}`);
    c = Number(ss[0]);
  }
  return { lines, carry: c, reg: R };
}

function blockValue(b: Block): string {
  return stripZeros(`${b.carry}${b.reg}`);
}

export interface ArithSolution {
  answer: string;
  scratch: string[];
}

export function solveArith({ a, op, b }: ArithSpec): ArithSolution {
  const scratch: string[] = [];
  if (op === '+') {
    scratch.push(`${pad(a, ADD_WIDTH)}+${pad(b, ADD_WIDTH)}`);
    const blk = addBlock(a, b);
    scratch.push(...blk.lines);
    const answer = blockValue(blk);
    scratch.push(`=${answer}`);
    return { answer, scratch };
  }
  if (op === '-') {
    const neg = a < b;
    const [x, y] = neg ? [b, a] : [a, b];
    const body = `${pad(x, ADD_WIDTH)}-${pad(y, ADD_WIDTH)}`;
    scratch.push(neg ? `-(${body})` : body);
    const blk = subBlock(x, y);
    scratch.push(...blk.lines);
    const mag = blockValue(blk);
    const answer = neg ? `-${mag}` : mag;
    scratch.push(`=${answer}`);
    return { answer, scratch };
  }
  const A = pad(a, MUL_WIDTH);
  const B = pad(b, 2);
  scratch.push(`${A}*${B}`);
  const d0 = Number(B[1]);
  const d1 = Number(B[0]);
  scratch.push(`${A}*${d0}`);
  const blk0 = mulDigitBlock(a, d0);
  scratch.push(...blk0.lines);
  const p0 = blockValue(blk0);
  scratch.push(`=${p0}`);
  scratch.push(`${A}*${d1}0`);
  const blk1 = mulDigitBlock(a, d1);
  scratch.push(...blk1.lines);
  const p1 = blockValue(blk1) === '0' ? '0' : `${blockValue(blk1)}0`;
  scratch.push(`=${p1}`);
  const n0 = Number(p0);
  const n1 = Number(p1);
  scratch.push(`${pad(n0, ADD_WIDTH)}+${pad(n1, ADD_WIDTH)}`);
  const sum = addBlock(n0, n1);
  scratch.push(...sum.lines);
  const answer = blockValue(sum);
  scratch.push(`=${answer}`);
  return { answer, scratch };
}

/** A uniformly random number with exactly `digits` digits (1 digit: 0–9). */
function randomWithDigits(rng: Rng, digits: number): number {
  if (digits === 1) return rng.int(0, 9);
  return rng.int(10 ** (digits - 1), 10 ** digits - 1);
}

/** Draw an arith spec: op uniform; digit counts uniform (1–5 for +/-, 1–3 × 1–2 for *). */
export function sampleArithSpec(rng: Rng): ArithSpec {
  const op = rng.pick<ArithOp>(['+', '-', '*']);
  if (op === '*') {
    return { a: randomWithDigits(rng, rng.int(1, MUL_WIDTH)), op, b: randomWithDigits(rng, rng.int(1, 2)) };
  }
  return { a: randomWithDigits(rng, rng.int(1, ADD_WIDTH)), op, b: randomWithDigits(rng, rng.int(1, ADD_WIDTH)) };
}

export function arithProblem(spec: ArithSpec): TinyProblem {
  const { answer, scratch } = solveArith(spec);
  return makeProblem('arith', arithPrompt(spec), answer, scratch);
}

export function generateArith(rng: Rng): TinyProblem {
  return arithProblem(sampleArithSpec(rng));
}
