/**
 * Matrix multiply on onnxruntime: the GEMM that `compress/` algorithms (blocked Cholesky,
 * triangular inverse, SparseGPT's lazy batch updates) run their O(n³) bulk through.
 * Structurally implements `Gemm` from src/compress/gemm.ts (runtime does not import compress).
 */
import { GraphBuilder } from './graph.ts';
import { runtimeDefaults, Session, type RuntimeOptions } from './session.ts';

export interface OrtGemm {
  matmul(
    a: Float32Array,
    b: Float32Array,
    m: number,
    k: number,
    n: number,
    opts?: { transA?: boolean; transB?: boolean },
  ): Promise<Float32Array>;
  /** Calls made and flops done since creation (for benchmarks). */
  readonly stats: { calls: number; flops: number };
  release(): Promise<void>;
}

export function createOrtGemm(opts: Partial<RuntimeOptions> = {}): OrtGemm {
  const o = { ...runtimeDefaults(), ...opts };
  const sessions = new Map<string, Promise<Session>>();
  const session = (transA: boolean, transB: boolean) => {
    const key = `${+transA}${+transB}`;
    let s = sessions.get(key);
    if (!s) {
      const g = new GraphBuilder(`gemm_${key}`);
      const a = g.input('a', 'float32', ['ra', 'ca']);
      const b = g.input('b', 'float32', ['rb', 'cb']);
      g.output(g.gemm(a, b, null, { transA, transB }), 'c');
      s = Session.create(`gemm(transA=${transA}, transB=${transB})`, g.build(), o);
      sessions.set(key, s);
    }
    return s;
  };
  const stats = { calls: 0, flops: 0 };
  return {
    stats,
    async matmul(a, b, m, k, n, t = {}) {
      if (a.length !== m * k) throw new RangeError(`gemm: A has ${a.length} elements, expected ${m}·${k}`);
      if (b.length !== k * n) throw new RangeError(`gemm: B has ${b.length} elements, expected ${k}·${n}`);
      if (m === 0 || n === 0) return new Float32Array(m * n);
      if (k === 0) return new Float32Array(m * n);
      const s = await session(!!t.transA, !!t.transB);
      const out = await s.run({
        a: { data: a, dims: t.transA ? [k, m] : [m, k] },
        b: { data: b, dims: t.transB ? [n, k] : [k, n] },
      });
      stats.calls++;
      stats.flops += 2 * m * k * n;
      return out['c']!.data as Float32Array;
    },
    async release() {
      for (const s of sessions.values()) await (await s).release();
      sessions.clear();
    },
  };
}
