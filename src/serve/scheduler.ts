/**
 * Iteration-level scheduling (continuous batching, as vLLM and SGLang do): at every decode step
 * finished sequences leave the running batch and free their KV rows, and waiting sequences are
 * admitted — prefilled together, their first token sampled, then joined to the decode batch — as
 * long as there is room: at most `maxRunning` sequences, and at most `maxKvTokens` tokens in the
 * KV cache as laid out (rows × the longest row; see SlotCache). A request arriving while others
 * decode starts at the next step instead of waiting for them.
 *
 * When a step would need more KV room than the cap allows (every row grows by one token a step),
 * the most recently admitted sequence is preempted: its row is dropped and it waits at the head of
 * the queue, to be prefilled again over its prompt and the tokens it already has (recomputation,
 * as vLLM does), keeping its sampler state — so it still gets what it would get alone.
 *
 * Waiting sequences are admitted round-robin over their requests (one from each in turn), so a
 * request of many sequences cannot hold back a small one queued behind it. Every sequence keeps
 * its own sampling settings and PRNG stream.
 */
import { advanceSequence, checkLogits, completionOf, startSequence, type SequenceState } from '../models/generate.ts';
import { sampleToken } from '../models/sampling.ts';
import type { SlotCache } from '../models/engine.ts';
import type { LoadedModel } from '../models/loaded.ts';
import type { Job, Sequence } from './batcher.ts';

/** Most prompt tokens (padded) prefilled in one step, so admissions cannot stall the decode batch for long. */
const PREFILL_TOKENS_PER_STEP = 2048;
/** Column allocation granularity of the KV cache. */
const COLUMNS = 64;
/** Default KV memory when --max-kv-tokens is not given (at least one full context). */
const DEFAULT_KV_BYTES = 2 ** 31;

export interface SchedulerStats {
  scheduler: 'continuous';
  /** Decode steps run. */
  steps: number;
  /** Prefill calls (each admits one or more sequences). */
  prefills: number;
  /** Seconds spent in decode steps and in prefills (engine calls and sampling). */
  decodeSeconds: number;
  prefillSeconds: number;
  /** Sequences admitted (a preempted sequence counts again when readmitted). */
  admitted: number;
  /** Sequences preempted for KV room. */
  preempted: number;
  /** Sequences in the decode batch now. */
  running: number;
  /** Sequences waiting for room. */
  waiting: number;
  /** Most sequences decoded together. */
  peakRunning: number;
  /** Most requests with sequences in the decode batch at once. */
  peakRequests: number;
  /** KV cache tokens allocated now (rows × columns) and at most so far. */
  kvTokens: number;
  peakKvTokens: number;
  maxRunning: number;
  maxKvTokens: number;
}

/** Bytes of KV cache per token of one sequence (f32 keys and values over all layers). */
export function kvBytesPerToken(lm: LoadedModel): number {
  const c = lm.engine.config;
  return 2 * c.numLayers * c.numKvHeads * c.headDim * 4;
}

/**
 * The default KV cap: 2 GiB of cache, but at least one full context and at most `maxRunning`
 * full contexts.
 */
export function defaultMaxKvTokens(lm: LoadedModel, maxRunning: number): number {
  const ctx = lm.engine.config.maxPositionEmbeddings;
  return Math.max(ctx, Math.min(maxRunning * ctx, Math.floor(DEFAULT_KV_BYTES / kvBytesPerToken(lm))));
}

interface JobQueue {
  job: Job;
  /** Index of the job's next sequence not yet admitted. */
  next: number;
}

/** A sequence admitted at least once: its state, and the token sampled last (not yet fed). */
interface Active {
  q: JobQueue;
  seq: Sequence;
  state: SequenceState;
  pending: number;
  /** Admission order (the newest is preempted first). */
  order: number;
}

