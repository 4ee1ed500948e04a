/**
 * The llama.cpp generation backend (`--backend llama.cpp`, node-llama-cpp in process), through
 * the CLI end to end:
 * - `rac trace` greedy on a GGUF written by `rac export-gguf` gives the local engine's records
 *   exactly (token ids, text, finish reasons), except the model fingerprint;
 * - without --gguf, --model is exported to a temporary GGUF; on the tiny reasoner with chat
 *   prompts the traces stop on <|im_end|> (kept in the ids, as locally) and `rac eval` grades the
 *   same answers as the local engine;
 * - sampling: the same seed reproduces the same samples, another seed does not, samples of one
 *   prompt differ from each other; stop strings cut the text and end with finish reason "stop";
 * - exact comparisons run one sequence at a time (--concurrency 1): llama.cpp's batched decode is
 *   not batch-invariant (a token's logits move in the last bits with the batch it shares), which
 *   can flip a near-tie; the parallel path is checked for complete, well-formed, mostly equal output;
 * - a recipe may name the backend but not a fixed GGUF.
 * Set RAC_SKIP_LLAMA_CPP=1 where node-llama-cpp's binary cannot load.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { LlamaCppBackend } from '../../src/backends/llamacpp.ts';
import { readTraceFile, type TraceRecord } from '../../src/study/trace.ts';
import { generateSplit } from '../../src/tasks/tiny/index.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, racWith, ROOT } from '../helpers/cli.ts';
import { writeFourPrompts, writeTinyDataset } from '../helpers/datasets.ts';
import { skipLlamaCpp } from '../helpers/llamacpp.ts';

const TINY = join(ROOT, 'models', 'tiny-reasoner');
/** The random model three of the cases run. */
const RANDOM = { family: 'qwen2', seed: 11, hidden: 128, heads: 4, kvHeads: 2, layers: 2, tied: false } as const;

/** These runs are bounded by the test's own timeout, not by the helper's minute. */
const rac = (...args: string[]) => racWith({ timeoutMs: 0 }, ...args);

async function ok(args: string[]): Promise<string> {
  const r = await rac(...args);
  assert.equal(r.code, 0, `rac ${args.join(' ')}\n${r.stderr}`);
  return r.stdout;
}

const key = (r: { prompt_id: string; sample: number }) => `${r.prompt_id}/${r.sample}`;
const strip = ({ model: _m, ...rest }: TraceRecord) => rest;
function records(path: string): Map<string, TraceRecord> {
  return new Map(readTraceFile(path).records.map((r) => [key(r), r]));
}

