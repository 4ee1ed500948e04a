// Room src/backends: generation behind one interface (this file) — local onnxruntime engine
// (local.ts), llama.cpp through GGUF (llamacpp.ts), OpenAI-compatible servers (openai.ts), opened by
// name (index.ts). May import compress, io, runtime, tasks, models, prune and export (llama.cpp
// exports the GGUF it runs); nothing above (README: Layout).
/**
 * Generation backends: one interface for the local onnxruntime engine, an OpenAI-compatible HTTP
 * server (vLLM, SGLang, llama.cpp server, `rac serve`) and llama.cpp through GGUF. `rac trace`,
 * `rac eval` and `rac run` only talk to this interface.
 *
 * Reproducibility: sample i of the request with stable index r uses PRNG stream r·n + i, so a
 * resumed or re-batched run draws the same samples (on backends that honour seeds).
 */
import { createHash, type Hash } from 'node:crypto';
import { validateGenerateOptions } from '../models/generate.ts';

export interface SamplingSettings {
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed: number;
  stopStrings?: string[];
}

export interface BackendRequest {
  /** Stable index of the request in its dataset (seeds the PRNG streams). */
  index: number;
  /** Prompt token ids (chat-templated already). */
  prompt: number[];
  /** The same prompt as text, for servers that do not take token ids. */
  promptText: string;
  /** Completions wanted for this prompt. */
  n: number;
}

export type FinishReason = 'stop' | 'length';

export interface BackendCompletion {
  /** Completion token ids (a final eos id included when generation stopped on it). */
  ids: number[];
  text: string;
  finishReason: FinishReason;
}

export interface GenerationHooks {
  /** Called once per request, with all its n completions, as soon as they are done. */
  onResult(req: BackendRequest, completions: BackendCompletion[]): void | Promise<void>;
  onProgress?(p: { done: number; total: number; newTokens: number }): void;
}

export interface GenerationBackend {
  /** 'local' | 'openai' | 'llama.cpp' */
  readonly name: string;
  /** Identity of the model behind the backend (recorded in traces and results). */
  readonly fingerprint: string;
  /**
   * Tokens per sequence the backend holds (prompt + completion), when known: prompts that do not
   * fit are refused before generation. Undefined when only the server knows (it refuses them).
   */
  readonly contextLength?: number;
  generate(requests: BackendRequest[], settings: SamplingSettings, hooks: GenerationHooks): Promise<void>;
  close(): Promise<void>;
}

export function streamOf(index: number, n: number, sample: number): number {
  return index * n + sample;
}

/** Refuses settings no backend can run (the checks rac's engine makes), before any work starts. */
export function checkSettings(s: SamplingSettings): void {
  validateGenerateOptions({ ...s, eosTokenIds: [] });
}

/** A model's identity as a backend records it: `sha256:` and 16 hex digits of what `feed` hashes. */
export function fingerprintOf(feed: (h: Hash) => void): string {
  const h = createHash('sha256');
  feed(h);
  return `sha256:${h.digest('hex').slice(0, 16)}`;
}

/** One sample to draw: sample `i` of request `ri`, on PRNG stream `stream`. */
export interface SampleJob {
  ri: number;
  i: number;
  stream: number;
}

/**
 * The requests of one generate() call split into their samples, for backends that draw samples
 * one by one (local, llama.cpp): each request goes to hooks.onResult once all its n samples are in.
 */
export class SampleJobs {
  /** Every sample of every request, request by request. */
  readonly jobs: SampleJob[];
  /** Requests delivered so far. */
  done = 0;
  private readonly pending: { left: number; out: BackendCompletion[] }[];

  constructor(
    private readonly requests: readonly BackendRequest[],
    private readonly hooks: GenerationHooks,
  ) {
    this.jobs = requests.flatMap((r, ri) => Array.from({ length: r.n }, (_, i) => ({ ri, i, stream: streamOf(r.index, r.n, i) })));
    this.pending = requests.map((r) => ({ left: r.n, out: new Array<BackendCompletion>(r.n) }));
  }

  /** Records the completion of `job`; delivers its request when that was its last sample. */
  async put(job: SampleJob, c: BackendCompletion): Promise<void> {
    const p = this.pending[job.ri]!;
    p.out[job.i] = c;
    if (--p.left === 0) {
      this.done++;
      await this.hooks.onResult(this.requests[job.ri]!, p.out);
    }
  }
}
