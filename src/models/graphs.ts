/**
 * ONNX graphs for Llama-style decoder models, built from a ModelConfig.
 *
 * One decoder-layer graph serves every layer: the layer's weights are graph INPUTS, so a single
 * session runs layer 0..L-1 in turn and pruned weights are fed back without a rebuild.
 * Variants:
 *   past    — takes the KV cache at capacity C, keys transposed past_key_t (B, Hkv, hd, C) and
 *             past_value (B, Hkv, C, hd), read in place, and attends over C + T keys (decode);
 *             slots not yet filled are masked
 *   present — returns the new tokens' new_key/new_value (B, Hkv, T, hd) for the cache
 *   capture — also returns, per Linear input group, XᵀX (width, width) summed over the tokens
 *             of the batch with row weights `token_weight` (0 for padding, √w for weighted rows);
 *             with `captureDiagonal` only its diagonal Σ_t w_t·x_t² (width), for methods that
 *             need no more (Wanda): O(N·width) instead of O(N·width²). The weighting, the sum
 *             over batches and the scaling are compress/hessian.ts's.
 *
 * An MoE layer's graph (variant `experts`) stops before the experts: it returns the residual
 * after attention `h1` (B, T, D), the post-attention-normed `moe_in` (N, D) and each token's routing
 * — `route_idx` (N, k) int64 and `route_w` (N, k): softmax over all E router logits, the k largest,
 * renormalized when the spec says so — and the caller runs the routed experts (models/moe.ts) on
 * their rows through the expert graph (buildExpertGraph), one call per expert with tokens: decode
 * touches only the routed experts' weights. Its capture returns XᵀX of attn_in, attn_out and
 * mlp_in (every token: the shared input of every expert's gate/up); the experts' own statistics
 * come from the expert graph's capture. Asymmetric calibration's two-stream variants
 * (`captureCross`) exist for both: the layer graph routes the reference stream by itself, and the
 * expert graph takes a routed row's reference-stream input beside its pruned-stream one.
 *
 * Shapes (B batch, T new tokens, C cached slots, D hidden, H heads, Hkv kv heads, G = H/Hkv):
 *   hidden (B, T, D) · cos/sin (B, T, hd) · mask (B, 1, 1, T, S) additive (0 or -1e9), S = C + T
 */
import { GraphBuilder, type NBitsWeight, type Value } from '../runtime/graph.ts';
import type { ModelConfig } from './config.ts';
import {
  expertGroupWidth,
  groupWidth,
  INPUT_GROUPS,
  type ArchSpec,
  type ExpertLinearName,
  type ExpertSpec,
  type InputGroup,
  type LinearName,
} from './spec.ts';

export interface LayerGraphVariant {
  past: boolean;
  present: boolean;
  capture: boolean;
  /** With `capture`: return diag(XᵀX) (width) per group instead of XᵀX (width, width). */
  captureDiagonal?: boolean;
  /**
   * With `capture` (full, no past): also run the layer on a reference stream — `hidden_ref`
   * through reference weights (inputs named with REFERENCE_PREFIX) — and return its output
   * `out_ref` and, per group, the cross term `xcross_<group>` = X_refᵀ·X (width, width), rows
   * weighted as XᵀX (asymmetric calibration: the dense model's stream against the pruned one's).
   */
  captureCross?: boolean;
  /**
   * The layer's MoE block: the graph ends at the routing (see the header). With captureCross the
   * reference stream ends there too: `h1_ref`, `moe_in_ref`, `route_idx_ref`, `route_w_ref`.
   */
  experts?: ExpertSpec | null;
  /** Linears baked in as block-quantized MatMulNBits weights (models/packed.ts) instead of weight inputs. */
  packed?: Partial<Record<LinearName, PackedMatMul>>;
  /** MatMulNBits' accuracy_level for `packed` (default PACKED_ACCURACY_LEVEL, models/packed.ts). */
  accuracyLevel?: number;
  /** Weight inputs baked in as initializers at build (the graph then declares only the rest as inputs). */
  constants?: Record<string, { data: Float32Array; dims: readonly number[] }>;
}

