/**
 * `trace` family: short straight-line programs (2–4 variables, 3–6 assignments using + - *,
 * small literals and previously assigned variables, then `print(v)`), solved by writing the
 * variable states line by line:
 *
 *   prompt:          completion scratchpad:
 *   a = 4            line 1: a = 4 ; A4 ; state A4
 *   b = a * 3        line 2: b = a * 3 ; A4 * 3 = 4 * 3 = 12 ; B12 ; state A4 B12
 *   c = b - 7        line 3: c = b - 7 ; B12 - 7 = 12 - 7 = 5 ; C5 ; state A4 B12 C5
 *   a = c + a        line 4: a = c + a ; C5 + A4 = 5 + 4 = 9 ; A9 ; state A9 B12 C5
 *   print(a)         print(a) ; A9
 *   What does it print?
 *
 * Learnability choices for a tiny model:
 *  - Each step first copies the statement (the program line after the one copied last; program
 *    lines are distinct so this copy is unambiguous), then rewrites it with every variable
 *    fetched as a binding `C5` (the name upper-cased, then its value), then the bare numbers,
 *    then does ONE small operation, then writes the assignment as a binding, then the full state.
 *  - One rule finds every value: the value of `c` is what follows the most recent ` C`. The
 *    upper-case name is a token of its own (` C`; the statement's ` c` is another), so the
 *    lookup is a first-order induction-head pattern (find the last occurrence of the current
 *    token, copy the token after it), the pattern small transformers learn most readily.
 *    History: substituting `c` straight into `c + 3 = 5 + 3` asked for a composed lookup and a
 *    0.78M model mostly copied the most recent number (21.6% held-out); fetching as `c=5`
 *    (the value two tokens after the name, `=` shared by every binding) got copies and sums
 *    right but retrieved only 85% of fetched values (36.6% held-out). The state line is a pure
 *    copy under the same rule (the assignment just written is the most recent binding).
 *  - The state is rewritten in full after every line, always in order of first assignment, so
 *    each variable's current value is at most one line back and the final print is a lookup
 *    in the last state.
 *  - All values stay in [0, 99] by construction (subtraction only when it stays ≥ 0, products
 *    ≤ 99): the family tests state tracking; multi-digit arithmetic is the `arith` family's job,
 *    and one-shot sums/products of two-digit numbers are within reach of a 4-layer model.
 */
import type { Rng } from '../rng.ts';
import { makeMarkedProblem, makeProblem, wrong, type TinyProblem } from './common.ts';
import { Fault, hesitation, wrongValue, type Injection } from './selfcheck.ts';

export const TRACE_NAMES: readonly string[] = ['a', 'b', 'c', 'd', 'k', 'm', 'n', 'x', 'y', 'z'];
export const TRACE_MAX_VALUE = 99;
// Kept short: the reasoning must live in the completion (mean completion ≥ 3× mean prompt).
export const TRACE_QUESTION = 'What does it print?';

export type TraceOp = '+' | '-' | '*';
export type Operand = { kind: 'var'; name: string } | { kind: 'lit'; value: number };

export interface TraceLine {
  target: string;
  /** A bare operand (`a = 4`), or a binary expression. */
  expr: { kind: 'atom'; x: Operand } | { kind: 'bin'; x: Operand; op: TraceOp; y: Operand };
}

export interface TraceProgram {
  lines: TraceLine[];
  print: string;
}

function operandText(o: Operand): string {
  return o.kind === 'var' ? o.name : String(o.value);
}

export function lineText(l: TraceLine): string {
  const e = l.expr;
  return e.kind === 'atom' ? `${l.target} = ${operandText(e.x)}` : `${l.target} = ${operandText(e.x)} ${e.op} ${operandText(e.y)}`;
}

export function programText(p: TraceProgram): string {
  return [...p.lines.map(lineText), `print(${p.print})`].join('\n');
}

export function tracePrompt(p: TraceProgram): string {
  return `${programText(p)}\n${TRACE_QUESTION}`;
}

function applyOp(x: number, op: TraceOp, y: number): number {
  return op === '+' ? x + y : op === '-' ? x - y : x * y;
}

export interface TraceSolution {
  answer: string;
  scratch: string[];
}

/**
 * A variable's value in the scratchpad: the name in upper case, then the digits (`C5` for c = 5).
 * Under the Qwen pre-tokenizer ` C` is one token, used nowhere else, and the value's first digit
 * is the very next token.
 */
