/**
 * The inference engine: a checkpoint's weights (f32) run through ONNX sessions — per decoder
 * layer one session of the layer graph with a KV past, its weights baked in as initializers (a
 * prefill or a teacher-forced forward passes an empty past), and the head. JS does only
 * O(tokens·D) work: embedding lookup, masks, RoPE tables, cache bookkeeping. A compressed-tensors
 * checkpoint's pack-quantized Linears run as MatMulNBits on their packed codes (models/packed.ts),
 * and rac's Q8_0 embedding / LM head stay 8-bit: the loaded model's memory follows the packed size.
 *
 * Batches are LEFT-padded: sequence b's real tokens end at the last column, so every sequence's
 * next token is appended at the same column and one (B, 1) decode step serves the whole batch.
 */
import { bakeInputs, MAX_BAKED_BYTES } from '../runtime/graph.ts';
import { runtimeDefaults, Session, type HostTensor, type RuntimeOptions } from '../runtime/session.ts';
import type { ModelConfig } from './config.ts';
import { attentionMask, decodeMask, embedRows, expertFeeds, leftPad, MASK_NEG, ropeFeeds, weightFeeds, type Feeds } from './batch.ts';
import { buildExpertGraph, buildHeadGraph, buildLayerGraph, type PackedMatMul } from './graphs.ts';
import { groupByExpert, runRoutedExperts } from './moe.ts';
import { gridMatMul, PACKED_ACCURACY_LEVEL, packedLayer, packedMatMul } from './packed.ts';
import type { GridRowSource, GridTable } from '../io/compressed-tensors.ts';
import type { ExpertSpec } from './spec.ts';
import type { Model } from './model.ts';

/**
 * Per-layer KV cache for a left-padded batch, at a capacity C ≥ S filled slots. Keys are stored
 * transposed, (B, Hkv, hd, C), values (B, Hkv, C, hd): the decode graph reads both in place (no
 * per-step copy of the cache) and the engine writes each step's new keys and values into slot S.
 */
export class KvCache {
  constructor(
    /** Per layer: keys (B, Hkv, hd, C). */
    public keysT: Float32Array[],
    /** Per layer: values (B, Hkv, C, hd). */
    public values: Float32Array[],
    /** Per sequence: which of the S filled slots hold real tokens (length S). */
    public valid: Uint8Array[],
    /** Per sequence: position id of its next token. */
    public nextPos: number[],
    /** Filled slots. */
    public S: number,
    /** Allocated slots. */
    public C: number,
    readonly Hkv: number,
    readonly hd: number,
  ) {}

  get batch(): number {
    return this.valid.length;
  }

  /** An empty cache for B sequences and L layers with capacity C. */
  static allocate(L: number, B: number, Hkv: number, hd: number, C: number): KvCache {
    const n = B * Hkv * hd * C;
    return new KvCache(
      Array.from({ length: L }, () => new Float32Array(n)),
      Array.from({ length: L }, () => new Float32Array(n)),
      Array.from({ length: B }, () => new Uint8Array(0)),
      new Array<number>(B).fill(0),
      0,
      C,
      Hkv,
      hd,
    );
  }

  /** Write T new keys/values per sequence, (B, Hkv, T, hd) each, at slots S..S+T−1 of layer l. */
  write(l: number, newKey: Float32Array, newValue: Float32Array, T: number): void {
    const { Hkv, hd, C, S } = this;
    if (S + T > C) throw new Error(`KV cache overflow: ${S} + ${T} > capacity ${C}`);
    const kT = this.keysT[l]!;
    const v = this.values[l]!;
    const B = this.batch;
    for (let bh = 0; bh < B * Hkv; bh++) {
      const src = bh * T * hd;
      const kBase = bh * hd * C; // (hd, C) block
      const vBase = bh * C * hd; // (C, hd) block
      for (let t = 0; t < T; t++) {
        const row = src + t * hd;
        v.set(newValue.subarray(row, row + hd), vBase + (S + t) * hd);
        for (let d = 0; d < hd; d++) kT[kBase + d * C + S + t] = newKey[row + d]!;
      }
    }
  }

