/**
 * The GGUF block grids Q8_0 and Q4_0 (ggml `block_q8_0` / `block_q4_0`), exactly: a block is 32
 * consecutive weights of one row (input columns 32b … 32b+31), with one f16 scale d.
 *
 *   Q8_0: {f16 d; int8 qs[32]}  (34 bytes)  value = d·qs[i],        qs ∈ [−127, 127]
 *   Q4_0: {f16 d; u8 qs[16]}    (18 bytes)  value = d·(nibble − 8), nibble ∈ [0, 15];
 *         element i < 16 is the low nibble of qs[i], element i + 16 its high nibble.
 *
 * A "code" k here is the signed multiplier: value = d·k with k ∈ [−127, 127] (q8_0) or
 * k = nibble − 8 ∈ [−8, 7] (q4_0). Zero is on both grids (k = 0), and d·k is exact in f32 (an f16
 * d has an 11-bit significand, |k| ≤ 127 adds 7 bits), so a stored f32 value and its f16 scale
 * give back k = value / d exactly. Zero values are stored as +0.
 *
 * Two ways to choose d and k:
 * - `rtnQuantize`: llama.cpp's reference quantizers `quantize_row_q8_0_ref` /
 *   `quantize_row_q4_0_ref` bit for bit (f32 arithmetic): q8_0 d = amax/127, k = roundf(x·(1/d));
 *   q4_0 max = the first element of largest |x| (with its sign), d = max/−8,
 *   nibble = min(15, trunc(x·(1/d) + 8.5)). The file stores f16(d), so the value is f16(d)·k.
 * - `blockScale` + `quantizeToGrid` (GPTQ): the same d rule, rounded to f16 before use, and
 *   k = the nearest grid point round(x/d16), clamped — what the solver decides is what the file stores.
 */

export type QuantFormat = 'q4_0' | 'q8_0';
export const QUANT_FORMATS: readonly QuantFormat[] = ['q4_0', 'q8_0'];
/** Weights per block (ggml QK8_0 = QK4_0 = 32). */
export const QK = 32;
/** Bytes per block in the GGUF file. */
export const BLOCK_BYTES: Record<QuantFormat, number> = { q8_0: 34, q4_0: 18 };
/** Bits per weight (scale included). */
export const BITS_PER_WEIGHT: Record<QuantFormat, number> = { q8_0: 8.5, q4_0: 4.5 };
const KMIN: Record<QuantFormat, number> = { q8_0: -127, q4_0: -8 };
const KMAX: Record<QuantFormat, number> = { q8_0: 127, q4_0: 7 };

export function isQuantFormat(s: string): s is QuantFormat {
  return (QUANT_FORMATS as readonly string[]).includes(s);
}

// ---------------------------------------------------------------- f16 scalars

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** float → IEEE half bits, round to nearest even (as ggml's FP32_TO_FP16 / F16C). ±Inf beyond 65504. */
export function f16Bits(x: number): number {
  f32buf[0] = x;
  const u = u32buf[0]!;
  const sign = (u >>> 16) & 0x8000;
  const a = u & 0x7fffffff;
  let h: number;
  if (a >= 0x7f800000) h = a === 0x7f800000 ? 0x7c00 : 0x7e00;
  else if (a >= 0x47800000) h = 0x7c00;
  else if (a >= 0x38800000) {
    h = (a - 0x38000000) >>> 13;
    const rest = a & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
  } else if (a >= 0x33000000) {
    const e = (a >>> 23) - 127;
    const m = (a & 0x7fffff) | 0x800000;
    const shift = -e - 1;
    h = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rest > half || (rest === half && (h & 1) === 1)) h++;
  } else h = 0;
  return sign | h;
}

/** IEEE half bits → number (exact). */
export function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1024 + m) * 2 ** (e - 25);
}

/** x rounded to the nearest f16 (as a number). */
export function roundF16(x: number): number {
  return f16Value(f16Bits(x));
}

