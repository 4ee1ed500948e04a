/**
 * A recipe's `datasets.calib` / `datasets.eval` take a Hugging Face dataset id as `--dataset` does:
 * `org/name[@revision]` (config default, split train) when no such path exists, or
 * `{id, config, split}`; runRecipe resolves them through the hub cache to the split's Parquet
 * shards, in order (src/io/hub.ts), and a path that exists always wins.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadDataset } from '../../src/io/datasets.ts';
import { HubError } from '../../src/io/hub.ts';
import { loadRecipe, RecipeError, resolveRecipeDatasets } from '../../src/study/run.ts';
import { tempDir } from '../helpers/checkpoints.ts';
import { commitOf, writeCachedRepo } from '../helpers/hub.ts';
import { writeParquet } from '../helpers/parquet.ts';

function shard(dir: string, name: string, start: number, n: number): Buffer {
  const f = join(dir, name);
  writeParquet(f, {
    problem: Array.from({ length: n }, (_, i) => `p${start + i}`),
    answer: Array.from({ length: n }, (_, i) => String(start + i)),
  });
  return readFileSync(f);
}

function recipe(dir: string, datasets: string): string {
  const file = join(dir, 'recipe.yaml');
  writeFileSync(file, `model: m\nout: study\ndatasets: ${datasets}\nprune:\n  - {method: magnitude, sparsity: [0.5]}\n`);
  return file;
}

describe('recipe datasets: hub ids', () => {
  const pq = tempDir('rd-pq');
  const s0 = shard(pq, 'a.parquet', 0, 3);
  const s1 = shard(pq, 'b.parquet', 3, 2);
  const t0 = shard(pq, 'c.parquet', 100, 2);
  const c = commitOf('recipe-data');
  const hub = tempDir('rd-hub');
  writeCachedRepo(
    hub,
    'dataset',
    'acme/math',
    c,
    { 'data/train-00001-of-00002.parquet': s1, 'data/train-00000-of-00002.parquet': s0, 'data/test-00000-of-00001.parquet': t0 },
    { main: c },
  );
  writeCachedRepo(hub, 'dataset', 'acme/configs', c, { 'hard/train-00000-of-00001.parquet': t0 }, { main: c });
  const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' };

  it('keeps an id and its config/split, resolves them to the shards in order, and reads them', async () => {
    const dir = tempDir('rd');
    const r = loadRecipe(recipe(dir, '{calib: acme/math, eval: {id: acme/configs, config: hard}}'));
    assert.equal(r.datasets.calib, 'acme/math');
    assert.equal(r.datasets.calibSplit, undefined);
    assert.equal(r.datasets.eval, 'acme/configs');
    assert.deepEqual(r.datasets.evalSplit, { config: 'hard' });
    const lines: string[] = [];
    const resolved = await resolveRecipeDatasets(r, {
      env,
      log: (l) => lines.push(l),
      fetch: () => Promise.reject(new Error('network touched')),
    });
    const calib = resolved.datasets.calib as string[];
    assert.equal(calib.length, 2);
    assert.match(calib[0]!, /snapshots\/[0-9a-f]{40}\/data\/train-00000-of-00002\.parquet$/);
    assert.match(calib[1]!, /train-00001-of-00002\.parquet$/);
    assert.match(resolved.datasets.eval as string, /hard\/train-00000-of-00001\.parquet$/);
    const ds = await loadDataset(calib);
    assert.deepEqual(
      ds.rows.map((x) => x.prompt),
      ['p0', 'p1', 'p2', 'p3', 'p4'],
    );
    assert.deepEqual(ds.hub, { type: 'dataset', id: 'acme/math', revision: 'main', commit: c, config: 'default', split: 'train' });
    assert.deepEqual((await loadDataset(resolved.datasets.eval)).hub, {
      type: 'dataset',
      id: 'acme/configs',
      revision: 'main',
      commit: c,
      config: 'hard',
      split: 'train',
    });
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^dataset acme\/math@main \(default\/train\) → 2 Parquet shards of [0-9a-f]{40}$/);

    const split = loadRecipe(recipe(dir, '{calib: acme/math, eval: {id: acme/math, split: test}}'));
    const e = (await resolveRecipeDatasets(split, { env })).datasets.eval;
    assert.match(e as string, /data\/test-00000-of-00001\.parquet$/);
  });

  it('a path that exists wins over an id of the same spelling', async () => {
    const dir = tempDir('rd-local');
    mkdirSync(join(dir, 'acme'));
    writeFileSync(join(dir, 'acme', 'math'), '{"prompt": "local"}\n');
    const r = loadRecipe(recipe(dir, '{calib: acme/math, eval: acme/math}'));
    assert.equal(r.datasets.calib, join(dir, 'acme', 'math'));
    const resolved = await resolveRecipeDatasets(r, { env });
    assert.equal(resolved.datasets.calib, join(dir, 'acme', 'math'));
  });

  it('refuses a bad entry naming the recipe and the key; a missing split names the cache', async () => {
    const dir = tempDir('rd-bad');
    assert.throws(
      () => loadRecipe(recipe(dir, '{calib: c.jsonl, eval: {id: "not an id"}}')),
      (e: unknown) => e instanceof RecipeError && /recipe\.yaml: "datasets\.eval\.id" must be a Hugging Face dataset id/.test(e.message),
    );
    assert.throws(
      () => loadRecipe(recipe(dir, '{calib: c.jsonl, eval: {id: acme/math, splt: test}}')),
      (e: unknown) => e instanceof RecipeError && /"datasets\.eval": unknown key "splt"/.test(e.message),
    );
    assert.throws(
      () => loadRecipe(recipe(dir, '{calib: 3, eval: e.jsonl}')),
      (e: unknown) => e instanceof RecipeError && /"datasets\.calib" must be a path, a Hugging Face dataset id/.test(e.message),
    );
    const r = loadRecipe(recipe(dir, '{calib: {id: acme/math, split: validation}, eval: e.jsonl}'));
    await assert.rejects(
      resolveRecipeDatasets(r, { env }),
      (e: unknown) => e instanceof HubError && e.message.includes(hub) && /HF_HUB_OFFLINE is set/.test(e.message),
    );
  });
});
