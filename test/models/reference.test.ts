import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveArch } from '../../src/models/arch/index.ts';
import type { ModelConfig } from '../../src/models/config.ts';
import {
  embedTokens,
  linear,
  loadLayerWeights,
  makeLayerBatch,
  positionIds,
  referenceForward,
  referenceHead,
  referenceLayer,
  referenceLayerInputs,
  rmsNorm,
  silu,
  type WeightSource,
} from '../../src/models/reference.ts';
import type { ArchSpec } from '../../src/models/spec.ts';
import { rng } from '../compress/helpers.ts';

// ---------------------------------------------------------------------------------------------
// Tiny in-memory models

class MapSource implements WeightSource {
  constructor(readonly map: Map<string, Float32Array> = new Map()) {}
  get(name: string): Float32Array {
    const t = this.map.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    return t;
  }
  has(name: string): boolean {
    return this.map.has(name);
  }
}

interface Model {
  spec: ArchSpec;
  cfg: ModelConfig;
  raw: Record<string, unknown>;
  weights: MapSource;
}

function makeModel(raw: Record<string, unknown>, seed: number): Model {
  const { spec, config: cfg } = resolveArch('config.json', raw);
  const r = rng(seed);
  const uni = (n: number, scale: number, offset = 0) => Float32Array.from({ length: n }, () => offset + scale * (2 * r() - 1));
  const m = new Map<string, Float32Array>();
  const D = cfg.hiddenSize;
  const V = cfg.vocabSize;
  m.set(spec.embedName, uni(V * D, 1));
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = spec.layerPrefix(l);
    for (const lin of spec.linears(cfg)) {
      m.set(`${p}${lin.module}.weight`, uni(lin.rows * lin.cols, 1.5 / Math.sqrt(lin.cols)));
      if (lin.bias) m.set(`${p}${lin.module}.bias`, uni(lin.rows, 0.3));
    }
    for (const n of spec.norms(cfg)) m.set(`${p}${n.module}.weight`, uni(n.size, 0.3, 1));
  }
  m.set(spec.finalNormName, uni(D, 0.3, 1));
  if (!cfg.tieWordEmbeddings) m.set(spec.lmHeadName, uni(V * D, 1));
  return { spec, cfg, raw, weights: new MapSource(m) };
}

const common = { hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, vocab_size: 32, rms_norm_eps: 1e-6 };

const FAMILIES: Record<string, Record<string, unknown>> = {
  // q/k/v bias, GQA 4:2, tied head
  qwen2: { ...common, model_type: 'qwen2', num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 10000, tie_word_embeddings: true },
  // llama3 rope scaling, GQA 4:1, head_dim ≠ hidden/heads, untied head
  llama: {
    ...common,
    model_type: 'llama',
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 8,
    rope_theta: 500000,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 },
    tie_word_embeddings: false,
  },
  // q/k norm, GQA 2:1, tied head
  qwen3: { ...common, model_type: 'qwen3', num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, tie_word_embeddings: true },
  // sliding window 3 < T, GQA 4:2, untied head
  mistral: {
    ...common,
    model_type: 'mistral',
    num_attention_heads: 4,
    num_key_value_heads: 2,
    sliding_window: 3,
    tie_word_embeddings: false,
  },
};

function maxAbsDiff(a: Float32Array, b: Float32Array, from = 0, to = a.length): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = from; i < to; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function rowDiff(a: Float32Array, b: Float32Array, t: number, V: number): number {
  return maxAbsDiff(a, b, t * V, (t + 1) * V);
}

const SEQ = [3, 17, 5, 28, 9, 1, 30, 12];

// ---------------------------------------------------------------------------------------------

test('config flags of the tiny families are what the tests rely on', () => {
  const q2 = makeModel(FAMILIES.qwen2!, 1).cfg;
  assert.ok(q2.qkvBias && !q2.oBias && q2.tieWordEmbeddings && q2.numKvHeads < q2.numHeads);
  const ll = makeModel(FAMILIES.llama!, 1).cfg;
  assert.equal(ll.ropeScaling.type, 'llama3');
  assert.ok(!ll.tieWordEmbeddings && ll.numKvHeads === 1 && ll.headDim === 8);
  const q3 = makeModel(FAMILIES.qwen3!, 1).cfg;
  assert.ok(q3.qkNorm && !q3.qkvBias);
  const mi = makeModel(FAMILIES.mistral!, 1).cfg;
  assert.equal(mi.slidingWindow, 3);
});

