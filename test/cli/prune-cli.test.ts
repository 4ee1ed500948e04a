/** `rac prune` end to end (four spawns): JSON summary, usage and file errors, layer/Linear scope. */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { Model } from '../../src/models/model.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, rac } from '../helpers/cli.ts';
import { entries, minZerosPerGroup, randomSequences, readAll, readSummary, tensorHashes, zerosIn } from '../helpers/prune.ts';

const CK = { family: 'qwen2', seed: 101, hidden: 64, layers: 3 } as const;

/** A calibration file of input_ids and text rows, ~2,400 tokens before the budget. */
function calibFile(vocab: number): string {
  const f = join(tempDir('cli-calib'), 'calib.jsonl');
  const rows = randomSequences(vocab, 30, 40, 120, 12).map((s, i) =>
    JSON.stringify(i % 5 === 4 ? { text: `Step ${i}: 4 + 5 = 9. The answer is \\boxed{${i}}.` } : { input_ids: s.ids }),
  );
  writeFileSync(f, rows.join('\n') + '\n');
  return f;
}

describe('rac prune', { concurrency: 2 }, () => {
  const dir = checkpoint(CK);
  const m = Model.open(dir);
  const { spec, config } = m;
  const V = config.vocabSize;
  m.close();
  const calib = calibFile(V);

  it('--pattern 2:4 --json: exit 0, the summary on stdout equals rac.json, every group has 2 zeros', async () => {
    const out = join(tempDir('cli'), 'out');
    const r = await rac(
      ...argv`prune --model ${dir} --method sparsegpt --pattern 2:4 --calib ${calib} --calib-tokens 1500 --max-seq-len 64
        --batch-tokens 512 --out ${out} --json --threads 1`,
    );
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1, 'stdout must be one JSON line');
    const s = JSON.parse(lines[0]!) as ReturnType<typeof readSummary>;
    assert.deepEqual(s, readSummary(out));
    assert.equal(s.method, 'sparsegpt');
    assert.equal(s.pattern, '2:4');
    assert.equal(s.calibration.tokens, 1500);
    assert.equal(s.calibration['file'], resolve(calib));
    assert.equal(s.calibration['rows'], 'input_ids+text');
    assert.equal(s.totals.pruned_linears, 21);
    assert.equal(s.totals.sparsity, 0.5);
    // progress per layer with an ETA on stderr
    for (let l = 1; l <= 3; l++) assert.match(r.stderr, new RegExp(`layer ${l}/3: sparsity 50\\.00% .*ETA`));
    const t = readAll(out);
    for (let l = 0; l < 3; l++) {
      for (const ls of spec.linears(config)) {
        const W = t.get(`model.layers.${l}.${ls.module}.weight`)!.data;
        assert.equal(minZerosPerGroup(W, ls.rows, ls.cols, 4), 2, `layer ${l} ${ls.name}`);
      }
    }
  });

  it('--sparsity and --pattern together: exit 2 with a usage message, nothing written', async () => {
    const out = join(tempDir('cli'), 'out');
    const r = await rac(...argv`prune --model ${dir} --method wanda --sparsity 0.5 --pattern 2:4 --calib ${calib} --out ${out}`);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /exactly one of --sparsity or --pattern/);
    assert.deepEqual(entries(join(out, '..')), []);
  });

  it('--token-weights and --sparsity-profile owl: bad values exit 2; a run records both in rac.json', async () => {
    const out = join(tempDir('cli'), 'out');
    const bad = await rac(
      ...argv`prune --model ${dir} --method wanda --sparsity 0.5 --calib ${calib} --token-weights decode=0 --out ${out}`,
    );
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--token-weights: unknown class "decode"/);
    const nm = await rac(
      ...argv`prune --model ${dir} --method sparsegpt --pattern 2:4 --calib ${calib} --sparsity-profile owl --out ${out}`,
    );
    assert.equal(nm.code, 2, nm.stderr);
    assert.match(nm.stderr, /--sparsity-profile owl needs --sparsity/);
    const r = await rac(
      ...argv`prune --model ${dir} --method wanda --sparsity 0.5 --calib ${calib} --calib-tokens 1500 --max-seq-len 64
        --sparsity-profile owl --owl-m 3 --owl-lambda 0.05 --token-weights prompt=0 --out ${out} --threads 1 --quiet --json`,
    );
    assert.equal(r.code, 0, r.stderr);
    const s = readSummary(out);
    assert.deepEqual(s.options['sparsity_profile'], { owl: { m: 3, lambda: 0.05 } });
    assert.deepEqual(s.options['token_weights'], { prompt: 0, think: 1, answer: 1 });
    const p = (s as unknown as { sparsity_profile: { layers: { target: number }[] } }).sparsity_profile;
    assert.equal(p.layers.length, 3);
    for (const l of p.layers) assert.ok(Math.abs(l.target - 0.5) <= 0.05 + 1e-12);
  });

  it('a missing calibration file: exit 1, one line naming it', async () => {
    const out = join(tempDir('cli'), 'out');
    const missing = join(tempDir('cli'), 'nope.jsonl');
    const r = await rac('prune', '--model', dir, '--method', 'wanda', '--sparsity', '0.5', '--calib', missing, '--out', out);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `rac: error: ${missing}: file not found\n`);
    assert.deepEqual(entries(join(out, '..')), []);
  });

  it('--layers last --linears mlp: only layer 2 gate/up/down change; a table on stdout', async () => {
    const out = join(tempDir('cli'), 'out');
    const r = await rac(
      ...argv`prune --model ${dir} --method wanda --sparsity 0.5 --calib ${calib} --layers last --linears mlp --out ${out} --threads 1
        --quiet`,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', '--quiet prints no progress');
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^\s*layer\s+sparsity\s+rel\.out\.err\s+obs\.loss\s+seconds$/);
    assert.match(lines[1]!, /^\s*0\s+kept\s/);
    assert.match(lines[2]!, /^\s*1\s+kept\s/);
    assert.match(lines[3]!, /^\s*2\s+0\.5000\s/);
    assert.match(lines[4]!, /^pruned 3 Linears to 50\.00% sparsity/);
    const pruned = new Set(
      ['gate_proj', 'up_proj', 'down_proj']
        .map((n) => spec.linears(config).find((l) => l.name === n)!)
        .map((l) => `model.layers.2.${l.module}.weight`),
    );
    const hi = tensorHashes(dir);
    const ho = tensorHashes(out);
    const t = readAll(out);
    for (const [n, h] of hi) {
      if (!pruned.has(n)) {
        assert.equal(ho.get(n), h, `${n} must be untouched`);
        continue;
      }
      const W = t.get(n)!.data;
      const [rows, cols] = t.get(n)!.shape as [number, number];
      for (let r0 = 0; r0 < rows; r0++) assert.equal(zerosIn(W, r0 * cols, (r0 + 1) * cols), cols / 2, `${n} row ${r0}`);
    }
    const s = readSummary(out);
    assert.deepEqual(s.options['layers'], [2]);
    assert.equal(s.options['linears'], 'mlp');
    assert.deepEqual(Object.keys(s.layers[2]!.linears).sort(), ['down_proj', 'gate_proj', 'up_proj']);
    assert.equal(readFileSync(join(out, 'config.json'), 'utf8'), readFileSync(join(dir, 'config.json'), 'utf8'));
  });
});

