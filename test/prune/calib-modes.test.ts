/**
 * Calibration modes: prompt (chat-templated prompts, drawn until the budget is full, never cycled),
 * rac (prompt+completion ids of rac or SGLang trace rows, decode share), text (tokenized, chunked),
 * mix (token shares, per-source weights), packing, equal budgets across modes, errors; and
 * `rac prune --calib-mode` end to end.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { renderPrompt } from '../../src/io/datasets.ts';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { CLASS_ANSWER, CLASS_PROMPT, CLASS_THINK } from '../../src/compress/hessian.ts';
import { Model } from '../../src/models/model.ts';
import { CalibError } from '../../src/prune/calib.ts';
import {
  buildCalibSet,
  parseSourceMap,
  positionClasses,
  splitBudget,
  thinkEndIds,
  type CalibModeContext,
} from '../../src/prune/calib-modes.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, rac } from '../helpers/cli.ts';

const CK = { family: 'qwen2', seed: 31, layers: 2, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64 } as const;

function file(name: string, text: string): string {
  const f = join(tempDir('cm'), name);
  writeFileSync(f, text);
  return f;
}
const jsonl = (name: string, rows: unknown[]) => file(name, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

const PROBLEMS = Array.from({ length: 12 }, (_, i) => ({ id: `q${i}`, problem: `Compute ${i * 37} + ${i + 5}. Show the digits.` }));

async function setup(): Promise<{ ctx: CalibModeContext; tok: RacTokenizer; V: number }> {
  const dir = checkpoint(CK);
  const tok = await RacTokenizer.load(dir);
  const m = Model.open(dir);
  const V = m.config.vocabSize;
  m.close();
  return { ctx: { tokenizer: tok, vocabSize: V }, tok, V };
}

/** Trace rows: rac records for half, SGLang rows (input_ids + num_prompt_tokens) and bare id pairs for the rest. */
function tracesFile(V: number, rows: number): { path: string; prompt: number[][]; completion: number[][] } {
  const prompt: number[][] = [];
  const completion: number[][] = [];
  const out = [];
  for (let i = 0; i < rows; i++) {
    const p = Array.from({ length: 5 + (i % 4) }, (_, k) => (i * 13 + k) % V);
    const c = Array.from({ length: 20 + ((i * 7) % 15) }, (_, k) => (i * 29 + k * 3 + 1) % V);
    prompt.push(p);
    completion.push(c);
    if (i % 3 === 0)
      out.push({
        prompt_id: `q${i}`,
        sample: 0,
        prompt_ids: p,
        completion_ids: c,
        text: '',
        input_ids: [...p, ...c],
        num_prompt_tokens: p.length,
        num_decode_tokens: c.length,
      });
    else if (i % 3 === 1) out.push({ input_ids: [...p, ...c], num_prompt_tokens: p.length, num_decode_tokens: c.length });
    else out.push({ prompt_ids: p, completion_ids: c });
  }
  return { path: jsonl('traces.jsonl', out), prompt, completion };
}

