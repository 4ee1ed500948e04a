import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_SPECIAL_TOKENS, QWEN_CHAT_TEMPLATE, trainByteLevelBpe, writeTokenizerFiles } from '../../src/io/bpe.ts';
import { RacTokenizer, TokenizerError } from '../../src/io/tokenizer.ts';
import { GenerationConfigError, loadGenerationConfig } from '../../src/io/generation-config.ts';

const CORPUS = [
  'The quick brown fox jumps over the lazy dog.',
  'Reasoning models think step by step before they answer.',
  'Let me compute the sum carefully: first add the units, then carry.',
  '12345+678=13023',
  '999*12=11988',
  '2^10 = 1024, and 3/4 = 0.75.',
  'def solve(n):\n    return sum(range(n + 1))\n',
  'for (let i = 0; i < n; i++) { total += a[i]; }',
  'if x == 0:\n\tprint("zero")\nelse:\n\tprint(x)',
  "It's what they've done, isn't it? We'll see; you'd know.",
];

let root: string;
let dir: string;
let tok: RacTokenizer;

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'rac-tok-'));
  dir = join(root, 'model');
  const corpus = Array.from({ length: 30 }, () => CORPUS).flat();
  const tj = trainByteLevelBpe({ corpus, vocabSize: 600, specialTokens: DEFAULT_SPECIAL_TOKENS });
  writeTokenizerFiles(dir, tj, {
    chatTemplate: QWEN_CHAT_TEMPLATE,
    eosToken: '<|im_end|>',
    padToken: '<|endoftext|>',
    modelMaxLength: 4096,
  });
  tok = await RacTokenizer.load(dir);
});

after(() => rmSync(root, { recursive: true, force: true }));

/** Copies the trained tokenizer into a fresh dir, with tokenizer_config.json edited. */
function variant(name: string, edit: (cfg: Record<string, unknown>) => void): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'tokenizer.json'), readFileSync(join(dir, 'tokenizer.json')));
  const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  edit(cfg);
  writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify(cfg));
  return d;
}

const ROUND_TRIP = [
  'The quick brown fox jumps over the lazy dog.',
  '12345+678=13023',
  'Emoji 😀👍🏽 and CJK 中文字符 and accents: café, naïve, Ærøskøbing, Ελληνικά.',
  '   leading spaces, trailing spaces   ',
  'tabs\tand\t\ttabs\r\nCRLF\n\n\nthree newlines    \n  mixed \t \n',
  '',
  ' ',
  'unknown words: zxqvj wkkkx ʃʒŋ',
];

test('encode/decode round-trips ASCII, unicode, whitespace runs and newlines', () => {
  for (const s of ROUND_TRIP) {
    const ids = tok.encode(s);
    for (const id of ids) assert.ok(Number.isInteger(id) && id >= 0 && id < tok.vocabSize);
    assert.equal(tok.decode(ids), s, JSON.stringify(s));
  }
  // merges are used: common text takes far fewer tokens than bytes
  const s = 'The quick brown fox jumps over the lazy dog.';
  assert.ok(tok.encode(s).length < s.length / 2, `${tok.encode(s).length} tokens`);
});

test('encode adds nothing for a Qwen-style tokenizer; special tokens encode as single ids', () => {
  const imStart = tok.tokenToId('<|im_start|>');
  const imEnd = tok.tokenToId('<|im_end|>');
  assert.ok(imStart !== undefined && imEnd !== undefined);
  const ids = tok.encode('<|im_start|>user\nhi<|im_end|>');
  assert.equal(ids[0], imStart);
  assert.equal(ids[ids.length - 1], imEnd);
  assert.deepEqual(ids.slice(1, -1), tok.encode('user\nhi'));
  assert.deepEqual(tok.encode('hi', { addSpecialTokens: true }), tok.encode('hi', { addSpecialTokens: false }));
  assert.equal(tok.decode(ids), '<|im_start|>user\nhi<|im_end|>');
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'user\nhi');
  const think = tok.tokenToId('<think>')!;
  assert.deepEqual(tok.encode('<think>\n'), [think, ...tok.encode('\n')]);
});

