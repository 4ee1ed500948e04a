/**
 * Qwen3-MoE: the ORT engine (layer graph up to the routing, routed experts per call) against the
 * plain TypeScript reference forward, on random checkpoints covering norm_topk_prob true and
 * false, a dense mlp_only_layers layer, head_dim ≠ hidden/heads and a left-padded batch; batched
 * and single-sequence greedy generation agree token for token; inconsistent configs and
 * checkpoints are refused in one line.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Engine } from '../../src/models/engine.ts';
import { generate } from '../../src/models/generate.ts';
import { Model } from '../../src/models/model.ts';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '../../src/models/random.ts';
import { makeLayerBatch, referenceLayerInputs, referenceMoe } from '../../src/models/reference.ts';
import { LayerRunner } from '../../src/models/layer-runner.ts';
import { embedRows, expertFeeds, leftPad } from '../../src/models/batch.ts';
import { gatherRows, groupByExpert } from '../../src/models/moe.ts';
import { isMoeLayer } from '../../src/models/spec.ts';
import { checkpoint, maxAbsDiff, tempDir } from '../helpers/checkpoints.ts';
import { itMatchesReference, SEQS } from '../helpers/engine.ts';
import { dropTensor } from '../helpers/corrupt.ts';
import { relDiff } from '../helpers/prune.ts';

const ATOL = 1e-4;

const CASES: [string, RandomCheckpointOptions][] = [
  [
    'norm_topk_prob true, 8 experts top-2, head_dim 24 ≠ 64/4',
    { family: 'qwen3_moe', seed: 11, heads: 4, kvHeads: 2, headDim: 24, moe: { experts: 8, topK: 2, expertIntermediate: 48 } },
  ],
  [
    'norm_topk_prob false, 6 experts top-3, dense layer 1 (mlp_only_layers), bf16',
    {
      family: 'qwen3_moe',
      seed: 12,
      layers: 3,
      dtype: 'BF16',
      moe: { experts: 6, topK: 3, expertIntermediate: 40, normTopK: false, mlpOnlyLayers: [1] },
    },
  ],
];

describe('Qwen3-MoE: engine vs reference', () => {
  const engines: Engine[] = [];
  after(async () => {
    for (const e of engines) await e.release();
  });
  for (const [label, opts] of CASES) itMatchesReference(label, opts, ATOL, engines);

  it('the configs cover what they say: a dense layer among sparse ones, both routings', () => {
    const a = Model.open(checkpoint(CASES[0]![1]));
    const b = Model.open(checkpoint(CASES[1]![1]));
    assert.equal(a.config.headDim, 24);
    assert.notEqual(a.config.headDim, a.config.hiddenSize / a.config.numHeads);
    assert.equal(a.config.moe!.normTopKProb, true);
    assert.equal(b.config.moe!.normTopKProb, false);
    assert.deepEqual(
      [0, 1, 2].map((i) => isMoeLayer(b.config, i)),
      [true, false, true],
    );
    assert.ok(b.layerWeights(1).linears.down_proj, 'layer 1 has a dense MLP');
    assert.equal(b.layerWeights(0).moe!.experts.length, 6);
    a.close();
    b.close();
  });

  it('the weights-as-inputs path (no baking) gives the baked logits', async () => {
    const model = Model.open(checkpoint(CASES[0]![1]));
    const baked = await Engine.load(model, { threads: 1 });
    const fed = await Engine.load(model, { threads: 1, bakeWeights: false });
    engines.push(baked, fed);
    const [x] = await baked.forward([SEQS[0]!]);
    const [y] = await fed.forward([SEQS[0]!]);
    assert.ok(maxAbsDiff(x!, y!) <= 1e-5);
  });

  it('prefill + decode reproduce the forward; batched and single greedy generation give identical tokens', async () => {
    const model = Model.open(checkpoint(CASES[1]![1]));
    const engine = await Engine.load(model, { threads: 1 });
    engines.push(engine);
    const V = model.config.vocabSize;
    const { lastLogits, cache } = await engine.prefill([SEQS[1]!, SEQS[2]!]);
    const next = await engine.decode(cache, [8, 9]);
    for (const [b, prompt, tok] of [
      [0, SEQS[1]!, 8],
      [1, SEQS[2]!, 9],
    ] as const) {
      const [full] = await engine.forward([[...prompt, tok]]);
      const L = prompt.length;
      assert.ok(maxAbsDiff(lastLogits.subarray(b * V, (b + 1) * V), full!.subarray((L - 1) * V, L * V)) <= ATOL);
      assert.ok(maxAbsDiff(next.subarray(b * V, (b + 1) * V), full!.subarray(L * V, (L + 1) * V)) <= ATOL);
    }
    const opts = { maxNewTokens: 12, temperature: 0, topP: 1, topK: 0, seed: 0, eosTokenIds: [] as number[] };
    const reqs = (seqs: number[][]) => seqs.map((prompt, stream) => ({ prompt, stream }));
    const batched = await generate(engine, null, reqs(SEQS), opts);
    for (let b = 0; b < SEQS.length; b++) {
      const [single] = await generate(engine, null, reqs([SEQS[b]!]), opts);
      assert.equal(batched[b]!.ids.length, 12);
      assert.deepEqual(batched[b]!.ids, single!.ids, `sequence ${b}`);
    }
  });
});

describe('Qwen3-MoE: routing and the reference block', () => {
  it('groupByExpert keeps every (token, expert) pair once, rows ascending, padding out', () => {
    const idx = BigInt64Array.from([2n, 0n, 1n, 2n, 0n, 1n].map(BigInt));
    const w = Float32Array.from([0.6, 0.4, 0.7, 0.3, 0.5, 0.5]);
    const g = groupByExpert(idx, w, 3, 2, 4, (n) => n === 1);
    assert.deepEqual([...g[0]!.rows], [0, 2]);
    assert.deepEqual(
      [...g[0]!.weights].map((x) => Math.round(x * 10) / 10),
      [0.4, 0.5],
    );
    assert.deepEqual([...g[1]!.rows], [2]);
    assert.deepEqual([...g[2]!.rows], [0]);
    assert.equal(g[3]!.rows.length, 0);
    assert.throws(() => groupByExpert(BigInt64Array.from([5n]), Float32Array.from([1]), 1, 1, 4), /expert 5 outside/);
  });

  it('the reference routing: top-k of a softmax over all experts, renormalized only with norm_topk_prob', () => {
    const D = 2;
    const E = 3;
    const x = Float32Array.from([1, 0]);
    const router = Float32Array.from([2, 0, 1, 0, 0, 0]); // logits 2, 1, 0
    const expert = { gate_proj: new Float32Array(2 * D), up_proj: new Float32Array(2 * D), down_proj: new Float32Array(D * 2) };
    const spec = (normTopK: boolean) => ({
      count: E,
      topK: 2,
      normTopK,
      routerModule: 'mlp.gate',
      expertModule: (j: number) => `mlp.experts.${j}`,
      linears: [
        { name: 'gate_proj' as const, module: 'gate_proj', group: 'mlp_in' as const, rows: 2, cols: D, bias: false },
        { name: 'up_proj' as const, module: 'up_proj', group: 'mlp_in' as const, rows: 2, cols: D, bias: false },
        { name: 'down_proj' as const, module: 'down_proj', group: 'mlp_out' as const, rows: D, cols: 2, bias: false },
      ],
    });
    const moe = { router, experts: [expert, expert, expert] };
    const z = Math.exp(2) + Math.exp(1) + 1;
    const plain = referenceMoe(spec(false), moe, x, 1, D).routing;
    assert.deepEqual([...plain.experts], [0, 1]);
    assert.ok(Math.abs(plain.weights[0]! - Math.exp(2) / z) < 1e-6);
    assert.ok(Math.abs(plain.weights[1]! - Math.exp(1) / z) < 1e-6);
    const norm = referenceMoe(spec(true), moe, x, 1, D).routing;
    assert.ok(Math.abs(norm.weights[0]! - Math.exp(2) / (Math.exp(2) + Math.exp(1))) < 1e-6);
    assert.ok(Math.abs(norm.weights[0]! + norm.weights[1]! - 1) < 1e-6);
  });
});

describe('Qwen3-MoE: inconsistent configs and checkpoints', () => {
  const base: RandomCheckpointOptions = { family: 'qwen3_moe', seed: 21, layers: 1, moe: { experts: 4, topK: 2, expertIntermediate: 16 } };
  const withConfig = (edit: (c: Record<string, unknown>) => void) => {
    const dir = tempDir('moe-bad');
    writeRandomCheckpoint(dir, base);
    const p = join(dir, 'config.json');
    const c = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    edit(c);
    writeFileSync(p, JSON.stringify(c));
    return dir;
  };
  it('top-k above the expert count', () => {
    const dir = withConfig((c) => (c['num_experts_per_tok'] = 5));
    assert.throws(() => Model.open(dir), /config\.json: "num_experts_per_tok" 5 is more than "num_experts" 4/);
  });
  it('moe_intermediate_size 0', () => {
    const dir = withConfig((c) => (c['moe_intermediate_size'] = 0));
    assert.throws(() => Model.open(dir), /"moe_intermediate_size" must be a positive integer, got 0/);
  });
  it('an mlp_only_layers index outside the model', () => {
    const dir = withConfig((c) => (c['mlp_only_layers'] = [3]));
    assert.throws(() => Model.open(dir), /"mlp_only_layers" entry 3 is not a layer index in \[0, 1\)/);
  });
  it('a missing expert tensor is named', () => {
    const dir = tempDir('moe-missing');
    writeRandomCheckpoint(dir, base);
    dropTensor(join(dir, 'model.safetensors'), 'model.layers.0.mlp.experts.3.down_proj.weight');
    assert.throws(
      () => Model.open(dir),
      /missing tensor "model\.layers\.0\.mlp\.experts\.3\.down_proj\.weight" expected by config\.json \(qwen3_moe\)/,
    );
  });
  it('a mis-shaped expert tensor', () => {
    const dir = withConfig((c) => (c['moe_intermediate_size'] = 8));
    assert.throws(
      () => Model.open(dir),
      /tensor "model\.layers\.0\.mlp\.experts\.0\.gate_proj\.weight" has shape \[16, 64\] but config\.json implies \[8, 64\]/,
    );
  });
  it('a router whose expert count differs', () => {
    const dir = withConfig((c) => {
      c['num_experts'] = 3;
      c['num_experts_per_tok'] = 2;
    });
    assert.throws(
      () => Model.open(dir),
      /tensor "model\.layers\.0\.mlp\.gate\.weight" has shape \[4, 64\] but config\.json implies \[3, 64\]/,
    );
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('Qwen3-MoE: the layer runner’s per-expert statistics', () => {
  it('routing, expert inputs and XᵀX of each expert’s rows equal the reference (padding and token weights applied)', async () => {
    const model = Model.open(checkpoint(CASES[0]![1]));
    const runner = await LayerRunner.create(model.spec, model.config, { threads: 1 });
    try {
      const ex = model.experts(0)!;
      const w = model.layerWeights(0);
      const pb = leftPad([SEQS[0]!, SEQS[1]!]);
      const D = model.config.hiddenSize;
      const I = model.config.moe!.expertIntermediateSize;
      const hidden = embedRows(model.embedding(), model.config, pb.ids);
      const rowW = Float32Array.from({ length: pb.B * pb.T }, (_, r) =>
        pb.valid[Math.floor(r / pb.T)]![r % pb.T] ? 0.5 + (r % 3) / 4 : 0,
      );
      const route = await runner.moeRoute(ex, runner.weightFeeds(w), hidden, pb, rowW);
      const mask = pb.valid.map((v) => [...v]);
      const ref = referenceLayerInputs(model.config, w, hidden, makeLayerBatch(pb.B, pb.T, mask), ex);
      for (let j = 0; j < ex.count; j++) {
        const want = ref.inputs.experts![j]!;
        const real = want.rows.filter((r) => rowW[r]! > 0);
        assert.deepEqual([...route.groups[j]!.rows], real, `expert ${j}: routed rows`);
        const rows = route.groups[j]!.rows;
        if (rows.length === 0) continue;
        const tw = Float32Array.from(rows, (r) => rowW[r]!);
        const got = await runner.expertCapture(
          ex,
          expertFeeds(ex, w.moe!, j),
          gatherRows(route.moeIn, D, rows),
          route.groups[j]!.weights,
          tw,
        );
        const xtx = (X: Float32Array, width: number, at: (r: number) => number) => {
          const H = new Float64Array(width * width);
          rows.forEach((row, r) => {
            const wr = rowW[row]! * rowW[row]!;
            for (let a = 0; a < width; a++)
              for (let b = 0; b < width; b++) H[a * width + b]! += wr * X[at(r) * width + a]! * X[at(r) * width + b]!;
          });
          return H;
        };
        const inRef = xtx(ref.inputs.mlp_in, D, (r) => rows[r]!);
        const pos = new Map(want.rows.map((row, i) => [row, i]));
        const outRef = xtx(want.act, I, (r) => pos.get(rows[r]!)!);
        assert.ok(relDiff(got.xtx.mlp_in, inRef) < 1e-5, `expert ${j}: mlp_in XᵀX`);
        assert.ok(relDiff(got.xtx.mlp_out, outRef) < 1e-5, `expert ${j}: mlp_out XᵀX`);
      }
    } finally {
      await runner.release();
      model.close();
    }
  });
});
