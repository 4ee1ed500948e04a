/**
 * compressed-tensors checkpoints — the format llm-compressor writes and vLLM and transformers load
 * (`quantization_config.quant_method = "compressed-tensors"` in config.json) — read and written
 * for integer weight-only `pack-quantized` Linears (W4A16, W8A16).
 *
 * Per quantized Linear `M` (its weight was `M.weight`, (rows, cols)), as the format's
 * PackedQuantizationCompressor lays it out:
 *   M.weight_packed     I32 (rows, ceil(cols·b/32)): codes q + 2^(b−1), packed lowest bits first
 *                       along the input dim (compress/int-packing.ts)
 *   M.weight_scale      F16/BF16/F32 (rows, G): G = cols/group_size (group), 1 (channel)
 *   M.weight_shape      I64 (or I32) [2]: rows, cols
 *   M.weight_zero_point asymmetric schemes: I32 (ceil(rows·b/32), G), zero points + 2^(b−1)
 *                       packed along the rows (compressed-tensors ≥ 0.9.4); older files: I8 (rows, G)
 *   M.weight_g_idx      activation ordering ("group"): I32 (cols), the group of each column
 * value = scale[r, g]·(q − zp[r, g]), g = g_idx[c] (or ⌊c/group_size⌋); rac computes it in f32.
 *
 * What rac reads: weights `type: int`, 4 or 8 bits, strategy group or channel, symmetric or not,
 * with or without g_idx, no activation, output or KV-cache quantization, no transforms — every
 * other scheme (FP8, NVFP4, MXFP4, W8A8, …) is refused naming it. Malformed checkpoints are refused
 * with one line naming the tensor. rac writes W4A16 / W8A16 with group size 32, symmetric, F16
 * scales: GGUF Q4_0 / Q8_0's grids exactly (compress/quant-grids.ts).
 *
 * rac's own output adds one file beside the weights: `quant_blocks.safetensors`, the GGUF Q8_0
 * blocks of the tensors that are not Linears and so stay outside compressed-tensors (the
 * embedding, an untied lm_head), which rac stores as F32 (the blocks' values). The directory's
 * model.safetensors.index.json lists only the weight shards, so vLLM and transformers never load it.
 */
import { dequantizeRows, rowBytes } from '../compress/ggml-quants.ts';
import { packedRowBytes } from '../compress/int-packing.ts';
import { CheckpointError } from './checkpoint.ts';
import { bf16ToF32, f16ToF32 } from './dtype.ts';
import { ModelFileError, modelFilePath } from './model-file.ts';
import { SafetensorsFile, type SafetensorsModel, type TensorEntry, type TensorInfo } from './safetensors.ts';

export const QUANT_METHOD = 'compressed-tensors';
export const PACK_QUANTIZED = 'pack-quantized';
/** The compressed-tensors release whose `quantization_config` layout rac writes (the `version` field). */
export const CT_FORMAT_VERSION = '0.18.0';
/**
 * rac's GGUF blocks sidecar (prune/options.ts QUANT_BLOCKS_FILE): U8 (rows, row bytes) per tensor;
 * in a compressed-tensors directory the Q8_0 blocks of the embedding / untied lm_head.
 */
export const BLOCKS_FILE = 'quant_blocks.safetensors';

/** The compression formats compressed-tensors defines (config `format`), for naming what rac refuses. */
const KNOWN_FORMATS = new Set([
  'dense',
  'sparse-bitmask',
  'sparse-24-bitmask',
  'int-quantized',
  'float-quantized',
  'naive-quantized',
  'pack-quantized',
  'marlin-24',
  'mixed-precision',
  'nvfp4-pack-quantized',
  'mxfp4-pack-quantized',
  'mxfp8-quantized',
]);

/** One config group's weight quantization, as rac runs it. */
export interface CtWeightScheme {
  bits: 4 | 8;
  strategy: 'group' | 'channel';
  /** Group size (group strategy); null for channel-wise. */
  groupSize: number | null;
  symmetric: boolean;
  /** `actorder` as written (null, "group", "weight", …); only g_idx tensors change what rac computes. */
  actorder: string | null;
}

export interface CtGroup {
  name: string;
  targets: string[];
  weights: CtWeightScheme;
}

