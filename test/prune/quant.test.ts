/**
 * Quantized checkpoints end to end without llama.cpp: `pruneCheckpoint` with --quant (GPTQ, joint
 * SparseGPT + quantization, RTN without calibration), the rac.json record and the scales sidecar,
 * and `exportGguf --dtype q4_0|q8_0`: decoding every block of the written GGUF gives the
 * safetensors values bit for bit; an unquantized model exports by llama.cpp's reference RTN.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { rowBytes } from '../../src/compress/ggml-quants.ts';
import { GGUF_LINEAR } from '../../src/compress/quant-schemes.ts';
import type { QuantFormat } from '../../src/compress/quant-grids.ts';
import { readGguf, readGgufTensorF32 } from '../../src/io/gguf.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { Model } from '../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { exportGguf, permuteQk } from '../../src/export/gguf.ts';
import { QUANT_BLOCKS_FILE, type PruneOptions } from '../../src/prune/prune.ts';
import type { PruneSummary } from '../../src/prune/rac-json.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { calibSet, pruneDir, randomSequencesFor, readAll, readSummary } from '../helpers/prune.ts';

const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
/** qwen2, BF16 input (quantized tensors must be widened to F32 to be exact), tied embeddings. */
const QWEN: RandomCheckpointOptions = { family: 'qwen2', seed: 31, hidden: 64, layers: 2, intermediate: 160, dtype: 'BF16', tied: true };
/** llama (q/k rows permuted in GGUF, block scales with them), untied output. */
const LLAMA: RandomCheckpointOptions = { family: 'llama', seed: 32, hidden: 64, layers: 2, intermediate: 128, heads: 4, kvHeads: 2 };

function run(dir: string, out: string, o: Partial<PruneOptions> & Pick<PruneOptions, 'method'>, withCalib = true): Promise<PruneSummary> {
  const calib = withCalib ? calibSet(randomSequencesFor(dir, 16, 30, 80, 5)) : null;
  return pruneDir(dir, calib, out, { target: { kind: 'unstructured', sparsity: 0 }, ...o });
}

/** GGUF name → HF name, and whether the llama q/k permutation applies (heads). */
function ggufTensors(m: Model, arch: string): [string, string, number][] {
  const c = m.config;
  const out: [string, string, number][] = [['token_embd.weight', m.spec.embedName, 0]];
  for (let i = 0; i < c.numLayers; i++) {
    for (const l of m.spec.linears(c)) {
      const heads = arch === 'llama' ? (l.name === 'q_proj' ? c.numHeads : l.name === 'k_proj' ? c.numKvHeads : 0) : 0;
      out.push([`blk.${i}.${GGUF_LINEAR[l.name]}.weight`, m.tensorName(i, l.module), heads]);
    }
  }
  if (!m.tiedHead) out.push(['output.weight', m.spec.lmHeadName, 0]);
  return out;
}

/** Every quantized tensor of the GGUF decodes to the safetensors values, bit for bit. */
function assertGgufEqualsCheckpoint(dir: string, gguf: string, fmt: QuantFormat, arch: string): void {
  const g = readGguf(gguf);
  const m = Model.open(dir);
  try {
    const linType = fmt === 'q4_0' ? 'Q4_0' : 'Q8_0';
    for (const [gname, hf, heads] of ggufTensors(m, arch)) {
      const t = g.tensors.find((x) => x.name === gname)!;
      assert.equal(t.type, gname.startsWith('blk.') ? linType : 'Q8_0', `${gname} type`);
      let want = m.read(hf);
      const [rows, cols] = m.tensors.info(hf).shape as [number, number];
      if (heads) want = permuteQk(want, rows, cols, heads);
      assert.equal(bits(readGgufTensorF32(g, gname)), bits(want), `${gname}: decoded blocks = ${hf}`);
    }
    for (const t of g.tensors) if (t.shape.length === 1) assert.equal(t.type, 'F32', `${t.name} stays F32`);
  } finally {
    m.close();
  }
}

