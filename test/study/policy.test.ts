/**
 * Issue 16 (calibration from the pruned model's policy, trace selection) and issue 11 item 4 (one
 * job description): the settings table read from flags and from recipes alike, unknown keys and
 * bad values refused; trace selection before the budget (equal budgets); trace sets with exact
 * per-set token counts; graded traces; staged refresh and the two-pass mix around the pruner with a
 * stand-in trace generator (who it is called with, what rac.json records).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { Model } from '../../src/models/model.ts';
import { buildCalibSet, splitShares, type CalibModeContext } from '../../src/prune/calib-modes.ts';
import { CalibError } from '../../src/prune/calib.ts';
import { traceGrader } from '../../src/study/eval.ts';
import {
  addFieldOptions,
  PRUNER_SUPPORTS,
  PRUNE_DEFAULTS,
  PRUNE_FIELDS,
  readFields,
  settingsFromFlags,
  settingsProblem,
} from '../../src/study/job.ts';
import { prunePolicy, stageRuns, variantLabel, type GeneratedTraces, type PolicyJob } from '../../src/study/policy.ts';
import { loadRecipe, RecipeError, runRecipe } from '../../src/study/run.ts';
import { selectTraces, type TraceSelection } from '../../src/prune/select.ts';
import { readTraceFile, runTrace, type TraceSettings } from '../../src/study/trace.ts';
import { FAMILIES, generateSplit } from '../../src/tasks/tiny/index.ts';
import { ScriptedBackend } from '../helpers/backends.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, racWith, ROOT } from '../helpers/cli.ts';
import { writeTinyDataset } from '../helpers/datasets.ts';
import { readSummary, zerosIn } from '../helpers/prune.ts';

const CK = { family: 'qwen2', seed: 41, layers: 4, hidden: 32, heads: 2, kvHeads: 1, intermediate: 64 } as const;

/** Trace rows: prompt p has samples 0..n-1; `correct` by `solved(p, s)`; completion length by `len(p, s)`. */
function traceRows(
  V: number,
  prompts: number,
  n: number,
  o: {
    model?: string;
    solved?: (p: number, s: number) => boolean;
    len?: (p: number, s: number) => number;
    truncated?: (p: number, s: number) => boolean;
  } = {},
) {
  const rows = [];
  for (let p = 0; p < prompts; p++) {
    for (let s = 0; s < n; s++) {
      const pr = Array.from({ length: 4 }, (_, k) => (p * 7 + k) % V);
      const c = Array.from({ length: o.len ? o.len(p, s) : 10 }, (_, k) => (p * 13 + s * 5 + k * 3 + 1) % V);
      rows.push({
        prompt_id: `q${p}`,
        sample: s,
        prompt_ids: pr,
        completion_ids: c,
        input_ids: [...pr, ...c],
        num_prompt_tokens: pr.length,
        num_decode_tokens: c.length,
        finish_reason: o.truncated?.(p, s) ? 'length' : 'stop',
        model: o.model ?? 'sha256:dense',
        ...(o.solved ? { correct: o.solved(p, s) } : {}),
      });
    }
  }
  return rows;
}

function writeRows(dir: string, name: string, rows: object[]): string {
  const f = join(dir, name);
  writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return f;
}

const SEL: TraceSelection = { correct: 'any', dropTruncated: false, minTokens: 0, maxTokens: 0, difficulty: 'any' };

