/**
 * GGUF writer/reader and the HF → GGUF conversion: exact bytes of a small file, round trips of
 * every metadata type, tensor names/layouts/types per family, the q/k permutation, Llama-3 rope
 * factors, tokenizer metadata, pruned (zero) weights, errors and the CLI.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { f32ToBf16, f32ToF16, bf16ToF32, f16ToF32 } from '../../src/io/dtype.ts';
import { GgufError, GgufType, GgufWriter, kv, readGguf, readGgufTensorF32, type GgufKv } from '../../src/io/gguf.ts';
import { SafetensorsModel } from '../../src/io/safetensors.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { resolveArch } from '../../src/models/arch/index.ts';
import { ropeInvFreq } from '../../src/models/rope.ts';
import { exportGguf, llama3RopeFactors, permuteQk, TOKEN_TYPE } from '../../src/export/gguf.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { rac } from '../helpers/cli.ts';
import { copyCheckpoint, editJson } from '../helpers/corrupt.ts';

function bytes(...parts: (number[] | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p))));
}
const u32 = (v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
};
const u64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};
const str = (s: string) => bytes(u64(Buffer.byteLength(s)), Buffer.from(s, 'utf8'));

describe('GGUF writer and reader', () => {
  it('writes the exact bytes of a small file (header, reversed dims, 32-byte alignment)', () => {
    const file = join(tempDir('gguf'), 'a.gguf');
    const w = GgufWriter.create(
      file,
      [kv.str('general.architecture', 'llama'), kv.u32('x.n', 7)],
      [
        { name: 'a', type: 'F32', shape: [2, 3] },
        { name: 'b', type: 'F16', shape: [1] },
      ],
    );
    assert.ok(!existsSync(file), 'the final name appears only at close()');
    w.writeF32('b', Float32Array.of(1.5));
    w.writeF32('a', Float32Array.of(1, 2, 3, 4, 5, 6));
    w.close();
    let header = bytes(
      Buffer.from('GGUF'),
      u32(3),
      u64(2),
      u64(2),
      str('general.architecture'),
      u32(GgufType.STRING),
      str('llama'),
      str('x.n'),
      u32(GgufType.UINT32),
      u32(7),
      str('a'),
      u32(2),
      u64(3), // ne[0] = innermost = 3
      u64(2),
      u32(0), // F32
      u64(0),
      str('b'),
      u32(1),
      u64(1),
      u32(1), // F16
      u64(32), // 24 bytes of a, aligned up to 32
    );
    header = bytes(header, Buffer.alloc((32 - (header.length % 32)) % 32));
    const a = Buffer.from(Float32Array.of(1, 2, 3, 4, 5, 6).buffer);
    const b = Buffer.from(f32ToF16(Float32Array.of(1.5)).buffer);
    const expected = bytes(header, a, Buffer.alloc(8), b, Buffer.alloc(30));
    assert.deepEqual(readFileSync(file), expected);
    assert.deepEqual(readdirSync(join(file, '..')), ['a.gguf'], 'no temp file left');
  });

  it('round-trips every metadata type, tensor infos and data', () => {
    const file = join(tempDir('gguf'), 'b.gguf');
    const kvs: GgufKv[] = [
      { key: 'u8', type: GgufType.UINT8, value: 255 },
      { key: 'i8', type: GgufType.INT8, value: -128 },
      { key: 'u16', type: GgufType.UINT16, value: 65535 },
      { key: 'i16', type: GgufType.INT16, value: -32768 },
      kv.u32('u32', 4294967295),
      kv.i32('i32', -2147483648),
      kv.f32('f32', 0.1),
      { key: 'f64', type: GgufType.FLOAT64, value: 0.1 },
      kv.bool('t', true),
      kv.bool('f', false),
      kv.str('s', 'héllo ✓ 🙂'),
      { key: 'u64', type: GgufType.UINT64, value: 2n ** 63n + 5n },
      { key: 'i64', type: GgufType.INT64, value: -(2n ** 62n) },
      kv.strs('strs', ['a', '', 'Ġthe', '<|im_end|>']),
      kv.i32s('ints', [1, -2, 3]),
      kv.f32s('floats', [0.5, -1]),
      kv.u32('general.alignment', 64),
    ];
    const w = GgufWriter.create(file, kvs, [
      { name: 't3', type: 'BF16', shape: [2, 3, 5] },
      { name: 't1', type: 'F32', shape: [7] },
    ]);
    const t3 = Float32Array.from({ length: 30 }, (_, i) => i / 7 - 2);
    const t1 = Float32Array.from({ length: 7 }, (_, i) => -i * 1.25);
    w.writeF32('t1', t1);
    w.writeF32('t3', t3);
    w.close();
    const g = readGguf(file);
    assert.equal(g.version, 3);
    assert.equal(g.alignment, 64);
    assert.equal(g.dataStart % 64, 0);
    const m = g.metadata;
    assert.equal(m.get('u8'), 255);
    assert.equal(m.get('i8'), -128);
    assert.equal(m.get('u16'), 65535);
    assert.equal(m.get('i16'), -32768);
    assert.equal(m.get('u32'), 4294967295);
    assert.equal(m.get('i32'), -2147483648);
    assert.equal(m.get('f32'), Math.fround(0.1));
    assert.equal(m.get('f64'), 0.1);
    assert.equal(m.get('t'), true);
    assert.equal(m.get('f'), false);
    assert.equal(m.get('s'), 'héllo ✓ 🙂');
    assert.equal(m.get('u64'), 2n ** 63n + 5n);
    assert.equal(m.get('i64'), -(2n ** 62n));
    assert.deepEqual(m.get('strs'), ['a', '', 'Ġthe', '<|im_end|>']);
    assert.deepEqual(m.get('ints'), [1, -2, 3]);
    assert.deepEqual(m.get('floats'), [0.5, -1]);
    assert.equal(g.itemTypes.get('ints'), GgufType.INT32);
    assert.deepEqual(
      g.tensors.map((t) => [t.name, t.ne, t.shape, t.type, t.offset % 64]),
      [
        ['t3', [5, 3, 2], [2, 3, 5], 'BF16', 0],
        ['t1', [7], [7], 'F32', 0],
      ],
    );
    assert.deepEqual(readGgufTensorF32(g, 't1'), t1);
    assert.deepEqual(readGgufTensorF32(g, 't3'), bf16ToF32(f32ToBf16(t3)));
  });

  it('refuses bad input with errors naming the file', () => {
    const dir = tempDir('gguf');
    const file = join(dir, 'c.gguf');
    assert.throws(() => GgufWriter.create(file, [kv.u32('k', 1), kv.u32('k', 2)], []), /duplicate metadata key "k"/);
    assert.throws(() => GgufWriter.create(file, [kv.u32('k', -1)], []), /does not fit type UINT32/);
    assert.throws(() => GgufWriter.create(file, [], [{ name: 'x', type: 'F32', shape: [0] }]), /positive dimensions/);
    assert.throws(() => GgufWriter.create(file, [], [{ name: 'x'.repeat(64), type: 'F32', shape: [1] }]), /63-byte/);
    const w = GgufWriter.create(
      file,
      [],
      [
        { name: 'x', type: 'F32', shape: [2] },
        { name: 'y', type: 'F32', shape: [2] },
      ],
    );
    assert.throws(() => w.writeF32('x', Float32Array.of(1)), /got 1 values, expected 2/);
    w.writeF32('x', Float32Array.of(1, 2));
    assert.throws(() => w.writeF32('x', Float32Array.of(1, 2)), /written twice/);
    assert.throws(() => w.close(), /1 tensor\(s\) never written: y/);
    assert.deepEqual(readdirSync(dir), [], 'an unfinished file is removed');

    const ok = join(dir, 'ok.gguf');
    const w2 = GgufWriter.create(ok, [kv.str('general.architecture', 'x')], [{ name: 'x', type: 'F32', shape: [4] }]);
    w2.writeF32('x', Float32Array.of(1, 2, 3, 4));
    w2.close();
    const good = readFileSync(ok);
    const bad = (name: string, buf: Buffer, re: RegExp) => {
      const p = join(dir, name);
      writeFileSync(p, buf);
      assert.throws(
        () => readGguf(p),
        (e: unknown) => e instanceof GgufError && re.test(e.message) && e.message.startsWith(p),
        name,
      );
    };
    bad('magic.gguf', bytes(Buffer.from('GGUX'), good.subarray(4)), /not a GGUF file/);
    bad('version.gguf', bytes(good.subarray(0, 4), u32(9), good.subarray(8)), /unsupported GGUF version 9/);
    bad('header.gguf', good.subarray(0, 40), /truncated|runs past/);
    bad('data.gguf', good.subarray(0, good.length - 20), /runs past the end of the file/);
    const huge = Buffer.from(good);
    huge.writeBigUInt64LE(1n << 40n, 24 + 8 + 'general.architecture'.length + 4); // string length of the value
    bad('strlen.gguf', huge, /runs past the end of the file/);
  });
});

describe('q/k permutation and rope factors (llama.cpp converter)', () => {
  it('permute() matches the converter: reshape(h, 2, hd/2, cols).swapaxes(1, 2)', () => {
    // one head, hd = 4: rows [r0 r1 | r2 r3] → [r0 r2 r1 r3]
    assert.deepEqual([...permuteQk(Float32Array.of(0, 1, 2, 3), 4, 1, 1)], [0, 2, 1, 3]);
    const heads = 3;
    const hd = 8;
    const cols = 5;
    const w = Float32Array.from({ length: heads * hd * cols }, (_, i) => i);
    const got = permuteQk(w, heads * hd, cols, heads);
    for (let h = 0; h < heads; h++) {
      for (let a = 0; a < hd / 2; a++) {
        for (let b = 0; b < 2; b++) {
          for (let c = 0; c < cols; c++) {
            // new[h][a][b][c] = old[h][b][a][c]
            assert.equal(got[((h * (hd / 2) + a) * 2 + b) * cols + c], w[((h * 2 + b) * (hd / 2) + a) * cols + c]);
          }
        }
      }
    }
    assert.throws(() => permuteQk(new Float32Array(6), 6, 1, 2), /even size/);
  });

  it('llama3 rope_freqs divide the unscaled frequencies into the scaled ones', () => {
    const raw = {
      model_type: 'llama',
      hidden_size: 256,
      intermediate_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      vocab_size: 8,
      rope_theta: 500000,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    };
    const { config } = resolveArch('config.json', raw);
    const { config: plain } = resolveArch('config.json', { ...raw, rope_scaling: null });
    const f = llama3RopeFactors(config);
    const scaled = ropeInvFreq(config);
    const base = ropeInvFreq(plain);
    assert.equal(f.length, 64);
    assert.equal(f[0], 1);
    assert.equal(f[63], 8);
    assert.ok(
      f.some((x) => x > 1 && x < 8),
      'some frequencies fall in the smooth band',
    );
    for (let i = 0; i < 64; i++) assert.ok(Math.abs(base[i]! / f[i]! / scaled[i]! - 1) < 1e-6, `frequency ${i}`);
  });
});

describe('HF → GGUF export', () => {
  const small = { hidden: 32, heads: 4, kvHeads: 2, layers: 2, intermediate: 48 } as const;

  it('qwen2: names, reversed dims, biases, tied output omitted, hyperparameters and tokenizer metadata', () => {
    const dir = checkpoint({ family: 'qwen2', seed: 3, tied: true, vocabPad: 5, ...small });
    const out = join(tempDir('gguf'), 'q.gguf');
    const r = exportGguf({ model: dir, out });
    assert.equal(r.arch, 'qwen2');
    const g = readGguf(out);
    const names = g.tensors.map((t) => t.name);
    const layer = (i: number) =>
      [
        'attn_norm.weight',
        'ffn_norm.weight',
        'attn_q.weight',
        'attn_q.bias',
        'attn_k.weight',
        'attn_k.bias',
        'attn_v.weight',
        'attn_v.bias',
        'attn_output.weight',
        'ffn_gate.weight',
        'ffn_up.weight',
        'ffn_down.weight',
      ].map((n) => `blk.${i}.${n}`);
    assert.deepEqual(new Set(names), new Set(['token_embd.weight', ...layer(0), ...layer(1), 'output_norm.weight']));
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const V = cfg.vocab_size;
    const info = (n: string) => g.tensors.find((t) => t.name === n)!;
    assert.deepEqual(info('token_embd.weight').ne, [32, V]);
    assert.deepEqual(info('blk.0.attn_k.weight').ne, [32, 16]);
    assert.deepEqual(info('blk.1.ffn_down.weight').ne, [48, 32]);
    assert.deepEqual(info('blk.0.attn_q.bias').ne, [32]);
    assert.ok(g.tensors.every((t) => t.type === 'F32'));

    const m = g.metadata;
    const expectKv: Record<string, unknown> = {
      'general.architecture': 'qwen2',
      'general.alignment': 32,
      'general.file_type': 0,
      'qwen2.context_length': 4096,
      'qwen2.embedding_length': 32,
      'qwen2.feed_forward_length': 48,
      'qwen2.block_count': 2,
      'qwen2.attention.head_count': 4,
      'qwen2.attention.head_count_kv': 2,
      'qwen2.rope.freq_base': 10000,
      'qwen2.attention.layer_norm_rms_epsilon': Math.fround(1e-6),
      'tokenizer.ggml.model': 'gpt2',
      'tokenizer.ggml.pre': 'qwen2',
      'tokenizer.ggml.add_bos_token': false,
    };
    for (const [k, v] of Object.entries(expectKv)) assert.equal(m.get(k), v, k);
    assert.ok(!m.has('qwen2.attention.key_length'), 'head_dim = hidden/heads: no key_length');
    assert.equal(g.types.get('qwen2.rope.freq_base'), GgufType.FLOAT32);

    const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    const tc = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    const tokens = m.get('tokenizer.ggml.tokens') as string[];
    const types = m.get('tokenizer.ggml.token_type') as number[];
    assert.equal(tokens.length, V);
    assert.equal(types.length, V);
    for (const [t, id] of Object.entries(tj.model.vocab as Record<string, number>)) {
      assert.equal(tokens[id], t);
      assert.equal(types[id], TOKEN_TYPE.NORMAL);
    }
    const added = tj.added_tokens as { id: number; content: string; special: boolean }[];
    for (const a of added) {
      assert.equal(tokens[a.id], a.content);
      assert.equal(types[a.id], a.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED, a.content);
    }
    assert.equal(types[added.find((a) => a.content === '<think>')!.id], TOKEN_TYPE.USER_DEFINED);
    const maxTok = Math.max(...added.map((a) => a.id));
    for (let id = maxTok + 1; id < V; id++) {
      assert.equal(tokens[id], `[PAD${id}]`);
      assert.equal(types[id], TOKEN_TYPE.UNUSED);
    }
    const merges = (tj.model.merges as (string | string[])[]).map((x) => (Array.isArray(x) ? x.join(' ') : x));
    assert.deepEqual(m.get('tokenizer.ggml.merges'), merges);
    const id = (s: string) => added.find((a) => a.content === s)!.id;
    assert.equal(m.get('tokenizer.ggml.eos_token_id'), id('<|im_end|>'));
    assert.equal(m.get('tokenizer.ggml.padding_token_id'), id('<|endoftext|>'));
    assert.equal(m.get('tokenizer.ggml.bos_token_id'), cfg.bos_token_id, 'bos from config.json when tokenizer_config has none');
    assert.equal(m.get('tokenizer.chat_template'), tc.chat_template);

    // data: unchanged row-major values
    const st = SafetensorsModel.open(dir);
    try {
      assert.deepEqual(readGgufTensorF32(g, 'token_embd.weight'), st.readF32('model.embed_tokens.weight'));
      assert.deepEqual(readGgufTensorF32(g, 'blk.1.attn_q.weight'), st.readF32('model.layers.1.self_attn.q_proj.weight'));
      assert.deepEqual(readGgufTensorF32(g, 'blk.0.attn_k.bias'), st.readF32('model.layers.0.self_attn.k_proj.bias'));
      assert.deepEqual(readGgufTensorF32(g, 'blk.0.ffn_norm.weight'), st.readF32('model.layers.0.post_attention_layernorm.weight'));
    } finally {
      st.close();
    }
  });

  it('llama: permuted q/k, untouched v, rope_freqs, output.weight; f16 narrows 2-D tensors only', () => {
    const dir = checkpoint({ family: 'llama', seed: 4, llama3Rope: true, ...small });
    const out = join(tempDir('gguf'), 'l.gguf');
    const r = exportGguf({ model: dir, out, dtype: 'f16' });
    assert.equal(r.arch, 'llama');
    const g = readGguf(out);
    const type = (n: string) => g.tensors.find((t) => t.name === n)!.type;
    assert.equal(g.metadata.get('general.file_type'), 1);
    assert.equal(type('token_embd.weight'), 'F16');
    assert.equal(type('output.weight'), 'F16');
    assert.equal(type('blk.0.attn_q.weight'), 'F16');
    assert.equal(type('blk.0.attn_norm.weight'), 'F32');
    assert.equal(type('output_norm.weight'), 'F32');
    assert.equal(type('rope_freqs.weight'), 'F32');
    assert.equal(g.metadata.get('llama.rope.dimension_count'), 8);
    assert.equal(g.metadata.get('llama.vocab_size'), JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).vocab_size);
    const st = SafetensorsModel.open(dir);
    try {
      const f16 = (x: Float32Array) => f16ToF32(f32ToF16(x));
      const q = st.readF32('model.layers.1.self_attn.q_proj.weight');
      const k = st.readF32('model.layers.1.self_attn.k_proj.weight');
      assert.deepEqual(readGgufTensorF32(g, 'blk.1.attn_q.weight'), f16(permuteQk(q, 32, 32, 4)));
      assert.deepEqual(readGgufTensorF32(g, 'blk.1.attn_k.weight'), f16(permuteQk(k, 16, 32, 2)));
      assert.notDeepEqual(readGgufTensorF32(g, 'blk.1.attn_k.weight'), f16(k));
      assert.deepEqual(readGgufTensorF32(g, 'blk.1.attn_v.weight'), f16(st.readF32('model.layers.1.self_attn.v_proj.weight')));
      assert.deepEqual(readGgufTensorF32(g, 'output.weight'), f16(st.readF32('lm_head.weight')));
      assert.deepEqual(readGgufTensorF32(g, 'blk.0.attn_norm.weight'), st.readF32('model.layers.0.input_layernorm.weight'));
    } finally {
      st.close();
    }
    const { config } = resolveArch('config.json', JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
    assert.deepEqual(readGgufTensorF32(g, 'rope_freqs.weight'), llama3RopeFactors(config));
  });

  it('qwen3: q/k norms, key_length/value_length for head_dim ≠ hidden/heads; bf16', () => {
    const dir = checkpoint({ family: 'qwen3', seed: 5, headDim: 12, ...small });
    const out = join(tempDir('gguf'), 'q3.gguf');
    exportGguf({ model: dir, out, dtype: 'bf16' });
    const g = readGguf(out);
    assert.equal(g.metadata.get('general.architecture'), 'qwen3');
    assert.equal(g.metadata.get('general.file_type'), 32);
    assert.equal(g.metadata.get('qwen3.attention.key_length'), 12);
    assert.equal(g.metadata.get('qwen3.attention.value_length'), 12);
    assert.equal(g.metadata.get('qwen3.rope.freq_base'), 1000000);
    const t = (n: string) => g.tensors.find((x) => x.name === n);
    assert.deepEqual(t('blk.0.attn_q_norm.weight')?.ne, [12]);
    assert.deepEqual(t('blk.1.attn_k_norm.weight')?.ne, [12]);
    assert.deepEqual(t('blk.0.attn_q.weight')?.ne, [32, 48]);
    assert.equal(t('blk.0.attn_q.weight')?.type, 'BF16');
    assert.equal(t('blk.0.attn_q.bias'), undefined);
    const st = SafetensorsModel.open(dir);
    try {
      // qwen3 uses NEOX rope in llama.cpp: q is not permuted
      assert.deepEqual(
        readGgufTensorF32(g, 'blk.0.attn_q.weight'),
        bf16ToF32(f32ToBf16(st.readF32('model.layers.0.self_attn.q_proj.weight'))),
      );
    } finally {
      st.close();
    }
  });

  it('mistral exports as llama; a pruned checkpoint keeps its zeros; sliding window warns', () => {
    const src = checkpoint({ family: 'mistral', seed: 6, slidingWindow: 64, ...small });
    const dir = copyCheckpoint(src, 'pruned');
    const st = SafetensorsModel.open(dir);
    const all = st.names().map((name) => ({ name, dtype: 'F32', shape: st.info(name).shape, data: st.readF32(name) }));
    st.close();
    for (const t of all) if (t.shape.length === 2 && t.name.includes('layers')) for (let i = 0; i < t.data.length; i += 2) t.data[i] = 0;
    writeSafetensors(join(dir, 'model.safetensors'), all, { format: 'pt' });
    const warnings: string[] = [];
    const out = join(tempDir('gguf'), 'm.gguf');
    const r = exportGguf({ model: dir, out, warn: (s) => warnings.push(s) });
    assert.equal(r.arch, 'llama');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /sliding_window 64/);
    const g = readGguf(out);
    const down = readGgufTensorF32(g, 'blk.0.ffn_down.weight');
    assert.deepEqual(down, all.find((t) => t.name === 'model.layers.0.mlp.down_proj.weight')!.data);
    assert.equal(down.filter((x) => x === 0).length, down.length / 2);
  });

  it('clear errors; nothing left under the output name', () => {
    const src = checkpoint({ family: 'qwen2', seed: 7, ...small });
    const root = tempDir('gguf');
    const bad = copyCheckpoint(src, 'bad');
    editJson(join(bad, 'tokenizer.json'), (tj) => {
      const pre = (tj as { pre_tokenizer: { pretokenizers: { pattern?: { Regex: string } }[] } }).pre_tokenizer;
      pre.pretokenizers[0]!.pattern!.Regex = '\\s+|\\S+';
    });
    const out = join(root, 'out', 'x.gguf');
    assert.throws(() => exportGguf({ model: bad, out }), /unrecognised pre-tokenizer .*--tokenizer-pre/);
    assert.ok(!existsSync(out));
    exportGguf({ model: bad, out, tokenizerPre: 'qwen2' });
    assert.equal(readGguf(out).metadata.get('tokenizer.ggml.pre'), 'qwen2');

    editJson(join(bad, 'tokenizer.json'), (tj) => {
      (tj as { model: { type: string } }).model.type = 'Unigram';
    });
    assert.throws(() => exportGguf({ model: bad, out: join(root, 'y.gguf') }), /only byte-level BPE tokenizers/);
    rmSync(join(bad, 'tokenizer.json'));
    assert.throws(() => exportGguf({ model: bad, out: join(root, 'y.gguf') }), /tokenizer\.json: missing/);
    mkdirSync(join(root, 'adir.gguf'));
    assert.throws(() => exportGguf({ model: src, out: join(root, 'adir.gguf') }), /exists and is not a file/);
    assert.throws(() => exportGguf({ model: src, out: join(root, 'z.gguf'), dtype: 'q8' as never }), /dtype must be one of f32, f16, bf16/);
    assert.deepEqual(readdirSync(root).sort(), ['adir.gguf', 'out']);
    assert.deepEqual(readdirSync(join(root, 'out')), ['x.gguf']);
  });

  it('rac export-gguf: JSON result, exit 2 on a bad --dtype, exit 1 with one line on a bad model', async () => {
    const src = checkpoint({ family: 'qwen2', seed: 8, ...small });
    const out = join(tempDir('gguf'), 'cli.gguf');
    const run = (...args: string[]) => rac('export-gguf', ...args);
    const ok = await run('--model', src, '--out', out, '--dtype', 'f16', '--json');
    assert.equal(ok.code, 0, ok.stderr);
    const r = JSON.parse(ok.stdout);
    assert.equal(r.out, out);
    assert.equal(r.dtype, 'f16');
    assert.equal(readGguf(out).metadata.get('general.file_type'), 1);
    const usage = await run('--model', src, '--out', out, '--dtype', 'q4');
    assert.equal(usage.code, 2);
    const fail = await run('--model', join(src, 'nope'), '--out', out);
    assert.equal(fail.code, 1);
    assert.equal(fail.stdout, '');
    assert.match(fail.stderr, /^rac: error: .*nope.*\n$/);
  });
});
