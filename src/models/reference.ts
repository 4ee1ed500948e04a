/**
 * The plain-TypeScript reference forward: slow, obvious, and the oracle the ORT graphs are
 * tested against, kept as a living reference backend in tinygrad's sense: every fast path is
 * checked against this obvious one (test/models/reference.test.ts, engine.test.ts, capture.test.ts).
 *
 * It follows HF transformers' Llama-style decoder step by step:
 *   h = embed[ids]
 *   per layer:  x  = RMSNorm(h)·w_in                                  → attn_in
 *               q,k,v = x·Wᵀ (+b);  [qkNorm: RMSNorm per head];  RoPE(q, k)
 *               ctx = softmax(q·kᵀ/√hd + mask)·v   (GQA, causal, padding, sliding window) → attn_out
 *               h  += ctx·Woᵀ (+b)
 *               x2 = RMSNorm(h)·w_post                                → mlp_in
 *               m  = silu(x2·Wgᵀ) ⊙ (x2·Wuᵀ)                          → mlp_out
 *               h  += m·Wdᵀ (+b)
 *   MoE layer:  p  = softmax(x2·Wrouterᵀ) over all E experts; keep the k largest (ties: lower
 *               index), divided by their sum when normTopK;
 *               h  += Σ_{j kept} p_j · down_j(silu(gate_j x2) ⊙ up_j x2)   → per expert: its
 *               rows of mlp_in and its mlp_out
 *   logits = RMSNorm(h)·w_final · Eᵀ   (E = lm_head, or embed_tokens when tied)
 *
 * Every tensor is stored as f32 (as an f32 HF model would); dot products, norms and softmax
 * accumulate in f64 (plain JS numbers). Tensor names come from the ArchSpec, quirks from the
 * ModelConfig flags — no family names here. Complexity is naive on purpose: use tiny dims.
 */
import type { ModelConfig } from './config.ts';
import { ropeCosSin } from './rope.ts';
import {
  layerExperts,
  layerLinears,
  type ArchSpec,
  type ExpertLinearName,
  type ExpertSpec,
  type LayerWeights,
  type LinearName,
  type MoeWeights,
  type NormName,
} from './spec.ts';

/** f32 tensors by HF name. */
export interface WeightSource {
  get(name: string): Float32Array;
  has(name: string): boolean;
}

/** A batch's layout for one decoder layer: (B, T) validity mask and position ids. */
export interface LayerBatch {
  batch: number; // B
  seq: number; // T
  /** (B, T): 1 = token, 0 = padding. */
  mask: Uint8Array;
  /** (B, T): RoPE position ids (see `positionIds`). */
  positions: Int32Array;
}

/**
 * The input of every Linear group of one layer, each (B·T, width) row-major, padded rows included.
 * An MoE layer has no dense mlp_out; its `experts` hold each expert's routed rows instead.
 */
export interface LayerInputs {
  attn_in: Float32Array;
  attn_out: Float32Array;
  mlp_in: Float32Array;
  mlp_out?: Float32Array;
  experts?: ExpertInputs[];
}

/** One expert's share of an MoE layer's tokens. */
export interface ExpertInputs {
  /** Token rows (indices into B·T) routed to the expert, ascending. */
  rows: number[];
  /** Each routed row's routing weight. */
  weights: number[];
  /** silu(gate x)·up x of the routed rows: the expert's mlp_out, (rows.length, I). */
  act: Float32Array;
}

/** Each token's routing in an MoE layer: expert ids (N, k) and weights (N, k), best first. */
export interface Routing {
  experts: Int32Array;
  weights: Float32Array;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

/** RMSNorm over the last axis: y = w ⊙ x / sqrt(mean(x²) + eps). x (rows, cols), w (cols). */
export function rmsNorm(x: Float32Array, w: Float32Array, eps: number, rows: number, cols: number): Float32Array {
  assertLen('rmsNorm x', x, rows * cols);
  assertLen('rmsNorm w', w, cols);
  const y = new Float32Array(rows * cols); // (rows, cols)
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[o + c]! * x[o + c]!;
    const inv = 1 / Math.sqrt(ss / cols + eps);
    // HF: weight * (x * rsqrt(var + eps)), the normalized x rounded to the model dtype first.
    for (let c = 0; c < cols; c++) y[o + c] = w[c]! * Math.fround(x[o + c]! * inv);
  }
  return y;
}

