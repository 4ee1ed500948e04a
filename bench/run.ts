/**
 * `npm run bench`: one JSON object per line. Ratios are against figures measured in the same
 * run: gemm_peak is measured at the start and again right before each benchmark, and each
 * efficiency divides by the best peak seen so far (so a busy machine cannot inflate a ratio).
 * Filter by name: `npm run bench -- prefill prune_layer`. `prune_real` (a real-size model, tens
 * of minutes) runs only when named: `npm run bench -- prune_layer prune_real`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { emit, gemmPeak } from './common.ts';
import { benchDecode } from './decode.ts';
import { benchDecodeGguf } from './decode-gguf.ts';
import { benchDecodeQ4 } from './decode-q4.ts';
import { benchGradeMath } from './grade.ts';
import { benchDecodeMoe, benchPruneMoe } from './moe.ts';
import { benchPrefill } from './prefill.ts';
import { benchCaptureVariants, benchPruneLayer, benchPruneLayerWanda, benchPruneReal, benchPruneRss } from './prune.ts';
import { benchServe } from './serve.ts';

const only = process.argv.slice(2);
const want = (name: string) => only.length === 0 || only.includes(name);
const named = (name: string) => only.includes(name);
const dir = mkdtempSync(join(tmpdir(), 'rac-bench-'));
let best = 0;
const peak = async (): Promise<number> => {
  const p = await gemmPeak();
  best = Math.max(best, p.gflops);
  return best;
};
try {
  await peak();
  emit({ name: 'gemm_peak', gflops: +best.toFixed(2), m: 2048, k: 1536, n: 8960 });
  if (want('prefill')) await benchPrefill(join(dir, 'prefill'), await peak());
  if (want('decode')) await benchDecode(join(dir, 'decode'));
  if (want('decode_gguf')) await benchDecodeGguf(join(dir, 'decode_gguf'));
  if (want('decode_q4')) await benchDecodeQ4(join(dir, 'decode_q4'));
  if (want('decode_moe')) await benchDecodeMoe(join(dir, 'decode_moe'));
  if (want('serve')) await benchServe(join(dir, 'serve'));
  if (want('grade_math')) benchGradeMath();
  let layerSeconds: number | null = null;
  if (want('prune_layer')) layerSeconds = await benchPruneLayer(join(dir, 'prune_layer'), await peak());
  if (want('prune_layer_wanda')) await benchPruneLayerWanda(join(dir, 'prune_layer_wanda'));
  if (want('capture_variants')) await benchCaptureVariants(join(dir, 'capture_variants'));
  if (want('prune_rss')) benchPruneRss(join(dir, 'prune_rss'));
  if (want('prune_moe')) benchPruneMoe(join(dir, 'prune_moe'));
  if (named('prune_real')) benchPruneReal(join(dir, 'prune_real'), layerSeconds);
  emit({ name: 'gemm_peak_final', gflops: +best.toFixed(2), note: 'best of all gemm_peak measurements in this run' });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
