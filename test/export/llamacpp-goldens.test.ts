/**
 * rac against llama.cpp's own quantizer and importance matrix, without a llama.cpp build: the goldens
 * in test/golden/llamacpp/ were written by `npm run check:llamacpp -- --write-goldens` from
 * `llama-quantize` and `llama-imatrix` (built from the llama.cpp source node-llama-cpp bundles) on
 * two small random checkpoints (test/golden/llamacpp/models.ts):
 *   - every scheme × {no matrix, llama-imatrix's matrix}: each tensor's ggml type and the hash of
 *     llama-quantize's bytes — rac's must be identical (the types decide the mixes, the bytes the
 *     quantizers);
 *   - rac's importance matrix on the same text, cut into the same 128-token chunks, against
 *     llama-imatrix's: the same entries and token counts, sums within 1e-4 (relative; llama.cpp adds
 *     f32 per token, rac per batch);
 *   - whole files, through export-gguf's own quantization and through rac prune --method rtn then
 *     export-gguf (q4_0 / q8_0 by way of the compressed-tensors directory), with and without the
 *     matrix: llama-quantize's bytes;
 *   - one-type k-quant schemes refuse rows that are not a multiple of 256, saying what llama-quantize
 *     would do instead.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { quantizeRows, type GgmlQuantType } from '../../src/compress/ggml-quants.ts';
import { QUANT_SCHEMES, type QuantScheme } from '../../src/compress/quant-schemes.ts';
import { exportGguf, permuteQk } from '../../src/export/gguf.ts';
import { readGguf, readGgufTensorBytes } from '../../src/io/gguf.ts';
import { readImatrix } from '../../src/io/imatrix.ts';
import { Model } from '../../src/models/model.ts';
import { pruneCheckpoint } from '../../src/prune/prune.ts';
import { quantPlan } from '../../src/prune/quant-plan.ts';
import { GOLDEN_DIR, GOLDEN_MODELS, racImatrixLikeLlama } from '../golden/llamacpp/models.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';

const goldens = JSON.parse(readFileSync(join(GOLDEN_DIR, 'quantize-hashes.json'), 'utf8')) as Record<string, Record<string, string[]>>;
const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** "gguf name" → "TYPE hash" of rac's quantization under a scheme (each distinct tensor × type × matrix quantized once). */
function racHashes(m: Model, scheme: QuantScheme, imatrixFile: string | undefined, cache: Map<string, string>): Map<string, string> {
  const plan = quantPlan(m, scheme, imatrixFile ? readImatrix(imatrixFile) : undefined, imatrixFile);
  const c = m.config;
  const out = new Map<string, string>();
  for (const [hf, t] of plan.tensors) {
    if (!t.type) continue;
    const key = `${hf}|${t.type}|${imatrixFile ?? ''}`;
    let h = cache.get(key);
    if (!h) {
      let W = m.read(hf);
      const heads =
        c.modelType === 'llama' || c.modelType === 'mistral'
          ? hf.includes('q_proj')
            ? c.numHeads
            : hf.includes('k_proj')
              ? c.numKvHeads
              : 0
          : 0;
      if (heads) W = permuteQk(W, t.rows, t.cols, heads);
      h = hash(quantizeRows(t.type as GgmlQuantType, W, t.rows, t.cols, plan.imatrix(hf)));
      cache.set(key, h);
    }
    out.set(t.gguf, `${t.type} ${h}`);
  }
  return out;
}

