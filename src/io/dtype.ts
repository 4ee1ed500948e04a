/**
 * Element types of safetensors files and conversions between the float formats.
 *
 * Conversions work on the raw bit patterns through Uint32Array / Uint16Array views over the same
 * buffers: one loop, no per-element allocation. Narrowing rounds to nearest, ties to even (RNE),
 * as torch's `.to(bfloat16)` / `.half()` do; NaN stays a (quiet) NaN and ±Inf is preserved.
 * All arrays are host-endian; safetensors is little-endian and so is every host we run on
 * (checked in safetensors.ts).
 */

/** Bytes per element of every safetensors dtype we accept. */
export const DTYPE_SIZES: Record<string, number> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  U16: 2,
  U32: 4,
  U64: 8,
  F8_E4M3: 1,
  F8_E5M2: 1,
});

const FLOAT_DTYPES = new Set(['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2']);

/** True for a known safetensors dtype name. */
export function isKnownDtype(dtype: string): boolean {
  return Object.hasOwn(DTYPE_SIZES, dtype);
}

/** True for floating-point dtypes (F64, F32, F16, BF16, F8_E4M3, F8_E5M2). */
export function isFloatDtype(dtype: string): boolean {
  return FLOAT_DTYPES.has(dtype);
}

/** The dtypes `readF32` widens and `writeF32` narrows to. */
export function isF32Convertible(dtype: string): dtype is 'F32' | 'F16' | 'BF16' {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16';
}

/** bfloat16 bits → float32: the bf16 bits are the upper half of the f32 bits (exact). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const n = src.length;
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = src[i]! << 16;
  return new Float32Array(out.buffer, 0, n);
}

/** float32 → bfloat16 bits, round to nearest even; NaN → quiet NaN (sign and top payload kept). */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const n = src.length;
  const u32 = new Uint32Array(src.buffer, src.byteOffset, n);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const u = u32[i]!;
    if ((u & 0x7fffffff) > 0x7f800000) {
      out[i] = (u >>> 16) | 0x0040;
    } else {
      // u ≤ 0xff800000 here, so the sum stays below 2^32 and >>> does not wrap.
      out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** f16 bits → f32 bits for all 65536 halves, built on first use (256 KiB). */
let F16_TABLE: Uint32Array | undefined;

function f16Table(): Uint32Array {
  if (F16_TABLE) return F16_TABLE;
  const t = new Uint32Array(65536);
  const f = new Float32Array(t.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant · 2^-24, exact in f32
      f[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    } else if (exp === 31) {
      t[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0;
    } else {
      t[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  F16_TABLE = t;
  return t;
}

/** IEEE half bits → float32 (exact, subnormals included; NaN payload kept). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const n = src.length;
  const table = f16Table();
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
  return new Float32Array(out.buffer, 0, n);
}

/**
 * float32 → IEEE half bits, round to nearest even. Magnitudes ≥ 65520 become ±Inf, values below
 * half the smallest subnormal (2^-25, tie included) become ±0, NaN → quiet NaN.
 */
export function f32ToF16(src: Float32Array): Uint16Array {
  const n = src.length;
  const u32 = new Uint32Array(src.buffer, src.byteOffset, n);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const u = u32[i]!;
    const sign = (u >>> 16) & 0x8000;
    const a = u & 0x7fffffff;
    let h: number;
    if (a >= 0x7f800000) {
      // Inf, or NaN with the top payload bits kept and the quiet bit set
      h = a === 0x7f800000 ? 0x7c00 : 0x7e00 | ((a >>> 13) & 0x3ff);
    } else if (a >= 0x47800000) {
      // |x| ≥ 2^16: beyond the largest half even before rounding
      h = 0x7c00;
    } else if (a >= 0x38800000) {
      // normal half range [2^-14, 2^16): rebias exponent 127 → 15, keep 10 mantissa bits.
      // A carry out of the mantissa bumps the exponent, up to 0x7c00 (Inf) — which RNE wants.
      h = (a - 0x38000000) >>> 13;
      const rest = a & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    } else if (a >= 0x33000000) {
      // subnormal half (or rounds to the smallest normal): value = m · 2^(e-23), unit 2^-24
      const e = (a >>> 23) - 127; // -25 ≤ e ≤ -15
      const m = (a & 0x7fffff) | 0x800000;
      const shift = -e - 1; // 14 … 24
      h = m >>> shift;
      const rest = m & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rest > half || (rest === half && (h & 1) === 1)) h++;
    } else {
      h = 0;
    }
    out[i] = sign | h;
  }
  return out;
}

/** Index of the first NaN or ±Inf in `data`, or -1 when every value is finite. */
export function findNonFinite(data: Float32Array): number {
  const u32 = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const n = u32.length;
  for (let i = 0; i < n; i++) {
    if ((u32[i]! & 0x7f800000) === 0x7f800000) return i;
  }
  return -1;
}