export class QuantRangeError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'QuantRangeError';
  }
}

function checkScale(d16: number, what: string): void {
  if (!Number.isFinite(d16)) throw new QuantRangeError(`${what}: the block scale overflows f16 (|weights| too large for GGUF Q4_0/Q8_0)`);
}

// ---------------------------------------------------------------- GPTQ-side grid

/**
 * The f16 scale of one block from `x[off + i·stride]`, i < n (n ≤ 32), skipping entries where
 * `skip?.[skipOff + i·skipStride]` is set (joint mode: masked weights will be 0). q8_0: amax/127;
 * q4_0: (the first value of largest |x|)/−8. Computed in f32 as the reference does, then f16.
 */
export function blockScale(
  fmt: QuantFormat,
  x: ArrayLike<number>,
  off: number,
  stride: number,
  n: number,
  skip?: Uint8Array,
  skipOff = 0,
  skipStride = 1,
): number {
  let amax = 0;
  let max = 0;
  for (let i = 0; i < n; i++) {
    if (skip && skip[skipOff + i * skipStride]) continue;
    const v = Math.fround(x[off + i * stride]!);
    const a = Math.abs(v);
    if (amax < a) {
      amax = a;
      max = v;
    }
  }
  const d = fmt === 'q8_0' ? Math.fround(amax / 127) : Math.fround(max / -8);
  const d16 = roundF16(d);
  checkScale(d16, 'blockScale');
  return d16;
}

/** The nearest code k of x on the grid d·k (d an f16 value); 0 when d = 0. */
export function nearestCode(fmt: QuantFormat, x: number, d: number): number {
  if (d === 0) return 0;
  const k = Math.round(x / d);
  return k < KMIN[fmt] ? KMIN[fmt] : k > KMAX[fmt] ? KMAX[fmt] : k;
}

/** The grid value nearest to x: d·k as f32 (exact), zero as +0. */
export function quantizeToGrid(fmt: QuantFormat, x: number, d: number): number {
  return d * nearestCode(fmt, x, d) + 0;
}

// ---------------------------------------------------------------- round to nearest (llama.cpp reference)

export interface Quantized {
  /** (rows, cols/32) f16 scales, as numbers (each exactly an f16 value). */
  scales: Float32Array;
}

function checkShape(W: ArrayLike<number>, rows: number, cols: number, what: string): void {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1)
    throw new RangeError(`${what}: bad shape ${rows}×${cols}`);
  if (cols % QK !== 0) throw new RangeError(`${what}: row length ${cols} is not a multiple of ${QK} (GGUF Q4_0/Q8_0 blocks)`);
  if (W.length !== rows * cols) throw new RangeError(`${what}: ${W.length} values, expected ${rows}·${cols}`);
}

/**
 * Round W (rows, cols), row-major, to the grid in place, choosing d and k exactly as llama.cpp's
 * `quantize_row_q8_0_ref` / `quantize_row_q4_0_ref` do. Returns the f16 scales.
 */
