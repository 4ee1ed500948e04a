/** Stand-in generation backends for the study tests (trace, eval, policy) that need no model. */
import {
  streamOf,
  type BackendCompletion,
  type BackendRequest,
  type FinishReason,
  type GenerationBackend,
  type GenerationHooks,
  type SamplingSettings,
} from '../../src/backends/backend.ts';

/** One scripted sample: its text, and its ids (default: 0, 1, … one per character) and finish reason (default 'stop'). */
export interface ScriptedSample {
  text: string;
  ids?: number[];
  finish?: FinishReason;
}

/**
 * A backend that answers from a script: sample `sample` of the request with stable index `index`
 * (PRNG stream `stream`) is `script(index, sample, stream)`. It records every request it served in
 * `calls`; with `failAfter`, the request after that many throws "backend died".
 */
export class ScriptedBackend implements GenerationBackend {
  readonly name = 'scripted';
  readonly fingerprint = 'sha256:scripted';
  calls: Array<{ index: number; n: number }> = [];
  constructor(
    private readonly script: (index: number, sample: number, stream: number) => ScriptedSample,
    private readonly failAfter = Infinity,
  ) {}
  async generate(requests: BackendRequest[], _s: SamplingSettings, hooks: GenerationHooks): Promise<void> {
    let k = 0;
    for (const r of requests) {
      if (k++ >= this.failAfter) throw new Error('backend died');
      this.calls.push({ index: r.index, n: r.n });
      const out: BackendCompletion[] = [];
      for (let i = 0; i < r.n; i++) {
        const s = this.script(r.index, i, streamOf(r.index, r.n, i));
        out.push({ ids: s.ids ?? Array.from({ length: s.text.length }, (_, j) => j), text: s.text, finishReason: s.finish ?? 'stop' });
      }
      await hooks.onResult(r, out);
    }
  }
  async close(): Promise<void> {}
}
