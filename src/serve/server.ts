/**
 * `rac serve`: an OpenAI-compatible HTTP server (node:http) over the local onnxruntime engine.
 *
 *   GET  /v1/models, /v1/models/{id}
 *   POST /v1/completions        prompt: string | string[] | number[] | number[][]
 *   POST /v1/chat/completions   messages through the model's chat template
 *   GET  /health, /rac/stats
 *
 * Both POST endpoints answer JSON or, with `stream: true`, server-sent events (`data: {...}` chunks
 * then `data: [DONE]`). Every choice carries its completion token ids in `token_ids` (a rac
 * extension, named as vLLM's `return_token_ids` answer). Concurrent requests are decoded together:
 * sequences join and leave the running batch at every step (scheduler.ts), or, with
 * `scheduler: 'window'`, in window batches (batcher.ts). Errors are OpenAI-style: `{"error": {"message", "type", "param", "code"}}`.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, resolve } from 'node:path';
import type { Completion } from '../models/generate.ts';
import { closeModel, loadModel, type LoadedModel } from '../models/loaded.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { Batcher, type BatchStats, type Sequence } from './batcher.ts';
import { defaultMaxKvTokens, Scheduler, type SchedulerStats } from './scheduler.ts';
import {
  defaultRequestLimits,
  HttpError,
  parseBody,
  parseChat,
  parseCompletion,
  type JobSpec,
  type ModelLimits,
  type RequestLimits,
} from './protocol.ts';

/** After the grace period and the abort, how long aborted requests get to send their 503. */
const ABORT_DRAIN_MS = 2000;

/** Defaults of the connection bounds (`rac serve` flags). */
export const CONNECTION_DEFAULTS = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5000,
  maxConnections: 256,
} as const;

/**
 * A body over the limit is answered 413 at once, but the connection is closed only once the rest
 * of the body has been read and discarded — a client that sends its whole body before reading
 * (Python's urllib, the OpenAI client) would otherwise see its send fail ("Broken pipe") instead of
 * the 413 — up to this many times the limit; past that the connection is cut.
 */
export const DISCARD_BODY_FACTOR = 8;

export interface ServeOptions {
  /** Model directory (loaded here and released on close). */
  model: string;
  /** An already loaded model to serve instead (not released on close). */
  loaded?: LoadedModel;
  /** Default 127.0.0.1 (loopback). */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** 'continuous' (default): iteration-level scheduling; 'window': window batches (to compare against). */
  scheduler?: 'continuous' | 'window';
  /** Continuous: most sequences in the decode batch (default 32). */
  maxRunning?: number;
  /** Continuous: most KV cache tokens, rows × the longest row (default: 2 GiB of cache, at least one context, at most max-running contexts). */
  maxKvTokens?: number;
  /** Window: most sequences decoded together (default 16). */
  maxBatch?: number;
  /** Window: how long the first queued request waits for others to join its batch (default 5 ms). */
  batchWindowMs?: number;
  /** Name in /v1/models and in requests' `model` (default: the model directory's name). */
  servedModelName?: string;
  /** Largest request body (default 8 MiB; larger → 413, by Content-Length or while reading). */
  maxBodyBytes?: number;
  /** A request's headers must arrive within this (default 10 s; else the connection is closed, 408). */
  headersTimeoutMs?: number;
  /** A whole request, headers and body, must arrive within this (default 60 s; else 408 and the connection is closed). The answer may take longer. */
  requestTimeoutMs?: number;
  /** An idle keep-alive connection is closed after this (default 5 s). */
  keepAliveTimeoutMs?: number;
  /** Open connections at most (default 256); one more is answered 503 and closed. */
  maxConnections?: number;
  /** Prompts per /v1/completions request (default 64; more → 400 too_many_prompts). */
  maxPromptsPerRequest?: number;
  /** Σ over a request's sequences of prompt tokens + max_tokens (default 128 × the context; more → 400 request_too_large). */
  maxRequestTokens?: number;
  /** Characters of one prompt string tokenized at all (default 16 × the context; longer → 400 prompt_too_long). */
  maxPromptChars?: number;
  /** On close, how long running requests may finish before they are aborted (default 10 s). */
  shutdownGraceMs?: number;
  runtime?: Partial<RuntimeOptions>;
  /** One line per notable event (default: none). */
  log?: (line: string) => void;
}

export interface Counters {
  /** Generation requests accepted (completions + chat). */
  requests: number;
  /** Requests answered with an error status. */
  errors: number;
  /** Requests in progress. */
  active: number;
  /** Requests whose body is still being received. */
  reading: number;
}

