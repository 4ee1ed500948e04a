// Room src/prune: pruning and quantization of a checkpoint — the sequential layer loop (this file),
// calibration sets and their modes (calib.ts, calib-modes.ts), the hidden-state store between layers
// (hidden-store.ts), the pruned model's card (model-card.ts) and its rac.json format (rac-json.ts).
// May import compress, io, runtime, tasks and models; nothing above (README: Layout).
/**
 * The sequential layer-wise pruning pipeline (SparseGPT's `llama_sequential`, one visible loop):
 *
 *   embed calibration batches → for each decoder layer l:
 *     capture: forward layer l (dense weights) on its inputs, accumulating XᵀX per Linear group
 *     prune:   solve every selected Linear (magnitude | Wanda | SparseGPT), in place
 *              (true-sequential: re-capture the MLP inputs after the attention Linears are pruned)
 *     recompute: forward layer l with the PRUNED weights — the next layer's inputs
 *     write:   layer l's tensors into the output checkpoint (pruned ones narrowed to their dtype)
 *
 * Memory: one layer's weights and Hessians, plus two hidden-state stores (spilled to disk above a
 * limit). Padding never enters the statistics: capture rows carry weight 0 for padded positions.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Gemm } from '../compress/gemm.ts';
import { rowBytes } from '../compress/ggml-quants.ts';
import { classCounts, isUniform, UNIFORM_TOKEN_WEIGHTS, validateTokenWeights, XtxSum, type TokenWeights } from '../compress/hessian.ts';
import { describeTarget, type SparsityTarget } from '../compress/masks.ts';
import { owlTargets } from '../compress/owl.ts';
import { SCHEME_INFO, type QuantScheme } from '../compress/quant-schemes.ts';
import { CheckpointError } from '../io/checkpoint.ts';
import { CheckpointWriter } from '../io/checkpoint-writer.ts';
import { hubSourceOf } from '../io/hub.ts';
import { ModelFileError, readModelText } from '../io/model-file.ts';
import { SafetensorsWriter } from '../io/safetensors-writer.ts';
import { embedRows } from '../models/batch.ts';
import { LayerRunner } from '../models/layer-runner.ts';
import { Model } from '../models/model.ts';
import { hasMoeLayers, layerLinears, type LinearSpec } from '../models/spec.ts';
import { createOrtGemm, type OrtGemm } from '../runtime/gemm.ts';
import { calibBatches, type CalibSet } from './calib.ts';
import { compressedConfigText, packedReplacements, writePackedFromBlocks } from './ct-output.ts';
import { checkExpertRemoval, scoreExperts, scratchDir, writeWithoutExperts } from './expert-removal.ts';
import { moeLayerStep } from './experts.ts';
import { quantPlan } from './quant-plan.ts';
import { HiddenStore } from './hidden-store.ts';
import { denseLayerStep, layerOptions, type LayerJob, type PruneRun } from './layer-step.ts';
import { PhaseTimer, pruneLinear, roundToNearest, type LinearQuant } from './linear.ts';
import { prunedModelCard } from './model-card.ts';
import { owlLayerStats } from './owl-stats.ts';
import {
  EXPERT_METHODS,
  isPackedScheme,
  MIN_EXPERT_TOKENS,
  PRUNE_METHODS,
  QUANT_BLOCKS_FILE,
  QUANT_METHODS,
  quantLayout,
  type LinearScope,
  type PruneOptions,
} from './options.ts';
import {
  formatRacJson,
  layerLinearReports,
  RAC_JSON,
  type LayerReport,
  type LinearReport,
  type OwlRecord,
  type ExpertRemovalRecord,
  type PruneSummary,
  type QuantizationRecord,
} from './rac-json.ts';

export { EXPERT_METHODS, PACKED_SCHEMES, PRUNE_METHODS, QUANT_BLOCKS_FILE, QUANT_METHODS, quantLayout } from './options.ts';
export type { LinearScope, MoeCalibration, PruneOptions, PruneProgress } from './options.ts';
export type { PruneMethod } from './rac-json.ts';

const GROUP_OF_SCOPE: Record<LinearScope, (l: LinearSpec) => boolean> = {
  all: () => true,
  attn: (l) => l.group === 'attn_in' || l.group === 'attn_out',
  mlp: (l) => l.group === 'mlp_in' || l.group === 'mlp_out',
};

/** The Linears of each layer a scope prunes. */
export function scopeLinears(spec: Model['spec'], cfg: Model['config'], scope: LinearScope): LinearSpec[] {
  return spec.linears(cfg).filter(GROUP_OF_SCOPE[scope]);
}

