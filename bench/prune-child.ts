/**
 * Child process for the RSS benchmarks: prune MODEL with CALIB into OUT (SparseGPT 50%) and print
 * the peak RSS (KiB) — with `--json`, one JSON line `{max_rss_kib, layer_seconds, layer_phases,
 * total_seconds}` where layer_seconds are each pruned layer's phase totals from the pruning summary.
 */
import { Model } from '../src/models/model.ts';
import { readCalibJsonl } from '../src/prune/calib.ts';
import { pruneCheckpoint } from '../src/prune/prune.ts';

const args = process.argv.slice(2);
const json = args.includes('--json');
// `--layers N`: prune only the first N decoder layers (the rest are still read, forwarded and written).
const li = args.indexOf('--layers');
const firstLayers = li >= 0 ? Number(args[li + 1]) : null;
const [model, calib, out] = args.filter((a, i) => a !== '--json' && (li < 0 || (i !== li && i !== li + 1)));
const m = Model.open(model!);
const set = readCalibJsonl(calib!, null, m.config.vocabSize, { tokenBudget: 0, maxSeqLen: 4096 });
const summary = await pruneCheckpoint(
  m,
  set,
  out!,
  {
    method: 'sparsegpt',
    target: { kind: 'unstructured', sparsity: 0.5 },
    linears: 'all',
    batchTokens: 4096,
    errorStats: false,
    overwrite: true,
    ...(firstLayers ? { layers: Array.from({ length: firstLayers }, (_, i) => i) } : {}),
  },
  'bench',
);
m.close();
const maxRss = process.resourceUsage().maxRSS;
if (json) {
  const pruned = summary.layers.filter((l) => l.pruned);
  const layerSeconds = pruned.map((l) => l.seconds.capture + l.seconds.hessian + l.seconds.factor + l.seconds.sweep + l.seconds.recompute);
  const layerPhases = pruned.map((l) => ({
    capture: l.seconds.capture,
    hessian: l.seconds.hessian,
    factor: l.seconds.factor,
    sweep: l.seconds.sweep,
    recompute: l.seconds.recompute,
  }));
  process.stdout.write(
    JSON.stringify({ max_rss_kib: maxRss, layer_seconds: layerSeconds, layer_phases: layerPhases, total_seconds: summary.totals.seconds }) +
      '\n',
  );
} else {
  process.stdout.write(String(maxRss) + '\n');
}
