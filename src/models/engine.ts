/**
 * The inference engine: a checkpoint's weights in memory (f32) run through three ONNX sessions —
 * the decoder layer without past (prefill), the decoder layer with past (decode) and the head.
 * JS does only O(tokens·D) work: embedding lookup, masks, RoPE tables, cache bookkeeping.
 *
 * Batches are LEFT-padded: sequence b's real tokens end at the last column, so every sequence's
 * next token is appended at the same column and one (B, 1) decode step serves the whole batch.
 */
import { runtimeDefaults, Session, type HostTensor, type RuntimeOptions } from '../runtime/session.ts';
import type { ModelConfig } from './config.ts';
import { attentionMask, embedRows, leftPad, ropeFeeds, weightFeeds, type Feeds } from './batch.ts';
import { buildHeadGraph, buildLayerGraph } from './graphs.ts';
import type { Model } from './model.ts';
import type { LayerWeights } from './spec.ts';

/** Per-layer KV cache for a left-padded batch. */
export class KvCache {
  constructor(
    /** Per layer: keys and values (B, Hkv, S, hd). */
    public keys: Float32Array[],
    public values: Float32Array[],
    /** Per sequence: which of the S columns hold real tokens. */
    public valid: Uint8Array[],
    /** Per sequence: position id of its next token. */
    public nextPos: number[],
    public S: number,
    readonly Hkv: number,
    readonly hd: number,
  ) {}

  get batch(): number {
    return this.valid.length;
  }

  /** Keep only the listed sequences (in that order), dropping the rest from every layer. */
  select(rows: number[]): void {
    const per = this.Hkv * this.S * this.hd;
    const pick = (a: Float32Array) => {
      const out = new Float32Array(rows.length * per);
      rows.forEach((r, i) => out.set(a.subarray(r * per, (r + 1) * per), i * per));
      return out;
    };
    this.keys = this.keys.map(pick);
    this.values = this.values.map(pick);
    this.valid = rows.map((r) => this.valid[r]!);
    this.nextPos = rows.map((r) => this.nextPos[r]!);
  }
}

export interface PrefillResult {
  /** Logits of each sequence's last token, (B, V). */
  lastLogits: Float32Array;
  cache: KvCache;
}

export class Engine {
  private layerFeeds: Feeds[];
  private headFeeds: Feeds;

  private constructor(
    readonly model: Model,
    readonly config: ModelConfig,
    private readonly prefillSession: Session,
    private readonly decodeSession: Session,
    private readonly headSession: Session,
    layers: LayerWeights[],
  ) {
    this.layerFeeds = layers.map((w) => this.weightFeeds(w));
    const c = config;
    this.headFeeds = {
      w_norm: { data: model.finalNorm(), dims: [c.hiddenSize] },
      w_lm_head: { data: model.lmHead(), dims: [c.vocabSize, c.hiddenSize] },
    };
  }

  /** Load every layer's weights (f32) and build the sessions. */
  static async load(model: Model, opts: Partial<RuntimeOptions> = {}): Promise<Engine> {
    const { spec, config } = model;
    const o = { ...runtimeDefaults(), ...opts };
    const [prefill, decode, head] = await Promise.all([
      Session.create('decoder layer (prefill)', buildLayerGraph(spec, config, { past: false, present: true, capture: false }), o),
      Session.create('decoder layer (decode)', buildLayerGraph(spec, config, { past: true, present: true, capture: false }), o),
      Session.create('lm head', buildHeadGraph(config), o),
    ]);
    const layers: LayerWeights[] = [];
    for (let i = 0; i < config.numLayers; i++) layers.push(model.layerWeights(i));
    return new Engine(model, config, prefill, decode, head, layers);
  }

  /** Replace layer i's weights (e.g. after pruning); no session rebuild. */
  setLayerWeights(i: number, w: LayerWeights): void {
    this.layerFeeds[i] = this.weightFeeds(w);
  }

  private weightFeeds(w: LayerWeights): Feeds {
    return weightFeeds(this.model.spec, this.config, w);
  }

  /** Embedding rows for ids: (ids.length, D). */
  embed(ids: ArrayLike<number>): Float32Array {
    return embedRows(this.model.embedding(), this.config, ids);
  }

