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
import { makeMarkedProblem, makeProblem, pad, stripZeros, wrong, type TinyProblem } from './common.ts';
import { Fault, hesitation, wrongValue, type Injection } from './selfcheck.ts';

export { Fault } from './selfcheck.ts';

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

// Format v2: every column step carries a check, and one step may carry an injected error.
//
// Each step line gets a fixed-width check right after the step's result, before the registers
// (so every normal line of a block still has one width and the registers keep their constant
// offsets):
//   sum        `k: a+b+c=ss ss-b-c=a A+B R`        subtract back: must give the column digit a
//   difference `k: Xa-b-r=d d+b+r=Xa A-B R`        add back: must give Xa (borrow flag, digit)
//   product    `k: a*d+c=ss d*a+c=ss A R`          a second decomposition: the operands re-read
//                                                  in the other order, must give ss again
// The comparison is between tokens at a fixed distance inside one line (the check's result and
// the value it must equal), then the line goes on with ` ` + registers when they agree.
// An injected error (train split only) replaces the step's result by a wrong value (no loss on
// it) and ends the line after the check; the next line is a hesitation naming the mismatch, and
// the line after that is the step redone in full:
//   1: 7+5+0=13 13-5-0=8
//   Wait, 8 is not 7.
//   1: 7+5+0=12 12-5-0=7 00048+00009 20000
//
// One set of block builders writes both formats: without a Fault (v1) a step is
// `step result registers`; with one (v2) `step result check registers`, after the wrong line and
// the hesitation at the planned step.

interface Block {
  lines: string[];
  /** Final carry (0 for subtraction). */
  carry: number;
  /** Final result register (W digits, most significant first). */
  reg: string;
}

/** The injected error at one step: the wrong result and its check (the line's tail), and the hesitation. */
type Injected = (rng: Rng) => { wrongTail: string; hesitation: string };

/**
 * Writes one column step: `step` is the line up to its result (`k: a+b+c=`); v1 (no fault)
 * `step result regs`, v2 `step result check regs`, preceded by the injected error when the fault
 * fires here.
 */
function pushStep(
  lines: string[],
  fault: Fault | null,
  step: string,
  result: string,
  check: string,
  regs: string,
  injected: Injected,
): void {
  if (fault === null) {
    lines.push(`${step}${result} ${regs}`);
    return;
  }
  const rng = fault.next();
  if (rng) {
    const e = injected(rng);
    lines.push(`${step}${e.wrongTail}`, e.hesitation);
  }
  lines.push(`${step}${result} ${check} ${regs}`);
}

/** Column-by-column addition of two non-negative numbers < 10^W (v2 with a fault counter). */
export function addBlock(a: number, b: number, fault: Fault | null = null, width = ADD_WIDTH): Block {
  let A = pad(a, width);
  let B = pad(b, width);
  let R = '0'.repeat(width);
  let c = 0;
  const lines: string[] = [];
  for (let k = 1; k <= width; k++) {
    const da = Number(A[width - 1]);
    const db = Number(B[width - 1]);
    const s = da + db + c;
    A = '0' + A.slice(0, width - 1);
    B = '0' + B.slice(0, width - 1);
    R = pad(s, 2)[1] + R.slice(0, width - 1);
    const check = (v: number) => `${pad(v, 2)}-${db}-${c}=${v - db - c}`;
    pushStep(lines, fault, `${k}: ${da}+${db}+${c}=`, pad(s, 2), check(s), `${A}+${B} ${R}`, (rng) => {
      const w = wrongValue(rng, s, 0, 19, (v) => v - db - c >= 0 && v - db - c <= 9);
      return { wrongTail: `${wrong(pad(w, 2))} ${check(w)}`, hesitation: hesitation(rng, String(w - db - c), String(da)) };
    });
    c = Math.floor(s / 10);
  }
  return { lines, carry: c, reg: R };
}

/** Column-by-column subtraction a - b with borrows; requires a >= b >= 0, both < 10^W. */
export function subBlock(a: number, b: number, fault: Fault | null = null, width = ADD_WIDTH): Block {
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
    const check = (v: number) => `${v}+${db}+${r}=${pad(v + db + r, 2)}`;
    pushStep(lines, fault, `${k}: ${x}${da}-${db}-${r}=`, String(d), check(d), `${A}-${B} ${R}`, (rng) => {
      const w = wrongValue(rng, d, 0, 9);
      return { wrongTail: `${wrong(String(w))} ${check(w)}`, hesitation: hesitation(rng, pad(w + db + r, 2), `${x}${da}`) };
    });
    r = x;
  }
  if (r !== 0) throw new Error('subBlock: final borrow'); // impossible when a >= b
  return { lines, carry: 0, reg: R };
}