/** A checkpoint's `quantization_config`, validated. */
export interface CtConfig {
  configPath: string;
  format: string;
  groups: CtGroup[];
  ignore: string[];
}

/** One pack-quantized Linear, read and validated. */
export interface PackedLinear {
  /** The HF weight name it stands for (`M.weight`). */
  name: string;
  rows: number;
  cols: number;
  bits: 4 | 8;
  /** Columns per scale group (cols for channel-wise). */
  groupSize: number;
  /** (rows, packedRowBytes(cols, bits)): the weight_packed words' little-endian bytes. */
  packed: Uint8Array;
  /** (rows, groups): the scales widened to f32 (exact). */
  scales: Float32Array;
  scaleDtype: string;
  /** (rows, groups) signed zero points, or null (symmetric). */
  zeroPoints: Int8Array | null;
  /** (cols) the group of each column, or null when column c is in group ⌊c/groupSize⌋. */
  gIdx: Int32Array | null;
}

/**
 * A tensor stored as F32 values on the Q8_0 grid, with its block scales: value = d·k with k =
 * u − 128, u (rows, cols) the codes as unsigned bytes (MatMulNBits' 8-bit B as is), d the scales
 * (rows, cols/32).
 */
export interface GridTable {
  rows: number;
  cols: number;
  u: Uint8Array;
  scales: Float32Array;
}

/** A grid table's rows read from its Q8_0 blocks on disk when asked (the table is never held in memory). */
export interface GridRowSource {
  rows: number;
  cols: number;
  /** Rows `ids` as f32 (d·k, +0 for zeros), each read from the blocks file. */
  read(ids: ArrayLike<number>): Float32Array;
}

