import { InvalidArgumentError, type Command } from 'commander';
import { loadDataset, renderPrompt, rowLabel } from '../../io/datasets.ts';
import { RacTokenizer } from '../../io/tokenizer.ts';
import { Model } from '../../models/model.ts';
import { estimateLines, estimateTrace, formatSeconds, machineSpeed, type Estimate } from '../../study/estimate.ts';
import { manifestPath } from '../../study/trace.ts';
import { addRuntimeOptions, float, int, printJson, usage, type RuntimeFlags } from '../common.ts';
import { runtimeOf, TRACE_DEFAULTS as D } from '../../study/job.ts';
import { trace } from '../../api/trace.ts';
import { addBackendOptions, backendOptionsOf, type BackendFlags } from '../backend-options.ts';
import { addPromptOptions, systemOf, templateFlagsOf, type DatasetFlags } from '../dataset-options.ts';
import { formatDuration } from '../progress.ts';

interface Opts extends RuntimeFlags, DatasetFlags, BackendFlags {
  model: string;
  dataset: string | string[];
  n: number;
  maxNewTokens: number;
  tokenBudget: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  stop?: string[];
  batchSize: number;
  task?: 'math' | 'tiny';
  out: string;
  json?: boolean;
  dryRun?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('trace')
    .description("sample the dense model's own completions for dataset prompts into traces.jsonl (resumable; stops at a token budget)")
    .requiredOption('--model <dir>', 'model directory (its tokenizer and chat template render the prompts)')
    .requiredOption('--dataset <file>', 'prompts: JSONL, JSON or Parquet rows')
    .requiredOption('--out <file>', 'traces JSONL (appended; a manifest is written beside it as <out>.manifest.json)');
  addPromptOptions(cmd)
    .option('--n <n>', 'completions per prompt', int('n', 1), D.n)
    .option('--max-new-tokens <n>', 'generation budget per completion', int('max-new-tokens', 1), D.maxNewTokens)
    .option(
      '--token-budget <n>',
      'stop submitting prompts once prompt+completion tokens written reach this (0 = whole dataset)',
      int('token-budget'),
      D.tokenBudget,
    )
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', float('temperature', 0, 100), D.temperature)
    .option('--top-p <p>', 'nucleus sampling mass', float('top-p', 1e-9, 1), D.topP)
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', int('top-k'), D.topK)
    .option('--seed <s>', 'sampling seed (sample i of prompt r uses stream r·n+i)', int('seed'), D.seed)
    .option('--stop <text...>', 'stop strings')
    .option(
      '--task <task>',
      'grade each trace whose row has an answer, as rac eval --task grades it: math | tiny (recorded as "correct")',
      (v: string) => {
        if (v !== 'math' && v !== 'tiny') throw new InvalidArgumentError(`task must be math or tiny, got "${v}"`);
        return v as 'math' | 'tiny';
      },
    )
    .option('--batch-size <b>', 'sequences generated together (one wave; local backend batch)', int('batch-size', 1), D.batchSize)
    .option('--json', 'print the final manifest as JSON on stdout (with --dry-run: the estimate)')
    .option('--dry-run', 'print the work (traces × tokens), estimated time and peak memory, and exit without generating');
  addRuntimeOptions(addBackendOptions(cmd)).action(async (o: Opts) => {
    let system: string | undefined;
    let templateFlags: Record<string, unknown>;
    try {
      system = systemOf(o);
      templateFlags = templateFlagsOf(o);
    } catch (e) {
      if (e instanceof InvalidArgumentError) return usage(cmd, e.message);
      throw e;
    }
    const runtime = runtimeOf(o);
    const data = await loadDataset(o.dataset, { promptColumn: o.promptColumn, idColumn: o.idColumn, limit: o.limit });
    const tokenizer = await RacTokenizer.load(o.model);
    let estimate: Estimate | null = null;
    if (!o.quiet || o.dryRun) {
      // The estimate: from scratch, every completion running to --max-new-tokens (an upper bound).
      const rssBefore = process.memoryUsage().rss;
      let cfg: Model['config'] | null = null;
      let linears: ReturnType<Model['spec']['linears']> = [];
      if (o.backend === 'local') {
        const m = Model.open(o.model);
        cfg = m.config;
        linears = m.spec.linears(m.config);
        m.close();
      }
      const speed = cfg ? await machineSpeed({ runtime }) : null;
      const promptTokens = function* () {
        for (const row of data.rows)
          yield renderPrompt(tokenizer, row, { system, templateFlags, where: rowLabel(data.file, row) }).ids.length;
      };
      const est = estimateTrace(
        cfg,
        linears,
        {
          promptTokens: promptTokens(),
          prompts: data.rows.length,
          n: o.n,
          maxNewTokens: o.maxNewTokens,
          tokenBudget: o.tokenBudget,
          batchSize: o.batchSize,
        },
        speed,
        rssBefore,
      );
      for (const line of estimateLines('trace', est, speed)) process.stderr.write(`${line}\n`);
      estimate = est;
      if (o.dryRun) {
        if (o.json) printJson({ work: est.work, seconds: est.seconds, phases: est.phases, peak_bytes: est.peakBytes, speed });
        return;
      }
    }
    const t0 = performance.now();
    let last = 0;
    const quiet = !!o.quiet;
    const m = await trace({
      model: o.model,
      dataset: o.dataset,
      out: o.out,
      ...(o.promptColumn !== undefined ? { promptColumn: o.promptColumn } : {}),
      ...(o.idColumn !== undefined ? { idColumn: o.idColumn } : {}),
      ...(o.limit !== undefined ? { limit: o.limit } : {}),
      ...(system !== undefined ? { system } : {}),
      templateFlags,
      n: o.n,
      maxNewTokens: o.maxNewTokens,
      tokenBudget: o.tokenBudget,
      temperature: o.temperature,
      topP: o.topP,
      topK: o.topK,
      seed: o.seed,
      batchSize: o.batchSize,
      ...(o.stop ? { stop: o.stop } : {}),
      ...(o.task ? { grade: o.task } : {}),
      backend: backendOptionsOf(o),
      runtime,
      ...(quiet ? {} : { log: (line: string) => void process.stderr.write(`${line}\n`) }),
      onStart: ({ data, backend, fingerprint }) => {
        if (!quiet)
          process.stderr.write(`trace: ${data.rows.length} prompts × ${o.n} from ${data.file} on ${backend} (${fingerprint}) → ${o.out}\n`);
      },
      onProgress: (p) => {
        if (quiet) return;
        const now = Date.now();
        if (now - last < 2000) return;
        last = now;
        const total = p.promptTokens + p.decodeTokens;
        const tps = p.seconds > 0 ? p.sessionDecodeTokens / p.seconds : 0;
        // ETA from this session's rate of written tokens (prompt+completion) towards the target.
        const rate = p.seconds > 0 ? (p.sessionDecodeTokens > 0 ? tps * (total / Math.max(1, p.decodeTokens)) : 0) : 0;
        const eta = rate > 0 ? Math.max(0, p.targetTokens - total) / rate : NaN;
        const target = Number.isFinite(p.targetTokens) ? Math.round(p.targetTokens) : '?';
        process.stderr.write(
          `trace: ${total}/${target} tokens · ${p.records} records · ${tps.toFixed(1)} decode tok/s · elapsed ${formatDuration(p.seconds)} · ETA ${formatDuration(eta)}\n`,
        );
      },
    });
    {
      const share = (100 * m.decode_share).toFixed(1);
      if (o.json) printJson(m);
      else
        process.stdout.write(
          `${m.counts.records} records (${m.counts.complete_prompts} complete prompts) · ${m.tokens.total} tokens: ${m.tokens.prompt} prompt + ${m.tokens.decode} decode · ` +
            `decode share ${share}% · stopped: ${m.status === 'budget' ? 'token budget reached' : 'dataset exhausted'} → ${o.out} (manifest ${manifestPath(o.out)})\n`,
        );
      if (!quiet) process.stderr.write(`decode share ${share}%: the activation mass prompt-only calibration never sees\n`);
      if (!quiet && estimate && Number.isFinite(estimate.seconds)) {
        // This session's time against the estimate (a from-scratch figure: a resumed run does less).
        const took = (performance.now() - t0) / 1000;
        const rss = process.resourceUsage().maxRSS * 1024;
        process.stderr.write(
          `trace: took ${formatSeconds(took)} for ${m.tokens.total.toLocaleString('en-US')} tokens (estimated ${formatSeconds(estimate.seconds)}, ${(100 * (estimate.seconds / took - 1)).toFixed(0)}%), ` +
            `peak RSS ${(rss / 2 ** 20).toFixed(0)} MiB (estimated ${(estimate.peakBytes / 2 ** 20).toFixed(0)} MiB)\n`,
        );
      }
    }
  });
}
