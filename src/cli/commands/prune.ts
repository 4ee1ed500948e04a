import { InvalidArgumentError, type Command } from 'commander';
import { parsePattern, parseSparsity, type SparsityTarget } from '../../compress/masks.ts';
import { RacTokenizer } from '../../io/tokenizer.ts';
import { Model } from '../../models/model.ts';
import { readCalibJsonl, type CalibSet } from '../../prune/calib.ts';
import { buildCalibSet, CALIB_MODES, parseSourceMap, type CalibMode } from '../../prune/calib-modes.ts';
import { QUANT_FORMATS, type QuantFormat } from '../../compress/quant-grids.ts';
import { parseTokenWeights, type TokenWeights } from '../../compress/hessian.ts';
import { estimateLines, estimatePrune, formatSeconds, machineSpeed } from '../../study/estimate.ts';
import { parseLayerSelection, pruneCheckpoint, PRUNE_METHODS, QUANT_METHODS, scopeLinears, type LinearScope, type PruneMethod } from '../../prune/prune.ts';
import { RAC_VERSION } from '../../version.ts';
import { addRuntimeOptions, applyRuntime, float, int, printJson, usage, type RuntimeFlags } from '../common.ts';
import { addPromptOptions, systemOf, templateFlagsOf, type DatasetFlags } from '../dataset-options.ts';
import { formatDuration } from '../progress.ts';

