/**
 * The calibration flags `rac prune` and `rac imatrix` share: --calib FILE or --calib-mode with its
 * sources (--dataset, --traces, --text-files, --mix), read into the API's CalibrationSpec.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { CalibrationSpec } from '../api/calibration.ts';
import { CALIB_MODES, type CalibMode } from '../prune/calib-modes.ts';
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

/** The calibration described by the flags (system prompt and template flags read here: a bad file or flag is a usage error). */
export function calibrationOf(o: CalibFlags): CalibrationSpec {
  return {
    ...(o.calib !== undefined ? { file: o.calib } : {}),
    ...(o.calibMode !== undefined ? { mode: o.calibMode } : {}),
    ...(o.dataset !== undefined ? { dataset: o.dataset } : {}),
    ...(o.promptColumn !== undefined ? { promptColumn: o.promptColumn } : {}),
    ...(o.idColumn !== undefined ? { idColumn: o.idColumn } : {}),
    ...(o.limit !== undefined ? { limit: o.limit } : {}),
    ...(o.traces !== undefined ? { traces: o.traces } : {}),
    ...(o.textFiles !== undefined ? { textFiles: o.textFiles } : {}),
    textField: o.textField,
    system: systemOf(o),
    templateFlags: templateFlagsOf(o),
  };
}
