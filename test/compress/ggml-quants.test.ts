/**
 * ggml's block types in TypeScript (src/compress/ggml-quants.ts) on their own terms — the bytes
 * against llama-quantize are test/export/llamacpp-goldens.test.ts:
 *   - nearest_int rounds half to even, as ggml's bit trick;
 *   - dequantize(quantize(x)) is within two steps of x (no matrix), the codes round-trip through the byte layout,
 *     and the header read back as a grid reproduces dequantization exactly;
 *   - the grid walk GPTQ uses, run without error feedback, IS llama.cpp's quantizer for the k-quants
 *     (same header, and its nearest-code rule is llama's requantization);
 *   - GPTQ onto Q4_K / Q6_K / Q3_K: the bytes dequantize to W exactly, and beat RTN on anisotropic
 *     inputs (with and without an importance matrix); joint SparseGPT 50% + a symmetric k-quant keeps
 *     every masked weight at exactly 0.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  blockGrid,
  dequantizeRows,
  GGML_QUANT_TRAITS,
  GGML_QUANT_TYPES,
  GridWalk,
  gridValue,
  nearestInt,
  packCodes,
  quantizeRows,
  rowBytes,
  unpackCodes,
  type GgmlQuantType,
} from '../../src/compress/ggml-quants.ts';
import { jsGemm } from '../../src/compress/gemm.ts';
import { gptqQuantize } from '../../src/compress/gptq.ts';
import { countZeros } from '../../src/compress/masks.ts';
import { outputError } from '../../src/compress/metrics.ts';
import { sparsegptPrune } from '../../src/compress/sparsegpt.ts';
import { anisotropicInputs, gram64, randn, rng } from './helpers.ts';

const K_TYPES: GgmlQuantType[] = ['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'];
/** Largest code step relative to the block's range (bits of each type's codes). */
const LEVELS: Record<GgmlQuantType, number> = { Q4_0: 15, Q5_0: 31, Q5_1: 31, Q8_0: 254, Q2_K: 3, Q3_K: 7, Q4_K: 15, Q5_K: 31, Q6_K: 63 };

function weights(rows: number, cols: number, seed: number): Float32Array {
  const W = randn(rows * cols, seed);
  const u = rng(seed + 1);
  for (let i = 0; i < W.length; i++) {
    W[i] = W[i]! * 0.02 * (1 + 4 * u());
    if (i % 97 === 0) W[i] = W[i]! * 8; // outliers
  }
  W.fill(0, 0, 32); // an all-zero (sub-)block
  return W;
}

test('nearest_int: ggml bit trick, round half to even, inside and outside ±2²²', () => {
  for (const [x, want] of [
    [0.5, 0],
    [1.5, 2],
    [2.5, 2],
    [-0.5, -0],
    [-1.5, -2],
    [-2.5, -2],
    [3.49, 3],
    [-3.51, -4],
    [4194303, 4194303],
  ] as const)
    assert.equal(nearestInt(Math.fround(x)) + 0, want + 0, `nearest_int(${x})`);
  // beyond ±2²² the bit trick wraps as C does: 2²³ + 12582912 = 1.25·2²⁴, mantissa 0x200000
  assert.equal(nearestInt(8388608), 0x200000 - 0x400000);
});

test('every type: quantize → dequantize within two steps; codes round-trip; header grid = dequantization', () => {
  const [rows, cols] = [6, 512];
  const W = weights(rows, cols, 5);
  const im = Float32Array.from({ length: cols }, (_, i) => 0.1 + (i % 13));
  for (const t of GGML_QUANT_TYPES) {
    for (const imatrix of [undefined, im]) {
      const what = `${t}${imatrix ? ' + imatrix' : ''}`;
      const bytes = quantizeRows(t, W, rows, cols, imatrix);
      assert.equal(bytes.length, rows * rowBytes(t, cols), `${what}: bytes`);
      const D = dequantizeRows(t, bytes, W.length);
      const { block, bytes: bb } = GGML_QUANT_TRAITS[t];
      for (let b = 0; b < W.length / block; b++) {
        let lo = 0;
        let hi = 0;
        for (let i = 0; i < block; i++) [lo, hi] = [Math.min(lo, W[b * block + i]!), Math.max(hi, W[b * block + i]!)];
        // two steps of the block's range (the 6-bit sub-scales round and clamp); with a matrix the
        // weighted fit may clip weights it deems unimportant, so only the block's range bounds it
        const tol = (imatrix ? hi - lo : (2 * (hi - lo)) / LEVELS[t]) + 1e-7;
        for (let i = 0; i < block; i++) {
          const e = Math.abs(D[b * block + i]! - W[b * block + i]!);
          assert.ok(e <= tol, `${what} block ${b} [${i}]: |Δ| ${e} > ${tol}`);
          if (D[b * block + i] === 0) assert.ok(!Object.is(D[b * block + i], -0), `${what}: −0`);
        }
        // codes: unpack → pack gives the same bytes; the grid of the header gives the same values
        const L = new Int32Array(block);
        unpackCodes(t, bytes, b * bb, L);
        const copy = bytes.slice(b * bb, (b + 1) * bb);
        packCodes(t, copy, 0, L);
        assert.deepEqual(copy, bytes.subarray(b * bb, (b + 1) * bb), `${what} block ${b}: pack(unpack)`);
        const g = blockGrid(t, bytes, b * bb);
        for (let i = 0; i < block; i++) assert.equal(gridValue(g, i, L[i]!), D[b * block + i], `${what} block ${b} [${i}]: grid value`);
      }
      // the all-zero sub-block dequantizes to zeros
      for (let i = 0; i < 32; i++) assert.ok(Object.is(D[i], 0), `${what}: zero [${i}] → ${D[i]}`);
    }
  }
});

