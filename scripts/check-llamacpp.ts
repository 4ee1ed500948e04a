#!/usr/bin/env -S npx tsx
/**
 * rac against llama.cpp's own tools, byte for byte (issue 27). Needs a build of `llama-quantize`
 * and `llama-imatrix` from the llama.cpp source node-llama-cpp bundles — a reference only, never a
 * dependency of rac:
 *
 *   git clone node_modules/node-llama-cpp/llama/gitRelease.bundle ~/llama.cpp
 *   cmake -S ~/llama.cpp -B ~/llama.cpp/build -G Ninja -DLLAMA_CURL=OFF -DCMAKE_BUILD_TYPE=Release
 *   ninja -C ~/llama.cpp/build llama-quantize llama-imatrix
 *   npm run check:llamacpp -- --bin ~/llama.cpp/build/bin        (or RAC_LLAMA_CPP_BIN=…)
 *
 * For random checkpoints of two families (qwen2 with widths that are multiples of 256, tied; llama
 * with an intermediate width of 352, untied, q/k rows permuted, so llama.cpp's fallbacks apply):
 *   1. the importance matrix: `llama-imatrix` on a text against `rac imatrix --calib-mode text` on
 *      the same text cut into the same chunks — entries, counts, and max relative |Δ| of the sums;
 *   2. every scheme × {no matrix, rac's matrix}: `llama-quantize [--imatrix rac.gguf]` on rac's F32
 *      GGUF against `rac export-gguf --dtype SCHEME [--imatrix]` (quantized on export) and against
 *      `rac prune --method rtn --quant SCHEME [--imatrix]` exported from its model directory —
 *      every tensor's type and bytes. llama-quantize accepting rac's matrix is part of it.
 * One line per comparison; exit 1 when any differs.
 *
 * `--write-goldens` runs the small models and writes test/golden/llamacpp/ (llama-imatrix's matrix
 * and, per scheme × matrix, each tensor's type and hash of llama-quantize's bytes), which `npm test`
 * compares with rac without any llama.cpp build (test/export/llamacpp-goldens.test.ts).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { exportGguf } from '../src/export/gguf.ts';
import { readGguf, readGgufTensorBytes } from '../src/io/gguf.ts';
import { readImatrix, writeImatrix, type Imatrix } from '../src/io/imatrix.ts';
import { Model } from '../src/models/model.ts';
import { writeRandomCheckpoint } from '../src/models/random.ts';
import { pruneCheckpoint } from '../src/prune/prune.ts';
import { isMixScheme, llamaQuantizeArgs, QUANT_SCHEMES, type QuantScheme } from '../src/compress/quant-schemes.ts';
import {
  CHECK_MODELS,
  GOLDEN_DIR,
  GOLDEN_MODELS,
  IMATRIX_CTX,
  racImatrixLikeLlama,
  type CheckModel,
} from '../test/golden/llamacpp/models.ts';

const { values: a } = parseArgs({
  options: {
    bin: { type: 'string' },
    work: { type: 'string' },
    'write-goldens': { type: 'boolean', default: false },
    small: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    schemes: { type: 'string' },
    'no-model-dir': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (a.help) {
  process.stdout.write(
    'usage: npm run check:llamacpp -- [--bin DIR] [--work DIR] [--small] [--write-goldens] [--schemes q4_k,q4_k_m] [--no-model-dir] [--keep]\n',
  );
  process.exit(0);
}
const bin = a.bin ?? process.env.RAC_LLAMA_CPP_BIN;
if (!bin || !existsSync(join(bin, 'llama-quantize')) || !existsSync(join(bin, 'llama-imatrix'))) {
  process.stderr.write(
    `check:llamacpp: no llama-quantize / llama-imatrix in ${bin ?? '(give --bin DIR or RAC_LLAMA_CPP_BIN)'}; build them from node_modules/node-llama-cpp/llama/gitRelease.bundle (see this script's header)\n`,
  );
  process.exit(2);
}
const work = resolve(a.work ?? mkdtempSync(join(tmpdir(), 'rac-check-llamacpp-')));
mkdirSync(work, { recursive: true });
const env = { ...process.env, LD_LIBRARY_PATH: [bin, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':') };
const only = a.schemes ? new Set(a.schemes.split(',')) : null;
if (only && a['write-goldens']) {
  process.stderr.write('check:llamacpp: --write-goldens writes every scheme; drop --schemes\n');
  process.exit(2);
}
const models = a['write-goldens'] || a.small ? GOLDEN_MODELS : CHECK_MODELS;
const text = join(GOLDEN_DIR, 'text.txt');

function tool(name: string, args: string[], cwd?: string): void {
  const r = spawnSync(join(bin!, name), args, { env, encoding: 'utf8', maxBuffer: 1 << 26, ...(cwd ? { cwd } : {}) });
  if (r.status !== 0)
    throw new Error(`${name} ${args.join(' ')} failed (${r.status}):\n${(r.stderr || r.stdout).split('\n').slice(-15).join('\n')}`);
}

const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** Every tensor of two GGUF files: type id and bytes. */
function compareGguf(ours: string, ref: string): { equal: boolean; line: string } {
  const go = readGguf(ours);
  const gr = readGguf(ref);
  const diffs: string[] = [];
  const types = new Map<string, number>();
  for (const t of gr.tensors) {
    const u = go.tensors.find((x) => x.name === t.name);
    if (!u) {
      diffs.push(`${t.name} missing`);
      continue;
    }
    if (t.shape.length > 1) types.set(t.type ?? String(t.typeId), (types.get(t.type ?? String(t.typeId)) ?? 0) + 1);
    if (u.typeId !== t.typeId) {
      diffs.push(`${t.name}: ${u.type} vs ${t.type}`);
      continue;
    }
    const x = readGgufTensorBytes(go, t.name);
    const y = readGgufTensorBytes(gr, t.name);
    if (Buffer.compare(Buffer.from(x), Buffer.from(y)) !== 0) {
      let n = 0;
      for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) n++;
      diffs.push(`${t.name} (${t.type}): ${n} of ${x.length} bytes differ`);
    }
  }
  if (go.tensors.length !== gr.tensors.length) diffs.push(`${go.tensors.length} vs ${gr.tensors.length} tensors`);
  const mix = [...types].map(([t, n]) => `${n}×${t}`).join(' ');
  return diffs.length
    ? { equal: false, line: `DIFFERENT: ${diffs.slice(0, 4).join('; ')}${diffs.length > 4 ? ` (+${diffs.length - 4})` : ''}` }
    : { equal: true, line: `EQUAL (${gr.tensors.length} tensors; ${mix})` };
}

