import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DTYPE_SIZES, bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, findNonFinite, isFloatDtype } from '../../src/io/dtype.ts';

/** float32 values from bit patterns. */
function f32(...bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}
function bitsOf(a: Float32Array): number[] {
  return [...new Uint32Array(a.buffer, a.byteOffset, a.length)];
}
function hex(a: ArrayLike<number>): string[] {
  return Array.from(a, (x) => '0x' + x.toString(16));
}

/** A deterministic xorshift generator of u32s. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

test('DTYPE_SIZES and isFloatDtype', () => {
  assert.deepEqual(Object.keys(DTYPE_SIZES).sort(), [
    'BF16',
    'BOOL',
    'F16',
    'F32',
    'F64',
    'F8_E4M3',
    'F8_E5M2',
    'I16',
    'I32',
    'I64',
    'I8',
    'U16',
    'U32',
    'U64',
    'U8',
  ]);
  assert.equal(DTYPE_SIZES.BF16, 2);
  assert.equal(DTYPE_SIZES.F64, 8);
  assert.equal(DTYPE_SIZES.U64, 8);
  assert.equal(DTYPE_SIZES.BOOL, 1);
  assert.equal(DTYPE_SIZES.F8_E4M3, 1);
  for (const d of ['F64', 'F32', 'F16', 'BF16', 'F8_E4M3', 'F8_E5M2']) assert.equal(isFloatDtype(d), true, d);
  for (const d of ['I64', 'I32', 'U8', 'BOOL', 'U16', 'nope']) assert.equal(isFloatDtype(d), false, d);
});

test('bf16: round to nearest even on ties and non-ties', () => {
  const cases: [number, number][] = [
    [0x3f808000, 0x3f80], // tie, lower is even → down
    [0x3f818000, 0x3f82], // tie, lower is odd → up
    [0x3f808001, 0x3f81], // above tie → up
    [0x3f807fff, 0x3f80], // below tie → down
    [0xbf818000, 0xbf82], // negative tie → away from zero to even
    [0x3f800000, 0x3f80],
    [0x00000000, 0x0000],
    [0x80000000, 0x8000],
    [0x7f800000, 0x7f80], // +Inf
    [0xff800000, 0xff80], // -Inf
    [0x7f7fffff, 0x7f80], // largest f32 rounds up to Inf
    [0x00008000, 0x0000], // subnormal tie → even (0)
    [0x00018000, 0x0002], // subnormal tie → even (2)
  ];
  const out = f32ToBf16(f32(...cases.map((c) => c[0])));
  assert.deepEqual(hex(out), hex(cases.map((c) => c[1])));
});

test('bf16: NaN stays a quiet NaN', () => {
  const out = f32ToBf16(f32(0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0x7f80ffff));
  for (const h of out) {
    assert.equal(h & 0x7f80, 0x7f80, hex([h])[0]);
    assert.ok((h & 0x7f) !== 0, 'still NaN');
    assert.ok((h & 0x40) !== 0, 'quiet bit set');
  }
  assert.equal(out[0], 0x7fc0);
  assert.equal(out[2]! & 0x8000, 0x8000, 'sign kept');
  assert.ok(Number.isNaN(bf16ToF32(out)[1]!));
});

test('bf16: every bf16 pattern survives bf16 → f32 → bf16', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const wide = bf16ToF32(all);
  const back = f32ToBf16(wide);
  for (let h = 0; h < 65536; h++) {
    const isNanBits = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    if (isNanBits) assert.equal(back[h], h | 0x40);
    else if (back[h] !== h) assert.fail(`0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
  }
  assert.equal(wide[0x3f80], 1);
  assert.equal(wide[0xc000], -2);
});

test('bf16: random f32 values round to the nearest bf16 (ties to even)', () => {
  const next = rng(7);
  const n = 20000;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    let u = next();
    if ((u & 0x7f800000) === 0x7f800000) u &= 0xbfffffff; // keep finite
    if (i % 4 === 0) u = (u & 0xffff0000) | 0x8000; // force ties
    bits[i] = u;
  }
  const src = new Float32Array(bits.buffer);
  const got = f32ToBf16(src);
  const wide = bf16ToF32(got);
  for (let i = 0; i < n; i++) {
    const x = src[i]!;
    const lo = bits[i]! >>> 16;
    const cand = [lo, lo + 1]; // truncation and the next pattern away from zero
    const vals = Array.from(bf16ToF32(new Uint16Array(cand)));
    // IEEE overflow: the step past the largest finite bf16 is 2^128, which becomes ±Inf
    if (!Number.isFinite(vals[1]!)) vals[1] = Math.sign(vals[1]!) * 2 ** 128;
    const d0 = Math.abs(vals[0]! - x);
    const d1 = Math.abs(vals[1]! - x);
    const want = d0 < d1 ? cand[0] : d1 < d0 ? cand[1] : (cand[0]! & 1) === 0 ? cand[0] : cand[1];
    if (got[i] !== want) assert.fail(`f32 0x${bits[i]!.toString(16)}: got 0x${got[i]!.toString(16)}, want 0x${want!.toString(16)}`);
    // the rounding error is at most half a bf16 ulp
    if (Number.isFinite(wide[i]!)) assert.ok(Math.abs(wide[i]! - x) <= Math.abs(vals[1]! - vals[0]!) / 2);
  }
});

test('f16 → f32: exact values including subnormals, Inf, NaN', () => {
  const h = new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555]);
  const f = f16ToF32(h);
  assert.equal(f[0], 1);
  assert.equal(f[1], -2);
  assert.equal(f[2], 65504);
  assert.equal(f[3], 2 ** -24);
  assert.equal(f[4], 1023 * 2 ** -24);
  assert.equal(f[5], 2 ** -14);
  assert.ok(Object.is(f[6], -0));
  assert.equal(f[7], Infinity);
  assert.equal(f[8], -Infinity);
  assert.ok(Number.isNaN(f[9]!));
  assert.equal(f[10], 0.333251953125);
});

test('f32 → f16: rounding, subnormals, overflow', () => {
  const xs = [
    1,
    -2,
    65504,
    65519, // below the tie with the next (virtual) step → 65504
    65520, // tie between 65504 (odd) and 2^16 → even → Inf
    1e6,
    -1e6,
    Infinity,
    -Infinity,
    2 ** -24, // smallest subnormal
    2 ** -25, // exactly half of it: tie → 0
    2 ** -25 * (1 + 2 ** -23), // just above the tie → smallest subnormal
    3 * 2 ** -25, // tie between 1 and 2 subnormal units → 2
    5 * 2 ** -25, // tie between 2 and 3 → 2
    2 ** -26,
    1e-30,
    -(2 ** -24),
    2 ** -14 - 2 ** -25, // tie between largest subnormal (odd) and smallest normal → normal
    1 + 2 ** -11, // tie, 1.0 is even → 1
    1 + 3 * 2 ** -11, // tie, odd → up
    -0,
  ];
  const want = [
    0x3c00, 0xc000, 0x7bff, 0x7bff, 0x7c00, 0x7c00, 0xfc00, 0x7c00, 0xfc00, 0x0001, 0x0000, 0x0001, 0x0002, 0x0002, 0x0000, 0x0000, 0x8001,
    0x0400, 0x3c00, 0x3c02, 0x8000,
  ];
  assert.deepEqual(hex(f32ToF16(new Float32Array(xs))), hex(want));
});

test('f16: NaN stays a quiet NaN', () => {
  const out = f32ToF16(f32(0x7fc00000, 0x7f800001, 0xffc00000, 0x7f802000));
  for (const h of out) {
    assert.equal(h & 0x7c00, 0x7c00);
    assert.ok((h & 0x3ff) !== 0, 'still NaN');
    assert.ok((h & 0x200) !== 0, 'quiet');
  }
  assert.equal(out[2]! & 0x8000, 0x8000);
  assert.ok(Number.isNaN(f16ToF32(out)[0]!));
});

test('f16: every half pattern survives f16 → f32 → f16', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const back = f32ToF16(f16ToF32(all));
  for (let h = 0; h < 65536; h++) {
    const isNanBits = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    const want = isNanBits ? h | 0x200 : h;
    if (back[h] !== want) assert.fail(`0x${h.toString(16)} came back as 0x${back[h]!.toString(16)}`);
  }
});

test('f16: random f32 values round to the nearest half (oracle: search over all halves)', () => {
  // All non-negative finite halves, ascending, with 2^16 standing in for Inf (the RNE overflow rule).
  const pos = new Uint16Array(0x7c01).map((_, i) => i);
  const vals = Array.from(f16ToF32(pos));
  vals[0x7c00] = 65536;
  const nearest = (x: number): number => {
    const a = Math.abs(x);
    if (a >= 65536) return 0x7c00;
    let lo = 0;
    let hi = 0x7c00;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (vals[mid]! <= a) lo = mid;
      else hi = mid;
    }
    const d0 = a - vals[lo]!;
    const d1 = vals[hi]! - a;
    return d0 < d1 ? lo : d1 < d0 ? hi : (lo & 1) === 0 ? lo : hi;
  };
  const next = rng(11);
  const n = 20000;
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    // exponents around the half range: 2^-28 … 2^17
    const e = 99 + (next() % 46);
    bits[i] = (next() & 0x807fffff) | (e << 23);
    if (i % 4 === 0) bits[i] = (bits[i]! & 0xffffe000) | 0x1000; // normal-range ties
  }
  const src = new Float32Array(bits.buffer);
  const got = f32ToF16(src);
  for (let i = 0; i < n; i++) {
    const x = src[i]!;
    const want = nearest(x) | (x < 0 ? 0x8000 : 0);
    if (got[i] !== want) assert.fail(`f32 ${x} (0x${bits[i]!.toString(16)}): got 0x${got[i]!.toString(16)}, want 0x${want.toString(16)}`);
  }
});

test('conversions accept views at a non-zero offset', () => {
  const backing = new Float32Array([9, 1.5, -2.25, 9]);
  const view = backing.subarray(1, 3);
  assert.deepEqual(Array.from(bf16ToF32(f32ToBf16(view))), [1.5, -2.25]);
  assert.deepEqual(Array.from(f16ToF32(f32ToF16(view))), [1.5, -2.25]);
  const h = new Uint16Array([0, 0x3c00, 0x4000]).subarray(1);
  assert.deepEqual(Array.from(f16ToF32(h)), [1, 2]);
  assert.deepEqual(Array.from(bf16ToF32(new Uint16Array([0, 0x3f80]).subarray(1))), [1]);
});

test('findNonFinite', () => {
  assert.equal(findNonFinite(new Float32Array([1, 2, 3])), -1);
  assert.equal(findNonFinite(new Float32Array([])), -1);
  assert.equal(findNonFinite(new Float32Array([1, NaN, Infinity])), 1);
  assert.equal(findNonFinite(new Float32Array([1, 3.4e38, -Infinity])), 2);
  assert.equal(findNonFinite(new Float32Array([0, 1, 2, NaN]).subarray(1)), 2);
});
