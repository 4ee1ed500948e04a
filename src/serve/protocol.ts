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
  /** Per-request bounds (default: `defaultRequestLimits(contextLength)`). */
  request?: RequestLimits;
}

/** What one request may ask for: checked before any prompt is tokenized or queued. */
export interface RequestLimits {
  /** Prompts in one /v1/completions request (`prompt` as an array). */
  maxPrompts: number;
  /** Σ over the request's sequences (prompts × n) of prompt tokens + max_tokens. */
  maxRequestTokens: number;
  /** Characters of one prompt string (or rendered chat) that are tokenized at all. */
  maxPromptChars: number;
}

/**
 * A prompt string longer than this many characters per context token is refused untokenized: it
 * cannot fit (tokens of natural text and code average 3–5 characters), and tokenizing megabytes
 * would hold the event loop for seconds.
 */
export const PROMPT_CHARS_PER_TOKEN = 16;

export function defaultRequestLimits(contextLength: number): RequestLimits {
  return { maxPrompts: 64, maxRequestTokens: 128 * contextLength, maxPromptChars: PROMPT_CHARS_PER_TOKEN * contextLength };
}

const requestLimits = (lim: ModelLimits): RequestLimits => lim.request ?? defaultRequestLimits(lim.contextLength);

/** Lets other requests (and /health) run between the tokenizations of a request's prompts. */
const yieldLoop = () => new Promise<void>((r) => setImmediate(r));

function checkChars(length: number, what: string, param: string, lim: ModelLimits): void {
  const max = requestLimits(lim).maxPromptChars;
  if (length > max) {
    throw bad(
      `${what} has ${length} characters; prompts over ${max} characters are refused before tokenization (the model's context is ${lim.contextLength} tokens)`,
      param,
      'prompt_too_long',
    );
  }
}

type Body = Record<string, unknown>;

