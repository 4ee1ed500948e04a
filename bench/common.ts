/** Shared benchmark helpers: JSON lines on stdout, GEMM peak measured in the same run. */
import { GraphBuilder } from '../src/runtime/graph.ts';
import { Session } from '../src/runtime/session.ts';

export function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

export function randn(n: number, scale = 1, seed = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (((s >>> 0) / 4294967296) * 2 - 1) * scale;
  }
  return a;
}

export async function timeBest(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn(); // warm-up
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best / 1000;
}

/**
 * ORT MatMul peak on this machine now: x (m, k) · Wᵀ with W (n, k) fed as an input, the same
 * Gemm the engine uses, at the shape of a Qwen2-1.5B MLP projection.
 */
export async function gemmPeak(
  m = 2048,
  k = 1536,
  n = 8960,
): Promise<{ gflops: number; m: number; k: number; n: number; seconds: number }> {
  const g = new GraphBuilder('gemm_peak');
  const x = g.input('x', 'float32', [m, k]);
  const w = g.input('w', 'float32', [n, k]);
  g.output(g.gemm(x, w, null, { transB: true }), 'y');
  const s = await Session.create('gemm peak', g.build());
  const feeds = { x: { data: randn(m * k), dims: [m, k] }, w: { data: randn(n * k, 0.02, 7), dims: [n, k] } };
  const seconds = await timeBest(() => s.run(feeds), 5);
  await s.release();
  return { gflops: (2 * m * k * n) / seconds / 1e9, m, k, n, seconds };
}

/**
 * The rate at which onnxruntime streams a 512 MiB F32 input from memory on `threads` threads
 * (ReduceSum over 64 rows, which it splits across its threads), best of 3 — the machine's read
 * rate now, for bandwidth-bound benchmarks to divide by (on the 2-core host: within 2% of a
 * gcc -O3 OpenMP read loop).
 */
export async function memoryReadRate(threads: number): Promise<{ gb_per_s: number; bytes: number; threads: number }> {
  const rows = 64;
  const n = 128 << 20;
  const g = new GraphBuilder('memory_read');
  g.output(g.reduceSum(g.input('x', 'float32', [rows, n / rows]), [1], false), 'y', 'float32', [rows]);
  const s = await Session.create('memory read', g.build(), { threads });
  try {
    const x = randn(n, 1, 3);
    const seconds = await timeBest(() => s.run({ x: { data: x, dims: [rows, n / rows] } }), 3);
    return { gb_per_s: (n * 4) / seconds / 1e9, bytes: n * 4, threads };
  } finally {
    await s.release();
  }
}