/** y = x·Wᵀ + b. x (rows, inF), W (outF, inF) as HF stores it, b (outF) or null → y (rows, outF). */
export function linear(
  x: Float32Array,
  W: Float32Array,
  b: Float32Array | null | undefined,
  rows: number,
  inF: number,
  outF: number,
): Float32Array {
  assertLen('linear x', x, rows * inF);
  assertLen('linear W', W, outF * inF);
  if (b) assertLen('linear b', b, outF);
  const y = new Float32Array(rows * outF); // (rows, outF)
  for (let r = 0; r < rows; r++) {
    const xo = r * inF;
    for (let o = 0; o < outF; o++) {
      const wo = o * inF;
      let acc = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) acc += x[xo + i]! * W[wo + i]!;
      y[r * outF + o] = acc;
    }
  }
  return y;
}

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

/**
 * HF generation-style position ids: cumsum(mask) − 1, and 1 at padded slots
 * (`position_ids.masked_fill_(attention_mask == 0, 1)`). Left padding thus starts real tokens at 0.
 */
export function positionIds(mask: Uint8Array, batch: number, seq: number): Int32Array {
  assertLen('positionIds mask', mask, batch * seq);
  const pos = new Int32Array(batch * seq); // (B, T)
  for (let b = 0; b < batch; b++) {
    let count = 0;
    for (let t = 0; t < seq; t++) {
      const m = mask[b * seq + t]!;
      count += m;
      pos[b * seq + t] = m ? count - 1 : 1;
    }
  }
  return pos;
}

/** A LayerBatch from an optional (B, T) 0/1 attention mask (none → every slot is a token). */
export function makeLayerBatch(batch: number, seq: number, attentionMask?: readonly (readonly number[])[]): LayerBatch {
  const mask = new Uint8Array(batch * seq).fill(1); // (B, T)
  if (attentionMask) {
    if (attentionMask.length !== batch) {
      throw new Error(`attentionMask has ${attentionMask.length} rows, ids have ${batch}`);
    }
    for (let b = 0; b < batch; b++) {
      const row = attentionMask[b]!;
      if (row.length !== seq) throw new Error(`attentionMask row ${b} has length ${row.length}, ids have ${seq}`);
      for (let t = 0; t < seq; t++) {
        const m = row[t];
        if (m !== 0 && m !== 1) throw new Error(`attentionMask[${b}][${t}] must be 0 or 1, got ${m}`);
        mask[b * seq + t] = m;
      }
    }
  }
  return { batch, seq, mask, positions: positionIds(mask, batch, seq) };
}

/** One layer's weights from a WeightSource by the spec's names, every shape asserted. */
export function loadLayerWeights(spec: ArchSpec, cfg: ModelConfig, weights: WeightSource, layer: number): LayerWeights {
  const prefix = spec.layerPrefix(layer);
  const linears = {} as Record<LinearName, Float32Array>;
  const biases: Partial<Record<LinearName, Float32Array>> = {};
  const norms: Partial<Record<NormName, Float32Array>> = {};
  for (const l of layerLinears(spec, cfg, layer)) {
    linears[l.name] = getTensor(weights, `${prefix}${l.module}.weight`, l.rows * l.cols, `(${l.rows}, ${l.cols})`);
    if (l.bias) biases[l.name] = getTensor(weights, `${prefix}${l.module}.bias`, l.rows, `(${l.rows})`);
  }
  for (const n of spec.norms(cfg)) {
    norms[n.name] = getTensor(weights, `${prefix}${n.module}.weight`, n.size, `(${n.size})`);
  }
  const ex = layerExperts(spec, cfg, layer);
  if (!ex) return { linears, biases, norms };
  const D = cfg.hiddenSize;
  const router = getTensor(weights, `${prefix}${ex.routerModule}.weight`, ex.count * D, `(${ex.count}, ${D})`);
  const experts: Record<ExpertLinearName, Float32Array>[] = [];
  for (let j = 0; j < ex.count; j++) {
    const e = {} as Record<ExpertLinearName, Float32Array>;
    for (const l of ex.linears) {
      e[l.name] = getTensor(weights, `${prefix}${ex.expertModule(j)}.${l.module}.weight`, l.rows * l.cols, `(${l.rows}, ${l.cols})`);
    }
    experts.push(e);
  }
  return { linears, biases, norms, moe: { router, experts } };
}

