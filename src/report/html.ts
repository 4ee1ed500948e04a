/**
 * `rac report`: one self-contained HTML page — inline CSS and inline SVG only, no scripts, no
 * network — with the results table and the plots: accuracy vs sparsity per calibration mode
 * (dense as a reference line), mean generated tokens vs sparsity, accuracy vs mean length.
 */
import { basename, resolve } from 'node:path';
import { RAC_VERSION } from '../version.ts';
import { claimChecks, groupRows, loadReportInput, summarize, xSparsity, type ReportGroup, type ReportRow } from './data.ts';
import { chart, esc, heatmap, type RefLine, type Series } from './svg.ts';
import { writeFileAtomic } from '../io/atomic.ts';

const CALIB_COLORS: Record<string, string> = { prompt: '#d62728', rac: '#2ca02c', text: '#1f77b4', mix: '#9467bd' };
const CALIB_LABELS: Record<string, string> = { prompt: 'prompt-only', rac: 'RAC (own CoT)', text: 'text', mix: 'mix' };
const EXTRA_COLORS = ['#ff7f0e', '#8c564b', '#e377c2', '#17becf', '#bcbd22'];
const METHOD_STYLE: Record<string, { dash?: string; marker: Series['marker'] }> = {
  sparsegpt: { marker: 'circle' },
  wanda: { dash: '7 4', marker: 'square' },
  magnitude: { dash: '2 3', marker: 'triangle' },
  reap: { marker: 'diamond' },
  frequency: { dash: '7 4', marker: 'diamond' },
};

