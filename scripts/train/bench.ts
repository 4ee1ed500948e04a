/** Measure training-step throughput (tokens/s) for a few model sizes: tsx scripts/train/bench.ts */
import { createRng } from '../../src/tasks/rng.ts';
import { batchFeeds, type Example } from './data.ts';
import { initParams, paramSpecs, type TinyConfig } from './model.ts';
import { StepRunner } from './step.ts';

const sizes: [string, Partial<TinyConfig>][] = (process.argv[2] ?? 'd128l4,d160l6,d192l5').split(',').map((s) => {
  const m = /^d(\d+)l(\d+)(?:i(\d+))?$/.exec(s)!;
  const D = Number(m[1]);
  return [s, { hidden: D, layers: Number(m[2]), intermediate: m[3] ? Number(m[3]) : Math.round((D * 8) / 3 / 16) * 16 }];
});
const B = Number(process.argv[3] ?? 8);
const T = Number(process.argv[4] ?? 384);
for (const [name, o] of sizes) {
  const D = o.hidden!;
  const cfg: TinyConfig = {
    vocab: 340,
    hidden: D,
    layers: o.layers!,
    heads: D / 32,
    kvHeads: D / 64 >= 1 && (D / 32) % 2 === 0 ? D / 64 : 1,
    intermediate: o.intermediate!,
    ropeTheta: 10000,
    eps: 1e-6,
  };
  const rng = createRng(1);
  const p = initParams(paramSpecs(cfg), () => rng.next());
  const rows: Example[][] = Array.from({ length: B }, () =>
    [0, 1].map(() => ({ ids: Array.from({ length: 180 }, () => rng.int(0, 300)), promptLen: 20 })),
  );
  const t0 = Date.now();
  const runner = await StepRunner.create(cfg, { batch: B, seq: T });
  const tBuild = Date.now() - t0;
  const { feeds, tokens } = batchFeeds(cfg, rows, T, 0);
  await runner.run(p, feeds);
  const n = 4;
  const t1 = Date.now();
  for (let i = 0; i < n; i++) await runner.run(p, feeds);
  const dt = (Date.now() - t1) / n;
  const tf = Date.now();
  for (let i = 0; i < 3; i++) batchFeeds(cfg, rows, T, 0);
  console.log(
    `${name}: H=${cfg.heads} Hkv=${cfg.kvHeads} I=${cfg.intermediate} params ${p.size} build ${tBuild}ms step ${dt.toFixed(0)}ms → ${((tokens / dt) * 1000).toFixed(0)} tok/s (${(((B * T) / dt) * 1000).toFixed(0)} slots/s), feeds ${((Date.now() - tf) / 3).toFixed(0)}ms`,
  );
  await runner.release();
}