  /** Grow the capacity to at least `need` slots (amortized: ×1.5, in multiples of 64). */
  reserve(need: number): void {
    if (need <= this.C) return;
    const C2 = Math.ceil(Math.max(need, this.C * 1.5) / 64) * 64;
    const { Hkv, hd, C } = this;
    const B = this.batch;
    this.keysT = this.keysT.map((kT) => {
      const out = new Float32Array(B * Hkv * hd * C2);
      for (let r = 0; r < B * Hkv * hd; r++) out.set(kT.subarray(r * C, r * C + this.S), r * C2);
      return out;
    });
    this.values = this.values.map((v) => {
      const out = new Float32Array(B * Hkv * C2 * hd);
      for (let bh = 0; bh < B * Hkv; bh++) out.set(v.subarray(bh * C * hd, bh * C * hd + this.S * hd), bh * C2 * hd);
      return out;
    });
    this.C = C2;
  }

  /** Keep only the listed sequences (in that order), dropping the rest from every layer. */
  select(rows: number[]): void {
    const per = this.Hkv * this.hd * this.C;
    const pick = (a: Float32Array) => {
      const out = new Float32Array(rows.length * per);
      rows.forEach((r, i) => out.set(a.subarray(r * per, (r + 1) * per), i * per));
      return out;
    };
    this.keysT = this.keysT.map(pick);
    this.values = this.values.map(pick);
    this.valid = rows.map((r) => this.valid[r]!);
    this.nextPos = rows.map((r) => this.nextPos[r]!);
  }
}

/**
 * KV cache for iteration-level scheduling (`rac serve`): one row per running sequence, rows
 * 0..B−1 in use, row b holding its sequence's lens[b] tokens at columns 0..lens[b]−1 (no padding:
 * a token's column is its position). Same per-layer layout as KvCache — keys (R, Hkv, hd, C),
 * values (R, Hkv, C, hd), allocated for R ≥ B rows — so one (B, 1) decode step reads rows 0..B−1
 * in place. A sequence joins by copying its prefilled keys/values into row B; one leaves by moving
 * the last row into its place. Nothing else is copied, except when the allocation is resized.
 */
export class SlotCache {
  keysT: Float32Array[];
  values: Float32Array[];
  /** Per row in use: tokens held (= the position of its next token). */
  lens: number[] = [];
  /** Allocated rows. */
  R = 0;
  /** Allocated columns. */
  C = 0;

  constructor(
    readonly L: number,
    readonly Hkv: number,
    readonly hd: number,
  ) {
    this.keysT = Array.from({ length: L }, () => new Float32Array(0));
    this.values = Array.from({ length: L }, () => new Float32Array(0));
  }

  /** Rows in use. */
  get batch(): number {
    return this.lens.length;
  }

  /** Allocated tokens (rows × columns). */
  get allocated(): number {
    return this.R * this.C;
  }

  /** Reallocate to R × C (both ≥ what the rows in use hold), copying the rows in use. */
  resize(R: number, C: number): void {
    if (R === this.R && C === this.C) return;
    const { Hkv, hd } = this;
    const B = this.batch;
    if (R < B || this.lens.some((n) => n > C))
      throw new Error(`slot cache: ${B} rows of up to ${Math.max(0, ...this.lens)} tokens do not fit ${R} × ${C}`);
    const C0 = this.C;
    this.keysT = this.keysT.map((kT) => {
      const out = new Float32Array(R * Hkv * hd * C);
      for (let b = 0; b < B; b++) {
        const n = this.lens[b]!;
        for (let r = b * Hkv * hd; r < (b + 1) * Hkv * hd; r++) out.set(kT.subarray(r * C0, r * C0 + n), r * C);
      }
      return out;
    });
    this.values = this.values.map((v) => {
      const out = new Float32Array(R * Hkv * C * hd);
      for (let b = 0; b < B; b++) {
        const n = this.lens[b]!;
        for (let bh = b * Hkv; bh < (b + 1) * Hkv; bh++) out.set(v.subarray(bh * C0 * hd, (bh * C0 + n) * hd), bh * C * hd);
      }
      return out;
    });
    this.R = R;
    this.C = C;
  }

