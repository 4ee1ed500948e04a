import { InvalidArgumentError, type Command } from 'commander';
import { executePrune, planPrune, pruneJobProblem, type PruneJob } from '../../api/prune.ts';
import { targetText } from '../../compress/masks.ts';
import { QUANT_SCHEMES, type QuantScheme } from '../../compress/quant-schemes.ts';
import { EXPERT_METHODS, PRUNE_METHODS, QUANT_METHODS, scopeLinears, type PruneMethod } from '../../prune/prune.ts';
import { layerLinearReports, type PruneSummary } from '../../prune/rac-json.ts';
import { estimateLines, estimatePrune, formatSeconds, machineSpeed } from '../../study/estimate.ts';
import { addFieldOptions, runtimeOf, settingsFromFlags, type PruneSettings } from '../../study/job.ts';
import { calibrationOf, addCalibOptions, type CalibFlags } from '../calib-options.ts';
import { addRuntimeOptions, printJson, usage, type RuntimeFlags } from '../common.ts';
import { formatDuration } from '../progress.ts';

interface Opts extends RuntimeFlags, CalibFlags, Partial<PruneSettings> {
  model: string;
  method: PruneMethod;
  quant?: QuantScheme;
  imatrix?: string;
  sparsity?: string;
  pattern?: string;
  task?: 'math' | 'tiny';
  policyTraces?: string;
  out: string;
  overwrite?: boolean;
  json?: boolean;
  dryRun?: boolean;
}

function choice<T extends string>(name: string, values: readonly T[]) {
  return (v: string): T => {
    if (!values.includes(v as T)) throw new InvalidArgumentError(`${name} must be one of ${values.join(', ')}, got "${v}"`);
    return v as T;
  };
}