/** Reference-style depth selections: first/middle/last third of the layers. */
export function parseLayerSelection(spec: string, numLayers: number): number[] {
  const third = Math.ceil(numLayers / 3);
  const named: Record<string, [number, number]> = {
    all: [0, numLayers],
    first: [0, third],
    middle: [third, Math.min(numLayers, 2 * third)],
    last: [Math.min(numLayers, 2 * third), numLayers],
  };
  const out = new Set<number>();
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const n = named[part];
    if (n) {
      for (let i = n[0]; i < n[1]; i++) out.add(i);
      continue;
    }
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`bad layer selection "${part}" (use all, first, middle, last, an index or a range like 4-11)`);
    const a = Number(m[1]);
    const b = m[2] === undefined ? a : Number(m[2]);
    if (a > b || b >= numLayers) throw new Error(`layer range "${part}" is outside [0, ${numLayers - 1}]`);
    for (let i = a; i <= b; i++) out.add(i);
  }
  if (out.size === 0) throw new Error(`layer selection "${spec}" selects no layer`);
  return [...out].sort((x, y) => x - y);
}

/** A compressed-tensors (pack-quantized) model is not pruned, quantized or cut again: its source is. */
export function refuseCompressed(model: Model): void {
  if (model.compressed)
    throw new CheckpointError(
      `${model.dir}: is a compressed-tensors (pack-quantized) checkpoint; prune, quantize or remove experts from the unquantized model it came from`,
    );
}

/** rac.json options.hessian_scale (see compress/hessian.ts for what n is and what it changes). */
const HESSIAN_SCALE_NOTE = '2/n · Σ w·xxᵀ over real (unpadded) calibration tokens, n = Σ w·tokens';

