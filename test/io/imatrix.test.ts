/**
 * The importance-matrix file (src/io/imatrix.ts): llama-imatrix's GGUF layout (metadata, per entry
 * NAME.in_sum2 (n_per_row, n_mat) and NAME.counts (1, n_mat), names sorted), a round trip including a
 * mixture-of-experts entry with per-expert counts, llama-quantize's normalisation (sums / lround(count),
 * 1 where a count is 0), and one-line refusals.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { GgufType, GgufWriter, kv, readGguf } from '../../src/io/gguf.ts';
import { imatrixWeights, readImatrix, writeImatrix, type Imatrix } from '../../src/io/imatrix.ts';
import { Model } from '../../src/models/model.ts';
import { quantPlan } from '../../src/prune/quant-plan.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';

test("round trip in llama-imatrix's layout, per-expert entries, rac's own metadata kept aside", () => {
  const f = join(tempDir('im'), 'm.gguf');
  const m: Imatrix = {
    entries: new Map([
      ['blk.1.attn_q.weight', { sums: Float32Array.from([1, 2, 3, 4]), counts: [10] }],
      ['blk.0.ffn_down_exps.weight', { sums: Float32Array.from([1, 2, 3, 4, 5, 6]), counts: [4, 0, 2.5] }], // 3 experts × 2 columns
    ]),
    datasets: ['traces.jsonl'],
    chunkCount: 7,
    chunkSize: 512,
  };
  writeImatrix(f, m, [kv.str('rac.calibration', '{"mode":"rac"}')]);
  const g = readGguf(f);
  assert.equal(g.metadata.get('general.type'), 'imatrix');
  assert.deepEqual(g.metadata.get('imatrix.datasets'), ['traces.jsonl']);
  assert.equal(g.types.get('imatrix.chunk_count'), GgufType.UINT32);
  assert.deepEqual(
    g.tensors.map((t) => [t.name, t.ne, t.type]),
    [
      ['blk.0.ffn_down_exps.weight.in_sum2', [2, 3], 'F32'],
      ['blk.0.ffn_down_exps.weight.counts', [1, 3], 'F32'],
      ['blk.1.attn_q.weight.in_sum2', [4, 1], 'F32'],
      ['blk.1.attn_q.weight.counts', [1, 1], 'F32'],
    ],
  );
  const r = readImatrix(f);
  assert.deepEqual([...r.entries.keys()].sort(), [...m.entries.keys()].sort());
  assert.deepEqual(r.entries.get('blk.0.ffn_down_exps.weight'), m.entries.get('blk.0.ffn_down_exps.weight'));
  assert.equal(r.chunkCount, 7);
  assert.equal(r.chunkSize, 512);
  assert.equal(r.extra?.get('rac.calibration'), '{"mode":"rac"}');
  // llama-quantize: per matrix sums / (float)lround(count); 1 for a matrix no token reached
  assert.deepEqual([...imatrixWeights(r.entries.get('blk.0.ffn_down_exps.weight')!)], [0.25, 0.5, 1, 1, 5 / 3, 2].map(Math.fround));
  assert.deepEqual([...imatrixWeights(r.entries.get('blk.1.attn_q.weight')!)], [0.1, 0.2, 0.3, 0.4].map(Math.fround));
});

test('refusals: not GGUF (the legacy .dat), a model file, missing metadata, unpaired sums', () => {
  const d = tempDir('im-bad');
  const dat = join(d, 'old.dat');
  writeFileSync(dat, Buffer.from([1, 0, 0, 0, 5, 0, 0, 0]));
  assert.throws(() => readImatrix(dat), /legacy \.dat format\? convert it with `llama-imatrix --in-file FILE -o FILE\.gguf`/);
  const write = (name: string, kvs: ReturnType<typeof kv.str>[], tensors: string[]) => {
    const f = join(d, name);
    const w = GgufWriter.create(
      f,
      kvs,
      tensors.map((n) => ({ name: n, type: 'F32' as const, shape: [1, 2] })),
    );
    for (const n of tensors) w.writeF32(n, Float32Array.from([1, 1]));
    w.close();
    return f;
  };
  const meta = [kv.strs('imatrix.datasets', ['x']), kv.u32('imatrix.chunk_count', 1), kv.u32('imatrix.chunk_size', 1)];
  assert.throws(
    () => readImatrix(write('model.gguf', [kv.str('general.type', 'model'), ...meta], ['a.in_sum2', 'a.counts'])),
    /not an importance matrix/,
  );
  assert.throws(
    () => readImatrix(write('nometa.gguf', [kv.str('general.type', 'imatrix')], ['a.in_sum2', 'a.counts'])),
    /missing "imatrix\.datasets"/,
  );
  assert.throws(
    () => readImatrix(write('unpaired.gguf', [kv.str('general.type', 'imatrix'), ...meta], ['a.in_sum2'])),
    /mismatched sums and counts for "a"/,
  );
});

test('a matrix with no entry for any tensor of the model is refused by the quantization plan', () => {
  const m = Model.open(checkpoint({ family: 'qwen2', seed: 71, hidden: 64, layers: 1, intermediate: 128 }));
  try {
    const im: Imatrix = {
      entries: new Map([['model.layers.0.q_proj', { sums: new Float32Array(64), counts: [1] }]]),
      datasets: [],
      chunkCount: 1,
      chunkSize: 1,
    };
    assert.throws(() => quantPlan(m, 'q4_0', im, 'hf-names.gguf'), /hf-names\.gguf: no entry for any tensor --quant q4_0 quantizes/);
  } finally {
    m.close();
  }
});
