/**
 * Prompts that cannot fit the model's context (issue #12, item 4): `rac trace`, `rac eval` and
 * `rac generate` refuse them naming the file and row (or the flag), a huge prompt is refused by
 * its length before it is tokenized, and a refused run leaves no output or manifest behind.
 */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { Engine } from '../../src/models/engine.ts';
import { generate } from '../../src/models/generate.ts';
import { Model } from '../../src/models/model.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, rac } from '../helpers/cli.ts';
import { copyCheckpoint, editJson } from '../helpers/corrupt.ts';

const CTX = 64;

/** A 64-token-context copy of a small random checkpoint. */
function smallContext(): string {
  const dir = copyCheckpoint(checkpoint({ family: 'qwen2', seed: 31, hidden: 32, layers: 1, heads: 2 }), 'ctx64');
  editJson(join(dir, 'config.json'), (j) => (j['max_position_embeddings'] = CTX));
  return dir;
}

const words = (n: number) => Array.from({ length: n }, (_, i) => `word${i}`).join(' ');

describe('prompts longer than the context', { concurrency: 1 }, () => {
  const model = smallContext();

  it('a prompt longer than any chat template may render (17 M characters) is blamed on the dataset row, not on the template (trace, prune)', async () => {
    const dir = tempDir('huge-row');
    const ds = join(dir, 'prompts.jsonl');
    writeFileSync(
      ds,
      [JSON.stringify({ id: 'ok', prompt: 'hi' }), JSON.stringify({ id: 'huge', prompt: 'x '.repeat(8_500_000) })].join('\n') + '\n',
    );
    const esc = ds.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const runs = {
      trace: await rac(...argv`trace --threads 1 --model ${model} --dataset ${ds} --out ${join(dir, 't.jsonl')} --max-new-tokens 4`),
      prune: await rac(
        ...argv`prune -q --threads 1 --model ${model} --method wanda --sparsity 0.5 --calib-mode prompt --dataset ${ds}
          --out ${join(dir, 'pruned')}`,
      ),
    };
    for (const [cmd, r] of Object.entries(runs)) {
      assert.equal(r.code, 1, `${cmd}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      const last = lines[lines.length - 1]!;
      assert.match(
        last,
        new RegExp(`^rac: error: ${esc}: row 1 \\(id "huge"\\): the prompt has 17000000 characters`),
        `${cmd}: ${r.stderr.slice(-600)}`,
      );
      assert.doesNotMatch(r.stderr, /tokenizer_config\.json|chat template refused/, cmd);
    }
    assert.deepEqual(readdirSync(dir).sort(), ['prompts.jsonl'], 'nothing written');
  });

  it('rac trace: a 5 MB prompt is refused before tokenizing, a 3×-context prompt by its tokens; no files left (before: OOM / generated anyway)', async () => {
    const dir = tempDir('trace-long');
    const ds = join(dir, 'prompts.jsonl');
    writeFileSync(
      ds,
      [JSON.stringify({ id: 'ok', prompt: 'hi' }), JSON.stringify({ id: 'huge', prompt: 'x'.repeat(5_000_000) })].join('\n') + '\n',
    );
    const out = join(dir, 'traces.jsonl');
    const r = await rac('trace', '-q', '--threads', '1', '--model', model, '--dataset', ds, '--out', out, '--max-new-tokens', '4');
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^rac: error: ${ds.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: row 1 \\(id "huge"\\): the prompt has 5000000 characters and cannot fit the model's 64-token context .* refused before tokenizing\\n$`,
      ),
    );
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
    assert.deepEqual(readdirSync(dir), ['prompts.jsonl'], 'no trace file, no manifest');

    const ds2 = join(dir, 'long.jsonl');
    writeFileSync(ds2, JSON.stringify({ id: 'long', prompt: words(60) }) + '\n');
    const r2 = await rac('trace', '-q', '--threads', '1', '--model', model, '--dataset', ds2, '--out', out, '--max-new-tokens', '4');
    assert.equal(r2.code, 1, r2.stderr);
    assert.match(
      r2.stderr,
      /long\.jsonl: row 0 \(id "long"\): the prompt has \d+ tokens; the model's context is 64 tokens, so it leaves no room for a new token\n$/,
    );
    assert.deepEqual(readdirSync(dir).sort(), ['long.jsonl', 'prompts.jsonl']);
  });

  it('rac eval: the same, naming the dataset row; no results, samples or manifest files', async () => {
    const dir = tempDir('eval-long');
    const ds = join(dir, 'problems.jsonl');
    writeFileSync(
      ds,
      [
        JSON.stringify({ id: 'a', prompt: 'What is 1+1?', answer: '2' }),
        JSON.stringify({ id: 'b', prompt: `${words(80)} What is 2+2?`, answer: '4' }),
      ].join('\n') + '\n',
    );
    const out = join(dir, 'results.json');
    const r = await rac(...argv`eval -q --threads 1 --model ${model} --dataset ${ds} --task math --max-new-tokens 4 --out ${out}`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /problems\.jsonl: row 1 \(id "b"\): the prompt has \d+ tokens; the model's context is 64 tokens/);
    assert.deepEqual(readdirSync(dir), ['problems.jsonl']);
  });

  it('rac generate: --prompt longer than the context is refused naming the flag (before: generated anyway)', async () => {
    const r = await rac('generate', '--threads', '1', '--model', model, '--prompt', words(80), '--max-new-tokens', '4');
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /^rac: error: --prompt: the prompt has \d+ tokens; the model's context is 64 tokens, so it leaves no room for a new token \(max_position_embeddings of .*\)\n$/,
    );
    const huge = await rac('generate', '--threads', '1', '--model', model, '--prompt', 'y'.repeat(100_000), '--max-new-tokens', '4');
    assert.equal(huge.code, 1, huge.stderr);
    assert.match(huge.stderr, /--prompt: the prompt has 100000 characters and cannot fit the model's 64-token context/);
  });

  it('generation stops at the context: prompt + completion never exceed max_position_embeddings', async () => {
    const m = Model.open(model);
    const engine = await Engine.load(m);
    try {
      const tok = await RacTokenizer.load(model);
      const prompt = tok.encode(words(6));
      assert.ok(prompt.length < CTX - 1 && prompt.length > 8, String(prompt.length));
      const [c] = await generate(engine, null, [{ prompt, stream: 0 }], {
        maxNewTokens: 500,
        seed: 0,
        eosTokenIds: [],
        temperature: 0,
        topP: 1,
        topK: 0,
      });
      assert.equal(c!.ids.length, CTX - prompt.length);
      assert.equal(c!.finishReason, 'length');
      await assert.rejects(
        generate(engine, null, [{ prompt: new Array(CTX).fill(5), stream: 0 }], {
          maxNewTokens: 1,
          seed: 0,
          eosTokenIds: [],
          temperature: 0,
          topP: 1,
          topK: 0,
        }),
        /request 0: the prompt has 64 tokens; the model's context is 64 tokens/,
      );
      assert.ok(tok.maxTokenChars >= 5 && tok.maxTokenChars < 64, String(tok.maxTokenChars));
    } finally {
      await engine.release();
      m.close();
    }
  });
});