/** Multiply a (< 10^MUL_WIDTH) by one digit d, digit by digit with carries. */
export function mulDigitBlock(a: number, d: number, fault: Fault | null = null, width = MUL_WIDTH): Block {
  let A = pad(a, width);
  let R = '0'.repeat(width);
  let c = 0;
  const lines: string[] = [];
  for (let k = 1; k <= width; k++) {
    const da = Number(A[width - 1]);
    const s = da * d + c;
    A = '0' + A.slice(0, width - 1);
    R = pad(s, 2)[1] + R.slice(0, width - 1);
    const check = `${d}*${da}+${c}=${pad(s, 2)}`;
    pushStep(lines, fault, `${k}: ${da}*${d}+${c}=`, pad(s, 2), check, `${A} ${R}`, (rng) => {
      const w = wrongValue(rng, s, 0, 99);
      return { wrongTail: `${wrong(pad(w, 2))} ${check}`, hesitation: hesitation(rng, pad(s, 2), pad(w, 2)) };
    });
    c = Math.floor(s / 10);
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

/** The scratchpad of either format: v1 without a fault counter, v2 with one. */
function solve({ a, op, b }: ArithSpec, fault: Fault | null): ArithSolution {
  const scratch: string[] = [];
  let answer: string;
  if (op === '+') {
    scratch.push(`${pad(a, ADD_WIDTH)}+${pad(b, ADD_WIDTH)}`);
    const blk = addBlock(a, b, fault);
    scratch.push(...blk.lines);
    answer = blockValue(blk);
  } else if (op === '-') {
    const neg = a < b;
    const [x, y] = neg ? [b, a] : [a, b];
    const body = `${pad(x, ADD_WIDTH)}-${pad(y, ADD_WIDTH)}`;
    scratch.push(neg ? `-(${body})` : body);
    const blk = subBlock(x, y, fault);
    scratch.push(...blk.lines);
    const mag = blockValue(blk);
    answer = neg ? `-${mag}` : mag;
  } else {
    const A = pad(a, MUL_WIDTH);
    const B = pad(b, 2);
    scratch.push(`${A}*${B}`);
    const d0 = Number(B[1]);
    const d1 = Number(B[0]);
    scratch.push(`${A}*${d0}`);
    const blk0 = mulDigitBlock(a, d0, fault);
    scratch.push(...blk0.lines);
    const p0 = blockValue(blk0);
    scratch.push(`=${p0}`);
    scratch.push(`${A}*${d1}0`);
    const blk1 = mulDigitBlock(a, d1, fault);
    scratch.push(...blk1.lines);
    const p1 = blockValue(blk1) === '0' ? '0' : `${blockValue(blk1)}0`;
    scratch.push(`=${p1}`);
    const n0 = Number(p0);
    const n1 = Number(p1);
    scratch.push(`${pad(n0, ADD_WIDTH)}+${pad(n1, ADD_WIDTH)}`);
    const sum = addBlock(n0, n1, fault);
    scratch.push(...sum.lines);
    answer = blockValue(sum);
  }
  scratch.push(`=${answer}`);
  return { answer, scratch };
}

/** The v1 scratchpad (plain steps). */
export function solveArith(spec: ArithSpec): ArithSolution {
  return solve(spec, null);
}

/** Checkable steps in a spec's v2 scratchpad (the injection point is drawn among them). */
export function arithSteps({ op }: ArithSpec): number {
  return op === '*' ? 2 * MUL_WIDTH + ADD_WIDTH : ADD_WIDTH;
}

/** The v2 scratchpad (checks everywhere; the planned step, if any, written wrong and repaired). */
export function solveArithV2(spec: ArithSpec, plan: Injection | null): ArithSolution {
  const fault = new Fault(plan);
  const solution = solve(spec, fault);
  if (fault.steps !== arithSteps(spec)) throw new Error(`solveArithV2: ${fault.steps} steps, expected ${arithSteps(spec)}`);
  return solution;
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

export function arithProblemV2(spec: ArithSpec, plan: Injection | null): TinyProblem {
  const { answer, scratch } = solveArithV2(spec, plan);
  return makeMarkedProblem('arith', arithPrompt(spec), answer, scratch);
}
