/**
 * Importance matrices in the GGUF format llama.cpp's `llama-imatrix` writes and `llama-quantize
 * --imatrix` reads (tools/imatrix/imatrix.cpp `save_imatrix`, common/imatrix-loader.cpp):
 *
 *   general.type = "imatrix", imatrix.datasets (string array), imatrix.chunk_count (u32),
 *   imatrix.chunk_size (u32); then per weight tensor NAME, in sorted name order:
 *     NAME.in_sum2  F32, ne = [n_per_row, n_mat]   Σ x² per input column (per expert matrix)
 *     NAME.counts   F32, ne = [1, n_mat]           tokens that went through each matrix
 *
 * A dense Linear has n_mat = 1; a mixture-of-experts tensor `blk.N.ffn_*_exps.weight` has one row
 * of sums and one count per expert (the tokens routed to it). llama-quantize uses
 * sums / round(count) per matrix (1 where the count is 0) as the weights of its quantizers;
 * `imatrixWeights` computes exactly that. The legacy `.dat` format is not read (llama-imatrix
 * converts it: `llama-imatrix --in-file old.dat -o new.gguf`).
 */
import { GgufError, GgufType, GgufWriter, kv, readGguf, readGgufTensorF32, type GgufKv } from './gguf.ts';

/** One weight tensor's statistics: sums (n_mat × n_per_row, row-major) and one count per matrix. */
export interface ImatrixEntry {
  sums: Float32Array;
  counts: number[];
}

export interface Imatrix {
  /** GGUF weight name (e.g. blk.0.attn_q.weight) → its statistics. */
  entries: Map<string, ImatrixEntry>;
  datasets: string[];
  chunkCount: number;
  chunkSize: number;
  /** Other metadata of the file (rac records its calibration here), as read. */
  extra?: Map<string, unknown>;
}

const SUMS = '.in_sum2';
const COUNTS = '.counts';

/** Write `m` to `file` (temp name, renamed when complete); `extra` metadata keys go after llama's. */
export function writeImatrix(file: string, m: Imatrix, extra: GgufKv[] = []): number {
  const names = [...m.entries.keys()].sort();
  const kvs: GgufKv[] = [
    kv.str('general.type', 'imatrix'),
    kv.strs('imatrix.datasets', m.datasets),
    kv.u32('imatrix.chunk_count', m.chunkCount),
    kv.u32('imatrix.chunk_size', m.chunkSize),
    ...extra,
  ];
  const tensors = names.flatMap((name) => {
    const e = m.entries.get(name)!;
    const nmat = e.counts.length;
    if (nmat < 1 || e.sums.length % nmat !== 0)
      throw new GgufError(file, `imatrix entry "${name}": ${e.sums.length} sums do not split into ${nmat} matrices`);
    return [
      { name: name + SUMS, type: 'F32' as const, shape: [nmat, e.sums.length / nmat] },
      { name: name + COUNTS, type: 'F32' as const, shape: [nmat, 1] },
    ];
  });
  const w = GgufWriter.create(file, kvs, tensors);
  try {
    for (const name of names) {
      const e = m.entries.get(name)!;
      w.writeF32(name + SUMS, e.sums);
      w.writeF32(name + COUNTS, Float32Array.from(e.counts));
    }
    w.close();
  } catch (err) {
    w.abort();
    throw err;
  }
  return w.fileBytes;
}

/** Read an imatrix GGUF (rac's or llama-imatrix's). */
export function readImatrix(file: string): Imatrix {
  let g: ReturnType<typeof readGguf>;
  try {
    g = readGguf(file);
  } catch (e) {
    if (e instanceof GgufError && /not a GGUF file/.test(e.message))
      throw new GgufError(
        file,
        'not a GGUF importance matrix (the legacy .dat format? convert it with `llama-imatrix --in-file FILE -o FILE.gguf`)',
      );
    throw e;
  }
  const md = g.metadata;
  if (md.get('general.type') !== undefined && md.get('general.type') !== 'imatrix')
    throw new GgufError(g.file, `general.type is "${String(md.get('general.type'))}", not an importance matrix`);
  for (const k of ['imatrix.datasets', 'imatrix.chunk_count', 'imatrix.chunk_size'])
    if (!md.has(k)) throw new GgufError(g.file, `missing "${k}" (llama-quantize refuses an imatrix without its metadata)`);
  const ds = md.get('imatrix.datasets');
  if (!Array.isArray(ds) || g.itemTypes.get('imatrix.datasets') !== GgufType.STRING)
    throw new GgufError(g.file, 'imatrix.datasets must be an array of strings');
  const pairs = new Map<string, { sums?: string; counts?: string }>();
  for (const t of g.tensors) {
    const suffix = t.name.endsWith(SUMS) ? SUMS : t.name.endsWith(COUNTS) ? COUNTS : null;
    if (!suffix) continue;
    const base = t.name.slice(0, -suffix.length);
    const p = pairs.get(base) ?? {};
    if (t.type !== 'F32') throw new GgufError(g.file, `"${t.name}" must be F32`);
    if (suffix === SUMS) p.sums = t.name;
    else p.counts = t.name;
    pairs.set(base, p);
  }
  if (pairs.size === 0) throw new GgufError(g.file, 'no importance matrix entries (no *.in_sum2 / *.counts tensors)');
  const entries = new Map<string, ImatrixEntry>();
  for (const [name, p] of pairs) {
    if (!p.sums || !p.counts) throw new GgufError(g.file, `mismatched sums and counts for "${name}"`);
    const sums = readGgufTensorF32(g, p.sums);
    const counts = [...readGgufTensorF32(g, p.counts)];
    if (counts.length < 1 || sums.length % counts.length !== 0)
      throw new GgufError(g.file, `"${name}": ${sums.length} sums do not split into ${counts.length} matrices`);
    entries.set(name, { sums, counts });
  }
  const extra = new Map<string, unknown>();
  for (const [k, v] of md) if (!k.startsWith('imatrix.') && k !== 'general.type') extra.set(k, v);
  return {
    entries,
    datasets: ds as string[],
    chunkCount: Number(md.get('imatrix.chunk_count')),
    chunkSize: Number(md.get('imatrix.chunk_size')),
    extra,
  };
}

/** C's lround (half away from zero). */
function lround(x: number): number {
  return Math.sign(x) * Math.round(Math.abs(x));
}

/**
 * The importance weights llama-quantize gives its quantizers for one entry (load_imatrix in
 * tools/quantize/quantize.cpp): per matrix j, sums / (float)lround(count_j), in f32; 1 where the
 * count is 0. (n_mat × n_per_row.)
 */
export function imatrixWeights(e: ImatrixEntry): Float32Array {
  const n = e.counts.length;
  const ne0 = e.sums.length / n;
  const out = new Float32Array(e.sums.length);
  for (let j = 0; j < n; j++) {
    const count = Math.fround(lround(e.counts[j]!));
    for (let i = 0; i < ne0; i++) out[j * ne0 + i] = count > 0 ? Math.fround(e.sums[j * ne0 + i]! / count) : 1;
  }
  return out;
}
