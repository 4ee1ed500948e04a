/**
 * `rac serve` over loopback: throughput (generated tokens/s) and time to first token (p50/p95)
 * at 1, 8 and 32 concurrent clients, each sending its requests back to back (streaming, 32-token
 * prompts, greedy, eos ignored: every request generates exactly its max_tokens), for the
 * continuous scheduler (the default) and the window batcher (`--scheduler window`, max batch 32,
 * window 5 ms — the defaults before continuous batching but for the batch size), under two
 * workloads: `uniform` (2 requests per client, max_tokens 64 each: continuous batching's worst
 * case) and `mixed` (4 requests per client, max_tokens 16–128). At 32 clients the same requests
 * also go through the offline batch generator, twice: all in one batch, and in batches of the
 * servers' running cap (32, the most the clients can have in flight); `serve_ratio` gives both
 * ratios. Each case runs twice, the schedulers (and the offline generator) in turn, and the faster
 * run is reported.
 *
 * Model: a random checkpoint with Qwen2-0.5B layer dimensions (as the decode bench), 2 layers,
 * vocabulary 32k — decode-bound at every batch size here. The clients run in their own process
 * (bench/serve-clients.ts, reading the event stream off a plain socket), as a load generator
 * would: in the server's process, with node:http, reading and parsing ~4,000 events took ~0.6 s
 * of its event loop at 32 clients, counted against the server. They still share the machine's
 * two cores with it.
 *
 * Entry `serve` of `npm run bench`, or alone: `node --import tsx bench/serve.ts [--clients 1,8,32]
 * [--schedulers continuous,window] [--workloads uniform,mixed]`.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { generate } from '../src/models/generate.ts';
import { writeRandomCheckpoint } from '../src/models/random.ts';
import { closeModel, loadModel, type LoadedModel } from '../src/models/loaded.ts';
import { startServer, type RunningServer } from '../src/serve/server.ts';
import { emit } from './common.ts';
import { QWEN2_0_5B_LAYER } from './decode.ts';
import { promptOf, type ClientResult, type ClientRound } from './serve-clients.ts';

const THREADS = Number(process.env.RAC_BENCH_DECODE_THREADS ?? 2);
const LAYERS = 2;
const PROMPT = 32;
const CLIENTS = [1, 8, 32];
const REPS = 2;
/** The servers' running cap (and the window batcher's max batch). */
const MAX_RUNNING = 32;

type Scheduler = 'continuous' | 'window';

/** What each client sends: its requests' max_tokens, back to back. */
interface Workload {
  name: 'uniform' | 'mixed';
  requestsPerClient: number;
  maxTokens(client: number, r: number): number;
}

const WORKLOADS: Workload[] = [
  // Every request the same length: all sequences of a wave end at the same step, so joining the
  // batch mid-way gains nothing: continuous batching's worst case, the window batcher's best.
  { name: 'uniform', requestsPerClient: 2, maxTokens: () => 64 },
  // Lengths spread over 16–128 (mean 72), as generations are: a finished sequence's place is
  // taken at the next step instead of idling until the batch's longest ends.
  { name: 'mixed', requestsPerClient: 4, maxTokens: (c, r) => 16 + 16 * ((c * 5 + r * 3) % 8) },
];

function lengthsOf(w: Workload, clients: number): number[][] {
  return Array.from({ length: clients }, (_, c) => Array.from({ length: w.requestsPerClient }, (_, r) => w.maxTokens(c, r)));
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};

interface Run {
  tokensPerS: number;
  ttft: number[];
  seconds: number;
  /** Continuous: decode steps and prefill calls; window: generate() calls. */
  calls: Record<string, number>;
}

/** The load generator process (bench/serve-clients.ts): one round at a time over IPC. */
class Clients {
  private constructor(private readonly child: ChildProcess) {}

