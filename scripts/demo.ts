#!/usr/bin/env -S npx tsx
/**
 * `npm run demo`: the main job on a model the project makes. For now: write a random-weight
 * Qwen2 checkpoint, describe it, and generate from it with the local engine.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { writeRandomCheckpoint } from '../src/models/random.ts';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'demo-out');
const model = join(out, 'random-qwen2');
console.error(`demo: writing a random Qwen2 checkpoint to ${model}`);
writeRandomCheckpoint(model, { family: 'qwen2', layers: 4, hidden: 128, heads: 4, kvHeads: 2, seed: 0 });
const rac = (...args: string[]) => {
  console.error(`\n$ rac ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [join(root, 'bin/rac.js'), ...args], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};
rac('info', '--model', model);
rac('generate', '--model', model, '--chat', '--prompt', 'What is 12 + 30?', '--max-new-tokens', '32', '--temperature', '0');