for (const [family, raw] of Object.entries(FAMILIES)) {
  test(`${family}: logits (T, V) finite, and causal (a later token never changes earlier logits)`, () => {
    const { spec, cfg, weights } = makeModel(raw, 11);
    const V = cfg.vocabSize;
    const [a] = referenceForward(spec, cfg, weights, [SEQ]);
    assert.equal(a!.length, SEQ.length * V);
    assert.ok(a!.every(Number.isFinite));
    const changed = SEQ.slice();
    changed[4] = (changed[4]! + 7) % V;
    const [b] = referenceForward(spec, cfg, weights, [changed]);
    for (let t = 0; t < 4; t++) assert.equal(rowDiff(a!, b!, t, V), 0, `row ${t} must be unchanged`);
    assert.ok(rowDiff(a!, b!, 4, V) > 1e-3, 'row 4 must change');
    assert.ok(rowDiff(a!, b!, 5, V) > 1e-3, 'row 5 must change');
  });

  test(`${family}: left padding in a batch gives the same logits as the sequence alone`, () => {
    const { spec, cfg, weights } = makeModel(raw, 12);
    const V = cfg.vocabSize;
    const short = SEQ.slice(0, 5);
    const pad = 0;
    const padded = [pad, pad, pad, ...short];
    const ids = [padded, SEQ];
    const mask = [[0, 0, 0, 1, 1, 1, 1, 1], SEQ.map(() => 1)];
    const [p0, p1] = referenceForward(spec, cfg, weights, ids, { attentionMask: mask });
    const [alone] = referenceForward(spec, cfg, weights, [short]);
    const [full] = referenceForward(spec, cfg, weights, [SEQ]);
    assert.ok(p0!.every(Number.isFinite), 'padded rows must stay finite');
    assert.ok(maxAbsDiff(p0!.subarray(3 * V), alone!) <= 1e-5, `padded vs alone: ${maxAbsDiff(p0!.subarray(3 * V), alone!)}`);
    assert.ok(maxAbsDiff(p1!, full!) <= 1e-5, 'the unpadded row of the batch');
    // Control: without the mask the pad tokens are attended and positions shift — logits differ.
    const [noMask] = referenceForward(spec, cfg, weights, [padded]);
    assert.ok(maxAbsDiff(noMask!.subarray(3 * V), alone!) > 1e-3, 'the mask must matter');
  });
}

test('position ids: cumsum(mask) − 1, padded slots get 1', () => {
  const mask = Uint8Array.from([0, 0, 1, 1, 1, 1, 1, 1, 1, 1]);
  assert.deepEqual(Array.from(positionIds(mask, 2, 5)), [1, 1, 0, 1, 2, 0, 1, 2, 3, 4]);
  const b = makeLayerBatch(1, 3, [[0, 1, 1]]);
  assert.deepEqual(Array.from(b.positions), [1, 0, 1]);
  assert.throws(() => makeLayerBatch(1, 3, [[0, 2, 1]]), /must be 0 or 1/);
  assert.throws(() => makeLayerBatch(1, 3, [[1, 1]]), /length 2/);
});

