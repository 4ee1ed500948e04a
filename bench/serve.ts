/**
 * `rac serve` over loopback: throughput (generated tokens/s) and time to first token (p50/p95)
 * at 1, 8 and 32 concurrent clients, each sending REQUESTS_PER_CLIENT streaming completions back
 * to back (32-token prompts, max_tokens 64, greedy, eos ignored: every request generates 64
 * tokens), for the continuous scheduler (the default) and the window batcher (`--scheduler
 * window`, max batch 32, window 5 ms — the defaults before continuous batching but for the batch
 * size); and the same requests as the 32-client run through the offline batch generator
 * (generate() with all of them in one batch) in the same run. Each case runs twice, the schedulers
 * (and the offline generator) in turn, and the faster run is reported.
 *
 * Model: a random checkpoint with Qwen2-0.5B layer dimensions (as the decode bench), 2 layers,
 * vocabulary 32k — decode-bound at every batch size here. Server and clients share one process
 * (the clients are node:http requests on loopback; their work is small next to a decode step).
 *
 * Entry `serve` of `npm run bench`, or alone: `node --import tsx bench/serve.ts [--clients 1,8,32]
 * [--schedulers continuous,window]`.
 */
import { request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generate } from '../src/models/generate.ts';
import { writeRandomCheckpoint } from '../src/models/random.ts';
import { closeModel, loadModel, type LoadedModel } from '../src/models/loaded.ts';
import { startServer, type RunningServer } from '../src/serve/server.ts';
import { emit } from './common.ts';
import { QWEN2_0_5B_LAYER } from './decode.ts';

const THREADS = Number(process.env.RAC_BENCH_DECODE_THREADS ?? 2);
const LAYERS = 2;
const PROMPT = 32;
const MAX_TOKENS = 64;
const REQUESTS_PER_CLIENT = 2;
const CLIENTS = [1, 8, 32];
const REPS = 2;

type Scheduler = 'continuous' | 'window';

interface RequestResult {
  ttftMs: number;
  tokens: number;
}

function promptOf(client: number, r: number): number[] {
  return Array.from({ length: PROMPT }, (_, t) => (t * 31 + client * 17 + r * 101 + 3) % 500);
}

