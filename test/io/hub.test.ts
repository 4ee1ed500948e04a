/**
 * Hugging Face ids → the hub cache (src/io/hub.ts): cache layouts built in a temp dir exactly as
 * huggingface_hub writes them (blobs, relative snapshot symlinks, refs), a sharded model, a
 * dataset with two Parquet shards in each of the two layouts; offline use touching no network;
 * and the download path against a loopback hub serving one small repo.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadDataset } from '../../src/io/datasets.ts';
import {
  cachedCommit,
  hubCacheDir,
  HubError,
  hubSourceOf,
  isModelFile,
  parseHubId,
  resolveDataset,
  resolveModel,
  splitShards,
} from '../../src/io/hub.ts';
import { Model } from '../../src/models/model.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { commitOf, filesOf, gitOid, sha256, startFakeHub, writeCachedRepo, type Files, type ListedFile } from '../helpers/hub.ts';
import { writeParquet } from '../helpers/parquet.ts';
import { maxAbsDiff } from '../helpers/checkpoints.ts';
import { argv, racWith, ROOT } from '../helpers/cli.ts';

const SHARDED = { family: 'qwen2' as const, layers: 2, hidden: 32, intermediate: 64, heads: 4, kvHeads: 2, vocab: 64, shards: 2, seed: 3 };

/** A stub fetch that fails the test if anything calls it. */
function noNetwork(): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    fetch: (async (input: string | URL | Request) => {
      calls.push(String(input));
      throw new Error('network touched');
    }) as typeof fetch,
  };
}

function parquetBytes(dir: string, name: string, cols: Record<string, (string | bigint)[]>): Buffer {
  const f = join(dir, name);
  writeParquet(f, cols);
  return readFileSync(f);
}

describe('hub ids', () => {
  it('parses org/name and org/name@revision, and nothing that is a path', () => {
    assert.deepEqual(parseHubId('deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B'), { id: 'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B' });
    assert.deepEqual(parseHubId('org/name@v1.0'), { id: 'org/name', revision: 'v1.0' });
    assert.deepEqual(parseHubId('org/name@refs/pr/3'), { id: 'org/name', revision: 'refs/pr/3' });
    for (const bad of [
      'name',
      './org/name',
      '/abs/org',
      'a/b/c',
      'org/..',
      '../x',
      'org/name@',
      'org/name@../../x',
      'org/na--me',
      'models/tiny-reasoner/',
    ]) {
      assert.equal(parseHubId(bad), null, bad);
    }
  });

  it('finds the cache: HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/a/b', HF_HOME: '/c' }), '/a/b');
    assert.equal(hubCacheDir({ HF_HOME: '/c' }), '/c/hub');
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/x' }), '/x/huggingface/hub');
    assert.match(hubCacheDir({}), /\.cache\/huggingface\/hub$/);
  });

  it('downloads only the files rac reads', () => {
    for (const f of [
      'config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'generation_config.json',
      'model.safetensors',
      'model-00001-of-00002.safetensors',
      'model.safetensors.index.json',
      'chat_template.jinja',
      'README.md',
    ])
      assert.ok(isModelFile(f), f);
    for (const f of ['pytorch_model.bin', 'original/consolidated.safetensors', 'onnx/model.onnx', '.gitattributes', 'model.gguf'])
      assert.ok(!isModelFile(f), f);
  });
});

