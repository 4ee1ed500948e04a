/**
 * The quantized model directory `rac prune --quant q4_0|q8_0` writes: compressed-tensors
 * `pack-quantized` (io/compressed-tensors.ts), the layout llm-compressor writes and vLLM and
 * transformers load. Each quantized Linear `M.weight` becomes `M.weight_packed` (its codes,
 * int4 or int8, packed along the input dim), `M.weight_scale` (F16, one per 32 weights) and
 * `M.weight_shape`; config.json gains `quantization_config` (W4A16 / W8A16, symmetric, group 32,
 * every other Linear in `ignore`). Both come from the Linear's GGUF blocks as rac's quantizers
 * wrote them (llama.cpp's, byte for byte): the scale is the block's d (its f16 bits copied) and
 * the code q its Q4_0 nibble − 8 (its Q8_0 int8) — so `rac export-gguf` writes the same blocks
 * back (export/gguf-packed.ts), with or without an importance matrix.
 *
 * What is not a Linear stays as the other schemes store it: the embedding (and an untied
 * lm_head) F32, their GGUF blocks in quant_blocks.safetensors, which the shard index leaves out
 * (vLLM and transformers load the shards the index names).
 */
import type { GgmlQuantType } from '../compress/ggml-quants.ts';
import { packedFromGgufBlocks } from '../compress/int-packing.ts';
import type { CheckpointWriter } from '../io/checkpoint-writer.ts';
import { packedTensorEntries, quantizationConfig, weightShapeBytes } from '../io/compressed-tensors.ts';
import type { TensorEntry } from '../io/safetensors.ts';
import type { Model } from '../models/model.ts';
import { layerExperts, layerLinears } from '../models/spec.ts';
import type { PackedScheme } from './options.ts';

export const GROUP_SIZE = 32;
const BITS: Record<PackedScheme, 4 | 8> = { q4_0: 4, q8_0: 8 };

function packedFormat(type: GgmlQuantType): PackedScheme {
  if (type === 'Q4_0') return 'q4_0';
  if (type === 'Q8_0') return 'q8_0';
  throw new RangeError(`${type} has no compressed-tensors pack-quantized form (only Q4_0 and Q8_0 do)`);
}

/** The tensors written in place of each packed Linear's `.weight` (CheckpointWriter's `replace`). */
export function packedReplacements(
  linears: readonly { name: string; rows: number; cols: number; type: GgmlQuantType | null }[],
): Map<string, TensorEntry[]> {
  return new Map(linears.map((l) => [l.name, packedTensorEntries(l.name, l.rows, l.cols, BITS[packedFormat(l.type!)], GROUP_SIZE)]));
}

/** Write one quantized Linear (rows, cols) from its GGUF Q4_0 / Q8_0 blocks as weight_packed / weight_scale / weight_shape. */
export function writePackedFromBlocks(
  writer: CheckpointWriter,
  name: string,
  blocks: Uint8Array,
  type: GgmlQuantType,
  rows: number,
  cols: number,
): void {
  const { packed, d } = packedFromGgufBlocks(packedFormat(type), blocks, rows, cols);
  const m = name.replace(/\.weight$/, '');
  writer.writeRaw(`${m}.weight_packed`, packed);
  writer.writeRaw(`${m}.weight_scale`, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  writer.writeRaw(`${m}.weight_shape`, weightShapeBytes(rows, cols));
}

/**
 * config.json of the quantized model: the source's, plus `quantization_config` naming every
 * Linear module left unpacked (lm_head, MoE routers, layers or Linears outside the selection, rows
 * not a multiple of 32) in `ignore`.
 */
export function compressedConfigText(model: Model, scheme: PackedScheme, packed: ReadonlySet<string>): string {
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
  const raw = { ...c.raw, quantization_config: quantizationConfig({ bits: BITS[scheme], groupSize: GROUP_SIZE, ignore }) };
  return `${JSON.stringify(raw, null, 2)}\n`;
}
