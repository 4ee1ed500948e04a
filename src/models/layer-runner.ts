/**
 * One decoder layer at a time, weights supplied per call: the pruning pipeline's engine.
 * MoE layers run as the engine runs them (models/moe.ts): the layer graph up to the routing, then
 * each routed expert through the expert graph; `moeCapture` / `expertCapture` return their
 * statistics separately so the pruner can keep one Hessian per expert.
 * Two sessions serve every layer: a plain forward, and a capture forward that also returns, per
 * Linear input group, XᵀX over the batch's real tokens (rows scaled by √weight; padding rows 0).
 * A third, created on first use, returns only diag(XᵀX) (Wanda's statistics, OWL's ‖X_j‖²); a
 * fourth, also on first use, runs a dense reference stream beside the pruned one (asymmetric
 * calibration's cross terms); MoE layers have two-stream variants of their layer and expert
 * captures for the same purpose.
 */
import { runtimeDefaults, Session, type HostTensor, type RuntimeOptions } from '../runtime/session.ts';
import { attentionMask, ropeFeeds, weightFeeds, type Feeds, type PaddedBatch } from './batch.ts';
import type { ModelConfig } from './config.ts';
import {
  buildExpertGraph,
  buildHeadCaptureGraph,
  buildLayerGraph,
  captureOutputName,
  crossOutputName,
  layerCaptureGroups,
  REFERENCE_PREFIX,
} from './graphs.ts';
import { groupByExpert, runRoutedExperts, type ExpertRows } from './moe.ts';
import { INPUT_GROUPS, type ArchSpec, type ExpertSpec, type InputGroup, type LayerWeights } from './spec.ts';

export type BatchLayout = Pick<PaddedBatch, 'valid' | 'positions' | 'B' | 'T'>;

export class LayerRunner {
  private constructor(
    readonly spec: ArchSpec,
    readonly config: ModelConfig,
    private readonly plain: Session,
    private readonly capturing: Session,
    private readonly runtime: Partial<RuntimeOptions>,
  ) {}

  static async create(spec: ArchSpec, config: ModelConfig, opts: Partial<RuntimeOptions> = {}): Promise<LayerRunner> {
    const o = { ...runtimeDefaults(), ...opts };
    const [plain, capturing] = await Promise.all([
      Session.create('decoder layer', buildLayerGraph(spec, config, { past: false, present: false, capture: false }), o),
      Session.create('decoder layer (capture)', buildLayerGraph(spec, config, { past: false, present: false, capture: true }), o),
    ]);
    return new LayerRunner(spec, config, plain, capturing, o);
  }

  weightFeeds(w: LayerWeights): Feeds {
    return weightFeeds(this.spec, this.config, w);
  }

  private feeds(w: Feeds, hidden: Float32Array, b: BatchLayout): Feeds {
    const c = this.config;
    if (hidden.length !== b.B * b.T * c.hiddenSize) {
      throw new RangeError(`hidden has ${hidden.length} values, expected B·T·D = ${b.B}·${b.T}·${c.hiddenSize}`);
    }
    const { cos, sin } = ropeFeeds(c, b.positions, b.B, b.T);
    return {
      ...w,
      hidden: { data: hidden, dims: [b.B, b.T, c.hiddenSize] },
      cos,
      sin,
      mask: attentionMask(b.valid, b.T, b.T, c.slidingWindow),
    };
  }

  /** The layer's output (B, T, D). */
  async forward(w: Feeds, hidden: Float32Array, b: BatchLayout): Promise<Float32Array> {
    const out = await this.plain.run(this.feeds(w, hidden, b));
    return out['out']!.data as Float32Array;
  }