  /** Run all decoder layers over hidden (B, T, D); with a cache, appends to it. */
  private async layers(
    hidden: Float32Array,
    B: number,
    T: number,
    positions: Int32Array,
    valid: Uint8Array[],
    cache: KvCache | null,
    keepPresent: boolean,
  ): Promise<{ hidden: Float32Array; keys: Float32Array[]; values: Float32Array[] }> {
    const c = this.config;
    const S = (cache ? cache.S : 0) + T;
    const { cos, sin } = ropeFeeds(c, positions, B, T);
    const mask = attentionMask(valid, T, S, c.slidingWindow);
    const keys: Float32Array[] = [];
    const values: Float32Array[] = [];
    let h = hidden;
    for (let l = 0; l < c.numLayers; l++) {
      const feeds: Feeds = { ...this.layerFeeds[l]!, hidden: { data: h, dims: [B, T, c.hiddenSize] }, cos, sin, mask };
      let out: Record<string, HostTensor>;
      if (cache) {
        const pd = [B, c.numKvHeads, cache.S, c.headDim];
        feeds['past_key'] = { data: cache.keys[l]!, dims: pd };
        feeds['past_value'] = { data: cache.values[l]!, dims: pd };
        out = await this.decodeSession.run(feeds);
      } else {
        out = await this.prefillSession.run(feeds, keepPresent ? undefined : ['out']);
      }
      h = out['out']!.data as Float32Array;
      if (keepPresent) {
        keys.push(out['present_key']!.data as Float32Array);
        values.push(out['present_value']!.data as Float32Array);
      }
    }
    return { hidden: h, keys, values };
  }

  /** Logits (rows, V) of hidden rows (rows, D), in chunks to bound memory. */
  async head(hidden: Float32Array, rows: number, chunkRows = 512): Promise<Float32Array> {
    const D = this.config.hiddenSize;
    const V = this.config.vocabSize;
    const out = new Float32Array(rows * V);
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const n = Math.min(chunkRows, rows - r0);
      const res = await this.headSession.run({
        ...this.headFeeds,
        hidden: { data: hidden.subarray(r0 * D, (r0 + n) * D), dims: [n, D] },
      });
      out.set(res['logits']!.data as Float32Array, r0 * V);
    }
    return out;
  }

  /** Teacher-forced forward; returns per sequence its logits (len, V) for every real token. */
  async forward(seqs: number[][]): Promise<Float32Array[]> {
    const { ids, valid, positions, T } = leftPad(seqs);
    const B = seqs.length;
    const V = this.config.vocabSize;
    const D = this.config.hiddenSize;
    const { hidden } = await this.layers(this.embed(ids), B, T, positions, valid, null, false);
    const out: Float32Array[] = [];
    for (let b = 0; b < B; b++) {
      const len = seqs[b]!.length;
      const off = b * T + (T - len);
      out.push((await this.head(hidden.subarray(off * D, (off + len) * D), len)).slice(0, len * V));
    }
    return out;
  }

  /** Prefill prompts (left-padded) and return the last-token logits and a KV cache. */
  async prefill(seqs: number[][]): Promise<PrefillResult> {
    const { ids, valid, positions, T } = leftPad(seqs);
    const B = seqs.length;
    const D = this.config.hiddenSize;
    const { hidden, keys, values } = await this.layers(this.embed(ids), B, T, positions, valid, null, true);
    const last = new Float32Array(B * D);
    for (let b = 0; b < B; b++) last.set(hidden.subarray((b * T + T - 1) * D, (b * T + T) * D), b * D);
    const cache = new KvCache(keys, values, valid, seqs.map((s) => s.length), T, this.config.numKvHeads, this.config.headDim);
    return { lastLogits: await this.head(last, B), cache };
  }

  /** Append one token per sequence; returns next-token logits (B, V). Mutates the cache. */
  async decode(cache: KvCache, tokens: number[]): Promise<Float32Array> {
    const B = cache.batch;
    if (tokens.length !== B) throw new Error(`decode: ${tokens.length} tokens for a batch of ${B}`);
    const positions = Int32Array.from(cache.nextPos);
    const valid = cache.valid.map((v) => {
      const nv = new Uint8Array(v.length + 1);
      nv.set(v);
      nv[v.length] = 1;
      return nv;
    });
    const { hidden, keys, values } = await this.layers(this.embed(tokens), B, 1, positions, valid, cache, true);
    cache.keys = keys;
    cache.values = values;
    cache.valid = valid;
    cache.S += 1;
    cache.nextPos = cache.nextPos.map((p) => p + 1);
    return this.head(hidden, B);
  }

  async release(): Promise<void> {
    await Promise.all([this.prefillSession.release(), this.decodeSession.release(), this.headSession.release()]);
  }
}
