/**
 * Reading llm-compressor's compressed-tensors checkpoints (src/io/compressed-tensors.ts through
 * Model): directories written by the tests' own writer (test/helpers/ct-writer.ts) — W4A16 group
 * 128 asymmetric with g_idx, W8A16 channel-wise, legacy int8 zero points, an MoE model — read back
 * as their dequantized F32 twin's weights bit for bit, and run to its logits; unsupported schemes
 * and malformed checkpoints are refused with one line naming the scheme or the tensor.
 */
import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { exportGguf } from '../../src/export/gguf.ts';
import { readGguf, readGgufTensorF32 } from '../../src/io/gguf.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { Engine, type EngineOptions } from '../../src/models/engine.ts';
import { Model } from '../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { checkpoint, maxAbsDiff, tempDir } from '../helpers/checkpoints.ts';
import { ctConfig, writeCompressedTensors, type CtScheme } from '../helpers/ct-writer.ts';

const RT = { threads: 1 };
const QWEN: RandomCheckpointOptions = {
  family: 'qwen2',
  seed: 41,
  hidden: 256,
  heads: 4,
  kvHeads: 2,
  intermediate: 384,
  layers: 2,
  tied: true,
};
const MOE: RandomCheckpointOptions = {
  family: 'qwen3_moe',
  seed: 42,
  hidden: 128,
  heads: 4,
  kvHeads: 2,
  layers: 2,
  moe: { experts: 4, topK: 2, expertIntermediate: 128 },
};
const PROMPTS = [
  [3, 17, 42, 8, 99, 5, 61],
  [200, 7, 9, 11],
];
/** Index of the first value whose bits differ, or −1 (never a megabyte-long assertion diff). */
function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}
const assertSameBits = (a: Float32Array, b: Float32Array, what: string) => {
  const i = firstBitDiff(a, b);
  assert.equal(i, -1, `${what}: first difference at ${i}: ${a[i]} vs ${b[i]}`);
};

function pair(opts: RandomCheckpointOptions, s: CtScheme): { ct: string; twin: string } {
  const d = tempDir('ct');
  const ct = join(d, 'ct');
  const twin = join(d, 'twin');
  writeCompressedTensors(checkpoint(opts), ct, twin, s);
  return { ct, twin };
}

async function logits(dir: string, o: EngineOptions = {}): Promise<Float32Array[]> {
  const m = Model.open(dir);
  const e = await Engine.load(m, { ...RT, ...o });
  try {
    return await e.forward(PROMPTS);
  } finally {
    await e.release();
    m.close();
  }
}

const maxOver = (a: Float32Array[], b: Float32Array[]) => Math.max(...a.map((x, i) => maxAbsDiff(x, b[i]!)));
const scaleOf = (a: Float32Array[]) => Math.max(...a.map((x) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));

/** Every Linear of `ct` reads (dequantized) as the twin's weight, bit for bit. */
function assertWeightsEqualTwin(ct: string, twin: string): number {
  const a = Model.open(ct);
  const b = Model.open(twin);
  let packed = 0;
  try {
    assert.ok(a.compressed);
    for (const name of b.tensors.names()) {
      if (a.packedLinear(name)) packed++;
      assertSameBits(a.read(name), b.read(name), name);
    }
    assert.equal(a.parameterCount(), b.parameterCount());
  } finally {
    a.close();
    b.close();
  }
  return packed;
}