  /**
   * Append a prefilled sequence as row B: row `row` of a left-padded prefill cache holding `len`
   * real tokens (its last `len` filled slots). Needs R > B and C ≥ len.
   */
  append(src: KvCache, row: number, len: number): number {
    const b = this.batch;
    if (b >= this.R || len > this.C)
      throw new Error(`slot cache: no room for a row of ${len} tokens (${b}/${this.R} rows, ${this.C} columns)`);
    const { Hkv, hd, C } = this;
    const off = src.S - len;
    for (let l = 0; l < this.L; l++) {
      const sk = src.keysT[l]!;
      const sv = src.values[l]!;
      const dk = this.keysT[l]!;
      const dv = this.values[l]!;
      for (let h = 0; h < Hkv; h++) {
        const sbh = row * Hkv + h;
        const dbh = b * Hkv + h;
        for (let d = 0; d < hd; d++) {
          const s0 = (sbh * hd + d) * src.C + off;
          dk.set(sk.subarray(s0, s0 + len), (dbh * hd + d) * C);
        }
        const v0 = (sbh * src.C + off) * hd;
        dv.set(sv.subarray(v0, v0 + len * hd), dbh * C * hd);
      }
    }
    this.lens.push(len);
    return b;
  }

  /** Drop row b: the last row moves into its place (returns the row that moved, or −1 if none). */
  remove(b: number): number {
    const last = this.batch - 1;
    if (b < 0 || b > last) throw new Error(`slot cache: no row ${b}`);
    if (b !== last) {
      const per = this.Hkv * this.hd * this.C;
      for (const a of [...this.keysT, ...this.values]) a.copyWithin(b * per, last * per, (last + 1) * per);
      this.lens[b] = this.lens[last]!;
    }
    this.lens.pop();
    return b === last ? -1 : last;
  }

  /** Write one new key/value per row in use, (B, Hkv, 1, hd) each, at column lens[b] of layer l. */
  write(l: number, newKey: Float32Array, newValue: Float32Array, T: number): void {
    if (T !== 1) throw new Error(`slot cache: decode writes one token per row, got ${T}`);
    const { Hkv, hd, C } = this;
    const kT = this.keysT[l]!;
    const v = this.values[l]!;
    for (let b = 0; b < this.batch; b++) {
      const col = this.lens[b]!;
      if (col >= C) throw new Error(`KV cache overflow: row ${b} holds ${col} of ${C} columns`);
      for (let h = 0; h < Hkv; h++) {
        const bh = b * Hkv + h;
        const src = bh * hd;
        v.set(newValue.subarray(src, src + hd), (bh * C + col) * hd);
        const kBase = bh * hd * C + col;
        for (let d = 0; d < hd; d++) kT[kBase + d * C] = newKey[src + d]!;
      }
    }
  }

  /**
   * Additive mask (B, 1, 1, 1, C + 1): row b's new token sees its columns 0..lens[b]−1 (with a
   * sliding window, those less than `window` positions back) and itself at column C.
   */
  decodeMask(window: number | null): HostTensor {
    const B = this.batch;
    const W = this.C + 1;
    const m = new Float32Array(B * W).fill(MASK_NEG);
    for (let b = 0; b < B; b++) {
      const n = this.lens[b]!;
      const lo = window ? Math.max(0, n - window + 1) : 0;
      m.fill(0, b * W + lo, b * W + n);
      m[b * W + this.C] = 0;
    }
    return { data: m, dims: [B, 1, 1, 1, W] };
  }
}

export interface PrefillResult {
  /** Logits of each sequence's last token, (B, V). */
  lastLogits: Float32Array;
  cache: KvCache;
}

/** One decoder layer's session; `feeds` holds its weights when they are inputs, not baked in. */
interface LayerSession {
  session: Session;
  feeds: Feeds | null;
  /** An MoE layer's experts: one session (and, when not baked, feeds) per expert. */
  experts: { spec: ExpertSpec; sessions: Session[]; feeds: (Feeds | null)[] } | null;
}

const MOE_OUTPUTS = ['h1', 'moe_in', 'route_idx', 'route_w'];

/** The LM head over vocabulary rows [v0, v1); `feeds` as for a layer. */
interface HeadChunk {
  session: Session;
  v0: number;
  v1: number;
  feeds: Feeds | null;
}

