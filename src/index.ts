/**
 * rac as a library: `import { prune, loadModel, … } from 'rac'`. What every command does, as typed
 * functions taking the settings the CLI and recipes use (`PruneSettings`, PRUNE_DEFAULTS), with
 * progress as callbacks and failures as RacError subclasses (one-line messages naming the file
 * and the problem; UsageError for contradicting or missing settings).
 */

// errors
export { RacError, UsageError } from './errors.ts';
export { ConfigError } from './models/config.ts';
export { CheckpointError } from './io/checkpoint.ts';
export { CalibError } from './prune/calib.ts';
export { ExportError } from './export/gguf.ts';
export { RecipeError } from './study/run.ts';
export { HubError } from './io/hub.ts';
export { DatasetError } from './io/datasets.ts';
export { ModelFileError } from './io/model-file.ts';

// models: open, generate
export {
  closeModel,
  encodePrompt,
  generateText,
  loadModel,
  resolveModelId,
  type Completion,
  type GenerateTextOptions,
  type GenerateTextResult,
  type LoadedModel,
} from './api/models.ts';
export { Model } from './models/model.ts';
export type { EngineOptions } from './models/engine.ts';
export { generate, type GenerateOptions, type GenerationRequest } from './models/generate.ts';
export { writeRandomCheckpoint, type RandomCheckpointOptions } from './models/random.ts';

// calibration, pruning, quantization, expert removal, importance matrices
export { buildCalibration, calibrationProblem, type CalibrationSpec } from './api/calibration.ts';
export { executePrune, planPrune, prune, pruneJobProblem, type PruneJob, type PrunePlan } from './api/prune.ts';
export { imatrix, type ImatrixJob, type ImatrixSummary } from './api/imatrix.ts';
export { PRUNE_DEFAULTS, type PruneSettings } from './study/job.ts';
export {
  EXPERT_METHODS,
  PACKED_SCHEMES,
  PRUNE_METHODS,
  QUANT_METHODS,
  quantLayout,
  type PruneMethod,
  type PruneProgress,
} from './prune/prune.ts';
export { QUANT_SCHEMES, type QuantScheme } from './compress/quant-schemes.ts';
export type { PruneSummary, ExpertRemovalRecord, QuantizationRecord, QuantLayout } from './prune/rac-json.ts';

// traces, evaluation, studies, reports
export { trace, type TraceJob } from './api/trace.ts';
export { evaluate, type EvalJob } from './api/evaluate.ts';
export { runTrace, type TraceManifest, type TraceSettings } from './study/trace.ts';
export { runEval, type EvalResults } from './study/eval.ts';
export { loadRecipe, runRecipe, type Recipe } from './study/run.ts';
export { buildReport } from './report/html.ts';

// export and serving
export { exportGguf, GGUF_DTYPES, type ExportGgufOptions, type ExportGgufResult, type GgufDtype } from './export/gguf.ts';
export { startServer, type RunningServer } from './serve/server.ts';
export { openBackend } from './backends/index.ts';

export { RAC_VERSION } from './version.ts';
