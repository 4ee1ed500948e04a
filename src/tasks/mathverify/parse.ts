// A parser for normalized answer LaTeX, reading what latex2sympy2_extended's grammar (PS.g4)
// reads, the way it reads it: a whole answer is a relation over sets (x \in [1,2]), a list of
// elements (1, 2; 3 — each a relation, a set, a ± expression) or a set expression (\cup, \cap,
// \setminus). Single letters are separate symbols, lowercased (AB = a·b); e is Euler's number and
// E a symbol; \text{…} is one symbol; an integer followed by a positive rational is a mixed
// number (2\frac12 = 5/2); a letter followed by a parenthesised atom or list is a function call
// (f(x)); \log is base 10; degrees (^\circ) are ignored; a trailing ^2 after a unit in \text is
// handled by the normalizer, not here. Unknown commands fail the parse, as they do there.
// Written from reading the grammar and its converter; the alternatives are tried in the
// grammar's order, each required to reach a point where the grammar could continue.
import {
  add,
  div,
  finiteSet,
  floatNode,
  intNode,
  isInteger,
  mul,
  neg,
  onlySymbols,
  pct,
  pow,
  ratNode,
  rat,
  sub,
  type Node,
  type RelOp,
  MINUS_ONE,
} from './ast.ts';

class ParseError extends Error {}

type T =
  | 'num'
  | 'enum' // 1.5E3
  | 'pctnum'
  | 'letter'
  | 'e' // Euler's e
  | 'E' // the letter E (a symbol)
  | 'diff' // d x (a differential: one symbol)
  | 'greek'
  | 'other' // \angle, \triangle, … (symbols)
  | 'accent' // \text{…}, \bar{…}, …
  | 'symbol' // \infty, \partial
  | 'sset' // \mathbb{R}, \emptyset, …
  | 'op' // + - * / : \cdot \times \div \mod
  | 'pm'
  | 'rel'
  | 'in'
  | 'notin'
  | 'approx'
  | 'subset'
  | 'setop' // \cup \cap \setminus
  | 'open'
  | 'close'
  | 'bar' // |
  | 'norm' // \|
  | 'func' // \sin, \log, … (single argument)
  | 'mfunc' // \gcd, \max, … (several)
  | 'opname' // \operatorname
  | 'sqrt'
  | 'frac'
  | 'binom'
  | 'choose'
  | 'boxed'
  | 'phantom'
  | 'matbegin'
  | 'matend'
  | 'amp'
  | 'rowsep'
  | 'sub' // _
  | 'sup' // ^
  | 'degree'
  | 'transpose'
  | 'comma'
  | 'semi'
  | 'bang'
  | 'bigop' // \sum, \prod
  | 'eof';

interface Tok {
  t: T;
  v: string;
  /** The token's source text (for subscripts, which latex2sympy keeps as text). */
  src: string;
}

// ---------------------------------------------------------------------------------------------
// Lexer

const SKIP = [
  '\\thinspace',
  '\\medspace',
  '\\thickspace',
  '\\negthinspace',
  '\\negmedspace',
  '\\negthickspace',
  '\\qquad',
  '\\quad',
  '\\vrule',
  '\\vcenter',
  '\\vbox',
  '\\vskip',
  '\\vspace',
  '\\hfil',
];
const GREEK = new Set([
  'alpha',
  'beta',
  'gamma',
  'Gamma',
  'delta',
  'Delta',
  'epsilon',
  'varepsilon',
  'zeta',
  'eta',
  'theta',
  'Theta',
  'vartheta',
  'iota',
  'kappa',
  'lambda',
  'Lambda',
  'mu',
  'nu',
  'xi',
  'Xi',
  'omicron',
  'pi',
  'Pi',
  'varpi',
  'rho',
  'varrho',
  'sigma',
  'Sigma',
  'varsigma',
  'tau',
  'upsilon',
  'Upsilon',
  'phi',
  'Phi',
  'varphi',
  'chi',
  'psi',
  'Psi',
  'omega',
  'Omega',
]);
const GREEK_CHARS: Record<string, string> = {
  α: 'alpha',
  β: 'beta',
  γ: 'gamma',
  Γ: 'Gamma',
  δ: 'delta',
  Δ: 'Delta',
  ε: 'epsilon',
  ϵ: 'varepsilon',
  ζ: 'zeta',
  η: 'eta',
  θ: 'theta',
  Θ: 'Theta',
  ϑ: 'vartheta',
  ι: 'iota',
  κ: 'kappa',
  λ: 'lambda',
  Λ: 'Lambda',
  μ: 'mu',
  ν: 'nu',
  ξ: 'xi',
  Ξ: 'Xi',
  ο: 'omicron',
  π: 'pi',
  Π: 'Pi',
  ϖ: 'varpi',
  ρ: 'rho',
  ϱ: 'varrho',
  σ: 'sigma',
  Σ: 'Sigma',
  ς: 'varsigma',
  τ: 'tau',
  υ: 'upsilon',
  Υ: 'Upsilon',
  φ: 'phi',
  Φ: 'Phi',
  ϕ: 'varphi',
  χ: 'chi',
  ψ: 'psi',
  Ψ: 'Psi',
  ω: 'omega',
  Ω: 'Omega',
};
const OTHER = new Set(
  'Bbbk wp nabla bigstar angle nexists diagdown measuredangle eth diagup sphericalangle clubsuit varnothing Diamond complement diamondsuit imath Finv triangledown heartsuit jmath Game triangle spadesuit ell hbar vartriangle hslash blacklozenge lozenge blacksquare mho blacktriangle sharp prime Im flat square backprime Re natural surd circledS'.split(
    ' ',
  ),
);
const FUNCS = new Set(
  'log ln exp sin cos tan csc sec cot arcsin arccos arctan arccsc arcsec arccot sinh cosh tanh arsinh arcosh artanh arcsinh arccosh arctanh floor ceil det'.split(
    ' ',
  ),
);
const MFUNCS = new Set(['gcd', 'lcm', 'max', 'min']);
const ACCENTS =
  'acute bar overline breve check widecheck dot ddot grave hat tilde widetilde vec overrightarrow bm boldsymbol text textit textbf textnormal mathbb mathbin mathbf mathcal mathclap mathclose mathellipsis mathfrak mathinner mathit mathnormal mathop mathopen mathord mathpunct mathrel mathring mathrlap mathrm mathscr mathsf mathsterling mathtt mbox'.split(
    ' ',
  );