describe('job settings: one table for flags and recipes', () => {
  it('flags and recipe keys give the same settings; defaults are PRUNE_DEFAULTS (max_seq_len 8192 from both)', () => {
    const cmd = addFieldOptions(new Command().exitOverride());
    cmd.parse(
      argv`--calib-tokens 5000 --refresh-stages 2 --refresh-share 0.5 --select-correct correct --select-drop-truncated
        --select-max-tokens 300 --no-error-stats --layers 0-2 --mix rac:0.75,text:0.25`,
      { from: 'user' },
    );
    const fromFlags = settingsFromFlags(cmd.opts());
    const fromRecipe = readFields(
      {
        tokens: 5000,
        refresh_stages: 2,
        refresh_share: 0.5,
        select_correct: 'correct',
        select_drop_truncated: true,
        select_max_tokens: 300,
        error_stats: false,
        layers: '0-2',
        mix: { rac: 0.75, text: 0.25 },
      },
      'prune[0]',
      PRUNE_DEFAULTS,
      PRUNE_FIELDS,
    );
    assert.deepEqual(fromFlags, fromRecipe);
    assert.equal(fromFlags.maxSeqLen, 8192);
    const none = settingsFromFlags(addFieldOptions(new Command()).parse([], { from: 'user' }).opts());
    assert.deepEqual(none, PRUNE_DEFAULTS);
    assert.equal(PRUNE_DEFAULTS.maxSeqLen, 8192);
  });

  it('bad values are refused naming the flag or key', () => {
    const cmd = addFieldOptions(new Command().exitOverride().configureOutput({ writeErr: () => {} }));
    assert.throws(() => cmd.parse(['--refresh-share', '0'], { from: 'user' }), /--refresh-share must be a number in \(0, 1\]/);
    assert.throws(
      () => readFields({ select_correct: 'maybe' }, 'prune[1]', PRUNE_DEFAULTS, PRUNE_FIELDS),
      /"prune\[1\]\.select_correct" must be one of any, correct, incorrect/,
    );
    assert.throws(
      () => readFields({ token_weights: { prompt: 0, decode: 1 } }, 'calibration', PRUNE_DEFAULTS, PRUNE_FIELDS),
      /unknown class "decode"/,
    );
    assert.throws(
      () => readFields({ max_seq_len: '512' }, 'calibration', PRUNE_DEFAULTS, PRUNE_FIELDS),
      /"calibration\.max_seq_len" must be an integer ≥ 1/,
    );
  });

  it('combinations that cannot run are named', () => {
    const s = { ...PRUNE_DEFAULTS, refreshStages: 2 };
    assert.match(settingsProblem(s, 'prompt')!, /need calibration mode rac/);
    assert.match(settingsProblem(s, 'rac')!, /need a calibration token budget/);
    assert.equal(settingsProblem({ ...s, calibTokens: 100 }, 'rac'), null);
    assert.match(settingsProblem({ ...s, calibTokens: 100, twoPassShare: 0.5 }, 'rac')!, /alternatives/);
    assert.match(settingsProblem({ ...PRUNE_DEFAULTS, selectCorrect: 'correct' }, 'text')!, /needs calibration mode rac or mix/);
    if (!PRUNER_SUPPORTS.tokenWeights)
      assert.match(settingsProblem({ ...PRUNE_DEFAULTS, tokenWeights: { prompt: 0, think: 1, answer: 1 } }, 'rac')!, /token_weights/);
    else assert.equal(settingsProblem({ ...PRUNE_DEFAULTS, tokenWeights: { prompt: 0, think: 1, answer: 1 } }, 'rac'), null);
    assert.match(
      settingsProblem({ ...PRUNE_DEFAULTS, sparsityProfile: 'owl' }, 'rac', { kind: 'nm', n: 2, m: 4 })!,
      /sparsity_profile owl|owl needs an unstructured/,
    );
  });

  it('recipes: every key parsed into the entry settings; unknown keys refused in calibration and in prune entries', () => {
    const d = tempDir('recipe');
    writeFileSync(join(d, 'c.jsonl'), '{"prompt":"x","answer":"1"}\n');
    const write = (calib: string, entry: string) => {
      writeFileSync(
        join(d, 'r.yaml'),
        `model: m\ntask: tiny\ndatasets: {calib: c.jsonl, eval: c.jsonl}\ncalibration: {tokens: 4000, max_seq_len: 256${calib}}\nprune:\n  - {method: sparsegpt, calib: [rac], sparsity: 0.6${entry}}\n`,
      );
      return join(d, 'r.yaml');
    };
    const r = loadRecipe(write(', select_drop_truncated: true', ', two_pass_share: 0.5, blocksize: 64, select_difficulty: mixed'));
    const st = r.prune[0]!.settings;
    assert.equal(st.calibTokens, 4000);
    assert.equal(st.maxSeqLen, 256);
    assert.equal(st.twoPassShare, 0.5);
    assert.equal(st.blocksize, 64);
    assert.equal(st.selectDropTruncated, true); // from calibration:, inherited by the entry
    assert.equal(st.selectDifficulty, 'mixed');
    assert.equal(loadRecipe(write('', '')).prune[0]!.settings.maxSeqLen, 256);
    assert.throws(
      () => loadRecipe(write(', refresh_stage: 2', '')),
      (e: Error) => e instanceof RecipeError && /"calibration": unknown key "refresh_stage"/.test(e.message),
    );
    assert.throws(
      () => loadRecipe(write('', ', two_pass: 0.5')),
      (e: Error) => e instanceof RecipeError && /prune\[0\]: unknown key "two_pass"/.test(e.message),
    );
    assert.throws(() => loadRecipe(write('', ', blocksize: 64')) && loadRecipe(write(', blocksize: 64', '')), /unknown key "blocksize"/);
    assert.throws(() => loadRecipe(write('', ', refresh_stages: 2, two_pass_share: 0.5')), /alternatives/);
    assert.equal(loadRecipe(write('', ', sparsity_profile: owl, owl_lambda: 0.05')).prune[0]!.settings.owlLambda, 0.05);
    assert.throws(
      () => loadRecipe(write('', ", pattern: '2:4', sparsity_profile: owl")),
      /sparsity_profile owl needs sparsity, not pattern/,
    );
    // the example recipe parses up to the options this build's pruner lacks
    const example = join(ROOT, 'examples', 'ablation-60.yaml');
    if (PRUNER_SUPPORTS.tokenWeights && PRUNER_SUPPORTS.sparsityProfile) assert.equal(loadRecipe(example).prune.length, 11);
    else assert.throws(() => loadRecipe(example), /prune\[4\]: token_weights: this build of the pruner/);
  });
});