export function binding(name: string, value: number): string {
  return `${name.toUpperCase()}${value}`;
}

/** Run the program, writing the state after every line (format v1). Throws on use before assignment. */
export function solveTrace(p: TraceProgram): TraceSolution {
  return solve(p, null);
}

/** Draw a random program whose every intermediate value lies in [0, TRACE_MAX_VALUE]. */
export function sampleTraceProgram(rng: Rng): TraceProgram {
  const nVars = rng.int(2, 4);
  const nLines = rng.int(Math.max(3, nVars), 6);
  const names = rng.shuffle(TRACE_NAMES).slice(0, nVars);
  const env = new Map<string, number>();
  const lines: TraceLine[] = [];
  const seen = new Set<string>();
  let nextNew = 0;

  for (let i = 0; i < nLines; i++) {
    const undefinedLeft = nVars - nextNew;
    const linesLeft = nLines - i;
    const mustDefine = undefinedLeft >= linesLeft;
    const define = i === 0 || mustDefine || (undefinedLeft > 0 && rng.bool(0.5));
    const target = define ? (names[nextNew] as string) : rng.pick(Array.from(env.keys()));

    let line: TraceLine | null = null;
    if (i === 0) {
      line = { target, expr: { kind: 'atom', x: { kind: 'lit', value: rng.int(1, 20) } } };
    } else {
      const vars = [...env.keys()];
      for (let attempt = 0; attempt < 50 && line === null; attempt++) {
        const cand = sampleExpr(rng, env, vars, target);
        if (cand !== null && !seen.has(lineText(cand))) line = cand;
      }
      // Fallback (rare): a fresh literal; unique because its value is new for this target.
      if (line === null) {
        let v = rng.int(1, 20);
        while (seen.has(`${target} = ${v}`)) v = (v % TRACE_MAX_VALUE) + 1;
        line = { target, expr: { kind: 'atom', x: { kind: 'lit', value: v } } };
      }
    }
    seen.add(lineText(line));
    lines.push(line);
    env.set(target, evalExpr(line, env));
    if (define) nextNew++;
  }
  const print = rng.pick([...env.keys()]);
  return { lines, print };
}

function operandValue(o: Operand, env: Map<string, number>): number {
  return o.kind === 'lit' ? o.value : (env.get(o.name) as number);
}

function evalExpr(l: TraceLine, env: Map<string, number>): number {
  const e = l.expr;
  return e.kind === 'atom' ? operandValue(e.x, env) : applyOp(operandValue(e.x, env), e.op, operandValue(e.y, env));
}

// (Helpers here are plain top-level functions, not per-call closures: tsx/esbuild wraps every
// named closure with a __name() call, which made sampling several times slower.)
function randomLiteral(rng: Rng, op: TraceOp): Operand {
  return { kind: 'lit', value: op === '*' ? rng.int(2, 9) : rng.int(1, 20) };
}

function sampleExpr(rng: Rng, env: Map<string, number>, vars: readonly string[], target: string): TraceLine | null {
  const op = rng.pick<TraceOp>(['+', '-', '*']);
  const form = rng.int(0, 9);
  let x: Operand;
  let y: Operand;
  if (form < 4) {
    x = { kind: 'var', name: rng.pick(vars) };
    y = randomLiteral(rng, op);
  } else if (form < 6) {
    x = randomLiteral(rng, op);
    y = { kind: 'var', name: rng.pick(vars) };
  } else {
    x = { kind: 'var', name: rng.pick(vars) };
    y = { kind: 'var', name: rng.pick(vars) };
  }
  // `a = a - a` and the like are degenerate: require distinct variables in var-minus-var lines.
  if (x.kind === 'var' && y.kind === 'var' && x.name === y.name && op === '-') return null;
  const line: TraceLine = { target, expr: { kind: 'bin', x, op, y } };
  const v = evalExpr(line, env);
  if (v < 0 || v > TRACE_MAX_VALUE) return null;
  return line;
}

export function traceProblem(p: TraceProgram): TinyProblem {
  const { answer, scratch } = solveTrace(p);
  return makeProblem('trace', tracePrompt(p), answer, scratch);
}

export function generateTrace(rng: Rng): TinyProblem {
  return traceProblem(sampleTraceProgram(rng));
}

