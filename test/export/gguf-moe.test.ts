/**
 * GGUF export of Qwen3-MoE checkpoints as llama.cpp's `qwen3moe`: expert counts in the metadata,
 * the router as F32 `ffn_gate_inp`, experts stacked per layer (ne {cols, rows, experts}), and the
 * two configs llama.cpp's qwen3moe cannot represent refused in one line (the GGUF oracle test
 * runs the exported files in llama.cpp).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { exportGguf } from '../../src/export/gguf.ts';
import { readGguf, readGgufTensorF32 } from '../../src/io/gguf.ts';
import { Model } from '../../src/models/model.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';

const BASE = {
  family: 'qwen3_moe' as const,
  seed: 41,
  hidden: 64,
  layers: 2,
  headDim: 24,
  moe: { experts: 4, topK: 2, expertIntermediate: 32 },
};

describe('GGUF export: qwen3moe', () => {
  it('writes the expert metadata and stacks each layer’s experts in order', () => {
    const dir = checkpoint(BASE);
    const out = join(tempDir('moe-gguf'), 'm.gguf');
    const r = exportGguf({ model: dir, out, dtype: 'f16', warn: () => {} });
    assert.equal(r.arch, 'qwen3moe');
    const g = readGguf(out);
    const meta = g.metadata;
    assert.equal(meta.get('qwen3moe.expert_count'), 4);
    assert.equal(meta.get('qwen3moe.expert_used_count'), 2);
    assert.equal(meta.get('qwen3moe.expert_feed_forward_length'), 32);
    assert.equal(meta.get('qwen3moe.attention.key_length'), 24);
    const t = new Map(g.tensors.map((x) => [x.name, x]));
    assert.deepEqual(t.get('blk.1.ffn_gate_exps.weight')!.ne, [64, 32, 4]);
    assert.deepEqual(t.get('blk.1.ffn_down_exps.weight')!.ne, [32, 64, 4]);
    assert.equal(t.get('blk.1.ffn_gate_exps.weight')!.type, 'F16');
    assert.equal(t.get('blk.0.ffn_gate_inp.weight')!.type, 'F32', 'the router stays F32');
    assert.equal(t.has('blk.0.ffn_gate.weight'), false);
    const m = Model.open(dir);
    try {
      const down = readGgufTensorF32(g, 'blk.1.ffn_down_exps.weight');
      const e2 = m.read('model.layers.1.mlp.experts.2.down_proj.weight'); // (64, 32)
      const slice = down.subarray(2 * 64 * 32, 3 * 64 * 32);
      for (let i = 0; i < e2.length; i++) assert.ok(Math.abs(slice[i]! - e2[i]!) <= Math.abs(e2[i]!) * 2 ** -10 + 1e-7, `element ${i}`);
      assert.deepEqual(readGgufTensorF32(g, 'blk.0.ffn_gate_inp.weight'), m.read('model.layers.0.mlp.gate.weight'));
    } finally {
      m.close();
    }
  });

  it('refuses norm_topk_prob false and dense mlp_only layers, saying why', () => {
    const out = join(tempDir('moe-gguf-bad'), 'm.gguf');
    assert.throws(
      () => exportGguf({ model: checkpoint({ ...BASE, moe: { ...BASE.moe, normTopK: false } }), out }),
      /norm_topk_prob is false, but llama\.cpp's qwen3moe always divides the top-k routing weights by their sum/,
    );
    assert.throws(
      () => exportGguf({ model: checkpoint({ ...BASE, layers: 3, moe: { ...BASE.moe, mlpOnlyLayers: [1] } }), out }),
      /layer 1 has a dense MLP \(mlp_only_layers \/ decoder_sparse_step\), but llama\.cpp's qwen3moe has an MoE block in every layer/,
    );
  });
});
