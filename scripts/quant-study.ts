#!/usr/bin/env -S npx tsx
/**
 * `npm run quant-study`: quantization studies on rac's own tiny reasoners, evaluated on held-out
 * problems, with each model's GGUF size. Finished steps are skipped on a rerun (their outputs
 * exist); a Markdown table on stdout and quant-study.json in --out.
 *
 * --study legacy (default; models/tiny-reasoner, format v1 tasks arith + trace, greedy):
 *   dense; RTN q8_0 / q4_0; GPTQ q8_0 / q4_0 with prompt-only and RAC calibration; SparseGPT 50% +
 *   q4_0 in one joint sweep (prompt-only, RAC); SparseGPT-50%-RAC alone and followed by RTN q4_0 —
 *   all at the same calibration budget. GGUF F32 for dense and SparseGPT alone, the grid otherwise.
 *
 * --study kquant (issue 27; models/tiny-moe-reasoner, whose widths are multiples of 256 so every
 *   k-quant applies; format v2 tasks arith + trace + code; 4 samples at T 0.6 for pass@k):
 *   Q4_K_M, Q3_K_M and Q2_K (llama-quantize's Q2_K file type, q2_k_mix) × {no matrix, a plain-text
 *   importance matrix, a prompt-only matrix, a RAC matrix (the dense model's own traces), GPTQ-RAC};
 *   GGUF F16 for dense. The RAC matrix's one option (every token of prompt + trace, or decode
 *   tokens only: --token-weights prompt:0) is chosen on the validation split (greedy, Q2_K, never
 *   the eval problems) before the study runs; GPTQ-RAC takes the same calibration.
 *
 *   npm run quant-study -- --study kquant [--model DIR] [--out kquant-out] [--eval-per-family 100] [--samples 4]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ALL_FAMILIES, FAMILIES, generateSplit, type TinyProblem } from '../src/tasks/tiny/index.ts';
import { projectProse } from './prose.ts';

const { values } = parseArgs({
  options: {
    study: { type: 'string', default: 'legacy' },
    out: { type: 'string' },
    model: { type: 'string' },
    'eval-per-family': { type: 'string' },
    'calib-tokens': { type: 'string', default: '16384' },
    samples: { type: 'string', default: '4' },
  },
  strict: true,
});
const study = values.study!;
if (study !== 'legacy' && study !== 'kquant') {
  console.error(`quant-study: --study must be legacy or kquant, got "${study}"`);
  process.exit(2);
}
const kq = study === 'kquant';
const root = new URL('..', import.meta.url).pathname;
const model = values.model ?? join(root, 'models', kq ? 'tiny-moe-reasoner' : 'tiny-reasoner');
if (!existsSync(join(model, 'model.safetensors'))) {
  console.error(`quant-study: ${model} is missing`);
  process.exit(1);
}
const out = join(root, values.out ?? (kq ? 'kquant-out' : 'quant-out'));
const data = join(out, 'data');
mkdirSync(data, { recursive: true });
const rac = (args: string[], capture = false): string => {
  console.error(`$ rac ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(root, 'bin/rac.js'), ...args], {
    stdio: ['ignore', capture ? 'pipe' : 'inherit', 'inherit'],
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    console.error(`quant-study: rac ${args[0]} failed (exit ${r.status})`);
    process.exit(1);
  }
  return r.stdout ?? '';
};
const writeJsonl = (path: string, rows: object[]) => {
  writeFileSync(`${path}.tmp`, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  renameSync(`${path}.tmp`, path);
};
const interleave = <T>(lists: T[][]): T[] => {
  const o: T[] = [];
  for (let i = 0; i < Math.max(...lists.map((l) => l.length)); i++) for (const l of lists) if (i < l.length) o.push(l[i]!);
  return o;
};
const strip = ({ id, family, prompt, answer, tests }: TinyProblem) => ({ id, family, prompt, answer, ...(tests ? { tests } : {}) });

// Data: calibration prompts, a validation split (the next calibration-split prompts: never traced,
// calibrated on or evaluated), held-out problems; for the kquant study also a plain-text corpus.
const families = kq ? ALL_FAMILIES : FAMILIES;
const opts = kq ? { format: 'v2' as const } : {};
const perFamily = Number(values['eval-per-family'] ?? (kq ? '100' : '200'));
const calibFile = join(data, 'calib.jsonl');
const valFile = join(data, 'val.jsonl');
const evalFile = join(data, 'eval.jsonl');
const textFile = join(data, 'text.md');
const calibSplit = families.map((f) => generateSplit('calib', f, 500, 1, opts).map(strip));
writeJsonl(calibFile, interleave(calibSplit.map((l) => l.slice(0, 400))));
writeJsonl(valFile, interleave(calibSplit.map((l) => l.slice(400))));
writeJsonl(evalFile, interleave(families.map((f) => generateSplit('eval', f, perFamily, 2, opts).map(strip))));
if (kq) {
  // The project's own prose (README and docs/), as the demo's plain-text calibration.
  writeFileSync(`${textFile}.tmp`, projectProse(root));
  renameSync(`${textFile}.tmp`, textFile);
}

const traces = join(out, 'traces.jsonl');
if (!existsSync(traces))
  rac([
    'trace',
    '--model',
    model,
    '--dataset',
    calibFile,
    ...['--n', '2', '--max-new-tokens', '512', '--temperature', '0.6', '--top-p', '0.95', '--seed', '0'],
    ...['--token-budget', '48000', '--batch-size', '128', '--out', traces, '--quiet'],
  ]);

type Calib = 'prompt' | 'rac' | 'text';
const calibArgs: Record<Calib, string[]> = {
  prompt: ['--calib-mode', 'prompt', '--dataset', calibFile],
  rac: ['--calib-mode', 'rac', '--traces', traces],
  text: ['--calib-mode', 'text', '--text-files', textFile],
};
const budget = ['--calib-tokens', values['calib-tokens']!, '--max-seq-len', '512', '--batch-tokens', '8192'];
const sampling = kq
  ? ['--samples', values.samples!, '--temperature', '0.6', '--top-p', '0.95', '--seed', '0']
  : ['--samples', '1', '--temperature', '0', '--top-p', '1'];
const greedy = ['--samples', '1', '--temperature', '0', '--top-p', '1'];

interface Variant {
  name: string;
  /** rac prune arguments after --model (none: the dense model). */
  prune?: string[];
  /** Prune this variant's output instead of the dense model. */
  from?: string;
  gguf: string;
  /** Column values of the kquant table. */
  scheme?: string;
  calib?: string;
}