  /**
   * The layer's output and, per input group, XᵀX (width, width) summed over real tokens with
   * row weights `rowWeight` (B·T): 0 for padding, √w for a sequence of weight w.
   */
  async capture(
    w: Feeds,
    hidden: Float32Array,
    b: BatchLayout,
    rowWeight: Float32Array,
  ): Promise<{ out: Float32Array; xtx: Record<InputGroup, Float32Array> }> {
    const res = await this.capturing.run(this.captureFeeds(w, hidden, b, rowWeight));
    return { out: res['out']!.data as Float32Array, xtx: perGroup(res, captureOutputName) };
  }

  /** A capture's feeds: the layer's, and the row weights (checked against the batch). */
  private captureFeeds(w: Feeds, hidden: Float32Array, b: BatchLayout, rowWeight: Float32Array): Feeds {
    if (rowWeight.length !== b.B * b.T) throw new RangeError(`row weights: ${rowWeight.length} values for ${b.B}·${b.T} tokens`);
    const feeds = this.feeds(w, hidden, b);
    feeds['token_weight'] = { data: rowWeight, dims: [b.B * b.T, 1] };
    return feeds;
  }

  private capturingDiagonal: Session | null = null;

  /** As `capture`, but per input group only diag(XᵀX) (width): no width² GEMM. */
  async captureDiagonal(
    w: Feeds,
    hidden: Float32Array,
    b: BatchLayout,
    rowWeight: Float32Array,
  ): Promise<{ out: Float32Array; xtx: Record<InputGroup, Float32Array> }> {
    const feeds = this.captureFeeds(w, hidden, b, rowWeight);
    this.capturingDiagonal ??= await Session.create(
      'decoder layer (diagonal capture)',
      buildLayerGraph(this.spec, this.config, { past: false, present: false, capture: true, captureDiagonal: true }),
      this.runtime,
    );
    const res = await this.capturingDiagonal.run(feeds);
    return { out: res['out']!.data as Float32Array, xtx: perGroup(res, captureOutputName) };
  }

  private capturingCross: Session | null = null;

  /** A two-stream capture's feeds: the pruned stream's, the reference weights (REFERENCE_PREFIX) and its stream `hidden_ref`. */
  private crossFeeds(w: Feeds, ref: Feeds, hidden: Float32Array, hiddenRef: Float32Array, b: BatchLayout, rowWeight: Float32Array): Feeds {
    if (hiddenRef.length !== hidden.length)
      throw new RangeError(`reference hidden has ${hiddenRef.length} values, expected ${hidden.length}`);
    const feeds = withReference(this.captureFeeds(w, hidden, b, rowWeight), ref);
    feeds['hidden_ref'] = { data: hiddenRef, dims: [b.B, b.T, this.config.hiddenSize] };
    return feeds;
  }

  /**
   * Asymmetric calibration's capture: the layer on the pruned model's stream `hidden` with weights
   * `w` and on the dense model's stream `hiddenRef` with the dense weights `ref`, in one call.
   * Returns both outputs, XᵀX of the pruned stream per input group, and the cross term
   * X_refᵀ·X (width, width) per group, rows weighted alike.
   */
  async captureCross(
    w: Feeds,
    ref: Feeds,
    hidden: Float32Array,
    hiddenRef: Float32Array,
    b: BatchLayout,
    rowWeight: Float32Array,
  ): Promise<{ out: Float32Array; outRef: Float32Array; xtx: Record<InputGroup, Float32Array>; cross: Record<InputGroup, Float32Array> }> {
    const feeds = this.crossFeeds(w, ref, hidden, hiddenRef, b, rowWeight);
    this.capturingCross ??= await Session.create(
      'decoder layer (cross capture)',
      buildLayerGraph(this.spec, this.config, { past: false, present: false, capture: true, captureCross: true }),
      this.runtime,
    );
    const res = await this.capturingCross.run(feeds);
    return {
      out: res['out']!.data as Float32Array,
      outRef: res['out_ref']!.data as Float32Array,
      xtx: perGroup(res, captureOutputName),
      cross: perGroup(res, crossOutputName),
    };
  }

