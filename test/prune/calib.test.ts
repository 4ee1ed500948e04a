/**
 * Calibration sets: JSONL rows of input_ids / text with optional weights, the token budget, max
 * length (truncate | split), errors naming file:line, batching; and a sequence of weight w
 * calibrating exactly like the sequence repeated w times.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { Model } from '../../src/models/model.ts';
import { CalibError, limitSequences, makeBatches, readCalibJsonl, type CalibSequence } from '../../src/prune/calib.ts';
import { pruneCheckpoint } from '../../src/prune/prune.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { calibSet, randomSequences, readAll, readSummary } from '../helpers/prune.ts';

const V = 1000;
const NO_LIMIT = { tokenBudget: 0, maxSeqLen: 1 << 20 };

function jsonl(name: string, rows: (unknown | string)[]): string {
  const f = join(tempDir('calib'), name);
  writeFileSync(f, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return f;
}

const range = (a: number, n: number) => Array.from({ length: n }, (_, i) => a + i);

/** A deterministic stand-in tokenizer: one id per character code. */
const charTok = { encode: (s: string) => [...s].map((c) => c.charCodeAt(0) % V) };

function calibError(fn: () => unknown, mentions: string[], problem: RegExp): void {
  assert.throws(fn, (e: Error) => {
    assert.ok(e instanceof CalibError, `${e.name}: ${e.message}`);
    assert.ok(!e.message.includes('\n'), e.message);
    for (const m of mentions) assert.ok(e.message.includes(m), `${JSON.stringify(e.message)} does not mention ${m}`);
    assert.match(e.message, problem);
    return true;
  });
}

