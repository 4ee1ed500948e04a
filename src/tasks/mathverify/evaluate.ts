// Values of answer trees: exact rationals where the arithmetic is exact, doubles otherwise, and
// the free variables that symbolic comparison substitutes.
import { key, rat, ratAdd, ratMul, ratNeg, ratToNumber, type Node, type Rat } from './ast.ts';

const MAX_EXACT_BITS = 4096;

function bits(q: Rat): number {
  return q.n.toString(16).length * 4 + q.d.toString(16).length * 4;
}

function ratPowInt(b: Rat, e: bigint): Rat | null {
  if (e === 0n) return { n: 1n, d: 1n };
  if (e < 0n) {
    if (b.n === 0n) return null;
    const inv = rat(b.d, b.n)!;
    return ratPowInt(inv, -e);
  }
  if (e > 4096n || Number(e) * bits(b) > 8 * MAX_EXACT_BITS) return null;
  return { n: b.n ** e, d: b.d ** e };
}

/** The integer k-th root of n ≥ 0 when exact, else null. */
function exactRoot(n: bigint, k: number): bigint | null {
  if (n < 0n) return null;
  if (n < 2n) return n;
  const approx = BigInt(Math.round(Number(n) ** (1 / k)));
  for (const c of [approx - 1n, approx, approx + 1n]) if (c >= 0n && c ** BigInt(k) === n) return c;
  return null;
}

function factorial(n: bigint): bigint {
  let r = 1n;
  for (let i = 2n; i <= n; i++) r *= i;
  return r;
}

/** The exact rational value of x, when its arithmetic is exact (no floats, no irrationals); else null. */
export function exactValue(x: Node): Rat | null {
  switch (x.k) {
    case 'num':
      return x.q;
    case 'pct': {
      const a = exactValue(x.arg);
      return a ? ratMul(a, { n: 1n, d: 100n }) : null;
    }
    case 'add': {
      let s: Rat = { n: 0n, d: 1n };
      for (const a of x.args) {
        const v = exactValue(a);
        if (!v) return null;
        s = ratAdd(s, v);
        if (bits(s) > MAX_EXACT_BITS) return null;
      }
      return s;
    }
    case 'mul': {
      let p: Rat = { n: 1n, d: 1n };
      for (const a of x.args) {
        const v = exactValue(a);
        if (!v) return null;
        p = ratMul(p, v);
        if (bits(p) > MAX_EXACT_BITS) return null;
      }
      return p;
    }
    case 'pow': {
      const b = exactValue(x.base);
      const e = exactValue(x.exp);
      if (!b || !e) return null;
      if (e.d === 1n) return ratPowInt(b, e.n);
      // a rational power of a perfect power: 4^{1/2}, 8^{2/3}
      if (e.d > 64n || b.n < 0n) return null;
      const rn = exactRoot(b.n, Number(e.d));
      const rd = exactRoot(b.d, Number(e.d));
      if (rn === null || rd === null) return null;
      return ratPowInt({ n: rn, d: rd }, e.n);
    }
    case 'fn': {
      const args = x.args.map(exactValue);
      if (args.some((a) => a === null)) return null;
      const a = args as Rat[];
      switch (x.name) {
        case 'abs':
          return a[0]!.n < 0n ? ratNeg(a[0]!) : a[0]!;
        case 'factorial':
          return a[0]!.d === 1n && a[0]!.n >= 0n && a[0]!.n <= 500n ? { n: factorial(a[0]!.n), d: 1n } : null;
        case 'binom': {
          const [n, k] = a as [Rat, Rat];
          if (n.d !== 1n || k.d !== 1n || n.n < 0n || n.n > 2000n) return null;
          if (k.n < 0n || k.n > n.n) return { n: 0n, d: 1n };
          return { n: factorial(n.n) / (factorial(k.n) * factorial(n.n - k.n)), d: 1n };
        }
        case 'floor':
        case 'ceil': {
          const q = a[0]!;
          let f = q.n / q.d;
          if (q.n < 0n && f * q.d !== q.n) f -= 1n;
          if (x.name === 'ceil' && f * q.d !== q.n) f += 1n;
          return { n: f, d: 1n };
        }
        default:
          return null;
      }
    }
    default:
      return null;
  }
}