describe('trace selection', () => {
  it("filters by grade, truncation, length band and difficulty (judged on all of a prompt's samples)", () => {
    // 6 prompts × 3 samples: prompt p solved in (p mod 4) of its 3 samples (0, 1, 2, 3 solved); sample 2 truncated; length 5 + 10·s
    const rows = traceRows(50, 6, 3, { solved: (p, s) => s < p % 4, len: (_p, s) => 5 + 10 * s, truncated: (_p, s) => s === 2 }).map(
      (row, i) => ({ row: row as Record<string, unknown>, where: `r${i}` }),
    );
    const ids = (sel: Partial<TraceSelection>) =>
      selectTraces(rows, { ...SEL, ...sel }).kept.map((r) => `${r.row['prompt_id']}/${r.row['sample']}`);
    assert.deepEqual(ids({ correct: 'correct' }), ['q1/0', 'q2/0', 'q2/1', 'q3/0', 'q3/1', 'q3/2', 'q5/0']);
    assert.equal(ids({ correct: 'incorrect' }).length, 18 - 7);
    assert.equal(ids({ dropTruncated: true }).length, 12);
    assert.deepEqual(
      ids({ minTokens: 10, maxTokens: 20 }).map((x) => x.split('/')[1]),
      Array(6).fill('1'),
    );
    // mixed: prompts solved in 1 or 2 of 3 samples: q1, q2, q5 (q0, q4: none; q3: all)
    const mixed = selectTraces(rows, { ...SEL, difficulty: 'mixed' });
    assert.deepEqual([...new Set(mixed.kept.map((r) => r.row['prompt_id']))], ['q1', 'q2', 'q5']);
    assert.equal(mixed.counts.mixed_prompts, 3);
    assert.equal(mixed.counts.dropped.difficulty, 9);
    const both = selectTraces(rows, { ...SEL, difficulty: 'mixed', correct: 'correct', dropTruncated: true });
    assert.deepEqual(both.counts, {
      rows: 18,
      kept: 4,
      dropped: { correct: 5, truncated: 0, length: 0, difficulty: 9 },
      prompts: 6,
      mixed_prompts: 3,
    });
  });

  it('errors: no grades, a single sample per prompt, nothing kept', () => {
    const ungraded = traceRows(50, 2, 2).map((row, i) => ({ row: row as Record<string, unknown>, where: `t.jsonl:${i + 1}` }));
    assert.throws(
      () => selectTraces(ungraded, { ...SEL, correct: 'correct' }),
      /t\.jsonl:1: trace selection by grade or difficulty needs a "correct" field/,
    );
    const single = traceRows(50, 3, 1, { solved: () => true }).map((row, i) => ({ row: row as Record<string, unknown>, where: `${i}` }));
    assert.throws(() => selectTraces(single, { ...SEL, difficulty: 'mixed' }), /needs ≥ 2 samples per prompt/);
    assert.throws(
      () => selectTraces(single, { ...SEL, correct: 'incorrect' }),
      (e: Error) => e instanceof CalibError && /keeps none of 3 traces/.test(e.message),
    );
  });

  it('selection happens before the budget: every selection fills the same budget exactly, counts recorded', async () => {
    const d = tempDir('sel');
    const f = writeRows(
      d,
      't.jsonl',
      traceRows(100, 40, 2, { solved: (p, s) => (p + s) % 3 !== 0, len: (p) => 8 + (p % 5), truncated: (p) => p % 7 === 0 }),
    );
    const ctx: CalibModeContext = { tokenizer: null, vocabSize: 100 };
    const shape = { tokenBudget: 300, maxSeqLen: 64 };
    const plain = await buildCalibSet('rac', { traces: [f] }, ctx, shape);
    const sel = await buildCalibSet('rac', { traces: [f], select: { ...SEL, correct: 'correct', dropTruncated: true } }, ctx, shape);
    assert.equal(plain.tokens, 300);
    assert.equal(sel.tokens, 300);
    const rec = sel.source['selection'] as Record<string, unknown>;
    assert.equal(rec['correct'], 'correct');
    assert.equal(rec['rows'], 80);
    const kept = traceRows(100, 40, 2, { solved: (p, s) => (p + s) % 3 !== 0, truncated: (p) => p % 7 === 0 }).filter(
      (r) => r.correct && r.finish_reason !== 'length',
    ).length;
    assert.equal(rec['kept'], kept);
    assert.equal(sel.source['exhausted'], false);
  });
});

