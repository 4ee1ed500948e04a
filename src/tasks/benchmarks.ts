// The paper's benchmarks by name, as lighteval defines them (its tasks math_500, aime24, aime25,
// gpqa:diamond and extended|lcb:codegeneration, in the version the paper's evaluation ran): the
// hub dataset, its config, split and fields, the prompt wording, and the evaluation settings the
// paper used (temperature 0.6, top-p 0.95, 32,768 new tokens, the number of samples behind its
// pass@1). A preset is defaults: every flag overrides it.
import { inflateSync } from 'node:zlib';
import type { CodeTest } from './code.ts';

export const BENCHMARKS = ['math500', 'aime24', 'aime25', 'gpqa-diamond', 'lcb'] as const;
export type BenchmarkName = (typeof BENCHMARKS)[number];

/** A benchmark row as a problem. */
export interface BenchmarkProblem {
  id: string;
  prompt: string;
  /** math: the answer; choice: the correct letter. */
  answer: string | null;
  /** code: stdin/stdout tests. */
  tests: CodeTest[] | null;
}

export interface Benchmark {
  name: BenchmarkName;
  /** The lighteval task it reproduces. */
  lighteval: string;
  task: 'math' | 'code' | 'choice';
  dataset: { id: string; config: string; split: string };
  /** The row fields read. */
  fields: string[];
  samples: number;
  sampling: { temperature: number; topP: number; maxNewTokens: number };
  /** Per-test limits of a code benchmark (LiveCodeBench's 6 s per test). */
  codeLimits?: { wallSeconds: number; cpuSeconds: number };
  /** A row (its index in the split) as a problem; throws naming the field that is missing or malformed. */
  problem(row: Record<string, unknown>, index: number): BenchmarkProblem;
}

/** lighteval's math_500 / aime prompt (adapted there from simple-evals and Llama 3's evals). */
export const MATH_PROMPT =
  "Solve the following math problem efficiently and clearly.  The last line of your response should be of the following format: 'Therefore, the final answer is: $\\boxed{ANSWER}$. I hope it is correct' (without quotes) where ANSWER is just the final number or expression that solves the problem. Think step by step before answering.\n\n{Question}";

/** lighteval's gpqa:diamond instruction (simple-evals'). */
export const GPQA_INSTRUCTION =
  "Answer the following multiple choice question. The last line of your response should be of the following format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before answering.";

const SAMPLING = { temperature: 0.6, topP: 0.95, maxNewTokens: 32768 } as const;

function field(row: Record<string, unknown>, name: string, index: number): string {
  const v = row[name];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  throw new Error(`row ${index}: field "${name}" is ${v === undefined ? 'missing' : `not text (${typeof v})`}`);
}

function idOf(row: Record<string, unknown>, name: string, index: number): string {
  const v = row[name];
  return typeof v === 'string' || typeof v === 'number' ? String(v) : String(index);
}

function mathBenchmark(name: 'math500' | 'aime24' | 'aime25', id: string, split: string, idField: string, samples: number): Benchmark {
  return {
    name,
    lighteval: name === 'math500' ? 'lighteval|math_500' : `lighteval|${name}`,
    task: 'math',
    dataset: { id, config: 'default', split },
    fields: ['problem', 'answer', idField],
    samples,
    sampling: SAMPLING,
    problem: (row, i) => ({
      id: idOf(row, idField, i),
      prompt: MATH_PROMPT.replace('{Question}', field(row, 'problem', i)),
      answer: field(row, 'answer', i),
      tests: null,
    }),
  };
}

/** A fixed shuffle position for the correct choice of a row (lighteval draws it at random). */
function goldIndex(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return (h >>> 0) % 4;
}

const gpqa: Benchmark = {
  name: 'gpqa-diamond',
  lighteval: 'lighteval|gpqa:diamond',
  task: 'choice',
  dataset: { id: 'Idavidrein/gpqa', config: 'gpqa_diamond', split: 'train' },
  fields: ['Question', 'Correct Answer', 'Incorrect Answer 1', 'Incorrect Answer 2', 'Incorrect Answer 3', 'Record ID'],
  samples: 1,
  sampling: SAMPLING,
  problem: (row, i) => {
    const id = idOf(row, 'Record ID', i);
    const choices = ['Incorrect Answer 1', 'Incorrect Answer 2', 'Incorrect Answer 3'].map((f) => field(row, f, i).trim());
    const g = goldIndex(id);
    choices.splice(g, 0, field(row, 'Correct Answer', i).trim());
    const prompt = `${GPQA_INSTRUCTION}\n\n${field(row, 'Question', i).trim()}\n\n${choices.map((c, k) => `${'ABCD'[k]}) ${c}`).join('\n')}`;
    return { id, prompt, answer: 'ABCD'[g]!, tests: null };
  },
};

