/**
 * Sparsity targets, their parsing and validation at the edge, and exact mask selection.
 * Every selector picks EXACTLY the requested count of smallest scores, ties broken by the lower
 * index, so realised sparsity equals the target (the references' `<= thresh` may overshoot).
 */

/** n:m = n zeros in every m consecutive input columns of each row (2:4 → 50%). */
export type SparsityTarget = { kind: 'unstructured'; sparsity: number } | { kind: 'nm'; n: number; m: number };

export interface PruneReport {
  zeros: number; // exact zeros in W after pruning (pre-existing zeros included)
  total: number; // rows·cols
  sparsity: number; // zeros / total
  loss?: number; // SparseGPT: Σ (w − q)² / U_jj² / 2 over the layer
  damp?: number; // SparseGPT: the relative damping λ finally used (H += λ·mean(diag H)·I)
  retries?: number; // SparseGPT: failed Cholesky attempts before success
  seconds?: number;
  /** SparseGPT: seconds spent in damping + factorization (U), the rest being the OBS sweep. */
  factorSeconds?: number;
}

/** "0.5" or 0.5 → 0.5, validated in [0, 1). */
export function parseSparsity(spec: string | number): number {
  const s = typeof spec === 'number' ? spec : spec.trim() === '' ? NaN : Number(spec);
  if (!Number.isFinite(s) || s < 0 || s >= 1) throw new RangeError(`sparsity must be a number in [0, 1), got ${JSON.stringify(spec)}`);
  return s;
}

/** "2:4" → {n: 2, m: 4}; integers with 1 ≤ n < m. */
export function parsePattern(spec: string): { n: number; m: number } {
  const match = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(spec);
  if (!match) throw new RangeError(`N:M pattern must look like "2:4", got ${JSON.stringify(spec)}`);
  const n = Number(match[1]);
  const m = Number(match[2]);
  if (!(m > 0)) throw new RangeError(`N:M pattern ${JSON.stringify(spec)}: M must be > 0`);
  if (!(n >= 1)) throw new RangeError(`N:M pattern ${JSON.stringify(spec)}: N must be ≥ 1`);
  if (!(n < m)) throw new RangeError(`N:M pattern ${JSON.stringify(spec)}: N must be < M`);
  return { n, m };
}

/** "0.5" → unstructured 50%; "2:4" → N:M. */
export function parseSparsityTarget(spec: string): SparsityTarget {
  return spec.includes(':') ? { kind: 'nm', ...parsePattern(spec) } : { kind: 'unstructured', sparsity: parseSparsity(spec) };
}

/**
 * The one parser of a sparsity target from its two spellings (`sparsity: 0.5` | `pattern: "2:4"`):
 * exactly one must be given (`rac prune --sparsity|--pattern`, a recipe entry's value).
 */
export function targetOf(spec: { sparsity?: string | number | undefined; pattern?: string | undefined }): SparsityTarget {
  if ((spec.sparsity === undefined) === (spec.pattern === undefined)) throw new RangeError('give exactly one of sparsity or pattern');
  return spec.pattern !== undefined
    ? { kind: 'nm', ...parsePattern(spec.pattern) }
    : { kind: 'unstructured', sparsity: parseSparsity(spec.sparsity!) };
}

/** rac.json's spelling of a target: `{sparsity: 0.5}` or `{pattern: "2:4"}`. */
export function describeTarget(t: SparsityTarget): { sparsity?: number; pattern?: string } {
  return t.kind === 'nm' ? { pattern: `${t.n}:${t.m}` } : { sparsity: t.sparsity };
}

/** A target in file names (`s60`, `2of4`). */
export function targetLabel(t: SparsityTarget): string {
  return t.kind === 'nm' ? `${t.n}of${t.m}` : `s${Math.round(t.sparsity * 1000) / 10}`;
}

/** A target for people (`sparsity 0.6`, `2:4`). */
export function targetText(t: SparsityTarget): string {
  return t.kind === 'nm' ? `${t.n}:${t.m}` : `sparsity ${t.sparsity}`;
}

/** The fraction of weights a target zeroes (n/m for N:M). */
export function targetFraction(t: SparsityTarget): number {
  return t.kind === 'nm' ? t.n / t.m : t.sparsity;
}

/** Validate a target against a (rows, cols) weight; throws with a clear message. */
export function validateTarget(t: SparsityTarget, cols: number): void {
  if (t.kind === 'unstructured') {
    parseSparsity(t.sparsity);
  } else {
    if (!Number.isInteger(t.n) || !Number.isInteger(t.m) || t.m <= 0 || t.n < 1 || t.n >= t.m) {
      throw new RangeError(`N:M target needs integers 1 ≤ N < M, got ${t.n}:${t.m}`);
    }
    if (cols % t.m !== 0) throw new RangeError(`N:M ${t.n}:${t.m} needs cols divisible by M, got cols = ${cols}`);
  }
}