/** /rac/stats: the request counters and the scheduler's (continuous or window). */
export type ServerStats = Counters & (SchedulerStats | BatchStats);

/** The stats of a continuous-batching server (throws for a window one). */
export function continuousStats(s: ServerStats): Counters & SchedulerStats {
  if (s.scheduler !== 'continuous') throw new Error(`the server runs the ${s.scheduler} scheduler`);
  return s;
}

export interface RunningServer {
  /** e.g. http://127.0.0.1:8000 (the OpenAI base URL is url + '/v1'). */
  url: string;
  host: string;
  port: number;
  modelName: string;
  stats: ServerStats;
  /** Stops accepting, lets running requests finish (grace period, then aborts), releases the model. */
  close(): Promise<void>;
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
};

/**
 * Reads a request body of at most `limit` bytes: refused at once by its Content-Length, else as
 * soon as the bytes received pass the limit. Rejects when the connection closes first or the
 * server aborts (shutdown), so a client that never finishes its body holds nothing.
 */
function readBody(req: IncomingMessage, limit: number, abort: AbortSignal): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const tooLarge = () =>
      new HttpError(413, `request body exceeds ${limit} bytes (the server's --max-body-mb)`, null, 'request_too_large');
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      reject(tooLarge());
      return;
    }
    const parts: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (e: Error | null) => {
      if (settled) return;
      settled = true;
      abort.removeEventListener('abort', onAbort);
      if (e) reject(e);
      else resolvePromise(Buffer.concat(parts));
    };
    const onAbort = () => settle(new HttpError(503, 'server is shutting down', null, 'shutting_down'));
    if (abort.aborted) return onAbort();
    abort.addEventListener('abort', onAbort);
    req.on('data', (c: Buffer) => {
      if (settled) return;
      size += c.length;
      if (size > limit) {
        settle(tooLarge());
        return;
      }
      parts.push(c);
    });
    req.on('end', () => settle(null));
    req.on('close', () =>
      settle(new HttpError(400, 'the connection closed before the request body was complete', null, 'incomplete_body')),
    );
    req.on('error', (e) => settle(e));
  });
}

const notAllowed = (method: string, path: string, allow: string) =>
  Object.assign(new HttpError(405, `method ${method} is not allowed on ${path} (use ${allow})`, null, 'method_not_allowed'), { allow });

/**
 * Text that can be sent now. With stop strings, a token's text may complete one (and be cut from
 * the final text), so it waits for the next token, and a tail that could still begin a stop string
 * is held back as well; the final text always starts with everything sent.
 */
class HeldText {
  private full = '';
  private sent = 0;
  constructor(
    private readonly stops: boolean,
    private readonly hold: number,
  ) {}
  push(delta: string): string {
    if (!this.stops) {
      this.sent += delta.length;
      return delta;
    }
    let safe = this.full.length - this.hold;
    this.full += delta;
    if (safe > 0 && /[\uD800-\uDBFF]/.test(this.full[safe - 1]!)) safe--; // never split a surrogate pair
    if (safe <= this.sent) return '';
    const out = this.full.slice(this.sent, safe);
    this.sent = safe;
    return out;
  }
  /** The rest of the final text. */
  finish(finalText: string): string {
    return finalText.slice(this.sent);
  }
}

