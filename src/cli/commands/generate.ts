import type { Command } from 'commander';
import { closeModel, encodePrompt, generateText, loadModel } from '../../api/models.ts';
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
    await encodePrompt(o.model, o.prompt, { chat: !!o.chat, ...(o.system !== undefined ? { system: o.system } : {}) }, '--prompt');
    const lm = await loadModel(o.model, { runtime: runtimeOf(o) });
    try {
      const bar = progress('generate', o.maxNewTokens * o.n, { quiet: o.quiet || o.n * o.maxNewTokens < 64, unit: 'tokens' });
      const r = await generateText(lm, o.prompt, {
        chat: !!o.chat,
        ...(o.system !== undefined ? { system: o.system } : {}),
        maxNewTokens: o.maxNewTokens,
        ...(o.temperature !== undefined ? { temperature: o.temperature } : {}),
        ...(o.topP !== undefined ? { topP: o.topP } : {}),
        ...(o.topK !== undefined ? { topK: o.topK } : {}),
        seed: o.seed,
        n: o.n,
        ...(o.stop ? { stop: o.stop } : {}),
        onProgress: (p) => bar.update(p.newTokens),
      });
      bar.stop();
      const out = r.completions;
      const newTokens = out.reduce((a, c) => a + c.ids.length, 0);
      if (o.json) {
        printJson({
          prompt: r.prompt,
          prompt_ids: r.promptIds,
          sampling: r.sampling,
          completions: out.map((c) => ({ ids: c.ids, text: c.text, finish_reason: c.finishReason })),
          seconds: r.seconds,
          tokens_per_second: newTokens / r.seconds,
        });
      } else {
        out.forEach((c, i) => {
          if (o.n > 1) process.stdout.write(`--- completion ${i + 1} (${c.finishReason}, ${c.ids.length} tokens)\n`);
          process.stdout.write(`${c.text}\n`);
        });
        if (!o.quiet)
          process.stderr.write(
            `${newTokens} tokens in ${r.seconds.toFixed(2)}s (${(newTokens / r.seconds).toFixed(1)} tokens/s), finish: ${out.map((c) => c.finishReason).join(', ')}\n`,
          );
      }
    } finally {
      await closeModel(lm);
    }
  });
}
