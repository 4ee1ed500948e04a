import type { Command } from 'commander';
import { kv } from '../../io/gguf.ts';
import { writeImatrix } from '../../io/imatrix.ts';
import { Model } from '../../models/model.ts';
import { computeImatrix } from '../../prune/imatrix.ts';
import { addFieldOptions, PRUNE_FIELDS, runtimeOf, settingsFromFlags, settingsProblem, type PruneSettings } from '../../study/job.ts';
import { RAC_VERSION } from '../../version.ts';
import { addCalibOptions, calibFlagsProblem, calibSetOf, type CalibFlags } from '../calib-options.ts';
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
    const problem = calibFlagsProblem(o, st, false) ?? settingsProblem(st, o.calib !== undefined ? 'file' : (o.calibMode ?? null));
    if (problem) usage(cmd, problem);
    const model = Model.open(o.model);
    try {
      const { calib } = await calibSetOf(o, st, model);
      if (!calib) return usage(cmd, 'give --calib FILE or --calib-mode MODE');
      if (!o.quiet)
        process.stderr.write(
          `imatrix: ${model.config.modelType} (${model.config.numLayers} layers), ${calib.tokens} calibration tokens in ${calib.sequences.length} sequences` +
            `${o.calibMode ? ` (${o.calibMode})` : ''}\n`,
        );
      const r = await computeImatrix(model, calib, {
        batchTokens: st.batchTokens,
        ...(st.tokenWeights ? { tokenWeights: st.tokenWeights } : {}),
        processOutput: !!o.processOutput,
        memoryLimitBytes: st.memoryLimitMb * 2 ** 20,
        runtime: runtimeOf(o),
        onProgress: (l, n) => {
          if (!o.quiet) process.stderr.write(`imatrix: layer ${l}/${n}\n`);
        },
      });
      const bytes = writeImatrix(o.out, r.imatrix, [
        kv.str('rac.version', RAC_VERSION),
        kv.str(
          'rac.calibration',
          JSON.stringify({ ...calib.source, tokens: calib.tokens, sequences: calib.sequences.length, weighted_tokens: r.tokens }),
        ),
        ...(st.tokenWeights ? [kv.str('rac.token_weights', JSON.stringify(st.tokenWeights))] : []),
      ]);
      const result = {
        out: o.out,
        entries: r.imatrix.entries.size,
        tokens: r.tokens,
        sequences: r.sequences,
        chunk_size: r.imatrix.chunkSize,
        bytes,
        seconds: r.seconds,
      };
      if (o.json) return printJson(result);
      process.stdout.write(
        `${o.out}: ${result.entries} entries, ${result.tokens} tokens in ${result.sequences} sequences, ${(bytes / 1024).toFixed(1)} KiB, ${result.seconds.toFixed(1)}s\n` +
          `use: llama-quantize --imatrix ${o.out} MODEL-F32.gguf OUT.gguf Q4_K_M   (or rac prune --quant … --imatrix ${o.out})\n`,
      );
    } finally {
      model.close();
    }
  });
}
