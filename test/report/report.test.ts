/**
 * `rac report`: rows from results.json (labels from rac.json, dense when absent) and summary.json,
 * the table's Δ columns, the claim check, a self-contained page (no scripts, no network), the
 * CLI, and the page opened in headless Chromium: every plot rendered with a non-zero box and
 * visible marks, and no console message at all.
 *
 * Chromium: /usr/bin/chromium (Debian's `chromium`, listed in .ci/apt-packages). Without it the
 * browser test is skipped with a message — except under CI=true, where it fails.
 * RAC_REPORT_SCREENSHOT=path.png keeps a copy of the screenshot taken of the page.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { claimChecks, groupRows, loadReportInput, summarize } from '../../src/report/data.ts';
import { buildReport, renderReport } from '../../src/report/html.ts';
import { niceTicks } from '../../src/report/svg.ts';
import { tempDir } from '../helpers/checkpoints.ts';
import { rac } from '../helpers/cli.ts';

const CHROMIUM = process.env.RAC_CHROMIUM ?? '/usr/bin/chromium';

interface Fake {
  method: string;
  calib: string | null;
  sparsity: number | null;
  pattern?: string;
  accuracy: number;
  tokens: number;
}

// Dense + SparseGPT at 50% and 70% × prompt / rac / text, plus Wanda (rac) and magnitude at 50%.
const FAKES: Fake[] = [
  { method: 'dense', calib: null, sparsity: null, accuracy: 0.9, tokens: 300 },
  { method: 'sparsegpt', calib: 'prompt', sparsity: 0.5, accuracy: 0.7, tokens: 420 },
  { method: 'sparsegpt', calib: 'rac', sparsity: 0.5, accuracy: 0.85, tokens: 320 },
  { method: 'sparsegpt', calib: 'text', sparsity: 0.5, accuracy: 0.6, tokens: 500 },
  { method: 'sparsegpt', calib: 'prompt', sparsity: 0.7, accuracy: 0.3, tokens: 700 },
  { method: 'sparsegpt', calib: 'rac', sparsity: 0.7, accuracy: 0.45, tokens: 650 },
  { method: 'sparsegpt', calib: 'text', sparsity: 0.7, accuracy: 0.2, tokens: 800 },
  { method: 'wanda', calib: 'rac', sparsity: 0.5, accuracy: 0.8, tokens: 350 },
  { method: 'magnitude', calib: null, sparsity: 0.5, accuracy: 0.1, tokens: 900 },
];

/** Model dirs (pruned ones with a rac.json) and a results.json per fake row. */
function synthetic(root: string, modelName = 'tiny-reasoner'): string[] {
  const dense = join(root, modelName);
  mkdirSync(dense, { recursive: true });
  return FAKES.map((f, i) => {
    let dir = dense;
    if (f.method !== 'dense') {
      dir = join(root, `${modelName}-${f.method}-${f.calib ?? 'none'}-${f.sparsity}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'rac.json'),
        JSON.stringify({
          method: f.method,
          sparsity: f.sparsity,
          source_model: dense,
          calibration: f.calib ? { kind: 'mode', mode: f.calib, tokens: 4096, sequences: 8 } : { kind: 'none', tokens: 0, sequences: 0 },
          totals: { sparsity: f.sparsity },
        }),
      );
    }
    const file = join(root, `results-${i}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        rac_eval: 1,
        model: { dir, fingerprint: `sha256:${i}`, backend: 'local' },
        task: 'tiny',
        dataset: { file: 'eval.jsonl', sha256: 'abc', problems: 40 },
        metrics: {
          accuracy: f.accuracy,
          mean_tokens: { all: f.tokens, correct: f.tokens, incorrect: f.tokens },
          truncated: f.tokens / 1000,
        },
        per_family: {
          arith: { accuracy: f.accuracy, mean_tokens: f.tokens, truncated: 0, n: 20 },
          trace: { accuracy: f.accuracy / 2, mean_tokens: f.tokens, truncated: 0, n: 20 },
        },
        samples: [],
      }),
    );
    return file;
  });
}

