/**
 * The layer step of an MoE layer (Qwen3-MoE): attention Linears as in a dense layer, then every
 * expert's gate/up/down pruned or quantized with its OWN statistics. The router is never pruned.
 *
 * Statistics (`moeCalibration`):
 *   routed — expert j's XᵀX from the calibration tokens the router sends to it: the inputs it
 *            computes on (llama.cpp's imatrix counts them so). Its n is those tokens' weight.
 *   all    — every token's (llm-compressor's moe_calibrate_all_experts): gate/up share the
 *            layer's mlp_in XᵀX, down gets each expert run on every token — while the layer's
 *            output, the next layer's input, stays the routed mixture (top-k is never changed).
 * Low-token rule (routed): an expert routed fewer than `minExpertTokens` real calibration tokens
 * (and always one routed none) is calibrated as under `all` — a Hessian of a few outer products
 * would let SparseGPT / GPTQ fit those tokens and nothing else. rac.json records per expert the
 * routed tokens and which statistics it got.
 *
 * True-sequential: the experts' statistics are re-captured after the attention Linears are
 * pruned (the routing then follows the pruned attention, as the recompute will).
 *
 * Asymmetric calibration: every capture runs the layer on both streams (the pruned model's and the
 * reference's, each routed by its own router). An expert's rows are those the PRUNED stream routes
 * to it (the inputs it will compute on; under `all` every token); its cross terms pair each such
 * row's pruned-stream input with the same token's reference-stream input (and the activations the
 * reference weights make of it), whether or not the reference router chose that expert for the
 * token — the reference's expert input exists for every token. The reference layer's output (its
 * own routing and experts) moves the reference stream on in the first capture.
 */
import { XtxSum } from '../compress/hessian.ts';
import { expertFeeds, type Feeds } from '../models/batch.ts';
import type { LayerRunner, MoeRouting } from '../models/layer-runner.ts';
import { gatherRows, runRoutedExperts } from '../models/moe.ts';
import {
  expertGroupWidth,
  groupWidth,
  linearWeight,
  type ExpertSpec,
  type InputGroup,
  type LayerWeights,
  type LinearSpec,
  type MoeWeights,
} from '../models/spec.ts';
import type { HiddenStore } from './hidden-store.ts';
import { referenceWeights, type LayerJob, type LayerStep, type PruneRun } from './layer-step.ts';
import { pruneLinear } from './linear.ts';
import { MIN_EXPERT_TOKENS } from './options.ts';
import type { ExpertReport } from './rac-json.ts';

/** Per-expert statistics of one capture pass. */
interface ExpertStats {
  mlpIn: XtxSum;
  mlpOut: XtxSum;
  /** Asymmetric calibration: X_refᵀX of the same rows (null without). */
  mlpInCross: XtxSum | null;
  mlpOutCross: XtxSum | null;
  /** Real calibration tokens routed to the expert. */
  tokens: number;
  /** Σ w of the rows that entered its statistics (the Hessian's n). */
  n: number;
  source: ExpertReport['statistics'];
}

export const moeLayerStep: LayerStep = {
  async calibrate(run, job) {
    const ex = run.model.experts(job.l)!;
    const stage = run.stages.flat();
    const attn = stage.filter((ls) => ls.group === 'attn_in' || ls.group === 'attn_out');
    const pruneExperts = stage.some((ls) => ls.group === 'mlp_in' || ls.group === 'mlp_out');
    if (!run.needStats) {
      // magnitude / rtn without error statistics: nothing to capture.
      await solveAttention(run, job, attn, null);
      if (pruneExperts) await solveExperts(run, job, ex, null);
      return;
    }
    // Asymmetric: the layer's weights before any is pruned (or the reference model's) run the reference stream.
    const ref = reference(run, job, ex, job.refOut);
    const split = !!run.opts.trueSequential && attn.length > 0 && pruneExperts;
    let pass = await capture(run, job, ex, pruneExperts && !split, ref);
    // The reference stream moved on during the capture; the recompute must not move it again.
    if (ref) job.refOut = null;
    await solveAttention(run, job, attn, pass.attn, pass.attnCross);
    if (!pruneExperts) return;
    if (split) pass = await capture(run, job, ex, true, ref && { ...ref, out: null });
    await solveExperts(run, job, ex, pass.experts!);
  },

  async recompute(run, job) {
    const { runner, padded } = run;
    if (!runner) return;
    const ex = run.model.experts(job.l)!;
    const feeds = runner.weightFeeds(job.w);
    const experts = allExpertFeeds(ex, job.w.moe!);
    // A layer left as it is (not selected) moves the reference stream on too.
    const ref = job.refOut ? reference(run, job, ex, job.refOut) : null;
    for (let b = 0; b < padded.length; b++) {
      job.output.put(b, await runner.moeForward(ex, feeds, experts, job.input.get(b), padded[b]!));
      if (ref?.out) ref.out.put(b, await runner.moeForward(ex, ref.feeds, ref.experts, job.refIn!.get(b), padded[b]!));
      job.progress('recompute', { batch: b + 1, batches: padded.length });
    }
  },
};