describe('trace sets (two-pass mix)', () => {
  it('the budget splits exactly by share; each set records its producer, models and tokens', async () => {
    const d = tempDir('sets');
    const dense = writeRows(d, 'dense.jsonl', traceRows(100, 30, 2, { model: 'sha256:dense' }));
    const pruned = writeRows(d, 'pruned.jsonl', traceRows(100, 30, 2, { model: 'sha256:pruned' }));
    const ctx: CalibModeContext = { tokenizer: null, vocabSize: 100 };
    for (const [budget, share] of [
      [1000, 0.3],
      [777, 0.5],
      [101, 0.25],
    ] as const) {
      const c = await buildCalibSet(
        'rac',
        {
          traceSets: [
            { producer: 'dense', files: [dense], share: 1 - share },
            { producer: 'pruned pass 1', files: [pruned], share },
          ],
        },
        ctx,
        { tokenBudget: budget, maxSeqLen: 64 },
      );
      const sets = c.source['trace_sets'] as { producer: string; tokens: number; models: string[] }[];
      const [a, b] = splitShares(budget, [1 - share, share]);
      assert.equal(c.tokens, budget);
      assert.deepEqual(
        sets.map((s) => [s.producer, s.tokens, s.models]),
        [
          ['dense', a, ['sha256:dense']],
          ['pruned pass 1', b, ['sha256:pruned']],
        ],
      );
      assert.equal(
        c.sequences.reduce((x, s) => x + s.ids.length, 0),
        budget,
      );
    }
    assert.deepEqual(splitShares(10, [0.5, 0.5]), [5, 5]);
    assert.deepEqual(splitShares(7, [1, 1, 1]), [3, 2, 2]);
  });
});

/** Sample i of request r answers r when its stream is even, 99 when odd: half the samples are right. */
const graded = () =>
  new ScriptedBackend((index, _sample, stream) => ({ text: `<think>…</think> \\boxed{${stream % 2 === 0 ? index : 99}}`, ids: [1, 2, 3] }));

