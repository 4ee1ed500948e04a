/**
 * An OpenAI-compatible HTTP server (vLLM, SGLang, llama.cpp server, `rac serve`) as a
 * GenerationBackend, through `/v1/completions`.
 *
 * - Prompts go as token ids (`prompt: number[]`) when the server takes them, else as text.
 * - Completion token ids come from the answer: `choices[i].token_ids` (vLLM's `return_token_ids`,
 *   always sent by rac serve), else `logprobs.tokens` as "token_id:N" (vLLM's
 *   `return_tokens_as_token_ids`), else the text is re-tokenized with a local tokenizer (recorded
 *   in the fingerprint, as the ids are then a guess).
 * - What the server supports is probed once, on open, with a one-token request.
 * - Seeds: each request's `seed` is derived from (settings.seed, request index), so a rerun or a
 *   resumed run asks for the same samples. Against `rac serve` (owned_by "rac" in /v1/models) the
 *   request carries settings.seed and `rac_stream` = streamOf(index, n, 0) instead, so the server
 *   draws exactly what the local backend draws.
 * - Requests run `concurrency` at a time; 408/409/429/5xx answers, timeouts and connection errors are
 *   retried with exponential backoff and jitter (Retry-After honoured) up to `maxAttempts`; every
 *   request's result reaches hooks.onResult exactly once (calls are serialized), and a request
 *   that still fails makes generate() reject after the running ones are delivered.
 */
import { createHash } from 'node:crypto';
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Rng } from '../models/sampling.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import { readModelFile } from '../io/model-file.ts';
import {
  checkSettings,
  streamOf,
  type BackendCompletion,
  type BackendRequest,
  type GenerationBackend,
  type GenerationHooks,
  type SamplingSettings,
} from './backend.ts';
import { RacError } from '../errors.ts';

export type PromptFormat = 'ids' | 'text';
/** Where completion token ids come from. */
export type IdSource = 'token_ids' | 'logprobs' | 'retokenize';

export interface OpenAIBackendOptions {
  /** Server URL, with or without the trailing /v1 (e.g. http://127.0.0.1:8000/v1). */
  baseUrl: string;
  /** Served model id; default: the only model the server lists. */
  model?: string;
  /** Name of the environment variable holding the API key (sent as a Bearer token). */
  apiKeyEnv?: string;
  /** Requests in flight at once (default 8). */
  concurrency?: number;
  /** 'auto' (default) probes whether the server takes token-id prompts. */
  promptFormat?: PromptFormat | 'auto';
  /** Tokenizer (model directory or loaded) to re-tokenize completions when the server returns no ids. */
  tokenizer?: string | RacTokenizer;
  /** Per-attempt timeout (default 600 s). */
  timeoutMs?: number;
  /** Attempts per request, the first included (default 6). */
  maxAttempts?: number;
  /** First retry delay before jitter (default 500 ms); doubles per attempt. */
  backoffMs?: number;
  /** Largest retry delay, Retry-After included (default 60 s). */
  maxBackoffMs?: number;
  /** Notices (retries); never given the API key. */
  log?: (line: string) => void;
}

export class OpenAIHttpError extends RacError {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'OpenAIHttpError';
  }
}

interface ServerModel {
  id: string;
  owned_by?: string;
}

interface Choice {
  index?: number;
  text?: string;
  finish_reason?: string | null;
  stop_reason?: string | number | null;
  token_ids?: unknown;
  logprobs?: { tokens?: unknown } | null;
}

/** A 31-bit seed for request `index` (servers differ on how large a seed they take). */
export function requestSeed(seed: number, index: number): number {
  return new Rng(seed, index).nextU32() >>> 1;
}