/** How the engine holds its weights (see Engine.load). */
export interface EngineOptions extends Partial<RuntimeOptions> {
  /**
   * Bake each layer's (and the head's) weights into its session as initializers, so onnxruntime
   * pre-packs them once (default true). A layer whose weights would pass MAX_BAKED_BYTES keeps them
   * as inputs of one shared session; the head is split over the vocabulary to stay under it.
   */
  bakeWeights?: boolean;
  /** Largest baked session (default MAX_BAKED_BYTES; smaller values exercise the split paths in tests). */
  bakeLimitBytes?: number;
  /**
   * A compressed-tensors checkpoint's packed Linears (and rac's Q8_0 embedding / LM head): `native`
   * (default) runs them as MatMulNBits on the packed codes; `dequantize` widens them to f32 at load
   * and runs the f32 graphs, exactly as the dequantized model.
   */
  packedWeights?: 'native' | 'dequantize';
  /** MatMulNBits accuracy_level for native packed weights (default 4: int8 activations; 0/1: f32). */
  accuracyLevel?: number;
}

export class Engine {
  private constructor(
    readonly model: Model,
    readonly config: ModelConfig,
    private readonly layerSessions: LayerSession[],
    private readonly headChunks: HeadChunk[],
    private readonly sessions: Session[],
    /**
     * The embedding on the Q8_0 grid (rac's quantized output, native packed weights), its rows read
     * from disk per token (the tied head's session holds the table already), else null: the f32 table.
     */
    private readonly embedRows: GridRowSource | null = null,
  ) {}

