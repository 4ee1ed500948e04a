/**
 * One Linear, in place: prune (magnitude | Wanda | SparseGPT), quantize (GPTQ, joint, RTN) or
 * both, from its group's calibration statistics — the solver every layer step calls (dense
 * Linears, MoE experts, lm_head) — and the per-phase timer of a layer.
 */
import { asymmetricTarget } from '../compress/asymmetric.ts';
import type { Gemm } from '../compress/gemm.ts';
import { gptqQuantize } from '../compress/gptq.ts';
import { hessianOf, secondMoment, type XtxSum } from '../compress/hessian.ts';
import { magnitudePrune } from '../compress/magnitude.ts';
import type { PruneReport } from '../compress/masks.ts';
import { outputErrorGemm } from '../compress/metrics.ts';
import { dequantizeRows, quantizeRows, type GgmlQuantType } from '../compress/ggml-quants.ts';
import { sparsegptPrune } from '../compress/sparsegpt.ts';
import { wandaPrune } from '../compress/wanda.ts';
import type { PruneOptions } from './options.ts';
import type { LayerReport, LinearReport } from './rac-json.ts';

/** How one tensor is quantized: its ggml type, its importance weights, and where its bytes go. */
export interface LinearQuant {
  type: GgmlQuantType;
  imatrix?: Float32Array;
  note: (bytes: Uint8Array, method: 'gptq' | 'rtn' | 'joint') => void;
}

/** llama.cpp's round-to-nearest quantizer on W (rows, cols) in place (W becomes the dequantized values); the GGUF bytes. */
export function roundToNearest(W: Float32Array, rows: number, cols: number, q: LinearQuant): Uint8Array {
  const bytes = quantizeRows(q.type, W, rows, cols, q.imatrix);
  W.set(dequantizeRows(q.type, bytes, W.length));
  return bytes;
}

/** Prune one Linear (rows, cols) in place given its group's XᵀX sum; returns its report. */
export async function pruneLinear(
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
    case 'reap':
    case 'frequency':
      throw new Error(`--method ${opts.method} removes whole experts; it solves no Linear`);
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

/** Seconds per phase of one layer (LayerReport.seconds): `time(phase, fn)` adds fn's wall time. */
export class PhaseTimer {
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