/** A Linear as MatMulNBits runs it: the weight, and the input-column order when activation ordering permutes it. */
export interface PackedMatMul {
  weight: NBitsWeight;
  /** (K) input column order (int32), or null. */
  perm: Int32Array | null;
}

/** y = x·Wᵀ for x (N, K) through MatMulNBits (columns of x gathered first when the weight's are permuted). */
export function packedLinearOp(g: GraphBuilder, x: Value, p: PackedMatMul, accuracyLevel = 4): Value {
  const xs = p.perm ? g.gather(x, g.constRaw('int32', [p.perm.length], p.perm, 'perm'), -1) : x;
  return g.matMulNBits(xs, p.weight, accuracyLevel);
}

/** The input groups a layer graph's capture returns: an MoE layer's mlp_out is per expert. */
export function layerCaptureGroups(moe: boolean): readonly InputGroup[] {
  return moe ? ['attn_in', 'attn_out', 'mlp_in'] : INPUT_GROUPS;
}

/** Prefix of the reference weights' input names in the `captureCross` variant. */
export const REFERENCE_PREFIX = 'ref_';

/** Names of the per-layer weight inputs, fixed across architectures. */
export function weightInputName(kind: 'w' | 'b', name: string): string {
  return `${kind}_${name}`;
}

export function captureOutputName(g: InputGroup): string {
  return `xtx_${g}`;
}

export function crossOutputName(g: InputGroup): string {
  return `xcross_${g}`;
}