describe('readCalibJsonl', () => {
  it('reads input_ids, text and weight rows in order; blank lines skipped; source recorded', () => {
    const f = jsonl('mixed.jsonl', [
      { input_ids: [1, 2, 3] },
      '',
      { text: 'hey', weight: 2.5 },
      '   ',
      { input_ids: [7], weight: 4, num_prompt_tokens: 1 },
    ]);
    const c = readCalibJsonl(f, charTok, V, NO_LIMIT);
    assert.deepEqual(c.sequences, [
      { ids: [1, 2, 3], weight: 1 },
      { ids: charTok.encode('hey'), weight: 2.5 },
      { ids: [7], weight: 4 },
    ]);
    assert.equal(c.tokens, 7);
    assert.equal(c.source['file'], resolve(f));
    assert.equal(c.source['rows'], 'input_ids+text');
    assert.match(String(c.source['sha256']), /^[0-9a-f]{64}$/);
  });

  it('text rows go through the model tokenizer', async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 5 });
    const tok = await RacTokenizer.load(dir);
    const m = Model.open(dir);
    const vocab = m.config.vocabSize;
    m.close();
    const f = jsonl('text.jsonl', [{ text: 'The answer is \\boxed{42}.' }]);
    const c = readCalibJsonl(f, tok, vocab, NO_LIMIT);
    assert.deepEqual(c.sequences[0]!.ids, tok.encode('The answer is \\boxed{42}.'));
    assert.ok(c.sequences[0]!.ids.length > 3);
    calibError(() => readCalibJsonl(f, null, vocab, NO_LIMIT), [`${resolve(f)}:1`], /needs the model's tokenizer/);
  });

  it('the token budget is met exactly: the last sequence is cut', () => {
    const f = jsonl('budget.jsonl', [{ input_ids: range(0, 10) }, { input_ids: range(10, 10) }, { input_ids: range(20, 10) }]);
    const c = readCalibJsonl(f, null, V, { tokenBudget: 25, maxSeqLen: 100 });
    assert.equal(c.tokens, 25);
    assert.deepEqual(
      c.sequences.map((s) => s.ids),
      [range(0, 10), range(10, 10), range(20, 5)],
    );
    assert.equal(c.source['token_budget'], 25);
    // a budget above the file keeps everything
    assert.equal(readCalibJsonl(f, null, V, { tokenBudget: 1000, maxSeqLen: 100 }).tokens, 30);
  });

  it('the budget is filled even when rows are much longer than the max length (truncate)', () => {
    // 40 rows of 300 ids truncated to 100: a budget of 1000 needs 10 rows.
    const f = jsonl(
      'long.jsonl',
      Array.from({ length: 40 }, (_, i) => ({ input_ids: range(i, 300) })),
    );
    const c = readCalibJsonl(f, null, V, { tokenBudget: 1000, maxSeqLen: 100 });
    assert.equal(c.tokens, 1000);
    assert.equal(c.sequences.length, 10);
    for (const [i, s] of c.sequences.entries()) assert.deepEqual(s.ids, range(i, 100));
  });

  it('max length: truncate keeps the head, split keeps every chunk', () => {
    const f = jsonl('split.jsonl', [{ input_ids: range(0, 25), weight: 3 }, { input_ids: range(100, 4) }]);
    const t = readCalibJsonl(f, null, V, { tokenBudget: 0, maxSeqLen: 10, overflow: 'truncate' });
    assert.deepEqual(t.sequences, [
      { ids: range(0, 10), weight: 3 },
      { ids: range(100, 4), weight: 1 },
    ]);
    assert.equal(t.tokens, 14);
    const s = readCalibJsonl(f, null, V, { tokenBudget: 0, maxSeqLen: 10, overflow: 'split' });
    assert.deepEqual(s.sequences, [
      { ids: range(0, 10), weight: 3 },
      { ids: range(10, 10), weight: 3 },
      { ids: range(20, 5), weight: 3 },
      { ids: range(100, 4), weight: 1 },
    ]);
    assert.equal(s.tokens, 29);
    // split + budget: cut inside a chunk
    const sb = readCalibJsonl(f, null, V, { tokenBudget: 17, maxSeqLen: 10, overflow: 'split' });
    assert.deepEqual(
      sb.sequences.map((x) => x.ids),
      [range(0, 10), range(10, 7)],
    );
    assert.equal(sb.tokens, 17);
  });

  it('errors name file:line', () => {
    const bad = (name: string, rows: (unknown | string)[], line: number, problem: RegExp) => {
      const f = jsonl(name, rows);
      calibError(() => readCalibJsonl(f, charTok, V, NO_LIMIT), [`${resolve(f)}:${line}`], problem);
    };
    bad('json.jsonl', [{ input_ids: [1] }, '{"input_ids": [1, 2', { input_ids: [3] }], 2, /invalid JSON/);
    bad(
      'vocab.jsonl',
      [{ input_ids: [1] }, { input_ids: [1] }, { input_ids: [5, V] }],
      3,
      new RegExp(`token id ${V} is not an integer in \\[0, ${V}\\)`),
    );
    bad('negid.jsonl', [{ input_ids: [-1] }], 1, /token id -1/);
    bad('frac.jsonl', [{ input_ids: [1.5] }], 1, /token id 1.5/);
    bad('negw.jsonl', [{ input_ids: [1] }, '', { input_ids: [2], weight: -1 }], 3, /"weight" must be a positive number, got -1/);
    bad('zerow.jsonl', [{ input_ids: [2], weight: 0 }], 1, /"weight" must be a positive number/);
    bad('strw.jsonl', [{ input_ids: [2], weight: '2' }], 1, /"weight" must be a positive number/);
    bad('emptyids.jsonl', [{ input_ids: [] }], 1, /non-empty array/);
    bad('noids.jsonl', [{ prompt: 'x' }], 1, /expected "input_ids" \(array\) or "text" \(string\)/);
    bad('array.jsonl', [[1, 2, 3]], 1, /expected a JSON object per line/);
  });

  it('an empty file, a missing file, bad limits', () => {
    const f = jsonl('empty.jsonl', []);
    calibError(() => readCalibJsonl(f, null, V, NO_LIMIT), [resolve(f)], /no calibration rows/);
    const missing = join(tempDir('calib'), 'nope.jsonl');
    calibError(() => readCalibJsonl(missing, null, V, NO_LIMIT), [`${missing}: file not found`], /file not found/);
    const ok = jsonl('ok.jsonl', [{ input_ids: [1] }]);
    calibError(() => readCalibJsonl(ok, null, V, { tokenBudget: -1, maxSeqLen: 10 }), [], /token budget/);
    calibError(() => readCalibJsonl(ok, null, V, { tokenBudget: 0, maxSeqLen: 0 }), [], /max sequence length/);
  });
});

