/**
 * The calibration flags `rac prune` and `rac imatrix` share: --calib FILE or --calib-mode with its
 * sources (--dataset, --traces, --text-files, --mix), checked once and built into a CalibSet.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { RacTokenizer } from '../io/tokenizer.ts';
import type { Model } from '../models/model.ts';
import { readCalibJsonl, type CalibSet } from '../prune/calib.ts';
import { buildCalibSet, CALIB_MODES, type CalibMode } from '../prune/calib-modes.ts';
import { calibShapeOf, selectionOf, type PruneSettings } from '../study/job.ts';
import { addPromptOptions, systemOf, templateFlagsOf, type DatasetFlags } from './dataset-options.ts';

export interface CalibFlags extends DatasetFlags {
  calib?: string;
  calibMode?: CalibMode;
  traces?: string[];
  textFiles?: string[];
  textField: string;
}

function choice<T extends string>(name: string, values: readonly T[]) {
  return (v: string): T => {
    if (!values.includes(v as T)) throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}, got "${v}"`);
    return v as T;
  };
}

/** --calib, --calib-mode, --dataset, --traces, --text-files, --text-field and the prompt options. */
export function addCalibOptions(cmd: Command, datasetHelp: string): Command {
  cmd
    .option('--calib <file>', 'calibration JSONL: rows of {"input_ids": [...]} or {"text": "..."}, optional "weight" (or use --calib-mode)')
    .option(
      '--calib-mode <mode>',
      'build the calibration set: prompt (--dataset) | rac (--traces) | text (--text-files) | mix (--mix)',
      choice('calib-mode', CALIB_MODES),
    )
    .option('--dataset <file>', datasetHelp)
    .option('--traces <files...>', 'traces JSONL for --calib-mode rac (rac trace or SGLang RAC rows)')
    .option('--text-files <files...>', 'plain text (.txt/.md) or JSONL/JSON with a text field, for --calib-mode text')
    .option('--text-field <name>', 'text field of JSONL/JSON text files', 'text');
  return addPromptOptions(cmd);
}

/** What is missing or contradictory in the calibration flags (null when fine); `optional`: no calibration is allowed. */
export function calibFlagsProblem(o: CalibFlags, st: PruneSettings, optional: boolean): string | null {
  const none = o.calib === undefined && o.calibMode === undefined;
  if (none && optional) return null;
  if ((o.calib === undefined) === (o.calibMode === undefined)) return 'give exactly one of --calib FILE or --calib-mode MODE';
  const needs: Record<CalibMode, [keyof CalibFlags, string][]> = {
    prompt: [['dataset', '--dataset']],
    rac: [['traces', '--traces']],
    text: [['textFiles', '--text-files']],
    mix: [],
  };
  if (o.calibMode) for (const [k, flag] of needs[o.calibMode]) if (o[k] === undefined) return `--calib-mode ${o.calibMode} needs ${flag}`;
  if (o.calibMode === 'mix') {
    if (!st.mix) return '--calib-mode mix needs --mix';
    if (st.calibTokens === 0) return '--calib-mode mix needs --calib-tokens (the budget its shares divide)';
    const key = { prompt: 'dataset', rac: 'traces', text: 'textFiles' } as const;
    const flag = { prompt: '--dataset', rac: '--traces', text: '--text-files' } as const;
    for (const k of ['prompt', 'rac', 'text'] as const)
      if ((st.mix[k] ?? 0) > 0 && o[key[k]] === undefined) return `--mix ${k}:… needs ${flag[k]}`;
  }
  try {
    systemOf(o);
    templateFlagsOf(o);
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

/** The calibration set of the flags (null when none was asked for); the tokenizer is the model's, when it has one. */
export async function calibSetOf(
  o: CalibFlags,
  st: PruneSettings,
  model: Model,
): Promise<{ calib: CalibSet | null; tokenizer: RacTokenizer | null }> {
  const tokenizer = await RacTokenizer.load(model.dir).catch(() => null);
  if (o.calibMode) {
    const system = systemOf(o);
    const templateFlags = templateFlagsOf(o);
    const calib = await buildCalibSet(
      o.calibMode,
      {
        ...(o.dataset !== undefined
          ? { dataset: { path: o.dataset, promptColumn: o.promptColumn, idColumn: o.idColumn, limit: o.limit, system, templateFlags } }
          : {}),
        ...(o.traces ? { traces: o.traces } : {}),
        ...(o.textFiles ? { textFiles: o.textFiles } : {}),
        textField: o.textField,
        select: selectionOf(st),
        ...(st.mix ? { mix: st.mix } : {}),
        ...(st.mixWeights ? { weights: st.mixWeights } : {}),
      },
      { tokenizer, vocabSize: model.config.vocabSize },
      calibShapeOf(st),
    );
    return { calib, tokenizer };
  }
  if (o.calib !== undefined) {
    const calib = readCalibJsonl(o.calib, tokenizer, model.config.vocabSize, {
      tokenBudget: st.calibTokens,
      maxSeqLen: st.maxSeqLen,
      overflow: st.overflow,
    });
    return { calib, tokenizer };
  }
  return { calib: null, tokenizer };
}