// ---------------------------------------------------------------------------------------------
// Doubles

/** Variables → values; an entry for an undefined function's call (by key) replaces the call. */
export type Env = Map<string, number>;

function gamma(z: number): number {
  if (z < 0.5) return Math.PI / (Math.sin(Math.PI * z) * gamma(1 - z));
  const g = 7;
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  z -= 1;
  let s = c[0]!;
  for (let i = 1; i < g + 2; i++) s += c[i]! / (z + i);
  const t = z + g + 0.5;
  return Math.sqrt(2 * Math.PI) * t ** (z + 0.5) * Math.exp(-t) * s;
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0) / 2 ** 32;
}

/** An undefined function as a fixed smooth function of its name and arguments. */
function pseudoFunction(name: string, args: number[]): number {
  const h = hashString(name);
  let v = 0.3 + h;
  args.forEach((a, i) => {
    v += Math.sin((1.3 + h + 0.17 * i) * a + 2.1 * h + i) * (1 + 0.5 * i);
  });
  return v;
}

function intGcd(a: number, b: number): number {
  a = Math.abs(a);
  b = Math.abs(b);
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The value of a scalar expression (NaN where it is undefined, not real, or not a scalar). */
export function numValue(x: Node, env: Env | null): number {
  switch (x.k) {
    case 'num':
      return x.f;
    case 'const':
      return x.name === 'pi' ? Math.PI : x.name === 'E' ? Math.E : x.name === 'oo' ? Infinity : Number.NaN;
    case 'sym':
      return env?.get(x.name) ?? Number.NaN;
    case 'add': {
      let s = 0;
      for (const a of x.args) s += numValue(a, env);
      return s;
    }
    case 'mul': {
      let p = 1;
      for (const a of x.args) p *= numValue(a, env);
      return p;
    }
    case 'pow': {
      const b = numValue(x.base, env);
      const e = numValue(x.exp, env);
      if (b < 0 && !Number.isInteger(e)) {
        // An odd root of a negative number is not real in sympy (its principal root is complex).
        return Number.NaN;
      }
      return b ** e;
    }
    case 'pct':
      return numValue(x.arg, env) / 100;
    case 'ufn': {
      const hit = env?.get(key(x));
      if (hit !== undefined) return hit;
      return pseudoFunction(
        x.name,
        x.args.map((a) => numValue(a, env)),
      );
    }
    case 'fn': {
      if (x.name === 'sum' || x.name === 'prod') return bigOp(x, env);
      const a = x.args.map((v) => numValue(v, env));
      const v0 = a[0]!;
      switch (x.name) {
        case 'sin':
          return Math.sin(v0);
        case 'cos':
          return Math.cos(v0);
        case 'tan':
          return Math.tan(v0);
        case 'csc':
          return 1 / Math.sin(v0);
        case 'sec':
          return 1 / Math.cos(v0);
        case 'cot':
          return 1 / Math.tan(v0);
        case 'asin':
          return Math.asin(v0);
        case 'acos':
          return Math.acos(v0);
        case 'atan':
          return Math.atan(v0);
        case 'acsc':
          return Math.asin(1 / v0);
        case 'asec':
          return Math.acos(1 / v0);
        case 'acot':
          return Math.atan(1 / v0);
        case 'sinh':
          return Math.sinh(v0);
        case 'cosh':
          return Math.cosh(v0);
        case 'tanh':
          return Math.tanh(v0);
        case 'asinh':
          return Math.asinh(v0);
        case 'acosh':
          return Math.acosh(v0);
        case 'atanh':
          return Math.atanh(v0);
        case 'exp':
          return Math.exp(v0);
        case 'log':
          return v0 <= 0 ? Number.NaN : Math.log(v0) / Math.log(a[1]!);
        case 'abs':
          return Math.abs(v0);
        case 'floor':
          return Math.floor(v0);
        case 'ceil':
          return Math.ceil(v0);
        case 'factorial':
          return Number.isInteger(v0) && v0 >= 0 && v0 <= 170 ? exactFactorial(v0) : gamma(v0 + 1);
        case 'binom': {
          const [n, k] = a as [number, number];
          if (Number.isInteger(n) && Number.isInteger(k) && n >= 0 && n <= 1000)
            return k < 0 || k > n ? 0 : Math.round(Math.exp(lnFact(n) - lnFact(k) - lnFact(n - k)));
          return gamma(n + 1) / (gamma(k + 1) * gamma(n - k + 1));
        }
        case 'mod':
          return v0 - a[1]! * Math.floor(v0 / a[1]!);
        case 'gcd':
        case 'lcm': {
          if (!a.every(Number.isInteger)) return Number.NaN;
          if (x.name === 'gcd') return a.reduce(intGcd);
          return a.reduce((p, q) => Math.abs(p * q) / intGcd(p, q));
        }
        case 'max':
          return Math.max(...a);
        case 'min':
          return Math.min(...a);
        case 'transpose':
          return v0;
        default:
          return Number.NaN;
      }
    }
    default:
      return Number.NaN;
  }
}

/** \sum / \prod over integer bounds (at most 10,000 terms). */
function bigOp(x: Node & { k: 'fn' }, env: Env | null): number {
  const [body, v, lo, hi] = x.args as [Node, Node & { k: 'sym' }, Node, Node];
  const a = numValue(lo, env);
  const b = numValue(hi, env);
  if (!Number.isInteger(a) || !Number.isInteger(b) || b - a > 10_000) return Number.NaN;
  const inner: Env = new Map(env ?? []);
  let acc = x.name === 'sum' ? 0 : 1;
  for (let k = a; k <= b; k++) {
    inner.set(v.name, k);
    const t = numValue(body, inner);
    acc = x.name === 'sum' ? acc + t : acc * t;
  }
  return acc;
}

function exactFactorial(n: number): number {
  let r = 1;
  for (let i = 2; i <= n; i++) r *= i;
  return r;
}

function lnFact(n: number): number {
  let s = 0;
  for (let i = 2; i <= n; i++) s += Math.log(i);
  return s;
}

/** Free variables: symbols, and (with `calls`) undefined-function calls, by key. */
export function freeVariables(x: Node, calls = false, out: Set<string> = new Set()): Set<string> {
  switch (x.k) {
    case 'sym':
      out.add(x.name);
      break;
    case 'ufn':
      if (calls) out.add(key(x));
      else for (const a of x.args) freeVariables(a, calls, out);
      break;
    case 'fn':
      if (x.name === 'sum' || x.name === 'prod') {
        const [body, v, lo, hi] = x.args as [Node, Node & { k: 'sym' }, Node, Node];
        const inner = freeVariables(body, calls);
        inner.delete(v.name);
        for (const n of inner) out.add(n);
        freeVariables(lo, calls, out);
        freeVariables(hi, calls, out);
      } else for (const a of x.args) freeVariables(a, calls, out);
      break;
    case 'add':
    case 'mul':
    case 'and':
    case 'setop':
      for (const a of x.args) freeVariables(a, calls, out);
      break;
    case 'pow':
      freeVariables(x.base, calls, out);
      freeVariables(x.exp, calls, out);
      break;
    case 'pct':
      freeVariables(x.arg, calls, out);
      break;
    case 'rel':
      freeVariables(x.lhs, calls, out);
      freeVariables(x.rhs, calls, out);
      break;
    case 'tuple':
    case 'set':
      for (const a of x.items) freeVariables(a, calls, out);
      break;
    case 'interval':
      freeVariables(x.lo, calls, out);
      freeVariables(x.hi, calls, out);
      break;
    case 'matrix':
      for (const r of x.rows) for (const a of r) freeVariables(a, calls, out);
      break;
    default:
      break;
  }
  return out;
}

/** Whether two doubles agree to `rel` relative to their size (exact for infinities). */
export function close(a: number, b: number, rel: number): boolean {
  if (!Number.isFinite(a) || !Number.isFinite(b)) return a === b && !Number.isNaN(a);
  return Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));
}

export { ratToNumber };
