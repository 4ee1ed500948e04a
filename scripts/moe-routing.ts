/**
 * How an MoE model routes: per layer, each expert's share of the routing slots (top-k per token)
 * over held-out problems of each tiny family, split into prompt tokens and the model's own decode
 * tokens (greedy completions), and the total-variation distance between the two distributions —
 * the gap prompt-only calibration cannot see.
 *
 *   npx tsx scripts/moe-routing.ts --model models/tiny-moe-reasoner [--n 100] [--families arith,trace,code]
 *       [--seed 0] [--batch 64] [--json out.json] [--markdown]
 */
import { writeFileSync } from 'node:fs';
import { embedRows, expertFeeds, leftPad } from '../src/models/batch.ts';
import { LayerRunner } from '../src/models/layer-runner.ts';
import { closeModel, loadModel } from '../src/models/loaded.ts';
import { ALL_FAMILIES, generateSplit, type Family } from '../src/tasks/tiny/index.ts';
import { numberFlag, parseFlags, stringFlag } from './train/cli.ts';
import { encodePrompts, generateAll, GREEDY } from './train/evaluate.ts';

interface LayerRouting {
  layer: number;
  /** Routing-slot shares per expert (sum 1) over prompt tokens and decode tokens. */
  prompt: number[];
  decode: number[];
  /** ½ Σ |prompt − decode|. */
  tv: number;
}

async function main(): Promise<void> {
  const S = { type: 'string' } as const;
  const v = parseFlags(process.argv.slice(2), { model: S, n: S, families: S, seed: S, batch: S, json: S, markdown: { type: 'boolean' } });
  const model = stringFlag(v, 'model');
  if (!model) throw new Error('--model DIR is required');
  const n = numberFlag(v, 'n', 100);
  const seed = numberFlag(v, 'seed', 0);
  const batch = numberFlag(v, 'batch', 64);
  const families = (stringFlag(v, 'families')?.split(',') ?? [...ALL_FAMILIES]) as Family[];
  for (const f of families) if (!ALL_FAMILIES.includes(f)) throw new Error(`--families: unknown family ${JSON.stringify(f)}`);
  const m = await loadModel(model);
  const { spec, config: cfg } = m.model;
  const runner = await LayerRunner.create(spec, cfg);
  const out: Record<string, LayerRouting[]> = {};
  const total = new Map<number, { prompt: Float64Array; decode: Float64Array }>();
  try {
    for (const family of families) {
      const problems = generateSplit('eval', family, n, seed, family === 'code' ? { format: 'v2' } : {});
      const prompts = encodePrompts(m, problems);
      const outs = await generateAll(
        m,
        prompts.map((prompt, stream) => ({ prompt, stream })),
        GREEDY,
        seed,
        batch,
      );
      const seqs = prompts.map((p, i) => [...p, ...outs[i]!.ids]);
      const counts = new Map<number, { prompt: Float64Array; decode: Float64Array }>();
      for (let s0 = 0; s0 < seqs.length; s0 += batch) {
        const chunk = seqs.slice(s0, s0 + batch);
        const pb = leftPad(chunk);
        // decode[r] for row r of the padded batch: the token is the model's own (after the prompt)
        const isDecode = (r: number) => {
          const b = Math.floor(r / pb.T);
          const t = (r % pb.T) - (pb.T - chunk[b]!.length);
          return t >= prompts[s0 + b]!.length;
        };
        let h = embedRows(m.model.embedding(), cfg, pb.ids);
        for (let l = 0; l < cfg.numLayers; l++) {
          const w = m.model.layerWeights(l);
          const feeds = runner.weightFeeds(w);
          const ex = m.model.experts(l);
          if (!ex) {
            h = await runner.forward(feeds, h, pb);
            continue;
          }
          const r = await runner.moeRoute(ex, feeds, h, pb, null);
          let c = counts.get(l);
          if (!c) counts.set(l, (c = { prompt: new Float64Array(ex.count), decode: new Float64Array(ex.count) }));
          r.groups.forEach((g, j) => {
            for (const row of g.rows) (isDecode(row) ? c!.decode : c!.prompt)[j]!++;
          });
          h = await runner.moeForward(
            ex,
            feeds,
            Array.from({ length: ex.count }, (_, j) => expertFeeds(ex, w.moe!, j)),
            h,
            pb,
          );
        }
      }
      out[family] = [...counts].map(([layer, c]) => summarize(layer, c));
      for (const [layer, c] of counts) {
        let t = total.get(layer);
        if (!t) total.set(layer, (t = { prompt: new Float64Array(c.prompt.length), decode: new Float64Array(c.decode.length) }));
        c.prompt.forEach((x, j) => (t!.prompt[j]! += x));
        c.decode.forEach((x, j) => (t!.decode[j]! += x));
      }
    }
    out['all'] = [...total].map(([layer, c]) => summarize(layer, c));
  } finally {
    await runner.release();
    await closeModel(m);
  }
  const pct = (x: number) => (100 * x).toFixed(0);
  if (v['markdown']) {
    console.log('| family | layer | prompt tokens: share per expert (%) | decode tokens: share per expert (%) | TV distance |');
    console.log('|---|---|---|---|---|');
    for (const [family, layers] of Object.entries(out))
      for (const l of layers)
        console.log(`| ${family} | ${l.layer} | ${l.prompt.map(pct).join(' ')} | ${l.decode.map(pct).join(' ')} | ${l.tv.toFixed(3)} |`);
  } else {
    for (const [family, layers] of Object.entries(out))
      for (const l of layers)
        console.log(
          `${family.padEnd(6)} layer ${l.layer}: prompt [${l.prompt.map(pct).join(' ')}]%  decode [${l.decode.map(pct).join(' ')}]%  TV ${l.tv.toFixed(3)}`,
        );
  }
  const json = stringFlag(v, 'json');
  if (json) writeFileSync(json, JSON.stringify({ model, n, seed, families, routing: out }, null, 2) + '\n');
}

function summarize(layer: number, c: { prompt: Float64Array; decode: Float64Array }): LayerRouting {
  const norm = (a: Float64Array) => {
    const s = a.reduce((x, y) => x + y, 0);
    return [...a].map((x) => (s ? x / s : 0));
  };
  const prompt = norm(c.prompt);
  const decode = norm(c.decode);
  return { layer, prompt, decode, tv: prompt.reduce((a, p, j) => a + Math.abs(p - decode[j]!), 0) / 2 };
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
