/**
 * The quantized model directory `rac prune --quant q4_0|q8_0` writes: compressed-tensors
 * `pack-quantized` (io/compressed-tensors.ts), the layout llm-compressor writes and vLLM and
 * transformers load. Each quantized Linear `M.weight` becomes `M.weight_packed` (its codes k,
 * int4 or int8, packed along the input dim), `M.weight_scale` (F16, one per 32 weights: the GGUF
 * block scale d, bit for bit) and `M.weight_shape`; config.json gains `quantization_config`
 * (W4A16 / W8A16, symmetric, group 32, every other Linear in `ignore`). Q4_0's d·(nibble − 8) is
 * scale·q with q = nibble − 8 ∈ [−8, 7]; Q8_0's d·k is scale·q, q = k ∈ [−127, 127].
 *
 * What is not a Linear stays as before: the embedding (and an untied lm_head) as F32 values on
 * the Q8_0 grid, their f16 scales in q8_0_scales.safetensors, which the shard index leaves out.
 */
import { gridCodes, packSigned } from '../compress/int-packing.ts';
import { f16Bits, type QuantFormat } from '../compress/quant-grids.ts';
import type { CheckpointWriter } from '../io/checkpoint-writer.ts';
import { packedTensorEntries, quantizationConfig, weightShapeBytes } from '../io/compressed-tensors.ts';
import type { TensorEntry } from '../io/safetensors.ts';
import type { Model } from '../models/model.ts';
import { layerExperts, layerLinears } from '../models/spec.ts';

export const GROUP_SIZE = 32;
const BITS: Record<QuantFormat, 4 | 8> = { q4_0: 4, q8_0: 8 };
const KRANGE: Record<QuantFormat, [number, number]> = { q4_0: [-8, 7], q8_0: [-127, 127] };

/** The tensors written in place of each packed Linear's `.weight` (CheckpointWriter's `replace`). */
export function packedReplacements(
  linears: readonly { name: string; rows: number; cols: number }[],
  fmt: QuantFormat,
): Map<string, TensorEntry[]> {
  return new Map(linears.map((l) => [l.name, packedTensorEntries(l.name, l.rows, l.cols, BITS[fmt], GROUP_SIZE)]));
}

/** Write one quantized Linear W (rows, cols), its values d·k on the grid of `scales` (rows, cols/32), as weight_packed / weight_scale / weight_shape. */
export function writePackedLinear(
  writer: CheckpointWriter,
  name: string,
  W: Float32Array,
  scales: Float32Array,
  rows: number,
  cols: number,
  fmt: QuantFormat,
): void {
  const [kmin, kmax] = KRANGE[fmt];
  let q: Int8Array;
  try {
    q = gridCodes(W, scales, rows, cols, GROUP_SIZE, kmin, kmax);
  } catch (e) {
    throw new Error(`"${name}": ${(e as Error).message} (${fmt})`);
  }
  const d = new Uint16Array(scales.length);
  for (let i = 0; i < scales.length; i++) d[i] = f16Bits(scales[i]!);
  const m = name.replace(/\.weight$/, '');
  writer.writeRaw(`${m}.weight_packed`, packSigned(q, rows, cols, BITS[fmt]));
  writer.writeRaw(`${m}.weight_scale`, new Uint8Array(d.buffer));
  writer.writeRaw(`${m}.weight_shape`, weightShapeBytes(rows, cols));
}

/**
 * config.json of the quantized model: the source's, plus `quantization_config` naming every
 * Linear module left unpacked (lm_head, MoE routers, layers or Linears outside the selection, rows
 * not a multiple of 32) in `ignore`.
 */
export function compressedConfigText(model: Model, fmt: QuantFormat, packed: ReadonlySet<string>): string {
  const { spec, config: c } = model;
  const ignore: string[] = [];
  const note = (weight: string) => {
    if (!packed.has(weight)) ignore.push(weight.replace(/\.weight$/, ''));
  };
  for (let i = 0; i < c.numLayers; i++) {
    for (const l of layerLinears(spec, c, i)) note(model.tensorName(i, l.module));
    const ex = layerExperts(spec, c, i);
    if (!ex) continue;
    note(model.tensorName(i, ex.routerModule));
    for (let j = 0; j < ex.count; j++) for (const l of ex.linears) note(model.expertTensorName(i, j, l.module));
  }
  note(spec.lmHeadName);
  const raw = { ...c.raw, quantization_config: quantizationConfig({ bits: BITS[fmt], groupSize: GROUP_SIZE, ignore }) };
  return `${JSON.stringify(raw, null, 2)}\n`;
}
