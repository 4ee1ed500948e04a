#!/usr/bin/env node
// The timing-sensitive test files run with every core saturated by CPU burners, to prove that no
// test depends on the machine being idle (tests wait for conditions, never for fixed times).
// Usage: node scripts/test-stress.mjs [substring filter...]   (default: serve, kill/resume, sandbox)
// Env:   RAC_STRESS_BURNERS (default: one per core).
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';

const root = new URL('..', import.meta.url).pathname;
const filters = process.argv.slice(2);
const files = filters.length ? filters : ['test/serve/', 'trace-kill', 'eval-resume', 'sandbox', 'trace-openai', 'openai-backend'];
const n = Number(process.env.RAC_STRESS_BURNERS ?? availableParallelism());

// Each burner spins until its parent is gone or 60 minutes have passed, so none outlives the run.
const burn = `const p=${process.pid},t=Date.now()+3.6e6;for(let i=0;;i++){if((i&0xfffff)===0){try{process.kill(p,0)}catch{process.exit(0)}if(Date.now()>t)process.exit(0)}}`;
const burners = Array.from({ length: n }, () => spawn(process.execPath, ['-e', burn], { stdio: 'ignore' }));
const stop = () => burners.forEach((b) => b.kill('SIGKILL'));
process.on('exit', stop);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));
console.error(`test-stress: ${n} CPU burner(s) running beside the tests`);

const t0 = Date.now();
const r = spawn(process.execPath, ['scripts/run-tests.mjs', ...files], { cwd: root, stdio: 'inherit' });
r.on('exit', (code) => {
  console.error(`test-stress: ${((Date.now() - t0) / 1000).toFixed(0)} s under load`);
  process.exit(code ?? 1);
});