/** h = embed[ids] → (B, T, D). Every row of ids must have the same length T. */
export function embedTokens(spec: ArchSpec, cfg: ModelConfig, weights: WeightSource, ids: readonly (readonly number[])[]): Float32Array {
  const D = cfg.hiddenSize;
  const V = cfg.vocabSize;
  const B = ids.length;
  const T = seqLength(ids);
  const E = getTensor(weights, spec.embedName, V * D, `(${V}, ${D})`); // (V, D)
  const h = new Float32Array(B * T * D); // (B, T, D)
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const id = ids[b]![t]!;
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`ids[${b}][${t}] = ${id} is outside the vocabulary [0, ${V})`);
      h.set(E.subarray(id * D, (id + 1) * D), (b * T + t) * D);
    }
  }
  return h;
}

/** Final RMSNorm and LM head: hidden (rows, D) → logits (rows, V). */
export function referenceHead(spec: ArchSpec, cfg: ModelConfig, weights: WeightSource, hidden: Float32Array, rows: number): Float32Array {
  const D = cfg.hiddenSize;
  const V = cfg.vocabSize;
  const wNorm = getTensor(weights, spec.finalNormName, D, `(${D})`);
  let headName = spec.lmHeadName;
  if (cfg.tieWordEmbeddings) headName = spec.embedName;
  else if (!weights.has(spec.lmHeadName)) {
    throw new Error(`missing tensor "${spec.lmHeadName}" (tie_word_embeddings is false)`);
  }
  const E = getTensor(weights, headName, V * D, `(${V}, ${D})`); // (V, D)
  const x = rmsNorm(hidden, wNorm, cfg.rmsNormEps, rows, D); // (rows, D)
  return linear(x, E, null, rows, D, V); // (rows, V)
}

// ---------------------------------------------------------------------------------------------
// One decoder layer

/** One decoder layer on hidden (B, T, D) → output (B, T, D). `ex` is the layer's MoE block, if any. */
export function referenceLayer(
  cfg: ModelConfig,
  w: LayerWeights,
  hidden: Float32Array,
  batch: LayerBatch,
  ex: ExpertSpec | null = null,
  masked?: ReadonlySet<number>,
): Float32Array {
  return runLayer(cfg, w, hidden, batch, false, ex, masked).out;
}

/**
 * One decoder layer that also returns the input of every Linear group (the Hessian oracle):
 * attn_in = input_layernorm(h) (B·T, D), attn_out = attention context before o_proj (B·T, H·hd),
 * mlp_in = post_attention_layernorm(h′) (B·T, D), mlp_out = silu(gate)·up (B·T, I) — or, in an
 * MoE layer, each expert's routed rows and their activations, and every token's routing.
 * Padded rows are included; select rows with `batch.mask` for statistics over real tokens.
 */
export function referenceLayerInputs(
  cfg: ModelConfig,
  w: LayerWeights,
  hidden: Float32Array,
  batch: LayerBatch,
  ex: ExpertSpec | null = null,
): { out: Float32Array; inputs: LayerInputs; routing?: Routing } {
  const r = runLayer(cfg, w, hidden, batch, true, ex);
  return { out: r.out, inputs: r.inputs!, ...(r.routing ? { routing: r.routing } : {}) };
}