/** One streaming completion: time to the first token chunk and the tokens received. */
function streamOnce(port: number, prompt: number[]): Promise<RequestResult> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let ttft = -1;
    let tokens = 0;
    let buf = '';
    const body = JSON.stringify({ prompt, max_tokens: MAX_TOKENS, temperature: 0, stream: true });
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/completions',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`serve bench: HTTP ${res.statusCode}`));
          res.resume();
          return;
        }
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const ev = buf.slice(6, i); // after 'data: '
            buf = buf.slice(i + 2);
            if (ev === '[DONE]') continue;
            const j = JSON.parse(ev) as { choices: { token_ids?: number[] }[]; error?: { message: string } };
            if (j.error) return reject(new Error(`serve bench: ${j.error.message}`));
            for (const c of j.choices) {
              const n = c.token_ids?.length ?? 0;
              if (n > 0 && ttft < 0) ttft = performance.now() - t0;
              tokens += n;
            }
          }
        });
        res.on('end', () => {
          if (tokens !== MAX_TOKENS) reject(new Error(`serve bench: ${tokens} tokens, expected ${MAX_TOKENS}`));
          else resolve({ ttftMs: ttft, tokens });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
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

/** `clients` concurrent clients, each REQUESTS_PER_CLIENT requests back to back. */
async function runClients(server: RunningServer, clients: number): Promise<Run> {
  const before = server.stats;
  const t0 = performance.now();
  const ttft: number[] = [];
  let tokens = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let r = 0; r < REQUESTS_PER_CLIENT; r++) {
        const res = await streamOnce(server.port, promptOf(c, r));
        ttft.push(res.ttftMs);
        tokens += res.tokens;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const after = server.stats;
  const calls: Record<string, number> =
    after.scheduler === 'continuous' && before.scheduler === 'continuous'
      ? {
          steps: after.steps - before.steps,
          prefills: after.prefills - before.prefills,
          decode_s: +(after.decodeSeconds - before.decodeSeconds).toFixed(2),
          prefill_s: +(after.prefillSeconds - before.prefillSeconds).toFixed(2),
          peak_running: after.peakRunning,
        }
      : after.scheduler === 'window' && before.scheduler === 'window'
        ? { batches: after.batches - before.batches }
        : {};
  return { tokensPerS: tokens / seconds, ttft, seconds, calls };
}

/** The 32-client requests through generate() in one batch. */
async function offline(lm: LoadedModel, clients: number): Promise<{ tokensPerS: number; seconds: number }> {
  const reqs = [];
  for (let c = 0; c < clients; c++) for (let r = 0; r < REQUESTS_PER_CLIENT; r++) reqs.push({ prompt: promptOf(c, r), stream: 0 });
  const t0 = performance.now();
  const out = await generate(lm.engine, lm.tokenizer, reqs, {
    maxNewTokens: MAX_TOKENS,
    seed: 0,
    eosTokenIds: [],
    temperature: 0,
    topP: 1,
    topK: 0,
    batchSize: reqs.length,
  });
  const seconds = (performance.now() - t0) / 1000;
  const tokens = out.reduce((a, c) => a + c.ids.length, 0);
  if (tokens !== reqs.length * MAX_TOKENS) throw new Error(`serve bench offline: ${tokens} tokens`);
  return { tokensPerS: tokens / seconds, seconds };
}

export async function benchServe(dir: string, clientsList = CLIENTS, schedulers: Scheduler[] = ['continuous', 'window']): Promise<void> {
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
  const dims = {
    layers: LAYERS,
    ...QWEN2_0_5B_LAYER,
    vocab: 32768,
    prompt: PROMPT,
    max_tokens: MAX_TOKENS,
    requests_per_client: REQUESTS_PER_CLIENT,
    threads: THREADS,
  };
  const lm = await loadModel(ckpt, { threads: THREADS });
  const loaded = { ...lm, eosTokenIds: [] };
  const top = Math.max(...clientsList);
  const servers = new Map<Scheduler, RunningServer>();
  try {
    for (const scheduler of schedulers)
      servers.set(scheduler, await startServer({ model: ckpt, loaded, port: 0, scheduler, maxRunning: 32, maxBatch: 32 }));
    for (const s of servers.values()) await runClients(s, 1); // warm-up
    const best = new Map<string, Run>();
    let off: { tokensPerS: number; seconds: number } | null = null;
    // Each case REPS times, the schedulers (and, at the most clients, the offline generator) in
    // turn within a rep, so a busy machine disturbs them alike; the fastest rep is kept.
    for (const clients of clientsList) {
      for (let rep = 0; rep < REPS; rep++) {
        for (const [scheduler, server] of servers) {
          const r = await runClients(server, clients);
          const key = `${scheduler}/${clients}`;
          if (!best.has(key) || r.seconds < best.get(key)!.seconds) best.set(key, r);
        }
        if (clients === top) {
          const o = await offline(lm, top);
          if (!off || o.seconds < off.seconds) off = o;
        }
      }
      for (const scheduler of servers.keys()) {
        const r = best.get(`${scheduler}/${clients}`)!;
        emit({
          name: 'serve',
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
    emit({
      name: 'serve',
      scheduler: 'offline generate()',
      requests: top * REQUESTS_PER_CLIENT,
      batch: top * REQUESTS_PER_CLIENT,
      tokens_per_s: +off!.tokensPerS.toFixed(2),
      seconds: +off!.seconds.toFixed(2),
      ...dims,
      best_of: REPS,
    });
    const c = best.get(`continuous/${top}`);
    const w = best.get(`window/${top}`);
    emit({
      name: 'serve_ratio',
      clients: top,
      ...(c ? { continuous_over_offline: +(c.tokensPerS / off!.tokensPerS).toFixed(3) } : {}),
      ...(w ? { window_over_offline: +(w.tokensPerS / off!.tokensPerS).toFixed(3) } : {}),
      ...(c && w ? { ttft_p50_window_over_continuous: +(pct(w.ttft, 50) / pct(c.ttft, 50)).toFixed(2) } : {}),
      bars: 'continuous_over_offline ≥ 0.8, ttft_p50_window_over_continuous ≥ 3',
    });
  } finally {
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
  const dir = mkdtempSync(join(tmpdir(), 'rac-bench-serve-'));
  try {
    await benchServe(dir, clients, schedulers);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
