/**
 * A small reverse-mode autodiff over src/runtime/graph.ts: every op emits its forward ONNX nodes
 * and records a closure that emits its hand-derived backward nodes. `backward(loss)` walks the
 * tape in reverse and returns, per parameter, the ONNX value holding ∂loss/∂param — so one
 * ONNX graph computes the loss and every gradient, with parameters as graph inputs.
 *
 * All shapes are static (fixed batch shapes), which keeps broadcasting reductions trivial.
 * Only the ops the Qwen2 decoder needs are here; several are fused (RMSNorm, RoPE, attention,
 * SwiGLU, cross-entropy) so their backward is a few big ops instead of many small ones.
 */
import { GraphBuilder, type Value } from '../../src/runtime/graph.ts';

export interface Tensor {
  readonly id: number;
  readonly v: Value;
  readonly shape: readonly number[];
  /** Whether any parameter upstream needs this tensor's gradient. */
  readonly needsGrad: boolean;
}

type Contribution = [Tensor, Value];

interface TapeNode {
  outs: Tensor[];
  ins: Tensor[];
  /** Given each output's gradient (null when nothing flowed back), the inputs' contributions. */
  back: (dys: (Value | null)[]) => Contribution[];
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

function transposeSquare(m: Float32Array, n: number): Float32Array {
  const t = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) t[j * n + i] = m[i * n + j]!;
  return t;
}

export class Tape {
  readonly g: GraphBuilder;
  private readonly nodes: TapeNode[] = [];
  private nextId = 0;
  readonly params: Tensor[] = [];

  constructor(name: string) {
    this.g = new GraphBuilder(name);
  }

  private make(v: Value, shape: readonly number[], needsGrad: boolean): Tensor {
    return { id: this.nextId++, v, shape: [...shape], needsGrad };
  }

  /** A trainable float32 graph input. */
  param(name: string, shape: number[]): Tensor {
    const t = this.make(this.g.input(name, 'float32', shape), shape, true);
    this.params.push(t);
    return t;
  }

  /** A non-trainable graph input. */
  input(name: string, elem: 'float32' | 'int64', shape: number[]): Tensor {
    return this.make(this.g.input(name, elem, shape), shape, false);
  }

  /** Wrap a value computed outside the tape (no gradient). */
  constant(v: Value, shape: readonly number[]): Tensor {
    return this.make(v, shape, false);
  }

  private record(outs: Tensor[], ins: Tensor[], back: TapeNode['back']): void {
    this.nodes.push({ outs, ins, back });
  }

  private any(...xs: Tensor[]): boolean {
    return xs.some((x) => x.needsGrad);
  }

  // ---- helpers on raw values -----------------------------------------------------------------
  private reduceSum(x: Value, axes: number[], keepdims: boolean): Value {
    return this.g.op('ReduceSum', [x, this.g.constI64(axes)], { keepdims: keepdims ? 1 : 0 });
  }

  /** Sum a broadcast gradient of shape `from` down to `to` (numpy broadcasting rules). */
  private unbroadcast(dy: Value, from: readonly number[], to: readonly number[]): Value {
    if (from.length === to.length && from.every((d, i) => d === to[i])) return dy;
    const offset = from.length - to.length;
    const axes: number[] = [];
    for (let i = 0; i < from.length; i++) {
      const t = i < offset ? 1 : to[i - offset]!;
      if (t === 1 && from[i] !== 1) axes.push(i);
    }
    let r = axes.length ? this.reduceSum(dy, axes, true) : dy;
    if (offset > 0 || axes.length) r = this.g.reshape(r, [...to]);
    return r;
  }

