/**
 * The trainer's models — Qwen2 (dense; v1, v2) and Qwen3-MoE (recipe `moe`) — parameter layout,
 * init, the training-step ONNX graph (forward + hand-derived backward, see ./ad.ts).
 *
 * Training layout (per layer, fused for fewer, larger GEMMs):
 *   ln1 (D) · wqkv (Q+2K, D) = [q_proj; k_proj; v_proj] · bqkv (Q+2K) · wo (D, Q) ·
 *   ln2 (D) · wgu (2I, D) = [gate_proj; up_proj] · wd (D, I)
 * plus embed (V, D) (tied LM head) and lnf (D). Q = H·hd, K = Hkv·hd.
 * The export splits the fused tensors back into HF names; the math is exactly HF Qwen2's.
 *
 * With `moe` (Qwen3-MoE, E experts of width I, top-k): no q/k/v bias; qn (hd) / kn (hd) are the
 * per-head q_norm / k_norm applied before RoPE; the MLP is router (E, D) ·
 *   wgu (2·E·I, D) = [gate_0; …; gate_{E−1}; up_0; …; up_{E−1}] · wd (D, E·I) = [down_0 | … | down_{E−1}].
 * The routing weights — softmax over all E, top-k, renormalized (norm_topk_prob) — weight each
 * token's k experts, and each expert runs only on the tokens routed to it (Tape.moeExperts: the
 * slots sorted by expert, one GEMM segment per expert): exactly HF Qwen3-MoE's forward. The
 * `denseExperts` option runs every expert on every token instead (E/k times the expert flops; an
 * expert outside a token's top k is weighted 0 and gets no gradient from it) — the reference.
 * A Switch-style load-balancing loss (coef `auxCoef`) is added per MoE layer.
 *
 * Batch layout: B rows of T tokens; each row packs whole examples. A block-diagonal causal mask
 * keeps examples apart and RoPE positions restart at 0 for each example, so a packed example is
 * computed exactly as it would be alone.
 */
import { Tape, type Tensor } from './ad.ts';
import type { Value } from '../../src/runtime/graph.ts';

export interface TinyConfig {
  vocab: number; // V
  hidden: number; // D
  layers: number; // L
  heads: number; // H
  kvHeads: number; // Hkv
  intermediate: number; // I
  ropeTheta: number;
  eps: number;
  /** Head size when not hidden / heads (Qwen3-MoE writes `head_dim`). */
  headDim?: number;
  /** A Mixture-of-Experts MLP in every layer (exported as `qwen3_moe`, with q/k norms and no attention bias). */
  moe?: MoeConfig;
}

export interface MoeConfig {
  experts: number; // E
  topK: number; // k
  /** Width of one expert's MLP (`moe_intermediate_size`). */
  expertIntermediate: number; // I
  /** Load-balancing loss coefficient (`router_aux_loss_coef`). */
  auxCoef: number;
}

export const headDim = (c: TinyConfig) => c.headDim ?? c.hidden / c.heads;

export interface ParamSpec {
  name: string;
  shape: number[];
  /** Init: normal with this std, or constant 1 (norms) / 0 (biases). */
  init: { kind: 'normal'; std: number } | { kind: 'one' } | { kind: 'zero' };
  decay: boolean;
}

export function paramSpecs(c: TinyConfig): ParamSpec[] {
  const D = c.hidden;
  const hd = headDim(c);
  const Q = c.heads * hd;
  const K = c.kvHeads * hd;
  const I = c.intermediate;
  const resid = 1 / Math.sqrt(2 * c.layers);
  const out: ParamSpec[] = [{ name: 'embed', shape: [c.vocab, D], init: { kind: 'normal', std: 0.05 }, decay: true }];
  for (let l = 0; l < c.layers; l++) {
    if (c.moe) {
      const { experts: E, expertIntermediate: Ie } = c.moe;
      out.push(
        { name: `l${l}.ln1`, shape: [D], init: { kind: 'one' }, decay: false },
        { name: `l${l}.wqkv`, shape: [Q + 2 * K, D], init: { kind: 'normal', std: 1 / Math.sqrt(D) }, decay: true },
        { name: `l${l}.qn`, shape: [hd], init: { kind: 'one' }, decay: false },
        { name: `l${l}.kn`, shape: [hd], init: { kind: 'one' }, decay: false },
        { name: `l${l}.wo`, shape: [D, Q], init: { kind: 'normal', std: resid / Math.sqrt(Q) }, decay: true },
        { name: `l${l}.ln2`, shape: [D], init: { kind: 'one' }, decay: false },
        { name: `l${l}.router`, shape: [E, D], init: { kind: 'normal', std: 1 / Math.sqrt(D) }, decay: true },
        { name: `l${l}.wgu`, shape: [2 * E * Ie, D], init: { kind: 'normal', std: 1 / Math.sqrt(D) }, decay: true },
        { name: `l${l}.wd`, shape: [D, E * Ie], init: { kind: 'normal', std: resid / Math.sqrt(Ie) }, decay: true },
      );
      continue;
    }
    out.push(
      { name: `l${l}.ln1`, shape: [D], init: { kind: 'one' }, decay: false },
      { name: `l${l}.wqkv`, shape: [Q + 2 * K, D], init: { kind: 'normal', std: 1 / Math.sqrt(D) }, decay: true },
      { name: `l${l}.bqkv`, shape: [Q + 2 * K], init: { kind: 'zero' }, decay: false },
      { name: `l${l}.wo`, shape: [D, Q], init: { kind: 'normal', std: resid / Math.sqrt(Q) }, decay: true },
      { name: `l${l}.ln2`, shape: [D], init: { kind: 'one' }, decay: false },
      { name: `l${l}.wgu`, shape: [2 * I, D], init: { kind: 'normal', std: 1 / Math.sqrt(D) }, decay: true },
      { name: `l${l}.wd`, shape: [D, I], init: { kind: 'normal', std: resid / Math.sqrt(I) }, decay: true },
    );
  }
  out.push({ name: 'lnf', shape: [D], init: { kind: 'one' }, decay: false });
  return out;
}