describe('llama.cpp generation backend', { skip: skipLlamaCpp, timeout: 300_000 }, () => {
  let dir: string;
  let data: string;
  before(() => {
    dir = tempDir('llamacpp-backend');
    data = writeFourPrompts(join(dir, 'prompts.jsonl'));
  });

  it('rac trace on a GGUF from rac export-gguf: greedy records identical to the local engine', async () => {
    const model = checkpoint(RANDOM);
    const gguf = join(dir, 'random.gguf');
    await ok(['export-gguf', '--model', model, '--out', gguf, '-q']);
    const common = argv`trace -q --threads 1 --model ${model} --dataset ${data} --n 1 --max-new-tokens 32 --temperature 0 --batch-size 4`;
    await ok([...common, '--out', join(dir, 'local.jsonl')]);
    await ok([...common, '--out', join(dir, 'llama.jsonl'), '--backend', 'llama.cpp', '--gguf', gguf, '--concurrency', '1']);
    await ok([...common, '--out', join(dir, 'llama-par.jsonl'), '--backend', 'llama.cpp', '--gguf', gguf, '--concurrency', '3']);
    const local = records(join(dir, 'local.jsonl'));
    const llama = records(join(dir, 'llama.jsonl'));
    assert.equal(local.size, 4);
    assert.deepEqual([...llama.keys()].sort(), [...local.keys()].sort());
    for (const [k, v] of local) {
      assert.deepEqual(strip(llama.get(k)!), strip(v), k);
      assert.notEqual(llama.get(k)!.model, v.model, 'the GGUF has its own fingerprint');
    }
    // Three sequences at a time: every record once, well formed, and (near-ties aside) the same.
    const par = records(join(dir, 'llama-par.jsonl'));
    assert.deepEqual([...par.keys()].sort(), [...local.keys()].sort());
    let same = 0;
    for (const [k, v] of par) {
      assert.ok(v.completion_ids.length >= 1 && v.completion_ids.length <= 32, k);
      assert.ok(v.finish_reason === 'length' || v.finish_reason === 'stop', k);
      if (JSON.stringify(v.completion_ids) === JSON.stringify(local.get(k)!.completion_ids)) same++;
    }
    assert.ok(same >= 2, `only ${same}/4 parallel greedy records equal the local ones`);
    const manifest = JSON.parse(readFileSync(join(dir, 'llama.jsonl.manifest.json'), 'utf8')) as { backend?: string };
    assert.equal(JSON.stringify(manifest).includes('llama.cpp'), true, 'the manifest names the backend');
  });

  it('sampling: seeded and reproducible, samples differ; stop strings end the text', async () => {
    const model = checkpoint(RANDOM);
    const args = (out: string, seed: number, extra: string[] = []) => [
      ...argv`trace -q --threads 1 --model ${model} --dataset ${data} --n 2 --max-new-tokens 24 --temperature 1 --top-p 0.95
        --seed ${seed} --backend llama.cpp --concurrency 1 --out ${out}`,
      ...extra,
    ];
    await ok(args(join(dir, 's1.jsonl'), 5));
    await ok(args(join(dir, 's2.jsonl'), 5));
    await ok(args(join(dir, 's3.jsonl'), 6));
    const [a, b, c] = ['s1', 's2', 's3'].map((s) => records(join(dir, `${s}.jsonl`)));
    assert.equal(a!.size, 8);
    for (const [k, v] of a!) assert.deepEqual(strip(b!.get(k)!), strip(v), `seed 5 reproduces ${k}`);
    const ids = (m: Map<string, TraceRecord>, k: string) => JSON.stringify(m.get(k)!.completion_ids);
    assert.ok(
      [...a!.keys()].some((k) => ids(a!, k) !== ids(c!, k)),
      'seed 6 draws other samples',
    );
    assert.ok(
      ['p0', 'p1', 'p2', 'p3'].some((p) => ids(a!, `${p}/0`) !== ids(a!, `${p}/1`)),
      'the two samples of a prompt differ',
    );

    // A stop string taken from a sampled completion: the text ends before it, finish "stop".
    const [k0, r0] = [...a!].find(([, r]) => r.text.length >= 8)!;
    const stop = r0.text.slice(4, 7);
    await ok(args(join(dir, 'stop.jsonl'), 5, ['--stop', stop]));
    const s = records(join(dir, 'stop.jsonl')).get(k0)!;
    assert.equal(s.finish_reason, 'stop');
    assert.equal(s.text, r0.text.slice(0, r0.text.indexOf(stop)));
    assert.ok(s.completion_ids.length <= r0.completion_ids.length);
  });

  it('the tiny reasoner, exported on the fly: chat traces stop on <|im_end|> like the local engine, and eval grades the same', {
    skip: !existsSync(join(TINY, 'config.json')) && 'no models/tiny-reasoner',
  }, async () => {
    const rows = [...generateSplit('eval', 'arith', 3, 1), ...generateSplit('eval', 'trace', 3, 1)];
    const ds = join(dir, 'tiny.jsonl');
    writeFileSync(ds, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const common = argv`trace -q --threads 1 --model ${TINY} --dataset ${ds} --n 1 --max-new-tokens 400 --temperature 0`;
    await ok([...common, '--out', join(dir, 'tiny-local.jsonl')]);
    await ok([...common, '--out', join(dir, 'tiny-llama.jsonl'), '--backend', 'llama.cpp', '--concurrency', '1']);
    const local = records(join(dir, 'tiny-local.jsonl'));
    const llama = records(join(dir, 'tiny-llama.jsonl'));
    const imEnd = JSON.parse(readFileSync(join(TINY, 'tokenizer.json'), 'utf8')).added_tokens.find(
      (t: { content: string }) => t.content === '<|im_end|>',
    ).id as number;
    for (const [k, v] of local) {
      assert.deepEqual(strip(llama.get(k)!), strip(v), k);
      assert.equal(v.finish_reason, 'stop');
      assert.equal(v.completion_ids.at(-1), imEnd, 'the eos id ends the ids');
      assert.ok(!v.text.includes('<|im_end|>'), 'and is not in the text');
    }

    const ev = argv`eval -q --threads 1 --model ${TINY} --dataset ${ds} --task tiny --temperature 0 --max-new-tokens 400 --json`;
    const a = JSON.parse(await ok([...ev, '--out', join(dir, 'ev-local.json')]));
    const b = JSON.parse(await ok([...ev, '--out', join(dir, 'ev-llama.json'), '--backend', 'llama.cpp', '--concurrency', '1']));
    assert.deepEqual(b.accuracy, a.accuracy);
    const per = (f: string) => (JSON.parse(readFileSync(f, 'utf8')) as { samples: unknown }).samples;
    assert.deepEqual(per(join(dir, 'ev-llama.json')), per(join(dir, 'ev-local.json')));
  });

  it('API: the context is sized to the work and grows; bad prompts are refused; the GGUF has its own fingerprint', async () => {
    const model = checkpoint(RANDOM);
    const b = await LlamaCppBackend.open({ model, parallel: 2, threads: 1 });
    try {
      assert.equal(b.contextSize, null, 'no context before the first call');
      const got: number[][] = [];
      const settings = { temperature: 0, topP: 1, topK: 0, maxNewTokens: 8, seed: 0 };
      const hooks = { onResult: (_r: unknown, c: { ids: number[] }[]) => void got.push(...c.map((x) => x.ids)) };
      await b.generate([{ index: 0, prompt: [1, 2, 3], promptText: '', n: 3 }], settings, hooks);
      assert.equal(got.length, 3);
      for (const ids of got) assert.ok(ids.length >= 1 && ids.length <= 8, `${ids.length} tokens`);
      const first = b.contextSize!;
      assert.ok(first >= 11 && first < 2048, `context ${first} tokens for 3 + 8`);
      await b.generate([{ index: 1, prompt: [4, 5], promptText: '', n: 1 }], { ...settings, maxNewTokens: first + 100 }, hooks);
      assert.ok(b.contextSize! >= first + 102, `context grew to ${b.contextSize}`);
      await assert.rejects(
        b.generate([{ index: 2, prompt: [1, 1_000_000], promptText: '', n: 1 }], settings, hooks),
        /token id 1000000, outside .*vocabulary/,
      );
      await assert.rejects(b.generate([{ index: 3, prompt: [], promptText: '', n: 1 }], settings, hooks), /empty prompt/);
      assert.match(b.fingerprint, /^sha256:[0-9a-f]{16}$/);
    } finally {
      await b.close();
    }
  });

  it('rac run with backend llama.cpp: every model exported on the fly, the same summary as the local backend', async () => {
    const d = tempDir('llamacpp-run');
    writeTinyDataset(join(d, 'calib.jsonl'), 'calib', 6);
    writeTinyDataset(join(d, 'eval.jsonl'), 'eval', 3);
    const model = checkpoint({ family: 'qwen2', seed: 21, layers: 2, hidden: 64, tied: false });
    const recipe = (backend: string, out: string) =>
      [
        `model: ${model}`,
        `out: ${out}`,
        'task: tiny',
        'datasets: {calib: calib.jsonl, eval: eval.jsonl}',
        'trace: {n: 1, max_new_tokens: 12, token_budget: 400, batch_size: 8, temperature: 0}',
        'calibration: {tokens: 300, max_seq_len: 96, batch_tokens: 1024}',
        'prune: [{method: sparsegpt, calib: [prompt, rac], sparsity: 0.5}]',
        'eval: {samples: 1, max_new_tokens: 12, temperature: 0, top_p: 1, batch_size: 8}',
        `backend: ${backend}`,
        '',
      ].join('\n');
    writeFileSync(join(d, 'local.yaml'), recipe('{kind: local}', 'local-out'));
    writeFileSync(join(d, 'llama.yaml'), recipe('{kind: llama.cpp, threads: 1, concurrency: 1}', 'llama-out'));
    await ok(['run', '-q', '--threads', '1', '--config', join(d, 'local.yaml')]);
    await ok(['run', '-q', '--threads', '1', '--config', join(d, 'llama.yaml')]);
    const summary = (o: string) =>
      JSON.parse(readFileSync(join(d, o, 'summary.json'), 'utf8')) as { dense: unknown; rows: { accuracy: number; mean_tokens: number }[] };
    const a = summary('local-out');
    const b = summary('llama-out');
    assert.equal(b.rows.length, 2);
    assert.deepEqual(b.dense, a.dense);
    assert.deepEqual(
      b.rows.map((r) => [r.accuracy, r.mean_tokens]),
      a.rows.map((r) => [r.accuracy, r.mean_tokens]),
    );
  });

  it('a recipe names the llama.cpp backend but not a fixed GGUF', async () => {
    const recipe = join(dir, 'recipe.yaml');
    writeFileSync(
      recipe,
      [
        'model: m',
        'datasets: {calib: c.jsonl, eval: e.jsonl}',
        'prune: [{method: magnitude, sparsity: 0.5}]',
        'backend: {kind: llama.cpp, gguf: x.gguf}',
        '',
      ].join('\n'),
    );
    const r = await rac('run', '--config', recipe);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /backend\.gguf.*temporary GGUF/);
  });
});