const ACCENT_SET = new Set(ACCENTS);
const SSETS: Record<string, Node & { k: 'sset' }> = {
  N: { k: 'sset', name: 'naturals' },
  Z: { k: 'sset', name: 'integers' },
  Q: { k: 'sset', name: 'rationals' },
  R: { k: 'sset', name: 'reals' },
  C: { k: 'sset', name: 'complexes' },
  P: { k: 'sset', name: 'primes' },
};
const UNICODE_OPS: Record<string, [T, string]> = {
  '−': ['op', '-'],
  '∸': ['op', '-'],
  '∔': ['op', '+'],
  '⊕': ['op', '+'],
  '⊞': ['op', '+'],
  '×': ['op', '*'],
  '⋅': ['op', '*'],
  '∗': ['op', '*'],
  '∙': ['op', '*'],
  '÷': ['op', '/'],
  '∕': ['op', '/'],
  '±': ['pm', '±'],
  '∓': ['pm', '±'],
  '≈': ['approx', '≈'],
  '≅': ['approx', '≈'],
  '≃': ['approx', '≈'],
  '≤': ['rel', '<='],
  '≦': ['rel', '<='],
  '≥': ['rel', '>='],
  '≧': ['rel', '>='],
  '≠': ['rel', '!='],
  '≡': ['rel', '='],
  '∪': ['setop', 'union'],
  '∩': ['setop', 'intersect'],
  '∖': ['setop', 'minus'],
  '∅': ['sset', 'empty'],
  '∞': ['symbol', 'oo'],
  ℕ: ['sset', 'N'],
  ℤ: ['sset', 'Z'],
  ℚ: ['sset', 'Q'],
  ℝ: ['sset', 'R'],
  ℂ: ['sset', 'C'],
  '∈': ['in', 'in'],
  '∉': ['notin', 'notin'],
  '⊆': ['subset', 'sub'],
  '⊇': ['subset', 'sup'],
};

const DEGREE = /^\^(?:\\circ|\\degree|\\circle|°|\{\\circ\}|\{\\degree\}|\{\\circle\}|\{°\})/;
const TRANSPOSE = /^\^(?:T|\{T\}|\{\\top\})(?![a-zA-Z])/;

const COMMANDS = new Set([
  ...SKIP.map((c) => c.slice(1)),
  ...GREEK,
  ...OTHER,
  ...FUNCS,
  ...MFUNCS,
  ...ACCENTS,
  ...'cdot times div over mod pm mp le leq leqslant ge geq geqslant lt gt ne neq equiv approx in notin subseteq supseteq cup cap setminus emptyset infty partial lgroup lbrace lbrack langle lfloor lceil llcorner ulcorner rgroup rbrace rbrack rangle rfloor rceil lrcorner urcorner lvert rvert vert sqrt frac dfrac tfrac cfrac binom tbinom dbinom choose boxed phantom operatorname exponentialE sum prod begin end not'.split(
    ' ',
  ),
]);

/** The longest known command the letters after a backslash start with (the letters themselves when none is). */
function knownPrefix(letters: string, rest: string): string {
  if (COMMANDS.has(letters) || rest.startsWith('\\mathbb{')) return letters;
  for (let n = letters.length - 1; n > 0; n--) if (COMMANDS.has(letters.slice(0, n))) return letters.slice(0, n);
  return letters;
}