export const numelOf = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/** All parameters in one flat buffer, with a view per tensor. */
export class Params {
  readonly flat: Float32Array;
  readonly views = new Map<string, Float32Array>();
  constructor(
    readonly specs: ParamSpec[],
    flat?: Float32Array,
  ) {
    const total = specs.reduce((a, s) => a + numelOf(s.shape), 0);
    this.flat = flat ?? new Float32Array(total);
    if (this.flat.length !== total) throw new Error(`params: ${this.flat.length} values, expected ${total}`);
    let off = 0;
    for (const s of specs) {
      const n = numelOf(s.shape);
      this.views.set(s.name, this.flat.subarray(off, off + n));
      off += n;
    }
  }
  get(name: string): Float32Array {
    const v = this.views.get(name);
    if (!v) throw new Error(`no param ${name}`);
    return v;
  }
  get size(): number {
    return this.flat.length;
  }
}

/** Deterministic Gaussian init (Box–Muller over a seeded uniform source). */
export function initParams(specs: ParamSpec[], uniform: () => number): Params {
  const p = new Params(specs);
  for (const s of specs) {
    const v = p.get(s.name);
    if (s.init.kind === 'one') v.fill(1);
    else if (s.init.kind === 'zero') v.fill(0);
    else {
      const std = s.init.std;
      for (let i = 0; i < v.length; i++) {
        const u = Math.max(uniform(), 1e-12);
        v[i] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
      }
    }
  }
  return p;
}

export interface StepGraphOptions {
  batch: number; // B
  seq: number; // T
  /** Also output logits (N, V) — for parity tests. */
  logits?: boolean;
  /** Emit the backward pass (default true). */
  grads?: boolean;
  /**
   * MoE: run every expert on every token, weighted by the (mostly zero) routing weights — the
   * reference the sparse path (Tape.moeExperts, the default: each expert on its routed rows only)
   * is tested against.
   */
  denseExperts?: boolean;
}

/** Graph input names besides the params (MoE graphs also take `real`, see batchFeeds). */
export const BATCH_INPUTS = ['ids', 'onehot', 'cos', 'sin', 'mask', 'targets', 'weights'] as const;

/**
 * The training-step graph. Inputs: every param (by spec name), ids (N) int64, onehot (N, V),
 * cos/sin (B, T, hd), mask (B, 1, 1, T, T) additive, targets (N, V) = w_n·onehot(next token),
 * weights (N, 1) = w_n; MoE graphs also real (N, 1) = 1/n_real per real token (0 for padding).
 * Outputs: loss (scalar: cross-entropy plus, for MoE, the load-balancing terms), `ce` (the
 * cross-entropy alone), `grad.<name>` per param, optionally logits; MoE graphs also `load.<l>`
 * (E): each expert's share of layer l's routing slots over the real tokens.
 */