describe('graded traces', () => {
  it("rac trace with a grade records correct on each row that has an answer (rac eval's tiny grader)", async () => {
    const out = join(tempDir('graded'), 't.jsonl');
    const settings: TraceSettings = {
      dataset: { sha256: 'x', prompt_column: 'prompt', id_column: null },
      system: null,
      template_flags: {},
      n: 2,
      max_new_tokens: 8,
      temperature: 0.6,
      top_p: 0.95,
      top_k: 0,
      seed: 0,
      stop: [],
      grade: 'tiny',
    };
    const prompts = Array.from({ length: 4 }, (_, i) => ({
      id: `p${i}`,
      index: i,
      ...(i < 3 ? { answer: String(i) } : {}),
      render: () => ({ text: 'q', ids: [5, 6] }),
    }));
    await runTrace({ out, backend: graded(), prompts, settings, tokenBudget: 0, batchSize: 8, grader: traceGrader('tiny')! });
    const recs = readTraceFile(out).records;
    assert.deepEqual(
      recs.map((r) => [r.prompt_id, r.sample, r.correct]),
      [
        ['p0', 0, true],
        ['p0', 1, false],
        ['p1', 0, true],
        ['p1', 1, false],
        ['p2', 0, true],
        ['p2', 1, false],
        ['p3', 0, undefined],
        ['p3', 1, undefined],
      ],
    );
    await assert.rejects(
      runTrace({ out: join(tempDir('graded'), 'u.jsonl'), backend: graded(), prompts, settings, tokenBudget: 0, batchSize: 8 }),
      /settings\.grade is tiny but no grader/,
    );
  });
});

/** Layer l's fraction of zeros over its Linears in a checkpoint. */
function layerSparsity(dir: string, l: number): number {
  const m = Model.open(dir);
  try {
    const w = m.layerWeights(l);
    let z = 0;
    let n = 0;
    for (const W of Object.values(w.linears)) {
      z += zerosIn(W);
      n += W.length;
    }
    return z / n;
  } finally {
    m.close();
  }
}

/**
 * SparseGPT under a policy on the dense checkpoint: its traces (1,000 tokens of them) and the
 * stand-in generator, rows of 64 tokens, the PRUNE_DEFAULTS but for `settings`.
 */
function sparsegptPolicy(
  dense: string,
  out: string,
  denseTraces: string,
  generate: PolicyJob['generate'],
  target: PolicyJob['target'],
  settings: Partial<PolicyJob['settings']>,
): ReturnType<typeof prunePolicy> {
  return prunePolicy({
    model: dense,
    out,
    method: 'sparsegpt',
    target,
    settings: { ...PRUNE_DEFAULTS, maxSeqLen: 64, ...settings },
    runtime: {},
    denseTraces: [denseTraces],
    denseTraceBudget: 1000,
    ctx: { tokenizer: null, vocabSize: 200 },
    generate,
    version: 'test',
  });
}

