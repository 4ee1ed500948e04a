/**
 * Next-token selection: greedy, or temperature / top-k / top-p sampling with a seeded PRNG.
 * Each sequence owns its PRNG, seeded from (seed, stream index), so a sample does not depend on
 * which other sequences share its batch.
 */

export interface SamplingParams {
  /** 0 = greedy. */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 disables. */
  topP: number;
  /** Keep the k most likely tokens; 0 disables. */
  topK: number;
}

export function validateSampling(p: SamplingParams): void {
  if (!(p.temperature >= 0) || !Number.isFinite(p.temperature)) throw new Error(`temperature must be ≥ 0, got ${p.temperature}`);
  if (!(p.topP > 0 && p.topP <= 1)) throw new Error(`top_p must be in (0, 1], got ${p.topP}`);
  if (!Number.isInteger(p.topK) || p.topK < 0) throw new Error(`top_k must be a non-negative integer, got ${p.topK}`);
}

/** xoshiro128** seeded through splitmix32: fast, 32-bit, reproducible across platforms. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number, stream = 0) {
    let x = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul((stream >>> 0) + 0x7f4a7c15, 0x85ebca6b)) >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next() | 1;
  }

  /** Uniform integer in [0, 2³²). */
  nextU32(): number {
    const result = Math.imul(((Math.imul(this.s1, 5) << 7) | (Math.imul(this.s1, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = (this.s3 << 11) | (this.s3 >>> 21);
    return result;
  }

  /** Uniform float in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

export function argmax(logits: Float32Array, offset = 0, n = logits.length - offset): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = logits[offset + i]!;
    if (v > bv) {
      bv = v;
      best = i;
    }
  }
  return best;
}

/**
 * Sample from row `logits[offset .. offset+V)`. Filters follow HF's order: temperature, top-k,
 * then top-p (the smallest most-likely set whose mass reaches p, at least one token).
 */
export function sampleToken(logits: Float32Array, offset: number, V: number, p: SamplingParams, rng: Rng): number {
  if (p.temperature === 0) return argmax(logits, offset, V);
  const invT = 1 / p.temperature;
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[offset + i]!);
  const w = new Float64Array(V); // unnormalized probabilities
  let total = 0;
  for (let i = 0; i < V; i++) {
    const e = Math.exp((logits[offset + i]! - max) * invT);
    w[i] = e;
    total += e;
  }
  // The kept set is always a prefix of the tokens sorted by probability. Gather the tokens above
  // a threshold (the max has weight 1), lowering it until the prefix we need lies inside, and
  // sort only those: with top-k, the k most likely; with top-p alone, mass ≥ p.
  const k = p.topK > 0 ? Math.min(p.topK, V) : V;
  let cand: number[] = [];
  for (let thr = k === V && p.topP >= 1 ? 0 : 1e-4; ; thr *= 1e-4) {
    cand = [];
    let mass = 0;
    for (let i = 0; i < V; i++) {
      if (w[i]! >= thr) {
        cand.push(i);
        mass += w[i]!;
      }
    }
    const done = k < V ? cand.length >= k : p.topP < 1 ? mass >= p.topP * total : cand.length === V;
    if (done || thr === 0 || thr < 1e-300) break;
  }
  cand.sort((a, b) => w[b]! - w[a]! || a - b);
  if (cand.length > k) cand.length = k;
  if (p.topP < 1) {
    // The nucleus is relative to the top-k mass, or to the whole vocabulary without top-k (cand
    // may then hold only the tokens above the threshold, not the tail).
    let kmass = 0;
    if (k < V) for (const i of cand) kmass += w[i]!;
    else kmass = total;
    const target = p.topP * kmass;
    let cum = 0;
    let cut = cand.length;
    for (let j = 0; j < cand.length; j++) {
      cum += w[cand[j]!]!;
      if (cum >= target) {
        cut = j + 1;
        break;
      }
    }
    cand.length = Math.max(1, cut);
  }
  let mass = 0;
  for (const i of cand) mass += w[i]!;
  let u = rng.next() * mass;
  for (const i of cand) {
    u -= w[i]!;
    if (u < 0) return i;
  }
  return cand[cand.length - 1]!;
}
