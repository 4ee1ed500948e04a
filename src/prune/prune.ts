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
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { asymmetricTarget } from '../compress/asymmetric.ts';
import type { Gemm } from '../compress/gemm.ts';
import { magnitudePrune } from '../compress/magnitude.ts';
import { describeTarget, type PruneReport, type SparsityTarget } from '../compress/masks.ts';
import { outputErrorGemm } from '../compress/metrics.ts';
import { gptqQuantize } from '../compress/gptq.ts';
import { dequantizeRows, quantizeRows, rowBytes, type GgmlQuantType } from '../compress/ggml-quants.ts';
import { SCHEME_INFO, type QuantScheme } from '../compress/quant-schemes.ts';
import { sparsegptPrune } from '../compress/sparsegpt.ts';
import { wandaPrune } from '../compress/wanda.ts';
import {
  batchRowWeights,
  classCounts,
  hessianOf,
  isUniform,
  secondMoment,
  UNIFORM_TOKEN_WEIGHTS,
  validateTokenWeights,
  weightedTokens,
  XtxSum,
  type TokenWeights,
} from '../compress/hessian.ts';
import { outlierRatio, owlTargets, type OwlOptions } from '../compress/owl.ts';
import { CheckpointError } from '../io/checkpoint.ts';
import { CheckpointWriter } from '../io/checkpoint-writer.ts';
import { hubSourceOf } from '../io/hub.ts';
import type { Imatrix } from '../io/imatrix.ts';
import { ModelFileError, readModelText } from '../io/model-file.ts';
import { SafetensorsWriter } from '../io/safetensors-writer.ts';
import { embedRows, leftPad, type Feeds } from '../models/batch.ts';
import { LayerRunner } from '../models/layer-runner.ts';
import type { Model } from '../models/model.ts';
import { groupWidth, type InputGroup, type LayerWeights, type LinearName, type LinearSpec } from '../models/spec.ts';
import { createOrtGemm, type OrtGemm } from '../runtime/gemm.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { makeBatches, type CalibSet } from './calib.ts';
import { quantPlan } from './quant-plan.ts';
import { HiddenStore } from './hidden-store.ts';
import { prunedModelCard } from './model-card.ts';
import {
  formatRacJson,
  RAC_JSON,
  type LayerReport,
  type LinearReport,
  type OwlRecord,
  type PruneMethod,
  type PruneSummary,
  type QuantizationRecord,
} from './rac-json.ts';

export type { PruneMethod } from './rac-json.ts';
/** The pruning methods (recipes' `methods`). */
export const PRUNE_METHODS: readonly PruneMethod[] = ['sparsegpt', 'wanda', 'magnitude'];
/** Quantization-only methods: need `quant`, prune nothing (rtn reads no calibration). */
export const QUANT_METHODS: readonly PruneMethod[] = ['gptq', 'rtn'];
/** The sidecar with the GGUF block bytes of every quantized tensor (`<name>` → U8 (rows, row bytes), HF row order). */
export const QUANT_BLOCKS_FILE = 'quant_blocks.safetensors';
export type LinearScope = 'all' | 'attn' | 'mlp';

