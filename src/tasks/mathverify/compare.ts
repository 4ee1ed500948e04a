// Equivalence of two parsed answers with Math-Verify's rules (its grader.py, v0.8.0), in order:
// assignments lose their left side when the other answer has none (x = 5 vs 5; x = 5+5+1 = 11
// is x = 11), a relation meets a set as its solution set (0 < x < 1 vs (0, 1)), structurally equal
// trees are equal, relations compare as relations (the same difference, the flipped inequality,
// or the same solutions), sets and tuples element by element, words by their letters, then
// numbers: a decimal on either side compares rounded to `precision` places (1/3 = 0.333333,
// 2250π ≠ 7068.58), exact numbers exactly, and expressions by value (symbolically: at several
// points for every variable). Departures, where Math-Verify is loose by design: a tuple never
// equals a set written with braces ((1,3) vs {1,3}), and an unordered list only matches a tuple
// in its written order.
import { add, isEquation, isRelation, isSet, key, mul, neg, onlySymbols, ratEq, type Node, type RelOp } from './ast.ts';
import { close, exactValue, freeVariables, numValue, type Env } from './evaluate.ts';

class NotComparable extends Error {}

// ---------------------------------------------------------------------------------------------
// Helpers

function firstRel(x: Node): Node & { k: 'rel' } {
  return (x.k === 'and' ? x.args[0] : x) as Node & { k: 'rel' };
}
function lastRel(x: Node): Node & { k: 'rel' } {
  return (x.k === 'and' ? lastRel(x.args[x.args.length - 1]!) : x) as Node & { k: 'rel' };
}

/** An assignment: x = …, or a chain of = whose first left side is made of symbols only. */
function isAssignment(x: Node): boolean {
  if (x.k === 'rel') return x.op === '=' && onlySymbols(x.lhs);
  if (x.k === 'and') return x.args.length > 0 && x.args.every((a) => a.k === 'rel' && a.op === '=') && onlySymbols(firstRel(x).lhs);
  return false;
}

const isNumAtom = (x: Node): boolean => x.k === 'num' || (x.k === 'pct' && x.arg.k === 'num');
const isFloatAtom = (x: Node): boolean => (x.k === 'num' && x.float) || (x.k === 'pct' && x.arg.k === 'num' && x.arg.float);
const isSetOrTuple = (x: Node): boolean => isSet(x) || x.k === 'tuple';

/** x rounded to `digits` decimal places, as text (exact decimal rounding of the double). */
function rounded(x: number, digits: number): string | null {
  if (!Number.isFinite(x)) return null;
  if (Math.abs(x) >= 1e21) return x.toPrecision(15);
  const s = x.toFixed(digits);
  return /^-0(?:\.0*)?$/.test(s) ? s.slice(1) : s;
}

/** Points at which symbolic expressions are compared: a value per variable, signs and sizes mixed. */
const POINT_VALUES = [0.7357, -1.3919, 2.2813, 0.4179, -0.8831, 1.6127, 3.1079, -2.4703, 0.5741, 1.2233];

function envAt(vars: string[], j: number): Env {
  const env: Env = new Map();
  vars.forEach((v, i) => env.set(v, POINT_VALUES[(j * 3 + i * 7) % POINT_VALUES.length]! * (1 + 0.013 * i)));
  return env;
}

/** Whether two expressions agree wherever both are defined, at enough points (identities in their variables). */
function sameFunction(a: Node, b: Node, vars: string[], rel = 1e-8): boolean {
  let valid = 0;
  for (let j = 0; j < POINT_VALUES.length; j++) {
    const env = envAt(vars, j);
    const va = numValue(a, env);
    const vb = numValue(b, env);
    if (Number.isNaN(va) || Number.isNaN(vb)) continue;
    if (!close(va, vb, rel)) return false;
    valid++;
  }
  return valid >= 3;
}

// ---------------------------------------------------------------------------------------------
// Matrices

type Matrix = Node[][];