  /**
   * Build the sessions: one decoder-layer graph with a KV past (a prefill is the same graph with
   * an empty past) and the head. With baked weights (the default) every layer gets its own
   * session holding its weights as initializers: onnxruntime then pre-packs each weight matrix
   * once instead of packing it on every run, and the engine keeps no JS copy of layer weights.
   * Sessions are created one layer at a time, so load-time memory stays one layer above the total.
   */
  static async load(model: Model, opts: EngineOptions = {}): Promise<Engine> {
    const { spec, config: c } = model;
    const {
      bakeWeights = true,
      bakeLimitBytes = MAX_BAKED_BYTES,
      packedWeights = 'native',
      accuracyLevel = PACKED_ACCURACY_LEVEL,
      ...runtime
    } = opts;
    const o = { ...runtimeDefaults(), ...runtime };
    const native = packedWeights === 'native';
    // Lookups read rows from disk; the table itself is built only for a tied head's session (and
    // only while it is built); an untied head's embedding is checked against its blocks alone.
    let embedTable = native && model.tiedHead ? model.gridTable(spec.embedName) : null;
    const embedShape = !native ? null : model.tiedHead ? embedTable : model.gridShape(spec.embedName);
    const embedSource = embedShape ? model.gridRowSource(spec.embedName, embedShape) : null;
    const layerGraph = buildLayerGraph(spec, c, { past: true, present: true, capture: false });
    let moeGraphs: { layer: Uint8Array; expert: Uint8Array } | null = null;
    const sessions: Session[] = [];
    // Packed weights: no per-session arena holding each session's largest activations (Session.create).
    const memArena = !(native && (model.compressed || embedShape));
    const open = async (name: string, bytes: Uint8Array) => {
      const s = await Session.create(name, bytes, { ...o, memArena });
      sessions.push(s);
      return s;
    };
    try {
      // A packed head first: its load-time copies (the largest session's) come before the layers' weights are held.
      let packedHead: HeadChunk | null = null;
      let headWeight = native ? Engine.packedHead(model, embedTable) : null;
      embedTable = null;
      if (headWeight) {
        const feeds: Feeds = { w_norm: { data: model.finalNorm(), dims: [c.hiddenSize] } };
        const session = await open('lm head', buildHeadGraph(c, headWeight, accuracyLevel, bakeWeights ? asConstants(feeds) : undefined));
        packedHead = { session, v0: 0, v1: c.vocabSize, feeds: bakeWeights ? null : feeds };
        headWeight = null;
      }
      const shared = new Map<Uint8Array, Session>();
      /** A session of `graph` with `feeds` baked in when allowed and small enough, else the graph's shared session and the feeds. */
      const bound = async (name: string, graph: Uint8Array, feeds: Feeds): Promise<{ session: Session; feeds: Feeds | null }> => {
        if (bakeWeights && feedBytes(feeds) <= bakeLimitBytes)
          return { session: await open(name, bakeInputs(graph, asConstants(feeds))), feeds: null };
        let s = shared.get(graph);
        if (!s) shared.set(graph, (s = await open(name.replace(/ \d+$/, ''), graph)));
        return { session: s, feeds };
      };
      const layerSessions: LayerSession[] = [];
      for (let i = 0; i < c.numLayers; i++) {
        const ex = model.experts(i);
        if (native && model.compressed) {
          const p = await Engine.packedLayerSessions(model, i, open, { bakeWeights, bakeLimitBytes, accuracyLevel });
          if (p) {
            layerSessions.push(p);
            continue;
          }
        }
        const w = model.layerWeights(i);
        if (!ex || !w.moe) {
          layerSessions.push({ ...(await bound(`decoder layer ${i}`, layerGraph, weightFeeds(spec, c, w))), experts: null });
          continue;
        }
        moeGraphs ??= {
          layer: buildLayerGraph(spec, c, { past: true, present: true, capture: false, experts: ex }),
          expert: buildExpertGraph(c, ex, { capture: false }),
        };
        const attn = await bound(`decoder layer ${i}`, moeGraphs.layer, weightFeeds(spec, c, w));
        const experts = { spec: ex, sessions: [] as Session[], feeds: [] as (Feeds | null)[] };
        for (let j = 0; j < ex.count; j++) {
          const e = await bound(`layer ${i} expert ${j}`, moeGraphs.expert, expertFeeds(ex, w.moe, j));
          experts.sessions.push(e.session);
          experts.feeds.push(e.feeds);
        }
        layerSessions.push({ ...attn, experts });
      }
      if (packedHead) return new Engine(model, c, layerSessions, [packedHead], sessions, embedSource);
      const norm = model.finalNorm();
      const D = c.hiddenSize;
      const V = c.vocabSize;
      const headChunks: HeadChunk[] = [];
      const headGraph = buildHeadGraph(c);
      const lm = model.lmHead();
      if (bakeWeights) {
        const chunks = Math.ceil((V * D * 4) / bakeLimitBytes);
        const per = Math.ceil(V / chunks);
        for (let v0 = 0; v0 < V; v0 += per) {
          const v1 = Math.min(V, v0 + per);
          const g = v1 - v0 === V ? headGraph : buildHeadGraph({ ...c, vocabSize: v1 - v0 });
          const consts = { w_norm: { data: norm, dims: [D] }, w_lm_head: { data: lm.subarray(v0 * D, v1 * D), dims: [v1 - v0, D] } };
          headChunks.push({ session: await open(`lm head ${v0}..${v1}`, bakeInputs(g, consts)), v0, v1, feeds: null });
        }
      } else {
        const feeds: Feeds = { w_norm: { data: norm, dims: [D] }, w_lm_head: { data: lm, dims: [V, D] } };
        headChunks.push({ session: await open('lm head', headGraph), v0: 0, v1: V, feeds });
      }
      return new Engine(model, c, layerSessions, headChunks, sessions, embedSource);
    } catch (e) {
      await Promise.all(sessions.map((s) => s.release()));
      throw e;
    }
  }

