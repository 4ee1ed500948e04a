import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SPECIAL_TOKENS, QWEN_CHAT_TEMPLATE, bytesToUnicode, trainByteLevelBpe, writeTokenizerFiles } from '../../src/io/bpe.ts';

interface BpeModelJson {
  type: string;
  vocab: Record<string, number>;
  merges: [string, string][];
}
interface TokenizerJsonShape {
  added_tokens: { id: number; content: string; special: boolean }[];
  model: BpeModelJson;
  pre_tokenizer: { type: string; pretokenizers: { type: string; pattern?: { Regex: string }; behavior?: string }[] };
}

function corpus(): string[] {
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) {
    lines.push(`The quick brown fox jumps over the lazy dog number ${i}.`);
    lines.push(`${1000 + i * 37}+${i * 11}=${1000 + i * 48}`);
    lines.push(`def add_${i}(a, b):\n    return a + b  # sum`);
  }
  lines.push('Les élèves ont mangé des crêpes. 中文文本测试。 😀 emoji');
  return lines;
}

/** Naive BPE over given words (each a list of byte-level chars): full recount every merge. */
function naiveBpe(words: Map<string, number>, numMerges: number, minFrequency: number): [string, string][] {
  const segs = [...words.entries()].map(([w, f]) => ({ syms: Array.from(w), f }));
  const merges: [string, string][] = [];
  for (let m = 0; m < numMerges; m++) {
    const counts = new Map<string, { a: string; b: string; c: number }>();
    for (const { syms, f } of segs) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = JSON.stringify([syms[i], syms[i + 1]]);
        const e = counts.get(k) ?? { a: syms[i], b: syms[i + 1], c: 0 };
        e.c += f;
        counts.set(k, e);
      }
    }
    let best: { a: string; b: string; c: number } | undefined;
    for (const e of counts.values()) {
      if (!best || e.c > best.c || (e.c === best.c && (e.a < best.a || (e.a === best.a && e.b < best.b)))) {
        best = e;
      }
    }
    if (!best || best.c < minFrequency) break;
    merges.push([best.a, best.b]);
    for (const s of segs) {
      const out: string[] = [];
      for (let i = 0; i < s.syms.length; i++) {
        if (i + 1 < s.syms.length && s.syms[i] === best.a && s.syms[i + 1] === best.b) {
          out.push(best.a + best.b);
          i++;
        } else out.push(s.syms[i]);
      }
      s.syms = out;
    }
  }
  return merges;
}

test('bytesToUnicode matches GPT-2: printable bytes map to themselves, space to Ġ, newline to Ċ', () => {
  const { byteToChar, vocabOrder } = bytesToUnicode();
  assert.equal(byteToChar[0x41], 'A');
  assert.equal(byteToChar[0x20], 'Ġ');
  assert.equal(byteToChar[0x0a], 'Ċ');
  assert.equal(new Set(byteToChar).size, 256);
  assert.equal(vocabOrder[0], 0x21); // '!' is id 0
  assert.equal(vocabOrder.length, 256);
});

test('trainByteLevelBpe: vocab layout (bytes, merges, specials last) and Qwen2 pre-tokenizer', () => {
  const tj = trainByteLevelBpe({
    corpus: corpus(),
    vocabSize: 400,
    specialTokens: DEFAULT_SPECIAL_TOKENS,
  }) as unknown as TokenizerJsonShape;
  const { vocab, merges } = tj.model;
  assert.equal(tj.model.type, 'BPE');
  const { byteToChar, vocabOrder } = bytesToUnicode();
  vocabOrder.forEach((b, i) => assert.equal(vocab[byteToChar[b]], i));
  const nModel = Object.keys(vocab).length;
  assert.ok(nModel > 256, 'some merges were learned');
  assert.ok(nModel <= 400 - DEFAULT_SPECIAL_TOKENS.length);
  // every merge result is in the vocab; new tokens get ids in merge order
  let last = 255;
  for (const [a, b] of merges) {
    const id = vocab[a + b];
    assert.ok(id !== undefined, `merge ${a} ${b} has a vocab entry`);
    if (id > last) {
      assert.equal(id, last + 1, 'a new token takes the next id');
      assert.ok(vocab[a] < id && vocab[b] < id);
      last = id;
    }
  }
  assert.equal(last, nModel - 1);
  // added tokens: consecutive ids after the model vocab, not in model.vocab; special except the
  // reasoning markers <think>/</think> (kept by skip_special_tokens, as in Qwen3)
  assert.deepEqual(
    tj.added_tokens.map((t) => [t.id, t.content, t.special]),
    DEFAULT_SPECIAL_TOKENS.map((c, i) => [nModel + i, c, !c.includes('think')]),
  );
  for (const c of DEFAULT_SPECIAL_TOKENS) assert.equal(vocab[c], undefined);
  const split = tj.pre_tokenizer.pretokenizers[0];
  assert.equal(split.type, 'Split');
  assert.equal(split.behavior, 'Isolated');
  assert.equal(
    split.pattern?.Regex,
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  );
  assert.equal(tj.pre_tokenizer.pretokenizers[1].type, 'ByteLevel');
});

test('trainByteLevelBpe is deterministic', () => {
  const a = JSON.stringify(trainByteLevelBpe({ corpus: corpus(), vocabSize: 512, specialTokens: DEFAULT_SPECIAL_TOKENS }));
  const b = JSON.stringify(trainByteLevelBpe({ corpus: corpus(), vocabSize: 512, specialTokens: DEFAULT_SPECIAL_TOKENS }));
  assert.equal(a, b);
  const shuffled = trainByteLevelBpe({ corpus: corpus().reverse(), vocabSize: 512, specialTokens: DEFAULT_SPECIAL_TOKENS });
  assert.equal(JSON.stringify(shuffled), a, 'corpus order does not matter');
});