function allExpertFeeds(ex: ExpertSpec, moe: MoeWeights): Feeds[] {
  return Array.from({ length: ex.count }, (_, j) => expertFeeds(ex, moe, j));
}

/** Asymmetric calibration's reference layer: its feeds, its experts' feeds, and where its outputs go (null: already moved on). */
interface Reference {
  feeds: Feeds;
  experts: Feeds[];
  out: HiddenStore | null;
}

function reference(run: PruneRun, job: LayerJob, ex: ExpertSpec, out: HiddenStore | null): Reference | null {
  const w: LayerWeights | null = referenceWeights(run, job);
  if (!w) return null;
  return { feeds: run.runner!.weightFeeds(w), experts: allExpertFeeds(ex, w.moe!), out };
}

/** The layer up to its routing on one batch: the pruned stream's routing and statistics, and with `ref` the reference stream's and the cross terms. */
async function route(
  run: PruneRun,
  job: LayerJob,
  ex: ExpertSpec,
  feeds: Feeds,
  b: number,
  ref: Reference | null,
): Promise<{
  own: MoeRouting;
  ref: MoeRouting | null;
  xtx: Partial<Record<InputGroup, Float32Array>>;
  cross: Partial<Record<InputGroup, Float32Array>> | null;
}> {
  const { runner, padded, rowWeights } = run;
  const rw = rowWeights[b]!;
  if (!ref) {
    const r = await job.timer.time('capture', () => runner!.moeRoute(ex, feeds, job.input.get(b), padded[b]!, rw, run.diagonalOnly));
    return { own: r, ref: null, xtx: r.xtx, cross: null };
  }
  return job.timer.time('capture', () => runner!.moeRouteCross(ex, feeds, ref.feeds, job.input.get(b), job.refIn!.get(b), padded[b]!, rw));
}

/**
 * One capture pass over the calibration batches: XᵀX of the attention groups (and the layer's
 * mlp_in) and, with wantExperts, the experts' statistics — then, under the low-token rule, a second pass for the
 * experts that got too few tokens. With `ref` (asymmetric) the cross terms too, and the reference
 * stream moved on into `ref.out` when given.
 */
