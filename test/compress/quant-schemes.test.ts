/**
 * The per-tensor types of llama.cpp's mixes (src/compress/quant-schemes.ts), written out by hand from
 * src/llama-quant.cpp for a 32-layer model (the goldens check 2-layer models against llama-quantize
 * itself): use_more_bits(i, n) = i < n/8 ∨ i ≥ 7n/8 ∨ (i − n/8) mod 3 = 2.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  llamaFallback,
  llamaQuantizeArgs,
  llamaTensorOrder,
  schemeTypes,
  SchemeError,
  type QuantScheme,
  type SchemeTensor,
} from '../../src/compress/quant-schemes.ts';

const N = 32;
const more = new Set([0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);

function model(layers: number, ne0 = { hidden: 4096, ffn: 11008 }, untied = false): SchemeTensor[] {
  const t: SchemeTensor[] = [{ name: 'token_embd.weight', ne0: ne0.hidden }];
  if (untied) t.push({ name: 'output.weight', ne0: ne0.hidden });
  for (let i = 0; i < layers; i++) {
    for (const n of ['attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_gate', 'ffn_up'])
      t.push({ name: `blk.${i}.${n}.weight`, ne0: ne0.hidden });
    t.push({ name: `blk.${i}.ffn_down.weight`, ne0: ne0.ffn });
    t.push({ name: `blk.${i}.attn_norm.weight`, ne0: ne0.hidden }); // 1-D in a real file; never quantized
  }
  return t;
}
const LLAMA = { arch: 'llama', nLayer: N, nHead: 32, nHeadKv: 8 };
const types = (s: QuantScheme, tensors = model(N), m = LLAMA) => {
  const r = schemeTypes(s, m, tensors);
  return (name: string) => r.get(name)?.type;
};

test('Q4_K_M / Q5_K_M: attn_v and ffn_down in Q6_K on the use_more_bits layers, output and tied token_embd Q6_K', () => {
  for (const [s, base] of [
    ['q4_k_m', 'Q4_K'],
    ['q5_k_m', 'Q5_K'],
  ] as const) {
    const t = types(s);
    for (let i = 0; i < N; i++) {
      const want = more.has(i) ? 'Q6_K' : base;
      assert.equal(t(`blk.${i}.attn_v.weight`), want, `${s} attn_v ${i}`);
      assert.equal(t(`blk.${i}.ffn_down.weight`), want, `${s} ffn_down ${i}`);
      for (const n of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up'])
        assert.equal(t(`blk.${i}.${n}.weight`), base, `${s} ${n} ${i}`);
      assert.equal(t(`blk.${i}.attn_norm.weight`), undefined);
    }
    assert.equal(t('token_embd.weight'), 'Q6_K', `${s}: tied token_embd follows output`);
    const u = types(s, model(N, undefined, true));
    assert.equal(u('output.weight'), 'Q6_K');
    assert.equal(u('token_embd.weight'), base, `${s}: untied token_embd keeps the default type`);
  }
});

test('Q3_K_M, Q3_K_L, Q4_K_S, Q2_K (the mix): the layer rules', () => {
  let t = types('q3_k_m');
  for (let i = 0; i < N; i++) {
    assert.equal(t(`blk.${i}.attn_v.weight`), i < 2 ? 'Q5_K' : 'Q4_K');
    assert.equal(t(`blk.${i}.ffn_down.weight`), i < N / 16 ? 'Q5_K' : 'Q4_K');
    assert.equal(t(`blk.${i}.attn_output.weight`), 'Q4_K');
    assert.equal(t(`blk.${i}.attn_q.weight`), 'Q3_K');
  }
  t = types('q3_k_l');
  assert.deepEqual(
    [t('blk.5.attn_v.weight'), t('blk.5.ffn_down.weight'), t('blk.5.attn_output.weight'), t('blk.5.ffn_up.weight')],
    ['Q5_K', 'Q5_K', 'Q5_K', 'Q3_K'],
  );
  t = types('q4_k_s');
  for (let i = 0; i < N; i++) {
    assert.equal(t(`blk.${i}.attn_v.weight`), i < 4 ? 'Q5_K' : 'Q4_K');
    assert.equal(t(`blk.${i}.ffn_down.weight`), i < N / 8 ? 'Q5_K' : 'Q4_K');
  }
  t = types('q2_k_mix'); // n_gqa = 4: attn_v Q4_K
  assert.deepEqual(
    [t('blk.3.attn_v.weight'), t('blk.3.ffn_down.weight'), t('blk.3.attn_output.weight'), t('blk.3.attn_q.weight')],
    ['Q4_K', 'Q3_K', 'Q3_K', 'Q2_K'],
  );
  t = types('q2_k_mix', model(N), { ...LLAMA, nHeadKv: 16 }); // n_gqa = 2
  assert.equal(t('blk.3.attn_v.weight'), 'Q3_K');
});

test('70B (llama, 80 layers, GQA): attn_v Q3_K/Q4_K become Q5_K; the same shapes at 79 layers do not', () => {
  const m80 = { ...LLAMA, nLayer: 80, nHead: 64 };
  let t = types('q4_k_m', model(80, { hidden: 8192, ffn: 28672 }), m80);
  assert.equal(t('blk.13.attn_v.weight'), 'Q5_K');
  assert.equal(t('blk.4.attn_v.weight'), 'Q6_K'); // use_more_bits first
  t = types('q4_k_m', model(79, { hidden: 8192, ffn: 28672 }), { ...m80, nLayer: 79 });
  assert.equal(t('blk.13.attn_v.weight'), 'Q4_K');
});

test("rows that are not a multiple of 256: llama-quantize's fallbacks in the mixes, a refusal naming them in the one-type schemes", () => {
  assert.deepEqual(
    ['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q4_0'].map((x) => llamaFallback(x as 'Q2_K', 352)),
    ['Q4_0', 'Q4_0', 'Q5_0', 'Q5_1', 'Q8_0', 'Q4_0'],
  );
  assert.equal(llamaFallback('Q4_K', 100), null, 'not even a 32-block: kept float (llama: F16)');
  const shapes = model(4, { hidden: 4096, ffn: 352 });
  const r = schemeTypes('q4_k_m', { ...LLAMA, nLayer: 4 }, shapes);
  assert.deepEqual(r.get('blk.3.ffn_down.weight'), { type: 'Q8_0', fallbackFrom: 'Q6_K' }); // use_more_bits(3, 4): 3 ≥ 7·4/8
  assert.deepEqual(r.get('blk.1.ffn_down.weight'), { type: 'Q5_0', fallbackFrom: 'Q4_K' });
  assert.deepEqual(r.get('blk.1.attn_q.weight'), { type: 'Q4_K' });
  assert.throws(
    () => schemeTypes('q4_k', { ...LLAMA, nLayer: 4 }, shapes),
    (e: unknown) =>
      e instanceof SchemeError &&
      /blk\.0\.ffn_down\.weight: rows of 352 weights .* llama-quantize would write it as Q5_0 instead — use the llama\.cpp mix q4_k_s/.test(
        (e as Error).message,
      ),
  );
  // one-type schemes: every Linear in the type, token_embd / output Q8_0
  const p = schemeTypes('q3_k', LLAMA, model(N, undefined, true));
  assert.equal(p.get('blk.7.attn_v.weight')!.type, 'Q3_K');
  assert.equal(p.get('output.weight')!.type, 'Q8_0');
  assert.equal(p.get('token_embd.weight')!.type, 'Q8_0');
  assert.deepEqual(llamaQuantizeArgs('q3_k'), ['--pure', '--token-embedding-type', 'q8_0', '--output-tensor-type', 'q8_0', 'Q3_K_S']);
  assert.deepEqual(llamaQuantizeArgs('q4_k_m'), ['Q4_K_M']);
});

test("llama.cpp's tensor order: by layer number, then name; the counters do not depend on the input order", () => {
  const names = ['blk.10.attn_v.weight', 'blk.2.attn_v.weight', 'output.weight', 'blk.2.attn_k.weight', 'token_embd.weight'];
  assert.deepEqual([...names].sort(llamaTensorOrder), [
    'output.weight',
    'token_embd.weight',
    'blk.2.attn_k.weight',
    'blk.2.attn_v.weight',
    'blk.10.attn_v.weight',
  ]);
  const t = model(N);
  const shuffled = [...t].reverse();
  assert.deepEqual([...schemeTypes('q4_k_m', LLAMA, shuffled)].sort(), [...schemeTypes('q4_k_m', LLAMA, t)].sort());
});
