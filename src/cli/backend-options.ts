/** --backend and the llama.cpp / OpenAI-compatible server options shared by `rac trace` and `rac eval`. */
import { InvalidArgumentError, type Command } from 'commander';
import { BACKENDS, type BackendKind, type OpenBackendOptions } from '../backends/index.ts';
import type { PromptFormat } from '../backends/openai.ts';
import { int } from './common.ts';

export interface BackendFlags {
  model: string;
  batchSize: number;
  backend: BackendKind;
  baseUrl?: string;
  apiKeyEnv?: string;
  servedModel?: string;
  concurrency?: number;
  promptFormat?: PromptFormat | 'auto';
  gguf?: string;
  contextSize?: number;
  threads?: number;
  quiet?: boolean;
}

export function addBackendOptions(cmd: Command): Command {
  return cmd
    .option(
      '--backend <name>',
      'generation backend: local | llama.cpp (a GGUF, in process; needs node-llama-cpp) | openai (an OpenAI-compatible server: vLLM, SGLang, llama.cpp server, rac serve)',
      (v: string) => {
        if (!(BACKENDS as readonly string[]).includes(v))
          throw new InvalidArgumentError(`backend must be one of ${BACKENDS.join(', ')}, got "${v}"`);
        return v as BackendKind;
      },
      'local' as BackendKind,
    )
    .option('--gguf <file>', 'llama.cpp backend: the GGUF to run (default: --model exported to a temporary f32 GGUF)')
    .option(
      '--context-size <n>',
      "llama.cpp backend: tokens per sequence (default: longest prompt + --max-new-tokens, up to the GGUF's context length)",
      int('context-size', 2),
    )
    .option('--base-url <url>', 'OpenAI-compatible server (openai backend)')
    .option('--api-key-env <var>', 'environment variable holding the API key (openai backend)')
    .option('--served-model <name>', 'model name on the server (openai backend)')
    .option(
      '--concurrency <n>',
      'openai backend: requests in flight; llama.cpp backend: sequences decoded together (default 8; keep --batch-size ≥ it)',
      int('concurrency', 1),
    )
    .option('--prompt-format <f>', 'openai backend: send prompts as ids | text | auto (probe the server)', (v: string) => {
      if (v !== 'ids' && v !== 'text' && v !== 'auto')
        throw new InvalidArgumentError(`prompt format must be ids, text or auto, got "${v}"`);
      return v as PromptFormat | 'auto';
    });
}

/** The backend options of the flags (everything but the model, batch size and runtime). */
export function backendOptionsOf(o: BackendFlags): Omit<OpenBackendOptions, 'model' | 'batchSize' | 'runtime'> {
  return {
    backend: o.backend,
    ...(o.baseUrl !== undefined ? { baseUrl: o.baseUrl } : {}),
    ...(o.apiKeyEnv !== undefined ? { apiKeyEnv: o.apiKeyEnv } : {}),
    ...(o.servedModel !== undefined ? { servedModel: o.servedModel } : {}),
    ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
    ...(o.promptFormat !== undefined ? { promptFormat: o.promptFormat } : {}),
    ...(o.gguf !== undefined ? { gguf: o.gguf } : {}),
    ...(o.contextSize !== undefined ? { contextSize: o.contextSize } : {}),
    ...(o.threads !== undefined ? { threads: o.threads } : {}),
  };
}
