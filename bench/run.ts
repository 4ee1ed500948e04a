/**
 * `npm run bench`: one JSON object per line. Ratios are measured against figures taken in the
 * same run (gemm_peak), so they hold on any machine. Filter with names: `npm run bench -- prefill`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emit, gemmPeak } from './common.ts';
import { benchPrefill } from './prefill.ts';
import { benchPruneLayer, benchPruneRss } from './prune.ts';

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);
const dir = mkdtempSync(join(tmpdir(), 'rac-bench-'));
try {
  const peak = await gemmPeak();
  emit({ name: 'gemm_peak', gflops: +peak.gflops.toFixed(2), m: peak.m, k: peak.k, n: peak.n });
  if (want('prefill')) await benchPrefill(join(dir, 'prefill'), peak.gflops);
  if (want('prune_layer')) await benchPruneLayer(join(dir, 'prune_layer'), peak.gflops);
  if (want('prune_rss')) benchPruneRss(join(dir, 'prune_rss'));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