/** Prune `model` with `calib` and write the result to `outDir`. */
export async function pruneCheckpoint(
  model: Model,
  calibIn: CalibSet | null,
  outDir: string,
  opts: PruneOptions,
  version: string,
): Promise<PruneSummary> {
  refuseCompressed(model);
  if (opts.removeExperts || EXPERT_METHODS.includes(opts.method)) return removeExpertsThenPrune(model, calibIn, outDir, opts, version);
  const t0 = performance.now();
  checkOptions(model, calibIn, opts);
  const quant = opts.quant;
  const calib: CalibSet = calibIn ?? { sequences: [], tokens: 0, source: { kind: 'none' } };
  const statsFree = !calibIn; // rtn without calibration: no capture, no error statistics
  const { spec, config: cfg } = model;
  const L = cfg.numLayers;
  const selected = new Set(opts.layers ?? Array.from({ length: L }, (_, i) => i));
  const linearSpecs = spec.linears(cfg).filter(GROUP_OF_SCOPE[opts.linears]);
  const asymmetric = !!opts.asymmetric;
  const reference = asymmetric && opts.reference && opts.reference !== model ? opts.reference : null;
  const tokenWeights = opts.tokenWeights ?? UNIFORM_TOKEN_WEIGHTS;
  const owl = opts.sparsityProfile && opts.sparsityProfile !== 'uniform' ? opts.sparsityProfile.owl : null;
  // Quantization: every tensor's type under the scheme (over the whole model, as llama-quantize
  // decides it); rac quantizes the selected layers' Linears (experts included), the embedding and
  // an untied head.
  const plan = quant ? quantPlan(model, quant, opts.imatrix, opts.imatrixFile) : null;
  const quantNames: string[] = [];
  const skipped: string[] = [];
  if (plan) {
    const names = [...[...selected].flatMap((l) => scopeTensors(model, l, opts.linears).map((t) => t.name)), spec.embedName];
    if (!model.tiedHead) names.push(spec.lmHeadName);
    for (const name of names) (plan.tensors.get(name)?.type ? quantNames : skipped).push(name);
  }
  // q4_0 / q8_0: the quantized Linears are written compressed-tensors pack-quantized (ct-output.ts)
  // in place of their .weight; what is not a Linear (the embedding, an untied lm_head) stays F32
  // with its blocks in quant_blocks.safetensors, as every quantized tensor of the other schemes.
  const packedScheme = plan && isPackedScheme(plan.scheme) ? plan.scheme : null;
  const packedNames = new Set(packedScheme ? quantNames.filter((n) => n !== spec.embedName && n !== spec.lmHeadName) : []);
  const replace = packedNames.size > 0 ? packedReplacements([...packedNames].map((n) => ({ name: n, ...plan!.tensors.get(n)! }))) : null;
  /** A packed Linear's GGUF blocks from its quantizer until its layer is written. */
  const packedBlocks = new Map<string, Uint8Array>();
  const widen = new Set(quantNames.filter((n) => !packedNames.has(n)));
  const bs = opts.blocksize ?? 128;
  if (plan && (opts.method === 'gptq' || opts.method === 'sparsegpt') && bs % 256 !== 0 && 256 % bs !== 0) {
    const k = quantNames.find((n) => plan.tensors.get(n)!.type!.endsWith('_K'));
    if (k)
      throw new Error(
        `--blocksize ${bs}: GPTQ onto ${plan.tensors.get(k)!.type} (256-weight super-blocks) needs a block size that divides 256 or is a multiple of it`,
      );
  }
  const quantized = new Map<string, QuantizedTensor>();
  const D = cfg.hiddenSize;
  const { padded, rowWeights, n } = calibBatches(calib, opts.batchTokens, tokenWeights);
  // Statistics: none for magnitude / rtn without the error report; Wanda without it needs only diag(XᵀX).
  const needStats = !statsFree && (!['magnitude', 'rtn'].includes(opts.method) || opts.errorStats !== false);
  const diagonalOnly = opts.method === 'wanda' && opts.errorStats === false;
  const attn = linearSpecs.filter((x) => GROUP_OF_SCOPE.attn(x));
  const mlp = linearSpecs.filter((x) => GROUP_OF_SCOPE.mlp(x));
  if (needStats && !(n > 0)) throw new Error(`--token-weights ${JSON.stringify(tokenWeights)} leave no calibration token with weight > 0`);
  const stages = needStats && opts.trueSequential && attn.length > 0 && mlp.length > 0 ? [attn, mlp] : [linearSpecs];

  const sizes = padded.map((pb) => pb.B * pb.T * D);
  const memory = opts.memoryLimitBytes ?? 4 * 2 ** 30;
  // The source card, read before any work: through model-file.ts, so a README.md symlinked out of
  // the model directory (or a FIFO) is refused rather than copied into the pruned model's card.
  const sourceCard = readCard(model.dir);
  // The writer first: a refused --out must leave nothing behind (no spill files, no sessions).
  const writer = CheckpointWriter.begin(model.tensors, outDir, {
    overwrite: opts.overwrite,
    widen,
    ...(replace ? { replace, index: true } : {}),
  });
  let blocks: SafetensorsWriter | null = null;
  /** The quantizer of a tensor rac quantizes (its type, importance weights, and where its bytes go). */
  const quantOf = (name: string): LinearQuant | null => {
    const t = plan?.tensors.get(name);
    if (!plan || !t?.type || !(widen.has(name) || packedNames.has(name))) return null;
    const imatrix = plan.imatrix(name);
    return {
      type: t.type,
      ...(imatrix ? { imatrix } : {}),
      note: (bytes, method) => {
        if (packedNames.has(name)) packedBlocks.set(name, bytes);
        else blocks!.write(name, bytes);
        quantized.set(name, {
          type: t.type!,
          method,
          rows: t.rows,
          cols: t.cols,
          imatrix: !!imatrix,
          bytes: bytes.length,
          ...(t.fallbackFrom ? { fallback_from: t.fallbackFrom } : {}),
        });
      },
    };
  };
  const stores: HiddenStore[] = [];
  let runner: LayerRunner | null = null;
  let gemm: OrtGemm | null = null;
  const reports: LayerReport[] = [];
  try {
    // Spill files inside the output's temp dir: removed with it on a signal or by the next run.
    if (plan) {
      const entries = [...widen].map((name) => {
        const t = plan.tensors.get(name)!;
        return { name, dtype: 'U8', shape: [t.rows, rowBytes(t.type!, t.cols)] };
      });
      blocks = SafetensorsWriter.create(join(writer.tmpDir, QUANT_BLOCKS_FILE), entries, {
        format: 'pt',
        rac: `GGUF block bytes (${quant})`,
      });
    }
    stores.push(new HiddenStore(sizes, memory, writer.tmpDir), new HiddenStore(sizes, memory, writer.tmpDir));
    let [input, output] = stores as [HiddenStore, HiddenStore];
    // Asymmetric calibration: the reference stream (the input checkpoint's own hidden states).
    let [refIn, refOut] = asymmetric
      ? [new HiddenStore(sizes, memory, writer.tmpDir), new HiddenStore(sizes, memory, writer.tmpDir)]
      : [null, null];
    if (refIn && refOut) stores.push(refIn, refOut);
    if (!statsFree) runner = await LayerRunner.create(spec, cfg, opts.runtime);
    gemm = createOrtGemm(opts.runtime);
    let E = model.embedding();
    const eq = quantOf(spec.embedName);
    if (eq) {
      // The embedding table (the tied output too) in its type, as the GGUF will hold it; the pruned
      // layers are then calibrated on what the quantized model embeds.
      E = E.slice();
      eq.note(roundToNearest(E, cfg.vocabSize, cfg.hiddenSize, eq), 'rtn');
      writer.writeF32(spec.embedName, E);
    }
    // Both streams start from the same embeddings (the stores only read what they hold).
    const refStart = refIn;
    padded.forEach((pb, i) => {
      const e = embedRows(E, cfg, pb.ids);
      input.put(i, e);
      refStart?.put(i, e);
    });
    let owlRecord: OwlRecord | undefined;
    const targetOf = new Map<number, SparsityTarget>();
    if (owl && opts.target.kind === 'unstructured') {
      // The dense model's statistics: every layer forward on the dense outputs of the one before.
      const t = performance.now();
      const stats = await owlLayerStats(model, runner!, [input, output], padded, rowWeights, selected, linearSpecs, owl.m);
      padded.forEach((pb, i) => input.put(i, embedRows(E, cfg, pb.ids)));
      const layers = [...selected].sort((a, b) => a - b);
      const params = layers.map((l) => stats.get(l)!.params);
      const targets = owlTargets(
        layers.map((l) => stats.get(l)!.ratio),
        params,
        opts.target.sparsity,
        owl.lambda,
      );
      layers.forEach((l, i) => targetOf.set(l, { kind: 'unstructured', sparsity: targets[i]! }));
      owlRecord = {
        profile: 'owl',
        m: owl.m,
        lambda: owl.lambda,
        statistics:
          'pre-pass of the dense model over the calibration set (‖X_j‖ of each layer from the unpruned layers before it; token weights applied)',
        seconds: (performance.now() - t) / 1000,
        mean_target: targets.reduce((a, x, i) => a + x * params[i]!, 0) / params.reduce((a, p) => a + p, 0),
        layers: layers.map((l, i) => ({
          layer: l,
          outlier_ratio: stats.get(l)!.ratio,
          target: targets[i]!,
          sparsity: 0,
          weights: params[i]!,
        })),
      };
    }

    const run: PruneRun = {
      model,
      opts,
      runner,
      gemm,
      padded,
      rowWeights,
      n,
      tokenWeights,
      needStats,
      diagonalOnly,
      stages,
      quantOf,
      reference,
    };
    for (let l = 0; l < L; l++) {
      const timer = new PhaseTimer();
      const layerTarget = targetOf.get(l);
      const job: LayerJob = {
        l,
        w: model.layerWeights(l),
        rep: {
          layer: l,
          pruned: selected.has(l),
          linears: {},
          seconds: timer.seconds,
          ...(layerTarget?.kind === 'unstructured' ? { target: layerTarget.sparsity } : {}),
        },
        timer,
        opts: layerOptions(opts, layerTarget),
        progress: (phase, extra = {}) => opts.onProgress?.({ layer: l, layers: L, phase, ...extra }),
        input,
        output,
        refIn,
        refOut,
        pruned: new Map(),
      };
      const step = model.experts(l) ? moeLayerStep : denseLayerStep;
      if (job.rep.pruned) await step.calibrate(run, job);
      await timer.time('recompute', () => step.recompute(run, job)); // the pruned layer's outputs: the next layer's inputs
      await timer.time('write', () =>
        writeLayer(writer, model, l, job.pruned, (name) => {
          const b = packedBlocks.get(name);
          if (!b) return false;
          const t = plan!.tensors.get(name)!;
          writePackedFromBlocks(writer, name, b, t.type!, t.rows, t.cols);
          packedBlocks.delete(name);
          return true;
        }),
      );
      timer.finish();
      reports.push(job.rep);
      job.progress('done', { report: job.rep });
      [input, output] = [output, input];
      [refIn, refOut] = [refOut, refIn];
    }

    let lmHead: LinearReport | undefined;
    if (opts.pruneLmHead && runner) {
      lmHead = await pruneLmHead(model, runner, input, rowWeights, n, diagonalOnly, opts, gemm, writer, quantOf(spec.lmHeadName));
    } else if (!model.tiedHead && quantOf(spec.lmHeadName)) {
      const W = model.read(spec.lmHeadName).slice();
      const hq = quantOf(spec.lmHeadName)!;
      hq.note(roundToNearest(W, cfg.vocabSize, cfg.hiddenSize, hq), 'rtn');
      writer.writeF32(spec.lmHeadName, W);
    }

    const quantization = quant ? quantizationRecord(quant, quantized, skipped, reports, lmHead, opts) : undefined;
    blocks?.close();
    blocks = null;
    if (owlRecord) {
      for (const e of owlRecord.layers) {
        const lin = layerLinearReports(reports[e.layer]!);
        e.sparsity = lin.reduce((a, x) => a + x.zeros, 0) / lin.reduce((a, x) => a + x.rows * x.cols, 0);
      }
    }
    const summary = pruneSummary(model, opts, version, {
      selected,
      calib,
      reports,
      lmHead,
      quantization,
      owl: owlRecord,
      tokenWeights,
      seconds: (performance.now() - t0) / 1000,
    });
    for (const st of stores) st.close(); // before the temp dir becomes the output
    writer.finish({
      [RAC_JSON]: formatRacJson(summary),
      'README.md': prunedModelCard(summary, sourceCard ?? null),
      ...(replace && packedScheme ? { 'config.json': compressedConfigText(model, packedScheme, packedNames) } : {}),
    });
    return summary;
  } catch (e) {
    blocks?.abort();
    writer.abort();
    throw e;
  } finally {
    for (const st of stores) st.close();
    await runner?.release();
    await gemm?.release();
  }
}

