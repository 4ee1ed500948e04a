/**
 * Settings against a manifest (src/study/settings.ts): the one comparison `rac trace` and
 * `rac eval` resume with, and the hash `rac run` names its outputs by.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashOf, settingsDiff, stableJson } from '../../src/study/settings.ts';

describe('settings against a manifest', () => {
  it('stableJson ignores key order at every depth, not array order', () => {
    assert.equal(stableJson({ b: 1, a: { d: [1, 2], c: null } }), stableJson({ a: { c: null, d: [1, 2] }, b: 1 }));
    assert.notEqual(stableJson({ a: [1, 2] }), stableJson({ a: [2, 1] }));
  });

  it('settingsDiff: dotted keys, sorted; one-sided keys differ; depth and leaves stop the descent', () => {
    const was = { sampling: { seed: 1, top_p: 1 }, n: 2, template_flags: { x: 1, y: 2 } };
    const now = { sampling: { top_p: 0.9, seed: 1 }, n: 2, template_flags: { x: 1, y: 3 }, extra: true };
    assert.deepEqual(settingsDiff(was, now), ['extra', 'sampling.top_p', 'template_flags.y']);
    assert.deepEqual(settingsDiff(was, now, { leaves: ['template_flags'] }), ['extra', 'sampling.top_p', 'template_flags']);
    assert.deepEqual(settingsDiff(was, now, { depth: 1 }), ['extra', 'sampling', 'template_flags']);
    assert.deepEqual(settingsDiff(was, structuredClone(was)), []);
    assert.deepEqual(settingsDiff(1, 2), ['(root)']);
  });

  it('hashOf is the sha256 of JSON.stringify, 12 hex digits (names of existing rac run outputs)', () => {
    assert.equal(hashOf({ model: 'm', tset: { n: 2, seed: 1 }, budget: 100 }), 'cb83f06e8756');
  });
});
