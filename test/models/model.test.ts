/**
 * Model.open on good and damaged checkpoints: every problem is one line naming the file and the
 * problem; non-finite weights warn with the tensor's name when read.
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { Model } from '../../src/models/model.ts';
import { loadModel } from '../../src/models/loaded.ts';
import { checkpoint } from '../helpers/checkpoints.ts';
import { copyCheckpoint, dropTensor, editJson, pokeF32, readHeader, setHeaderLength, truncateBy, writeHeader } from '../helpers/corrupt.ts';

const GOOD = { family: 'qwen2', seed: 3 } as const;
const SHARDED = { family: 'llama', seed: 4, shards: 2 } as const;

/** Asserts `fn` throws one line that mentions every given string (file paths, tensor names…) and matches `problem`. */
function assertOneLineError(fn: () => unknown, mentions: string[], problem: RegExp): string {
  let msg: string | undefined;
  try {
    fn();
  } catch (e) {
    msg = (e as Error).message;
  }
  assert.ok(msg !== undefined, 'expected an error');
  assert.ok(!msg.includes('\n'), `not one line: ${JSON.stringify(msg)}`);
  for (const m of mentions) assert.ok(msg.includes(m), `${JSON.stringify(msg)} does not mention ${JSON.stringify(m)}`);
  assert.match(msg, problem);
  return msg;
}

