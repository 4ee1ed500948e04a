import { InvalidArgumentError, type Command } from 'commander';
import { parseTemplateFlag } from '../../io/datasets.ts';
import { evaluate } from '../../api/evaluate.ts';
import { UsageError } from '../../errors.ts';
import { addBackendOptions, backendOptionsOf, type BackendFlags } from '../backend-options.ts';
import { DEFAULT_CODE_LIMITS, EVAL_TASKS, GRADERS, type EvalTask } from '../../study/eval.ts';
import { BENCHMARKS, isBenchmark, type BenchmarkName } from '../../tasks/benchmarks.ts';
import { addRuntimeOptions, float, int, type RuntimeFlags } from '../common.ts';
import { EVAL_DEFAULTS as D, runtimeOf } from '../../study/job.ts';
import { progress } from '../progress.ts';

interface Opts extends RuntimeFlags, BackendFlags {
  model: string;
  dataset?: string | string[];
  task?: EvalTask;
  benchmark?: BenchmarkName;
  grader?: string;
  promptColumn?: string;
  answerColumn: string;
  idColumn?: string;
  templateFlag?: string[];
  testsColumn: string;
  familyColumn: string;
  system?: string;
  dense?: string;
  samples: number;
  maxNewTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  stop?: string[];
  limit?: number;
  batchSize: number;
  codeWallSeconds: number;
  codeCpuSeconds: number;
  codeMemoryMb: number;
  out: string;
  json?: boolean;
}