interface Metrics {
  accuracy: number;
  pass_at_k: Record<string, number>;
  mean_tokens: { all: number; correct: number };
  truncated: number;
  hesitations: { per_1k_tokens: number };
}
interface Results {
  metrics: Metrics;
  per_family?: Record<string, { accuracy: number }>;
  vs_dense?: { tokens_ratio: number | null; tokens_ratio_correct: number | null };
}
const imatrixOf = (calib: Calib, extra: string[] = [], tag: string = calib): string => {
  const f = join(out, 'imatrix', `${tag}.gguf`);
  if (!existsSync(f)) {
    mkdirSync(join(out, 'imatrix'), { recursive: true });
    rac(['imatrix', '--model', model, ...calibArgs[calib], ...extra, ...budget, '--out', f, '--quiet']);
  }
  return f;
};
const prepare = (v: Variant): string => {
  const dir = v.prune ? join(out, 'models', v.name) : model;
  if (v.prune && !existsSync(join(dir, 'rac.json')))
    rac(['prune', '--model', v.from ? join(out, 'models', v.from) : model, ...v.prune, '--out', dir, '--overwrite', '--quiet']);
  return dir;
};
const evaluate = (name: string, dir: string, dataset: string, how: string[], dense?: string): { r: Results; results: string } => {
  const results = join(out, dataset === valFile ? 'val' : 'eval', `${name}.json`);
  mkdirSync(join(results, '..'), { recursive: true });
  rac([
    'eval',
    ...['--model', dir, '--dataset', dataset, '--task', 'tiny', ...how, '--max-new-tokens', kq ? '460' : '400', '--batch-size', '200'],
    ...(dense ? ['--dense', dense] : []),
    ...['--out', results, '--quiet'],
  ]);
  return { r: JSON.parse(readFileSync(results, 'utf8')) as Results, results };
};