test('GPTQ q4_0 / q8_0: rac.json record, F32 values on the grid, GGUF blocks reproduce them exactly', async () => {
  for (const [opts, arch] of [
    [QWEN, 'qwen2'],
    [LLAMA, 'llama'],
  ] as const) {
    const dir = checkpoint(opts);
    for (const fmt of ['q4_0', 'q8_0'] as const) {
      const out = join(tempDir('gptq'), 'm');
      const s = await run(dir, out, { method: 'gptq', quant: fmt });
      const q = s.quantization!;
      assert.equal(q.format, fmt);
      assert.equal(q.blocks_file, QUANT_BLOCKS_FILE);
      assert.equal(q.file_type, fmt.toUpperCase());
      const m = Model.open(dir);
      const linears = m.config.numLayers * m.spec.linears(m.config).length;
      const tied = m.tiedHead;
      m.close();
      assert.equal(Object.keys(q.tensors).length, linears + (tied ? 1 : 2), 'every Linear + embedding (+ output)');
      assert.equal(q.tensors['model.embed_tokens.weight']!.type, 'Q8_0');
      assert.equal(readSummary(out).quantization!.format, fmt);
      for (const l of s.layers)
        for (const r of Object.values(l.linears))
          assert.ok(r!.quant === fmt.toUpperCase() && r!.output_error! > 0 && r!.output_error! < r!.output_norm!);
      // Quantized tensors are F32 even from a BF16 input; the sidecar holds their GGUF bytes, U8 (rows, row bytes).
      const all = readAll(out);
      const sc = SafetensorsFile.open(join(out, QUANT_BLOCKS_FILE));
      try {
        for (const [name, rec] of Object.entries(q.tensors)) {
          assert.equal(all.get(name)!.dtype, 'F32', name);
          assert.deepEqual(sc.info(name).shape, [rec.rows, rowBytes(rec.type, rec.cols)]);
          assert.equal(sc.info(name).dtype, 'U8');
        }
      } finally {
        sc.close();
      }
      const gguf = join(tempDir('gguf'), 'm.gguf');
      const r = exportGguf({ model: out, out: gguf, dtype: fmt, warn: () => {} });
      assertGgufEqualsCheckpoint(out, gguf, fmt, arch);
      assert.equal(readGguf(gguf).metadata.get('general.file_type'), fmt === 'q4_0' ? 2 : 7);
      // Quantized files are a fraction of the F32 export.
      const f32 = exportGguf({ model: dir, out: join(tempDir('gguf'), 'f.gguf'), dtype: 'f32', warn: () => {} });
      assert.ok(r.bytes < (fmt === 'q4_0' ? 0.3 : 0.4) * f32.bytes, `${fmt}: ${r.bytes} vs F32 ${f32.bytes}`);
      // The other grid cannot be written from these scales.
      assert.throws(
        () => exportGguf({ model: out, out: join(tempDir('gguf'), 'x.gguf'), dtype: fmt === 'q4_0' ? 'q8_0' : 'q4_0', warn: () => {} }),
        /was quantized as q/,
      );
    }
  }
});

test('joint SparseGPT 50% + q4_0: masks survive quantization and export; RTN needs no calibration and equals llama.cpp-style RTN export', async () => {
  const dir = checkpoint(QWEN);
  const out = join(tempDir('joint'), 'm');
  const s = await run(dir, out, { method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 }, quant: 'q4_0' });
  assert.ok(s.quantization!.sparsity_after >= 0.5, `sparsity after quantization ${s.quantization!.sparsity_after}`);
  for (const l of s.layers) for (const r of Object.values(l.linears)) assert.ok(r!.sparsity >= 0.5, `${r!.sparsity}`);
  const gguf = join(tempDir('gguf'), 'j.gguf');
  exportGguf({ model: out, out: gguf, dtype: 'q4_0', warn: () => {} });
  assertGgufEqualsCheckpoint(out, gguf, 'q4_0', 'qwen2');

  // RTN without calibration (no capture, no ORT sessions), on the pruned model: zeros stay zeros.
  const rtn = join(tempDir('rtn'), 'm');
  const pruned = join(tempDir('sgpt'), 'm');
  await run(dir, pruned, { method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 } });
  const sr = await run(pruned, rtn, { method: 'rtn', quant: 'q4_0' }, false);
  assert.equal(sr.calibration.tokens, 0);
  assert.ok(sr.quantization!.sparsity_after >= 0.5);
  const before = readAll(pruned);
  for (const [name, t] of readAll(rtn)) {
    if (!(name in sr.quantization!.tensors) || name.includes('embed')) continue;
    const b = before.get(name)!.data;
    for (let i = 0; i < b.length; i++) if (b[i] === 0) assert.ok(Object.is(t.data[i], 0), `${name}[${i}] zero kept`);
  }
  // Exporting the pruned (unquantized) model as q4_0 quantizes by RTN: the same blocks.
  const a = join(tempDir('gguf'), 'a.gguf');
  const b = join(tempDir('gguf'), 'b.gguf');
  exportGguf({ model: rtn, out: a, dtype: 'q4_0', warn: () => {} });
  exportGguf({ model: pruned, out: b, dtype: 'q4_0', warn: () => {} });
  const ga = readGguf(a);
  const gb = readGguf(b);
  for (const t of ga.tensors) assert.equal(bits(readGgufTensorF32(ga, t.name)), bits(readGgufTensorF32(gb, t.name)), t.name);
  assert.ok(existsSync(join(rtn, QUANT_BLOCKS_FILE)));
});