test('mistral sliding window: tokens beyond the receptive field do not change logits', () => {
  const { spec, cfg, weights } = makeModel(FAMILIES.mistral!, 13);
  const V = cfg.vocabSize;
  const W = cfg.slidingWindow!;
  // Each layer sees i−W+1..i, so after L layers position i depends on tokens ≥ i − L·(W−1).
  const reach = cfg.numLayers * (W - 1); // 4
  const changed = SEQ.slice();
  changed[0] = (changed[0]! + 5) % V;
  const [a] = referenceForward(spec, cfg, weights, [SEQ]);
  const [b] = referenceForward(spec, cfg, weights, [changed]);
  for (let t = reach + 1; t < SEQ.length; t++) assert.equal(rowDiff(a!, b!, t, V), 0, `row ${t} is out of reach`);
  for (let t = 0; t <= 2; t++) assert.ok(rowDiff(a!, b!, t, V) > 1e-3, `row ${t} is within one window`);
  // Control: the same weights with full attention do see token 0 at the last position.
  const full = { ...cfg, slidingWindow: null };
  const [fa] = referenceForward(spec, full, weights, [SEQ]);
  const [fb] = referenceForward(spec, full, weights, [changed]);
  assert.ok(rowDiff(fa!, fb!, SEQ.length - 1, V) > 1e-3);
  assert.ok(maxAbsDiff(a!, fa!) > 1e-3, 'the window changes the logits');
  // One layer: exactly i − j < W.
  const one = { ...cfg, numLayers: 1 };
  const [oa] = referenceForward(spec, one, weights, [SEQ]);
  const [ob] = referenceForward(spec, one, weights, [changed]);
  assert.ok(rowDiff(oa!, ob!, W - 1, V) > 1e-3, 'key 0 is visible from query W−1');
  assert.equal(rowDiff(oa!, ob!, W, V), 0, 'key 0 is not visible from query W');
});

/** Expand k/v projections (and biases) to Hkv = H by copying kv head ⌊h / group⌋ (or a wrong map). */
function expandKv(m: Model, headOf: (h: number, group: number, Hkv: number) => number): Model {
  const { spec, cfg } = m;
  const H = cfg.numHeads;
  const Hkv = cfg.numKvHeads;
  const hd = cfg.headDim;
  const D = cfg.hiddenSize;
  const group = H / Hkv;
  const raw = { ...m.raw, num_key_value_heads: H };
  const { config: cfg2 } = resolveArch('config.json', raw);
  const map = new Map(m.weights.map);
  for (let l = 0; l < cfg.numLayers; l++) {
    for (const lin of spec.linears(cfg).filter((x) => x.name === 'k_proj' || x.name === 'v_proj')) {
      for (const [suffix, cols] of [
        ['.weight', D],
        ['.bias', 1],
      ] as const) {
        const name = `${spec.layerPrefix(l)}${lin.module}${suffix}`;
        if (!map.has(name)) continue;
        const src = map.get(name)!; // (Hkv·hd, cols)
        const dst = new Float32Array(H * hd * cols); // (H·hd, cols)
        for (let h = 0; h < H; h++) {
          const g = headOf(h, group, Hkv);
          dst.set(src.subarray(g * hd * cols, (g + 1) * hd * cols), h * hd * cols);
        }
        map.set(name, dst);
      }
    }
  }
  return { spec, cfg: cfg2, raw, weights: new MapSource(map) };
}

for (const family of ['qwen2', 'llama', 'qwen3', 'mistral']) {
  test(`${family}: GQA equals full MHA with duplicated kv heads`, () => {
    const gqa = makeModel(FAMILIES[family]!, 14);
    assert.ok(gqa.cfg.numKvHeads < gqa.cfg.numHeads);
    const mha = expandKv(gqa, (h, group) => Math.floor(h / group));
    assert.equal(mha.cfg.numKvHeads, mha.cfg.numHeads);
    const ids = [SEQ, SEQ.slice().reverse()];
    const a = referenceForward(gqa.spec, gqa.cfg, gqa.weights, ids);
    const b = referenceForward(mha.spec, mha.cfg, mha.weights, ids);
    for (let i = 0; i < ids.length; i++) assert.ok(maxAbsDiff(a[i]!, b[i]!) <= 1e-6, `sequence ${i}: ${maxAbsDiff(a[i]!, b[i]!)}`);
    if (gqa.cfg.numKvHeads > 1) {
      // Control: the interleaved map (h mod Hkv) is a different model.
      const wrong = expandKv(gqa, (h, _g, Hkv) => h % Hkv);
      const c = referenceForward(wrong.spec, wrong.cfg, wrong.weights, ids);
      assert.ok(maxAbsDiff(a[0]!, c[0]!) > 1e-3, 'kv head mapping must be ⌊h / group⌋');
    }
  });
}

