// Code-task grading: extract the program from a completion and run it against stdin/stdout
// tests in the sandbox (src/tasks/sandbox.ts).
import { existsSync } from 'node:fs';
import { runInSandbox, sandboxPython, type SandboxLimits, type SandboxResult } from './sandbox.ts';

export type ProgramLang = 'python' | 'cpp';

export interface Program {
  /** null when the fence carried no language tag (runTests then guesses). */
  lang: ProgramLang | null;
  code: string;
}

export interface CodeTest {
  input: string;
  output: string;
}

export type TestStatus = 'ok' | 'wrong' | 'timeout' | 'runtime_error' | 'memory' | 'compile_error';

export interface TestResult {
  status: TestStatus;
  ms: number;
  /** Why, for failures: stderr tail, limit hit, sandbox error. */
  detail?: string;
}

export interface RunTestsResult {
  passed: boolean;
  results: TestResult[];
}

export interface RunTestsOptions {
  /** Stop at the first failing test (tests then run one after another). Default false. */
  stopOnFirstFailure?: boolean;
  /** Limits for the C++ compilation. */
  compileLimits?: SandboxLimits;
  /** How outputs are compared (default livecodebench). */
  grader?: CodeGrader;
}

const LANG_TAGS: Record<string, ProgramLang> = {
  python: 'python',
  python3: 'python',
  py: 'python',
  py3: 'python',
  cpp: 'cpp',
  'c++': 'cpp',
  cc: 'cpp',
  cxx: 'cpp',
};

interface Fence {
  tag: string;
  code: string;
  closed: boolean;
}

function fences(text: string): Fence[] {
  const out: Fence[] = [];
  const lines = text.split(/\r?\n/);
  let open: { tag: string; body: string[] } | null = null;
  for (const line of lines) {
    const m = /^\s{0,3}```+\s*([^`\s]*)[^`]*$/.exec(line);
    if (open === null) {
      if (m) open = { tag: (m[1] ?? '').toLowerCase(), body: [] };
    } else if (m && (m[1] ?? '') === '' && line.trim().replace(/`+/, '') === '') {
      out.push({ tag: open.tag, code: open.body.join('\n'), closed: true });
      open = null;
    } else {
      open.body.push(line);
    }
  }
  if (open !== null) out.push({ tag: open.tag, code: open.body.join('\n'), closed: false });
  return out;
}

function pick(blocks: Fence[]): Program | null {
  const usable = blocks.filter((b) => b.code.trim() !== '');
  for (const closed of [true, false]) {
    const cand = usable.filter((b) => b.closed === closed);
    for (let i = cand.length - 1; i >= 0; i--) {
      const lang = LANG_TAGS[cand[i]!.tag];
      if (lang) return { lang, code: cand[i]!.code };
    }
    for (let i = cand.length - 1; i >= 0; i--) {
      if (cand[i]!.tag === '') return { lang: null, code: cand[i]!.code };
    }
  }
  return null;
}

/**
 * The program in a completion: the last fenced block tagged python/py/cpp/c++ (or, failing
 * that, the last untagged block). When the completion closes a `<think>` section and has a block
 * after it, fences inside the thinking are ignored. Closed fences are preferred over a final
 * unterminated one (a completion cut at the token budget).
 */
export function extractProgram(completion: string): Program | null {
  const end = completion.lastIndexOf('</think>');
  if (end >= 0) {
    const after = pick(fences(completion.slice(end + '</think>'.length)));
    if (after) return after;
  }
  return pick(fences(completion));
}

/** How outputs are compared: LiveCodeBench's checker (default), or rac ≤ 0.1's exact lines. */
export const CODE_GRADERS = ['livecodebench', 'legacy'] as const;
export type CodeGrader = (typeof CODE_GRADERS)[number];

/** Output normalization of the legacy grader: CRLF → LF, trailing whitespace of each line and trailing blank lines dropped. */
export function normalizeOutput(s: string): string {
  const lines = s
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.trimEnd());
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n');
}

/** Python's str.strip() / split() whitespace (ASCII and Unicode spaces, \x1c-\x1f, \x85). */
const PY_WS = '\\s\\x1c-\\x1f\\x85';
const PY_STRIP = new RegExp(`^[${PY_WS}]+|[${PY_WS}]+$`, 'g');
const PY_SPLIT = new RegExp(`[${PY_WS}]+`);
const pyStrip = (s: string): string => s.replace(PY_STRIP, '');

