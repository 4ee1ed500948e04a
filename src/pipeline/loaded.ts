/** A model directory opened for inference: weights in an engine, tokenizer, generation defaults. */
import { loadGenerationConfig, type GenerationConfig } from '../io/generation-config.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import { Engine } from '../models/engine.ts';
import { Model } from '../models/model.ts';
import type { RuntimeOptions } from '../runtime/session.ts';

export interface LoadedModel {
  model: Model;
  engine: Engine;
  tokenizer: RacTokenizer;
  generation: GenerationConfig;
  /** Stop ids: generation_config's eos ids, plus the tokenizer's eos. */
  eosTokenIds: number[];
}

export async function loadModel(dir: string, runtime: Partial<RuntimeOptions> = {}): Promise<LoadedModel> {
  const model = Model.open(dir);
  try {
    const tokenizer = await RacTokenizer.load(model.dir);
    const generation = loadGenerationConfig(model.dir, model.config.raw);
    const eos = new Set<number>(generation.eosTokenIds);
    for (const id of model.config.eosTokenIds) eos.add(id);
    if (tokenizer.eosTokenId !== undefined) eos.add(tokenizer.eosTokenId);
    const engine = await Engine.load(model, runtime);
    return { model, engine, tokenizer, generation, eosTokenIds: [...eos].sort((a, b) => a - b) };
  } catch (e) {
    model.close();
    throw e;
  }
}

export async function closeModel(m: LoadedModel): Promise<void> {
  await m.engine.release();
  m.model.close();
}
