/**
 * Damaged copies of good random checkpoints, for bad-input tests: each helper copies a checkpoint
 * into a fresh temp dir and breaks exactly one thing in it.
 */
import { closeSync, cpSync, openSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { writeSafetensors } from '../../src/io/safetensors-writer.ts';
import { tempDir } from './checkpoints.ts';

/** A copy of checkpoint `src` in a new temp dir. */
export function copyCheckpoint(src: string, name: string): string {
  const dir = join(tempDir(name), 'model');
  cpSync(src, dir, { recursive: true });
  return dir;
}

export function editJson(file: string, edit: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(j);
  writeFileSync(file, JSON.stringify(j, null, 2) + '\n');
}

/** The raw header of a safetensors file: its JSON text and where the data section starts. */
export function readHeader(file: string): { text: string; dataStart: number } {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return { text: buf.subarray(8, 8 + n).toString('utf8'), dataStart: 8 + n };
}

/** Replace the header text (space-padded to a multiple of 8), keeping the data section's bytes. */
export function writeHeader(file: string, text: string): void {
  const buf = readFileSync(file);
  const { dataStart } = readHeader(file);
  const json = Buffer.from(text, 'utf8');
  const header = Buffer.alloc(json.length + ((8 - (json.length % 8)) % 8), 0x20);
  json.copy(header);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  writeFileSync(file, Buffer.concat([len, header, buf.subarray(dataStart)]));
}

/** Overwrite the 8-byte header length. */
export function setHeaderLength(file: string, n: bigint): void {
  const fd = openSync(file, 'r+');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(n);
  writeSync(fd, len, 0, 8, 0);
  closeSync(fd);
}

/** Cut `bytes` off the end of a file. */
export function truncateBy(file: string, bytes: number): void {
  truncateSync(file, statSync(file).size - bytes);
}

/** Rewrite a safetensors file without tensor `drop` (the others keep their bytes). */
export function dropTensor(file: string, drop: string): void {
  const f = SafetensorsFile.open(file);
  const kept = [...f.tensors.values()]
    .filter((t) => t.name !== drop)
    .map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(f.readRaw(t.name)) }));
  if (kept.length === f.tensors.size) throw new Error(`${file} has no tensor ${drop}`);
  f.close();
  writeSafetensors(file, kept);
}

/** Write one f32 value at flat index `index` of an F32 tensor, in place. */
export function pokeF32(file: string, tensor: string, index: number, value: number): void {
  const f = SafetensorsFile.open(file);
  const t = f.info(tensor);
  f.close();
  if (t.dtype !== 'F32') throw new Error(`${tensor} is ${t.dtype}, not F32`);
  if (index < 0 || index * 4 >= t.byteLength) throw new Error(`index ${index} outside ${tensor}`);
  const b = Buffer.alloc(4);
  b.writeFloatLE(value);
  const fd = openSync(file, 'r+');
  writeSync(fd, b, 0, 4, t.start + index * 4);
  closeSync(fd);
}