describe('calibration modes', () => {
  it('prompt: chat-templated prompts in dataset order, cut to exactly the budget; a short dataset is used once and reported', async () => {
    const { ctx, tok } = await setup();
    const ds = jsonl('ds.jsonl', PROBLEMS);
    const rendered = PROBLEMS.map((p) => renderPrompt(tok, p.problem, { system: 'Be brief.' }).ids);
    const all = sum(rendered.map((r) => r.length));
    const budget = rendered[0]!.length + rendered[1]!.length + 5;
    const c = await buildCalibSet('prompt', { dataset: { path: ds, system: 'Be brief.' } }, ctx, { tokenBudget: budget, maxSeqLen: 512 });
    assert.equal(c.tokens, budget);
    assert.deepEqual(
      c.sequences.map((s) => s.ids),
      [rendered[0], rendered[1], rendered[2]!.slice(0, 5)],
    );
    assert.equal(c.source['mode'], 'prompt');
    assert.equal(c.source['prompts_used'], 3);
    assert.equal(c.source['exhausted'], false);
    assert.equal(c.source['system'], 'Be brief.');
    assert.deepEqual(c.source['files'], [{ file: resolve(ds), sha256: sha(ds) }]);
    // a budget larger than the dataset: every prompt once, no cycling, said in the source
    const big = await buildCalibSet('prompt', { dataset: { path: ds, system: 'Be brief.' } }, ctx, {
      tokenBudget: all * 3,
      maxSeqLen: 512,
    });
    assert.equal(big.tokens, all);
    assert.equal(big.sequences.length, PROBLEMS.length);
    assert.equal(big.source['exhausted'], true);
    assert.match(String(big.source['note']), /ran out: \d+ of \d+ budget tokens \(no cycling\)/);
    // template flags change what is calibrated
    const off = await buildCalibSet('prompt', { dataset: { path: ds, templateFlags: { enable_thinking: false } } }, ctx, {
      tokenBudget: 0,
      maxSeqLen: 512,
    });
    assert.deepEqual(off.sequences[0]!.ids, renderPrompt(tok, PROBLEMS[0]!.problem, { templateFlags: { enable_thinking: false } }).ids);
    assert.deepEqual(off.source['template_flags'], { enable_thinking: false });
  });

  it('rac: input_ids (rac and SGLang rows) or prompt_ids+completion_ids; budget, truncation, split, decode share of kept tokens', async () => {
    const { ctx, V } = await setup();
    const t = tracesFile(V, 9);
    const full = t.prompt.map((p, i) => [...p, ...t.completion[i]!]);
    const c = await buildCalibSet('rac', { traces: [t.path] }, ctx, { tokenBudget: 0, maxSeqLen: 4096 });
    assert.deepEqual(
      c.sequences.map((s) => s.ids),
      full,
    );
    const P = sum(t.prompt.map((p) => p.length));
    const D = sum(t.completion.map((x) => x.length));
    assert.equal(c.tokens, P + D);
    assert.equal(c.source['decode_tokens'], D);
    assert.equal(c.source['decode_share'], D / (P + D));
    assert.deepEqual(c.source['files'], [{ file: resolve(t.path), sha256: sha(t.path) }]);
    // truncated to 16 tokens each: the kept decode share counts only kept tokens
    const tr = await buildCalibSet('rac', { traces: [t.path] }, ctx, { tokenBudget: 50, maxSeqLen: 16 });
    assert.equal(tr.tokens, 50);
    assert.deepEqual(
      tr.sequences.map((s) => s.ids),
      [full[0]!.slice(0, 16), full[1]!.slice(0, 16), full[2]!.slice(0, 16), full[3]!.slice(0, 2)],
    );
    const keptPrompt = Math.min(2, t.prompt[3]!.length) + sum([0, 1, 2].map((i) => Math.min(16, t.prompt[i]!.length)));
    assert.equal(tr.source['prompt_tokens'], keptPrompt);
    assert.equal(tr.source['decode_share'], (50 - keptPrompt) / 50);
    // split: every token of the first row, in chunks
    const sp = await buildCalibSet('rac', { traces: [t.path] }, ctx, { tokenBudget: full[0]!.length, maxSeqLen: 10, overflow: 'split' });
    assert.deepEqual(
      sp.sequences.flatMap((s) => s.ids),
      full[0],
    );
    assert.ok(sp.sequences.every((s) => s.ids.length <= 10));
    // row weights and the mode's sequence weight multiply
    const w = jsonl('w.jsonl', [{ input_ids: [1, 2, 3], num_prompt_tokens: 1, weight: 2 }]);
    const cw = await buildCalibSet('rac', { traces: [w], weights: { rac: 1.5 } }, ctx, { tokenBudget: 0, maxSeqLen: 8 });
    assert.deepEqual(
      cw.sequences.map(({ ids, weight }) => ({ ids, weight })),
      [{ ids: [1, 2, 3], weight: 3 }],
    );
    // a torn last line (a trace run still going) is ignored
    const torn = file('torn.jsonl', readFileSync(t.path, 'utf8') + '{"input_ids": [1, 2');
    assert.equal((await buildCalibSet('rac', { traces: [torn] }, ctx, { tokenBudget: 0, maxSeqLen: 4096 })).tokens, P + D);
  });

  it('text: .txt documents and JSONL text rows, tokenized and chunked to max_seq_len, cut to the budget', async () => {
    const { ctx, tok } = await setup();
    const story = 'The quick brown fox jumps over the lazy dog. '.repeat(8);
    const txt = file('a.txt', story);
    const rows = jsonl('b.jsonl', [
      { text: 'Pruning removes weights.' },
      { body: 'x', text: 'A reasoning model thinks before it answers.' },
    ]);
    const ids = [tok.encode(story), tok.encode('Pruning removes weights.'), tok.encode('A reasoning model thinks before it answers.')];
    const c = await buildCalibSet('text', { textFiles: [txt, rows] }, ctx, { tokenBudget: 0, maxSeqLen: 32 });
    assert.deepEqual(
      c.sequences.flatMap((s) => s.ids),
      ids.flat(),
    );
    assert.ok(c.sequences.every((s) => s.ids.length <= 32));
    assert.equal(c.sequences.length, Math.ceil(ids[0]!.length / 32) + 2);
    assert.equal(c.source['prompt_tokens'], 0);
    assert.equal(c.source['decode_share'], undefined);
    const cut = await buildCalibSet('text', { textFiles: [txt, rows] }, ctx, { tokenBudget: 70, maxSeqLen: 32 });
    assert.equal(cut.tokens, 70);
    const f = jsonl('c.jsonl', [{ content: 'hello' }]);
    await assert.rejects(
      buildCalibSet('text', { textFiles: [f] }, ctx, { tokenBudget: 0, maxSeqLen: 32 }),
      /c\.jsonl:1: no string field "text"/,
    );
    assert.equal(
      (await buildCalibSet('text', { textFiles: [f], textField: 'content' }, ctx, { tokenBudget: 0, maxSeqLen: 32 })).tokens,
      tok.encode('hello').length,
    );
  });

  it('equal budgets: prompt, rac and text each give exactly the budget', async () => {
    const { ctx, V } = await setup();
    const ds = jsonl('ds.jsonl', PROBLEMS);
    const t = tracesFile(V, 12);
    const txt = file('t.txt', 'Let x = 3 and y = x * 4 - 2. Then y = 10, so x + y = 13. '.repeat(20));
    const inputs = { dataset: { path: ds }, traces: [t.path], textFiles: [txt] };
    for (const mode of ['prompt', 'rac', 'text'] as const) {
      const c = await buildCalibSet(mode, inputs, ctx, { tokenBudget: 200, maxSeqLen: 64 });
      assert.equal(c.tokens, 200, mode);
      assert.equal(sum(c.sequences.map((s) => s.ids.length)), 200, mode);
      assert.equal(c.source['exhausted'], false, mode);
    }
  });

  it('mix: token shares of the budget (largest remainder), per-source weights, components in the source', async () => {
    const { ctx, V } = await setup();
    const t = tracesFile(V, 12);
    const txt = file('t.txt', 'Wait, let me check that again. Alternatively, we can subtract first. '.repeat(20));
    const c = await buildCalibSet(
      'mix',
      { traces: [t.path], textFiles: [txt], mix: { rac: 0.75, text: 0.25 }, weights: { text: 0.5 } },
      ctx,
      { tokenBudget: 301, maxSeqLen: 64 },
    );
    assert.equal(c.tokens, 301);
    const comps = c.source['components'] as Record<string, unknown>[];
    assert.deepEqual(
      comps.map((x) => [x['mode'], x['tokens']]),
      [
        ['rac', 226],
        ['text', 75],
      ],
    );
    const rac = c.sequences.filter((s) => s.weight === 1);
    const text = c.sequences.filter((s) => s.weight === 0.5);
    assert.equal(sum(rac.map((s) => s.ids.length)), 226);
    assert.equal(sum(text.map((s) => s.ids.length)), 75);
    assert.deepEqual(c.source['shares'], { rac: 0.75, text: 0.25 });
    assert.deepEqual(c.source['weights'], { rac: 1, text: 0.5 });
    assert.equal(typeof c.source['decode_share_rac'], 'number');
    assert.deepEqual(splitBudget(10, { rac: 1, text: 1, prompt: 1 }), [
      ['rac', 4],
      ['text', 3],
      ['prompt', 3],
    ]);
    assert.deepEqual(parseSourceMap('rac:0.75, text:0.25', 'mix'), { rac: 0.75, text: 0.25 });
    assert.throws(() => parseSourceMap('c4:1', '--mix'), /unknown source "c4"/);
    assert.throws(() => parseSourceMap('rac=x', '--mix'), /SOURCE:NUMBER/);
    await assert.rejects(
      buildCalibSet('mix', { traces: [t.path], mix: { rac: 1 } }, ctx, { tokenBudget: 0, maxSeqLen: 64 }),
      /needs a token budget/,
    );
  });

  it('pack: documents of one weight are concatenated (eos-separated) into full max_seq_len chunks', async () => {
    const { ctx, tok, V } = await setup();
    const t = tracesFile(V, 6);
    const full = t.prompt.map((p, i) => [...p, ...t.completion[i]!]);
    const eos = tok.eosTokenId!;
    const c = await buildCalibSet('rac', { traces: [t.path] }, ctx, { tokenBudget: 0, maxSeqLen: 40, pack: true });
    const stream = full.flatMap((f, i) => (i === 0 ? f : [eos, ...f]));
    assert.deepEqual(
      c.sequences.flatMap((s) => s.ids),
      stream,
    );
    assert.ok(c.sequences.slice(0, -1).every((s) => s.ids.length === 40));
    assert.equal(c.source['prompt_tokens'], sum(t.prompt.map((p) => p.length)));
    assert.equal(c.source['pack'], true);
  });

  it('position classes: prompt, thinking through </think>, answer — aligned with the ids when truncated, split or packed', async () => {
    const { ctx, tok, V } = await setup();
    const end = thinkEndIds(tok)!;
    assert.ok(end.length >= 1);
    const rows = [
      { p: [1, 2, 3], c: [4, 5, ...end, 6, 7] },
      { p: [8, 9], c: [10, 11, 12] }, // no </think>: all thinking (a cut chain of thought)
      { p: [13], c: [...end, 14] },
    ].map((r) => ({ ...r, p: r.p.map((x) => x % V), c: r.c.map((x) => x % V) }));
    const path = jsonl(
      'classes.jsonl',
      rows.map((r) => ({ prompt_ids: r.p, completion_ids: r.c })),
    );
    const expected = rows.map((r) => {
      const k = r.c.findIndex((_, i) => end.every((e, j) => r.c[i + j] === e));
      return [...r.p.map(() => CLASS_PROMPT), ...r.c.map((_, i) => (k >= 0 && i >= k + end.length ? CLASS_ANSWER : CLASS_THINK))];
    });
    const c = await buildCalibSet('rac', { traces: [path] }, ctx, { tokenBudget: 0, maxSeqLen: 4096 });
    assert.deepEqual(
      c.sequences.map((s) => Array.from(s.classes!)),
      expected,
    );
    assert.equal(c.source['think_tokens'], expected.flat().filter((x) => x === CLASS_THINK).length);
    assert.equal(c.source['answer_tokens'], expected.flat().filter((x) => x === CLASS_ANSWER).length);
    const sp = await buildCalibSet('rac', { traces: [path] }, ctx, { tokenBudget: 0, maxSeqLen: 3, overflow: 'split' });
    assert.deepEqual(
      sp.sequences.flatMap((s) => Array.from(s.classes!)),
      expected.flat(),
    );
    for (const s of sp.sequences) assert.equal(s.classes!.length, s.ids.length);
    const pk = await buildCalibSet('rac', { traces: [path] }, ctx, { tokenBudget: 0, maxSeqLen: 4, pack: true });
    // the eos separators between documents (none after a document that filled its chunk) are answer tokens
    let run = 0;
    const packed = expected.flatMap((e, i) => {
      const out = i > 0 && run % 4 !== 0 ? [CLASS_ANSWER, ...e] : e;
      run += out.length;
      return out;
    });
    assert.deepEqual(
      pk.sequences.flatMap((s) => Array.from(s.classes!)),
      packed,
    );
    for (const s of pk.sequences) assert.equal(s.classes!.length, s.ids.length);
    assert.deepEqual(positionClasses([5, 6, 7], 3, end), Uint8Array.from([0, 0, 0]));
  });

  it('errors name the file and line', async () => {
    const { ctx } = await setup();
    const bad = jsonl('bad.jsonl', [{ input_ids: [1, 2] }]);
    await assert.rejects(
      buildCalibSet('rac', { traces: [bad] }, ctx, { tokenBudget: 0, maxSeqLen: 8 }),
      (e: Error) => e instanceof CalibError && /bad\.jsonl:1: "input_ids" without "num_prompt_tokens"/.test(e.message),
    );
    const big = jsonl('big.jsonl', [{ prompt_ids: [1], completion_ids: [1e9] }]);
    await assert.rejects(
      buildCalibSet('rac', { traces: [big] }, ctx, { tokenBudget: 0, maxSeqLen: 8 }),
      /big\.jsonl:1: "completion_ids": token id 1000000000 is not an integer in \[0, \d+\)/,
    );
    const none = jsonl('none.jsonl', [{ text: 'x' }]);
    await assert.rejects(
      buildCalibSet('rac', { traces: [none] }, ctx, { tokenBudget: 0, maxSeqLen: 8 }),
      /needs "input_ids" or "prompt_ids" \+ "completion_ids"; has text/,
    );
    await assert.rejects(
      buildCalibSet('rac', { traces: [join(tempDir('cm'), 'nope.jsonl')] }, ctx, { tokenBudget: 0, maxSeqLen: 8 }),
      /nope\.jsonl: traces file not found/,
    );
    await assert.rejects(buildCalibSet('prompt', {}, ctx, { tokenBudget: 0, maxSeqLen: 8 }), /needs a dataset/);
  });
});

