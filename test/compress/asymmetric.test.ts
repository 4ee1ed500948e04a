/**
 * Asymmetric calibration's target W* = (W·C + λW)(H + λI)⁻¹ (compress/asymmetric.ts) against a
 * float64 solve of the same ridge problem; W* = W when the two streams are the same; a dead input
 * keeps its column; and W* lowers ‖XWᵀ − X̃W*ᵀ‖ below the plain target's ‖XWᵀ − X̃Wᵀ‖.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asymmetricTarget } from '../../src/compress/asymmetric.ts';
import { jsGemm } from '../../src/compress/gemm.ts';
import { randn } from './helpers.ts';

/** Σ_t a_t b_tᵀ (cols, cols) in float64 for a, b (n, cols), scaled. */
function cross64(a: Float32Array, b: Float32Array, n: number, cols: number, scale: number): Float64Array {
  const out = new Float64Array(cols * cols);
  for (let t = 0; t < n; t++)
    for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) out[i * cols + j]! += a[t * cols + i]! * b[t * cols + j]!;
  for (let i = 0; i < out.length; i++) out[i]! *= scale;
  return out;
}

/** Solve A·Y = B for symmetric PD A (n, n) and B (n, m), float64 Gaussian elimination with pivoting. */
function solve64(A: Float64Array, B: Float64Array, n: number, m: number): Float64Array {
  const a = Float64Array.from(A);
  const y = Float64Array.from(B);
  for (let k = 0; k < n; k++) {
    let p = k;
    for (let i = k + 1; i < n; i++) if (Math.abs(a[i * n + k]!) > Math.abs(a[p * n + k]!)) p = i;
    for (let j = 0; j < n; j++) [a[k * n + j], a[p * n + j]] = [a[p * n + j]!, a[k * n + j]!];
    for (let j = 0; j < m; j++) [y[k * m + j], y[p * m + j]] = [y[p * m + j]!, y[k * m + j]!];
    for (let i = k + 1; i < n; i++) {
      const f = a[i * n + k]! / a[k * n + k]!;
      for (let j = k; j < n; j++) a[i * n + j]! -= f * a[k * n + j]!;
      for (let j = 0; j < m; j++) y[i * m + j]! -= f * y[k * m + j]!;
    }
  }
  for (let k = n - 1; k >= 0; k--) {
    for (let j = 0; j < m; j++) {
      let s = y[k * m + j]!;
      for (let i = k + 1; i < n; i++) s -= a[k * n + i]! * y[i * m + j]!;
      y[k * m + j] = s / a[k * n + k]!;
    }
  }
  return y;
}

/** ‖X·Wᵀ − Y·Vᵀ‖²_F for X, Y (n, cols) and W, V (rows, cols). */
function residual(X: Float32Array, W: Float32Array, Y: Float32Array, V: Float32Array, n: number, rows: number, cols: number): number {
  let s = 0;
  for (let t = 0; t < n; t++) {
    for (let r = 0; r < rows; r++) {
      let d = 0;
      for (let j = 0; j < cols; j++) d += X[t * cols + j]! * W[r * cols + j]! - Y[t * cols + j]! * V[r * cols + j]!;
      s += d * d;
    }
  }
  return s;
}

const f32 = (a: Float64Array) => Float32Array.from(a);

describe('asymmetric calibration target', () => {
  const rows = 12;
  const cols = 24;
  const n = 200;
  const W = randn(rows * cols, 1);
  const X = randn(n * cols, 2); // the dense model's inputs
  const noise = randn(n * cols, 3);
  const Xt = X.map((x, i) => x + 0.3 * noise[i]!); // the pruned model's inputs
  const scale = 2 / n;

  it('matches a float64 solve of (H + λI)·W*ᵀ = (C + λI)ᵀ·Wᵀ', async () => {
    const H = cross64(Xt, Xt, n, cols, scale);
    const C = cross64(X, Xt, n, cols, scale); // XᵀX̃
    const percdamp = 0.01;
    let mean = 0;
    for (let j = 0; j < cols; j++) mean += H[j * cols + j]! / cols;
    const lambda = percdamp * mean;
    const A = Float64Array.from(H);
    for (let j = 0; j < cols; j++) A[j * cols + j]! += lambda;
    // B = (W·C + λW)ᵀ (cols, rows)
    const B = new Float64Array(cols * rows);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        let s = lambda * W[r * cols + j]!;
        for (let i = 0; i < cols; i++) s += W[r * cols + i]! * C[i * cols + j]!;
        B[j * rows + r] = s;
      }
    }
    const Yt = solve64(A, B, cols, rows); // W*ᵀ
    const got = W.slice();
    const rep = await asymmetricTarget(got, rows, cols, f32(H), f32(C), jsGemm, { percdamp });
    let d = 0;
    let m = 0;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        d = Math.max(d, Math.abs(got[r * cols + j]! - Yt[j * rows + r]!));
        m = Math.max(m, Math.abs(Yt[j * rows + r]!));
      }
    }
    assert.ok(d / m < 1e-4, `max relative error ${d / m}`);
    assert.equal(rep.damp, percdamp);
    assert.ok(rep.shift > 0.01, `the target moved by ${rep.shift}`);
    // It reconstructs the dense outputs better than the dense weights do on the pruned inputs.
    const plain = residual(X, W, Xt, W, n, rows, cols);
    const asym = residual(X, W, Xt, got, n, rows, cols);
    assert.ok(asym < 0.9 * plain, `residual ${asym} vs ${plain}`);
  });

  it('is W itself when both streams are the same (C = H)', async () => {
    const H = f32(cross64(X, X, n, cols, scale));
    const got = W.slice();
    const rep = await asymmetricTarget(got, rows, cols, H, H, jsGemm);
    let d = 0;
    for (let i = 0; i < W.length; i++) d = Math.max(d, Math.abs(got[i]! - W[i]!));
    assert.ok(d < 1e-4, `max deviation ${d}`);
    assert.ok(rep.shift < 1e-4);
  });

  it('keeps the column of an input that never fires on the pruned stream', async () => {
    const Xd = Xt.slice();
    for (let t = 0; t < n; t++) Xd[t * cols + 5] = 0;
    const H = f32(cross64(Xd, Xd, n, cols, scale));
    const C = f32(cross64(X, Xd, n, cols, scale));
    const got = W.slice();
    await asymmetricTarget(got, rows, cols, H, C, jsGemm);
    for (let r = 0; r < rows; r++) assert.ok(Math.abs(got[r * cols + 5]! - W[r * cols + 5]!) < 1e-5, `row ${r}`);
  });

  it('refuses mismatched shapes', async () => {
    await assert.rejects(asymmetricTarget(W.slice(), rows, cols, new Float32Array(4), new Float32Array(cols * cols), jsGemm), /H has 4/);
  });
});
