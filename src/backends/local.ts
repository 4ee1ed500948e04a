/** The local onnxruntime engine as a GenerationBackend. */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { updateWithFileSample } from '../io/file-sample-hash.ts';
import { readModelFile } from '../io/model-file.ts';
import { generate } from '../models/generate.ts';
import {
  streamOf,
  type BackendCompletion,
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
  const h = createHash('sha256');
  h.update(readModelFile(lm.model.dir, 'config.json') ?? '');
  for (const shard of lm.model.tensors.shards) updateWithFileSample(h, join(lm.model.dir, shard), shard);
  return `sha256:${h.digest('hex').slice(0, 16)}`;
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
    const flat = requests.flatMap((r, ri) =>
      Array.from({ length: r.n }, (_, i) => ({ ri, i, prompt: r.prompt, stream: streamOf(r.index, r.n, i) })),
    );
    const pending = requests.map((r) => ({ left: r.n, out: new Array<BackendCompletion>(r.n) }));
    let done = 0;
    await generate(
      this.lm.engine,
      this.lm.tokenizer,
      flat.map((f) => ({ prompt: f.prompt, stream: f.stream })),
      {
        temperature: s.temperature,
        topP: s.topP,
        topK: s.topK,
        maxNewTokens: s.maxNewTokens,
        seed: s.seed,
        stopStrings: s.stopStrings,
        eosTokenIds: this.lm.eosTokenIds,
        batchSize: this.batchSize,
        onProgress: (p) => hooks.onProgress?.({ done, total: requests.length, newTokens: p.newTokens }),
        onComplete: async (k, c) => {
          const f = flat[k]!;
          const p = pending[f.ri]!;
          p.out[f.i] = { ids: c.ids, text: c.text, finishReason: c.finishReason };
          if (--p.left === 0) {
            done++;
            await hooks.onResult(requests[f.ri]!, p.out);
          }
        },
      },
    );
  }

  async close(): Promise<void> {
    await closeModel(this.lm);
  }
}
