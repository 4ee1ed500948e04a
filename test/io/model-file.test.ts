/**
 * Files read from a model directory (issue #12, items 2 and 3): symlinks out of the directory are
 * refused for every file (config, README, generation_config, tokenizer, template, index, shards),
 * except a Hugging Face hub cache snapshot's links into its own repo's blobs/; FIFOs and other
 * non-regular files are refused without blocking; errors quote at most a short escaped excerpt.
 */
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CheckpointWriter } from '../../src/io/checkpoint-writer.ts';
import { loadGenerationConfig } from '../../src/io/generation-config.ts';
import { excerpt, ModelFileError, modelFilePath, readModelJson } from '../../src/io/model-file.ts';
import { SafetensorsModel } from '../../src/io/safetensors.ts';
import { RacTokenizer } from '../../src/io/tokenizer.ts';
import { Model } from '../../src/models/model.ts';
import { closeModel, loadModel } from '../../src/models/loaded.ts';
import { pruneCheckpoint } from '../../src/prune/prune.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { racWith } from '../helpers/cli.ts';
import { copyCheckpoint, editJson } from '../helpers/corrupt.ts';
import { calibSet, randomSequences } from '../helpers/prune.ts';

const CK = { family: 'qwen2', seed: 7, hidden: 32, layers: 2 } as const;
const SECRET = 'root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n'.repeat(20);

/** A file outside every model directory holding text that must never be echoed. */
function secretFile(): string {
  const f = join(tempDir('outside'), 'passwd');
  writeFileSync(f, SECRET);
  return f;
}

/** A copy of CK with `name` replaced by a symlink to `target`. */
function withLink(name: string, target: string): string {
  const dir = copyCheckpoint(checkpoint(CK), `link-${name}`);
  rmSync(join(dir, name), { force: true });
  symlinkSync(target, join(dir, name));
  return dir;
}

function assertRefused(f: () => unknown, file: string, re: RegExp): void {
  assert.throws(f, (e: unknown) => {
    const msg = (e as Error).message;
    assert.ok(msg.startsWith(`${file}: `), msg);
    assert.match(msg, re);
    assert.ok(!msg.includes('\n') && !msg.includes('root:x'), `the error must not quote the target: ${msg}`);
    return true;
  });
}

/** Builds `models--org--tiny/{blobs/<sha256>, snapshots/<rev>/<name> → ../../blobs/<sha256>}` from a checkpoint. */
function hubCache(src: string): { repo: string; snap: string } {
  const repo = join(tempDir('hub'), 'models--org--tiny');
  const snap = join(repo, 'snapshots', '0123456789abcdef0123456789abcdef01234567');
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(snap, { recursive: true });
  for (const name of readdirSync(src)) {
    const bytes = readFileSync(join(src, name));
    const blob = createHash('sha256').update(bytes).digest('hex');
    writeFileSync(join(repo, 'blobs', blob), bytes);
    symlinkSync(`../../blobs/${blob}`, join(snap, name));
  }
  return { repo, snap };
}

/** Runs `f` and fails when it takes longer than `ms` (a FIFO that blocks would hang here). */
function within<T>(ms: number, f: () => T): T {
  const t0 = performance.now();
  const r = f();
  assert.ok(performance.now() - t0 < ms, `took ${performance.now() - t0} ms`);
  return r;
}