export interface PruneOptions {
  method: PruneMethod;
  /**
   * Quantize to ggml types under a scheme (compress/quant-schemes.ts: one type, or a llama.cpp
   * mix with its per-tensor types): gptq (alone), sparsegpt (joint: one OBS walk prunes and
   * quantizes), rtn / wanda / magnitude (round to nearest after any pruning, llama.cpp's quantizer
   * byte for byte). The embedding table (and an untied lm_head) gets the scheme's type for it by
   * RTN (GPTQ with pruneLmHead). Quantized tensors are written as F32 dequantized values, their
   * GGUF block bytes to quant_blocks.safetensors.
   */
  quant?: QuantScheme;
  /** An importance matrix (llama-imatrix's format) for the quantizers' block choices, as llama-quantize --imatrix. */
  imatrix?: Imatrix;
  /** Where `imatrix` was read (recorded with its sha256). */
  imatrixFile?: string;
  target: SparsityTarget;
  /** Which Linears of each selected layer: all, attention (q/k/v/o) or MLP (gate/up/down). */
  linears: LinearScope;
  /** Selected layer indices (default: every layer). */
  layers?: number[];
  /** Re-capture the MLP inputs after pruning the attention Linears. */
  trueSequential?: boolean;
  magnitudeScope?: 'layer' | 'row';
  blocksize?: number;
  percdamp?: number;
  /** Padded tokens per calibration batch (B·T). */
  batchTokens: number;
  /** Bytes of hidden states kept in memory per store before spilling to disk. */
  memoryLimitBytes?: number;
  /**
   * Also prune lm_head, calibrated on the final-normed hidden states of the pruned model. Refused
   * for tied embeddings (it would prune the embedding table too). Default false.
   */
  pruneLmHead?: boolean;
  /**
   * Per-token weights by position class (prompt / think / answer tokens of `prompt` and `rac`
   * calibration sequences), multiplied into the sequence weight: rows enter XᵀX scaled by √w and
   * n = Σ w (compress/hessian.ts). Default 1,1,1 (bit-identical to no token weights); prompt 0 =
   * decode tokens only. Unclassified sequences (text, --calib files) keep their sequence weight.
   */
  tokenWeights?: TokenWeights;
  /**
   * Per-layer sparsity: 'uniform' (default: every layer at `target`) or OWL (compress/owl.ts):
   * per-layer targets within sparsity ± lambda from the outlier ratio of |W|·‖X‖ (M × the layer's
   * mean), averaging to the target over all pruned weights. ‖X‖ comes from a pre-pass of the
   * DENSE model over the calibration set. Unstructured targets and pruning methods only.
   */
  sparsityProfile?: 'uniform' | { owl: OwlOptions };
  /**
   * Asymmetric calibration (compress/asymmetric.ts, GPTAQ's objective): SparseGPT / GPTQ
   * reconstruct the outputs the INPUT checkpoint's layer gives on its own stream, ‖XWᵀ − X̃Ŵᵀ‖²,
   * instead of the dense weights on the pruned model's stream, ‖X̃Wᵀ − X̃Ŵᵀ‖², so the error the
   * layers before left is corrected rather than carried on. A second (reference) stream of hidden
   * states runs beside the pruned one: twice the capture forward, two more hidden stores, and
   * one (cols, cols) solve per Linear. Default false.
   */
  asymmetric?: boolean;
  /**
   * With `asymmetric`: the model whose stream is reconstructed (default: the input model). Staged
   * refresh prunes a partly pruned checkpoint and passes the dense model here, so every stage
   * reconstructs the dense model's outputs. Same architecture and shapes as the input model.
   */
  reference?: Model;
  /** Compute ‖XWᵀ − XŴᵀ‖²/n per Linear (one extra GEMM pass per Linear). Default true. */
  errorStats?: boolean;
  overwrite?: boolean;
  runtime?: Partial<RuntimeOptions>;
  onProgress?: (e: PruneProgress) => void;
}

