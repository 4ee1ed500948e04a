/**
 * Removing whole experts from an MoE checkpoint (`--method reap|frequency --experts F`): the
 * result is an ordinary, smaller `qwen3_moe` checkpoint — `num_experts` lowered in config.json,
 * the router's rows for the removed experts sliced out, the kept experts renumbered in order,
 * top-k unchanged — that every engine loads as it loads the source.
 *
 *   embed calibration batches → for each decoder layer l, in order:
 *     MoE layer: run attention and routing on its inputs; run each expert on the tokens routed to
 *                it (output before weighting); accumulate REAP's g·‖f‖ and the routed-token
 *                counts (compress/expert-scores.ts); remove the `n` lowest-scoring experts;
 *     recompute: forward layer l WITHOUT them — the next layer's inputs (as the pruning loop does:
 *                later layers are scored on what the smaller model computes)
 *   then write the checkpoint through a layout plan (drop / rename / reshape; io/checkpoint-writer).
 *
 * Removing expert j equals keeping it with its router logit at −∞: the softmax over the kept
 * logits is the softmax over all with those at −∞, so top-k and (with or without
 * norm_topk_prob) the kept weights are the same (test/prune/expert-removal.test.ts). What changes
 * against the unpruned model without renormalization is the denominator: the kept experts'
 * weights grow.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { EXPERT_SCORINGS, ExpertSaliency, expertsToRemove, lowestExperts, type ExpertScoring } from '../compress/expert-scores.ts';
import { isUniform, UNIFORM_TOKEN_WEIGHTS, validateTokenWeights, type TokenWeights } from '../compress/hessian.ts';
import { CheckpointWriter } from '../io/checkpoint-writer.ts';
import { removeOnSignal } from '../io/temp-cleanup.ts';
import { embedRows, expertFeeds, type Feeds } from '../models/batch.ts';
import { LayerRunner } from '../models/layer-runner.ts';
import type { Model } from '../models/model.ts';
import { gatherRows } from '../models/moe.ts';
import type { ExpertSpec, LayerWeights } from '../models/spec.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { calibBatches, type CalibSet } from './calib.ts';
import { HiddenStore } from './hidden-store.ts';
import type { ExpertRemovalRecord } from './rac-json.ts';

export { EXPERT_SCORINGS, type ExpertScoring };

export interface ExpertRemovalOptions {
  scoring: ExpertScoring;
  /** Experts to remove per layer: a fraction in (0, 1) or a count ≥ 1. */
  experts: number;
  batchTokens: number;
  tokenWeights?: TokenWeights;
  memoryLimitBytes?: number;
  runtime?: Partial<RuntimeOptions>;
  onProgress?: (e: { layer: number; layers: number; phase: 'score' | 'recompute' | 'done'; batch?: number; batches?: number }) => void;
}

export interface ExpertRemovalResult {
  record: ExpertRemovalRecord;
  /** Layout of the output: what to drop, rename and reshape, and the new config.json. */
  plan: { drop: Set<string>; rename: Map<string, string>; routers: Map<string, Float32Array>; config: Record<string, unknown> };
}

/** Refusals before any work (one line each). */
export function checkExpertRemoval(model: Model, o: Pick<ExpertRemovalOptions, 'scoring' | 'experts'>): number {
  if (!EXPERT_SCORINGS.includes(o.scoring))
    throw new Error(`expert scoring must be one of ${EXPERT_SCORINGS.join(', ')}, got "${o.scoring}"`);
  const m = model.config.moe;
  const moeLayers = Array.from({ length: model.config.numLayers }, (_, i) => i).filter((i) => model.experts(i));
  if (!m || moeLayers.length === 0)
    throw new Error(`${model.dir}: --method ${o.scoring} removes experts, but ${model.config.modelType} has no Mixture-of-Experts layer`);
  return expertsToRemove(o.experts, m.numExperts, m.topK);
}

/**
 * Score every MoE layer's experts in order on the calibration set and choose the ones to remove;
 * returns the record and the output layout. Temp files (spilled hidden states) go to `tmpDir`.
 */
