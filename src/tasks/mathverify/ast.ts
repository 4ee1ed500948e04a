// The answer tree: what a parsed answer is (numbers, symbols, operations, relations, sets,
// tuples, intervals, matrices), with exact rationals for the numbers that are written exactly.

/** An exact rational n/d, d > 0, in lowest terms. */
export interface Rat {
  n: bigint;
  d: bigint;
}

export type RelOp = '=' | '<' | '<=' | '>' | '>=' | '!=';

export type Node =
  /** A number: exact (`q` set) unless written with a decimal point or an exponent (`float`). */
  | { k: 'num'; q: Rat | null; f: number; float: boolean }
  | { k: 'sym'; name: string }
  | { k: 'const'; name: 'pi' | 'E' | 'I' | 'oo' }
  | { k: 'add'; args: Node[] }
  | { k: 'mul'; args: Node[] }
  | { k: 'pow'; base: Node; exp: Node }
  /** x%: x / 100. */
  | { k: 'pct'; arg: Node }
  /** A known function (sin, log with its base as second argument, abs, factorial, …). */
  | { k: 'fn'; name: string; args: Node[] }
  /** An undefined function f(x): compared by name and arguments. */
  | { k: 'ufn'; name: string; args: Node[] }
  | { k: 'rel'; op: RelOp; lhs: Node; rhs: Node }
  /** A chain of relations, a < b < c. */
  | { k: 'and'; args: Node[] }
  | { k: 'tuple'; items: Node[] }
  /** A finite set; 'braces' when written {…}, 'list' for a bare list (1, 2) or several answers joined. */
  | { k: 'set'; items: Node[]; origin: 'braces' | 'list' }
  | { k: 'interval'; lo: Node; hi: Node; lopen: boolean; ropen: boolean }
  | { k: 'setop'; op: 'union' | 'intersect' | 'minus'; args: Node[] }
  | { k: 'sset'; name: 'naturals' | 'integers' | 'rationals' | 'reals' | 'complexes' | 'primes' | 'empty' }
  | { k: 'matrix'; rows: Node[][] };

// ---------------------------------------------------------------------------------------------
// Rationals

const babs = (x: bigint): bigint => (x < 0n ? -x : x);

function gcd(a: bigint, b: bigint): bigint {
  a = babs(a);
  b = babs(b);
  while (b !== 0n) [a, b] = [b, a % b];
  return a;
}

export function rat(n: bigint, d = 1n): Rat | null {
  if (d === 0n) return null;
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d);
  return g > 1n ? { n: n / g, d: d / g } : { n, d };
}

export const ratAdd = (a: Rat, b: Rat): Rat => rat(a.n * b.d + b.n * a.d, a.d * b.d)!;
export const ratMul = (a: Rat, b: Rat): Rat => rat(a.n * b.n, a.d * b.d)!;
export const ratNeg = (a: Rat): Rat => ({ n: -a.n, d: a.d });
export const ratEq = (a: Rat, b: Rat): boolean => a.n === b.n && a.d === b.d;

/** A rational as a double (exact enough for huge numerators and denominators). */
export function ratToNumber(q: Rat): number {
  const n = Number(q.n);
  const d = Number(q.d);
  if (Number.isFinite(n) && Number.isFinite(d)) return n / d;
  // Scale both down to keep the quotient finite.
  const shift = BigInt(Math.max(q.n.toString(2).length, q.d.toString(2).length) - 1000);
  return shift > 0n ? Number(q.n >> shift) / Number(q.d >> shift) : n / d;
}

export function ratText(q: Rat): string {
  return q.d === 1n ? q.n.toString() : `${q.n}/${q.d}`;
}

// ---------------------------------------------------------------------------------------------
// Constructors

export function intNode(n: bigint): Node {
  return { k: 'num', q: { n, d: 1n }, f: Number(n), float: false };
}

export function ratNode(q: Rat): Node {
  return { k: 'num', q, f: ratToNumber(q), float: false };
}

/** A decimal literal ("2.5", "1e-3"): a float, as sympy reads it. */
export function floatNode(text: string): Node {
  return { k: 'num', q: null, f: Number(text), float: true };
}

export const ONE = intNode(1n);
export const MINUS_ONE = intNode(-1n);
export const HUNDREDTH: Rat = { n: 1n, d: 100n };

export function pct(arg: Node): Node {
  return { k: 'pct', arg };
}

export function neg(x: Node): Node {
  if (x.k === 'num') return x.q ? ratNode(ratNeg(x.q)) : { ...x, f: -x.f };
  return mul(MINUS_ONE, x);
}

