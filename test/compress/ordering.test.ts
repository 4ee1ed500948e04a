import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsGemm } from '../../src/compress/gemm.ts';
import { magnitudePrune } from '../../src/compress/magnitude.ts';
import { wandaPrune } from '../../src/compress/wanda.ts';
import { sparsegptPrune } from '../../src/compress/sparsegpt.ts';
import { outputError, outputErrorGemm } from '../../src/compress/metrics.ts';
import type { SparsityTarget } from '../../src/compress/masks.ts';
import { anisotropicInputs, gram64, randn, reconstructionError } from './helpers.ts';

// Calibration inputs with column scales spanning 100×, correlated columns and outliers.
const [rows, cols, n] = [128, 256, 1024];
const X = anisotropicInputs(n, cols, 91); // (n, cols)
const XtX = gram64(X, n, cols); // (cols, cols) float64
const H = Float32Array.from(XtX, (v) => (2 / n) * v); // SparseGPT's 2/n·XᵀX
const colSqNorm = Float64Array.from({ length: cols }, (_, j) => XtX[j * cols + j]); // ‖X_j‖²
const W0 = randn(rows * cols, 92); // (rows, cols)

for (const [label, target] of [
  ['50% unstructured', { kind: 'unstructured', sparsity: 0.5 }],
  ['2:4', { kind: 'nm', n: 2, m: 4 }],
] as [string, SparsityTarget][]) {
  test(`reconstruction error ‖XWᵀ − XŴᵀ‖²: SparseGPT < Wanda < magnitude at ${label}`, async (t) => {
    const Wm = W0.slice();
    magnitudePrune(Wm, rows, cols, target);
    const Ww = W0.slice();
    wandaPrune(Ww, rows, cols, colSqNorm, target);
    const Ws = W0.slice();
    const rep = await sparsegptPrune(Ws, rows, cols, H, target, jsGemm);
    for (const [name, W] of [
      ['magnitude', Wm],
      ['wanda', Ww],
      ['sparsegpt', Ws],
    ] as const) {
      assert.equal(W.filter((v) => v === 0).length, (rows * cols) / 2, `${name} sparsity`);
    }
    const eM = reconstructionError(X, n, W0, Wm, rows, cols);
    const eW = reconstructionError(X, n, W0, Ww, rows, cols);
    const eS = reconstructionError(X, n, W0, Ws, rows, cols);
    const dense = reconstructionError(X, n, W0, new Float32Array(rows * cols), rows, cols); // ‖XWᵀ‖²
    t.diagnostic(
      `${label}: relative error magnitude ${(eM / dense).toExponential(3)}, wanda ${(eW / dense).toExponential(3)}, sparsegpt ${(eS / dense).toExponential(3)}`,
    );
    assert.ok(eS < eW, `SparseGPT ${eS} ≥ Wanda ${eW}`);
    assert.ok(eW < eM, `Wanda ${eW} ≥ magnitude ${eM}`);

    // outputError expresses the same error through H = 2/n·XᵀX.
    const viaH = outputError(W0, Ws, H, rows, cols);
    assert.ok(Math.abs(viaH - (2 / n) * eS) < 1e-4 * (2 / n) * eS, `outputError ${viaH} vs ${(2 / n) * eS}`);
    const viaGemm = await outputErrorGemm(W0, Ws, H, rows, cols, jsGemm);
    assert.ok(Math.abs(viaGemm - viaH) < 1e-4 * viaH, `outputErrorGemm ${viaGemm} vs ${viaH}`);
    // SparseGPT's reported loss is a first-order proxy of the same quantity on the damped H: same order.
    assert.ok(rep.loss! > 0.1 * viaH && rep.loss! < 10 * viaH, `loss ${rep.loss} vs output error ${viaH}`);
  });
}
