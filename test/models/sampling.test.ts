import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng, argmax, sampleToken, validateSampling, type SamplingParams } from '../../src/models/sampling.ts';

const P = (temperature: number, topP = 1, topK = 0): SamplingParams => ({ temperature, topP, topK });

/** softmax(logits / T) in float64. */
function softmax(logits: number[], T: number): number[] {
  const m = Math.max(...logits);
  const e = logits.map((x) => Math.exp((x - m) / T));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

function counts(logits: number[], p: SamplingParams, n: number, seed: number): number[] {
  const row = Float32Array.from(logits);
  const rng = new Rng(seed, 0);
  const c = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) c[sampleToken(row, 0, row.length, p, rng)]!++;
  return c;
}

/**
 * The obvious implementation: sort every token by probability, keep the top k, renormalize, keep
 * the smallest prefix whose mass reaches top_p, then invert the CDF at u·mass. Same order of
 * operations as sampleToken so that, fed the same uniform u, both pick the same token.
 */
function referenceSampler(logits: Float32Array, p: SamplingParams): (u: number) => number {
  const V = logits.length;
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  const w = Array.from(logits, (x) => Math.exp((x - max) / p.temperature));
  const order = w.map((_, i) => i).sort((a, b) => w[b]! - w[a]! || a - b);
  const kept = order.slice(0, p.topK > 0 ? Math.min(p.topK, V) : V);
  if (p.topP < 1) {
    const total = kept.reduce((a, i) => a + w[i]!, 0);
    let cum = 0;
    let cut = kept.length;
    for (let j = 0; j < kept.length; j++) {
      cum += w[kept[j]!]!;
      if (cum >= p.topP * total) {
        cut = j + 1;
        break;
      }
    }
    kept.length = Math.max(1, cut);
  }
  const mass = kept.reduce((a, i) => a + w[i]!, 0);
  return (u) => {
    let r = u * mass;
    for (const i of kept) {
      r -= w[i]!;
      if (r < 0) return i;
    }
    return kept[kept.length - 1]!;
  };
}

describe('Rng', () => {
  it('is deterministic per (seed, stream) and differs across seeds and streams', () => {
    const draw = (seed: number, stream: number) => {
      const r = new Rng(seed, stream);
      return Array.from({ length: 1000 }, () => r.nextU32());
    };
    const a = draw(42, 0);
    assert.deepEqual(draw(42, 0), a);
    for (const other of [draw(43, 0), draw(42, 1), draw(0, 42)]) {
      const same = other.filter((x, i) => x === a[i]).length;
      assert.ok(same <= 2, `${same} of 1000 draws coincide with another (seed, stream)`);
    }
    for (const x of a) assert.ok(Number.isInteger(x) && x >= 0 && x < 2 ** 32, `nextU32 ${x}`);
  });

  it('next() is uniform on [0, 1): chi-square over 10 bins, 100k draws', () => {
    const n = 100_000;
    const bins = new Array<number>(10).fill(0);
    let sum = 0;
    for (const seed of [1, 2]) {
      const r = new Rng(seed, 7);
      for (let i = 0; i < n / 2; i++) {
        const u = r.next();
        assert.ok(u >= 0 && u < 1, `next() = ${u}`);
        bins[Math.floor(u * 10)]!++;
        sum += u;
      }
    }
    const e = n / 10;
    const chi2 = bins.reduce((a, c) => a + (c - e) ** 2 / e, 0);
    // 9 degrees of freedom: P(chi2 > 27.9) = 0.001.
    assert.ok(chi2 < 27.9, `chi-square ${chi2.toFixed(2)} over bins ${bins.join(',')}`);
    assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
  });

  it('nextU32 low and high bytes are uniform (chi-square over 16 bins)', () => {
    const r = new Rng(9, 0);
    const lo = new Array<number>(16).fill(0);
    const hi = new Array<number>(16).fill(0);
    const n = 64_000;
    for (let i = 0; i < n; i++) {
      const x = r.nextU32();
      lo[x & 15]!++;
      hi[x >>> 28]!++;
    }
    const e = n / 16;
    for (const [name, b] of [
      ['low', lo],
      ['high', hi],
    ] as const) {
      const chi2 = b.reduce((a, c) => a + (c - e) ** 2 / e, 0);
      // 15 degrees of freedom: P(chi2 > 37.7) = 0.001.
      assert.ok(chi2 < 37.7, `${name} nibble chi-square ${chi2.toFixed(2)}`);
    }
  });
});