let V: Variant[];
const chosen: Record<string, unknown> = {};
if (!kq) {
  V = [
    { name: 'dense', gguf: 'f32' },
    { name: 'rtn-q8_0', prune: ['--method', 'rtn', '--quant', 'q8_0'], gguf: 'q8_0' },
    { name: 'rtn-q4_0', prune: ['--method', 'rtn', '--quant', 'q4_0'], gguf: 'q4_0' },
    ...(['q8_0', 'q4_0'] as const).flatMap((q) =>
      (['prompt', 'rac'] as const).map((c) => ({
        name: `gptq-${c}-${q}`,
        prune: ['--method', 'gptq', '--quant', q, ...calibArgs[c], ...budget],
        gguf: q,
      })),
    ),
    ...(['prompt', 'rac'] as const).map((c) => ({
      name: `sparsegpt50+q4_0-joint-${c}`,
      prune: ['--method', 'sparsegpt', '--sparsity', '0.5', '--quant', 'q4_0', ...calibArgs[c], ...budget],
      gguf: 'q4_0',
    })),
    { name: 'sparsegpt50-rac', prune: ['--method', 'sparsegpt', '--sparsity', '0.5', ...calibArgs.rac, ...budget], gguf: 'f32' },
    { name: 'sparsegpt50-rac→rtn-q4_0', from: 'sparsegpt50-rac', prune: ['--method', 'rtn', '--quant', 'q4_0'], gguf: 'q4_0' },
  ];
} else {
  // Validation: the RAC matrix on every token vs decode tokens only, at the lowest bit width.
  const options = { all: [] as string[], decode: ['--token-weights', 'prompt:0,think:1,answer:1'] };
  const val: Record<string, number> = {};
  for (const [tag, extra] of Object.entries(options)) {
    const m = imatrixOf('rac', extra, `rac-${tag}`);
    const v: Variant = {
      name: `val-rtn-q2_k_mix-rac-${tag}`,
      prune: ['--method', 'rtn', '--quant', 'q2_k_mix', '--imatrix', m],
      gguf: 'q2_k_mix',
    };
    val[tag] = evaluate(v.name, prepare(v), valFile, greedy).r.metrics.accuracy;
  }
  const pick = (val['decode'] ?? 0) > (val['all'] ?? 0) ? 'decode' : 'all';
  Object.assign(chosen, { rac_token_weights: pick, validation_accuracy: val });
  console.error(`validation (Q2_K, RAC matrix): every token ${val['all']}, decode tokens only ${val['decode']} → ${pick}`);
  const racExtra = options[pick];
  const matrices: Record<Calib, string> = {
    text: imatrixOf('text'),
    prompt: imatrixOf('prompt'),
    rac: imatrixOf('rac', racExtra, `rac-${pick}`),
  };
  V = [{ name: 'dense', gguf: 'f16', scheme: 'dense (F16)', calib: '-' }];
  for (const q of ['q4_k_m', 'q3_k_m', 'q2_k_mix']) {
    V.push({ name: `rtn-${q}`, prune: ['--method', 'rtn', '--quant', q], gguf: q, scheme: q, calib: 'no matrix' });
    for (const c of ['text', 'prompt', 'rac'] as const)
      V.push({
        name: `rtn-${q}-imatrix-${c}`,
        prune: ['--method', 'rtn', '--quant', q, '--imatrix', matrices[c]],
        gguf: q,
        scheme: q,
        calib: `${c} matrix`,
      });
    V.push({
      name: `gptq-rac-${q}`,
      prune: ['--method', 'gptq', '--quant', q, ...calibArgs.rac, ...racExtra, ...budget],
      gguf: q,
      scheme: q,
      calib: 'GPTQ-RAC',
    });
  }
}

