/** AdamW with decoupled weight decay, a warmup + cosine LR schedule and global-norm clipping. */
import type { ParamSpec } from './model.ts';

export interface OptimConfig {
  lr: number;
  minLr: number;
  warmup: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clip: number;
}

export const DEFAULT_OPTIM: OptimConfig = {
  lr: 2e-3,
  minLr: 2e-4,
  warmup: 200,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.05,
  clip: 1.0,
};

/** LR at (0-based) step: linear warmup to lr, then cosine down to minLr at totalSteps. */
export function lrAt(o: OptimConfig, step: number, totalSteps: number): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  const t = Math.min(1, (step - o.warmup) / Math.max(1, totalSteps - o.warmup));
  return o.minLr + 0.5 * (o.lr - o.minLr) * (1 + Math.cos(Math.PI * t));
}

export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** 1 where weight decay applies. */
  private readonly decay: Uint8Array;

  constructor(
    readonly o: OptimConfig,
    specs: ParamSpec[],
    size: number,
    m?: Float32Array,
    v?: Float32Array,
  ) {
    this.m = m ?? new Float32Array(size);
    this.v = v ?? new Float32Array(size);
    this.decay = new Uint8Array(size);
    let off = 0;
    for (const s of specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      if (s.decay) this.decay.fill(1, off, off + n);
      off += n;
    }
  }

  /** Clip the gradient in place to global norm `clip`; returns the norm before clipping. */
  static clip(grad: Float32Array, clip: number): number {
    let ss = 0;
    for (let i = 0; i < grad.length; i++) ss += grad[i]! * grad[i]!;
    const norm = Math.sqrt(ss);
    if (norm > clip) {
      const s = clip / norm;
      for (let i = 0; i < grad.length; i++) grad[i]! *= s;
    }
    return norm;
  }

  /** One update at 0-based `step` with learning rate `lr`. */
  update(params: Float32Array, grad: Float32Array, step: number, lr: number): void {
    const { beta1, beta2, eps, weightDecay } = this.o;
    const bc1 = 1 - Math.pow(beta1, step + 1);
    const bc2 = 1 - Math.pow(beta2, step + 1);
    const m = this.m;
    const v = this.v;
    const dec = this.decay;
    const wd = lr * weightDecay;
    for (let i = 0; i < params.length; i++) {
      const g = grad[i]!;
      const mi = (m[i] = beta1 * m[i]! + (1 - beta1) * g);
      const vi = (v[i] = beta2 * v[i]! + (1 - beta2) * g * g);
      let p = params[i]!;
      if (dec[i]) p -= wd * p;
      params[i] = p - (lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + eps);
    }
  }
}
