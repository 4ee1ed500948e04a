// Unbiased pass@k estimator (Chen et al., 2021): 1 − C(n−c, k) / C(n, k), computed as the
// numerically stable product 1 − ∏_{i=n−c+1}^{n} (1 − k/i).

/**
 * pass@k for one problem from n samples of which c are correct.
 * Throws on invalid arguments (non-integers, c > n, k < 1, k > n).
 */
export function passAtK(n: number, c: number, k: number): number {
  for (const [name, v] of [
    ['n', n],
    ['c', c],
    ['k', k],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`passAtK: ${name} must be a non-negative integer, got ${v}`);
  }
  if (c > n) throw new RangeError(`passAtK: c (${c}) > n (${n})`);
  if (k < 1 || k > n) throw new RangeError(`passAtK: k must be in [1, n=${n}], got ${k}`);
  if (n - c < k) return 1;
  let prob = 1;
  for (let i = n - c + 1; i <= n; i++) prob *= 1 - k / i;
  return 1 - prob;
}

/** Mean pass@k over problems, each given as {n, c}; problems with n < k are skipped. */
export function meanPassAtK(problems: { n: number; c: number }[], k: number): number {
  const vals = problems.filter((p) => p.n >= k).map((p) => passAtK(p.n, p.c, k));
  return vals.length === 0 ? Number.NaN : vals.reduce((a, b) => a + b, 0) / vals.length;
}