  /**
   * Layer i of a compressed checkpoint with its packed Linears baked in as MatMulNBits weights;
   * null when nothing in the layer is packed, or its weights would pass the bake limit (it then
   * loads as f32).
   */
  private static async packedLayerSessions(
    model: Model,
    i: number,
    open: (name: string, bytes: Uint8Array) => Promise<Session>,
    o: { bakeWeights: boolean; bakeLimitBytes: number; accuracyLevel: number },
  ): Promise<LayerSession | null> {
    const { spec, config: c } = model;
    const pl = packedLayer(model, i);
    const ex = model.experts(i);
    const nPacked = (p: Partial<Record<string, PackedMatMul>>) => Object.keys(p).length;
    if (nPacked(pl.packed) + (pl.experts ?? []).reduce((a, e) => a + nPacked(e.packed), 0) === 0) return null;
    const bytes = (feeds: Feeds, p: Partial<Record<string, PackedMatMul>>) =>
      feedBytes(feeds) + Object.values(p).reduce((a, m) => a + m!.weight.B.byteLength + m!.weight.scales.byteLength, 0);
    if (bytes(pl.feeds, pl.packed) > o.bakeLimitBytes || (pl.experts ?? []).some((e) => bytes(e.feeds, e.packed) > o.bakeLimitBytes))
      return null;
    // A session holding its graph's packed weights and, when baking, its float ones too (as
    // initializers from the start: no bakeInputs decode and re-encode of the packed bytes).
    const baked = (feeds: Feeds) => (o.bakeWeights ? { constants: asConstants(feeds) } : {});
    const session = async (name: string, graph: Uint8Array, feeds: Feeds) => ({
      session: await open(name, graph),
      feeds: o.bakeWeights ? null : feeds,
    });
    const layer = await session(
      `decoder layer ${i}`,
      buildLayerGraph(spec, c, {
        past: true,
        present: true,
        capture: false,
        experts: ex,
        packed: pl.packed,
        accuracyLevel: o.accuracyLevel,
        ...baked(pl.feeds),
      }),
      pl.feeds,
    );
    if (!ex || !pl.experts) return { ...layer, experts: null };
    const experts = { spec: ex, sessions: [] as Session[], feeds: [] as (Feeds | null)[] };
    for (let j = 0; j < ex.count; j++) {
      const e = pl.experts[j]!;
      const s = await session(
        `layer ${i} expert ${j}`,
        buildExpertGraph(c, ex, { capture: false, packed: e.packed, accuracyLevel: o.accuracyLevel, ...baked(e.feeds) }),
        e.feeds,
      );
      experts.sessions.push(s.session);
      experts.feeds.push(s.feeds);
    }
    return { ...layer, experts };
  }

  /** The LM head as a MatMulNBits weight: rac's Q8_0 table (the embedding when tied) or a packed lm_head; null: f32. */
  private static packedHead(model: Model, embedTable: GridTable | null): PackedMatMul | null {
    const { spec } = model;
    if (model.tiedHead) return embedTable ? gridMatMul(embedTable) : null;
    const table = model.gridTable(spec.lmHeadName);
    if (table) return gridMatMul(table);
    const p = model.packedLinear(spec.lmHeadName);
    return p ? packedMatMul(p) : null;
  }

  /** Embedding rows for ids: (ids.length, D). */
  embed(ids: ArrayLike<number>): Float32Array {
    return this.embedRows ? this.embedRows.read(ids) : embedRows(this.model.embedding(), this.config, ids);
  }

  /**
   * Run all decoder layers over hidden (B, T, D). With `cache` and `usePast`, the T new tokens
   * attend to its S filled slots plus themselves; without, to themselves only (an empty past).
   * With `cache`, their keys/values are appended to it (capacity permitting).
   */
  private async layers(
    hidden: Float32Array,
    B: number,
    T: number,
    positions: Int32Array,
    mask: HostTensor,
    cache: KvCache | SlotCache | null,
    usePast: boolean,
    /** (B·T): 1 for a padding slot (skipped by MoE experts), or null when every slot is a token. */
    padding: Uint8Array | null = null,
  ): Promise<Float32Array> {
    const c = this.config;
    const { cos, sin } = ropeFeeds(c, positions, B, T);
    const emptyK: HostTensor = { data: new Float32Array(0), dims: [B, c.numKvHeads, c.headDim, 0] };
    const emptyV: HostTensor = { data: new Float32Array(0), dims: [B, c.numKvHeads, 0, c.headDim] };
    const kvRow = cache ? c.numKvHeads * c.headDim * cache.C : 0;
    let h = hidden;
    for (let l = 0; l < c.numLayers; l++) {
      const { session, feeds: weights, experts } = this.layerSessions[l]!;
      const past = cache && usePast;
      const feeds: Feeds = {
        ...weights,
        hidden: { data: h, dims: [B, T, c.hiddenSize] },
        cos,
        sin,
        mask,
        // A slot cache may hold more rows than are in use; rows 0..B−1 are a prefix.
        past_key_t: past ? { data: cache.keysT[l]!.subarray(0, B * kvRow), dims: [B, c.numKvHeads, c.headDim, cache.C] } : emptyK,
        past_value: past ? { data: cache.values[l]!.subarray(0, B * kvRow), dims: [B, c.numKvHeads, cache.C, c.headDim] } : emptyV,
      };
      const out = await session.run(feeds, cache ? undefined : experts ? MOE_OUTPUTS : ['out']);
      h = experts ? await this.moe(out, experts, B * T, padding) : (out['out']!.data as Float32Array);
      if (cache) cache.write(l, out['new_key']!.data as Float32Array, out['new_value']!.data as Float32Array, T);
    }
    return h;
  }