function lex(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const push = (t: T, v: string, src: string) => out.push({ t, v, src });
  while (i < s.length) {
    const c = s[i]!;
    const rest = s.slice(i);
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if ((c >= '0' && c <= '9') || (c === '.' && /^\.\d/.test(rest))) {
      const m = /^(?:\d*\.\d+|\d+)/.exec(rest)!;
      const e = /^[Ee][+-]?\d+/.exec(rest.slice(m[0].length));
      if (e && rest[m[0].length] === 'E') {
        push('enum', m[0] + e[0], m[0] + e[0]);
        i += m[0].length + e[0].length;
        continue;
      }
      const p = /^(?:\s)?(?:\\%|%)/.exec(rest.slice(m[0].length));
      if (p) {
        push('pctnum', m[0], m[0] + p[0]);
        i += m[0].length + p[0].length;
        continue;
      }
      push('num', m[0], m[0]);
      i += m[0].length;
      continue;
    }
    if (c === '\\') {
      const m = /^\\([a-zA-Z]+)/.exec(rest);
      if (!m) {
        const two = rest.slice(0, 2);
        if (two === '\\\\') push('rowsep', '\\\\', two);
        else if (two === '\\{') push('open', '\\{', two);
        else if (two === '\\}') push('close', '\\}', two);
        else if (two === '\\(') push('open', '\\(', two);
        else if (two === '\\)') push('close', '\\)', two);
        else if (two === '\\|') push('norm', '\\|', two);
        else if (two === '\\,' || two === '\\:' || two === '\\;' || two === '\\!' || two === '\\$') {
          // spacing, skipped
        } else throw new ParseError(`unknown ${two}`);
        i += 2;
        continue;
      }
      // The lexer takes the longest known command: \quadx is \quad then x.
      const name = knownPrefix(m[1]!, rest);
      let len = name.length + 1;
      const cmd = `\\${name}`;
      if (SKIP.includes(cmd)) {
        i += len;
        continue;
      }
      // \mathbb{R} and friends before accents.
      const bb = /^\\mathbb\{([NZQRCP])\}/.exec(rest);
      if (bb) {
        push('sset', bb[1]!, bb[0]);
        i += bb[0].length;
        continue;
      }
      if (ACCENT_SET.has(name)) {
        const a = new RegExp(`^\\\\${name}\\s?\\{((?:\\\\\\}|[^}])*?)\\}`).exec(rest);
        if (!a) throw new ParseError(`accent ${cmd} without braces`);
        push('accent', `${name}\u0000${a[1]}`, a[0]);
        i += a[0].length;
        continue;
      }
      if (GREEK.has(name)) {
        push('greek', name, cmd);
        i += len;
        if (s[i] === ' ') i++;
        continue;
      }
      if (OTHER.has(name)) {
        push('other', name, cmd);
        i += len;
        if (s[i] === ' ') i++;
        continue;
      }
      if (name === 'begin' || name === 'end') {
        const b = /^\\(begin|end)\{(matrix|pmatrix|bmatrix|vmatrix|array)\}/.exec(rest);
        if (!b) throw new ParseError(`unknown environment at ${rest.slice(0, 20)}`);
        let src = b[0];
        if (b[1] === 'begin' && b[2] === 'array') {
          const spec = /^\{[clr]*\}/.exec(rest.slice(src.length));
          if (!spec) throw new ParseError('array without a column spec');
          src += spec[0];
        }
        push(b[1] === 'begin' ? 'matbegin' : 'matend', b[2]!, src);
        i += src.length;
        continue;
      }
      if (name === 'not' && rest.startsWith('\\not\\equiv')) {
        push('rel', '!=', '\\not\\equiv');
        i += 10;
        continue;
      }
      len = cmd.length;
      switch (name) {
        case 'cdot':
        case 'times':
          push('op', '*', cmd);
          break;
        case 'div':
        case 'over':
          push('op', '/', cmd);
          break;
        case 'mod':
          push('op', 'mod', cmd);
          break;
        case 'pm':
        case 'mp':
          push('pm', '±', cmd);
          break;
        case 'le':
        case 'leq':
        case 'leqslant':
          push('rel', '<=', cmd);
          break;
        case 'ge':
        case 'geq':
        case 'geqslant':
          push('rel', '>=', cmd);
          break;
        case 'lt':
          push('rel', '<', cmd);
          break;
        case 'gt':
          push('rel', '>', cmd);
          break;
        case 'ne':
        case 'neq':
          push('rel', '!=', cmd);
          break;
        case 'equiv':
          push('rel', '=', cmd);
          break;
        case 'approx':
          push('approx', '≈', cmd);
          break;
        case 'in':
          push('in', 'in', cmd);
          break;
        case 'notin':
          push('notin', 'notin', cmd);
          break;
        case 'subseteq':
          push('subset', 'sub', cmd);
          break;
        case 'supseteq':
          push('subset', 'sup', cmd);
          break;
        case 'cup':
          push('setop', 'union', cmd);
          break;
        case 'cap':
          push('setop', 'intersect', cmd);
          break;
        case 'setminus':
          push('setop', 'minus', cmd);
          break;
        case 'emptyset':
          push('sset', 'empty', cmd);
          break;
        case 'infty':
          push('symbol', 'oo', cmd);
          if (/^\\%|^%/.test(s.slice(i + len))) len += s[i + len] === '%' ? 1 : 2;
          break;
        case 'partial':
          push('symbol', 'partial', cmd);
          break;
        case 'lgroup':
        case 'lbrace':
        case 'lbrack':
        case 'langle':
        case 'lfloor':
        case 'lceil':
        case 'llcorner':
        case 'ulcorner':
          push('open', `\\${name}`, cmd);
          break;
        case 'rgroup':
        case 'rbrace':
        case 'rbrack':
        case 'rangle':
        case 'rfloor':
        case 'rceil':
        case 'lrcorner':
        case 'urcorner':
          push('close', `\\${name}`, cmd);
          break;
        case 'lvert':
          push('open', '\\lvert', cmd);
          break;
        case 'rvert':
          push('close', '\\rvert', cmd);
          break;
        case 'vert':
          push('bar', '\\vert', cmd);
          break;
        case 'sqrt':
          push('sqrt', 'sqrt', cmd);
          break;
        case 'frac':
        case 'dfrac':
        case 'tfrac':
        case 'cfrac':
          push('frac', 'frac', cmd);
          break;
        case 'binom':
        case 'tbinom':
        case 'dbinom':
          push('binom', 'binom', cmd);
          break;
        case 'choose':
          push('choose', 'choose', cmd);
          break;
        case 'boxed':
          push('boxed', 'boxed', cmd);
          break;
        case 'phantom':
          push('phantom', 'phantom', cmd);
          break;
        case 'operatorname':
          push('opname', 'operatorname', cmd);
          break;
        case 'exponentialE':
          push('e', 'e', cmd);
          break;
        case 'sum':
        case 'prod':
          push('bigop', name, cmd);
          break;
        default:
          if (FUNCS.has(name)) push('func', name, cmd);
          else if (MFUNCS.has(name)) push('mfunc', name, cmd);
          else throw new ParseError(`unknown command ${cmd}`);
      }
      i += len;
      continue;
    }
    if (/[a-zA-Z]/.test(c)) {
      if (c === 'd') {
        const d = /^d\s*(?:[a-zA-Z]|\\[a-zA-Z]+)/.exec(rest);
        if (d && !/^d\s*\\(?:cdot|times|div|over|mod|pm|mp|le|leq|ge|geq|lt|gt|ne|neq|in|cup|cap)(?![a-zA-Z])/.test(rest)) {
          push('diff', d[0].replace(/\s+/g, ''), d[0]);
          i += d[0].length;
          continue;
        }
      }
      push(c === 'e' ? 'e' : c === 'E' ? 'E' : 'letter', c, c);
      i++;
      continue;
    }
    if (GREEK_CHARS[c]) {
      push('greek', GREEK_CHARS[c]!, c);
      i++;
      continue;
    }
    const u = UNICODE_OPS[c];
    if (u) {
      push(u[0], u[1], c);
      i++;
      continue;
    }
    const deg = DEGREE.exec(rest);
    if (deg) {
      push('degree', '°', deg[0]);
      i += deg[0].length;
      continue;
    }
    const tr = TRANSPOSE.exec(rest);
    if (tr) {
      push('transpose', 'T', tr[0]);
      i += tr[0].length;
      continue;
    }
    const two = rest.slice(0, 2);
    if (two === '<=' || two === '>=' || two === '!=' || two === '==' || two === '~=') {
      if (two === '~=') push('approx', '≈', two);
      else push('rel', two === '==' ? '=' : two, two);
      i += rest.startsWith('!==') ? 3 : 2;
      continue;
    }
    switch (c) {
      case '+':
      case '-':
      case '*':
      case '/':
      case ':':
        push('op', c, c);
        break;
      case '=':
        push('rel', '=', c);
        break;
      case '<':
        push('rel', '<', c);
        break;
      case '>':
        push('rel', '>', c);
        break;
      case '(':
      case '[':
      case '{':
        push('open', c, c);
        break;
      case ')':
      case ']':
      case '}':
        push('close', c, c);
        break;
      case '|':
        push('bar', '|', c);
        break;
      case '&':
        push('amp', '&', c);
        break;
      case '_':
        push('sub', '_', c);
        break;
      case '^':
        push('sup', '^', c);
        break;
      case ',':
        push('comma', ',', c);
        break;
      case ';':
        push('semi', ';', c);
        break;
      case '!':
        push('bang', '!', c);
        break;
      default:
        throw new ParseError(`unexpected ${c}`);
    }
    i++;
  }
  out.push({ t: 'eof', v: '', src: '' });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parser

const CLOSERS: Record<string, string> = {
  '(': ')',
  '[': ']',
  '{': '}',
  '\\{': '\\}',
  '\\(': '\\)',
  '\\lgroup': '\\rgroup',
  '\\lbrace': '\\rbrace',
  '\\lbrack': '\\rbrack',
  '\\lvert': '\\rvert',
  '\\lfloor': '\\rfloor',
  '\\lceil': '\\rceil',
  '\\llcorner': '\\lrcorner',
  '\\ulcorner': '\\urcorner',
  '\\langle': '\\rangle',
};
const INTERVAL_OPEN = new Set(['(', '[', '\\(', '\\lbrack', '\\lgroup']);
const INTERVAL_CLOSE = new Set([')', ']', '\\)', '\\rbrack', '\\rgroup']);

class Parser {
  private p = 0;
  /** Open absolute-value bars: a | then closes the innermost one instead of opening another. */
  private absDepth = 0;
  constructor(private readonly toks: Tok[]) {}

  private get tok(): Tok {
    return this.toks[this.p]!;
  }
  private peek(k = 1): Tok {
    return this.toks[Math.min(this.p + k, this.toks.length - 1)]!;
  }
  private is(t: T, v?: string): boolean {
    return this.tok.t === t && (v === undefined || this.tok.v === v);
  }
  private eat(t: T, v?: string): Tok {
    if (!this.is(t, v)) throw new ParseError(`expected ${v ?? t}, got ${this.tok.src || this.tok.t}`);
    return this.toks[this.p++]!;
  }
  private accept(t: T, v?: string): boolean {
    if (this.is(t, v)) {
      this.p++;
      return true;
    }
    return false;
  }
  /** Runs `f`; on failure restores the position and returns null. */
  private attempt<R>(f: () => R): R | null {
    if (++this.steps > 20_000) throw new ParseError('too complex');
    const save = this.p;
    const abs = this.absDepth;
    try {
      return f();
    } catch (e) {
      if (!(e instanceof ParseError)) throw e;
      this.p = save;
      this.absDepth = abs;
      return null;
    }
  }

  // -- the whole answer ------------------------------------------------------------------------

  math(): Node {
    for (const alt of [() => this.setElementsRelation(), () => this.setElements(), () => this.setRelation()]) {
      const r = this.attempt(() => {
        const v = alt();
        this.eat('eof');
        return v;
      });
      if (r !== null) return r;
    }
    throw new ParseError('no reading of the whole answer');
  }

  /** x = 1, 2, 3 / x \in {…} */
  private setElementsRelation(): Node {
    const lhs = this.atomExprList();
    const op = this.tok;
    if (!(op.t === 'in' || (op.t === 'rel' && op.src !== '==' && op.v === '=' && op.src !== '\\equiv')))
      throw new ParseError('no = or \\in');
    this.p++;
    const rows = this.semicolonElements(false);
    return { k: 'rel', op: '=', lhs, rhs: toSetOrTuple(rows) };
  }

  private setElements(): Node {
    return toSetOrTuple(this.semicolonElements(true));
  }

  private semicolonElements(relations: boolean): Node[][] {
    const rows = [this.commaElements(relations)];
    while (this.accept('semi')) rows.push(this.commaElements(relations));
    return rows;
  }

  private commaElements(relations: boolean): Node[] {
    const items = [...this.element(relations)];
    while (this.accept('comma')) items.push(...this.element(relations));
    return items;
  }

  /** Whether the grammar could go on after an element: , ; a closing bracket or the end. */
  private atElementEnd(): boolean {
    const t = this.tok.t;
    return t === 'comma' || t === 'semi' || t === 'eof' || t === 'close';
  }

  private element(relations: boolean): Node[] {
    const pm = this.attempt(() => {
      const v = this.plusMinus();
      if (!this.atElementEnd()) throw new ParseError('not an element end');
      return v;
    });
    if (pm) return pm;
    const sa = this.attempt(() => {
      const v = this.setAtom();
      if (!this.atElementEnd()) throw new ParseError('not an element end');
      return v;
    });
    if (sa) return [sa];
    return [relations ? this.relation() : this.expr()];
  }

  private plusMinus(): Node[] {
    if (this.accept('pm')) {
      const e = this.expr();
      return [unaryMinus(e), e];
    }
    const l = this.expr();
    this.eat('pm');
    const r = this.expr();
    return [add(l, r), add(l, unaryMinus(r))];
  }

  // -- sets ------------------------------------------------------------------------------------

  private setAtom(): Node {
    const t = this.tok;
    if (t.t === 'sset') {
      this.p++;
      return t.v === 'empty' ? { k: 'sset', name: 'empty' } : SSETS[t.v]!;
    }
    if (t.t === 'open') {
      if (t.v === '{' && this.peek().t === 'close' && this.peek().v === '}') {
        this.p += 2;
        return { k: 'sset', name: 'empty' };
      }
      if (t.v === '\\{' && this.peek().t === 'close' && this.peek().v === '\\}') {
        this.p += 2;
        return { k: 'sset', name: 'empty' };
      }
      if (INTERVAL_OPEN.has(t.v)) {
        const iv = this.attempt(() => this.interval());
        if (iv) return iv;
      }
      if (t.v === '(' || t.v === '\\(' || t.v === '[') {
        this.p++;
        const rows = this.semicolonElements(true);
        this.eat('close', CLOSERS[t.v]);
        const flat = rows.flat();
        if (rows.length === 1 && rows[0]!.length === 1) return rows[0]![0]!;
        return { k: 'tuple', items: flat };
      }
      if (t.v === '{' || t.v === '\\{') {
        this.p++;
        const rows = this.semicolonElements(true);
        this.eat('close', CLOSERS[t.v]);
        return finiteSet(rows.flat(), 'braces');
      }
    }
    if (t.t === 'boxed' && this.peek().t === 'open' && this.peek().v === '{') {
      this.p += 2;
      const rows = this.semicolonElements(true);
      this.eat('close', '}');
      return toSetOrTuple(rows);
    }
    throw new ParseError('not a set');
  }

  private interval(): Node {
    const open = this.eat('open');
    const lo = this.expr();
    this.eat('comma');
    const hi = this.expr();
    const close = this.eat('close');
    if (!INTERVAL_CLOSE.has(close.v)) throw new ParseError('not an interval');
    const lopen = open.v === '(' || open.v === '\\(' || open.v === '\\lgroup';
    const ropen = close.v === ')' || close.v === '\\)' || close.v === '\\rgroup';
    // An empty interval is read as a pair (3, 2).
    const l = numericValue(lo);
    const h = numericValue(hi);
    if (l !== null && h !== null && ((lopen && ropen && h <= l) || (!lopen && !ropen && h < l))) return { k: 'tuple', items: [lo, hi] };
    return { k: 'interval', lo, hi, lopen, ropen };
  }

  /** Set relations: A \subseteq B, x \in S, then \setminus / \cup / \cap (loosest first). */
  private setRelation(): Node {
    const rel = this.attempt(() => {
      const lhs = this.atomExprList();
      const op = this.tok;
      if (op.t === 'in' || (op.t === 'rel' && op.v === '=' && op.src === '=')) {
        this.p++;
        return { k: 'rel', op: '=', lhs, rhs: this.setRelation() } as Node;
      }
      if (op.t === 'notin') throw new ParseError('\\notin is not compared');
      throw new ParseError('no set relation');
    });
    if (rel) return rel;
    const left = this.setMinus();
    if (this.is('subset')) throw new ParseError('set inclusion is not compared');
    return left;
  }

  private setMinus(): Node {
    let l = this.setUnion();
    while (this.is('setop', 'minus')) {
      this.p++;
      l = { k: 'setop', op: 'minus', args: [l, this.setUnion()] };
    }
    return l;
  }

  private setUnion(): Node {
    let l = this.setIntersect();
    while (this.is('setop', 'union')) {
      this.p++;
      l = { k: 'setop', op: 'union', args: [asSet(l), asSet(this.setIntersect())] };
    }
    return l;
  }

  private setIntersect(): Node {
    let l = this.setGroup();
    while (this.is('setop', 'intersect')) {
      this.p++;
      l = { k: 'setop', op: 'intersect', args: [asSet(l), asSet(this.setGroup())] };
    }
    return l;
  }

  private setGroup(): Node {
    if (this.is('open', '(')) {
      const g = this.attempt(() => {
        this.p++;
        const v = this.setMinus();
        this.eat('close', ')');
        return v;
      });
      if (g) return g;
    }
    return this.setAtom();
  }

  /** (a, b) or a single atom_expr: the left side of x = … / x \in … */
  private atomExprList(): Node {
    if (this.is('open', '(')) {
      this.p++;
      const items = [this.atomExpr(true)];
      while (this.accept('comma')) items.push(this.atomExpr(true));
      this.eat('close', ')');
      return items.length === 1 ? items[0]! : { k: 'tuple', items };
    }
    return this.atomExpr(true);
  }

  // -- relations -------------------------------------------------------------------------------

  private relation(): Node {
    let lhs: Node = this.expr();
    for (;;) {
      const t = this.tok;
      if (t.t === 'rel') {
        this.p++;
        const rhs = this.expr();
        lhs = chain(lhs, t.v as RelOp, rhs);
      } else if (t.t === 'approx') {
        this.p++;
        const rhs = this.expr();
        lhs = onlySymbols(lhs) ? rhs : lhs;
      } else if (t.t === 'in') {
        throw new ParseError('\\in inside a relation');
      } else return lhs;
    }
  }

  // -- expressions -----------------------------------------------------------------------------

  /** expr() at a position and bar depth, once: alternatives re-read the same text (nested brackets). */
  private memo = new Map<string, { node: Node; end: number } | null>();
  private steps = 0;

  expr(): Node {
    const k = `${this.p}:${this.absDepth}`;
    const hit = this.memo.get(k);
    if (hit === null) throw new ParseError('no expression here');
    if (hit) {
      this.p = hit.end;
      return hit.node;
    }
    if (++this.steps > 20_000) throw new ParseError('too complex');
    try {
      const node = this.exprUncached();
      this.memo.set(k, { node, end: this.p });
      return node;
    } catch (e) {
      if (e instanceof ParseError) this.memo.set(k, null);
      throw e;
    }
  }

  private exprUncached(): Node {
    let l = this.mp(true);
    for (;;) {
      if (this.is('op', '+')) {
        this.p++;
        l = add(l, this.mp(true));
      } else if (this.is('op', '-')) {
        this.p++;
        l = sub(l, this.mp(true));
      } else return l;
    }
  }

  private mp(funcs: boolean): Node {
    let l = this.unary(funcs);
    for (;;) {
      const t = this.tok;
      if (t.t !== 'op' || t.v === '+' || t.v === '-') return l;
      this.p++;
      const r = this.unary(funcs);
      if (t.v === '*') l = mul(l, r);
      else if (t.v === 'mod') l = { k: 'fn', name: 'mod', args: [l, r] };
      else l = div(l, r);
    }
  }

  private unary(funcs: boolean): Node {
    if (this.is('op', '+')) {
      this.p++;
      return this.unary(funcs);
    }
    if (this.is('op', '-')) {
      this.p++;
      return unaryMinus(this.unary(funcs));
    }
    // In a function's bare argument only the first factor may itself be a function: \sin x \cos y is sin(x)·cos(y).
    const items = [this.postfix(true)];
    while (this.startsPostfix()) {
      const next = this.attempt(() => this.postfix(funcs));
      if (next === null) break;
      items.push(next);
    }
    return productOf(items);
  }

  /** Whether the next token can begin another factor of an implicit product. */
  private startsPostfix(): boolean {
    const t = this.tok;
    switch (t.t) {
      case 'num':
      case 'enum':
      case 'pctnum':
      case 'letter':
      case 'e':
      case 'E':
      case 'diff':
      case 'greek':
      case 'other':
      case 'accent':
      case 'symbol':
      case 'sqrt':
      case 'frac':
      case 'binom':
      case 'boxed':
      case 'phantom':
      case 'matbegin':
      case 'func':
      case 'mfunc':
      case 'opname':
      case 'bigop':
      case 'norm':
        return true;
      case 'open':
        return t.v !== '\\rangle';
      case 'bar':
        return this.absDepth === 0;
      default:
        return false;
    }
  }

  private postfix(funcs: boolean): Node {
    let v = this.exp(funcs);
    for (;;) {
      if (this.accept('bang')) v = { k: 'fn', name: 'factorial', args: [v] };
      else if (this.accept('degree')) continue;
      else if (this.accept('transpose')) v = { k: 'fn', name: 'transpose', args: [v] };
      else return v;
    }
  }

  private exp(funcs: boolean): Node {
    let base = this.comp(funcs);
    while (this.is('sup')) {
      this.p++;
      const e = this.supArg();
      if (this.is('sub')) this.subscriptText(); // ignored
      base = pow(base, e);
    }
    return base;
  }

  /** ^x: an atom or {expr}. */
  private supArg(): Node {
    if (this.accept('open', '{')) {
      const e = this.expr();
      this.eat('close', '}');
      return e;
    }
    return this.atom();
  }

  private comp(funcs: boolean): Node {
    const t = this.tok;
    if (t.t === 'open') {
      const closer = CLOSERS[t.v];
      if (t.v === '\\lfloor' || t.v === '\\llcorner' || t.v === '\\lceil' || t.v === '\\ulcorner') {
        this.p++;
        const e = this.expr();
        this.eat('close', closer);
        return { k: 'fn', name: t.v === '\\lfloor' || t.v === '\\llcorner' ? 'floor' : 'ceil', args: [e] };
      }
      if (t.v === '\\lvert') {
        this.p++;
        this.absDepth++;
        const e = this.expr();
        this.absDepth--;
        this.eat('close', '\\rvert');
        return { k: 'fn', name: 'abs', args: [e] };
      }
      if (t.v === '\\langle') throw new ParseError('dot products are not compared');
      if (t.v === '{') {
        // {a \choose b}
        const b = this.attempt(() => {
          this.p++;
          const n = this.expr();
          this.eat('choose');
          const k = this.expr();
          this.eat('close', '}');
          return { k: 'fn', name: 'binom', args: [n, k] } as Node;
        });
        if (b) return b;
      }
      this.p++;
      const saved = this.absDepth;
      this.absDepth = 0;
      const e = this.expr();
      this.absDepth = saved;
      this.eat('close', closer);
      return e;
    }
    if (t.t === 'bar') {
      this.p++;
      this.absDepth++;
      const e = this.expr();
      this.absDepth--;
      this.eat('bar', t.v);
      return { k: 'fn', name: 'abs', args: [e] };
    }
    if (t.t === 'norm') throw new ParseError('norms are not compared');
    if (t.t === 'boxed' || t.t === 'phantom') {
      this.p++;
      this.eat('open', '{');
      const e = this.expr();
      this.eat('close', '}');
      return e;
    }
    if (funcs) {
      const f = this.attempt(() => this.func());
      if (f) return f;
    } else if (t.t === 'func' || t.t === 'mfunc' || t.t === 'opname' || t.t === 'sqrt' || t.t === 'e' || t.t === 'bigop') {
      // A function after the first factor of a function's bare argument ends that argument.
      throw new ParseError('function inside a bare argument');
    }
    if (t.t === 'frac') {
      this.p++;
      this.eat('open', '{');
      const a = this.expr();
      this.eat('close', '}');
      this.eat('open', '{');
      const b = this.expr();
      this.eat('close', '}');
      return div(a, b);
    }
    if (t.t === 'binom') {
      this.p++;
      this.eat('open', '{');
      const a = this.expr();
      this.eat('close', '}');
      this.eat('open', '{');
      const b = this.expr();
      this.eat('close', '}');
      return { k: 'fn', name: 'binom', args: [a, b] };
    }
    if (t.t === 'matbegin') return this.matrix();
    return this.atom();
  }

  private matrix(): Node {
    const begin = this.eat('matbegin');
    const rows: Node[][] = [[this.expr()]];
    for (;;) {
      if (this.accept('amp')) rows[rows.length - 1]!.push(this.expr());
      else if (this.accept('rowsep')) {
        if (this.is('matend')) break;
        rows.push([this.expr()]);
      } else break;
    }
    const end = this.eat('matend');
    if ((begin.v === 'array') !== (end.v === 'array') || (begin.v === 'vmatrix') !== (end.v === 'vmatrix'))
      throw new ParseError('mismatched environment');
    if (rows.some((r) => r.length !== rows[0]!.length)) throw new ParseError('ragged matrix');
    if (begin.v === 'vmatrix') return { k: 'fn', name: 'det', args: [{ k: 'matrix', rows }] };
    return { k: 'matrix', rows };
  }

  /** \sin x, \log_2 8, \sqrt[3]{x}, \gcd(a, b), e^x, f(x). */
  private func(): Node {
    const t = this.tok;
    if (t.t === 'func' || (t.t === 'opname' && /^(?:arsinh|arcosh|artanh|arcsinh|arccosh|arctanh|floor|ceil)$/.test(this.opName()))) {
      let name = t.t === 'opname' ? this.opName() : t.v;
      if (t.t === 'opname') this.p += 4;
      else this.p++;
      let base: Node | null = null;
      let power: Node | null = null;
      for (let i = 0; i < 2; i++) {
        if (this.is('sub') && base === null) {
          this.p++;
          base = this.supArgOrAtom();
        } else if (this.is('sup') && power === null) {
          this.p++;
          power = this.supArg();
        }
      }
      let arg: Node;
      if (this.is('open', '(')) {
        const a = this.attempt(() => {
          this.p++;
          const e = this.expr();
          this.eat('close', ')');
          return e;
        });
        arg = a ?? this.mp(false);
      } else arg = this.mp(false);
      const isInverse = power !== null && power.k === 'num' && power.q !== null && power.q.n === -1n && power.q.d === 1n;
      if (isInverse && /^(?:sin|cos|tan|csc|sec|cot|sinh|cosh|tanh)$/.test(name)) {
        name = `a${name}`;
        power = null;
      }
      name = name.replace(/^arc(sin|cos|tan|csc|sec|cot|sinh|cosh|tanh)$/, 'a$1').replace(/^ar(sinh|cosh|tanh)$/, 'a$1');
      let f: Node;
      if (name === 'log' || name === 'ln')
        f = { k: 'fn', name: 'log', args: [arg, base ?? (name === 'ln' ? { k: 'const', name: 'E' } : intNode(10n))] };
      else f = { k: 'fn', name, args: [arg] };
      return power ? pow(f, power) : f;
    }
    if (t.t === 'mfunc' || (t.t === 'opname' && /^(?:gcd|lcm)$/.test(this.opName()))) {
      const name = t.t === 'opname' ? this.opName() : t.v;
      this.p += t.t === 'opname' ? 4 : 1;
      let power: Node | null = null;
      for (let i = 0; i < 2; i++) {
        if (this.accept('sub')) this.supArgOrAtom();
        else if (this.is('sup') && power === null) {
          this.p++;
          power = this.supArg();
        }
      }
      let args: Node[];
      if (this.accept('open', '(')) {
        args = [this.expr()];
        while (this.accept('comma')) args.push(this.expr());
        this.eat('close', ')');
      } else args = [this.mp(false)];
      const f: Node = { k: 'fn', name, args };
      return power ? pow(f, power) : f;
    }
    if (t.t === 'sqrt') {
      this.p++;
      let root: Node | null = null;
      if (this.accept('open', '[')) {
        root = this.expr();
        this.eat('close', ']');
      }
      this.eat('open', '{');
      const b = this.expr();
      this.eat('close', '}');
      return pow(b, root ? div(intNode(1n), root) : ratNode(rat(1n, 2n)!));
    }
    if (t.t === 'bigop') {
      // \sum_{k=1}^{n} body (body: a product, as the grammar's mp)
      this.p++;
      let v: Node | null = null;
      let lo: Node | null = null;
      let hi: Node | null = null;
      for (let i = 0; i < 2; i++) {
        if (this.accept('sub')) {
          this.eat('open', '{');
          v = this.expr();
          this.eat('rel', '=');
          lo = this.expr();
          this.eat('close', '}');
        } else if (this.accept('sup')) hi = this.supArg();
      }
      if (!v || !lo || !hi || v.k !== 'sym') throw new ParseError('\\sum needs _{k=a}^{b}');
      return { k: 'fn', name: t.v, args: [this.mp(true), v, lo, hi] };
    }
    if (t.t === 'e') {
      this.p++;
      if (this.is('sup')) {
        this.p++;
        return { k: 'fn', name: 'exp', args: [this.supArg()] };
      }
      return { k: 'const', name: 'E' };
    }
    return this.userFunc();
  }

  private opName(): string {
    if (this.tok.t !== 'opname' || !(this.peek().t === 'open' && this.peek().v === '{') || this.peek(3).t !== 'close') return '';
    return this.peek(2).src;
  }

  /** f(x), f(x, y): a letter (or symbol) without superscript, applied to one atom or a list. */
  private userFunc(): Node {
    const head = this.tok;
    if (!(head.t === 'letter' || head.t === 'greek' || head.t === 'other' || head.t === 'accent')) throw new ParseError('not a function');
    const start = this.p;
    this.atomExpr(false);
    const name = this.toks
      .slice(start, this.p)
      .map((x) => x.src)
      .join('');
    let power: Node | null = null;
    if (this.is('sup')) {
      this.p++;
      power = this.supArg();
    }
    let open = this.tok.v;
    let wrapped = false;
    if (this.is('open', '{') && this.peek().t === 'open' && (this.peek().v === '(' || this.peek().v === '[')) {
      wrapped = true;
      this.p++;
      open = this.tok.v;
    }
    if (!(this.is('open', '(') || this.is('open', '['))) throw new ParseError('no arguments');
    this.p++;
    const args = this.commonArgs();
    this.eat('close', CLOSERS[open]);
    if (wrapped) this.eat('close', '}');
    const f: Node = { k: 'ufn', name, args };
    return power ? pow(f, power) : f;
  }

  /** One atom, or a comma-separated list of expressions. */
  private commonArgs(): Node[] {
    const single = this.attempt(() => {
      const a = this.atom();
      if (!this.is('close')) throw new ParseError('more than an atom');
      return [a];
    });
    if (single) return single;
    const args = [this.expr()];
    this.eat('comma');
    if (this.is('close')) return args;
    args.push(this.expr());
    while (this.accept('comma')) args.push(this.expr());
    return args;
  }

  private supArgOrAtom(): Node {
    return this.supArg();
  }

  /** The text of a subscript, as latex2sympy keeps it (tokens joined without spaces). */
  private subscriptText(): string {
    this.eat('sub');
    if (this.is('open', '{')) {
      const start = this.p;
      let depth = 0;
      for (;;) {
        const t = this.tok;
        if (t.t === 'eof') throw new ParseError('unclosed subscript');
        this.p++;
        if (t.t === 'open' && t.v === '{') depth++;
        else if (t.t === 'close' && t.v === '}' && --depth === 0) break;
      }
      return this.toks
        .slice(start + 1, this.p - 1)
        .map((x) => x.src)
        .join('');
    }
    const t = this.tok;
    if (
      t.t === 'num' ||
      t.t === 'letter' ||
      t.t === 'e' ||
      t.t === 'E' ||
      t.t === 'greek' ||
      t.t === 'other' ||
      t.t === 'accent' ||
      t.t === 'diff'
    ) {
      this.p++;
      return t.src;
    }
    throw new ParseError('bad subscript');
  }

  /** A letter / Greek letter / \text{…} with optional sub- and superscript: one symbol (or its power). */
  private atomExpr(withSup: boolean): Node {
    const t = this.tok;
    let text: string;
    if (t.t === 'letter') {
      if (t.v === 'I') {
        this.p++;
        return { k: 'const', name: 'I' };
      }
      text = t.v;
    } else if (t.t === 'greek') text = t.v;
    else if (t.t === 'other') text = t.v;
    else if (t.t === 'accent') text = accentText(t.v);
    else throw new ParseError('not a symbol');
    this.p++;
    let subText = '';
    let power: Node | null = null;
    for (let i = 0; i < 2; i++) {
      if (this.is('sub') && subText === '') {
        const s = this.subscriptText();
        subText = s.length > 1 ? `_{${s}}` : `_${s}`;
      } else if (withSup && this.is('sup') && power === null) {
        this.p++;
        power = this.supArg();
      }
    }
    const sym = symbolOf(text + subText);
    return power ? pow(sym, power) : sym;
  }

  atom(): Node {
    const t = this.tok;
    switch (t.t) {
      case 'letter':
      case 'greek':
      case 'other':
      case 'accent':
        return this.atomExpr(true);
      case 'symbol':
        this.p++;
        if (t.v === 'oo') return { k: 'const', name: 'oo' };
        throw new ParseError('\\partial');
      case 'num': {
        this.p++;
        if (this.is('sub')) this.subscriptText(); // 204_5: the base is ignored
        return numberNode(t.v);
      }
      case 'pctnum':
        this.p++;
        return pct(numberNode(t.v));
      case 'enum':
        this.p++;
        return floatNode(t.v);
      case 'E':
        this.p++;
        return { k: 'sym', name: 'e' };
      case 'diff':
        this.p++;
        return symbolOf(t.v);
      default:
        throw new ParseError(`unexpected ${t.src || t.t}`);
    }
  }
}

function accentText(v: string): string {
  const [name0, body0] = v.split('\u0000') as [string, string];
  let name = name0;
  let body = body0.replace(/ /g, '');
  if (name === 'bar' || name === 'overline') name = 'bar';
  else if (name === 'vec' || name === 'overrightarrow') name = 'vec';
  else if (name === 'tilde' || name === 'widetilde') name = 'tilde';
  else if (name.includes('text') || name.includes('mbox')) {
    name = '';
    body = body.replace(/[()]/g, '');
  } else if (name.includes('math')) name = 'math';
  return name ? `${name}{${body}}` : body;
}

/** A symbol by latex2sympy's rules: Greek names spelt out, lowercased, `pi` is π. */
function symbolOf(text: string): Node {
  const name = text.trim().replace(/^\\/, '').toLowerCase();
  if (name === 'pi') return { k: 'const', name: 'pi' };
  return { k: 'sym', name };
}

function numberNode(text: string): Node {
  if (text.includes('.')) return floatNode(text);
  const digits = text.replace(/^0+(?=\d)/, '');
  return intNode(BigInt(digits));
}

function unaryMinus(x: Node): Node {
  return x.k === 'num' ? neg(x) : mul(MINUS_ONE, x);
}

/** Factors of an implicit product, right to left; an integer then a positive rational is a mixed number. */
function productOf(items: Node[]): Node {
  let acc = items[items.length - 1]!;
  for (let i = items.length - 2; i >= 0; i--) {
    const res = items[i]!;
    if (isInteger(res) && res.k === 'num' && acc.k === 'num' && acc.q !== null && acc.q.n > 0n) {
      const r = res.q!.n;
      const q = acc.q;
      acc = ratNode(rat(r < 0n ? r * q.d - q.n : r * q.d + q.n, q.d)!);
    } else acc = mul(res, acc);
  }
  return acc;
}

/** a < b then < c: a chain of relations. */
function chain(lhs: Node, op: RelOp, rhs: Node): Node {
  if (lhs.k === 'and') {
    const last = lhs.args[lhs.args.length - 1] as Node & { k: 'rel' };
    return { k: 'and', args: [...lhs.args, { k: 'rel', op, lhs: last.rhs, rhs }] };
  }
  if (lhs.k === 'rel') return { k: 'and', args: [lhs, { k: 'rel', op, lhs: lhs.rhs, rhs }] };
  return { k: 'rel', op, lhs, rhs };
}

/** Elements to a value: one → itself, one row → a set, rows of one → a set, else a set of tuples. */
function toSetOrTuple(rows: Node[][]): Node {
  if (rows.length === 1) return rows[0]!.length === 1 ? rows[0]![0]! : finiteSet(rows[0]!, 'list');
  if (rows.every((r) => r.length === 1))
    return finiteSet(
      rows.map((r) => r[0]!),
      'list',
    );
  return finiteSet(
    rows.map((r) => (r.length === 1 ? r[0]! : { k: 'tuple', items: r })),
    'list',
  );
}

/** A tuple in a union or intersection is a set of its items. */
function asSet(x: Node): Node {
  return x.k === 'tuple' ? finiteSet(x.items, 'braces') : x;
}

/** The value of a constant numeric expression when cheaply known (interval end points). */
function numericValue(x: Node): number | null {
  switch (x.k) {
    case 'num':
      return x.f;
    case 'const':
      return x.name === 'pi' ? Math.PI : x.name === 'E' ? Math.E : x.name === 'oo' ? Infinity : null;
    case 'mul': {
      let v = 1;
      for (const a of x.args) {
        const n = numericValue(a);
        if (n === null) return null;
        v *= n;
      }
      return v;
    }
    case 'add': {
      let v = 0;
      for (const a of x.args) {
        const n = numericValue(a);
        if (n === null) return null;
        v += n;
      }
      return v;
    }
    case 'pow': {
      const b = numericValue(x.base);
      const e = numericValue(x.exp);
      return b === null || e === null ? null : b ** e;
    }
    default:
      return null;
  }
}

/** Parses normalized answer LaTeX; null when latex2sympy would not read it. */
export function parseLatex(latex: string): Node | null {
  if (latex.length === 0 || latex.length > 2000) return null;
  // 1,000,000 (and 0,111) is one number, not a list.
  const cm = /^\s*(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?)\s*$/.exec(latex);
  if (cm) {
    const t = cm[1]!;
    if (!t.replace(/^-/, '').startsWith('0')) return numberNode(t.replace(/,/g, '').replace(/^(-?)0+(?=\d)/, '$1'));
  }
  try {
    return new Parser(lex(latex)).math();
  } catch (e) {
    if (e instanceof ParseError || e instanceof RangeError) return null;
    throw e;
  }
}

/** Parses a plain arithmetic expression as Python reads it (1/2, 2**3, (1+2)*3); null otherwise. */
export function parsePythonExpr(text: string): Node | null {
  const s = text.replace(/\^/g, '**');
  let i = 0;
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  };
  const fail = (): never => {
    throw new ParseError('python');
  };
  const atom = (): Node => {
    ws();
    if (s[i] === '(') {
      i++;
      const e = sum();
      ws();
      if (s[i] !== ')') fail();
      i++;
      return e;
    }
    const m = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/.exec(s.slice(i));
    if (!m) return fail();
    const t = m[0];
    i += t.length;
    if (/^0\d/.test(t) && !/[.eE]/.test(t) && !/^0+$/.test(t)) fail(); // 012 is a Python syntax error
    return /[.eE]/.test(t) ? floatNode(t) : intNode(BigInt(t));
  };
  const power = (): Node => {
    const b = atom();
    ws();
    if (s.startsWith('**', i)) {
      i += 2;
      return pow(b, unary());
    }
    return b;
  };
  const unary = (): Node => {
    ws();
    if (s[i] === '-') {
      i++;
      return unaryMinus(unary());
    }
    if (s[i] === '+') {
      i++;
      return unary();
    }
    return power();
  };
  const term = (): Node => {
    let l = unary();
    for (;;) {
      ws();
      if (s[i] === '*' && s[i + 1] !== '*') {
        i++;
        l = mul(l, unary());
      } else if (s[i] === '/' && s[i + 1] !== '/') {
        i++;
        l = { k: 'mul', args: [l, pow(unary(), MINUS_ONE)] };
      } else return l;
    }
  };
  const sum = (): Node => {
    let l = term();
    for (;;) {
      ws();
      if (s[i] === '+') {
        i++;
        l = add(l, term());
      } else if (s[i] === '-') {
        i++;
        l = sub(l, term());
      } else return l;
    }
  };
  try {
    const v = sum();
    ws();
    if (i !== s.length) return null;
    return v;
  } catch (e) {
    if (e instanceof ParseError) return null;
    throw e;
  }
}