export class Scheduler {
  private queue: JobQueue[] = [];
  /** Preempted sequences, readmitted before any new one. */
  private resume: Active[] = [];
  /** Row b of the cache is running[b]. */
  private running: Active[] = [];
  /** Taken from the queue for the prefill under way. */
  private joining: Active[] = [];
  private cache: SlotCache;
  private loop: Promise<void> | null = null;
  private closed = false;
  private admissions = 0;
  private readonly eos: Set<number>;
  readonly stats: SchedulerStats;

  constructor(
    private readonly lm: LoadedModel,
    private readonly maxRunning: number,
    private readonly maxKvTokens: number,
  ) {
    if (!Number.isInteger(maxRunning) || maxRunning < 1) throw new Error(`max running must be a positive integer, got ${maxRunning}`);
    if (!Number.isInteger(maxKvTokens) || maxKvTokens < 2) throw new Error(`max KV tokens must be an integer ≥ 2, got ${maxKvTokens}`);
    this.cache = lm.engine.slotCache();
    this.eos = new Set(lm.eosTokenIds);
    this.stats = {
      scheduler: 'continuous',
      steps: 0,
      prefills: 0,
      decodeSeconds: 0,
      prefillSeconds: 0,
      admitted: 0,
      preempted: 0,
      running: 0,
      waiting: 0,
      peakRunning: 0,
      peakRequests: 0,
      kvTokens: 0,
      peakKvTokens: 0,
      maxRunning,
      maxKvTokens,
    };
  }

  /** Whether a sequence of this prompt and completion length can ever run (alone) under the KV cap. */
  fits(promptTokens: number, maxNewTokens: number): boolean {
    return promptTokens + maxNewTokens <= this.maxKvTokens;
  }

  submit(job: Job): void {
    if (this.closed) {
      job.fail(new Error('server is shutting down'));
      return;
    }
    if (job.seqs.length === 0) return;
    this.queue.push({ job, next: 0 });
    this.updateCounts();
    this.loop ??= this.run().finally(() => {
      this.loop = null;
    });
  }

  private async run(): Promise<void> {
    while (this.running.length + this.resume.length + this.queue.length > 0) {
      try {
        await this.iteration();
      } catch (e) {
        this.failActive(e instanceof Error ? e : new Error(String(e)));
      }
      this.updateCounts();
      // Let the event loop take new requests and flush responses before the next step.
      await new Promise<void>((r) => setImmediate(r));
    }
    this.cache.resize(0, 0);
    this.updateCounts();
  }

  private async iteration(): Promise<void> {
    this.dropAborted();
    await this.admit();
    if (this.running.length === 0) return;
    this.updateCounts();
    // Every row grows by one token: make room, preempting the newest sequences if the cap says so.
    while (!this.fit(this.running.length, Math.max(...this.cache.lens) + 1)) {
      this.preempt();
      if (this.running.length === 0) return; // cannot happen: one sequence alone always fits (see fits())
    }
    const t0 = performance.now();
    const logits = await this.lm.engine.decodeSlots(
      this.cache,
      this.running.map((a) => a.pending),
    );
    this.stats.steps++;
    const V = this.lm.engine.config.vocabSize;
    // Backwards: a leaving row is replaced by the last one, which has been handled already.
    for (let b = this.running.length - 1; b >= 0; b--) {
      const a = this.running[b]!;
      if (a.seq.signal.aborted) {
        this.leave(b, completionOf(a.state, 'length', undefined, true));
        continue;
      }
      this.sample(a, logits, b * V, () => this.leave(b, null));
    }
    this.stats.decodeSeconds += (performance.now() - t0) / 1000;
  }

  /** Samples a's next token from logits at `offset`; `end` when the sequence finished. */
  private sample(a: Active, logits: Float32Array, offset: number, leave: () => void): boolean {
    const V = this.lm.engine.config.vocabSize;
    const st = a.state;
    checkLogits(logits, offset, V, st.index, st.ids.length);
    const tok = sampleToken(logits, offset, V, st.params, st.rng);
    const { delta, end } = advanceSequence(st, tok, this.eos);
    a.seq.onToken(tok, delta);
    if (end) {
      leave();
      a.seq.onDone(completionOf(st, end.reason, end.stop));
      return false;
    }
    a.pending = tok;
    return true;
  }

