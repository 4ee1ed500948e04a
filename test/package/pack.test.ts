/**
 * rac as an installed package: `npm pack` (which builds dist/ with tsc) gives a tarball that
 * installs into an empty project from the tarball and the registry alone; there
 * `import { prune, loadModel } from 'rac'` type-checks and runs (a small prune of a random
 * checkpoint, then the pruned model loaded and generating), and the installed `rac --help` and
 * `rac prune` work without tsx. Also prints the start-up time of `rac --help` installed vs from
 * the checkout through tsx.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { writeRandomCheckpoint } from '../../src/models/random.ts';
import { ROOT } from '../helpers/cli.ts';
import { tempDir } from '../helpers/checkpoints.ts';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function timeRun(cmd: string, args: string[], cwd: string): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return performance.now() - t0;
}

describe('the packed package', { timeout: 600_000 }, () => {
  it('installs from its tarball into an empty project; the API and the installed rac work there', () => {
    const work = tempDir('pack');
    // npm pack runs prepack (npm run build: tsc into dist/) — once scripts are allowed: the repo's
    // .npmrc turns them off (onnxruntime-node's install script), which left a clean clone with
    // no dist/ to pack. Only this package's own pack scripts run here.
    const packed = execFileSync(npm, ['pack', '--ignore-scripts=false', '--pack-destination', work, '--silent'], {
      cwd: ROOT,
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .pop()!;
    const tarball = join(work, packed);
    assert.ok(existsSync(tarball), `npm pack wrote ${tarball}`);
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    // onnxruntime-node ships its CPU binary in the package: its install script (GPU downloads) is not needed.
    execFileSync(npm, ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', tarball], {
      cwd: app,
      stdio: 'ignore',
    });
    const pkg = join(app, 'node_modules', 'rac');
    assert.ok(existsSync(join(pkg, 'dist', 'index.js')) && existsSync(join(pkg, 'dist', 'index.d.ts')));
    assert.equal(existsSync(join(pkg, 'src')), false, 'the package ships the build, not the sources');
    assert.equal(existsSync(join(app, 'node_modules', 'tsx')), false, 'tsx is not installed with the package');

    const model = join(work, 'model');
    writeRandomCheckpoint(model, { family: 'qwen2', seed: 3, layers: 2, hidden: 64 });
    const calib = join(work, 'calib.jsonl');
    writeFileSync(
      calib,
      `${Array.from({ length: 6 }, (_, i) => JSON.stringify({ input_ids: Array.from({ length: 24 }, (_, t) => (t * 7 + i) % 300) })).join('\n')}\n`,
    );

    // The library: typed (tsc over a file importing 'rac'), and running.
    const main = `import { prune, loadModel, closeModel, generateText, RacError, type PruneJob, type PruneSummary } from 'rac';
const job: PruneJob = {
  model: ${JSON.stringify(model)},
  out: ${JSON.stringify(join(work, 'pruned'))},
  method: 'sparsegpt',
  sparsity: 0.5,
  calibration: { file: ${JSON.stringify(calib)} },
  settings: { batchTokens: 256 },
  runtime: { threads: 1 },
};
const summary: PruneSummary = await prune(job);
const lm = await loadModel(job.out, { runtime: { threads: 1 } });
const g = await generateText(lm, 'Hello', { maxNewTokens: 4, temperature: 0 });
await closeModel(lm);
let refused = '';
try {
  await prune({ ...job, sparsity: undefined });
} catch (e) {
  if (e instanceof RacError) refused = e.name + ': ' + e.message;
}
console.log(JSON.stringify({ sparsity: summary.totals.sparsity, tokens: g.completions[0]!.ids.length, refused }));
`;
    writeFileSync(join(app, 'main.ts'), main);
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: true,
          types: [],
          outDir: 'out',
        },
        files: ['main.ts'],
      }),
    );
    const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
    const typed = spawnSync(tsc, ['-p', app], { cwd: app, encoding: 'utf8' });
    assert.equal(typed.status, 0, `tsc in the app: ${typed.stdout}${typed.stderr}`);
    const ran = spawnSync(process.execPath, [join(app, 'out', 'main.js')], { cwd: app, encoding: 'utf8' });
    assert.equal(ran.status, 0, ran.stderr);
    const r = JSON.parse(ran.stdout.trim().split('\n').pop()!) as { sparsity: number; tokens: number; refused: string };
    assert.equal(r.sparsity, 0.5);
    assert.equal(r.tokens, 4);
    assert.match(r.refused, /^UsageError: give exactly one of --sparsity or --pattern$/);

    // The installed command: --help, and a prune, without tsx.
    const rac = join(app, 'node_modules', '.bin', 'rac');
    const help = spawnSync(rac, ['--help'], { cwd: app, encoding: 'utf8' });
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /Usage: rac/);
    const out2 = join(work, 'pruned-cli');
    const cli = spawnSync(
      rac,
      ['prune', '--model', model, '--method', 'wanda', '--sparsity', '0.5', '--calib', calib, '--out', out2, '--threads', '1', '-q'],
      {
        cwd: app,
        encoding: 'utf8',
      },
    );
    assert.equal(cli.status, 0, cli.stderr);
    assert.ok(readdirSync(out2).includes('rac.json'));

    // Start-up: the installed command against the checkout's (tsx), median of 5 each.
    const installed = median(Array.from({ length: 5 }, () => timeRun(rac, ['--help'], app)));
    const checkout = median(Array.from({ length: 5 }, () => timeRun(process.execPath, [join(ROOT, 'bin', 'rac.js'), '--help'], ROOT)));
    process.stderr.write(
      `rac --help start-up: installed ${installed.toFixed(0)} ms, checkout (tsx) ${checkout.toFixed(0)} ms, ratio ${(installed / checkout).toFixed(2)}\n`,
    );
  });
});