  // ---- MoE layers -----------------------------------------------------------------------------
  private readonly moeSessions = new Map<string, Session>();

  /**
   * A lazily created MoE session: 'layer' / 'layer_capture' / 'layer_capture_diag' /
   * 'layer_capture_cross' / 'expert' / 'expert_capture' / 'expert_capture_diag' /
   * 'expert_capture_cross', per expert count (expert removal runs a layer with
   * fewer experts: the router input's shape differs).
   */
  private async moeSession(ex: ExpertSpec, kind: string): Promise<Session> {
    const key = `${kind}/${ex.count}/${ex.topK}`;
    let s = this.moeSessions.get(key);
    if (!s) {
      const diag = kind.endsWith('_diag');
      const cross = kind.endsWith('_cross');
      const capture = kind.includes('capture');
      const graph = kind.startsWith('expert')
        ? buildExpertGraph(this.config, ex, { capture, captureDiagonal: diag, captureCross: cross })
        : buildLayerGraph(this.spec, this.config, {
            past: false,
            present: false,
            capture,
            captureDiagonal: diag,
            captureCross: cross,
            experts: ex,
          });
      s = await Session.create(`MoE ${kind.replace(/_/g, ' ')}`, graph, this.runtime);
      this.moeSessions.set(key, s);
    }
    return s;
  }

  /**
   * An MoE layer's attention and routing on hidden (B, T, D): the residual h1 (N, D), the experts'
   * input moe_in (N, D) and the routing grouped by expert (padding left out). With `rowWeight`
   * (B·T), also XᵀX (or its diagonal) of attn_in, attn_out and mlp_in over the weighted rows.
   */
  async moeRoute(
    ex: ExpertSpec,
    w: Feeds,
    hidden: Float32Array,
    b: BatchLayout,
    rowWeight: Float32Array | null,
    diagonal = false,
  ): Promise<{ h1: Float32Array; moeIn: Float32Array; groups: ExpertRows[]; xtx: Partial<Record<InputGroup, Float32Array>> }> {
    const feeds = rowWeight ? this.captureFeeds(w, hidden, b, rowWeight) : this.feeds(w, hidden, b);
    const session = await this.moeSession(ex, rowWeight ? (diagonal ? 'layer_capture_diag' : 'layer_capture') : 'layer');
    const res = await session.run(feeds);
    const xtx: Partial<Record<InputGroup, Float32Array>> = {};
    if (rowWeight) for (const g of layerCaptureGroups(true)) xtx[g] = res[captureOutputName(g)]!.data as Float32Array;
    return { ...routed(res, '', ex, b), xtx };
  }

  /**
   * Asymmetric calibration's MoE capture: the layer up to the routing on the pruned model's stream
   * `hidden` with weights `w` and on the dense model's stream `hiddenRef` with the dense weights
   * `ref`, in one call, each stream routed by its own router. Returns both streams' residuals,
   * expert inputs and routing, XᵀX of the pruned stream and X_refᵀ·X for attn_in, attn_out and
   * mlp_in, rows weighted by `rowWeight` (B·T).
   */
  async moeRouteCross(
    ex: ExpertSpec,
    w: Feeds,
    ref: Feeds,
    hidden: Float32Array,
    hiddenRef: Float32Array,
    b: BatchLayout,
    rowWeight: Float32Array,
  ): Promise<{
    own: MoeRouting;
    ref: MoeRouting;
    xtx: Partial<Record<InputGroup, Float32Array>>;
    cross: Partial<Record<InputGroup, Float32Array>>;
  }> {
    const feeds = this.crossFeeds(w, ref, hidden, hiddenRef, b, rowWeight);
    const res = await (await this.moeSession(ex, 'layer_capture_cross')).run(feeds);
    const xtx: Partial<Record<InputGroup, Float32Array>> = {};
    const cross: Partial<Record<InputGroup, Float32Array>> = {};
    for (const g of layerCaptureGroups(true)) {
      xtx[g] = res[captureOutputName(g)]!.data as Float32Array;
      cross[g] = res[crossOutputName(g)]!.data as Float32Array;
    }
    return { own: routed(res, '', ex, b), ref: routed(res, '_ref', ex, b), xtx, cross };
  }

