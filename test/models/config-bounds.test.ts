/**
 * config.json values checked before use (issue #12, items 5 and 6): sizes against the weights
 * present, invalid numbers and unsupported activations refused naming the file and the key,
 * unused tensors warned about, non-finite logits reported as such by generation.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Engine } from '../../src/models/engine.ts';
import { generate } from '../../src/models/generate.ts';
import { Model } from '../../src/models/model.ts';
import { loadModel } from '../../src/models/loaded.ts';
import { checkpoint } from '../helpers/checkpoints.ts';
import { copyCheckpoint, editJson, pokeF32 } from '../helpers/corrupt.ts';

const CK = { family: 'qwen2', seed: 11, hidden: 32, layers: 2 } as const;

function withConfig(name: string, edit: (j: Record<string, unknown>) => void, ck: object = CK): string {
  const dir = copyCheckpoint(checkpoint(ck as typeof CK), name);
  editJson(join(dir, 'config.json'), edit);
  return dir;
}

function refused(dir: string, key: string, re: RegExp): void {
  const file = join(dir, 'config.json');
  assert.throws(
    () => Model.open(dir, { warn: () => {} }).close(),
    (e: Error) => {
      assert.ok(e.message.startsWith(`${file}: `), e.message);
      assert.ok(e.message.includes(`"${key}"`), `${e.message} does not name "${key}"`);
      assert.match(e.message, re);
      assert.ok(!e.message.includes('\n'));
      return true;
    },
  );
}

describe('config.json bounds', () => {
  it('num_hidden_layers 1e9 is refused against the weights, at once (before: out of memory after 30–45 s)', () => {
    const dir = withConfig('layers-1e9', (j) => (j['num_hidden_layers'] = 1e9));
    const t0 = performance.now();
    refused(
      dir,
      'num_hidden_layers',
      /is 1000000000 but the weights hold 2 layers \(no tensor "model\.layers\.2\.self_attn\.q_proj\.weight"/,
    );
    assert.ok(performance.now() - t0 < 2000, `took ${performance.now() - t0} ms`);
    refused(
      withConfig('layers-3', (j) => (j['num_hidden_layers'] = 3)),
      'num_hidden_layers',
      /is 3 but the weights hold 2 layers/,
    );
  });

  it('invalid values are refused, naming the key (before: accepted; rope_theta 0 gave NaN logits)', () => {
    const cases: [string, unknown, RegExp][] = [
      ['rope_theta', 0, /must be a positive number, got 0/],
      ['rope_theta', -10000, /must be a positive number/],
      ['rms_norm_eps', -1, /must be a positive number, got -1/],
      ['rms_norm_eps', 0, /must be a positive number/],
      ['max_position_embeddings', 0, /must be a positive integer, got 0/],
      ['max_position_embeddings', -5, /must be a non-negative integer/],
      ['num_hidden_layers', 0, /must be a positive integer/],
      ['max_position_embeddings', 1e12, /"max_position_embeddings" 1000000000000 is implausibly large \(limit 2147483647\)/],
      ['vocab_size', 0, /must be a positive integer/],
      ['intermediate_size', 0, /must be a positive integer/],
      ['eos_token_id', 1_000_000, /"eos_token_id" 1000000 is outside the vocabulary \[0, \d+\)/],
      ['eos_token_id', [1, 99_999], /"eos_token_id" 99999 is outside the vocabulary/],
      ['bos_token_id', 70_000, /"bos_token_id" 70000 is outside the vocabulary/],
      ['hidden_act', 'gelu', /"hidden_act" "gelu" is not supported \(rac computes silu \/ swish\)/],
      ['hidden_act', 'relu', /not supported/],
    ];
    for (const [key, value, re] of cases)
      refused(
        withConfig(`bad-${key}`, (j) => (j[key] = value)),
        key,
        re,
      );
    const rs = withConfig('bad-rope-scaling', (j) => (j['rope_scaling'] = { rope_type: 'linear', factor: 0 }));
    refused(rs, 'factor', /must be a positive number/);
  });

  it('the supported activations and a missing hidden_act (SiLU) load', () => {
    for (const act of ['silu', 'swish', undefined]) {
      const dir = withConfig(`act-${act}`, (j) => (act === undefined ? delete j['hidden_act'] : (j['hidden_act'] = act)));
      Model.open(dir, { warn: () => assert.fail('no warning expected') }).close();
    }
  });

  it('num_hidden_layers smaller than the layers stored: a warning naming the unused tensors (before: silently ignored)', () => {
    const dir = withConfig('layers-1', (j) => (j['num_hidden_layers'] = 1));
    const warnings: string[] = [];
    const m = Model.open(dir, { warn: (s) => warnings.push(s) });
    m.close();
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(
      warnings[0]!,
      new RegExp(
        `^${join(dir, 'model.safetensors').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: \\d+ tensors not used by config.json \\(first: "model\\.layers\\.1\\.`,
      ),
    );
    assert.match(warnings[0]!, /"num_hidden_layers" is 1 but the weights hold 2 layers; they are ignored$/);
    // a good checkpoint warns about nothing
    Model.open(checkpoint(CK), { warn: (s) => assert.fail(s) }).close();
  });

  it('generation_config.json eos outside the vocabulary is refused naming that file', async () => {
    const dir = copyCheckpoint(checkpoint(CK), 'gen-eos');
    editJson(join(dir, 'generation_config.json'), (j) => (j['eos_token_id'] = [2, 123_456]));
    await assert.rejects(loadModel(dir), (e: Error) =>
      e.message.startsWith(`${join(dir, 'generation_config.json')}: "eos_token_id" 123456 is outside the model's vocabulary`),
    );
  });

  it('NaN weights: generation says the logits are not finite (before: "token id undefined out of range")', async () => {
    const dir = copyCheckpoint(checkpoint(CK), 'nan-norm');
    pokeF32(join(dir, 'model.safetensors'), 'model.norm.weight', 0, NaN);
    const warnings: string[] = [];
    const model = Model.open(dir, { warn: (s) => warnings.push(s) });
    const engine = await Engine.load(model);
    try {
      for (const temperature of [0, 1]) {
        await assert.rejects(
          generate(engine, null, [{ prompt: [1, 2, 3], stream: 0 }], {
            maxNewTokens: 4,
            seed: 1,
            eosTokenIds: [],
            temperature,
            topP: 1,
            topK: 0,
          }),
          /^Error: the model's logits are not finite \(NaN for token 0, request 0, new token 1\)/,
        );
      }
      assert.ok(
        warnings.some((w) => w.includes('"model.norm.weight"')),
        warnings.join('\n'),
      );
    } finally {
      await engine.release();
      model.close();
    }
  });
});
