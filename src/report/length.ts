/**
 * Length inflation: how much longer a compressed model writes than the dense one, on the same
 * problems — compression lengthens chains of thought (arXiv 2606.00206: R1-Distill-Qwen-1.5B at
 * 3-bit AWQ, 5.2k → 23.4k mean tokens on MATH-500), and a shorter-looking model that only solves the
 * easy problems would hide it, so the ratios are taken over problems both evaluations have:
 *
 *   tokens_ratio          mean tokens over every sample of the common problems ÷ the dense model's;
 *   tokens_ratio_correct  mean tokens of the correct samples ÷ the dense model's correct samples, on
 *                         the problems both solve at least once (so both means cover the same problems);
 *   truncated / dense_truncated   the share of samples cut at the token budget, on the common problems.
 *
 * `rac eval --dense`, `rac run` (results.json `vs_dense`) and `rac report` (its columns) use it.
 */

/** What a results.json sample needs to carry for the comparison. */
export interface LengthSample {
  problem_id: string;
  tokens: number;
  correct: boolean;
  finish_reason: string;
}

export interface LengthVsDense {
  /** Problems both evaluations have. */
  problems: number;
  mean_tokens: number;
  dense_mean_tokens: number;
  tokens_ratio: number | null;
  /** Problems both models solve at least once (the correct-only ratio's problems). */
  problems_both_correct: number;
  mean_tokens_correct: number | null;
  dense_mean_tokens_correct: number | null;
  tokens_ratio_correct: number | null;
  truncated: number;
  dense_truncated: number;
}

function byProblem(samples: readonly LengthSample[]): Map<string, LengthSample[]> {
  const m = new Map<string, LengthSample[]>();
  for (const s of samples) {
    let l = m.get(s.problem_id);
    if (!l) m.set(s.problem_id, (l = []));
    l.push(s);
  }
  return m;
}

const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);

/** The comparison of `model`'s samples with `dense`'s (null when they share no problem). */
export function lengthVsDense(model: readonly LengthSample[], dense: readonly LengthSample[]): LengthVsDense | null {
  const a = byProblem(model);
  const d = byProblem(dense);
  const common = [...a.keys()].filter((k) => d.has(k));
  if (common.length === 0) return null;
  const am = common.flatMap((k) => a.get(k)!);
  const dm = common.flatMap((k) => d.get(k)!);
  const solved = common.filter((k) => a.get(k)!.some((s) => s.correct) && d.get(k)!.some((s) => s.correct));
  const ac = solved.flatMap((k) =>
    a
      .get(k)!
      .filter((s) => s.correct)
      .map((s) => s.tokens),
  );
  const dc = solved.flatMap((k) =>
    d
      .get(k)!
      .filter((s) => s.correct)
      .map((s) => s.tokens),
  );
  const meanA = mean(am.map((s) => s.tokens));
  const meanD = mean(dm.map((s) => s.tokens));
  const meanAc = ac.length ? mean(ac) : null;
  const meanDc = dc.length ? mean(dc) : null;
  return {
    problems: common.length,
    mean_tokens: meanA,
    dense_mean_tokens: meanD,
    tokens_ratio: meanD > 0 ? meanA / meanD : null,
    problems_both_correct: solved.length,
    mean_tokens_correct: meanAc,
    dense_mean_tokens_correct: meanDc,
    tokens_ratio_correct: meanAc !== null && meanDc !== null && meanDc > 0 ? meanAc / meanDc : null,
    truncated: mean(am.map((s) => (s.finish_reason === 'length' ? 1 : 0))),
    dense_truncated: mean(dm.map((s) => (s.finish_reason === 'length' ? 1 : 0))),
  };
}

/** The samples of a parsed results.json, checked to carry what lengthVsDense reads (null when absent). */
export function lengthSamplesOf(results: unknown): LengthSample[] | null {
  const s = (results as { samples?: unknown } | null)?.samples;
  if (!Array.isArray(s) || s.length === 0) return null;
  const out: LengthSample[] = [];
  for (const x of s as Record<string, unknown>[]) {
    if (typeof x?.problem_id !== 'string' || typeof x.tokens !== 'number' || typeof x.correct !== 'boolean') return null;
    out.push({ problem_id: x.problem_id, tokens: x.tokens, correct: x.correct, finish_reason: String(x.finish_reason ?? 'stop') });
  }
  return out;
}