for (const [label, opts, scheme] of [
  ['W4A16 group 128, asymmetric (packed zero points), g_idx', QWEN, { bits: 4, groupSize: 128, symmetric: false, actorder: true }],
  ['W4A16 group 128, symmetric, F16 scales', QWEN, { bits: 4, groupSize: 128, symmetric: true, actorder: false, scaleDtype: 'F16' }],
  ['W8A16 channel-wise, symmetric', QWEN, { bits: 8, groupSize: -1, symmetric: true, actorder: false }],
  [
    'W8A16 group 128, asymmetric with int8 zero points (before 0.9.4), g_idx',
    QWEN,
    { bits: 8, groupSize: 128, symmetric: false, actorder: true, zpLayout: 'int8' },
  ],
  ['qwen3_moe W4A16 group 32, asymmetric, every expert packed', MOE, { bits: 4, groupSize: 32, symmetric: false, actorder: false }],
] as [string, RandomCheckpointOptions, CtScheme][]) {
  test(`${label}: reads as its dequantized twin, same logits within 1e-5`, async () => {
    const { ct, twin } = pair(opts, scheme);
    const packed = assertWeightsEqualTwin(ct, twin);
    assert.ok(packed >= 14, `${packed} packed Linears`);
    const want = await logits(twin);
    // Dequantized at load: the twin's f32 graphs on the same weights.
    assert.ok(maxOver(await logits(ct, { packedWeights: 'dequantize' }), want) <= 1e-5);
    // MatMulNBits on the packed codes in f32 arithmetic (accuracy level 1): blocked dot products
    // sum in another order, so within 1e-5 of the logits' scale (max |logit| 5–190 on these models).
    const scale = scaleOf(want);
    const native1 = maxOver(await logits(ct, { accuracyLevel: 1 }), want) / scale;
    assert.ok(native1 <= 1e-5, `MatMulNBits (accuracy 1) vs twin: ${native1} of the logits' scale`);
    // The default: int8 activations (accuracy level 4), within the engine's stated tolerance.
    const native4 = maxOver(await logits(ct), want) / scale;
    process.stdout.write(
      `# ${label}: max |logit| ${scale.toFixed(1)}; max |Δlogit| ÷ that: f32 packed ${native1.toExponential(2)}, int8 activations ${native4.toExponential(2)}\n`,
    );
    assert.ok(native4 < 0.02, `MatMulNBits (accuracy 4) vs twin: ${native4} of the logits' scale`);
  });
}

test('export-gguf of an llm-compressor checkpoint: f32 = the twin, q4_0 re-quantizes with a warning', () => {
  const { ct, twin } = pair(QWEN, { bits: 4, groupSize: 128, symmetric: false, actorder: true });
  const d = tempDir('gguf');
  exportGguf({ model: ct, out: join(d, 'ct.gguf'), dtype: 'f32', warn: () => {} });
  exportGguf({ model: twin, out: join(d, 'twin.gguf'), dtype: 'f32', warn: () => {} });
  const a = readGguf(join(d, 'ct.gguf'));
  const b = readGguf(join(d, 'twin.gguf'));
  for (const t of b.tensors) assertSameBits(readGgufTensorF32(a, t.name), readGgufTensorF32(b, t.name), t.name);
  const warnings: string[] = [];
  exportGguf({ model: ct, out: join(d, 'q.gguf'), dtype: 'q4_0', warn: (s) => warnings.push(s) });
  assert.equal(readGguf(join(d, 'q.gguf')).tensors.find((t) => t.name === 'blk.0.attn_q.weight')!.type, 'Q4_0');
  assert.equal(warnings.filter((w) => /second quantization/.test(w)).length, 1, warnings.join('\n'));
});

// ------------------------------------------------------------------------------------------------
// Refusals: one line, naming the scheme or the tensor

const SYM: CtScheme = { bits: 4, groupSize: 128, symmetric: false, actorder: false };

/** A fresh copy of a valid checkpoint to break. */
function brokenCopy(): string {
  const { ct } = pair(QWEN, SYM);
  const d = join(tempDir('broken'), 'm');
  cpSync(ct, d, { recursive: true });
  return d;
}

function editConfig(dir: string, f: (q: Record<string, unknown>) => void): void {
  const file = join(dir, 'config.json');
  const c = JSON.parse(readFileSync(file, 'utf8'));
  f(c.quantization_config);
  writeFileSync(file, JSON.stringify(c));
}

/** Rewrite model.safetensors with `edit` applied to its tensors. */
function editTensors(dir: string, edit: (t: { name: string; dtype: string; shape: number[]; data: Uint8Array }[]) => void): void {
  const file = join(dir, 'model.safetensors');
  const f = SafetensorsFile.open(file);
  const ts = [...f.tensors.values()].map((t) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    data: new Uint8Array(f.readRaw(t.name)),
  }));
  f.close();
  edit(ts);
  writeSafetensors(file, ts, { format: 'pt' });
}

function refused(dir: string, re: RegExp): void {
  assert.throws(
    () => Model.open(dir).close(),
    (e: Error) => {
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    },
  );
}

const Q = 'model.layers.0.self_attn.q_proj';