describe('models from the cache', () => {
  const src = checkpoint(SHARDED);
  const files = filesOf(src);
  const c1 = commitOf('one');
  const c2 = commitOf('two');

  function cache(): string {
    const cache = tempDir('hf-cache');
    writeCachedRepo(cache, 'model', 'acme/tiny', c1, files, { main: c1 });
    const older = {
      ...files,
      'config.json': Buffer.from(JSON.stringify({ ...JSON.parse(files['config.json']!.toString()), rope_theta: 12345 })),
    };
    writeCachedRepo(cache, 'model', 'acme/tiny', c2, older, { v0: c2 });
    return cache;
  }

  it('resolves refs/main, a tag and a full commit to their snapshot, and the loader reads the sharded model there', async () => {
    const hub = cache();
    const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' };
    const net = noNetwork();
    const main = await resolveModel('acme/tiny', { env, fetch: net.fetch });
    assert.equal(main.dir, join(hub, 'models--acme--tiny', 'snapshots', c1));
    assert.deepEqual(main.source, { type: 'model', id: 'acme/tiny', revision: 'main', commit: c1 });
    assert.ok(lstatSync(join(main.dir, 'model-00001-of-00002.safetensors')).isSymbolicLink());
    assert.match(readlinkSync(join(main.dir, 'config.json')), /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
    const tag = await resolveModel('acme/tiny@v0', { env, fetch: net.fetch });
    assert.equal(tag.source!.commit, c2);
    const byCommit = await resolveModel(`acme/tiny@${c2}`, { env, fetch: net.fetch });
    assert.equal(byCommit.dir, tag.dir);
    assert.equal(net.calls.length, 0);
    const a = Model.open(main.dir);
    const b = Model.open(src);
    try {
      assert.equal(a.tensors.shards.length, 2);
      for (const n of b.tensors.names()) assert.equal(maxAbsDiff(a.read(n), b.read(n)), 0, n);
      assert.equal(Model.open(tag.dir).config.ropeTheta, 12345);
    } finally {
      a.close();
      b.close();
    }
    // Provenance from the path alone (as a later process sees it): the ref naming the commit.
    assert.deepEqual(hubSourceOf(join(main.dir)), { type: 'model', id: 'acme/tiny', revision: 'main', commit: c1 });
    assert.equal(hubSourceOf(src), null);
  });

  it('a path that exists locally wins over an id', async () => {
    const root = tempDir('local-wins');
    mkdirSync(join(root, 'acme', 'tiny'), { recursive: true });
    const cwd = process.cwd();
    process.chdir(root);
    try {
      const r = await resolveModel('acme/tiny', { env: { HF_HUB_CACHE: cache(), HF_HUB_OFFLINE: '1' }, fetch: noNetwork().fetch });
      assert.equal(r.dir, 'acme/tiny');
      assert.equal(r.source, undefined);
    } finally {
      process.chdir(cwd);
    }
  });

  it('a missing revision, repo or shard is one clear error naming the cache searched; offline, no network is touched', async () => {
    const hub = cache();
    const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' };
    const net = noNetwork();
    await assert.rejects(resolveModel('acme/tiny@nope', { env, fetch: net.fetch }), (e: Error) => {
      assert.ok(e instanceof HubError);
      assert.ok(e.message.includes(hub), e.message);
      assert.match(e.message, /no refs\/nope naming a snapshot.*HF_HUB_OFFLINE/);
      return true;
    });
    await assert.rejects(
      resolveModel('acme/other', { env, fetch: net.fetch }),
      /not in the Hugging Face cache .*\(no models--acme--other\)/,
    );
    await assert.rejects(resolveModel(`acme/tiny@${'f'.repeat(40)}`, { env, fetch: net.fetch }), /no snapshots\/f{40}/);
    unlinkSync(
      join(hub, 'models--acme--tiny', 'blobs', createHash('sha256').update(files['model-00002-of-00002.safetensors']!).digest('hex')),
    );
    await assert.rejects(
      resolveModel('acme/tiny', { env, fetch: net.fetch }),
      /snapshot [0-9a-f]{40} lacks model-00002-of-00002\.safetensors/,
    );
    assert.equal(net.calls.length, 0);
    assert.equal(cachedCommit(hub, 'model', 'acme/tiny', 'main'), c1);
  });
});

describe('model download through @huggingface/hub (loopback hub)', () => {
  const src = checkpoint({ ...SHARDED, shards: 1, seed: 5 });
  const files: Files = {
    ...filesOf(src),
    'README.md': Buffer.from('---\nlicense: mit\n---\n# tiny\n'),
    'pytorch_model.bin': Buffer.from('not needed'),
    'original/consolidated.safetensors': Buffer.from('not needed either'),
  };
  const commit = commitOf('download');

  it('downloads only the needed files into the cache layout, writes refs/main, then serves from the cache alone', async () => {
    const hub = await startFakeHub([{ type: 'model', id: 'acme/dl', commit, files }]);
    try {
      const cache = tempDir('hf-dl');
      const lines: string[] = [];
      const env = { HF_HUB_CACHE: cache };
      const r = await resolveModel('acme/dl', { env, hubUrl: hub.url, log: (l) => lines.push(l) });
      const snap = join(cache, 'models--acme--dl', 'snapshots', commit);
      assert.equal(r.dir, snap);
      assert.deepEqual(r.source, { type: 'model', id: 'acme/dl', revision: 'main', commit });
      assert.equal(readFileSync(join(cache, 'models--acme--dl', 'refs', 'main'), 'utf8'), commit);
      for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'README.md']) {
        assert.ok(lstatSync(join(snap, f)).isSymbolicLink(), f);
        assert.match(readlinkSync(join(snap, f)), /^\.\.\/\.\.\/blobs\//);
        assert.deepEqual(readFileSync(join(snap, f)), files[f], f);
      }
      assert.ok(!existsSync(join(snap, 'pytorch_model.bin')));
      assert.ok(!existsSync(join(snap, 'original')));
      assert.ok(
        !hub.requests.some((q) => q.url.includes('pytorch_model.bin') || q.url.includes('consolidated')),
        'unwanted files were requested',
      );
      assert.ok(
        lines.some((l) => /\[\d+\/\d+\] model\.safetensors/.test(l)),
        lines.join('\n'),
      );
      const m = Model.open(r.dir);
      m.close();
      // Second time: the cache answers, and offline works too.
      const before = hub.requests.length;
      await resolveModel('acme/dl', { env, hubUrl: hub.url });
      await resolveModel('acme/dl', { env: { ...env, HF_HUB_OFFLINE: '1' }, fetch: noNetwork().fetch });
      assert.equal(hub.requests.length, before);
    } finally {
      await hub.close();
    }
  });

  it('sends HF_TOKEN for a gated repo, and without it says HF_TOKEN is needed', async () => {
    const hub = await startFakeHub([{ type: 'model', id: 'acme/gated', commit, files, token: 'hf_secret' }]);
    try {
      const cache = tempDir('hf-gated');
      await assert.rejects(resolveModel('acme/gated', { env: { HF_HUB_CACHE: cache }, hubUrl: hub.url }), (e: Error) => {
        assert.ok(e instanceof HubError);
        assert.match(e.message, /needs HF_TOKEN/);
        assert.ok(e.message.includes(cache));
        return true;
      });
      const r = await resolveModel('acme/gated', { env: { HF_HUB_CACHE: cache, HF_TOKEN: 'hf_secret' }, hubUrl: hub.url });
      assert.equal(r.source!.commit, commit);
      assert.ok(hub.requests.filter((q) => q.url.includes('resolve')).every((q) => q.auth === 'Bearer hf_secret'));
    } finally {
      await hub.close();
    }
  });

  it('an unknown revision on the hub is one clear error', async () => {
    const hub = await startFakeHub([{ type: 'model', id: 'acme/dl', commit, files }]);
    try {
      await assert.rejects(
        resolveModel('acme/dl@nope', { env: { HF_HUB_CACHE: tempDir('hf-norev') }, hubUrl: hub.url }),
        /acme\/dl@nope: resolving the revision from http:\/\/127\.0\.0\.1:\d+ failed/,
      );
    } finally {
      await hub.close();
    }
  });
});

