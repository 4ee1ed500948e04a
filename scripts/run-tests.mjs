#!/usr/bin/env node
// Runs every test/**/*.test.ts with Node's test runner through tsx, one file at a time, each in its
// own process group with a bound: `--test-timeout` fails a single test that runs too long, and a
// file whose process outlives RAC_TEST_FILE_TIMEOUT_S (default 300 s) is killed (SIGTERM, then
// SIGKILL) and counted as failed, so a hang fails that file within minutes and the run names it.
// `--test-force-exit` ends a file once its tests are done even if a handle leaked.
//
// Usage: node scripts/run-tests.mjs [substring filter...]
// Env:   RAC_TEST_FILE_TIMEOUT_S (per file, default 300), RAC_TEST_TIMEOUT_S (per test, default 240).
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);
const fileTimeoutS = Number(process.env.RAC_TEST_FILE_TIMEOUT_S ?? 300);
const testTimeoutS = Number(process.env.RAC_TEST_TIMEOUT_S ?? 240);
for (const [name, v] of [
  ['RAC_TEST_FILE_TIMEOUT_S', fileTimeoutS],
  ['RAC_TEST_TIMEOUT_S', testTimeoutS],
]) {
  if (!(v > 0)) {
    console.error(`run-tests: ${name} must be a positive number of seconds`);
    process.exit(2);
  }
}

const files = [];
(function walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(relative(root, p));
  }
})(join(root, 'test'));
const selected = filters.length ? files.filter((f) => filters.some((s) => f.includes(s))) : files;
if (selected.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

let current = null;
const killGroup = (child, sig) => {
  try {
    process.kill(-child.pid, sig); // the file's process and whatever it spawned into its group
  } catch {
    /* already gone */
  }
};
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (current) killGroup(current, 'SIGKILL');
    process.exit(130);
  });
}

/** The last "# KEY N" line at column 0 of a TAP stream: the file's own summary. */
function tapCount(text, key) {
  const m = [...text.matchAll(new RegExp(`^# ${key} (\\d+)$`, 'gm'))].pop();
  return m ? Number(m[1]) : 0;
}

/** Runs one file; resolves with its TAP counts and how it ended. */
function runFile(file) {
  const args = [
    '--import',
    'tsx',
    '--test',
    '--test-force-exit',
    `--test-timeout=${testTimeoutS * 1000}`,
    // spec for people (stderr); TAP on a pipe for the counts (a pipe is written synchronously, so
    // the summary survives --test-force-exit, which a file destination's stream does not)
    '--test-reporter=spec',
    '--test-reporter-destination=stderr',
    '--test-reporter=tap',
    '--test-reporter-destination=stdout',
    file,
  ];
  const t0 = Date.now();
  return new Promise((done) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    current = child;
    let text = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => (text += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`\n# run-tests: ${file} outlived ${fileTimeoutS} s: killing it`);
      killGroup(child, 'SIGTERM');
      setTimeout(() => killGroup(child, 'SIGKILL'), 5_000).unref();
    }, fileTimeoutS * 1000);
    let finished = false;
    const finish = (code, signal) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      current = null;
      const seconds = (Date.now() - t0) / 1000;
      const skipped = tapCount(text, 'skipped') + tapCount(text, 'todo');
      done({
        file,
        code,
        signal,
        timedOut,
        seconds,
        pass: tapCount(text, 'pass'),
        fail: tapCount(text, 'fail') + tapCount(text, 'cancelled'),
        skipped,
      });
    };
    child.on('exit', (code, signal) => {
      killGroup(child, 'SIGKILL'); // leftovers of a file that ended
      // The TAP pipe drains on 'close'; a leftover that left the group may hold it open: 2 s at most.
      child.on('close', () => finish(code, signal));
      setTimeout(() => finish(code, signal), 2_000).unref();
    });
  });
}

const results = [];
for (const file of selected) results.push(await runFile(file));

let pass = 0;
let fail = 0;
let skipped = 0;
const bad = [];
for (const r of results) {
  pass += r.pass;
  fail += r.fail;
  skipped += r.skipped;
  if (r.timedOut) {
    bad.push(`${r.file}: killed after ${r.seconds.toFixed(0)} s (per-file timeout ${fileTimeoutS} s)`);
    fail += 1;
  } else if (r.code !== 0) {
    bad.push(`${r.file}: exit ${r.code ?? r.signal}${r.fail ? `, ${r.fail} failed` : ''}`);
    if (r.fail === 0) fail += 1; // a file that crashed without a failing test still fails the run
  }
}
console.log('');
console.log(`# ${selected.length} test files in ${results.reduce((s, r) => s + r.seconds, 0).toFixed(0)} s; slowest:`);
for (const r of [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 5))
  console.log(`#   ${r.seconds.toFixed(1).padStart(6)} s  ${r.file}`);
for (const b of bad) console.log(`# FAILED ${b}`);
console.log(`tests: ${pass} passed, ${fail} failed, ${skipped} skipped`);
process.exit(fail === 0 ? 0 : 1);
