/**
 * Decode throughput of a model size with rac's engine (src/models/loaded.ts +
 * src/models/generate.ts), to size a tiny reasoner so the demo stays within its time budget:
 *
 *   npx tsx scripts/train/decode-bench.ts [--model DIR | --hidden 192 --layers 6 --heads 6 --kv-heads 2
 *       --intermediate 512 --tokenizer DIR] [--prompts 64] [--tokens 200] [--batch 64] [--threads 0]
 *
 * With --model it times that directory; otherwise it exports a random-weight checkpoint of the
 * given size (the trainer's init, seed 0) with the tokenizer in --tokenizer. Stop ids are ignored,
 * so every sequence decodes exactly --tokens new tokens; prompts are the first eval arith prompts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generate } from '../../src/models/generate.ts';
import { closeModel, loadModel } from '../../src/models/loaded.ts';
import { createRng, hashSeed } from '../../src/tasks/rng.ts';
import { generateSplit } from '../../src/tasks/tiny/index.ts';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { numberFlag, parseFlags, stringFlag } from './cli.ts';
import { exportHf } from './export.ts';
import { initParams, paramSpecs, type TinyConfig } from './model.ts';

const S = { type: 'string' } as const;
const v = parseFlags(process.argv.slice(2), {
  model: S,
  hidden: S,
  layers: S,
  heads: S,
  'kv-heads': S,
  intermediate: S,
  tokenizer: S,
  prompts: S,
  tokens: S,
  batch: S,
  threads: S,
});
const nPrompts = numberFlag(v, 'prompts', 64);
const nTokens = numberFlag(v, 'tokens', 200);
const batch = numberFlag(v, 'batch', 64);
const threads = numberFlag(v, 'threads', 0);
let dir = stringFlag(v, 'model');
let tmp: string | null = null;
let params = 0;
if (!dir) {
  const tokDir = stringFlag(v, 'tokenizer');
  if (!tokDir) throw new Error('--tokenizer DIR is required without --model');
  const tok = await RacTokenizer.load(tokDir);
  const cfg: TinyConfig = {
    vocab: tok.vocabSize,
    hidden: numberFlag(v, 'hidden', 192),
    layers: numberFlag(v, 'layers', 6),
    heads: numberFlag(v, 'heads', 6),
    kvHeads: numberFlag(v, 'kv-heads', 2),
    intermediate: numberFlag(v, 'intermediate', 512),
    ropeTheta: 10000,
    eps: 1e-6,
  };
  const rng = createRng(hashSeed('rac-tiny-reasoner-init', 0));
  const p = initParams(paramSpecs(cfg), () => rng.next());
  params = p.size;
  tmp = mkdtempSync(join(tmpdir(), 'rac-decode-bench-'));
  dir = join(tmp, 'model');
  exportHf(dir, cfg, p, tokDir);
}
const m = await loadModel(dir, threads ? { threads } : {});
try {
  const problems = generateSplit('eval', 'arith', nPrompts, 0);
  const prompts = problems.map((q) =>
    m.tokenizer.encode(m.tokenizer.applyChatTemplate([{ role: 'user', content: q.prompt }], { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    }),
  );
  const t0 = Date.now();
  const outs = await generate(
    m.engine,
    m.tokenizer,
    prompts.map((prompt, i) => ({ prompt, stream: i })),
    {
      maxNewTokens: nTokens,
      seed: 0,
      eosTokenIds: [],
      temperature: 0,
      topP: 1,
      topK: 0,
      batchSize: batch,
    },
  );
  const s = (Date.now() - t0) / 1000;
  const toks = outs.reduce((a, o) => a + o.ids.length, 0);
  console.log(
    `${dir}${params ? ` (random, ${params} params)` : ''}: ${toks} tokens in ${s.toFixed(1)} s = ${(toks / s).toFixed(0)} tokens/s (batch ${batch})`,
  );
} finally {
  await closeModel(m);
  if (tmp) rmSync(tmp, { recursive: true, force: true });
}