export function buildLayerGraph(spec: ArchSpec, cfg: ModelConfig, v: LayerGraphVariant): Uint8Array {
  const D = cfg.hiddenSize;
  const H = cfg.numHeads;
  const Hkv = cfg.numKvHeads;
  const G = H / Hkv;
  const hd = cfg.headDim;
  if (v.captureCross && (!v.capture || v.captureDiagonal || v.past))
    throw new Error('buildLayerGraph: captureCross needs a full capture without a past');
  const ex = v.experts ?? null;
  const packed = v.packed ?? {};
  if (v.captureCross && Object.keys(packed).length > 0) throw new Error('buildLayerGraph: captureCross takes float weights');
  const g = new GraphBuilder(
    `decoder_layer${ex ? '_moe' : ''}${v.past ? '_past' : ''}${v.capture ? (v.captureDiagonal ? '_capture_diag' : v.captureCross ? '_capture_cross' : '_capture') : ''}`,
    v.constants,
  );
  const groups = layerCaptureGroups(!!ex);

  const hidden = g.input('hidden', 'float32', ['B', 'T', D]); // (B, T, D)
  const cos = g.input('cos', 'float32', ['B', 'T', hd]); // (B, T, hd)
  const sin = g.input('sin', 'float32', ['B', 'T', hd]);
  const mask = g.input('mask', 'float32', ['B', 1, 1, 'T', 'S']); // (B, 1, 1, T, S)
  const pastK = v.past ? g.input('past_key_t', 'float32', ['B', Hkv, hd, 'C']) : null; // keys, transposed
  const pastV = v.past ? g.input('past_value', 'float32', ['B', Hkv, 'C', hd]) : null;
  const tokenWeight = v.capture ? g.input('token_weight', 'float32', ['N', 1]) : null; // (B·T, 1)
  const hiddenRef = v.captureCross ? g.input('hidden_ref', 'float32', ['B', 'T', D]) : null;

  const weightsOf = (prefix: string) => {
    const W = {} as Record<LinearName, Value>;
    const bias = {} as Partial<Record<LinearName, Value>>;
    for (const l of spec.linears(cfg)) {
      if (ex && (l.group === 'mlp_in' || l.group === 'mlp_out')) continue;
      if (!packed[l.name]) W[l.name] = g.input(prefix + weightInputName('w', l.name), 'float32', [l.rows, l.cols]);
      if (l.bias) bias[l.name] = g.input(prefix + weightInputName('b', l.name), 'float32', [l.rows]);
    }
    const norms: Record<string, Value> = {};
    for (const n of spec.norms(cfg)) norms[n.name] = g.input(prefix + weightInputName('w', n.name), 'float32', [n.size]);
    const router = ex ? g.input(prefix + ROUTER_INPUT, 'float32', [ex.count, D]) : null;
    return { W, bias, norms, router };
  };

  /** The decoder layer on `hid` (B, T, D) with one set of weights; `tap` sees each input group's (N, width) activations. */
  const layer = (hid: Value, ws: ReturnType<typeof weightsOf>, tap: (grp: InputGroup, x2d: Value) => void) => {
    const { W, bias, norms } = ws;
    // y = x·Wᵀ (+ b): Gemm reads the HF (out, in) weight as is; a packed one is a MatMulNBits.
    const linear = (x2d: Value, name: LinearName) => {
      const p = packed[name];
      if (!p) return g.gemm(x2d, W[name], bias[name] ?? null, { transB: true });
      const y = packedLinearOp(g, x2d, p, v.accuracyLevel);
      return bias[name] ? g.add(y, bias[name]) : y;
    };

    const x = g.reshape(hid, [-1, D]); // (N, D)
    const xn = g.rmsNorm(x, norms['input_layernorm']!, cfg.rmsNormEps);
    tap('attn_in', xn);
    let q = linear(xn, 'q_proj'); // (N, H·hd)
    let k = linear(xn, 'k_proj'); // (N, Hkv·hd)
    const vv = linear(xn, 'v_proj');

    // q → (B, T, Hkv, G, hd) → (B, Hkv, G, T, hd); k, v → (B, T, Hkv, hd) → (B, Hkv, T, hd)
    q = g.reshape(q, g.shapeFrom(hid, 2, [Hkv, G, hd]));
    k = g.reshape(k, g.shapeFrom(hid, 2, [Hkv, hd]));
    let vh = g.reshape(vv, g.shapeFrom(hid, 2, [Hkv, hd]));
    if (cfg.qkNorm) {
      q = g.rmsNorm(q, norms['q_norm']!, cfg.rmsNormEps);
      k = g.rmsNorm(k, norms['k_norm']!, cfg.rmsNormEps);
    }
    q = g.transpose(q, [0, 2, 3, 1, 4]);
    k = g.transpose(k, [0, 2, 1, 3]);
    vh = g.transpose(vh, [0, 2, 1, 3]);
    q = rope(q, cos5, sin5);
    k = rope(k, cos4, sin4);

    // scores: (B, Hkv, G·T, hd) · keysᵀ. With a past, the cache is read in place: keys pre-transposed
    // (B, Hkv, hd, C) and values (B, Hkv, C, hd) at capacity C (unused slots masked), so a decode
    // step copies no cache; the new tokens' keys and values are scored separately and concatenated.
    const qs = g.mul(q, g.scalar(1 / Math.sqrt(hd)));
    const q4 = g.reshape(qs, g.shapeFrom(hid, 1, [Hkv, -1, hd]));
    const sNew = g.matmul(q4, g.transpose(k, [0, 1, 3, 2])); // (B, Hkv, G·T, T)
    const scores = pastK ? g.concat([g.matmul(q4, pastK), sNew], -1) : sNew; // (B, Hkv, G·T, C+T)
    // (B, Hkv, G, T, S) + mask (B, 1, 1, T, S)
    const maskTS = g.slice(g.shape(mask), [3], [5], [0]); // [T, S]
    const batch = g.slice(g.shape(hid), [0], [1], [0]); // [B]
    const s5 = g.reshape(scores, g.concat([batch, g.constI64([Hkv, G]), maskTS], 0));
    const probs = g.softmax(g.add(s5, mask), -1);
    const p4 = g.reshape(probs, g.concat([batch, g.constI64([Hkv, -1]), g.slice(maskTS, [1], [2], [0])], 0));
    let ctx: Value; // (B, Hkv, G·T, hd)
    if (pastV) {
      const C = g.slice(g.shape(pastV), [2], [3], [0]); // [C]
      const pPast = g.op('Slice', [p4, g.constI64([0]), C, g.constI64([-1])]);
      const pNew = g.op('Slice', [p4, C, g.constI64([Number.MAX_SAFE_INTEGER]), g.constI64([-1])]);
      ctx = g.add(g.matmul(pPast, pastV), g.matmul(pNew, vh));
    } else {
      ctx = g.matmul(p4, vh);
    }
    // → (B, Hkv, G, T, hd) → (B, T, Hkv, G, hd) → (N, H·hd)
    const ctx5 = g.reshape(ctx, g.shapeFrom(hid, 1, [Hkv, G, -1, hd]));
    const ctx2d = g.reshape(g.transpose(ctx5, [0, 3, 1, 2, 4]), [-1, H * hd]);
    tap('attn_out', ctx2d);
    const attnOut = linear(ctx2d, 'o_proj');
    const h1 = g.add(x, attnOut); // (N, D)

    const hn = g.rmsNorm(h1, norms['post_attention_layernorm']!, cfg.rmsNormEps);
    tap('mlp_in', hn);
    if (ex) {
      // Routing: softmax over all E logits (f32), the k largest, renormalized when the spec says so.
      const probs = g.softmax(g.gemm(hn, ws.router!, null, { transB: true }), -1); // (N, E)
      const [top, idx] = g.node('TopK', [probs, g.constI64([ex.topK])], { axis: -1, largest: 1, sorted: 1 }, 2, 'topk') as [Value, Value];
      const routeW = ex.normTopK ? g.div(top, g.reduceSum(top, [-1], true)) : top; // (N, k)
      return { h2: h1, k, vh, moe: { hn, idx, routeW } };
    }
    const act = g.mul(g.silu(linear(hn, 'gate_proj')), linear(hn, 'up_proj')); // (N, I)
    tap('mlp_out', act);
    return { h2: g.add(h1, linear(act, 'down_proj')), k, vh, moe: null };
  };

  // RoPE, HF rotate-half: x·cos + rotate_half(x)·sin, rotate_half(x) = [-x₂, x₁]
  const half = hd / 2;
  const rope = (t: Value, cs: Value, sn: Value) => {
    const x1 = g.slice(t, [0], [half], [-1]);
    const x2 = g.slice(t, [half], [hd], [-1]);
    const rot = g.concat([g.neg(x2), x1], -1);
    return g.add(g.mul(t, cs), g.mul(rot, sn));
  };
  const cos5 = g.reshape(cos, g.shapeFrom(cos, 1, [1, 1, -1, hd])); // (B, 1, 1, T, hd)
  const sin5 = g.reshape(sin, g.shapeFrom(sin, 1, [1, 1, -1, hd]));
  const cos4 = g.reshape(cos, g.shapeFrom(cos, 1, [1, -1, hd])); // (B, 1, T, hd)
  const sin4 = g.reshape(sin, g.shapeFrom(sin, 1, [1, -1, hd]));

  // Captured activations, rows scaled by the token weights (padded rows zeroed).
  const acts: Partial<Record<InputGroup, Value>> = {};
  const refActs: Partial<Record<InputGroup, Value>> = {};
  const weighted = (into: Partial<Record<InputGroup, Value>>) => (grp: InputGroup, x2d: Value) => {
    if (tokenWeight) into[grp] = g.mul(x2d, tokenWeight); // (N, width)
  };
  const { h2, k, vh, moe } = layer(hidden, weightsOf(''), weighted(acts));
  const ref = hiddenRef ? layer(hiddenRef, weightsOf(REFERENCE_PREFIX), weighted(refActs)) : null;
  const captured: Partial<Record<InputGroup, Value>> = {};
  const crossed: Partial<Record<InputGroup, Value>> = {};
  for (const grp of tokenWeight ? groups : []) {
    const xw = acts[grp]!;
    captured[grp] = v.captureDiagonal
      ? g.reduceSum(g.mul(xw, xw), [0], false) // (width)
      : g.gemm(xw, xw, null, { transA: true }); // (width, width)
    if (ref) crossed[grp] = g.gemm(refActs[grp]!, xw, null, { transA: true }); // XᵀX̃ (width, width)
  }

  /** The layer's outputs on one stream (`suffix` '' or '_ref'). */
  const outputs = (o: ReturnType<typeof layer>, suffix: string) => {
    if (o.moe && ex) {
      g.output(g.reshape(o.h2, g.shapeFrom(hidden, 2, [D])), `h1${suffix}`, 'float32', ['B', 'T', D]);
      g.output(o.moe.hn, `moe_in${suffix}`, 'float32', ['N', D]);
      g.output(o.moe.idx, `route_idx${suffix}`, 'int64', ['N', ex.topK]);
      g.output(o.moe.routeW, `route_w${suffix}`, 'float32', ['N', ex.topK]);
    } else g.output(g.reshape(o.h2, g.shapeFrom(hidden, 2, [D])), `out${suffix}`, 'float32', ['B', 'T', D]);
  };
  outputs({ h2, k, vh, moe }, '');
  if (v.present) {
    // the new tokens' keys and values (B, Hkv, T, hd); the engine appends them to its cache
    g.output(k, 'new_key', 'float32', ['B', Hkv, 'T', hd]);
    g.output(vh, 'new_value', 'float32', ['B', Hkv, 'T', hd]);
  }
  if (v.capture) {
    for (const grp of groups) {
      const width = groupWidth(cfg, grp);
      g.output(captured[grp]!, captureOutputName(grp), 'float32', v.captureDiagonal ? [width] : [width, width]);
      if (ref) g.output(crossed[grp]!, crossOutputName(grp), 'float32', [width, width]);
    }
  }
  if (ref) outputs(ref, '_ref');
  return g.build();
}

