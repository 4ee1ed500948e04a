/** Inline SVG charts (no scripts, no external resources): lines per series, scatter, reference lines. */

export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

export interface Point {
  x: number;
  y: number;
  /** Tooltip text (an SVG <title>). */
  title?: string;
}

export interface Series {
  label: string;
  color: string;
  dash?: string;
  marker?: 'circle' | 'square' | 'triangle' | 'diamond';
  points: Point[];
}

export interface RefLine {
  y: number;
  label: string;
  color?: string;
}

export interface ChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  refLines?: RefLine[];
  /** Connect the points of a series (sorted by x). */
  lines: boolean;
  xFormat?: (v: number) => string;
  yFormat?: (v: number) => string;
  /** Force these values into the domain (e.g. 0 and 1 for accuracy). */
  xInclude?: number[];
  yInclude?: number[];
  width?: number;
  height?: number;
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1]! < hi - step * 1e-9) out.push(Number((out[out.length - 1]! + step).toPrecision(12)));
  return out;
}

function marker(kind: Series['marker'], x: number, y: number, color: string): string {
  const c = `fill="${color}" stroke="#fff" stroke-width="1"`;
  switch (kind) {
    case 'square':
      return `<rect x="${(x - 4).toFixed(1)}" y="${(y - 4).toFixed(1)}" width="8" height="8" ${c}/>`;
    case 'triangle':
      return `<path d="M${x.toFixed(1)},${(y - 5).toFixed(1)} L${(x + 5).toFixed(1)},${(y + 4).toFixed(1)} L${(x - 5).toFixed(1)},${(y + 4).toFixed(1)} Z" ${c}/>`;
    case 'diamond':
      return `<path d="M${x.toFixed(1)},${(y - 5).toFixed(1)} L${(x + 5).toFixed(1)},${y.toFixed(1)} L${x.toFixed(1)},${(y + 5).toFixed(1)} L${(x - 5).toFixed(1)},${y.toFixed(1)} Z" ${c}/>`;
    default:
      return `<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="4.5" ${c}/>`;
  }
}

