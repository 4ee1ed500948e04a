/**
 * The commands on a Qwen3-MoE checkpoint, unchanged: `rac info` describes the experts, `rac
 * logits` equals the engine in-process, `rac prune` prunes every expert from a calibration file,
 * and `rac serve` (continuous batching) answers concurrent requests with the engine's own greedy
 * tokens.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generate } from '../../src/models/generate.ts';
import { closeModel, loadModel, type LoadedModel } from '../../src/models/loaded.ts';
import { argmax } from '../../src/models/sampling.ts';
import { startServer, type RunningServer } from '../../src/serve/server.ts';
import type { PruneSummary } from '../../src/prune/rac-json.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, rac } from '../helpers/cli.ts';
import { randomSequences, writeCalibIds } from '../helpers/prune.ts';

const MOE = { family: 'qwen3_moe' as const, seed: 51, hidden: 64, layers: 2, moe: { experts: 4, topK: 2, expertIntermediate: 64 } };

describe('rac commands on a Qwen3-MoE checkpoint', { timeout: 120_000 }, () => {
  const dir = checkpoint(MOE);
  let lm: LoadedModel;
  let server: RunningServer | null = null;
  before(async () => {
    lm = await loadModel(dir, { threads: 1 });
  });
  after(async () => {
    await server?.close();
    await closeModel(lm);
  });

  it('info --json lists experts, top-k and active parameters', async () => {
    const r = await rac('info', '--model', dir, '--json');
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(info['experts'], 4);
    assert.equal(info['experts_per_token'], 2);
    assert.deepEqual(info['moe_layers'], [0, 1]);
    const perExpert = 3 * 64 * 64;
    assert.equal(info['active_parameters'], (info['parameters'] as number) - 2 * 2 * perExpert);
  });

  it('logits equal the engine’s', async () => {
    const ids = [5, 17, 33, 2, 90, 41];
    const r = await rac('logits', '--model', dir, '--ids', ids.join(','), '--threads', '1');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { argmax: number[] };
    const [logits] = await lm.engine.forward([ids]);
    const V = lm.model.config.vocabSize;
    assert.deepEqual(
      out.argmax,
      ids.map((_, t) => argmax(logits!.subarray(t * V, (t + 1) * V))),
    );
  });

  it('prune --method sparsegpt prunes every expert from a calibration file', async () => {
    const calib = writeCalibIds(join(tempDir('moe-cli-calib'), 'calib.jsonl'), randomSequences(lm.model.config.vocabSize, 12, 20, 40, 3));
    const out = join(tempDir('moe-cli'), 'pruned');
    const r = await rac(
      ...argv`prune --model ${dir} --method sparsegpt --sparsity 0.5 --calib ${calib} --out ${out} --json --threads 1
        --moe-calibration all`,
    );
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as PruneSummary;
    assert.equal(s.totals.sparsity, 0.5);
    assert.equal(s.layers[0]!.experts!.length, 4);
    assert.equal(s.options['moe_calibration'], 'all');
  });

  it('serve answers concurrent completions with the engine’s greedy tokens', async () => {
    server = await startServer({ model: dir, loaded: lm, port: 0, maxBodyBytes: 64 << 10, servedModelName: 'moe' });
    const prompts = [
      [5, 6, 7],
      [100, 200, 30, 40, 50],
      [9, 9, 9, 9],
    ];
    const opts = { temperature: 0, topP: 1, topK: 0, seed: 0, maxNewTokens: 8, eosTokenIds: [] as number[] };
    const want = await Promise.all(prompts.map(async (p) => (await generate(lm.engine, null, [{ prompt: p, stream: 0 }], opts))[0]!.ids));
    const got = await Promise.all(
      prompts.map(async (p) => {
        const res = await fetch(`${server!.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'moe', prompt: p, max_tokens: 8, temperature: 0, ignore_eos: true }),
          signal: AbortSignal.timeout(30_000),
        });
        assert.equal(res.status, 200);
        return ((await res.json()) as { choices: { token_ids: number[] }[] }).choices[0]!.token_ids;
      }),
    );
    assert.deepEqual(got, want);
  });
});
