/**
 * Batches concurrent requests into one `generate()` call: requests arriving within a short window
 * (and while a batch runs) are decoded together, up to `maxBatch` sequences. Sampling settings are
 * per sequence, so requests with different temperatures, seeds or stop strings share a batch and
 * each gets exactly what it would get alone.
 */
import { generate, type Completion, type RequestSampling } from '../models/generate.ts';
import type { LoadedModel } from '../pipeline/loaded.ts';

export interface Sequence {
  prompt: number[];
  stream: number;
  sampling: RequestSampling;
  signal: AbortSignal;
  onToken(id: number, text: string): void;
  onDone(c: Completion): void;
}

export interface Job {
  seqs: Sequence[];
  /** The batch failed (engine error) or the server is shutting down before the job ran. */
  fail(e: Error): void;
}

export interface BatchStats {
  /** generate() calls made. */
  batches: number;
  /** Sequences decoded over all batches. */
  sequences: number;
  /** Most requests (jobs) that shared one batch. */
  maxBatchRequests: number;
  lastBatch: { requests: number; sequences: number } | null;
  queued: number;
  running: boolean;
}

export class Batcher {
  private queue: Job[] = [];
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  private closed = false;
  readonly stats: BatchStats = { batches: 0, sequences: 0, maxBatchRequests: 0, lastBatch: null, queued: 0, running: false };

  constructor(
    private readonly lm: LoadedModel,
    private readonly maxBatch: number,
    private readonly windowMs: number,
  ) {}

  submit(job: Job): void {
    if (this.closed) {
      job.fail(new Error('server is shutting down'));
      return;
    }
    this.queue.push(job);
    this.stats.queued = this.queue.length;
    this.schedule(this.windowMs);
  }

  private schedule(delay: number): void {
    if (this.timer || this.current || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.current = this.runBatch().finally(() => {
        this.current = null;
        this.stats.running = false;
        // Whatever queued while the batch ran has waited long enough.
        if (!this.closed) this.schedule(0);
      });
    }, delay);
  }

  private async runBatch(): Promise<void> {
    const jobs: Job[] = [];
    let n = 0;
    while (this.queue.length > 0) {
      const k = this.queue[0]!.seqs.length;
      if (jobs.length > 0 && n + k > this.maxBatch) break;
      jobs.push(this.queue.shift()!);
      n += k;
    }
    this.stats.queued = this.queue.length;
    this.stats.running = true;
    this.stats.batches++;
    this.stats.sequences += n;
    this.stats.lastBatch = { requests: jobs.length, sequences: n };
    this.stats.maxBatchRequests = Math.max(this.stats.maxBatchRequests, jobs.length);
    const seqs = jobs.flatMap((j) => j.seqs);
    const first = seqs[0]!.sampling;
    try {
      await generate(
        this.lm.engine,
        this.lm.tokenizer,
        seqs.map((s) => ({ prompt: s.prompt, stream: s.stream, sampling: s.sampling, signal: s.signal })),
        {
          ...first,
          eosTokenIds: this.lm.eosTokenIds,
          batchSize: this.maxBatch,
          onToken: (k, id, text) => seqs[k]!.onToken(id, text),
          onComplete: (k, c) => seqs[k]!.onDone(c),
        },
      );
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      for (const j of jobs) j.fail(err);
    }
  }

  /** Stops taking jobs; queued jobs fail. Resolves when the running batch (if any) ends. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const q = this.queue;
    this.queue = [];
    this.stats.queued = 0;
    for (const j of q) j.fail(new Error('server is shutting down'));
    await this.current;
  }

  get idle(): Promise<void> {
    return this.current ?? Promise.resolve();
  }
}