export function buildStepGraph(c: TinyConfig, o: StepGraphOptions): Uint8Array {
  const { batch: B, seq: T } = o;
  const N = B * T;
  const V = c.vocab;
  const H = c.heads;
  const Hkv = c.kvHeads;
  const G = H / Hkv;
  const hd = headDim(c);
  const Q = H * hd;
  const K = Hkv * hd;
  const tape = new Tape('tiny_reasoner_step');
  const g = tape.g;
  const P = new Map<string, Tensor>();
  for (const s of paramSpecs(c)) P.set(s.name, tape.param(s.name, s.shape));
  const p = (n: string) => P.get(n)!;

  const ids = tape.input('ids', 'int64', [N]);
  const onehot = tape.input('onehot', 'float32', [N, V]);
  const cos = g.input('cos', 'float32', [B, T, hd]);
  const sin = g.input('sin', 'float32', [B, T, hd]);
  const mask: Value = g.input('mask', 'float32', [B, 1, 1, T, T]);
  const targets = g.input('targets', 'float32', [N, V]);
  const weights = g.input('weights', 'float32', [N, 1]);
  const real = c.moe ? g.input('real', 'float32', [N, 1]) : null;
  const cos5 = g.reshape(cos, [B, 1, 1, T, hd]);
  const sin5 = g.reshape(sin, [B, 1, 1, T, hd]);
  const cos4 = g.reshape(cos, [B, 1, T, hd]);
  const sin4 = g.reshape(sin, [B, 1, T, hd]);

  let h = tape.embedding(p('embed'), ids, onehot); // (N, D)
  let aux: Tensor | null = null; // MoE load-balancing terms
  const loads: Value[] = [];
  for (let l = 0; l < c.layers; l++) {
    const x = tape.rmsNorm(h, p(`l${l}.ln1`), c.eps);
    const qkv = tape.linear(x, p(`l${l}.wqkv`), c.moe ? null : p(`l${l}.bqkv`)); // (N, Q+2K)
    let [q0, k0, v0] = tape.split(qkv, [Q, K, K], 1) as [Tensor, Tensor, Tensor];
    if (c.moe) {
      // Qwen3: RMSNorm over each head's hd values, before RoPE.
      q0 = tape.reshape(tape.rmsNorm(tape.reshape(q0, [N * H, hd]), p(`l${l}.qn`), c.eps), [N, Q]);
      k0 = tape.reshape(tape.rmsNorm(tape.reshape(k0, [N * Hkv, hd]), p(`l${l}.kn`), c.eps), [N, K]);
    }
    let q = tape.transpose(tape.reshape(q0, [B, T, Hkv, G, hd]), [0, 2, 3, 1, 4]); // (B, Hkv, G, T, hd)
    q = tape.rope(q, cos5, sin5);
    q = tape.scale(tape.reshape(q, [B, Hkv, G * T, hd]), 1 / Math.sqrt(hd));
    let k = tape.transpose(tape.reshape(k0, [B, T, Hkv, hd]), [0, 2, 1, 3]); // (B, Hkv, T, hd)
    k = tape.rope(k, cos4, sin4);
    const v = tape.transpose(tape.reshape(v0, [B, T, Hkv, hd]), [0, 2, 1, 3]);
    const ctx = tape.attention(q, k, v, mask, G); // (B, Hkv, G·T, hd)
    const ctx2 = tape.reshape(tape.transpose(tape.reshape(ctx, [B, Hkv, G, T, hd]), [0, 3, 1, 2, 4]), [N, Q]);
    h = tape.add(h, tape.linear(ctx2, p(`l${l}.wo`), null));
    const x2 = tape.rmsNorm(h, p(`l${l}.ln2`), c.eps);
    let w: Tensor | null = null; // MoE routing weights (N, E)
    if (c.moe) {
      const { topK, auxCoef } = c.moe;
      const probs = tape.softmax(tape.linear(x2, p(`l${l}.router`), null)); // (N, E)
      const gate = tape.topkGate(probs, topK, true);
      const lb = tape.loadBalance(probs, gate.sel, real!, topK, auxCoef);
      aux = aux ? tape.add(aux, lb.loss) : lb.loss;
      loads.push(lb.load);
      w = gate.w;
    }
    if (c.moe && !o.denseExperts) h = tape.add(h, tape.moeExperts(x2, p(`l${l}.wgu`), p(`l${l}.wd`), w!, c.moe.topK));
    else {
      let m = tape.swiglu(tape.linear(x2, p(`l${l}.wgu`), null)); // (N, I) or, MoE, (N, E·I)
      if (c.moe) {
        // The dense reference: every expert on every token, weighted (zero outside the top k).
        const { experts: E, expertIntermediate: Ie } = c.moe;
        m = tape.reshape(tape.mul(tape.reshape(m, [N, E, Ie]), tape.reshape(w!, [N, E, 1])), [N, E * Ie]);
      }
      h = tape.add(h, tape.linear(m, p(`l${l}.wd`), null));
    }
  }
  const hf = tape.rmsNorm(h, p('lnf'), c.eps);
  const logits = tape.linear(hf, p('embed'), null); // tied head (N, V)
  const ce = tape.crossEntropy(logits, targets, weights);
  const loss = aux ? tape.add(ce, aux) : ce;
  g.output(loss.v, 'loss', 'float32', []);
  g.output(ce.v, 'ce', 'float32', []);
  loads.forEach((v, l) => g.output(v, `load.${l}`, 'float32', [c.moe!.experts]));
  if (o.logits) g.output(logits.v, 'logits', 'float32', [N, V]);
  if (o.grads !== false) {
    const grads = tape.backward(loss);
    for (const s of paramSpecs(c)) g.output(grads.get(p(s.name))!, `grad.${s.name}`, 'float32', s.shape);
  }
  return g.build();
}
