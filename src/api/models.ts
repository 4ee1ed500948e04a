/**
 * Models as a library user opens them: a directory or a Hugging Face id (resolved through the
 * hub cache, downloaded when allowed), loaded into the engine with its tokenizer and generation
 * defaults; text generation with the model's own defaults and the prompt checked against its
 * context before anything is loaded.
 */
import { checkPromptChars, checkPromptTokens, promptChars, PromptLengthError } from '../io/prompt-bounds.ts';
import { resolveModel } from '../io/hub.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import { generate, type Completion, type GenerateProgress } from '../models/generate.ts';
import { closeModel as closeLoaded, loadModel as loadDir, type LoadedModel } from '../models/loaded.ts';
import type { EngineOptions } from '../models/engine.ts';
import { Model } from '../models/model.ts';
import type { RuntimeOptions } from '../runtime/session.ts';

export type { Completion, LoadedModel };

/** A model directory, or the snapshot directory of a hub id `org/name[@revision]` (a local path always wins). */
export async function resolveModelId(model: string, opts: { log?: (line: string) => void } = {}): Promise<string> {
  const r = await resolveModel(model, { ...(opts.log ? { log: opts.log } : {}) });
  return r.dir;
}

/**
 * Open a model (directory or hub id) for inference: engine, tokenizer, generation config. Close it
 * with closeModel. `engine`: how a compressed-tensors checkpoint's packed weights run
 * (packedWeights 'native' — MatMulNBits on the packed codes, the default — or 'dequantize').
 */
export async function loadModel(
  model: string,
  opts: {
    runtime?: Partial<RuntimeOptions>;
    engine?: Pick<EngineOptions, 'packedWeights' | 'accuracyLevel'>;
    log?: (line: string) => void;
  } = {},
): Promise<LoadedModel> {
  return loadDir(await resolveModelId(model, opts), { ...opts.runtime, ...opts.engine });
}

export async function closeModel(m: LoadedModel): Promise<void> {
  await closeLoaded(m);
}

export interface GenerateTextOptions {
  /** Render the prompt as a user message through the model's chat template (with `system`). */
  chat?: boolean;
  system?: string;
  maxNewTokens?: number;
  /** Sampling (default: the model's generation_config when it samples, else greedy). */
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  /** Completions to sample. */
  n?: number;
  stop?: string[];
  onProgress?: (p: GenerateProgress) => void;
}

export interface GenerateTextResult {
  /** The prompt as the model saw it (chat-templated with `chat`) and its ids. */
  prompt: string;
  promptIds: number[];
  sampling: { temperature: number; top_p: number; top_k: number; seed: number; max_new_tokens: number };
  completions: Completion[];
  seconds: number;
}

/** The prompt's ids, checked against the model's context (a PromptLengthError naming `what` otherwise). */
export async function encodePrompt(dir: string, text: string, o: Pick<GenerateTextOptions, 'chat' | 'system'> = {}, what = 'the prompt') {
  const probe = Model.open(dir, { warn: () => {} });
  const ctx = probe.config.maxPositionEmbeddings;
  const modelDir = probe.dir;
  probe.close();
  const tok = await RacTokenizer.load(modelDir);
  let rendered = text;
  try {
    checkPromptChars(promptChars(text, o.chat ? o.system : undefined), tok, ctx);
    if (o.chat) {
      const messages = o.system ? [{ role: 'system', content: o.system }] : [];
      messages.push({ role: 'user', content: text });
      rendered = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
      checkPromptChars(rendered.length, tok, ctx);
    }
    const ids = tok.encode(rendered, { addSpecialTokens: !o.chat });
    checkPromptTokens(ids.length, ctx);
    return { text: rendered, ids };
  } catch (e) {
    if (e instanceof PromptLengthError) throw new PromptLengthError(`${what}: ${e.message} (max_position_embeddings of ${modelDir})`);
    throw e;
  }
}

/** Generate from a text prompt with a loaded model. */
export async function generateText(lm: LoadedModel, prompt: string, o: GenerateTextOptions = {}): Promise<GenerateTextResult> {
  const { text, ids } = await encodePrompt(lm.model.dir, prompt, o);
  const g = lm.generation;
  const sampled = g.doSample !== false && g.temperature !== undefined;
  const temperature = o.temperature ?? (sampled ? g.temperature! : 0);
  const topP = o.topP ?? (sampled ? (g.topP ?? 1) : 1);
  const topK = o.topK ?? (sampled ? (g.topK ?? 0) : 0);
  const maxNewTokens = o.maxNewTokens ?? 256;
  const seed = o.seed ?? 0;
  const t0 = performance.now();
  const completions = await generate(
    lm.engine,
    lm.tokenizer,
    Array.from({ length: o.n ?? 1 }, (_, i) => ({ prompt: ids, stream: i })),
    {
      maxNewTokens,
      temperature,
      topP,
      topK,
      seed,
      eosTokenIds: lm.eosTokenIds,
      ...(o.stop ? { stopStrings: o.stop } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    },
  );
  return {
    prompt: text,
    promptIds: ids,
    sampling: { temperature, top_p: topP, top_k: topK, seed, max_new_tokens: maxNewTokens },
    completions,
    seconds: (performance.now() - t0) / 1000,
  };
}
