/**
 * runTrace with a deterministic stand-in backend: record layout (SGLang RAC rows + rac fields),
 * the token budget (stop submitting, finish in flight), resume (skip done pairs, fill a half-done
 * prompt, repair a torn last line), settings checks, the manifest and its decode share.
 */
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  streamOf,
  type BackendRequest,
  type GenerationBackend,
  type GenerationHooks,
  type SamplingSettings,
} from '../../src/backends/backend.ts';
import {
  manifestPath,
  readTraceFile,
  runTrace,
  TraceError,
  type TraceManifest,
  type TracePrompt,
  type TraceRecord,
  type TraceSettings,
} from '../../src/study/trace.ts';
import { tempDir } from '../helpers/checkpoints.ts';

/** Completions are a pure function of (seed, stream): length 3..10, ids derived from the stream. */
class FakeBackend implements GenerationBackend {
  readonly name = 'fake';
  calls: number[][] = [];
  constructor(readonly fingerprint = 'sha256:fake') {}
  async generate(requests: BackendRequest[], s: SamplingSettings, hooks: GenerationHooks): Promise<void> {
    this.calls.push(requests.map((r) => r.index));
    for (const r of requests) {
      const out = Array.from({ length: r.n }, (_, i) => {
        const stream = streamOf(r.index, r.n, i);
        const len = 3 + ((stream * 7 + s.seed) % 8);
        const ids = Array.from({ length: len }, (_, k) => (stream * 31 + k * 17 + s.seed) % 100);
        return {
          ids,
          text: `s${stream}:${ids.join(',')}`,
          finishReason: (len === s.maxNewTokens ? 'length' : 'stop') as 'length' | 'stop',
        };
      });
      await hooks.onResult(r, out);
    }
  }
  async close(): Promise<void> {}
}

const SETTINGS: TraceSettings = {
  dataset: { sha256: 'abc', prompt_column: 'prompt', id_column: 'id' },
  system: null,
  template_flags: {},
  n: 2,
  max_new_tokens: 10,
  temperature: 0.6,
  top_p: 0.95,
  top_k: 0,
  seed: 3,
  stop: [],
};

function prompts(count: number): TracePrompt[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `p${i}`,
    index: i,
    answer: String(i),
    render: () => ({ text: `prompt ${i}`, ids: Array.from({ length: 4 + (i % 3) }, (_, k) => 200 + i + k) }),
  }));
}

const key = (r: TraceRecord) => `${r.prompt_id}#${r.sample}`;
const byKey = (rs: TraceRecord[]) => new Map(rs.map((r) => [key(r), r]));

async function trace(
  out: string,
  o: { count?: number; budget?: number; batch?: number; settings?: TraceSettings; backend?: FakeBackend } = {},
): Promise<TraceManifest> {
  return runTrace({
    out,
    backend: o.backend ?? new FakeBackend(),
    prompts: prompts(o.count ?? 10),
    settings: o.settings ?? SETTINGS,
    tokenBudget: o.budget ?? 0,
    batchSize: o.batch ?? 4,
  });
}

