/**
 * Report inputs → rows. Two input shapes are accepted:
 *
 * - a `results.json` from `rac eval`: the row's labels come from `model.pruning` (copied from the
 *   evaluated model's `rac.json` at eval time) or, failing that, from `<model.dir>/rac.json`; a
 *   model without either is the dense reference;
 * - a `summary.json` in the demo's shape: `{model, eval_problems, dense: {accuracy, mean_tokens,
 *   truncated, hesitations?}, rows: [{method, calib, sparsity | pattern, calib_tokens, accuracy,
 *   mean_tokens, truncated, hesitations?, per_family}]}` (`hesitations`: words per sample) (or `{groups: [that shape, …]}`, which `summarize` writes for
 *   several base models).
 *
 * Rows are grouped by base model (the dense model a pruned one came from); Δ columns are
 * against the group's dense row.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { readPruningInfo, type ExpertCoverage, type PruningInfo } from '../prune/rac-json.ts';
import { lengthSamplesOf, lengthVsDense, type LengthSample, type LengthVsDense } from './length.ts';

export interface ReportRow {
  /** Base model (dense) this row belongs to: its directory name. */
  model: string;
  /** Grouping key of the base model (its full path when known). */
  base: string;
  /** 'dense' for the reference. */
  method: string;
  /** Calibration mode (prompt | rac | text | mix | …), null for dense and calibration-free methods. */
  calib: string | null;
  sparsity: number | null;
  pattern: string | null;
  calib_tokens: number | null;
  accuracy: number;
  mean_tokens: number;
  truncated: number | null;
  problems: number | null;
  /** Hesitation words per sample (results.json `metrics.hesitations.per_sample`), when known. */
  hesitations?: number;
  /** Quantization: the scheme and whether an importance matrix steered it (rac.json). */
  quant?: { scheme: string; imatrix: boolean };
  /** Length inflation against the group's dense row on the same problems (report/length.ts), when known. */
  vs_dense?: LengthVsDense;
  /** results.json samples (problem, tokens, grade, finish), for vs_dense. */
  lengthSamples?: LengthSample[];
  per_family?: Record<string, unknown>;
  /** The file the row came from. */
  source: string;
  /** Evaluated model directory (results.json) when known. */
  dir?: string;
  /** Dataset identity when known (rows of one group should share it). */
  dataset?: string;
  /** MoE models: calibration tokens routed to each expert, per pruned MoE layer. */
  experts?: ExpertCoverage[];
  /** MoE expert removal: the fraction of each layer's experts removed (by `expert_scoring`). */
  experts_removed?: number;
  expert_scoring?: string;
}

export interface ReportGroup {
  model: string;
  dense: ReportRow | null;
  rows: ReportRow[];
  notes: string[];
}

