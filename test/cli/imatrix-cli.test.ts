/**
 * `rac imatrix` end to end: every calibration mode (prompt, rac traces, text, mix) writes a matrix
 * llama-quantize's loader reads (io/imatrix.ts checks its metadata); usage errors exit 2; the matrix
 * steers `rac prune --quant … --imatrix` and `rac export-gguf --dtype … --imatrix` alike (same bytes);
 * a one-type k-quant on rows that are not a multiple of 256 is one error line naming llama-quantize's
 * fallback.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readGguf, readGgufTensorBytes } from '../../src/io/gguf.ts';
import { readImatrix } from '../../src/io/imatrix.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, racWith } from '../helpers/cli.ts';
import { readSummary, sha256 } from '../helpers/prune.ts';

const CK = { family: 'qwen2', seed: 61, hidden: 256, intermediate: 256, heads: 2, kvHeads: 1, layers: 1 } as const;

/** `rac` with two minutes to finish (the helper's default is one). */
const rac = (...args: string[]) => racWith({ timeoutMs: 120_000 }, ...args);

describe('rac imatrix', { concurrency: 1 }, () => {
  const dir = checkpoint(CK);
  const d = tempDir('imcli');
  const traces = join(d, 'traces.jsonl');
  writeFileSync(
    traces,
    Array.from({ length: 8 }, (_, i) =>
      JSON.stringify({ prompt_ids: [1 + i, 2, 3, 4], completion_ids: Array.from({ length: 20 + i }, (_, k) => (i * 7 + k) % 300) }),
    ).join('\n') + '\n',
  );
  const text = join(d, 'text.txt');
  writeFileSync(text, 'The quick brown fox jumps over the lazy dog. '.repeat(40));
  const prompts = join(d, 'prompts.jsonl');
  writeFileSync(prompts, Array.from({ length: 6 }, (_, i) => JSON.stringify({ problem: `What is ${i} + ${i * 3}?` })).join('\n') + '\n');

  it('every calibration mode: a matrix with seven entries per layer, counts = the calibration tokens', async () => {
    for (const [mode, extra] of [
      ['rac', ['--traces', traces]],
      ['text', ['--text-files', text, '--max-seq-len', '64', '--overflow', 'split']],
      ['prompt', ['--dataset', prompts]],
      ['mix', ['--traces', traces, '--text-files', text, '--mix', 'rac:0.5,text:0.5', '--calib-tokens', '200']],
    ] as const) {
      const out = join(d, `${mode}.imatrix.gguf`);
      const r = await rac('imatrix', '--model', dir, '--calib-mode', mode, ...extra, '--out', out, '--json', '--threads', '1', '-q');
      assert.equal(r.code, 0, `${mode}: ${r.stderr}`);
      const res = JSON.parse(r.stdout) as { entries: number; tokens: number };
      const m = readImatrix(out);
      assert.equal(res.entries, 7);
      assert.equal(m.entries.size, 7, mode);
      for (const e of m.entries.values()) assert.deepEqual(e.counts, [res.tokens], mode);
      if (mode === 'mix') assert.equal(res.tokens, 200);
      assert.match(String(m.extra?.get('rac.calibration')), new RegExp(`"mode":"${mode}"`));
    }
    const u = await rac('imatrix', '--model', dir, '--out', join(d, 'x.gguf'));
    assert.equal(u.code, 2);
    assert.match(u.stderr, /give exactly one of --calib FILE or --calib-mode MODE/);
  });

  it('--imatrix steers prune --method rtn and export-gguf alike; rac.json records the matrix', async () => {
    const im = join(d, 'rac.imatrix.gguf');
    if (!readSafe(im))
      assert.equal(
        (await rac('imatrix', '--model', dir, '--calib-mode', 'rac', '--traces', traces, '--out', im, '-q', '--threads', '1')).code,
        0,
      );
    const q = join(d, 'q4km');
    const p = await rac(...argv`prune --model ${dir} --method rtn --quant q4_k_m --imatrix ${im} --out ${q} -q --threads 1`);
    assert.equal(p.code, 0, p.stderr);
    const s = readSummary(q).quantization!;
    assert.equal(s.file_type, 'Q4_K_M');
    assert.equal(s.imatrix!.sha256, sha256(readFileSync(im)));
    assert.ok(s.tensors['model.layers.0.self_attn.q_proj.weight']!.imatrix);
    assert.ok(!s.tensors['model.embed_tokens.weight']!.imatrix, 'token_embd has no entry');
    const a = join(d, 'a.gguf');
    const b = join(d, 'b.gguf');
    const plain = join(d, 'plain.gguf');
    for (const [args, out] of [
      [['--model', q, '--dtype', 'q4_k_m'], a],
      [['--model', dir, '--dtype', 'q4_k_m', '--imatrix', im], b],
      [['--model', dir, '--dtype', 'q4_k_m'], plain],
    ] as const) {
      const r = await rac('export-gguf', ...args, '--out', out, '-q');
      assert.equal(r.code, 0, r.stderr);
    }
    const [ga, gb, gp] = [readGguf(a), readGguf(b), readGguf(plain)];
    let differs = 0;
    for (const t of ga.tensors) {
      assert.deepEqual(readGgufTensorBytes(ga, t.name), readGgufTensorBytes(gb, t.name), t.name);
      if (
        t.name.startsWith('blk.') &&
        Buffer.compare(Buffer.from(readGgufTensorBytes(ga, t.name)), Buffer.from(readGgufTensorBytes(gp, t.name))) !== 0
      )
        differs++;
    }
    assert.ok(differs >= 5, `the matrix changes the blocks of the Linears (${differs} differ)`);
    assert.equal(ga.metadata.get('general.file_type'), 15);
  });

  it('errors: q4_k on rows of 64, an imatrix without --quant, another model’s matrix', async () => {
    const small = checkpoint({ family: 'qwen2', seed: 62, hidden: 64, intermediate: 128, layers: 1 });
    const r = await rac('prune', '--model', small, '--method', 'rtn', '--quant', 'q4_k', '--out', join(d, 'n'), '-q');
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^rac: error: .*--quant q4_k: model\.layers\.0\.self_attn\.k_proj\.weight \(blk\.0\.attn_k\.weight\): rows of 64 weights are not a multiple of 256, the Q4_K super-block; llama-quantize would write it as Q5_0 instead/,
    );
    assert.equal(r.stderr.trim().split('\n').length, 1);
    const im = join(d, 'rac.imatrix.gguf');
    const u = await rac('prune', '--model', dir, '--method', 'rtn', '--imatrix', im, '--out', join(d, 'n2'));
    assert.equal(u.code, 2);
    const v = await rac('prune', '--model', small, '--method', 'rtn', '--quant', 'q4_0', '--imatrix', im, '--out', join(d, 'n3'));
    assert.equal(v.code, 1);
    assert.match(v.stderr, /has 256 values, but model\.layers\.0\..* has rows of 64 \(an imatrix of another model\?\)/);
  });
});

function readSafe(f: string): boolean {
  try {
    readFileSync(f);
    return true;
  } catch {
    return false;
  }
}
