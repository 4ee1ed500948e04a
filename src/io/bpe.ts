/**
 * A byte-level BPE trainer that writes a Hugging Face `tokenizer.json` (Qwen2 layout), plus the
 * `tokenizer_config.json` writer and a Qwen-style chat template. Used to make tiny, self-made
 * checkpoints for tests and benchmarks without touching the Hub.
 *
 * Training (Sennrich et al. 2016, GPT-2 byte-level variant):
 *   1. split each text on the special tokens (they are never learned), pre-tokenize the rest with
 *      the very pre-tokenizer written into the file (Qwen2 regex Split, then ByteLevel) — run by
 *      @huggingface/tokenizers itself, so training and encoding split text identically;
 *   2. count distinct pre-tokens; each is a word of byte symbols (GPT-2 bytes_to_unicode);
 *   3. repeat: merge the most frequent adjacent pair (ties: left token, then right token, in
 *      code-unit order), updating pair counts only in the words that contain it.
 * Vocab ids: 256 byte symbols (bytes_to_unicode order), merges in the order learned, specials last.
 */

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as hfTokenizers from '@huggingface/tokenizers';

// The package's .d.ts files use extensionless relative imports, which NodeNext resolution cannot
// follow (its exports arrive as `any`, and most names not at all), so the surface used is typed here.
interface HfPreTokenizer {
  pre_tokenize_text(text: string): string[];
}
const { SplitPreTokenizer } = hfTokenizers as unknown as {
  SplitPreTokenizer: new (config: Record<string, unknown>) => HfPreTokenizer;
};

/** The pre-tokenizer regex of Qwen2 / Qwen2.5 / Qwen3 / DeepSeek-R1-Distill-Qwen. */
export const QWEN2_PRETOKENIZE_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** Added tokens that are kept when decoding with skip_special_tokens. */
export const NON_SPECIAL_ADDED: ReadonlySet<string> = new Set(['<think>', '</think>']);

export const DEFAULT_SPECIAL_TOKENS: readonly string[] = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<think>', '</think>'];

/**
 * Qwen2.5-style ChatML template. Every message renders as `<|im_start|>{role}\n{content}<|im_end|>\n`
 * (a leading system message included; no default system block is invented). With
 * `add_generation_prompt` it appends `<|im_start|>assistant\n`, followed by an empty think block
 * `<think>\n\n</think>\n\n` when `enable_thinking` is defined and false (as Qwen3 does).
 */
export const QWEN_CHAT_TEMPLATE =
  '{%- for message in messages %}' +
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  '{%- endfor %}' +
  '{%- if add_generation_prompt %}' +
  "{{- '<|im_start|>assistant\\n' }}" +
  '{%- if enable_thinking is defined and enable_thinking is false %}' +
  "{{- '<think>\\n\\n</think>\\n\\n' }}" +
  '{%- endif %}' +
  '{%- endif %}';

/** GPT-2 `bytes_to_unicode`: byte b ↦ a printable character; index = byte, order = vocab order. */
export function bytesToUnicode(): { byteToChar: string[]; vocabOrder: number[] } {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const byteToChar = new Array<string>(256);
  bs.forEach((b, i) => (byteToChar[b] = String.fromCharCode(cs[i])));
  return { byteToChar, vocabOrder: bs };
}

export interface TrainBpeOptions {
  corpus: string[];
  /** Total ids: 256 bytes + merges + special tokens. Training stops early if pairs run out. */
  vocabSize: number;
  specialTokens: readonly string[];
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
}

/** The `pre_tokenizer` block written into tokenizer.json (and used for training). */
export function qwen2PreTokenizerConfig(): Record<string, unknown> {
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: QWEN2_PRETOKENIZE_REGEX }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const PAIR_SHIFT = 2 ** 21; // pair key = a·2²¹ + b, exact in a double for ids < 2³¹

/** Max-heap entry: a pair and its count when pushed (stale entries are re-checked on pop). */
interface HeapEntry {
  count: number;
  a: number;
  b: number;
}

/**
 * Trains a byte-level BPE and returns a complete tokenizer.json object. Deterministic: the same
 * options give the same JSON.
 */
