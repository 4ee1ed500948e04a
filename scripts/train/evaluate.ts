/**
 * Held-out evaluation of a tiny-reasoner model with rac's own engine (shared by
 * scripts/eval-tiny-reasoner.ts and the accuracy test).
 */
import { generate } from '../../src/models/generate.ts';
import type { LoadedModel } from '../../src/pipeline/loaded.ts';
import { gradeTiny, lastBoxed, thinkSpan } from '../../src/tasks/boxed.ts';
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

/** Generate on `n` eval problems of `family` and grade them. */
export async function evaluateFamily(m: LoadedModel, family: Family, n: number, mode: Mode, seed = 0, batchSize = 64): Promise<ModeResult> {
  const problems = generateSplit('eval', family, n, seed);
  const prompts = problems.map((p) =>
    m.tokenizer.encode(m.tokenizer.applyChatTemplate([{ role: 'user', content: p.prompt }], { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    }),
  );
  const maxPrompt = Math.max(...prompts.map((p) => p.length));
  const t0 = Date.now();
  const outs = await generate(
    m.engine,
    m.tokenizer,
    prompts.map((prompt, i) => ({ prompt, stream: i })),
    {
      maxNewTokens: Math.max(1, m.model.config.maxPositionEmbeddings - maxPrompt),
      seed,
      eosTokenIds: m.eosTokenIds,
      temperature: mode.temperature,
      topP: mode.topP,
      topK: 0,
      batchSize,
    },
  );
  let correct = 0;
  let closedBoxed = 0;
  let truncated = 0;
  let compTokens = 0;
  const errors: ModeResult['errors'] = [];
  outs.forEach((o, i) => {
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
    seconds: (Date.now() - t0) / 1000,
    errors,
  };
}