test('vocab, special ids and token fields', () => {
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
  const nModel = Object.keys(tj.model.vocab).length;
  assert.equal(tok.vocabSize, nModel + DEFAULT_SPECIAL_TOKENS.length);
  assert.deepEqual(
    [...tok.specialIds].sort((a, b) => a - b),
    DEFAULT_SPECIAL_TOKENS.map((_, i) => nModel + i).filter((_, i) => !DEFAULT_SPECIAL_TOKENS[i]!.includes('think')),
  );
  // reasoning markers survive skip_special_tokens
  const think = tok.tokenToId('<think>')!;
  assert.equal(tok.decode([think, tok.tokenToId('<|im_end|>')!], { skipSpecialTokens: true }), '<think>');
  assert.equal(tok.eosToken, '<|im_end|>');
  assert.equal(tok.eosTokenId, nModel + 2);
  assert.equal(tok.padToken, '<|endoftext|>');
  assert.equal(tok.padTokenId, nModel);
  assert.equal(tok.bosToken, undefined);
  assert.equal(tok.bosTokenId, undefined);
  assert.equal(tok.idToToken(nModel + 1), '<|im_start|>');
  assert.equal(tok.idToToken(tok.tokenToId('Ġ')!), 'Ġ');
  assert.equal(tok.tokenToId('not-a-token-at-all'), undefined);
  assert.equal(tok.decode([]), '');
});

test('chat template: system + user with generation prompt, and enable_thinking=false', () => {
  const messages = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'What is 2+2?' },
  ];
  const base = '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' + '<|im_start|>user\nWhat is 2+2?<|im_end|>\n';
  assert.equal(tok.applyChatTemplate(messages), base);
  assert.equal(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), base + '<|im_start|>assistant\n');
  assert.equal(
    tok.applyChatTemplate(messages, { addGenerationPrompt: true, extra: { enable_thinking: false } }),
    base + '<|im_start|>assistant\n<think>\n\n</think>\n\n',
  );
  assert.equal(
    tok.applyChatTemplate(messages, { addGenerationPrompt: true, extra: { enable_thinking: true } }),
    base + '<|im_start|>assistant\n',
  );
  assert.equal(
    tok.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true }),
    '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n',
    'no system block is invented',
  );
  // the templated prompt encodes with its specials as single ids
  const ids = tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), { addSpecialTokens: false });
  assert.equal(ids.filter((id) => id === tok.tokenToId('<|im_start|>')).length, 3);
});

test('chat template: HF globals, list form, raise_exception, missing template', async () => {
  const d1 = variant('list-template', (cfg) => {
    cfg.bos_token = '<|endoftext|>';
    cfg.chat_template = [
      { name: 'tool_use', template: 'TOOLS' },
      {
        name: 'default',
        template: '{{ bos_token }}|{{ eos_token }}|{{ pad_token }}|{{ messages[0].content }}|{{ add_generation_prompt }}|{{ custom }}',
      },
    ];
  });
  const t1 = await RacTokenizer.load(d1);
  assert.equal(
    t1.applyChatTemplate([{ role: 'user', content: 'x' }], { addGenerationPrompt: true, extra: { custom: 42 } }),
    '<|endoftext|>|<|im_end|>|<|endoftext|>|x|true|42',
  );

  const d2 = variant('raise', (cfg) => {
    cfg.chat_template = "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}ok";
  });
  const t2 = await RacTokenizer.load(d2);
  assert.equal(t2.applyChatTemplate([{ role: 'user', content: '' }]), 'ok');
  assert.throws(
    () => t2.applyChatTemplate([{ role: 'assistant', content: '' }]),
    (e: unknown) => {
      assert.ok(e instanceof TokenizerError);
      assert.match(e.message, /first must be user/);
      return true;
    },
  );

  const d3 = variant('no-template', (cfg) => delete cfg.chat_template);
  const t3 = await RacTokenizer.load(d3);
  assert.equal(t3.chatTemplate, undefined);
  assert.throws(
    () => t3.applyChatTemplate([{ role: 'user', content: 'x' }]),
    (e: unknown) => {
      assert.ok(e instanceof TokenizerError);
      assert.ok(e.message.includes(join(d3, 'tokenizer_config.json')), e.message);
      assert.match(e.message, /chat_template/);
      return true;
    },
  );

  writeFileSync(join(d3, 'chat_template.jinja'), '{{ messages | length }}');
  assert.equal((await RacTokenizer.load(d3)).applyChatTemplate([{ role: 'user', content: 'x' }]), '1');
});