describe('rac prune --calib-mode', () => {
  it('rac traces → pruned checkpoint whose rac.json records the mode, files, tokens and decode share; usage errors exit 2', async () => {
    const { V } = await setup();
    const dir = checkpoint(CK);
    const t = tracesFile(V, 12);
    const out = join(tempDir('cm-cli'), 'out');
    const r = await rac(
      ...argv`prune --model ${dir} --method wanda --sparsity 0.5 --calib-mode rac --traces ${t.path} --calib-tokens 250 --max-seq-len 64
        --out ${out} --json --threads 1`,
    );
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout) as { calibration: Record<string, unknown> };
    assert.equal(s.calibration['mode'], 'rac');
    assert.equal(s.calibration['tokens'], 250);
    assert.deepEqual(s.calibration['files'], [{ file: resolve(t.path), sha256: sha(t.path) }]);
    assert.equal(typeof s.calibration['decode_share'], 'number');
    assert.deepEqual(JSON.parse(readFileSync(join(out, 'rac.json'), 'utf8')).calibration, s.calibration);
    assert.match(r.stderr, /250 calibration tokens in \d+ sequences \(rac, decode share \d+\.\d%\)/);

    const u1 = await rac(
      ...argv`prune --model ${dir} --method wanda --sparsity 0.5 --calib-mode rac --out ${join(tempDir('cm-cli'), 'o')}`,
    );
    assert.equal(u1.code, 2);
    assert.match(u1.stderr, /--calib-mode rac needs --traces/);
    const u2 = await rac('prune', '--model', dir, '--method', 'wanda', '--sparsity', '0.5', '--out', join(tempDir('cm-cli'), 'o'));
    assert.equal(u2.code, 2);
    assert.match(u2.stderr, /exactly one of --calib FILE or --calib-mode MODE/);
  });
});
