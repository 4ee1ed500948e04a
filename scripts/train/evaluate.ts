/**
 * Held-out evaluation of a tiny-reasoner model with rac's own engine (shared by
 * scripts/eval-tiny-reasoner.ts and the accuracy test).
 */
import { generate } from '../../src/models/generate.ts';
import { countHesitations, DEFAULT_CODE_LIMITS } from '../../src/study/eval.ts';
import type { LoadedModel } from '../../src/models/loaded.ts';
import { gradeTiny, lastBoxed, thinkSpan } from '../../src/tasks/boxed.ts';
import { extractProgram, runTests } from '../../src/tasks/code.ts';
import { meanPassAtK } from '../../src/tasks/passk.ts';
import type { SandboxLimits } from '../../src/tasks/sandbox.ts';
import { generateSplit, type Family, type TinyProblem } from '../../src/tasks/tiny/index.ts';

export interface ModeResult {
  family: Family;
  mode: string;
  temperature: number;
  topP: number;
  n: number;
  accuracy: number;
  closedBoxed: number;
  truncated: number;
  meanPromptTokens: number;
  meanCompletionTokens: number;
  /** Hesitation words per completion (as `rac eval` counts them: wait, but wait, hmm, alternatively). */
  hesitationsPerSample: number;
  /** Code family: samples per problem and pass@k (k = 1 and k = samples). */
  samples?: number;
  passAt?: Record<string, number>;
  seconds: number;
  /** Wrong answers (problem, completion text). */
  errors: { problem: TinyProblem; text: string }[];
}

export interface Mode {
  mode: string;
  temperature: number;
  topP: number;
}

export const GREEDY: Mode = { mode: 'greedy', temperature: 0, topP: 1 };
export const SAMPLED: Mode = { mode: 'sampled', temperature: 0.6, topP: 0.95 };

const hesitationsOf = (text: string) => {
  const h = countHesitations(text);
  return h.wait + h.but_wait + h.hmm + h.alternatively;
};

/** Chat-templated prompt ids (generation prompt, no special tokens added again). */
export function encodePrompts(m: LoadedModel, problems: readonly TinyProblem[]): number[][] {
  return problems.map((p) =>
    m.tokenizer.encode(m.tokenizer.applyChatTemplate([{ role: 'user', content: p.prompt }], { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    }),
  );
}

/** Generate every request in `mode` with room up to the context for the longest prompt. */
export function generateAll(m: LoadedModel, reqs: { prompt: number[]; stream: number }[], mode: Mode, seed: number, batchSize: number) {
  const maxPrompt = reqs.reduce((a, r) => Math.max(a, r.prompt.length), 0);
  return generate(m.engine, m.tokenizer, reqs, {
    maxNewTokens: Math.max(1, m.model.config.maxPositionEmbeddings - maxPrompt),
    seed,
    eosTokenIds: m.eosTokenIds,
    temperature: mode.temperature,
    topP: mode.topP,
    topK: 0,
    batchSize,
  });
}

/**
 * Generate on `n` eval problems of `family` and grade them. The code family draws `samples`
 * completions per problem (streams problem·samples + j), runs each program on the problem's tests
 * in the sandbox, and reports pass@1 and pass@samples; its accuracy is the per-sample pass rate and
 * "closed" means `</think>` then a fenced program.
 */
export async function evaluateFamily(
  m: LoadedModel,
  family: Family,
  n: number,
  mode: Mode,
  seed = 0,
  batchSize = 64,
  opts: { samples?: number; limits?: SandboxLimits; split?: 'eval' | 'calib' } = {},
): Promise<ModeResult> {
  const split = opts.split ?? 'eval';
  if (family === 'code') return evaluateCode(m, n, mode, seed, batchSize, opts.samples ?? 1, opts.limits ?? DEFAULT_CODE_LIMITS, split);
  const problems = generateSplit(split, family, n, seed);
  const prompts = encodePrompts(m, problems);
  const t0 = Date.now();
  const outs = await generateAll(
    m,
    prompts.map((prompt, i) => ({ prompt, stream: i })),
    mode,
    seed,
    batchSize,
  );
  let correct = 0;
  let closedBoxed = 0;
  let truncated = 0;
  let compTokens = 0;
  let hesitations = 0;
  const errors: ModeResult['errors'] = [];
  outs.forEach((o, i) => {
    hesitations += hesitationsOf(o.text);
    if (gradeTiny(o.text, problems[i]!.answer).correct) correct++;
    else errors.push({ problem: problems[i]!, text: o.text });
    const span = thinkSpan(o.text);
    if (span.closed && lastBoxed(span.afterThink) !== null) closedBoxed++;
    if (o.finishReason === 'length') truncated++;
    compTokens += o.ids.length;
  });
  return {
    family,
    mode: mode.mode,
    temperature: mode.temperature,
    topP: mode.topP,
    n,
    accuracy: correct / n,
    closedBoxed: closedBoxed / n,
    truncated: truncated / n,
    meanPromptTokens: prompts.reduce((s, p) => s + p.length, 0) / n,
    meanCompletionTokens: compTokens / n,
    hesitationsPerSample: hesitations / n,
    seconds: (Date.now() - t0) / 1000,
    errors,
  };
}

async function evaluateCode(
  m: LoadedModel,
  n: number,
  mode: Mode,
  seed: number,
  batchSize: number,
  samples: number,
  limits: SandboxLimits,
  split: 'eval' | 'calib',
): Promise<ModeResult> {
  const problems = generateSplit(split, 'code', n, seed, { format: 'v2' });
  const prompts = encodePrompts(m, problems);
  const t0 = Date.now();
  const reqs = problems.flatMap((_, i) => Array.from({ length: samples }, (_s, j) => ({ prompt: prompts[i]!, stream: i * samples + j })));
  const outs = await generateAll(m, reqs, mode, seed, batchSize);
  const perProblem = problems.map(() => ({ n: samples, c: 0 }));
  let passed = 0;
  let closed = 0;
  let truncated = 0;
  let compTokens = 0;
  let hesitations = 0;
  const errors: ModeResult['errors'] = [];
  for (let r = 0; r < outs.length; r++) {
    const o = outs[r]!;
    const i = Math.floor(r / samples);
    const p = problems[i]!;
    const prog = extractProgram(o.text);
    const span = thinkSpan(o.text);
    if (span.closed && extractProgram(span.afterThink) !== null) closed++;
    if (o.finishReason === 'length') truncated++;
    compTokens += o.ids.length;
    hesitations += hesitationsOf(o.text);
    const res = await runTests(prog, p.tests!, limits);
    if (res.passed) {
      passed++;
      perProblem[i]!.c++;
    } else errors.push({ problem: p, text: o.text });
  }
  const total = outs.length;
  const passAt: Record<string, number> = { '1': meanPassAtK(perProblem, 1) };
  if (samples > 1) passAt[String(samples)] = meanPassAtK(perProblem, samples);
  return {
    family: 'code',
    mode: mode.mode,
    temperature: mode.temperature,
    topP: mode.topP,
    n,
    accuracy: passed / total,
    closedBoxed: closed / total,
    truncated: truncated / total,
    meanPromptTokens: prompts.reduce((s, p) => s + p.length, 0) / n,
    meanCompletionTokens: compTokens / total,
    hesitationsPerSample: hesitations / total,
    samples,
    passAt,
    seconds: (Date.now() - t0) / 1000,
    errors,
  };
}
