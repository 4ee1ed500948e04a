/**
 * The serve benchmark's load generator, run as its own process (bench/serve.ts forks it), as a
 * real client would be: its HTTP parsing does not share the server's event loop. Over the IPC
 * channel it takes `{ port, maxTokens, prompt }` and answers `{ ttftMs, tokens, seconds }` (or
 * `{ error }`) for one round: `maxTokens.length` concurrent clients, client c sending
 * `maxTokens[c].length` streaming completions back to back, the k-th with `max_tokens`
 * maxTokens[c][k] (greedy; the server ignores eos, so each generates exactly that many).
 */
import { connect } from 'node:net';
import { pathToFileURL } from 'node:url';

export interface ClientRound {
  port: number;
  /** Per client, its requests' max_tokens in the order sent. */
  maxTokens: number[][];
  /** Prompt tokens per request. */
  prompt: number;
}

export interface ClientResult {
  /** Per request, ms from sending it to its first token chunk. */
  ttftMs: number[];
  tokens: number;
  seconds: number;
}

/** The prompt of client c's r-th request (the offline comparison uses the same). */
export function promptOf(len: number, client: number, r: number): number[] {
  return Array.from({ length: len }, (_, t) => (t * 31 + client * 17 + r * 101 + 3) % 500);
}

/**
 * One streaming completion over a plain socket (HTTP/1.1; the socket is dropped at
 * `data: [DONE]`): time to the first token chunk and the tokens received. A minimal reader, as
 * load generators are (wrk, vLLM's benchmark client on aiohttp): node:http's client, run in the
 * server's process, took ~0.6 s of its event loop for ~4,000 events at 32 clients, and on 2
 * cores whatever CPU the clients use is taken from the server. The body's chunked framing is not
 * decoded: each event (`data: …\n\n`) is one chunk, so the events are read whole from between
 * the framing lines.
 */
function streamOnce(port: number, prompt: number[], maxTokens: number): Promise<{ ttftMs: number; tokens: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    let ttft = -1;
    let tokens = 0;
    let done = false;
    let headers = true;
    let buf = '';
    const fail = (e: Error) => {
      sock.destroy();
      reject(e);
    };
    const body = JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true });
    const sock = connect(port, '127.0.0.1', () => {
      sock.write(
        `POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
    });
    sock.setNoDelay(true);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      buf += d;
      if (headers) {
        const h = buf.indexOf('\r\n\r\n');
        if (h < 0) return;
        const status = buf.slice(0, buf.indexOf('\r\n'));
        if (!/^HTTP\/1\.1 200 /.test(status)) return fail(new Error(`serve bench: ${status}`));
        buf = buf.slice(h + 4);
        headers = false;
      }
      let a: number;
      while ((a = buf.indexOf('data: ')) >= 0) {
        const b = buf.indexOf('\n\n', a);
        if (b < 0) break;
        const ev = buf.slice(a + 6, b);
        buf = buf.slice(b + 2);
        if (ev === '[DONE]') {
          // The stream's end: the socket is not needed for anything after it.
          done = true;
          sock.destroy();
          if (tokens !== maxTokens) reject(new Error(`serve bench: ${tokens} tokens, expected ${maxTokens}`));
          else resolve({ ttftMs: ttft, tokens });
          return;
        }
        const j = JSON.parse(ev) as { choices: { token_ids?: number[] }[]; error?: { message: string } };
        if (j.error) return fail(new Error(`serve bench: ${j.error.message}`));
        for (const c of j.choices) {
          const n = c.token_ids?.length ?? 0;
          if (n > 0 && ttft < 0) ttft = performance.now() - t0;
          tokens += n;
        }
      }
    });
    sock.on('error', reject);
    sock.on('close', () => {
      if (!done) reject(new Error('serve bench: the stream ended before [DONE]'));
    });
  });
}

export async function runRound(r: ClientRound): Promise<ClientResult> {
  const t0 = performance.now();
  const ttftMs: number[] = [];
  let tokens = 0;
  await Promise.all(
    r.maxTokens.map(async (mine, c) => {
      for (let k = 0; k < mine.length; k++) {
        const res = await streamOnce(r.port, promptOf(r.prompt, c, k), mine[k]!);
        ttftMs.push(res.ttftMs);
        tokens += res.tokens;
      }
    }),
  );
  return { ttftMs, tokens, seconds: (performance.now() - t0) / 1000 };
}

// Only as the forked entry point (serve.ts also imports promptOf from here).
if (process.send && process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.on('message', (m: ClientRound) => {
    runRound(m).then(
      (res) => process.send!(res),
      (e: unknown) => process.send!({ error: e instanceof Error ? e.message : String(e) }),
    );
  });
  // The parent went away: nothing left to serve.
  process.on('disconnect', () => process.exit(0));
}