/** Entries, counts and the largest relative |Δ| of the sums of two importance matrices. */
function compareImatrix(ours: Imatrix, ref: Imatrix): { worst: number; line: string; ok: boolean } {
  let worst = 0;
  let where = '';
  const problems: string[] = [];
  for (const [name, e] of ref.entries) {
    const f = ours.entries.get(name);
    if (!f) {
      problems.push(`${name} missing`);
      continue;
    }
    if (f.counts.join() !== e.counts.join()) problems.push(`${name}: counts ${f.counts} vs ${e.counts}`);
    for (let i = 0; i < e.sums.length; i++) {
      const d = Math.abs(f.sums[i]! - e.sums[i]!) / Math.max(Math.abs(e.sums[i]!), 1e-30);
      if (d > worst) [worst, where] = [d, name];
    }
  }
  if (ours.entries.size !== ref.entries.size) problems.push(`${ours.entries.size} vs ${ref.entries.size} entries`);
  const ok = problems.length === 0 && worst < 1e-3;
  return {
    worst,
    ok,
    line: `${ref.entries.size} entries, counts ${problems.length ? 'DIFFER' : 'equal'} (${[...ref.entries.values()][0]?.counts.join(',')} tokens each), max relative |Δ sums| ${worst.toExponential(2)} (${where})${problems.length ? `; ${problems.slice(0, 3).join('; ')}` : ''}`,
  };
}

/** rac's importance matrix on `text` cut as llama-imatrix cuts it (test/golden/llamacpp/models.ts). */
async function racImatrix(dir: string): Promise<Imatrix> {
  const model = Model.open(dir);
  try {
    return await racImatrixLikeLlama(model, text, { batchTokens: 4096, threads: 2 });
  } finally {
    model.close();
  }
}