/** The router weight's input name in an MoE layer graph. */
export const ROUTER_INPUT = 'w_router';

export interface ExpertGraphVariant {
  /** Also return XᵀX (or, with captureDiagonal, its diagonal) of the expert's two input groups over rows weighted by token_weight. */
  capture: boolean;
  captureDiagonal?: boolean;
  /**
   * With `capture` (full): also run the expert on the reference stream's rows `x_ref` (n, D)
   * through reference weights (REFERENCE_PREFIX inputs) and return, per group, the cross term
   * `xcross_<group>` = X_refᵀ·X, rows weighted as XᵀX (asymmetric calibration).
   */
  captureCross?: boolean;
  /** The expert's Linears baked in as MatMulNBits weights instead of inputs. */
  packed?: Partial<Record<ExpertLinearName, PackedMatMul>>;
  accuracyLevel?: number;
  /** Weight inputs baked in as initializers at build. */
  constants?: Record<string, { data: Float32Array; dims: readonly number[] }>;
}

/**
 * One expert of an MoE layer on its routed rows: x (n, D), gate_w (n, 1) the rows' routing
 * weights → y (n, D) = gate_w · down(silu(gate x)·up x). Weights are inputs `w_gate_proj`,
 * `w_up_proj` (I, D), `w_down_proj` (D, I). The capture variant takes token_weight (n, 1) and
 * returns xtx_mlp_in (D, D) of x and xtx_mlp_out (I, I) of the activation (diagonals with
 * captureDiagonal); the routing weight does not enter them (an expert's statistics are its inputs).
 * With captureCross also x_ref (n, D) and the reference weights `ref_w_*`, and xcross_mlp_in /
 * xcross_mlp_out: the reference activations' cross terms against the pruned stream's.
 */
