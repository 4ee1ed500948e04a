/**
 * Integer weight codes and the byte layouts that carry them, on typed arrays (no I/O):
 *
 * - compressed-tensors `pack-quantized` (llm-compressor's format, read by vLLM and transformers):
 *   a row's codes q ∈ [−2^(b−1), 2^(b−1) − 1] are stored as unsigned u = q + 2^(b−1), packed
 *   densely into little-endian int32 words, lowest bits first: element i of a row sits at bit i·b
 *   of the row's bit stream, rows padded to whole words with zero bits. For b = 4 a byte holds
 *   elements 2j (low nibble) and 2j + 1 (high nibble); for b = 8 byte j is element j. The same
 *   bytes are onnxruntime's `MatMulNBits` B for that row (its zero point 2^(b−1) by default).
 * - GGUF Q4_0 / Q8_0 blocks (see quant-grids.ts): from the same codes and f16 scales, with ggml's
 *   nibble order (elements 0–15 low, 16–31 high).
 *
 * Q4_0 and compressed-tensors' symmetric int4 with group size 32 are one grid: value = d·k with
 * k = nibble − 8 ∈ [−8, 7] = q. Q8_0 is symmetric int8, group 32 (k ∈ [−127, 127]).
 */

/** Bytes of one packed row: ceil(cols·bits/32) int32 words. */
export function packedRowBytes(cols: number, bits: number): number {
  return Math.ceil((cols * bits) / 32) * 4;
}

function checkBits(bits: number, what: string): void {
  if (bits !== 4 && bits !== 8) throw new RangeError(`${what}: ${bits}-bit codes (supported: 4, 8)`);
}

/**
 * Pack unsigned codes u (rows, cols), each < 2^bits, along the last axis: (rows, packedRowBytes)
 * bytes, the little-endian int32 words of compressed-tensors' `pack_to_int32`.
 */
export function packUnsigned(u: Uint8Array, rows: number, cols: number, bits: number): Uint8Array {
  checkBits(bits, 'packUnsigned');
  if (u.length !== rows * cols) throw new RangeError(`packUnsigned: ${u.length} codes, expected ${rows}·${cols}`);
  const stride = packedRowBytes(cols, bits);
  const out = new Uint8Array(rows * stride);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    const dst = r * stride;
    if (bits === 8) out.set(u.subarray(src, src + cols), dst);
    else for (let c = 0; c < cols; c++) out[dst + (c >> 1)]! |= (u[src + c]! & 0x0f) << ((c & 1) << 2);
  }
  return out;
}

/** The inverse of packUnsigned: unsigned codes (rows, cols). */
export function unpackUnsigned(bytes: Uint8Array, rows: number, cols: number, bits: number): Uint8Array {
  checkBits(bits, 'unpackUnsigned');
  const stride = packedRowBytes(cols, bits);
  if (bytes.length !== rows * stride) throw new RangeError(`unpackUnsigned: ${bytes.length} bytes, expected ${rows}·${stride}`);
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const src = r * stride;
    const dst = r * cols;
    if (bits === 8) out.set(bytes.subarray(src, src + cols), dst);
    else for (let c = 0; c < cols; c++) out[dst + c] = (bytes[src + (c >> 1)]! >> ((c & 1) << 2)) & 0x0f;
  }
  return out;
}

/** Signed codes q (rows, cols) → packed bytes (u = q + 2^(bits−1)). */
export function packSigned(q: Int8Array, rows: number, cols: number, bits: number): Uint8Array {
  const off = 1 << (bits - 1);
  const u = new Uint8Array(q.length);
  for (let i = 0; i < q.length; i++) {
    const v = q[i]! + off;
    if (v < 0 || v >= 1 << bits) throw new RangeError(`packSigned: code ${q[i]} at ${i} is outside the ${bits}-bit range`);
    u[i] = v;
  }
  return packUnsigned(u, rows, cols, bits);
}

/** Packed bytes → signed codes q (rows, cols). */
export function unpackSigned(bytes: Uint8Array, rows: number, cols: number, bits: number): Int8Array {
  const u = unpackUnsigned(bytes, rows, cols, bits);
  const off = 1 << (bits - 1);
  const q = new Int8Array(u.length);
  for (let i = 0; i < u.length; i++) q[i] = u[i]! - off;
  return q;
}

/**
 * The codes k = w/d of W (rows, cols) whose values lie on a symmetric grid with one scale per
 * `group` consecutive columns of a row (scales (rows, cols/group)): k must be an integer in
 * [kmin, kmax] with d·k === w exactly (k = 0 where d = 0 and w = 0). Throws naming the first value
 * off the grid.
 */