/** One chart as an `<svg>` element with explicit width, height and viewBox. */
export function chart(spec: ChartSpec): string {
  const labels = [...spec.series.map((s) => s.label), ...(spec.refLines ?? []).map((r) => r.label)];
  // Legend to the right of the plot, wide enough for its longest label (≈ 6.6 px a character at 12 px).
  const legendW = Math.min(260, 44 + 6.6 * Math.max(0, ...labels.map((l) => l.length)));
  const W = spec.width ?? Math.round(360 + legendW);
  const H = spec.height ?? 340;
  const m = { top: 34, right: legendW, bottom: 46, left: 62 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const xs = spec.series.flatMap((s) => s.points.map((p) => p.x)).concat(spec.xInclude ?? []);
  const ys = spec.series.flatMap((s) => s.points.map((p) => p.y)).concat(spec.refLines?.map((r) => r.y) ?? [], spec.yInclude ?? []);
  const xlo = Math.min(...(xs.length ? xs : [0]));
  const xhi = Math.max(...(xs.length ? xs : [1]));
  const pad = (xhi - xlo) * 0.04; // keep points off the frame
  const xt = niceTicks(xlo - pad, xhi + pad);
  const yt = niceTicks(Math.min(...(ys.length ? ys : [0])), Math.max(...(ys.length ? ys : [1])));
  const [x0, x1] = [xt[0]!, xt[xt.length - 1]!];
  const [y0, y1] = [yt[0]!, yt[yt.length - 1]!];
  const sx = (v: number) => m.left + ((v - x0) / (x1 - x0 || 1)) * pw;
  const sy = (v: number) => m.top + ph - ((v - y0) / (y1 - y0 || 1)) * ph;
  const xf = spec.xFormat ?? ((v: number) => String(v));
  const yf = spec.yFormat ?? ((v: number) => String(v));
  const parts: string[] = [];
  parts.push(
    `<svg id="${esc(spec.id)}" class="chart" role="img" aria-labelledby="${esc(spec.id)}-title" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`,
  );
  parts.push(`<title id="${esc(spec.id)}-title">${esc(spec.title)}</title>`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${m.left}" y="20" class="ct">${esc(spec.title)}</text>`);
  // grid and ticks
  for (const v of yt) {
    const y = sy(v).toFixed(1);
    parts.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" class="grid"/>`);
    parts.push(`<text x="${m.left - 6}" y="${y}" class="tk" text-anchor="end" dominant-baseline="middle">${esc(yf(v))}</text>`);
  }
  for (const v of xt) {
    const x = sx(v).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${m.top}" y2="${m.top + ph}" class="grid"/>`);
    parts.push(`<text x="${x}" y="${m.top + ph + 16}" class="tk" text-anchor="middle">${esc(xf(v))}</text>`);
  }
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 8}" class="al" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  parts.push(`<text transform="translate(16 ${m.top + ph / 2}) rotate(-90)" class="al" text-anchor="middle">${esc(spec.yLabel)}</text>`);
  // reference lines
  for (const r of spec.refLines ?? []) {
    const y = sy(r.y).toFixed(1);
    parts.push(
      `<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="${r.color ?? '#333'}" stroke-width="1.5" stroke-dasharray="6 4"><title>${esc(`${r.label}: ${yf(r.y)}`)}</title></line>`,
    );
  }
  // series
  for (const s of spec.series) {
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    if (spec.lines && pts.length > 1) {
      const d = pts.map((p, i) => `${i ? 'L' : 'M'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`);
    }
    for (const p of pts) {
      parts.push(
        `<g>${marker(s.marker, sx(p.x), sy(p.y), s.color)}<title>${esc(p.title ?? `${s.label}: (${xf(p.x)}, ${yf(p.y)})`)}</title></g>`,
      );
    }
  }
  // legend
  let ly = m.top + 6;
  const lx = m.left + pw + 14;
  for (const s of spec.series) {
    if (spec.lines)
      parts.push(
        `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`,
      );
    parts.push(marker(s.marker, lx + 11, ly, s.color));
    parts.push(`<text x="${lx + 28}" y="${ly}" class="lg" dominant-baseline="middle">${esc(s.label)}</text>`);
    ly += 18;
  }
  for (const r of spec.refLines ?? []) {
    parts.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="${ly}" y2="${ly}" stroke="${r.color ?? '#333'}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
    parts.push(`<text x="${lx + 28}" y="${ly}" class="lg" dominant-baseline="middle">${esc(r.label)}</text>`);
    ly += 18;
  }
  parts.push('</svg>');
  return parts.join('\n');
}

export interface HeatmapSpec {
  id: string;
  title: string;
  /** Row labels (top to bottom) and column count. */
  rows: string[];
  cols: number;
  /** values[r][c] ≥ 0; colour ∝ log(1 + v) against the largest value. */
  values: number[][];
  /** Cells below this value get a red outline (e.g. experts with too few calibration tokens). */
  flagBelow?: number;
  /** Cells drawn crossed out (e.g. removed experts), [row][col]. */
  crossed?: boolean[][];
  /** Tooltip of one cell. */
  cellTitle: (r: number, c: number, v: number) => string;
  xLabel: string;
}

/** A heatmap: one row of cells per row label, darker for larger values (log scale), low cells outlined. */
export function heatmap(spec: HeatmapSpec): string {
  const cell = Math.max(3, Math.min(16, Math.floor(640 / Math.max(1, spec.cols))));
  const left = 70;
  const top = 26;
  const w = left + cell * spec.cols + 10;
  const h = top + cell * spec.rows.length + 30;
  const max = Math.max(1, ...spec.values.flat());
  const parts: string[] = [
    `<svg class="chart" id="${esc(spec.id)}" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" xmlns="http://www.w3.org/2000/svg">`,
    `<text class="ct" x="${left}" y="16">${esc(spec.title)}</text>`,
  ];
  spec.rows.forEach((label, r) => {
    const y = top + r * cell;
    parts.push(`<text class="tk" x="${left - 6}" y="${y + cell * 0.75}" text-anchor="end">${esc(label)}</text>`);
    for (let c = 0; c < spec.cols; c++) {
      const v = spec.values[r]?.[c] ?? 0;
      const t = Math.log1p(v) / Math.log1p(max);
      const shade = Math.round(245 - 200 * t);
      const flag = spec.flagBelow !== undefined && v < spec.flagBelow;
      const x = left + c * cell;
      parts.push(
        `<rect x="${x}" y="${y}" width="${cell}" height="${cell}" fill="rgb(${shade},${shade},255)"${flag ? ' stroke="#c00" stroke-width="1"' : ''}><title>${esc(spec.cellTitle(r, c, v))}</title></rect>`,
      );
      if (spec.crossed?.[r]?.[c])
        parts.push(
          `<path class="x" d="M${x} ${y}L${x + cell} ${y + cell}M${x + cell} ${y}L${x} ${y + cell}" stroke="#222" stroke-width="1"/>`,
        );
    }
  });
  parts.push(`<text class="al" x="${left}" y="${h - 8}">${esc(spec.xLabel)}</text>`, '</svg>');
  return parts.join('');
}