export function trainByteLevelBpe(opts: TrainBpeOptions): Record<string, unknown> {
  const { corpus, vocabSize, specialTokens } = opts;
  const minFrequency = Math.max(1, opts.minFrequency ?? 2);
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specialTokens.length) {
    throw new Error(`vocabSize must be an integer ≥ 256 + ${specialTokens.length} specials, got ${vocabSize}`);
  }
  if (new Set(specialTokens).size !== specialTokens.length) throw new Error('specialTokens has duplicates');
  const targetModelVocab = vocabSize - specialTokens.length;

  // --- 1. pre-tokenize and count words ---
  // The regex Split runs in @huggingface/tokenizers (the same code that encodes later); the
  // ByteLevel step (UTF-8 bytes → bytes_to_unicode chars) is applied once per distinct piece.
  const preTokenizerConfig = qwen2PreTokenizerConfig();
  const splitConfig = (preTokenizerConfig.pretokenizers as Record<string, unknown>[])[0];
  const splitter = new SplitPreTokenizer(splitConfig);
  const specialSplit =
    specialTokens.length > 0
      ? new RegExp(
          [...specialTokens]
            .sort((x, y) => y.length - x.length)
            .map(escapeRegExp)
            .join('|'),
          'u',
        )
      : null;
  const pieceFreq = new Map<string, number>();
  for (const text of corpus) {
    const parts = specialSplit ? text.split(specialSplit) : [text];
    for (const part of parts) {
      if (part.length === 0) continue;
      for (const piece of splitter.pre_tokenize_text(part)) {
        pieceFreq.set(piece, (pieceFreq.get(piece) ?? 0) + 1);
      }
    }
  }

  // --- 2. initial symbols: one per UTF-8 byte ---
  const { byteToChar, vocabOrder } = bytesToUnicode();
  const tokens: string[] = vocabOrder.map((b) => byteToChar[b]); // id → token string
  const tokenId = new Map<string, number>(tokens.map((t, i) => [t, i]));
  const byteToId = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteToId[b] = tokenId.get(byteToChar[b])!;
  const utf8 = new TextEncoder();
  const wordFreq = new Map<string, { ids: number[]; freq: number }>();
  for (const [piece, freq] of pieceFreq) {
    const bytes = utf8.encode(piece);
    let key = '';
    for (const b of bytes) key += byteToChar[b];
    const entry = wordFreq.get(key); // distinct pieces have distinct bytes, but be safe
    if (entry) entry.freq += freq;
    else wordFreq.set(key, { ids: Array.from(bytes, (b) => byteToId[b]), freq });
  }
  const wordKeys = [...wordFreq.keys()].sort(); // fixed order for determinism
  const words: number[][] = wordKeys.map((w) => wordFreq.get(w)!.ids);
  const freqs: number[] = wordKeys.map((w) => wordFreq.get(w)!.freq);

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>(); // superset: may hold words that lost the pair
  const addPairs = (wi: number, sign: 1 | -1, fresh?: Set<number>, newId?: number): void => {
    const w = words[wi];
    const f = freqs[wi] * sign;
    for (let i = 0; i + 1 < w.length; i++) {
      const key = w[i] * PAIR_SHIFT + w[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      if (sign > 0) {
        let s = pairWords.get(key);
        if (!s) pairWords.set(key, (s = new Set()));
        s.add(wi);
        if (fresh && (w[i] === newId || w[i + 1] === newId)) fresh.add(key);
      }
    }
  };
  for (let wi = 0; wi < words.length; wi++) addPairs(wi, 1);

  // --- 3. lazy max-heap over (count desc, left string asc, right string asc) ---
  const better = (x: HeapEntry, y: HeapEntry): boolean => {
    if (x.count !== y.count) return x.count > y.count;
    const xa = tokens[x.a],
      ya = tokens[y.a];
    if (xa !== ya) return xa < ya;
    return tokens[x.b] < tokens[y.b];
  };
  const heap: HeapEntry[] = [];
  const push = (e: HeapEntry): void => {
    heap.push(e);
    let i = heap.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(heap[i], heap[p])) break;
      [heap[i], heap[p]] = [heap[p], heap[i]];
      i = p;
    }
  };
  const pop = (): HeapEntry | undefined => {
    if (heap.length === 0) return undefined;
    const top = heap[0];
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < heap.length && better(heap[l], heap[m])) m = l;
        if (r < heap.length && better(heap[r], heap[m])) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m], heap[i]];
        i = m;
      }
    }
    return top;
  };
  for (const [key, count] of pairCount) {
    if (count > 0) push({ count, a: Math.floor(key / PAIR_SHIFT), b: key % PAIR_SHIFT });
  }

  // Counts of existing pairs only ever fall (a merge creates pairs that involve the new token
  // only), so a popped entry whose count is stale is re-pushed with its current count.
  const merges: [string, string][] = [];
  while (tokens.length < targetModelVocab) {
    const top = pop();
    if (!top) break;
    const key = top.a * PAIR_SHIFT + top.b;
    const current = pairCount.get(key) ?? 0;
    if (current !== top.count) {
      if (current > 0) push({ count: current, a: top.a, b: top.b });
      continue;
    }
    if (current < minFrequency) break;

    const merged = tokens[top.a] + tokens[top.b];
    let newId = tokenId.get(merged);
    if (newId === undefined) {
      newId = tokens.length;
      tokens.push(merged);
      tokenId.set(merged, newId);
    }
    merges.push([tokens[top.a], tokens[top.b]]);

    const fresh = new Set<number>();
    for (const wi of pairWords.get(key) ?? []) {
      const w = words[wi];
      let has = false;
      for (let i = 0; i + 1 < w.length; i++) {
        if (w[i] === top.a && w[i + 1] === top.b) {
          has = true;
          break;
        }
      }
      if (!has) continue;
      addPairs(wi, -1);
      const out: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === top.a && w[i + 1] === top.b) {
          out.push(newId);
          i++;
        } else out.push(w[i]);
      }
      words[wi] = out;
      addPairs(wi, 1, fresh, newId);
    }
    pairWords.delete(key);
    pairCount.delete(key);
    for (const k of [...fresh].sort((x, y) => x - y)) {
      const c = pairCount.get(k) ?? 0;
      if (c > 0) push({ count: c, a: Math.floor(k / PAIR_SHIFT), b: k % PAIR_SHIFT });
    }
  }

  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => (vocab[t] = i));
  const addedTokens = specialTokens.map((content, i) => ({
    id: tokens.length + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    // Reasoning markers are added tokens but not special, as in Qwen3 and R1-Distill:
    // decoding with skip_special_tokens keeps them.
    special: !NON_SPECIAL_ADDED.has(content),
  }));

  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: preTokenizerConfig,
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

