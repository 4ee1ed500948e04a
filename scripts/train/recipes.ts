/**
 * The tiny reasoner's training recipes: `v1` is the shipped models/tiny-reasoner exactly as
 * trained (its card's figures); `v2` is issue 17's self-checking reasoner (format v2 with
 * injected, loss-masked errors, and the code family), see models/tiny-reasoner-v2/RECIPE.md.
 */
import { V1_DATA, type DataRecipe } from './data.ts';
import type { TinyConfig } from './model.ts';
import { DEFAULT_OPTIM, type OptimConfig } from './optim.ts';

export type RecipeName = 'v1' | 'v2' | 'moe';
export const RECIPE_NAMES: readonly RecipeName[] = ['v1', 'v2', 'moe'];

export interface Recipe {
  name: RecipeName;
  model: Omit<TinyConfig, 'vocab'>;
  batch: number;
  seq: number;
  steps: number;
  tokenizerVocab: number;
  data: DataRecipe;
  optim: OptimConfig;
  /** Distinct train problems per family for a run of `steps` steps (one pass covers the run). */
  poolPerFamily: (steps: number) => number;
  out: string;
  work: string;
}

export const RECIPES: Readonly<Record<RecipeName, Recipe>> = {
  v1: {
    name: 'v1',
    // ≈0.78M parameters.
    model: { hidden: 128, layers: 4, heads: 4, kvHeads: 2, intermediate: 352, ropeTheta: 10000, eps: 1e-6 },
    batch: 7,
    seq: 448,
    steps: 9000,
    tokenizerVocab: 512,
    data: V1_DATA,
    optim: DEFAULT_OPTIM,
    // ≈12 examples per step.
    poolPerFamily: (steps) => Math.ceil((steps * 13) / 2),
    out: 'models/tiny-reasoner',
    work: '/work/tiny-train',
  },
  v2: {
    name: 'v2',
    // v1's shape (804,992 parameters with the 512-id tokenizer; ≤ 2.5M, issue 17). The first draft
    // (hidden 192, 6 layers, 2.46M) trained at 2,909 tokens/s on 2 idle cores — 2.7 h for the run,
    // longer than a working session — against 6,395 tokens/s for this shape (measured 2026-12-02,
    // 40 steps each); this shape also decodes at v1's speed, which keeps the demo within 10 minutes.
    model: { hidden: 128, layers: 4, heads: 4, kvHeads: 2, intermediate: 352, ropeTheta: 10000, eps: 1e-6 },
    batch: 6,
    // The longest train example (a product with an injected error) is 502 tokens.
    seq: 512,
    steps: 9000,
    tokenizerVocab: 512,
    data: { families: ['arith', 'trace', 'code'], format: 'v2', injectRate: 0.15 },
    optim: DEFAULT_OPTIM,
    // ≈11.7 examples per step over three families (smoke run: 2,800 tokens per step, mean
    // example ≈ 240 tokens); 13 per step leaves a margin so one pass covers the run.
    poolPerFamily: (steps) => Math.ceil((steps * 13) / 3),
    out: 'models/tiny-reasoner-v2',
    work: '/work/tiny-train-v2',
  },
  moe: {
    name: 'moe',
    // Issue 29's tiny MoE reasoner (Qwen3-MoE): 4 layers of 6 experts, top-2, every width a
    // multiple of 256 so llama.cpp's k-quants (256-wide super-blocks) apply to every tensor;
    // 5,645,056 parameters (≤ 6M). `intermediate` is only config.json's intermediate_size (no
    // dense MLP layer). The first shipped model had 3 layers of 8 experts and reached 78.3% greedy
    // on trace after 7,000 steps; depth, not steps, was what trace lacked (its history:
    // models/tiny-moe-reasoner/README.md).
    model: {
      hidden: 256,
      layers: 4,
      heads: 4,
      kvHeads: 2,
      headDim: 64,
      intermediate: 512,
      ropeTheta: 10000,
      eps: 1e-6,
      moe: { experts: 6, topK: 2, expertIntermediate: 256, auxCoef: 0.01 },
    },
    batch: 6,
    seq: 512,
    // 70.0 min of steps on 2 idle cores with the sparse-expert trainer (2026-12-06, 0.88 s/step).
    steps: 4800,
    tokenizerVocab: 512,
    data: { families: ['arith', 'trace', 'code'], format: 'v2', injectRate: 0.15 },
    optim: { ...DEFAULT_OPTIM, lr: 1.5e-3, minLr: 1.5e-4, warmup: 300 },
    // The shipped run started with --steps 5500 (a pool of 23,834 problems per family) and was
    // resumed at step 212 with --steps 4800; steps before the warmup's end do not depend on the
    // total, so a fresh 4,800-step run with the pool sized for 5,500 reproduces its weights.
    poolPerFamily: (steps) => Math.ceil((Math.max(steps, 5500) * 13) / 3),
    out: 'models/tiny-moe-reasoner',
    work: '/work/tiny-train-moe',
  },
};
