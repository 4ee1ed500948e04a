/**
 * Quantized checkpoints end to end without llama.cpp: `pruneCheckpoint` with --quant q4_0|q8_0
 * (GPTQ, joint SparseGPT + quantization, RTN without calibration, with or without an importance
 * matrix) writes compressed-tensors pack-quantized Linears (weight_packed, F16 weight_scale per 32
 * weights, weight_shape; quantization_config in config.json), the Q8_0 embedding (and an untied
 * lm_head) as F32 with its GGUF blocks in quant_blocks.safetensors, and the rac.json record
 * (layout compressed-tensors); `exportGguf --dtype q4_0|q8_0` writes every block bit for bit from
 * them: its f16 d is weight_scale's bits and its codes are weight_packed's. The k-quants and mixes
 * keep the gguf-blocks layout (every quantized tensor F32, its blocks in quant_blocks.safetensors).
 * Directories in the earlier layouts — q4_0 / q8_0 as gguf-blocks (rac before compressed-tensors
 * output), every tensor F32 on the grid with quant_scales.safetensors (rac before GGUF blocks) —
 * still load and export the same blocks. An unquantized model exports by llama.cpp's quantizer,
 * the same blocks as rtn; MoE experts export to the stacked tensors on-the-fly quantization writes.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { rowBytes } from '../../src/compress/ggml-quants.ts';
import { GGUF_LINEAR } from '../../src/compress/quant-schemes.ts';
import { QK, type QuantFormat } from '../../src/compress/quant-grids.ts';
import { ggmlTensorBytes, readGguf, readGgufTensorF32, type GgufFile } from '../../src/io/gguf.ts';
import { INDEX_FILE, SafetensorsFile, SafetensorsModel } from '../../src/io/safetensors.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { Model } from '../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { exportGguf, permuteQk } from '../../src/export/gguf.ts';
import { writeImatrix } from '../../src/io/imatrix.ts';
import { computeImatrix } from '../../src/prune/imatrix.ts';
import { QUANT_BLOCKS_FILE, type PruneOptions } from '../../src/prune/prune.ts';
import { QUANT_SCALES_FILE } from '../../src/prune/options.ts';
import type { PruneSummary } from '../../src/prune/rac-json.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { calibSet, pruneDir, randomSequencesFor, readAll, readSummary } from '../helpers/prune.ts';

const RT = { threads: 1 };
const SIDECAR = QUANT_BLOCKS_FILE;
const bits = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
/** qwen2, BF16 input (the embedding must be widened to F32 to be exact on its grid), tied embeddings. */
const QWEN: RandomCheckpointOptions = { family: 'qwen2', seed: 31, hidden: 64, layers: 2, intermediate: 160, dtype: 'BF16', tied: true };
/** llama (q/k rows permuted in GGUF, block scales with them), untied output. */
const LLAMA: RandomCheckpointOptions = { family: 'llama', seed: 32, hidden: 64, layers: 2, intermediate: 128, heads: 4, kvHeads: 2 };
/** qwen3_moe: every expert's Linears packed, the router not. */
const MOE: RandomCheckpointOptions = {
  family: 'qwen3_moe',
  seed: 33,
  hidden: 64,
  layers: 2,
  heads: 4,
  kvHeads: 2,
  moe: { experts: 4, topK: 2, expertIntermediate: 64 },
};

function run(dir: string, out: string, o: Partial<PruneOptions> & Pick<PruneOptions, 'method'>, withCalib = true): Promise<PruneSummary> {
  const calib = withCalib ? calibSet(randomSequencesFor(dir, 16, 30, 80, 5)) : null;
  return pruneDir(dir, calib, out, { target: { kind: 'unstructured', sparsity: 0 }, ...o });
}

const EXPERTS_GGUF: Record<string, string> = { gate_proj: 'ffn_gate_exps', up_proj: 'ffn_up_exps', down_proj: 'ffn_down_exps' };