test("the k-quants' grid walk without error feedback is llama.cpp's quantizer, byte for byte", () => {
  const [rows, cols] = [4, 768];
  const W = weights(rows, cols, 9);
  W.fill(0, 256, 256 + 16); // d = 0 for one sub-block of the second super-block: llama keeps its first codes there
  const im = Float32Array.from({ length: cols }, (_, i) => ((i * 7) % 11) + 0.5);
  for (const t of K_TYPES) {
    for (const imatrix of [undefined, im]) {
      const walk = new GridWalk(t, rows, cols, W, imatrix);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          if (c % 256 === 0) walk.start(r, c / 256, (i) => W[r * cols + c + i]!);
          walk.round(r, c, W[r * cols + c]!);
        }
      }
      const got = walk.blocks();
      const want = quantizeRows(t, W, rows, cols, imatrix);
      // Sub-blocks whose scale is 0 dequantize alike whatever their codes: compare the values
      // everywhere, the bytes wherever a sub-block has a scale.
      assert.deepEqual(dequantizeRows(t, got, W.length), dequantizeRows(t, want, W.length), `${t}${imatrix ? ' + imatrix' : ''}: values`);
      let diff = 0;
      for (let i = 0; i < got.length; i++) if (got[i] !== want[i]) diff++;
      assert.ok(
        diff <= GGML_QUANT_TRAITS[t].bytes,
        `${t}${imatrix ? ' + imatrix' : ''}: ${diff} bytes differ (only the zero sub-block's codes may)`,
      );
    }
  }
});

test('GPTQ onto k-quant grids: exact bytes, better than RTN; joint 50% + Q3_K/Q6_K keeps masked weights at 0', async () => {
  const [rows, cols, n] = [16, 512, 800];
  const X = anisotropicInputs(n, cols, 31);
  const H = Float32Array.from(gram64(X, n, cols, 2 / n));
  const W0 = randn(rows * cols, 32);
  const diag = Float32Array.from({ length: cols }, (_, j) => H[j * cols + j]! / 2); // mean x² per column: an importance matrix
  const ratios: string[] = [];
  for (const t of ['Q3_K', 'Q4_K', 'Q6_K'] as const) {
    for (const imatrix of [undefined, diag]) {
      const G = W0.slice();
      const rep = await gptqQuantize(G, rows, cols, H, t, jsGemm, imatrix ? { imatrix } : {});
      assert.deepEqual(dequantizeRows(t, rep.blocks, G.length), G, `${t}: W is the dequantized bytes`);
      const R = dequantizeRows(t, quantizeRows(t, W0, rows, cols, imatrix), W0.length);
      const eG = outputError(W0, G, H, rows, cols);
      const eR = outputError(W0, R, H, rows, cols);
      ratios.push(`${t}${imatrix ? '+im' : ''} ${(eG / eR).toFixed(3)}`);
      assert.ok(eG < 0.9 * eR, `${t}${imatrix ? ' + imatrix' : ''}: GPTQ ${eG} vs RTN ${eR}`);
    }
    // blocksize 128 < 256: a super-block's grid is fixed at its start from the updated weights
    const G128 = W0.slice();
    const r128 = await gptqQuantize(G128, rows, cols, H, t, jsGemm, { blocksize: 128 });
    assert.deepEqual(dequantizeRows(t, r128.blocks, G128.length), G128);
  }
  await assert.rejects(gptqQuantize(W0.slice(), rows, cols, H, 'Q4_K', jsGemm, { blocksize: 96 }), /blocksize that divides 256/);
  for (const t of ['Q3_K', 'Q6_K'] as const) {
    const J = W0.slice();
    const rep = await sparsegptPrune(J, rows, cols, H, { kind: 'unstructured', sparsity: 0.5 }, jsGemm, { quant: t, blocksize: 256 });
    assert.deepEqual(dequantizeRows(t, rep.blocks!, J.length), J);
    assert.ok(countZeros(J) >= 0.5 * J.length, `${t}: ${countZeros(J)} zeros of ${J.length}`);
  }
  process.stderr.write(`GPTQ / RTN output error on anisotropic inputs: ${ratios.join(', ')}\n`);
});
