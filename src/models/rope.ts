/**
 * Rotary position embedding tables, shared by the plain reference forward and the ORT graphs.
 *
 * Convention: HF "rotate half". The head vector x (hd) is split into halves x1 = x[:hd/2],
 * x2 = x[hd/2:], and rope(x) = x·cos + rotate_half(x)·sin with rotate_half(x) = concat(−x2, x1).
 * The tables repeat the frequencies: emb = concat(freqs, freqs), so cos[p, i] = cos(p·inv[i mod hd/2]).
 *
 * Precision: HF computes inv_freq and the angles p·inv in f32. Here both are f64 and the result
 * is rounded to f32 once; the difference is ~1e-7 relative (more in the angle at large p, where
 * f32 p·inv itself is the less exact one). Tests compare within explicit tolerances.
 */
import type { ModelConfig } from './config.ts';

/**
 * inv_freq (hd/2): 1 / theta^(2i/hd), then the config's `rope_scaling`:
 * - linear: inv / factor (position interpolation);
 * - llama3: HF transformers `_compute_llama3_parameters` — short wavelengths kept, long ones
 *   divided by `factor`, the band between smoothly interpolated.
 */
export function ropeInvFreq(cfg: ModelConfig): Float64Array {
  const hd = cfg.headDim;
  if (hd <= 0 || hd % 2 !== 0) throw new Error(`rope: head_dim must be positive and even, got ${hd}`);
  const half = hd / 2;
  const inv = new Float64Array(half); // (hd/2)
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / hd);

  const rs = cfg.ropeScaling;
  switch (rs.type) {
    case 'default':
      return inv;
    case 'linear':
      for (let i = 0; i < half; i++) inv[i] /= rs.factor;
      return inv;
    case 'llama3': {
      const oldCtx = rs.originalMaxPositionEmbeddings;
      const lowFreqWavelen = oldCtx / rs.lowFreqFactor;
      const highFreqWavelen = oldCtx / rs.highFreqFactor;
      for (let i = 0; i < half; i++) {
        const wavelen = (2 * Math.PI) / inv[i]!;
        if (wavelen < highFreqWavelen) continue; // high frequency: unchanged
        if (wavelen > lowFreqWavelen) {
          inv[i] = inv[i]! / rs.factor; // low frequency: scaled
        } else {
          // medium band: interpolate between scaled and unscaled
          const smooth = (oldCtx / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
          inv[i] = ((1 - smooth) * inv[i]!) / rs.factor + smooth * inv[i]!;
        }
      }
      return inv;
    }
  }
}

/**
 * cos/sin tables (P, hd) row-major for the given position ids, rotate-half layout:
 * cos[p, i] = cos(positions[p] · inv[i mod hd/2]), likewise sin.
 */
export function ropeCosSin(cfg: ModelConfig, positions: Int32Array | readonly number[]): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(cfg);
  const hd = cfg.headDim;
  const half = hd / 2;
  const P = positions.length;
  const cos = new Float32Array(P * hd); // (P, hd)
  const sin = new Float32Array(P * hd); // (P, hd)
  for (let p = 0; p < P; p++) {
    const pos = positions[p]!;
    const row = p * hd;
    for (let i = 0; i < half; i++) {
      const angle = pos * inv[i]!;
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[row + i] = c;
      cos[row + half + i] = c;
      sin[row + i] = s;
      sin[row + half + i] = s;
    }
  }
  return { cos, sin };
}