describe('model directory files', () => {
  it('a hub cache snapshot (every file a symlink into ../../blobs) loads: weights, tokenizer, generation config, engine', async () => {
    const src = checkpoint(CK);
    const { snap } = hubCache(src);
    const lm = await loadModel(snap);
    try {
      const ref = Model.open(src);
      assert.deepEqual(lm.model.config.raw, ref.config.raw);
      assert.deepEqual(Array.from(lm.model.embedding().subarray(0, 8)), Array.from(ref.embedding().subarray(0, 8)));
      ref.close();
      assert.equal(lm.tokenizer.vocabSize, (await RacTokenizer.load(src)).vocabSize);
      const [logits] = await lm.engine.forward([[1, 2, 3]]);
      assert.ok(logits!.length > 0 && logits!.every((x) => Number.isFinite(x)));
    } finally {
      await closeModel(lm);
    }
  });

  it('hub cache: a link to another repo’s blobs or outside the cache is refused', () => {
    const { repo, snap } = hubCache(checkpoint(CK));
    const other = join(repo, '..', 'models--evil--x', 'blobs');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'cfg'), readFileSync(join(snap, 'config.json')));
    rmSync(join(snap, 'config.json'));
    symlinkSync('../../../models--evil--x/blobs/cfg', join(snap, 'config.json'));
    assertRefused(() => Model.open(snap), join(snap, 'config.json'), /outside the model directory \(symlink escape\)/);
    rmSync(join(snap, 'config.json'));
    symlinkSync(secretFile(), join(snap, 'config.json'));
    assertRefused(() => Model.open(snap), join(snap, 'config.json'), /symlink escape/);
  });

  it('a blobs/ folder is trusted only for a real hub layout (models--*/snapshots/<rev>)', () => {
    const base = tempDir('fake-hub');
    const snap = join(base, 'notahubrepo', 'snapshots', 'rev');
    mkdirSync(join(base, 'notahubrepo', 'blobs'), { recursive: true });
    mkdirSync(snap, { recursive: true });
    writeFileSync(join(base, 'notahubrepo', 'blobs', 'b'), '{}');
    symlinkSync('../../blobs/b', join(snap, 'config.json'));
    assert.throws(() => modelFilePath(snap, 'config.json'), ModelFileError);
  });

  it('config.json symlinked outside: refused, the target’s content not echoed (before: "Unexpected token … root:x:0:0")', () => {
    const dir = withLink('config.json', secretFile());
    assertRefused(() => Model.open(dir), join(dir, 'config.json'), /resolves to .*passwd, outside the model directory \(symlink escape\)/);
  });

  it('generation_config.json, tokenizer files and chat_template.jinja symlinked outside: refused', async () => {
    const secret = secretFile();
    const gen = withLink('generation_config.json', secret);
    assertRefused(() => loadGenerationConfig(gen), join(gen, 'generation_config.json'), /symlink escape/);
    await assert.rejects(loadModel(gen), /generation_config\.json: resolves to .* \(symlink escape\)/);
    for (const name of ['tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja']) {
      const d = withLink(name, secret);
      if (name === 'chat_template.jinja') editJson(join(d, 'tokenizer_config.json'), (j) => delete j['chat_template']);
      await assert.rejects(
        RacTokenizer.load(d),
        (e: Error) => e.message.startsWith(`${join(d, name)}: `) && /symlink escape/.test(e.message) && !e.message.includes('root:x'),
      );
    }
    const single = withLink('model.safetensors', join(checkpoint(CK), 'model.safetensors'));
    assertRefused(() => SafetensorsModel.open(single), join(single, 'model.safetensors'), /symlink escape/);
  });

  it('rac prune: a README.md symlinked outside is refused before any work, and no card is written', async () => {
    const dir = withLink('README.md', secretFile());
    const out = join(tempDir('prune-readme'), 'out');
    const m = Model.open(dir);
    try {
      const calib = calibSet(randomSequences(m.config.vocabSize, 4, 8, 16, 1));
      await assert.rejects(
        pruneCheckpoint(
          m,
          calib,
          out,
          { method: 'magnitude', target: { kind: 'unstructured', sparsity: 0.5 }, linears: 'all', batchTokens: 64 } as never,
          'test',
        ),
        (e: Error) =>
          e.message.startsWith(`${join(dir, 'README.md')}: resolves to `) &&
          /passwd, outside the model directory \(symlink escape\)$/.test(e.message) &&
          !e.message.includes('root:x'),
      );
      assert.equal(existsSync(out), false);
      assert.deepEqual(readdirSync(join(out, '..')), []);
      // the writer alone refuses a symlinked-out side file too (LICENSE, tokenizer files, …)
      const lic = withLink('LICENSE', secretFile());
      const m2 = Model.open(lic);
      try {
        assert.throws(() => CheckpointWriter.begin(m2.tensors, join(tempDir('w'), 'out')), /LICENSE: resolves to .* \(symlink escape\)/);
      } finally {
        m2.close();
      }
    } finally {
      m.close();
    }
  });

  it('invalid JSON: the error quotes at most a 40-character escaped excerpt', () => {
    const d = copyCheckpoint(checkpoint(CK), 'bad-json');
    writeFileSync(join(d, 'config.json'), SECRET);
    assert.throws(
      () => Model.open(d),
      (e: Error) => {
        assert.ok(e.message.startsWith(`${join(d, 'config.json')}: invalid JSON`), e.message);
        assert.ok(!e.message.includes('\n'), e.message);
        const quoted = /near (".*")/.exec(e.message);
        assert.ok(quoted, e.message);
        assert.ok((JSON.parse(quoted[1]!) as string).length <= 40, e.message);
        return true;
      },
    );
    assert.equal(excerpt('a\nb'), '"a\\nb"');
    assert.equal(excerpt('x'.repeat(100)), `"${'x'.repeat(40)}"…`);
  });
});