function runLayer(
  cfg: ModelConfig,
  w: LayerWeights,
  hidden: Float32Array,
  batch: LayerBatch,
  keepInputs: boolean,
  ex: ExpertSpec | null,
  masked?: ReadonlySet<number>,
): { out: Float32Array; inputs?: LayerInputs; routing?: Routing } {
  const { batch: B, seq: T, mask, positions } = batch;
  const D = cfg.hiddenSize;
  const H = cfg.numHeads;
  const Hkv = cfg.numKvHeads;
  const hd = cfg.headDim;
  const I = cfg.intermediateSize;
  const N = B * T;
  const qW = H * hd;
  const kvW = Hkv * hd;
  const eps = cfg.rmsNormEps;
  assertLen('layer hidden', hidden, N * D);
  assertLen('layer mask', mask, N);
  assertLen('layer positions', positions, N);
  if (H % Hkv !== 0) throw new Error(`num_heads ${H} is not a multiple of num_kv_heads ${Hkv}`);
  checkBiases(cfg, w, !!ex);
  if (!!ex !== !!w.moe) throw new Error(`the layer weights ${w.moe ? 'have' : 'lack'} an MoE block, the spec ${ex ? 'has' : 'has none'}`);

  const W = w.linears as Record<LinearName, Float32Array>;
  const bias = (n: LinearName): Float32Array | null => w.biases[n] ?? null;
  const norm = (n: NormName): Float32Array => {
    const t = w.norms[n];
    if (!t) throw new Error(`layer weights lack norm "${n}"`);
    return t;
  };

  // --- attention block
  const x = rmsNorm(hidden, norm('input_layernorm'), eps, N, D); // (N, D)
  let q = linear(x, W.q_proj, bias('q_proj'), N, D, qW); // (N, H·hd) = (N·H, hd)
  let k = linear(x, W.k_proj, bias('k_proj'), N, D, kvW); // (N, Hkv·hd)
  const v = linear(x, W.v_proj, bias('v_proj'), N, D, kvW); // (N, Hkv·hd)
  if (cfg.qkNorm) {
    q = rmsNorm(q, norm('q_norm'), eps, N * H, hd);
    k = rmsNorm(k, norm('k_norm'), eps, N * Hkv, hd);
  }
  const { cos, sin } = ropeCosSin(cfg, positions); // (N, hd) each
  applyRope(q, cos, sin, N, H, hd);
  applyRope(k, cos, sin, N, Hkv, hd);

  const ctx = attention(cfg, q, k, v, batch); // (N, H·hd)
  const attnOut = linear(ctx, W.o_proj, bias('o_proj'), N, qW, D); // (N, D)
  const h1 = new Float32Array(N * D); // (N, D)
  for (let i = 0; i < N * D; i++) h1[i] = hidden[i]! + attnOut[i]!;

  // --- MLP block
  const x2 = rmsNorm(h1, norm('post_attention_layernorm'), eps, N, D); // (N, D)
  if (ex) {
    const moe = referenceMoe(ex, w.moe!, x2, N, D, masked);
    const out = new Float32Array(N * D); // (N, D)
    for (let i = 0; i < N * D; i++) out[i] = h1[i]! + moe.out[i]!;
    if (!keepInputs) return { out };
    return { out, inputs: { attn_in: x, attn_out: ctx, mlp_in: x2, experts: moe.experts }, routing: moe.routing };
  }
  const g = linear(x2, W.gate_proj, bias('gate_proj'), N, D, I); // (N, I)
  const u = linear(x2, W.up_proj, bias('up_proj'), N, D, I); // (N, I)
  const m = new Float32Array(N * I); // (N, I)
  for (let i = 0; i < N * I; i++) m[i] = Math.fround(silu(g[i]!)) * u[i]!;
  const mlpOut = linear(m, W.down_proj, bias('down_proj'), N, I, D); // (N, D)
  const out = new Float32Array(N * D); // (N, D)
  for (let i = 0; i < N * D; i++) out[i] = h1[i]! + mlpOut[i]!;

  if (!keepInputs) return { out };
  return { out, inputs: { attn_in: x, attn_out: ctx, mlp_in: x2, mlp_out: m } };
}

/**
 * The MoE block on x (N, D): routing (softmax over all E router logits in f64, the k largest —
 * lower index first on ties — renormalized when normTopK), then each expert on its routed rows,
 * its outputs weighted and summed into out (N, D).
 */