describe("calibration from the pruned model's policy", () => {
  it('stageRuns: contiguous, near-equal runs', () => {
    assert.deepEqual(stageRuns([0, 1, 2, 3], 2), [
      [0, 1],
      [2, 3],
    ]);
    assert.deepEqual(stageRuns([0, 1, 2, 3, 4], 3), [[0, 1], [2, 3], [4]]);
    assert.throws(() => stageRuns([0, 1], 3), /exceed the selected layers/);
  });

  it('staged refresh: stage k+1 is calibrated on traces generated by the checkpoint with stage k pruned; rac.json records who made each set', async () => {
    const dense = checkpoint(CK);
    const d = tempDir('staged');
    const denseTraces = writeRows(d, 'dense.jsonl', traceRows(200, 30, 2, { model: 'sha256:dense' }));
    const calls: { dir: string; budget: number; label: string; sparsity: number[] }[] = [];
    const generate = async (dir: string, budget: number, label: string): Promise<GeneratedTraces> => {
      calls.push({ dir, budget, label, sparsity: [0, 1, 2, 3].map((l) => layerSparsity(dir, l)) });
      const rows = traceRows(200, 30, 2, { model: `sha256:stage${calls.length}`, len: () => 14 });
      return {
        file: writeRows(d, `gen-${calls.length}.jsonl`, rows),
        model: `sha256:stage${calls.length}`,
        records: rows.length,
        tokens: rows.length * 18,
        seconds: 0.5,
      };
    };
    const out = join(d, 'pruned');
    const s = await sparsegptPolicy(
      dense,
      out,
      denseTraces,
      generate,
      { kind: 'unstructured', sparsity: 0.5 },
      {
        calibTokens: 400,
        refreshStages: 2,
        refreshShare: 0.5,
      },
    );
    // one call, with the checkpoint whose layers 0-1 are pruned and 2-3 still dense
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.budget, 500);
    assert.ok(calls[0]!.sparsity[0]! > 0.49 && calls[0]!.sparsity[1]! > 0.49, JSON.stringify(calls[0]!.sparsity));
    assert.ok(calls[0]!.sparsity[2]! < 0.01 && calls[0]!.sparsity[3]! < 0.01, JSON.stringify(calls[0]!.sparsity));
    for (const l of [0, 1, 2, 3]) assert.ok(Math.abs(layerSparsity(out, l) - 0.5) < 0.01);
    const j = readSummary(out);
    assert.deepEqual(j, s);
    assert.equal(j.source_model, dense);
    assert.ok(Math.abs(j.totals.sparsity - 0.5) < 0.01);
    assert.deepEqual(
      j.layers.map((r) => r.pruned),
      [true, true, true, true],
    );
    const pol = j.calibration['policy'] as {
      kind: string;
      stages: number;
      stage_reports: {
        layers: number[];
        model: string;
        traces?: { model: string; records: number };
        calibration: { tokens: number; trace_sets?: { producer: string; tokens: number; models: string[] }[] };
      }[];
      traces_generated: number;
    };
    assert.equal(pol.kind, 'staged-refresh');
    assert.deepEqual(
      pol.stage_reports.map((r) => [r.layers, r.model]),
      [
        [[0, 1], 'dense'],
        [[2, 3], 'stage 0'],
      ],
    );
    assert.equal(pol.stage_reports[1]!.traces!.model, 'sha256:stage1');
    assert.equal(pol.traces_generated, 60);
    const sets = pol.stage_reports[1]!.calibration.trace_sets!;
    assert.deepEqual(
      sets.map((x) => [x.tokens, x.models]),
      [
        [200, ['sha256:dense']],
        [200, ['sha256:stage1']],
      ],
    );
    assert.equal(pol.stage_reports[0]!.calibration.tokens, 400);
    assert.equal(j.calibration['variant'], 'refresh2x0.5');
  });

  it('two-pass mix: the pruned pass-1 model is traced, the dense model pruned again on the mix; token counts exact', async () => {
    const dense = checkpoint(CK);
    const d = tempDir('twopass');
    const denseTraces = writeRows(d, 'dense.jsonl', traceRows(200, 30, 2, { model: 'sha256:dense' }));
    const calls: { dir: string; budget: number; sparsity: number[] }[] = [];
    const generate = async (dir: string, budget: number): Promise<GeneratedTraces> => {
      calls.push({ dir, budget, sparsity: [0, 3].map((l) => layerSparsity(dir, l)) });
      const rows = traceRows(200, 30, 2, { model: 'sha256:pass1', len: () => 20 });
      return {
        file: writeRows(d, 'gen.jsonl', rows),
        model: 'sha256:pass1',
        records: rows.length,
        tokens: rows.length * 24,
        seconds: 0.25,
      };
    };
    const out = join(d, 'pruned');
    await sparsegptPolicy(dense, out, denseTraces, generate, { kind: 'nm', n: 2, m: 4 }, { calibTokens: 333, twoPassShare: 0.4 });
    assert.equal(calls.length, 1);
    assert.equal(calls[0]!.budget, 400);
    assert.ok(
      calls[0]!.sparsity.every((x) => Math.abs(x - 0.5) < 0.01),
      'pass 1 is pruned in every layer when traced',
    );
    const j = readSummary(out);
    assert.equal(j.pattern, '2:4');
    assert.equal(j.calibration.tokens, 333);
    const sets = j.calibration['trace_sets'] as { producer: string; tokens: number; models: string[] }[];
    const [a, b] = splitShares(333, [0.6, 0.4]);
    assert.deepEqual(
      sets.map((x) => [x.producer, x.tokens, x.models]),
      [
        ['dense', a, ['sha256:dense']],
        ['pruned pass 1', b, ['sha256:pass1']],
      ],
    );
    const pol = j.calibration['policy'] as {
      kind: string;
      traces: { producer: string; model: string; records: number; seconds: number };
      prune_passes: number;
      pass_1: { calibration: { tokens: number } };
    };
    assert.equal(pol.kind, 'two-pass');
    assert.deepEqual(
      [pol.traces.producer, pol.traces.model, pol.traces.records, pol.traces.seconds],
      ['pruned pass 1', 'sha256:pass1', 60, 0.25],
    );
    assert.equal(pol.pass_1.calibration.tokens, 333);
    assert.equal(pol.prune_passes, 2);
  });
});

