#!/usr/bin/env -S npx tsx
/**
 * The expert-pruning study's table (issue 29) from a `rac run` output directory: one row per
 * evaluated model — accuracy overall and per family, pass@k, mean generated tokens, hesitations,
 * truncation, the GGUF file's bytes (F16, or the model's quantization grid) against the dense
 * GGUF's, and expert coverage (experts with fewer than 32 routed calibration tokens, over all MoE
 * layers, under that model's calibration) — then the issue's figures: at 50% of experts, the share
 * of prompt-only REAP's accuracy loss that RAC-REAP recovers and both lengths; every RAC-REAP row
 * under 50% (the 25% bar; 25% of 6 experts is 1.5, so the nearest counts on either side) against dense.
 *
 *   npx tsx scripts/moe-study-table.ts examples/moe-study-out
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportGguf, type GgufDtype } from '../src/export/gguf.ts';
import { readPruningInfo } from '../src/prune/rac-json.ts';

const LOW_TOKENS = 32;
const out = process.argv[2];
if (!out || !existsSync(join(out, 'evals'))) {
  console.error('usage: npx tsx scripts/moe-study-table.ts OUT   (a rac run output directory with evals/)');
  process.exit(2);
}
type Obj = Record<string, any>;
interface Row {
  label: string;
  calib: string;
  experts: number | null;
  method: string;
  accuracy: number;
  tokens: number;
  cells: string[];
}
const pct = (x: number | undefined) => (typeof x === 'number' ? `${(100 * x).toFixed(1)}%` : '-');
const tmp = mkdtempSync(join(tmpdir(), 'moe-study-gguf-'));
const ggufBytes = (dir: string, dtype: GgufDtype): number => {
  const f = join(tmp, 'm.gguf');
  exportGguf({ model: dir, out: f, dtype, warn: () => {} });
  const n = statSync(f).size;
  rmSync(f);
  return n;
};
const rows: Row[] = [];
let denseBytes = 0;
try {
  // One result per model: a recipe whose eval settings changed leaves the older results beside the
  // new ones (NAME-<hash>.json), so the newest file of each name is the current row.
  const newest = new Map<string, { f: string; t: number }>();
  for (const f of readdirSync(join(out, 'evals')).filter((x) => x.endsWith('.json') && !x.includes('.manifest'))) {
    const name = f.replace(/-[0-9a-f]{12}\.json$/, '');
    const t = statSync(join(out, 'evals', f)).mtimeMs;
    if ((newest.get(name)?.t ?? -1) < t) newest.set(name, { f, t });
  }
  const evals = [...newest.values()].map((e) => e.f);
  const parsed = evals.map((f) => JSON.parse(readFileSync(join(out, 'evals', f), 'utf8')) as Obj).filter((j) => j['metrics']);
  // The dense model first: every size is a ratio to its GGUF.
  parsed.sort((a, b) => Number(readPruningInfo(a['model']['dir']) !== null) - Number(readPruningInfo(b['model']['dir']) !== null));
  for (const j of parsed) {
    const dir = j['model']['dir'] as string;
    const info = readPruningInfo(dir);
    const rac: Obj | null = info ? JSON.parse(readFileSync(join(dir, 'rac.json'), 'utf8')) : null;
    const calib = info ? String((info.calibration?.['mode'] as string) ?? (info.calibration?.['kind'] as string) ?? '') : '-';
    const er = info?.expert_removal;
    const experts = er ? 1 - er.experts_after / er.experts_before : null;
    const what = [
      er
        ? `${er.scoring === 'reap' ? 'REAP' : er.scoring} −${er.experts_before - er.experts_after} of ${er.experts_before} experts (${Math.round(100 * experts!)}%)`
        : null,
      info && info.method !== 'reap' && info.method !== 'frequency' && (info.sparsity ?? 0) > 0
        ? `${info.method} ${Math.round(100 * info.sparsity!)}%`
        : null,
      info?.quant ? `${info.method === 'gptq' ? 'GPTQ ' : ''}${info.quant.scheme}` : null,
      // the options that change what the pruner does (rows differing only in them would collide)
      rac?.['sparsity_profile'] ? 'OWL' : null,
      rac?.['options']?.['asymmetric'] ? 'asymmetric' : null,
      rac?.['options']?.['true_sequential'] ? 'true-sequential' : null,
    ]
      .filter(Boolean)
      .join(' + ');
    const label = info ? what : 'dense';
    const dtype = (info?.quant?.scheme ?? 'f16') as GgufDtype;
    const bytes = ggufBytes(dir, dtype);
    if (!info) denseBytes = bytes;
    const cov = info?.experts ?? [];
    const low = cov.reduce((a, l) => a + l.tokens.filter((t) => t < LOW_TOKENS).length, 0);
    const total = cov.reduce((a, l) => a + l.tokens.length, 0);
    const m = j['metrics'] as Obj;
    const ks = Object.keys(m['pass_at_k'] ?? {})
      .map(Number)
      .sort((a, b) => a - b);
    const kMax = ks[ks.length - 1] ?? 1;
    const fam = (f: string) => pct(j['per_family']?.[f]?.['accuracy']);
    rows.push({
      label,
      calib,
      experts,
      method: info?.method ?? 'dense',
      accuracy: m['accuracy'],
      tokens: m['mean_tokens']['all'],
      cells: [
        label,
        calib,
        pct(m['accuracy']),
        fam('arith'),
        fam('trace'),
        fam('code'),
        kMax > 1 ? pct(m['pass_at_k'][String(kMax)]) : '-',
        (m['mean_tokens']?.['all'] ?? 0).toFixed(1),
        (m['hesitations']?.['per_1k_tokens'] ?? 0).toFixed(2),
        pct(m['truncated']),
        `${(bytes / 2 ** 20).toFixed(2)} MiB (${denseBytes ? (bytes / denseBytes).toFixed(3) : '-'})`,
        total ? `${low}/${total}` : '-',
        rac ? String(rac['calibration']?.['tokens'] ?? '-') : '-',
      ],
    });
    console.error(`${label} ${calib}: ${pct(m['accuracy'])}`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
const kLabel = 'pass@k (largest k)';
const head = [
  'model',
  'calibration',
  'accuracy',
  'arith',
  'trace',
  'code',
  kLabel,
  'mean tokens',
  'hesitations /1k',
  'truncated',
  'GGUF (÷ dense)',
  `experts < ${LOW_TOKENS} tokens`,
  'calib tokens',
];
const order = (r: Row) => [
  r.method === 'dense' ? 0 : r.method === 'reap' ? 1 : r.method === 'frequency' ? 2 : 3,
  r.experts ?? 0,
  ['prompt', 'rac', 'text'].indexOf(r.calib),
];
rows.sort((a, b) => {
  const [x, y] = [order(a), order(b)];
  return x[0]! - y[0]! || x[1]! - y[1]! || x[2]! - y[2]! || a.label.localeCompare(b.label);
});
console.log(`| ${head.join(' | ')} |`);
console.log(`| ${head.map(() => '---').join(' | ')} |`);
for (const r of rows) console.log(`| ${r.cells.join(' | ')} |`);

// The issue's figures.
const dense = rows.find((r) => r.method === 'dense');
const reap = (calib: string, frac: number) =>
  rows.find((r) => r.method === 'reap' && r.calib === calib && Math.abs((r.experts ?? 0) - frac) < 1e-9);
const [p50, r50] = [reap('prompt', 0.5), reap('rac', 0.5)];
if (dense && p50 && r50) {
  const lost = dense.accuracy - p50.accuracy;
  const rec = lost > 0 ? (r50.accuracy - p50.accuracy) / lost : Number.NaN;
  console.log(
    `\n50% experts: prompt-only REAP loses ${(100 * lost).toFixed(1)} points against dense; RAC-REAP recovers ${Number.isNaN(rec) ? 'n/a (nothing lost)' : `${(100 * rec).toFixed(0)}%`} of it ` +
      `(target ≥ 50%); mean tokens RAC ${r50.tokens.toFixed(1)} vs prompt-only ${p50.tokens.toFixed(1)} (target: no longer).`,
  );
}
// The 25% bar: every RAC-REAP row under 50% (a model whose expert count 25% does not divide has
// the nearest counts on either side, e.g. 1 and 2 of 6).
const under = rows
  .filter((r) => r.method === 'reap' && r.calib === 'rac' && (r.experts ?? 0) < 0.5)
  .sort((a, b) => a.experts! - b.experts!);
if (dense)
  for (const r of under)
    console.log(
      `${r.label}, RAC calibration: ${pct(r.accuracy)} vs dense ${pct(dense.accuracy)}: ${(100 * (dense.accuracy - r.accuracy)).toFixed(1)} points (target at 25%: ≤ 3).`,
    );
