import { InvalidArgumentError, type Command } from 'commander';
import { hubSourceOf } from '../../io/hub.ts';
import { CONNECTION_DEFAULTS, startServer } from '../../serve/server.ts';
import { addRuntimeOptions, float, int, type RuntimeFlags } from '../common.ts';
import { runtimeOf } from '../../study/job.ts';

interface Opts extends RuntimeFlags {
  model: string;
  host: string;
  port: number;
  scheduler: 'continuous' | 'window';
  maxRunning: number;
  maxKvTokens?: number;
  maxBatch: number;
  servedModelName?: string;
  batchWindowMs: number;
  shutdownGrace: number;
  maxBodyMb: number;
  maxPrompts: number;
  maxRequestTokens?: number;
  maxPromptChars?: number;
  headerTimeout: number;
  requestTimeout: number;
  keepAliveTimeout: number;
  maxConnections: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

export function register(program: Command): void {
  const cmd = program
    .command('serve')
    .description('serve a model over an OpenAI-compatible HTTP API (/v1/models, /v1/completions, /v1/chat/completions)')
    .requiredOption('--model <dir>', 'model directory')
    .option('--host <addr>', 'address to bind (loopback by default; anything else exposes the server)', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port)', int('port'), 8000)
    .option(
      '--scheduler <kind>',
      'continuous (sequences join and leave the batch at every step) or window (window batches, to compare against)',
      (v: string) => {
        if (v !== 'continuous' && v !== 'window') throw new InvalidArgumentError(`scheduler must be continuous or window, got "${v}"`);
        return v;
      },
      'continuous',
    )
    .option('--max-running <n>', 'continuous: most sequences decoded together', int('max-running', 1), 32)
    .option(
      '--max-kv-tokens <n>',
      'continuous: most KV cache tokens (rows × the longest row; default 2 GiB of cache, at least one context)',
      int('max-kv-tokens', 2),
    )
    .option('--max-batch <n>', 'window: most sequences decoded together', int('max-batch', 1), 16)
    .option('--served-model-name <name>', "model name in /v1/models and requests (default: the directory's name)")
    .option('--batch-window-ms <ms>', 'window: how long a request waits for others to share its batch', int('batch-window-ms'), 5)
    .option(
      '--shutdown-grace <s>',
      'on SIGINT/SIGTERM, seconds running requests may finish before they are aborted',
      int('shutdown-grace'),
      10,
    )
    .option('--max-body-mb <n>', 'largest request body in MiB (larger → 413)', int('max-body-mb', 1), 8)
    .option('--max-prompts <n>', 'prompts per /v1/completions request', int('max-prompts', 1), 64)
    .option(
      '--max-request-tokens <n>',
      "Σ over a request's sequences of prompt tokens + max_tokens (default 128 × the context)",
      int('max-request-tokens', 1),
    )
    .option('--max-prompt-chars <n>', 'longest prompt string tokenized at all (default 16 × the context)', int('max-prompt-chars', 1))
    .option(
      '--header-timeout <s>',
      "seconds a request's headers may take to arrive (slower: 408, connection closed)",
      float('header-timeout', 0.01, 86_400),
      CONNECTION_DEFAULTS.headersTimeoutMs / 1000,
    )
    .option(
      '--request-timeout <s>',
      'seconds a whole request (headers and body) may take to arrive; the answer may take longer',
      float('request-timeout', 0.01, 86_400),
      CONNECTION_DEFAULTS.requestTimeoutMs / 1000,
    )
    .option(
      '--keep-alive-timeout <s>',
      'seconds an idle keep-alive connection is kept',
      float('keep-alive-timeout', 0.01, 86_400),
      CONNECTION_DEFAULTS.keepAliveTimeoutMs / 1000,
    )
    .option(
      '--max-connections <n>',
      'open connections at most (one more is answered 503 and closed)',
      int('max-connections', 1),
      CONNECTION_DEFAULTS.maxConnections,
    );
  addRuntimeOptions(cmd).action(async (o: Opts) => {
    const log = (line: string) => {
      if (!o.quiet) process.stderr.write(`rac serve: ${line}\n`);
    };
    if (!LOOPBACK.has(o.host)) log(`warning: binding ${o.host}, which is not loopback; there is no authentication`);
    const server = await startServer({
      model: o.model,
      host: o.host,
      port: o.port,
      scheduler: o.scheduler,
      maxRunning: o.maxRunning,
      ...(o.maxKvTokens !== undefined ? { maxKvTokens: o.maxKvTokens } : {}),
      maxBatch: o.maxBatch,
      // A hub snapshot is named by its id, not by its commit directory.
      servedModelName: o.servedModelName ?? hubSourceOf(o.model)?.id,
      batchWindowMs: o.batchWindowMs,
      shutdownGraceMs: o.shutdownGrace * 1000,
      maxBodyBytes: o.maxBodyMb * 2 ** 20,
      maxPromptsPerRequest: o.maxPrompts,
      headersTimeoutMs: Math.round(o.headerTimeout * 1000),
      requestTimeoutMs: Math.round(o.requestTimeout * 1000),
      keepAliveTimeoutMs: Math.round(o.keepAliveTimeout * 1000),
      maxConnections: o.maxConnections,
      runtime: runtimeOf(o),
      ...(o.maxRequestTokens !== undefined ? { maxRequestTokens: o.maxRequestTokens } : {}),
      ...(o.maxPromptChars !== undefined ? { maxPromptChars: o.maxPromptChars } : {}),
      log,
    });
    // Always printed (even with --quiet): scripts read the address from it (port 0).
    process.stderr.write(`rac serve: model "${server.modelName}" at ${server.url}/v1\n`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    log(`${signal}: shutting down`);
    await server.close();
    log('stopped');
  });
}
