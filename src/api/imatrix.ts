/**
 * `imatrix`: llama.cpp's importance matrix of a model on a calibration set (prune/imatrix.ts),
 * written in llama-imatrix's GGUF format — for llama-quantize --imatrix, prune's `imatrix`, and
 * GGUF export's `imatrix`.
 */
import { UsageError } from '../errors.ts';
import { kv } from '../io/gguf.ts';
import { writeImatrix } from '../io/imatrix.ts';
import { Model } from '../models/model.ts';
import { computeImatrix } from '../prune/imatrix.ts';
import type { RuntimeOptions } from '../runtime/session.ts';
import { PRUNE_DEFAULTS, settingsProblem, type PruneSettings } from '../study/job.ts';
import { RAC_VERSION } from '../version.ts';
import { buildCalibration, calibrationProblem, type CalibrationSpec } from './calibration.ts';

export interface ImatrixJob {
  model: string;
  /** The .gguf to write (temp name, renamed when complete). */
  out: string;
  calibration: CalibrationSpec;
  /** Calibration settings (token budget, packing, selection, token weights, batch tokens, memory). */
  settings?: Partial<PruneSettings>;
  /** Also the untied output projection (llama-imatrix's --process-output). */
  processOutput?: boolean;
  runtime?: Partial<RuntimeOptions>;
  /** Called once the calibration set is built (tokens, sequences) and after each layer. */
  onStart?: (e: { modelType: string; layers: number; tokens: number; sequences: number }) => void;
  onProgress?: (layer: number, layers: number) => void;
}

export interface ImatrixSummary {
  out: string;
  entries: number;
  /** Σ w over the calibration tokens. */
  tokens: number;
  sequences: number;
  chunk_size: number;
  bytes: number;
  seconds: number;
}

/** The job's problem as one line (null when it can run). */
export function imatrixJobProblem(job: ImatrixJob, st: PruneSettings): string | null {
  const c = job.calibration;
  return calibrationProblem(c, st, false) ?? settingsProblem(st, c.file !== undefined ? 'file' : (c.mode ?? null));
}

export async function imatrix(job: ImatrixJob): Promise<ImatrixSummary> {
  const st: PruneSettings = { ...PRUNE_DEFAULTS, ...job.settings };
  const problem = imatrixJobProblem(job, st);
  if (problem) throw new UsageError(problem);
  const model = Model.open(job.model);
  try {
    const { calib } = await buildCalibration(job.calibration, st, model);
    if (!calib) throw new UsageError('give --calib FILE or --calib-mode MODE');
    job.onStart?.({
      modelType: model.config.modelType,
      layers: model.config.numLayers,
      tokens: calib.tokens,
      sequences: calib.sequences.length,
    });
    const r = await computeImatrix(model, calib, {
      batchTokens: st.batchTokens,
      ...(st.tokenWeights ? { tokenWeights: st.tokenWeights } : {}),
      processOutput: !!job.processOutput,
      memoryLimitBytes: st.memoryLimitMb * 2 ** 20,
      runtime: job.runtime ?? {},
      ...(job.onProgress ? { onProgress: job.onProgress } : {}),
    });
    const bytes = writeImatrix(job.out, r.imatrix, [
      kv.str('rac.version', RAC_VERSION),
      kv.str(
        'rac.calibration',
        JSON.stringify({ ...calib.source, tokens: calib.tokens, sequences: calib.sequences.length, weighted_tokens: r.tokens }),
      ),
      ...(st.tokenWeights ? [kv.str('rac.token_weights', JSON.stringify(st.tokenWeights))] : []),
    ]);
    return {
      out: job.out,
      entries: r.imatrix.entries.size,
      tokens: r.tokens,
      sequences: r.sequences,
      chunk_size: r.imatrix.chunkSize,
      bytes,
      seconds: r.seconds,
    };
  } finally {
    model.close();
  }
}