const rows: Record<string, unknown>[] = [];
let denseResults: string | undefined;
for (const v of V) {
  const dir = prepare(v);
  const gguf = join(out, 'gguf', `${v.name}.${v.gguf}.gguf`);
  if (!existsSync(gguf)) {
    mkdirSync(join(out, 'gguf'), { recursive: true });
    rac(['export-gguf', '--model', dir, '--out', gguf, '--dtype', v.gguf, '--quiet']);
  }
  const { r, results } = evaluate(v.name, dir, evalFile, sampling, kq ? denseResults : undefined);
  if (!v.prune) denseResults = results;
  const m = r.metrics;
  const fam = r.per_family ?? {};
  const racJson = v.prune ? (JSON.parse(readFileSync(join(dir, 'rac.json'), 'utf8')) as { totals: { sparsity: number } }) : null;
  const ks = Object.keys(m.pass_at_k ?? {}).map(Number);
  rows.push({
    variant: v.name,
    scheme: v.scheme,
    calib: v.calib,
    accuracy: m.accuracy,
    ...Object.fromEntries(families.map((f) => [f, fam[f]?.accuracy])),
    pass_at_k: ks.length ? { k: Math.max(...ks), value: m.pass_at_k[String(Math.max(...ks))] } : undefined,
    mean_tokens: m.mean_tokens.all,
    tokens_vs_dense: r.vs_dense?.tokens_ratio,
    tokens_vs_dense_correct: r.vs_dense?.tokens_ratio_correct,
    hesitations_per_1k: m.hesitations?.per_1k_tokens,
    truncated: m.truncated,
    sparsity: racJson?.totals.sparsity ?? 0,
    gguf: v.gguf,
    gguf_bytes: statSync(gguf).size,
  });
}
const base = rows[0]!['gguf_bytes'] as number;
writeFileSync(
  join(out, 'quant-study.json'),
  JSON.stringify({ study, model, eval_per_family: perFamily, calib_tokens: Number(values['calib-tokens']), chosen, rows }, null, 2) + '\n',
);
const pct = (x: unknown) => (typeof x === 'number' ? `${(100 * x).toFixed(1)}%` : '-');
const num = (x: unknown, d = 2) => (typeof x === 'number' ? x.toFixed(d) : '-');
if (!kq) {
  console.log('| variant | accuracy | arith | trace | mean tokens | truncated | sparsity | GGUF | bytes | of F32 |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r['variant']} | ${pct(r['accuracy'])} | ${pct(r['arith'])} | ${pct(r['trace'])} | ${(r['mean_tokens'] as number).toFixed(1)} | ${pct(r['truncated'])} | ${pct(r['sparsity'])} | ${String(r['gguf']).toUpperCase()} | ${(r['gguf_bytes'] as number).toLocaleString('en-US')} | ${pct((r['gguf_bytes'] as number) / base)} |`,
    );
} else {
  const k = (rows[0]!['pass_at_k'] as { k: number } | undefined)?.k ?? 1;
  console.log(
    `| scheme | calibration | accuracy | arith | trace | code | pass@${k} | tokens ÷ dense (correct) | hesitations /1k | truncated | GGUF bytes (÷ F16) |`,
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const pk = r['pass_at_k'] as { value: number } | undefined;
    console.log(
      `| ${r['scheme']} | ${r['calib']} | ${pct(r['accuracy'])} | ${pct(r['arith'])} | ${pct(r['trace'])} | ${pct(r['code'])} | ${pct(pk?.value)} | ` +
        `${num(r['tokens_vs_dense'])} (${num(r['tokens_vs_dense_correct'])}) | ${num(r['hesitations_per_1k'])} | ${pct(r['truncated'])} | ` +
        `${(r['gguf_bytes'] as number).toLocaleString('en-US')} (${num((r['gguf_bytes'] as number) / base, 3)}) |`,
    );
  }
  // The issue's figure: at the lowest bit width where the plain-text matrix loses ≥ 15 points,
  // the share of that loss RAC calibration (matrix or GPTQ) recovers, and the token ratios.
  const dense = rows[0]!['accuracy'] as number;
  const at = (q: string, c: string) => rows.find((r) => r['scheme'] === q && r['calib'] === c)!;
  for (const q of ['q2_k_mix', 'q3_k_m', 'q4_k_m']) {
    const text = at(q, 'text matrix');
    const lost = dense - (text['accuracy'] as number);
    if (lost < 0.15 && q !== 'q4_k_m') continue;
    for (const c of ['rac matrix', 'GPTQ-RAC']) {
      const r = at(q, c);
      console.log(
        `${q}: the text matrix loses ${(100 * lost).toFixed(1)} points against dense${lost < 0.15 ? ' (under 15 at every width)' : ''}; ${c} recovers ` +
          `${lost > 0 ? `${((100 * ((r['accuracy'] as number) - (text['accuracy'] as number))) / lost).toFixed(0)}%` : 'n/a'} of it (target ≥ 50%), ` +
          `tokens ÷ dense ${num(r['tokens_vs_dense'])} vs text ${num(text['tokens_vs_dense'])} (target: no higher)`,
      );
    }
    break;
  }
}