/**
 * Expert removal (prune/expert-removal.ts), alone (methods reap / frequency) or followed by the
 * method's pruning / quantization of what is left, on the same calibration set: the smaller model
 * goes to a scratch directory beside `outDir` and is pruned from there into `outDir`.
 */
async function removeExpertsThenPrune(
  model: Model,
  calib: CalibSet | null,
  outDir: string,
  opts: PruneOptions,
  version: string,
): Promise<PruneSummary> {
  const t0 = performance.now();
  const only = EXPERT_METHODS.includes(opts.method);
  if (!opts.removeExperts)
    throw new Error(`--method ${opts.method} needs --experts (a fraction in (0, 1) or a count of experts to remove per layer)`);
  // Methods reap / frequency name the scoring; with another method, removeExperts.scoring does.
  const removal = only ? { ...opts.removeExperts, scoring: opts.method as 'reap' | 'frequency' } : opts.removeExperts;
  if (!calib) throw new Error(`expert removal (${removal.scoring}) needs a calibration set`);
  checkExpertRemoval(model, removal);
  if (!only) checkOptions(model, calib, opts);
  else if (opts.quant)
    throw new Error(
      `--method ${opts.method} only removes experts; quantize with a method that quantizes (gptq, rtn, sparsegpt --quant) and --experts`,
    );
  if (existsSync(outDir) && !opts.overwrite)
    throw new CheckpointError(`${resolve(outDir)}: already exists (choose another --out, or pass --overwrite)`);
  const sourceCard = readCard(model.dir);
  const scratch = scratchDir(resolve(outDir));
  try {
    const { record, plan } = await scoreExperts(
      model,
      calib,
      {
        scoring: removal.scoring,
        experts: removal.experts,
        batchTokens: opts.batchTokens,
        ...(opts.tokenWeights ? { tokenWeights: opts.tokenWeights } : {}),
        ...(opts.memoryLimitBytes !== undefined ? { memoryLimitBytes: opts.memoryLimitBytes } : {}),
        ...(opts.runtime ? { runtime: opts.runtime } : {}),
        onProgress: (e) => e.phase === 'done' && opts.onProgress?.({ layer: e.layer, layers: e.layers, phase: 'done' }),
      },
      scratch.dir,
    );
    if (only) {
      const summary = expertRemovalSummary(model, opts, version, record, (performance.now() - t0) / 1000);
      writeWithoutExperts(
        model,
        plan,
        outDir,
        { [RAC_JSON]: formatRacJson(summary), 'README.md': prunedModelCard(summary, sourceCard ?? null) },
        opts.overwrite,
      );
      return summary;
    }
    const mid = join(scratch.dir, 'experts-removed');
    writeWithoutExperts(model, plan, mid, {});
    const small = Model.open(mid);
    try {
      const { removeExperts: _, ...rest } = opts;
      return await pruneCheckpoint(small, calib, outDir, { ...rest, provenance: { source: model, expertRemoval: record } }, version);
    } finally {
      small.close();
    }
  } finally {
    scratch.release();
  }
}