const pct = (v: number | null, digits = 1) => (v === null || !Number.isFinite(v) ? '–' : `${(100 * v).toFixed(digits)}%`);
const fixed = (v: number | null, digits = 1) => (v === null || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const signed = (v: number, s: string) => (v > 0 ? `+${s}` : v < 0 ? `−${s.replace(/^-/, '')}` : s);

function sparsityLabel(r: ReportRow): string {
  if (r.method === 'dense') return '0%';
  const experts = r.experts_removed !== undefined ? `experts −${+(100 * r.experts_removed).toFixed(1)}%` : null;
  if (experts && (r.method === 'reap' || r.method === 'frequency')) return experts;
  const s = r.pattern ? r.pattern : r.sparsity === null ? '?' : `${+(100 * r.sparsity).toFixed(1)}%`;
  return experts ? `${experts} (${r.expert_scoring}), then ${s}` : s;
}

/** The method with its quantization scheme (rac.json), e.g. "gptq q4_k_m +imatrix". */
function methodLabel(r: ReportRow): string {
  return r.quant ? `${r.method} ${r.quant.scheme}${r.quant.imatrix ? ' +imatrix' : ''}` : r.method;
}

function calibLabel(c: string | null): string {
  return c === null ? '—' : (CALIB_LABELS[c] ?? c);
}

interface SeriesKey {
  key: string;
  method: string;
  calib: string | null;
  nm: boolean;
}

function seriesOf(
  rows: ReportRow[],
  oneMethod: boolean,
): Array<SeriesKey & { label: string; color: string; dash?: string; marker: Series['marker']; rows: ReportRow[] }> {
  const map = new Map<string, ReportRow[]>();
  for (const r of rows) {
    const key = `${methodLabel(r)}\u0000${r.calib ?? ''}\u0000${r.pattern ? 'nm' : ''}`;
    let l = map.get(key);
    if (!l) map.set(key, (l = []));
    l.push(r);
  }
  let extra = 0;
  const extraColor = new Map<string, string>();
  return [...map.entries()].map(([key, rs]) => {
    const r = rs[0]!;
    const calib = r.calib;
    let color = calib !== null ? CALIB_COLORS[calib] : '#7f7f7f';
    if (!color) {
      color = extraColor.get(calib!) ?? EXTRA_COLORS[extra++ % EXTRA_COLORS.length]!;
      extraColor.set(calib!, color);
    }
    const style = METHOD_STYLE[r.method] ?? { dash: '4 2 1 2', marker: 'diamond' as const };
    const base = oneMethod
      ? calib === null
        ? methodLabel(r)
        : calibLabel(calib)
      : calib === null
        ? methodLabel(r)
        : `${methodLabel(r)} · ${calibLabel(calib)}`;
    return {
      key,
      method: r.method,
      calib,
      nm: !!r.pattern,
      label: r.pattern ? `${base} (N:M)` : base,
      color,
      ...(style.dash ? { dash: style.dash } : {}),
      marker: style.marker,
      rows: rs,
    };
  });
}

function rowTitle(r: ReportRow): string {
  return `${methodLabel(r)}${r.calib ? ` · ${calibLabel(r.calib)}` : ''} @ ${sparsityLabel(r)}: accuracy ${pct(r.accuracy)}, mean tokens ${fixed(r.mean_tokens)}${r.vs_dense?.tokens_ratio != null ? ` (${r.vs_dense.tokens_ratio.toFixed(2)}× dense)` : ''}`;
}

function groupCharts(g: ReportGroup, gi: number): string {
  const pruned = g.rows.filter((r) => r.method !== 'dense' && xSparsity(r) !== null);
  const oneMethod = new Set(pruned.map((r) => methodLabel(r))).size <= 1;
  const series = seriesOf(pruned, oneMethod);
  const spx = (v: number) => `${+(100 * v).toFixed(1)}%`;
  const denseAcc: RefLine[] = g.dense ? [{ y: g.dense.accuracy, label: `dense ${pct(g.dense.accuracy)}` }] : [];
  const denseLen: RefLine[] = g.dense ? [{ y: g.dense.mean_tokens, label: `dense ${fixed(g.dense.mean_tokens, 0)} tok` }] : [];
  const acc = chart({
    id: `acc-vs-sparsity-${gi}`,
    title: 'Accuracy vs sparsity',
    xLabel: 'sparsity',
    yLabel: 'accuracy',
    lines: true,
    series: series.map((s) => ({ ...s, points: s.rows.map((r) => ({ x: xSparsity(r)!, y: r.accuracy, title: rowTitle(r) })) })),
    refLines: denseAcc,
    xFormat: spx,
    yFormat: (v) => `${+(100 * v).toFixed(1)}%`,
    yInclude: [0],
  });
  const len = chart({
    id: `tokens-vs-sparsity-${gi}`,
    title: 'Mean generated tokens vs sparsity',
    xLabel: 'sparsity',
    yLabel: 'mean generated tokens',
    lines: true,
    series: series.map((s) => ({ ...s, points: s.rows.map((r) => ({ x: xSparsity(r)!, y: r.mean_tokens, title: rowTitle(r) })) })),
    refLines: denseLen,
    xFormat: spx,
    yInclude: [0],
  });
  const scatterSeries: Series[] = series.map((s) => ({
    ...s,
    points: s.rows.map((r) => ({ x: r.mean_tokens, y: r.accuracy, title: rowTitle(r) })),
  }));
  if (g.dense)
    scatterSeries.unshift({
      label: 'dense',
      color: '#111',
      marker: 'diamond',
      points: [{ x: g.dense.mean_tokens, y: g.dense.accuracy, title: rowTitle(g.dense) }],
    });
  const scatter = chart({
    id: `acc-vs-length-${gi}`,
    title: 'Accuracy vs mean generated length',
    xLabel: 'mean generated tokens',
    yLabel: 'accuracy',
    lines: false,
    series: scatterSeries,
    yFormat: (v) => `${+(100 * v).toFixed(1)}%`,
    yInclude: [0],
  });
  return `<div class="charts">\n<figure>${acc}</figure>\n<figure>${len}</figure>\n<figure>${scatter}</figure>\n</div>`;
}

function groupTable(g: ReportGroup): string {
  const d = g.dense;
  const families = [...new Set(g.rows.flatMap((r) => Object.keys(r.per_family ?? {})))].sort();
  // pass@k columns (largest k > 1) for the families evaluated with several samples (e.g. code).
  const passK = (r: ReportRow, f: string): Record<string, unknown> =>
    (r.per_family?.[f] as { pass_at_k?: Record<string, unknown> } | undefined)?.pass_at_k ?? {};
  const passCols = families
    .map((f) => ({
      f,
      k: Math.max(
        0,
        ...g.rows.flatMap((r) =>
          Object.keys(passK(r, f))
            .map(Number)
            .filter((k) => Number.isFinite(k)),
        ),
      ),
    }))
    .filter((c) => c.k > 1);
  const hasHes = g.rows.some((r) => r.hesitations !== undefined);
  // length inflation on the same problems (report/length.ts): all samples; correct ones on problems both solve
  const hasLen = g.rows.some((r) => r.vs_dense);
  const head = [
    'model',
    'method',
    'calib mode',
    'sparsity / pattern',
    'calib tokens',
    'accuracy',
    'Δ acc vs dense',
    'mean tokens',
    'Δ tokens vs dense',
    ...(hasLen ? ['tokens ÷ dense', 'correct tokens ÷ dense'] : []),
    ...(hasHes ? ['hesitations / sample'] : []),
    'truncated',
    'problems',
    ...families.map((f) => `acc: ${f}`),
    ...passCols.flatMap((c) => [`pass@1: ${c.f}`, `pass@${c.k}: ${c.f}`]),
    'source',
  ];
  const lines = g.rows.map((r) => {
    const dAcc = d && r !== d ? r.accuracy - d.accuracy : null;
    const dTok = d && r !== d ? r.mean_tokens - d.mean_tokens : null;
    const fam = families.map((f) => {
      const v = (r.per_family?.[f] as { accuracy?: unknown } | undefined)?.accuracy;
      return `<td class="n">${typeof v === 'number' ? pct(v) : '–'}</td>`;
    });
    for (const c of passCols) {
      for (const k of [1, c.k]) {
        const v = passK(r, c.f)[String(k)];
        fam.push(`<td class="n">${typeof v === 'number' ? pct(v) : '–'}</td>`);
      }
    }
    const hes = hasHes ? `<td class="n">${r.hesitations === undefined ? '–' : r.hesitations.toFixed(2)}</td>` : '';
    const ratio = (v: number | null | undefined) =>
      `<td class="n ${v != null && v > 1 ? 'neg' : 'pos'}">${v == null ? '–' : `${v.toFixed(2)}×`}</td>`;
    const len = hasLen ? (r === d ? ratio(1) + ratio(1) : ratio(r.vs_dense?.tokens_ratio) + ratio(r.vs_dense?.tokens_ratio_correct)) : '';
    const cls = r.method === 'dense' ? ' class="dense"' : '';
    return (
      `<tr${cls}><td>${esc(r.model)}</td><td>${esc(methodLabel(r))}</td><td>${esc(calibLabel(r.calib))}</td><td class="n">${esc(sparsityLabel(r))}</td>` +
      `<td class="n">${r.calib_tokens === null ? '–' : r.calib_tokens.toLocaleString('en-US')}</td>` +
      `<td class="n"><b>${pct(r.accuracy)}</b></td>` +
      `<td class="n ${dAcc !== null && dAcc < 0 ? 'neg' : 'pos'}">${dAcc === null ? '–' : signed(dAcc, `${(100 * dAcc).toFixed(1)} pts`)}</td>` +
      `<td class="n"><b>${fixed(r.mean_tokens)}</b></td>` +
      `<td class="n ${dTok !== null && dTok > 0 ? 'neg' : 'pos'}">${dTok === null ? '–' : signed(dTok, dTok.toFixed(1))}</td>${len}${hes}` +
      `<td class="n">${pct(r.truncated)}</td><td class="n">${r.problems ?? '–'}</td>${fam.join('')}` +
      `<td class="src" title="${esc(r.source)}">${esc(basename(r.source))}</td></tr>`
    );
  });
  return `<div class="tw"><table>\n<thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>\n<tbody>\n${lines.join('\n')}\n</tbody>\n</table></div>`;
}

function groupClaim(g: ReportGroup): string {
  const cs = claimChecks(g);
  if (cs.length === 0) return '';
  const items = cs.map((c) => {
    const rec =
      c.recovered === null
        ? 'prompt-only did not lose accuracy against dense'
        : `RAC recovers ${pct(c.recovered, 0)} of prompt-only's ${(100 * c.gap).toFixed(1)}-point gap`;
    const len = `RAC ${fixed(c.rac.mean_tokens, 0)} vs prompt-only ${fixed(c.prompt.mean_tokens, 0)} mean tokens (${c.racShorter ? 'shorter' : 'not shorter'})`;
    const text = c.text ? `; text ${pct(c.text.accuracy)}` : '';
    return `<li><b>SparseGPT @ ${esc(c.sparsity)}</b>: dense ${pct(c.dense)}, prompt-only ${pct(c.prompt.accuracy)}, RAC ${pct(c.rac.accuracy)}${esc(text)} — ${esc(rec)}; ${esc(len)}. <span class="${c.holds ? 'ok' : 'no'}">${c.holds ? 'claim holds' : 'claim not met here'}</span></li>`;
  });
  return `<div class="claim"><h3>The claim, measured</h3><p>Where prompt-only SparseGPT loses ≥ 15 points against dense, RAC should recover ≥ half of the gap and generate fewer tokens.</p><ul>${items.join('')}</ul></div>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}h3{font-size:15px;margin:0 0 6px}
.meta{color:#666;font-size:12px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 6px;white-space:nowrap}th{background:#f0f0f0;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}td.neg{color:#b00}td.pos{color:#070}
tr.dense td{background:#f6f6ff;font-weight:600}td.src{color:#777;font-size:11px}
.charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0;border:1px solid #ddd;background:#fff}
svg.chart{display:block}svg .ct{font-size:14px;font-weight:600}svg .tk{font-size:11px;fill:#555}
svg .al{font-size:12px;fill:#333}svg .lg{font-size:12px}svg .grid{stroke:#eee}
.claim{background:#fff;border:1px solid #ddd;padding:8px 14px;margin:10px 0}.ok{color:#070;font-weight:600}.no{color:#b00;font-weight:600}
.note{color:#a60}.tw{overflow-x:auto;max-width:100%}`;

/** Below this many routed calibration tokens an expert's statistics are thin (rac prune's --min-expert-tokens default). */
const FEW_TOKENS = 32;

/**
 * MoE models: per pruned model, a heatmap of calibration tokens routed to each expert (layers ×
 * experts) with the experts under FEW_TOKENS outlined, so calibrations (prompt-only vs RAC) can
 * be compared at a glance.
 */
function expertCoverage(g: ReportGroup, gi: number): string {
  const rows = g.rows.filter((r) => r.experts && r.experts.length > 0);
  if (rows.length === 0) return '';
  const figs = rows.map((r, ri) => {
    const cov = r.experts!;
    const cols = Math.max(...cov.map((l) => l.tokens.length));
    const few = cov.reduce((a, l) => a + l.tokens.filter((t) => t < FEW_TOKENS).length, 0);
    const total = cov.reduce((a, l) => a + l.tokens.length, 0);
    const removed = cov.some((l) => l.removed) ? cov.map((l) => l.removed ?? []) : undefined;
    const svg = heatmap({
      id: `g${gi}-experts-${ri}`,
      title: rowTitle(r),
      rows: cov.map((l) => `layer ${l.layer}`),
      cols,
      values: cov.map((l) => l.tokens),
      flagBelow: FEW_TOKENS,
      ...(removed ? { crossed: removed } : {}),
      cellTitle: (ri2, c, v) => {
        const l = cov[ri2]!;
        const score = l.scores?.[c];
        return `layer ${l.layer}, expert ${c}: ${v} tokens${score !== undefined ? `, score ${score.toPrecision(4)}` : ''}${l.removed?.[c] ? ', removed' : ''}`;
      },
      xLabel: `experts (${few} of ${total} with fewer than ${FEW_TOKENS} tokens, outlined${removed ? '; removed experts crossed' : ''})`,
    });
    return `<figure>${svg}</figure>`;
  });
  return `<h3>Expert coverage: calibration tokens routed to each expert</h3>\n<div class="charts">${figs.join('')}</div>`;
}

export interface ReportOptions {
  title?: string;
  /** Fixed timestamp (tests); default now. */
  created?: string;
}

/** The page for already-loaded rows. */
export function renderReport(rows: ReportRow[], opts: ReportOptions = {}): string {
  if (rows.length === 0) throw new Error('nothing to report: no rows');
  const groups = groupRows(rows);
  const title = opts.title ?? 'rac report: accuracy and generated length after pruning';
  const body = groups
    .map((g, gi) => {
      const notes = g.notes.map((n) => `<p class="note">⚠ ${esc(n)}</p>`).join('');
      return `<section>\n<h2>${esc(g.model)}</h2>${notes}\n${groupClaim(g)}\n${groupTable(g)}\n${groupCharts(g, gi)}\n${expertCoverage(g, gi)}\n</section>`;
    })
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${esc(title)}</h1>
<p class="meta">rac ${esc(RAC_VERSION)} · ${esc(opts.created ?? new Date().toISOString())} · ${rows.length} results. Accuracy: mean over problems of the mean over samples. Mean tokens: generated tokens per sample (all samples). Truncated: fraction of samples cut at the token budget.</p>
${body}
</body>
</html>
`;
}

export interface BuildReportResult {
  rows: ReportRow[];
  groups: ReportGroup[];
  summary: Record<string, unknown>;
}

/** Reads the inputs, writes the page (temp + rename) and optionally summary.json. */
export function buildReport(inputs: string[], out: string, opts: ReportOptions & { summary?: string } = {}): BuildReportResult {
  const rows = inputs.flatMap((f) => loadReportInput(f));
  const html = renderReport(rows, opts);
  writeFileAtomic(resolve(out), html);
  const groups = groupRows(rows);
  const summary = summarize(groups);
  if (opts.summary) writeFileAtomic(resolve(opts.summary), JSON.stringify(summary, null, 2) + '\n');
  return { rows, groups, summary };
}
