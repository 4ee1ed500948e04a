/** The ORT engine against the plain TypeScript reference forward (test/models: dense and MoE families). */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { Engine } from '../../src/models/engine.ts';
import { Model } from '../../src/models/model.ts';
import type { RandomCheckpointOptions } from '../../src/models/random.ts';
import { referenceForward } from '../../src/models/reference.ts';
import { checkpoint, maxAbsDiff, weightSource } from './checkpoints.ts';

/** Three sequences of different lengths: run together, the shorter two are left-padded. */
export const SEQS = [
  [5, 17, 33, 2, 90, 41, 7, 250, 11, 3, 60, 61],
  [200, 4, 99],
  [1, 2, 3, 4, 5, 6, 7],
];

/**
 * One test: the engine's logits for SEQS run as one left-padded batch are, sequence by sequence,
 * the reference forward's of that sequence alone, within `atol`. The engine goes to `engines`
 * (the suite releases them).
 */
export function itMatchesReference(label: string, opts: RandomCheckpointOptions, atol: number, engines: Engine[]): void {
  it(`${label}: logits within ${atol} on a left-padded batch`, async () => {
    const model = Model.open(checkpoint(opts));
    const engine = await Engine.load(model, { threads: 1 });
    engines.push(engine);
    const got = await engine.forward(SEQS);
    const V = model.config.vocabSize;
    for (let b = 0; b < SEQS.length; b++) {
      const [ref] = referenceForward(model.spec, model.config, weightSource(model), [SEQS[b]!]);
      assert.equal(got[b]!.length, SEQS[b]!.length * V);
      const d = maxAbsDiff(got[b]!, ref!);
      assert.ok(d <= atol, `sequence ${b}: max |Δlogit| = ${d}`);
    }
  });
}
