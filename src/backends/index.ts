/**
 * Opens a GenerationBackend by name: `local` (the onnxruntime engine over a model directory),
 * `llama.cpp` (a GGUF in llama.cpp, in process through node-llama-cpp) or `openai` (an
 * OpenAI-compatible server: vLLM, SGLang, llama.cpp server, `rac serve`).
 */
import type { GenerationBackend } from './backend.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import type { GgufDtype } from '../export/gguf.ts';
import { LlamaCppBackend } from './llamacpp.ts';
import { LocalBackend } from './local.ts';
import { OpenAIBackend, type PromptFormat } from './openai.ts';

export type BackendKind = 'local' | 'llama.cpp' | 'openai';
export const BACKENDS: readonly BackendKind[] = ['local', 'llama.cpp', 'openai'];

export interface OpenBackendOptions {
  backend: BackendKind;
  /**
   * Model directory. local: the weights (required). llama.cpp: tokenizer and stop ids, and the
   * weights to export when no `gguf` is given. openai: optional; its tokenizer re-tokenizes
   * completions when the server returns no token ids (`tokenizer` takes precedence).
   */
  model?: string;
  /** llama.cpp: the GGUF file (default: `model` exported to a temporary f32 GGUF). */
  gguf?: string;
  /** llama.cpp: dtype of that temporary export. */
  exportDtype?: GgufDtype;
  /** llama.cpp: threads (default: all cores). */
  threads?: number;
  /** llama.cpp: tokens per sequence (default: the longest prompt + budget, up to the GGUF's context_length). */
  contextSize?: number;
  /** local: sequences decoded together (default 16). */
  batchSize?: number;
  /** local: onnxruntime options. */
  runtime?: Partial<RuntimeOptions>;
  /** openai: server URL, with or without /v1 (required). */
  baseUrl?: string;
  /** openai: name of the environment variable holding the API key. */
  apiKeyEnv?: string;
  /** openai: the served model id (default: the only one the server lists). */
  servedModel?: string;
  /** openai: requests in flight; llama.cpp: sequences decoded together (default 8 for both). */
  concurrency?: number;
  /** openai: prompt as token ids or text (default: probe the server). */
  promptFormat?: PromptFormat | 'auto';
  /** openai: tokenizer directory for re-tokenizing completions. */
  tokenizer?: string;
  /** openai: per-attempt timeout in ms (default 600 000). */
  timeoutMs?: number;
  /** openai: attempts per request (default 6). */
  maxAttempts?: number;
  /** openai: first retry delay in ms (default 500). */
  backoffMs?: number;
  /** openai: notices such as retries. */
  log?: (line: string) => void;
}

/** `openBackend({ backend: 'openai', baseUrl, … })`, or `openBackend('openai', { baseUrl, … })`. */
export async function openBackend(o: OpenBackendOptions): Promise<GenerationBackend>;
export async function openBackend(backend: BackendKind | string, o: Omit<OpenBackendOptions, 'backend'>): Promise<GenerationBackend>;
export async function openBackend(a: OpenBackendOptions | string, b?: Omit<OpenBackendOptions, 'backend'>): Promise<GenerationBackend> {
  const o = (typeof a === 'string' ? { ...b, backend: a } : a) as OpenBackendOptions;
  switch (o.backend) {
    case 'local': {
      if (!o.model) throw new Error('the local backend needs a model directory (--model DIR)');
      return LocalBackend.open(o.model, { batchSize: o.batchSize, runtime: o.runtime });
    }
    case 'llama.cpp': {
      return LlamaCppBackend.open({
        gguf: o.gguf,
        model: o.model,
        exportDtype: o.exportDtype,
        parallel: o.concurrency,
        threads: o.threads,
        contextSize: o.contextSize,
        log: o.log,
      });
    }
    case 'openai': {
      if (!o.baseUrl) throw new Error('the openai backend needs a server URL (--base-url URL)');
      return OpenAIBackend.open({
        baseUrl: o.baseUrl,
        model: o.servedModel,
        apiKeyEnv: o.apiKeyEnv,
        concurrency: o.concurrency,
        promptFormat: o.promptFormat,
        tokenizer: o.tokenizer ?? o.model,
        timeoutMs: o.timeoutMs,
        maxAttempts: o.maxAttempts,
        backoffMs: o.backoffMs,
        log: o.log,
      });
    }
    default:
      throw new Error(`unknown backend "${String((o as { backend: unknown }).backend)}" (known: ${BACKENDS.join(', ')})`);
  }
}

export { LlamaCppBackend } from './llamacpp.ts';
export { LocalBackend } from './local.ts';
export { OpenAIBackend } from './openai.ts';