  static start(): Clients {
    const child = fork(fileURLToPath(new URL('./serve-clients.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Clients(child);
  }

  round(r: ClientRound): Promise<ClientResult> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: ClientResult | { error: string }) => {
        this.child.off('exit', onExit);
        if ('error' in m) reject(new Error(m.error));
        else resolve(m);
      };
      const onExit = (code: number | null) => {
        this.child.off('message', onMessage);
        reject(new Error(`serve bench: the client process exited (${code})`));
      };
      this.child.once('exit', onExit);
      this.child.once('message', onMessage);
      this.child.send(r);
    });
  }

  close(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** `clients` concurrent clients (in the load generator), each sending the workload's requests back to back. */
async function runClients(gen: Clients, server: RunningServer, w: Workload, clients: number): Promise<Run> {
  const before = server.stats;
  const r = await gen.round({ port: server.port, maxTokens: lengthsOf(w, clients), prompt: PROMPT });
  const { ttftMs: ttft, tokens, seconds } = r;
  const after = server.stats;
  const calls: Record<string, number> =
    after.scheduler === 'continuous' && before.scheduler === 'continuous'
      ? {
          steps: after.steps - before.steps,
          prefills: after.prefills - before.prefills,
          decode_s: +(after.decodeSeconds - before.decodeSeconds).toFixed(2),
          prefill_s: +(after.prefillSeconds - before.prefillSeconds).toFixed(2),
        }
      : after.scheduler === 'window' && before.scheduler === 'window'
        ? { batches: after.batches - before.batches }
        : {};
  return { tokensPerS: tokens / seconds, ttft, seconds, calls };
}

/** The `clients`-client requests of a workload through generate() in batches of `batchSize`. */
async function offline(lm: LoadedModel, w: Workload, clients: number, batchSize: number): Promise<{ tokensPerS: number; seconds: number }> {
  const reqs = lengthsOf(w, clients).flatMap((mine, c) =>
    mine.map((maxNewTokens, r) => ({ prompt: promptOf(PROMPT, c, r), stream: 0, sampling: { maxNewTokens } })),
  );
  const want = reqs.reduce((a, r) => a + r.sampling.maxNewTokens, 0);
  const t0 = performance.now();
  const out = await generate(lm.engine, lm.tokenizer, reqs, {
    maxNewTokens: 1,
    seed: 0,
    eosTokenIds: [],
    temperature: 0,
    topP: 1,
    topK: 0,
    batchSize,
  });
  const seconds = (performance.now() - t0) / 1000;
  const tokens = out.reduce((a, c) => a + c.ids.length, 0);
  if (tokens !== want) throw new Error(`serve bench offline: ${tokens} tokens, expected ${want}`);
  return { tokensPerS: tokens / seconds, seconds };
}

export async function benchServe(
  dir: string,
  clientsList = CLIENTS,
  schedulers: Scheduler[] = ['continuous', 'window'],
  workloads: Workload[] = WORKLOADS,
): Promise<void> {
  const ckpt = join(dir, 'model');
  writeRandomCheckpoint(ckpt, {
    family: 'qwen2',
    layers: LAYERS,
    ...QWEN2_0_5B_LAYER,
    tied: true,
    tokenizerVocab: 512,
    vocabPad: 32768 - 512,
    seed: 5,
  });
  const dims = { layers: LAYERS, ...QWEN2_0_5B_LAYER, vocab: 32768, prompt: PROMPT, threads: THREADS };
  const lm = await loadModel(ckpt, { threads: THREADS });
  const loaded = { ...lm, eosTokenIds: [] };
  const top = Math.max(...clientsList);
  const servers = new Map<Scheduler, RunningServer>();
  const gen = Clients.start();
  try {
    for (const scheduler of schedulers)
      servers.set(
        scheduler,
        await startServer({ model: ckpt, loaded, port: 0, scheduler, maxRunning: MAX_RUNNING, maxBatch: MAX_RUNNING }),
      );
    for (const s of servers.values()) await runClients(gen, s, workloads[0]!, 1); // warm-up
    for (const w of workloads) {
      const about = {
        workload: w.name,
        requests_per_client: w.requestsPerClient,
        max_tokens: [...new Set(lengthsOf(w, top).flat())].sort((x, y) => x - y).join(','),
      };
      const best = new Map<string, Run>();
      // The offline generator twice: all requests in one batch (the most it can batch), and in
      // batches of the servers' running cap (what the clients can ever have in flight at once).
      // (One run when every request fits one batch of the cap: fewer clients than the cap allows.)
      const allBatch = top * w.requestsPerClient;
      const sameBatch = Math.min(MAX_RUNNING, allBatch);
      const offBatches = allBatch === sameBatch ? [allBatch] : [allBatch, sameBatch];
      const off = new Map<number, { tokensPerS: number; seconds: number }>();
      // Each case REPS times, the schedulers (and, at the most clients, the offline generator) in
      // turn within a rep, so a busy machine disturbs them alike; the fastest rep is kept.
      for (const clients of clientsList) {
        for (let rep = 0; rep < REPS; rep++) {
          for (const [scheduler, server] of servers) {
            const r = await runClients(gen, server, w, clients);
            const key = `${scheduler}/${clients}`;
            if (!best.has(key) || r.seconds < best.get(key)!.seconds) best.set(key, r);
          }
          if (clients === top) {
            for (const b of offBatches) {
              const o = await offline(lm, w, top, b);
              if (!off.has(b) || o.seconds < off.get(b)!.seconds) off.set(b, o);
            }
          }
        }
        for (const scheduler of servers.keys()) {
          const r = best.get(`${scheduler}/${clients}`)!;
          emit({
            name: 'serve',
            ...about,
            scheduler,
            clients,
            tokens_per_s: +r.tokensPerS.toFixed(2),
            ttft_p50_ms: +pct(r.ttft, 50).toFixed(1),
            ttft_p95_ms: +pct(r.ttft, 95).toFixed(1),
            seconds: +r.seconds.toFixed(2),
            ...r.calls,
            ...dims,
            best_of: REPS,
          });
        }
      }
      for (const b of offBatches) {
        emit({
          name: 'serve',
          ...about,
          scheduler: 'offline generate()',
          requests: top * w.requestsPerClient,
          batch: b,
          tokens_per_s: +off.get(b)!.tokensPerS.toFixed(2),
          seconds: +off.get(b)!.seconds.toFixed(2),
          ...dims,
          best_of: REPS,
        });
      }
      const c = best.get(`continuous/${top}`);
      const win = best.get(`window/${top}`);
      const all = off.get(allBatch)!.tokensPerS;
      const capped = off.get(sameBatch)!.tokensPerS;
      emit({
        name: 'serve_ratio',
        workload: w.name,
        clients: top,
        ...(c
          ? {
              continuous_over_offline: +(c.tokensPerS / all).toFixed(3),
              continuous_over_offline_same_batch: +(c.tokensPerS / capped).toFixed(3),
            }
          : {}),
        ...(win
          ? {
              window_over_offline: +(win.tokensPerS / all).toFixed(3),
              window_over_offline_same_batch: +(win.tokensPerS / capped).toFixed(3),
            }
          : {}),
        offline_batch: allBatch,
        offline_same_batch: sameBatch,
        ...(c && win
          ? {
              continuous_over_window: +(c.tokensPerS / win.tokensPerS).toFixed(3),
              ttft_p50_window_over_continuous: +(pct(win.ttft, 50) / pct(c.ttft, 50)).toFixed(2),
            }
          : {}),
        bars: 'continuous_over_offline ≥ 0.8, ttft_p50_window_over_continuous ≥ 3',
      });
    }
  } finally {
    gen.close();
    for (const s of servers.values()) await s.close();
    await closeModel(lm);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const clients = arg('--clients')?.split(',').map(Number) ?? CLIENTS;
  const schedulers = (arg('--schedulers')?.split(',') ?? ['continuous', 'window']) as Scheduler[];
  const names = arg('--workloads')?.split(',');
  const workloads = names ? WORKLOADS.filter((w) => names.includes(w.name)) : WORKLOADS;
  const dir = mkdtempSync(join(tmpdir(), 'rac-bench-serve-'));
  try {
    await benchServe(dir, clients, schedulers, workloads);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