test('incremental pair counting learns exactly the merges of a naive full-recount BPE', () => {
  // Each text is a single pre-token (letters with an optional leading space), so the words are known.
  const words = new Map<string, number>([
    ['low', 5],
    ['lower', 2],
    ['newest', 6],
    ['widest', 3],
    [' lowest', 4],
    [' new', 7],
    ['aaaa', 3],
    ['aaab', 2],
  ]);
  const texts: string[] = [];
  for (const [w, f] of words) for (let i = 0; i < f; i++) texts.push(w);
  const tj = trainByteLevelBpe({
    corpus: texts,
    vocabSize: 256 + 30 + 1,
    specialTokens: ['<|endoftext|>'],
    minFrequency: 2,
  }) as unknown as TokenizerJsonShape;
  const byteWords = new Map([...words].map(([w, f]) => [w.replaceAll(' ', 'Ġ'), f]));
  const expected = naiveBpe(byteWords, 30, 2);
  assert.ok(expected.length >= 10);
  assert.deepEqual(tj.model.merges, expected);
});

test('special tokens inside the corpus are not learned as merges', () => {
  const texts = Array.from({ length: 50 }, () => '<|im_start|>user\nhi<|im_end|>');
  const tj = trainByteLevelBpe({ corpus: texts, vocabSize: 300, specialTokens: DEFAULT_SPECIAL_TOKENS }) as unknown as TokenizerJsonShape;
  const learned = Object.entries(tj.model.vocab)
    .filter(([, id]) => id >= 256)
    .map(([t]) => t);
  assert.ok(learned.includes('user'), 'the text around the specials is learned');
  for (const tok of learned) assert.ok(!tok.includes('|') && !tok.includes('<'), `learned ${tok}`);
});

test('trainByteLevelBpe: ~1 MB corpus, vocab 4096 trains in a few seconds', () => {
  // Deterministic pseudo-random text: syllable words, numbers, arithmetic and code-ish lines.
  let seed = 12345;
  const rand = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return (seed >>> 12) % n; // the low bits of an LCG cycle quickly
  };
  const syl = ['ka', 'lo', 'mi', 'ne', 'ru', 'so', 'ti', 'va', 'qu', 'ex', 'th', 'ing', 'ion', 'pre', 'str', 'an', 'de'];
  const word = (): string => Array.from({ length: 1 + rand(4) }, () => syl[rand(syl.length)]).join('');
  const big: string[] = [];
  let n = 0;
  while (n < 1_000_000) {
    const r = rand(3);
    const s =
      r === 0
        ? Array.from({ length: 12 }, word).join(' ') + '.'
        : r === 1
          ? `${rand(100000)}+${rand(1000)}=${rand(101000)}`
          : `    ${word()}_${word()} = ${word()}(${rand(64)}, "${word()}")\n`;
    big.push(s);
    n += s.length;
  }
  const t0 = performance.now();
  const tj = trainByteLevelBpe({ corpus: big, vocabSize: 4096, specialTokens: DEFAULT_SPECIAL_TOKENS }) as unknown as TokenizerJsonShape;
  const ms = performance.now() - t0;
  const nModel = Object.keys(tj.model.vocab).length;
  assert.ok(nModel - 256 > 2000, `learned only ${nModel - 256} merges`);
  assert.ok(ms < 20_000, `took ${ms.toFixed(0)} ms`);
});

test('trainByteLevelBpe rejects a vocab too small for bytes + specials', () => {
  assert.throws(() => trainByteLevelBpe({ corpus: ['x'], vocabSize: 258, specialTokens: DEFAULT_SPECIAL_TOKENS }), /vocabSize/);
});

test('writeTokenizerFiles writes tokenizer.json and a Qwen2Tokenizer tokenizer_config.json', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rac-bpe-'));
  try {
    const tj = trainByteLevelBpe({
      corpus: corpus(),
      vocabSize: 300,
      specialTokens: DEFAULT_SPECIAL_TOKENS,
    }) as unknown as TokenizerJsonShape;
    writeTokenizerFiles(dir, tj, {
      chatTemplate: QWEN_CHAT_TEMPLATE,
      eosToken: '<|im_end|>',
      padToken: '<|endoftext|>',
      modelMaxLength: 2048,
    });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), tj);
    const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal(cfg.tokenizer_class, 'Qwen2Tokenizer');
    assert.equal(cfg.eos_token, '<|im_end|>');
    assert.equal(cfg.pad_token, '<|endoftext|>');
    assert.equal(cfg.bos_token, null);
    assert.equal(cfg.chat_template, QWEN_CHAT_TEMPLATE);
    assert.equal(cfg.model_max_length, 2048);
    assert.equal(cfg.clean_up_tokenization_spaces, false);
    assert.equal(cfg.add_bos_token, false);
    const imStart = tj.added_tokens.find((t) => t.content === '<|im_start|>')!;
    assert.deepEqual(cfg.added_tokens_decoder[String(imStart.id)], {
      content: '<|im_start|>',
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    });
    assert.deepEqual(cfg.additional_special_tokens, ['<|im_start|>']);
    assert.throws(
      () => writeTokenizerFiles(dir, tj, { chatTemplate: '', eosToken: '</s>', padToken: '<|endoftext|>', modelMaxLength: 1 }),
      /eosToken "<\/s>"/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
