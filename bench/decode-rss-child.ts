/**
 * Child process for `decode_q4_rss` (bench/decode-q4.ts): load MODEL in rac's engine (packed
 * weights native), decode 8 streams × 16 tokens greedily, print `{"max_rss_kib": …}` — the peak
 * resident set of the whole process (node, tsx, onnxruntime, the model, the sessions): Linux's
 * VmHWM of this process image. Not getrusage's maxRSS: across fork + exec that keeps the
 * parent's resident set at the fork (measured: a 450 MiB parent made every child "peak" at
 * 450 MiB), so it would report the bench runner's size.
 */
import { readFileSync } from 'node:fs';
import { Engine } from '../src/models/engine.ts';
import { generate } from '../src/models/generate.ts';
import { Model } from '../src/models/model.ts';

const [model, threads] = process.argv.slice(2);
const m = Model.open(model!);
const engine = await Engine.load(m, { threads: Number(threads ?? 2) });
const prompts = Array.from({ length: 8 }, (_, s) => Array.from({ length: 32 }, (_, t) => (t * 31 + s * 17 + 3) % 500));
await generate(
  engine,
  null,
  prompts.map((prompt, i) => ({ prompt, stream: i })),
  { maxNewTokens: 16, seed: 0, eosTokenIds: [], temperature: 0, topP: 1, topK: 0, batchSize: 8 },
);
await engine.release();
m.close();
let hwm: number | null = null;
try {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (m) hwm = Number(m[1]);
} catch {
  // not Linux: getrusage's figure, with the caveat above
}
process.stdout.write(
  `${JSON.stringify({ max_rss_kib: hwm ?? process.resourceUsage().maxRSS, source: hwm !== null ? 'VmHWM' : 'maxRSS' })}\n`,
);
