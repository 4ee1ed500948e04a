#!/usr/bin/env -S npx tsx
/**
 * `npm run quant-study`: quantization (GPTQ, RTN) and joint pruning + quantization on the shipped
 * tiny reasoner, evaluated on held-out problems (greedy), with the size of each model's GGUF.
 *   1. calibration prompts and held-out problems from the tiny task generators (as scripts/demo.ts);
 *   2. the dense model's own traces (rac trace, the demo's settings) for RAC calibration;
 *   3. variants: dense; RTN q8_0 / q4_0; GPTQ q8_0 / q4_0 with prompt-only and RAC calibration;
 *      SparseGPT 50% + q4_0 in one joint sweep (prompt-only, RAC); SparseGPT-50%-RAC alone and
 *      followed by RTN q4_0 — all at the same calibration budget;
 *   4. rac eval --task tiny on every variant, rac export-gguf (F32 for dense and SparseGPT alone,
 *      the variant's grid otherwise) for the file size;
 *   5. a Markdown table on stdout and quant-study.json in --out.
 * Finished steps are skipped on a rerun (their outputs exist).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { FAMILIES, generateSplit } from '../src/tasks/tiny/index.ts';

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'quant-out' },
    model: { type: 'string' },
    'eval-per-family': { type: 'string', default: '200' },
    'calib-tokens': { type: 'string', default: '16384' },
  },
});
const root = new URL('..', import.meta.url).pathname;
const model = values.model ?? join(root, 'models', 'tiny-reasoner');
if (!existsSync(join(model, 'model.safetensors'))) {
  console.error(`quant-study: ${model} is missing`);
  process.exit(1);
}
const out = join(root, values.out!);
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
const strip = ({ id, family, prompt, answer }: { id: string; family: string; prompt: string; answer: string }) => ({
  id,
  family,
  prompt,
  answer,
});
const perFamily = Number(values['eval-per-family']);
const calibFile = join(data, 'calib.jsonl');
const evalFile = join(data, 'eval.jsonl');
writeJsonl(calibFile, interleave(FAMILIES.map((f) => generateSplit('calib', f, 400, 1).map(strip))));
writeJsonl(evalFile, interleave(FAMILIES.map((f) => generateSplit('eval', f, perFamily, 2).map(strip))));

const traces = join(out, 'traces.jsonl');
rac([
  'trace',
  '--model',
  model,
  '--dataset',
  calibFile,
  '--n',
  '2',
  '--max-new-tokens',
  '512',
  '--temperature',
  '0.6',
  '--top-p',
  '0.95',
  '--seed',
  '0',
  '--token-budget',
  '48000',
  '--batch-size',
  '128',
  '--out',
  traces,
  '--quiet',
]);

const calibArgs: Record<'prompt' | 'rac', string[]> = {
  prompt: ['--calib-mode', 'prompt', '--dataset', calibFile],
  rac: ['--calib-mode', 'rac', '--traces', traces],
};
const budget = ['--calib-tokens', values['calib-tokens']!, '--max-seq-len', '512', '--batch-tokens', '8192'];

interface Variant {
  name: string;
  /** rac prune arguments after --model (none: the dense model). */
  prune?: string[];
  /** Prune this variant's output instead of the dense model. */
  from?: string;
  gguf: 'f32' | 'q8_0' | 'q4_0';
}
const V: Variant[] = [
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
    gguf: 'q4_0' as const,
  })),
  { name: 'sparsegpt50-rac', prune: ['--method', 'sparsegpt', '--sparsity', '0.5', ...calibArgs.rac, ...budget], gguf: 'f32' },
  { name: 'sparsegpt50-rac→rtn-q4_0', from: 'sparsegpt50-rac', prune: ['--method', 'rtn', '--quant', 'q4_0'], gguf: 'q4_0' },
];

const rows: Record<string, unknown>[] = [];
for (const v of V) {
  const dir = v.prune ? join(out, 'models', v.name) : model;
  if (v.prune && !existsSync(join(dir, 'rac.json'))) {
    rac(['prune', '--model', v.from ? join(out, 'models', v.from) : model, ...v.prune, '--out', dir, '--overwrite', '--quiet']);
  }
  const gguf = join(out, 'gguf', `${v.name}.${v.gguf}.gguf`);
  if (!existsSync(gguf)) {
    mkdirSync(join(out, 'gguf'), { recursive: true });
    rac(['export-gguf', '--model', dir, '--out', gguf, '--dtype', v.gguf, '--quiet']);
  }
  const results = join(out, 'eval', `${v.name}.json`);
  mkdirSync(join(out, 'eval'), { recursive: true });
  const line = rac(
    [
      'eval',
      '--model',
      dir,
      '--dataset',
      evalFile,
      '--task',
      'tiny',
      '--samples',
      '1',
      '--max-new-tokens',
      '400',
      '--temperature',
      '0',
      '--top-p',
      '1',
      '--batch-size',
      '200',
      '--out',
      results,
      '--json',
      '--quiet',
    ],
    true,
  );
  const m = JSON.parse(line.trim().split('\n').pop()!) as { accuracy: number; mean_tokens: { all: number }; truncated: number };
  const fam = (JSON.parse(readFileSync(results, 'utf8')) as { per_family?: Record<string, { accuracy: number }> }).per_family ?? {};
  const racJson = v.prune ? (JSON.parse(readFileSync(join(dir, 'rac.json'), 'utf8')) as { totals: { sparsity: number } }) : null;
  rows.push({
    variant: v.name,
    accuracy: m.accuracy,
    arith: fam['arith']?.accuracy,
    trace: fam['trace']?.accuracy,
    mean_tokens: m.mean_tokens.all,
    truncated: m.truncated,
    sparsity: racJson?.totals.sparsity ?? 0,
    gguf: v.gguf,
    gguf_bytes: statSync(gguf).size,
  });
}
const f32 = rows[0]!['gguf_bytes'] as number;
writeFileSync(
  join(out, 'quant-study.json'),
  JSON.stringify({ model, eval_per_family: perFamily, calib_tokens: Number(values['calib-tokens']), rows }, null, 2) + '\n',
);
const pct = (x: unknown) => (typeof x === 'number' ? `${(100 * x).toFixed(1)}%` : '-');
console.log('| variant | accuracy | arith | trace | mean tokens | truncated | sparsity | GGUF | bytes | of F32 |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r['variant']} | ${pct(r['accuracy'])} | ${pct(r['arith'])} | ${pct(r['trace'])} | ${(r['mean_tokens'] as number).toFixed(1)} | ${pct(r['truncated'])} | ${pct(r['sparsity'])} | ${String(r['gguf']).toUpperCase()} | ${(r['gguf_bytes'] as number).toLocaleString('en-US')} | ${pct((r['gguf_bytes'] as number) / f32)} |`,
  );
}