/** rac.json of an expert removal alone (methods reap / frequency). */
function expertRemovalSummary(
  model: Model,
  opts: PruneOptions,
  version: string,
  record: ExpertRemovalRecord,
  seconds: number,
): PruneSummary {
  const sourceHub = hubSourceOf(model.dir);
  return {
    rac_version: version,
    created: new Date().toISOString(),
    source_model: model.dir,
    ...(sourceHub ? { source_hub: sourceHub } : {}),
    architecture: model.config.modelType,
    method: opts.method,
    options: {
      experts: record.experts_before - record.experts_after,
      batch_tokens: opts.batchTokens,
      token_weights: { ...(opts.tokenWeights ?? UNIFORM_TOKEN_WEIGHTS) },
      embeddings: 'untouched',
      lm_head: model.tiedHead ? 'tied' : 'untouched',
    },
    calibration: record.calibration,
    layers: [],
    expert_removal: record,
    totals: { pruned_linears: 0, zeros: 0, weights: 0, sparsity: 0, seconds },
  };
}

/** Every refusal pruneCheckpoint makes before any work (one line each). */
function checkOptions(model: Model, calibIn: CalibSet | null, opts: PruneOptions): void {
  const L = model.config.numLayers;
  if (QUANT_METHODS.includes(opts.method) && !opts.quant) throw new Error(`--method ${opts.method} quantizes: it needs a format (--quant)`);
  if (opts.imatrix && !opts.quant) throw new Error('an importance matrix is for quantization: give --quant');
  if (QUANT_METHODS.includes(opts.method) && !(opts.target.kind === 'unstructured' && opts.target.sparsity === 0)) {
    throw new Error(`--method ${opts.method} does not prune; prune with sparsegpt (joint) or run rtn on a pruned model`);
  }
  if (!calibIn && opts.method !== 'rtn') throw new Error(`${opts.method} needs a calibration set`);
  for (const i of opts.layers ?? []) if (!Number.isInteger(i) || i < 0 || i >= L) throw new Error(`layer ${i} is outside [0, ${L})`);
  if (opts.pruneLmHead && model.tiedHead) {
    throw new Error(
      `${model.dir}: lm_head is tied to the embeddings (tie_word_embeddings); pruning it would prune the embedding table too`,
    );
  }
  if (calibIn && calibIn.sequences.length === 0) throw new Error('the calibration set is empty');
  if (opts.asymmetric && opts.method !== 'sparsegpt' && opts.method !== 'gptq')
    throw new Error(`--asymmetric reconstructs through SparseGPT's or GPTQ's solver; ${opts.method} has none`);
  const reference = opts.asymmetric && opts.reference && opts.reference !== model ? opts.reference : null;
  if (reference && JSON.stringify(reference.config) !== JSON.stringify(model.config))
    throw new Error(`${reference.dir}: the reference model's config differs from ${model.dir}'s`);
  validateTokenWeights(opts.tokenWeights ?? UNIFORM_TOKEN_WEIGHTS);
  const owl = opts.sparsityProfile && opts.sparsityProfile !== 'uniform' ? opts.sparsityProfile.owl : null;
  if (owl) {
    if (opts.target.kind !== 'unstructured')
      throw new Error('--sparsity-profile owl needs an unstructured --sparsity (N:M fixes the sparsity of every group)');
    if (!PRUNE_METHODS.includes(opts.method))
      throw new Error(`--sparsity-profile owl needs a pruning method (sparsegpt, wanda, magnitude), not ${opts.method}`);
    owlTargets([0], [1], opts.target.sparsity, owl.lambda); // validates sparsity ± lambda
    if (!(owl.m > 0) || !Number.isFinite(owl.m)) throw new Error(`--owl-m must be a number > 0, got ${owl.m}`);
  }
  const min = opts.minExpertTokens;
  if (min !== undefined && !(Number.isInteger(min) && min >= 0)) throw new Error(`--min-expert-tokens must be an integer ≥ 0, got ${min}`);
}