test('unsupported schemes are refused naming the scheme', () => {
  const d = brokenCopy();
  const scheme = (w: Record<string, unknown>, a: Record<string, unknown> | null, format = 'pack-quantized') =>
    editConfig(d, (q) => {
      q['format'] = format;
      q['config_groups'] = { group_0: { targets: ['Linear'], weights: w, input_activations: a, output_activations: null, format } };
    });
  const fp8 = { num_bits: 8, type: 'float', strategy: 'channel', symmetric: true, dynamic: false };
  scheme(fp8, { num_bits: 8, type: 'float', strategy: 'token', symmetric: true, dynamic: true }, 'float-quantized');
  refused(d, /group_0 is FP8_DYNAMIC \(float 8-bit weights, channel-wise, float 8-bit dynamic activations\).*W4A16, W8A16/);
  scheme({ num_bits: 4, type: 'float', strategy: 'tensor_group', group_size: 16, symmetric: true }, null, 'nvfp4-pack-quantized');
  refused(d, /group_0 is NVFP4A16/);
  scheme({ num_bits: 4, type: 'float', strategy: 'group', group_size: 32, symmetric: true }, null, 'mxfp4-pack-quantized');
  refused(d, /group_0 is MXFP4A16/);
  scheme(
    { num_bits: 8, type: 'int', strategy: 'channel', symmetric: true },
    { num_bits: 8, type: 'int', strategy: 'token', dynamic: true, symmetric: true },
    'int-quantized',
  );
  refused(d, /group_0 is W8A8 \(int 8-bit weights, channel-wise, int 8-bit dynamic activations\)/);
  scheme({ num_bits: 2, type: 'int', strategy: 'group', group_size: 128, symmetric: true }, null);
  refused(d, /W2A16.*2-bit weights are not supported/);
  editConfig(d, (q) => (q['quant_method'] = 'gptq'));
  refused(d, /quant_method is "gptq"/);
  editConfig(d, (q) => {
    q['quant_method'] = 'compressed-tensors';
    q['format'] = 'turbo-packed';
  });
  refused(d, /format "turbo-packed" is not a compressed-tensors format/);
  editConfig(d, (q) => {
    q['format'] = 'pack-quantized';
    q['config_groups'] = ctConfig(SYM)['config_groups'];
    q['kv_cache_scheme'] = { num_bits: 8, type: 'float' };
  });
  refused(d, /kv_cache_scheme is set/);
});

test('malformed checkpoints are refused with one line naming the tensor', () => {
  const d = brokenCopy();
  editTensors(d, (ts) =>
    ts.splice(
      ts.findIndex((t) => t.name === `${Q}.weight_scale`),
      1,
    ),
  );
  refused(d, new RegExp(`"${Q}.weight_scale" is missing`));

  const e = brokenCopy();
  editTensors(e, (ts) => {
    const t = ts.find((x) => x.name === `${Q}.weight_packed`)!;
    t.shape = [t.shape[0]! / 2, t.shape[1]! * 2];
  });
  refused(e, new RegExp(`"${Q}.weight_packed" is I32 \\[128, 64\\]; a 4-bit \\(256, 256\\) weight packs to I32 \\[256, 32\\]`));

  const f = brokenCopy();
  editConfig(
    f,
    (q) => ((q['config_groups'] as Record<string, { weights: Record<string, unknown> }>)['group_0']!.weights['group_size'] = 96),
  );
  refused(f, new RegExp(`"${Q}.weight_packed": group size 96 .* does not divide its 256 columns`));

  const g = brokenCopy();
  editTensors(g, (ts) => {
    const t = ts.find((x) => x.name === `${Q}.weight_scale`)!;
    new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4)[3] = Number.NaN;
  });
  const m = Model.open(g);
  try {
    assert.throws(() => m.read(`${Q}.weight`), new RegExp(`"${Q}.weight_scale" has a non-finite scale \\(NaN\\) at \\[1, 1\\]`));
  } finally {
    m.close();
  }

  const h = brokenCopy();
  editTensors(h, (ts) =>
    ts.splice(
      ts.findIndex((t) => t.name === `${Q}.weight_zero_point`),
      1,
    ),
  );
  refused(h, new RegExp(`"${Q}.weight_zero_point" is missing`));

  const k = brokenCopy();
  editConfig(k, (q) => (q['ignore'] = [...(q['ignore'] as string[]), Q]));
  refused(k, new RegExp(`"${Q}.weight_packed": no config group of quantization_config quantizes module ${Q}`));
});