/** A Python Decimal literal, canonical ('0', 'inf', '-inf', or sign, digits without trailing zeros, exponent); NaN → null; not a literal → undefined. */
function decimalKey(tok: string): string | null | undefined {
  const m = /^([+-]?)(?:(\d+(?:_\d+)*)(?:\.(\d+(?:_\d+)*)?)?|\.(\d+(?:_\d+)*))(?:[eE]([+-]?\d+(?:_\d+)*))?$/.exec(tok);
  if (!m) {
    const s = /^([+-]?)(inf|infinity|s?nan)$/i.exec(tok);
    if (!s) return undefined;
    return /nan/i.test(s[2]!) ? null : `${s[1] === '-' ? '-' : ''}inf`;
  }
  const intPart = (m[2] ?? '').replace(/_/g, '');
  const frac = (m[3] ?? m[4] ?? '').replace(/_/g, '');
  let digits = (intPart + frac).replace(/^0+/, '');
  let exp = BigInt((m[5] ?? '0').replace(/_/g, '')) - BigInt(frac.length);
  if (digits === '') return '0';
  const trail = /0+$/.exec(digits)?.[0].length ?? 0;
  digits = digits.slice(0, digits.length - trail);
  exp += BigInt(trail);
  return `${m[1] === '-' ? '-' : ''}${digits}e${exp}`;
}

/** One line's tokens as Decimals, compared exactly (LiveCodeBench's `convert_line_to_decimals`). */
function sameDecimals(a: string, b: string): boolean {
  const ta = a.split(PY_SPLIT).filter((t) => t !== '');
  const tb = b.split(PY_SPLIT).filter((t) => t !== '');
  const ka = ta.map(decimalKey);
  const kb = tb.map(decimalKey);
  if (ka.some((k) => k === undefined) || kb.some((k) => k === undefined)) return false;
  return ka.length === kb.length && ka.every((k, i) => k !== null && k === kb[i]);
}

/** LiveCodeBench's lines: the whole output stripped, split at \n, each line stripped. */
function lcbLines(s: string): string[] {
  return pyStrip(s).split('\n').map(pyStrip);
}

/**
 * Whether a program's output is right. `livecodebench` (its grade_stdio, as lighteval runs it):
 * the same number of lines after stripping the whole output and each line; each line equal, or
 * every whitespace-separated token of both a number (a Python Decimal) and the numbers equal
 * exactly (1.0 = 1, 1e3 = 1000, but 0.1 ≠ 0.10000001; no float tolerance). `legacy`: the lines
 * equal after dropping CRLF, trailing spaces and trailing blank lines.
 */
export function outputsMatch(actual: string, expected: string, grader: CodeGrader = 'livecodebench'): boolean {
  if (grader === 'legacy') return normalizeOutput(actual) === normalizeOutput(expected);
  const a = lcbLines(actual);
  const e = lcbLines(expected);
  if (a.length !== e.length) return false;
  return a.every((line, i) => line === e[i] || sameDecimals(line, e[i]!));
}

