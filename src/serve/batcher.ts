/**
 * The window batcher (`rac serve --scheduler window`, kept to measure continuous batching
 * against; the default is scheduler.ts): batches concurrent requests into one `generate()` call: requests arriving within a short window
 * (and while a batch runs) are decoded together, up to `maxBatch` sequences. Sampling settings are
 * per sequence, so requests with different temperatures, seeds or stop strings share a batch and
 * each gets exactly what it would get alone.
 *
 * A batch takes sequences round-robin over the queued requests, one from each in turn, so a
 * request of many sequences is spread over several batches and a small request queued behind it
 * runs in the next batch instead of waiting for all of it.
 */
import { generate, type Completion, type RequestSampling } from '../models/generate.ts';
import type { LoadedModel } from '../models/loaded.ts';

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
  scheduler: 'window';
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

interface Queued {
  job: Job;
  /** Index of the job's next sequence not yet in a batch. */
  next: number;
}

export class Batcher {
  private queue: Queued[] = [];
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<void> | null = null;
  private closed = false;
  readonly stats: BatchStats = {
    scheduler: 'window',
    batches: 0,
    sequences: 0,
    maxBatchRequests: 0,
    lastBatch: null,
    queued: 0,
    running: false,
  };

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
    if (job.seqs.length === 0) return;
    this.queue.push({ job, next: 0 });
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
    const seqs: Sequence[] = [];
    const jobSet = new Set<Job>();
    while (seqs.length < this.maxBatch && this.queue.length > 0) {
      for (let i = 0; i < this.queue.length && seqs.length < this.maxBatch; ) {
        const q = this.queue[i]!;
        if (q.job.seqs[q.next]!.signal.aborted) {
          // Client gone or shutdown: the rest of the job is not worth a batch slot.
          this.queue.splice(i, 1);
          if (!jobSet.has(q.job)) q.job.fail(new Error('request aborted'));
          continue;
        }
        seqs.push(q.job.seqs[q.next++]!);
        jobSet.add(q.job);
        if (q.next === q.job.seqs.length) this.queue.splice(i, 1);
        else i++;
      }
    }
    this.stats.queued = this.queue.length;
    if (seqs.length === 0) return;
    const jobs = [...jobSet];
    const n = seqs.length;
    this.stats.running = true;
    this.stats.batches++;
    this.stats.sequences += n;
    this.stats.lastBatch = { requests: jobs.length, sequences: n };
    this.stats.maxBatchRequests = Math.max(this.stats.maxBatchRequests, jobs.length);
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
      // The failed jobs' sequences still queued are dropped with them.
      this.queue = this.queue.filter((q) => !jobSet.has(q.job));
      this.stats.queued = this.queue.length;
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
    for (const j of q) j.job.fail(new Error('server is shutting down'));
    await this.current;
  }

  get idle(): Promise<void> {
    return this.current ?? Promise.resolve();
  }
}