/** lm_head, calibrated on the final-normed hidden states of the pruned model; written to the checkpoint. */
async function pruneLmHead(
  model: Model,
  runner: LayerRunner,
  hidden: HiddenStore,
  rowWeights: Float32Array[],
  n: number,
  diagonal: boolean,
  opts: PruneOptions,
  gemm: Gemm,
  writer: CheckpointWriter,
  quant: LinearQuant | null,
): Promise<LinearReport> {
  const { config: cfg, spec } = model;
  const normW = model.finalNorm();
  const sum = new XtxSum(cfg.hiddenSize, diagonal);
  for (let b = 0; b < rowWeights.length; b++) sum.add(await runner.captureHead(normW, hidden.get(b), rowWeights[b]!, diagonal));
  const W = model.read(spec.lmHeadName);
  const report = await pruneLinear(W, cfg.vocabSize, cfg.hiddenSize, sum, n, opts, gemm, quant);
  writer.writeF32(spec.lmHeadName, W);
  return report;
}

function quantizationRecord(
  scheme: QuantScheme,
  quantized: Map<string, QuantizedTensor>,
  skipped: string[],
  reports: LayerReport[],
  lmHead: LinearReport | undefined,
  opts: PruneOptions,
): QuantizationRecord {
  const tensors: QuantizationRecord['tensors'] = {};
  const types: Record<string, number> = {};
  let bytes = 0;
  let weights = 0;
  for (const [name, q] of quantized) {
    const { bytes: b, ...rec } = q;
    tensors[name] = rec;
    types[q.type] = (types[q.type] ?? 0) + 1;
    bytes += b;
    weights += q.rows * q.cols;
  }
  let qz = 0;
  let qn = 0;
  for (const lr of [...reports.flatMap(layerLinearReports), lmHead]) {
    if (!lr?.quant) continue;
    qz += lr.zeros;
    qn += lr.rows * lr.cols;
  }
  let imatrix: QuantizationRecord['imatrix'];
  if (opts.imatrix) {
    const used = Object.values(tensors).filter((t) => t.imatrix).length;
    imatrix = {
      ...(opts.imatrixFile
        ? { file: opts.imatrixFile, sha256: createHash('sha256').update(readFileSync(opts.imatrixFile)).digest('hex') }
        : {}),
      datasets: opts.imatrix.datasets,
      chunk_count: opts.imatrix.chunkCount,
      tensors_with_entry: used,
    };
  }
  return {
    format: scheme,
    file_type: SCHEME_INFO[scheme].ftype,
    layout: quantLayout(scheme),
    tensors,
    types,
    blocks_file: QUANT_BLOCKS_FILE,
    bits_per_weight: weights ? (8 * bytes) / weights : 0,
    ...(imatrix ? { imatrix } : {}),
    skipped,
    sparsity_after: qn ? qz / qn : 0,
  };
}