export function buildExpertGraph(cfg: ModelConfig, ex: ExpertSpec, v: ExpertGraphVariant): Uint8Array {
  const D = cfg.hiddenSize;
  const packed = v.packed ?? {};
  if (v.captureCross && (!v.capture || v.captureDiagonal || Object.keys(packed).length > 0))
    throw new Error('buildExpertGraph: captureCross needs a full capture with float weights');
  const g = new GraphBuilder(
    `moe_expert${v.capture ? (v.captureDiagonal ? '_capture_diag' : v.captureCross ? '_capture_cross' : '_capture') : ''}`,
    v.constants,
  );
  const x = g.input('x', 'float32', ['n', D]);
  const gw = g.input('gate_w', 'float32', ['n', 1]);
  const weights = (prefix: string) => {
    const W = {} as Record<ExpertLinearName, Value>;
    for (const l of ex.linears)
      if (!packed[l.name]) W[l.name] = g.input(prefix + weightInputName('w', l.name), 'float32', [l.rows, l.cols]);
    return W;
  };
  /** a·Wᵀ for Linear n: its MatMulNBits when packed, else a Gemm on its weight in W. */
  const lin = (a: Value, n: ExpertLinearName, W: Record<ExpertLinearName, Value>) =>
    packed[n] ? packedLinearOp(g, a, packed[n], v.accuracyLevel) : g.gemm(a, W[n], null, { transB: true });
  /** silu(gate a)·up a (n, I) through weights W. */
  const activation = (a: Value, W: Record<ExpertLinearName, Value>) => g.mul(g.silu(lin(a, 'gate_proj', W)), lin(a, 'up_proj', W));
  const W = weights('');
  const act = activation(x, W);
  g.output(g.mul(lin(act, 'down_proj', W), gw), 'y', 'float32', ['n', D]);
  if (v.capture) {
    const tw = g.input('token_weight', 'float32', ['n', 1]);
    const xRef = v.captureCross ? g.input('x_ref', 'float32', ['n', D]) : null;
    const actRef = xRef ? activation(xRef, weights(REFERENCE_PREFIX)) : null;
    for (const [grp, a, aRef] of [
      ['mlp_in', x, xRef],
      ['mlp_out', act, actRef],
    ] as const) {
      const xw = g.mul(a, tw);
      const width = expertGroupWidth(cfg, grp);
      g.output(
        v.captureDiagonal ? g.reduceSum(g.mul(xw, xw), [0], false) : g.gemm(xw, xw, null, { transA: true }),
        captureOutputName(grp),
        'float32',
        v.captureDiagonal ? [width] : [width, width],
      );
      if (aRef) g.output(g.gemm(g.mul(aRef, tw), xw, null, { transA: true }), crossOutputName(grp), 'float32', [width, width]); // X_refᵀX̃
    }
  }
  return g.build();
}