export function register(program: Command): void {
  const cmd = program
    .command('prune')
    .description(
      'prune and/or quantize a checkpoint layer by layer (SparseGPT | Wanda | magnitude; GPTQ | RTN to ggml types and llama.cpp mixes), or remove MoE experts (REAP | frequency), and write the result',
    )
    .requiredOption('--model <dir>', 'input model directory')
    .requiredOption(
      '--method <name>',
      'sparsegpt | wanda | magnitude | gptq | rtn | reap | frequency (MoE: remove whole experts, with --experts)',
      choice('method', [...PRUNE_METHODS, ...QUANT_METHODS, ...EXPERT_METHODS]),
    )
    .option(
      '--quant <scheme>',
      `quantize to ggml types: ${QUANT_SCHEMES.join(' | ')} (one type: q4_0 … q6_k; llama.cpp's mixes: q4_k_m …) — gptq alone; with sparsegpt one joint sweep; rtn/wanda/magnitude round to nearest; q4_0 / q8_0 write a compressed-tensors (vLLM) directory`,
      choice('quant', QUANT_SCHEMES),
    )
    .option(
      '--imatrix <file>',
      "importance matrix (rac imatrix or llama-imatrix GGUF) for the quantizers' block choices, as llama-quantize --imatrix",
    )
    .option('--sparsity <s>', 'unstructured sparsity in [0, 1), e.g. 0.5')
    .option('--pattern <n:m>', 'N:M semi-structured sparsity, e.g. 2:4 (N zeros in every M weights)')
    .option(
      '--task <task>',
      'staged refresh / two-pass mix: grade the regenerated traces with this grader (math | tiny; the dataset needs answers)',
      choice('task', ['math', 'tiny'] as const),
    )
    .option(
      '--policy-traces <dir>',
      "staged refresh / two-pass mix: where the pruned models' traces go (default: OUT.policy-traces beside --out)",
    )
    .requiredOption('--out <dir>', 'output directory (written to a temp dir, renamed into place)')
    .option('--overwrite', 'replace --out if it exists')
    .option('--json', 'print the summary (rac.json) as JSON (with --dry-run: the estimate)')
    .option('--dry-run', 'print the work, estimated time and peak memory, and exit without pruning');
  addCalibOptions(
    cmd,
    'prompts for --calib-mode prompt (JSONL, JSON or Parquet), chat-templated; with --refresh-stages / --two-pass-share, the prompts --traces were made from',
  );
  addFieldOptions(cmd);
  addRuntimeOptions(cmd).action(async (o: Opts) => {
    const st = settingsFromFlags(o as unknown as Record<string, unknown>);
    let job: PruneJob;
    try {
      job = {
        model: o.model,
        out: o.out,
        method: o.method,
        ...(o.sparsity !== undefined ? { sparsity: Number(o.sparsity) } : {}),
        ...(o.pattern !== undefined ? { pattern: o.pattern } : {}),
        ...(o.quant ? { quant: o.quant } : {}),
        ...(o.imatrix !== undefined ? { imatrix: o.imatrix } : {}),
        calibration: calibrationOf(o),
        settings: st,
        ...(o.task ? { task: o.task } : {}),
        ...(o.policyTraces ? { policyTraces: o.policyTraces } : {}),
        ...(o.overwrite ? { overwrite: true } : {}),
        runtime: runtimeOf(o),
        ...(o.quiet ? {} : { log: (line: string) => void process.stderr.write(`${line}\n`) }),
      };
      if (o.sparsity !== undefined && !Number.isFinite(job.sparsity)) return usage(cmd, `--sparsity must be a number, got "${o.sparsity}"`);
    } catch (e) {
      return usage(cmd, (e as Error).message);
    }
    const problem = pruneJobProblem(job, st);
    if (problem) return usage(cmd, problem);
    const plan = await planPrune(job, { dryRun: !!o.dryRun });
    try {
      const { model, calib, target, layers } = plan;
      const expertsOnly = EXPERT_METHODS.includes(o.method);
      const L = model.config.numLayers;
      if (!o.quiet) {
        process.stderr.write(
          `prune: ${o.method} ${expertsOnly ? `removing ${st.experts} experts per layer` : `${st.experts > 0 ? `after removing ${st.experts} experts per layer (${st.expertScoring}), ` : ''}${targetText(target)}`}${o.quant ? ` → ${o.quant}` : ''} on ${model.config.modelType} (${L} layers), ` +
            (calib
              ? `${calib.tokens} calibration tokens in ${calib.sequences.length} sequences` +
                (o.calibMode
                  ? ` (${o.calibMode}${typeof calib.source['decode_share'] === 'number' ? `, decode share ${(100 * (calib.source['decode_share'] as number)).toFixed(1)}%` : ''})`
                  : '') +
                (calib.source['exhausted'] === true ? ` — the calibration data ran out before the ${st.calibTokens}-token budget` : '')
              : 'no calibration') +
            '\n',
        );
      }
      const runtime = job.runtime ?? {};
      const rssBefore = process.memoryUsage().rss; // before a first-time speed measurement grows it
      // Quiet runs print no estimate: nothing is measured for them.
      // (round-to-nearest quantization has no calibration pass to estimate)
      const speed = calib && (!o.quiet || o.dryRun) ? await machineSpeed({ runtime }) : null;
      // (expert removal has no estimate yet: the figures would be the pruning stage's alone)
      const estimate =
        st.experts === 0 &&
        speed &&
        calib &&
        estimatePrune(
          model.config,
          model.spec.linears(model.config),
          calib,
          {
            // GPTQ runs SparseGPT's solver; round-to-nearest needs no statistics, like magnitude
            method:
              o.method === 'gptq' ? 'sparsegpt' : o.method === 'rtn' ? 'magnitude' : (o.method as 'sparsegpt' | 'wanda' | 'magnitude'),
            layers,
            linears: scopeLinears(model.spec, model.config, st.linears),
            batchTokens: st.batchTokens,
            blocksize: st.blocksize,
            errorStats: st.errorStats,
            trueSequential: st.trueSequential,
            asymmetric: st.asymmetric,
            memoryLimitBytes: st.memoryLimitMb * 2 ** 20,
            pruneLmHead: st.pruneLmHead,
            owl: st.sparsityProfile === 'owl',
            moeCalibration: st.moeCalibration,
          },
          speed,
          rssBefore,
        );
      if (estimate) for (const line of estimateLines('prune', estimate, speed)) process.stderr.write(`${line}\n`);
      if (o.dryRun) {
        if (!estimate)
          process.stderr.write(
            `prune: --dry-run: ${st.experts > 0 ? 'no estimate for expert removal yet' : 'no calibration pass to estimate (round-to-nearest is one pass over the weights)'}\n`,
          );
        else if (o.json)
          printJson({ work: estimate.work, seconds: estimate.seconds, phases: estimate.phases, peak_bytes: estimate.peakBytes, speed });
        return;
      }
      const t0 = performance.now();
      job.onProgress = (e) => {
        if (o.quiet || e.phase !== 'done' || !e.report) return;
        const r = e.report;
        const el = (performance.now() - t0) / 1000;
        const eta = (el / (e.layer + 1)) * (L - e.layer - 1);
        const lin = layerLinearReports(r);
        const sp = lin.length ? lin.reduce((a, x) => a + x.zeros, 0) / lin.reduce((a, x) => a + x.rows * x.cols, 0) : 0;
        process.stderr.write(
          `layer ${e.layer + 1}/${L}: ${r.pruned ? `sparsity ${(100 * sp).toFixed(2)}%` : 'kept'} in ${r.seconds.total.toFixed(2)}s ` +
            `(capture ${r.seconds.capture.toFixed(2)}, prune ${r.seconds.prune.toFixed(2)}, recompute ${r.seconds.recompute.toFixed(2)}) · ` +
            `elapsed ${formatDuration(el)} · ETA ${formatDuration(eta)}\n`,
        );
      };
      const summary = await executePrune(plan);
      if (!o.quiet && estimate) {
        const took = summary.totals.seconds;
        const rss = process.resourceUsage().maxRSS * 1024;
        process.stderr.write(
          `prune: took ${formatSeconds(took)} (estimated ${formatSeconds(estimate.seconds)}, ${took > 0 ? `${(100 * (estimate.seconds / took - 1)).toFixed(0)}%` : '-'}), ` +
            `peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB (estimated ${(estimate.peakBytes / 2 ** 20).toFixed(0)} MiB)\n`,
        );
      }
      if (o.json) return printJson(summary);
      printSummary(summary, o.out, expertsOnly);
    } finally {
      plan.close();
    }
  });
}