async function capture(
  run: PruneRun,
  job: LayerJob,
  ex: ExpertSpec,
  wantExperts: boolean,
  ref: Reference | null,
): Promise<{ attn: Map<InputGroup, XtxSum>; attnCross: Map<InputGroup, XtxSum> | null; experts: ExpertStats[] | null }> {
  const { runner, padded, rowWeights, model } = run;
  const cfg = model.config;
  const diagonal = run.diagonalOnly;
  const mode = run.opts.moeCalibration ?? 'routed';
  const groups = ['attn_in', 'attn_out', 'mlp_in'] as const;
  const attn = new Map<InputGroup, XtxSum>(groups.map((g) => [g, new XtxSum(groupWidth(cfg, g), diagonal)]));
  const attnCross = ref ? new Map<InputGroup, XtxSum>(groups.map((g) => [g, new XtxSum(groupWidth(cfg, g), false)])) : null;
  const experts: ExpertStats[] = Array.from({ length: ex.count }, () => ({
    mlpIn: new XtxSum(cfg.hiddenSize, diagonal),
    mlpOut: new XtxSum(expertGroupWidth(cfg, 'mlp_out'), diagonal),
    mlpInCross: ref ? new XtxSum(cfg.hiddenSize, false) : null,
    mlpOutCross: ref ? new XtxSum(expertGroupWidth(cfg, 'mlp_out'), false) : null,
    tokens: 0,
    n: 0,
    source: mode,
  }));
  const feeds = runner!.weightFeeds(job.w);
  const eFeeds = allExpertFeeds(ex, job.w.moe!);
  for (let b = 0; b < padded.length; b++) {
    const rw = rowWeights[b]!;
    const r = await route(run, job, ex, feeds, b, ref);
    await job.timer.time('hessian', () => {
      for (const [g, s] of attn) s.add(r.xtx[g]!);
      if (attnCross) for (const [g, s] of attnCross) s.add(r.cross![g]!);
    });
    if (wantExperts) {
      const all = mode === 'all' ? realRows(padded[b]!) : null;
      for (let j = 0; j < ex.count; j++) {
        const routed = r.own.groups[j]!.rows;
        experts[j]!.tokens += routed.length;
        const rows = all ?? routed;
        const rowsRef = ref ? { feeds: ref.experts[j]!, moeIn: r.ref!.moeIn } : null;
        // Under `all`, gate/up read the layer's mlp_in sum (shared below): only down's is the expert's own.
        if (rows.length > 0)
          await addExpertStats(runner!, ex, eFeeds[j]!, experts[j]!, r.own.moeIn, rows, rw, !all, diagonal, job, rowsRef);
      }
    }
    if (ref?.out) {
      // The reference layer's output, by its own routing and experts: the next layer's reference input.
      const h = r.ref!;
      await job.timer.time('capture', () =>
        runRoutedExperts(h.groups, h.moeIn, cfg.hiddenSize, h.h1, (j, xj, gw) => runner!.expertForward(ex, ref.experts[j]!, xj, gw)),
      );
      ref.out.put(b, h.h1);
    }
    job.progress('capture', { batch: b + 1, batches: padded.length });
  }
  if (!wantExperts) return { attn, attnCross, experts: null };
  if (mode === 'all') {
    for (const e of experts) {
      e.mlpIn = attn.get('mlp_in')!;
      e.mlpInCross = attnCross?.get('mlp_in') ?? null;
    }
    return { attn, attnCross, experts };
  }
  const min = Math.max(1, run.opts.minExpertTokens ?? MIN_EXPERT_TOKENS);
  const low = experts.flatMap((e, j) => (e.tokens < min ? [j] : []));
  if (low.length > 0) await allTokenStats(run, job, ex, eFeeds, experts, low, attn.get('mlp_in')!, ref, attnCross?.get('mlp_in') ?? null);
  return { attn, attnCross, experts };
}

/**
 * Add an expert's statistics over `rows` of one batch (its moe_in rows, row weights from the
 * batch): mlp_out always, mlp_in when `withInput` (else the expert shares the layer's sum); with
 * `reference` (asymmetric) the cross terms against the same rows of the reference stream's moe_in,
 * run through the reference expert.
 */
async function addExpertStats(
  runner: LayerRunner,
  ex: ExpertSpec,
  feeds: Feeds,
  e: ExpertStats,
  moeIn: Float32Array,
  rows: Int32Array,
  rowWeight: Float32Array,
  withInput: boolean,
  diagonal: boolean,
  job: LayerJob,
  reference: { feeds: Feeds; moeIn: Float32Array } | null = null,
): Promise<void> {
  const tw = new Float32Array(rows.length);
  for (let r = 0; r < rows.length; r++) tw[r] = rowWeight[rows[r]!]!;
  const D = ex.linears[0]!.cols;
  const x = gatherRows(moeIn, D, rows);
  const { xtx, cross } = await job.timer.time('capture', async () =>
    reference
      ? runner.expertCaptureCross(ex, feeds, reference.feeds, x, gatherRows(reference.moeIn, D, rows), tw)
      : { ...(await runner.expertCapture(ex, feeds, x, new Float32Array(rows.length), tw, diagonal)), cross: null },
  );
  await job.timer.time('hessian', () => {
    if (withInput) e.mlpIn.add(xtx.mlp_in);
    e.mlpOut.add(xtx.mlp_out);
    if (cross) {
      if (withInput) e.mlpInCross!.add(cross.mlp_in);
      e.mlpOutCross!.add(cross.mlp_out);
    }
    for (let r = 0; r < tw.length; r++) e.n += tw[r]! * tw[r]!;
  });
}

