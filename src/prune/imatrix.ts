/**
 * `rac imatrix`: llama.cpp's importance matrix from any of rac's calibration sets — per weight
 * tensor, Σ x² per input column over the calibration tokens and the token count (what
 * `llama-imatrix` collects in its matmul callback), written in its GGUF format (io/imatrix.ts).
 *
 * One forward of the model, layer by layer as the pruner runs it (the same batches, hidden-state
 * stores and diagonal capture graph): the capture returns diag(XᵀX) of each Linear input group over
 * the real tokens of a batch — padding never counts; a token's row is scaled by √w for its
 * sequence and token-class weight, so it adds w·x² and the count is Σ w. Linears that read one
 * input (q/k/v, gate/up) get the same sums under their own names, as in llama-imatrix. The
 * output projection is collected only when asked (llama-imatrix's --process-output) and only for
 * an untied head: a tied head is the token_embd table, which llama-imatrix never collects.
 * An MoE layer's experts get llama-imatrix's per-expert entries (the format's `n_mat > 1` case):
 * `blk.N.ffn_{gate,up,down}_exps.weight` with each expert's Σ w·x² over the tokens routed to it,
 * side by side (E × width), and each expert's own count (Σ w of its routed tokens).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  batchRowWeights,
  UNIFORM_TOKEN_WEIGHTS,
  validateTokenWeights,
  weightedTokens,
  XtxSum,
  type TokenWeights,
} from '../compress/hessian.ts';
import { GGUF_LINEAR } from '../compress/quant-schemes.ts';
import type { Imatrix } from '../io/imatrix.ts';
import { removeOnSignal } from '../io/temp-cleanup.ts';
import { embedRows, expertFeeds, leftPad, type PaddedBatch } from '../models/batch.ts';
import { LayerRunner } from '../models/layer-runner.ts';
import type { Model } from '../models/model.ts';
import { expertGroupWidth, groupWidth, layerLinears, type InputGroup } from '../models/spec.ts';
import { addRows, gatherRows } from '../models/moe.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { makeBatches, type CalibSet } from './calib.ts';
import { HiddenStore } from './hidden-store.ts';

export interface ImatrixOptions {
  /** Padded tokens per batch (B·T). */
  batchTokens: number;
  tokenWeights?: TokenWeights;
  /** Also the untied output projection (llama-imatrix --process-output). */
  processOutput?: boolean;
  memoryLimitBytes?: number;
  runtime?: Partial<RuntimeOptions>;
  onProgress?: (layer: number, layers: number) => void;
}

export interface ImatrixResult {
  imatrix: Imatrix;
  /** Σ w over the calibration tokens (the count of every entry). */
  tokens: number;
  sequences: number;
  seconds: number;
}

/** The importance matrix of `model` on `calib` (see the file comment). */
export async function computeImatrix(model: Model, calib: CalibSet, opts: ImatrixOptions): Promise<ImatrixResult> {
  const t0 = performance.now();
  const { spec, config: cfg } = model;
  if (calib.sequences.length === 0) throw new Error('the calibration set is empty');
  const tw = opts.tokenWeights ?? UNIFORM_TOKEN_WEIGHTS;
  validateTokenWeights(tw);
  const batches = makeBatches(calib.sequences, opts.batchTokens);
  const padded = batches.map((b) => leftPad(b.map((s) => s.ids)));
  const rowWeights = padded.map((pb, bi) => batchRowWeights(batches[bi]!, pb.valid, pb.T, tw));
  const n = weightedTokens(batches.flat(), tw);
  if (!(n > 0)) throw new Error(`--token-weights ${JSON.stringify(tw)} leave no calibration token with weight > 0`);
  const D = cfg.hiddenSize;
  const sizes = padded.map((pb) => pb.B * pb.T * D);
  const memory = opts.memoryLimitBytes ?? 4 * 2 ** 30;
  const spill = mkdtempSync(join(tmpdir(), 'rac-imatrix-'));
  const cleanup = removeOnSignal(spill); // hidden states spilled above the memory limit go here
  const stores = [new HiddenStore(sizes, memory, spill), new HiddenStore(sizes, memory, spill)];
  let runner: LayerRunner | null = null;
  const entries = new Map<string, { sums: Float32Array; counts: number[] }>();
  try {
    runner = await LayerRunner.create(spec, cfg, opts.runtime);
    let [input, output] = stores as [HiddenStore, HiddenStore];
    const E = model.embedding();
    padded.forEach((pb, i) => input.put(i, embedRows(E, cfg, pb.ids)));
    const linears = spec.linears(cfg);
    const groups = [...new Set(linears.map((l) => l.group))];
    for (let l = 0; l < cfg.numLayers; l++) {
      if (model.experts(l)) {
        await moeLayerImatrix(model, l, runner, input, output, padded, rowWeights, n, entries);
        opts.onProgress?.(l + 1, cfg.numLayers);
        [input, output] = [output, input];
        continue;
      }
      const feeds = runner.weightFeeds(model.layerWeights(l));
      const sums = new Map<InputGroup, XtxSum>(groups.map((g) => [g, new XtxSum(groupWidth(cfg, g), true)]));
      for (let b = 0; b < padded.length; b++) {
        const { out, xtx } = await runner.captureDiagonal(feeds, input.get(b), padded[b]!, rowWeights[b]!);
        for (const g of groups) sums.get(g)!.add(xtx[g]);
        output.put(b, out);
      }
      for (const ls of linears) {
        const gguf = GGUF_LINEAR[ls.name];
        if (!gguf) throw new Error(`no GGUF name for ${ls.name}`);
        entries.set(`blk.${l}.${gguf}.weight`, { sums: Float32Array.from(sums.get(ls.group)!.diag()), counts: [n] });
      }
      opts.onProgress?.(l + 1, cfg.numLayers);
      [input, output] = [output, input];
    }
    if (opts.processOutput && !model.tiedHead) {
      const normW = model.finalNorm();
      const sum = new XtxSum(D, true);
      for (let b = 0; b < padded.length; b++) sum.add(await runner.captureHead(normW, input.get(b), rowWeights[b]!, true));
      entries.set('output.weight', { sums: Float32Array.from(sum.diag()), counts: [n] });
    }
  } finally {
    for (const s of stores) s.close();
    await runner?.release();
    rmSync(spill, { recursive: true, force: true });
    cleanup.release();
  }
  // imatrix.datasets: the calibration files (llama-imatrix records its text file there).
  const listed = (calib.source['files'] as { file?: unknown }[] | undefined)?.map((x) => x.file) ?? [calib.source['file']];
  const files = listed.filter((p): p is string => typeof p === 'string');
  const maxLen = Math.max(...calib.sequences.map((s) => s.ids.length));
  return {
    imatrix: {
      entries,
      datasets: files.length ? files : [String(calib.source['kind'] ?? 'calibration')],
      chunkCount: calib.sequences.length,
      chunkSize: maxLen,
    },
    tokens: n,
    sequences: calib.sequences.length,
    seconds: (performance.now() - t0) / 1000,
  };
}

