import type { Command } from 'commander';
import { imatrix, imatrixJobProblem, type ImatrixJob } from '../../api/imatrix.ts';
import { addFieldOptions, PRUNE_DEFAULTS, PRUNE_FIELDS, runtimeOf, settingsFromFlags, type PruneSettings } from '../../study/job.ts';
import { addCalibOptions, calibrationOf, type CalibFlags } from '../calib-options.ts';
import { addRuntimeOptions, printJson, usage, type RuntimeFlags } from '../common.ts';

interface Opts extends RuntimeFlags, CalibFlags, Partial<PruneSettings> {
  model: string;
  out: string;
  processOutput?: boolean;
  json?: boolean;
}

/** The settings `rac imatrix` reads: calibration (no staged refresh / two-pass mix) and the memory limit. */
const IMATRIX_FIELDS = PRUNE_FIELDS.filter(
  (f) => (f.section === 'calibration' && !['refreshStages', 'refreshShare', 'twoPassShare'].includes(f.prop)) || f.prop === 'memoryLimitMb',
);

export function register(program: Command): void {
  const cmd = program
    .command('imatrix')
    .description(
      "llama.cpp's importance matrix (llama-imatrix's GGUF format: Σx² per input column and token counts per weight tensor) from any calibration set — for llama-quantize --imatrix, rac prune --imatrix, rac export-gguf --imatrix",
    )
    .requiredOption('--model <dir>', 'model directory')
    .requiredOption('--out <file>', 'output imatrix .gguf (written to a temp name, renamed when complete)')
    .option('--process-output', "also the output projection (llama-imatrix's --process-output; untied heads only)");
  addCalibOptions(cmd, 'prompts for --calib-mode prompt (JSONL, JSON or Parquet), chat-templated');
  addFieldOptions(cmd, IMATRIX_FIELDS);
  cmd.option('--json', 'print the result as JSON');
  addRuntimeOptions(cmd).action(async (o: Opts) => {
    const st = settingsFromFlags(o as unknown as Record<string, unknown>, IMATRIX_FIELDS);
    let job: ImatrixJob;
    try {
      job = {
        model: o.model,
        out: o.out,
        calibration: calibrationOf(o),
        settings: st,
        processOutput: !!o.processOutput,
        runtime: runtimeOf(o),
        ...(o.quiet
          ? {}
          : {
              onStart: (e) =>
                void process.stderr.write(
                  `imatrix: ${e.modelType} (${e.layers} layers), ${e.tokens} calibration tokens in ${e.sequences} sequences${o.calibMode ? ` (${o.calibMode})` : ''}\n`,
                ),
              onProgress: (l, n) => void process.stderr.write(`imatrix: layer ${l}/${n}\n`),
            }),
      };
    } catch (e) {
      return usage(cmd, (e as Error).message);
    }
    const problem = imatrixJobProblem(job, { ...PRUNE_DEFAULTS, ...st });
    if (problem) return usage(cmd, problem);
    const result = await imatrix(job);
    if (o.json) return printJson(result);
    process.stdout.write(
      `${o.out}: ${result.entries} entries, ${result.tokens} tokens in ${result.sequences} sequences, ${(result.bytes / 1024).toFixed(1)} KiB, ${result.seconds.toFixed(1)}s\n` +
        `use: llama-quantize --imatrix ${o.out} MODEL-F32.gguf OUT.gguf Q4_K_M   (or rac prune --quant … --imatrix ${o.out})\n`,
    );
  });
}