// ---------------------------------------------------------------------------------------------
// Format v2: every operation is checked by re-reading its operands (the bare numbers just
// written) and undoing it another way, and one operation may carry an injected error.
//
//   + : `C5 + A4 = 5 + 4 = 9 ; 9 - 4 = 5 ; A9 …`     subtract back: must give the first operand
//   - : `B12 - 7 = 12 - 7 = 5 ; 5 + 7 = 12 ; C5 …`   add back: must give the first operand
//   * : `A4 * 3 = 4 * 3 = 12 ; 3 * 4 = 12 ; B12 …`   the operands re-read in the other order
//
// The check's result is compared with the operand (or result) a fixed number of tokens back.
// An injected error (train split only) writes the operation's result wrong (no loss on it); the
// check run on it mismatches, a hesitation phrase names the mismatch, and the operation is redone
// on the same line, so the line's binding and state (the values later lines look up) stay right:
//   line 4: a = c + a ; C5 + A4 = 5 + 4 = 8 ; 8 - 4 = 4 ; Wait, 4 is not 5. 5 + 4 = 9 ; 9 - 4 = 5 ; A9 ; state A9 B12 C5
// The wrong result is a bare number, never a binding, so no later lookup can find it.

/** The check of `x op y = v`: its text and what it must equal (`got` vs `want`). */
function traceCheck(x: number, op: TraceOp, y: number, v: number): { text: string; got: number; want: number } {
  if (op === '+') return { text: `${v} - ${y} = ${v - y}`, got: v - y, want: x };
  if (op === '-') return { text: `${v} + ${y} = ${v + y}`, got: v + y, want: x };
  return { text: `${y} * ${x} = ${x * y}`, got: x * y, want: v };
}

/** Checkable steps (binary operations) of a program: the injection point is drawn among them. */
export function traceSteps(p: TraceProgram): number {
  return p.lines.filter((l) => l.expr.kind === 'bin').length;
}

/** The v2 scratchpad; `plan.step` indexes the program's binary operations. */
export function solveTraceV2(p: TraceProgram, plan: Injection | null): TraceSolution {
  return solve(p, new Fault(plan));
}

/**
 * The scratchpad of either format: v1 without a fault counter; v2 with one (every operation
 * followed by its check, the planned one written wrong first).
 */
function solve(p: TraceProgram, fault: Fault | null): TraceSolution {
  const env = new Map<string, number>(); // insertion order = order of first assignment
  const val = (o: Operand): number => {
    if (o.kind === 'lit') return o.value;
    const v = env.get(o.name);
    if (v === undefined) throw new Error(`trace: ${o.name} used before assignment`);
    return v;
  };
  const fetch = (o: Operand): string => (o.kind === 'lit' ? String(o.value) : binding(o.name, val(o)));
  const scratch: string[] = [];
  p.lines.forEach((l, i) => {
    const e = l.expr;
    let text = `line ${i + 1}: ${lineText(l)}`;
    let v: number;
    if (e.kind === 'atom') {
      v = val(e.x);
      if (e.x.kind === 'var') text += ` ; ${fetch(e.x)} = ${v}`;
    } else {
      const xv = val(e.x);
      const yv = val(e.y);
      v = applyOp(xv, e.op, yv);
      const bare = `${xv} ${e.op} ${yv} = `;
      text += ` ; ${fetch(e.x)} ${e.op} ${fetch(e.y)} = ${bare}`;
      const rng = fault?.next();
      if (rng) {
        const w = wrongValue(rng, v, 0, TRACE_MAX_VALUE, (c) => e.op !== '+' || c >= yv);
        const bad = e.op === '*' ? { text: `${yv} * ${xv} = ${v}`, got: v, want: w } : traceCheck(xv, e.op, yv, w);
        text += `${wrong(String(w))} ; ${bad.text} ; ${hesitation(rng, String(bad.got), String(bad.want))} ${bare}`;
      }
      text += fault ? `${v} ; ${traceCheck(xv, e.op, yv, v).text}` : `${v}`;
    }
    env.set(l.target, v);
    const state = [...env].map(([k, x]) => binding(k, x)).join(' ');
    scratch.push(`${text} ; ${binding(l.target, v)} ; state ${state}`);
  });
  const out = env.get(p.print);
  if (out === undefined) throw new Error(`trace: print(${p.print}) of an unassigned variable`);
  scratch.push(`print(${p.print}) ; ${binding(p.print, out)}`);
  return { answer: String(out), scratch };
}

export function traceProblemV2(p: TraceProgram, plan: Injection | null): TinyProblem {
  const { answer, scratch } = solveTraceV2(p, plan);
  return makeMarkedProblem('trace', tracePrompt(p), answer, scratch);
}
