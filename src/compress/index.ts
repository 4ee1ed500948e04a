/** Pure pruning algorithms on typed arrays; the GEMM is injected. No file I/O, no onnxruntime. */
export { jsGemm, matmulJs, type Gemm, type GemmOptions } from './gemm.ts';
export {
  cholesky,
  choleskyKernel,
  inverseUpperFactor,
  invertLower,
  invertLowerKernel,
  NotPositiveDefiniteError,
  type BlockOptions,
  type InverseFactorOptions,
} from './linalg.ts';
export {
  applyMask,
  countZeros,
  parsePattern,
  parseSparsity,
  parseSparsityTarget,
  rowwiseMask,
  selectSmallest,
  selectSmallestInGroup,
  targetFraction,
  validateTarget,
  type PruneReport,
  type SparsityTarget,
} from './masks.ts';
export { magnitudePrune, type MagnitudeOptions } from './magnitude.ts';
export { wandaPrune } from './wanda.ts';
export { sparsegptPrune, type SparseGPTOptions } from './sparsegpt.ts';
export { outputError, outputErrorGemm } from './metrics.ts';