/** rac.json. */
function pruneSummary(
  model: Model,
  opts: PruneOptions,
  version: string,
  r: {
    selected: Set<number>;
    calib: CalibSet;
    reports: LayerReport[];
    lmHead?: LinearReport;
    quantization?: QuantizationRecord;
    owl?: OwlRecord;
    tokenWeights: TokenWeights;
    seconds: number;
  },
): PruneSummary {
  let zeros = 0;
  let weights = 0;
  let count = 0;
  for (const lr of [...r.reports.flatMap(layerLinearReports), r.lmHead]) {
    if (!lr) continue;
    zeros += lr.zeros;
    weights += lr.rows * lr.cols;
    count++;
  }
  const quant = opts.quant;
  // After an expert removal, the run's source is the model the experts were removed from.
  const source = opts.provenance?.source ?? model;
  const sourceHub = hubSourceOf(source.dir);
  return {
    rac_version: version,
    created: new Date().toISOString(),
    source_model: source.dir,
    ...(sourceHub ? { source_hub: sourceHub } : {}),
    architecture: model.config.modelType,
    method: opts.method,
    ...describeTarget(opts.target),
    options: {
      linears: opts.linears,
      layers: [...r.selected].sort((a, b) => a - b),
      true_sequential: !!opts.trueSequential,
      ...(opts.asymmetric ? { asymmetric: true } : {}),
      ...(opts.method === 'sparsegpt' ? { blocksize: opts.blocksize ?? 128, percdamp: opts.percdamp ?? 0.01 } : {}),
      ...(opts.method === 'magnitude' ? { magnitude_scope: opts.magnitudeScope ?? 'layer' } : {}),
      batch_tokens: opts.batchTokens,
      hessian_scale: HESSIAN_SCALE_NOTE,
      embeddings: r.quantization?.tensors[model.spec.embedName]
        ? `rounded to ${r.quantization.tensors[model.spec.embedName]!.type} (RTN)`
        : 'untouched',
      lm_head: opts.pruneLmHead
        ? 'pruned'
        : model.tiedHead
          ? 'tied'
          : r.quantization?.tensors[model.spec.lmHeadName]
            ? `rounded to ${r.quantization.tensors[model.spec.lmHeadName]!.type} (RTN)`
            : 'untouched',
      ...(quant ? { quant } : {}),
      token_weights: { ...r.tokenWeights },
      ...(hasMoeLayers(model.config)
        ? { moe_calibration: opts.moeCalibration ?? 'routed', min_expert_tokens: opts.minExpertTokens ?? MIN_EXPERT_TOKENS }
        : {}),
      sparsity_profile: r.owl ? { owl: { m: r.owl.m, lambda: r.owl.lambda } } : 'uniform',
    },
    calibration: {
      ...r.calib.source,
      tokens: r.calib.tokens,
      sequences: r.calib.sequences.length,
      ...(isUniform(r.tokenWeights) ? {} : { token_classes: classCounts(r.calib.sequences) }),
    },
    layers: r.reports,
    ...(r.lmHead ? { lm_head: r.lmHead } : {}),
    ...(r.quantization ? { quantization: r.quantization } : {}),
    ...(r.owl ? { sparsity_profile: r.owl } : {}),
    ...(opts.provenance ? { expert_removal: opts.provenance.expertRemoval } : {}),
    totals: {
      pruned_linears: count,
      zeros,
      weights,
      sparsity: weights ? zeros / weights : 0,
      seconds: r.seconds + (opts.provenance?.expertRemoval.seconds ?? 0),
    },
  };
}