/** `rac` with two minutes to finish (the helper's default is one). */
const rac = (...args: string[]) => racWith({ timeoutMs: 120_000 }, ...args);

describe('rac trace --task and rac prune --two-pass-share (the tiny reasoner)', () => {
  it('graded traces, then a two-pass prune traced by the local backend: exact token split, provenance; usage errors exit 2', async () => {
    const model = join(ROOT, 'models', 'tiny-reasoner');
    const d = tempDir('cli-policy');
    const ds = join(d, 'calib.jsonl');
    writeFileSync(
      ds,
      FAMILIES.flatMap((f) => generateSplit('calib', f, 3, 1))
        .map(({ id, prompt, answer }) => JSON.stringify({ id, prompt, answer }))
        .join('\n') + '\n',
    );
    const traces = join(d, 'traces.jsonl');
    const t = await rac(
      ...argv`trace --model ${model} --dataset ${ds} --n 2 --max-new-tokens 400 --token-budget 0 --temperature 0.6 --task tiny
        --out ${traces} --threads 1 -q`,
    );
    assert.equal(t.code, 0, t.stderr);
    const recs = readTraceFile(traces).records;
    assert.equal(recs.length, 12);
    assert.ok(recs.every((r) => typeof r.correct === 'boolean'));
    assert.ok(recs.filter((r) => r.correct).length >= 6, 'the dense tiny reasoner solves most of its calibration prompts');
    const out = join(d, 'pruned');
    const p = await rac(
      ...argv`prune --model ${model} --method sparsegpt --sparsity 0.6 --calib-mode rac --traces ${traces} --dataset ${ds}
        --two-pass-share 0.5 --select-correct correct --calib-tokens 801 --max-seq-len 512 --out ${out} --json --threads 1 -q`,
    );
    assert.equal(p.code, 0, p.stderr);
    const j = JSON.parse(readFileSync(join(out, 'rac.json'), 'utf8')) as {
      calibration: Record<string, unknown>;
      totals: { sparsity: number };
    };
    assert.ok(Math.abs(j.totals.sparsity - 0.6) < 0.001);
    const sets = j.calibration['trace_sets'] as { producer: string; tokens: number; models: string[]; selection: { kept: number } }[];
    assert.deepEqual(
      sets.map((x) => [x.producer, x.tokens]),
      [
        ['dense', 401],
        ['pruned pass 1', 400],
      ],
    );
    assert.notDeepEqual(sets[0]!.models, sets[1]!.models);
    assert.equal(sets[0]!.selection.kept, recs.filter((r) => r.correct).length);
    const pol = j.calibration['policy'] as { traces: { file: string; model: string; records: number } };
    assert.equal(pol.traces.records, 12);
    assert.deepEqual(sets[1]!.models, [pol.traces.model]);
    assert.ok(
      readTraceFile(pol.traces.file).records.every((r) => typeof r.correct === 'boolean'),
      "the pruned model's traces are graded too",
    );
    assert.ok(pol.traces.file.startsWith(`${out}.policy-traces/`), pol.traces.file);

    const u1 = await rac(
      ...argv`prune --model ${model} --method sparsegpt --sparsity 0.6 --calib-mode rac --traces ${traces} --refresh-stages 2
        --calib-tokens 800 --out ${join(d, 'o1')}`,
    );
    assert.equal(u1.code, 2);
    assert.match(u1.stderr, /need --dataset/);
    const u2 = await rac(
      ...argv`prune --model ${model} --method sparsegpt --sparsity 0.6 --calib-mode prompt --dataset ${ds} --select-correct correct
        --out ${join(d, 'o2')}`,
    );
    assert.equal(u2.code, 2);
    assert.match(u2.stderr, /trace selection \(select_\*\) needs calibration mode rac or mix/);
    const u3 = await rac(
      ...argv`prune --model ${model} --method sparsegpt --sparsity 0.6 --calib-mode rac --traces ${traces} --refresh-share 2
        --out ${join(d, 'o3')}`,
    );
    assert.equal(u3.code, 2);
    assert.match(u3.stderr, /--refresh-share must be a number in \(0, 1\]/);
  });
});

