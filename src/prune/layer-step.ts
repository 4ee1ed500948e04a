/**
 * The layer loop's steps. A step calibrates one selected layer (capture its statistics, solve its
 * Linears in place) and recomputes the layer's outputs with the pruned weights; pruneCheckpoint
 * picks the step per layer — this file's dense step for a Llama-style MLP, experts.ts's for an
 * MoE block — and otherwise treats every layer alike.
 *
 * Dense step: per stage (one, or attention then MLP with true-sequential), one capture pass over
 * the calibration batches accumulates XᵀX per input group (diagonal only for Wanda without error
 * statistics; with asymmetric calibration also the cross terms against the reference stream),
 * then every Linear of the stage is solved from its group's statistics.
 */
import type { TokenWeights } from '../compress/hessian.ts';
import { XtxSum } from '../compress/hessian.ts';
import type { SparsityTarget } from '../compress/masks.ts';
import type { Feeds, PaddedBatch } from '../models/batch.ts';
import type { LayerRunner } from '../models/layer-runner.ts';
import type { Model } from '../models/model.ts';
import { groupWidth, linearWeight, type InputGroup, type LayerWeights, type LinearName, type LinearSpec } from '../models/spec.ts';
import type { OrtGemm } from '../runtime/gemm.ts';
import type { HiddenStore } from './hidden-store.ts';
import { pruneLinear, type LinearQuant, type PhaseTimer } from './linear.ts';
import type { PruneOptions, PruneProgress } from './options.ts';
import type { LayerReport } from './rac-json.ts';

/** What every layer of one pruning run shares. */
export interface PruneRun {
  model: Model;
  opts: PruneOptions;
  /** null for rtn without calibration (no forward at all). */
  runner: LayerRunner | null;
  gemm: OrtGemm;
  padded: PaddedBatch[];
  /** Per batch (B·T): √(sequence × token weight), 0 for padding. */
  rowWeights: Float32Array[];
  /** Σ w over the calibration tokens (the Hessian's n). */
  n: number;
  tokenWeights: TokenWeights;
  needStats: boolean;
  diagonalOnly: boolean;
  /** The scope's Linears of a dense layer, in stages (true-sequential: attention, then MLP). */
  stages: LinearSpec[][];
  /** How a tensor (by HF name) is quantized, or null when it is not. */
  quantOf: (name: string) => LinearQuant | null;
  /** Asymmetric calibration's reference model (null: the input model's own weights). */
  reference: Model | null;
}

/** One layer of the loop: its weights (pruned in place), report, timer and hidden streams. */
export interface LayerJob {
  l: number;
  w: LayerWeights;
  rep: LayerReport;
  timer: PhaseTimer;
  /** The run's options with this layer's sparsity target (OWL). */
  opts: PruneOptions;
  progress: (phase: PruneProgress['phase'], extra?: Partial<PruneProgress>) => void;
  input: HiddenStore;
  output: HiddenStore;
  /** Asymmetric calibration's reference stream (null without). */
  refIn: HiddenStore | null;
  refOut: HiddenStore | null;
  /** Pruned tensors by HF name: what the write step narrows to the checkpoint's dtype; every other tensor is copied. */
  pruned: Map<string, Float32Array>;
}

export interface LayerStep {
  /** Capture statistics and solve the layer's selected Linears in place (selected layers only). */
  calibrate(run: PruneRun, job: LayerJob): Promise<void>;
  /** The layer's outputs with its current (pruned) weights: job.input → job.output (and the reference stream). */
  recompute(run: PruneRun, job: LayerJob): Promise<void>;
}

/** A Llama-style layer: attention and a dense MLP. */
export const denseLayerStep: LayerStep = {
  async calibrate(run, job) {
    const { model, runner, padded, rowWeights, n, gemm } = run;
    const { l, w, rep, timer } = job;
    // Asymmetric: the layer's own weights, before any is pruned, run the reference stream.
    const refFeeds = referenceFeeds(run, job);
    let refDone = false;
    for (const stage of run.stages) {
      const groups = [...new Set(stage.map((x) => x.group))];
      const onBatch = (b: number) => job.progress('capture', { batch: b, batches: padded.length });
      let cross: Map<InputGroup, XtxSum> | null = null;
      let stats: Map<InputGroup, XtxSum> | null = null;
      if (job.refIn && job.refOut && refFeeds) {
        ({ stats, cross } = await captureCrossStats(run, job, refFeeds, refDone ? null : job.refOut, groups, onBatch));
        refDone = true;
      } else if (run.needStats)
        stats = await captureStats(runner!, w, job.input, padded, rowWeights, groups, model, run.diagonalOnly, timer, onBatch);
      for (const ls of stage) {
        if (stats) job.progress('prune', { linear: ls.name });
        const W = linearWeight(w, ls.name);
        const lr = await timer.time('prune', () =>
          pruneLinear(
            W,
            ls.rows,
            ls.cols,
            stats?.get(ls.group) ?? null,
            n,
            job.opts,
            gemm,
            run.quantOf(model.tensorName(l, ls.module)),
            cross?.get(ls.group) ?? null,
          ),
        );
        timer.add('factor', lr.factor_seconds ?? 0);
        timer.add('sweep', lr.sweep_seconds ?? 0);
        rep.linears[ls.name] = lr;
        job.pruned.set(model.tensorName(l, ls.module), W);
      }
    }
    // The reference stream moved on during the capture; the recompute must not move it again.
    if (refDone) job.refOut = null;
  },

  async recompute(run, job) {
    const { runner, padded } = run;
    if (!runner) return;
    const feeds = runner.weightFeeds(job.w);
    const refFeeds = job.refOut ? referenceFeeds(run, job) : null;
    for (let b = 0; b < padded.length; b++) {
      job.output.put(b, await runner.forward(feeds, job.input.get(b), padded[b]!));
      // A layer left as it is (not selected) moves the reference stream on too.
      if (job.refIn && job.refOut && refFeeds) job.refOut.put(b, await runner.forward(refFeeds, job.refIn.get(b), padded[b]!));
      job.progress('recompute', { batch: b + 1, batches: padded.length });
    }
  },
};

