/**
 * Integer codes and their byte layouts (src/compress/int-packing.ts): compressed-tensors'
 * int32 packing (the format's own documented examples), round trips, and GGUF Q4_0 / Q8_0 blocks
 * from codes equal to quant-grids.ts's encodeBlocks of the same values, byte for byte, and back:
 * llama.cpp's blocks (ggml-quants.ts) → packed codes and f16 d → the same blocks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  ggufBlocksFromCodes,
  gridCodes,
  packedFromGgufBlocks,
  packedRowBytes,
  packSigned,
  packUnsigned,
  unpackSigned,
  unpackUnsigned,
} from '../../src/compress/int-packing.ts';
import { dequantizeRows, quantizeRows } from '../../src/compress/ggml-quants.ts';
import { encodeBlocks, f16Bits, f16Value, rtnQuantize } from '../../src/compress/quant-grids.ts';

const words = (b: Uint8Array) => Array.from(new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4));

test("compressed-tensors packing: pack_to_int32's examples, lowest bits first", () => {
  // The docstring of compressed-tensors' pack_to_int32: 8 bits, [1, 2] → [129, 130, 0, 0] → 33409.
  assert.deepEqual(words(packSigned(Int8Array.from([1, 2]), 1, 2, 8)), [33409]);
  // 4 bits: q = −8 … 7 → unsigned 0 … 15, element i at bits 4i.
  const q = Int8Array.from({ length: 16 }, (_, i) => i - 8);
  assert.deepEqual(words(packSigned(q, 1, 16, 4)), [0x76543210, 0xfedcba98]);
  assert.equal(packedRowBytes(896, 4), 448);
  assert.equal(packedRowBytes(10, 4), 8, 'rows padded to whole int32 words');
  assert.throws(() => packSigned(Int8Array.from([8]), 1, 1, 4), /outside the 4-bit range/);
});

test('pack / unpack round trips, 4 and 8 bits, odd row lengths', () => {
  for (const bits of [4, 8]) {
    for (const [rows, cols] of [
      [3, 32],
      [5, 10],
      [2, 7],
    ] as const) {
      const u = Uint8Array.from({ length: rows * cols }, (_, i) => (i * 7 + 3) % (1 << bits));
      assert.deepEqual(unpackUnsigned(packUnsigned(u, rows, cols, bits), rows, cols, bits), u);
      const q = Int8Array.from(u, (x) => x - (1 << (bits - 1)));
      assert.deepEqual(unpackSigned(packSigned(q, rows, cols, bits), rows, cols, bits), q);
    }
  }
});

test('GGUF blocks from codes = encodeBlocks of the values, Q4_0 and Q8_0', () => {
  const rows = 6;
  const cols = 96;
  for (const fmt of ['q4_0', 'q8_0'] as const) {
    const W = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.37) * (1 + (i % 11)));
    const { scales } = rtnQuantize(W, rows, cols, fmt);
    const q = gridCodes(W, scales, rows, cols, 32, fmt === 'q4_0' ? -8 : -127, fmt === 'q4_0' ? 7 : 127);
    const d = Uint16Array.from(scales, (s) => f16Bits(s));
    assert.deepEqual(ggufBlocksFromCodes(fmt, q, d, rows, cols), encodeBlocks(fmt, W, scales, rows, cols), fmt);
  }
});

test('gridCodes: codes of on-grid values, a value off its group grid named', () => {
  const W = Float32Array.from([0.5, 1, -1.5, 0, 0.75, -2]);
  assert.deepEqual(Array.from(gridCodes(W, [0.25, 0.5, 0.25], 1, 6, 2, -8, 7)), [2, 4, -3, 0, 3, -8]);
  assert.throws(() => gridCodes(Float32Array.from([0.5, 0.3]), [0.25], 1, 2, 2, -8, 7), /value 0\.3\d* at \[0, 1\] is not on the grid/);
  assert.throws(
    () => gridCodes(Float32Array.from([0.5, 2.25]), [0.25], 1, 2, 2, -8, 7),
    /value 2\.25 at \[0, 1\]/,
    'code 9 is outside [−8, 7]',
  );
});

test("GGUF Q4_0 / Q8_0 blocks → packed codes and d → the same blocks (llama.cpp's quantizer, with an importance matrix, a zero block's −0 d)", () => {
  const rows = 5;
  const cols = 128;
  const W = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.71) * (1 + (i % 13)) * (i % 97 === 0 ? 9 : 1));
  W.fill(0, 32, 64); // an all-zero block: Q4_0's d is max / −8 = −0
  const imatrix = Float32Array.from({ length: cols }, (_, c) => 0.1 + ((c * 37) % 11));
  for (const type of ['Q4_0', 'Q8_0'] as const) {
    const fmt = type === 'Q4_0' ? 'q4_0' : 'q8_0';
    const bits = type === 'Q4_0' ? 4 : 8;
    for (const im of [undefined, imatrix]) {
      const blocks = quantizeRows(type, W, rows, cols, im);
      const { packed, d } = packedFromGgufBlocks(fmt, blocks, rows, cols);
      assert.equal(packed.length, rows * packedRowBytes(cols, bits));
      assert.deepEqual(
        ggufBlocksFromCodes(fmt, unpackSigned(packed, rows, cols, bits), d, rows, cols),
        blocks,
        `${type}${im ? ' + imatrix' : ''}`,
      );
      // The packed codes times the scales are the blocks' values.
      const values = dequantizeRows(type, blocks, rows * cols);
      const q = unpackSigned(packed, rows, cols, bits);
      for (let i = 0; i < q.length; i++) assert.equal(f16Value(d[i >> 5]!) * q[i]! + 0, values[i], `${type} [${i}]`);
    }
  }
  assert.equal(packedFromGgufBlocks('q4_0', quantizeRows('Q4_0', W, rows, cols), rows, cols).d[1], 0x8000, 'a −0 d is kept');
});