export function referenceMoe(
  ex: ExpertSpec,
  moe: MoeWeights,
  x: Float32Array,
  N: number,
  D: number,
  /** Experts whose router logit is −∞ (never chosen): what removing them must equal. */
  masked: ReadonlySet<number> = new Set(),
): { out: Float32Array; routing: Routing; experts: ExpertInputs[] } {
  const E = ex.count;
  const k = ex.topK;
  const I = ex.linears.find((l) => l.name === 'gate_proj')!.rows;
  const logits = linear(x, moe.router, null, N, D, E); // (N, E)
  const routing: Routing = { experts: new Int32Array(N * k), weights: new Float32Array(N * k) }; // (N, k)
  const experts: ExpertInputs[] = Array.from({ length: E }, () => ({ rows: [], weights: [], act: new Float32Array(0) }));
  const p = new Float64Array(E);
  for (let n = 0; n < N; n++) {
    const logit = (j: number) => (masked.has(j) ? -Infinity : logits[n * E + j]!);
    let max = -Infinity;
    for (let j = 0; j < E; j++) max = Math.max(max, logit(j));
    let sum = 0;
    for (let j = 0; j < E; j++) sum += p[j] = Math.exp(logit(j) - max);
    for (let j = 0; j < E; j++) p[j]! /= sum;
    const order = Array.from({ length: E }, (_, j) => j).sort((a, b) => p[b]! - p[a]! || a - b);
    let kept = 0;
    for (let r = 0; r < k; r++) kept += p[order[r]!]!;
    for (let r = 0; r < k; r++) {
      const j = order[r]!;
      const wgt = Math.fround(ex.normTopK ? p[j]! / kept : p[j]!);
      routing.experts[n * k + r] = j;
      routing.weights[n * k + r] = wgt;
      experts[j]!.rows.push(n);
      experts[j]!.weights.push(wgt);
    }
  }
  const acc = new Float64Array(N * D); // (N, D)
  for (let j = 0; j < E; j++) {
    const e = experts[j]!;
    const n = e.rows.length;
    if (n === 0) continue;
    const xj = new Float32Array(n * D); // (n, D)
    e.rows.forEach((row, r) => xj.set(x.subarray(row * D, (row + 1) * D), r * D));
    const w = moe.experts[j]!;
    const g = linear(xj, w.gate_proj, null, n, D, I); // (n, I)
    const u = linear(xj, w.up_proj, null, n, D, I); // (n, I)
    e.act = new Float32Array(n * I); // (n, I)
    for (let i = 0; i < n * I; i++) e.act[i] = Math.fround(silu(g[i]!)) * u[i]!;
    const y = linear(e.act, w.down_proj, null, n, I, D); // (n, D)
    e.rows.forEach((row, r) => {
      for (let d = 0; d < D; d++) acc[row * D + d]! += e.weights[r]! * y[r * D + d]!;
    });
  }
  return { out: Float32Array.from(acc), routing, experts };
}

/** In place, per head: x ← x·cos + rotate_half(x)·sin. x (N, heads·hd), cos/sin (N, hd). */
function applyRope(x: Float32Array, cos: Float32Array, sin: Float32Array, N: number, heads: number, hd: number): void {
  const half = hd / 2;
  const tmp = new Float64Array(hd);
  for (let n = 0; n < N; n++) {
    const c = n * hd;
    for (let h = 0; h < heads; h++) {
      const o = (n * heads + h) * hd;
      for (let i = 0; i < hd; i++) {
        const rot = i < half ? -x[o + i + half]! : x[o + i - half]!;
        tmp[i] = x[o + i]! * cos[c + i]! + rot * sin[c + i]!;
      }
      for (let i = 0; i < hd; i++) x[o + i] = tmp[i]!;
    }
  }
}

/**
 * Scaled dot-product attention with GQA (query head h reads kv head ⌊h / (H/Hkv)⌋). Key j is
 * visible to query i (same sequence) iff j ≤ i, mask[j] = 1 and, with a sliding window, i − j < window.
 * A query with no visible key (a left-padding slot) gets a zero context: padded outputs are
 * irrelevant, but they must stay finite.
 */
function attention(cfg: ModelConfig, q: Float32Array, k: Float32Array, v: Float32Array, batch: LayerBatch): Float32Array {
  const { batch: B, seq: T, mask } = batch;
  const H = cfg.numHeads;
  const Hkv = cfg.numKvHeads;
  const hd = cfg.headDim;
  const group = H / Hkv;
  const qW = H * hd;
  const kvW = Hkv * hd;
  const scale = 1 / Math.sqrt(hd);
  const window = cfg.slidingWindow;
  const ctx = new Float32Array(B * T * qW); // (B, T, H·hd)
  const scores = new Float64Array(T);
  const acc = new Float64Array(hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const kvh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qo = (b * T + i) * qW + h * hd;
        const lo = window === null ? 0 : Math.max(0, i - window + 1);
        let max = -Infinity;
        for (let j = lo; j <= i; j++) {
          if (!mask[b * T + j]) {
            scores[j] = -Infinity;
            continue;
          }
          const ko = (b * T + j) * kvW + kvh * hd;
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qo + d]! * k[ko + d]!;
          s *= scale;
          scores[j] = s;
          if (s > max) max = s;
        }
        if (max === -Infinity) continue; // nothing visible: zero context
        let sum = 0;
        for (let j = lo; j <= i; j++) {
          const e = scores[j] === -Infinity ? 0 : Math.exp(scores[j]! - max);
          scores[j] = e;
          sum += e;
        }
        acc.fill(0);
        for (let j = lo; j <= i; j++) {
          const p = scores[j]! / sum;
          if (p === 0) continue;
          const vo = (b * T + j) * kvW + kvh * hd;
          for (let d = 0; d < hd; d++) acc[d] += p * v[vo + d]!;
        }
        for (let d = 0; d < hd; d++) ctx[qo + d] = acc[d]!;
      }
    }
  }
  return ctx;
}

