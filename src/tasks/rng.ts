/**
 * Small deterministic PRNG for the synthetic task generators (never Math.random).
 *
 * xoshiro128** (Blackman & Vigna) with its 128-bit state filled by splitmix32, so any 32-bit
 * seed (or a string, hashed with FNV-1a) gives a well-mixed, reproducible stream on every platform.
 */

export interface Rng {
  /** Next raw 32-bit unsigned integer. */
  nextU32(): number;
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [lo, hi] (inclusive); unbiased (rejection sampling). */
  int(lo: number, hi: number): number;
  /** A uniformly chosen element of a non-empty array. */
  pick<T>(xs: readonly T[]): T;
  /** true with probability p. */
  bool(p?: number): boolean;
  /** Fisher–Yates shuffle of a copy. */
  shuffle<T>(xs: readonly T[]): T[];
}

/** FNV-1a 32-bit hash of a string's UTF-16 code units. */
export function fnv1a32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Derive a 32-bit seed from several parts (numbers and strings), e.g. hashSeed('tiny', family, split, seed). */
export function hashSeed(...parts: Array<string | number>): number {
  return fnv1a32(parts.map(String).join('\u0000'));
}

/** splitmix32 generator: returns successive well-mixed 32-bit outputs from a 32-bit seed. */
export function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** xoshiro128** seeded through splitmix32. A string seed is hashed with FNV-1a first. */
export function createRng(seed: number | string): Rng {
  const seed32 = typeof seed === 'string' ? fnv1a32(seed) : seed >>> 0;
  const sm = splitmix32(seed32);
  let s0 = sm();
  let s1 = sm();
  let s2 = sm();
  let s3 = sm();
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1; // the all-zero state is a fixed point

  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 = (s2 ^ s0) >>> 0;
    s3 = (s3 ^ s1) >>> 0;
    s1 = (s1 ^ s2) >>> 0;
    s0 = (s0 ^ s3) >>> 0;
    s2 = (s2 ^ t) >>> 0;
    s3 = rotl(s3, 11);
    return result;
  };

  const int = (lo: number, hi: number): number => {
    if (!Number.isInteger(lo) || !Number.isInteger(hi) || hi < lo) {
      throw new RangeError(`rng.int: bad range [${lo}, ${hi}]`);
    }
    const n = hi - lo + 1;
    if (n > 0x100000000) throw new RangeError('rng.int: range wider than 2^32');
    // Rejection sampling: discard the top partial bucket so every value is equally likely.
    const limit = 0x100000000 - (0x100000000 % n);
    let x = nextU32();
    while (x >= limit) x = nextU32();
    return lo + (x % n);
  };

  return {
    nextU32,
    next: () => nextU32() / 0x100000000,
    int,
    pick<T>(xs: readonly T[]): T {
      if (xs.length === 0) throw new RangeError('rng.pick: empty array');
      return xs[int(0, xs.length - 1)] as T;
    },
    bool(p = 0.5): boolean {
      return nextU32() / 0x100000000 < p;
    },
    shuffle<T>(xs: readonly T[]): T[] {
      const out = xs.slice();
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(0, i);
        const tmp = out[i] as T;
        out[i] = out[j] as T;
        out[j] = tmp;
      }
      return out;
    },
  };
}