export function rtnQuantize(W: Float32Array, rows: number, cols: number, fmt: QuantFormat): Quantized {
  checkShape(W, rows, cols, 'rtnQuantize');
  const nb = cols / QK;
  const scales = new Float32Array(rows * nb);
  for (let b = 0; b < rows * nb; b++) {
    const o = b * QK;
    let amax = 0;
    let max = 0;
    for (let i = 0; i < QK; i++) {
      const v = W[o + i]!;
      if (!Number.isFinite(v)) throw new QuantRangeError(`rtnQuantize: W[${Math.floor(o / cols)}, ${(o % cols) + i}] is ${v}`);
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    if (fmt === 'q8_0') {
      const d = Math.fround(amax / 127);
      const id = d ? Math.fround(1 / d) : 0;
      const d16 = roundF16(d);
      checkScale(d16, 'rtnQuantize');
      scales[b] = d16;
      for (let i = 0; i < QK; i++) {
        const x0 = Math.fround(W[o + i]! * id);
        const k = Math.sign(x0) * Math.round(Math.abs(x0)); // roundf: half away from zero
        W[o + i] = d16 * k + 0;
      }
    } else {
      const d = Math.fround(max / -8);
      const id = d ? Math.fround(1 / d) : 0;
      const d16 = roundF16(d);
      checkScale(d16, 'rtnQuantize');
      scales[b] = d16;
      for (let i = 0; i < QK; i++) {
        const x0 = Math.fround(Math.fround(W[o + i]! * id) + 8.5);
        const nib = Math.min(15, Math.trunc(x0));
        W[o + i] = d16 * (nib - 8) + 0;
      }
    }
  }
  return { scales };
}

// ---------------------------------------------------------------- GGUF blocks

/**
 * The GGUF bytes of W (rows, cols) whose values are on the grid of `scales` (rows, cols/32):
 * k = w/d, checked to be an integer in range with d·k === w; throws naming the first value off
 * the grid. Exact: decodeBlocks(encodeBlocks(W, S)) reproduces W bit for bit (zeros as +0).
 */
export function encodeBlocks(fmt: QuantFormat, W: Float32Array, scales: ArrayLike<number>, rows: number, cols: number): Uint8Array {
  checkShape(W, rows, cols, 'encodeBlocks');
  const nb = cols / QK;
  if (scales.length !== rows * nb) throw new RangeError(`encodeBlocks: ${scales.length} scales, expected ${rows}·${nb}`);
  const bb = BLOCK_BYTES[fmt];
  const out = new Uint8Array(rows * nb * bb);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < rows * nb; b++) {
    const d = scales[b]!;
    const bits = f16Bits(d);
    if (f16Value(bits) !== d && !(d === 0)) throw new QuantRangeError(`encodeBlocks: scale ${d} of block ${b} is not an f16 value`);
    const p = b * bb;
    dv.setUint16(p, bits, true);
    for (let i = 0; i < QK; i++) {
      const w = W[b * QK + i]!;
      const k = d === 0 ? 0 : w / d;
      if (!Number.isInteger(k) || k < KMIN[fmt] || k > KMAX[fmt] || d * k !== w) {
        const r = Math.floor((b * QK) / cols);
        throw new QuantRangeError(`value ${w} at [${r}, ${((b * QK) % cols) + i}] is not on the ${fmt} grid of its block (d = ${d})`);
      }
      if (fmt === 'q8_0') out[p + 2 + i] = k & 0xff;
      else if (i < 16) out[p + 2 + i] = (k + 8) & 0x0f;
      else out[p + 2 + i - 16]! |= (k + 8) << 4;
    }
  }
  return out;
}

/** Decode `n` weights (a multiple of 32) of GGUF Q8_0/Q4_0 blocks to f32 (zeros as +0). */
export function decodeBlocks(fmt: QuantFormat, bytes: Uint8Array, n: number): Float32Array {
  if (n % QK !== 0) throw new RangeError(`decodeBlocks: ${n} values is not a multiple of ${QK}`);
  const bb = BLOCK_BYTES[fmt];
  if (bytes.length !== (n / QK) * bb)
    throw new RangeError(`decodeBlocks: ${bytes.length} bytes, expected ${(n / QK) * bb} for ${n} ${fmt} values`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  for (let b = 0; b < n / QK; b++) {
    const p = b * bb;
    const d = f16Value(dv.getUint16(p, true));
    for (let i = 0; i < QK; i++) {
      let k: number;
      if (fmt === 'q8_0') k = dv.getInt8(p + 2 + i);
      else k = (i < 16 ? bytes[p + 2 + i]! & 0x0f : bytes[p + 2 + i - 16]! >> 4) - 8;
      out[b * QK + i] = d * k + 0;
    }
  }
  return out;
}