/** The low-token rule: experts `low` re-calibrated on every real token (a second forward pass over the batches). */
async function allTokenStats(
  run: PruneRun,
  job: LayerJob,
  ex: ExpertSpec,
  eFeeds: Feeds[],
  experts: ExpertStats[],
  low: number[],
  layerMlpIn: XtxSum,
  ref: Reference | null,
  layerMlpInCross: XtxSum | null,
): Promise<void> {
  const { runner, padded, rowWeights, model } = run;
  const cfg = model.config;
  for (const j of low) {
    const e = experts[j]!;
    e.mlpIn = layerMlpIn;
    e.mlpOut = new XtxSum(expertGroupWidth(cfg, 'mlp_out'), run.diagonalOnly);
    e.mlpInCross = layerMlpInCross;
    e.mlpOutCross = ref ? new XtxSum(expertGroupWidth(cfg, 'mlp_out'), false) : null;
    e.n = 0;
    e.source = 'all_low_tokens';
  }
  const feeds = runner!.weightFeeds(job.w);
  for (let b = 0; b < padded.length; b++) {
    // Asymmetric: the two-stream routing again, for the reference stream's expert inputs.
    const r = ref
      ? await route(run, job, ex, feeds, b, { ...ref, out: null })
      : { own: await job.timer.time('capture', () => runner!.moeRoute(ex, feeds, job.input.get(b), padded[b]!, null)), ref: null };
    const rows = realRows(padded[b]!);
    for (const j of low) {
      const rowsRef = ref ? { feeds: ref.experts[j]!, moeIn: r.ref!.moeIn } : null;
      await addExpertStats(runner!, ex, eFeeds[j]!, experts[j]!, r.own.moeIn, rows, rowWeights[b]!, false, run.diagonalOnly, job, rowsRef);
    }
  }
}

/** The real (unpadded) rows of a left-padded batch. */
function realRows(b: { valid: Uint8Array[]; T: number }): Int32Array {
  const rows: number[] = [];
  b.valid.forEach((v, s) => {
    for (let t = 0; t < b.T; t++) if (v[t]) rows.push(s * b.T + t);
  });
  return Int32Array.from(rows);
}

/** The attention Linears of the scope, as in a dense layer. */
async function solveAttention(
  run: PruneRun,
  job: LayerJob,
  attn: LinearSpec[],
  stats: Map<InputGroup, XtxSum> | null,
  cross: Map<InputGroup, XtxSum> | null = null,
): Promise<void> {
  for (const ls of attn) {
    job.progress('prune', { linear: ls.name });
    const W = linearWeight(job.w, ls.name);
    const name = run.model.tensorName(job.l, ls.module);
    const lr = await job.timer.time('prune', () =>
      pruneLinear(
        W,
        ls.rows,
        ls.cols,
        stats?.get(ls.group) ?? null,
        run.n,
        job.opts,
        run.gemm,
        run.quantOf(name),
        cross?.get(ls.group) ?? null,
      ),
    );
    job.timer.add('factor', lr.factor_seconds ?? 0);
    job.timer.add('sweep', lr.sweep_seconds ?? 0);
    job.rep.linears[ls.name] = lr;
    job.pruned.set(name, W);
  }
}

/** Every expert's gate/up/down from its own statistics (null: magnitude / rtn without statistics). */
async function solveExperts(run: PruneRun, job: LayerJob, ex: ExpertSpec, stats: ExpertStats[] | null): Promise<void> {
  const reports: ExpertReport[] = [];
  for (let j = 0; j < ex.count; j++) {
    const e = stats?.[j] ?? null;
    const rep: ExpertReport = { expert: j, tokens: e?.tokens ?? 0, statistics: e ? e.source : 'none', linears: {} };
    for (const ls of ex.linears) {
      job.progress('prune', { linear: ls.name, expert: j });
      const W = job.w.moe!.experts[j]![ls.name];
      const name = run.model.expertTensorName(job.l, j, ls.module);
      const s = e ? (ls.group === 'mlp_in' ? e.mlpIn : e.mlpOut) : null;
      const c = e ? (ls.group === 'mlp_in' ? e.mlpInCross : e.mlpOutCross) : null;
      const n = e ? (e.source === 'routed' ? e.n : run.n) : run.n;
      const lr = await job.timer.time('prune', () => pruneLinear(W, ls.rows, ls.cols, s, n, job.opts, run.gemm, run.quantOf(name), c));
      job.timer.add('factor', lr.factor_seconds ?? 0);
      job.timer.add('sweep', lr.sweep_seconds ?? 0);
      rep.linears[ls.name] = lr;
      job.pruned.set(name, W);
    }
    reports.push(rep);
  }
  job.rep.experts = reports;
}