  /** An MoE layer's output: h1 plus each routed expert's weighted output (padding rows keep h1). */
  private async moe(
    out: Record<string, HostTensor>,
    experts: NonNullable<LayerSession['experts']>,
    N: number,
    padding: Uint8Array | null,
  ): Promise<Float32Array> {
    const D = this.config.hiddenSize;
    const h = out['h1']!.data as Float32Array; // (N, D), updated in place
    const x = out['moe_in']!.data as Float32Array; // (N, D)
    const { spec: ex, sessions, feeds } = experts;
    const groups = groupByExpert(
      out['route_idx']!.data as BigInt64Array,
      out['route_w']!.data as Float32Array,
      N,
      ex.topK,
      ex.count,
      padding ? (n) => padding[n] === 1 : undefined,
    );
    await runRoutedExperts(groups, x, D, h, async (j, xj, gw) => {
      const res = await sessions[j]!.run({
        ...feeds[j],
        x: { data: xj, dims: [gw.length, D] },
        gate_w: { data: gw, dims: [gw.length, 1] },
      });
      return res['y']!.data as Float32Array;
    });
    return h;
  }

  /** Logits (rows, V) of hidden rows (rows, D), in chunks to bound memory. */
  async head(hidden: Float32Array, rows: number, chunkRows = 512): Promise<Float32Array> {
    const D = this.config.hiddenSize;
    const V = this.config.vocabSize;
    // One call covers it all (a decode step, a prefill's last tokens): its output is the answer,
    // not copied into a second rows × V array.
    if (rows <= chunkRows && this.headChunks.length === 1) {
      const { session, feeds } = this.headChunks[0]!;
      return (await session.run({ ...feeds, hidden: { data: hidden.subarray(0, rows * D), dims: [rows, D] } }))['logits']!
        .data as Float32Array;
    }
    const out = new Float32Array(rows * V);
    for (let r0 = 0; r0 < rows; r0 += chunkRows) {
      const n = Math.min(chunkRows, rows - r0);
      const x: HostTensor = { data: hidden.subarray(r0 * D, (r0 + n) * D), dims: [n, D] };
      for (const { session, v0, v1, feeds } of this.headChunks) {
        const logits = (await session.run({ ...feeds, hidden: x }))['logits']!.data as Float32Array;
        if (v1 - v0 === V) out.set(logits, r0 * V);
        else for (let r = 0; r < n; r++) out.set(logits.subarray(r * (v1 - v0), (r + 1) * (v1 - v0)), (r0 + r) * V + v0);
      }
    }
    return out;
  }

  /** Teacher-forced forward; returns per sequence its logits (len, V) for every real token. */
  async forward(seqs: number[][]): Promise<Float32Array[]> {
    const { ids, valid, positions, T } = leftPad(seqs);
    const B = seqs.length;
    const V = this.config.vocabSize;
    const D = this.config.hiddenSize;
    const hidden = await this.layers(
      this.embed(ids),
      B,
      T,
      positions,
      attentionMask(valid, T, T, this.config.slidingWindow),
      null,
      false,
      paddingRows(valid),
    );
    const out: Float32Array[] = [];
    for (let b = 0; b < B; b++) {
      const len = seqs[b]!.length;
      const off = b * T + (T - len);
      out.push((await this.head(hidden.subarray(off * D, (off + len) * D), len)).slice(0, len * V));
    }
    return out;
  }

