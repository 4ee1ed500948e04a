/**
 * Measure training-step throughput (tokens/s) for a few model sizes: tsx scripts/train/bench.ts
 * [d128l4,…] [batch] [seq]; or `tsx scripts/train/bench.ts moe [recipe-overrides as JSON]`: the
 * `moe` recipe's step with sparse experts (each on its routed rows, the trainer's path) against
 * the dense reference (every expert on every token), alternating, and their ratio.
 */
import { createRng } from '../../src/tasks/rng.ts';
import { batchFeeds, type Example } from './data.ts';
import { initParams, paramSpecs, type TinyConfig } from './model.ts';
import { RECIPES } from './recipes.ts';
import { StepRunner } from './step.ts';

if (process.argv[2] === 'moe') {
  const r = RECIPES.moe;
  const cfg: TinyConfig = { vocab: r.tokenizerVocab, ...r.model, ...(JSON.parse(process.argv[3] ?? '{}') as Partial<TinyConfig>) };
  const rng = createRng(1);
  const p = initParams(paramSpecs(cfg), () => rng.next());
  // Rows packed like the trainer's: examples of ~240 tokens.
  const rows: Example[][] = Array.from({ length: r.batch }, () =>
    [0, 1].map(() => ({ ids: Array.from({ length: 250 }, () => rng.int(0, 500)), promptLen: 30 })),
  );
  const { feeds, tokens } = batchFeeds(cfg, rows, r.seq, 0);
  const runners = {
    sparse: await StepRunner.create(cfg, { batch: r.batch, seq: r.seq }),
    dense: await StepRunner.create(cfg, { batch: r.batch, seq: r.seq, denseExperts: true }),
  };
  const ms: Record<keyof typeof runners, number[]> = { sparse: [], dense: [] };
  for (const k of ['sparse', 'dense'] as const) await runners[k].run(p, feeds); // warm-up
  for (let i = 0; i < 5; i++) {
    for (const k of ['sparse', 'dense'] as const) {
      const t = performance.now();
      await runners[k].run(p, feeds);
      ms[k].push(performance.now() - t);
    }
  }
  const med = (x: number[]) => x.slice().sort((a, b) => a - b)[Math.floor(x.length / 2)]!;
  for (const k of ['sparse', 'dense'] as const)
    console.log(`${k}: step ${med(ms[k]).toFixed(0)} ms (median of 5) → ${((tokens / med(ms[k])) * 1000).toFixed(0)} tok/s`);
  console.log(
    `moe ${JSON.stringify(cfg.moe)} layers ${cfg.layers} hidden ${cfg.hidden}: sparse ÷ dense step time ${(med(ms.sparse) / med(ms.dense)).toFixed(3)}`,
  );
  for (const k of ['sparse', 'dense'] as const) await runners[k].release();
  process.exit(0);
}

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