/** Every quantized GGUF tensor: its HF Linears (experts stacked), their (rows, cols) and the llama q/k permutation's heads. */
function ggufLinears(m: Model, arch: string): { gguf: string; hf: string[]; rows: number; cols: number; heads: number }[] {
  const c = m.config;
  const out: { gguf: string; hf: string[]; rows: number; cols: number; heads: number }[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    for (const l of m.spec.linears(c)) {
      const ex = m.experts(i);
      if (ex && (l.group === 'mlp_in' || l.group === 'mlp_out')) continue;
      const heads = arch === 'llama' ? (l.name === 'q_proj' ? c.numHeads : l.name === 'k_proj' ? c.numKvHeads : 0) : 0;
      out.push({ gguf: `blk.${i}.${GGUF_LINEAR[l.name]}.weight`, hf: [m.tensorName(i, l.module)], rows: l.rows, cols: l.cols, heads });
    }
    const ex = m.experts(i);
    if (ex)
      for (const l of ex.linears)
        out.push({
          gguf: `blk.${i}.${EXPERTS_GGUF[l.name]}.weight`,
          hf: Array.from({ length: ex.count }, (_, j) => m.expertTensorName(i, j, l.module)),
          rows: l.rows,
          cols: l.cols,
          heads: 0,
        });
  }
  return out;
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

/** A GGUF tensor's stored bytes. */
function ggufRaw(g: GgufFile, name: string): Uint8Array {
  const t = g.tensors.find((x) => x.name === name)!;
  const n = ggmlTensorBytes(
    t.type!,
    t.ne[0]!,
    t.ne.reduce((a, b) => a * b, 1),
  );
  return readFileSync(g.file).subarray(g.dataStart + t.offset, g.dataStart + t.offset + n);
}

/**
 * The GGUF blocks the compressed-tensors tensors of `hf` stand for, built here from the stored
 * bytes: d = weight_scale's f16 bits, Q4_0 nibble = code + 8 (ggml order: elements 0–15 low,
 * 16–31 high), Q8_0 int8 = code; code i of a row = bits 4i (8i) of weight_packed's int32 words.
 */
function expectedBlocks(dir: string, hf: string, rows: number, cols: number, fmt: QuantFormat, heads: number): Uint8Array {
  const st = SafetensorsModel.open(dir);
  const m = hf.replace(/\.weight$/, '');
  try {
    const packed = st.readRaw(`${m}.weight_packed`);
    const scale = st.readRaw(`${m}.weight_scale`);
    const bb = fmt === 'q4_0' ? 18 : 34;
    const bits = fmt === 'q4_0' ? 4 : 8;
    const nb = cols / 32;
    const rowWords = (cols * bits) / 32;
    const out = new Uint8Array(rows * nb * bb);
    const perm = (r: number) => {
      if (!heads) return r;
      const hd = rows / heads;
      const h = Math.floor(r / hd);
      const k = r % hd; // destination row within the head: 2i + j ← j·hd/2 + i
      return h * hd + (k % 2) * (hd / 2) + Math.floor(k / 2);
    };
    for (let r = 0; r < rows; r++) {
      const src = perm(r);
      for (let b = 0; b < nb; b++) {
        const p = (r * nb + b) * bb;
        out[p] = scale[(src * nb + b) * 2]!;
        out[p + 1] = scale[(src * nb + b) * 2 + 1]!;
        const code = (i: number) => {
          const e = b * 32 + i;
          const w = packed.readUInt32LE((src * rowWords + Math.floor((e * bits) / 32)) * 4);
          return ((w >>> ((e * bits) % 32)) & ((1 << bits) - 1)) - (1 << (bits - 1));
        };
        for (let i = 0; i < 32; i++) {
          if (fmt === 'q8_0') out[p + 2 + i] = code(i) & 0xff;
          else if (i < 16) out[p + 2 + i] = code(i) + 8;
          else out[p + 2 + i - 16]! |= (code(i) + 8) << 4;
        }
      }
    }
    return out;
  } finally {
    st.close();
  }
}

function assertSameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: ${a.length} vs ${b.length} bytes`);
  const i = a.findIndex((x, k) => x !== b[k]);
  assert.equal(i, -1, `${what}: first differing byte ${i}`);
}

/**
 * The round trip quantize → compressed-tensors → GGUF: every Linear's GGUF blocks are the stored
 * scales and codes, bit for bit; token_embd / output decode to the F32 grid values, the Q8_0 scales.
 */
function assertGgufIsCheckpoint(dir: string, gguf: string, fmt: QuantFormat, arch: string): void {
  const g = readGguf(gguf);
  const m = Model.open(dir);
  try {
    for (const t of ggufLinears(m, arch)) {
      const want = t.hf.map((hf) => expectedBlocks(dir, hf, t.rows, t.cols, fmt, t.heads));
      const all = new Uint8Array(want.reduce((a, b) => a + b.length, 0));
      let off = 0;
      for (const b of want) {
        all.set(b, off);
        off += b.length;
      }
      assert.equal(g.tensors.find((x) => x.name === t.gguf)!.type, fmt === 'q4_0' ? 'Q4_0' : 'Q8_0', t.gguf);
      assertSameBytes(ggufRaw(g, t.gguf), all, `${t.gguf}: blocks = ${t.hf[0]}${t.hf.length > 1 ? ` … (${t.hf.length} experts)` : ''}`);
      // And the blocks decode to what rac reads from the directory.
      let read = new Float32Array(0);
      for (const hf of t.hf) {
        let w = m.read(hf);
        if (t.heads) w = permuteQk(w, t.rows, t.cols, t.heads);
        const both = new Float32Array(read.length + w.length);
        both.set(read);
        both.set(w, read.length);
        read = both;
      }
      assertSameBytes(new Uint8Array(readGgufTensorF32(g, t.gguf).buffer), new Uint8Array(read.buffer), `${t.gguf} decoded`);
    }
    for (const [gname, hf] of [
      ['token_embd.weight', m.spec.embedName],
      ...(m.tiedHead ? [] : [['output.weight', m.spec.lmHeadName]]),
    ] as const) {
      assert.equal(g.tensors.find((x) => x.name === gname)!.type, 'Q8_0', gname);
      assertSameBytes(new Uint8Array(readGgufTensorF32(g, gname).buffer), new Uint8Array(m.read(hf).buffer), gname);
    }
    for (const t of g.tensors) if (t.shape.length === 1) assert.equal(t.type, 'F32', `${t.name} stays F32`);
  } finally {
    m.close();
  }
}

/** What `rac prune --quant` wrote: compressed-tensors tensors and config, the Q8_0 sidecar, an index without it. */
function assertCompressedTensorsLayout(out: string, fmt: QuantFormat, s: PruneSummary): void {
  const q = s.quantization!;
  assert.equal(q.layout, 'compressed-tensors');
  assert.equal(q.blocks_file, SIDECAR);
  assert.equal(q.file_type, fmt.toUpperCase());
  const nbits = fmt === 'q4_0' ? 4 : 8;
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  const qc = config.quantization_config;
  assert.equal(qc.quant_method, 'compressed-tensors');
  assert.equal(qc.format, 'pack-quantized');
  assert.equal(qc.quantization_status, 'compressed');
  assert.deepEqual(qc.config_groups.group_0.targets, ['Linear']);
  assert.deepEqual(
    { ...qc.config_groups.group_0.weights },
    {
      ...qc.config_groups.group_0.weights,
      num_bits: nbits,
      group_size: 32,
      strategy: 'group',
      symmetric: true,
      type: 'int',
      dynamic: false,
      actorder: null,
    },
  );
  assert.ok(qc.ignore.includes('lm_head'));
  const st = SafetensorsModel.open(out);
  const sc = SafetensorsFile.open(join(out, SIDECAR));
  try {
    let linears = 0;
    for (const [name, rec] of Object.entries(q.tensors)) {
      const m = name.replace(/\.weight$/, '');
      if (st.has(`${m}.weight_packed`)) {
        linears++;
        assert.equal(rec.type, fmt.toUpperCase());
        assert.ok(!st.has(name), `${name} is replaced`);
        assert.deepEqual(
          [st.info(`${m}.weight_packed`).dtype, st.info(`${m}.weight_packed`).shape],
          ['I32', [rec.rows, (rec.cols * nbits) / 32]],
        );
        assert.deepEqual([st.info(`${m}.weight_scale`).dtype, st.info(`${m}.weight_scale`).shape], ['F16', [rec.rows, rec.cols / QK]]);
        assert.deepEqual([st.info(`${m}.weight_shape`).dtype, st.info(`${m}.weight_shape`).shape], ['I64', [2]]);
        const shape = st.readRaw(`${m}.weight_shape`);
        assert.deepEqual([Number(shape.readBigInt64LE(0)), Number(shape.readBigInt64LE(8))], [rec.rows, rec.cols]);
        assert.ok(!qc.ignore.includes(m));
      } else {
        // The embedding / an untied lm_head: F32 (the dequantized blocks), its Q8_0 blocks in the sidecar.
        assert.equal(rec.type, 'Q8_0');
        assert.equal(st.info(name).dtype, 'F32', name);
        assert.deepEqual([sc.info(name).dtype, sc.info(name).shape], ['U8', [rec.rows, rowBytes('Q8_0', rec.cols)]]);
      }
    }
    assert.ok(linears > 0);
    assert.equal(sc.tensors.size, Object.keys(q.tensors).length - linears, 'the sidecar holds only the Q8_0 tables');
    assert.equal(q.types[fmt.toUpperCase()], fmt === 'q8_0' ? Object.keys(q.tensors).length : linears);
  } finally {
    sc.close();
    st.close();
  }
  // The index lists the weight shards only: vLLM and transformers never load the sidecar.
  const index = JSON.parse(readFileSync(join(out, INDEX_FILE), 'utf8'));
  assert.deepEqual([...new Set(Object.values(index.weight_map))], ['model.safetensors']);
  assert.ok(!readdirSync(out).includes(QUANT_SCALES_FILE));
  assert.match(readFileSync(join(out, 'README.md'), 'utf8'), /compressed-tensors `pack-quantized` \(W[48]A16, symmetric, group size 32/);
}

test('GPTQ q4_0 / q8_0: compressed-tensors directory, rac.json record; GGUF blocks are its scales and codes, bit for bit', async () => {
  for (const [opts, arch] of [
    [QWEN, 'qwen2'],
    [LLAMA, 'llama'],
    [MOE, 'qwen3moe'],
  ] as const) {
    const dir = checkpoint(opts);
    for (const fmt of ['q4_0', 'q8_0'] as const) {
      if (opts === MOE && fmt === 'q8_0') continue;
      const out = join(tempDir('gptq'), 'm');
      const s = await run(dir, out, { method: 'gptq', quant: fmt });
      const q = s.quantization!;
      assert.equal(q.format, fmt);
      assertCompressedTensorsLayout(out, fmt, s);
      const m = Model.open(dir);
      let linears = m.config.numLayers * m.spec.linears(m.config).length;
      for (let i = 0; i < m.config.numLayers; i++) {
        const ex = m.experts(i);
        if (ex) linears += ex.count * ex.linears.length - 3;
      }
      const tied = m.tiedHead;
      m.close();
      assert.equal(Object.keys(q.tensors).length, linears + (tied ? 1 : 2), 'every Linear + embedding (+ output)');
      assert.equal(q.tensors['model.embed_tokens.weight']!.type, 'Q8_0');
      assert.equal(readSummary(out).quantization!.format, fmt);
      for (const l of s.layers)
        for (const r of Object.values(l.linears))
          assert.ok(r!.quant === fmt.toUpperCase() && r!.output_error! > 0 && r!.output_error! < r!.output_norm!);
      const gguf = join(tempDir('gguf'), 'm.gguf');
      const r = exportGguf({ model: out, out: gguf, dtype: fmt, warn: () => {} });
      assertGgufIsCheckpoint(out, gguf, fmt, arch);
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
  assertGgufIsCheckpoint(out, gguf, 'q4_0', 'qwen2');

  // RTN without calibration (no capture, no ORT sessions), on the pruned model: zeros stay zeros.
  const rtn = join(tempDir('rtn'), 'm');
  const pruned = join(tempDir('sgpt'), 'm');
  await run(dir, pruned, { method: 'sparsegpt', target: { kind: 'unstructured', sparsity: 0.5 } });
  const sr = await run(pruned, rtn, { method: 'rtn', quant: 'q4_0' }, false);
  assert.equal(sr.calibration.tokens, 0);
  assert.ok(sr.quantization!.sparsity_after >= 0.5);
  const before = Model.open(pruned);
  const after = Model.open(rtn);
  try {
    for (const name of Object.keys(sr.quantization!.tensors)) {
      if (name.includes('embed')) continue;
      const b = before.read(name);
      const t = after.read(name);
      for (let i = 0; i < b.length; i++) if (b[i] === 0) assert.ok(Object.is(t[i], 0), `${name}[${i}] zero kept`);
    }
  } finally {
    before.close();
    after.close();
  }
  // Exporting the pruned (unquantized) model as q4_0 quantizes by RTN: the same blocks.
  const a = join(tempDir('gguf'), 'a.gguf');
  const b = join(tempDir('gguf'), 'b.gguf');
  exportGguf({ model: rtn, out: a, dtype: 'q4_0', warn: () => {} });
  exportGguf({ model: pruned, out: b, dtype: 'q4_0', warn: () => {} });
  const ga = readGguf(a);
  const gb = readGguf(b);
  for (const t of ga.tensors) assertSameBytes(ggufRaw(ga, t.name), ggufRaw(gb, t.name), t.name);
  assert.ok(existsSync(join(rtn, SIDECAR)));
});

/**
 * A copy of the compressed-tensors directory `ct` (quantized from `dir`) in an earlier layout: every
 * quantized tensor F32 (the values rac reads), config.json without quantization_config, and either
 * - `gguf-blocks` (rac between GGUF blocks and compressed-tensors output): every tensor's GGUF
 *   blocks in quant_blocks.safetensors, rac.json without `layout`; or
 * - `scales` (rac before GGUF blocks): every tensor's f16 block scales in quant_scales.safetensors,
 *   rac.json's record as that rac wrote it (format / block / tensors[].format / scales_file).
 */
function earlierLayout(dir: string, ct: string, s: PruneSummary, kind: 'gguf-blocks' | 'scales'): string {
  const q = s.quantization!;
  const fmt = q.format as QuantFormat;
  const old = join(tempDir('old'), 'm');
  mkdirSync(old);
  const m = Model.open(ct);
  const src = SafetensorsModel.open(dir);
  const side: { name: string; dtype: string; shape: number[]; data: Uint8Array }[] = [];
  try {
    const sidecar = SafetensorsFile.open(join(ct, SIDECAR));
    for (const [name, rec] of Object.entries(q.tensors)) {
      const blocks = sidecar.tensors.has(name)
        ? new Uint8Array(sidecar.readRaw(name))
        : expectedBlocks(ct, name, rec.rows, rec.cols, rec.type === 'Q4_0' ? 'q4_0' : 'q8_0', 0);
      if (kind === 'gguf-blocks') side.push({ name, dtype: 'U8', shape: [rec.rows, rowBytes(rec.type, rec.cols)], data: blocks });
      else {
        // The f16 d of every block (its first two bytes).
        const bb = rec.type === 'Q4_0' ? 18 : 34;
        const d = new Uint8Array((blocks.length / bb) * 2);
        for (let b = 0; b < blocks.length / bb; b++) d.set(blocks.subarray(b * bb, b * bb + 2), b * 2);
        side.push({ name, dtype: 'F16', shape: [rec.rows, rec.cols / QK], data: d });
      }
    }
    sidecar.close();
    writeSafetensors(
      join(old, 'model.safetensors'),
      src.names().map((name) => ({
        name,
        dtype: name in q.tensors ? 'F32' : src.info(name).dtype,
        shape: src.info(name).shape,
        data: name in q.tensors ? m.read(name) : new Uint8Array(src.readRaw(name)),
      })),
      { format: 'pt' },
    );
  } finally {
    src.close();
    m.close();
  }
  writeSafetensors(join(old, kind === 'gguf-blocks' ? QUANT_BLOCKS_FILE : QUANT_SCALES_FILE), side, { format: 'pt' });
  const summary = JSON.parse(readFileSync(join(ct, 'rac.json'), 'utf8'));
  if (kind === 'gguf-blocks') delete summary.quantization.layout;
  else
    summary.quantization = {
      format: fmt,
      block: QK,
      tensors: Object.fromEntries(
        Object.entries(q.tensors).map(([n, t]) => [n, { format: t.type.toLowerCase(), method: t.method, rows: t.rows, cols: t.cols }]),
      ),
      scales_file: QUANT_SCALES_FILE,
      bits_per_weight: fmt === 'q4_0' ? 4.5 : 8.5,
      skipped: q.skipped,
      sparsity_after: q.sparsity_after,
    };
  writeFileSync(join(old, 'rac.json'), JSON.stringify(summary));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) copyFileSync(join(dir, f), join(old, f));
  copyFileSync(join(dir, 'config.json'), join(old, 'config.json'));
  return old;
}

test('the earlier layouts (q4_0 / q8_0 as F32 with quant_blocks.safetensors, or with quant_scales.safetensors) still load and export the same blocks', async () => {
  const dir = checkpoint(LLAMA);
  for (const fmt of ['q4_0', 'q8_0'] as const) {
    const ct = join(tempDir('ct'), 'm');
    const s = await run(dir, ct, { method: 'gptq', quant: fmt });
    const b = join(tempDir('gguf'), 'ct.gguf');
    exportGguf({ model: ct, out: b, dtype: fmt, warn: () => {} });
    const gb = readGguf(b);
    for (const kind of ['gguf-blocks', 'scales'] as const) {
      const old = earlierLayout(dir, ct, s, kind);
      const o = Model.open(old);
      const c = Model.open(ct);
      try {
        assert.equal(o.compressed, false, 'an F32 model to the engine, as before');
        for (const name of Object.keys(s.quantization!.tensors)) assert.equal(bits(o.read(name)), bits(c.read(name)), `${kind}: ${name}`);
      } finally {
        o.close();
        c.close();
      }
      const a = join(tempDir('gguf'), 'old.gguf');
      exportGguf({ model: old, out: a, dtype: fmt, warn: () => {} });
      const ga = readGguf(a);
      for (const t of gb.tensors) assertSameBytes(ggufRaw(ga, t.name), ggufRaw(gb, t.name), `${kind} ${fmt}: ${t.name}`);
      assert.throws(
        () => exportGguf({ model: old, out: join(tempDir('gguf'), 'x.gguf'), dtype: fmt === 'q4_0' ? 'q8_0' : 'q4_0', warn: () => {} }),
        /was quantized as q/,
      );
    }
  }
});

test('MoE (qwen3_moe): RTN and GPTQ q4_0 / q8_0 with and without an importance matrix pack every expert; the stacked GGUF expert tensors equal on-the-fly quantization', async () => {
  const dir = checkpoint(MOE);
  const src = Model.open(dir);
  const calib = calibSet(randomSequencesFor(dir, 16, 30, 80, 5));
  const imFile = join(tempDir('im'), 'moe.imatrix.gguf');
  try {
    writeImatrix(imFile, (await computeImatrix(src, calib, { batchTokens: 512, runtime: RT })).imatrix);
  } finally {
    src.close();
  }
  const { readImatrix } = await import('../../src/io/imatrix.ts');
  for (const fmt of ['q4_0', 'q8_0'] as const) {
    for (const im of [false, true]) {
      const out = join(tempDir('moe'), 'm');
      const s = await run(
        dir,
        out,
        { method: 'rtn', quant: fmt, ...(im ? { imatrix: readImatrix(imFile), imatrixFile: imFile } : {}) },
        false,
      );
      assertCompressedTensorsLayout(out, fmt, s);
      const q = s.quantization!;
      assert.ok(q.tensors['model.layers.1.mlp.experts.3.down_proj.weight'], 'every expert quantized');
      if (im) assert.ok(q.tensors['model.layers.1.mlp.experts.3.down_proj.weight']!.imatrix, "the expert's slice of the matrix");
      const a = join(tempDir('gguf'), 'a.gguf');
      const b = join(tempDir('gguf'), 'b.gguf');
      exportGguf({ model: out, out: a, dtype: fmt, warn: () => {} });
      exportGguf({ model: dir, out: b, dtype: fmt, ...(im ? { imatrix: imFile } : {}), warn: () => {} });
      assertGgufIsCheckpoint(out, a, fmt, 'qwen3moe');
      const ga = readGguf(a);
      const gb = readGguf(b);
      assert.ok(ga.tensors.some((t) => t.name === 'blk.0.ffn_down_exps.weight'));
      for (const t of ga.tensors) assertSameBytes(ggufRaw(ga, t.name), ggufRaw(gb, t.name), `${fmt}${im ? ' + imatrix' : ''}: ${t.name}`);
    }
  }
  // GPTQ per expert onto q8_0: still packed, still the checkpoint's blocks.
  const out = join(tempDir('moe'), 'g');
  const s = await run(dir, out, { method: 'gptq', quant: 'q8_0' });
  assertCompressedTensorsLayout(out, 'q8_0', s);
  const g = join(tempDir('gguf'), 'g.gguf');
  exportGguf({ model: out, out: g, dtype: 'q8_0', warn: () => {} });
  assertGgufIsCheckpoint(out, g, 'q8_0', 'qwen3moe');
});

test('a sharded source: packed tensors stay in their shards, the index maps them, the blocks equal RTN of the source', async () => {
  const dir = checkpoint({ ...LLAMA, seed: 34, shards: 2 });
  const out = join(tempDir('sharded'), 'm');
  await run(dir, out, { method: 'rtn', quant: 'q8_0' }, false);
  const index = JSON.parse(readFileSync(join(out, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> };
  const src = SafetensorsModel.open(dir);
  const st = SafetensorsModel.open(out);
  try {
    assert.equal(new Set(Object.values(index.weight_map)).size, 2);
    for (const [name, shard] of Object.entries(index.weight_map)) {
      assert.equal(st.shardOf(name), shard, name);
      const source = name.replace(/\.weight_(packed|scale|shape)$/, '.weight');
      assert.equal(shard, src.shardOf(source), `${name} in the shard of ${source}`);
    }
    assert.ok(Object.keys(index.weight_map).some((n) => n.endsWith('.weight_packed')));
  } finally {
    st.close();
    src.close();
  }
  const a = join(tempDir('gguf'), 'a.gguf');
  const b = join(tempDir('gguf'), 'b.gguf');
  exportGguf({ model: out, out: a, dtype: 'q8_0', warn: () => {} });
  exportGguf({ model: dir, out: b, dtype: 'q8_0', warn: () => {} });
  const ga = readGguf(a);
  const gb = readGguf(b);
  for (const t of ga.tensors) assertSameBytes(ggufRaw(ga, t.name), ggufRaw(gb, t.name), t.name);
});

test('a compressed-tensors model is not pruned or quantized again', async () => {
  const out = join(tempDir('ct'), 'm');
  await run(checkpoint(QWEN), out, { method: 'rtn', quant: 'q4_0' }, false);
  await assert.rejects(
    run(out, join(tempDir('x'), 'm'), { method: 'rtn', quant: 'q8_0' }, false),
    /is a compressed-tensors \(pack-quantized\) checkpoint; prune, quantize or remove experts from the unquantized model/,
  );
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
    // k-quants have no compressed-tensors form: every quantized tensor F32, its blocks in the sidecar.
    assert.equal(q.layout, 'gguf-blocks');
    assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config, undefined);
    const written = readAll(out);
    for (const name of Object.keys(q.tensors)) assert.equal(written.get(name)!.dtype, 'F32', name);
    assert.ok(![...written.keys()].some((n) => n.endsWith('.weight_packed')));
    const opened = Model.open(out);
    assert.equal(opened.compressed, false);
    opened.close();
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
