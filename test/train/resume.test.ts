/**
 * The trainer is deterministic and resumes exactly: 4 steps in one go and 2 + 2 steps with a
 * stop/--resume in between give bit-identical parameters, Adam moments and export.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../../scripts/train/checkpoint.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TINY = [
  '--hidden',
  '32',
  '--layers',
  '1',
  '--heads',
  '2',
  '--kv-heads',
  '1',
  '--intermediate',
  '48',
  '--batch',
  '2',
  '--seq',
  '384',
  '--threads',
  '1',
  '--quiet',
];

function train(work: string, out: string, extra: string[], size: string[] = TINY): void {
  execFileSync(
    process.execPath,
    ['--import', 'tsx', 'scripts/train-tiny-reasoner.ts', '--work', work, '--out', out, '--steps', '4', ...size, ...extra],
    {
      cwd: ROOT,
      stdio: 'pipe',
    },
  );
}

test('training 4 steps straight equals 2 steps + --resume 2 steps, bit for bit', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rac-tiny-resume-'));
  try {
    train(join(dir, 'a'), join(dir, 'out-a'), []);
    train(join(dir, 'b'), join(dir, 'out-b'), ['--stop-after', '2']);
    const mid = loadCheckpoint(join(dir, 'b', 'checkpoint.bin'));
    assert.equal(mid.meta.step, 2);
    train(join(dir, 'b'), join(dir, 'out-b'), ['--resume']);
    const a = loadCheckpoint(join(dir, 'a', 'checkpoint.bin'));
    const b = loadCheckpoint(join(dir, 'b', 'checkpoint.bin'));
    assert.equal(a.meta.step, 4);
    assert.equal(b.meta.step, 4);
    assert.deepEqual(b.meta.pack, a.meta.pack);
    assert.equal(b.meta.tokensSeen, a.meta.tokensSeen);
    assert.ok(Buffer.from(a.params.buffer).equals(Buffer.from(b.params.buffer)), 'params differ');
    assert.ok(Buffer.from(a.m.buffer).equals(Buffer.from(b.m.buffer)), 'Adam m differs');
    assert.ok(Buffer.from(a.v.buffer).equals(Buffer.from(b.v.buffer)), 'Adam v differs');
    assert.ok(readFileSync(join(dir, 'out-a', 'model.safetensors')).equals(readFileSync(join(dir, 'out-b', 'model.safetensors'))));
    assert.ok(!a.params.every((x, i) => x === mid.params[i]), 'training changed the parameters');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('recipe v2 (masked injected errors, code family) resumes bit for bit and keeps its recipe', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rac-tiny-resume-v2-'));
  // v2 examples run to 502 tokens: a 512-token row holds every one.
  const size = [...TINY.filter((_x, i) => TINY[i - 1] !== '--seq' && TINY[i] !== '--seq'), '--seq', '512'];
  try {
    train(join(dir, 'a'), join(dir, 'out-a'), ['--recipe', 'v2'], size);
    train(join(dir, 'b'), join(dir, 'out-b'), ['--recipe', 'v2', '--stop-after', '2'], size);
    assert.throws(() => train(join(dir, 'b'), join(dir, 'out-b'), ['--recipe', 'v1', '--resume'], size), /recipe v2, not v1/);
    train(join(dir, 'b'), join(dir, 'out-b'), ['--resume'], size);
    const a = loadCheckpoint(join(dir, 'a', 'checkpoint.bin'));
    const b = loadCheckpoint(join(dir, 'b', 'checkpoint.bin'));
    assert.equal(a.meta.recipe, 'v2');
    assert.deepEqual(a.meta.data, { families: ['arith', 'trace', 'code'], format: 'v2', injectRate: 0.15 });
    assert.equal(b.meta.step, 4);
    assert.ok(a.meta.targetTokensSeen < a.meta.tokensSeen);
    assert.equal(b.meta.targetTokensSeen, a.meta.targetTokensSeen);
    assert.ok(Buffer.from(a.params.buffer).equals(Buffer.from(b.params.buffer)), 'params differ');
    assert.ok(readFileSync(join(dir, 'out-a', 'model.safetensors')).equals(readFileSync(join(dir, 'out-b', 'model.safetensors'))));
    const summary = JSON.parse(readFileSync(join(dir, 'a', 'summary.json'), 'utf8')) as { recipe: string };
    assert.equal(summary.recipe, 'v2');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('recipe moe takes --experts and --aux-coef for a fresh run (sparse experts train), and other recipes refuse them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rac-tiny-moe-experts-'));
  const size = [...TINY.filter((_x, i) => TINY[i - 1] !== '--seq' && TINY[i] !== '--seq'), '--seq', '512'];
  try {
    train(join(dir, 'a'), join(dir, 'out-a'), ['--recipe', 'moe', '--experts', '3', '--aux-coef', '0.001', '--stop-after', '2'], size);
    const a = loadCheckpoint(join(dir, 'a', 'checkpoint.bin'));
    assert.equal(a.meta.step, 2);
    assert.equal(a.meta.cfg.moe?.experts, 3);
    assert.equal(a.meta.cfg.moe?.topK, 2);
    assert.equal(a.meta.cfg.moe?.auxCoef, 0.001);
    assert.ok(a.params.every(Number.isFinite));
    assert.throws(
      () => train(join(dir, 'b'), join(dir, 'out-b'), ['--recipe', 'v2', '--experts', '3'], size),
      /--experts and --aux-coef apply to an MoE recipe/,
    );
    assert.throws(
      () => train(join(dir, 'd'), join(dir, 'out-d'), ['--recipe', 'moe', '--aux-coef', '2'], size),
      /--aux-coef must be in \[0, 1\]/,
    );
    assert.throws(
      () => train(join(dir, 'c'), join(dir, 'out-c'), ['--recipe', 'moe', '--experts', '2'], size),
      /--experts must be an integer > top-k/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
