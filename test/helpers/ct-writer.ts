/**
 * A small compressed-tensors writer of the tests' own, independent of src/io/compressed-tensors.ts
 * and src/compress/int-packing.ts: it quantizes a random checkpoint's Linears the way
 * llm-compressor's observers and PackedQuantizationCompressor do (min-max scales per group, zero
 * points for asymmetric schemes, activation order through g_idx), packs the codes into int32 words
 * with its own bit loops, and writes the dequantized F32 twin beside it (every Linear's weight =
 * scale·(q − zp), computed in f32). A reader that gets the format right gives the twin's weights.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsModel } from '../../src/io/safetensors.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { resolveArch } from '../../src/models/arch/index.ts';
import { layerExperts, layerLinears } from '../../src/models/spec.ts';

export interface CtScheme {
  bits: 4 | 8;
  /** A group size, or -1 for channel-wise. */
  groupSize: number;
  symmetric: boolean;
  /** Activation order: random column permutation per Linear, stored as weight_g_idx. */
  actorder: boolean;
  /** Zero points packed along the rows in I32 (current format) or stored I8 (rows, groups) (before compressed-tensors 0.9.4). */
  zpLayout?: 'packed' | 'int8';
  scaleDtype?: 'F32' | 'F16';
}

const SIDE = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json'];

/** A deterministic permutation of 0..n−1. */
function permutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** Pack unsigned values v[i] (each < 2^bits) into int32 words, element i at bit i·bits of the stream. */
function packWords(v: number[], bits: number): number[] {
  const words = new Array<number>(Math.ceil((v.length * bits) / 32)).fill(0);
  v.forEach((x, i) => {
    words[Math.floor((i * bits) / 32)] = (words[Math.floor((i * bits) / 32)]! | (x << ((i * bits) % 32))) >>> 0;
  });
  return words;
}

function int32Bytes(words: number[]): Uint8Array {
  const b = new Uint8Array(words.length * 4);
  const v = new DataView(b.buffer);
  words.forEach((w, i) => v.setUint32(i * 4, w >>> 0, true));
  return b;
}

/** One Linear W (rows, cols) quantized: its checkpoint tensors and its dequantized twin. */
function quantizeLinear(module: string, W: Float32Array, rows: number, cols: number, s: CtScheme, seed: number) {
  const gs = s.groupSize === -1 ? cols : s.groupSize;
  const G = cols / gs;
  const qmin = -(1 << (s.bits - 1));
  const qmax = (1 << (s.bits - 1)) - 1;
  // Activation order: group g holds the columns order[g·gs … (g+1)·gs − 1].
  const order = s.actorder ? permutation(cols, seed) : Array.from({ length: cols }, (_, c) => c);
  const gIdx = new Int32Array(cols);
  order.forEach((c, i) => (gIdx[c] = Math.floor(i / gs)));
  const scale = new Float32Array(rows * G);
  const zp = new Int32Array(rows * G);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      let lo = 0;
      let hi = 0;
      for (let i = g * gs; i < (g + 1) * gs; i++) {
        const w = W[r * cols + order[i]!]!;
        lo = Math.min(lo, w);
        hi = Math.max(hi, w);
      }
      let sc: number;
      let z = 0;
      sc = s.symmetric ? Math.max(-lo, hi) / ((qmax - qmin) / 2) : (hi - lo) / (qmax - qmin);
      if (sc === 0) sc = 1e-3;
      if (!s.symmetric) z = Math.min(qmax, Math.max(qmin, Math.round(qmin - lo / sc)));
      scale[r * G + g] = sc;
      zp[r * G + g] = z;
    }
  }
  if (s.scaleDtype === 'F16') {
    // Round to f16 values through a Float16 round trip of our own (sign, exponent, 10-bit mantissa).
    for (let i = 0; i < scale.length; i++) {
      const x = scale[i]!;
      const e = Math.floor(Math.log2(Math.abs(x)));
      const q = 2 ** (e - 10);
      scale[i] = Math.round(x / q) * q;
    }
  }
  const q = new Int32Array(rows * cols);
  const twin = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const g = gIdx[c]!;
      const sc = scale[r * G + g]!;
      const z = zp[r * G + g]!;
      const k = Math.min(qmax, Math.max(qmin, Math.round(W[r * cols + c]! / sc + z)));
      q[r * cols + c] = k;
      twin[r * cols + c] = Math.fround(sc * (k - z)) + 0;
    }
  }
  const off = 1 << (s.bits - 1);
  const packed: number[] = [];
  for (let r = 0; r < rows; r++)
    packed.push(
      ...packWords(
        Array.from(q.subarray(r * cols, (r + 1) * cols), (k) => k + off),
        s.bits,
      ),
    );
  const tensors: { name: string; dtype: string; shape: number[]; data: Float32Array | Uint8Array }[] = [
    { name: `${module}.weight_packed`, dtype: 'I32', shape: [rows, Math.ceil((cols * s.bits) / 32)], data: int32Bytes(packed) },
    {
      name: `${module}.weight_scale`,
      dtype: s.scaleDtype ?? 'F32',
      shape: [rows, G],
      data: scale,
    },
    {
      name: `${module}.weight_shape`,
      dtype: 'I64',
      shape: [2],
      data: new Uint8Array(new BigInt64Array([BigInt(rows), BigInt(cols)]).buffer),
    },
  ];
  if (!s.symmetric) {
    if (s.zpLayout === 'int8')
      tensors.push({ name: `${module}.weight_zero_point`, dtype: 'I8', shape: [rows, G], data: new Uint8Array(Int8Array.from(zp).buffer) });
    else {
      // Packed along dim 0: column g's rows form its own bit stream, words stacked down the rows.
      const zpRows = Math.ceil((rows * s.bits) / 32);
      const words = new Array<number>(zpRows * G).fill(0);
      for (let g = 0; g < G; g++) {
        const col = packWords(
          Array.from({ length: rows }, (_, r) => zp[r * G + g]! + off),
          s.bits,
        );
        col.forEach((w, i) => (words[i * G + g] = w));
      }
      tensors.push({ name: `${module}.weight_zero_point`, dtype: 'I32', shape: [zpRows, G], data: int32Bytes(words) });
    }
  }
  if (s.actorder) tensors.push({ name: `${module}.weight_g_idx`, dtype: 'I32', shape: [cols], data: new Uint8Array(gIdx.buffer) });
  return { tensors, twin };
}