describe('runTrace', () => {
  it('writes one record per completion in the SGLang RAC row layout, and a manifest with the decode share', async () => {
    const out = join(tempDir('trace'), 't.jsonl');
    const be = new FakeBackend();
    const m = await trace(out, { count: 5, backend: be });
    const { records, tornBytes } = readTraceFile(out);
    assert.equal(tornBytes, 0);
    assert.equal(records.length, 10);
    assert.deepEqual(be.calls, [[0, 1], [2, 3], [4]], 'waves of batch/n prompts, in dataset order');
    const r = records.find((x) => x.prompt_id === 'p3' && x.sample === 1)!;
    assert.deepEqual(r.prompt_ids, [203, 204, 205, 206]);
    assert.deepEqual(r.input_ids, [...r.prompt_ids, ...r.completion_ids]);
    assert.equal(r.num_prompt_tokens, 4);
    assert.equal(r.num_decode_tokens, r.completion_ids.length);
    assert.equal(r.text, `s7:${r.completion_ids.join(',')}`);
    assert.equal(r.prompt_index, 3);
    assert.equal(r.answer, '3');
    assert.equal(r.model, 'sha256:fake');
    assert.deepEqual(r.sampling, { temperature: 0.6, top_p: 0.95, top_k: 0, max_new_tokens: 10, seed: 3, n: 2, stream: 7 });
    assert.ok(['stop', 'length'].includes(r.finish_reason));
    const P = records.reduce((a, x) => a + x.num_prompt_tokens, 0);
    const D = records.reduce((a, x) => a + x.num_decode_tokens, 0);
    const disk = JSON.parse(readFileSync(manifestPath(out), 'utf8')) as TraceManifest;
    assert.deepEqual(disk, m);
    assert.deepEqual(m.tokens, { prompt: P, decode: D, total: P + D });
    assert.equal(m.decode_share, D / (P + D));
    assert.equal(m.counts.records, 10);
    assert.equal(m.counts.complete_prompts, 5);
    assert.equal(m.status, 'dataset');
    assert.deepEqual(m.settings, SETTINGS);
    // no temp files left beside the manifest
    assert.deepEqual(readdirSync(join(out, '..')).sort(), ['t.jsonl', 't.jsonl.manifest.json']);
  });

  it('the token budget stops new prompts once written tokens reach it; in-flight requests finish', async () => {
    const full = join(tempDir('trace'), 'full.jsonl');
    await trace(full, { count: 30 });
    const all = readTraceFile(full).records;
    const budget = 100;
    const out = join(tempDir('trace'), 'b.jsonl');
    const be = new FakeBackend();
    const m = await trace(out, { count: 30, budget, backend: be });
    const got = readTraceFile(out).records;
    const total = got.reduce((a, r) => a + r.input_ids.length, 0);
    assert.equal(m.status, 'budget');
    assert.ok(total >= budget, `${total} ≥ ${budget}`);
    // before the last wave the budget was not reached (else it would not have been submitted)
    const lastWave = new Set(be.calls.at(-1)!.map((i) => `p${i}`));
    const before = got.filter((r) => !lastWave.has(r.prompt_id)).reduce((a, r) => a + r.input_ids.length, 0);
    assert.ok(before < budget, `${before} < ${budget}`);
    assert.ok(got.length < all.length);
    // what was written is exactly what the full run wrote for those pairs
    const ref = byKey(all);
    for (const r of got) assert.deepEqual(r, ref.get(key(r)));
    // a larger budget later extends the same file
    const m2 = await trace(out, { count: 30, budget: 10 * budget });
    assert.ok(m2.tokens.total >= 10 * budget || m2.status === 'dataset');
    assert.ok(m2.counts.records > got.length);
  });

  it('resume: done pairs are skipped, a half-done prompt is completed, a torn last line is cut away', async () => {
    const ref = join(tempDir('trace'), 'ref.jsonl');
    await trace(ref, { count: 8 });
    const refRecords = readTraceFile(ref).records;
    const out = join(tempDir('trace'), 'r.jsonl');
    // a crashed run: 5 complete records (prompts p0, p1, and sample 0 of p2), then half a line
    const lines = readFileSync(ref, 'utf8').split('\n').filter(Boolean);
    writeFileSync(out, lines.slice(0, 5).join('\n') + '\n' + lines[5]!.slice(0, 40));
    writeFileSync(manifestPath(out), readFileSync(manifestPath(ref)));
    writeFileSync(join(out, '..', '.r.jsonl.manifest.json.tmp-99999'), '{"half": '); // killed mid-rename
    assert.ok(readTraceFile(out).tornBytes > 0);
    const be = new FakeBackend();
    const m = await trace(out, { count: 8, backend: be });
    assert.deepEqual(be.calls.flat(), [2, 3, 4, 5, 6, 7], 'only prompts not complete are generated');
    const { records, tornBytes } = readTraceFile(out);
    assert.equal(tornBytes, 0);
    const keys = records.map(key);
    assert.equal(new Set(keys).size, keys.length, 'no duplicate (prompt_id, sample)');
    assert.equal(records.length, 16);
    const refMap = byKey(refRecords);
    for (const r of records) assert.deepEqual(r, refMap.get(key(r)));
    assert.equal(m.counts.records, 16);
    assert.deepEqual(readdirSync(join(out, '..')).sort(), ['r.jsonl', 'r.jsonl.manifest.json'], 'stale temp manifests removed');
    // once complete, a rerun generates nothing and leaves the file as it is
    const before = readFileSync(out);
    const be2 = new FakeBackend();
    await trace(out, { count: 8, backend: be2 });
    assert.deepEqual(be2.calls, []);
    assert.deepEqual(readFileSync(out), before);
  });

  it('resume with other settings or another model fails clearly and leaves the file untouched', async () => {
    const out = join(tempDir('trace'), 's.jsonl');
    await trace(out, { count: 3 });
    const before = readFileSync(out);
    await assert.rejects(trace(out, { count: 3, settings: { ...SETTINGS, temperature: 1 } }), (e: Error) => {
      assert.ok(e instanceof TraceError);
      assert.match(e.message, /different settings/);
      assert.match(e.message, /temperature: was 0\.6, now 1/);
      return true;
    });
    await assert.rejects(
      trace(out, { count: 3, settings: { ...SETTINGS, template_flags: { enable_thinking: false } } }),
      /template_flags: was \{\}, now \{"enable_thinking":false\}/,
    );
    await assert.rejects(
      trace(out, { count: 3, settings: { ...SETTINGS, dataset: { ...SETTINGS.dataset, sha256: 'other' } } }),
      /dataset\.sha256/,
    );
    await assert.rejects(
      trace(out, { count: 3, backend: new FakeBackend('sha256:other') }),
      /model: was "sha256:fake", now "sha256:other"/,
    );
    assert.deepEqual(readFileSync(out), before);
    // the batch size and the budget may change
    await trace(out, { count: 3, batch: 1, budget: 5 });
  });

  it('without a manifest, records made with other sampling settings are refused; a corrupt complete line is an error', async () => {
    const out = join(tempDir('trace'), 'nm.jsonl');
    await trace(out, { count: 2 });
    writeFileSync(manifestPath(out), '');
    await assert.rejects(trace(out, { count: 2 }), /unreadable manifest/);
    const { rmSync } = await import('node:fs');
    rmSync(manifestPath(out));
    await assert.rejects(trace(out, { count: 2, settings: { ...SETTINGS, seed: 4 } }), /sampled with other settings \(seed\)/);
    await trace(out, { count: 3 }); // same settings: continues
    assert.equal(readTraceFile(out).records.length, 6);
    appendFileSync(out, 'garbage\n');
    await assert.rejects(trace(out, { count: 3 }), /nm\.jsonl:7: corrupt record/);
    assert.ok(existsSync(out));
  });
});