/**
 * LiveCodeBench's private tests: base64 of zlib of a pickled JSON string (a Python str pickled
 * with protocol 4 or 5). Only the opcodes such a pickle holds are read.
 */
export function decodePrivateTests(encoded: string): { input: string; output: string }[] {
  const raw = inflateSync(Buffer.from(encoded, 'base64'));
  let i = 0;
  let text: string | null = null;
  const fail = (why: string): never => {
    throw new Error(`private test cases: not a pickled string (${why})`);
  };
  while (i < raw.length) {
    const op = raw[i++]!;
    if (op === 0x80)
      i++; // PROTO n
    else if (op === 0x95)
      i += 8; // FRAME n (8 bytes)
    else if (op === 0x94)
      continue; // MEMOIZE
    else if (op === 0x8c || op === 0x58 || op === 0x8d) {
      // SHORT_BINUNICODE (1-byte length), BINUNICODE (4), BINUNICODE8 (8)
      const width = op === 0x8c ? 1 : op === 0x58 ? 4 : 8;
      let n = 0;
      for (let k = 0; k < width; k++) n += raw[i + k]! * 2 ** (8 * k);
      i += width;
      text = raw.subarray(i, i + n).toString('utf8');
      i += n;
    } else if (op === 0x2e)
      break; // STOP
    else fail(`opcode 0x${op.toString(16)}`);
  }
  if (text === null) return fail('no string');
  const tests = JSON.parse(text) as { input: string; output: string }[];
  if (!Array.isArray(tests)) fail('not a list');
  return tests;
}

/** lighteval's LiveCodeBench prompt. */
export function lcbPrompt(question: string, starter: string): string {
  let q = `You will be given a question (problem specification) and will generate a correct Python program that matches the specification and passes all tests.\n\nQuestion: ${question}\n\n`;
  if (starter) {
    q += 'You will use the following starter code to write the solution to the problem and enclose your code within delimiters.\n';
    q += `\`\`\`python\n${starter}\n\`\`\`\n\n`;
  } else {
    q +=
      'Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on the sample inputs). Enclose your code within delimiters as follows. Ensure that when the python program runs, it reads the inputs, runs the algorithm and writes output to STDOUT.\n';
    q += '```python\n# YOUR CODE HERE\n```\n\n';
  }
  return q;
}

const lcb: Benchmark = {
  name: 'lcb',
  lighteval: 'extended|lcb:codegeneration',
  task: 'code',
  dataset: { id: 'lighteval/code_generation_lite', config: 'v4_v5', split: 'test' },
  fields: ['question_id', 'question_content', 'starter_code', 'public_test_cases', 'private_test_cases', 'metadata'],
  samples: 16,
  sampling: SAMPLING,
  codeLimits: { wallSeconds: 6, cpuSeconds: 6 },
  problem: (row, i) => {
    const meta = JSON.parse(typeof row['metadata'] === 'string' ? row['metadata'] : '{}') as { func_name?: string };
    if (meta.func_name) throw new Error(`row ${i}: a call-based (LeetCode) problem; rac runs stdin/stdout programs only`);
    const pub = JSON.parse(field(row, 'public_test_cases', i)) as { input: string; output: string }[];
    const priv = decodePrivateTests(field(row, 'private_test_cases', i));
    const starter = typeof row['starter_code'] === 'string' ? row['starter_code'] : '';
    return {
      id: idOf(row, 'question_id', i),
      prompt: lcbPrompt(field(row, 'question_content', i), starter),
      answer: null,
      tests: [...pub, ...priv].map((t) => ({ input: t.input, output: t.output })),
    };
  },
};

const ALL: Record<BenchmarkName, Benchmark> = {
  math500: mathBenchmark('math500', 'HuggingFaceH4/MATH-500', 'test', 'unique_id', 4),
  aime24: mathBenchmark('aime24', 'HuggingFaceH4/aime_2024', 'train', 'id', 1),
  aime25: mathBenchmark('aime25', 'yentinglin/aime_2025', 'train', 'id', 1),
  'gpqa-diamond': gpqa,
  lcb,
};

export function isBenchmark(name: string): name is BenchmarkName {
  return (BENCHMARKS as readonly string[]).includes(name);
}

export function benchmark(name: string): Benchmark {
  if (!isBenchmark(name)) throw new Error(`unknown benchmark "${name}" (known: ${BENCHMARKS.join(', ')})`);
  return ALL[name];
}

/** Whether a code row is call-based (skipped: rac runs stdin/stdout programs). */
export function isCallBased(row: Record<string, unknown>): boolean {
  try {
    return Boolean((JSON.parse(String(row['metadata'] ?? '{}')) as { func_name?: string }).func_name);
  } catch {
    return false;
  }
}