/** Product, flattening nested products (as latex2sympy's mul_flat). */
export function mul(a: Node, b: Node): Node {
  const args = [...(a.k === 'mul' ? a.args : [a]), ...(b.k === 'mul' ? b.args : [b])];
  return { k: 'mul', args };
}

/** Sum, flattening nested sums. */
export function add(a: Node, b: Node): Node {
  const args = [...(a.k === 'add' ? a.args : [a]), ...(b.k === 'add' ? b.args : [b])];
  return { k: 'add', args };
}

/** a − b: a number is negated, anything else multiplied by −1. */
export function sub(a: Node, b: Node): Node {
  return add(a, b.k === 'num' ? neg(b) : mul(MINUS_ONE, b));
}

export function pow(base: Node, exp: Node): Node {
  return { k: 'pow', base, exp };
}

/** a / b: two integers make a rational, anything else a · b⁻¹. */
export function div(a: Node, b: Node): Node {
  if (isInteger(a) && isInteger(b) && a.k === 'num' && b.k === 'num') {
    const q = rat(a.q!.n, b.q!.n);
    return q ? ratNode(q) : { k: 'num', q: null, f: Number.NaN, float: false };
  }
  return { k: 'mul', args: [a, pow(b, MINUS_ONE)] };
}

export function isInteger(x: Node): boolean {
  return x.k === 'num' && x.q !== null && x.q.d === 1n;
}

export function finiteSet(items: Node[], origin: 'braces' | 'list'): Node {
  return { k: 'set', items, origin };
}

export function isRelation(x: Node): boolean {
  return x.k === 'rel' || (x.k === 'and' && x.args.length > 0 && x.args.every((a) => a.k === 'rel'));
}

export function isEquation(x: Node): boolean {
  return (x.k === 'rel' && x.op === '=') || (x.k === 'and' && x.args.length > 0 && x.args.every((a) => a.k === 'rel' && a.op === '='));
}

/** Whether a node is made of symbols only (a, ab, A/B, f(x), |AB|, (p, q)): the left side of an assignment. */
export function onlySymbols(x: Node): boolean {
  switch (x.k) {
    case 'sym':
      return true;
    case 'pow':
      // A/S: a power −1 of symbols
      return x.exp.k === 'num' && x.exp.q !== null && x.exp.q.n === -1n && x.exp.q.d === 1n ? onlySymbols(x.base) : false;
    case 'mul':
    case 'add':
    case 'and':
      return x.args.length > 0 && x.args.every(onlySymbols);
    case 'fn':
    case 'ufn':
      return x.args.length > 0 && x.args.every(onlySymbols);
    case 'tuple':
      return x.items.length > 0 && x.items.every(onlySymbols);
    case 'rel':
      return onlySymbols(x.lhs) && onlySymbols(x.rhs);
    default:
      return false;
  }
}

/** Whether a node is a set (not a tuple): a finite set, an interval, a union, a named set. */
export function isSet(x: Node): boolean {
  return x.k === 'set' || x.k === 'interval' || x.k === 'setop' || x.k === 'sset';
}

// ---------------------------------------------------------------------------------------------
// A canonical text, for structural equality (sums, products and sets in a fixed order)

export function key(x: Node): string {
  switch (x.k) {
    case 'num':
      return x.q ? ratText(x.q) : `${x.f}f`;
    case 'sym':
      return x.name;
    case 'const':
      return `#${x.name}`;
    case 'add':
      return `(+ ${x.args.map(key).sort().join(' ')})`;
    case 'mul':
      return `(* ${x.args.map(key).sort().join(' ')})`;
    case 'pow':
      return `(^ ${key(x.base)} ${key(x.exp)})`;
    case 'pct':
      return `(% ${key(x.arg)})`;
    case 'fn':
    case 'ufn':
      return `(${x.k === 'ufn' ? '@' : ''}${x.name} ${x.args.map(key).join(' ')})`;
    case 'rel':
      return `(${x.op} ${key(x.lhs)} ${key(x.rhs)})`;
    case 'and':
      return `(and ${x.args.map(key).join(' ')})`;
    case 'tuple':
      return `(tuple ${x.items.map(key).join(' ')})`;
    case 'set':
      return `(set ${[...new Set(x.items.map(key))].sort().join(' ')})`;
    case 'interval':
      return `(${x.lopen ? '(' : '['} ${key(x.lo)} ${key(x.hi)} ${x.ropen ? ')' : ']'})`;
    case 'setop':
      return `(${x.op} ${(x.op === 'minus' ? x.args.map(key) : x.args.map(key).sort()).join(' ')})`;
    case 'sset':
      return `#${x.name}`;
    case 'matrix':
      return `(matrix ${x.rows.map((r) => `[${r.map(key).join(' ')}]`).join(' ')})`;
  }
}