/** Stop strings per request and characters per stop string. */
const MAX_STOP = 64;
const MAX_STOP_CHARS = 1024;
/** Messages per chat request. */
const MAX_MESSAGES = 4096;

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
    if (stop.length > MAX_STOP) throw bad(`'stop' has ${stop.length} strings; at most ${MAX_STOP} are accepted`, 'stop');
    if (stop.some((x) => x.length > MAX_STOP_CHARS)) throw bad(`'stop' strings may have at most ${MAX_STOP_CHARS} characters`, 'stop');
    stop = stop.filter((x) => x.length > 0);
  }
  const stream = bool(b, 'stream', false);
  let includeUsage = false;
  if (has(b, 'stream_options')) {
    const so = b.stream_options;
    if (typeof so !== 'object' || Array.isArray(so)) throw bad("'stream_options' must be an object", 'stream_options');
    const iu = (so as Body).include_usage;
    if (iu !== undefined && iu !== null && typeof iu !== 'boolean')
      throw bad("'stream_options.include_usage' must be a boolean", 'stream_options');
    includeUsage = iu === true;
  }
  const lp = b.logprobs;
  if (lp !== undefined && lp !== null && lp !== false && lp !== 0)
    throw bad("'logprobs' are not supported by rac serve", 'logprobs', 'unsupported');
  if (has(b, 'top_logprobs') && b.top_logprobs !== 0)
    throw bad("'top_logprobs' is not supported by rac serve", 'top_logprobs', 'unsupported');
  if (b.echo === true) throw bad("'echo' is not supported by rac serve", 'echo', 'unsupported');
  if (has(b, 'suffix')) throw bad("'suffix' is not supported by rac serve", 'suffix', 'unsupported');

  // (a loop, not Math.max(...): a spread of millions of arguments overflows the stack)
  let longest = 0;
  let promptTokens = 0;
  for (const p of prompts) {
    if (p.length > longest) longest = p.length;
    promptTokens += p.length;
  }
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
  const { maxRequestTokens } = requestLimits(lim);
  const requestTokens = n * (promptTokens + prompts.length * maxTokens);
  if (requestTokens > maxRequestTokens) {
    throw bad(
      `the request asks for ${requestTokens} tokens (${prompts.length} prompt(s) × n=${n}, prompt tokens + ${maxKey} each); at most ${maxRequestTokens} tokens per request are accepted`,
      'prompt',
      'request_too_large',
    );
  }
  for (const p of prompts) {
    for (const id of p) {
      if (id < 0 || id >= lim.vocabSize) throw bad(`token id ${id} is out of range [0, ${lim.vocabSize})`, 'prompt');
    }
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

/**
 * POST /v1/completions: prompt as a string, strings, token ids, or lists of token ids. The prompt
 * count and each string's length are checked before anything is tokenized; strings are tokenized
 * one at a time with the event loop free in between.
 */
export async function parseCompletion(b: Body, lim: ModelLimits): Promise<JobSpec> {
  const p = b.prompt;
  let prompts: number[][];
  const { maxPrompts } = requestLimits(lim);
  // An array whose first entry is a number is one prompt of token ids; any other array is a list.
  if (Array.isArray(p) && p.length > maxPrompts && typeof p[0] !== 'number') {
    throw bad(`'prompt' has ${p.length} prompts; at most ${maxPrompts} per request are accepted`, 'prompt', 'too_many_prompts');
  }
  const encodeAll = async (strings: string[]): Promise<number[][]> => {
    strings.forEach((s, i) => checkChars(s.length, strings.length === 1 ? "'prompt'" : `prompt ${i}`, 'prompt', lim));
    const out: number[][] = [];
    for (const s of strings) {
      if (out.length > 0) await yieldLoop();
      out.push(lim.tokenizer.encode(s));
    }
    return out;
  };
  if (typeof p === 'string') prompts = await encodeAll([p]);
  else if (isIdArray(p)) prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) prompts = await encodeAll(p as string[]);
  else if (Array.isArray(p) && p.length > 0 && p.every(isIdArray)) prompts = p as number[][];
  else
    throw bad("'prompt' must be a string, an array of strings, an array of token ids, or an array of such arrays (none empty)", 'prompt');
  if (prompts.some((x) => x.length === 0)) throw bad("'prompt' tokenizes to no tokens", 'prompt');
  return common(b, lim, 'completion', prompts);
}

/** POST /v1/chat/completions: messages through the model's chat template (generation prompt added). */
export async function parseChat(b: Body, lim: ModelLimits): Promise<JobSpec> {
  const ms = b.messages;
  if (!Array.isArray(ms) || ms.length === 0) throw bad("'messages' must be a non-empty array", 'messages');
  if (ms.length > MAX_MESSAGES)
    throw bad(`'messages' has ${ms.length} messages; at most ${MAX_MESSAGES} are accepted`, 'messages', 'too_many_messages');
  const messages: ChatMessage[] = ms.map((m, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw bad(`messages[${i}] must be an object`, 'messages');
    const o = m as Body;
    if (typeof o.role !== 'string') throw bad(`messages[${i}].role must be a string`, 'messages');
    let content: string;
    if (typeof o.content === 'string') content = o.content;
    // Only an assistant message may come without content (OpenAI: one that made tool calls).
    else if (o.content === null && o.role !== 'assistant')
      throw bad("Invalid value for 'content': expected a string, got null.", `messages.[${i}].content`, 'invalid_type');
    else if (o.content === undefined && o.role !== 'assistant')
      throw bad(`Missing required parameter: 'messages.[${i}].content'.`, `messages.[${i}].content`, 'missing_required_parameter');
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
  // Content that cannot fit is refused before the template renders it.
  let chars = 0;
  for (const m of messages) chars += m.content.length;
  checkChars(chars, "the messages' content", 'messages', lim);
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
  checkChars(text.length, 'the rendered chat prompt', 'messages', lim);
  const ids = lim.tokenizer.encode(text, { addSpecialTokens: false });
  if (ids.length === 0) throw bad('the chat template rendered an empty prompt', 'messages');
  return common(b, lim, 'chat', [ids]);
}
