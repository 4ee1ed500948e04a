/** A model directory opened for inference: weights in an engine, tokenizer, generation defaults. */
import { loadGenerationConfig, type GenerationConfig } from '../io/generation-config.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import { Engine, type EngineOptions } from './engine.ts';
import { Model } from './model.ts';

export interface LoadedModel {
  model: Model;
  engine: Engine;
  tokenizer: RacTokenizer;
  generation: GenerationConfig;
  /** Stop ids: generation_config's eos ids, plus the tokenizer's eos. */
  eosTokenIds: number[];
}

/** The ids generation stops on: generation_config's eos ids, config.json's, and the tokenizer's eos (sorted, distinct). */
export function stopTokenIds(generationEos: readonly number[], configEos: readonly number[], tokenizerEos: number | undefined): number[] {
  const eos = new Set<number>([...generationEos, ...configEos]);
  if (tokenizerEos !== undefined) eos.add(tokenizerEos);
  return [...eos].sort((a, b) => a - b);
}

/** `opts`: the runtime, and how the engine runs a compressed-tensors checkpoint's packed weights (EngineOptions). */
export async function loadModel(dir: string, opts: EngineOptions = {}): Promise<LoadedModel> {
  const model = Model.open(dir);
  try {
    const tokenizer = await RacTokenizer.load(model.dir);
    const generation = loadGenerationConfig(model.dir, model.config.raw, model.config.vocabSize);
    const engine = await Engine.load(model, opts);
    return {
      model,
      engine,
      tokenizer,
      generation,
      eosTokenIds: stopTokenIds(generation.eosTokenIds, model.config.eosTokenIds, tokenizer.eosTokenId),
    };
  } catch (e) {
    model.close();
    throw e;
  }
}

export async function closeModel(m: LoadedModel): Promise<void> {
  await m.engine.release();
  m.model.close();
}