describe('rac prune --quant', () => {
  const dir = checkpoint({ family: 'qwen2', seed: 102, hidden: 64, layers: 1, intermediate: 128 });
  it('--method rtn --quant q4_0 needs no calibration; gptq needs --quant; gptq refuses a sparsity', async () => {
    const out = join(tempDir('cli-q'), 'out');
    const r = await rac('prune', '--model', dir, '--method', 'rtn', '--quant', 'q4_0', '--out', out, '--json', '--threads', '1');
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as ReturnType<typeof readSummary>;
    assert.equal(s.quantization!.format, 'q4_0');
    assert.equal(s.calibration.tokens, 0);
    assert.ok(entries(out).includes('quant_blocks.safetensors'));
    assert.ok(entries(out).includes('model.safetensors.index.json'));
    assert.equal(s.quantization!.layout, 'compressed-tensors');
    // The compressed-tensors directory runs in rac's commands.
    const info = await rac('info', '--model', out, '--json');
    assert.equal(info.code, 0, info.stderr);
    assert.equal((JSON.parse(info.stdout) as { dtypes: Record<string, number> }).dtypes['INT4 (pack-quantized)'], 7);
    const gen = await rac(
      'generate',
      '--model',
      out,
      '--prompt',
      'hello',
      '--max-new-tokens',
      '4',
      '--temperature',
      '0',
      '--json',
      '--threads',
      '1',
    );
    assert.equal(gen.code, 0, gen.stderr);
    const u = await rac(
      ...argv`prune --model ${dir} --method gptq --calib-mode prompt --dataset x.jsonl --out ${join(tempDir('cli-q'), 'o')}`,
    );
    assert.equal(u.code, 2);
    assert.match(u.stderr, /--method gptq needs --quant \(q4_0, q8_0, q2_k/);
    const v = await rac(
      ...argv`prune --model ${dir} --method gptq --quant q8_0 --sparsity 0.5 --calib-mode prompt --dataset x.jsonl
        --out ${join(tempDir('cli-q'), 'o')}`,
    );
    assert.equal(v.code, 2);
    assert.match(v.stderr, /only quantizes/);
  });
});