describe('rac run with policy and selection entries', () => {
  it('a two-pass entry and a selection entry beside plain RAC: graded traces, named variants, equal budgets, provenance in rac.json', async () => {
    const d = tempDir('run-policy');
    writeTinyDataset(join(d, 'calib.jsonl'), 'calib', 12);
    writeTinyDataset(join(d, 'eval.jsonl'), 'eval', 2);
    const model = checkpoint({ family: 'qwen2', seed: 21, layers: 2, hidden: 64 });
    writeFileSync(
      join(d, 'recipe.yaml'),
      `model: ${model}
out: out
task: tiny
datasets: {calib: calib.jsonl, eval: eval.jsonl}
trace: {n: 2, max_new_tokens: 12, token_budget: 800, batch_size: 8}
calibration: {tokens: 500, max_seq_len: 96, batch_tokens: 1024}
prune:
  - {method: sparsegpt, calib: [rac], sparsity: 0.5}
  - {method: sparsegpt, calib: [rac], sparsity: 0.5, two_pass_share: 0.5}
  - {method: sparsegpt, calib: [rac], sparsity: 0.5, select_correct: incorrect}
eval: {samples: 1, max_new_tokens: 12, temperature: 0, top_p: 1, batch_size: 8}
`,
    );
    const r = await runRecipe(loadRecipe(join(d, 'recipe.yaml')), { log: () => {} }, 'test');
    // the dense traces are graded (a random model answers nothing right)
    const traces = readTraceFile(r.traces.traces).records;
    assert.ok(traces.length > 0 && traces.every((t) => t.correct === false));
    const s = JSON.parse(readFileSync(r.summary, 'utf8')) as { rows: { calib: string; calib_tokens: number }[] };
    assert.deepEqual(s.rows.map((x) => x.calib).sort(), ['rac', 'rac+sel-incorrect', 'rac+twopass0.5']);
    for (const row of s.rows) assert.equal(row.calib_tokens, 500);
    const dirs = readdirSync(join(d, 'out', 'models'));
    assert.deepEqual(dirs.map((x) => x.replace(/-[0-9a-f]{12}$/, '')).sort(), [
      'sparsegpt-rac+sel-incorrect-s50',
      'sparsegpt-rac+twopass0.5-s50',
      'sparsegpt-rac-s50',
    ]);
    const two = readSummary(join(d, 'out', 'models', dirs.find((x) => x.includes('twopass'))!));
    const sets = two.calibration['trace_sets'] as { producer: string; tokens: number }[];
    assert.deepEqual(
      sets.map((x) => [x.producer, x.tokens]),
      [
        ['dense', 250],
        ['pruned pass 1', 250],
      ],
    );
    const pol = two.calibration['policy'] as { traces: { file: string; records: number } };
    assert.ok(pol.traces.file.startsWith(join(d, 'out', 'traces')), pol.traces.file);
    assert.ok(
      readTraceFile(pol.traces.file).records.every((t) => t.correct === false),
      "the pruned model's traces are graded",
    );
    const sel = readSummary(join(d, 'out', 'models', dirs.find((x) => x.includes('sel'))!));
    assert.equal((sel.calibration['selection'] as { kept: number }).kept, traces.length);
  });
});

describe('variantLabel', () => {
  it('names MoE calibration settings that are not the default, so recipe rows differing only there differ in name', () => {
    assert.equal(variantLabel(PRUNE_DEFAULTS), undefined);
    assert.equal(
      variantLabel({ ...PRUNE_DEFAULTS, moeCalibration: PRUNE_DEFAULTS.moeCalibration === 'all' ? 'routed' : 'all' })?.startsWith('moe-'),
      true,
    );
    assert.equal(variantLabel({ ...PRUNE_DEFAULTS, minExpertTokens: 64 }), 'minexp64');
  });
});