test('tied head reads embed_tokens; untied reads lm_head and requires it', () => {
  const m = makeModel(FAMILIES.llama!, 15); // untied
  const { spec, cfg, weights } = m;
  const [untied] = referenceForward(spec, cfg, weights, [SEQ]);
  // Replacing lm_head with a copy of the embedding = the tied model.
  const map = new Map(weights.map);
  map.set(spec.lmHeadName, map.get(spec.embedName)!.slice());
  const [asTied] = referenceForward(spec, cfg, new MapSource(map), [SEQ]);
  map.delete(spec.lmHeadName);
  const tiedCfg = { ...cfg, tieWordEmbeddings: true };
  const [tied] = referenceForward(spec, tiedCfg, new MapSource(map), [SEQ]);
  assert.equal(maxAbsDiff(asTied!, tied!), 0);
  assert.ok(maxAbsDiff(untied!, tied!) > 1e-3, 'lm_head is read when untied');
  // A tied model ignores a stray lm_head tensor.
  map.set(spec.lmHeadName, new Float32Array(cfg.vocabSize * cfg.hiddenSize));
  const [tied2] = referenceForward(spec, tiedCfg, new MapSource(map), [SEQ]);
  assert.equal(maxAbsDiff(tied!, tied2!), 0);
  // Untied without lm_head: a clear error naming the tensor.
  map.delete(spec.lmHeadName);
  assert.throws(() => referenceForward(spec, cfg, new MapSource(map), [SEQ]), /lm_head\.weight/);
});

test('config quirks are read: q/k norm weights, q/k/v biases and llama3 rope scaling change the logits', () => {
  const perturb = (m: Model, name: string) => {
    const map = new Map(m.weights.map);
    const t = map.get(name)!.slice();
    for (let i = 0; i < t.length; i++) t[i] = t[i]! * 1.5 + 0.1;
    map.set(name, t);
    return new MapSource(map);
  };
  const q3 = makeModel(FAMILIES.qwen3!, 16);
  const [base3] = referenceForward(q3.spec, q3.cfg, q3.weights, [SEQ]);
  for (const n of ['self_attn.q_norm.weight', 'self_attn.k_norm.weight']) {
    const [p] = referenceForward(q3.spec, q3.cfg, perturb(q3, q3.spec.layerPrefix(0) + n), [SEQ]);
    assert.ok(maxAbsDiff(base3!, p!) > 1e-3, n);
  }
  const q2 = makeModel(FAMILIES.qwen2!, 16);
  const [base2] = referenceForward(q2.spec, q2.cfg, q2.weights, [SEQ]);
  const [pb] = referenceForward(q2.spec, q2.cfg, perturb(q2, q2.spec.layerPrefix(1) + 'self_attn.v_proj.bias'), [SEQ]);
  assert.ok(maxAbsDiff(base2!, pb!) > 1e-3, 'v_proj.bias');
  const ll = makeModel(FAMILIES.llama!, 16);
  const [scaled] = referenceForward(ll.spec, ll.cfg, ll.weights, [SEQ]);
  const [plain] = referenceForward(ll.spec, { ...ll.cfg, ropeScaling: { type: 'default' } }, ll.weights, [SEQ]);
  assert.equal(rowDiff(scaled!, plain!, 0, ll.cfg.vocabSize), 0, 'position 0 is unrotated either way');
  assert.ok(maxAbsDiff(scaled!, plain!) > 1e-4, 'rope scaling changes later positions');
  // Missing bias that the config declares: an error naming the tensor.
  const map = new Map(q2.weights.map);
  map.delete(q2.spec.layerPrefix(0) + 'self_attn.q_proj.bias');
  assert.throws(() => referenceForward(q2.spec, q2.cfg, new MapSource(map), [SEQ]), /model\.layers\.0\.self_attn\.q_proj\.bias/);
});

