/** Tiny synthetic reasoning tasks; the implementation lives in ./tiny/ (this re-exports it). */
export * from './tiny/index.ts';