/** The summary as a table per layer and a closing line. */
function printSummary(summary: PruneSummary, out: string, expertsOnly: boolean): void {
  const er = summary.expert_removal;
  if (er) {
    for (const l of er.layers) process.stdout.write(`layer ${l.layer}: removed experts ${l.removed.join(', ')}\n`);
    process.stdout.write(
      `removed ${er.experts_before - er.experts_after} of ${er.experts_before} experts per MoE layer by ${er.scoring}: parameters ${er.parameters_before.toLocaleString('en-US')} → ${er.parameters_after.toLocaleString('en-US')}\n`,
    );
    if (expertsOnly) {
      process.stdout.write(`in ${summary.totals.seconds.toFixed(1)}s → ${out}\n`);
      return;
    }
  }
  const rows = summary.layers.map((r) => {
    const lin = layerLinearReports(r);
    const z = lin.reduce((a, x) => a + x.zeros, 0);
    const n = lin.reduce((a, x) => a + x.rows * x.cols, 0);
    const err = lin.reduce((a, x) => a + (x.output_error ?? 0), 0);
    const norm = lin.reduce((a, x) => a + (x.output_norm ?? 0), 0);
    const loss = lin.reduce((a, x) => a + (x.loss ?? 0), 0);
    return [
      String(r.layer),
      r.pruned ? (n ? (z / n).toFixed(4) : '-') : 'kept',
      norm ? (err / norm).toExponential(3) : '-',
      loss ? loss.toExponential(3) : '-',
      r.seconds.total.toFixed(2),
    ];
  });
  const head = ['layer', 'sparsity', 'rel.out.err', 'obs.loss', 'seconds'];
  const wd = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) => `${r.map((c, i) => c.padStart(wd[i]!)).join('  ')}\n`;
  process.stdout.write(fmt(head));
  for (const r of rows) process.stdout.write(fmt(r));
  process.stdout.write(
    `pruned ${summary.totals.pruned_linears} Linears to ${(100 * summary.totals.sparsity).toFixed(2)}% sparsity` +
      (summary.quantization
        ? `, quantized to ${summary.quantization.format} (${Object.keys(summary.quantization.tensors).length} tensors)`
        : '') +
      ` in ${summary.totals.seconds.toFixed(1)}s → ${out}\n`,
  );
}
