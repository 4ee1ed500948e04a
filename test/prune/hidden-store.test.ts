/** HiddenStore: in memory under the limit, a temp file above it; same values either way; cleans up. */
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HiddenStore } from '../../src/prune/hidden-store.ts';
import { tempDir } from '../helpers/checkpoints.ts';
import { entries } from '../helpers/prune.ts';

const SIZES = [5, 0, 1000, 3, 4096];

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sin(seed * 1000 + i) * (i % 7 === 0 ? 1e30 : 1);
  if (n > 2) {
    a[1] = NaN;
    a[2] = -Infinity;
  }
  return a;
}

const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

describe('HiddenStore', () => {
  for (const [label, limit] of [
    ['in memory', Infinity],
    ['exactly at the limit stays in memory', SIZES.reduce((a, b) => a + b, 0) * 4],
    ['on disk (limit 0)', 0],
    ['on disk (one byte short)', SIZES.reduce((a, b) => a + b, 0) * 4 - 1],
  ] as const) {
    it(`${label}: put/get round-trips bit for bit, out of order and overwritten`, () => {
      const root = tempDir('hs');
      const s = new HiddenStore(SIZES, limit, root);
      const disk = limit < SIZES.reduce((a, b) => a + b, 0) * 4;
      assert.equal(s.onDisk, disk);
      const spill = entries(root);
      assert.equal(spill.length, disk ? 1 : 0);
      if (disk) {
        assert.match(spill[0]!, /^rac-hidden-/);
        const file = join(root, spill[0]!, 'hidden.f32');
        assert.ok(existsSync(file));
      }
      // write in reverse order, then overwrite one slot: neighbours must be unaffected
      for (let i = SIZES.length - 1; i >= 0; i--) s.put(i, fill(SIZES[i]!, i));
      s.put(2, fill(1000, 99));
      for (let i = 0; i < SIZES.length; i++) {
        const want = fill(SIZES[i]!, i === 2 ? 99 : i);
        assert.ok(sameBits(s.get(i), want), `slot ${i}`);
        assert.ok(sameBits(s.get(i), want), `slot ${i}, read twice`);
      }
      if (disk) assert.equal(statSync(join(root, spill[0]!, 'hidden.f32')).size, SIZES.reduce((a, b) => a + b, 0) * 4);
      assert.throws(() => s.put(0, new Float32Array(6)), /hidden batch 0: 6 values, expected 5/);
      s.close();
      assert.deepEqual(entries(root), [], 'the spill directory must be removed by close()');
      s.close(); // idempotent
    });
  }

  it('a disk store hands out copies: mutating a result does not change the store', () => {
    const s = new HiddenStore([4], 0, tempDir('hs'));
    s.put(0, Float32Array.of(1, 2, 3, 4));
    const a = s.get(0);
    a[0] = 42;
    assert.deepEqual([...s.get(0)], [1, 2, 3, 4]);
    s.close();
  });

  it('reading a slot never stored fails (memory)', () => {
    const s = new HiddenStore([4, 4], 1 << 20, tempDir('hs'));
    assert.throws(() => s.get(1), /hidden batch 1 was never stored/);
    s.close();
  });
});
