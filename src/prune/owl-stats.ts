/**
 * OWL's pre-pass (compress/owl.ts holds the math): a forward of the DENSE model over the
 * calibration batches with diagonal captures (‖X_j‖² per input group), and per selected layer the
 * outlier ratio D_l of Wanda's scores |W_ij|·‖X_j‖ over every Linear the scope prunes in it, with
 * its pruned parameter count p_l.
 *
 * An MoE layer's pool holds its attention Linears and every expert's gate/up/down (when the scope
 * takes the MLP), each expert scored with the column norms of the rows the router sends to it —
 * the inputs it computes on, as Wanda calibrates it per expert; an expert no calibration token
 * reaches scores 0 everywhere (no outliers). Its p_l counts every expert, so a layer of E experts
 * weighs E experts' parameters in the average that keeps the requested sparsity exact.
 */
import { XtxSum } from '../compress/hessian.ts';
import { outlierRatio, type ScoredLinear } from '../compress/owl.ts';
import { expertFeeds, type PaddedBatch } from '../models/batch.ts';
import type { LayerRunner } from '../models/layer-runner.ts';
import type { Model } from '../models/model.ts';
import { runRoutedExperts } from '../models/moe.ts';
import { expertGroupWidth, groupWidth, linearWeight, type InputGroup, type LayerWeights, type LinearSpec } from '../models/spec.ts';
import type { HiddenStore } from './hidden-store.ts';

export interface OwlLayerStats {
  /** D_l: the share of the layer's scores above M × their mean. */
  ratio: number;
  /** p_l: the weights OWL's target applies to in the layer (experts included). */
  params: number;
}

/**
 * The outlier ratio and pruned parameter count of every selected layer. `linearSpecs` are the
 * scope's Linears of a dense layer (an MoE layer prunes its experts in their place when the scope
 * has mlp_in / mlp_out). Leaves the stores holding the last layer's dense outputs; the caller
 * re-embeds.
 */
export async function owlLayerStats(
  model: Model,
  runner: LayerRunner,
  stores: [HiddenStore, HiddenStore],
  padded: PaddedBatch[],
  rowWeights: Float32Array[],
  selected: Set<number>,
  linearSpecs: LinearSpec[],
  m: number,
): Promise<Map<number, OwlLayerStats>> {
  const stats = new Map<number, OwlLayerStats>();
  let [input, output] = stores;
  const last = Math.max(...selected);
  for (let l = 0; l <= last; l++) {
    const pass: LayerPass = { model, runner, l, w: model.layerWeights(l), input, output, padded, rowWeights, linearSpecs };
    const scored = model.experts(l) ? await moeLayer(pass, selected.has(l), l < last) : await denseLayer(pass, selected.has(l), l < last);
    if (scored) stats.set(l, { ratio: outlierRatio(scored, m), params: scored.reduce((a, s) => a + s.rows * s.cols, 0) });
    [input, output] = [output, input];
  }
  return stats;
}

const isMlp = (ls: LinearSpec) => ls.group === 'mlp_in' || ls.group === 'mlp_out';

/** One layer of the pre-pass: its weights, the streams it reads and writes, the calibration batches. */
interface LayerPass {
  model: Model;
  runner: LayerRunner;
  l: number;
  w: LayerWeights;
  input: HiddenStore;
  output: HiddenStore;
  padded: PaddedBatch[];
  rowWeights: Float32Array[];
  linearSpecs: LinearSpec[];
}

/** A dense layer forward on every batch: its scored Linears when selected (null otherwise); its outputs kept for the next layer. */
async function denseLayer(pass: LayerPass, selected: boolean, keepOutput: boolean): Promise<ScoredLinear[] | null> {
  const { model, runner, w, input, output, padded, rowWeights, linearSpecs } = pass;
  const feeds = runner.weightFeeds(w);
  const sums = new Map<InputGroup, XtxSum>();
  for (const ls of linearSpecs) if (!sums.has(ls.group)) sums.set(ls.group, new XtxSum(groupWidth(model.config, ls.group), true));
  for (let b = 0; b < padded.length; b++) {
    if (selected) {
      const { out, xtx } = await runner.captureDiagonal(feeds, input.get(b), padded[b]!, rowWeights[b]!);
      for (const [g, s] of sums) s.add(xtx[g]);
      if (keepOutput) output.put(b, out);
    } else output.put(b, await runner.forward(feeds, input.get(b), padded[b]!));
  }
  if (!selected) return null;
  return linearSpecs.map((ls) => ({ W: linearWeight(w, ls.name), rows: ls.rows, cols: ls.cols, colNorm: norms(sums.get(ls.group)!) }));
}

/** An MoE layer forward on every batch (attention, routing, the routed experts): its scored Linears when selected. */
async function moeLayer(pass: LayerPass, selected: boolean, keepOutput: boolean): Promise<ScoredLinear[] | null> {
  const { model, runner, l, w, input, output, padded, rowWeights, linearSpecs } = pass;
  const cfg = model.config;
  const ex = model.experts(l)!;
  const feeds = runner.weightFeeds(w);
  const eFeeds = Array.from({ length: ex.count }, (_, j) => expertFeeds(ex, w.moe!, j));
  if (!selected) {
    for (let b = 0; b < padded.length; b++) output.put(b, await runner.moeForward(ex, feeds, eFeeds, input.get(b), padded[b]!));
    return null;
  }
  const attnSpecs = linearSpecs.filter((ls) => !isMlp(ls));
  const withExperts = linearSpecs.some(isMlp);
  const sums = new Map<InputGroup, XtxSum>();
  for (const ls of attnSpecs) if (!sums.has(ls.group)) sums.set(ls.group, new XtxSum(groupWidth(cfg, ls.group), true));
  const experts = Array.from({ length: ex.count }, () => ({
    mlp_in: new XtxSum(cfg.hiddenSize, true),
    mlp_out: new XtxSum(expertGroupWidth(cfg, 'mlp_out'), true),
  }));
  for (let b = 0; b < padded.length; b++) {
    const rw = rowWeights[b]!;
    const r = await runner.moeRoute(ex, feeds, input.get(b), padded[b]!, rw, true);
    for (const [g, s] of sums) s.add(r.xtx[g]!);
    await runRoutedExperts(r.groups, r.moeIn, cfg.hiddenSize, r.h1, async (j, xj, gw, rows) => {
      const tw = Float32Array.from(rows, (row) => rw[row]!);
      const c = await runner.expertCapture(ex, eFeeds[j]!, xj, gw, tw, true);
      experts[j]!.mlp_in.add(c.xtx.mlp_in);
      experts[j]!.mlp_out.add(c.xtx.mlp_out);
      return c.y;
    });
    if (keepOutput) output.put(b, r.h1);
  }
  const scored: ScoredLinear[] = attnSpecs.map((ls) => ({
    W: linearWeight(w, ls.name),
    rows: ls.rows,
    cols: ls.cols,
    colNorm: norms(sums.get(ls.group)!),
  }));
  if (withExperts)
    experts.forEach((e, j) => {
      for (const ls of ex.linears)
        scored.push({ W: w.moe!.experts[j]![ls.name], rows: ls.rows, cols: ls.cols, colNorm: norms(e[ls.group as 'mlp_in' | 'mlp_out']) });
    });
  return scored;
}

/** ‖X_j‖₂ per column from a diagonal sum. */
function norms(s: XtxSum): Float64Array | Float32Array {
  return s.diag().map(Math.sqrt);
}
