/** The local onnxruntime engine as a GenerationBackend. */
import { join } from 'node:path';
import { updateWithFileSample } from '../io/file-sample-hash.ts';
import { readModelFile } from '../io/model-file.ts';
import { generate } from '../models/generate.ts';
import {
  fingerprintOf,
  SampleJobs,
  type BackendRequest,
  type GenerationBackend,
  type GenerationHooks,
  type SamplingSettings,
} from './backend.ts';
import { closeModel, loadModel, type LoadedModel } from '../models/loaded.ts';
import type { RuntimeOptions } from '../runtime/session.ts';

/**
 * Identity of the weights, cheap even for a multi-GB model: sha256 over config.json, every shard's
 * size and its bytes at 16 evenly spaced 4 KiB windows (the header included).
 */
export function modelFingerprint(lm: LoadedModel): string {
  return fingerprintOf((h) => {
    h.update(readModelFile(lm.model.dir, 'config.json') ?? '');
    for (const shard of lm.model.tensors.shards) updateWithFileSample(h, join(lm.model.dir, shard), shard);
  });
}

export class LocalBackend implements GenerationBackend {
  readonly name = 'local';
  private constructor(
    readonly lm: LoadedModel,
    readonly fingerprint: string,
    private readonly batchSize: number,
  ) {}

  /** max_position_embeddings: generation never runs past it. */
  get contextLength(): number {
    return this.lm.engine.config.maxPositionEmbeddings;
  }

  static async open(dir: string, opts: { batchSize?: number; runtime?: Partial<RuntimeOptions> } = {}): Promise<LocalBackend> {
    const lm = await loadModel(dir, opts.runtime);
    return new LocalBackend(lm, modelFingerprint(lm), opts.batchSize ?? 16);
  }

  async generate(requests: BackendRequest[], s: SamplingSettings, hooks: GenerationHooks): Promise<void> {
    const samples = new SampleJobs(requests, hooks);
    await generate(
      this.lm.engine,
      this.lm.tokenizer,
      samples.jobs.map((j) => ({ prompt: requests[j.ri]!.prompt, stream: j.stream })),
      {
        temperature: s.temperature,
        topP: s.topP,
        topK: s.topK,
        maxNewTokens: s.maxNewTokens,
        seed: s.seed,
        stopStrings: s.stopStrings,
        eosTokenIds: this.lm.eosTokenIds,
        batchSize: this.batchSize,
        onProgress: (p) => hooks.onProgress?.({ done: samples.done, total: requests.length, newTokens: p.newTokens }),
        onComplete: (k, c) => samples.put(samples.jobs[k]!, { ids: c.ids, text: c.text, finishReason: c.finishReason }),
      },
    );
  }

  async close(): Promise<void> {
    await closeModel(this.lm);
  }
}