interface Opts extends RuntimeFlags, DatasetFlags {
  model: string;
  method: PruneMethod;
  quant?: QuantFormat;
  sparsity?: string;
  pattern?: string;
  calib?: string;
  calibMode?: CalibMode;
  traces?: string[];
  textFiles?: string[];
  textField: string;
  mix?: string;
  mixWeights?: string;
  pack?: boolean;
  calibTokens: number;
  maxSeqLen: number;
  overflow: 'truncate' | 'split';
  batchTokens: number;
  linears: LinearScope;
  layers: string;
  trueSequential?: boolean;
  magnitudeScope: 'layer' | 'row';
  blocksize: number;
  percdamp: number;
  memoryLimitMb: number;
  errorStats: boolean;
  pruneLmHead?: boolean;
  tokenWeights?: string;
  sparsityProfile: 'uniform' | 'owl';
  owlM: number;
  owlLambda: number;
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
    .description('prune and/or quantize a checkpoint layer by layer (magnitude | Wanda | SparseGPT; GPTQ | RTN to GGUF q4_0/q8_0) and write the result')
    .requiredOption('--model <dir>', 'input model directory')
    .requiredOption('--method <name>', 'sparsegpt | wanda | magnitude | gptq | rtn', choice('method', [...PRUNE_METHODS, ...QUANT_METHODS]))
    .option('--quant <format>', 'quantize to a GGUF grid: q4_0 | q8_0 (gptq alone; with sparsegpt one joint sweep; rtn/wanda/magnitude round to nearest)', choice('quant', QUANT_FORMATS))
    .option('--sparsity <s>', 'unstructured sparsity in [0, 1), e.g. 0.5')
    .option('--pattern <n:m>', 'N:M semi-structured sparsity, e.g. 2:4 (N zeros in every M weights)')
    .option('--calib <file>', 'calibration JSONL: rows of {"input_ids": [...]} or {"text": "..."}, optional "weight" (or use --calib-mode)')
    .option('--calib-mode <mode>', 'build the calibration set: prompt (--dataset) | rac (--traces) | text (--text-files) | mix (--mix)', choice('calib-mode', CALIB_MODES))
    .option('--dataset <file>', 'prompts for --calib-mode prompt (JSONL, JSON or Parquet), chat-templated')
    .option('--traces <files...>', 'traces JSONL for --calib-mode rac (rac trace or SGLang RAC rows)')
    .option('--text-files <files...>', 'plain text (.txt/.md) or JSONL/JSON with a text field, for --calib-mode text')
    .option('--text-field <name>', 'text field of JSONL/JSON text files', 'text')
    .option('--mix <shares>', 'for --calib-mode mix: token shares of the budget, e.g. rac:0.75,text:0.25')
    .option('--mix-weights <weights>', 'per-source sequence weights, e.g. rac:1,text:0.5 (rows scaled by √w in XᵀX)')
    .option('--pack', 'concatenate documents (eos-separated) into max-seq-len chunks (--calib-mode)')
    .option('--calib-tokens <n>', 'calibration token budget, equal across modes when comparing them (0 = everything)', int('calib-tokens'), 0)
    .option('--max-seq-len <n>', 'longest calibration sequence', int('max-seq-len', 1), 2048)
    .option('--overflow <mode>', 'longer sequences: truncate | split', choice('overflow', ['truncate', 'split'] as const), 'truncate')
    .option('--batch-tokens <n>', 'padded tokens per calibration batch', int('batch-tokens', 1), 4096)
    .option('--linears <scope>', 'which Linears: all | attn | mlp', choice('linears', ['all', 'attn', 'mlp'] as const), 'all')
    .option('--layers <sel>', 'which layers: all | first | middle | last | indices and ranges (0,3-5)', 'all')
    .option('--true-sequential', 're-capture MLP inputs after pruning attention')
    .option('--magnitude-scope <scope>', 'magnitude threshold per layer | row', choice('magnitude-scope', ['layer', 'row'] as const), 'layer')
    .option('--blocksize <n>', 'SparseGPT block size', int('blocksize', 1), 128)
    .option('--percdamp <x>', 'SparseGPT damping, fraction of mean(diag H)', float('percdamp', 0, 1), 0.01)
    .option('--memory-limit-mb <n>', 'hidden states kept in memory per store before spilling to disk', int('memory-limit-mb', 1), 4096)
    .option('--prune-lm-head', 'also prune lm_head, calibrated on the final hidden states (untied heads only)')
    .option('--no-error-stats', 'skip the per-Linear output error (saves one GEMM pass per Linear)')
    .option('--token-weights <w>', 'per-token weights by position class, e.g. prompt=0,think=1,answer=1 (prompt/rac calibration; default all 1)')
    .option('--sparsity-profile <p>', 'per-layer sparsity: uniform | owl (outlier-weighted, unstructured only)', choice('sparsity-profile', ['uniform', 'owl'] as const), 'uniform')
    .option('--owl-m <x>', 'OWL: outlier threshold, × the layer mean of |W|·‖X‖', float('owl-m', 0, 1e6), 5)
    .option('--owl-lambda <x>', 'OWL: largest per-layer deviation from --sparsity', float('owl-lambda', 0, 1), 0.08)
    .requiredOption('--out <dir>', 'output directory (written to a temp dir, renamed into place)')
    .option('--overwrite', 'replace --out if it exists')
    .option('--json', 'print the summary (rac.json) as JSON (with --dry-run: the estimate)')
    .option('--dry-run', 'print the work, estimated time and peak memory, and exit without pruning');
  addPromptOptions(cmd);
  addRuntimeOptions(cmd).action(async (o: Opts) => {
    const quantOnly = QUANT_METHODS.includes(o.method);
    if (quantOnly && !o.quant) usage(cmd, `--method ${o.method} needs --quant q4_0|q8_0`);
    if (quantOnly && (o.pattern !== undefined || (o.sparsity !== undefined && Number(o.sparsity) !== 0))) {
      usage(cmd, `--method ${o.method} only quantizes; for pruning + quantization use --method sparsegpt --quant, or rtn on a pruned model`);
    }
    if (quantOnly && o.sparsity === undefined) o.sparsity = '0';
    if ((o.sparsity === undefined) === (o.pattern === undefined)) usage(cmd, 'give exactly one of --sparsity or --pattern');
    const noCalib = o.method === 'rtn' && o.calib === undefined && o.calibMode === undefined;
    if (!noCalib && (o.calib === undefined) === (o.calibMode === undefined)) usage(cmd, 'give exactly one of --calib FILE or --calib-mode MODE');
    const needs: Record<CalibMode, [keyof Opts, string][]> = {
      prompt: [['dataset', '--dataset']],
      rac: [['traces', '--traces']],
      text: [['textFiles', '--text-files']],
      mix: [['mix', '--mix']],
    };
    if (o.calibMode) for (const [k, flag] of needs[o.calibMode]) if (o[k] === undefined) usage(cmd, `--calib-mode ${o.calibMode} needs ${flag}`);
    let mix: ReturnType<typeof parseSourceMap> | undefined;
    let weights: ReturnType<typeof parseSourceMap> | undefined;
    let system: string | undefined;
    let templateFlags: Record<string, unknown> = {};
    try {
      mix = o.mix !== undefined ? parseSourceMap(o.mix, '--mix') : undefined;
      weights = o.mixWeights !== undefined ? parseSourceMap(o.mixWeights, '--mix-weights') : undefined;
      system = systemOf(o);
      templateFlags = templateFlagsOf(o);
    } catch (e) {
      return usage(cmd, (e as Error).message);
    }
    if (o.calibMode === 'mix') {
      if (o.calibTokens === 0) usage(cmd, '--calib-mode mix needs --calib-tokens (the budget its shares divide)');
      for (const [k, flag] of [['prompt', '--dataset'], ['rac', '--traces'], ['text', '--text-files']] as const) {
        const key = ({ prompt: 'dataset', rac: 'traces', text: 'textFiles' } as const)[k];
        if ((mix![k] ?? 0) > 0 && o[key] === undefined) usage(cmd, `--mix ${k}:… needs ${flag}`);
      }
    }
    let tokenWeights: TokenWeights | undefined;
    try {
      tokenWeights = o.tokenWeights !== undefined ? parseTokenWeights(o.tokenWeights) : undefined;
    } catch (e) {
      return usage(cmd, (e as Error).message);
    }
    if (o.sparsityProfile === 'owl' && o.pattern !== undefined) usage(cmd, '--sparsity-profile owl needs --sparsity (unstructured), not --pattern');
    if (o.sparsityProfile === 'owl' && quantOnly) usage(cmd, `--sparsity-profile owl needs a pruning method, not ${o.method}`);
    let target: SparsityTarget;
    try {
      target = o.pattern !== undefined ? { kind: 'nm', ...parsePattern(o.pattern) } : { kind: 'unstructured', sparsity: parseSparsity(o.sparsity!) };
    } catch (e) {
      return usage(cmd, (e as Error).message);
    }
    applyRuntime(o);
    const model = Model.open(o.model);
    try {
      const layers = parseLayerSelection(o.layers, model.config.numLayers);
      const tokenizer = await RacTokenizer.load(model.dir).catch(() => null);
      let calib: CalibSet | null;
      if (noCalib) {
        calib = null;
      } else if (o.calibMode) {
        calib = await buildCalibSet(
          o.calibMode,
          {
            ...(o.dataset !== undefined ? { dataset: { path: o.dataset, promptColumn: o.promptColumn, idColumn: o.idColumn, limit: o.limit, system, templateFlags } } : {}),
            ...(o.traces ? { traces: o.traces } : {}),
            ...(o.textFiles ? { textFiles: o.textFiles } : {}),
            textField: o.textField,
            ...(mix ? { mix } : {}),
            ...(weights ? { weights } : {}),
          },
          { tokenizer, vocabSize: model.config.vocabSize },
          { tokenBudget: o.calibTokens, maxSeqLen: o.maxSeqLen, overflow: o.overflow, pack: !!o.pack },
        );
      } else {
        calib = readCalibJsonl(o.calib!, tokenizer, model.config.vocabSize, { tokenBudget: o.calibTokens, maxSeqLen: o.maxSeqLen, overflow: o.overflow });
      }
      const L = model.config.numLayers;
      if (!o.quiet) {
        process.stderr.write(
          `prune: ${o.method} ${o.pattern ?? `sparsity ${o.sparsity}`}${o.quant ? ` → ${o.quant}` : ''} on ${model.config.modelType} (${L} layers), ` +
            (calib
              ? `${calib.tokens} calibration tokens in ${calib.sequences.length} sequences` +
                (o.calibMode ? ` (${o.calibMode}${typeof calib.source['decode_share'] === 'number' ? `, decode share ${(100 * (calib.source['decode_share'] as number)).toFixed(1)}%` : ''})` : '') +
                (calib.source['exhausted'] === true ? ` — the calibration data ran out before the ${o.calibTokens}-token budget` : '')
              : 'no calibration') +
            '\n',
        );
      }
      const rssBefore = process.memoryUsage().rss; // before a first-time speed measurement grows it
      // Quiet runs print no estimate: nothing is measured for them.
      // (round-to-nearest quantization has no calibration pass to estimate)
      const speed = calib && (!o.quiet || o.dryRun) ? await machineSpeed() : null;
      const estimate = speed && calib && estimatePrune(
        model.config,
        model.spec.linears(model.config),
        calib,
        {
          // GPTQ runs SparseGPT's solver; round-to-nearest needs no statistics, like magnitude
          method: o.method === 'gptq' ? 'sparsegpt' : o.method === 'rtn' ? 'magnitude' : o.method,
          layers,
          linears: scopeLinears(model.spec, model.config, o.linears),
          batchTokens: o.batchTokens,
          blocksize: o.blocksize,
          errorStats: o.errorStats,
          trueSequential: o.trueSequential,
          memoryLimitBytes: o.memoryLimitMb * 2 ** 20,
          pruneLmHead: o.pruneLmHead,
          owl: o.sparsityProfile === 'owl',
        },
        speed,
        rssBefore,
      );
      if (estimate) for (const line of estimateLines('prune', estimate, speed)) process.stderr.write(`${line}\n`);
      if (o.dryRun) {
        if (!estimate) process.stderr.write('prune: --dry-run: no calibration pass to estimate (round-to-nearest is one pass over the weights)\n');
        else if (o.json) printJson({ work: estimate.work, seconds: estimate.seconds, phases: estimate.phases, peak_bytes: estimate.peakBytes, speed });
        return;
      }
      const t0 = performance.now();
      const summary = await pruneCheckpoint(
        model,
        calib,
        o.out,
        {
          method: o.method,
          ...(o.quant ? { quant: o.quant } : {}),
          target,
          linears: o.linears,
          layers,
          trueSequential: o.trueSequential,
          magnitudeScope: o.magnitudeScope,
          blocksize: o.blocksize,
          percdamp: o.percdamp,
          batchTokens: o.batchTokens,
          memoryLimitBytes: o.memoryLimitMb * 2 ** 20,
          errorStats: o.errorStats,
          pruneLmHead: o.pruneLmHead,
          ...(tokenWeights ? { tokenWeights } : {}),
          ...(o.sparsityProfile === 'owl' ? { sparsityProfile: { owl: { m: o.owlM, lambda: o.owlLambda } } } : {}),
          overwrite: o.overwrite,
          onProgress: (e) => {
            if (o.quiet || e.phase !== 'done' || !e.report) return;
            const r = e.report;
            const el = (performance.now() - t0) / 1000;
            const eta = (el / (e.layer + 1)) * (L - e.layer - 1);
            const lin = Object.values(r.linears);
            const sp = lin.length ? lin.reduce((a, x) => a + x!.zeros, 0) / lin.reduce((a, x) => a + x!.rows * x!.cols, 0) : 0;
            process.stderr.write(
              `layer ${e.layer + 1}/${L}: ${r.pruned ? `sparsity ${(100 * sp).toFixed(2)}%` : 'kept'} in ${r.seconds.total.toFixed(2)}s ` +
                `(capture ${r.seconds.capture.toFixed(2)}, prune ${r.seconds.prune.toFixed(2)}, recompute ${r.seconds.recompute.toFixed(2)}) · ` +
                `elapsed ${formatDuration(el)} · ETA ${formatDuration(eta)}\n`,
            );
          },
        },
        RAC_VERSION,
      );
      if (!o.quiet && estimate) {
        const took = summary.totals.seconds;
        const rss = process.resourceUsage().maxRSS * 1024;
        process.stderr.write(
          `prune: took ${formatSeconds(took)} (estimated ${formatSeconds(estimate.seconds)}, ${took > 0 ? `${(100 * (estimate.seconds / took - 1)).toFixed(0)}%` : '-'}), ` +
            `peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB (estimated ${(estimate.peakBytes / 2 ** 20).toFixed(0)} MiB)\n`,
        );
      }
      if (o.json) return printJson(summary);
      const rows = summary.layers.map((r) => {
        const lin = Object.values(r.linears);
        const z = lin.reduce((a, x) => a + x!.zeros, 0);
        const n = lin.reduce((a, x) => a + x!.rows * x!.cols, 0);
        const err = lin.reduce((a, x) => a + (x!.output_error ?? 0), 0);
        const norm = lin.reduce((a, x) => a + (x!.output_norm ?? 0), 0);
        const loss = lin.reduce((a, x) => a + (x!.loss ?? 0), 0);
        return [String(r.layer), r.pruned ? (n ? (z / n).toFixed(4) : '-') : 'kept', norm ? (err / norm).toExponential(3) : '-', loss ? loss.toExponential(3) : '-', r.seconds.total.toFixed(2)];
      });
      const head = ['layer', 'sparsity', 'rel.out.err', 'obs.loss', 'seconds'];
      const wd = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      const fmt = (r: string[]) => r.map((c, i) => c.padStart(wd[i]!)).join('  ') + '\n';
      process.stdout.write(fmt(head));
      for (const r of rows) process.stdout.write(fmt(r));
      process.stdout.write(
        `pruned ${summary.totals.pruned_linears} Linears to ${(100 * summary.totals.sparsity).toFixed(2)}% sparsity` +
          (summary.quantization ? `, quantized to ${summary.quantization.format} (${Object.keys(summary.quantization.tensors).length} tensors)` : '') +
          ` in ${summary.totals.seconds.toFixed(1)}s → ${o.out}\n`,
      );
    } finally {
      model.close();
    }
  });
}
