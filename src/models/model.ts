/**
 * A loaded checkpoint bound to its ArchSpec: every expected tensor is checked against the config
 * once at open time (name and shape), and weights are read lazily, one layer at a time, widened
 * to f32. A compressed-tensors checkpoint (io/compressed-tensors.ts) stands its pack-quantized
 * Linears in for their `.weight`: `read` dequantizes them, `packedLinear` hands the packed form
 * to the engine.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError, openCheckpointDir } from '../io/checkpoint.ts';
import {
  CompressedTensors,
  dequantize,
  parseCompressionConfig,
  type GridRowSource,
  type GridTable,
  type PackedLinear,
} from '../io/compressed-tensors.ts';
import { findNonFinite, INDEX_FILE, SINGLE_FILE, type SafetensorsModel } from '../io/safetensors.ts';
import { resolveArch } from './arch/index.ts';
import type { ModelConfig } from './config.ts';
import {
  layerExperts,
  layerLinears,
  type ArchSpec,
  type ExpertLinearName,
  type ExpertSpec,
  type LayerWeights,
  type LinearName,
  type NormName,
} from './spec.ts';

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

export type Warn = (message: string) => void;

export class Model {
  private embedCache: Float32Array | null = null;
  /** The pack-quantized Linears of a compressed-tensors checkpoint (null: none). */
  private ct: CompressedTensors | null = null;

  private constructor(
    readonly dir: string,
    readonly spec: ArchSpec,
    readonly config: ModelConfig,
    readonly tensors: SafetensorsModel,
    private readonly warn: Warn,
  ) {}

  /** Open and validate a HF model directory. */
  static open(dir: string, opts: { warn?: Warn } = {}): Model {
    const ck = openCheckpointDir(dir);
    let ct: CompressedTensors | null = null;
    try {
      const { spec, config } = resolveArch(ck.configPath, ck.configRaw);
      const m = new Model(ck.dir, spec, config, ck.tensors, opts.warn ?? ((s) => process.stderr.write(`warning: ${s}\n`)));
      const q = parseCompressionConfig(ck.configPath, ck.configRaw);
      if (q) m.ct = ct = CompressedTensors.open(ck.dir, q, ck.tensors, m.linearWeightNames());
      m.validate();
      return m;
    } catch (e) {
      ct?.close();
      ck.tensors.close();
      throw e;
    }
  }

  /** Whether the LM head reads the embedding matrix. */
  get tiedHead(): boolean {
    return this.config.tieWordEmbeddings || !this.stored(this.spec.lmHeadName);
  }

  /** Every tensor the architecture expects, with its shape from config.json. */
  expectedTensors(): ExpectedTensor[] {
    const { spec, config: c } = this;
    const out: ExpectedTensor[] = [{ name: spec.embedName, shape: [c.vocabSize, c.hiddenSize] }];
    for (let i = 0; i < c.numLayers; i++) {
      const p = spec.layerPrefix(i);
      for (const l of layerLinears(spec, c, i)) {
        out.push({ name: `${p}${l.module}.weight`, shape: [l.rows, l.cols] });
        if (l.bias) out.push({ name: `${p}${l.module}.bias`, shape: [l.rows] });
      }
      for (const n of spec.norms(c)) out.push({ name: `${p}${n.module}.weight`, shape: [n.size] });
      const ex = layerExperts(spec, c, i);
      if (!ex) continue;
      out.push({ name: `${p}${ex.routerModule}.weight`, shape: [ex.count, c.hiddenSize] });
      for (let j = 0; j < ex.count; j++) {
        for (const l of ex.linears) out.push({ name: `${p}${ex.expertModule(j)}.${l.module}.weight`, shape: [l.rows, l.cols] });
      }
    }
    out.push({ name: spec.finalNormName, shape: [c.hiddenSize] });
    if (!c.tieWordEmbeddings) out.push({ name: spec.lmHeadName, shape: [c.vocabSize, c.hiddenSize] });
    return out;
  }

  /** Every Linear weight the architecture has (attention, MLP, experts, routers, an untied lm_head). */
  private linearWeightNames(): string[] {
    const { spec, config: c } = this;
    const out: string[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = spec.layerPrefix(i);
      for (const l of layerLinears(spec, c, i)) out.push(`${p}${l.module}.weight`);
      const ex = layerExperts(spec, c, i);
      if (!ex) continue;
      out.push(`${p}${ex.routerModule}.weight`);
      for (let j = 0; j < ex.count; j++) for (const l of ex.linears) out.push(`${p}${ex.expertModule(j)}.${l.module}.weight`);
    }
    out.push(spec.lmHeadName);
    return out;
  }

  /** Whether a tensor name the architecture expects is stored (plain or pack-quantized). */
  stored(name: string): boolean {
    return this.tensors.has(name) || !!this.ct?.has(name);
  }

  /**
   * Decoder layers present in the weights: the count of consecutive layer indices from 0 that
   * hold any of the layer's Linear or norm weights. Bounded by the number of tensors, so it never
   * trusts config.json's sizes.
   */
  layersPresent(): number {
    // Attention Linears and norms: every layer has them, dense or MoE.
    const attention = this.spec.linears(this.config).filter((l) => l.group === 'attn_in' || l.group === 'attn_out');
    const modules = [...attention, ...this.spec.norms(this.config)].map((m) => m.module);
    const limit = this.tensors.names().length;
    let n = 0;
    while (n < limit && modules.some((m) => this.stored(`${this.spec.layerPrefix(n)}${m}.weight`))) n++;
    return n;
  }

  private validate(): void {
    const where = (name: string) => `${this.dir}/${this.tensors.shardOf(name)}`;
    const c = this.config;
    // Sizes are checked against the weights before anything is built from them: a config.json
    // claiming 1e9 layers must not make rac list (or allocate) 1e9 layers' worth of tensors.
    const present = this.layersPresent();
    if (c.numLayers > present) {
      const missing = `${this.spec.layerPrefix(present)}${this.spec.linears(c)[0]!.module}.weight`;
      throw new CheckpointError(
        `${join(this.dir, 'config.json')}: "num_hidden_layers" is ${c.numLayers} but the weights hold ${present} layer${present === 1 ? '' : 's'} (no tensor "${missing}" in ${this.weightsFile()})`,
      );
    }
    const expected = this.expectedTensors();
    for (const t of expected) {
      if (this.ct?.has(t.name)) {
        const shape = this.ct.shape(t.name);
        if (shape[0] !== t.shape[0] || shape[1] !== t.shape[1]) {
          const ws = t.name.replace(/\.weight$/, '.weight_shape');
          throw new CheckpointError(
            `${where(ws)}: tensor "${ws}" says [${shape.join(', ')}] but config.json implies [${t.shape.join(', ')}]`,
          );
        }
        continue;
      }
      if (!this.tensors.has(t.name)) {
        // Some tied checkpoints omit lm_head; others list it though tie_word_embeddings is set.
        throw new CheckpointError(`${this.weightsFile()}: missing tensor "${t.name}" expected by config.json (${this.config.modelType})`);
      }
      const info = this.tensors.info(t.name);
      if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
        throw new CheckpointError(
          `${where(t.name)}: tensor "${t.name}" has shape [${info.shape.join(', ')}] but config.json implies [${t.shape.join(', ')}]`,
        );
      }
      if (!['F32', 'F16', 'BF16'].includes(info.dtype)) {
        throw new CheckpointError(`${where(t.name)}: tensor "${t.name}" has dtype ${info.dtype}; rac reads F32, F16 and BF16 weights`);
      }
    }
    // Tensors config.json does not account for (e.g. num_hidden_layers smaller than the layers
    // stored) are never read: say so. A listed lm_head beside tied embeddings and the rotary
    // inv_freq buffers of older checkpoints are ignored as transformers ignores them.
    const used = new Set(expected.map((t) => t.name));
    const unused = this.tensors
      .names()
      .filter(
        (n) =>
          !used.has(n) &&
          !this.ct?.isPackedTensor(n) &&
          !(n === this.spec.lmHeadName && c.tieWordEmbeddings) &&
          !n.endsWith('rotary_emb.inv_freq'),
      );
    if (unused.length > 0) {
      const extra = present > c.numLayers ? `; "num_hidden_layers" is ${c.numLayers} but the weights hold ${present} layers` : '';
      this.warn(
        `${this.weightsFile()}: ${unused.length} tensor${unused.length === 1 ? '' : 's'} not used by config.json (first: "${unused[0]}")${extra}; they are ignored`,
      );
    }
  }

  /** The file that lists the tensors: the shard index when sharded, else the single safetensors file. */
  private weightsFile(): string {
    const index = join(this.dir, INDEX_FILE);
    return existsSync(index) ? index : join(this.dir, this.tensors.shards[0] ?? SINGLE_FILE);
  }

  /**
   * Read one tensor widened to f32 (a pack-quantized Linear dequantized); non-finite values
   * produce a warning naming the tensor.
   */
  read(name: string): Float32Array {
    const data = this.ct?.has(name) ? dequantize(this.ct.linear(name)) : this.tensors.readF32(name);
    const bad = findNonFinite(data);
    if (bad >= 0)
      this.warn(`${this.dir}/${this.tensors.shardOf(name)}: tensor "${name}" has a non-finite value (${data[bad]}) at flat index ${bad}`);
    return data;
  }

  /** Whether this is a compressed-tensors checkpoint (some Linears pack-quantized). */
  get compressed(): boolean {
    return !!this.ct && this.ct.names().length > 0;
  }

  /** A Linear weight in its packed form (compressed-tensors), or null when it is stored as floats. */
  packedLinear(name: string): PackedLinear | null {
    return this.ct?.has(name) ? this.ct.linear(name) : null;
  }

  /** A table rac stored as F32 values on the Q8_0 grid with its scales beside (the embedding / untied lm_head of its compressed output), or null. */
  gridTable(name: string): GridTable | null {
    return this.ct?.gridTable(name) ?? null;
  }

  /** gridTable's check alone (compressed-tensors.ts gridShape): the shape, no codes kept. */
  gridShape(name: string): { rows: number; cols: number } | null {
    return this.ct?.gridShape(name) ?? null;
  }

  /** The rows of a grid table gridTable or gridShape accepted, read from disk when asked. */
  gridRowSource(name: string, table: Pick<GridTable, 'rows' | 'cols'>): GridRowSource {
    if (!this.ct) throw new Error(`${this.dir}: not a compressed-tensors checkpoint`);
    return this.ct.gridRowSource(name, table);
  }

  tensorName(layer: number, module: string, kind: 'weight' | 'bias' = 'weight'): string {
    return `${this.spec.layerPrefix(layer)}${module}.${kind}`;
  }

  /** Layer i's weights, f32, HF layout. */
  layerWeights(i: number): LayerWeights {
    if (!Number.isInteger(i) || i < 0 || i >= this.config.numLayers) {
      throw new RangeError(`layer ${i} out of range [0, ${this.config.numLayers})`);
    }
    const linears: Partial<Record<LinearName, Float32Array>> = {};
    const biases: Partial<Record<LinearName, Float32Array>> = {};
    const norms: Partial<Record<NormName, Float32Array>> = {};
    for (const l of layerLinears(this.spec, this.config, i)) {
      linears[l.name] = this.read(this.tensorName(i, l.module));
      if (l.bias) biases[l.name] = this.read(this.tensorName(i, l.module, 'bias'));
    }
    for (const n of this.spec.norms(this.config)) norms[n.name] = this.read(this.tensorName(i, n.module));
    const ex = this.experts(i);
    if (!ex) return { linears, biases, norms };
    const experts: Record<ExpertLinearName, Float32Array>[] = [];
    for (let j = 0; j < ex.count; j++) {
      const e = {} as Record<ExpertLinearName, Float32Array>;
      for (const l of ex.linears) e[l.name] = this.read(this.expertTensorName(i, j, l.module));
      experts.push(e);
    }
    return { linears, biases, norms, moe: { router: this.read(this.tensorName(i, ex.routerModule)), experts } };
  }

  /** Layer i's MoE block, or null for a dense layer. */
  experts(i: number): ExpertSpec | null {
    return layerExperts(this.spec, this.config, i);
  }

  /** The HF name of expert j's Linear `module` (e.g. `gate_proj`) in layer i. */
  expertTensorName(i: number, j: number, module: string): string {
    const ex = this.experts(i);
    if (!ex) throw new RangeError(`layer ${i} has no experts`);
    return `${this.spec.layerPrefix(i)}${ex.expertModule(j)}.${module}.weight`;
  }

  /** Embedding matrix (V, D), cached: it serves both lookup and a tied head. */
  embedding(): Float32Array {
    this.embedCache ??= this.read(this.spec.embedName);
    return this.embedCache;
  }

  lmHead(): Float32Array {
    return this.tiedHead ? this.embedding() : this.read(this.spec.lmHeadName);
  }

  finalNorm(): Float32Array {
    return this.read(this.spec.finalNormName);
  }

  /** Parameter count of the stored tensors (a tied head counted once). */
  parameterCount(): number {
    let n = 0;
    for (const name of this.tensors.names())
      if (!this.ct?.isPackedTensor(name)) n += this.tensors.info(name).shape.reduce((a, b) => a * b, 1);
    for (const name of this.ct?.names() ?? []) n += this.ct!.shape(name).reduce((a, b) => a * b, 1);
    return n;
  }

  /** Parameters a token runs through: the stored ones less, in each MoE layer, the experts it is not routed to. */
  activeParameterCount(): number {
    let n = this.parameterCount();
    for (let i = 0; i < this.config.numLayers; i++) {
      const ex = this.experts(i);
      if (ex) n -= (ex.count - ex.topK) * ex.linears.reduce((a, l) => a + l.rows * l.cols, 0);
    }
    return n;
  }

  /** Number of tensors per dtype. */
  dtypeCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of this.tensors.names()) {
      if (this.ct?.isPackedTensor(name)) continue;
      const d = this.tensors.info(name).dtype;
      out[d] = (out[d] ?? 0) + 1;
    }
    for (const name of this.ct?.names() ?? []) {
      const d = `INT${this.ct!.bits(name)} (pack-quantized)`;
      out[d] = (out[d] ?? 0) + 1;
    }
    return out;
  }

  close(): void {
    this.ct?.close();
    this.tensors.close();
    this.embedCache = null;
  }
}