export function gridCodes(
  W: Float32Array,
  scales: ArrayLike<number>,
  rows: number,
  cols: number,
  group: number,
  kmin: number,
  kmax: number,
): Int8Array {
  if (cols % group !== 0) throw new RangeError(`gridCodes: ${cols} columns are not whole groups of ${group}`);
  const G = cols / group;
  if (W.length !== rows * cols || scales.length !== rows * G)
    throw new RangeError(`gridCodes: ${W.length} values and ${scales.length} scales for ${rows}×${cols} in groups of ${group}`);
  const q = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const d = scales[r * G + Math.floor(c / group)]!;
      const w = W[r * cols + c]!;
      const k = d === 0 ? (w === 0 ? 0 : NaN) : w / d;
      if (!Number.isInteger(k) || k < kmin || k > kmax || d * k !== w)
        throw new RangeError(`value ${w} at [${r}, ${c}] is not on the grid of its group (d = ${d}, codes ${kmin}..${kmax})`);
      q[r * cols + c] = k;
    }
  }
  return q;
}

/**
 * GGUF blocks (ggml `block_q4_0` / `block_q8_0`) of signed codes q (rows, cols) with one f16
 * scale per 32 weights given as its bits `d` (rows, cols/32): Q4_0 {d; qs[16]}, nibble = q + 8,
 * element i < 16 the low nibble of qs[i], i + 16 its high nibble; Q8_0 {d; int8 qs[32]}.
 */
export function ggufBlocksFromCodes(fmt: 'q4_0' | 'q8_0', q: Int8Array, d: Uint16Array, rows: number, cols: number): Uint8Array {
  if (cols % 32 !== 0) throw new RangeError(`ggufBlocksFromCodes: row length ${cols} is not a multiple of 32`);
  const nb = (rows * cols) / 32;
  if (q.length !== rows * cols || d.length !== nb) throw new RangeError(`ggufBlocksFromCodes: ${q.length} codes, ${d.length} scales`);
  const bb = fmt === 'q4_0' ? 18 : 34;
  const out = new Uint8Array(nb * bb);
  for (let b = 0; b < nb; b++) {
    const p = b * bb;
    out[p] = d[b]! & 0xff;
    out[p + 1] = d[b]! >> 8;
    const o = b * 32;
    if (fmt === 'q8_0') {
      for (let i = 0; i < 32; i++) out[p + 2 + i] = q[o + i]! & 0xff;
      continue;
    }
    for (let i = 0; i < 16; i++) {
      const lo = q[o + i]! + 8;
      const hi = q[o + i + 16]! + 8;
      if (lo < 0 || lo > 15 || hi < 0 || hi > 15) throw new RangeError(`ggufBlocksFromCodes: a code of block ${b} is outside [−8, 7]`);
      out[p + 2 + i] = lo | (hi << 4);
    }
  }
  return out;
}

/**
 * The inverse of ggufBlocksFromCodes: GGUF Q4_0 / Q8_0 blocks of a (rows, cols) tensor as
 * compressed-tensors pack-quantized bytes (rows, packedRowBytes(cols, bits)) — unsigned codes
 * u = q + 2^(b−1): Q4_0's nibble as it is, Q8_0's int8 + 128 — and each block's d as its f16 bits
 * (rows, cols/32), copied, never converted (a −0 or subnormal d stays what llama.cpp wrote).
 */
export function packedFromGgufBlocks(
  fmt: 'q4_0' | 'q8_0',
  blocks: Uint8Array,
  rows: number,
  cols: number,
): { packed: Uint8Array; d: Uint16Array } {
  if (cols % 32 !== 0) throw new RangeError(`packedFromGgufBlocks: row length ${cols} is not a multiple of 32`);
  const bb = fmt === 'q4_0' ? 18 : 34;
  const G = cols / 32;
  if (blocks.length !== rows * G * bb) throw new RangeError(`packedFromGgufBlocks: ${blocks.length} bytes, expected ${rows}·${G}·${bb}`);
  const bits = fmt === 'q4_0' ? 4 : 8;
  const stride = packedRowBytes(cols, bits);
  const packed = new Uint8Array(rows * stride);
  const d = new Uint16Array(rows * G);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < G; g++) {
      const b = r * G + g;
      const p = b * bb;
      d[b] = blocks[p]! | (blocks[p + 1]! << 8);
      if (fmt === 'q8_0') {
        const dst = r * stride + g * 32;
        for (let i = 0; i < 32; i++) packed[dst + i] = blocks[p + 2 + i]! ^ 0x80;
        continue;
      }
      // Q4_0: elements i and i + 16 share qs[i] (low, high nibble); packed: elements 2j, 2j + 1 share a byte.
      const dst = r * stride + g * 16;
      for (let i = 0; i < 16; i++) {
        const lo = blocks[p + 2 + i]! & 0x0f;
        const hi = blocks[p + 2 + i]! >> 4;
        packed[dst + (i >> 1)]! |= lo << ((i & 1) << 2);
        packed[dst + ((i + 16) >> 1)]! |= hi << ((i & 1) << 2);
      }
    }
  }
  return { packed, d };
}