/** Sparsity for plotting: the number, or 1 − N/M for an N:M pattern. */
export function xSparsity(r: Pick<ReportRow, 'sparsity' | 'pattern' | 'method' | 'experts_removed'>): number | null {
  if (r.method === 'dense') return 0;
  // Expert removal alone: plotted at the fraction of experts removed.
  if ((r.method === 'reap' || r.method === 'frequency') && r.experts_removed !== undefined) return r.experts_removed;
  if (r.sparsity !== null) return r.sparsity;
  const m = r.pattern ? /^(\d+):(\d+)$/.exec(r.pattern) : null;
  return m ? 1 - Number(m[1]) / Number(m[2]) : null;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function calibMode(p: PruningInfo): string | null {
  const m = baseCalibMode(p);
  // A calibration variant (policy, selection, token weights, OWL: issue 16) labels its row.
  const v = p.calibration?.['variant'];
  return m !== null && typeof v === 'string' ? `${m}+${v}` : m;
}

function baseCalibMode(p: PruningInfo): string | null {
  if (p.method === 'magnitude') return null;
  const c = p.calibration;
  if (!c) return null;
  if (typeof c.mode === 'string') return c.mode;
  if (typeof c.calib_mode === 'string') return c.calib_mode;
  if (typeof c.source === 'string') return c.source;
  if (typeof c.kind === 'string' && c.kind !== 'mode') return c.kind;
  return null;
}

function modelName(dir: string): string {
  return basename(dir.replace(/\/+$/, '')) || dir;
}

const hesitationsField = (h: number | null): { hesitations?: number } => (h === null ? {} : { hesitations: h });

function fromResults(file: string, j: Record<string, unknown>): ReportRow {
  const model = (j.model ?? {}) as { dir?: string; pruning?: PruningInfo };
  const metrics = (j.metrics ?? {}) as Record<string, unknown>;
  const dir = typeof model.dir === 'string' ? model.dir : null;
  let p: PruningInfo | null = model.pruning ?? null;
  if (!p && dir && existsSync(dir)) p = readPruningInfo(dir);
  const acc = num(metrics.accuracy);
  const mt = num((metrics.mean_tokens as Record<string, unknown> | undefined)?.all) ?? num(metrics.mean_tokens);
  if (acc === null || mt === null) throw new Error(`${file}: results.json without metrics.accuracy / metrics.mean_tokens.all`);
  const dataset = j.dataset as { sha256?: string; problems?: number } | undefined;
  const base = p?.source_model ?? dir ?? file;
  const samples = lengthSamplesOf(j);
  return {
    model: modelName(base),
    base: resolve(base),
    method: p ? p.method : 'dense',
    calib: p ? calibMode(p) : null,
    sparsity: p ? (p.sparsity ?? null) : null,
    pattern: p ? (p.pattern ?? null) : null,
    calib_tokens: p && (calibMode(p) !== null || num(p.calibration?.tokens)) ? num(p.calibration?.tokens) : null,
    accuracy: acc,
    mean_tokens: mt,
    truncated: num(metrics.truncated),
    problems: num(dataset?.problems),
    ...hesitationsField(num((metrics.hesitations as Record<string, unknown> | undefined)?.per_sample)),
    ...(p?.quant ? { quant: p.quant } : {}),
    ...(j.per_family && typeof j.per_family === 'object' ? { per_family: j.per_family as Record<string, unknown> } : {}),
    ...(j.vs_dense && typeof j.vs_dense === 'object' ? { vs_dense: j.vs_dense as LengthVsDense } : {}),
    ...(samples ? { lengthSamples: samples } : {}),
    source: file,
    ...(dir ? { dir } : {}),
    ...(dataset?.sha256 ? { dataset: dataset.sha256 } : {}),
    ...(p?.experts ? { experts: p.experts } : {}),
    ...(p?.expert_removal
      ? {
          experts_removed: (p.expert_removal.experts_before - p.expert_removal.experts_after) / p.expert_removal.experts_before,
          expert_scoring: p.expert_removal.scoring,
        }
      : {}),
  };
}

function fromSummary(file: string, s: Record<string, unknown>): ReportRow[] {
  const model =
    typeof s.model === 'string'
      ? modelName(s.model)
      : typeof s.model === 'object' && s.model
        ? modelName(String((s.model as { dir?: unknown }).dir ?? file))
        : modelName(dirname(resolve(file)));
  const problems = num(s.eval_problems);
  const out: ReportRow[] = [];
  const d = s.dense as Record<string, unknown> | undefined;
  if (d) {
    const acc = num(d.accuracy);
    const mt = num(d.mean_tokens);
    if (acc === null || mt === null) throw new Error(`${file}: dense needs accuracy and mean_tokens`);
    out.push({
      model,
      base: model,
      method: 'dense',
      calib: null,
      sparsity: null,
      pattern: null,
      calib_tokens: null,
      accuracy: acc,
      mean_tokens: mt,
      truncated: num(d.truncated),
      problems,
      ...hesitationsField(num(d.hesitations)),
      ...(d.per_family && typeof d.per_family === 'object' ? { per_family: d.per_family as Record<string, unknown> } : {}),
      source: file,
    });
  }
  const rows = Array.isArray(s.rows) ? (s.rows as Record<string, unknown>[]) : [];
  rows.forEach((r, i) => {
    const acc = num(r.accuracy);
    const mt = num(r.mean_tokens);
    if (acc === null || mt === null || typeof r.method !== 'string')
      throw new Error(`${file}: rows[${i}] needs method, accuracy and mean_tokens`);
    out.push({
      model,
      base: model,
      method: r.method,
      calib: typeof r.calib === 'string' ? r.calib : null,
      sparsity: num(r.sparsity),
      pattern: typeof r.pattern === 'string' ? r.pattern : null,
      calib_tokens: num(r.calib_tokens),
      accuracy: acc,
      mean_tokens: mt,
      truncated: num(r.truncated),
      problems,
      ...hesitationsField(num(r.hesitations)),
      ...(r.quant && typeof r.quant === 'object' ? { quant: r.quant as { scheme: string; imatrix: boolean } } : {}),
      ...(r.per_family && typeof r.per_family === 'object' ? { per_family: r.per_family as Record<string, unknown> } : {}),
      ...(r.vs_dense && typeof r.vs_dense === 'object' ? { vs_dense: r.vs_dense as LengthVsDense } : {}),
      source: file,
    });
  });
  return out;
}

/** Rows of one input file (results.json or summary.json). */
export function loadReportInput(path: string): ReportRow[] {
  const file = resolve(path);
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(
      `${file}: ${code === 'ENOENT' ? 'file not found' : code ? `cannot read (${code})` : `invalid JSON (${(e as Error).message})`}`,
    );
  }
  if (!j || typeof j !== 'object' || Array.isArray(j)) throw new Error(`${file}: expected a JSON object`);
  const o = j as Record<string, unknown>;
  if (Array.isArray(o.groups)) return (o.groups as Record<string, unknown>[]).flatMap((g) => fromSummary(file, g));
  if ('dense' in o || Array.isArray(o.rows)) return fromSummary(file, o);
  if ('metrics' in o) return [fromResults(file, o)];
  throw new Error(`${file}: neither a results.json from rac eval nor a summary.json`);
}

