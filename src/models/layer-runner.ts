/**
 * One decoder layer at a time, weights supplied per call: the pruning pipeline's engine.
 * Two sessions serve every layer: a plain forward, and a capture forward that also returns, per
 * Linear input group, XᵀX over the batch's real tokens (rows scaled by √weight; padding rows 0).
 * A third, created on first use, returns only diag(XᵀX) (Wanda's statistics, OWL's ‖X_j‖²); a
 * fourth, also on first use, runs a dense reference stream beside the pruned one (asymmetric
 * calibration's cross terms).
 */
import { runtimeDefaults, Session, type HostTensor, type RuntimeOptions } from '../runtime/session.ts';
import { attentionMask, ropeFeeds, weightFeeds, type Feeds, type PaddedBatch } from './batch.ts';
import type { ModelConfig } from './config.ts';
import { buildHeadCaptureGraph, buildLayerGraph, captureOutputName, crossOutputName, REFERENCE_PREFIX } from './graphs.ts';
import { INPUT_GROUPS, type ArchSpec, type InputGroup, type LayerWeights } from './spec.ts';

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
    if (hiddenRef.length !== hidden.length)
      throw new RangeError(`reference hidden has ${hiddenRef.length} values, expected ${hidden.length}`);
    const feeds = this.captureFeeds(w, hidden, b, rowWeight);
    for (const [k, v] of Object.entries(ref)) feeds[REFERENCE_PREFIX + k] = v;
    feeds['hidden_ref'] = { data: hiddenRef, dims: [b.B, b.T, this.config.hiddenSize] };
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
    ]);
  }
}

/** A capture session's per-group outputs, by output name. */
function perGroup(res: Record<string, HostTensor>, name: (g: InputGroup) => string): Record<InputGroup, Float32Array> {
  const out = {} as Record<InputGroup, Float32Array>;
  for (const g of INPUT_GROUPS) out[g] = res[name(g)]!.data as Float32Array;
  return out;
}
