/**
 * Chat template rendering with bounds on time, memory and output size.
 *
 * @huggingface/jinja interprets a template synchronously, and a template is code: `range(1e8)`,
 * nested loops or a 30 MB output would hang rac or run it out of memory. So templates run in a
 * worker thread (its own V8 heap, capped by resourceLimits) and the caller waits for the answer
 * synchronously (Atomics.wait on a shared flag, then receiveMessageOnPort), up to a time limit;
 * past it the worker is terminated and a fresh one serves the next render. The API stays
 * synchronous, so callers (datasets, generate, serve) are unchanged. `range()` is bounded to
 * 1,000,000 numbers inside the worker: V8 treats one huge array allocation as a fatal OOM of the
 * whole process, which resourceLimits do not catch.
 *
 * Cost: one round trip per render (structured clone of the variables and the text), measured in
 * test/io/template-render.test.ts; the worker starts once per process (on first render).
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { RacError } from '../errors.ts';

export interface TemplateLimits {
  /** Wall-clock limit of one render, in milliseconds. */
  timeMs: number;
  /** Longest output, in characters. */
  maxChars: number;
  /** Heap of the rendering worker, in MB (V8 old generation). */
  memoryMb: number;
}

export const DEFAULT_TEMPLATE_LIMITS: Readonly<TemplateLimits> = { timeMs: 5000, maxChars: 16 * 1024 * 1024, memoryMb: 512 };

/** Why a render failed: the template does not parse, it raised/failed, or it ran past a limit. */
export class TemplateRenderError extends RacError {
  constructor(
    readonly kind: 'parse' | 'render' | 'limit',
    message: string,
  ) {
    super(message);
    this.name = 'TemplateRenderError';
  }
}

// The worker's code, as a string so that it needs no loader (rac runs its sources through tsx,
// which worker threads do not inherit). It imports @huggingface/jinja by the URL the parent
// resolved, keeps parsed templates by source, and answers each job on its port.
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { port, flag, jinja } = workerData;
const i32 = new Int32Array(flag);
let Template;
const parsed = new Map();
// range() builds its whole list at once: one huge allocation that V8 reports as a fatal
// out-of-memory of the whole process instead of the worker's resourceLimits. So range() is
// bounded here (the library's own global, wrapped where the render declares it).
const MAX_RANGE = 1000000;
const boundRange = (Environment) => {
  const declare = Environment.prototype.declareVariable;
  Environment.prototype.declareVariable = function (name, value) {
    if (name === 'range' && value && typeof value.value === 'function') {
      const call = value.value;
      value.value = (args, scope) => {
        const n = args.map((a) => Number(a && a.value));
        let [start, stop, step] = n.length === 1 ? [0, n[0], 1] : [n[0], n[1], n.length > 2 ? n[2] : 1];
        const count = step > 0 ? (stop - start) / step : step < 0 ? (start - stop) / -step : 0;
        if (!(count <= MAX_RANGE)) {
          const e = new Error('range() of ' + Math.ceil(count) + ' numbers is over the limit of ' + MAX_RANGE);
          e.racLimit = true;
          throw e;
        }
        return call(args, scope);
      };
    }
    return declare.call(this, name, value);
  };
};
// i32[0]: renders finished in this job (the parent's per-render clock), i32[1]: job answered.
const done = (msg) => {
  port.postMessage(msg);
  Atomics.store(i32, 1, 1);
  Atomics.add(i32, 0, 1);
  Atomics.notify(i32, 0);
};
port.on('message', async (job) => {
  try {
    if (!Template) {
      const lib = await import(jinja);
      boundRange(lib.Environment);
      Template = lib.Template;
    }
  } catch (e) {
    return done({ kind: 'render', error: 'cannot load @huggingface/jinja: ' + (e && e.message) });
  }
  let t = parsed.get(job.source);
  if (!t) {
    try {
      t = new Template(job.source);
    } catch (e) {
      return done({ kind: 'parse', error: String((e && e.message) || e) });
    }
    if (parsed.size > 16) parsed.clear();
    parsed.set(job.source, t);
  }
  const out = [];
  for (const vars of job.items) {
    let s;
    try {
      s = t.render(vars);
    } catch (e) {
      return done({ kind: e && e.racLimit ? 'limit' : 'render', error: String((e && e.message) || e) });
    }
    if (s.length > job.maxChars) return done({ kind: 'limit', error: 'the output has ' + s.length + ' characters, more than the ' + job.maxChars + '-character limit' });
    out.push(s);
    Atomics.add(i32, 0, 1);
    Atomics.notify(i32, 0);
  }
  done({ texts: out });
});
`;

interface Channel {
  worker: Worker;
  port: MessagePort;
  flag: Int32Array;
  memoryMb: number;
}

let channel: Channel | null = null;

function open(memoryMb: number): Channel {
  if (channel && channel.memoryMb === memoryMb) return channel;
  close();
  const { port1, port2 } = new MessageChannel();
  const shared = new SharedArrayBuffer(8);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { port: port2, flag: shared, jinja: import.meta.resolve('@huggingface/jinja') },
    transferList: [port2],
    resourceLimits: { maxOldGenerationSizeMb: memoryMb, maxYoungGenerationSizeMb: Math.min(64, Math.max(8, memoryMb >> 3)) },
    stdout: false,
    stderr: false,
  });
  // A dead worker (out of memory) is noticed by the time limit; its error event must not throw.
  worker.on('error', () => {});
  worker.unref();
  port1.unref();
  channel = { worker, port: port1, flag: new Int32Array(shared), memoryMb };
  return channel;
}

function close(): void {
  if (!channel) return;
  const c = channel;
  channel = null;
  c.port.close();
  void c.worker.terminate();
}

/**
 * Renders `source` once per entry of `items` (the template's variables), in order. Throws a
 * TemplateRenderError: 'parse' or 'render' with the library's message, 'limit' when a render
 * runs past the time limit, the worker's memory, or the output size.
 */
export function renderTemplate(
  source: string,
  items: readonly Record<string, unknown>[],
  limits: TemplateLimits = DEFAULT_TEMPLATE_LIMITS,
): string[] {
  if (items.length === 0) return [];
  const c = open(limits.memoryMb);
  Atomics.store(c.flag, 0, 0);
  Atomics.store(c.flag, 1, 0);
  c.port.postMessage({ source, items, maxChars: limits.maxChars });
  // Each render (not the whole batch) gets the time limit: wait for the finished count to move.
  let seen = 0;
  let stalled = false;
  while (Atomics.load(c.flag, 1) === 0) {
    const r = Atomics.wait(c.flag, 0, seen, limits.timeMs);
    const now = Atomics.load(c.flag, 0);
    if (r === 'timed-out' && now === seen && Atomics.load(c.flag, 1) === 0) {
      stalled = true;
      break;
    }
    seen = now;
  }
  const got = stalled ? undefined : receiveMessageOnPort(c.port);
  if (got === undefined) {
    close();
    throw new TemplateRenderError(
      'limit',
      `rendering did not finish within ${limits.timeMs} ms or ran out of its ${limits.memoryMb} MB of memory (a loop that does not end, or an output too large)`,
    );
  }
  const msg = got.message as { texts?: string[]; kind?: 'parse' | 'render' | 'limit'; error?: string };
  if (msg.texts) return msg.texts;
  throw new TemplateRenderError(msg.kind ?? 'render', msg.error ?? 'unknown error');
}
