/**
 * The one binary writer (src/io/atomic.ts) under the safetensors and GGUF writers: nothing under
 * the destination's name until every byte is written and fsynced; an unfinished file is removed.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { AtomicFileWriter } from '../../src/io/atomic.ts';
import { GgufWriter } from '../../src/io/gguf.ts';
import { SafetensorsFile } from '../../src/io/safetensors.ts';
import { SafetensorsWriter } from '../../src/io/safetensors-writer.ts';
import { tempDir } from '../helpers/checkpoints.ts';

describe('atomic binary writer', () => {
  it('writes at offsets into <path>.tmp-<pid>; commit renames it into place; discard removes it', () => {
    const dir = tempDir('atomic');
    const p = join(dir, 'f.bin');
    writeFileSync(p, 'old');
    const w = new AtomicFileWriter(p);
    w.setSize(6);
    w.writeAt(Uint8Array.of(5, 6), 4);
    w.writeAt(Uint8Array.of(1, 2), 0);
    assert.deepEqual(readdirSync(dir).sort(), ['f.bin', `f.bin.tmp-${process.pid}`]);
    assert.equal(readFileSync(p, 'utf8'), 'old', 'the destination is untouched before commit');
    w.commit();
    assert.deepEqual([...readFileSync(p)], [1, 2, 0, 0, 5, 6]);
    assert.deepEqual(readdirSync(dir), ['f.bin']);
    assert.throws(() => w.writeAt(Uint8Array.of(1), 0), /already closed/);

    const d = new AtomicFileWriter(join(dir, 'g.bin'));
    d.writeAt(Uint8Array.of(1), 0);
    d.discard();
    d.discard();
    assert.deepEqual(readdirSync(dir), ['f.bin']);
  });

  it('safetensors: the file appears at close; a close with tensors missing leaves nothing', () => {
    const dir = tempDir('atomic');
    const file = join(dir, 'x.safetensors');
    const w = SafetensorsWriter.create(file, [{ name: 'a', dtype: 'F32', shape: [2] }]);
    w.writeF32('a', Float32Array.of(1, 2));
    assert.ok(!existsSync(file));
    w.close();
    const f = SafetensorsFile.open(file);
    assert.deepEqual([...new Float32Array(Uint8Array.from(f.readRaw('a')).buffer)], [1, 2]);
    f.close();
    const bad = SafetensorsWriter.create(join(dir, 'y.safetensors'), [{ name: 'a', dtype: 'F32', shape: [1] }]);
    assert.throws(() => bad.close(), /never written/);
    assert.deepEqual(readdirSync(dir), ['x.safetensors']);
  });

  it('GGUF: the same writer (temp beside the destination, renamed at close)', () => {
    const dir = tempDir('atomic');
    const file = join(dir, 'm.gguf');
    const w = GgufWriter.create(file, [], [{ name: 'x', type: 'F32', shape: [2] }]);
    assert.deepEqual(readdirSync(dir), [`m.gguf.tmp-${process.pid}`]);
    w.writeF32('x', Float32Array.of(1, 2));
    w.close();
    assert.deepEqual(readdirSync(dir), ['m.gguf']);
  });
});