function matrixOf(x: Node): Matrix | null {
  switch (x.k) {
    case 'matrix':
      return x.rows;
    case 'add': {
      const ms = x.args.map(matrixOf);
      if (ms.some((m) => m === null)) return null;
      const first = ms[0]!;
      if (!ms.every((m) => m!.length === first.length && m![0]!.length === first[0]!.length)) return null;
      return first.map((row, i) => row.map((_, j) => ({ k: 'add', args: ms.map((m) => m![i]![j]!) }) as Node));
    }
    case 'mul': {
      let acc: Matrix | null = null;
      let scalar: Node | null = null;
      for (const a of x.args) {
        const m = matrixOf(a);
        if (m === null) {
          if (a.k === 'tuple' || a.k === 'set' || a.k === 'rel') return null;
          scalar = scalar ? mul(scalar, a) : a;
          continue;
        }
        if (acc === null) acc = m;
        else {
          if (acc[0]!.length !== m.length) return null;
          const left: Matrix = acc;
          acc = left.map((row) => m[0]!.map((_, j) => ({ k: 'add', args: row.map((v, k) => mul(v, m[k]![j]!)) }) as Node));
        }
      }
      if (acc === null) return null;
      const s = scalar;
      return s ? acc.map((row) => row.map((v) => mul(s, v))) : acc;
    }
    case 'fn':
      if (x.name === 'transpose') {
        const m = matrixOf(x.args[0]!);
        return m ? m[0]!.map((_, j) => m.map((row) => row[j]!)) : null;
      }
      return null;
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Numbers and expressions

/** Equality of two scalars by value: the decimal-rounding rule, exact numbers, then values. */
function numericEq(g: Node, p: Node, precision: number): boolean {
  if (isNumAtom(g) || isNumAtom(p)) {
    if (isFloatAtom(g) || isFloatAtom(p)) {
      const a = rounded(numValue(g, null), precision);
      const b = rounded(numValue(p, null), precision);
      return a !== null && a === b;
    }
    const eg = exactValue(g);
    const ep = exactValue(p);
    if (eg && ep) return ratEq(eg, ep);
  }
  const vars = [...new Set([...freeVariables(g), ...freeVariables(p)])].sort();
  if (vars.length === 0) {
    const eg = exactValue(g);
    const ep = exactValue(p);
    if (eg && ep) return ratEq(eg, ep);
    const a = numValue(g, null);
    const b = numValue(p, null);
    return !Number.isNaN(a) && close(a, b, 1e-11);
  }
  return sameFunction(g, p, vars);
}

// ---------------------------------------------------------------------------------------------
// Relations

const INVERSE: Partial<Record<RelOp, RelOp>> = { '<': '>', '>': '<', '<=': '>=', '>=': '<=', '=': '=' };

const diff = (r: Node & { k: 'rel' }): Node => add(r.lhs, neg(r.rhs));

/** Real roots of f in one variable (others fixed), found on a grid and refined by bisection. */
function rootsOf(f: Node, v: string, env: Env): number[] {
  const grid: number[] = [];
  for (let t = -20; t <= 20; t += 0.0625) grid.push(t + 1e-7);
  for (let e = -3; e <= 4; e += 0.125) {
    grid.push(10 ** e, -(10 ** e));
  }
  grid.sort((a, b) => a - b);
  const at = (t: number) => {
    env.set(v, t);
    return numValue(f, env);
  };
  const roots: number[] = [];
  let pt = grid[0]!;
  let pv = at(pt);
  for (let i = 1; i < grid.length; i++) {
    const t = grid[i]!;
    const val = at(t);
    if (Number.isFinite(pv) && Number.isFinite(val)) {
      if (val === 0) roots.push(t);
      else if (Math.sign(val) !== Math.sign(pv) && pv !== 0) {
        let lo = pt;
        let hi = t;
        let flo = pv;
        for (let k = 0; k < 80; k++) {
          const mid = (lo + hi) / 2;
          const fm = at(mid);
          if (!Number.isFinite(fm)) break;
          if (Math.sign(fm) === Math.sign(flo)) {
            lo = mid;
            flo = fm;
          } else hi = mid;
        }
        const r = (lo + hi) / 2;
        // A sign change across a pole is not a root.
        const fr = Math.abs(at(r));
        if (fr < 1e-6 * Math.max(1, Math.abs(pv), Math.abs(val))) roots.push(r);
      }
    }
    pt = t;
    pv = val;
  }
  return roots;
}

/** Truth of a relation (or chain) at a point, with a tolerance on equality. */
function truth(x: Node, env: Env): boolean | null {
  if (x.k === 'and') {
    for (const a of x.args) {
      const t = truth(a, env);
      if (t === null) return null;
      if (!t) return false;
    }
    return true;
  }
  if (x.k !== 'rel') return null;
  const l = numValue(x.lhs, env);
  const r = numValue(x.rhs, env);
  if (Number.isNaN(l) || Number.isNaN(r)) return null;
  const eq = close(l, r, 1e-9);
  switch (x.op) {
    case '=':
      return eq;
    case '!=':
      return !eq;
    case '<':
      return l < r && !eq;
    case '<=':
      return l < r || eq;
    case '>':
      return l > r && !eq;
    case '>=':
      return l > r || eq;
  }
}

function relationParts(x: Node): (Node & { k: 'rel' })[] {
  return (x.k === 'and' ? x.args : [x]) as (Node & { k: 'rel' })[];
}

/** Points that decide a set of reals bounded by `breaks`: the breaks, the midpoints and beyond. */
function probePoints(breaks: number[]): number[] {
  const b = [...new Set(breaks.filter(Number.isFinite))].sort((x, y) => x - y);
  const pts: number[] = [...b];
  if (b.length === 0) pts.push(-7.31, 0.113, 5.87);
  else {
    pts.push(b[0]! - 1.37, b[b.length - 1]! + 1.37);
    for (let i = 1; i < b.length; i++) pts.push((b[i - 1]! + b[i]!) / 2);
  }
  return pts;
}

/** Two relations in one variable with the same truth everywhere (their solution sets). */
function sameSolutions(g: Node, p: Node, v: string): boolean {
  const env: Env = new Map();
  const breaks: number[] = [];
  for (const r of [...relationParts(g), ...relationParts(p)]) breaks.push(...rootsOf(diff(r), v, env));
  let decided = 0;
  for (const t of probePoints(breaks)) {
    env.set(v, t);
    const a = truth(g, env);
    const b = truth(p, env);
    if (a === null || b === null) continue;
    if (a !== b) return false;
    decided++;
  }
  return decided > 0 && breaks.length > 0;
}

/** Two equations with the same solutions: proportional sides, or the same roots in their first variable. */
function equivalentEquations(g: Node & { k: 'rel' }, p: Node & { k: 'rel' }): boolean {
  const f = diff(g);
  const h = diff(p);
  const vg = [...freeVariables(f)].sort();
  const vp = [...freeVariables(h)].sort();
  if (vg.length === 0 || vg.join() !== vp.join()) return false;
  // f = c·h for a constant c ≠ 0
  let ratio: number | null = null;
  let proportional = true;
  let valid = 0;
  for (let j = 0; j < POINT_VALUES.length && proportional; j++) {
    const env = envAt(vg, j);
    const a = numValue(f, env);
    const b = numValue(h, env);
    if (!Number.isFinite(a) || !Number.isFinite(b)) continue;
    if (b === 0 || a === 0) {
      proportional = a === b;
      continue;
    }
    const r = a / b;
    if (ratio === null) ratio = r;
    else if (!close(ratio, r, 1e-8)) proportional = false;
    valid++;
  }
  if (proportional && valid >= 3) return true;
  // The same roots in the first variable, the others fixed at two points.
  const v = vg[0]!;
  for (let j = 0; j < 2; j++) {
    const env = envAt(vg, j + 1);
    const rg = rootsOf(f, v, env);
    const rp = rootsOf(h, v, env);
    if (rg.length === 0 || rg.length !== rp.length || !rg.every((x, i) => close(x, rp[i]!, 1e-7))) return false;
  }
  return true;
}

function compareRelational(g: Node, p: Node, precision: number): boolean {
  if (g.k === 'and' && p.k === 'and') {
    return g.args.length === p.args.length && g.args.every((a, i) => compareRelational(a, p.args[i]!, precision));
  }
  if (g.k !== 'rel' || p.k !== 'rel') return false;
  if (g.op === p.op && exprEq(diff(g), diff(p), precision)) return true;
  const inv = INVERSE[g.op];
  if (inv === undefined) return false;
  if (inv === p.op && exprEq(diff(g), add(p.rhs, neg(p.lhs)), precision)) return true;
  if (g.op === '=' && p.op === '=') return equivalentEquations(g, p);
  if (g.op === '=' || p.op === '=') return false;
  const vars = [...new Set([...freeVariables(g), ...freeVariables(p)])];
  return vars.length === 1 && sameSolutions(g, p, vars[0]!);
}

// ---------------------------------------------------------------------------------------------
// Sets

/** Membership in a set of reals, or null when the set has no numeric description. */
function member(x: Node, t: number): boolean | null {
  switch (x.k) {
    case 'interval': {
      const lo = numValue(x.lo, null);
      const hi = numValue(x.hi, null);
      if (Number.isNaN(lo) || Number.isNaN(hi)) return null;
      const atLo = close(t, lo, 1e-12);
      const atHi = close(t, hi, 1e-12);
      if (atLo) return !x.lopen && Number.isFinite(lo);
      if (atHi) return !x.ropen && Number.isFinite(hi);
      return t > lo && t < hi;
    }
    case 'set': {
      for (const it of x.items) {
        const v = numValue(it, null);
        if (Number.isNaN(v)) return null;
        if (close(v, t, 1e-12)) return true;
      }
      return false;
    }
    case 'tuple':
      return member({ k: 'set', items: x.items, origin: 'braces' }, t);
    case 'sset':
      return x.name === 'reals' ? true : x.name === 'empty' ? false : null;
    case 'setop': {
      const ms = x.args.map((a) => member(a, t));
      if (ms.some((m) => m === null)) return null;
      if (x.op === 'union') return ms.some(Boolean);
      if (x.op === 'intersect') return ms.every(Boolean);
      return ms[0]! && !ms.slice(1).some(Boolean);
    }
    default:
      return null;
  }
}

/** Every finite end point and element of a set of reals. */
function breakpoints(x: Node, out: number[] = []): number[] {
  switch (x.k) {
    case 'interval':
      out.push(numValue(x.lo, null), numValue(x.hi, null));
      break;
    case 'set':
    case 'tuple':
      for (const it of x.items) out.push(numValue(it, null));
      break;
    case 'setop':
      for (const a of x.args) breakpoints(a, out);
      break;
    default:
      break;
  }
  return out;
}

/** Two sets of reals with an empty symmetric difference. */
function sameRealSet(a: Node, b: Node): boolean {
  const pts = probePoints([...breakpoints(a), ...breakpoints(b)]);
  for (const t of pts) {
    const x = member(a, t);
    const y = member(b, t);
    if (x === null || y === null || x !== y) return false;
  }
  return true;
}

/** A relation in one variable (an undefined function's call counts as one) against a set: its solution set. */
function relationMatchesSet(rel: Node, set: Node): boolean | null {
  const vars = [...freeVariables(rel, true)];
  if (vars.length !== 1) return null;
  const v = vars[0]!;
  const env: Env = new Map();
  const breaks = [...breakpoints(set)];
  for (const r of relationParts(rel)) breaks.push(...rootsOf(diff(r), v, env));
  for (const t of probePoints(breaks)) {
    env.set(v, t);
    const a = truth(rel, env);
    const b = member(set, t);
    if (b === null) return null;
    if (a === null) continue;
    if (a !== b) return false;
  }
  return true;
}

function dedupe(items: Node[]): Node[] {
  const seen = new Set<string>();
  return items.filter((x) => {
    const k = key(x);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Element-wise comparison of finite sets and tuples. */
function deepCompare(g: Node, p: Node, precision: number): boolean {
  const gi = g.k === 'set' ? dedupe(g.items) : (g as Node & { k: 'tuple' }).items;
  const pi = p.k === 'set' ? dedupe(p.items) : (p as Node & { k: 'tuple' }).items;
  if (gi.length !== pi.length) return false;
  const gSet = g.k === 'set';
  const pSet = p.k === 'set';
  if (gSet && pSet) {
    // Any order: a matching of equal elements.
    const used = new Array<boolean>(pi.length).fill(false);
    return gi.every((x) => {
      const j = pi.findIndex((y, k) => !used[k] && exprEq(x, y, precision));
      if (j < 0) return false;
      used[j] = true;
      return true;
    });
  }
  // A set written with braces is never a tuple; a bare list matches a tuple in its written order.
  if ((gSet && g.k === 'set' && g.origin === 'braces') || (pSet && p.k === 'set' && p.origin === 'braces')) return false;
  return gi.every((x, i) => exprEq(x, pi[i]!, precision));
}

function compareSets(g0: Node, p0: Node, precision: number): boolean {
  const g = isSetOrTuple(g0) ? g0 : ({ k: 'set', items: [g0], origin: 'list' } as Node);
  const p = isSetOrTuple(p0) ? p0 : ({ k: 'set', items: [p0], origin: 'list' } as Node);
  if (g.k === 'interval' && p.k === 'interval')
    return g.lopen === p.lopen && g.ropen === p.ropen && exprEq(g.lo, p.lo, precision) && exprEq(g.hi, p.hi, precision);
  if (key(g) === key(p)) return true;
  if (isSet(g) && isSet(p) && sameRealSet(g, p)) return true;
  if ((g.k === 'set' || g.k === 'tuple') && (p.k === 'set' || p.k === 'tuple')) return deepCompare(g, p, precision);
  // (a, b) is both an open interval and a pair.
  if (g.k === 'interval' && g.lopen && g.ropen && (p.k === 'set' || p.k === 'tuple') && p.items.length === 2)
    return deepCompare({ k: 'tuple', items: [g.lo, g.hi] }, p, precision);
  if (p.k === 'interval' && p.lopen && p.ropen && (g.k === 'set' || g.k === 'tuple') && g.items.length === 2)
    return deepCompare(g, { k: 'tuple', items: [p.lo, p.hi] }, precision);
  return false;
}

// ---------------------------------------------------------------------------------------------
// Words

/** The letters of a product of single symbols (E counting as "e"): $Evelyn$ is e·v·e·l·y·n. */
function lettersOf(x: Node): string | null {
  if (x.k === 'sym') return x.name;
  if (x.k === 'const' && x.name === 'E') return 'e';
  if (x.k === 'mul') {
    let s = '';
    for (const a of x.args) {
      const l = a.k === 'sym' ? a.name : a.k === 'const' && a.name === 'E' ? 'e' : null;
      if (l === null) return null;
      s += l;
    }
    return s;
  }
  return null;
}

function compareSymbols(g: Node, p: Node): boolean {
  if (
    (g.k === 'sym' && g.name === 'e' && p.k === 'const' && p.name === 'E') ||
    (p.k === 'sym' && p.name === 'e' && g.k === 'const' && g.name === 'E')
  )
    return true;
  if (g.k === 'sym' && p.k === 'mul') {
    const l = lettersOf(p);
    if (l !== null) return g.name === l;
  }
  if (p.k === 'sym' && g.k === 'mul') {
    const l = lettersOf(g);
    if (l !== null) return p.name === l;
  }
  if (g.k === 'sym' && p.k === 'sym') return g.name === p.name;
  return key(g) === key(p);
}

// ---------------------------------------------------------------------------------------------
// The comparison

function exprEqInner(gold: Node, pred: Node, precision: number): boolean {
  let g = gold;
  let p = pred;
  const ga = isAssignment(g);
  const pa = isAssignment(p);
  const ge = isEquation(g);
  const pe = isEquation(p);
  if (ga) g = { k: 'rel', op: '=', lhs: firstRel(g).lhs, rhs: lastRel(g).rhs };
  if (pa) p = { k: 'rel', op: '=', lhs: firstRel(p).lhs, rhs: lastRel(p).rhs };
  if (pe && !ge) p = lastRel(p).rhs;
  else if (ga && !pe) g = lastRel(g).rhs;

  if (isRelation(g) && isSet(p)) {
    const r = relationMatchesSet(g, p);
    if (r !== null) return r;
  }
  // A number divided by zero cannot be compared (sympy's zoo).
  if (g.k === 'num' && Number.isNaN(g.f)) throw new NotComparable();
  if (key(g) === key(p)) return true;
  if (isRelation(g) && isRelation(p)) return compareRelational(g, p, precision);
  if (isSetOrTuple(g) || isSetOrTuple(p)) return compareSets(g, p, precision);
  if (g.k === 'sym' || p.k === 'sym') return compareSymbols(g, p);
  if (isRelation(g) || isRelation(p)) return false;
  const mg = matrixOf(g);
  const mp = matrixOf(p);
  if (mg || mp) {
    if (!mg || !mp || mg.length !== mp.length || mg[0]!.length !== mp[0]!.length) return false;
    return mg.every((row, i) => row.every((v, j) => numericEq(v, mp[i]![j]!, precision)));
  }
  return numericEq(g, p, precision);
}

/** Whether `pred` is equivalent to `gold` (see the module comment). Never throws. */
export function exprEq(gold: Node, pred: Node, precision: number): boolean {
  try {
    return exprEqInner(gold, pred, precision);
  } catch (e) {
    if (e instanceof NotComparable || e instanceof RangeError) return false;
    throw e;
  }
}
