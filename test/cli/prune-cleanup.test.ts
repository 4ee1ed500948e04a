/**
 * `rac prune` killed mid-run leaves nothing behind: SIGINT/SIGTERM remove the `.OUT.tmp-PID-*`
 * temp dir (the hidden-state spill files live inside it); after a SIGKILL the next run removes the
 * dead run's temp dir. Each child prune is killed when its temp dir and a spill file exist.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Model } from '../../src/models/model.ts';
import { checkpoint, tempDir } from '../helpers/checkpoints.ts';
import { argv, startRac } from '../helpers/cli.ts';
import { randomSequences, writeCalibIds } from '../helpers/prune.ts';

const ls = (d: string) => (existsSync(d) ? readdirSync(d).sort() : []);
const tempDirsBeside = (out: string) => ls(join(out, '..')).filter((n) => n.startsWith('.out.tmp-'));
/** Spill dirs (rac-hidden-*) in the system temp dir or inside the output's temp dirs. */
function spills(out: string, tmp: string): string[] {
  const inside = tempDirsBeside(out).flatMap((d) => ls(join(out, '..', d)).filter((n) => n.startsWith('rac-hidden-')));
  return [...ls(tmp).filter((n) => n.startsWith('rac-hidden-')), ...inside];
}

async function killWhenSpilling(child: ChildProcess, out: string, tmp: string, sig: NodeJS.Signals): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!(tempDirsBeside(out).length > 0 && spills(out, tmp).length > 0)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error('rac prune ended before it spilled');
    if (Date.now() > deadline) throw new Error('rac prune never made its temp dir and spill file');
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill(sig);
}

describe('rac prune: temp dirs and spill files on signals', () => {
  const dir = checkpoint({ family: 'qwen2', seed: 202, hidden: 64, layers: 6 });
  const m = Model.open(dir);
  const V = m.config.vocabSize;
  m.close();
  const calib = writeCalibIds(join(tempDir('prune-cleanup-calib'), 'calib.jsonl'), randomSequences(V, 90, 60, 120, 5));
  // ~6,000 tokens × 64 floats × 4 bytes ≈ 1.5 MiB of hidden states per store: over 1 MiB, spilled.
  // A private TMPDIR (startRac's env below): spill files that land in the system temp dir are seen
  // here, and other processes' files are not.
  const args = (out: string) =>
    argv`prune --model ${dir} --method sparsegpt --sparsity 0.5 --calib ${calib} --calib-tokens 6000 --max-seq-len 128
      --batch-tokens 1024 --memory-limit-mb 1 --threads 1 -q --out ${out}`;

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig}: the process dies by it, no temp dir beside --out, no spill file anywhere`, async () => {
      const work = tempDir('prune-cleanup');
      const tmp = tempDir('prune-cleanup-tmpdir');
      const out = join(work, 'out');
      const { child, exit } = startRac(args(out), { env: { TMPDIR: tmp } });
      try {
        await killWhenSpilling(child, out, tmp, sig);
        const r = await exit;
        assert.equal(r.signal, sig, `exit ${r.code}: ${r.stderr}`);
        assert.deepEqual(ls(work), [], 'nothing beside --out');
        assert.deepEqual(spills(out, tmp), [], 'no spill file in the temp dir');
      } finally {
        child.kill('SIGKILL');
        await exit;
      }
    });
  }

  it("SIGKILL: the next run on the same --out removes the dead run's temp dir (with its spill files) and completes", async () => {
    const work = tempDir('prune-cleanup');
    const tmp = tempDir('prune-cleanup-tmpdir');
    const out = join(work, 'out');
    const first = startRac(args(out), { env: { TMPDIR: tmp } });
    try {
      await killWhenSpilling(first.child, out, tmp, 'SIGKILL');
      assert.equal((await first.exit).signal, 'SIGKILL');
    } finally {
      first.child.kill('SIGKILL');
      await first.exit;
    }
    assert.equal(tempDirsBeside(out).length, 1, 'SIGKILL leaves the temp dir');
    const second = startRac(args(out), { env: { TMPDIR: tmp } });
    try {
      const r = await second.exit;
      assert.equal(r.code, 0, r.stderr);
    } finally {
      second.child.kill('SIGKILL');
    }
    assert.deepEqual(ls(work), ['out'], "only the output: the dead run's temp dir is gone");
    assert.deepEqual(spills(out, tmp), [], 'no spill file left in the temp dir');
    assert.ok(existsSync(join(out, 'rac.json')));
    assert.deepEqual(
      ls(out).filter((n) => n.startsWith('rac-hidden-')),
      [],
      'spill dirs never reach the output',
    );
  });
});