let failures = 0;
const goldens: Record<string, Record<string, string[]>> = {};
for (const m of models as readonly CheckModel[]) {
  const dir = join(work, m.key);
  if (!existsSync(join(dir, 'config.json'))) writeRandomCheckpoint(dir, m.opts);
  const f32 = join(work, `${m.key}-f32.gguf`);
  exportGguf({ model: dir, out: f32, dtype: 'f32', warn: () => {} });
  const llamaIm = join(work, `${m.key}-llama.imatrix.gguf`);
  // run beside the text, so the matrix records its dataset as "text.txt", not a path of this machine
  tool(
    'llama-imatrix',
    [
      '-m',
      f32,
      '-f',
      'text.txt',
      '-o',
      llamaIm,
      '-c',
      String(IMATRIX_CTX),
      '-b',
      String(IMATRIX_CTX),
      '--no-ppl',
      '-fa',
      'off',
      '-ctk',
      'f32',
      '-ctv',
      'f32',
      '-t',
      '2',
    ],
    GOLDEN_DIR,
  );
  const racIm = join(work, `${m.key}-rac.imatrix.gguf`);
  const ours = await racImatrix(dir);
  writeImatrix(racIm, ours);
  const im = compareImatrix(ours, readImatrix(llamaIm));
  if (!im.ok) failures++;
  process.stdout.write(`${m.key} imatrix: rac vs llama-imatrix: ${im.line}\n`);
  if (a['write-goldens']) copyFileSync(llamaIm, join(GOLDEN_DIR, `${m.key}.imatrix.gguf`));

  for (const scheme of QUANT_SCHEMES as readonly QuantScheme[]) {
    if (only && !only.has(scheme)) continue;
    if (!m.schemes.includes(scheme)) continue;
    // the goldens use llama-imatrix's own matrix (the test reads llama's file); the check uses rac's
    for (const withIm of [false, true]) {
      const imFile = a['write-goldens'] ? llamaIm : racIm;
      const label = `${m.key} ${scheme.padEnd(8)} ${withIm ? (a['write-goldens'] ? 'llama-imatrix' : 'rac imatrix ') : 'no imatrix  '}`;
      const ref = join(work, `${m.key}-${scheme}-${withIm ? 'im' : 'plain'}-llama.gguf`);
      tool('llama-quantize', [
        ...(withIm ? ['--imatrix', imFile] : []),
        ...llamaQuantizeArgs(scheme).slice(0, -1),
        f32,
        ref,
        llamaQuantizeArgs(scheme).at(-1)!,
        '1',
      ]);
      const out = join(work, `${m.key}-${scheme}-${withIm ? 'im' : 'plain'}-rac.gguf`);
      exportGguf({ model: dir, out, dtype: scheme, ...(withIm ? { imatrix: imFile } : {}), warn: () => {} });
      const c = compareGguf(out, ref);
      let line = `export-gguf ${c.line}`;
      if (!c.equal) failures++;
      if (!a['no-model-dir']) {
        const q = join(work, `${m.key}-${scheme}-${withIm ? 'im' : 'plain'}-dir`);
        const model = Model.open(dir);
        try {
          await pruneCheckpoint(
            model,
            null,
            q,
            {
              method: 'rtn',
              quant: scheme,
              ...(withIm ? { imatrix: readImatrix(imFile), imatrixFile: imFile } : {}),
              target: { kind: 'unstructured', sparsity: 0 },
              linears: 'all',
              batchTokens: 4096,
              overwrite: true,
            },
            'check',
          );
        } finally {
          model.close();
        }
        const out2 = join(work, `${m.key}-${scheme}-${withIm ? 'im' : 'plain'}-dir.gguf`);
        exportGguf({ model: q, out: out2, dtype: scheme, warn: () => {} });
        const c2 = compareGguf(out2, ref);
        if (!c2.equal) failures++;
        line += ` | prune --method rtn → export: ${c2.equal ? 'EQUAL' : c2.line}`;
        if (!a.keep) rmSync(q, { recursive: true, force: true });
      }
      process.stdout.write(`${label}: ${line}\n`);
      if (a['write-goldens']) {
        const g = readGguf(ref);
        (goldens[m.key] ??= {})[`${scheme}${withIm ? '+imatrix' : ''}`] = g.tensors
          .filter((t) => t.shape.length > 1)
          .map((t) => `${t.name} ${t.type} ${hash(readGgufTensorBytes(g, t.name))}`);
      }
      if (!a.keep) for (const f of [ref, out]) rmSync(f, { force: true });
    }
  }
  for (const scheme of QUANT_SCHEMES) {
    if (only && !only.has(scheme)) continue;
    if (!m.schemes.includes(scheme) && !isMixScheme(scheme)) {
      let msg = 'accepted';
      try {
        exportGguf({ model: dir, out: join(work, 'refused.gguf'), dtype: scheme, warn: () => {} });
      } catch (e) {
        msg = (e as Error).message.split(': --quant ')[1] ?? (e as Error).message;
      }
      process.stdout.write(`${m.key} ${scheme.padEnd(8)} refused by rac (rows not a multiple of 256): ${msg}\n`);
    }
  }
}
if (a['write-goldens'] && !only) {
  writeFileSync(join(GOLDEN_DIR, 'quantize-hashes.json'), `${JSON.stringify(goldens, null, 2)}\n`);
  process.stdout.write(`wrote ${GOLDEN_DIR}\n`);
}
if (!a.keep && !a.work) rmSync(work, { recursive: true, force: true });
process.stdout.write(failures ? `check:llamacpp: ${failures} comparison(s) differ\n` : 'check:llamacpp: every comparison equal\n');
process.exit(failures ? 1 : 0);
