/** One ORT session running the training-step graph: params + batch → loss and gradients. */
import { Session, type HostTensor, type RuntimeOptions } from '../../src/runtime/session.ts';
import { buildStepGraph, paramSpecs, type Params, type StepGraphOptions, type TinyConfig } from './model.ts';

export class StepRunner {
  private constructor(
    readonly cfg: TinyConfig,
    readonly opts: StepGraphOptions,
    private readonly session: Session,
  ) {}

  static async create(cfg: TinyConfig, opts: StepGraphOptions, runtime: Partial<RuntimeOptions> = {}): Promise<StepRunner> {
    const s = await Session.create('tiny-reasoner training step', buildStepGraph(cfg, opts), runtime);
    return new StepRunner(cfg, opts, s);
  }

  /** Run one step. Returns loss, gradients flattened in the params' layout, and logits if built. */
  async run(
    params: Params,
    batch: Record<string, HostTensor>,
    gradOut?: Float32Array,
  ): Promise<{ loss: number; ce: number; grad: Float32Array | null; logits: Float32Array | null; loads: Float32Array[] }> {
    const feeds: Record<string, HostTensor> = { ...batch };
    for (const s of params.specs) feeds[s.name] = { data: params.get(s.name), dims: s.shape };
    const res = await this.session.run(feeds);
    const loss = (res['loss']!.data as Float32Array)[0]!;
    const ce = (res['ce']!.data as Float32Array)[0]!;
    const loads: Float32Array[] = [];
    for (let l = 0; res[`load.${l}`]; l++) loads.push(res[`load.${l}`]!.data as Float32Array);
    let grad: Float32Array | null = null;
    if (this.opts.grads !== false) {
      grad = gradOut ?? new Float32Array(params.size);
      let off = 0;
      for (const s of paramSpecs(this.cfg)) {
        const g = res[`grad.${s.name}`]!.data as Float32Array;
        grad.set(g, off);
        off += g.length;
      }
    }
    const logits = this.opts.logits ? (res['logits']!.data as Float32Array) : null;
    return { loss, ce, grad, logits, loads };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