function fail(file: string, problem: string): never {
  throw new CheckpointError(`${file}: ${problem}`);
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** A short name for a scheme rac refuses: the llm-compressor preset it looks like, and its parts. */
function schemeName(w: Record<string, unknown> | null, a: Record<string, unknown> | null, fmt: string | undefined): string {
  const wt = w ? String(w['type'] ?? 'int') : null;
  const wb = w ? Number(w['num_bits'] ?? 8) : null;
  const at = a ? String(a['type'] ?? 'int') : null;
  const ab = a ? Number(a['num_bits'] ?? 8) : null;
  let preset: string;
  if (fmt === 'nvfp4-pack-quantized' || (wt === 'float' && wb === 4 && Number(w?.['group_size']) === 16)) preset = a ? 'NVFP4' : 'NVFP4A16';
  else if (fmt === 'mxfp4-pack-quantized' || (wt === 'float' && wb === 4)) preset = a ? 'MXFP4' : 'MXFP4A16';
  else if (fmt === 'mxfp8-quantized') preset = 'MXFP8';
  else if (wt === 'float' && wb === 8)
    preset = !a ? 'FP8 weight-only' : w?.['strategy'] === 'block' ? 'FP8_BLOCK' : a['dynamic'] === true ? 'FP8_DYNAMIC' : 'FP8';
  else if (a) preset = `W${wb}A${ab}${at === 'float' ? '-FP8' : ''}`;
  else preset = `W${wb ?? '?'}A16`;
  const parts = [
    w ? `${wt} ${wb}-bit weights${w['strategy'] ? `, ${String(w['strategy'])}-wise` : ''}` : 'no weight quantization',
    a ? `${at} ${ab}-bit ${a['dynamic'] === true ? 'dynamic ' : ''}activations` : null,
  ].filter(Boolean);
  return `${preset} (${parts.join(', ')})`;
}

const SUPPORTED =
  'rac reads integer weight-only pack-quantized schemes (W4A16, W8A16: 4 or 8 bits, group-wise or channel-wise, symmetric or with zero points, with or without g_idx)';

/**
 * config.json's `quantization_config`, validated: null when there is none. Throws one line naming
 * the setting for any other quantization method or scheme.
 */
export function parseCompressionConfig(configPath: string, raw: unknown): CtConfig | null {
  if (!isObj(raw) || raw['quantization_config'] === undefined || raw['quantization_config'] === null) return null;
  const q = raw['quantization_config'];
  const at = (k: string) => `quantization_config.${k}`;
  if (!isObj(q)) fail(configPath, `${at('')} must be an object`.replace('.:', ':'));
  const method = q['quant_method'];
  if (method !== QUANT_METHOD)
    fail(
      configPath,
      `${at('quant_method')} is ${JSON.stringify(method)}; ${SUPPORTED} from compressed-tensors checkpoints (quant_method "compressed-tensors")`,
    );
  const format = q['format'];
  if (typeof format !== 'string') fail(configPath, `${at('format')} is missing (expected "${PACK_QUANTIZED}")`);
  if (!KNOWN_FORMATS.has(format)) fail(configPath, `${at('format')} "${format}" is not a compressed-tensors format rac knows`);
  if (q['kv_cache_scheme'] !== undefined && q['kv_cache_scheme'] !== null)
    fail(configPath, `${at('kv_cache_scheme')} is set: KV-cache quantization is not supported; ${SUPPORTED}`);
  const transform = q['transform_config'];
  if (isObj(transform) && isObj(transform['config_groups']) && Object.keys(transform['config_groups']).length > 0)
    fail(configPath, `${at('transform_config')} has transforms (rotations): not supported; ${SUPPORTED}`);
  const sparsity = q['sparsity_config'];
  if (isObj(sparsity) && typeof sparsity['format'] === 'string' && sparsity['format'] !== 'dense')
    fail(configPath, `${at('sparsity_config')} format "${sparsity['format']}" (sparse compression) is not supported; ${SUPPORTED}`);
  const cg = q['config_groups'];
  if (!isObj(cg) || Object.keys(cg).length === 0) fail(configPath, `${at('config_groups')} is missing or empty`);
  const groups: CtGroup[] = [];
  for (const [name, g] of Object.entries(cg)) {
    const where = at(`config_groups.${name}`);
    if (Array.isArray(g))
      fail(configPath, `${where} names preset ${JSON.stringify(name)} by targets only; rac reads fully written schemes`);
    if (!isObj(g)) fail(configPath, `${where} must be an object`);
    const w = isObj(g['weights']) ? g['weights'] : null;
    const a = isObj(g['input_activations']) ? g['input_activations'] : null;
    const gfmt = typeof g['format'] === 'string' ? g['format'] : format === 'mixed-precision' ? undefined : format;
    const refuse: (why: string) => never = (why) => fail(configPath, `${where} is ${schemeName(w, a, gfmt)}: ${why}; ${SUPPORTED}`);
    if (gfmt !== undefined && !KNOWN_FORMATS.has(gfmt))
      fail(configPath, `${where}.format "${gfmt}" is not a compressed-tensors format rac knows`);
    if (gfmt !== PACK_QUANTIZED) refuse(`format ${gfmt === undefined ? '(none)' : `"${gfmt}"`} is not supported`);
    if (a) refuse('activation quantization is not supported');
    if (isObj(g['output_activations'])) refuse('output quantization is not supported');
    if (!w) refuse('no weight quantization');
    if ((w['type'] ?? 'int') !== 'int') refuse('float weights are not supported');
    const bits = w['num_bits'];
    if (bits !== 4 && bits !== 8) return refuse(`${String(bits)}-bit weights are not supported`);
    if (w['dynamic'] !== undefined && w['dynamic'] !== false) refuse('dynamic weight quantization is not supported');
    const gs = w['group_size'];
    let strategy = w['strategy'];
    if (strategy === undefined || strategy === null)
      strategy = gs === undefined || gs === null ? 'tensor' : gs === -1 ? 'channel' : 'group';
    if (strategy !== 'group' && strategy !== 'channel') return refuse(`strategy "${String(strategy)}" is not supported`);
    let groupSize: number | null = null;
    if (strategy === 'group') {
      if (typeof gs !== 'number' || !Number.isInteger(gs) || gs <= 0)
        fail(configPath, `${where}.weights.group_size must be a positive integer for strategy group, got ${JSON.stringify(gs)}`);
      groupSize = gs;
    }
    const targets = g['targets'];
    if (!Array.isArray(targets) || targets.some((t) => typeof t !== 'string') || targets.length === 0)
      fail(configPath, `${where}.targets must be a non-empty list of strings`);
    const ao = w['actorder'];
    groups.push({
      name,
      targets: targets as string[],
      weights: {
        bits,
        strategy,
        groupSize,
        symmetric: w['symmetric'] !== false,
        actorder: ao === undefined || ao === null || ao === false ? null : ao === true ? 'group' : String(ao),
      },
    });
  }
  const ignore = q['ignore'] ?? [];
  if (!Array.isArray(ignore) || ignore.some((t) => typeof t !== 'string')) fail(configPath, `${at('ignore')} must be a list of strings`);
  return { configPath, format, groups, ignore: ignore as string[] };
}

/** compressed-tensors' target matching: "Linear" (every Linear), a module name, or "re:<regex>" matched from the start. */
function matcher(configPath: string, patterns: string[]): (module: string) => boolean {
  const tests = patterns.map((p) => {
    if (p === 'Linear') return () => true;
    if (!p.startsWith('re:')) return (m: string) => m === p;
    let rx: RegExp;
    try {
      rx = new RegExp(`^(?:${p.slice(3)})`);
    } catch (e) {
      return fail(
        configPath,
        `quantization_config: pattern ${JSON.stringify(p)} is not a regular expression rac can read (${(e as Error).message})`,
      );
    }
    return (m: string) => rx.test(m);
  });
  return (m) => tests.some((t) => t(m));
}

interface PackedEntry {
  module: string;
  group: CtGroup;
  rows: number;
  cols: number;
  packed: TensorInfo;
  scale: TensorInfo;
  zeroPoint: TensorInfo | null;
  gIdx: TensorInfo | null;
}

const SUFFIXES = ['weight_packed', 'weight_scale', 'weight_shape', 'weight_zero_point', 'weight_g_idx'] as const;

/** The pack-quantized Linears of a model directory, indexed at open (headers and weight_shape only). */
export class CompressedTensors {
  private constructor(
    readonly config: CtConfig,
    private readonly tensors: SafetensorsModel,
    private readonly entries: Map<string, PackedEntry>,
    private readonly aux: Set<string>,
    private readonly blocksFile: SafetensorsFile | null,
  ) {}

  /**
   * Index every `M.weight_packed` of `tensors`, checking the header of each quantized Linear's
   * tensors against `config` (missing scale, wrong packed shape, group size not dividing the
   * columns, …: one line naming the tensor). `linears`: every Linear weight name the architecture
   * has; a matched, not ignored one stored unquantized is refused too.
   */
  static open(dir: string, config: CtConfig, tensors: SafetensorsModel, linears: readonly string[]): CompressedTensors {
    const target = config.groups.map((g) => ({ g, match: matcher(config.configPath, g.targets) }));
    const ignored = matcher(config.configPath, config.ignore);
    const groupOf = (m: string) => (ignored(m) ? null : (target.find((t) => t.match(m))?.g ?? null));
    const file = (name: string) => `${dir}/${tensors.shardOf(name)}`;
    const entries = new Map<string, PackedEntry>();
    const aux = new Set<string>();
    for (const name of tensors.names()) {
      if (!name.endsWith('.weight_packed')) continue;
      const module = name.slice(0, -'.weight_packed'.length);
      const group = groupOf(module);
      if (!group)
        fail(file(name), `"${name}": no config group of quantization_config quantizes module ${module} (ignored or not targeted)`);
      if (tensors.has(`${module}.weight`))
        fail(file(name), `"${module}.weight" is stored beside "${name}": a Linear is either packed or not`);
      const info = (suffix: (typeof SUFFIXES)[number], required: boolean): TensorInfo | null => {
        const n = `${module}.${suffix}`;
        if (!tensors.has(n)) {
          if (required)
            fail(
              file(name),
              `"${n}" is missing (a ${PACK_QUANTIZED} Linear has weight_packed, weight_scale and weight_shape${suffix === 'weight_zero_point' ? ', and weight_zero_point when asymmetric' : ''})`,
            );
          return null;
        }
        aux.add(n);
        return tensors.info(n);
      };
      const packed = info('weight_packed', true)!;
      const scale = info('weight_scale', true)!;
      const shape = info('weight_shape', true)!;
      const w = group.weights;
      const zeroPoint = info('weight_zero_point', !w.symmetric);
      const gIdx = info('weight_g_idx', false);
      const where = (t: TensorInfo) => `${t.file}: "${t.name}"`;
      if ((shape.dtype !== 'I64' && shape.dtype !== 'I32') || shape.shape.length !== 1 || shape.shape[0] !== 2)
        fail(shape.file, `"${shape.name}" must be I64 [2] (rows, cols), got ${shape.dtype} [${shape.shape.join(', ')}]`);
      const sb = tensors.readRaw(shape.name);
      const dims =
        shape.dtype === 'I64' ? [Number(sb.readBigInt64LE(0)), Number(sb.readBigInt64LE(8))] : [sb.readInt32LE(0), sb.readInt32LE(4)];
      const [rows, cols] = dims as [number, number];
      if (!(Number.isSafeInteger(rows) && rows > 0 && Number.isSafeInteger(cols) && cols > 0))
        fail(shape.file, `"${shape.name}" holds [${dims.join(', ')}], not a weight shape`);
      const words = Math.ceil((cols * w.bits) / 32);
      if (packed.dtype !== 'I32' || packed.shape.length !== 2 || packed.shape[0] !== rows || packed.shape[1] !== words)
        fail(
          packed.file,
          `"${packed.name}" is ${packed.dtype} [${packed.shape.join(', ')}]; a ${w.bits}-bit (${rows}, ${cols}) weight packs to I32 [${rows}, ${words}]`,
        );
      const groupSize = w.strategy === 'channel' ? cols : w.groupSize!;
      if (cols % groupSize !== 0)
        fail(
          packed.file,
          `"${packed.name}": group size ${groupSize} (${config.configPath}, ${group.name}) does not divide its ${cols} columns`,
        );
      const G = cols / groupSize;
      if (!['F16', 'BF16', 'F32'].includes(scale.dtype) || scale.shape.length !== 2 || scale.shape[0] !== rows || scale.shape[1] !== G)
        fail(
          scale.file,
          `"${scale.name}" is ${scale.dtype} [${scale.shape.join(', ')}]; expected F16, BF16 or F32 [${rows}, ${G}] (${G === 1 ? 'channel-wise' : `groups of ${groupSize}`})`,
        );
      if (zeroPoint && !w.symmetric) {
        const zpRows = Math.ceil((rows * w.bits) / 32);
        const packedZp =
          zeroPoint.dtype === 'I32' && zeroPoint.shape.length === 2 && zeroPoint.shape[0] === zpRows && zeroPoint.shape[1] === G;
        const plainZp = zeroPoint.dtype === 'I8' && zeroPoint.shape.length === 2 && zeroPoint.shape[0] === rows && zeroPoint.shape[1] === G;
        if (!packedZp && !plainZp)
          fail(
            zeroPoint.file,
            `"${zeroPoint.name}" is ${zeroPoint.dtype} [${zeroPoint.shape.join(', ')}]; expected I32 [${zpRows}, ${G}] (packed along the rows) or I8 [${rows}, ${G}]`,
          );
      }
      if (gIdx && (gIdx.dtype !== 'I32' || gIdx.shape.length !== 1 || gIdx.shape[0] !== cols))
        fail(gIdx.file, `"${gIdx.name}" is ${gIdx.dtype} [${gIdx.shape.join(', ')}]; expected I32 [${cols}]`);
      if (gIdx && w.strategy !== 'group')
        fail(gIdx.file, `${where(gIdx)} is only meaningful for group-wise schemes (${group.name} is ${w.strategy}-wise)`);
      entries.set(`${module}.weight`, { module, group, rows, cols, packed, scale, zeroPoint: w.symmetric ? null : zeroPoint, gIdx });
    }
    for (const name of linears) {
      if (entries.has(name) || !tensors.has(name)) continue;
      const module = name.slice(0, -'.weight'.length);
      const g = groupOf(module);
      if (g)
        fail(
          file(name),
          `"${module}.weight_packed" is missing: ${config.configPath} quantizes ${module} (${g.name}), but it is stored unquantized as "${name}"`,
        );
    }
    let blocksFile: SafetensorsFile | null = null;
    try {
      const p = modelFilePath(dir, BLOCKS_FILE);
      if (p !== undefined) blocksFile = SafetensorsFile.open(p);
    } catch (e) {
      if (e instanceof ModelFileError) throw new CheckpointError(e.message);
      throw e;
    }
    return new CompressedTensors(config, tensors, entries, aux, blocksFile);
  }

  /** Whether `name` (`M.weight`) is a pack-quantized Linear. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The packed Linears' weight names. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /** (rows, cols) of a packed Linear. */
  shape(name: string): [number, number] {
    const e = this.entry(name);
    return [e.rows, e.cols];
  }

  /** Bits of a packed Linear. */
  bits(name: string): 4 | 8 {
    return this.entry(name).group.weights.bits;
  }

  /** Whether a checkpoint tensor is one of the packed Linears' own (weight_packed, weight_scale, …). */
  isPackedTensor(tensor: string): boolean {
    return this.aux.has(tensor);
  }

  private entry(name: string): PackedEntry {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(`${this.config.configPath}: "${name}" is not a ${PACK_QUANTIZED} Linear`);
    return e;
  }

  /** Read and validate one packed Linear (non-finite scales, zero points out of range, a malformed g_idx: one line naming the tensor). */
  linear(name: string): PackedLinear {
    const e = this.entry(name);
    const { rows, cols } = e;
    const { bits } = e.group.weights;
    const groupSize = e.group.weights.strategy === 'channel' ? cols : e.group.weights.groupSize!;
    const G = cols / groupSize;
    const raw = this.tensors.readRaw(e.packed.name);
    const packed = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    if (packed.length !== rows * packedRowBytes(cols, bits)) fail(e.packed.file, `"${e.packed.name}" has ${packed.length} bytes`);
    const sr = this.tensors.readRaw(e.scale.name);
    const scales =
      e.scale.dtype === 'F32'
        ? new Float32Array(sr.buffer, sr.byteOffset, sr.byteLength / 4)
        : (e.scale.dtype === 'F16' ? f16ToF32 : bf16ToF32)(new Uint16Array(sr.buffer, sr.byteOffset, sr.byteLength / 2));
    for (let i = 0; i < scales.length; i++) {
      if (!Number.isFinite(scales[i]!))
        fail(e.scale.file, `"${e.scale.name}" has a non-finite scale (${scales[i]}) at [${Math.floor(i / G)}, ${i % G}]`);
    }
    let zeroPoints: Int8Array | null = null;
    if (e.zeroPoint) {
      const zr = this.tensors.readRaw(e.zeroPoint.name);
      const half = 1 << (bits - 1);
      zeroPoints = new Int8Array(rows * G);
      if (e.zeroPoint.dtype === 'I8') {
        zeroPoints.set(new Int8Array(zr.buffer, zr.byteOffset, zr.byteLength));
        for (let i = 0; i < zeroPoints.length; i++)
          if (zeroPoints[i]! < -half || zeroPoints[i]! >= half)
            fail(
              e.zeroPoint.file,
              `"${e.zeroPoint.name}": zero point ${zeroPoints[i]} at [${Math.floor(i / G)}, ${i % G}] is outside the ${bits}-bit range`,
            );
      } else {
        // Packed along dim 0: word w of column g holds rows w·(32/b) …, lowest bits first.
        const words = new Int32Array(zr.buffer.slice(zr.byteOffset, zr.byteOffset + zr.byteLength));
        const mask = (1 << bits) - 1;
        for (let r = 0; r < rows; r++) {
          const bit = r * bits;
          for (let g = 0; g < G; g++) zeroPoints[r * G + g] = ((words[Math.floor(bit / 32) * G + g]! >>> (bit % 32)) & mask) - half;
        }
      }
    }
    let gIdx: Int32Array | null = null;
    if (e.gIdx) {
      const gr = this.tensors.readRaw(e.gIdx.name);
      const gi = new Int32Array(gr.buffer.slice(gr.byteOffset, gr.byteOffset + gr.byteLength));
      if (!gi.every((x) => x === -1)) {
        const count = new Int32Array(G);
        let identity = true;
        for (let c = 0; c < cols; c++) {
          const x = gi[c]!;
          if (!(x >= 0 && x < G)) fail(e.gIdx.file, `"${e.gIdx.name}": column ${c} names group ${x}, outside [0, ${G})`);
          count[x]!++;
          if (x !== Math.floor(c / groupSize)) identity = false;
        }
        const bad = count.findIndex((n) => n !== groupSize);
        if (bad >= 0) fail(e.gIdx.file, `"${e.gIdx.name}": group ${bad} has ${count[bad]} columns, not the group size ${groupSize}`);
        if (!identity) gIdx = gi;
      }
    }
    return { name, rows, cols, bits, groupSize, packed, scales, scaleDtype: e.scale.dtype, zeroPoints, gIdx };
  }

  /**
   * A tensor rac stored as F32 with its GGUF Q8_0 blocks in quant_blocks.safetensors (the embedding
   * / untied lm_head of its compressed output), as codes and scales — checked against the F32
   * values, which must be the blocks' exactly — or null when the sidecar has no Q8_0 blocks for it.
   */
  gridTable(name: string): GridTable | null {
    return this.readGrid(name, true);
  }

  /**
   * gridTable's check alone, keeping nothing: the table's shape when its F32 values are its Q8_0
   * blocks exactly (refused as gridTable refuses), or null where gridTable is null. For an
   * embedding whose rows gridRowSource reads from disk and no session holds (an untied head).
   */
  gridShape(name: string): { rows: number; cols: number } | null {
    const g = this.readGrid(name, false);
    return g && { rows: g.rows, cols: g.cols };
  }

  private readGrid(name: string, keep: true): GridTable | null;
  private readGrid(name: string, keep: false): Pick<GridTable, 'rows' | 'cols'> | null;
  private readGrid(name: string, keep: boolean): GridTable | Pick<GridTable, 'rows' | 'cols'> | null {
    const bf = this.blocksFile;
    if (!bf?.tensors.has(name)) return null;
    if (!this.tensors.has(name)) fail(bf.path, `holds blocks for "${name}", which the checkpoint lacks`);
    const t = this.tensors.info(name);
    if (t.dtype !== 'F32' || t.shape.length !== 2 || t.shape[1]! % 32 !== 0) return null;
    const [rows, cols] = t.shape as [number, number];
    const rb = rowBytes('Q8_0', cols);
    const s = bf.info(name);
    if (s.dtype !== 'U8' || s.shape.length !== 2 || s.shape[0] !== rows || s.shape[1] !== rb) return null; // another type: run it as F32
    // Rows in chunks of ~4 MiB through reused buffers: neither the F32 table nor the block bytes
    // are ever whole in memory (the engine's load peak), only the codes and scales kept (if asked).
    const u = keep ? new Uint8Array(rows * cols) : null;
    const scales = keep ? new Float32Array((rows * cols) / 32) : null;
    const chunk = Math.max(1, Math.floor((4 << 20) / (cols * 4)));
    const fBuf = new Uint8Array(chunk * cols * 4);
    const bBuf = new Uint8Array(chunk * rb);
    const want = new Float32Array(chunk * cols);
    const d16 = new Uint16Array((chunk * cols) / 32);
    for (let r0 = 0; r0 < rows; r0 += chunk) {
      const n = Math.min(chunk, rows - r0);
      const nb = (n * cols) / 32;
      const blocks = bf.readRange(name, r0 * rb, n * rb, bBuf);
      if (u && scales) {
        for (let b = 0; b < nb; b++) {
          const p = b * 34;
          d16[b] = blocks[p]! | (blocks[p + 1]! << 8);
          for (let i = 0; i < 32; i++) u[r0 * cols + b * 32 + i] = blocks[p + 2 + i]! ^ 0x80;
        }
        scales.set(f16ToF32(d16.subarray(0, nb)), (r0 * cols) / 32);
      }
      const fb = this.tensors.readRange(name, r0 * cols * 4, n * cols * 4, fBuf);
      const w = new Float32Array(fb.buffer, fb.byteOffset, n * cols);
      const q = dequantizeRows('Q8_0', blocks, n * cols, want);
      const bad = w.findIndex((x, i) => x !== q[i]);
      if (bad >= 0)
        fail(
          t.file,
          `"${name}" [${r0 + Math.floor(bad / cols)}, ${bad % cols}] is ${w[bad]}, but its Q8_0 blocks in ${BLOCKS_FILE} give ${q[bad]}`,
        );
    }
    return u && scales ? { rows, cols, u, scales } : { rows, cols };
  }

  /**
   * The rows of a grid table (gridTable or gridShape, which check the blocks against the F32 values,
   * must have accepted `name`) read from quant_blocks.safetensors on demand: the engine's embedding lookup
   * reads a row's 34-byte blocks per token instead of holding the whole table in memory.
   */
  gridRowSource(name: string, table: Pick<GridTable, 'rows' | 'cols'>): GridRowSource {
    const bf = this.blocksFile;
    if (!bf?.tensors.has(name)) throw new Error(`"${name}" has no Q8_0 blocks in ${BLOCKS_FILE}`);
    const { rows, cols } = table;
    const rb = rowBytes('Q8_0', cols);
    return {
      rows,
      cols,
      read: (ids) => {
        const out = new Float32Array(ids.length * cols);
        const row = new Uint8Array(rb);
        for (let i = 0; i < ids.length; i++) {
          const id = ids[i]!;
          if (!Number.isInteger(id) || id < 0 || id >= rows) throw new RangeError(`token id ${id} out of range [0, ${rows})`);
          dequantizeRows('Q8_0', bf.readRange(name, id * rb, rb, row), cols, out.subarray(i * cols));
        }
        return out;
      },
    };
  }

  close(): void {
    this.blocksFile?.close();
  }
}

/** W (rows, cols) of a packed Linear in f32: scale·(q − zp), zeros as +0. */
export function dequantize(p: PackedLinear): Float32Array {
  const { rows, cols, bits, groupSize, packed, scales, zeroPoints, gIdx } = p;
  const G = cols / groupSize;
  const stride = packedRowBytes(cols, bits);
  const half = 1 << (bits - 1);
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * stride;
    for (let c = 0; c < cols; c++) {
      const u = bits === 8 ? packed[base + c]! : (packed[base + (c >> 1)]! >> ((c & 1) << 2)) & 0x0f;
      const g = gIdx ? gIdx[c]! : Math.floor(c / groupSize);
      const zp = zeroPoints ? zeroPoints[r * G + g]! : 0;
      out[r * cols + c] = scales[r * G + g]! * (u - half - zp) + 0;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing (rac prune --quant): symmetric W4A16 / W8A16, group 32, F16 scales

/** The tensors that replace `M.weight` (rows, cols) in a pack-quantized checkpoint. */
export function packedTensorEntries(weightName: string, rows: number, cols: number, bits: 4 | 8, groupSize: number): TensorEntry[] {
  const m = weightName.replace(/\.weight$/, '');
  return [
    { name: `${m}.weight_packed`, dtype: 'I32', shape: [rows, Math.ceil((cols * bits) / 32)] },
    { name: `${m}.weight_scale`, dtype: 'F16', shape: [rows, cols / groupSize] },
    { name: `${m}.weight_shape`, dtype: 'I64', shape: [2] },
  ];
}

/** weight_shape's bytes: I64 [rows, cols], little-endian. */
export function weightShapeBytes(rows: number, cols: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setBigInt64(0, BigInt(rows), true);
  v.setBigInt64(8, BigInt(cols), true);
  return b;
}

/**
 * `quantization_config` as llm-compressor writes it (compressed-tensors' QuantizationConfig dumped
 * with every field, keys sorted) for one symmetric int group scheme over every Linear but `ignore`
 * (module names).
 */
export function quantizationConfig(o: { bits: 4 | 8; groupSize: number; ignore: string[] }): Record<string, unknown> {
  return {
    config_groups: {
      group_0: {
        format: PACK_QUANTIZED,
        input_activations: null,
        output_activations: null,
        targets: ['Linear'],
        weights: {
          actorder: null,
          block_structure: null,
          dynamic: false,
          group_size: o.groupSize,
          num_bits: o.bits,
          observer: 'minmax',
          observer_kwargs: {},
          scale_dtype: 'torch.float16',
          strategy: 'group',
          symmetric: true,
          type: 'int',
          zp_dtype: null,
        },
      },
    },
    format: PACK_QUANTIZED,
    global_compression_ratio: null,
    ignore: o.ignore,
    kv_cache_scheme: null,
    quant_method: QUANT_METHOD,
    quantization_status: 'compressed',
    sparsity_config: {},
    transform_config: {},
    version: CT_FORMAT_VERSION,
  };
}