/**
 * The reference stream's weights for this layer (null without asymmetric calibration): the
 * reference model's, or the layer's own before pruning — a copy while the layer is still to be
 * solved (an MoE layer's experts shared, see copyLayerWeights).
 */
export function referenceWeights(run: PruneRun, job: LayerJob): LayerWeights | null {
  if (!job.refIn || !run.runner) return null;
  return run.reference ? run.reference.layerWeights(job.l) : job.rep.pruned && job.pruned.size === 0 ? copyLayerWeights(job.w) : job.w;
}

function referenceFeeds(run: PruneRun, job: LayerJob): Feeds | null {
  const w = referenceWeights(run, job);
  return w && run.runner!.weightFeeds(w);
}

/** Σ over batches of XᵀX (or its diagonal) for the requested groups; the forward + XᵀX graph is `capture`, the sums `hessian`. */
async function captureStats(
  runner: LayerRunner,
  w: LayerWeights,
  input: HiddenStore,
  padded: PaddedBatch[],
  rowWeights: Float32Array[],
  groups: InputGroup[],
  model: Model,
  diagonal: boolean,
  timer: PhaseTimer,
  onBatch: (b: number) => void,
): Promise<Map<InputGroup, XtxSum>> {
  const sums = new Map<InputGroup, XtxSum>();
  for (const g of groups) sums.set(g, new XtxSum(groupWidth(model.config, g), diagonal));
  const feeds = runner.weightFeeds(w);
  for (let b = 0; b < padded.length; b++) {
    const { xtx } = await timer.time('capture', () =>
      diagonal
        ? runner.captureDiagonal(feeds, input.get(b), padded[b]!, rowWeights[b]!)
        : runner.capture(feeds, input.get(b), padded[b]!, rowWeights[b]!),
    );
    await timer.time('hessian', () => {
      for (const g of groups) sums.get(g)!.add(xtx[g]);
    });
    onBatch(b + 1);
  }
  return sums;
}

/**
 * Asymmetric calibration's statistics: per requested group, XᵀX of the pruned stream and the cross
 * term X_refᵀX of the reference stream against it, from one two-stream capture per batch; the
 * reference layer's outputs go to `refOut` when given (the first stage of a layer).
 */
async function captureCrossStats(
  run: PruneRun,
  job: LayerJob,
  refFeeds: Feeds,
  refOut: HiddenStore | null,
  groups: InputGroup[],
  onBatch: (b: number) => void,
): Promise<{ stats: Map<InputGroup, XtxSum>; cross: Map<InputGroup, XtxSum> }> {
  const { runner, padded, rowWeights, model } = run;
  const stats = new Map<InputGroup, XtxSum>();
  const cross = new Map<InputGroup, XtxSum>();
  for (const g of groups) {
    stats.set(g, new XtxSum(groupWidth(model.config, g), false));
    cross.set(g, new XtxSum(groupWidth(model.config, g), false));
  }
  const feeds = runner!.weightFeeds(job.w);
  for (let b = 0; b < padded.length; b++) {
    const r = await job.timer.time('capture', () =>
      runner!.captureCross(feeds, refFeeds, job.input.get(b), job.refIn!.get(b), padded[b]!, rowWeights[b]!),
    );
    await job.timer.time('hessian', () => {
      for (const g of groups) {
        stats.get(g)!.add(r.xtx[g]);
        cross.get(g)!.add(r.cross[g]);
      }
    });
    refOut?.put(b, r.outRef);
    onBatch(b + 1);
  }
  return { stats, cross };
}

/**
 * A copy of a layer's Linear weights (biases and norms shared: pruning never touches them). An MoE
 * block is shared, not copied (a layer's experts are gigabytes at Qwen3-30B-A3B's shapes): the MoE
 * step solves its experts after its last capture, so every use of the copy sees them unpruned.
 */
export function copyLayerWeights(w: LayerWeights): LayerWeights {
  const linears: LayerWeights['linears'] = {};
  for (const [k, v] of Object.entries(w.linears) as [LinearName, Float32Array][]) linears[k] = v.slice();
  return { linears, biases: w.biases, norms: w.norms, ...(w.moe ? { moe: w.moe } : {}) };
}

/** A layer's unstructured target for OWL, threaded into its job's options. */
export function layerOptions(opts: PruneOptions, target: SparsityTarget | undefined): PruneOptions {
  return target ? { ...opts, target } : opts;
}