/** Check that W is a finite rows×cols matrix. */
export function validateWeight(W: Float32Array, rows: number, cols: number, what: string): void {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < 1) {
    throw new RangeError(`${what}: rows and cols must be positive integers, got ${rows}×${cols}`);
  }
  if (W.length !== rows * cols) throw new RangeError(`${what}: W has ${W.length} elements, expected rows·cols = ${rows}·${cols}`);
  for (let i = 0; i < W.length; i++) {
    if (!Number.isFinite(W[i])) throw new RangeError(`${what}: W[${Math.floor(i / cols)}, ${i % cols}] is ${W[i]}`);
  }
}

export function countZeros(W: ArrayLike<number>): number {
  let z = 0;
  for (let i = 0; i < W.length; i++) if (W[i] === 0) z++;
  return z;
}

export function reportFor(W: Float32Array, extra: Omit<PruneReport, 'zeros' | 'total' | 'sparsity'> = {}): PruneReport {
  const zeros = countZeros(W);
  return { zeros, total: W.length, sparsity: W.length ? zeros / W.length : 0, ...extra };
}

/**
 * Mark (mask[offset + i] = 1) exactly k of scores[0..len) with the smallest values, ties broken
 * by lower index. Scores must not be NaN. O(len log len) via a typed-array sort of a copy.
 */
export function selectSmallest(scores: Float64Array, k: number, mask: Uint8Array, offset = 0): void {
  const len = scores.length;
  if (k <= 0) return;
  if (k >= len) {
    mask.fill(1, offset, offset + len);
    return;
  }
  const thresh = kthSmallest(Float64Array.from(scores), k - 1);
  let below = 0;
  for (let i = 0; i < len; i++) if (scores[i] < thresh) below++;
  let ties = k - below; // how many entries equal to thresh to take, in index order
  for (let i = 0; i < len; i++) {
    const v = scores[i];
    if (v < thresh) mask[offset + i] = 1;
    else if (v === thresh && ties > 0) {
      mask[offset + i] = 1;
      ties--;
    }
  }
}

/** The value of rank `k` (0-based) of `a`, by quickselect (median of three); reorders `a`. O(n). */
export function kthSmallest(a: Float64Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const mid = (lo + hi) >>> 1;
    // median of three to a[hi]
    if (a[mid] < a[lo]) swap(a, mid, lo);
    if (a[hi] < a[lo]) swap(a, hi, lo);
    if (a[mid] < a[hi]) swap(a, mid, hi);
    const pivot = a[hi];
    let i = lo;
    for (let j = lo; j < hi; j++) {
      if (a[j] < pivot) swap(a, i++, j);
    }
    swap(a, i, hi);
    // a[lo..i-1] < pivot = a[i] ≤ a[i+1..hi]; many equal values fall right, so skip a run of them
    if (k === i) return a[i];
    if (k < i) hi = i - 1;
    else {
      let e = i + 1;
      while (e <= hi && a[e] === pivot) e++;
      if (k < e) return pivot;
      lo = e;
    }
  }
  return a[lo];
}

function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i];
  a[i] = a[j];
  a[j] = t;
}

/**
 * Mark the n smallest of the m scores at scores[start .. start+m) (ties → lower index) in
 * mask[start ..]. A partial selection sort: m is tiny (4, 8).
 */
export function selectSmallestInGroup(scores: ArrayLike<number>, start: number, m: number, n: number, mask: Uint8Array): void {
  for (let t = 0; t < n; t++) {
    let best = -1;
    let bestV = Infinity;
    for (let j = start; j < start + m; j++) {
      if (mask[j]) continue;
      const v = scores[j];
      if (best < 0 || v < bestV) {
        best = j;
        bestV = v;
      }
    }
    mask[best] = 1;
  }
}

/**
 * Row-wise mask for a (rows, cols) score matrix: unstructured → per row exactly
 * floor(sparsity·cols) smallest; N:M → per row, in each group of m columns, the n smallest.
 */
export function rowwiseMask(scores: Float64Array, rows: number, cols: number, target: SparsityTarget): Uint8Array {
  const mask = new Uint8Array(rows * cols); // (rows, cols), 1 = prune
  if (target.kind === 'unstructured') {
    const k = Math.floor(target.sparsity * cols);
    for (let r = 0; r < rows; r++) selectSmallest(scores.subarray(r * cols, (r + 1) * cols), k, mask, r * cols);
  } else {
    for (let r = 0; r < rows; r++) {
      for (let g = 0; g < cols; g += target.m) selectSmallestInGroup(scores, r * cols + g, target.m, target.n, mask);
    }
  }
  return mask;
}

/** W[i] = 0 where mask[i]. */
export function applyMask(W: Float32Array, mask: Uint8Array): void {
  for (let i = 0; i < W.length; i++) if (mask[i]) W[i] = 0;
}