describe('report data', () => {
  it('labels rows from rac.json (dense when absent) and computes Δ against dense', () => {
    const files = synthetic(tempDir('rep-data'));
    const rows = files.flatMap(loadReportInput);
    assert.deepEqual(
      rows.map((r) => [r.model, r.method, r.calib, r.sparsity]),
      FAKES.map((f) => ['tiny-reasoner', f.method, f.calib, f.sparsity]),
    );
    assert.equal(rows[1]!.calib_tokens, 4096);
    const [g] = groupRows(rows);
    assert.equal(g!.dense!.accuracy, 0.9);
    assert.deepEqual(g!.notes, []);
    const claims = claimChecks(g!);
    assert.deepEqual(
      claims.map((c) => [c.sparsity, c.holds]),
      [
        ['50%', true],
        ['70%', false],
      ],
    );
    assert.ok(Math.abs(claims[0]!.recovered! - 0.75) < 1e-12);
    assert.ok(Math.abs(claims[1]!.recovered! - 0.25) < 1e-12);
    const s = summarize([g!]) as { eval_problems: number; dense: unknown; rows: Array<Record<string, unknown>> };
    assert.equal(s.eval_problems, 40);
    assert.deepEqual(s.dense, {
      accuracy: 0.9,
      mean_tokens: 300,
      truncated: 0.3,
      per_family: JSON.parse(readFileSync(files[0]!, 'utf8')).per_family,
    });
    assert.equal(s.rows.length, FAKES.length - 1);
    const r = s.rows.find((x) => x.method === 'sparsegpt' && x.calib === 'rac' && x.sparsity === 0.7)!;
    assert.ok(Math.abs((r.delta_accuracy as number) + 0.45) < 1e-12);
    assert.equal(r.mean_tokens, 650);
  });

  it('prefers model.pruning recorded at eval time, reads summary.json, refuses junk', () => {
    const dir = tempDir('rep-inputs');
    const f = join(dir, 'r.json');
    writeFileSync(
      f,
      JSON.stringify({
        model: {
          dir: join(dir, 'gone'),
          pruning: { method: 'wanda', pattern: '2:4', source_model: '/m/base', calibration: { mode: 'rac', tokens: 9 } },
        },
        metrics: { accuracy: 0.5, mean_tokens: { all: 10 } },
      }),
    );
    const [row] = loadReportInput(f);
    assert.deepEqual([row!.model, row!.method, row!.calib, row!.pattern, row!.calib_tokens], ['base', 'wanda', 'rac', '2:4', 9]);
    const s = join(dir, 'summary.json');
    writeFileSync(
      s,
      JSON.stringify({
        model: 'tiny',
        eval_problems: 400,
        dense: { accuracy: 0.8, mean_tokens: 100, truncated: 0 },
        rows: [{ method: 'sparsegpt', calib: 'rac', sparsity: 0.5, calib_tokens: 1000, accuracy: 0.7, mean_tokens: 110, truncated: 0.01 }],
      }),
    );
    const rows = loadReportInput(s);
    assert.deepEqual(
      rows.map((r) => [r.model, r.method, r.calib, r.sparsity, r.problems]),
      [
        ['tiny', 'dense', null, null, 400],
        ['tiny', 'sparsegpt', 'rac', 0.5, 400],
      ],
    );
    writeFileSync(join(dir, 'junk.json'), '{"hello": 1}');
    assert.throws(() => loadReportInput(join(dir, 'junk.json')), /neither a results.json/);
    assert.throws(() => loadReportInput(join(dir, 'absent.json')), /file not found/);
    assert.deepEqual(niceTicks(0.2, 0.9), [0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(0, 870), [0, 200, 400, 600, 800, 1000]);
  });
});

describe('length inflation in the report', () => {
  it('tokens ÷ dense on the same problems (all; correct on problems both solve), the quantization scheme in the method', () => {
    const root = tempDir('report-len');
    const dense = join(root, 'm');
    const q = join(root, 'm-q4km');
    mkdirSync(dense, { recursive: true });
    mkdirSync(q, { recursive: true });
    writeFileSync(
      join(q, 'rac.json'),
      JSON.stringify({
        method: 'gptq',
        sparsity: 0,
        source_model: dense,
        calibration: { kind: 'mode', mode: 'rac', tokens: 4096 },
        quantization: { format: 'q4_k_m', imatrix: { datasets: ['t'] } },
        totals: { sparsity: 0.01 },
      }),
    );
    const sample = (problem_id: string, tokens: number, correct: boolean, finish_reason = 'stop') => ({
      problem_id,
      tokens,
      correct,
      finish_reason,
    });
    const results = (name: string, dir: string, samples: ReturnType<typeof sample>[]) => {
      const f = join(root, `${name}.json`);
      const acc = samples.filter((x) => x.correct).length / samples.length;
      const mt = samples.reduce((a, x) => a + x.tokens, 0) / samples.length;
      writeFileSync(
        f,
        JSON.stringify({
          rac_eval: 1,
          model: { dir, fingerprint: name, backend: 'local' },
          dataset: { file: 'e.jsonl', sha256: 'abc', problems: 3 },
          metrics: {
            accuracy: acc,
            mean_tokens: { all: mt },
            truncated: samples.filter((x) => x.finish_reason === 'length').length / samples.length,
          },
          samples,
        }),
      );
      return f;
    };
    const d = results('dense', dense, [sample('a', 100, true), sample('b', 200, true), sample('c', 300, false)]);
    // the compressed model also has a problem the dense evaluation lacks: it does not count
    const p = results('q', q, [
      sample('a', 150, true),
      sample('b', 500, false, 'length'),
      sample('c', 300, false),
      sample('z', 9999, true),
    ]);
    const rows = [...loadReportInput(d), ...loadReportInput(p)];
    const [g] = groupRows(rows);
    const row = g!.rows.find((r) => r.method === 'gptq')!;
    assert.deepEqual(row.quant, { scheme: 'q4_k_m', imatrix: true });
    assert.equal(row.vs_dense!.problems, 3);
    assert.equal(row.vs_dense!.tokens_ratio, (150 + 500 + 300) / 3 / 200);
    assert.equal(row.vs_dense!.tokens_ratio_correct, 150 / 100); // problem a only: both solve it
    assert.equal(row.vs_dense!.truncated, 1 / 3);
    const html = renderReport(rows, { title: 't' });
    assert.match(html, /tokens ÷ dense/);
    assert.match(html, /gptq q4_k_m \+imatrix/);
    assert.match(html, />1\.58×</);
    assert.match(html, />1\.50×</);
    const sum = summarize([g!]) as { rows: { tokens_ratio: number; tokens_ratio_correct: number; quant: unknown }[] };
    assert.equal(sum.rows[0]!.tokens_ratio, row.vs_dense!.tokens_ratio);
    assert.equal(sum.rows[0]!.tokens_ratio_correct, 1.5);
    assert.deepEqual(sum.rows[0]!.quant, { scheme: 'q4_k_m', imatrix: true });
  });
});

describe('report page', () => {
  it('is self-contained: table rows, three plots, no scripts, no external resources, escaped text', () => {
    const rows = synthetic(tempDir('rep-page'), 'm<b>&"x').flatMap(loadReportInput);
    const html = renderReport(rows, { created: 'fixed' });
    assert.doesNotMatch(html, /<script/i);
    assert.doesNotMatch(html, /https?:\/\//);
    assert.doesNotMatch(html, /\b(src|href)=/i);
    assert.doesNotMatch(html, /<b>&"x/);
    assert.match(html, /m&lt;b&gt;&amp;&quot;x/);
    assert.equal((html.match(/<svg /g) ?? []).length, 3);
    for (const id of ['acc-vs-sparsity-0', 'tokens-vs-sparsity-0', 'acc-vs-length-0']) assert.match(html, new RegExp(`<svg id="${id}"`));
    assert.equal((html.match(/<tr class="dense">/g) ?? []).length, 1);
    assert.equal((html.match(/<tr/g) ?? []).length, FAKES.length + 1);
    assert.match(html, /−45\.0 pts/); // SparseGPT RAC at 70%: 0.45 − 0.9
    assert.match(html, /\+350\.0/); // its tokens: 650 − 300
    assert.match(html, /claim holds/);
    assert.match(html, /claim not met here/);
    assert.throws(() => renderReport([]), /no rows/);
  });

  it('rac report writes the page and summary.json; the summary renders the same table', async () => {
    const dir = tempDir('rep-cli');
    const files = synthetic(dir);
    const out = join(dir, 'report.html');
    const sum = join(dir, 'summary.json');
    const r = await rac('report', ...files, '--out', out, '--summary', sum);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(out, 'utf8'), /^<!DOCTYPE html>/);
    const again = buildReport([sum], join(dir, 'again.html'));
    assert.equal(again.rows.length, FAKES.length);
    const strip = (h: string) => h.replace(/<p class="meta">.*?<\/p>/s, '').replace(/<td class="src"[^>]*>.*?<\/td>/g, '');
    const [a, b] = [strip(readFileSync(join(dir, 'again.html'), 'utf8')), strip(readFileSync(out, 'utf8'))];
    if (a !== b) {
      writeFileSync(join(dir, 'a.html'), a);
      writeFileSync(join(dir, 'b.html'), b);
    }
    assert.equal(a, b);
    const bad = await rac('report', join(dir, 'nope.json'), '--out', join(dir, 'x.html'));
    assert.equal(bad.code, 1);
    assert.equal(existsSync(join(dir, 'x.html')), false);
  });
});

// ---------------------------------------------------------------------------------------------
// Headless Chromium

function chromiumArgs(userDir: string): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${userDir}`,
    '--enable-logging=stderr',
    '--v=0',
    '--hide-scrollbars',
    '--window-size=1280,2000',
  ];
}

function runChromium(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(CHROMIUM, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), 45_000);
    p.on('error', reject);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Console messages Chromium logged for the page (`…:CONSOLE:n] "…"` or `CONSOLE(n)`). */
function consoleLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /:CONSOLE[:(]\d+/.test(l) || /\bCONSOLE\(/.test(l));
}

// Measures every <svg> and its visible marks; written into the DOM for --dump-dom. Injected
// into the TEST COPY only: the shipped page has no script.
const PROBE = `<script>
(function () {
  var out = [];
  document.querySelectorAll('svg').forEach(function (s) {
    var r = s.getBoundingClientRect();
    var marks = 0;
    s.querySelectorAll('circle, rect, path, line, text').forEach(function (e) {
      var b = e.getBBox();
      if (b.width > 0 || b.height > 0) marks++;
    });
    out.push({ id: s.id, width: r.width, height: r.height, marks: marks, series: s.querySelectorAll('path[stroke-width="2"]').length });
  });
  var pre = document.createElement('pre');
  pre.id = 'rac-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`;

describe('report in headless Chromium', () => {
  const have = existsSync(CHROMIUM);
  const skip =
    !have && process.env.CI !== 'true' ? `${CHROMIUM} not found (apt-get install chromium); set CI=true to make this a failure` : false;

  it('every plot renders with a non-zero box and visible marks, and nothing reaches the console', { skip, timeout: 120_000 }, async () => {
    assert.ok(have, `${CHROMIUM} is missing (CI=true): install Debian's chromium (.ci/apt-packages)`);
    const dir = tempDir('rep-chromium');
    const { rows } = buildReport(synthetic(dir), join(dir, 'report.html'));
    const shipped = readFileSync(join(dir, 'report.html'), 'utf8');
    assert.doesNotMatch(shipped, /<script/i);
    const probe = join(dir, 'probe.html');
    writeFileSync(probe, shipped.replace('</body>', `${PROBE}\n</body>`));

    const dom = await runChromium([...chromiumArgs(join(dir, 'ud1')), '--dump-dom', `file://${probe}`]);
    assert.equal(dom.code, 0, dom.stderr.slice(-2000));
    assert.deepEqual(consoleLines(dom.stderr), [], 'console messages');
    const m = /<pre id="rac-probe">(.*?)<\/pre>/s.exec(dom.stdout);
    assert.ok(m, `probe output missing from the DOM:\n${dom.stdout.slice(0, 500)}`);
    const boxes = JSON.parse(m![1]!.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as Array<{
      id: string;
      width: number;
      height: number;
      marks: number;
      series: number;
    }>;
    assert.deepEqual(
      boxes.map((b) => b.id),
      ['acc-vs-sparsity-0', 'tokens-vs-sparsity-0', 'acc-vs-length-0'],
    );
    const pruned = rows.length - 1;
    for (const b of boxes) {
      assert.ok(b.width > 100 && b.height > 100, `${b.id}: box ${b.width}×${b.height}`);
      assert.ok(b.marks >= pruned, `${b.id}: only ${b.marks} visible marks`);
    }
    // 3 SparseGPT series with 2 sparsities each are drawn as lines in the sparsity plots.
    assert.equal(boxes[0]!.series, 3);
    assert.equal(boxes[1]!.series, 3);

    // The shipped page itself, as a user opens it: screenshot, and again no console message.
    const png = join(dir, 'report.png');
    const shot = await runChromium([...chromiumArgs(join(dir, 'ud2')), `--screenshot=${png}`, `file://${join(dir, 'report.html')}`]);
    assert.equal(shot.code, 0, shot.stderr.slice(-2000));
    assert.deepEqual(consoleLines(shot.stderr), [], 'console messages');
    assert.ok(statSync(png).size > 20_000, 'screenshot suspiciously small');
    assert.deepEqual([...readFileSync(png).subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    if (process.env.RAC_REPORT_SCREENSHOT) copyFileSync(png, process.env.RAC_REPORT_SCREENSHOT);
  });

  it('the console check catches errors (negative control)', { skip, timeout: 60_000 }, async () => {
    const dir = tempDir('rep-chromium-neg');
    const page = join(dir, 'bad.html');
    writeFileSync(
      page,
      '<!DOCTYPE html><html><body><svg width="10" height="10"></svg><script>console.error("rac-negative-control"); missingFunction();</script></body></html>',
    );
    const r = await runChromium([...chromiumArgs(join(dir, 'ud')), '--dump-dom', `file://${page}`]);
    const lines = consoleLines(r.stderr);
    assert.ok(
      lines.some((l) => l.includes('rac-negative-control')),
      r.stderr.slice(-2000),
    );
    assert.ok(
      lines.some((l) => /Uncaught ReferenceError/.test(l)),
      r.stderr.slice(-2000),
    );
  });
});

describe('report: MoE expert coverage', () => {
  it('reads each pruned MoE layer’s routed tokens from rac.json and draws one heatmap per model, outlining thin experts', () => {
    const root = tempDir('rep-moe');
    const dense = join(root, 'tiny-moe');
    mkdirSync(dense, { recursive: true });
    const files = [
      ['prompt', [0, 3, 40, 100], [12, 60, 60, 31]],
      ['rac', [40, 50, 60, 70], [100, 33, 40, 32]],
    ].map(([mode, l0, l2], i) => {
      const dir = join(root, `moe-${mode}`);
      mkdirSync(dir, { recursive: true });
      const experts = (tokens: number[]) => tokens.map((t, j) => ({ expert: j, tokens: t, statistics: 'routed', linears: {} }));
      writeFileSync(
        join(dir, 'rac.json'),
        JSON.stringify({
          method: 'sparsegpt',
          sparsity: 0.5,
          source_model: dense,
          calibration: { kind: 'mode', mode, tokens: 2000, sequences: 8 },
          totals: { sparsity: 0.5 },
          layers: [
            { layer: 0, experts: experts(l0 as number[]) },
            { layer: 1, linears: {} },
            { layer: 2, experts: experts(l2 as number[]) },
          ],
        }),
      );
      const file = join(root, `results-${i}.json`);
      writeFileSync(
        file,
        JSON.stringify({ model: { dir }, metrics: { accuracy: 0.5, mean_tokens: { all: 100 } }, dataset: { problems: 10 } }),
      );
      return file;
    });
    const rows = files.flatMap(loadReportInput);
    assert.deepEqual(rows[0]!.experts, [
      { layer: 0, tokens: [0, 3, 40, 100] },
      { layer: 2, tokens: [12, 60, 60, 31] },
    ]);
    const html = renderReport(rows, { created: 'fixed' });
    assert.match(html, /Expert coverage: calibration tokens routed to each expert/);
    assert.match(html, /experts \(4 of 8 with fewer than 32 tokens, outlined\)/);
    assert.match(html, /experts \(0 of 8 with fewer than 32 tokens, outlined\)/);
    assert.match(html, /layer 2, expert 3: 31 tokens/);
    assert.equal((html.match(/stroke="#c00"/g) ?? []).length, 4);
  });
});

describe('report: MoE expert removal', () => {
  it('plots expert removal at the fraction of experts removed, labels compositions, and crosses the removed experts', () => {
    const root = tempDir('rep-reap');
    const dense = join(root, 'tiny-moe');
    mkdirSync(dense, { recursive: true });
    const removal = (scoring: string) => ({
      scoring,
      experts_before: 8,
      experts_after: 6,
      parameters_before: 100,
      parameters_after: 80,
      calibration: { tokens: 10, sequences: 1 },
      seconds: 1,
      layers: [
        {
          layer: 0,
          removed: [1, 6],
          experts: [0, 1, 2, 3, 4, 5, 6, 7].map((j) => ({ expert: j, tokens: 10 * j, score: j, removed: j === 1 || j === 6 })),
        },
      ],
    });
    const rows = [
      ['reap', { method: 'reap', expert_removal: removal('reap') }],
      ['both', { method: 'sparsegpt', sparsity: 0.5, expert_removal: removal('frequency') }],
    ].flatMap(([name, racJson], i) => {
      const dir = join(root, name as string);
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, 'rac.json'),
        JSON.stringify({
          ...(racJson as object),
          source_model: dense,
          calibration: { kind: 'mode', mode: 'rac', tokens: 10, sequences: 1 },
          totals: {},
        }),
      );
      const file = join(root, `r${i}.json`);
      writeFileSync(file, JSON.stringify({ model: { dir }, metrics: { accuracy: 0.5, mean_tokens: { all: 100 } } }));
      return loadReportInput(file);
    });
    assert.equal(rows[0]!.experts_removed, 0.25);
    const html = renderReport(rows, { created: 'fixed' });
    assert.match(html, /experts −25%</);
    assert.match(html, /experts −25% \(frequency\), then 50%/);
    assert.match(html, /layer 0, expert 6: 60 tokens, score 6\.000, removed/);
    assert.equal((html.match(/class="x"/g) ?? []).length, 4, 'two removed experts in each of two heatmaps');
  });
});
