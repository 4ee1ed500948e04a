/**
 * The OpenAI-compatible request surface of `rac serve`: validation of /v1/completions and
 * /v1/chat/completions bodies into one normalized job description, and OpenAI-style errors.
 *
 * Accepted (besides the OpenAI fields): `top_k` (vLLM/SGLang; -1 or 0 = off), `chat_template_kwargs`
 * and `add_generation_prompt` (chat), `max_completion_tokens` (chat), `return_token_ids` (vLLM;
 * token ids are always returned in `choices[i].token_ids`), and `rac_stream`: the PRNG stream of
 * the first sample (sample i of prompt p uses stream rac_stream + p·n + i; default 0), which lets
 * rac's OpenAI backend draw exactly what its local backend draws.
 */
import type { ChatMessage, RacTokenizer } from '../io/tokenizer.ts';
import type { GenerationConfig } from '../io/generation-config.ts';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: string = status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
    this.name = 'HttpError';
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const bad = (message: string, param: string | null, code: string | null = null) => new HttpError(400, message, param, code);

/** What a completion or chat request asks for, checked and tokenized. */
export interface JobSpec {
  kind: 'completion' | 'chat';
  /** The served model name the request named (undefined = the default). */
  model: string | undefined;
  prompts: number[][];
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  /** undefined = a fresh random seed. */
  seed: number | undefined;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  streamBase: number;
}

export interface ModelLimits {
  tokenizer: RacTokenizer;
  generation: GenerationConfig;
  /** Embedding rows: token ids must be below this. */
  vocabSize: number;
  /** Prompt + completion tokens must fit in this. */
  contextLength: number;
}

type Body = Record<string, unknown>;

function has(b: Body, k: string): boolean {
  return b[k] !== undefined && b[k] !== null;
}

function num(b: Body, k: string, lo: number, hi: number, dflt: number): number {
  if (!has(b, k)) return dflt;
  const v = b[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
    throw bad(`'${k}' must be a number in [${lo}, ${hi}], got ${JSON.stringify(v)}`, k);
  }
  return v;
}

function int(b: Body, k: string, lo: number, hi: number): number | undefined {
  if (!has(b, k)) return undefined;
  const v = b[k];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
    throw bad(`'${k}' must be an integer in [${lo}, ${hi}], got ${JSON.stringify(v)}`, k);
  }
  return v;
}

function bool(b: Body, k: string, dflt: boolean): boolean {
  if (!has(b, k)) return dflt;
  if (typeof b[k] !== 'boolean') throw bad(`'${k}' must be a boolean`, k);
  return b[k] as boolean;
}

function isIdArray(v: unknown): v is number[] {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number' && Number.isInteger(x));
}