export function register(program: Command): void {
  const cmd = program
    .command('eval')
    .description('sample K completions per problem, grade them, and report accuracy, pass@k and generated length (resumable)')
    .requiredOption('--model <dir>', 'model directory (its tokenizer renders prompts; `rac report` reads <dir>/rac.json)')
    .option('--dataset <file>', 'problems: JSONL, JSON or Parquet rows (or give --benchmark)')
    .option('--task <task>', 'math | code | tiny | choice (or give --benchmark)', (v: string) => {
      if (!(EVAL_TASKS as readonly string[]).includes(v))
        throw new InvalidArgumentError(`task must be one of ${EVAL_TASKS.join(', ')}, got "${v}"`);
      return v as EvalTask;
    })
    .option(
      '--benchmark <name>',
      `a paper benchmark as lighteval runs it: ${BENCHMARKS.join(' | ')} (its hub dataset, prompt, task, samples and sampling; flags override)`,
      (v: string) => {
        if (!isBenchmark(v)) throw new InvalidArgumentError(`benchmark must be one of ${BENCHMARKS.join(', ')}, got "${v}"`);
        return v;
      },
    )
    .option(
      '--grader <name>',
      `how answers are judged: math ${GRADERS.math.join(' | ')}; code ${GRADERS.code.join(' | ')} (default: the first)`,
    )
    .requiredOption('--out <file>', 'results.json (samples are logged to <out>.samples.jsonl as they finish)')
    .option('--prompt-column <c>', 'prompt column (default: the first of problem, prompt, question)')
    .option('--answer-column <c>', 'gold answer column (math, tiny)', 'answer')
    .option('--id-column <c>', 'problem id column (default: id when unique, else the row number)')
    .option('--tests-column <c>', 'stdin/stdout tests column (code)', 'tests')
    .option('--family-column <c>', 'family column for per-family metrics', 'family')
    .option('--system <text>', 'system message')
    .option('--template-flag <key=value...>', 'chat template variables, e.g. enable_thinking=false')
    .option('--samples <k>', 'completions per problem', int('samples', 1), D.samples)
    .option('--max-new-tokens <n>', 'generation budget per completion', int('max-new-tokens', 1), D.maxNewTokens)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', float('temperature', 0, 100), D.temperature)
    .option('--top-p <p>', 'nucleus sampling mass', float('top-p', 1e-9, 1), D.topP)
    .option('--top-k <k>', 'keep the k most likely tokens (0 = off)', int('top-k'), D.topK)
    .option('--seed <s>', 'sampling seed', int('seed'), D.seed)
    .option('--stop <text...>', 'stop strings')
    .option('--limit <n>', 'evaluate only the first n problems', int('limit', 1))
    .option('--batch-size <b>', 'sequences decoded together (local backend)', int('batch-size', 1), D.batchSize)
    .option(
      '--code-wall-seconds <s>',
      'code: wall-clock limit per test run',
      float('code-wall-seconds', 0.001, 86_400),
      DEFAULT_CODE_LIMITS.wallMs / 1000,
    )
    .option(
      '--code-cpu-seconds <s>',
      'code: CPU-time limit per test run',
      float('code-cpu-seconds', 0.001, 86_400),
      DEFAULT_CODE_LIMITS.cpuSeconds,
    )
    .option(
      '--code-memory-mb <m>',
      'code: address-space limit per test run, MiB',
      float('code-memory-mb', 16, 1 << 20),
      DEFAULT_CODE_LIMITS.memoryMb,
    )
    .option(
      '--dense <results.json>',
      "the dense model's results on the same problems: adds vs_dense (mean tokens ÷ dense, all and correct only; truncation)",
    )
    .option('--json', 'print the metrics as one JSON object on stdout');
  addRuntimeOptions(addBackendOptions(cmd)).action(async (o: Opts) => {
    // A benchmark preset gives the dataset, task and sampling; a flag given on the command line wins.
    const given = (name: string) => cmd.getOptionValueSource(name) === 'cli' || !o.benchmark;
    const pick = <K extends keyof Opts>(k: K) => (given(k as string) ? { [k]: o[k] } : {});
    let bar: ReturnType<typeof progress> | null = null;
    const t0 = performance.now();
    let res: Awaited<ReturnType<typeof evaluate>>;
    try {
      res = await evaluate({
        model: o.model,
        out: o.out,
        ...(o.dataset !== undefined ? { dataset: o.dataset } : {}),
        ...(o.task ? { task: o.task } : {}),
        ...(o.benchmark ? { benchmark: o.benchmark } : {}),
        ...(o.grader !== undefined ? { grader: o.grader } : {}),
        columns: {
          ...(o.promptColumn !== undefined ? { prompt: o.promptColumn } : {}),
          ...(o.idColumn !== undefined ? { id: o.idColumn } : {}),
          answer: o.answerColumn,
          tests: o.testsColumn,
          family: o.familyColumn,
        },
        ...(o.system !== undefined ? { system: o.system } : {}),
        ...(o.templateFlag?.length ? { templateFlags: Object.fromEntries(o.templateFlag.map(parseTemplateFlag)) } : {}),
        ...pick('samples'),
        ...pick('maxNewTokens'),
        ...pick('temperature'),
        ...pick('topP'),
        topK: o.topK,
        seed: o.seed,
        ...(o.stop ? { stop: o.stop } : {}),
        ...(o.limit !== undefined ? { limit: o.limit } : {}),
        batchSize: o.batchSize,
        codeLimits: {
          ...(given('codeWallSeconds') ? { wallSeconds: o.codeWallSeconds } : {}),
          ...(given('codeCpuSeconds') ? { cpuSeconds: o.codeCpuSeconds } : {}),
          memoryMb: o.codeMemoryMb,
        },
        ...(o.dense !== undefined ? { dense: o.dense } : {}),
        backend: backendOptionsOf(o),
        runtime: runtimeOf(o),
        log: (m) => {
          if (!o.quiet) process.stderr.write(`rac eval: ${m}\n`);
        },
        onProgress: (p) => {
          bar ??= progress('eval', p.total, { quiet: o.quiet, unit: 'problems', extra: ' | {tps} tokens/s' });
          const s = (performance.now() - t0) / 1000;
          bar.update(p.done, { tps: s > 0 ? (p.newTokens / s).toFixed(1) : '0' });
        },
      });
    } catch (e) {
      if (e instanceof UsageError) return cmd.error(`error: ${e.message}`);
      throw e;
    }
    {
      (bar as ReturnType<typeof progress> | null)?.stop();
      const m = res.metrics;
      if (o.json) process.stdout.write(JSON.stringify(res.vs_dense ? { ...m, vs_dense: res.vs_dense } : m) + '\n');
      else {
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        const passk = Object.entries(m.pass_at_k)
          .map(([k, v]) => `pass@${k} ${pct(v)}`)
          .join(', ');
        process.stdout.write(
          `${res.dataset.problems} problems × ${res.sampling.samples} samples: accuracy ${pct(m.accuracy)} (${passk})\n` +
            `mean tokens ${m.mean_tokens.all.toFixed(1)} (correct ${m.mean_tokens.correct?.toFixed(1) ?? '–'}, incorrect ${m.mean_tokens.incorrect?.toFixed(1) ?? '–'}), ` +
            `think ${m.mean_think_tokens.toFixed(1)}, truncated ${pct(m.truncated)}, closed </think> ${pct(m.closed_think)}, boxed ${pct(m.boxed)}\n` +
            `hesitations: wait ${m.hesitations.wait}, but wait ${m.hesitations.but_wait}, alternatively ${m.hesitations.alternatively}, hmm ${m.hesitations.hmm} ` +
            `(${m.hesitations.per_1k_tokens.toFixed(2)} per 1k tokens)\n` +
            (res.vs_dense
              ? `vs dense on ${res.vs_dense.problems} problems: mean tokens ×${res.vs_dense.tokens_ratio?.toFixed(2) ?? '–'} (correct, ${res.vs_dense.problems_both_correct} problems both solve: ×${res.vs_dense.tokens_ratio_correct?.toFixed(2) ?? '–'}), truncated ${pct(res.vs_dense.truncated)} (dense ${pct(res.vs_dense.dense_truncated)})\n`
              : '') +
            `${m.wall_seconds.toFixed(1)}s, ${m.tokens_per_second.toFixed(1)} tokens/s → ${o.out}\n`,
        );
      }
    }
  });
}