  /** Expert j's weighted output on its rows: x (n, D), gateW (n) → (n, D). */
  async expertForward(ex: ExpertSpec, w: Feeds, x: Float32Array, gateW: Float32Array): Promise<Float32Array> {
    const D = this.config.hiddenSize;
    const s = await this.moeSession(ex, 'expert');
    const res = await s.run({ ...w, x: { data: x, dims: [gateW.length, D] }, gate_w: { data: gateW, dims: [gateW.length, 1] } });
    return res['y']!.data as Float32Array;
  }

  /** As expertForward, and XᵀX (or its diagonal) of the expert's mlp_in and mlp_out over rows weighted by rowWeight (n). */
  async expertCapture(
    ex: ExpertSpec,
    w: Feeds,
    x: Float32Array,
    gateW: Float32Array,
    rowWeight: Float32Array,
    diagonal = false,
  ): Promise<{ y: Float32Array; xtx: Record<'mlp_in' | 'mlp_out', Float32Array> }> {
    const D = this.config.hiddenSize;
    const n = gateW.length;
    if (rowWeight.length !== n) throw new RangeError(`expert row weights: ${rowWeight.length} values for ${n} rows`);
    const s = await this.moeSession(ex, diagonal ? 'expert_capture_diag' : 'expert_capture');
    const res = await s.run({
      ...w,
      x: { data: x, dims: [n, D] },
      gate_w: { data: gateW, dims: [n, 1] },
      token_weight: { data: rowWeight, dims: [n, 1] },
    });
    return {
      y: res['y']!.data as Float32Array,
      xtx: {
        mlp_in: res[captureOutputName('mlp_in')]!.data as Float32Array,
        mlp_out: res[captureOutputName('mlp_out')]!.data as Float32Array,
      },
    };
  }

  /**
   * Asymmetric calibration's expert capture: expert j on its routed rows of the pruned stream `x`
   * (n, D) with weights `w` and on the same rows of the reference stream `xRef` with the reference
   * weights `ref`; XᵀX of the pruned stream's mlp_in and mlp_out and the cross terms X_refᵀ·X,
   * rows weighted by rowWeight (n).
   */
  async expertCaptureCross(
    ex: ExpertSpec,
    w: Feeds,
    ref: Feeds,
    x: Float32Array,
    xRef: Float32Array,
    rowWeight: Float32Array,
  ): Promise<{ xtx: Record<'mlp_in' | 'mlp_out', Float32Array>; cross: Record<'mlp_in' | 'mlp_out', Float32Array> }> {
    const D = this.config.hiddenSize;
    const n = rowWeight.length;
    if (x.length !== n * D || xRef.length !== n * D)
      throw new RangeError(`expert rows: ${x.length} / ${xRef.length} values for ${n}·${D} (pruned / reference)`);
    const feeds = withReference(
      {
        ...w,
        x: { data: x, dims: [n, D] },
        x_ref: { data: xRef, dims: [n, D] },
        gate_w: { data: new Float32Array(n), dims: [n, 1] },
        token_weight: { data: rowWeight, dims: [n, 1] },
      },
      ref,
    );
    const res = await (await this.moeSession(ex, 'expert_capture_cross')).run(feeds);
    const get = (name: string) => res[name]!.data as Float32Array;
    return {
      xtx: { mlp_in: get(captureOutputName('mlp_in')), mlp_out: get(captureOutputName('mlp_out')) },
      cross: { mlp_in: get(crossOutputName('mlp_in')), mlp_out: get(crossOutputName('mlp_out')) },
    };
  }

