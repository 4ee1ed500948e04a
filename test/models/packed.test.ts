/**
 * The engine's packed path (src/models/packed.ts): a model quantized by rac (RTN q4_0 / q8_0,
 * compressed-tensors) runs its Linears as MatMulNBits on the packed codes, and its Q8_0 embedding
 * and tied head from int8 codes, against the same model dequantized to f32 at load:
 * - accuracy level 4 (the default: int8 activations per block, as llama.cpp's Q4_0/Q8_0 dot
 *   products): measured max |Δp| ≤ 8.2e-2 and max |Δlogit| ≤ 3.4e-2 × max |logit| (tiny
 *   reasoner q4_0 / q8_0, random qwen2 / llama / qwen3_moe); tolerances PROB_ATOL and LOGIT_RTOL;
 * - accuracy level 1 (f32 arithmetic on the packed codes): within 1e-5 × max |logit|;
 * - loading reads no packed Linear, embedding or head as f32: memory follows the packed size.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { QuantFormat } from '../../src/compress/quant-grids.ts';
import { Engine, type EngineOptions } from '../../src/models/engine.ts';
import { Model } from '../../src/models/model.ts';
import { pruneCheckpoint } from '../../src/prune/prune.ts';
import { checkpoint, SMALL_LLAMA, SMALL_MOE, SMALL_QWEN2, tempDir } from '../helpers/checkpoints.ts';

const PROB_ATOL = 0.15;
const LOGIT_RTOL = 0.06;
const RT = { threads: 1 };

const CASES: [string, () => string][] = [
  ['qwen2 random', () => checkpoint(SMALL_QWEN2)],
  ['llama random (untied head)', () => checkpoint(SMALL_LLAMA)],
  ['qwen3_moe random', () => checkpoint(SMALL_MOE)],
];
const TINY = join(process.cwd(), 'models', 'tiny-reasoner');
if (existsSync(join(TINY, 'config.json'))) CASES.push(['tiny reasoner', () => TINY]);

async function quantized(dir: string, fmt: QuantFormat): Promise<string> {
  const out = join(tempDir('packed'), 'm');
  const src = Model.open(dir);
  try {
    await pruneCheckpoint(
      src,
      null,
      out,
      { method: 'rtn', quant: fmt, target: { kind: 'unstructured', sparsity: 0 }, linears: 'all', batchTokens: 512, runtime: RT },
      'test',
    );
  } finally {
    src.close();
  }
  return out;
}

async function logits(m: Model, prompts: number[][], o: EngineOptions): Promise<Float32Array[]> {
  const e = await Engine.load(m, { ...RT, ...o });
  try {
    return await e.forward(prompts);
  } finally {
    await e.release();
  }
}

function softmaxRow(z: Float32Array, off: number, V: number): Float64Array {
  let mx = -Infinity;
  for (let v = 0; v < V; v++) mx = Math.max(mx, z[off + v]!);
  const p = new Float64Array(V);
  let s = 0;
  for (let v = 0; v < V; v++) s += p[v] = Math.exp(z[off + v]! - mx);
  return p.map((x) => x / s);
}

for (const [label, dirOf] of CASES) {
  test(`${label}: MatMulNBits (q4_0, q8_0) against the dequantized f32 model`, async () => {
    for (const fmt of ['q4_0', 'q8_0'] as const) {
      const m = Model.open(await quantized(dirOf(), fmt));
      try {
        const V = m.config.vocabSize;
        const prompts = [Array.from({ length: 12 }, (_, i) => ((i + 1) * 37) % V), [200 % V, 7, 9]];
        const f32 = await logits(m, prompts, { packedWeights: 'dequantize' });
        const int8 = await logits(m, prompts, {});
        const f32Packed = await logits(m, prompts, { accuracyLevel: 1 });
        let scale = 0;
        let dl = 0;
        let dl1 = 0;
        let dp = 0;
        f32.forEach((x, i) => {
          for (let j = 0; j < x.length; j++) {
            scale = Math.max(scale, Math.abs(x[j]!));
            dl = Math.max(dl, Math.abs(x[j]! - int8[i]![j]!));
            dl1 = Math.max(dl1, Math.abs(x[j]! - f32Packed[i]![j]!));
          }
          for (let r = 0; r < x.length / V; r++) {
            const a = softmaxRow(x, r * V, V);
            const b = softmaxRow(int8[i]!, r * V, V);
            for (let v = 0; v < V; v++) dp = Math.max(dp, Math.abs(a[v]! - b[v]!));
          }
        });
        process.stdout.write(
          `# ${label} ${fmt}: int8 activations max |Δp| ${dp.toExponential(2)}, max |Δlogit| ${(dl / scale).toExponential(2)} of max |logit| ${scale.toFixed(1)}; f32 packed ${(dl1 / scale).toExponential(2)}\n`,
        );
        assert.ok(dl > 0, 'the packed path ran (int8 activations differ from f32)');
        assert.ok(dp < PROB_ATOL, `${fmt}: max |Δp| ${dp}`);
        assert.ok(dl / scale < LOGIT_RTOL, `${fmt}: max |Δlogit| ${dl} of ${scale}`);
        assert.ok(dl1 / scale <= 1e-5, `${fmt}: accuracy level 1, max |Δlogit| ${dl1} of ${scale}`);
      } finally {
        m.close();
      }
    }
  });
}

test('loading the packed model reads no packed Linear, embedding or head as f32', async () => {
  for (const dir of [CASES[0]![1](), CASES[1]![1](), CASES[2]![1]()]) {
    const m = Model.open(await quantized(dir, 'q4_0'));
    const floats: string[] = [];
    const read = m.read.bind(m);
    m.read = (name: string) => {
      floats.push(name);
      return read(name);
    };
    m.embedding = () => {
      throw new Error('the f32 embedding was read');
    };
    try {
      const e = await Engine.load(m, RT);
      await e.forward([[1, 2, 3]]);
      await e.release();
      const packed = floats.filter((n) => m.packedLinear(n) !== null || n === m.spec.embedName || n === m.spec.lmHeadName);
      assert.deepEqual(packed, [], 'read as f32');
      assert.ok(floats.length > 0 && floats.every((n) => /norm|bias|mlp\.gate\.weight$/.test(n)), floats.join(', '));
    } finally {
      m.close();
    }
  }
});

for (const [label, make, tied] of [
  ['tied head: the head session holds the table', CASES[0]![1], true],
  ['untied head: the table is only checked', CASES[1]![1], false],
] as const)
  test(`the Q8_0 embedding is read from its blocks on disk per token (${label}): rows equal the f32 table exactly; a table off its blocks is refused`, async () => {
    const dir = await quantized(make(), 'q4_0');
    const m = Model.open(dir);
    try {
      assert.equal(m.tiedHead, tied);
      assert.ok(m.gridShape(m.spec.embedName), 'the embedding has Q8_0 blocks');
      const e = await Engine.load(m, RT);
      try {
        const ids = [0, 5, m.config.vocabSize - 1, 5];
        const rows = e.embed(ids);
        const table = m.embedding();
        const D = m.config.hiddenSize;
        ids.forEach((id, i) => assert.deepEqual(rows.subarray(i * D, (i + 1) * D), table.subarray(id * D, (id + 1) * D), `row ${id}`));
        assert.throws(() => e.embed([m.config.vocabSize]), /token id \d+ out of range/);
      } finally {
        await e.release();
      }
    } finally {
      m.close();
    }
    // One F32 value nudged off the grid: the loader names the tensor, the element and the blocks file.
    const st = join(dir, 'model.safetensors');
    const bytes = readFileSync(st);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { data_offsets: [number, number] }>;
    const at = 8 + n + header['model.embed_tokens.weight']!.data_offsets[0] + 4 * 7;
    bytes.writeFloatLE(bytes.readFloatLE(at) + 0.5, at);
    writeFileSync(st, bytes);
    const bad = Model.open(dir);
    try {
      await assert.rejects(
        Engine.load(bad, RT),
        /"model\.embed_tokens\.weight" \[0, 7\] is .*, but its Q8_0 blocks in quant_blocks\.safetensors give/,
      );
    } finally {
      bad.close();
    }
  });