/** Final RMSNorm + LM head: hidden (N, D) → logits (N, V); with `packed`, the head is that MatMulNBits weight (V rows). */
export function buildHeadGraph(
  cfg: ModelConfig,
  packed?: PackedMatMul,
  accuracyLevel?: number,
  constants?: Record<string, { data: Float32Array; dims: readonly number[] }>,
): Uint8Array {
  const g = new GraphBuilder('lm_head', constants);
  const h = g.input('hidden', 'float32', ['N', cfg.hiddenSize]);
  const nw = g.input('w_norm', 'float32', [cfg.hiddenSize]);
  const xn = g.rmsNorm(h, nw, cfg.rmsNormEps);
  const logits = packed
    ? packedLinearOp(g, xn, packed, accuracyLevel)
    : g.gemm(xn, g.input('w_lm_head', 'float32', [cfg.vocabSize, cfg.hiddenSize]), null, { transB: true });
  g.output(logits, 'logits', 'float32', ['N', cfg.vocabSize]);
  return g.build();
}

/** XᵀX of the LM head's input: final RMSNorm of hidden (N, D), rows weighted → (D, D), or its diagonal (D). */
export function buildHeadCaptureGraph(cfg: ModelConfig, diagonal = false): Uint8Array {
  const g = new GraphBuilder(diagonal ? 'lm_head_capture_diag' : 'lm_head_capture');
  const h = g.input('hidden', 'float32', ['N', cfg.hiddenSize]);
  const nw = g.input('w_norm', 'float32', [cfg.hiddenSize]);
  const tw = g.input('token_weight', 'float32', ['N', 1]);
  const xw = g.mul(g.rmsNorm(h, nw, cfg.rmsNormEps), tw);
  if (diagonal) g.output(g.reduceSum(g.mul(xw, xw), [0], false), 'xtx', 'float32', [cfg.hiddenSize]);
  else g.output(g.gemm(xw, xw, null, { transA: true }), 'xtx', 'float32', [cfg.hiddenSize, cfg.hiddenSize]);
  return g.build();
}
