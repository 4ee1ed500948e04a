/**
 * Writes a modified copy of a checkpoint in the input's exact layout: same shard files, same
 * tensor order, names, shapes, dtypes and safetensors metadata; tensors not rewritten are copied
 * byte for byte; config, tokenizer and index files copied unchanged. Planned departures: `widen`
 * (tensors stored as F32 whatever their dtype); `replace` (a tensor replaced, in its shard and
 * place, by other tensors — a Linear by its compressed-tensors `weight_packed`, …); a `plan`
 * (removing MoE experts: tensors dropped, renamed or reshaped; callers name tensors by their
 * SOURCE names throughout). With any of them the shard index is rewritten, and `index` writes one
 * for a single-file checkpoint too. Everything goes to a temp
 * directory beside the destination, renamed into place by `finish()` — an interrupted run never
 * leaves a half-written model at the destination: the temp dir is removed on SIGINT/SIGTERM, and
 * one left by a killed run (its pid gone) is removed by the next `begin()` for the same output.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { CheckpointError, SIDECAR_FILES } from './checkpoint.ts';
import { ModelFileError, modelDirRoots, modelFilePath, readModelFile } from './model-file.ts';
import { INDEX_FILE, SafetensorsFile, type SafetensorsModel } from './safetensors.ts';
import { SafetensorsWriter, writeShardedIndex } from './safetensors-writer.ts';
import type { TensorEntry } from './safetensors-header.ts';
import { removeOnSignal, removeStaleTempDirs } from './temp-cleanup.ts';

/** A deliberate change of layout: tensors dropped, renamed (source → output name) or given a new shape (by source name). */
export interface CheckpointPlan {
  drop?: ReadonlySet<string>;
  rename?: ReadonlyMap<string, string>;
  shapes?: ReadonlyMap<string, number[]>;
}

export class CheckpointWriter {
  private readonly writers = new Map<string, SafetensorsWriter>();
  private plan: CheckpointPlan = {};
  private readonly written = new Set<string>();
  private done = false;
  private widened = false;
  /** Replacement tensor name → its shard; replaced source names. */
  private readonly added = new Map<string, string>();
  private readonly replaced = new Set<string>();
  private indexAlways = false;

  private constructor(
    readonly src: SafetensorsModel,
    readonly outDir: string,
    /** The temp dir (and everything put in it, e.g. hidden-state spill files) goes on SIGINT/SIGTERM. */
    readonly tmpDir: string,
    private readonly cleanup: { release(): void },
  ) {}

  /**
   * Start writing a copy of `src` (a model directory) to `outDir`. `outDir` must not exist unless
   * `overwrite` (then it is replaced only at `finish()`).
   */
  static begin(
    src: SafetensorsModel,
    outDir: string,
    opts: {
      overwrite?: boolean;
      widen?: ReadonlySet<string>;
      /** Source tensor → the tensors written in its place (same shard, same position), with writeRaw. */
      replace?: ReadonlyMap<string, readonly TensorEntry[]>;
      /** Write model.safetensors.index.json even for a single-file checkpoint. */
      index?: boolean;
      plan?: CheckpointPlan;
    } = {},
  ): CheckpointWriter {
    const out = resolve(outDir);
    if (out === resolve(src.dir)) throw new CheckpointError(`${out}: the output directory must differ from the input model directory`);
    if (existsSync(out) && !opts.overwrite) throw new CheckpointError(`${out}: already exists (choose another --out, or pass --overwrite)`);
    // The side files are copied at finish(); a symlink out of the directory or a FIFO is refused now, before any work.
    asCheckpointError(() => {
      const roots = modelDirRoots(src.dir);
      for (const f of [...SIDECAR_FILES, INDEX_FILE]) modelFilePath(src.dir, f, roots);
    });
    mkdirSync(dirname(out), { recursive: true });
    // Temp dirs of runs killed (SIGKILL, power loss) before they could remove them.
    const prefix = `.${basename(out)}.tmp-`;
    removeStaleTempDirs(dirname(out), prefix);
    const tmp = join(dirname(out), `${prefix}${process.pid}-${Date.now().toString(36)}`);
    mkdirSync(tmp);
    const w = new CheckpointWriter(src, out, tmp, removeOnSignal(tmp));
    w.widened = [...(opts.widen ?? [])].some((n) => src.has(n) && src.info(n).dtype !== 'F32');
    w.indexAlways = !!opts.index;
    const plan = opts.plan ?? {};
    w.plan = plan;
    try {
      for (const [name, entries] of opts.replace ?? []) {
        if (!src.has(name)) throw new CheckpointError(`${src.dir}: no tensor "${name}" to replace`);
        w.replaced.add(name);
        for (const e of entries) {
          if (src.has(e.name) || w.added.has(e.name))
            throw new CheckpointError(`${src.dir}: replacement tensor "${e.name}" exists already`);
          w.added.set(e.name, src.shardOf(name));
        }
      }
      for (const shard of src.shards) {
        const f = src.shard(shard);
        // `widen`: tensors stored as F32 whatever their input dtype (quantized values d·k need f32).
        const entries = [...f.tensors.values()]
          .filter((t) => !plan.drop?.has(t.name))
          .flatMap(
            (t) =>
              opts.replace?.get(t.name) ?? [
                {
                  name: plan.rename?.get(t.name) ?? t.name,
                  dtype: opts.widen?.has(t.name) ? 'F32' : t.dtype,
                  shape: plan.shapes?.get(t.name) ?? t.shape,
                },
              ],
          );
        w.writers.set(shard, SafetensorsWriter.create(join(tmp, shard), entries, f.metadata));
      }
    } catch (e) {
      w.abort();
      throw e;
    }
    return w;
  }

