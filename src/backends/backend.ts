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