/** Every path under `dir` (files, links and directories), relative; [] when it does not exist. */
function entriesOf(dir: string, base = ''): string[] {
  let names: string[];
  try {
    names = readdirSync(join(dir, base));
  } catch {
    return [];
  }
  return names.flatMap((n) => {
    const rel = base ? `${base}/${n}` : n;
    const st = lstatSync(join(dir, rel));
    return st.isDirectory() ? [`${rel}/`, ...entriesOf(dir, rel)] : [rel];
  });
}

/** Rejects when `p` does not settle within `ms` (a download that never ends must fail the test, not hang it). */
function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: still running after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

describe('a hostile or broken hub (loopback)', () => {
  const src = checkpoint({ ...SHARDED, shards: 1, seed: 9 });
  const files: Files = { ...filesOf(src), 'README.md': Buffer.from('# tiny\n') };
  const commit = commitOf('hostile');
  const weights = 'model.safetensors';

  /** Every blob in the cache is named by the hash of its content (sha256, or the git blob id). */
  function assertBlobsVerified(cache: string): void {
    const blobs = join(cache, 'models--acme--h', 'blobs');
    for (const name of existsSync(blobs) ? readdirSync(blobs) : []) {
      const b = readFileSync(join(blobs, name));
      assert.ok(name === sha256(b) || name === gitOid(b), `blobs/${name} does not hold what its name says`);
    }
  }

  for (const [label, rewrite] of [
    ['oid', (p: string, e: ListedFile): ListedFile => (p === 'config.json' ? { ...e, oid: '../../../evil-oid' } : e)],
    ['lfs.oid', (_p: string, e: ListedFile): ListedFile => (e.lfs ? { ...e, lfs: { ...e.lfs, oid: '../../../evil-lfs' } } : e)],
    ['an oid of the wrong length', (p: string, e: ListedFile): ListedFile => (p === 'README.md' ? { ...e, oid: 'abc123' } : e)],
    ['a negative size', (p: string, e: ListedFile): ListedFile => (p === 'README.md' ? { ...e, size: -1 } : e)],
  ] as const) {
    it(`a listing with ${label} that is not a hash is refused before any byte is written (before: written outside the cache)`, async () => {
      const hub = await startFakeHub([{ type: 'model', id: 'acme/h', commit, files, entry: rewrite }]);
      try {
        const root = tempDir('hf-evil');
        const cache = join(root, 'cache');
        await assert.rejects(resolveModel('acme/h', { env: { HF_HUB_CACHE: cache }, hubUrl: hub.url }), (e: Error) => {
          assert.ok(e instanceof HubError, String(e));
          assert.match(e.message, /acme\/h@main: the hub's listing of (config\.json|model\.safetensors|README\.md) /);
          assert.doesNotMatch(e.message, /\n/);
          return true;
        });
        assert.deepEqual(
          readdirSync(root).filter((n) => n !== 'cache'),
          [],
          'nothing was written outside the cache',
        );
        assert.deepEqual(entriesOf(cache), [], 'nothing was written in the cache either');
        assert.ok(!hub.requests.some((q) => q.url.includes('/resolve/')), 'no file was downloaded');
      } finally {
        await hub.close();
      }
    });
  }

  it('a listing that claims one oid for every file: the first mismatch is refused, nothing unverified is kept, refs/main is not written', async () => {
    const one = files['config.json']!;
    const hub = await startFakeHub([
      {
        type: 'model',
        id: 'acme/h',
        commit,
        files,
        entry: (_p, e) => ({
          ...e,
          oid: gitOid(one),
          ...(e.lfs ? { lfs: { ...e.lfs, oid: sha256(one) } } : {}),
        }),
      },
    ]);
    try {
      const cache = tempDir('hf-same-oid');
      await assert.rejects(
        resolveModel('acme/h', { env: { HF_HUB_CACHE: cache }, hubUrl: hub.url }),
        /acme\/h@main: (README\.md|model\.safetensors|tokenizer\.json|tokenizer_config\.json|generation_config\.json): the bytes received have (sha256|git blob id) [0-9a-f]+, the hub's listing says [0-9a-f]+; nothing was kept/,
      );
      assert.ok(!existsSync(join(cache, 'models--acme--h', 'refs', 'main')), 'refs/main is not written');
      assertBlobsVerified(cache);
      assert.ok(!entriesOf(cache).some((e) => e.endsWith('.incomplete')), entriesOf(cache).join('\n'));
    } finally {
      await hub.close();
    }
  });

  it('a response that ends cleanly at half the size is refused and removed; an offline rerun does not reuse it', async () => {
    const hub = await startFakeHub([
      {
        type: 'model',
        id: 'acme/h',
        commit,
        files,
        serve: (path, bytes, _req, res) => {
          if (path !== weights) return false;
          res.writeHead(200, { 'Content-Type': 'application/octet-stream' }); // chunked: no length to check against
          res.end(bytes.subarray(0, bytes.length >> 1));
          return true;
        },
      },
    ]);
    try {
      const cache = tempDir('hf-half');
      await assert.rejects(
        resolveModel('acme/h', { env: { HF_HUB_CACHE: cache }, hubUrl: hub.url }),
        new RegExp(`acme/h@main: ${weights}: received ${files[weights]!.length >> 1} of ${files[weights]!.length} bytes; nothing was kept`),
      );
      assert.ok(!existsSync(join(cache, 'models--acme--h', 'refs', 'main')));
      assert.ok(!existsSync(join(cache, 'models--acme--h', 'blobs', sha256(files[weights]!))));
      assert.ok(!existsSync(join(cache, 'models--acme--h', 'snapshots', commit, weights)));
      assert.ok(!entriesOf(cache).some((e) => e.endsWith('.incomplete')), entriesOf(cache).join('\n'));
      assertBlobsVerified(cache);
      await assert.rejects(
        resolveModel('acme/h', { env: { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' }, fetch: noNetwork().fetch }),
        /not in the Hugging Face cache/,
      );
    } finally {
      await hub.close();
    }
  });

  /** Serves `path` a few bytes at a time, `gapMs` apart (until the client goes). */
  function trickle(path: string, bytesPerWrite: number, gapMs: number) {
    return (p: string, bytes: Buffer, _req: unknown, res: ServerResponse): boolean => {
      if (p !== path) return false;
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bytes.length) });
      let at = 0;
      const timer = setInterval(() => {
        if (res.destroyed || at >= bytes.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(bytes.subarray(at, at + bytesPerWrite));
        at += bytesPerWrite;
      }, gapMs);
      res.on('close', () => clearInterval(timer));
      return true;
    };
  }

  it('a hub that trickles 10 bytes/s is abandoned after RAC_HUB_STALL_S with one line; nothing is kept (before: waited for ever)', async () => {
    const hub = await startFakeHub([{ type: 'model', id: 'acme/h', commit, files, serve: trickle(weights, 1, 100) }]);
    try {
      const cache = tempDir('hf-trickle');
      const t0 = performance.now();
      await assert.rejects(
        within(
          30_000,
          resolveModel('acme/h', { env: { HF_HUB_CACHE: cache, RAC_HUB_STALL_S: '1' }, hubUrl: hub.url }),
          'the trickling download',
        ),
        /acme\/h@main: model\.safetensors: stalled: \d+ bytes in the last 1 s \(less than 1024 bytes\/s, RAC_HUB_STALL_S=1, RAC_HUB_MIN_BYTES_PER_S=1024\); \d+ of \d+ bytes received; nothing was kept/,
      );
      assert.ok(performance.now() - t0 < 10_000, `gave up after ${(performance.now() - t0).toFixed(0)} ms`);
      assert.ok(!existsSync(join(cache, 'models--acme--h', 'refs', 'main')));
      assert.ok(!entriesOf(cache).some((e) => e.endsWith('.incomplete')), entriesOf(cache).join('\n'));
    } finally {
      await hub.close();
    }
  });

  it('a slow download prints progress lines with bytes/s while it runs', async () => {
    const size = files[weights]!.length;
    const hub = await startFakeHub([{ type: 'model', id: 'acme/h', commit, files, serve: trickle(weights, Math.ceil(size / 8), 200) }]);
    try {
      const cache = tempDir('hf-slow');
      const lines: string[] = [];
      const r = await within(
        60_000,
        resolveModel('acme/h', { env: { HF_HUB_CACHE: cache, RAC_HUB_PROGRESS_S: '0.3' }, hubUrl: hub.url, log: (l) => lines.push(l) }),
        'the slow download',
      );
      assert.equal(r.source!.commit, commit);
      const progress = lines.filter((l) =>
        /^hub: \[\d+\/\d+\] model\.safetensors \d+\.\d (B|KiB|MiB) of \d+\.\d (B|KiB|MiB), \d+\.\d (B|KiB|MiB)\/s$/.test(l),
      );
      assert.ok(progress.length >= 2, lines.join('\n'));
    } finally {
      await hub.close();
    }
  });

  it('a snapshot directory that is a symlink out of the cache is refused (models and datasets)', async () => {
    const cache = tempDir('hf-snaplink');
    const snap = writeCachedRepo(cache, 'model', 'acme/h', commit, files, { main: commit });
    const outside = join(tempDir('hf-outside'), 'model');
    mkdirSync(outside);
    for (const n of readdirSync(src)) copyFileSync(join(src, n), join(outside, n));
    rmSync(snap, { recursive: true });
    symlinkSync(outside, snap);
    const env = { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' };
    await assert.rejects(resolveModel('acme/h', { env, fetch: noNetwork().fetch }), (e: Error) => {
      assert.match(
        e.message,
        /snapshots\/[0-9a-f]{40}: the snapshot directory is a symlink to .*hf-outside.*, outside models--acme--h in the hub cache/,
      );
      return true;
    });
    assert.throws(() => Model.open(snap), /hub cache snapshot .* resolves to .*hf-outside.*, outside its repository/);
    // A dataset snapshot the same way.
    const pq = tempDir('hf-snaplink-pq');
    const dsnap = writeCachedRepo(
      cache,
      'dataset',
      'acme/d',
      commit,
      { 'data/train-00000-of-00001.parquet': parquetBytes(pq, 'a.parquet', { prompt: ['x'] }) },
      { main: commit },
    );
    const dout = join(tempDir('hf-outside-ds'), 'snap');
    renameSync(dsnap, dout);
    symlinkSync(dout, dsnap);
    await assert.rejects(
      resolveDataset('acme/d', {}, { env, fetch: noNetwork().fetch }),
      /snapshots\/[0-9a-f]{40}: the snapshot directory is a symlink to .*hf-outside-ds.*, outside datasets--acme--d in the hub cache/,
    );
  });
});

describe('datasets from the cache', () => {
  const dir = tempDir('pq');
  const shard = (name: string, start: number, n: number) =>
    parquetBytes(dir, name, {
      problem: Array.from({ length: n }, (_, i) => `p${start + i}`),
      answer: Array.from({ length: n }, (_, i) => String(start + i)),
    });
  const s0 = shard('a.parquet', 0, 3);
  const s1 = shard('b.parquet', 3, 2);
  const t0 = shard('c.parquet', 100, 2);
  const c = commitOf('data');

  it('finds a split in both layouts, in shard order, and reads every shard as one dataset', async () => {
    const hub = tempDir('hf-ds');
    writeCachedRepo(
      hub,
      'dataset',
      'acme/math',
      c,
      {
        'default/train-00001-of-00002.parquet': s1,
        'default/train-00000-of-00002.parquet': s0,
        'default/test-00000-of-00001.parquet': t0,
        'README.md': Buffer.from('# math'),
      },
      { main: c },
    );
    writeCachedRepo(
      hub,
      'dataset',
      'acme/flat',
      c,
      { 'data/train-00000-of-00002.parquet': s0, 'data/train-00001-of-00002.parquet': s1 },
      { main: c },
    );
    writeCachedRepo(
      hub,
      'dataset',
      'acme/configs',
      c,
      { 'hard/train-00000-of-00002.parquet': s0, 'hard/train-00001-of-00002.parquet': s1, 'easy/train-00000-of-00001.parquet': t0 },
      { main: c },
    );
    const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' };
    const net = noNetwork();
    for (const id of ['acme/math', 'acme/flat']) {
      const r = await resolveDataset(id, {}, { env, fetch: net.fetch });
      assert.equal(r.files.length, 2, id);
      assert.match(r.files[0]!, /train-00000-of-00002\.parquet$/);
      assert.deepEqual(r.source, { type: 'dataset', id, revision: 'main', commit: c, config: 'default', split: 'train' });
      const ds = await loadDataset(r.files);
      assert.deepEqual(
        ds.rows.map((x) => x.prompt),
        ['p0', 'p1', 'p2', 'p3', 'p4'],
      );
      assert.deepEqual(
        ds.rows.map((x) => x.index),
        [0, 1, 2, 3, 4],
      );
      assert.equal(ds.totalRows, 5);
      assert.equal(
        ds.sha256,
        createHash('sha256')
          .update(Buffer.concat([s0, s1]))
          .digest('hex'),
      );
      assert.deepEqual(ds.files, r.files);
      const lim = await loadDataset(r.files, { limit: 4 });
      assert.deepEqual(
        lim.rows.map((x) => x.answer),
        ['0', '1', '2', '3'],
      );
      assert.deepEqual(hubSourceOf(r.files[1]!), r.source);
    }
    const test = await resolveDataset('acme/math', { split: 'test' }, { env, fetch: net.fetch });
    assert.deepEqual(
      (await loadDataset(test.files)).rows.map((x) => x.prompt),
      ['p100', 'p101'],
    );
    const hard = await resolveDataset('acme/configs', { config: 'hard' }, { env, fetch: net.fetch });
    assert.equal(hard.files.length, 2);
    await assert.rejects(resolveDataset('acme/configs', {}, { env, fetch: net.fetch }), (e: Error) => {
      assert.ok(e.message.includes(hub));
      assert.match(e.message, /snapshot [0-9a-f]{40} has no default\/train-\*\.parquet or data\/train-\*\.parquet/);
      return true;
    });
    await assert.rejects(
      resolveDataset('acme/math', { split: 'validation' }, { env, fetch: net.fetch }),
      /has no default\/validation-\*\.parquet/,
    );
    assert.equal(net.calls.length, 0);
    // A shard's place in the snapshot names its config and split for a process that did not resolve it.
    assert.deepEqual(
      splitShards(
        ['default/train-00001-of-00002.parquet', 'default/train-00000-of-00002.parquet', 'default/test-0.parquet'],
        'default',
        'train',
      ),
      ['default/train-00000-of-00002.parquet', 'default/train-00001-of-00002.parquet'],
    );
  });

  it('downloads the split’s shards (and nothing else) from a loopback hub', async () => {
    const hub = await startFakeHub([
      {
        type: 'dataset',
        id: 'acme/math',
        commit: c,
        files: {
          'data/train-00000-of-00002.parquet': s0,
          'data/train-00001-of-00002.parquet': s1,
          'data/test-00000-of-00001.parquet': t0,
          'README.md': Buffer.from('# m'),
        },
      },
    ]);
    try {
      const cache = tempDir('hf-ds-dl');
      const r = await resolveDataset('acme/math', {}, { env: { HF_HUB_CACHE: cache }, hubUrl: hub.url });
      assert.equal(r.files.length, 2);
      assert.equal((await loadDataset(r.files)).rows.length, 5);
      assert.ok(!existsSync(join(cache, 'datasets--acme--math', 'snapshots', c, 'data', 'test-00000-of-00001.parquet')));
      assert.ok(hub.requests.some((q) => q.url.startsWith('/datasets/acme/math/resolve/')));
      rmSync(cache, { recursive: true, force: true });
    } finally {
      await hub.close();
    }
  });
});

describe('rac --model with an id (the shared pre-action resolver)', () => {
  const rac = (env: Record<string, string>, ...args: string[]) => racWith({ env, killSignal: 'SIGKILL' }, ...args);

  it('rac info reads the cached snapshot; a missing revision offline is one error line, exit 1', async () => {
    const hub = tempDir('hf-cli');
    const c = commitOf('cli');
    writeCachedRepo(hub, 'model', 'acme/tiny', c, filesOf(checkpoint(SHARDED)), { main: c });
    const ok = await rac({ HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' }, 'info', '--model', 'acme/tiny', '--json');
    assert.equal(ok.code, 0, ok.stderr);
    const info = JSON.parse(ok.stdout) as { dir: string; shards: string[]; layers: number };
    assert.equal(info.dir, join(hub, 'models--acme--tiny', 'snapshots', c));
    assert.equal(info.shards.length, 2);
    const bad = await rac({ HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' }, 'info', '--model', 'acme/tiny@v9');
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    const lines = bad.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, bad.stderr);
    assert.match(
      lines[0]!,
      /^rac: error: acme\/tiny@v9: not a local path, and not in the Hugging Face cache .* \(no refs\/v9 naming a snapshot\); HF_HUB_OFFLINE is set/,
    );
    assert.ok(lines[0]!.includes(hub));
  });

  it('refs/main as a FIFO is refused at once, naming it (before: rac info hung for ever)', async () => {
    const hub = tempDir('hf-fifo');
    const c = commitOf('fifo');
    writeCachedRepo(hub, 'model', 'acme/tiny', c, filesOf(checkpoint(SHARDED)), {});
    mkdirSync(join(hub, 'models--acme--tiny', 'refs'), { recursive: true });
    execFileSync('mkfifo', [join(hub, 'models--acme--tiny', 'refs', 'main')]);
    const t0 = performance.now();
    const r = await rac({ HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' }, 'info', '--model', 'acme/tiny');
    assert.ok(performance.now() - t0 < 30_000);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^rac: error: .*models--acme--tiny\/refs\/main: is a FIFO, not a regular file\n$/);
    // By commit, provenance reads refs/ too: still no hang.
    const byCommit = await rac({ HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' }, 'info', '--model', `acme/tiny@${c}`, '--json');
    assert.ok(byCommit.code === 0 || byCommit.code === 1, byCommit.stderr);
    assert.doesNotMatch(byCommit.stderr, /Error: | {4}at /);
  });

  it('trace, prune and eval on ids record the model and dataset id and commit: the manifest, rac.json, the card and results.json', async () => {
    const hub = tempDir('hf-prov');
    const cm = commitOf('tiny-reasoner');
    const cd = commitOf('math');
    const files = {
      ...filesOf(join(ROOT, 'models', 'tiny-reasoner')),
      'README.md': Buffer.from("---\nlicense: apache-2.0\nbase_model: Qwen/Qwen2.5-Math-1.5B # the dense model's base\n---\n# tiny card\n"),
    };
    writeCachedRepo(hub, 'model', 'acme/tiny', cm, files, { main: cm, v1: cm });
    const pq = tempDir('prov-pq');
    writeCachedRepo(
      hub,
      'dataset',
      'acme/math',
      cd,
      {
        'data/train-00000-of-00002.parquet': parquetBytes(pq, 'a.parquet', {
          prompt: ['Compute 3 + 4.', 'Compute 5 + 1.'],
          answer: ['7', '6'],
        }),
        'data/train-00001-of-00002.parquet': parquetBytes(pq, 'b.parquet', { prompt: ['Compute 2 + 2.'], answer: ['4'] }),
      },
      { main: cd },
    );
    const env = { HF_HUB_CACHE: hub, HF_HUB_OFFLINE: '1' };
    const out = tempDir('prov-out');
    const model = { type: 'model', id: 'acme/tiny', revision: 'v1', commit: cm };
    const dataset = { type: 'dataset', id: 'acme/math', revision: 'main', commit: cd, config: 'default', split: 'train' };
    const tr = await rac(
      env,
      ...argv`trace --model acme/tiny@v1 --dataset acme/math --n 1 --max-new-tokens 8 --out ${join(out, 't.jsonl')} --quiet --json
        --threads 1`,
    );
    assert.equal(tr.code, 0, tr.stderr);
    const m = JSON.parse(readFileSync(join(out, 't.jsonl.manifest.json'), 'utf8')) as {
      model_hub: unknown;
      dataset: { rows: number; hub: unknown };
    };
    assert.deepEqual(m.model_hub, model);
    assert.deepEqual(m.dataset.hub, dataset);
    assert.equal(m.dataset.rows, 3);
    const pr = await rac(
      env,
      ...argv`prune --model acme/tiny@v1 --method wanda --sparsity 0.5 --calib-mode prompt --dataset acme/math
        --out ${join(out, 'pruned')} --quiet --json --threads 1`,
    );
    assert.equal(pr.code, 0, pr.stderr);
    const summary = JSON.parse(readFileSync(join(out, 'pruned', 'rac.json'), 'utf8')) as {
      source_hub: unknown;
      calibration: { files: { hub: unknown }[] };
    };
    assert.deepEqual(summary.source_hub, model);
    assert.deepEqual(summary.calibration.files[0]!.hub, dataset);
    const card = readFileSync(join(out, 'pruned', 'README.md'), 'utf8');
    assert.match(card, /^---\nlicense: apache-2\.0\nbase_model: acme\/tiny/);
    assert.ok(!card.slice(0, card.indexOf('\n---\n', 4)).includes('Qwen/Qwen2.5-Math-1.5B'), card.slice(0, 200));
    assert.ok(card.includes(`[\`acme/tiny\`](https://huggingface.co/acme/tiny) at commit \`${cm}\` (\`v1\`)`), card.slice(0, 600));
    const ev = await rac(
      env,
      ...argv`eval --model acme/tiny@v1 --dataset acme/math --task tiny --max-new-tokens 8 --out ${join(out, 'ev.json')} --quiet --json
        --threads 1`,
    );
    assert.equal(ev.code, 0, ev.stderr);
    const res = JSON.parse(readFileSync(join(out, 'ev.json'), 'utf8')) as {
      model: { hub: unknown };
      dataset: { hub: unknown; problems: number };
    };
    assert.deepEqual(res.model.hub, model);
    assert.deepEqual(res.dataset.hub, dataset);
    assert.equal(res.dataset.problems, 3);
  });
});