describe('Model.open', () => {
  it('opens a good checkpoint and checks every expected tensor', () => {
    const m = Model.open(checkpoint(GOOD));
    try {
      assert.equal(m.config.modelType, 'qwen2');
      const expected = m.expectedTensors();
      assert.equal(expected.length, m.tensors.names().length);
      for (const t of expected) assert.deepEqual(m.tensors.info(t.name).shape, t.shape, t.name);
      assert.equal(
        m.parameterCount(),
        expected.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0),
      );
      assert.throws(() => m.layerWeights(m.config.numLayers), RangeError);
    } finally {
      m.close();
    }
  });

  it('missing config.json', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'no-config');
    rmSync(join(dir, 'config.json'));
    assertOneLineError(() => Model.open(dir), [join(dir, 'config.json')], /not found/);
  });

  it('a directory that does not exist', () => {
    const dir = join(copyCheckpoint(checkpoint(GOOD), 'nodir'), 'nope');
    assertOneLineError(() => Model.open(dir), [dir], /not a model directory/);
  });

  it('config.json that is not JSON', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'bad-json');
    const file = join(dir, 'config.json');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.slice(0, Math.floor(text.length / 2))); // a half-written file
    assertOneLineError(() => Model.open(dir), [file], /invalid JSON/);
  });

  it('unsupported model_type lists the supported ones', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'gpt2');
    editJson(join(dir, 'config.json'), (j) => {
      j['model_type'] = 'gpt2';
    });
    const msg = assertOneLineError(() => Model.open(dir), [join(dir, 'config.json'), '"gpt2"'], /unsupported model_type/);
    for (const t of ['qwen2', 'llama', 'qwen3', 'mistral']) assert.ok(msg.includes(t), `${msg} lacks ${t}`);
  });

  it('a tensor shape disagreeing with config.json (intermediate_size)', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'shape');
    editJson(join(dir, 'config.json'), (j) => {
      j['intermediate_size'] = (j['intermediate_size'] as number) + 8;
    });
    const msg = assertOneLineError(
      () => Model.open(dir),
      [join(dir, 'model.safetensors'), 'mlp.'],
      /shape \[.*\] but config\.json implies \[.*\]/,
    );
    assert.match(msg, /model\.layers\.0\.mlp\.(gate|up|down)_proj\.weight/);
  });

  it('a missing tensor', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'missing-tensor');
    const name = 'model.layers.1.self_attn.k_proj.weight';
    dropTensor(join(dir, 'model.safetensors'), name);
    assertOneLineError(() => Model.open(dir), [join(dir, 'model.safetensors'), `"${name}"`], /missing tensor .* expected by config\.json/);
  });

  it('a truncated safetensors file', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'truncated');
    const file = join(dir, 'model.safetensors');
    truncateBy(file, 100);
    assertOneLineError(() => Model.open(dir), [file], /past the end of the data section/);
  });

  it('a header length beyond the file', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'header-len');
    const file = join(dir, 'model.safetensors');
    setHeaderLength(file, 10_000_000n);
    assertOneLineError(() => Model.open(dir), [file, '10000000'], /header length .* past the end of the file/);
  });

  it('an unknown dtype in the header', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'dtype');
    const file = join(dir, 'model.safetensors');
    const { text } = readHeader(file);
    const patched = text.replace('"dtype":"F32"', '"dtype":"Q7X"');
    assert.notEqual(patched, text);
    writeHeader(file, patched.trimEnd());
    assertOneLineError(() => Model.open(dir), [file, '"Q7X"'], /unknown dtype/);
  });

  it('overlapping tensor offsets in the header', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'overlap');
    const file = join(dir, 'model.safetensors');
    const header = JSON.parse(readHeader(file).text) as Record<string, { data_offsets: number[] }>;
    const a = 'model.layers.0.input_layernorm.weight';
    const b = 'model.layers.0.post_attention_layernorm.weight';
    header[b]!.data_offsets = [...header[a]!.data_offsets]; // same shape [D], same bytes
    writeHeader(file, JSON.stringify(header));
    assertOneLineError(() => Model.open(dir), [file], /overlaps tensor/);
  });

  it('a known dtype rac cannot use as weights (I32)', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'i32');
    const file = join(dir, 'model.safetensors');
    const { text } = readHeader(file);
    writeHeader(file, text.trimEnd().replaceAll('"dtype":"F32"', '"dtype":"I32"'));
    assertOneLineError(() => Model.open(dir), [file], /dtype I32; rac reads F32, F16 and BF16/);
  });

  it('a shard path that leaves the model directory', () => {
    const dir = copyCheckpoint(checkpoint(SHARDED), 'escape');
    const index = join(dir, 'model.safetensors.index.json');
    // the escaping file exists and is a valid shard: it must be refused for where it is, not what it is
    copyFileSync(join(dir, 'model-00001-of-00002.safetensors'), join(dirname(dir), 'x.safetensors'));
    editJson(index, (j) => {
      const wm = j['weight_map'] as Record<string, string>;
      for (const k of Object.keys(wm)) if (wm[k] === 'model-00001-of-00002.safetensors') wm[k] = '../x.safetensors';
    });
    assertOneLineError(() => Model.open(dir), [index, '../x.safetensors'], /not a plain file name inside the model directory/);
  });

  it('a shard the index names but the directory lacks', () => {
    const dir = copyCheckpoint(checkpoint(SHARDED), 'lost-shard');
    rmSync(join(dir, 'model-00002-of-00002.safetensors'));
    assertOneLineError(
      () => Model.open(dir),
      [join(dir, 'model.safetensors.index.json'), 'model-00002-of-00002.safetensors'],
      /does not exist/,
    );
  });

  it('NaN and Inf in weights warn when read, naming the file and the tensor', () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'nan');
    const file = join(dir, 'model.safetensors');
    const nanName = 'model.layers.1.mlp.down_proj.weight';
    const infName = 'model.layers.1.self_attn.q_proj.bias';
    pokeF32(file, nanName, 17, NaN);
    pokeF32(file, infName, 3, -Infinity);
    const warnings: string[] = [];
    const m = Model.open(dir, { warn: (s) => warnings.push(s) });
    try {
      assert.equal(warnings.length, 0, `open reads headers only: ${warnings.join(' | ')}`);
      m.layerWeights(0);
      assert.equal(warnings.length, 0, `layer 0 is clean: ${warnings.join(' | ')}`);
      const w = m.layerWeights(1);
      assert.ok(Number.isNaN(w.linears.down_proj![17]!), 'the NaN is read back');
      assert.equal(warnings.length, 2, warnings.join(' | '));
      const nan = warnings.find((s) => s.includes(`"${nanName}"`));
      const inf = warnings.find((s) => s.includes(`"${infName}"`));
      assert.ok(nan && inf, warnings.join(' | '));
      for (const s of [nan, inf]) {
        assert.ok(s.includes(file), s);
        assert.ok(!s.includes('\n'), s);
        assert.match(s, /non-finite/);
      }
      assert.match(nan, /NaN.*index 17/);
      assert.match(inf, /-Infinity.*index 3/);
    } finally {
      m.close();
    }
  });

  it('missing tokenizer.json fails loading for generation, naming the file', async () => {
    const dir = copyCheckpoint(checkpoint(GOOD), 'no-tokenizer');
    rmSync(join(dir, 'tokenizer.json'));
    const file = join(dir, 'tokenizer.json');
    await assert.rejects(
      RacTokenizer.load(dir),
      (e: Error) => e.message.includes(file) && /missing/.test(e.message) && !e.message.includes('\n'),
    );
    await assert.rejects(loadModel(dir), (e: Error) => e.message.includes(file));
  });
});
