/**
 * The `rac` command end to end: spawns `node bin/rac.js …` and checks exit codes, stdout JSON
 * against the library in-process, and one-line errors on stderr for bad input.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { Engine } from '../../src/models/engine.ts';
import { generate } from '../../src/models/generate.ts';
import { Model } from '../../src/models/model.ts';
import { argmax } from '../../src/models/sampling.ts';
import { closeModel, loadModel } from '../../src/models/loaded.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { assertCliError, rac } from '../helpers/cli.ts';
import { copyCheckpoint, editJson, pokeF32, truncateBy } from '../helpers/corrupt.ts';

const ATOL = 1e-4;

const MAIN = { family: 'qwen2', seed: 11 } as const;
const SHARDED_BF16 = { family: 'llama', seed: 12, dtype: 'BF16', shards: 3, layers: 3 } as const;

describe('rac CLI', { concurrency: 2 }, () => {
  for (const [cmd, options] of [
    ['info', ['--model', '--json']],
    [
      'generate',
      [
        '--model',
        '--prompt',
        '--chat',
        '--max-new-tokens',
        '--temperature',
        '--top-p',
        '--top-k',
        '--seed',
        '--stop',
        '--json',
        '--threads',
      ],
    ],
    ['logits', ['--model', '--text', '--ids', '--json']],
    ['eval', ['--model', '--dataset', '--task', '--samples', '--code-wall-seconds', '--code-cpu-seconds', '--code-memory-mb']],
  ] as const) {
    it(`${cmd} --help exits 0 and lists its options`, async () => {
      const r = await rac(cmd, '--help');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`Usage: rac ${cmd}`));
      for (const o of options) assert.ok(r.stdout.includes(o), `${cmd} --help lacks ${o}`);
    });
  }

  it('info --json on a sharded bf16 llama checkpoint', async () => {
    const dir = checkpoint(SHARDED_BF16);
    const r = await rac('info', '--model', dir, '--json');
    assert.equal(r.code, 0, r.stderr);
    const info = JSON.parse(r.stdout) as Record<string, unknown>;
    // parameters from the config by hand: llama has no biases; untied head
    const c = { D: 64, H: 4, Hkv: 2, hd: 16, I: 192, L: 3 };
    const V = info['vocab_size'] as number;
    const perLayer = c.D * c.H * c.hd * 2 + c.D * c.Hkv * c.hd * 2 + 3 * c.D * c.I + 2 * c.D;
    const tensors = 3 + 9 * c.L;
    assert.deepEqual(
      { ...info, vocab_size: undefined, dir: undefined },
      {
        dir: undefined,
        vocab_size: undefined,
        model_type: 'llama',
        architecture: 'LlamaForCausalLM',
        parameters: 2 * V * c.D + c.D + c.L * perLayer,
        layers: 3,
        hidden_size: 64,
        intermediate_size: 192,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        tied_embeddings: false,
        rope_theta: 10000,
        rope_scaling: 'default',
        qkv_bias: false,
        qk_norm: false,
        sliding_window: null,
        dtypes: { BF16: tensors },
        shards: ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'],
        tensors,
      },
    );
    assert.deepEqual(
      readdirSync(dir).filter((f) => f.endsWith('.safetensors')),
      info['shards'],
    );
    assert.ok(V >= 256, `vocab ${V}`);
  });

  it('logits --ids --json matches Engine.forward in-process', async () => {
    const dir = checkpoint(MAIN);
    const ids = [1, 2, 3, 200, 17];
    const r = await rac('logits', '--model', dir, '--ids', ids.join(','), '--json', '--threads', '1');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { ids: number[]; argmax: number[]; logits_last: number[] };
    assert.deepEqual(Object.keys(out), ['ids', 'argmax', 'logits_last']);
    assert.deepEqual(out.ids, ids);
    const model = Model.open(dir);
    const engine = await Engine.load(model, { threads: 1 });
    try {
      const V = model.config.vocabSize;
      const [logits] = await engine.forward([ids]);
      assert.deepEqual(
        out.argmax,
        ids.map((_, t) => argmax(logits!, t * V, V)),
      );
      assert.equal(out.logits_last.length, V);
      const last = logits!.subarray((ids.length - 1) * V);
      let d = 0;
      out.logits_last.forEach((x, i) => (d = Math.max(d, Math.abs(x - last[i]!))));
      assert.ok(d <= ATOL, `max |Δlogit| ${d}`);
    } finally {
      await engine.release();
      model.close();
    }
  });

  it('logits --text tokenizes the text and reports per-position argmax', async () => {
    const dir = checkpoint(MAIN);
    const text = 'The quick brown fox thinks before it answers.';
    const r = await rac('logits', '--model', dir, '--text', text, '--threads', '1');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { ids: number[]; argmax: number[]; logits_last: number[] };
    const tok = await RacTokenizer.load(dir);
    assert.deepEqual(out.ids, tok.encode(text));
    assert.equal(tok.decode(out.ids), text);
    const model = Model.open(dir);
    const engine = await Engine.load(model, { threads: 1 });
    try {
      const V = model.config.vocabSize;
      const [logits] = await engine.forward([out.ids]);
      assert.deepEqual(
        out.argmax,
        out.ids.map((_, t) => argmax(logits!, t * V, V)),
      );
      const last = logits!.subarray((out.ids.length - 1) * V);
      out.logits_last.forEach((x, i) => assert.ok(Math.abs(x - last[i]!) <= ATOL, `logit ${i}: ${x} vs ${last[i]}`));
    } finally {
      await engine.release();
      model.close();
    }
  });

  it('generate --chat --temperature 0 --json is deterministic and equals in-process greedy generate()', async () => {
    const dir = checkpoint(MAIN);
    const args = [
      'generate',
      '--model',
      dir,
      '--prompt',
      'hi',
      '--chat',
      '--max-new-tokens',
      '8',
      '--temperature',
      '0',
      '--json',
      '--threads',
      '1',
    ];
    const [a, b] = [await rac(...args), await rac(...args)];
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    type Out = { prompt: string; prompt_ids: number[]; completions: { ids: number[]; text: string; finish_reason: string }[] };
    const ja = JSON.parse(a.stdout) as Out;
    const jb = JSON.parse(b.stdout) as Out;
    assert.deepEqual(jb.completions, ja.completions, 'two runs');
    assert.equal(ja.completions.length, 1);

    const lm = await loadModel(dir, { threads: 1 });
    try {
      const text = lm.tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true });
      assert.equal(ja.prompt, text);
      assert.match(text, /<\|im_start\|>user\nhi<\|im_end\|>\n<\|im_start\|>assistant\n$/);
      const prompt = lm.tokenizer.encode(text, { addSpecialTokens: false });
      assert.deepEqual(ja.prompt_ids, prompt);
      const [c] = await generate(lm.engine, lm.tokenizer, [{ prompt, stream: 0 }], {
        temperature: 0,
        topP: 1,
        topK: 0,
        seed: 0,
        maxNewTokens: 8,
        eosTokenIds: lm.eosTokenIds,
      });
      assert.deepEqual(ja.completions[0], { ids: c!.ids, text: c!.text, finish_reason: c!.finishReason });
      assert.ok(c!.ids.length >= 1 && c!.ids.length <= 8);
    } finally {
      await closeModel(lm);
    }
  });

  it('eval --task code: sandbox limits from the flags reach the manifest; a non-positive limit is a usage error', async () => {
    const dir = checkpoint(MAIN);
    const d = tempDir('cli-code-limits');
    const ds = join(d, 'code.jsonl');
    writeFileSync(ds, `${JSON.stringify({ id: 'p', prompt: 'Double n.', tests: [{ input: '2\n', output: '4\n' }] })}\n`);
    const out = join(d, 'r.json');
    const base = [
      'eval',
      '-q',
      '--threads',
      '1',
      '--model',
      dir,
      '--dataset',
      ds,
      '--task',
      'code',
      '--temperature',
      '0',
      '--max-new-tokens',
      '4',
      '--out',
      out,
    ];
    const bad = await rac(...base, '--code-cpu-seconds', '0');
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /code-cpu-seconds/);
    assert.ok(!existsSync(out));
    const r = await rac(...base, '--code-wall-seconds', '2.5', '--code-cpu-seconds', '1.5', '--code-memory-mb', '300', '--json');
    assert.equal(r.code, 0, r.stderr);
    const manifest = JSON.parse(readFileSync(`${out}.manifest.json`, 'utf8')) as { code_limits: unknown };
    assert.deepEqual(manifest.code_limits, { wallMs: 2500, cpuSeconds: 1.5, memoryMb: 300 });
  });

  it('usage errors exit 2: missing --model, bad --temperature', async () => {
    const dir = checkpoint(MAIN);
    const noModel = await rac('generate', '--prompt', 'hi');
    assert.equal(noModel.code, 2, noModel.stderr);
    assert.equal(noModel.stdout, '');
    assert.match(noModel.stderr, /--model/);
    const badT = await rac('generate', '--model', dir, '--prompt', 'hi', '--temperature', 'warm');
    assert.equal(badT.code, 2, badT.stderr);
    assert.equal(badT.stdout, '');
    assert.match(badT.stderr, /temperature/);
  });

  describe('bad input: exit 1, one line on stderr naming the file, nothing on stdout', { concurrency: 2 }, () => {
    it('missing config.json (info)', async () => {
      const dir = copyCheckpoint(checkpoint(MAIN), 'cli-no-config');
      rmSync(join(dir, 'config.json'));
      assertCliError(await rac('info', '--model', dir), [join(dir, 'config.json')], /not found/);
    });

    it('missing tokenizer.json (generate)', async () => {
      const dir = copyCheckpoint(checkpoint(MAIN), 'cli-no-tokenizer');
      rmSync(join(dir, 'tokenizer.json'));
      assertCliError(await rac('generate', '--model', dir, '--prompt', 'hi', '--json'), [join(dir, 'tokenizer.json')], /missing/);
    });

    it('truncated safetensors (logits)', async () => {
      const dir = copyCheckpoint(checkpoint(MAIN), 'cli-truncated');
      truncateBy(join(dir, 'model.safetensors'), 64);
      assertCliError(await rac('logits', '--model', dir, '--ids', '1,2'), [join(dir, 'model.safetensors')], /past the end/);
    });

    it('tensor shape disagreeing with config.json (generate)', async () => {
      const dir = copyCheckpoint(checkpoint(MAIN), 'cli-shape');
      editJson(join(dir, 'config.json'), (j) => {
        j['intermediate_size'] = 200;
      });
      assertCliError(await rac('generate', '--model', dir, '--prompt', 'hi'), [join(dir, 'model.safetensors'), 'mlp.'], /implies \[/);
    });

    it('shard path leaving the model directory (info)', async () => {
      const dir = copyCheckpoint(checkpoint(SHARDED_BF16), 'cli-escape');
      const index = join(dir, 'model.safetensors.index.json');
      editJson(index, (j) => {
        const wm = j['weight_map'] as Record<string, string>;
        wm[Object.keys(wm)[0]!] = '../x.safetensors';
      });
      assertCliError(await rac('info', '--model', dir, '--json'), [index, '../x.safetensors'], /inside the model directory/);
    });

    it('NaN in a weight: a warning naming the tensor on stderr, results still on stdout', async () => {
      const dir = copyCheckpoint(checkpoint(MAIN), 'cli-nan');
      const name = 'model.layers.0.self_attn.o_proj.weight';
      pokeF32(join(dir, 'model.safetensors'), name, 5, NaN);
      const r = await rac('logits', '--model', dir, '--ids', '1,2');
      assert.equal(r.code, 0, r.stderr);
      const warnings = r.stderr
        .trimEnd()
        .split('\n')
        .filter((l) => l.startsWith('warning: '));
      assert.equal(warnings.length, 1, r.stderr);
      assert.ok(warnings[0]!.includes(`"${name}"`) && warnings[0]!.includes(join(dir, 'model.safetensors')), warnings[0]);
      assert.deepEqual((JSON.parse(r.stdout) as { ids: number[] }).ids, [1, 2]);
    });
  });
});