  private static broadcastShape(a: readonly number[], b: readonly number[]): number[] {
    const n = Math.max(a.length, b.length);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = a[a.length - n + i] ?? 1;
      const y = b[b.length - n + i] ?? 1;
      if (x !== y && x !== 1 && y !== 1) throw new Error(`broadcast: [${a}] vs [${b}]`);
      out.push(Math.max(x, y));
    }
    return out;
  }

  // ---- elementwise ---------------------------------------------------------------------------
  add(a: Tensor, b: Tensor): Tensor {
    const shape = Tape.broadcastShape(a.shape, b.shape);
    const y = this.make(this.g.add(a.v, b.v), shape, this.any(a, b));
    if (y.needsGrad) {
      this.record([y], [a, b], ([dy]) => {
        const out: Contribution[] = [];
        if (a.needsGrad) out.push([a, this.unbroadcast(dy!, shape, a.shape)]);
        if (b.needsGrad) out.push([b, this.unbroadcast(dy!, shape, b.shape)]);
        return out;
      });
    }
    return y;
  }

  mul(a: Tensor, b: Tensor): Tensor {
    const shape = Tape.broadcastShape(a.shape, b.shape);
    const y = this.make(this.g.mul(a.v, b.v), shape, this.any(a, b));
    if (y.needsGrad) {
      this.record([y], [a, b], ([dy]) => {
        const out: Contribution[] = [];
        if (a.needsGrad) out.push([a, this.unbroadcast(this.g.mul(dy!, b.v), shape, a.shape)]);
        if (b.needsGrad) out.push([b, this.unbroadcast(this.g.mul(dy!, a.v), shape, b.shape)]);
        return out;
      });
    }
    return y;
  }

  scale(a: Tensor, s: number): Tensor {
    const c = this.g.scalar(s);
    const y = this.make(this.g.mul(a.v, c), a.shape, a.needsGrad);
    if (y.needsGrad) this.record([y], [a], ([dy]) => [[a, this.g.mul(dy!, c)]]);
    return y;
  }

  // ---- shape ---------------------------------------------------------------------------------
  reshape(x: Tensor, shape: number[]): Tensor {
    if (numel(shape) !== numel(x.shape)) throw new Error(`reshape [${x.shape}] → [${shape}]`);
    const y = this.make(this.g.reshape(x.v, shape), shape, x.needsGrad);
    if (y.needsGrad) this.record([y], [x], ([dy]) => [[x, this.g.reshape(dy!, [...x.shape])]]);
    return y;
  }

  transpose(x: Tensor, perm: number[]): Tensor {
    const shape = perm.map((p) => x.shape[p]!);
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    const y = this.make(this.g.transpose(x.v, perm), shape, x.needsGrad);
    if (y.needsGrad) this.record([y], [x], ([dy]) => [[x, this.g.transpose(dy!, inv)]]);
    return y;
  }

  /** Split x along `axis` into parts of the given sizes. */
  split(x: Tensor, sizes: number[], axis: number): Tensor[] {
    const ax = axis < 0 ? x.shape.length + axis : axis;
    if (sizes.reduce((a, b) => a + b, 0) !== x.shape[ax]) throw new Error('split sizes');
    const vals = this.g.node('Split', [x.v, this.g.constI64(sizes)], { axis: ax }, sizes.length, 'split');
    const outs = vals.map((v, i) => {
      const s = [...x.shape];
      s[ax] = sizes[i]!;
      return this.make(v, s, x.needsGrad);
    });
    if (x.needsGrad) {
      this.record(outs, [x], (dys) => {
        const parts = dys.map((d, i) => d ?? this.zeros(outs[i]!.shape));
        return [[x, this.g.concat(parts, ax)]];
      });
    }
    return outs;
  }

  private zeros(shape: readonly number[]): Value {
    return this.g.constF32(new Float32Array(numel(shape)), [...shape], 'zeros');
  }

  // ---- linear algebra ------------------------------------------------------------------------
  /** y = x·Wᵀ (+ b). x (N, in), W (out, in), b (out). */
  linear(x: Tensor, W: Tensor, b: Tensor | null): Tensor {
    const [N, inF] = x.shape as [number, number];
    const [outF, inW] = W.shape as [number, number];
    if (inF !== inW || x.shape.length !== 2) throw new Error(`linear: x [${x.shape}] W [${W.shape}]`);
    const yv = this.g.gemm(x.v, W.v, b ? b.v : null, { transB: true });
    const y = this.make(yv, [N, outF], this.any(x, W, ...(b ? [b] : [])));
    if (y.needsGrad) {
      this.record([y], b ? [x, W, b] : [x, W], ([dy]) => {
        const out: Contribution[] = [];
        if (x.needsGrad) out.push([x, this.g.gemm(dy!, W.v, null)]); // (N, out)·(out, in)
        if (W.needsGrad) out.push([W, this.g.gemm(dy!, x.v, null, { transA: true })]); // (out, N)·(N, in)
        if (b && b.needsGrad) out.push([b, this.reduceSum(dy!, [0], false)]);
        return out;
      });
    }
    return y;
  }

  /** Embedding lookup E[ids]; the backward uses the (N, V) one-hot of ids: dE = onehotᵀ·dy. */
  embedding(E: Tensor, ids: Tensor, onehot: Tensor): Tensor {
    const N = ids.shape[0]!;
    const D = E.shape[1]!;
    const y = this.make(this.g.gather(E.v, ids.v, 0), [N, D], E.needsGrad);
    if (y.needsGrad) this.record([y], [E], ([dy]) => [[E, this.g.gemm(onehot.v, dy!, null, { transA: true })]]);
    return y;
  }

  // ---- fused blocks --------------------------------------------------------------------------
  /** HF RMSNorm over the last axis of x (N, D) with weight w (D). */
  rmsNorm(x: Tensor, w: Tensor, eps: number): Tensor {
    const g = this.g;
    const ms = g.reduceMean(g.mul(x.v, x.v), [-1]); // (N, 1)
    const r = g.div(g.scalar(1), g.sqrt(g.add(ms, g.scalar(eps)))); // (N, 1)
    const xh = g.mul(x.v, r); // (N, D)
    const y = this.make(g.mul(xh, w.v), x.shape, this.any(x, w));
    if (y.needsGrad) {
      this.record([y], [x, w], ([dy]) => {
        const out: Contribution[] = [];
        if (w.needsGrad) out.push([w, this.reduceSum(g.mul(dy!, xh), [0], false)]);
        if (x.needsGrad) {
          const dxh = g.mul(dy!, w.v);
          const m = g.reduceMean(g.mul(dxh, xh), [-1]); // (N, 1)
          out.push([x, g.mul(r, g.sub(dxh, g.mul(xh, m)))]);
        }
        return out;
      });
    }
    return y;
  }

  /** RoPE rotate-half on the last axis: x·cos + rotate_half(x)·sin (cos/sin broadcast, no grad). */
  rope(x: Tensor, cos: Value, sin: Value): Tensor {
    const g = this.g;
    const hd = x.shape[x.shape.length - 1]!;
    const half = hd / 2;
    // rotate_half as a matmul: rot(x) = x·R with R[i+half, i] = −1, R[i, i+half] = 1 (x row vector);
    // its transpose maps [z1, z2] → [z2, −z1].
    const R = new Float32Array(hd * hd);
    for (let i = 0; i < half; i++) {
      R[(i + half) * hd + i] = -1;
      R[i * hd + i + half] = 1;
    }
    const Rv = g.constF32(R, [hd, hd], 'rot');
    const rot = (t: Value) => g.matmul(t, Rv);
    const rotT = (t: Value) => g.matmul(t, g.constF32(transposeSquare(R, hd), [hd, hd], 'rotT'));
    const y = this.make(g.add(g.mul(x.v, cos), g.mul(rot(x.v), sin)), x.shape, x.needsGrad);
    if (y.needsGrad) this.record([y], [x], ([dy]) => [[x, g.add(g.mul(dy!, cos), rotT(g.mul(dy!, sin)))]]);
    return y;
  }

  /**
   * GQA attention. q (B, Hkv, G·T, hd) already scaled; k, v (B, Hkv, T, hd);
   * mask (B, 1, 1, T, T) additive. Returns ctx (B, Hkv, G·T, hd).
   */
  attention(q: Tensor, k: Tensor, v: Tensor, mask: Value, G: number): Tensor {
    const g = this.g;
    const [B, Hkv, GT, hd] = q.shape as [number, number, number, number];
    const T = k.shape[2]!;
    const s = g.matmul(q.v, g.transpose(k.v, [0, 1, 3, 2])); // (B, Hkv, GT, T)
    const s5 = g.reshape(s, [B, Hkv, G, T, T]);
    const p = g.reshape(g.softmax(g.add(s5, mask), -1), [B, Hkv, GT, T]);
    const ctx = g.matmul(p, v.v); // (B, Hkv, GT, hd)
    const y = this.make(ctx, [B, Hkv, GT, hd], this.any(q, k, v));
    if (y.needsGrad) {
      this.record([y], [q, k, v], ([dy]) => {
        const out: Contribution[] = [];
        if (v.needsGrad) out.push([v, g.matmul(g.transpose(p, [0, 1, 3, 2]), dy!)]); // (B,Hkv,T,hd)
        const dp = g.matmul(dy!, g.transpose(v.v, [0, 1, 3, 2])); // (B, Hkv, GT, T)
        // Σ_j p_ij·dp_ij = Σ_j p_ij (dctx_i·v_j) = dctx_i·ctx_i: a reduction over hd, not T.
        const rs = this.reduceSum(g.mul(dy!, ctx), [-1], true); // (B, Hkv, GT, 1)
        const ds = g.mul(p, g.sub(dp, rs)); // (B, Hkv, GT, T)
        if (q.needsGrad) out.push([q, g.matmul(ds, k.v)]);
        if (k.needsGrad) out.push([k, g.matmul(g.transpose(ds, [0, 1, 3, 2]), q.v)]);
        return out;
      });
    }
    return y;
  }

  /** SwiGLU on gu (N, 2I) = [gate | up]: silu(gate)·up → (N, I). */
  swiglu(gu: Tensor): Tensor {
    const g = this.g;
    const [N, I2] = gu.shape as [number, number];
    const I = I2 / 2;
    const [gate, up] = g.node('Split', [gu.v, g.constI64([I, I])], { axis: 1 }, 2, 'split') as [Value, Value];
    const sg = g.sigmoid(gate);
    const silu = g.mul(gate, sg);
    const y = this.make(g.mul(silu, up), [N, I], gu.needsGrad);
    if (y.needsGrad) {
      this.record([y], [gu], ([dy]) => {
        // d silu/dg = s·(1 + g·(1 − s))
        const dsilu = g.mul(sg, g.add(g.scalar(1), g.mul(gate, g.sub(g.scalar(1), sg))));
        const dgate = g.mul(g.mul(dy!, up), dsilu);
        const dup = g.mul(dy!, silu);
        return [[gu, g.concat([dgate, dup], 1)]];
      });
    }
    return y;
  }

  /** Softmax over the last axis; backward dx = y·(dy − Σ dy·y). */
  softmax(x: Tensor): Tensor {
    const g = this.g;
    const yv = g.softmax(x.v, -1);
    const y = this.make(yv, x.shape, x.needsGrad);
    if (y.needsGrad) this.record([y], [x], ([dy]) => [[x, g.mul(yv, g.sub(dy!, this.reduceSum(g.mul(dy!, yv), [-1], true)))]]);
    return y;
  }

  /**
   * Mixture-of-Experts routing weights from router probabilities p (N, E): keep each row's k
   * largest, zero the rest, and (with `normalize`, Qwen3-MoE's norm_topk_prob) divide the kept
   * ones by their sum. Returns the weights (N, E) and the selection mask (N, E, 1 where kept; no
   * gradient). The selection is a constant of the backward (as in every top-k router):
   * with q = p·sel and s = Σ q, w = q/s gives dq = (dw − Σ dw·w)/s, and dp = dq·sel.
   */
  topkGate(p: Tensor, k: number, normalize: boolean): { w: Tensor; sel: Value } {
    const g = this.g;
    const [, E] = p.shape as [number, number];
    if (!(k >= 1 && k <= E)) throw new Error(`topkGate: k ${k} for ${E} experts`);
    const [vals] = g.node('TopK', [p.v, g.constI64([k])], { axis: -1, largest: 1, sorted: 1 }, 2, 'topk') as [Value, Value];
    const kth = g.slice(vals, [k - 1], [k], [-1]); // (N, 1)
    const sel = g.op('Cast', [g.op('GreaterOrEqual', [p.v, kth])], { to: 1 }); // (N, E) float
    const q = g.mul(p.v, sel);
    const s = normalize ? this.reduceSum(q, [-1], true) : null; // (N, 1)
    const wv = s ? g.div(q, s) : q;
    const w = this.make(wv, p.shape, p.needsGrad);
    if (w.needsGrad) {
      this.record([w], [p], ([dw]) => {
        const dq = s ? g.div(g.sub(dw!, this.reduceSum(g.mul(dw!, wv), [-1], true)), s) : dw!;
        return [[p, g.mul(dq, sel)]];
      });
    }
    return { w, sel };
  }

  /**
   * A Mixture-of-Experts MLP computed sparsely: each expert runs only on the rows routed to it.
   * x (N, D), wgu (E·2I, D) = [every expert's gate rows | every expert's up rows] (expert e's
   * gate rows e·I…, up rows E·I + e·I…), wd (D, E·I) (expert e's columns e·I…), w (N, E) the routing
   * weights from topkGate (zero outside each row's top k). Returns Σ_e w[n, e]·down_e(silu(gate_e
   * x)·up_e x) (N, D): exactly the dense layer `linear(swiglu(linear(x, wgu)) · w, wd)` computes,
   * at k/E of its expert flops.
   *
   * The N·k routing slots (each row's k experts, TopK of w) are sorted by expert (a stable sort
   * by the key expert·S + slot through TopK), their rows gathered, cut into one segment per expert
   * (Split by the routed counts: dynamic sizes, an expert without rows gets an empty one), run,
   * weighted, and put back in slot order (the inverse permutation) and summed over each row's k
   * slots. The backward walks the same segments: per expert the SwiGLU MLP's gradients on its rows,
   * dw at the slots (no gradient through the selection, as in topkGate), dx gathered back.
   */
  moeExperts(x: Tensor, wgu: Tensor, wd: Tensor, w: Tensor, k: number): Tensor {
    const g = this.g;
    const [N, D] = x.shape as [number, number];
    const [, E] = w.shape as [number, number];
    const I = wd.shape[1]! / E;
    if (!(Number.isInteger(I) && wgu.shape[0] === 2 * E * I && wgu.shape[1] === D && wd.shape[0] === D))
      throw new Error(`moeExperts: x [${x.shape}] wgu [${wgu.shape}] wd [${wd.shape}] w [${w.shape}]`);
    const S = N * k;
    const i64 = (v: number) => g.constI64([v], []);
    const arange = g.constI64(
      Array.from({ length: S }, (_, i) => i),
      [S],
      'slots',
    );
    // The slots: each row's k experts and weights (N, k), flattened row-major (slot = n·k + r).
    const [wk, idx] = g.node('TopK', [w.v, g.constI64([k])], { axis: -1, largest: 1, sorted: 1 }, 2, 'topk') as [Value, Value];
    const idxFlat = g.reshape(idx, [S]);
    const key = g.op('Cast', [g.add(g.mul(idxFlat, i64(S)), arange)], { to: 1 }); // < E·S: exact in f32
    const [, perm] = g.node('TopK', [key, g.constI64([S])], { axis: 0, largest: 0, sorted: 1 }, 2, 'sort') as [Value, Value];
    const inv = g.op('ScatterElements', [g.constI64(new Array<number>(S).fill(0), [S], 'zeros_i64'), perm, arange], { axis: 0 });
    const tok = g.op('Div', [perm, i64(k)]); // sorted slot → its row
    const wS = g.reshape(g.gather(g.reshape(wk, [S]), perm, 0), [S, 1]);
    const counts = this.reduceSum(
      g.op(
        'Cast',
        [
          g.op('Equal', [
            g.reshape(idxFlat, [S, 1]),
            g.constI64(
              Array.from({ length: E }, (_, e) => e),
              [1, E],
            ),
          ]),
        ],
        { to: 7 },
      ),
      [0],
      false,
    ); // (E) int64
    const segments = (v: Value) => g.node('Split', [v, counts], { axis: 0 }, E, 'segments');
    const xs = segments(g.gather(x.v, tok, 0)); // E × (n_e, D)
    const wg = g.node('Split', [wgu.v, g.constI64(new Array<number>(2 * E).fill(I))], { axis: 0 }, 2 * E, 'wgu');
    const wdE = g.node('Split', [wd.v, g.constI64(new Array<number>(E).fill(I))], { axis: 1 }, E, 'wd');
    const fwd = xs.map((xe, e) => {
      const ge = g.gemm(xe, wg[e]!, null, { transB: true }); // (n_e, I)
      const ue = g.gemm(xe, wg[E + e]!, null, { transB: true });
      const sg = g.sigmoid(ge);
      const silu = g.mul(ge, sg);
      const ae = g.mul(silu, ue);
      return { ge, ue, sg, silu, ae, ye: g.gemm(ae, wdE[e]!, null, { transB: true }) }; // (n_e, D)
    });
    const ys = g.concat(
      fwd.map((f) => f.ye),
      0,
    ); // (S, D), sorted
    const perRow = (sorted: Value) => this.reduceSum(g.reshape(g.gather(sorted, inv, 0), [N, k, D]), [1], false); // (N, D)
    const y = this.make(perRow(g.mul(ys, wS)), [N, D], this.any(x, wgu, wd, w));
    if (y.needsGrad) {
      this.record([y], [x, wgu, wd, w], ([dy]) => {
        const out: Contribution[] = [];
        const dys = g.gather(dy!, tok, 0); // (S, D), sorted
        if (w.needsGrad) {
          const dwS = this.reduceSum(g.mul(dys, ys), [1], false); // (S)
          const dwk = g.reshape(g.gather(dwS, inv, 0), [N, k]);
          out.push([w, g.op('ScatterElements', [this.zeros([N, E]), idx, dwk], { axis: 1 })]);
        }
        const dye = segments(g.mul(dys, wS));
        const back = fwd.map((f, e) => {
          const dae = g.gemm(dye[e]!, wdE[e]!, null); // (n_e, I)
          const dsilu = g.mul(f.sg, g.add(g.scalar(1), g.mul(f.ge, g.sub(g.scalar(1), f.sg))));
          const dge = g.mul(g.mul(dae, f.ue), dsilu);
          const due = g.mul(dae, f.silu);
          return {
            dwd: g.gemm(dye[e]!, f.ae, null, { transA: true }), // (D, I)
            dwg: g.gemm(dge, xs[e]!, null, { transA: true }), // (I, D)
            dwu: g.gemm(due, xs[e]!, null, { transA: true }),
            dx: g.add(g.gemm(dge, wg[e]!, null), g.gemm(due, wg[E + e]!, null)), // (n_e, D)
          };
        });
        if (x.needsGrad)
          out.push([
            x,
            perRow(
              g.concat(
                back.map((b) => b.dx),
                0,
              ),
            ),
          ]);
        if (wgu.needsGrad) out.push([wgu, g.concat([...back.map((b) => b.dwg), ...back.map((b) => b.dwu)], 0)]);
        if (wd.needsGrad)
          out.push([
            wd,
            g.concat(
              back.map((b) => b.dwd),
              1,
            ),
          ]);
        return out;
      });
    }
    return y;
  }

  /**
   * Switch-Transformer load-balancing loss of one MoE layer: coef · E · Σ_j f_j · P_j, where
   * f_j = share of the real tokens' k routing slots that went to expert j (from `sel`, no
   * gradient) and P_j = mean router probability of j over the real tokens. `real` (N, 1) holds
   * 1/n_real for real tokens and 0 for padding. Returns the loss (scalar) and f (E) for logging.
   */
  loadBalance(p: Tensor, sel: Value, real: Value, k: number, coef: number): { loss: Tensor; load: Value } {
    const g = this.g;
    const E = p.shape[1]!;
    const load = g.div(this.reduceSum(g.mul(sel, real), [0], false), g.scalar(k)); // f (E)
    const P = this.reduceSum(g.mul(p.v, real), [0], false); // (E)
    const c = coef * E;
    const lv = g.mul(this.reduceSum(g.mul(load, P), [0], false), g.scalar(c));
    const loss = this.make(lv, [], p.needsGrad);
    if (loss.needsGrad) this.record([loss], [p], ([dy]) => [[p, g.mul(g.mul(g.mul(real, load), g.scalar(c)), dy!)]]);
    return { loss, load };
  }

  /**
   * Weighted cross-entropy: loss = −Σ_n Σ_v Y[n,v]·log_softmax(logits)[n,v], where Y (N, V) holds
   * w_n at the target column (w_n = 0 for tokens without a target; Σ w_n = 1 for a mean).
   * Returns a scalar; its backward is softmax·w − Y, with w_n = Σ_v Y[n, v] passed as (N, 1).
   */
  crossEntropy(logits: Tensor, Y: Value, w: Value): Tensor {
    const g = this.g;
    const lsm = g.op('LogSoftmax', [logits.v], { axis: -1 });
    const loss = g.neg(this.reduceSum(g.mul(Y, lsm), [0, 1], false));
    const y = this.make(loss, [], logits.needsGrad);
    if (y.needsGrad) {
      this.record([y], [logits], ([dy]) => [[logits, g.mul(g.sub(g.mul(g.op('Exp', [lsm]), w), Y), dy!)]]);
    }
    return y;
  }

  // ---- backward ------------------------------------------------------------------------------
  /** Emit the backward pass; returns ∂loss/∂p for every param (zeros when p does not affect loss). */
  backward(loss: Tensor): Map<Tensor, Value> {
    const g = this.g;
    const acc = new Map<number, Value[]>();
    acc.set(loss.id, [g.constF32([1], [], 'one')]);
    const total = (t: Tensor): Value | null => {
      const parts = acc.get(t.id);
      if (!parts || parts.length === 0) return null;
      if (parts.length === 1) return parts[0]!;
      const s = g.op('Sum', parts);
      acc.set(t.id, [s]);
      return s;
    };
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i]!;
      const dys = node.outs.map(total);
      if (dys.every((d) => d === null)) continue;
      for (const [t, d] of node.back(dys)) {
        if (!t.needsGrad) continue;
        const list = acc.get(t.id);
        if (list) list.push(d);
        else acc.set(t.id, [d]);
      }
    }
    const grads = new Map<Tensor, Value>();
    for (const p of this.params) grads.set(p, total(p) ?? this.zeros(p.shape));
    return grads;
  }
}