export async function scoreExperts(model: Model, calib: CalibSet, o: ExpertRemovalOptions, tmpDir: string): Promise<ExpertRemovalResult> {
  const t0 = performance.now();
  const remove = checkExpertRemoval(model, o);
  if (calib.sequences.length === 0) throw new Error('the calibration set is empty');
  const tokenWeights = o.tokenWeights ?? UNIFORM_TOKEN_WEIGHTS;
  validateTokenWeights(tokenWeights);
  const { spec, config: cfg } = model;
  const L = cfg.numLayers;
  const D = cfg.hiddenSize;
  const { padded, rowWeights } = calibBatches(calib, o.batchTokens, tokenWeights);
  const sizes = padded.map((pb) => pb.B * pb.T * D);
  const memory = o.memoryLimitBytes ?? 4 * 2 ** 30;
  const stores = [new HiddenStore(sizes, memory, tmpDir), new HiddenStore(sizes, memory, tmpDir)];
  let [input, output] = stores as [HiddenStore, HiddenStore];
  const runner = await LayerRunner.create(spec, cfg, o.runtime);
  const layers: ExpertRemovalRecord['layers'] = [];
  const drop = new Set<string>();
  const rename = new Map<string, string>();
  const routers = new Map<string, Float32Array>();
  try {
    const E = model.embedding();
    padded.forEach((pb, i) => input.put(i, embedRows(E, cfg, pb.ids)));
    for (let l = 0; l < L; l++) {
      const progress = (phase: 'score' | 'recompute', batch: number) =>
        o.onProgress?.({ layer: l, layers: L, phase, batch, batches: padded.length });
      const w = model.layerWeights(l);
      const ex = model.experts(l);
      let feeds: Feeds;
      let kept: { ex: ExpertSpec; experts: Feeds[] } | null = null;
      if (ex && w.moe) {
        feeds = runner.weightFeeds(w);
        const saliency = new ExpertSaliency(ex.count);
        const eFeeds = Array.from({ length: ex.count }, (_, j) => expertFeeds(ex, w.moe!, j));
        for (let b = 0; b < padded.length; b++) {
          const r = await runner.moeRoute(ex, feeds, input.get(b), padded[b]!, null);
          for (let j = 0; j < ex.count; j++) {
            const g = r.groups[j]!;
            if (g.rows.length === 0) continue;
            // gate_w 1: the expert's output before weighting, f_j(x).
            const f = await runner.expertForward(ex, eFeeds[j]!, gatherRows(r.moeIn, D, g.rows), new Float32Array(g.rows.length).fill(1));
            const tw = Float64Array.from(g.rows, (row) => rowWeights[b]![row]! ** 2);
            saliency.add(j, g.weights, f, D, tw);
          }
          progress('score', b + 1);
        }
        const scores = saliency.scores(o.scoring);
        const removed = lowestExperts(scores, remove);
        const gone = new Set(removed);
        layers.push({
          layer: l,
          removed,
          experts: Array.from({ length: ex.count }, (_, j) => ({
            expert: j,
            tokens: saliency.tokens[j]!,
            score: scores[j]!,
            removed: gone.has(j),
          })),
        });
        const keep = Array.from({ length: ex.count }, (_, j) => j).filter((j) => !gone.has(j));
        const small = slicedLayer(w, keep, D);
        const smallSpec: ExpertSpec = { ...ex, count: keep.length };
        kept = { ex: smallSpec, experts: keep.map((_, i) => expertFeeds(smallSpec, small.moe!, i)) };
        feeds = runner.weightFeeds(small);
        routers.set(model.tensorName(l, ex.routerModule), small.moe!.router);
        for (let j = 0; j < ex.count; j++) {
          for (const ls of ex.linears) {
            const name = model.expertTensorName(l, j, ls.module);
            if (gone.has(j)) drop.add(name);
            else rename.set(name, `${spec.layerPrefix(l)}${ex.expertModule(keep.indexOf(j))}.${ls.module}.weight`);
          }
        }
      } else feeds = runner.weightFeeds(w);
      for (let b = 0; b < padded.length; b++) {
        output.put(
          b,
          kept
            ? await runner.moeForward(kept.ex, feeds, kept.experts, input.get(b), padded[b]!)
            : await runner.forward(feeds, input.get(b), padded[b]!),
        );
        progress('recompute', b + 1);
      }
      o.onProgress?.({ layer: l, layers: L, phase: 'done' });
      [input, output] = [output, input];
    }
  } finally {
    for (const st of stores) st.close();
    await runner.release();
  }
  const Ebefore = cfg.moe!.numExperts;
  const perExpert = (ex: ExpertSpec) => ex.linears.reduce((a, ls) => a + ls.rows * ls.cols, 0) + cfg.hiddenSize;
  let removedParams = 0;
  for (const l of layers) removedParams += l.removed.length * perExpert(model.experts(l.layer)!);
  const before = model.parameterCount();
  const record: ExpertRemovalRecord = {
    scoring: o.scoring,
    experts_before: Ebefore,
    experts_after: Ebefore - remove,
    parameters_before: before,
    parameters_after: before - removedParams,
    calibration: {
      ...calib.source,
      tokens: calib.tokens,
      sequences: calib.sequences.length,
      ...(isUniform(tokenWeights) ? {} : { token_weights: { ...tokenWeights } }),
    },
    seconds: (performance.now() - t0) / 1000,
    layers,
  };
  const config = { ...cfg.raw, num_experts: Ebefore - remove };
  return { record, plan: { drop, rename, routers, config } };
}

/** Layer weights with only experts `keep` (in that order) and the router's rows for them. */
function slicedLayer(w: LayerWeights, keep: number[], D: number): LayerWeights {
  const router = new Float32Array(keep.length * D);
  keep.forEach((j, i) => router.set(w.moe!.router.subarray(j * D, (j + 1) * D), i * D));
  return { ...w, moe: { router, experts: keep.map((j) => w.moe!.experts[j]!) } };
}

/**
 * Write `model` without the removed experts to `outDir` (temp dir + rename), with `extra` files
 * (rac.json, README.md) and the new config.json.
 */
export function writeWithoutExperts(
  model: Model,
  plan: ExpertRemovalResult['plan'],
  outDir: string,
  extra: Record<string, string>,
  overwrite = false,
): void {
  const shapes = new Map([...plan.routers].map(([name, r]) => [name, [r.length / model.config.hiddenSize, model.config.hiddenSize]]));
  const writer = CheckpointWriter.begin(model.tensors, outDir, { overwrite, plan: { drop: plan.drop, rename: plan.rename, shapes } });
  try {
    for (const [name, r] of plan.routers) writer.writeF32(name, r);
    writer.finish({ 'config.json': `${JSON.stringify(plan.config, null, 2)}\n`, ...extra });
  } catch (e) {
    writer.abort();
    throw e;
  }
}

/** A scratch directory beside `outDir` for spilled hidden states, removed on a signal and by the caller. */
export function scratchDir(outDir: string): { dir: string; release(): void } {
  const dir = mkdtempSync(`${dirname(outDir)}/.${basename(outDir)}.experts-`);
  const cleanup = removeOnSignal(dir);
  return {
    dir,
    release: () => {
      rmSync(dir, { recursive: true, force: true });
      cleanup.release();
    },
  };
}
