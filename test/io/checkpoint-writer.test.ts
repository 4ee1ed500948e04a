/**
 * CheckpointWriter: a copy in the input's layout (shards, headers, sidecars), written to a temp
 * dir beside --out and renamed into place; refuses to clobber; abort leaves nothing.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { CheckpointWriter } from '../../src/io/checkpoint-writer.ts';
import { CheckpointError } from '../../src/io/checkpoint.ts';
import { SafetensorsModel } from '../../src/io/safetensors.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { entries, fileHash, readAll, shardFiles, tensorHashes } from '../helpers/prune.ts';

const SHARDED_BF16 = { family: 'qwen2', seed: 91, layers: 2, dtype: 'BF16', shards: 3 } as const;
const F16 = { family: 'llama', seed: 92, layers: 1, dtype: 'F16' } as const;

function open(dir: string): SafetensorsModel {
  return SafetensorsModel.open(dir);
}

describe('CheckpointWriter', () => {
  for (const ck of [SHARDED_BF16, F16] as RandomCheckpointOptions[]) {
    it(`${ck.family} ${ck.dtype}: finish() alone is a byte-identical copy of every file, plus extras`, () => {
      const src = checkpoint(ck);
      const parent = tempDir('cw');
      const out = join(parent, 'copy');
      const m = open(src);
      const w = CheckpointWriter.begin(m, out);
      w.finish({ 'rac.json': '{"x":1}\n' });
      m.close();
      assert.deepEqual(entries(parent), ['copy']);
      assert.deepEqual(entries(out), [...entries(src), 'rac.json'].sort());
      for (const f of entries(src)) assert.equal(fileHash(join(out, f)), fileHash(join(src, f)), f);
      assert.equal(readFileSync(join(out, 'rac.json'), 'utf8'), '{"x":1}\n');
      assert.equal(shardFiles(out).length, ck === SHARDED_BF16 ? 3 : 1);
    });
  }

  it('writeF32 narrows to the stored dtype (exact for representable values); copy() keeps bytes; the rest copied at finish', () => {
    const src = checkpoint(SHARDED_BF16);
    const out = join(tempDir('cw'), 'out');
    const m = open(src);
    const names = m.names();
    const target = names.find((n) => n.endsWith('mlp.down_proj.weight'))!;
    const copied = names.find((n) => n.endsWith('self_attn.q_proj.bias'))!;
    const orig = m.readF32(target);
    const edited = orig.slice();
    for (let i = 0; i < edited.length; i += 2) edited[i] = 0;
    const w = CheckpointWriter.begin(m, out);
    w.writeF32(target, edited);
    w.copy(copied);
    assert.ok(w.isWritten(target) && w.isWritten(copied) && !w.isWritten(names[0]!));
    assert.throws(() => w.writeF32(target, edited), /written twice/);
    assert.throws(
      () => w.copy('no.such.tensor'),
      (e: Error) => e instanceof CheckpointError && /no tensor "no.such.tensor"/.test(e.message),
    );
    w.finish();
    m.close();
    const a = readAll(out);
    assert.equal(a.get(target)!.dtype, 'BF16');
    assert.deepEqual(a.get(target)!.data, edited, 'bf16 values written back from f32 must round-trip exactly');
    const hi = tensorHashes(src);
    const ho = tensorHashes(out);
    for (const [n, h] of hi) if (n !== target) assert.equal(ho.get(n), h, n);
    assert.notEqual(ho.get(target), hi.get(target));
    for (const f of entries(src).filter((f) => !f.endsWith('.safetensors')))
      assert.equal(fileHash(join(out, f)), fileHash(join(src, f)), f);
    assert.throws(() => w.copy(names[0]!), /already finished/);
  });

  it('refuses an existing --out (naming it) unless overwrite; overwrite replaces only at finish', () => {
    const src = checkpoint(F16);
    const parent = tempDir('cw');
    const out = join(parent, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'old.txt'), 'old');
    const m = open(src);
    assert.throws(
      () => CheckpointWriter.begin(m, out),
      (e: Error) => e instanceof CheckpointError && e.message.includes(resolve(out)) && /already exists/.test(e.message),
    );
    assert.deepEqual(entries(parent), ['out'], 'a refused begin must not leave a temp dir');
    const w = CheckpointWriter.begin(m, out, { overwrite: true });
    const tmp = entries(parent).filter((f) => f !== 'out');
    assert.equal(tmp.length, 1);
    assert.match(tmp[0]!, /^\.out\.tmp-/, 'the temp dir lives beside --out');
    assert.deepEqual(entries(out), ['old.txt'], 'the old output is untouched until finish');
    w.finish();
    m.close();
    assert.deepEqual(entries(parent), ['out']);
    assert.ok(!entries(out).includes('old.txt'));
    assert.deepEqual(tensorHashes(out), tensorHashes(src));
  });

  it('abort() removes the temp dir and leaves --out absent; the input dir is refused as --out', () => {
    const src = checkpoint(SHARDED_BF16);
    const parent = tempDir('cw');
    const out = join(parent, 'nested', 'out');
    const m = open(src);
    const w = CheckpointWriter.begin(m, out);
    w.copy(m.names()[0]!);
    assert.equal(entries(join(parent, 'nested')).length, 1);
    w.abort();
    assert.deepEqual(entries(join(parent, 'nested')), []);
    assert.throws(() => w.copy(m.names()[1]!), /already finished/);
    assert.throws(() => CheckpointWriter.begin(m, src, { overwrite: true }), /must differ from the input/);
    assert.throws(() => CheckpointWriter.begin(m, join(src, '.'), { overwrite: true }), /must differ from the input/);
    m.close();
  });
});
