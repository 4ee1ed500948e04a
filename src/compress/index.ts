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
export { sparsegptPrune, type ObsReport, type SparseGPTOptions } from './sparsegpt.ts';
export { outputError, outputErrorGemm } from './metrics.ts';
export { gptqQuantize, type GptqOptions } from './gptq.ts';
export {
  BITS_PER_WEIGHT,
  BLOCK_BYTES,
  blockScale,
  codesOf,
  decodeBlocks,
  encodeBlocks,
  f16Bits,
  f16Value,
  isQuantFormat,
  nearestCode,
  QK,
  QUANT_FORMATS,
  QuantRangeError,
  quantizeToGrid,
  roundF16,
  rtnQuantize,
  type QuantFormat,
} from './quant-grids.ts';