/** The quantization_config llm-compressor writes for this scheme over every Linear but lm_head (and MoE routers). */
export function ctConfig(s: CtScheme): Record<string, unknown> {
  return {
    config_groups: {
      group_0: {
        format: 'pack-quantized',
        input_activations: null,
        output_activations: null,
        targets: ['Linear'],
        weights: {
          actorder: s.actorder ? 'group' : null,
          block_structure: null,
          dynamic: false,
          group_size: s.groupSize === -1 ? null : s.groupSize,
          num_bits: s.bits,
          observer: 'minmax',
          observer_kwargs: {},
          scale_dtype: null,
          strategy: s.groupSize === -1 ? 'channel' : 'group',
          symmetric: s.symmetric,
          type: 'int',
          zp_dtype: s.symmetric ? null : 'torch.int8',
        },
      },
    },
    format: 'pack-quantized',
    global_compression_ratio: null,
    ignore: ['lm_head', 're:.*mlp\\.gate$'],
    kv_cache_scheme: null,
    quant_method: 'compressed-tensors',
    quantization_status: 'compressed',
    sparsity_config: {},
    transform_config: {},
    version: '0.12.2',
  };
}

/**
 * Quantize the Linears (attention, MLP, experts; not routers or lm_head) of the checkpoint in
 * `src` into a compressed-tensors directory `ct` and its dequantized F32 twin `twin`.
 */
export function writeCompressedTensors(src: string, ct: string, twin: string, s: CtScheme): void {
  const configRaw = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  const { spec, config: c } = resolveArch(join(src, 'config.json'), configRaw);
  const st = SafetensorsModel.open(src);
  const linears = new Map<string, [number, number]>();
  for (let i = 0; i < c.numLayers; i++) {
    for (const l of layerLinears(spec, c, i)) linears.set(`${spec.layerPrefix(i)}${l.module}.weight`, [l.rows, l.cols]);
    const ex = layerExperts(spec, c, i);
    if (ex)
      for (let j = 0; j < ex.count; j++)
        for (const l of ex.linears) linears.set(`${spec.layerPrefix(i)}${ex.expertModule(j)}.${l.module}.weight`, [l.rows, l.cols]);
  }
  const ctTensors: { name: string; dtype: string; shape: number[]; data: Float32Array | Uint8Array }[] = [];
  const twinTensors: { name: string; dtype: string; shape: number[]; data: Float32Array | Uint8Array }[] = [];
  let seed = 7;
  try {
    for (const name of st.names()) {
      const t = st.info(name);
      const data = st.readF32(name);
      const shape = linears.get(name);
      if (!shape) {
        ctTensors.push({ name, dtype: 'F32', shape: t.shape, data });
        twinTensors.push({ name, dtype: 'F32', shape: t.shape, data });
        continue;
      }
      const q = quantizeLinear(name.replace(/\.weight$/, ''), data, shape[0], shape[1], s, seed++);
      ctTensors.push(...q.tensors);
      twinTensors.push({ name, dtype: 'F32', shape: t.shape, data: q.twin });
    }
  } finally {
    st.close();
  }
  for (const [dir, tensors, config] of [
    [ct, ctTensors, { ...configRaw, quantization_config: ctConfig(s) }],
    [twin, twinTensors, configRaw],
  ] as const) {
    mkdirSync(dir, { recursive: true });
    writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
    for (const f of SIDE) if (existsSync(join(src, f))) copyFileSync(join(src, f), join(dir, f));
  }
}