export function normalizeBaseUrl(u: string): string {
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new Error(`invalid base URL "${u}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`base URL must be http(s), got "${u}"`);
  let path = url.pathname.replace(/\/+$/, '');
  if (!path.endsWith('/v1')) path += '/v1';
  return `${url.protocol}//${url.host}${path}`;
}

function retryAfterMs(h: IncomingMessage['headers']): number | undefined {
  const ms = Number(h['retry-after-ms']);
  if (h['retry-after-ms'] !== undefined && Number.isFinite(ms) && ms >= 0) return ms;
  const ra = h['retry-after'];
  if (ra === undefined) return undefined;
  const s = Number(ra);
  if (Number.isFinite(s) && s >= 0) return s * 1000;
  const t = Date.parse(String(ra));
  return Number.isFinite(t) ? Math.max(0, t - Date.now()) : undefined;
}

const sleep = (ms: number) => new Promise<void>((ok) => setTimeout(ok, ms));

function isRetryable(e: unknown): boolean {
  if (e instanceof OpenAIHttpError) return e.status === 408 || e.status === 409 || e.status === 429 || e.status >= 500 || e.status === 0;
  return true; // network errors, timeouts, malformed answers
}

export class OpenAIBackend implements GenerationBackend {
  readonly name = 'openai';
  private readonly agent: HttpAgent;
  private constructor(
    readonly baseUrl: string,
    readonly model: string,
    readonly fingerprint: string,
    readonly promptFormat: PromptFormat,
    readonly idSource: IdSource,
    /** The server is `rac serve` (takes rac_stream). */
    readonly isRac: boolean,
    private readonly extras: Record<string, unknown>,
    private readonly tokenizer: RacTokenizer | null,
    private readonly o: Required<Omit<OpenAIBackendOptions, 'model' | 'apiKeyEnv' | 'tokenizer' | 'promptFormat' | 'baseUrl'>>,
    private readonly apiKey: string | undefined,
    agent: HttpAgent,
  ) {
    this.agent = agent;
  }

  /** Reads /v1/models and probes the server's prompt and id formats. */
  static async open(opts: OpenAIBackendOptions): Promise<OpenAIBackend> {
    const baseUrl = normalizeBaseUrl(opts.baseUrl);
    let apiKey: string | undefined;
    if (opts.apiKeyEnv !== undefined) {
      apiKey = process.env[opts.apiKeyEnv];
      if (!apiKey) throw new Error(`environment variable ${opts.apiKeyEnv} (the API key) is not set`);
    }
    const o = {
      concurrency: opts.concurrency ?? 8,
      timeoutMs: opts.timeoutMs ?? 600_000,
      maxAttempts: opts.maxAttempts ?? 6,
      backoffMs: opts.backoffMs ?? 500,
      maxBackoffMs: opts.maxBackoffMs ?? 60_000,
      log: opts.log ?? (() => {}),
    };
    if (!Number.isInteger(o.concurrency) || o.concurrency < 1)
      throw new Error(`concurrency must be a positive integer, got ${o.concurrency}`);
    if (!Number.isInteger(o.maxAttempts) || o.maxAttempts < 1)
      throw new Error(`max attempts must be a positive integer, got ${o.maxAttempts}`);
    const tokenizer = typeof opts.tokenizer === 'string' ? await RacTokenizer.load(opts.tokenizer) : (opts.tokenizer ?? null);
    const agent = baseUrl.startsWith('https:') ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true });
    // A provisional backend to use the retrying client for the probes.
    const probe = new OpenAIBackend(baseUrl, '', '', 'ids', 'token_ids', false, {}, tokenizer, o, apiKey, agent);
    try {
      const list = (await probe.call('GET', '/models', undefined, 'list models')) as { data?: ServerModel[] };
      const models = Array.isArray(list?.data) ? list.data.filter((m) => m && typeof m.id === 'string') : [];
      let card: ServerModel | undefined;
      if (opts.model !== undefined) {
        card = models.find((m) => m.id === opts.model);
        if (!card)
          throw new Error(`${baseUrl} does not serve model "${opts.model}" (it serves: ${models.map((m) => m.id).join(', ') || 'none'})`);
      } else {
        if (models.length !== 1) {
          throw new Error(
            `${baseUrl} serves ${models.length} models (${models.map((m) => m.id).join(', ')}); name one with --served-model`,
          );
        }
        card = models[0]!;
      }
      const model = card.id;
      const isRac = card.owned_by === 'rac';
      let promptFormat: PromptFormat;
      let idSource: IdSource;
      let extras: Record<string, unknown>;
      if (isRac && opts.promptFormat !== 'text') {
        promptFormat = 'ids';
        idSource = 'token_ids';
        extras = {};
      } else {
        ({ promptFormat, idSource, extras } = await probe.probe(model, opts.promptFormat ?? 'auto'));
      }
      if (idSource === 'retokenize' && !tokenizer) {
        throw new Error(`${baseUrl} returns no completion token ids; pass the model's tokenizer (--tokenizer DIR) to re-tokenize the text`);
      }
      let fingerprint = `openai:${baseUrl}:${model}`;
      if (promptFormat === 'text') fingerprint += ';prompt=text';
      if (idSource === 'retokenize') {
        const tj = createHash('sha256')
          .update(readModelFile(tokenizer!.dir, 'tokenizer.json') ?? '')
          .digest('hex')
          .slice(0, 12);
        fingerprint += `;ids=retokenized:${tj}`;
      }
      return new OpenAIBackend(baseUrl, model, fingerprint, promptFormat, idSource, isRac, extras, tokenizer, o, apiKey, agent);
    } catch (e) {
      agent.destroy();
      throw e;
    }
  }

  /** One-token requests: token-id prompts? token ids back (return_token_ids, then logprobs)? */
  private async probe(
    model: string,
    format: PromptFormat | 'auto',
  ): Promise<{ promptFormat: PromptFormat; idSource: IdSource; extras: Record<string, unknown> }> {
    const ids = this.tokenizer ? this.tokenizer.encode('Hello', { addSpecialTokens: false }) : [0];
    const formats: PromptFormat[] = format === 'auto' ? ['ids', 'text'] : [format];
    const variants: { extras: Record<string, unknown>; source: IdSource }[] = [
      { extras: { return_token_ids: true }, source: 'token_ids' },
      { extras: { logprobs: 1, return_tokens_as_token_ids: true }, source: 'logprobs' },
      { extras: {}, source: 'retokenize' },
    ];
    let last: unknown;
    for (const pf of formats) {
      for (const v of variants) {
        const body = { model, prompt: pf === 'ids' ? ids : 'Hello', max_tokens: 1, temperature: 0, ...v.extras };
        let res: { choices?: Choice[] };
        try {
          res = (await this.call('POST', '/completions', body, 'probe')) as { choices?: Choice[] };
        } catch (e) {
          if (e instanceof OpenAIHttpError && e.status >= 400 && e.status < 500) {
            last = e;
            continue; // this combination is refused; try the next
          }
          throw e;
        }
        const c = res?.choices?.[0];
        let source: IdSource = 'retokenize';
        if (c && isIdList(c.token_ids)) source = 'token_ids';
        else if (c && logprobIds(c) !== null) source = 'logprobs';
        // Ask only for what the server showed it returns.
        const extras = source === 'token_ids' ? { return_token_ids: true } : source === 'logprobs' ? variants[1]!.extras : {};
        return { promptFormat: pf, idSource: source, extras };
      }
    }
    throw new Error(`${this.baseUrl} refused every probe completion: ${(last as Error)?.message ?? 'unknown error'}`);
  }

  /** One HTTP exchange with retries; resolves with the parsed JSON answer. */
  private async call(method: 'GET' | 'POST', path: string, body: unknown, what: string): Promise<unknown> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(method, path, body);
      } catch (e) {
        if (!isRetryable(e) || attempt >= this.o.maxAttempts) {
          const msg = `${what}: ${e instanceof Error ? e.message : String(e)}${attempt > 1 ? ` (after ${attempt} attempts)` : ''}`;
          throw e instanceof OpenAIHttpError ? new OpenAIHttpError(e.status, msg, e.retryAfterMs) : new Error(msg, { cause: e });
        }
        const exp = Math.min(this.o.maxBackoffMs, this.o.backoffMs * 2 ** (attempt - 1));
        let delay = exp / 2 + Math.random() * (exp / 2);
        const ra = e instanceof OpenAIHttpError ? e.retryAfterMs : undefined;
        if (ra !== undefined) delay = Math.min(this.o.maxBackoffMs, Math.max(delay, ra));
        this.o.log(
          `${what}: ${e instanceof Error ? e.message : String(e)}; retrying in ${Math.round(delay)} ms (attempt ${attempt + 1}/${this.o.maxAttempts})`,
        );
        await sleep(delay);
      }
    }
  }

  private once(method: 'GET' | 'POST', path: string, body: unknown): Promise<unknown> {
    const url = new URL(this.baseUrl + path);
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (data) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = data.length;
    }
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolvePromise, reject) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(e);
      };
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), this.o.timeoutMs);
      const req = request(url, { method, headers, agent: this.agent, signal: ac.signal }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('error', (e) => fail(e));
        res.on('aborted', () => fail(new Error('connection closed mid-answer')));
        res.on('end', () => {
          if (settled) return;
          const text = Buffer.concat(parts).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            let msg = text.slice(0, 500);
            try {
              const j = JSON.parse(text) as { error?: { message?: string } | string; message?: string };
              msg = (typeof j.error === 'string' ? j.error : j.error?.message) ?? j.message ?? msg;
            } catch {
              // not JSON: keep the raw text
            }
            fail(new OpenAIHttpError(status, `HTTP ${status} from ${method} ${url.pathname}: ${msg}`, retryAfterMs(res.headers)));
            return;
          }
          try {
            const v = JSON.parse(text) as unknown;
            settled = true;
            clearTimeout(timer);
            resolvePromise(v);
          } catch {
            fail(new Error(`answer of ${method} ${url.pathname} is not JSON: ${text.slice(0, 200)}`));
          }
        });
      });
      req.on('error', (e) => fail(ac.signal.aborted ? new Error(`no answer within ${this.o.timeoutMs} ms`) : e));
      if (data) req.end(data);
      else req.end();
    });
  }

  private async complete(r: BackendRequest, s: SamplingSettings): Promise<BackendCompletion[]> {
    const body: Record<string, unknown> = {
      model: this.model,
      prompt: this.promptFormat === 'ids' ? r.prompt : r.promptText,
      n: r.n,
      max_tokens: s.maxNewTokens,
      temperature: s.temperature,
      top_p: s.topP,
      ...this.extras,
    };
    if (s.topK > 0) body.top_k = s.topK;
    if (s.stopStrings && s.stopStrings.length > 0) body.stop = s.stopStrings;
    if (this.isRac) {
      body.seed = s.seed;
      body.rac_stream = streamOf(r.index, r.n, 0);
    } else body.seed = requestSeed(s.seed, r.index);
    // A malformed answer is retried like a failed one (call → once throws inside the retry loop).
    for (let attempt = 1; ; attempt++) {
      const res = (await this.call('POST', '/completions', body, `request ${r.index}`)) as { choices?: Choice[] };
      try {
        return this.parse(res, r, s);
      } catch (e) {
        if (attempt >= this.o.maxAttempts) throw new Error(`request ${r.index}: ${(e as Error).message}`);
        this.o.log(`request ${r.index}: ${(e as Error).message}; retrying (attempt ${attempt + 1}/${this.o.maxAttempts})`);
        await sleep(this.o.backoffMs);
      }
    }
  }

  private parse(res: { choices?: Choice[] }, r: BackendRequest, s: SamplingSettings): BackendCompletion[] {
    const choices = Array.isArray(res?.choices) ? [...res.choices] : [];
    if (choices.length !== r.n) throw new Error(`expected ${r.n} choices, got ${choices.length}`);
    choices.sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
    return choices.map((c) => {
      if (typeof c.text !== 'string') throw new Error('a choice has no text');
      const fr = c.finish_reason;
      if (fr !== 'stop' && fr !== 'length') throw new Error(`unexpected finish_reason ${JSON.stringify(fr)}`);
      let ids: number[];
      if (this.idSource === 'token_ids') {
        if (!isIdList(c.token_ids)) throw new Error('a choice has no token_ids');
        ids = c.token_ids;
      } else if (this.idSource === 'logprobs') {
        const l = logprobIds(c);
        if (l === null) throw new Error('a choice has no token ids in logprobs.tokens');
        ids = l;
      } else {
        const tok = this.tokenizer!;
        ids = tok.encode(c.text, { addSpecialTokens: false });
        // Stopped on eos (not on a stop string): the eos id ends the ids, as the local engine keeps it.
        // vLLM/SGLang report stop_reason (null = eos); without it, a stop could be either when stop
        // strings were given (counted as a stop string then).
        const onEos =
          'stop_reason' in c ? c.stop_reason === null || c.stop_reason === undefined : !(s.stopStrings ?? []).some((x) => x.length > 0);
        if (fr === 'stop' && onEos && tok.eosTokenId !== undefined) ids.push(tok.eosTokenId);
      }
      return { ids, text: c.text, finishReason: fr };
    });
  }

  async generate(requests: BackendRequest[], s: SamplingSettings, hooks: GenerationHooks): Promise<void> {
    checkSettings(s);
    const total = requests.length;
    let next = 0;
    let done = 0;
    let newTokens = 0;
    let failure: unknown = null;
    let hookFailed = false;
    let delivering: Promise<void> = Promise.resolve();
    // Results are handed over one at a time, in completion order; after a request fails for good,
    // the ones already running are still delivered (a resumed run then skips them).
    const deliver = (r: BackendRequest, cs: BackendCompletion[]) => {
      delivering = delivering.then(async () => {
        if (hookFailed) return;
        try {
          await hooks.onResult(r, cs);
        } catch (e) {
          hookFailed = true;
          throw e;
        }
        done++;
        newTokens += cs.reduce((a, c) => a + c.ids.length, 0);
        hooks.onProgress?.({ done, total, newTokens });
      });
      return delivering;
    };
    const worker = async () => {
      while (failure === null && next < total) {
        const r = requests[next++]!;
        try {
          const cs = await this.complete(r, s);
          await deliver(r, cs);
        } catch (e) {
          failure ??= e;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.o.concurrency, total) }, worker));
    await delivering.catch(() => {});
    if (failure !== null) throw failure;
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }
}

function isIdList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

/** vLLM's return_tokens_as_token_ids: logprobs.tokens = ["token_id:123", …]. */
function logprobIds(c: Choice): number[] | null {
  const t = c.logprobs?.tokens;
  if (!Array.isArray(t)) return null;
  const out: number[] = [];
  for (const x of t) {
    const m = typeof x === 'string' ? /^token_id:(\d+)$/.exec(x) : null;
    if (!m) return null;
    out.push(Number(m[1]));
  }
  return out;
}
