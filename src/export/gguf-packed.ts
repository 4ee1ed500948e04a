/**
 * GGUF blocks straight from a compressed-tensors Linear (io/compressed-tensors.ts), without a
 * round trip through floats: symmetric int4 (int8) with group size 32 and f16-exact scales is
 * Q4_0 (Q8_0) — the scale is the block's d, the code q its nibble − 8 (its int8). This is how
 * `rac export-gguf` writes the Linears of rac's own quantized output, bit for bit. Any other scheme
 * (group 128, zero points, g_idx, 8-bit into Q4_0, …) returns null: the export then rounds the
 * dequantized weights to the grid as llama.cpp's reference quantizer does.
 */
import { ggufBlocksFromCodes, unpackSigned } from '../compress/int-packing.ts';
import { f16Bits, f16Value, type QuantFormat } from '../compress/quant-grids.ts';
import type { PackedLinear } from '../io/compressed-tensors.ts';

/**
 * The GGUF blocks of `p` on grid `fmt`, rows permuted for the llama q/k rope order when `heads`
 * > 0 (row h·hd + 2i + j ← h·hd + j·hd/2 + i, as export/gguf.ts permuteQk), or null when the
 * packed codes are not that grid's.
 */
export function packedGgufBlocks(p: PackedLinear, fmt: QuantFormat, heads: number): Uint8Array | null {
  const bits = fmt === 'q4_0' ? 4 : 8;
  if (p.bits !== bits || p.groupSize !== 32 || p.zeroPoints || p.gIdx || p.cols % 32 !== 0) return null;
  const d = new Uint16Array(p.scales.length);
  for (let i = 0; i < d.length; i++) {
    const s = p.scales[i]!;
    d[i] = f16Bits(s);
    if (f16Value(d[i]!) !== s) return null;
  }
  const blocks = ggufBlocksFromCodes(fmt, unpackSigned(p.packed, p.rows, p.cols, bits), d, p.rows, p.cols);
  if (heads === 0) return blocks;
  const rowBytes = blocks.length / p.rows;
  const hd = p.rows / heads;
  const half = hd / 2;
  const out = new Uint8Array(blocks.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++) {
        const src = h * hd + j * half + i;
        out.set(blocks.subarray(src * rowBytes, (src + 1) * rowBytes), (h * hd + 2 * i + j) * rowBytes);
      }
  return out;
}