test('add_bos_token=true prepends BOS only when special tokens are added (LlamaTokenizerFast semantics)', async () => {
  const d = variant('bos', (cfg) => {
    cfg.bos_token = { __type: 'AddedToken', content: '<|endoftext|>' };
    cfg.add_bos_token = true;
  });
  const t = await RacTokenizer.load(d);
  const bos = t.tokenToId('<|endoftext|>')!;
  assert.equal(t.bosTokenId, bos);
  const plain = t.encode('hello', { addSpecialTokens: false });
  assert.deepEqual(t.encode('hello'), [bos, ...plain]);
  assert.deepEqual(t.encode('<|endoftext|>hello'), [bos, ...plain], 'no double BOS');
});

test('a TemplateProcessing post-processor (Llama-3 style) adds BOS by default, not with addSpecialTokens=false', async () => {
  const d = variant('template-processing', (cfg) => {
    cfg.bos_token = '<|endoftext|>';
  });
  const tj = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8'));
  const bos = tok.tokenToId('<|endoftext|>')!;
  tj.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [],
    special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [bos], tokens: ['<|endoftext|>'] } },
  };
  writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(tj));
  const t = await RacTokenizer.load(d);
  const plain = t.encode('hello world', { addSpecialTokens: false });
  assert.deepEqual(plain, tok.encode('hello world'));
  assert.deepEqual(t.encode('hello world'), [bos, ...plain]);
});

test('decodeStream reproduces decode() and holds back split multi-byte characters', () => {
  const text = 'Résumé: 😀👍🏽 中文字符 — done.\n<|im_end|>';
  const ids = tok.encode(text);
  const stream = tok.decodeStream();
  const pieces = ids.map((id) => stream.push(id));
  assert.equal(pieces.join('') + stream.flush(), tok.decode(ids));
  assert.equal(pieces.join(''), text);
  for (const p of pieces) assert.ok(!p.includes('\uFFFD'), JSON.stringify(p));
  assert.ok(pieces.includes(''), 'some byte tokens complete no character on their own');
  assert.deepEqual(stream.ids, ids);

  const skip = tok.decodeStream({ skipSpecialTokens: true });
  assert.equal(ids.map((id) => skip.push(id)).join(''), tok.decode(ids, { skipSpecialTokens: true }));

  // an unfinished character stays held back until flush
  const emoji = tok.encode('😀');
  assert.ok(emoji.length > 1);
  const s2 = tok.decodeStream();
  assert.equal(
    emoji
      .slice(0, -1)
      .map((id) => s2.push(id))
      .join(''),
    '',
  );
  assert.equal(s2.flush(), tok.decode(emoji.slice(0, -1)));
});

