import type { Command } from 'commander';
import { generate } from '../../models/generate.ts';
import { checkPromptChars, checkPromptTokens, promptChars, PromptLengthError } from '../../io/prompt-bounds.ts';
import { RacTokenizer } from '../../io/tokenizer.ts';
import { Model } from '../../models/model.ts';
import { closeModel, loadModel } from '../../models/loaded.ts';
import { addRuntimeOptions, float, int, printJson, type RuntimeFlags } from '../common.ts';
import { runtimeOf } from '../../study/job.ts';
import { progress } from '../progress.ts';

interface Opts extends RuntimeFlags {
  model: string;
  prompt: string;
  chat?: boolean;
  system?: string;
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed: number;
  stop?: string[];
  n: number;
  json?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate a completion with the local onnxruntime engine')
    .requiredOption('--model <dir>', 'model directory')
    .requiredOption('--prompt <text>', 'prompt text')
    .option('--chat', "render the prompt as a user message through the model's chat template")
    .option('--system <text>', 'system message (with --chat)')
    .option('--max-new-tokens <n>', 'maximum new tokens', int('max-new-tokens', 1), 256)
    .option(
      '--temperature <t>',
      "sampling temperature, 0 = greedy (default: the model's generation_config, else greedy)",
      float('temperature', 0, 100),
    )
    .option('--top-p <p>', 'nucleus sampling mass', float('top-p', 1e-9, 1))
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', int('top-k'))
    .option('--seed <s>', 'sampling seed', int('seed'), 0)
    .option('--stop <text...>', 'stop strings')
    .option('-n, --n <n>', 'completions to sample', int('n', 1), 1)
    .option('--json', 'print JSON (one object)');
  addRuntimeOptions(cmd).action(async (o: Opts) => {
    // The prompt must fit the context with one new token: checked (by length before tokenizing)
    // against config.json and the tokenizer alone, before the engine is loaded.
    const probe = Model.open(o.model, { warn: () => {} });
    const ctx = probe.config.maxPositionEmbeddings;
    const modelDir = probe.dir;
    probe.close();
    const tok = await RacTokenizer.load(modelDir);
    let text = o.prompt;
    let prompt: number[];
    try {
      checkPromptChars(promptChars(o.prompt, o.chat ? o.system : undefined), tok, ctx);
      if (o.chat) {
        const messages = o.system ? [{ role: 'system', content: o.system }] : [];
        messages.push({ role: 'user', content: o.prompt });
        text = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
        checkPromptChars(text.length, tok, ctx);
      }
      prompt = tok.encode(text, { addSpecialTokens: !o.chat });
      checkPromptTokens(prompt.length, ctx);
    } catch (e) {
      if (e instanceof PromptLengthError) throw new PromptLengthError(`--prompt: ${e.message} (max_position_embeddings of ${modelDir})`);
      throw e;
    }
    const lm = await loadModel(o.model, runtimeOf(o));
    try {
      const { tokenizer, generation } = lm;
      const sampled = generation.doSample !== false && generation.temperature !== undefined;
      const temperature = o.temperature ?? (sampled ? generation.temperature! : 0);
      const topP = o.topP ?? (sampled ? (generation.topP ?? 1) : 1);
      const topK = o.topK ?? (sampled ? (generation.topK ?? 0) : 0);
      const bar = progress('generate', o.maxNewTokens * o.n, { quiet: o.quiet || o.n * o.maxNewTokens < 64, unit: 'tokens' });
      const t0 = performance.now();
      const out = await generate(
        lm.engine,
        tokenizer,
        Array.from({ length: o.n }, (_, i) => ({ prompt, stream: i })),
        {
          maxNewTokens: o.maxNewTokens,
          temperature,
          topP,
          topK,
          seed: o.seed,
          eosTokenIds: lm.eosTokenIds,
          stopStrings: o.stop,
          onProgress: (p) => bar.update(p.newTokens),
        },
      );
      bar.stop();
      const seconds = (performance.now() - t0) / 1000;
      const newTokens = out.reduce((a, c) => a + c.ids.length, 0);
      if (o.json) {
        printJson({
          prompt: text,
          prompt_ids: prompt,
          sampling: { temperature, top_p: topP, top_k: topK, seed: o.seed, max_new_tokens: o.maxNewTokens },
          completions: out.map((c) => ({ ids: c.ids, text: c.text, finish_reason: c.finishReason })),
          seconds,
          tokens_per_second: newTokens / seconds,
        });
      } else {
        out.forEach((c, i) => {
          if (o.n > 1) process.stdout.write(`--- completion ${i + 1} (${c.finishReason}, ${c.ids.length} tokens)\n`);
          process.stdout.write(c.text + '\n');
        });
        if (!o.quiet)
          process.stderr.write(
            `${newTokens} tokens in ${seconds.toFixed(2)}s (${(newTokens / seconds).toFixed(1)} tokens/s), finish: ${out.map((c) => c.finishReason).join(', ')}\n`,
          );
      }
    } finally {
      await closeModel(lm);
    }
  });
}
