/**
 * ggml's block quantization types, byte for byte as llama.cpp writes them: Q4_0, Q5_0, Q5_1, Q8_0
 * and the k-quants Q2_K … Q6_K, with and without an importance matrix — a translation of
 * ggml/src/ggml-quants.c (`quantize_row_*_ref`, `quantize_row_*_impl` and their helpers
 * `make_qx_quants`, `make_q3_quants`, `make_qkx2_quants`, `make_qkx3_quants`, `make_qp_quants`)
 * and of the `dequantize_row_*` functions.
 *
 * Byte equality with `llama-quantize` is the bar, so the float32 arithmetic is the C code's, in its
 * order: every float operation is rounded with Math.fround (an f32 op computed in f64 and rounded
 * once is the f32 op: double has more than 2·24 + 2 bits), integer stores wrap as in the C types
 * (Uint8Array / Int8Array), and `nearest_int` is ggml's bit trick (round half to even). ggml-base
 * is compiled without FMA (no -march flags), so nothing is fused. Shapes follow ggml: a row of
 * `cols` weights is cols/B blocks of B = 32 (legacy types) or 256 (k-quants, "super-blocks").
 *
 * The quantizer of each type writes a block in two parts: a header (scales, mins, super-scales)
 * and the codes. `blockGrid` reads a header back as each element's grid (value = dl·(L − off) for
 * symmetric types, dl·L + bl for types with a min), which is what dequantization computes and what
 * GPTQ rounds onto (compress/sparsegpt.ts): the header from llama.cpp's own choice on the current
 * weights, the codes from the walk (`packCodes`).
 */
import { f16Bits, f16Value } from './quant-grids.ts';