const METHOD_ORDER = ['dense', 'reap', 'frequency', 'sparsegpt', 'wanda', 'magnitude'];
const CALIB_ORDER = ['prompt', 'rac', 'text', 'mix'];
const rank = (list: string[], v: string | null) => (v === null ? -1 : list.indexOf(v) < 0 ? list.length : list.indexOf(v));

export function sortRows(rows: ReportRow[]): ReportRow[] {
  return [...rows].sort(
    (a, b) =>
      rank(METHOD_ORDER, a.method) - rank(METHOD_ORDER, b.method) ||
      a.method.localeCompare(b.method) ||
      (xSparsity(a) ?? 2) - (xSparsity(b) ?? 2) ||
      (a.pattern ?? '').localeCompare(b.pattern ?? '') ||
      rank(CALIB_ORDER, a.calib) - rank(CALIB_ORDER, b.calib) ||
      (a.calib ?? '').localeCompare(b.calib ?? ''),
  );
}

/** Groups by base model, each with its dense reference (the first dense row) and notes on oddities. */
export function groupRows(rows: ReportRow[]): ReportGroup[] {
  const byModel = new Map<string, ReportRow[]>();
  for (const r of rows) {
    let l = byModel.get(r.base);
    if (!l) byModel.set(r.base, (l = []));
    l.push(r);
  }
  return [...byModel.values()].map((rs) => {
    const model = rs[0]!.model;
    const notes: string[] = [];
    const denses = rs.filter((r) => r.method === 'dense');
    if (denses.length === 0) notes.push('no dense result for this model: Δ columns are empty');
    if (denses.length > 1) notes.push(`${denses.length} dense results; Δ is against the first (${denses[0]!.source})`);
    const datasets = new Set(rs.map((r) => r.dataset).filter((d) => d !== undefined));
    if (datasets.size > 1) notes.push(`rows were evaluated on ${datasets.size} different datasets`);
    const problems = new Set(rs.map((r) => r.problems).filter((p) => p !== null));
    if (problems.size > 1) notes.push(`rows were evaluated on different numbers of problems (${[...problems].join(', ')})`);
    // Length inflation on the same problems, from the samples when both rows have them.
    const dense = denses[0];
    if (dense?.lengthSamples)
      for (const r of rs) {
        if (r === dense || !r.lengthSamples) continue;
        const v = lengthVsDense(r.lengthSamples, dense.lengthSamples);
        if (v) r.vs_dense = v;
      }
    return { model, dense: dense ?? null, rows: sortRows(rs), notes };
  });
}