/** A quantized tensor as rac.json records it (and its byte count, for the bits per weight). */
type QuantizedTensor = QuantizationRecord['tensors'][string] & { bytes: number };

/**
 * Write layer l's Linear tensors: the pruned ones from `pruned` (by HF name; `pack` writes a
 * packed one pack-quantized and says so), every other one copied byte for byte.
 */
function writeLayer(
  writer: CheckpointWriter,
  model: Model,
  l: number,
  pruned: Map<string, Float32Array>,
  pack: (name: string) => boolean,
): void {
  for (const name of layerTensorNames(model, l)) {
    const W = pruned.get(name);
    if (W) {
      if (!pack(name)) writer.writeF32(name, W);
    } else writer.copy(name);
  }
}

/** Every Linear weight of layer l (an MoE layer's attention, router and experts), by HF name. */
function layerTensorNames(model: Model, l: number): string[] {
  const names = layerLinears(model.spec, model.config, l).map((ls) => model.tensorName(l, ls.module));
  const ex = model.experts(l);
  if (ex) {
    names.push(model.tensorName(l, ex.routerModule));
    for (let j = 0; j < ex.count; j++) for (const ls of ex.linears) names.push(model.expertTensorName(l, j, ls.module));
  }
  return names;
}

/** The Linears of layer l a scope prunes, as (HF name, cols): attention, dense MLP or every expert's. */
function scopeTensors(model: Model, l: number, scope: LinearScope): { name: string; cols: number }[] {
  const out = layerLinears(model.spec, model.config, l)
    .filter(GROUP_OF_SCOPE[scope])
    .map((ls) => ({ name: model.tensorName(l, ls.module), cols: ls.cols }));
  const ex = model.experts(l);
  if (ex && scope !== 'attn') {
    for (let j = 0; j < ex.count; j++)
      for (const ls of ex.linears) out.push({ name: model.expertTensorName(l, j, ls.module), cols: ls.cols });
  }
  return out;
}

function readCard(dir: string): string | undefined {
  try {
    return readModelText(dir, 'README.md');
  } catch (e) {
    if (e instanceof ModelFileError) throw new CheckpointError(e.message);
    throw e;
  }
}