test('referenceForward = embed → referenceLayer × L → head; group inputs are consistent', () => {
  const { spec, cfg, weights } = makeModel(FAMILIES.qwen2!, 17);
  const ids = [SEQ, [4, 4, 9, 2, 31, 0, 7, 7]];
  const mask = [SEQ.map(() => 1), [0, 0, 1, 1, 1, 1, 1, 1]];
  const B = 2;
  const T = SEQ.length;
  const D = cfg.hiddenSize;
  const N = B * T;
  const batch = makeLayerBatch(B, T, mask);
  let h = embedTokens(spec, cfg, weights, ids);
  for (let l = 0; l < cfg.numLayers; l++) {
    const w = loadLayerWeights(spec, cfg, weights, l);
    const { out, inputs } = referenceLayerInputs(cfg, w, h, batch);
    assert.deepEqual(out, referenceLayer(cfg, w, h, batch));
    // attn_in = input_layernorm(h)
    assert.equal(maxAbsDiff(inputs.attn_in, rmsNorm(h, w.norms.input_layernorm!, cfg.rmsNormEps, N, D)), 0);
    // out = h + o_proj(attn_out) + down_proj(mlp_out)
    const o = linear(inputs.attn_out, w.linears.o_proj!, null, N, cfg.numHeads * cfg.headDim, D);
    const h1 = o.map((v, i) => v + h[i]!);
    assert.ok(maxAbsDiff(inputs.mlp_in, rmsNorm(h1, w.norms.post_attention_layernorm!, cfg.rmsNormEps, N, D)) <= 1e-6);
    const d = linear(inputs.mlp_out!, w.linears.down_proj!, null, N, cfg.intermediateSize, D);
    assert.ok(
      maxAbsDiff(
        out,
        h1.map((v, i) => v + d[i]!),
      ) <= 1e-5,
    );
    // mlp_out = silu(gate(mlp_in)) · up(mlp_in)
    const g = linear(inputs.mlp_in, w.linears.gate_proj!, null, N, D, cfg.intermediateSize);
    const u = linear(inputs.mlp_in, w.linears.up_proj!, null, N, D, cfg.intermediateSize);
    assert.ok(
      maxAbsDiff(
        inputs.mlp_out!,
        g.map((v, i) => silu(v) * u[i]!),
      ) <= 1e-6,
    );
    assert.equal(inputs.attn_out.length, N * cfg.numHeads * cfg.headDim);
    h = out;
  }
  const logits = referenceHead(spec, cfg, weights, h, N);
  const fwd = referenceForward(spec, cfg, weights, ids, { attentionMask: mask });
  const V = cfg.vocabSize;
  assert.deepEqual(fwd[0], logits.slice(0, T * V));
  assert.deepEqual(fwd[1], logits.slice(T * V));
});