  private writerOf(name: string): SafetensorsWriter {
    if (this.done) throw new Error('checkpoint writer already finished');
    const shard = this.added.get(name) ?? (this.src.has(name) && !this.replaced.has(name) ? this.src.shardOf(name) : undefined);
    if (shard === undefined)
      throw new CheckpointError(`${this.src.dir}: no tensor "${name}" to write${this.replaced.has(name) ? ' (it is replaced)' : ''}`);
    if (this.plan.drop?.has(name)) throw new Error(`tensor "${name}" is dropped by the plan`);
    if (this.written.has(name)) throw new Error(`tensor "${name}" written twice`);
    this.written.add(name);
    return this.writers.get(shard)!;
  }

  /** Write a tensor's raw little-endian bytes (a replacement tensor, or any other whose bytes are ready). */
  writeRaw(name: string, bytes: Uint8Array): void {
    this.writerOf(name).write(this.added.has(name) ? name : this.outName(name), bytes);
  }

  /** The output name of source tensor `name`. */
  private outName(name: string): string {
    return this.plan.rename?.get(name) ?? name;
  }

  /** Write f32 data narrowed to the tensor's stored dtype (F32/F16/BF16). */
  writeF32(name: string, data: Float32Array): void {
    this.writerOf(name).writeF32(this.outName(name), data);
  }

  /** Copy a tensor's stored bytes unchanged. */
  copy(name: string): void {
    if (this.plan.shapes?.has(name)) throw new Error(`tensor "${name}" is reshaped by the plan: write its data`);
    this.writerOf(name).write(this.outName(name), this.src.readRaw(name));
  }

  isWritten(name: string): boolean {
    return this.written.has(name);
  }

  /**
   * Copy every tensor not written yet, close the shards, copy the sidecar files, write `extra`
   * files (e.g. rac.json), then rename the temp directory into place.
   */
  finish(extra: Record<string, string> = {}): void {
    try {
      for (const name of this.src.names())
        if (!this.written.has(name) && !this.replaced.has(name) && !this.plan.drop?.has(name)) this.copy(name);
      for (const w of this.writers.values()) w.close();
      this.writers.clear();
      for (const f of SIDECAR_FILES) {
        const bytes = asCheckpointError(() => readModelFile(this.src.dir, f));
        if (bytes !== undefined) writeFileSync(join(this.tmpDir, f), bytes);
      }
      const indexBytes = asCheckpointError(() => readModelFile(this.src.dir, INDEX_FILE));
      if (indexBytes !== undefined || this.indexAlways) {
        const replanned = !!(this.plan.drop?.size || this.plan.rename?.size || this.plan.shapes?.size);
        if (this.widened || replanned || this.replaced.size > 0 || indexBytes === undefined) {
          // Widened, replaced, dropped or reshaped tensors change the shards' sizes (and names): a new index.
          let total = 0;
          for (const shard of this.src.shards) {
            const h = SafetensorsFile.open(join(this.tmpDir, shard));
            try {
              for (const t of h.tensors.values()) total += t.byteLength;
            } finally {
              h.close();
            }
          }
          const map: Record<string, string> = {};
          for (const name of this.src.names())
            if (!this.replaced.has(name) && !this.plan.drop?.has(name)) map[this.outName(name)] = this.src.shardOf(name);
          for (const [name, shard] of this.added) map[name] = shard;
          writeShardedIndex(this.tmpDir, map, total);
        } else writeFileSync(join(this.tmpDir, INDEX_FILE), indexBytes);
      }
      for (const [name, content] of Object.entries(extra)) writeFileSync(join(this.tmpDir, name), content);
      if (existsSync(this.outDir)) rmSync(this.outDir, { recursive: true, force: true });
      renameSync(this.tmpDir, this.outDir);
      this.cleanup.release();
      this.done = true;
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Discard everything written so far. */
  abort(): void {
    for (const w of this.writers.values()) {
      try {
        w.abort();
      } catch {
        /* already failing */
      }
    }
    this.writers.clear();
    rmSync(this.tmpDir, { recursive: true, force: true });
    this.cleanup.release();
    this.done = true;
  }
}

function asCheckpointError<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof ModelFileError) throw new CheckpointError(e.message);
    throw e;
  }
}