/** Parses a JSON request body (already size-limited); objects only. */
export function parseBody(raw: Buffer): Body {
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch (e) {
    throw bad(`request body is not valid JSON (${(e as Error).message})`, null, 'invalid_json');
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('request body must be a JSON object', null, 'invalid_json');
  return v as Body;
}

/** Sampling fields shared by both endpoints. */
function common(b: Body, lim: ModelLimits, kind: JobSpec['kind'], prompts: number[][]): JobSpec {
  if (has(b, 'model') && typeof b.model !== 'string') throw bad("'model' must be a string", 'model');
  const g = lim.generation;
  const sampled = g.doSample !== false;
  const n = int(b, 'n', 1, 128) ?? 1;
  const bestOf = int(b, 'best_of', 1, 128);
  if (bestOf !== undefined && bestOf !== n) throw bad("'best_of' other than n is not supported", 'best_of');
  const temperature = num(b, 'temperature', 0, 100, sampled ? (g.temperature ?? 1) : 0);
  const topP = num(b, 'top_p', Number.MIN_VALUE, 1, sampled ? (g.topP ?? 1) : 1);
  if (has(b, 'top_p') && (b.top_p as number) <= 0) throw bad("'top_p' must be in (0, 1]", 'top_p');
  let topK = int(b, 'top_k', -1, 1 << 30);
  if (topK === undefined) topK = sampled ? (g.topK ?? 0) : 0;
  if (topK === -1) topK = 0;
  const seed = int(b, 'seed', -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
  const streamBase = int(b, 'rac_stream', 0, 2 ** 32 - 1) ?? 0;

  let stop: string[] = [];
  if (has(b, 'stop')) {
    const s = b.stop;
    if (typeof s === 'string') stop = [s];
    else if (Array.isArray(s) && s.every((x) => typeof x === 'string')) stop = s as string[];
    else throw bad("'stop' must be a string or an array of strings", 'stop');
    stop = stop.filter((x) => x.length > 0);
  }
  const stream = bool(b, 'stream', false);
  let includeUsage = false;
  if (has(b, 'stream_options')) {
    const so = b.stream_options;
    if (typeof so !== 'object' || Array.isArray(so)) throw bad("'stream_options' must be an object", 'stream_options');
    const iu = (so as Body).include_usage;
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean') throw bad("'stream_options.include_usage' must be a boolean", 'stream_options');
    includeUsage = iu === true;
  }
  const lp = b.logprobs;
  if (lp !== undefined && lp !== null && lp !== false && lp !== 0) throw bad("'logprobs' are not supported by rac serve", 'logprobs', 'unsupported');
  if (has(b, 'top_logprobs') && b.top_logprobs !== 0) throw bad("'top_logprobs' is not supported by rac serve", 'top_logprobs', 'unsupported');
  if (b.echo === true) throw bad("'echo' is not supported by rac serve", 'echo', 'unsupported');
  if (has(b, 'suffix')) throw bad("'suffix' is not supported by rac serve", 'suffix', 'unsupported');

  for (const p of prompts) {
    for (const id of p) {
      if (id < 0 || id >= lim.vocabSize) throw bad(`token id ${id} is out of range [0, ${lim.vocabSize})`, 'prompt');
    }
  }
  const longest = Math.max(...prompts.map((p) => p.length));
  const maxKey = kind === 'chat' && has(b, 'max_completion_tokens') ? 'max_completion_tokens' : 'max_tokens';
  let maxTokens = int(b, maxKey, 1, 1 << 30);
  if (maxTokens === undefined) maxTokens = kind === 'completion' ? 16 : lim.contextLength - longest;
  if (longest + maxTokens > lim.contextLength) {
    throw bad(
      `this model's maximum context length is ${lim.contextLength} tokens; the prompt has ${longest} tokens and ${maxTokens} more were requested`,
      maxKey,
      'context_length_exceeded',
    );
  }
  return {
    kind,
    model: b.model as string | undefined,
    prompts,
    n,
    maxTokens,
    temperature,
    topP,
    topK,
    seed,
    stop,
    stream,
    includeUsage,
    streamBase,
  };
}

/** POST /v1/completions: prompt as a string, strings, token ids, or lists of token ids. */
export function parseCompletion(b: Body, lim: ModelLimits): JobSpec {
  const p = b.prompt;
  let prompts: number[][];
  const enc = (s: string) => lim.tokenizer.encode(s);
  if (typeof p === 'string') prompts = [enc(p)];
  else if (isIdArray(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) prompts = (p as string[]).map(enc);
  else if (Array.isArray(p) && p.length > 0 && p.every(isIdArray)) prompts = p as number[][];
  else throw bad("'prompt' must be a string, an array of strings, an array of token ids, or an array of such arrays (none empty)", 'prompt');
  if (prompts.some((x) => x.length === 0)) throw bad("'prompt' tokenizes to no tokens", 'prompt');
  return common(b, lim, 'completion', prompts);
}

/** POST /v1/chat/completions: messages through the model's chat template (generation prompt added). */
export function parseChat(b: Body, lim: ModelLimits): JobSpec {
  const ms = b.messages;
  if (!Array.isArray(ms) || ms.length === 0) throw bad("'messages' must be a non-empty array", 'messages');
  const messages: ChatMessage[] = ms.map((m, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw bad(`messages[${i}] must be an object`, 'messages');
    const o = m as Body;
    if (typeof o.role !== 'string') throw bad(`messages[${i}].role must be a string`, 'messages');
    let content: string;
    if (typeof o.content === 'string') content = o.content;
    else if (o.content === null || o.content === undefined) content = '';
    else if (Array.isArray(o.content)) {
      content = o.content
        .map((part, j) => {
          const q = part as Body;
          if (q === null || typeof q !== 'object' || q.type !== 'text' || typeof q.text !== 'string') {
            throw bad(`messages[${i}].content[${j}]: only text parts are supported`, 'messages');
          }
          return q.text;
        })
        .join('');
    } else throw bad(`messages[${i}].content must be a string or an array of text parts`, 'messages');
    return { ...o, role: o.role, content };
  });
  let extra: Record<string, unknown> = {};
  if (has(b, 'chat_template_kwargs')) {
    const k = b.chat_template_kwargs;
    if (typeof k !== 'object' || Array.isArray(k)) throw bad("'chat_template_kwargs' must be an object", 'chat_template_kwargs');
    extra = k as Record<string, unknown>;
  }
  const addGenerationPrompt = bool(b, 'add_generation_prompt', true);
  let text: string;
  try {
    text = lim.tokenizer.applyChatTemplate(messages, { addGenerationPrompt, extra });
  } catch (e) {
    throw bad(`cannot apply the chat template: ${(e as Error).message}`, 'messages');
  }
  const ids = lim.tokenizer.encode(text, { addSpecialTokens: false });
  if (ids.length === 0) throw bad('the chat template rendered an empty prompt', 'messages');
  return common(b, lim, 'chat', [ids]);
}