  /** Row b leaves the batch (its KV row freed); `c` is sent when given. */
  private leave(b: number, c: ReturnType<typeof completionOf> | null): void {
    const a = this.running[b]!;
    const moved = this.cache.remove(b);
    if (moved >= 0) this.running[b] = this.running[moved]!;
    this.running.pop();
    if (c) a.seq.onDone(c);
  }

  /** The newest running sequence gives up its row and waits to be recomputed. */
  private preempt(): void {
    let b = 0;
    for (let i = 1; i < this.running.length; i++) if (this.running[i]!.order > this.running[b]!.order) b = i;
    const a = this.running[b]!;
    this.leave(b, null);
    this.resume.unshift(a);
    this.stats.preempted++;
  }

  /** Aborted sequences leave (running) or are dropped (waiting: their request fails). */
  private dropAborted(): void {
    for (let b = this.running.length - 1; b >= 0; b--) {
      const a = this.running[b]!;
      if (a.seq.signal.aborted) this.leave(b, completionOf(a.state, 'length', undefined, true));
    }
    this.resume = this.resume.filter((a) => {
      if (!a.seq.signal.aborted) return true;
      a.seq.onDone(completionOf(a.state, 'length', undefined, true));
      return false;
    });
    this.queue = this.queue.filter((q) => {
      if (!q.job.seqs[q.next]!.signal.aborted) return true;
      q.job.fail(new Error('request aborted'));
      return false;
    });
  }

  /**
   * Makes the cache hold `rows` rows of `cols` columns if rows × cols is within the KV cap
   * (false if not). Columns grow ×1.5 (in multiples of COLUMNS) and shrink when half unused; rows
   * double up to maxRunning; the allocation itself stays within the cap.
   */
  private fit(rows: number, cols: number): boolean {
    const cap = this.maxKvTokens;
    if (rows * cols > cap) return false;
    if (rows === 0) {
      this.cache.resize(0, 0);
      return true;
    }
    const ctx = this.lm.engine.config.maxPositionEmbeddings;
    const roundUp = (n: number) => Math.ceil(n / COLUMNS) * COLUMNS;
    let C = this.cache.C;
    if (cols > C) C = Math.min(roundUp(Math.max(cols, C * 1.5)), roundUp(ctx));
    else if (cols * 2 <= C) C = roundUp(cols);
    C = Math.max(cols, Math.min(C, Math.floor(cap / rows)));
    let R = this.cache.R;
    if (rows > R) R = Math.min(this.maxRunning, Math.max(rows, 2 * R));
    R = Math.max(rows, Math.min(R, Math.floor(cap / C)));
    this.cache.resize(R, C);
    const kv = this.cache.allocated;
    this.stats.kvTokens = kv;
    this.stats.peakKvTokens = Math.max(this.stats.peakKvTokens, kv);
    return true;
  }

  /** The next waiting sequence, round-robin over requests (preempted ones first); not removed. */
  private peek(): { a: Active | null; q: JobQueue | null } | null {
    if (this.resume.length > 0) return { a: this.resume[0]!, q: null };
    if (this.queue.length > 0) return { a: null, q: this.queue[0]! };
    return null;
  }

  private take(w: { a: Active | null; q: JobQueue | null }): Active {
    if (w.a) return this.resume.shift()!;
    const q = this.queue.shift()!;
    const seq = q.job.seqs[q.next++]!;
    if (q.next < q.job.seqs.length) this.queue.push(q); // round-robin: its next sequence goes last
    const s = seq.sampling;
    const state = startSequence(
      0,
      { prompt: seq.prompt, stream: seq.stream },
      { params: s, maxNewTokens: s.maxNewTokens, seed: s.seed, stops: (s.stopStrings ?? []).filter((x) => x.length > 0) },
      this.lm.tokenizer,
      this.lm.engine.config.maxPositionEmbeddings,
    );
    state.signal = seq.signal;
    return { q, seq, state, pending: -1, order: 0 };
  }

