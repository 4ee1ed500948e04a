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
 */
import { XtxSum } from '../compress/hessian.ts';
import { expertFeeds, type Feeds } from '../models/batch.ts';
import type { LayerRunner } from '../models/layer-runner.ts';
import { gatherRows } from '../models/moe.ts';
import { expertGroupWidth, groupWidth, linearWeight, type ExpertSpec, type InputGroup, type LinearSpec } from '../models/spec.ts';
import type { LayerJob, LayerStep, PruneRun } from './layer-step.ts';
import { pruneLinear } from './linear.ts';
import { MIN_EXPERT_TOKENS } from './options.ts';
import type { ExpertReport } from './rac-json.ts';

/** Per-expert statistics of one capture pass. */
interface ExpertStats {
  mlpIn: XtxSum;
  mlpOut: XtxSum;
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
    const split = !!run.opts.trueSequential && attn.length > 0 && pruneExperts;
    let pass = await capture(run, job, ex, pruneExperts && !split);
    await solveAttention(run, job, attn, pass.attn);
    if (!pruneExperts) return;
    if (split) pass = await capture(run, job, ex, true);
    await solveExperts(run, job, ex, pass.experts!);
  },

  async recompute(run, job) {
    const { runner, padded } = run;
    if (!runner) return;
    const ex = run.model.experts(job.l)!;
    const feeds = runner.weightFeeds(job.w);
    const experts = allExpertFeeds(ex, job);
    for (let b = 0; b < padded.length; b++) {
      job.output.put(b, await runner.moeForward(ex, feeds, experts, job.input.get(b), padded[b]!));
      job.progress('recompute', { batch: b + 1, batches: padded.length });
    }
  },
};

function allExpertFeeds(ex: ExpertSpec, job: LayerJob): Feeds[] {
  return Array.from({ length: ex.count }, (_, j) => expertFeeds(ex, job.w.moe!, j));
}

/**
 * One capture pass over the calibration batches: XᵀX of the attention groups (and the layer's
 * mlp_in) and, with wantExperts, the experts' statistics — then, under the low-token rule, a second pass for the
 * experts that got too few tokens.
 */
async function capture(
  run: PruneRun,
  job: LayerJob,
  ex: ExpertSpec,
  wantExperts: boolean,
): Promise<{ attn: Map<InputGroup, XtxSum>; experts: ExpertStats[] | null }> {
  const { runner, padded, rowWeights, model } = run;
  const cfg = model.config;
  const diagonal = run.diagonalOnly;
  const mode = run.opts.moeCalibration ?? 'routed';
  const attn = new Map<InputGroup, XtxSum>();
  for (const g of ['attn_in', 'attn_out', 'mlp_in'] as const) attn.set(g, new XtxSum(groupWidth(cfg, g), diagonal));
  const experts: ExpertStats[] = Array.from({ length: ex.count }, () => ({
    mlpIn: new XtxSum(cfg.hiddenSize, diagonal),
    mlpOut: new XtxSum(expertGroupWidth(cfg, 'mlp_out'), diagonal),
    tokens: 0,
    n: 0,
    source: mode,
  }));
  const feeds = runner!.weightFeeds(job.w);
  const eFeeds = allExpertFeeds(ex, job);
  for (let b = 0; b < padded.length; b++) {
    const rw = rowWeights[b]!;
    const r = await job.timer.time('capture', () => runner!.moeRoute(ex, feeds, job.input.get(b), padded[b]!, rw, diagonal));
    await job.timer.time('hessian', () => {
      for (const [g, s] of attn) s.add(r.xtx[g]!);
    });
    if (wantExperts) {
      const all = mode === 'all' ? realRows(padded[b]!) : null;
      for (let j = 0; j < ex.count; j++) {
        const routed = r.groups[j]!.rows;
        experts[j]!.tokens += routed.length;
        const rows = all ?? routed;
        // Under `all`, gate/up read the layer's mlp_in sum (shared below): only down's is the expert's own.
        if (rows.length > 0) await addExpertStats(runner!, ex, eFeeds[j]!, experts[j]!, r.moeIn, rows, rw, !all, diagonal, job);
      }
    }
    job.progress('capture', { batch: b + 1, batches: padded.length });
  }
  if (!wantExperts) return { attn, experts: null };
  if (mode === 'all') {
    for (const e of experts) e.mlpIn = attn.get('mlp_in')!;
    return { attn, experts };
  }
  const min = Math.max(1, run.opts.minExpertTokens ?? MIN_EXPERT_TOKENS);
  const low = experts.flatMap((e, j) => (e.tokens < min ? [j] : []));
  if (low.length > 0) await allTokenStats(run, job, ex, eFeeds, experts, low, attn.get('mlp_in')!);
  return { attn, experts };
}

/**
 * Add an expert's statistics over `rows` of one batch (its moe_in rows, row weights from the
 * batch): mlp_out always, mlp_in when `withInput` (else the expert shares the layer's sum).
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
): Promise<void> {
  const tw = new Float32Array(rows.length);
  for (let r = 0; r < rows.length; r++) tw[r] = rowWeight[rows[r]!]!;
  const D = ex.linears[0]!.cols;
  const { xtx } = await job.timer.time('capture', () =>
    runner.expertCapture(ex, feeds, gatherRows(moeIn, D, rows), new Float32Array(rows.length), tw, diagonal),
  );
  await job.timer.time('hessian', () => {
    if (withInput) e.mlpIn.add(xtx.mlp_in);
    e.mlpOut.add(xtx.mlp_out);
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
): Promise<void> {
  const { runner, padded, rowWeights, model } = run;
  const cfg = model.config;
  for (const j of low) {
    const e = experts[j]!;
    e.mlpIn = layerMlpIn;
    e.mlpOut = new XtxSum(expertGroupWidth(cfg, 'mlp_out'), run.diagonalOnly);
    e.n = 0;
    e.source = 'all_low_tokens';
  }
  const feeds = runner!.weightFeeds(job.w);
  for (let b = 0; b < padded.length; b++) {
    const r = await job.timer.time('capture', () => runner!.moeRoute(ex, feeds, job.input.get(b), padded[b]!, null));
    const rows = realRows(padded[b]!);
    for (const j of low)
      await addExpertStats(runner!, ex, eFeeds[j]!, experts[j]!, r.moeIn, rows, rowWeights[b]!, false, run.diagonalOnly, job);
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
async function solveAttention(run: PruneRun, job: LayerJob, attn: LinearSpec[], stats: Map<InputGroup, XtxSum> | null): Promise<void> {
  for (const ls of attn) {
    job.progress('prune', { linear: ls.name });
    const W = linearWeight(job.w, ls.name);
    const name = run.model.tensorName(job.l, ls.module);
    const lr = await job.timer.time('prune', () =>
      pruneLinear(W, ls.rows, ls.cols, stats?.get(ls.group) ?? null, run.n, job.opts, run.gemm, run.quantOf(name)),
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
      const n = e ? (e.source === 'routed' ? e.n : run.n) : run.n;
      const lr = await job.timer.time('prune', () => pruneLinear(W, ls.rows, ls.cols, s, n, job.opts, run.gemm, run.quantOf(name)));
      job.timer.add('factor', lr.factor_seconds ?? 0);
      job.timer.add('sweep', lr.sweep_seconds ?? 0);
      rep.linears[ls.name] = lr;
      job.pruned.set(name, W);
    }
    reports.push(rep);
  }
  job.rep.experts = reports;
}