describe('sampleToken', () => {
  const rows = [
    [0.1, 2.5, -1, 2.4, 0.3],
    [-3, -2, -1, -0.5, -0.6, -10],
    [5, 5.0001, 4.9, -1],
  ];

  it('temperature 0 is argmax, at any row offset', () => {
    const flat = Float32Array.from(rows.flatMap((r) => [...r, 0, 0, 0, 0, 0, 0].slice(0, 6)));
    const want = [1, 3, 1];
    const rng = new Rng(1);
    for (let b = 0; b < 3; b++) {
      assert.equal(sampleToken(flat, b * 6, 6, P(0), rng), want[b]);
      assert.equal(argmax(flat, b * 6, 6), want[b]);
    }
  });

  it('top-k 1 and a tiny top-p are argmax at temperature 1', () => {
    const rng = new Rng(2);
    for (const r of rows) {
      const row = Float32Array.from(r);
      const best = argmax(row);
      for (let i = 0; i < 200; i++) {
        assert.equal(sampleToken(row, 0, row.length, P(1, 1, 1), rng), best, 'top-k 1');
        assert.equal(sampleToken(row, 0, row.length, P(1, 1e-6, 0), rng), best, 'top-p 1e-6');
      }
    }
  });

  it('frequencies over 20k draws match softmax(logits / T) within 0.015', () => {
    const logits = [1.2, 0.4, -0.3, 0.9, -1.5];
    for (const T of [1, 0.6]) {
      const n = 20_000;
      const c = counts(logits, P(T), n, 11);
      const want = softmax(logits, T);
      // σ of a frequency ≤ sqrt(0.25 / 20000) ≈ 0.0035; 0.015 is over 4σ.
      c.forEach((k, i) => assert.ok(Math.abs(k / n - want[i]!) < 0.015, `T=${T} token ${i}: ${k / n} vs ${want[i]}`));
    }
  });

  it('top-p 0.5 samples only the nucleus, in proportion', () => {
    // probabilities 0.3, 0.25, 0.2, 0.15, 0.1 (shuffled): the smallest set with mass ≥ 0.5 is {0.3, 0.25}.
    const probs = [0.2, 0.3, 0.1, 0.25, 0.15];
    const n = 20_000;
    const c = counts(probs.map(Math.log), P(1, 0.5), n, 3);
    assert.deepEqual(
      c.map((k, i) => (k > 0 ? i : -1)).filter((i) => i >= 0),
      [1, 3],
      `counts ${c}`,
    );
    assert.ok(Math.abs(c[1]! / n - 0.3 / 0.55) < 0.015, `token 1: ${c[1]! / n}`);
  });

  it('top-k 2 samples only the two best, in proportion', () => {
    const logits = [0.5, 2, -1, 1.5, 1.9];
    const n = 20_000;
    const c = counts(logits, P(1, 1, 2), n, 4);
    assert.equal(c[0]! + c[2]! + c[3]!, 0, `counts ${c}`);
    const p1 = Math.exp(2) / (Math.exp(2) + Math.exp(1.9));
    assert.ok(Math.abs(c[1]! / n - p1) < 0.015, `token 1: ${c[1]! / n} vs ${p1}`);
  });

  it('top-p applies to the top-k renormalized distribution (HF order)', () => {
    // probs 0.3, 0.25, 0.2, 0.15, 0.1; top-k 3 → 0.4, 0.333, 0.267; top-p 0.6 keeps the first two
    // (without renormalization it would keep three).
    const probs = [0.3, 0.25, 0.2, 0.15, 0.1];
    const c = counts(probs.map(Math.log), P(1, 0.6, 3), 5000, 5);
    assert.ok(c[0]! > 0 && c[1]! > 0, `counts ${c}`);
    assert.equal(c[2]! + c[3]! + c[4]!, 0, `counts ${c}`);
  });

  it('matches a sort-everything reference on random and heavy-tailed rows (same uniform draw)', () => {
    const gen = new Rng(2024, 1);
    const params: SamplingParams[] = [P(1), P(0.7, 0.9), P(0.8, 0.9, 20), P(1.3, 1, 5), P(0.5, 0.999), P(1, 0.6), P(2, 0.3, 50)];
    let cases = 0;
    for (const V of [7, 300, 2000]) {
      for (const scale of [0.5, 4, 30]) {
        // a few tokens far above a long tail: the tail falls below sampleToken's first threshold.
        const row = new Float32Array(V);
        for (let i = 0; i < V; i++) row[i] = scale * (gen.next() - 0.5) + (i % 97 === 0 ? scale : 0);
        for (const p of params) {
          const reference = referenceSampler(row, p);
          for (let k = 0; k < 10; k++) {
            const seed = cases * 31 + k;
            const u = new Rng(seed, 3).next();
            const got = sampleToken(row, 0, V, p, new Rng(seed, 3));
            const want = reference(u);
            assert.equal(got, want, `V=${V} scale=${scale} ${JSON.stringify(p)} draw ${k}`);
          }
          cases++;
        }
      }
    }
  });

  it('top-p alone counts the whole vocabulary, tail included, in the nucleus mass', () => {
    // weights 1, 0.3, 0.3 and 10000 tail tokens of e^-10 each (mass ≈ 0.454): total ≈ 2.054.
    // top_p 0.6 needs mass ≥ 1.232 → the first two tokens, never the first alone.
    const V = 10_003;
    const row = new Float32Array(V).fill(-10);
    row[0] = 0;
    row[1] = Math.log(0.3);
    row[2] = Math.log(0.3);
    const rng = new Rng(8);
    let second = 0;
    for (let i = 0; i < 400; i++) {
      const t = sampleToken(row, 0, V, P(1, 0.6), rng);
      assert.ok(t === 0 || t === 1, `sampled ${t}`);
      if (t === 1) second++;
    }
    // P(token 1 | nucleus {0, 1}) = 0.3 / 1.3 ≈ 0.23.
    assert.ok(second > 40, `token 1 sampled ${second} of 400 times`);
  });

  it('validateSampling rejects out-of-range parameters', () => {
    validateSampling(P(0.7, 0.9, 20));
    for (const bad of [P(-0.1), P(NaN), P(Infinity), P(1, 0), P(1, 1.5), P(1, 1, -1), P(1, 1, 1.5)]) {
      assert.throws(() => validateSampling(bad), Error, JSON.stringify(bad));
    }
  });
});