  /**
   * Prefill prompts (left-padded) and return the last-token logits and a KV cache with room for
   * `reserve` more tokens (it grows as needed).
   */
  async prefill(seqs: number[][], reserve = 64): Promise<PrefillResult> {
    const { ids, valid, positions, T } = leftPad(seqs);
    const B = seqs.length;
    const c = this.config;
    const D = c.hiddenSize;
    const cache = KvCache.allocate(c.numLayers, B, c.numKvHeads, c.headDim, Math.ceil((T + Math.max(1, reserve)) / 64) * 64);
    const hidden = await this.layers(
      this.embed(ids),
      B,
      T,
      positions,
      attentionMask(valid, T, T, c.slidingWindow),
      cache,
      false,
      paddingRows(valid),
    );
    cache.S = T;
    cache.valid = valid;
    cache.nextPos = seqs.map((s) => s.length);
    const last = new Float32Array(B * D);
    for (let b = 0; b < B; b++) last.set(hidden.subarray((b * T + T - 1) * D, (b * T + T) * D), b * D);
    return { lastLogits: await this.head(last, B), cache };
  }

  /** Append one token per sequence; returns next-token logits (B, V). Mutates the cache. */
  async decode(cache: KvCache, tokens: number[]): Promise<Float32Array> {
    const B = cache.batch;
    if (tokens.length !== B) throw new Error(`decode: ${tokens.length} tokens for a batch of ${B}`);
    cache.reserve(cache.S + 1);
    const positions = Int32Array.from(cache.nextPos);
    const mask = decodeMask(cache.valid, cache.S, cache.C, this.config.slidingWindow);
    const hidden = await this.layers(this.embed(tokens), B, 1, positions, mask, cache, true);
    cache.valid = cache.valid.map((v) => {
      const nv = new Uint8Array(v.length + 1);
      nv.set(v);
      nv[v.length] = 1;
      return nv;
    });
    cache.S += 1;
    cache.nextPos = cache.nextPos.map((p) => p + 1);
    return this.head(hidden, B);
  }

  /** An empty slot cache for this model (see SlotCache). */
  slotCache(): SlotCache {
    const c = this.config;
    return new SlotCache(c.numLayers, c.numKvHeads, c.headDim);
  }

  /**
   * Append one token to every row in use of a slot cache (row b's token at position lens[b]);
   * returns next-token logits (B, V). The cache must have a free column in every row.
   */
  async decodeSlots(cache: SlotCache, tokens: number[]): Promise<Float32Array> {
    const B = cache.batch;
    if (tokens.length !== B) throw new Error(`decode: ${tokens.length} tokens for a batch of ${B}`);
    const positions = Int32Array.from(cache.lens);
    const mask = cache.decodeMask(this.config.slidingWindow);
    const hidden = await this.layers(this.embed(tokens), B, 1, positions, mask, cache, true);
    for (let b = 0; b < B; b++) cache.lens[b]! += 1;
    return this.head(hidden, B);
  }

  async release(): Promise<void> {
    await Promise.all(this.sessions.map((s) => s.release()));
  }
}

/** (B·T) 1 where a left-padded batch's slot is padding, or null when none is. */
function paddingRows(valid: readonly Uint8Array[]): Uint8Array | null {
  const T = valid[0]?.length ?? 0;
  const pad = new Uint8Array(valid.length * T);
  let any = false;
  valid.forEach((v, b) => {
    for (let t = 0; t < T; t++) {
      if (v[t]) continue;
      pad[b * T + t] = 1;
      any = true;
    }
  });
  return any ? pad : null;
}

/** Bytes of float32 data in a set of feeds. */
function feedBytes(feeds: Feeds): number {
  return Object.values(feeds).reduce((n, t) => n + t.data.byteLength, 0);
}

/** Feeds as bakeInputs' constants (every weight feed is float32). */
function asConstants(feeds: Feeds): Record<string, { data: Float32Array; dims: readonly number[] }> {
  const out: Record<string, { data: Float32Array; dims: readonly number[] }> = {};
  for (const [k, t] of Object.entries(feeds)) {
    if (!(t.data instanceof Float32Array)) throw new Error(`weight ${k} is not float32`);
    out[k] = { data: t.data, dims: t.dims };
  }
  return out;
}