/** The ggml block types rac quantizes to. */
export type GgmlQuantType = 'Q4_0' | 'Q5_0' | 'Q5_1' | 'Q8_0' | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K';
export const GGML_QUANT_TYPES: readonly GgmlQuantType[] = ['Q4_0', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'];

/** ggml type traits: the type id in a GGUF tensor info, weights per block, bytes per block. */
export const GGML_QUANT_TRAITS: Record<GgmlQuantType, { id: number; block: number; bytes: number }> = {
  Q4_0: { id: 2, block: 32, bytes: 18 },
  Q5_0: { id: 6, block: 32, bytes: 22 },
  Q5_1: { id: 7, block: 32, bytes: 24 },
  Q8_0: { id: 8, block: 32, bytes: 34 },
  Q2_K: { id: 10, block: 256, bytes: 84 },
  Q3_K: { id: 11, block: 256, bytes: 110 },
  Q4_K: { id: 12, block: 256, bytes: 144 },
  Q5_K: { id: 13, block: 256, bytes: 176 },
  Q6_K: { id: 14, block: 256, bytes: 210 },
};

export function isGgmlQuantType(s: string): s is GgmlQuantType {
  return (GGML_QUANT_TYPES as readonly string[]).includes(s);
}

/** Bits per weight of a type (block bytes · 8 / block). */
export function bitsPerWeight(t: GgmlQuantType): number {
  const { block, bytes } = GGML_QUANT_TRAITS[t];
  return (bytes * 8) / block;
}

/** Bytes of one row of `cols` weights. */
export function rowBytes(t: GgmlQuantType, cols: number): number {
  const { block, bytes } = GGML_QUANT_TRAITS[t];
  if (cols % block !== 0) throw new RangeError(`${t}: a row of ${cols} weights is not a multiple of its ${block}-weight block`);
  return (cols / block) * bytes;
}

const QK_K = 256;
const GROUP_MAX_EPS = Math.fround(1e-15);
const f = Math.fround;

// ------------------------------------------------------------------------------------------------
// f32 helpers

const nb32 = new Float32Array(1);
const ni32 = new Int32Array(nb32.buffer);

/**
 * ggml's nearest_int: (bits of (fval + 12582912.f) & 0x7fffff) − 0x400000, round half to even.
 * Inside ±2²² that is the f32 sum minus 12582912; outside (and for NaN) the bit trick itself.
 */
export function nearestInt(fval: number): number {
  if (fval > -4194304 && fval < 4194304) return Math.fround(fval + 12582912) - 12582912;
  nb32[0] = fval + 12582912; // the f32 store rounds the f64 sum once: the f32 addition
  return (ni32[0]! & 0x007fffff) - 0x00400000;
}

const h2f = (h: number): number => f16Value(h);
const f2h = (x: number): number => f16Bits(x);

function setHalf(y: Uint8Array, at: number, h: number): void {
  y[at] = h & 0xff;
  y[at + 1] = h >>> 8;
}
function getHalf(y: Uint8Array, at: number): number {
  return y[at]! | (y[at + 1]! << 8);
}

/** C's (int8_t)(float): truncation toward zero, then the low byte as signed. */
function truncInt8(v: number): number {
  return (Math.trunc(v) << 24) >> 24;
}

// ------------------------------------------------------------------------------------------------
// make_* helpers (ggml-quants.c), on subarrays

/** make_qx_quants: symmetric codes L = l + nmax, l ∈ [−nmax, nmax − 1]; returns the scale. */
function makeQxQuants(n: number, nmax: number, x: Float32Array, L: Int8Array, rmseType: number, qw: Float32Array | null): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]!);
    if (ax > amax) {
      amax = ax;
      max = x[i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f(-nmax / max);
  if (rmseType === 0) {
    for (let i = 0; i < n; i++) {
      const l = nearestInt(f(iscale * x[i]!));
      L[i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
    }
    return f(1 / iscale);
  }
  let returnEarly = false;
  if (rmseType < 0) {
    rmseType = -rmseType;
    returnEarly = true;
  }
  const weight = (i: number): number => {
    const xi = x[i]!;
    if (qw) return qw[i]!;
    if (rmseType === 1) return f(xi * xi);
    if (rmseType === 2) return 1;
    if (rmseType === 3) return Math.abs(xi);
    return f(Math.sqrt(Math.abs(xi)));
  };
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    let l = nearestInt(f(iscale * x[i]!));
    l = Math.max(-nmax, Math.min(nmax - 1, l));
    L[i] = l + nmax;
    const w = weight(i);
    sumlx = f(sumlx + f(f(w * x[i]!) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 ? f(sumlx / suml2) : 0;
  if (returnEarly) return suml2 > 0 ? f(0.5 * f(scale + f(1 / iscale))) : f(1 / iscale);
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      let l = nearestInt(f(iscale * x[i]!));
      l = Math.max(-nmax, Math.min(nmax - 1, l));
      const w = weight(i);
      sumlx = f(sumlx + f(f(w * x[i]!) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) {
        const l = nearestInt(f(iscale * x[i]!));
        L[i] = nmax + Math.max(-nmax, Math.min(nmax - 1, l));
      }
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/** make_q3_quants (Q3_K's reference quantizer, do_rmse = true). */
function makeQ3Quants(n: number, nmax: number, x: Float32Array, L: Int8Array): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[i]!);
    if (ax > amax) {
      amax = ax;
      max = x[i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  const iscale = f(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    let l = nearestInt(f(iscale * x[i]!));
    l = Math.max(-nmax, Math.min(nmax - 1, l));
    L[i] = l;
    const w = f(x[i]! * x[i]!);
    sumlx = f(sumlx + f(f(w * x[i]!) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let nChanged = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[i]!;
      const w = f(xi * xi);
      let slx = f(sumlx - f(f(w * xi) * L[i]!));
      if (slx > 0) {
        let sl2 = f(suml2 - f(f(w * L[i]!) * L[i]!));
        let newL = nearestInt(f(f(xi * sl2) / slx));
        newL = Math.max(-nmax, Math.min(nmax - 1, newL));
        if (newL !== L[i]) {
          slx = f(slx + f(f(w * xi) * newL));
          sl2 = f(sl2 + f(f(w * newL) * newL));
          if (sl2 > 0 && f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            L[i] = newL;
            sumlx = slx;
            suml2 = sl2;
            nChanged++;
          }
        }
      }
    }
    if (!nChanged) break;
  }
  for (let i = 0; i < n; i++) L[i]! += nmax;
  return suml2 > 0 ? f(sumlx / suml2) : 0;
}

/**
 * make_qkx2_quants / make_qkx3_quants (they differ only where x3 takes `weights = NULL` as x² and
 * tests `max <= min`): codes L ∈ [0, nmax] of x ≈ scale·L − min; returns [scale, the_min].
 */
function makeQkxQuants(
  x3: boolean,
  n: number,
  nmax: number,
  x: Float32Array,
  weights: Float32Array | null,
  L: Uint8Array,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
  useMad: boolean,
): [number, number] {
  const wOf = (i: number): number => (weights ? weights[i]! : f(x[i]! * x[i]!));
  rmin = f(rmin); // the C literals are floats (-0.9f, 0.05f, …)
  rdelta = f(rdelta);
  let min = x[0]!;
  let max = x[0]!;
  let sumW = wOf(0);
  let sumX = f(sumW * x[0]!);
  for (let i = 1; i < n; i++) {
    if (x[i]! < min) min = x[i]!;
    if (x[i]! > max) max = x[i]!;
    const w = wOf(i);
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * x[i]!));
  }
  if (min > 0) min = 0;
  if (x3 ? max <= min : max === min) {
    L.fill(0, 0, n);
    return [0, -min];
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestInt(f(iscale * f(x[i]! - min)));
    L[i] = Math.max(0, Math.min(nmax, l));
    let diff = f(f(f(scale * L[i]!) + min) - x[i]!);
    diff = useMad ? Math.abs(diff) : f(diff * diff);
    bestError = f(bestError + f(wOf(i) * diff));
  }
  if (nstep < 1) return [scale, -min];
  for (let is = 0; is <= nstep; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      let l = nearestInt(f(iscale * f(x[i]! - min)));
      l = Math.max(0, Math.min(nmax, l));
      Laux[i] = l;
      const w = wOf(i);
      sumL = f(sumL + f(w * l));
      sumL2 = f(sumL2 + f(f(w * l) * l));
      sumXL = f(sumXL + f(f(w * l) * x[i]!));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        let diff = f(f(f(thisScale * Laux[i]!) + thisMin) - x[i]!);
        diff = useMad ? Math.abs(diff) : f(diff * diff);
        curError = f(curError + f(wOf(i) * diff));
      }
      if (curError < bestError) {
        for (let i = 0; i < n; i++) L[i] = Laux[i]!;
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** make_qp_quants: non-negative codes L ∈ [0, nmax] of the scales/mins of a super-block; returns the scale. */
function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, qw: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, x[i]!); // (x are finite: MAX(max, x) = Math.max)
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(f(iscale * x[i]!));
  const scale = f(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f(x[i]! - f(scale * L[i]!));
    bestMse = f(bestMse + f(f(qw[i]! * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f(f(f(f(0.1) * is) + nmax) / max);
    const scaleIs = f(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      let l = nearestInt(f(iscaleIs * x[i]!));
      l = Math.min(nmax, l);
      const diff = f(x[i]! - f(scaleIs * l));
      mse = f(mse + f(f(qw[i]! * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    let l = nearestInt(f(iscale * x[i]!));
    l = Math.min(nmax, l);
    L[i] = l;
    const w = qw[i]!;
    sumlx = f(sumlx + f(f(w * x[i]!) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let nChanged = 0;
    for (let i = 0; i < n; i++) {
      const w = qw[i]!;
      let slx = f(sumlx - f(f(w * x[i]!) * L[i]!));
      let sl2 = f(suml2 - f(f(w * L[i]!) * L[i]!));
      if (slx > 0 && sl2 > 0) {
        let newL = nearestInt(f(f(x[i]! * sl2) / slx));
        newL = Math.min(nmax, newL);
        if (newL !== L[i]) {
          slx = f(slx + f(f(w * x[i]!) * newL));
          sl2 = f(sl2 + f(f(w * newL) * newL));
          if (f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            L[i] = newL;
            sumlx = slx;
            suml2 = sl2;
            nChanged++;
          }
        }
      }
    }
    if (!nChanged) break;
  }
  return suml2 > 0 ? f(sumlx / suml2) : 0;
}

/** get_scale_min_k4: the 6-bit scale and min of sub-block j of a Q4_K/Q5_K header. */
function scaleMinK4(j: number, q: Uint8Array, at: number): [number, number] {
  if (j < 4) return [q[at + j]! & 63, q[at + j + 4]! & 63];
  return [(q[at + j + 4]! & 0xf) | ((q[at + j - 4]! >> 6) << 4), (q[at + j + 4]! >> 4) | ((q[at + j]! >> 6) << 4)];
}

// ------------------------------------------------------------------------------------------------
// Block layouts (ggml-common.h), byte offsets inside one block

/** Q2_K: scales[16] · qs[64] · d · dmin. */
const Q2K = { scales: 0, qs: 16, d: 80, dmin: 82 };
/** Q3_K: hmask[32] · qs[64] · scales[12] · d. */
const Q3K = { hmask: 0, qs: 32, scales: 96, d: 108 };
/** Q4_K: d · dmin · scales[12] · qs[128]. */
const Q4K = { d: 0, dmin: 2, scales: 4, qs: 16 };
/** Q5_K: d · dmin · scales[12] · qh[32] · qs[128]. */
const Q5K = { d: 0, dmin: 2, scales: 4, qh: 16, qs: 48 };
/** Q6_K: ql[128] · qh[64] · scales[16] (int8) · d. */
const Q6K = { ql: 0, qh: 128, scales: 192, d: 208 };

// ------------------------------------------------------------------------------------------------
// Per-type block quantizers: x (block weights) → y (block bytes at `yo`); qw: the block's
// importance weights (null: the reference quantizer); sigma2: the row's Σx²/n (legacy types).

interface Scratch {
  L: Uint8Array;
  Li: Int8Array;
  Laux: Uint8Array;
  w: Float32Array;
  sw: Float32Array;
  scales: Float32Array;
  mins: Float32Array;
  Ls: Uint8Array;
  Lm: Uint8Array;
  Lsi: Int8Array;
}
const scratch = (): Scratch => ({
  L: new Uint8Array(QK_K),
  Li: new Int8Array(QK_K),
  Laux: new Uint8Array(32),
  w: new Float32Array(32),
  sw: new Float32Array(16),
  scales: new Float32Array(16),
  mins: new Float32Array(16),
  Ls: new Uint8Array(16),
  Lm: new Uint8Array(16),
  Lsi: new Int8Array(16),
});
const S = scratch();

function packQ2Codes(y: Uint8Array, yo: number, L: ArrayLike<number>): void {
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      y[yo + Q2K.qs + j / 4 + l] = L[j + l]! | (L[j + l + 32]! << 2) | (L[j + l + 64]! << 4) | (L[j + l + 96]! << 6);
    }
  }
}

function quantizeQ2K(x: Float32Array, y: Uint8Array, yo: number, qw: Float32Array | null): void {
  const { L, Laux, w, scales, mins, sw, Ls, Lm } = S;
  const sc = y.subarray(yo + Q2K.scales, yo + Q2K.scales + 16);
  if (!qw) {
    const q4scale = 15;
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 16; j++) {
      const xs = x.subarray(16 * j, 16 * j + 16);
      for (let l = 0; l < 16; l++) w[l] = Math.abs(xs[l]!);
      const [s, m] = makeQkxQuants(false, 16, 3, xs, w, L.subarray(16 * j), Laux, -0.5, 0.1, 15, true);
      scales[j] = s;
      mins[j] = m;
      if (s > maxScale) maxScale = s;
      if (m > maxMin) maxMin = m;
    }
    if (maxScale > 0) {
      const iscale = f(q4scale / maxScale);
      for (let j = 0; j < 16; j++) sc[j] = nearestInt(f(iscale * scales[j]!));
      setHalf(y, yo + Q2K.d, f2h(f(maxScale / q4scale)));
    } else {
      sc.fill(0);
      setHalf(y, yo + Q2K.d, f2h(0));
    }
    if (maxMin > 0) {
      const iscale = f(q4scale / maxMin);
      for (let j = 0; j < 16; j++) sc[j]! |= nearestInt(f(iscale * mins[j]!)) << 4;
      setHalf(y, yo + Q2K.dmin, f2h(f(maxMin / q4scale)));
    } else setHalf(y, yo + Q2K.dmin, f2h(0));
  } else {
    sw.fill(0);
    let sumx2 = 0;
    for (let j = 0; j < QK_K; j++) sumx2 = f(sumx2 + f(x[j]! * x[j]!));
    const sigma2 = f(sumx2 / QK_K);
    for (let j = 0; j < 16; j++) {
      for (let l = 0; l < 16; l++) w[l] = f(qw[16 * j + l]! * f(Math.sqrt(f(sigma2 + f(x[16 * j + l]! * x[16 * j + l]!)))));
      for (let l = 0; l < 16; l++) sw[j] = f(sw[j]! + w[l]!);
      const [s, m] = makeQkxQuants(true, 16, 3, x.subarray(16 * j), w, L.subarray(16 * j), Laux, -0.9, 0.05, 36, false);
      scales[j] = s;
      mins[j] = m;
    }
    const dm = makeQpQuants(16, 15, scales, Ls, sw);
    const mm = makeQpQuants(16, 15, mins, Lm, sw);
    setHalf(y, yo + Q2K.d, f2h(dm));
    setHalf(y, yo + Q2K.dmin, f2h(mm));
    for (let j = 0; j < 16; j++) sc[j] = Ls[j]! | (Lm[j]! << 4);
  }
  const d0 = h2f(getHalf(y, yo + Q2K.d));
  const m0 = h2f(getHalf(y, yo + Q2K.dmin));
  for (let j = 0; j < 16; j++) {
    const d = f(d0 * (sc[j]! & 0xf));
    if (!d) continue;
    const dm = f(m0 * (sc[j]! >> 4));
    for (let ii = 0; ii < 16; ii++) {
      const l = nearestInt(f(f(x[16 * j + ii]! + dm) / d));
      L[16 * j + ii] = Math.max(0, Math.min(3, l));
    }
  }
  packQ2Codes(y, yo, L);
}

/** The signed 6-bit scale of sub-block j of a Q3_K header (value − 32 applied). */
function q3Scale(y: Uint8Array, so: number, j: number): number {
  let sc = j < 8 ? y[so + j]! & 0xf : y[so + j - 8]! >> 4;
  sc = ((sc | (((y[so + 8 + (j % 4)]! >> (2 * Math.floor(j / 4))) & 3) << 4)) << 24) >> 24;
  return sc - 32;
}

function packQ3Scale(y: Uint8Array, so: number, j: number, l: number): void {
  if (j < 8) y[so + j] = l & 0xf;
  else y[so + j - 8]! |= (l & 0xf) << 4;
  l >>= 4;
  y[so + (j % 4) + 8]! |= l << (2 * Math.floor(j / 4));
}

function packQ3Codes(y: Uint8Array, yo: number, L: ArrayLike<number>): void {
  const hm = yo + Q3K.hmask;
  y.fill(0, hm, hm + 32);
  let m = 0;
  let h = 1;
  const low = new Uint8Array(QK_K);
  for (let j = 0; j < QK_K; j++) {
    let l = L[j]!;
    if (l > 3) {
      y[hm + m]! |= h;
      l -= 4;
    }
    low[j] = l;
    if (++m === QK_K / 8) {
      m = 0;
      h <<= 1;
    }
  }
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      y[yo + Q3K.qs + j / 4 + l] = low[j + l]! | (low[j + l + 32]! << 2) | (low[j + l + 64]! << 4) | (low[j + l + 96]! << 6);
    }
  }
}

function quantizeQ3K(x: Float32Array, y: Uint8Array, yo: number, qw: Float32Array | null): void {
  const { Li: L, w, sw, scales, Lsi: Ls } = S;
  const so = yo + Q3K.scales;
  if (!qw) {
    let maxScale = 0;
    let amax = 0;
    for (let j = 0; j < 16; j++) {
      scales[j] = makeQ3Quants(16, 4, x.subarray(16 * j), L.subarray(16 * j));
      const s = Math.abs(scales[j]!);
      if (s > amax) {
        amax = s;
        maxScale = scales[j]!;
      }
    }
    y.fill(0, so, so + 12);
    if (maxScale) {
      const iscale = f(-32 / maxScale);
      for (let j = 0; j < 16; j++) {
        let l = truncInt8(nearestInt(f(iscale * scales[j]!)));
        l = Math.max(-32, Math.min(31, l)) + 32;
        packQ3Scale(y, so, j, l);
      }
      setHalf(y, yo + Q3K.d, f2h(f(1 / iscale)));
    } else setHalf(y, yo + Q3K.d, f2h(0));
  } else {
    let sumx2 = 0;
    for (let j = 0; j < QK_K; j++) sumx2 = f(sumx2 + f(x[j]! * x[j]!));
    const sigma2 = f(f(2 * sumx2) / QK_K);
    for (let j = 0; j < 16; j++) {
      for (let l = 0; l < 16; l++) w[l] = f(qw[16 * j + l]! * f(Math.sqrt(f(sigma2 + f(x[16 * j + l]! * x[16 * j + l]!)))));
      let sumw = 0;
      for (let l = 0; l < 16; l++) sumw = f(sumw + w[l]!);
      sw[j] = sumw;
      scales[j] = makeQxQuants(16, 4, x.subarray(16 * j), L.subarray(16 * j), 1, w.subarray(0, 16));
    }
    y.fill(0, so, so + 12);
    const dBlock = makeQxQuants(16, 32, scales, Ls, 1, sw);
    for (let j = 0; j < 16; j++) packQ3Scale(y, so, j, Ls[j]!);
    setHalf(y, yo + Q3K.d, f2h(dBlock));
  }
  const d0 = h2f(getHalf(y, yo + Q3K.d));
  for (let j = 0; j < 16; j++) {
    const d = f(d0 * q3Scale(y, so, j));
    if (!d) continue;
    for (let ii = 0; ii < 16; ii++) {
      const l = nearestInt(f(x[16 * j + ii]! / d));
      L[16 * j + ii] = Math.max(-4, Math.min(3, l)) + 4;
    }
  }
  packQ3Codes(y, yo, L);
}

function packK4Scales(y: Uint8Array, so: number, j: number, ls: number, lm: number): void {
  if (j < 4) {
    y[so + j] = ls;
    y[so + j + 4] = lm;
  } else {
    y[so + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
    y[so + j - 4]! |= (ls >> 4) << 6;
    y[so + j]! |= (lm >> 4) << 6;
  }
}

function packQ4Codes(y: Uint8Array, yo: number, L: ArrayLike<number>): void {
  let q = yo + Q4K.qs;
  for (let j = 0; j < QK_K; j += 64) {
    for (let l = 0; l < 32; l++) y[q + l] = L[j + l]! | (L[j + l + 32]! << 4);
    q += 32;
  }
}

function packQ5Codes(y: Uint8Array, yo: number, L: ArrayLike<number>): void {
  const qh = yo + Q5K.qh;
  let ql = yo + Q5K.qs;
  y.fill(0, qh, qh + 32);
  let m1 = 1;
  let m2 = 2;
  for (let n = 0; n < QK_K; n += 64) {
    for (let j = 0; j < 32; j++) {
      let l1 = L[n + j]!;
      if (l1 > 15) {
        l1 -= 16;
        y[qh + j]! |= m1;
      }
      let l2 = L[n + j + 32]!;
      if (l2 > 15) {
        l2 -= 16;
        y[qh + j]! |= m2;
      }
      y[ql + j] = l1 | (l2 << 4);
    }
    m1 <<= 2;
    m2 <<= 2;
    ql += 32;
  }
}

/** Q4_K (nmax 15) and Q5_K (nmax 31): 8 sub-blocks of 32 with 6-bit scales and mins. */
function quantizeQ45K(five: boolean, x: Float32Array, y: Uint8Array, yo: number, qw: Float32Array | null): void {
  const { L, Laux, w, sw, scales, mins, Ls, Lm } = S;
  const nmax = five ? 31 : 15;
  const so = yo + Q4K.scales; // same header offsets in Q4_K and Q5_K
  if (!qw) {
    let maxScale = 0;
    let maxMin = 0;
    for (let j = 0; j < 8; j++) {
      const xs = x.subarray(32 * j, 32 * j + 32);
      let sumX2 = 0;
      for (let l = 0; l < 32; l++) sumX2 = f(sumX2 + f(xs[l]! * xs[l]!));
      const avX = f(Math.sqrt(f(sumX2 / 32)));
      for (let l = 0; l < 32; l++) w[l] = f(avX + Math.abs(xs[l]!));
      const [s, m] = five
        ? makeQkxQuants(false, 32, 31, xs, w, L.subarray(32 * j), Laux, -0.5, 0.1, 15, false)
        : makeQkxQuants(false, 32, 15, xs, w, L.subarray(32 * j), Laux, -1, 0.1, 20, false);
      scales[j] = s;
      mins[j] = m;
      if (s > maxScale) maxScale = s;
      if (m > maxMin) maxMin = m;
    }
    const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
    const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
    for (let j = 0; j < 8; j++) {
      const ls = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff);
      const lm = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
      packK4Scales(y, so, j, ls, lm);
    }
    setHalf(y, yo + Q4K.d, f2h(f(maxScale / 63)));
    setHalf(y, yo + Q4K.dmin, f2h(f(maxMin / 63)));
  } else {
    let sumX2 = 0;
    for (let l = 0; l < QK_K; l++) sumX2 = f(sumX2 + f(x[l]! * x[l]!));
    const sigma2 = f(f(2 * sumX2) / QK_K);
    for (let j = 0; j < 8; j++) {
      for (let l = 0; l < 32; l++) w[l] = f(qw[32 * j + l]! * f(Math.sqrt(f(sigma2 + f(x[32 * j + l]! * x[32 * j + l]!)))));
      let sumw = 0;
      for (let l = 0; l < 32; l++) sumw = f(sumw + w[l]!);
      sw[j] = sumw;
      const [s, m] = makeQkxQuants(true, 32, nmax, x.subarray(32 * j), w, L.subarray(32 * j), Laux, -0.9, 0.05, 36, false);
      scales[j] = s;
      mins[j] = m;
    }
    const dBlock = makeQpQuants(8, 63, scales, Ls, sw.subarray(0, 8));
    const mBlock = makeQpQuants(8, 63, mins, Lm, sw.subarray(0, 8));
    for (let j = 0; j < 8; j++) {
      // quantize_row_q5_K_impl clamps to 63; the Q4_K one stores the codes as they are
      const ls = five ? Math.min(63, Ls[j]!) : Ls[j]!;
      const lm = five ? Math.min(63, Lm[j]!) : Lm[j]!;
      packK4Scales(y, so, j, ls, lm);
    }
    setHalf(y, yo + Q4K.d, f2h(dBlock));
    setHalf(y, yo + Q4K.dmin, f2h(mBlock));
  }
  const d0 = h2f(getHalf(y, yo + Q4K.d));
  const m0 = h2f(getHalf(y, yo + Q4K.dmin));
  for (let j = 0; j < 8; j++) {
    const [sc, m] = scaleMinK4(j, y, so);
    const d = f(d0 * sc);
    if (!d) continue;
    const dm = f(m0 * m);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(f(f(x[32 * j + ii]! + dm) / d));
      L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
    }
  }
  if (five) packQ5Codes(y, yo, L);
  else packQ4Codes(y, yo, L);
}

function packQ6Codes(y: Uint8Array, yo: number, L: ArrayLike<number>): void {
  let ql = yo + Q6K.ql;
  let qh = yo + Q6K.qh;
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l]! & 0xf;
      const q2 = L[j + l + 32]! & 0xf;
      const q3 = L[j + l + 64]! & 0xf;
      const q4 = L[j + l + 96]! & 0xf;
      y[ql + l] = q1 | (q3 << 4);
      y[ql + l + 32] = q2 | (q4 << 4);
      y[qh + l] = (L[j + l]! >> 4) | ((L[j + l + 32]! >> 4) << 2) | ((L[j + l + 64]! >> 4) << 4) | ((L[j + l + 96]! >> 4) << 6);
    }
    ql += 64;
    qh += 32;
  }
}

function quantizeQ6K(x: Float32Array, y: Uint8Array, yo: number, qw: Float32Array | null): void {
  const { Li: L, scales } = S;
  let maxScale = 0;
  let maxAbsScale = 0;
  for (let ib = 0; ib < 16; ib++) {
    const scale = makeQxQuants(16, 32, x.subarray(16 * ib), L.subarray(16 * ib), 1, qw ? qw.subarray(16 * ib, 16 * ib + 16) : null);
    scales[ib] = scale;
    const a = Math.abs(scale);
    if (a > maxAbsScale) {
      maxAbsScale = a;
      maxScale = scale;
    }
  }
  if (maxAbsScale < GROUP_MAX_EPS) {
    y.fill(0, yo, yo + GGML_QUANT_TRAITS.Q6_K.bytes);
    setHalf(y, yo + Q6K.d, f2h(0));
    return;
  }
  const iscale = f(-128 / maxScale);
  setHalf(y, yo + Q6K.d, f2h(f(1 / iscale)));
  const sc = new Int8Array(y.buffer, y.byteOffset + yo + Q6K.scales, 16);
  for (let ib = 0; ib < 16; ib++) sc[ib] = Math.min(127, nearestInt(f(iscale * scales[ib]!)));
  const d0 = h2f(getHalf(y, yo + Q6K.d));
  for (let j = 0; j < 16; j++) {
    const d = f(d0 * sc[j]!);
    if (!d) continue;
    for (let ii = 0; ii < 16; ii++) {
      const l = nearestInt(f(x[16 * j + ii]! / d));
      L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
    }
  }
  packQ6Codes(y, yo, L);
}

/** Legacy 32-blocks with an importance matrix need the row's σ² = Σx²/n (quantize_row_q4_0_impl …). */
function rowSigma2(x: Float32Array, off: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s = f(s + f(x[off + j]! * x[off + j]!));
  return f(s / n);
}

function packQ5Legacy(y: Uint8Array, yo: number, L: ArrayLike<number>): void {
  const qs = yo + 6; // Q5_0: d · qh[4] · qs[16]; Q5_1: d · m · qh[4] · qs[16] (offsets passed shifted)
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = L[j]!;
    const b = L[j + 16]!;
    y[qs + j] = (a & 0x0f) | ((b & 0x0f) << 4);
    qh |= ((a & 0x10) >>> 4) << j;
    qh |= ((b & 0x10) >>> 4) << (j + 16);
  }
  y[yo + 2] = qh & 0xff;
  y[yo + 3] = (qh >>> 8) & 0xff;
  y[yo + 4] = (qh >>> 16) & 0xff;
  y[yo + 5] = (qh >>> 24) & 0xff;
}

function quantizeLegacy(
  t: 'Q4_0' | 'Q5_0' | 'Q5_1' | 'Q8_0',
  x: Float32Array,
  y: Uint8Array,
  yo: number,
  qw: Float32Array | null,
  sigma2: number,
): void {
  const n = 32;
  if (t === 'Q8_0') {
    let amax = 0;
    for (let j = 0; j < n; j++) amax = Math.max(amax, Math.abs(x[j]!));
    const d = f(amax / 127);
    const id = d ? f(1 / d) : 0;
    setHalf(y, yo, f2h(d));
    for (let j = 0; j < n; j++) {
      const v = f(x[j]! * id);
      y[yo + 2 + j] = (Math.sign(v) * Math.round(Math.abs(v))) & 0xff; // roundf: half away from zero
    }
    return;
  }
  if (qw && t !== 'Q5_1') {
    const w = S.w;
    const L = S.Li;
    for (let j = 0; j < n; j++) w[j] = f(qw[j]! * f(Math.sqrt(f(sigma2 + f(x[j]! * x[j]!)))));
    const d = makeQxQuants(n, t === 'Q4_0' ? 8 : 16, x, L, 1, w);
    setHalf(y, yo, f2h(d));
    if (t === 'Q4_0') for (let j = 0; j < 16; j++) y[yo + 2 + j] = (L[j]! | (L[j + 16]! << 4)) & 0xff;
    else packQ5Legacy(y, yo, L);
    return;
  }
  if (qw) {
    // Q5_1 with an importance matrix: make_qkx3_quants on 32 weights
    const w = S.w;
    for (let j = 0; j < n; j++) w[j] = f(qw[j]! * f(Math.sqrt(f(sigma2 + f(x[j]! * x[j]!)))));
    const [d, min] = makeQkxQuants(true, n, 31, x, w, S.L, S.Laux, -0.9, 0.05, 36, false);
    setHalf(y, yo, f2h(d));
    setHalf(y, yo + 2, f2h(-min));
    packQ5Legacy(y, yo + 2, S.L);
    return;
  }
  if (t === 'Q5_1') {
    let min = Infinity;
    let max = -Infinity;
    for (let j = 0; j < n; j++) {
      if (x[j]! < min) min = x[j]!;
      if (x[j]! > max) max = x[j]!;
    }
    const d = f(f(max - min) / 31);
    const id = d ? f(1 / d) : 0;
    setHalf(y, yo, f2h(d));
    setHalf(y, yo + 2, f2h(min));
    const L = S.L;
    for (let j = 0; j < n; j++) L[j] = Math.trunc(f(f(f(x[j]! - min) * id) + 0.5)); // (uint8_t)(x0 + 0.5f)
    packQ5Legacy(y, yo + 2, L);
    return;
  }
  let amax = 0;
  let max = 0;
  for (let j = 0; j < n; j++) {
    if (amax < Math.abs(x[j]!)) {
      amax = Math.abs(x[j]!);
      max = x[j]!;
    }
  }
  const half = t === 'Q4_0' ? 8 : 16;
  const d = f(max / -half);
  const id = d ? f(1 / d) : 0;
  setHalf(y, yo, f2h(d));
  const L = S.L;
  for (let j = 0; j < n; j++) L[j] = Math.min(2 * half - 1, truncInt8(f(f(x[j]! * id) + (half + 0.5))));
  if (t === 'Q4_0') for (let j = 0; j < 16; j++) y[yo + 2 + j] = L[j]! | (L[j + 16]! << 4);
  else packQ5Legacy(y, yo, L);
}

// ------------------------------------------------------------------------------------------------
// Rows

function checkRows(t: GgmlQuantType, x: ArrayLike<number>, rows: number, cols: number, what: string): void {
  const { block } = GGML_QUANT_TRAITS[t];
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1)
    throw new RangeError(`${what}: bad shape ${rows}×${cols}`);
  if (cols % block !== 0) throw new RangeError(`${what}: ${t} needs rows that are a multiple of ${block} weights, got ${cols}`);
  if (x.length !== rows * cols) throw new RangeError(`${what}: ${x.length} values, expected ${rows}·${cols}`);
}

function checkImatrix(imatrix: Float32Array | undefined, cols: number, what: string): void {
  if (!imatrix) return;
  if (imatrix.length !== cols) throw new RangeError(`${what}: importance matrix of ${imatrix.length} values for rows of ${cols}`);
  for (let i = 0; i < cols; i++) {
    if (!Number.isFinite(imatrix[i]!)) throw new RangeError(`${what}: importance matrix entry ${i} is ${imatrix[i]}`);
  }
}

/**
 * Quantize one block (32 or 256 weights) into `y` at `yo` as llama.cpp does: `qw` the block's
 * importance weights or null, `sigma2` the row's Σx²/n (used by Q4_0/Q5_0/Q5_1 with `qw`).
 */
export function quantizeBlock(t: GgmlQuantType, x: Float32Array, y: Uint8Array, yo: number, qw: Float32Array | null, sigma2 = 0): void {
  switch (t) {
    case 'Q2_K':
      quantizeQ2K(x, y, yo, qw);
      return;
    case 'Q3_K':
      quantizeQ3K(x, y, yo, qw);
      return;
    case 'Q4_K':
      quantizeQ45K(false, x, y, yo, qw);
      return;
    case 'Q5_K':
      quantizeQ45K(true, x, y, yo, qw);
      return;
    case 'Q6_K':
      quantizeQ6K(x, y, yo, qw);
      return;
    default:
      quantizeLegacy(t, x, y, yo, qw, sigma2);
      return;
  }
}

/**
 * ggml_quantize_chunk: W (rows, cols) row-major f32 → the GGUF bytes of `t`, with the importance
 * matrix `imatrix` (cols values, the mean of x² per input column) or without (the reference
 * quantizers; Q8_0 ignores the matrix, as llama.cpp does).
 */
export function quantizeRows(t: GgmlQuantType, W: Float32Array, rows: number, cols: number, imatrix?: Float32Array): Uint8Array {
  checkRows(t, W, rows, cols, 'quantizeRows');
  checkImatrix(imatrix, cols, 'quantizeRows');
  const { block, bytes } = GGML_QUANT_TRAITS[t];
  const nb = cols / block;
  const out = new Uint8Array(rows * nb * bytes);
  const qwAll = imatrix && t !== 'Q8_0' ? imatrix : null;
  for (let r = 0; r < rows; r++) {
    const row = W.subarray(r * cols, (r + 1) * cols);
    for (let i = 0; i < row.length; i++) {
      if (!Number.isFinite(row[i]!)) throw new RangeError(`quantizeRows: W[${r}, ${i}] is ${row[i]}`);
    }
    const sigma2 = qwAll && block === 32 ? rowSigma2(row, 0, cols) : 0;
    for (let b = 0; b < nb; b++) {
      quantizeBlock(
        t,
        row.subarray(b * block, (b + 1) * block),
        out,
        (r * nb + b) * bytes,
        qwAll ? qwAll.subarray(b * block, (b + 1) * block) : null,
        sigma2,
      );
    }
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// Grids: a block's header read back as per-element (dl, bl); codes packed and unpacked

/**
 * The grid of one block, per element e: value = dl[e]·(L − off) for symmetric types (bl unused) or
 * dl[e]·L + bl[e] for types with a min, L ∈ [0, lmax] (Q8_0: L ∈ [−127, 127], off 0).
 */
export interface BlockGrid {
  dl: Float32Array;
  bl: Float32Array;
  off: number;
  lmin: number;
  lmax: number;
  /** Symmetric (value = dl·(L − off)) or with a min (dl·L + bl). */
  symmetric: boolean;
}

const GRID_SHAPE: Record<GgmlQuantType, { off: number; lmin: number; lmax: number; symmetric: boolean }> = {
  Q4_0: { off: 8, lmin: 0, lmax: 15, symmetric: true },
  Q5_0: { off: 16, lmin: 0, lmax: 31, symmetric: true },
  Q5_1: { off: 0, lmin: 0, lmax: 31, symmetric: false },
  Q8_0: { off: 0, lmin: -127, lmax: 127, symmetric: true },
  Q2_K: { off: 0, lmin: 0, lmax: 3, symmetric: false },
  Q3_K: { off: 4, lmin: 0, lmax: 7, symmetric: true },
  Q4_K: { off: 0, lmin: 0, lmax: 15, symmetric: false },
  Q5_K: { off: 0, lmin: 0, lmax: 31, symmetric: false },
  Q6_K: { off: 32, lmin: 0, lmax: 63, symmetric: true },
};

/** Read a block's header as its grid (what dequantize_row_* multiplies and adds). */
export function blockGrid(t: GgmlQuantType, y: Uint8Array, yo: number, g?: BlockGrid): BlockGrid {
  const { block } = GGML_QUANT_TRAITS[t];
  const grid = g ?? { dl: new Float32Array(block), bl: new Float32Array(block), ...GRID_SHAPE[t] };
  const { dl, bl } = grid;
  switch (t) {
    case 'Q4_0':
    case 'Q5_0':
    case 'Q8_0':
      dl.fill(h2f(getHalf(y, yo)));
      break;
    case 'Q5_1':
      dl.fill(h2f(getHalf(y, yo)));
      bl.fill(h2f(getHalf(y, yo + 2)));
      break;
    case 'Q2_K': {
      const d = h2f(getHalf(y, yo + Q2K.d));
      const m = h2f(getHalf(y, yo + Q2K.dmin));
      for (let j = 0; j < 16; j++) {
        const sc = y[yo + Q2K.scales + j]!;
        dl.fill(f(d * (sc & 0xf)), 16 * j, 16 * j + 16);
        bl.fill(-f(m * (sc >> 4)), 16 * j, 16 * j + 16);
      }
      break;
    }
    case 'Q3_K': {
      const d = h2f(getHalf(y, yo + Q3K.d));
      for (let j = 0; j < 16; j++) dl.fill(f(d * q3Scale(y, yo + Q3K.scales, j)), 16 * j, 16 * j + 16);
      break;
    }
    case 'Q4_K':
    case 'Q5_K': {
      const d = h2f(getHalf(y, yo + Q4K.d));
      const m = h2f(getHalf(y, yo + Q4K.dmin));
      for (let j = 0; j < 8; j++) {
        const [sc, mm] = scaleMinK4(j, y, yo + Q4K.scales);
        dl.fill(f(d * sc), 32 * j, 32 * j + 32);
        bl.fill(-f(m * mm), 32 * j, 32 * j + 32);
      }
      break;
    }
    case 'Q6_K': {
      const d = h2f(getHalf(y, yo + Q6K.d));
      for (let j = 0; j < 16; j++) dl.fill(f(d * ((y[yo + Q6K.scales + j]! << 24) >> 24)), 16 * j, 16 * j + 16);
      break;
    }
  }
  return grid;
}

/** The value of code L at element e of a grid: dequantize_row_*'s float expression (zeros as +0). */
export function gridValue(g: BlockGrid, e: number, L: number): number {
  return (g.symmetric ? f(g.dl[e]! * (L - g.off)) : f(f(g.dl[e]! * L) + g.bl[e]!)) + 0;
}

/** The code nearest to x at element e (the requantization rule of llama.cpp's k-quants). */
export function gridCode(g: BlockGrid, e: number, x: number): number {
  const d = g.dl[e]!;
  if (!d) return g.off;
  const l = g.symmetric ? nearestInt(f(x / d)) + g.off : nearestInt(f(f(x - g.bl[e]!) / d));
  return Math.max(g.lmin, Math.min(g.lmax, l));
}

/** Write the codes L (block order) into a block whose header is already in place. */
export function packCodes(t: GgmlQuantType, y: Uint8Array, yo: number, L: ArrayLike<number>): void {
  switch (t) {
    case 'Q4_0':
      for (let j = 0; j < 16; j++) y[yo + 2 + j] = L[j]! | (L[j + 16]! << 4);
      return;
    case 'Q5_0':
      packQ5Legacy(y, yo, L);
      return;
    case 'Q5_1':
      packQ5Legacy(y, yo + 2, L);
      return;
    case 'Q8_0':
      for (let j = 0; j < 32; j++) y[yo + 2 + j] = L[j]! & 0xff;
      return;
    case 'Q2_K':
      packQ2Codes(y, yo, L);
      return;
    case 'Q3_K':
      packQ3Codes(y, yo, L);
      return;
    case 'Q4_K':
      packQ4Codes(y, yo, L);
      return;
    case 'Q5_K':
      packQ5Codes(y, yo, L);
      return;
    case 'Q6_K':
      packQ6Codes(y, yo, L);
      return;
  }
}

/** Read the codes of a block (block order) into L. */
export function unpackCodes(t: GgmlQuantType, y: Uint8Array, yo: number, L: Int32Array): void {
  switch (t) {
    case 'Q4_0':
      for (let j = 0; j < 16; j++) {
        L[j] = y[yo + 2 + j]! & 0xf;
        L[j + 16] = y[yo + 2 + j]! >> 4;
      }
      return;
    case 'Q5_0':
    case 'Q5_1': {
      const o = t === 'Q5_0' ? yo : yo + 2;
      const qh = y[o + 2]! | (y[o + 3]! << 8) | (y[o + 4]! << 16) | (y[o + 5]! << 24);
      for (let j = 0; j < 16; j++) {
        L[j] = (y[o + 6 + j]! & 0xf) | (((qh >>> j) & 1) << 4);
        L[j + 16] = (y[o + 6 + j]! >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      }
      return;
    }
    case 'Q8_0':
      for (let j = 0; j < 32; j++) L[j] = (y[yo + 2 + j]! << 24) >> 24;
      return;
    case 'Q2_K':
      for (let j = 0; j < QK_K; j += 128) {
        for (let l = 0; l < 32; l++) {
          const b = y[yo + Q2K.qs + j / 4 + l]!;
          L[j + l] = b & 3;
          L[j + l + 32] = (b >> 2) & 3;
          L[j + l + 64] = (b >> 4) & 3;
          L[j + l + 96] = (b >> 6) & 3;
        }
      }
      return;
    case 'Q3_K':
      for (let j = 0; j < QK_K; j += 128) {
        for (let l = 0; l < 32; l++) {
          const b = y[yo + Q3K.qs + j / 4 + l]!;
          L[j + l] = b & 3;
          L[j + l + 32] = (b >> 2) & 3;
          L[j + l + 64] = (b >> 4) & 3;
          L[j + l + 96] = (b >> 6) & 3;
        }
      }
      for (let j = 0; j < QK_K; j++) if (y[yo + Q3K.hmask + (j % 32)]! & (1 << Math.floor(j / 32))) L[j]! += 4;
      return;
    case 'Q4_K':
      for (let j = 0, q = yo + Q4K.qs; j < QK_K; j += 64, q += 32) {
        for (let l = 0; l < 32; l++) {
          L[j + l] = y[q + l]! & 0xf;
          L[j + l + 32] = y[q + l]! >> 4;
        }
      }
      return;
    case 'Q5_K':
      for (let n = 0, q = yo + Q5K.qs, s = 0; n < QK_K; n += 64, q += 32, s += 2) {
        for (let l = 0; l < 32; l++) {
          const h = y[yo + Q5K.qh + l]!;
          L[n + l] = (y[q + l]! & 0xf) | (((h >> s) & 1) << 4);
          L[n + l + 32] = (y[q + l]! >> 4) | (((h >> (s + 1)) & 1) << 4);
        }
      }
      return;
    case 'Q6_K':
      for (let j = 0, ql = yo + Q6K.ql, qh = yo + Q6K.qh; j < QK_K; j += 128, ql += 64, qh += 32) {
        for (let l = 0; l < 32; l++) {
          const h = y[qh + l]!;
          L[j + l] = (y[ql + l]! & 0xf) | ((h & 3) << 4);
          L[j + l + 32] = (y[ql + l + 32]! & 0xf) | (((h >> 2) & 3) << 4);
          L[j + l + 64] = (y[ql + l]! >> 4) | (((h >> 4) & 3) << 4);
          L[j + l + 96] = (y[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4);
        }
      }
      return;
  }
}

/**
 * dequantize_row_*: `n` weights (a multiple of the block) of `t` blocks → f32 (zeros as +0), into
 * the start of `into` when given (a buffer reused across calls; returned as its subarray).
 */
export function dequantizeRows(t: GgmlQuantType, bytes: Uint8Array, n: number, into?: Float32Array): Float32Array {
  const { block, bytes: bb } = GGML_QUANT_TRAITS[t];
  if (n % block !== 0) throw new RangeError(`dequantizeRows: ${n} values is not a multiple of the ${t} block (${block})`);
  if (bytes.length !== (n / block) * bb)
    throw new RangeError(`dequantizeRows: ${bytes.length} bytes, expected ${(n / block) * bb} for ${n} ${t} values`);
  if (into && into.length < n) throw new RangeError(`dequantizeRows: ${n} values into a ${into.length}-value buffer`);
  const out = into ? into.subarray(0, n) : new Float32Array(n);
  const g: BlockGrid = { dl: new Float32Array(block), bl: new Float32Array(block), ...GRID_SHAPE[t] };
  const L = new Int32Array(block);
  for (let b = 0; b < n / block; b++) {
    blockGrid(t, bytes, b * bb, g);
    unpackCodes(t, bytes, b * bb, L);
    for (let e = 0; e < block; e++) out[b * block + e] = gridValue(g, e, L[e]!);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------
// A grid decided block by block as a column walk reaches each block (GPTQ, joint SparseGPT)

/**
 * The grid of a (rows, cols) tensor decided block by block, for a solver that walks the columns in
 * order (compress/sparsegpt.ts): when the walk reaches the first column of a block, `start` runs
 * llama.cpp's quantizer of the type on the block's CURRENT weights (with the importance matrix when
 * given) and keeps its header — the scales, mins and super-scales; every weight of the block is
 * then rounded to the nearest code of that grid by `round` (the requantization rule of the
 * k-quants: nearest_int((x − bl)/dl), clamped). `blocks()` packs the chosen codes under the headers:
 * the GGUF bytes, whose dequantization is exactly the values `round` returned.
 */
export class GridWalk {
  readonly type: GgmlQuantType;
  readonly block: number;
  private readonly bb: number;
  private readonly nb: number;
  private readonly out: Uint8Array; // (rows, nb·bb) GGUF bytes
  private readonly codes: Int8Array; // (rows, cols) chosen codes
  private readonly grids: BlockGrid[]; // (rows) the grid of each row's current block
  private readonly x: Float32Array;
  private readonly sigma2: Float32Array | null; // (rows) Σx²/n of the input rows (legacy types with a matrix)

  /** `W` (rows, cols): the input weights (for the legacy types' row σ² with a matrix); `imatrix`: cols values or none. */
  constructor(
    type: GgmlQuantType,
    readonly rows: number,
    readonly cols: number,
    W: Float32Array,
    private readonly imatrix?: Float32Array,
  ) {
    checkRows(type, W, rows, cols, 'GridWalk');
    checkImatrix(imatrix, cols, 'GridWalk');
    this.type = type;
    const t = GGML_QUANT_TRAITS[type];
    this.block = t.block;
    this.bb = t.bytes;
    this.nb = cols / t.block;
    this.out = new Uint8Array(rows * this.nb * t.bytes);
    this.codes = new Int8Array(rows * cols);
    this.grids = Array.from({ length: rows }, () => ({
      dl: new Float32Array(t.block),
      bl: new Float32Array(t.block),
      ...GRID_SHAPE[type],
    }));
    this.x = new Float32Array(t.block);
    this.sigma2 =
      imatrix && t.block === 32 && type !== 'Q8_0' ? Float32Array.from({ length: rows }, (_, r) => rowSigma2(W, r * cols, cols)) : null;
  }

  /** Fix row r's block b from its current weights x(i), i < block (f32-rounded here). */
  start(r: number, b: number, x: (i: number) => number): void {
    for (let i = 0; i < this.block; i++) this.x[i] = x(i);
    const at = (r * this.nb + b) * this.bb;
    const qw = this.imatrix && this.type !== 'Q8_0' ? this.imatrix.subarray(b * this.block, (b + 1) * this.block) : null;
    quantizeBlock(this.type, this.x, this.out, at, qw, this.sigma2 ? this.sigma2[r]! : 0);
    blockGrid(this.type, this.out, at, this.grids[r]);
  }

  /** The grid value nearest to w at (r, col) — col inside row r's started block; the code is kept. */
  round(r: number, col: number, w: number): number {
    const g = this.grids[r]!;
    const e = col % this.block;
    const L = gridCode(g, e, f(w));
    this.codes[r * this.cols + col] = L;
    return gridValue(g, e, L);
  }

  /** The GGUF bytes: every block's header with the codes `round` chose. */
  blocks(): Uint8Array {
    for (let r = 0; r < this.rows; r++) {
      for (let b = 0; b < this.nb; b++) {
        const o = r * this.cols + b * this.block;
        packCodes(this.type, this.out, (r * this.nb + b) * this.bb, this.codes.subarray(o, o + this.block));
      }
    }
    return this.out;
  }
}

/** The f16 scale d of every block of Q4_0 / Q8_0 bytes, (rows, cols/32). */
export function legacyScales(bytes: Uint8Array, t: 'Q4_0' | 'Q8_0', n: number): Float32Array {
  const { bytes: bb } = GGML_QUANT_TRAITS[t];
  const out = new Float32Array(n / 32);
  for (let b = 0; b < out.length; b++) out[b] = h2f(getHalf(bytes, b * bb));
  return out;
}