// ---------------------------------------------------------------------------------------------
// Whole model

/**
 * Logits for every position of every sequence: one (T, V) row-major f32 array per row of ids.
 * Rows must share one length T; pad (left, for generation parity with HF) and pass
 * `attentionMask` (same shape, 1 = token, 0 = padding). Padded positions' logits are finite
 * but meaningless.
 */
export function referenceForward(
  spec: ArchSpec,
  cfg: ModelConfig,
  weights: WeightSource,
  ids: readonly (readonly number[])[],
  opts: {
    attentionMask?: readonly (readonly number[])[];
    /** MoE: per layer, experts whose router logit is −∞. */
    maskedExperts?: ReadonlyMap<number, ReadonlySet<number>>;
  } = {},
): Float32Array[] {
  const B = ids.length;
  const T = seqLength(ids);
  const V = cfg.vocabSize;
  const batch = makeLayerBatch(B, T, opts.attentionMask);
  let h = embedTokens(spec, cfg, weights, ids); // (B, T, D)
  for (let l = 0; l < cfg.numLayers; l++) {
    h = referenceLayer(cfg, loadLayerWeights(spec, cfg, weights, l), h, batch, layerExperts(spec, cfg, l), opts.maskedExperts?.get(l));
  }
  const logits = referenceHead(spec, cfg, weights, h, B * T); // (B·T, V)
  const out: Float32Array[] = [];
  for (let b = 0; b < B; b++) out.push(logits.slice(b * T * V, (b + 1) * T * V)); // (T, V)
  return out;
}

// ---------------------------------------------------------------------------------------------
// Helpers

function seqLength(ids: readonly (readonly number[])[]): number {
  if (ids.length === 0) throw new Error('ids is empty');
  const T = ids[0]!.length;
  for (let b = 1; b < ids.length; b++) {
    if (ids[b]!.length !== T) {
      throw new Error(`ids row ${b} has length ${ids[b]!.length}, row 0 has ${T}; pad the batch and pass attentionMask`);
    }
  }
  return T;
}

function getTensor(weights: WeightSource, name: string, len: number, shape: string): Float32Array {
  if (!weights.has(name)) throw new Error(`missing tensor "${name}", expected shape ${shape}`);
  const t = weights.get(name);
  if (t.length !== len) throw new Error(`tensor "${name}" has ${t.length} elements, expected shape ${shape} = ${len}`);
  return t;
}

function assertLen(what: string, a: ArrayLike<number>, len: number): void {
  if (a.length !== len) throw new Error(`${what}: expected ${len} elements, got ${a.length}`);
}

/** Biases present must be exactly those the config declares: a mismatch is a loading bug. */
function checkBiases(cfg: ModelConfig, w: LayerWeights, moeLayer: boolean): void {
  const mlp = cfg.mlpBias && !moeLayer;
  const want: Record<LinearName, boolean> = {
    q_proj: cfg.qkvBias,
    k_proj: cfg.qkvBias,
    v_proj: cfg.qkvBias,
    o_proj: cfg.oBias,
    gate_proj: mlp,
    up_proj: mlp,
    down_proj: mlp,
  };
  for (const n of Object.keys(want) as LinearName[]) {
    const has = w.biases[n] !== undefined;
    if (has !== want[n]) throw new Error(`${n}: config says bias=${want[n]}, layer weights ${has ? 'have' : 'lack'} one`);
  }
}
