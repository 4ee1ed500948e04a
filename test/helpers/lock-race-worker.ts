/**
 * A worker thread of the stale-lock race test (test/study/output-lock.test.ts): in every round it
 * spins until the main thread says go, tries `lockOutput` on the shared target at the same moment
 * as the other workers, reports whether it got the lock, and holds it until the round ends.
 *
 * Shared Int32Array: [0] the round now going (0 = none), [1] the round to end, [2 + w] this
 * worker's answer for the current round (0 none, 1 took the lock, 2 refused).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { lockOutput, type OutputLock } from '../../src/io/lock.ts';

const { target, index, rounds, shared } = workerData as { target: string; index: number; rounds: number; shared: SharedArrayBuffer };
const s = new Int32Array(shared);
for (let round = 1; round <= rounds; round++) {
  while (Atomics.load(s, 0) !== round) {
    /* spin: every worker starts the attempt within microseconds of the others */
  }
  let lock: OutputLock | null = null;
  try {
    lock = lockOutput(target);
  } catch {
    lock = null;
  }
  Atomics.store(s, 2 + index, lock ? 1 : 2);
  Atomics.notify(s, 2 + index);
  while (Atomics.load(s, 1) !== round) Atomics.wait(s, 1, Atomics.load(s, 1), 50);
  lock?.release();
  Atomics.store(s, 2 + index, 0);
}
parentPort!.postMessage('done');