/** An MoE layer's entries (attention as a dense layer's; experts per expert, over their routed tokens); moves the hidden states on. */
async function moeLayerImatrix(
  model: Model,
  l: number,
  runner: LayerRunner,
  input: HiddenStore,
  output: HiddenStore,
  padded: PaddedBatch[],
  rowWeights: Float32Array[],
  n: number,
  entries: Map<string, { sums: Float32Array; counts: number[] }>,
): Promise<void> {
  const cfg = model.config;
  const ex = model.experts(l)!;
  const w = model.layerWeights(l);
  const feeds = runner.weightFeeds(w);
  const eFeeds = Array.from({ length: ex.count }, (_, j) => expertFeeds(ex, w.moe!, j));
  const D = cfg.hiddenSize;
  const attn = new Map<InputGroup, XtxSum>((['attn_in', 'attn_out'] as const).map((g) => [g, new XtxSum(groupWidth(cfg, g), true)]));
  const perIn = Array.from({ length: ex.count }, () => new XtxSum(D, true));
  const perOut = Array.from({ length: ex.count }, () => new XtxSum(expertGroupWidth(cfg, 'mlp_out'), true));
  const counts = new Float64Array(ex.count);
  for (let b = 0; b < padded.length; b++) {
    const rw = rowWeights[b]!;
    const r = await runner.moeRoute(ex, feeds, input.get(b), padded[b]!, rw, true);
    for (const [g, s] of attn) s.add(r.xtx[g]!);
    const out = r.h1;
    for (let j = 0; j < ex.count; j++) {
      const { rows, weights } = r.groups[j]!;
      if (rows.length === 0) continue;
      const tw = Float32Array.from(rows, (row) => rw[row]!);
      const c = await runner.expertCapture(ex, eFeeds[j]!, gatherRows(r.moeIn, D, rows), weights, tw, true);
      perIn[j]!.add(c.xtx.mlp_in);
      perOut[j]!.add(c.xtx.mlp_out);
      for (const t of tw) counts[j]! += t * t;
      addRows(out, D, rows, c.y);
    }
    output.put(b, out);
  }
  for (const ls of layerLinears(model.spec, cfg, l)) {
    entries.set(`blk.${l}.${GGUF_LINEAR[ls.name]}.weight`, { sums: Float32Array.from(attn.get(ls.group)!.diag()), counts: [n] });
  }
  const stacked = (parts: XtxSum[]) => {
    const width = parts[0]!.width;
    const sums = new Float32Array(parts.length * width);
    parts.forEach((p, j) => sums.set(p.diag(), j * width));
    return sums;
  };
  for (const ls of ex.linears) {
    entries.set(`blk.${l}.${GGUF_LINEAR[ls.name]}_exps.weight`, {
      sums: stacked(ls.group === 'mlp_in' ? perIn : perOut),
      counts: [...counts],
    });
  }
}
