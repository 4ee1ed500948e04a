import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveArch } from '../../src/models/arch/index.ts';
import type { ModelConfig } from '../../src/models/config.ts';
import { ropeCosSin, ropeInvFreq } from '../../src/models/rope.ts';

function cfgOf(extra: Record<string, unknown>): ModelConfig {
  return resolveArch('config.json', {
    model_type: 'llama',
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 1,
    num_attention_heads: 4,
    vocab_size: 16,
    ...extra,
  }).config;
}

function close(actual: number, expected: number, rtol: number, what: string): void {
  const err = Math.abs(actual - expected);
  assert.ok(err <= rtol * Math.abs(expected), `${what}: got ${actual}, expected ${expected} (rel err ${err / Math.abs(expected)})`);
}

test('default inv_freq: 1/theta^(2i/d)', () => {
  // head_dim 8, theta 10000: 10000^(-0/8), 10000^(-2/8), 10000^(-4/8), 10000^(-6/8)
  const inv = ropeInvFreq(cfgOf({ hidden_size: 32, num_attention_heads: 4, rope_theta: 10000 }));
  assert.equal(inv.length, 4);
  const expected = [1, 0.1, 0.01, 0.001];
  for (let i = 0; i < 4; i++) close(inv[i]!, expected[i]!, 1e-12, `inv[${i}]`);
});

test('linear rope scaling divides every frequency by factor', () => {
  const inv = ropeInvFreq(cfgOf({ rope_theta: 10000, rope_scaling: { rope_type: 'linear', factor: 4 } }));
  const expected = [0.25, 0.025, 0.0025, 0.00025];
  for (let i = 0; i < 4; i++) close(inv[i]!, expected[i]!, 1e-12, `inv[${i}]`);
});

test('llama3 rope scaling: high band kept, low band divided, medium band smoothed', () => {
  // head_dim 16, theta 500000, factor 8, low_freq_factor 1, high_freq_factor 4, original ctx 64:
  // high_freq_wavelen = 64/4 = 16, low_freq_wavelen = 64/1 = 64.
  // base inv[i] = 500000^(-i/8); wavelen = 2π/inv.
  //   i=0: inv 1,               wavelen 6.283  < 16 → kept: 1
  //   i=1: inv 0.193922744749,  wavelen 32.400 in [16, 64] → medium:
  //        smooth = (64/32.40045573469106 − 1)/(4 − 1) = 0.3250936193002929
  //        inv' = (1 − smooth)·inv/8 + smooth·inv = 0.0794030091792082
  //   i=2: inv 0.037606030934,  wavelen 167.08 > 64 → inv/8 = 0.004700753866741
  //   i≥2 all low band: inv/8.
  const cfg = cfgOf({
    hidden_size: 64,
    num_attention_heads: 4, // head_dim 16
    rope_theta: 500000,
    rope_scaling: {
      rope_type: 'llama3',
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 64,
    },
  });
  assert.equal(cfg.headDim, 16);
  const inv = ropeInvFreq(cfg);
  assert.equal(inv.length, 8);
  close(inv[0]!, 1, 1e-12, 'high band inv[0]');
  close(inv[1]!, 0.0794030091792082, 1e-12, 'medium band inv[1]');
  close(inv[2]!, 0.03760603093086393 / 8, 1e-12, 'low band inv[2]');
  const base = [
    1, 0.19392274474868576, 0.03760603093086393, 0.0072926647372171085, 0.001414213562373095, 0.0002742481756762073, 0.00005318295896944989,
    0.00001031338537721246,
  ];
  for (let i = 2; i < 8; i++) close(inv[i]!, base[i]! / 8, 1e-12, `low band inv[${i}]`);
  // The medium value lies strictly between the scaled and unscaled frequency.
  assert.ok(inv[1]! > base[1]! / 8 && inv[1]! < base[1]!);
});

test('llama3 smoothing is continuous at both band edges', () => {
  // Pick the original context so a frequency sits exactly on an edge: smooth = 1 keeps it, 0 scales it.
  const hd = 4; // inv = [1, theta^(-1/2)]
  const theta = 10000; // inv[1] = 0.01, wavelen = 200π
  const wl = (2 * Math.PI) / 0.01;
  const mk = (ctx: number, low: number, high: number) =>
    ropeInvFreq(
      cfgOf({
        hidden_size: 8,
        num_attention_heads: 2,
        head_dim: hd,
        rope_theta: theta,
        rope_scaling: {
          rope_type: 'llama3',
          factor: 2,
          low_freq_factor: low,
          high_freq_factor: high,
          original_max_position_embeddings: ctx,
        },
      }),
    );
  // original ctx must be an integer: place the edge through the freq factors instead.
  const ctx = 1024;
  const f = ctx / wl; // ctx / f == wl (up to rounding: either side of the edge must agree)
  // wavelen == high_freq_wavelen (ctx/high): smooth = 1 → unchanged
  close(mk(ctx, f / 4, f)[1]!, 0.01, 1e-9, 'upper edge');
  // wavelen == low_freq_wavelen (ctx/low): smooth = 0 → divided by factor
  close(mk(ctx, f, 4 * f)[1]!, 0.005, 1e-9, 'lower edge');
});

test('cos/sin tables: shape (P, hd), rotate-half layout, values cos(p·inv)', () => {
  const cfg = cfgOf({ rope_theta: 10000 }); // head_dim 8, inv = [1, 0.1, 0.01, 0.001]
  const positions = [0, 1, 5, 1000];
  const { cos, sin } = ropeCosSin(cfg, positions);
  const hd = 8;
  assert.equal(cos.length, positions.length * hd);
  assert.equal(sin.length, positions.length * hd);
  const inv = [1, 0.1, 0.01, 0.001];
  for (let p = 0; p < positions.length; p++) {
    for (let i = 0; i < hd; i++) {
      const a = positions[p]! * inv[i % 4]!;
      assert.ok(Math.abs(cos[p * hd + i]! - Math.cos(a)) <= 1e-7, `cos[${p},${i}]`);
      assert.ok(Math.abs(sin[p * hd + i]! - Math.sin(a)) <= 1e-7, `sin[${p},${i}]`);
    }
    for (let i = 0; i < hd / 2; i++) {
      assert.equal(cos[p * hd + i], cos[p * hd + i + hd / 2], 'second half repeats the first');
      assert.equal(sin[p * hd + i], sin[p * hd + i + hd / 2], 'second half repeats the first');
    }
  }
  // position 0 is the identity rotation
  for (let i = 0; i < hd; i++) {
    assert.equal(cos[i], 1);
    assert.equal(sin[i], 0);
  }
  // position 5, i = 0: cos(5), sin(5), explicit
  assert.ok(Math.abs(cos[2 * hd]! - 0.28366218546322625) <= 1e-7);
  assert.ok(Math.abs(sin[2 * hd]! - -0.9589242746631385) <= 1e-7);
  // Int32Array positions give the same tables
  const b = ropeCosSin(cfg, Int32Array.from(positions));
  assert.deepEqual(b.cos, cos);
  assert.deepEqual(b.sin, sin);
});