export interface WriteTokenizerOptions {
  chatTemplate: string;
  eosToken: string;
  padToken: string;
  bosToken?: string | null;
  modelMaxLength: number;
}

interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

/**
 * Writes `tokenizer.json` and a Qwen2Tokenizer-style `tokenizer_config.json` into `dir`
 * (created if needed). The eos/pad/bos tokens must be added tokens of `tokenizerJson`.
 */
export function writeTokenizerFiles(dir: string, tokenizerJson: object, opts: WriteTokenizerOptions): void {
  const tj = tokenizerJson as { added_tokens?: AddedTokenJson[] };
  const added = tj.added_tokens ?? [];
  const contents = new Set(added.map((t) => t.content));
  const named: [string, string | null | undefined][] = [
    ['eosToken', opts.eosToken],
    ['padToken', opts.padToken],
    ['bosToken', opts.bosToken],
  ];
  for (const [field, tok] of named) {
    if (tok != null && !contents.has(tok)) {
      throw new Error(`writeTokenizerFiles: ${field} ${JSON.stringify(tok)} is not an added token of tokenizer.json`);
    }
  }
  const addedTokensDecoder: Record<string, Omit<AddedTokenJson, 'id'>> = {};
  for (const t of added) {
    addedTokensDecoder[String(t.id)] = {
      content: t.content,
      lstrip: t.lstrip ?? false,
      normalized: t.normalized ?? false,
      rstrip: t.rstrip ?? false,
      single_word: t.single_word ?? false,
      special: t.special ?? false,
    };
  }
  const roles = new Set([opts.eosToken, opts.padToken, opts.bosToken ?? undefined]);
  const config = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: added.filter((t) => t.special && !roles.has(t.content)).map((t) => t.content),
    bos_token: opts.bosToken ?? null,
    chat_template: opts.chatTemplate,
    clean_up_tokenization_spaces: false,
    eos_token: opts.eosToken,
    errors: 'replace',
    model_max_length: opts.modelMaxLength,
    pad_token: opts.padToken,
    split_special_tokens: false,
    tokenizer_class: 'Qwen2Tokenizer',
    unk_token: null,
  };
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson, null, 2) + '\n');
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
}