describe('limitSequences and makeBatches', () => {
  it('limitSequences keeps order and weights', () => {
    const raw: CalibSequence[] = [
      { ids: range(0, 5), weight: 2 },
      { ids: range(5, 5), weight: 0.5 },
    ];
    assert.deepEqual(limitSequences(raw, { tokenBudget: 7, maxSeqLen: 100 }), {
      sequences: [
        { ids: range(0, 5), weight: 2 },
        { ids: range(5, 2), weight: 0.5 },
      ],
      tokens: 7,
    });
    assert.equal(limitSequences(raw, { tokenBudget: 5, maxSeqLen: 100 }).sequences.length, 1);
  });

  it('B·T ≤ batchTokens (except a lone over-long sequence), every sequence exactly once', () => {
    const seqs = randomSequences(V, 57, 1, 90, 3).map((s, i) => ({ ...s, weight: i + 1 }));
    for (const bt of [1, 64, 90, 100, 333, 1 << 20]) {
      const batches = makeBatches(seqs, bt);
      const seen: CalibSequence[] = [];
      for (const b of batches) {
        assert.ok(b.length > 0);
        const T = Math.max(...b.map((s) => s.ids.length));
        if (b.length > 1 || T <= bt) assert.ok(b.length * T <= bt, `batch tokens ${bt}: B·T = ${b.length}·${T}`);
        seen.push(...b);
      }
      assert.equal(seen.length, seqs.length);
      assert.equal(new Set(seen).size, seqs.length, `batch tokens ${bt}: a sequence repeated or lost`);
      if (bt === 1 << 20) assert.equal(batches.length, 1);
      if (bt === 1) assert.equal(batches.length, seqs.length);
    }
    assert.throws(() => makeBatches(seqs, 0), CalibError);
    assert.throws(() => makeBatches(seqs, 2.5), CalibError);
  });
});

describe('sequence weights', () => {
  it('a sequence of weight 4 calibrates exactly like the sequence repeated 4 times', async () => {
    const dir = checkpoint({ family: 'qwen2', seed: 81, hidden: 64, layers: 2 });
    const model = Model.open(dir);
    try {
      const seqs = randomSequences(model.config.vocabSize, 10, 20, 60, 9);
      const [heavy, ...rest] = seqs;
      const weighted = calibSet([{ ...heavy!, weight: 4 }, ...rest]);
      const repeated = calibSet([heavy!, heavy!, heavy!, heavy!, ...rest]);
      // and a control: weight 1 must NOT look like the repeated set
      const plain = calibSet(seqs);
      const outs: string[] = [];
      for (const c of [weighted, repeated, plain]) {
        const out = join(tempDir('weights'), 'out');
        await pruneCheckpoint(
          model,
          c,
          out,
          { method: 'wanda', target: { kind: 'unstructured', sparsity: 0.5 }, linears: 'all', batchTokens: 256, runtime: { threads: 1 } },
          't',
        );
        outs.push(out);
      }
      const [a, b, p] = outs.map((o) => readAll(o));
      let diffPlain = 0;
      for (const [n, t] of a!) {
        assert.deepEqual(t.data, b!.get(n)!.data, `${n}: weight 4 vs repeated ×4 differ`);
        if (!t.data.every((x, i) => x === p!.get(n)!.data[i])) diffPlain++;
      }
      assert.ok(diffPlain > 0, 'weight 4 gave the same masks as weight 1: weights are ignored');
      const [sa, sb] = [readSummary(outs[0]!), readSummary(outs[1]!)];
      for (const l of sa.layers) {
        for (const [k, r] of Object.entries(l.linears)) {
          const o = sb.layers[l.layer]!.linears[k as keyof typeof l.linears]!;
          assert.ok(
            Math.abs(o.output_norm! - r!.output_norm!) <= 1e-4 * r!.output_norm!,
            `${l.layer}.${k} output_norm ${r!.output_norm} vs ${o.output_norm}`,
          );
          assert.ok(
            Math.abs(o.output_error! - r!.output_error!) <= 1e-4 * r!.output_error!,
            `${l.layer}.${k} output_error ${r!.output_error} vs ${o.output_error}`,
          );
        }
      }
    } finally {
      model.close();
    }
  });
});