describe('non-regular files (FIFOs) are refused without blocking', () => {
  const fifo = (dir: string, name: string) => {
    rmSync(join(dir, name), { force: true });
    execFileSync('mkfifo', [join(dir, name)]);
  };

  it('config.json, model.safetensors, the index, tokenizer.json, generation_config.json as FIFOs (before: rac hung)', async () => {
    const cfg = copyCheckpoint(checkpoint(CK), 'fifo-config');
    fifo(cfg, 'config.json');
    within(5000, () => assertRefused(() => Model.open(cfg), join(cfg, 'config.json'), /is a FIFO, not a regular file/));
    const st = copyCheckpoint(checkpoint(CK), 'fifo-shard');
    fifo(st, 'model.safetensors');
    within(5000, () => assertRefused(() => Model.open(st), join(st, 'model.safetensors'), /is a FIFO, not a regular file/));
    const idx = copyCheckpoint(checkpoint(CK), 'fifo-index');
    fifo(idx, 'model.safetensors.index.json');
    within(5000, () => assertRefused(() => Model.open(idx), join(idx, 'model.safetensors.index.json'), /is a FIFO/));
    const tj = copyCheckpoint(checkpoint(CK), 'fifo-tokenizer');
    fifo(tj, 'tokenizer.json');
    await assert.rejects(RacTokenizer.load(tj), /tokenizer\.json: is a FIFO, not a regular file/);
    const gen = copyCheckpoint(checkpoint(CK), 'fifo-gen');
    fifo(gen, 'generation_config.json');
    within(5000, () => assertRefused(() => loadGenerationConfig(gen), join(gen, 'generation_config.json'), /is a FIFO/));
    // a hub blob that is a FIFO, reached through the snapshot's symlink
    const { repo, snap } = hubCache(checkpoint(CK));
    const blob = readdirSync(join(repo, 'blobs')).find((b) => readFileSync(join(repo, 'blobs', b), 'utf8').includes('"model_type"'))!;
    fifo(join(repo, 'blobs'), blob);
    within(5000, () => assertRefused(() => Model.open(snap), join(snap, 'config.json'), /is a FIFO/));
  });

  it('rac.json (read by rac eval and rac report) and a shard sampled for the fingerprint as FIFOs: refused, not waited on (before: hung)', async () => {
    // In a child process: a blocking read would hang this one for good.
    const dir = copyCheckpoint(checkpoint(CK), 'fifo-racjson');
    fifo(dir, 'rac.json');
    const racJson = fileURLToPath(new URL('../../src/prune/rac-json.ts', import.meta.url));
    const sample = fileURLToPath(new URL('../../src/io/file-sample-hash.ts', import.meta.url));
    const shardFifo = join(tempDir('fifo-sample'), 'shard.safetensors');
    execFileSync('mkfifo', [shardFifo]);
    const code = `import('tsx/esm/api').then(async (t) => { t.register();
      const { readPruningInfo } = await import(${JSON.stringify(racJson)});
      const { updateWithFileSample } = await import(${JSON.stringify(sample)});
      const { createHash } = await import('node:crypto');
      for (const f of [() => readPruningInfo(${JSON.stringify(dir)}), () => updateWithFileSample(createHash('sha256'), ${JSON.stringify(shardFifo)}, 's')]) {
        try { f(); console.log('read'); } catch (e) { console.log(e.message); }
      }
    })`;
    const out = await new Promise<string>((done) =>
      execFile(process.execPath, ['-e', code], { timeout: 20_000, killSignal: 'SIGKILL' }, (err, stdout) =>
        done(err?.killed ? `killed: it hung (${stdout.trim()})` : stdout.trim()),
      ),
    );
    assert.equal(out, `${join(dir, 'rac.json')}: is a FIFO, not a regular file\n${shardFifo}: is a FIFO, not a regular file`);
  });

  it('rac info on a FIFO config.json exits 1 with one line, within 20 s', async () => {
    const dir = copyCheckpoint(checkpoint(CK), 'fifo-cli');
    fifo(dir, 'config.json');
    const r = await racWith({ timeoutMs: 20_000 }, 'info', '--model', dir);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stderr, `rac: error: ${join(dir, 'config.json')}: is a FIFO, not a regular file\n`);
  });
});