test('load errors name the file: missing tokenizer.json, bad JSON, missing tokenizer_config.json', async () => {
  const empty = join(root, 'empty');
  mkdirSync(empty, { recursive: true });
  await assert.rejects(RacTokenizer.load(empty), (e: unknown) => {
    assert.ok(e instanceof TokenizerError);
    assert.ok(e.message.startsWith(`${join(empty, 'tokenizer.json')}: `), e.message);
    return true;
  });

  const bad = join(root, 'bad-json');
  mkdirSync(bad, { recursive: true });
  writeFileSync(join(bad, 'tokenizer.json'), '{"version": "1.0", ');
  await assert.rejects(RacTokenizer.load(bad), (e: unknown) => {
    assert.ok(e instanceof TokenizerError);
    assert.ok(e.message.startsWith(`${join(bad, 'tokenizer.json')}: invalid JSON`), e.message);
    return true;
  });

  const noCfg = join(root, 'no-config');
  mkdirSync(noCfg, { recursive: true });
  writeFileSync(join(noCfg, 'tokenizer.json'), readFileSync(join(dir, 'tokenizer.json')));
  await assert.rejects(RacTokenizer.load(noCfg), (e: unknown) => {
    assert.ok(e instanceof TokenizerError);
    assert.ok(e.message.startsWith(`${join(noCfg, 'tokenizer_config.json')}: `), e.message);
    return true;
  });

  const badCfg = variant('bad-config', () => {});
  writeFileSync(join(badCfg, 'tokenizer_config.json'), 'not json');
  await assert.rejects(
    RacTokenizer.load(badCfg),
    new RegExp(`${join(badCfg, 'tokenizer_config.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: invalid JSON`),
  );
});

test('generation config: int and list eos, sampling fields, fallback to config.json', () => {
  const d = join(root, 'gen');
  mkdirSync(d, { recursive: true });
  writeFileSync(
    join(d, 'generation_config.json'),
    JSON.stringify({
      bos_token_id: 151643,
      eos_token_id: 151643,
      do_sample: true,
      temperature: 0.6,
      top_p: 0.95,
      top_k: 20,
      max_new_tokens: 32768,
    }),
  );
  assert.deepEqual(loadGenerationConfig(d), {
    eosTokenIds: [151643],
    bosTokenId: 151643,
    temperature: 0.6,
    topP: 0.95,
    topK: 20,
    doSample: true,
    maxNewTokens: 32768,
  });

  writeFileSync(join(d, 'generation_config.json'), JSON.stringify({ eos_token_id: [128001, 128008, 128009], pad_token_id: 0 }));
  assert.deepEqual(loadGenerationConfig(d), { eosTokenIds: [128001, 128008, 128009], padTokenId: 0 });

  // ids missing from generation_config.json come from config.json (given, or read from the dir)
  writeFileSync(join(d, 'generation_config.json'), JSON.stringify({ temperature: 0.7 }));
  assert.deepEqual(loadGenerationConfig(d, { eos_token_id: 2, bos_token_id: 1 }), { eosTokenIds: [2], bosTokenId: 1, temperature: 0.7 });
  writeFileSync(join(d, 'config.json'), JSON.stringify({ eos_token_id: [7, 8], bos_token_id: 6 }));
  assert.deepEqual(loadGenerationConfig(d), { eosTokenIds: [7, 8], bosTokenId: 6, temperature: 0.7 });

  const none = join(root, 'gen-none');
  mkdirSync(none, { recursive: true });
  assert.deepEqual(loadGenerationConfig(none), { eosTokenIds: [] });
  assert.deepEqual(loadGenerationConfig(none, { eos_token_id: 5 }), { eosTokenIds: [5] });
});

test('generation config errors name the file', () => {
  const d = join(root, 'gen-bad');
  mkdirSync(d, { recursive: true });
  const path = join(d, 'generation_config.json');
  writeFileSync(path, '{ "eos_token_id": ');
  assert.throws(
    () => loadGenerationConfig(d),
    (e: unknown) => {
      assert.ok(e instanceof GenerationConfigError);
      assert.ok(e.message.startsWith(`${path}: `), e.message);
      return true;
    },
  );
  writeFileSync(path, JSON.stringify({ eos_token_id: 'eos' }));
  assert.throws(
    () => loadGenerationConfig(d),
    (e: unknown) => e instanceof GenerationConfigError && e.message.includes(path) && /eos_token_id/.test(e.message),
  );
  writeFileSync(path, JSON.stringify({ temperature: 'hot' }));
  assert.throws(() => loadGenerationConfig(d), /temperature/);
});