  /** Tokens a waiting sequence is prefilled over: its prompt and what it has generated. */
  private static tokensOf(a: Active): number[] {
    return a.state.ids.length > 0 ? [...a.seq.prompt, ...a.state.ids] : a.seq.prompt;
  }

  /** Admits waiting sequences while there is room: one prefill, then each joins the batch. */
  private async admit(): Promise<void> {
    const joining: Active[] = (this.joining = []);
    const lens = [...this.cache.lens];
    let longest = lens.length > 0 ? Math.max(...lens) : 0;
    let longestJoining = 0;
    for (;;) {
      if (this.running.length + joining.length >= this.maxRunning) break;
      const w = this.peek();
      if (!w) break;
      const len = w.a ? Scheduler.tokensOf(w.a).length : w.q!.job.seqs[w.q!.next]!.prompt.length;
      const top = Math.max(longest, len);
      const rows = this.running.length + joining.length + 1;
      // Room for the rows to take their next token, and a prefill of bounded size.
      if (rows * (top + 1) > this.maxKvTokens) break;
      if (joining.length > 0 && (joining.length + 1) * Math.max(longestJoining, len) > PREFILL_TOKENS_PER_STEP) break;
      joining.push(this.take(w));
      longest = top;
      longestJoining = Math.max(longestJoining, len);
    }
    if (joining.length === 0) return;
    this.stats.prefills++;
    const t0 = performance.now();
    const seqs = joining.map(Scheduler.tokensOf);
    const { lastLogits, cache: pre } = await this.lm.engine.prefill(seqs, 1);
    const V = this.lm.engine.config.vocabSize;
    this.fit(this.running.length + joining.length, longest + 1);
    for (let k = 0; k < joining.length; k++) {
      const a = joining[k]!;
      if (a.seq.signal.aborted) {
        a.seq.onDone(completionOf(a.state, 'length', undefined, true));
        continue;
      }
      a.order ||= ++this.admissions; // arrival order: a readmitted sequence keeps its place
      this.stats.admitted++;
      // A preempted sequence's pending token was fed by the prefill: its logits give the next one.
      if (!this.sample(a, lastLogits, k * V, () => {})) continue;
      this.cache.append(pre, k, seqs[k]!.length);
      this.running.push(a);
    }
    this.joining = [];
    this.stats.prefillSeconds += (performance.now() - t0) / 1000;
  }

  /** An engine error: every running or preempted sequence's request fails; waiting ones go on. */
  private failActive(err: Error): void {
    const jobs = new Set<JobQueue>([...this.running, ...this.resume, ...this.joining].map((a) => a.q));
    this.running = [];
    this.resume = [];
    this.joining = [];
    this.cache.lens = [];
    this.cache.resize(0, 0);
    // A failed request's sequences still queued are dropped with it.
    this.queue = this.queue.filter((q) => !jobs.has(q));
    for (const q of jobs) q.job.fail(err);
  }

  private updateCounts(): void {
    const s = this.stats;
    s.running = this.running.length;
    let waiting = this.resume.length;
    for (const q of this.queue) waiting += q.job.seqs.length - q.next;
    s.waiting = waiting;
    s.peakRunning = Math.max(s.peakRunning, s.running);
    s.peakRequests = Math.max(s.peakRequests, new Set(this.running.map((a) => a.q)).size);
    s.kvTokens = this.cache.allocated;
  }

  /** Stops taking jobs; waiting requests fail. Resolves when the running sequences have ended. */
  async close(): Promise<void> {
    this.closed = true;
    const q = this.queue;
    this.queue = [];
    for (const j of q) j.job.fail(new Error('server is shutting down'));
    this.updateCounts();
    await this.loop;
  }

  get idle(): Promise<void> {
    return this.loop ?? Promise.resolve();
  }
}
