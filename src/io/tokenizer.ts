/**
 * The tokenizer of an HF model directory: `tokenizer.json` + `tokenizer_config.json`, run by
 * @huggingface/tokenizers (encode/decode) and @huggingface/jinja (chat template).
 *
 * HF semantics kept here:
 * - `encode` adds special tokens by default, as `tokenizer.encode` does in transformers: whatever
 *   the post-processor adds (Llama-3's TemplateProcessing adds BOS; Qwen's ByteLevel adds nothing),
 *   and — as LlamaTokenizerFast rebuilds its post-processor from them — BOS/EOS when
 *   tokenizer_config.json sets `add_bos_token`/`add_eos_token` true. Text produced by the chat
 *   template already carries its special tokens: encode it with `{ addSpecialTokens: false }`
 *   (what `apply_chat_template(tokenize=True)` does).
 * - the chat template gets `messages`, `add_generation_prompt`, the special-token strings and
 *   `raise_exception`, plus any `extra` keys (e.g. `enable_thinking`).
 */

import { join } from 'node:path';
import * as hfTokenizers from '@huggingface/tokenizers';
import { bytesToUnicode } from './bpe.ts';
import { excerpt, ModelFileError, readModelJson, readModelText } from './model-file.ts';
import { DEFAULT_TEMPLATE_LIMITS, renderTemplate, TemplateRenderError, type TemplateLimits } from './template-render.ts';
import { RacError } from '../errors.ts';

// The package's .d.ts files use extensionless relative imports, which NodeNext resolution cannot
// follow (`Tokenizer` arrives as `any`), so the surface used here is typed by hand.
interface HfTokenizer {
  encode(text: string, options: { add_special_tokens: boolean }): { ids: number[] };
  decode(ids: number[], options: { skip_special_tokens: boolean }): string;
  token_to_id(token: string): number | undefined;
  id_to_token(id: number): string | undefined;
  get_vocab(withAddedTokens: boolean): Map<string, number>;
}
const { Tokenizer } = hfTokenizers as unknown as {
  Tokenizer: new (tokenizerJson: object, config: object) => HfTokenizer;
};

export class TokenizerError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

export interface ChatMessage {
  role: string;
  content: string;
}

export interface ChatTemplateOptions {
  addGenerationPrompt?: boolean;
  /** Extra template variables, passed through unchanged (e.g. `{ enable_thinking: false }`). */
  extra?: Record<string, unknown>;
}

/** Incremental detokenizer: `push` returns only text that is complete (no dangling UTF-8). */
export interface DecodeStream {
  /** Adds one token id; returns the text it completes ('' while a character is unfinished). */
  push(id: number): string;
  /** Returns the text still held back (possibly ending in U+FFFD); later pushes continue after it. */
  flush(): string;
  /** All ids pushed so far. */
  readonly ids: readonly number[];
}

interface AddedTokenJson {
  id: number;
  content: string;
  special?: boolean;
}

/** Reads a model file through model-file.ts (no symlink escape, regular files only), as a TokenizerError. */
function modelFile<T>(read: () => T): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof ModelFileError) throw new TokenizerError(e.message);
    throw e;
  }
}