for (const gm of GOLDEN_MODELS) {
  describe(`llama.cpp goldens: ${gm.key}`, () => {
    const dir = checkpoint(gm.opts);
    const llamaIm = join(GOLDEN_DIR, `${gm.key}.imatrix.gguf`);
    const g = goldens[gm.key]!;

    it('every scheme × {no matrix, llama-imatrix matrix}: the types and bytes of llama-quantize', () => {
      const m = Model.open(dir);
      const cache = new Map<string, string>();
      const bad: string[] = [];
      let compared = 0;
      try {
        for (const scheme of gm.schemes) {
          for (const im of [false, true]) {
            const want = g[`${scheme}${im ? '+imatrix' : ''}`];
            assert.ok(want, `no golden for ${scheme}${im ? '+imatrix' : ''}`);
            const got = racHashes(m, scheme, im ? llamaIm : undefined, cache);
            assert.equal(got.size, want.length, `${scheme}: ${got.size} quantized tensors, llama-quantize ${want.length}`);
            for (const line of want) {
              const [name, ...rest] = line.split(' ');
              compared++;
              if (got.get(name!) !== rest.join(' '))
                bad.push(`${scheme}${im ? '+imatrix' : ''} ${name}: rac ${got.get(name!)}, llama-quantize ${rest.join(' ')}`);
            }
          }
        }
      } finally {
        m.close();
      }
      assert.deepEqual(bad, [], `${bad.length} of ${compared} tensors differ`);
      assert.ok(compared > 200, `${compared} tensors compared`);
    });

    it('whole files: export-gguf (on the fly) and prune --method rtn → export-gguf write llama-quantize bytes (q4_0 / q8_0 through the compressed-tensors directory)', async () => {
      const scheme: QuantScheme = gm.schemes.includes('q4_k') ? 'q4_k' : 'q4_k_m';
      for (const [s, im] of [
        ['q4_k_m', true],
        [scheme, false],
        ['q4_0', false],
        ['q4_0', true],
        ['q8_0', false],
        ['q8_0', true],
      ] as const) {
        const want = new Map(g[`${s}${im ? '+imatrix' : ''}`]!.map((l) => [l.split(' ')[0]!, l.split(' ').slice(1).join(' ')]));
        const gguf = join(tempDir('golden'), 'm.gguf');
        exportGguf({ model: dir, out: gguf, dtype: s, ...(im ? { imatrix: llamaIm } : {}), warn: () => {} });
        const q = join(tempDir('golden'), 'q');
        const m = Model.open(dir);
        try {
          await pruneCheckpoint(
            m,
            null,
            q,
            {
              method: 'rtn',
              quant: s,
              ...(im ? { imatrix: readImatrix(llamaIm), imatrixFile: llamaIm } : {}),
              target: { kind: 'unstructured', sparsity: 0 },
              linears: 'all',
              batchTokens: 512,
            },
            'test',
          );
        } finally {
          m.close();
        }
        // q4_0 / q8_0: the Linears packed (compressed-tensors), the rest as every scheme's blocks.
        const layout = JSON.parse(readFileSync(join(q, 'rac.json'), 'utf8')).quantization.layout;
        assert.equal(layout, s === 'q4_0' || s === 'q8_0' ? 'compressed-tensors' : 'gguf-blocks', `${s}: layout`);
        const gguf2 = join(tempDir('golden'), 'q.gguf');
        exportGguf({ model: q, out: gguf2, dtype: s, warn: () => {} });
        for (const file of [gguf, gguf2]) {
          const f = readGguf(file);
          const q2 = f.tensors.filter((t) => t.shape.length > 1);
          assert.equal(q2.length, want.size);
          for (const t of q2)
            assert.equal(`${t.type} ${hash(readGgufTensorBytes(f, t.name))}`, want.get(t.name), `${s} ${t.name} (${file})`);
        }
      }
    });

    it("rac imatrix on llama-imatrix's text and chunks: the same entries and counts, sums within 1e-4", async () => {
      const text = join(GOLDEN_DIR, 'text.txt');
      const m = Model.open(dir);
      try {
        const ours = await racImatrixLikeLlama(m, text, { batchTokens: 2048, threads: 1 });
        const ref = readImatrix(llamaIm);
        assert.deepEqual([...ours.entries.keys()].sort(), [...ref.entries.keys()].sort());
        let worst = 0;
        for (const [name, e] of ref.entries) {
          const o = ours.entries.get(name)!;
          assert.deepEqual(o.counts, e.counts, `${name} counts`);
          for (let i = 0; i < e.sums.length; i++) worst = Math.max(worst, Math.abs(o.sums[i]! - e.sums[i]!) / Math.abs(e.sums[i]!));
        }
        assert.ok(worst < 1e-4, `max relative |Δ| ${worst.toExponential(2)}`);
        process.stderr.write(`${gm.key}: rac imatrix vs llama-imatrix, max relative |Δ sums| ${worst.toExponential(2)}\n`);
      } finally {
        m.close();
      }
    });

    if (gm.schemes.length < QUANT_SCHEMES.length) {
      it('one-type k-quants refuse rows that are not a multiple of 256, naming llama-quantize’s fallback', () => {
        assert.throws(
          () => exportGguf({ model: dir, out: join(tempDir('golden'), 'x.gguf'), dtype: 'q4_k', warn: () => {} }),
          /blk\.0\.ffn_down\.weight\): rows of 352 weights are not a multiple of 256, the Q4_K super-block; llama-quantize would write it as Q5_0 instead — use the llama\.cpp mix q4_k_s/,
        );
      });
    }
  });
}