  /** An MoE layer's output (B, T, D): attention, routing, and the routed experts (`experts[j]` the expert feeds). */
  async moeForward(ex: ExpertSpec, w: Feeds, experts: readonly Feeds[], hidden: Float32Array, b: BatchLayout): Promise<Float32Array> {
    const { h1, moeIn, groups } = await this.moeRoute(ex, w, hidden, b, null);
    await runRoutedExperts(groups, moeIn, this.config.hiddenSize, h1, (j, xj, gw) => this.expertForward(ex, experts[j]!, xj, gw));
    return h1;
  }

  private headCapture: Session | null = null;
  private headCaptureDiagonal: Session | null = null;

  /** XᵀX (D, D) of the LM head's input (final-normed hidden rows (N, D), weighted by rowWeight), or its diagonal (D). */
  async captureHead(normW: Float32Array, hidden: Float32Array, rowWeight: Float32Array, diagonal = false): Promise<Float32Array> {
    const D = this.config.hiddenSize;
    const N = rowWeight.length;
    if (hidden.length !== N * D) throw new RangeError(`hidden has ${hidden.length} values, expected ${N}·${D}`);
    const session = diagonal
      ? (this.headCaptureDiagonal ??= await Session.create(
          'lm head (diagonal capture)',
          buildHeadCaptureGraph(this.config, true),
          this.runtime,
        ))
      : (this.headCapture ??= await Session.create('lm head (capture)', buildHeadCaptureGraph(this.config), this.runtime));
    const res = await session.run({
      hidden: { data: hidden, dims: [N, D] },
      w_norm: { data: normW, dims: [D] },
      token_weight: { data: rowWeight, dims: [N, 1] },
    });
    return res['xtx']!.data as Float32Array;
  }

  async release(): Promise<void> {
    await Promise.all([
      this.plain.release(),
      this.capturing.release(),
      this.capturingDiagonal?.release(),
      this.capturingCross?.release(),
      this.headCapture?.release(),
      this.headCaptureDiagonal?.release(),
      ...[...this.moeSessions.values()].map((s) => s.release()),
    ]);
  }
}

/** `feeds` with the reference weights `ref` added under REFERENCE_PREFIX (a two-stream graph's inputs). */
function withReference(feeds: Feeds, ref: Feeds): Feeds {
  for (const [k, v] of Object.entries(ref)) feeds[REFERENCE_PREFIX + k] = v;
  return feeds;
}

/** One stream's residual after attention, experts' input and routing in an MoE layer. */
export interface MoeRouting {
  /** The residual after attention (N, D): the layer's output once the routed experts are added. */
  h1: Float32Array;
  /** The experts' input (N, D). */
  moeIn: Float32Array;
  /** The routing grouped by expert, padding left out. */
  groups: ExpertRows[];
}

/** An MoE layer session's routing outputs of one stream (`suffix` '' or '_ref'). */
function routed(res: Record<string, HostTensor>, suffix: string, ex: ExpertSpec, b: BatchLayout): MoeRouting {
  const groups = groupByExpert(
    res[`route_idx${suffix}`]!.data as BigInt64Array,
    res[`route_w${suffix}`]!.data as Float32Array,
    b.B * b.T,
    ex.topK,
    ex.count,
    (n) => !b.valid[Math.floor(n / b.T)]![n % b.T],
  );
  return { h1: res[`h1${suffix}`]!.data as Float32Array, moeIn: res[`moe_in${suffix}`]!.data as Float32Array, groups };
}

/** A capture session's per-group outputs, by output name. */
function perGroup(res: Record<string, HostTensor>, name: (g: InputGroup) => string): Record<InputGroup, Float32Array> {
  const out = {} as Record<InputGroup, Float32Array>;
  for (const g of INPUT_GROUPS) out[g] = res[name(g)]!.data as Float32Array;
  return out;
}