function readJsonFile(dir: string, name: string): Record<string, unknown> {
  const path = join(dir, name);
  const parsed = modelFile(() => readModelJson(dir, name));
  if (parsed === undefined) throw new TokenizerError(`${path}: missing ${name}`);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new TokenizerError(`${path}: expected a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** A special token in tokenizer_config.json: a string, an AddedToken object, or null. */
function tokenString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return undefined;
}

/**
 * Incremental decoding for byte-level BPE without per-token library calls: each id maps to its
 * bytes and a streaming UTF-8 decoder holds back unfinished characters. Equals `decode(ids)`.
 */
function byteLevelStream(table: (Uint8Array | null)[], special: Set<number>, skipSpecial: boolean): DecodeStream {
  const ids: number[] = [];
  const dec = new TextDecoder('utf-8', { fatal: false });
  return {
    ids,
    push(id: number): string {
      ids.push(id);
      const b = table[id];
      if (!b || (skipSpecial && special.has(id))) return '';
      return dec.decode(b, { stream: true });
    },
    flush(): string {
      return dec.decode();
    },
  };
}

export class RacTokenizer {
  readonly eosToken: string | undefined;
  readonly bosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly unkToken: string | undefined;
  readonly eosTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly unkTokenId: number | undefined;
  /** Max id + 1 over the model vocab and the added tokens. */
  readonly vocabSize: number;
  /** Ids of special added tokens and of the tokens tokenizer_config.json names as special. */
  readonly specialIds: Set<number>;
  /** The chat template source, or undefined when the model has none. */
  readonly chatTemplate: string | undefined;
  /** The file the chat template comes from (tokenizer_config.json or chat_template.jinja). */
  readonly chatTemplateFile: string | undefined;
  /** Bounds of one chat template render (time, output size, memory): see template-render.ts. */
  templateLimits: TemplateLimits = { ...DEFAULT_TEMPLATE_LIMITS };

  private readonly addBos: boolean;
  private readonly addEos: boolean;

  private constructor(
    readonly dir: string,
    private readonly tok: HfTokenizer,
    readonly tokenizerJson: Record<string, unknown>,
    readonly config: Record<string, unknown>,
    chatTemplate: { source: string; file: string } | undefined,
  ) {
    this.chatTemplate = chatTemplate?.source;
    this.chatTemplateFile = chatTemplate?.file;
    this.eosToken = tokenString(config.eos_token);
    this.bosToken = tokenString(config.bos_token);
    this.padToken = tokenString(config.pad_token);
    this.unkToken = tokenString(config.unk_token);
    this.eosTokenId = this.eosToken === undefined ? undefined : this.tokenToId(this.eosToken);
    this.bosTokenId = this.bosToken === undefined ? undefined : this.tokenToId(this.bosToken);
    this.padTokenId = this.padToken === undefined ? undefined : this.tokenToId(this.padToken);
    this.unkTokenId = this.unkToken === undefined ? undefined : this.tokenToId(this.unkToken);
    this.addBos = config.add_bos_token === true;
    this.addEos = config.add_eos_token === true;

    let maxId = -1;
    for (const id of tok.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    this.specialIds = new Set<number>();
    for (const t of (tokenizerJson.added_tokens ?? []) as AddedTokenJson[]) {
      if (t.special) this.specialIds.add(t.id);
    }
    const named = [config.eos_token, config.bos_token, config.pad_token, config.unk_token];
    const additional = Array.isArray(config.additional_special_tokens) ? config.additional_special_tokens : [];
    for (const v of [...named, ...additional]) {
      const s = tokenString(v);
      const id = s === undefined ? undefined : this.tokenToId(s);
      if (id !== undefined) this.specialIds.add(id);
    }
  }

  /** Loads `tokenizer.json` and `tokenizer_config.json` (both required) from a model directory. */
  static async load(dir: string): Promise<RacTokenizer> {
    const tjPath = join(dir, 'tokenizer.json');
    const cfgPath = join(dir, 'tokenizer_config.json');
    const tokenizerJson = readJsonFile(dir, 'tokenizer.json');
    const config = readJsonFile(dir, 'tokenizer_config.json');
    let tok: HfTokenizer;
    try {
      tok = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new TokenizerError(`${tjPath}: unsupported tokenizer (${excerpt((e as Error).message, 80)})`);
    }
    const chatTemplate = RacTokenizer.findChatTemplate(dir, config, cfgPath);
    return new RacTokenizer(dir, tok, tokenizerJson, config, chatTemplate);
  }

  /** `chat_template` as a string or a `[{name, template}]` list ("default"), else chat_template.jinja. */
  private static findChatTemplate(
    dir: string,
    config: Record<string, unknown>,
    cfgPath: string,
  ): { source: string; file: string } | undefined {
    const ct = config.chat_template;
    if (typeof ct === 'string') return { source: ct, file: cfgPath };
    if (Array.isArray(ct)) {
      const entries = ct as { name?: unknown; template?: unknown }[];
      const pick = entries.find((e) => e?.name === 'default') ?? (entries.length === 1 ? entries[0] : undefined);
      if (!pick || typeof pick.template !== 'string') {
        throw new TokenizerError(`${cfgPath}: chat_template list has no "default" entry`);
      }
      return { source: pick.template, file: cfgPath };
    }
    if (ct !== undefined && ct !== null) {
      throw new TokenizerError(`${cfgPath}: chat_template must be a string or a list of {name, template}`);
    }
    const jinja = modelFile(() => readModelText(dir, 'chat_template.jinja'));
    return jinja === undefined ? undefined : { source: jinja, file: join(dir, 'chat_template.jinja') };
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const add = opts.addSpecialTokens ?? true;
    const ids = this.tok.encode(text, { add_special_tokens: add }).ids;
    if (add) {
      if (this.addBos && this.bosTokenId !== undefined && ids[0] !== this.bosTokenId) ids.unshift(this.bosTokenId);
      if (this.addEos && this.eosTokenId !== undefined && ids[ids.length - 1] !== this.eosTokenId) {
        ids.push(this.eosTokenId);
      }
    }
    return ids;
  }

  /** Ids without a token (e.g. padded embedding rows) decode to ''. */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) throw new TokenizerError(`decode: invalid token id ${id}`);
    }
    return this.tok.decode(ids as number[], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tok.id_to_token(id);
  }

  /** Renders the chat template with HF's globals; returns the prompt text. */
  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === undefined) {
      throw new TokenizerError(`${join(this.dir, 'tokenizer_config.json')}: no chat_template (and no chat_template.jinja beside it)`);
    }
    const vars: Record<string, unknown> = {
      messages: messages.map((m) => ({ ...m })),
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      bos_token: this.bosToken,
      eos_token: this.eosToken,
      pad_token: this.padToken,
      unk_token: this.unkToken,
      ...(opts.extra ?? {}),
    };
    // raise_exception is a global of @huggingface/jinja already (it throws Error(message)), and
    // the library refuses to redeclare it, so template errors are wrapped here instead.
    delete vars.raise_exception;
    // Rendered in a worker with a time, memory and output bound (a template is code).
    const file = this.chatTemplateFile!;
    try {
      return renderTemplate(this.chatTemplate, [vars], this.templateLimits)[0]!;
    } catch (e) {
      if (!(e instanceof TemplateRenderError)) throw e;
      if (e.kind === 'parse') throw new TokenizerError(`${file}: cannot parse chat_template (${e.message})`);
      if (e.kind === 'limit') throw new TokenizerError(`${file}: chat template refused: ${e.message}`);
      throw new TokenizerError(`${file}: chat template: ${e.message}`);
    }
  }

  private maxTokenCharsCache: number | undefined;

  /**
   * Length in characters of the longest token (vocabulary and added tokens): no token covers
   * more text than this, so a prompt needs at least ⌈characters / maxTokenChars⌉ tokens.
   */
  get maxTokenChars(): number {
    if (this.maxTokenCharsCache === undefined) {
      let m = 1;
      for (const t of this.tok.get_vocab(true).keys()) if (t.length > m) m = t.length;
      this.maxTokenCharsCache = m;
    }
    return this.maxTokenCharsCache;
  }

  private byteTableCache: (Uint8Array | null)[] | null | undefined;

  /**
   * Per-id bytes when decoding is plain byte-level BPE (ByteLevel decoder, no normalizer, no
   * clean-up of tokenization spaces), else null: then streaming goes through the library.
   */
  private byteTable(): (Uint8Array | null)[] | null {
    if (this.byteTableCache !== undefined) return this.byteTableCache;
    this.byteTableCache = null;
    const tj = this.tokenizerJson as {
      decoder?: { type?: string };
      model?: { type?: string; vocab?: Record<string, number> };
      added_tokens?: { id: number; content: string }[];
    };
    if (tj.decoder?.type !== 'ByteLevel' || tj.model?.type !== 'BPE' || !tj.model.vocab) return null;
    if (this.config.clean_up_tokenization_spaces === true) return null;
    const { byteToChar } = bytesToUnicode();
    const charToByte = new Map<string, number>();
    byteToChar.forEach((c, b) => charToByte.set(c, b));
    const table: (Uint8Array | null)[] = new Array(this.vocabSize).fill(null);
    const enc = new TextEncoder();
    for (const [tok, id] of Object.entries(tj.model.vocab)) {
      const out = new Uint8Array(tok.length);
      let n = 0;
      for (const ch of tok) {
        const b = charToByte.get(ch);
        if (b === undefined) return null; // not a byte-level vocabulary after all
        out[n++] = b;
      }
      table[id] = out.subarray(0, n);
    }
    for (const t of tj.added_tokens ?? []) table[t.id] = enc.encode(t.content);
    this.byteTableCache = table;
    return table;
  }

  /**
   * Incremental detokenizer (prefix/read offsets, as HF's DecodeStream): the concatenation of
   * every `push` result plus `flush()` equals `decode(ids)`. A window whose text ends in U+FFFD
   * is held back until the next tokens complete the character.
   */
  decodeStream(opts: { skipSpecialTokens?: boolean } = {}): DecodeStream {
    const bytes = this.byteTable();
    if (bytes) return byteLevelStream(bytes, this.specialIds, !!opts.skipSpecialTokens);
    const ids: number[] = [];
    let prefixOffset = 0;
    let readOffset = 0;
    const dec = (slice: number[]): string => this.decode(slice, opts);
    return {
      ids,
      push: (id: number): string => {
        ids.push(id);
        const prefixText = dec(ids.slice(prefixOffset, readOffset));
        const newText = dec(ids.slice(prefixOffset));
        if (newText.length > prefixText.length && !newText.endsWith('\uFFFD')) {
          prefixOffset = readOffset;
          readOffset = ids.length;
          return newText.slice(prefixText.length);
        }
        return '';
      },
      flush: (): string => {
        const prefixText = dec(ids.slice(prefixOffset, readOffset));
        const newText = dec(ids.slice(prefixOffset));
        prefixOffset = readOffset = ids.length;
        return newText.slice(prefixText.length);
      },
    };
  }
}