export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  const maxBatch = opts.maxBatch ?? 16;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new Error(`max batch must be a positive integer, got ${maxBatch}`);
  const log = opts.log ?? (() => {});
  const owned = !opts.loaded;
  const lm = opts.loaded ?? (await loadModel(opts.model, opts.runtime));
  const modelName = opts.servedModelName ?? basename(resolve(opts.model));
  const contextLength = lm.engine.config.maxPositionEmbeddings;
  const defaults = defaultRequestLimits(contextLength);
  const request: RequestLimits = {
    maxPrompts: opts.maxPromptsPerRequest ?? defaults.maxPrompts,
    maxRequestTokens: opts.maxRequestTokens ?? defaults.maxRequestTokens,
    maxPromptChars: opts.maxPromptChars ?? defaults.maxPromptChars,
  };
  for (const [k, v] of Object.entries(request)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  }
  const limits: ModelLimits = {
    tokenizer: lm.tokenizer,
    generation: lm.generation,
    vocabSize: lm.engine.config.vocabSize,
    contextLength,
    request,
  };
  const maxBody = opts.maxBodyBytes ?? 8 << 20;
  const created = Math.floor(Date.now() / 1000);
  const kind = opts.scheduler ?? 'continuous';
  if (kind !== 'continuous' && kind !== 'window') throw new Error(`scheduler must be 'continuous' or 'window', got '${String(kind)}'`);
  const maxRunning = opts.maxRunning ?? 32;
  const continuous = kind === 'continuous' ? new Scheduler(lm, maxRunning, opts.maxKvTokens ?? defaultMaxKvTokens(lm, maxRunning)) : null;
  const batcher = continuous ?? new Batcher(lm, maxBatch, opts.batchWindowMs ?? 5);
  const shutdown = new AbortController();
  const counters: Counters = { requests: 0, errors: 0, active: 0, reading: 0 };
  let closing = false;
  const inflight = new Set<Promise<void>>();

  const modelCard = () => ({
    id: modelName,
    object: 'model',
    created,
    owned_by: 'rac',
    root: resolve(opts.model),
    max_model_len: limits.contextLength,
  });

  /**
   * 413: the answer is written at once, but ended (and the connection closed) only when the rest of
   * the body has been read and discarded, up to DISCARD_BODY_FACTOR × the limit (then cut).
   */
  const answerTooLarge = (req: IncomingMessage, res: ServerResponse, err: HttpError) => {
    counters.errors++;
    const data = JSON.stringify(err.toJSON());
    res.shouldKeepAlive = false;
    res.writeHead(413, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), connection: 'close' });
    res.write(data);
    const bound = DISCARD_BODY_FACTOR * maxBody;
    let discarded = 0;
    const finish = () => {
      if (!res.writableEnded) res.end();
    };
    if (req.complete) return finish();
    req.on('data', (c: Buffer) => {
      discarded += c.length;
      if (discarded > bound) {
        finish();
        req.socket.destroy();
      }
    });
    req.on('end', finish);
    req.on('close', finish);
    req.resume();
  };

  const sendError = (res: ServerResponse, e: unknown) => {
    counters.errors++;
    const err = e instanceof HttpError ? e : new HttpError(500, e instanceof Error ? e.message : String(e), null, 'internal_error');
    if (err.status >= 500 && !(e instanceof HttpError)) log(`error: ${err.message}`);
    if (res.headersSent) {
      if (!res.writableEnded) res.end();
      return;
    }
    const headers: Record<string, string> = {};
    if (err.status === 405) headers.allow = (e as { allow?: string }).allow ?? 'POST';
    if (err.status === 413 || closing) headers.connection = 'close';
    json(res, err.status, err.toJSON(), headers);
  };

  /** Runs one parsed job through the batcher and writes the response. */
  const runJob = (spec: JobSpec, req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const id = `${spec.kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${randomBytes(12).toString('hex')}`;
    const object = spec.kind === 'chat' ? 'chat.completion' : 'text_completion';
    const seed = spec.seed ?? randomInt(2 ** 32);
    const client = new AbortController();
    const signal = AbortSignal.any([client.signal, shutdown.signal]);
    res.on('close', () => {
      if (!res.writableFinished) client.abort();
    });
    const total = spec.prompts.length * spec.n;
    const results = new Array<Completion>(total);
    let hold = 0;
    for (const st of spec.stop) hold = Math.max(hold, st.length - 1);
    const held = Array.from({ length: total }, () => new HeldText(spec.stop.length > 0, hold));
    let promptTokens = 0;
    for (const p of spec.prompts) promptTokens += p.length;
    let left = total;
    let finished = false;

    const chunk = (choice: Record<string, unknown>) => {
      const base = {
        id,
        object: spec.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion',
        created: Math.floor(Date.now() / 1000),
        model: modelName,
      };
      res.write(`data: ${JSON.stringify({ ...base, choices: [choice] })}\n\n`);
    };
    const streamChoice = (
      index: number,
      text: string,
      tokenIds: number[],
      finishReason: string | null,
      extra: Record<string, unknown> = {},
    ) =>
      spec.kind === 'chat'
        ? {
            index,
            delta: text === '' && finishReason !== null ? {} : { content: text },
            logprobs: null,
            finish_reason: finishReason,
            token_ids: tokenIds,
            ...extra,
          }
        : { index, text, logprobs: null, finish_reason: finishReason, token_ids: tokenIds, ...extra };

    if (spec.stream) {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: closing ? 'close' : 'keep-alive',
      });
      if (spec.kind === 'chat') {
        for (let k = 0; k < total; k++) chunk({ index: k, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null });
      }
    }

    return new Promise<void>((done) => {
      const end = (err?: Error) => {
        if (finished) return;
        finished = true;
        if (err) {
          const status = shutdown.signal.aborted || closing ? 503 : 500;
          const he =
            err instanceof HttpError ? err : new HttpError(status, err.message, null, status === 503 ? 'shutting_down' : 'internal_error');
          if (spec.stream && res.headersSent) {
            counters.errors++;
            if (!res.writableEnded) {
              res.write(`data: ${JSON.stringify(he.toJSON())}\n\n`);
              res.end('data: [DONE]\n\n');
            }
          } else sendError(res, he);
          done();
          return;
        }
        const completionTokens = results.reduce((a, c) => a + c.ids.length, 0);
        const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
        if (spec.stream) {
          if (spec.includeUsage) {
            res.write(
              `data: ${JSON.stringify({ id, object: spec.kind === 'chat' ? 'chat.completion.chunk' : 'text_completion', created: Math.floor(Date.now() / 1000), model: modelName, choices: [], usage })}\n\n`,
            );
          }
          res.end('data: [DONE]\n\n');
        } else {
          const choices = results.map((c, index) =>
            spec.kind === 'chat'
              ? {
                  index,
                  message: { role: 'assistant', content: c.text },
                  logprobs: null,
                  finish_reason: c.finishReason,
                  stop_reason: c.stop ?? null,
                  token_ids: c.ids,
                }
              : { index, text: c.text, logprobs: null, finish_reason: c.finishReason, stop_reason: c.stop ?? null, token_ids: c.ids },
          );
          json(
            res,
            200,
            { id, object, created: Math.floor(Date.now() / 1000), model: modelName, choices, usage },
            closing ? { connection: 'close' } : {},
          );
        }
        done();
      };

      const seqs: Sequence[] = [];
      for (let p = 0; p < spec.prompts.length; p++) {
        for (let i = 0; i < spec.n; i++) {
          const k = p * spec.n + i;
          let pendingIds: number[] = [];
          seqs.push({
            prompt: spec.prompts[p]!,
            stream: spec.streamBase + k,
            sampling: {
              temperature: spec.temperature,
              topP: spec.topP,
              topK: spec.topK,
              maxNewTokens: spec.maxTokens,
              seed,
              stopStrings: spec.stop,
            },
            signal,
            onToken: (tok, text) => {
              if (!spec.stream || finished) return;
              pendingIds.push(tok);
              const out = held[k]!.push(text);
              // Flushed per step; with stop strings, ids wait with the text held back.
              if (out !== '' || spec.stop.length === 0) {
                chunk(streamChoice(k, out, pendingIds, null));
                pendingIds = [];
              }
            },
            onDone: (c) => {
              if (finished) return;
              if (c.aborted) {
                end(new Error(shutdown.signal.aborted ? 'server is shutting down' : 'request aborted'));
                return;
              }
              results[k] = c;
              if (spec.stream) chunk(streamChoice(k, held[k]!.finish(c.text), pendingIds, c.finishReason, { stop_reason: c.stop ?? null }));
              pendingIds = [];
              if (--left === 0) end();
            },
          });
        }
      }
      if (!req.socket || req.socket.destroyed) client.abort();
      batcher.submit({ seqs, fail: (e) => end(e) });
    });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (closing) throw new HttpError(503, 'server is shutting down', null, 'shutting_down');
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (method !== 'GET') throw notAllowed(method, path, 'GET');
      if (path === '/v1/models') {
        json(res, 200, { object: 'list', data: [modelCard()] });
        return;
      }
      const name = decodeURIComponent(path.slice('/v1/models/'.length));
      if (name !== modelName) throw new HttpError(404, `model '${name}' does not exist`, 'model', 'model_not_found');
      json(res, 200, modelCard());
      return;
    }
    if (path === '/health' || path === '/rac/stats') {
      if (method !== 'GET') throw notAllowed(method, path, 'GET');
      if (path === '/health') {
        res.writeHead(200, { 'content-length': 0 }).end();
        return;
      }
      json(res, 200, { ...batcher.stats, ...counters });
      return;
    }
    if (path === '/v1/completions' || path === '/v1/chat/completions') {
      if (method !== 'POST') throw notAllowed(method, path, 'POST');
      counters.reading++;
      let raw: Buffer;
      try {
        raw = await readBody(req, maxBody, shutdown.signal);
      } finally {
        counters.reading--;
      }
      const body = parseBody(raw);
      if (body.model !== undefined && body.model !== null && body.model !== modelName) {
        throw new HttpError(
          404,
          `the model '${String(body.model)}' does not exist (this server serves '${modelName}')`,
          'model',
          'model_not_found',
        );
      }
      const spec = path === '/v1/completions' ? await parseCompletion(body, limits) : await parseChat(body, limits);
      if (continuous) {
        const longest = Math.max(...spec.prompts.map((p) => p.length));
        if (!continuous.fits(longest, spec.maxTokens)) {
          throw new HttpError(
            400,
            `the prompt has ${longest} tokens and ${spec.maxTokens} more were requested; the server's KV cache holds at most ${continuous.stats.maxKvTokens} tokens (--max-kv-tokens)`,
            'max_tokens',
            'request_too_large',
          );
        }
      }
      counters.requests++;
      counters.active++;
      try {
        await runJob(spec, req, res);
      } finally {
        counters.active--;
      }
      return;
    }
    throw new HttpError(404, `no route ${method} ${path}`, null, 'not_found');
  };

  const bounds = {
    headersTimeoutMs: opts.headersTimeoutMs ?? CONNECTION_DEFAULTS.headersTimeoutMs,
    requestTimeoutMs: opts.requestTimeoutMs ?? CONNECTION_DEFAULTS.requestTimeoutMs,
    keepAliveTimeoutMs: opts.keepAliveTimeoutMs ?? CONNECTION_DEFAULTS.keepAliveTimeoutMs,
    maxConnections: opts.maxConnections ?? CONNECTION_DEFAULTS.maxConnections,
  };
  for (const [k, v] of Object.entries(bounds)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${v}`);
  }
  if (bounds.headersTimeoutMs > bounds.requestTimeoutMs)
    throw new Error(
      `the header timeout (${bounds.headersTimeoutMs} ms) must not be longer than the request timeout (${bounds.requestTimeoutMs} ms)`,
    );
  const server: Server = createServer(
    // node:http checks these timeouts every connectionsCheckingInterval (30 s by default): often enough to honour them.
    { connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(bounds.headersTimeoutMs / 4))) },
    (req, res) => {
      const p = handle(req, res).catch((e) => {
        // A body still arriving would otherwise be read as the next request: it is read and discarded, then the connection closes.
        if (e instanceof HttpError && e.status === 413) answerTooLarge(req, res, e);
        else sendError(res, e);
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    },
  );
  // A request (headers, then body) must arrive within its timeouts; the answer, a generation, may take as long as it takes.
  server.headersTimeout = bounds.headersTimeoutMs;
  server.requestTimeout = bounds.requestTimeoutMs;
  server.keepAliveTimeout = bounds.keepAliveTimeoutMs;
  // Connections over the cap are answered 503 and closed (node:http's maxConnections would drop them without a word).
  let open = 0;
  // node:http's header timeout starts at a request's first byte: a connection that sends nothing at
  // all is cut here, when no request has arrived on it within the header timeout.
  const silent = new WeakMap<object, NodeJS.Timeout>();
  server.on('request', (req: IncomingMessage) => {
    clearTimeout(silent.get(req.socket));
    silent.delete(req.socket);
  });
  server.on('connection', (socket) => {
    open++;
    const timer = setTimeout(() => socket.destroy(), bounds.headersTimeoutMs);
    timer.unref();
    silent.set(socket, timer);
    socket.once('close', () => {
      open--;
      clearTimeout(timer);
    });
    if (open > bounds.maxConnections) {
      counters.errors++;
      const data = JSON.stringify(
        new HttpError(
          503,
          `the server holds at most ${bounds.maxConnections} connections (--max-connections); try again later`,
          null,
          'too_many_connections',
        ).toJSON(),
      );
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(data)}\r\nconnection: close\r\nretry-after: 1\r\n\r\n${data}`,
      );
      socket.destroySoon();
    }
  });

  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 8000, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const addr = server.address() as AddressInfo;
  const urlHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${urlHost}:${addr.port}`;

  let closed: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      closing = true;
      const serverClosed = new Promise<void>((ok) => server.close(() => ok()));
      server.closeIdleConnections();
      const grace = opts.shutdownGraceMs ?? 10_000;
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((ok) => {
        timer = setTimeout(ok, grace);
      });
      await Promise.race([Promise.all([...inflight]), graceOver]);
      clearTimeout(timer);
      if (inflight.size > 0) {
        log(`aborting ${inflight.size} request(s) still running after ${grace} ms`);
        shutdown.abort();
      }
      await batcher.close();
      // Aborted requests answer 503 at once; whatever is still open after a short drain (e.g. a
      // client that sent headers and part of a body) has its socket destroyed.
      let drain: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all([...inflight]), new Promise<void>((ok) => (drain = setTimeout(ok, ABORT_DRAIN_MS)))]);
      clearTimeout(drain);
      server.closeAllConnections();
      await Promise.all([...inflight]);
      await serverClosed;
      if (owned) await closeModel(lm);
    })();
    return closed;
  };

  return {
    url,
    host: addr.address,
    port: addr.port,
    modelName,
    get stats(): ServerStats {
      return { ...batcher.stats, ...counters };
    },
    close,
  };
}