test('quantization refusals: gptq without a format or with a sparsity target', async () => {
  const dir = checkpoint(QWEN);
  await assert.rejects(run(dir, join(tempDir('x'), 'm'), { method: 'gptq' }), /needs a format/);
  await assert.rejects(
    run(dir, join(tempDir('x'), 'm'), { method: 'gptq', quant: 'q4_0', target: { kind: 'unstructured', sparsity: 0.5 } }),
    /does not prune/,
  );
  await assert.rejects(run(dir, join(tempDir('x'), 'm'), { method: 'gptq', quant: 'q4_0' }, false), /needs a calibration set/);
});

test('recipes: the quantize axis (null | a scheme) per prune entry, bad entries refused', async () => {
  const { loadRecipe } = await import('../../src/study/run.ts');
  const { writeFileSync } = await import('node:fs');
  const d = tempDir('recipe');
  const file = join(d, 'r.json');
  const base = { model: 'm', datasets: { calib: 'c.jsonl', eval: 'e.jsonl' } };
  writeFileSync(
    file,
    JSON.stringify({
      ...base,
      prune: [
        { method: 'sparsegpt', calib: ['rac'], sparsity: 0.5, quantize: [null, 'q4_0'] },
        { method: 'magnitude', sparsity: 0.5 },
      ],
    }),
  );
  const r = loadRecipe(file);
  assert.deepEqual(r.prune[0]!.quantize, [null, 'q4_0']);
  assert.deepEqual(r.prune[1]!.quantize, [null]);
  writeFileSync(file, JSON.stringify({ ...base, prune: [{ method: 'sparsegpt', calib: ['rac'], sparsity: 0.5, quantize: ['q3_x'] }] }));
  assert.throws(() => loadRecipe(file), /prune\[0\]\.quantize: each entry must be null or one of q4_0, .*, got "q3_x"/);
});

test('k-quant schemes: GPTQ q4_k_m and joint 50% + q6_k write blocks that decode to the checkpoint, with the mix’s types', async () => {
  const K256: RandomCheckpointOptions = {
    family: 'llama',
    seed: 33,
    hidden: 256,
    layers: 2,
    intermediate: 256,
    heads: 4,
    kvHeads: 2,
    dtype: 'BF16',
  };
  const dir = checkpoint(K256);
  for (const [o, scheme] of [
    [{ method: 'gptq' }, 'q4_k_m'],
    [{ method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 }, blocksize: 256 }, 'q6_k'],
  ] as const) {
    const out = join(tempDir('kq'), 'm');
    const s = await run(dir, out, { ...o, quant: scheme });
    const q = s.quantization!;
    assert.equal(q.format, scheme);
    if (scheme === 'q4_k_m') {
      // 2 layers: use_more_bits(1, 2) → attn_v and ffn_down of layer 1 in Q6_K; untied output Q6_K, token_embd Q4_K
      assert.deepEqual(q.types, { Q4_K: 13, Q6_K: 3 });
      assert.equal(q.tensors['model.layers.1.mlp.down_proj.weight']!.type, 'Q6_K');
      assert.equal(q.tensors['model.layers.0.mlp.down_proj.weight']!.type, 'Q4_K');
      assert.equal(q.tensors['lm_head.weight']!.type, 'Q6_K');
      assert.ok(q.bits_per_weight > 4.5 && q.bits_per_weight < 6.5625, `${q.bits_per_weight} bits/weight: between Q4_K's and Q6_K's`);
    } else {
      assert.ok(q.sparsity_after >= 0.5, `Q6_K is symmetric: masks survive (${q.sparsity_after})`);
      assert.equal(q.tensors['model.embed_tokens.weight']!.type, 'Q8_0');
    }
    const gguf = join(tempDir('gguf'), 'k.gguf');
    exportGguf({ model: out, out: gguf, dtype: scheme, warn: () => {} });
    const g = readGguf(gguf);
    const m = Model.open(out);
    try {
      for (const [gname, hf, heads] of ggufTensors(m, 'llama')) {
        const t = g.tensors.find((x) => x.name === gname)!;
        assert.equal(t.type, q.tensors[hf]!.type, gname);
        let want = m.read(hf);
        const [rows, cols] = m.tensors.info(hf).shape as [number, number];
        if (heads) want = permuteQk(want, rows, cols, heads);
        assert.equal(bits(readGgufTensorF32(g, gname)), bits(want), `${gname}: decoded blocks = ${hf}`);
      }
    } finally {
      m.close();
    }
    assert.equal(g.metadata.get('general.file_type'), scheme === 'q4_k_m' ? 15 : 18);
  }
  await assert.rejects(
    run(dir, join(tempDir('x'), 'm'), { method: 'gptq', quant: 'q4_k', blocksize: 96 }),
    /--blocksize 96: GPTQ onto Q4_K/,
  );
});