function guessLang(code: string): ProgramLang {
  if (/^\s*#\s*include\s*[<"]/m.test(code) || /\bint\s+main\s*\(/.test(code)) return 'cpp';
  return 'python';
}

const MEMORY_RE = /MemoryError|std::bad_alloc|Cannot allocate memory|out of memory/i;

function tail(s: string, n = 400): string {
  const t = s.trim();
  return t.length > n ? '…' + t.slice(-n) : t;
}

/** Classifies one sandboxed run against its expected output. */
export function classify(r: SandboxResult, expected: string, limits: SandboxLimits, grader: CodeGrader = 'livecodebench'): TestResult {
  const ms = Math.round(r.ms);
  if (r.sandboxError) return { status: 'runtime_error', ms, detail: `not run: ${r.sandboxError}` };
  if (r.outputLimitExceeded) return { status: 'wrong', ms, detail: 'output limit exceeded' };
  if (r.timedOut) return { status: 'timeout', ms, detail: `wall-clock limit ${limits.wallMs} ms` };
  if (r.signal === 'SIGXCPU' || r.signal === 'SIGKILL') {
    return { status: 'timeout', ms, detail: `CPU limit ${limits.cpuSeconds} s (${r.signal})` };
  }
  if (r.exitCode !== 0 || r.signal) {
    if (MEMORY_RE.test(r.stderr)) return { status: 'memory', ms, detail: tail(r.stderr) };
    const how = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
    return { status: 'runtime_error', ms, detail: `${how}: ${tail(r.stderr)}` };
  }
  return outputsMatch(r.stdout, expected, grader) ? { status: 'ok', ms } : { status: 'wrong', ms };
}

const DEFAULT_COMPILE: SandboxLimits = {
  wallMs: 60_000,
  cpuSeconds: 30,
  memoryMb: 2048,
  // RLIMIT_NPROC counts every process of the sandbox uid; a fork bomb elsewhere may hold ~64.
  maxProcesses: 512,
  maxFileMb: 256,
};

async function prepare(
  program: Program,
  opts: RunTestsOptions,
): Promise<{ files: { name: string; content: string | Uint8Array; mode?: number }[]; argv: string[] } | TestResult> {
  const lang = program.lang ?? guessLang(program.code);
  if (lang === 'python') {
    const py = sandboxPython();
    if (!py) return { status: 'runtime_error', ms: 0, detail: 'no python3 usable by the sandbox user (set RAC_SANDBOX_PYTHON)' };
    return { files: [{ name: 'main.py', content: program.code }], argv: [py, '-I', '-S', 'main.py'] };
  }
  const gpp = ['/usr/bin/g++', '/usr/local/bin/g++'].find((p) => existsSync(p));
  if (!gpp) return { status: 'compile_error', ms: 0, detail: 'g++ not installed' };
  const limits = opts.compileLimits ?? DEFAULT_COMPILE;
  const r = await runInSandbox({
    files: [{ name: 'main.cpp', content: program.code }],
    argv: [gpp, '-std=gnu++17', '-O2', '-pipe', '-o', 'main', 'main.cpp'],
    limits,
    workdir: 'bind',
    collect: ['main'],
  });
  const bin = r.collected?.main;
  if (r.sandboxError) return { status: 'runtime_error', ms: Math.round(r.ms), detail: `not run: ${r.sandboxError}` };
  if (r.exitCode !== 0 || !bin) {
    const why = r.timedOut || r.signal ? `compiler killed (${r.timedOut ? 'wall limit' : r.signal})` : tail(r.stderr);
    return { status: 'compile_error', ms: Math.round(r.ms), detail: why };
  }
  return { files: [{ name: 'main', content: bin, mode: 0o755 }], argv: ['./main'] };
}

/**
 * Runs a program against stdin/stdout tests, each in a fresh sandbox. Tests run in parallel up
 * to the sandbox concurrency limit (setSandboxConcurrency), or one by one with
 * stopOnFirstFailure (results then end at the first failure). Never throws for program
 * misbehaviour; an unavailable sandbox grades every test as a failure (fail closed).
 */
export async function runTests(
  program: Program | null,
  tests: CodeTest[],
  limits: SandboxLimits,
  opts: RunTestsOptions = {},
): Promise<RunTestsResult> {
  if (!program || program.code.trim() === '') {
    return { passed: false, results: tests.map(() => ({ status: 'compile_error', ms: 0, detail: 'no program found' })) };
  }
  const prep = await prepare(program, opts);
  if ('status' in prep) return { passed: false, results: tests.map(() => ({ ...prep })) };
  const runOne = async (t: CodeTest): Promise<TestResult> => {
    const maxOut = Math.max(limits.maxOutputBytes ?? 1 << 20, 2 * Buffer.byteLength(t.output) + 4096);
    const runLimits = { ...limits, maxOutputBytes: maxOut };
    const r = await runInSandbox({ files: prep.files, argv: prep.argv, stdin: t.input, limits: runLimits });
    return classify(r, t.output, limits, opts.grader);
  };
  let results: TestResult[];
  if (opts.stopOnFirstFailure) {
    results = [];
    for (const t of tests) {
      const r = await runOne(t);
      results.push(r);
      if (r.status !== 'ok') break;
    }
  } else {
    results = await Promise.all(tests.map(runOne));
  }
  return { passed: tests.length > 0 && results.length === tests.length && results.every((r) => r.status === 'ok'), results };
}