export interface PruneProgress {
  layer: number;
  layers: number;
  phase: 'capture' | 'prune' | 'recompute' | 'write' | 'done';
  batch?: number;
  batches?: number;
  linear?: LinearName;
  report?: LayerReport;
}

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
  const t0 = performance.now();
  const quant = opts.quant;
  if (QUANT_METHODS.includes(opts.method) && !quant) throw new Error(`--method ${opts.method} quantizes: it needs a format (--quant)`);
  if (opts.imatrix && !quant) throw new Error('an importance matrix is for quantization: give --quant');
  if (QUANT_METHODS.includes(opts.method) && !(opts.target.kind === 'unstructured' && opts.target.sparsity === 0)) {
    throw new Error(`--method ${opts.method} does not prune; prune with sparsegpt (joint) or run rtn on a pruned model`);
  }
  if (!calibIn && opts.method !== 'rtn') throw new Error(`${opts.method} needs a calibration set`);
  const calib: CalibSet = calibIn ?? { sequences: [], tokens: 0, source: { kind: 'none' } };
  const statsFree = !calibIn; // rtn without calibration: no capture, no error statistics
  const { spec, config: cfg } = model;
  const L = cfg.numLayers;
  const selected = new Set(opts.layers ?? Array.from({ length: L }, (_, i) => i));
  for (const i of selected) if (!Number.isInteger(i) || i < 0 || i >= L) throw new Error(`layer ${i} is outside [0, ${L})`);
  const linearSpecs = spec.linears(cfg).filter(GROUP_OF_SCOPE[opts.linears]);
  if (opts.pruneLmHead && model.tiedHead) {
    throw new Error(
      `${model.dir}: lm_head is tied to the embeddings (tie_word_embeddings); pruning it would prune the embedding table too`,
    );
  }
  if (calibIn && calib.sequences.length === 0) throw new Error('the calibration set is empty');
  const asymmetric = !!opts.asymmetric;
  if (asymmetric && opts.method !== 'sparsegpt' && opts.method !== 'gptq')
    throw new Error(`--asymmetric reconstructs through SparseGPT's or GPTQ's solver; ${opts.method} has none`);
  const reference = asymmetric && opts.reference && opts.reference !== model ? opts.reference : null;
  if (reference && JSON.stringify(reference.config) !== JSON.stringify(model.config))
    throw new Error(`${reference.dir}: the reference model's config differs from ${model.dir}'s`);
  const tokenWeights = opts.tokenWeights ?? UNIFORM_TOKEN_WEIGHTS;
  validateTokenWeights(tokenWeights);
  const owl = opts.sparsityProfile && opts.sparsityProfile !== 'uniform' ? opts.sparsityProfile.owl : null;
  if (owl) {
    if (opts.target.kind !== 'unstructured')
      throw new Error('--sparsity-profile owl needs an unstructured --sparsity (N:M fixes the sparsity of every group)');
    if (!PRUNE_METHODS.includes(opts.method))
      throw new Error(`--sparsity-profile owl needs a pruning method (sparsegpt, wanda, magnitude), not ${opts.method}`);
    owlTargets([0], [1], opts.target.sparsity, owl.lambda); // validates sparsity ± lambda
    if (!(owl.m > 0) || !Number.isFinite(owl.m)) throw new Error(`--owl-m must be a number > 0, got ${owl.m}`);
  }
  // Quantization: every tensor's type under the scheme (over the whole model, as llama-quantize
  // decides it); rac quantizes the selected layers' Linears, the embedding and an untied head.
  const plan = quant ? quantPlan(model, quant, opts.imatrix, opts.imatrixFile) : null;
  const quantNames: string[] = [];
  const skipped: string[] = [];
  if (plan) {
    const names = [...[...selected].flatMap((l) => linearSpecs.map((ls) => model.tensorName(l, ls.module))), spec.embedName];
    if (!model.tiedHead) names.push(spec.lmHeadName);
    for (const name of names) (plan.tensors.get(name)?.type ? quantNames : skipped).push(name);
  }
  const widen = new Set(quantNames);
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
  const batches = makeBatches(calib.sequences, opts.batchTokens);
  const padded = batches.map((b) => leftPad(b.map((s) => s.ids)));
  const rowWeights = padded.map((pb, bi) => batchRowWeights(batches[bi]!, pb.valid, pb.T, tokenWeights));
  const n = weightedTokens(batches.flat(), tokenWeights);
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
  const writer = CheckpointWriter.begin(model.tensors, outDir, { overwrite: opts.overwrite, widen });
  let blocks: SafetensorsWriter | null = null;
  /** The quantizer of a tensor rac quantizes (its type, importance weights, and where its bytes go). */
  const quantOf = (name: string): LinearQuant | null => {
    const t = plan?.tensors.get(name);
    if (!plan || !t?.type || !widen.has(name)) return null;
    const imatrix = plan.imatrix(name);
    return {
      type: t.type,
      ...(imatrix ? { imatrix } : {}),
      note: (bytes, method) => {
        blocks!.write(name, bytes);
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
      const entries = quantNames.map((name) => {
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
      const ratios = await owlOutlierRatios(model, runner!, [input, output], padded, rowWeights, selected, linearSpecs, owl.m);
      padded.forEach((pb, i) => input.put(i, embedRows(E, cfg, pb.ids)));
      const layers = [...selected].sort((a, b) => a - b);
      const params = layers.map(() => linearSpecs.reduce((a, ls) => a + ls.rows * ls.cols, 0));
      const targets = owlTargets(
        layers.map((l) => ratios.get(l)!),
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
        layers: layers.map((l, i) => ({ layer: l, outlier_ratio: ratios.get(l)!, target: targets[i]!, sparsity: 0, weights: params[i]! })),
      };
    }

    for (let l = 0; l < L; l++) {
      const timer = new PhaseTimer();
      const w = model.layerWeights(l);
      const rep: LayerReport = { layer: l, pruned: selected.has(l), linears: {}, seconds: timer.seconds };
      const layerTarget = targetOf.get(l);
      if (layerTarget?.kind === 'unstructured') rep.target = layerTarget.sparsity;
      const layerOpts = layerTarget ? { ...opts, target: layerTarget } : opts;
      const progress = (phase: PruneProgress['phase'], extra: Partial<PruneProgress> = {}) =>
        opts.onProgress?.({ layer: l, layers: L, phase, ...extra });

      // Asymmetric: the layer's own weights, before any is pruned, run the reference stream.
      const refFeeds = refIn
        ? runner!.weightFeeds(reference ? reference.layerWeights(l) : selected.has(l) ? copyLayerWeights(w) : w)
        : null;
      let refDone = false;
      // capture → prune, per stage (true-sequential: the MLP inputs are re-captured after attention is pruned)
      for (const stage of selected.has(l) ? stages : []) {
        const groups = [...new Set(stage.map((x) => x.group))];
        const onBatch = (b: number) => progress('capture', { batch: b, batches: padded.length });
        let cross: Map<InputGroup, XtxSum> | null = null;
        let stats: Map<InputGroup, XtxSum> | null = null;
        if (refIn && refOut && refFeeds) {
          ({ stats, cross } = await captureCrossStats(
            runner!,
            w,
            refFeeds,
            input,
            refIn,
            refDone ? null : refOut,
            padded,
            rowWeights,
            groups,
            cfg,
            timer,
            onBatch,
          ));
          refDone = true;
        } else if (needStats) stats = await captureStats(runner!, w, input, padded, rowWeights, groups, cfg, diagonalOnly, timer, onBatch);
        for (const ls of stage) {
          if (stats) progress('prune', { linear: ls.name });
          const lr = await timer.time('prune', () =>
            pruneLinear(
              w.linears[ls.name],
              ls.rows,
              ls.cols,
              stats?.get(ls.group) ?? null,
              n,
              layerOpts,
              gemm!,
              quantOf(model.tensorName(l, ls.module)),
              cross?.get(ls.group) ?? null,
            ),
          );
          timer.add('factor', lr.factor_seconds ?? 0);
          timer.add('sweep', lr.sweep_seconds ?? 0);
          rep.linears[ls.name] = lr;
        }
      }
      // recompute: the pruned layer's outputs are the next layer's inputs
      await timer.time('recompute', async () => {
        if (!runner) return;
        const feeds = runner.weightFeeds(w);
        for (let b = 0; b < padded.length; b++) {
          output.put(b, await runner.forward(feeds, input.get(b), padded[b]!));
          // A layer left as it is (not selected) moves the reference stream on too.
          if (refIn && refOut && refFeeds && !refDone) refOut.put(b, await runner.forward(refFeeds, refIn.get(b), padded[b]!));
          progress('recompute', { batch: b + 1, batches: padded.length });
        }
      });
      await timer.time('write', () => writeLayer(writer, model, l, w, new Set(selected.has(l) ? linearSpecs.map((x) => x.name) : [])));
      timer.finish();
      reports.push(rep);
      progress('done', { report: rep });
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
        const lin = Object.values(reports[e.layer]!.linears);
        e.sparsity = lin.reduce((a, x) => a + x!.zeros, 0) / lin.reduce((a, x) => a + x!.rows * x!.cols, 0);
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

/** Seconds per phase of one layer (LayerReport.seconds): `time(phase, fn)` adds fn's wall time. */
class PhaseTimer {
  readonly seconds: LayerReport['seconds'] = { capture: 0, hessian: 0, prune: 0, factor: 0, sweep: 0, recompute: 0, write: 0, total: 0 };
  private readonly t0 = performance.now();

  async time<T>(phase: keyof LayerReport['seconds'], fn: () => T | Promise<T>): Promise<T> {
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.seconds[phase] += (performance.now() - t) / 1000;
    }
  }

  add(phase: keyof LayerReport['seconds'], seconds: number): void {
    this.seconds[phase] += seconds;
  }

  finish(): void {
    this.seconds.total = (performance.now() - this.t0) / 1000;
  }
}

/** Σ over batches of XᵀX (or its diagonal) for the requested groups; the forward + XᵀX graph is `capture`, the sums `hessian`. */
async function captureStats(
  runner: LayerRunner,
  w: LayerWeights,
  input: HiddenStore,
  padded: ReturnType<typeof leftPad>[],
  rowWeights: Float32Array[],
  groups: InputGroup[],
  cfg: Model['config'],
  diagonal: boolean,
  timer: PhaseTimer,
  onBatch: (b: number) => void,
): Promise<Map<InputGroup, XtxSum>> {
  const sums = new Map<InputGroup, XtxSum>();
  for (const g of groups) sums.set(g, new XtxSum(groupWidth(cfg, g), diagonal));
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
  runner: LayerRunner,
  w: LayerWeights,
  refFeeds: Feeds,
  input: HiddenStore,
  refIn: HiddenStore,
  refOut: HiddenStore | null,
  padded: ReturnType<typeof leftPad>[],
  rowWeights: Float32Array[],
  groups: InputGroup[],
  cfg: Model['config'],
  timer: PhaseTimer,
  onBatch: (b: number) => void,
): Promise<{ stats: Map<InputGroup, XtxSum>; cross: Map<InputGroup, XtxSum> }> {
  const stats = new Map<InputGroup, XtxSum>();
  const cross = new Map<InputGroup, XtxSum>();
  for (const g of groups) {
    stats.set(g, new XtxSum(groupWidth(cfg, g), false));
    cross.set(g, new XtxSum(groupWidth(cfg, g), false));
  }
  const feeds = runner.weightFeeds(w);
  for (let b = 0; b < padded.length; b++) {
    const r = await timer.time('capture', () =>
      runner.captureCross(feeds, refFeeds, input.get(b), refIn.get(b), padded[b]!, rowWeights[b]!),
    );
    await timer.time('hessian', () => {
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

/** A copy of a layer's Linear weights (biases and norms shared: pruning never touches them). */
function copyLayerWeights(w: LayerWeights): LayerWeights {
  const linears = {} as LayerWeights['linears'];
  for (const [k, v] of Object.entries(w.linears) as [LinearName, Float32Array][]) linears[k] = v.slice();
  return { linears, biases: w.biases, norms: w.norms };
}

/**
 * OWL's statistics: the outlier ratio of every selected layer, from a forward of the DENSE model
 * over the calibration batches (diagonal capture: ‖X_j‖² per input group). Leaves the stores
 * holding the last layer's dense outputs; the caller re-embeds.
 */
async function owlOutlierRatios(
  model: Model,
  runner: LayerRunner,
  stores: [HiddenStore, HiddenStore],
  padded: ReturnType<typeof leftPad>[],
  rowWeights: Float32Array[],
  selected: Set<number>,
  linearSpecs: LinearSpec[],
  m: number,
): Promise<Map<number, number>> {
  const ratios = new Map<number, number>();
  let [input, output] = stores;
  const last = Math.max(...selected);
  for (let l = 0; l <= last; l++) {
    const w = model.layerWeights(l);
    const feeds = runner.weightFeeds(w);
    const sums = new Map<InputGroup, XtxSum>();
    for (const ls of linearSpecs) if (!sums.has(ls.group)) sums.set(ls.group, new XtxSum(groupWidth(model.config, ls.group), true));
    for (let b = 0; b < padded.length; b++) {
      if (selected.has(l)) {
        const { out, xtx } = await runner.captureDiagonal(feeds, input.get(b), padded[b]!, rowWeights[b]!);
        for (const [g, s] of sums) s.add(xtx[g]);
        if (l < last) output.put(b, out);
      } else output.put(b, await runner.forward(feeds, input.get(b), padded[b]!));
    }
    if (selected.has(l)) {
      const colNorm = (g: InputGroup) => sums.get(g)!.diag().map(Math.sqrt);
      ratios.set(
        l,
        outlierRatio(
          linearSpecs.map((ls) => ({ W: w.linears[ls.name], rows: ls.rows, cols: ls.cols, colNorm: colNorm(ls.group) })),
          m,
        ),
      );
    }
    [input, output] = [output, input];
  }
  return ratios;
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
  for (const lr of [...reports.flatMap((r) => Object.values(r.linears)), lmHead]) {
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
  for (const lr of [...r.reports.flatMap((x) => Object.values(x.linears)), r.lmHead]) {
    if (!lr) continue;
    zeros += lr.zeros;
    weights += lr.rows * lr.cols;
    count++;
  }
  const quant = opts.quant;
  const sourceHub = hubSourceOf(model.dir);
  return {
    rac_version: version,
    created: new Date().toISOString(),
    source_model: model.dir,
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
    totals: { pruned_linears: count, zeros, weights, sparsity: weights ? zeros / weights : 0, seconds: r.seconds },
  };
}

/** A quantized tensor as rac.json records it (and its byte count, for the bits per weight). */
type QuantizedTensor = QuantizationRecord['tensors'][string] & { bytes: number };

/** How one tensor is quantized: its ggml type, its importance weights, and where its bytes go. */
interface LinearQuant {
  type: GgmlQuantType;
  imatrix?: Float32Array;
  note: (bytes: Uint8Array, method: 'gptq' | 'rtn' | 'joint') => void;
}

/** llama.cpp's round-to-nearest quantizer on W (rows, cols) in place (W becomes the dequantized values); the GGUF bytes. */
function roundToNearest(W: Float32Array, rows: number, cols: number, q: LinearQuant): Uint8Array {
  const bytes = quantizeRows(q.type, W, rows, cols, q.imatrix);
  W.set(dequantizeRows(q.type, bytes, W.length));
  return bytes;
}

/** Prune one Linear (rows, cols) in place given its group's XᵀX sum; returns its report. */
async function pruneLinear(
  W: Float32Array,
  rows: number,
  cols: number,
  /** The group's Σ XᵀX (or its diagonal, for Wanda without error statistics); null only for magnitude / rtn without error statistics. */
  stats: XtxSum | null,
  n: number,
  opts: PruneOptions,
  gemm: Gemm,
  /** Quantize this Linear (null: leave it as pruned). */
  quant: LinearQuant | null = null,
  /** Asymmetric calibration: the group's Σ X_refᵀX̃ (the solver then reconstructs the reference outputs). */
  cross: XtxSum | null = null,
): Promise<LinearReport> {
  const t0 = performance.now();
  const original = opts.errorStats === false || !stats ? null : W.slice();
  let H: Float32Array | null = null;
  const hessian = () => (H ??= hessianOf(stats!, n));
  let shift: number | undefined;
  if (cross && stats && (opts.method === 'sparsegpt' || opts.method === 'gptq')) {
    const a = await asymmetricTarget(W, rows, cols, hessian(), hessianOf(cross, n), gemm, { percdamp: opts.percdamp });
    shift = a.shift;
  }
  let r: PruneReport;
  if (!stats && opts.method !== 'magnitude' && opts.method !== 'rtn') throw new Error(`${opts.method} needs calibration statistics`);
  let quantMethod: 'gptq' | 'rtn' | 'joint' | undefined;
  switch (opts.method) {
    case 'rtn':
      r = { zeros: 0, total: W.length, sparsity: 0 };
      break;
    case 'gptq': {
      if (quant) {
        const g = await gptqQuantize(W, rows, cols, hessian(), quant.type, gemm, {
          blocksize: opts.blocksize,
          percdamp: opts.percdamp,
          ...(quant.imatrix ? { imatrix: quant.imatrix } : {}),
        });
        quant.note(g.blocks, 'gptq');
        quantMethod = 'gptq';
        r = g;
      } else r = { zeros: 0, total: W.length, sparsity: 0 };
      break;
    }
    case 'magnitude':
      r = magnitudePrune(W, rows, cols, opts.target, { scope: opts.magnitudeScope ?? 'layer' });
      break;
    case 'wanda':
      r = wandaPrune(W, rows, cols, stats!.diag(), opts.target);
      break;
    case 'sparsegpt': {
      const o = await sparsegptPrune(W, rows, cols, hessian(), opts.target, gemm, {
        blocksize: opts.blocksize,
        percdamp: opts.percdamp,
        ...(quant ? { quant: quant.type, ...(quant.imatrix ? { imatrix: quant.imatrix } : {}) } : {}),
      });
      if (quant) {
        quant.note(o.blocks!, 'joint');
        quantMethod = 'joint';
      }
      r = o;
      break;
    }
  }
  if (quant && !quantMethod) {
    // Round to nearest after pruning (zeros stay zeros on the symmetric grids: 0 is on them).
    quant.note(roundToNearest(W, rows, cols, quant), 'rtn');
    quantMethod = 'rtn';
    let z = 0;
    for (let i = 0; i < W.length; i++) if (W[i] === 0) z++;
    r = { ...r, zeros: z, sparsity: z / W.length };
  }
  const out: LinearReport = { rows, cols, zeros: r.zeros, sparsity: r.sparsity, seconds: 0 };
  if (quant && quantMethod) {
    out.quant = quant.type;
    out.quant_method = quantMethod === 'joint' ? 'gptq' : quantMethod;
  }
  if (r.loss !== undefined) out.loss = r.loss;
  if (shift !== undefined) out.target_shift = shift;
  if (r.damp !== undefined) out.damp = r.damp;
  if (r.retries !== undefined) out.retries = r.retries;
  if (r.factorSeconds !== undefined) {
    out.factor_seconds = r.factorSeconds;
    out.sweep_seconds = (r.seconds ?? 0) - r.factorSeconds;
  }
  if (original && stats) {
    const M = secondMoment(stats, n);
    out.output_error = await outputErrorGemm(original, W, M, rows, cols, gemm);
    out.output_norm = await outputErrorGemm(original, new Float32Array(W.length), M, rows, cols, gemm);
  }
  out.seconds = (performance.now() - t0) / 1000;
  return out;
}

/** Write layer l's tensors: pruned Linears from `w`, everything else copied byte for byte. */
function writeLayer(writer: CheckpointWriter, model: Model, l: number, w: LayerWeights, pruned: Set<LinearName>): void {
  for (const ls of model.spec.linears(model.config)) {
    const name = model.tensorName(l, ls.module);
    if (pruned.has(ls.name)) writer.writeF32(name, w.linears[ls.name]);
    else writer.copy(name);
  }
}

function readCard(dir: string): string | undefined {
  try {
    return readModelText(dir, 'README.md');
  } catch (e) {
    if (e instanceof ModelFileError) throw new CheckpointError(e.message);
    throw e;
  }
}
