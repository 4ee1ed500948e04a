/**
 * `rac trace --backend openai` against `rac serve` reproduces the local traces exactly: the CLI
 * end to end over real HTTP on loopback, greedy and sampled.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readTraceFile } from '../../src/study/trace.ts';
import { startServer, type RunningServer } from '../../src/serve/server.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, racWith } from '../helpers/cli.ts';
import { writeFourPrompts } from '../helpers/datasets.ts';

/** Run `rac trace` in a child process; async, so the in-process server keeps answering. */
async function trace(args: string[]): Promise<void> {
  const r = await racWith({ timeoutMs: 0 }, 'trace', '-q', '--threads', '1', ...args);
  if (r.code !== 0) throw new Error(`rac trace exited ${r.code}: ${r.stderr}`);
}

describe('rac trace --backend openai against rac serve', { timeout: 120_000 }, () => {
  let dir: string;
  let server: RunningServer;
  let data: string;
  before(async () => {
    dir = checkpoint({ family: 'qwen2', seed: 31 });
    server = await startServer({ model: dir, port: 0, runtime: { threads: 1 }, maxBatch: 8 });
    const d = tempDir('trace-openai');
    data = writeFourPrompts(join(d, 'prompts.jsonl'));
  });
  after(async () => {
    await server?.close();
  });

  for (const [label, sampling] of [
    ['greedy', ['--temperature', '0']],
    ['sampled (temperature 0.8, top-p 0.9)', ['--temperature', '0.8', '--top-p', '0.9']],
  ] as const) {
    it(`${label}: same records as the local engine, except the model fingerprint`, async () => {
      const d = tempDir('trace-openai-run');
      const common = [...argv`--model ${dir} --dataset ${data} --n 2 --max-new-tokens 12 --seed 5 --batch-size 8`, ...sampling];
      await trace([...common, '--out', join(d, 'local.jsonl')]);
      await trace([...common, '--out', join(d, 'remote.jsonl'), '--backend', 'openai', '--base-url', server.url]);
      const key = (r: { prompt_id: string; sample: number }) => `${r.prompt_id}/${r.sample}`;
      const strip = ({ model: _m, ...rest }: Record<string, unknown>) => rest;
      const local = new Map(readTraceFile(join(d, 'local.jsonl')).records.map((r) => [key(r), strip(r as never)]));
      const remote = new Map(readTraceFile(join(d, 'remote.jsonl')).records.map((r) => [key(r), strip(r as never)]));
      assert.equal(local.size, 8);
      assert.deepEqual([...remote.keys()].sort(), [...local.keys()].sort());
      for (const [k, v] of local) assert.deepEqual(remote.get(k), v, k);
    });
  }
});
