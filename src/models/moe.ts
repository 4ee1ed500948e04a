/**
 * An MoE layer's experts on their routed rows, shared by the engine (generation) and the layer
 * runner (pruning): the layer graph returns every token's routing (route_idx, route_w: (N, k));
 * the tokens are grouped by expert, each expert with tokens runs once on its gathered rows
 * (models/graphs.ts buildExpertGraph, which scales its output by the routing weights), and the
 * outputs are added back into the tokens' rows. Experts no token chose are not run at all, so a
 * decode step reads only the routed experts' weights. JS does O(N·k·D) work: grouping, gathering,
 * adding back.
 */

/** The tokens routed to one expert. */
export interface ExpertRows {
  /** Token rows (indices into N), ascending. */
  rows: Int32Array;
  /** Each row's routing weight. */
  weights: Float32Array;
}

/**
 * Group N tokens' top-k routing by expert. `idx` (N, k) expert ids, `w` (N, k) weights; rows with
 * `skip[n]` set (padding) are left out. Returns E groups (empty where no token chose the expert).
 */
export function groupByExpert(
  idx: BigInt64Array | Int32Array,
  w: Float32Array,
  N: number,
  k: number,
  E: number,
  skip?: (n: number) => boolean,
): ExpertRows[] {
  if (idx.length !== N * k || w.length !== N * k) throw new RangeError(`routing: ${idx.length} / ${w.length} entries for ${N}·${k}`);
  const counts = new Int32Array(E);
  const id = (i: number): number => {
    const j = Number(idx[i]!);
    if (!(j >= 0 && j < E)) throw new RangeError(`routing: expert ${j} outside [0, ${E})`);
    return j;
  };
  for (let n = 0; n < N; n++) if (!skip?.(n)) for (let r = 0; r < k; r++) counts[id(n * k + r)]!++;
  const groups = Array.from(counts, (c) => ({ rows: new Int32Array(c), weights: new Float32Array(c) }));
  const fill = new Int32Array(E);
  for (let n = 0; n < N; n++) {
    if (skip?.(n)) continue;
    for (let r = 0; r < k; r++) {
      const j = id(n * k + r);
      const g = groups[j]!;
      g.rows[fill[j]!] = n;
      g.weights[fill[j]!++] = w[n * k + r]!;
    }
  }
  return groups;
}

/** Rows `rows` of x (N, D) → (rows.length, D). */
export function gatherRows(x: Float32Array, D: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * D);
  for (let r = 0; r < rows.length; r++) out.set(x.subarray(rows[r]! * D, (rows[r]! + 1) * D), r * D);
  return out;
}

/** out[rows[r]] += y[r] for y (rows.length, D). */
export function addRows(out: Float32Array, D: number, rows: Int32Array, y: Float32Array): void {
  if (y.length !== rows.length * D) throw new RangeError(`expert output has ${y.length} values for ${rows.length}·${D}`);
  for (let r = 0; r < rows.length; r++) {
    const o = rows[r]! * D;
    const s = r * D;
    for (let d = 0; d < D; d++) out[o + d]! += y[s + d]!;
  }
}

/**
 * The MoE block's contribution: for each expert with rows, `run(j, x_j, gate_w)` → its weighted
 * output (n_j, D), added into `out` (N, D) (which holds the residual h1 on entry). Experts run one
 * after another (each call already uses every intra-op thread).
 */
export async function runRoutedExperts(
  groups: readonly ExpertRows[],
  x: Float32Array,
  D: number,
  out: Float32Array,
  run: (j: number, xj: Float32Array, gateW: Float32Array, rows: Int32Array) => Promise<Float32Array>,
): Promise<void> {
  for (let j = 0; j < groups.length; j++) {
    const g = groups[j]!;
    if (g.rows.length === 0) continue;
    addRows(out, D, g.rows, await run(j, gatherRows(x, D, g.rows), g.weights, g.rows));
  }
}