/** The claim at each sparsity (SparseGPT): prompt-only's gap to dense, RAC's recovery, lengths. */
export interface ClaimCheck {
  sparsity: string;
  dense: number;
  prompt: ReportRow;
  rac: ReportRow;
  text: ReportRow | null;
  gap: number;
  recovered: number | null;
  racShorter: boolean;
  holds: boolean;
}

export function claimChecks(g: ReportGroup): ClaimCheck[] {
  if (!g.dense) return [];
  const out: ClaimCheck[] = [];
  const sg = g.rows.filter((r) => r.method === 'sparsegpt');
  const keys = [...new Set(sg.map((r) => r.pattern ?? String(r.sparsity)))];
  for (const k of keys) {
    const at = sg.filter((r) => (r.pattern ?? String(r.sparsity)) === k);
    const prompt = at.find((r) => r.calib === 'prompt');
    const rac = at.find((r) => r.calib === 'rac');
    if (!prompt || !rac) continue;
    const gap = g.dense.accuracy - prompt.accuracy;
    const recovered = gap > 0 ? (rac.accuracy - prompt.accuracy) / gap : null;
    const racShorter = rac.mean_tokens < prompt.mean_tokens;
    out.push({
      sparsity: prompt.pattern ?? `${Math.round(100 * (prompt.sparsity ?? 0))}%`,
      dense: g.dense.accuracy,
      prompt,
      rac,
      text: at.find((r) => r.calib === 'text') ?? null,
      gap,
      recovered,
      racShorter,
      holds: gap >= 0.15 && recovered !== null && recovered >= 0.5 && racShorter,
    });
  }
  return out;
}

/** A summary.json in the claim's shape (one base model), or `{groups: […]}` for several. */
export function summarize(groups: ReportGroup[]): Record<string, unknown> {
  const one = (g: ReportGroup) => ({
    model: g.model,
    eval_problems: g.dense?.problems ?? g.rows.find((r) => r.problems !== null)?.problems ?? null,
    dense: g.dense
      ? {
          accuracy: g.dense.accuracy,
          mean_tokens: g.dense.mean_tokens,
          truncated: g.dense.truncated,
          ...hesitationsField(g.dense.hesitations ?? null),
          ...(g.dense.per_family ? { per_family: g.dense.per_family } : {}),
        }
      : null,
    rows: g.rows
      .filter((r) => r.method !== 'dense')
      .map((r) => ({
        method: r.method,
        calib: r.calib,
        ...(r.pattern !== null ? { pattern: r.pattern } : { sparsity: r.sparsity }),
        calib_tokens: r.calib_tokens,
        accuracy: r.accuracy,
        mean_tokens: r.mean_tokens,
        truncated: r.truncated,
        ...hesitationsField(r.hesitations ?? null),
        ...(r.quant ? { quant: r.quant } : {}),
        ...(g.dense ? { delta_accuracy: r.accuracy - g.dense.accuracy, delta_mean_tokens: r.mean_tokens - g.dense.mean_tokens } : {}),
        ...(r.vs_dense
          ? { tokens_ratio: r.vs_dense.tokens_ratio, tokens_ratio_correct: r.vs_dense.tokens_ratio_correct, vs_dense: r.vs_dense }
          : {}),
        ...(r.per_family ? { per_family: r.per_family } : {}),
      })),
    claim: claimChecks(g).map((c) => ({
      sparsity: c.sparsity,
      dense: c.dense,
      prompt: c.prompt.accuracy,
      rac: c.rac.accuracy,
      text: c.text?.accuracy ?? null,
      prompt_gap: c.gap,
      rac_recovered: c.recovered,
      prompt_mean_tokens: c.prompt.mean_tokens,
      rac_mean_tokens: c.rac.mean_tokens,
      holds: c.holds,
    })),
  });
  return groups.length === 1 ? one(groups[0]!) : { groups: groups.map(one) };
}
