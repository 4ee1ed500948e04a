// Room src/api: rac as a library — what every command does, as typed functions taking the same
// job settings the CLI and recipes use (study/job.ts), reporting progress through callbacks and
// failing with RacError subclasses (src/errors.ts). The CLI is a thin caller of this room.
// May import every room below it (README: Layout); src/index.ts is its public face.
/**
 * Calibration sets from a description: a calibration JSONL (`file`), or one of rac's modes —
 * prompt (a dataset's chat-templated prompts), rac (traces), text (plain text files), mix — built
 * into a CalibSet with the job's calibration settings (token budget, packing, selection, mix).
 */
import { UsageError } from '../errors.ts';
import { RacTokenizer } from '../io/tokenizer.ts';
import type { Model } from '../models/model.ts';
import { readCalibJsonl, type CalibSet } from '../prune/calib.ts';
import { buildCalibSet, type CalibMode } from '../prune/calib-modes.ts';
import { calibShapeOf, selectionOf, type PruneSettings } from '../study/job.ts';

/** Where a calibration set comes from. */
export interface CalibrationSpec {
  /** A calibration JSONL: rows of {"input_ids": [...]} or {"text": "..."}, optional "weight" (instead of `mode`). */
  file?: string;
  /** prompt (`dataset`) | rac (`traces`) | text (`textFiles`) | mix (the settings' `mix` shares). */
  mode?: CalibMode;
  /** Prompts for mode prompt (JSONL, JSON or Parquet; a list: the shards of one dataset), chat-templated. */
  dataset?: string | string[];
  promptColumn?: string;
  idColumn?: string;
  /** The first n dataset rows only. */
  limit?: number;
  /** System prompt of the chat template (a recorded setting). */
  system?: string;
  /** Extra chat-template variables (e.g. enable_thinking). */
  templateFlags?: Record<string, unknown>;
  /** Traces JSONL for mode rac (rac trace or SGLang RAC rows). */
  traces?: string[];
  /** Plain text (.txt/.md) or JSONL/JSON with a `textField`, for mode text. */
  textFiles?: string[];
  textField?: string;
}

/** What is missing or contradictory in a calibration description (null when fine); `optional`: none is allowed. */
export function calibrationProblem(c: CalibrationSpec | undefined, st: PruneSettings, optional: boolean): string | null {
  const spec = c ?? {};
  const none = spec.file === undefined && spec.mode === undefined;
  if (none) return optional ? null : 'give exactly one of --calib FILE or --calib-mode MODE';
  if (spec.file !== undefined && spec.mode !== undefined) return 'give exactly one of --calib FILE or --calib-mode MODE';
  const needs: Record<CalibMode, [keyof CalibrationSpec, string][]> = {
    prompt: [['dataset', '--dataset']],
    rac: [['traces', '--traces']],
    text: [['textFiles', '--text-files']],
    mix: [],
  };
  if (spec.mode) for (const [k, flag] of needs[spec.mode]) if (spec[k] === undefined) return `--calib-mode ${spec.mode} needs ${flag}`;
  if (spec.mode === 'mix') {
    if (!st.mix) return '--calib-mode mix needs --mix';
    if (st.calibTokens === 0) return '--calib-mode mix needs --calib-tokens (the budget its shares divide)';
    const key = { prompt: 'dataset', rac: 'traces', text: 'textFiles' } as const;
    const flag = { prompt: '--dataset', rac: '--traces', text: '--text-files' } as const;
    for (const k of ['prompt', 'rac', 'text'] as const)
      if ((st.mix[k] ?? 0) > 0 && spec[key[k]] === undefined) return `--mix ${k}:… needs ${flag[k]}`;
  }
  return null;
}

/** The calibration set of a description for `model` (null when none is described), and the model's tokenizer when it has one. */
export async function buildCalibration(
  c: CalibrationSpec | undefined,
  st: PruneSettings,
  model: Model,
): Promise<{ calib: CalibSet | null; tokenizer: RacTokenizer | null }> {
  const spec = c ?? {};
  const problem = calibrationProblem(spec, st, true);
  if (problem) throw new UsageError(problem);
  const tokenizer = await RacTokenizer.load(model.dir).catch(() => null);
  if (spec.mode) {
    const calib = await buildCalibSet(
      spec.mode,
      {
        ...(spec.dataset !== undefined
          ? {
              dataset: {
                path: spec.dataset,
                promptColumn: spec.promptColumn,
                idColumn: spec.idColumn,
                limit: spec.limit,
                system: spec.system,
                templateFlags: spec.templateFlags ?? {},
              },
            }
          : {}),
        ...(spec.traces ? { traces: spec.traces } : {}),
        ...(spec.textFiles ? { textFiles: spec.textFiles } : {}),
        textField: spec.textField ?? 'text',
        select: selectionOf(st),
        ...(st.mix ? { mix: st.mix } : {}),
        ...(st.mixWeights ? { weights: st.mixWeights } : {}),
      },
      { tokenizer, vocabSize: model.config.vocabSize },
      calibShapeOf(st),
    );
    return { calib, tokenizer };
  }
  if (spec.file !== undefined) {
    const calib = readCalibJsonl(spec.file, tokenizer, model.config.vocabSize, {
      tokenBudget: st.calibTokens,
      maxSeqLen: st.maxSeqLen,
      overflow: st.overflow,
    });
    return { calib, tokenizer };
  }
  return { calib: null, tokenizer };
}