test('hand-computed 1-layer model (D=4, one head) matches explicit arithmetic', () => {
  // Llama, D = hd = 4, H = Hkv = 1, I = 2, V = 3, theta 10000 → inv_freq = [1, 0.01].
  const raw = {
    model_type: 'llama',
    hidden_size: 4,
    intermediate_size: 2,
    num_hidden_layers: 1,
    num_attention_heads: 1,
    num_key_value_heads: 1,
    vocab_size: 3,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    tie_word_embeddings: false,
  };
  const { spec, config: cfg } = resolveArch('config.json', raw);
  const I4 = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  const p = spec.layerPrefix(0);
  const f = (a: number[]) => Float32Array.from(a);
  const weights = new MapSource(
    new Map([
      [spec.embedName, f([0, 0, 1, 0, /* tok1 */ 1, 0, 0, 0, /* tok2 */ 0, 1, 0, 0])],
      [`${p}input_layernorm.weight`, f([1, 1, 1, 1])],
      [`${p}self_attn.q_proj.weight`, f(I4)],
      [`${p}self_attn.k_proj.weight`, f(I4)],
      [`${p}self_attn.v_proj.weight`, f(I4)],
      [`${p}self_attn.o_proj.weight`, f(I4)],
      [`${p}post_attention_layernorm.weight`, f([0.5, 1, 2, 1])],
      [`${p}mlp.gate_proj.weight`, f([1, 0, 0, 0, /* row 1 */ 0, 0, 1, 0])],
      [`${p}mlp.up_proj.weight`, f([1, 0, 0, 0, /* row 1 */ 0, 0, -1, 0])],
      [`${p}mlp.down_proj.weight`, f([1, 0, /* */ 0, 1, /* */ 0, 0, /* */ 0, 0])], // (4, 2)
      [spec.finalNormName, f([1, 1, 1, 1])],
      [spec.lmHeadName, f([1, 0, 0, 0, /* */ 0, 1, 0, 0, /* */ 0, 0, 1, 0])],
    ]),
  );
  const eps = 1e-6;
  const sig = (x: number) => x / (1 + Math.exp(-x));
  // ids [0, 1]: embeddings e0 = [0,0,1,0], e1 = [1,0,0,0]; both have mean square 1/4.
  const r = 1 / Math.sqrt(0.25 + eps); // ≈ 2
  // x0 = [0,0,r,0], x1 = [r,0,0,0]; q = k = v = x (identity projections).
  // RoPE at position 1 pairs (0,2) with angle 1 and (1,3) with angle 0.01:
  //   q1 = k1 = [r·cos1, 0, r·sin1, 0];  position 0 is unrotated: k0 = [0,0,r,0].
  // scores (÷√4): s10 = q1·k0/2 = r²·sin1/2, s11 = q1·k1/2 = r²/2.
  const s10 = (r * r * Math.sin(1)) / 2;
  const s11 = (r * r) / 2;
  const a0 = Math.exp(s10) / (Math.exp(s10) + Math.exp(s11));
  const a1 = 1 - a0;
  // ctx0 = v0 = [0,0,r,0];  ctx1 = a0·v0 + a1·v1 = [a1·r, 0, a0·r, 0]; o_proj = identity.
  const hA = [
    [0, 0, 1 + r, 0],
    [1 + a1 * r, 0, a0 * r, 0],
  ];
  const expected = hA.map((h) => {
    const n = 1 / Math.sqrt((h[0]! ** 2 + h[2]! ** 2) / 4 + eps);
    const x2 = [0.5 * h[0]! * n, 0, 2 * h[2]! * n, 0];
    // gate = [x2_0, x2_2], up = [x2_0, −x2_2]; down puts m0 in dim 0, m1 in dim 1.
    const m0 = sig(x2[0]!) * x2[0]!;
    const m1 = sig(x2[2]!) * -x2[2]!;
    const h2 = [h[0]! + m0, m1, h[2]!, 0];
    const nf = 1 / Math.sqrt((h2[0]! ** 2 + h2[1]! ** 2 + h2[2]! ** 2) / 4 + eps);
    return [h2[0]! * nf, h2[1]! * nf, h2[2]! * nf]; // lm_head picks dims 0..2
  });
  // Sanity of the hand numbers themselves: attention is not degenerate.
  assert.ok(a0 > 0.05 && a0 < 0.5, `a0 = ${a0}`);
  const [logits] = referenceForward(spec, cfg, weights, [[0, 1]]);
  assert.equal(logits!.length, 2 * 3);
  for (let t = 0; t < 2; t++) {
    for (let v = 0; v < 3; v++) {
      const got = logits![t * 3 + v]!;
      const want = expected[t]![v]!;
      assert.ok(Math.abs(got - want) <= 1e-5 * Math.max(1, Math.abs(want)), `logit[${t}, ${v}] = ${got}, expected ${want}`);
    }
  }
  // Position 0 in numbers: h = [0,0,1+r,0] ≈ [0,0,3,0] → x2 = [0,0,2·3/1.5,0] = [0,0,4,0]
  // → m1 = silu(4)·(−4) = −4·4/(1+e⁻⁴) ≈ −15.71221 → h2 = [0, −15.71221, 3, 0]
  // → 1/rms = 1/√((15.71221² + 9)/4) ≈ 0.1250309 → logits ≈ [0, −1.964512, 0.375092].
  assert.ok(Math.abs(logits![0]!) <= 1e-6);
  assert.ok(Math.abs(logits![1]! - -1.964512) <= 1e-5, `${logits![1]}`);
  assert.ok(Math.abs(logits![2]! - 0.375092) <= 1e-5, `${logits![2]}`);
});
