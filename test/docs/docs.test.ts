/**
 * The docs cannot drift from the code: README.md and every docs/*.md page are read as a user
 * reads them, and
 *   - every `rac …` line of a shell code block (also `npx rac`, `./bin/rac.js`, `npm run rac --`)
 *     is parsed by rac's own command tree (src/cli/program.ts) with the actions replaced by no-ops
 *     and the hub hook left out: an unknown command or option, a bad choice or number, a missing
 *     required option or an extra argument fails with the file and line;
 *   - every `rac CMD …` synopsis in inline code names a command, and options, that exist;
 *   - every `npm run X` names a package.json script; every repository path in code (scripts/,
 *     examples/, models/, bench/, src/, test/, docs/, tools/) exists, except the documented
 *     outputs listed in OUTPUTS;
 *   - every relative link resolves to a file, and to a heading when it names an anchor;
 *   - the README is at most 250 lines, links every docs page, and shows the two set-up commands
 *     .ci/run runs; its layout table is .dependency-cruiser.cjs's rooms; the settings table is
 *     study/job.ts's fields; recipes in yaml blocks load; TypeScript blocks are excerpts of an
 *     example that test/package/example.test.ts runs.
 * The walk-through's commands themselves run in test/docs/walkthrough.test.ts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { describe, it } from 'node:test';
import { CommanderError, type Command } from 'commander';
import { buildProgram } from '../../src/cli/program.ts';
import { loadRecipe } from '../../src/study/run.ts';
import { PRUNE_DEFAULTS, PRUNE_FIELDS } from '../../src/study/job.ts';
import { projectProse } from '../../scripts/prose.ts';
import { ROOT } from '../helpers/cli.ts';
import {
  anchors,
  inlineCode,
  links,
  racArgs,
  readDocs,
  shellCommands,
  shellLines,
  splitFences,
  type DocFile,
  type Fence,
} from '../helpers/markdown.ts';

const docs = readDocs(ROOT);
const where = (file: string, line: number) => `${file}:${line}`;
const SHELL = new Set(['sh', 'bash', 'shell', 'console']);
const scripts = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: object }).scripts);

/**
 * Paths the docs name that a command writes (so a checkout need not hold them), each with what
 * writes it. An entry no page mentions any more fails the test, so the list cannot rot.
 */
const OUTPUTS: Record<string, string> = {
  'examples/data': 'scripts/make-ablation-data.ts writes the ablation recipes’ data (gitignored)',
  'examples/data-moe': 'scripts/make-moe-study-data.ts writes the MoE studies’ data (gitignored)',
  'examples/ablation-60-out': 'rac run --config examples/ablation-60.yaml writes its study there (gitignored)',
  'examples/moe-study-out': 'rac run --config examples/moe-study.yaml writes its study there (gitignored)',
  'models/tiny-moe-reasoner': 'npm run train:tiny-reasoner -- --recipe moe writes the tiny MoE reasoner there',
};

/** Repository paths in a piece of code: words under these roots, without placeholders or globs. */
const PATH = /^(?:\.\/)?((?:scripts|examples|models|bench|src|test|docs|tools|\.ci)\/[\w./@+-]*)$/;
function repoPaths(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/[\s=,()[\]'"|]+/)) {
    if (/[<>*{}…$]/.test(raw)) continue;
    const w = raw.replace(/[.:;,]+$/, '');
    const m = PATH.exec(w);
    if (m) out.push(m[1]!.replace(/\/$/, ''));
  }
  return out;
}
function pathProblem(p: string): string | null {
  if (existsSync(join(ROOT, p))) return null;
  if (Object.keys(OUTPUTS).some((o) => p === o || p.startsWith(`${o}/`))) return null;
  return `${p} does not exist`;
}

/** A fresh command tree that parses without acting: actions are no-ops, the hub hook is off, output is captured. */
function parser(): { program: Command; errors: () => string } {
  const program = buildProgram({ resolveHubIds: false });
  let err = '';
  for (const c of [program, ...program.commands]) {
    c.configureOutput({ writeOut: () => {}, writeErr: (s) => void (err += s), outputError: (s) => void (err += s) });
    if (c !== program) c.action(() => {});
  }
  return { program, errors: () => err };
}

/** Parse `rac ARGS` as the CLI would; null when commander accepts it (help included), else its message. */
async function parseRac(args: string[]): Promise<string | null> {
  const { program, errors } = parser();
  try {
    await program.parseAsync(args, { from: 'user' });
    return null;
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return null;
    return (errors() || (e as Error).message).trim().split('\n')[0]!;
  }
}

function commandFences(doc: DocFile): Fence[] {
  return splitFences(doc).fences.filter((f) => SHELL.has(f.lang));
}

describe('docs', () => {
  it('the README is the front door: at most 250 lines, linking every docs page', () => {
    const readme = docs[0]!;
    assert.equal(readme.path, 'README.md');
    const n = readme.text.replace(/\n$/, '').split('\n').length;
    assert.ok(n <= 250, `README.md has ${n} lines (at most 250)`);
    const linked = new Set(links(readme).map((l) => l.target.split('#')[0]));
    const pages = docs.slice(1).map((d) => d.path);
    assert.ok(pages.length >= 10, `docs/ has ${pages.length} pages`);
    assert.deepEqual(
      pages.filter((p) => !linked.has(p)),
      [],
      'docs pages the README does not link',
    );
  });

  it('the README shows the two set-up commands, and .ci/run runs exactly those', () => {
    const lines = commandFences(docs[0]!).flatMap((f) => shellLines(f).map((l) => l.text.trim()));
    for (const c of ['npm ci && npm run demo', 'npm test']) assert.ok(lines.includes(c), `README.md lacks a code line "${c}"`);
    const ci = readFileSync(join(ROOT, '.ci/run'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^npm\b/.test(l));
    assert.deepEqual(ci, ['npm ci && npm run demo', 'npm test']);
  });

  it('every rac command line in a shell block parses with the real CLI; every npm script and tsx file exists', async () => {
    const bad: string[] = [];
    let racLines = 0;
    let npmRuns = 0;
    for (const doc of docs) {
      for (const f of splitFences(doc).fences) {
        // a rac command belongs in a shell block (checked); `text` blocks show output
        if (!SHELL.has(f.lang)) {
          if (f.lang !== 'text')
            for (const { line, text } of f.body)
              if (/^\s*(\$\s+)?(rac|npx rac|npm run)\s/.test(text))
                bad.push(`${where(doc.path, line)}: a command in a \`\`\`${f.lang || '(plain)'} block: fence it as sh`);
          continue;
        }
        for (const { line, text } of shellLines(f)) {
          let cmds: ReturnType<typeof shellCommands>;
          try {
            cmds = shellCommands(text);
          } catch (e) {
            bad.push(`${where(doc.path, line)}: ${(e as Error).message}`);
            continue;
          }
          for (const { words } of cmds) {
            const args = racArgs(words);
            if (args) {
              racLines++;
              const problem = await parseRac(args);
              if (problem) bad.push(`${where(doc.path, line)}: rac ${args.join(' ')}\n    ${problem}`);
              const config = args[0] === 'run' ? args[args.indexOf('--config') + 1] : undefined;
              if (config && existsSync(join(ROOT, config))) {
                try {
                  loadRecipe(join(ROOT, config));
                } catch (e) {
                  bad.push(`${where(doc.path, line)}: ${config}: ${(e as Error).message}`);
                }
              }
            }
            if (words[0] === 'npm' && words[1] === 'run') {
              npmRuns++;
              if (!scripts.includes(words[2] ?? ''))
                bad.push(`${where(doc.path, line)}: npm run ${words[2]}: no such script in package.json`);
            }
            const tsx = words[0] === 'npx' && words[1] === 'tsx' ? words[2] : words[0] === 'tsx' ? words[1] : undefined;
            if (tsx !== undefined && !existsSync(join(ROOT, tsx))) bad.push(`${where(doc.path, line)}: ${tsx} does not exist`);
          }
        }
      }
    }
    assert.deepEqual(bad, [], `\n${bad.join('\n')}`);
    // the README's walk-through alone has 8; a parser that accepted nothing would still fail here
    assert.ok(racLines >= 40, `only ${racLines} rac command lines found`);
    assert.ok(npmRuns >= 8, `only ${npmRuns} npm run lines found`);
    console.log(`# docs: ${racLines} rac command lines parsed, ${npmRuns} npm run lines checked`);
  });

  it('the parser check fails where the CLI would', async () => {
    assert.equal(await parseRac(['prune', '--model', 'M', '--method', 'sparsegpt', '--sparsity', '0.5', '--out', 'O']), null);
    assert.equal(await parseRac(['prune', '--help']), null);
    assert.match(
      (await parseRac(['prune', '--model', 'M', '--method', 'sparsegpt', '--out', 'O', '--sparsty', '0.5'])) ?? '',
      /unknown option/,
    );
    assert.match((await parseRac(['prune', '--model', 'M', '--method', 'nope', '--out', 'O'])) ?? '', /method must be one of/);
    assert.match((await parseRac(['prune', '--model', 'M', '--method', 'sparsegpt'])) ?? '', /required option '--out/);
    assert.match((await parseRac(['prunee', '--model', 'M'])) ?? '', /unknown command/);
    assert.match((await parseRac(['info', '--model', 'M', 'extra'])) ?? '', /too many arguments/);
    assert.match((await parseRac(['eval', '--model', 'M', '--out', 'r.json', '--samples', 'x'])) ?? '', /samples/);
    assert.throws(() => shellCommands('rac prune --method sparsegpt|wanda'), /synopsis notation/);
    assert.deepEqual(
      shellCommands("HF_HUB_OFFLINE=1 rac info --model 'a b' --json 2>&1 | head -3 # note").map((c) => c.words),
      [
        ['rac', 'info', '--model', 'a b', '--json'],
        ['head', '-3'],
      ],
    );
  });

  it('every `rac CMD …` synopsis in inline code names a real command and real options', () => {
    const { program } = parser();
    const bad: string[] = [];
    let n = 0;
    for (const doc of docs) {
      for (const s of inlineCode(doc)) {
        const m = /^rac ([a-z][\w-]*)\b(.*)$/.exec(s.text);
        if (!m) continue;
        const cmd = program.commands.find((c) => c.name() === m[1]);
        if (!cmd) {
          bad.push(`${where(doc.path, s.line)}: \`${s.text}\`: no command "${m[1]}"`);
          continue;
        }
        n++;
        const known = new Set(['--help', '-h', ...cmd.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x))]);
        for (const f of m[2]!.matchAll(/(?<![\w-])(--?[a-zA-Z][\w-]*)/g))
          if (!known.has(f[1]!)) bad.push(`${where(doc.path, s.line)}: \`${s.text}\`: rac ${m[1]} has no option ${f[1]}`);
      }
    }
    assert.deepEqual(bad, [], `\n${bad.join('\n')}`);
    assert.ok(n >= 30, `only ${n} inline rac synopses found`);
  });

  it('every repository path named in code exists (or is a listed output some page names)', () => {
    const bad: string[] = [];
    const named = new Set<string>();
    for (const doc of docs) {
      const { fences } = splitFences(doc);
      const spans = [
        ...inlineCode(doc).map((s) => ({ line: s.line, text: s.text })),
        ...fences.filter((f) => f.lang !== 'text').flatMap((f) => f.body),
      ];
      for (const { line, text } of spans)
        for (const p of repoPaths(text)) {
          named.add(p);
          const problem = pathProblem(p);
          if (problem) bad.push(`${where(doc.path, line)}: ${problem}`);
        }
    }
    assert.deepEqual(bad, [], `\n${bad.join('\n')}`);
    for (const o of Object.keys(OUTPUTS))
      assert.ok(
        [...named].some((p) => p === o || p.startsWith(`${o}/`)),
        `OUTPUTS lists ${o}, which no page names any more`,
      );
    assert.ok(named.size >= 60, `only ${named.size} paths found`);
  });

  it('every relative link resolves to a file, and its anchor to a heading', () => {
    const bad: string[] = [];
    let n = 0;
    for (const doc of docs) {
      for (const l of links(doc)) {
        if (/^[a-z][a-z+.-]*:/i.test(l.target)) continue; // https:, mailto:
        n++;
        const [path, anchor] = l.target.split('#') as [string, string | undefined];
        const file = path ? normalize(join(dirname(doc.path), path)) : doc.path;
        if (!existsSync(join(ROOT, file))) {
          bad.push(`${where(doc.path, l.line)}: ${l.target}: no file ${file}`);
          continue;
        }
        if (anchor === undefined) continue;
        const target = docs.find((d) => d.path === file);
        if (!target) {
          bad.push(`${where(doc.path, l.line)}: ${l.target}: anchors are checked in README.md and docs/ only`);
          continue;
        }
        if (!anchors(target).has(decodeURIComponent(anchor)))
          bad.push(`${where(doc.path, l.line)}: ${l.target}: no heading #${anchor} in ${file}`);
      }
    }
    assert.deepEqual(bad, [], `\n${bad.join('\n')}`);
    assert.ok(n >= 30, `only ${n} relative links found`);
  });

  it("the code's pointers into the docs name pages that exist", () => {
    const bad: string[] = [];
    const walk = (dir: string): string[] =>
      readdirSync(join(ROOT, dir)).flatMap((n) => {
        const p = join(dir, n);
        return statSync(join(ROOT, p)).isDirectory() ? walk(p) : /\.(ts|mjs|cjs|js|yaml|json)$/.test(n) ? [p] : [];
      });
    for (const file of [...['src', 'scripts', 'test', 'bench', 'examples', 'bin', 'tools'].flatMap(walk), '.npmrc']) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      for (const m of text.matchAll(/(?<![\w/])docs\/[\w-]+\.md/g))
        if (!existsSync(join(ROOT, m[0]))) bad.push(`${file}: ${m[0]} does not exist`);
      if (/README(?:'s)? ?[:,(]? ?"?(GPU|MoE|llama\.cpp|Pruning|differences|the estimate)/.test(text))
        bad.push(`${file}: points into the README for a section that moved to docs/`);
    }
    assert.deepEqual(bad, [], `\n${bad.join('\n')}`);
  });

  it("the README's layout table is .dependency-cruiser.cjs's rooms, and the files it names exist", () => {
    // LAYERS as written there: an array of arrays of room names (comments and trailing commas dropped)
    const cruiser = readFileSync(join(ROOT, '.dependency-cruiser.cjs'), 'utf8');
    const literal = /const LAYERS = (\[[\s\S]*?\n\]);/.exec(cruiser)![1]!;
    const layers = JSON.parse(
      literal
        .replace(/\/\/.*$/gm, '')
        .replace(/'/g, '"')
        .replace(/,(\s*\])/g, '$1'),
    ) as string[][];
    const readme = docs[0]!;
    const start = readme.lines.findIndex((l) => /^## Layout/.test(l));
    assert.ok(start >= 0, 'README.md has a "## Layout" section');
    const rows: { row: string; dir: string; contents: string; line: number }[] = [];
    for (let i = start + 1; i < readme.lines.length && !/^## /.test(readme.lines[i]!); i++) {
      const m = /^\| *(\d+|–|-) *\| *`([^`]+)` *\| *(.*)\|$/.exec(readme.lines[i]!);
      if (m) rows.push({ row: m[1]!, dir: m[2]!, contents: m[3]!, line: i + 1 });
    }
    const rooms = rows
      .filter((r) => /^\d+$/.test(r.row))
      .map((r) => [Number(r.row), r.dir.replace(/^src\//, '').replace(/\/$/, '')] as const);
    const expected = layers.flatMap((row, i) => row.map((room) => [i + 1, room] as const));
    assert.deepEqual(
      [...rooms].sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1])),
      [...expected].sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1])),
    );
    const dirs = readdirSync(join(ROOT, 'src')).filter((n) => statSync(join(ROOT, 'src', n)).isDirectory());
    assert.deepEqual(
      dirs.filter((d) => !rooms.some((r) => r[1] === d)),
      [],
      'rooms under src/ missing from the table',
    );
    for (const f of readdirSync(join(ROOT, 'src')).filter((n) => n.endsWith('.ts')))
      assert.ok(
        rows.some((r) => r.dir === `src/${f}`),
        `src/${f} has no row in the layout table`,
      );
    const bad: string[] = [];
    for (const r of rows) {
      const base = r.dir.endsWith('.ts') ? dirname(r.dir) : r.dir;
      if (!existsSync(join(ROOT, r.dir))) bad.push(`README.md:${r.line}: ${r.dir} does not exist`);
      for (const m of r.contents.matchAll(/`([\w/-]+(?:\.ts|\/))`/g)) {
        const p = join(base, m[1]!);
        if (!existsSync(join(ROOT, p))) bad.push(`README.md:${r.line}: ${p} does not exist`);
      }
    }
    assert.deepEqual(bad, [], `\n${bad.join('\n')}`);
  });

  it("the settings table is study/job.ts's: every prune setting's flag, recipe key and default", () => {
    const page = docs.find((d) => d.path === 'docs/pruning.md');
    assert.ok(page, 'docs/pruning.md exists');
    const rows = page.lines.filter((l) => /^\| `--/.test(l));
    const bad: string[] = [];
    for (const f of PRUNE_FIELDS) {
      const def = PRUNE_DEFAULTS[f.prop];
      const flag = f.kind.t === 'bool' && def === true ? `--no-${f.flag.slice(2)}` : f.flag;
      const key = f.section === 'calibration' ? `calibration.${f.key}` : f.key;
      const row = rows.find((r) => r.startsWith(`| \`${flag}\` |`));
      if (!row) {
        bad.push(`no row for ${flag}`);
        continue;
      }
      const cells = row.split(/(?<!\\)\|/).map((c) => c.trim());
      if (cells[2] !== `\`${key}\``) bad.push(`${flag}: recipe key ${cells[2]}, expected \`${key}\``);
      const shown = cells[3]!.split(' ')[0]!;
      const want = Array.isArray(def) ? null : def === undefined ? 'off' : String(def);
      if (want !== null && shown !== want && !(want === 'undefined' && shown === 'off'))
        bad.push(`${flag}: default ${cells[3]}, expected ${want}`);
    }
    for (const r of rows) {
      const flag = /^\| `(--[\w-]+)`/.exec(r)![1]!;
      if (!PRUNE_FIELDS.some((f) => f.flag === flag || `--no-${f.flag.slice(2)}` === flag))
        bad.push(`a row for ${flag}, which is no setting`);
    }
    assert.deepEqual(bad, [], `\n${bad.join('\n')}`);
  });

  it('every recipe in a yaml block loads (unknown keys and bad values are refused)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rac-docs-recipe-'));
    let n = 0;
    try {
      for (const doc of docs)
        for (const f of splitFences(doc).fences.filter((x) => x.lang === 'yaml' || x.lang === 'yml')) {
          const text = f.body.map((b) => b.text).join('\n');
          if (!/^prune:/m.test(text)) continue; // a fragment, not a recipe
          n++;
          const file = join(dir, `recipe-${n}.yaml`);
          writeFileSync(file, text);
          assert.doesNotThrow(() => loadRecipe(file), `${where(doc.path, f.line)}: the recipe does not load`);
        }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.ok(n >= 1, 'no recipe found');
  });

  it('docs/library.md names every export of src/index.ts', () => {
    const index = readFileSync(join(ROOT, 'src/index.ts'), 'utf8');
    const names = [...index.matchAll(/export (?:type )?\{([^}]*)\}/g)].flatMap((m) =>
      m[1]!
        .split(',')
        .map((x) => x.trim().replace(/^type /, ''))
        .filter(Boolean),
    );
    assert.ok(names.length >= 50, `${names.length} exports`);
    const page = docs.find((d) => d.path === 'docs/library.md')!.text;
    assert.deepEqual(
      names.filter((n) => !new RegExp(`\`${n}[\`(. ]`).test(page)),
      [],
      'exports docs/library.md does not name',
    );
  });

  it("the demo's plain-text corpus is the README and every docs page, in order", () => {
    const prose = projectProse(ROOT);
    let at = 0;
    for (const d of docs) {
      const i = prose.indexOf(d.text.trimEnd(), at);
      assert.ok(i >= at, `${d.path} is in the corpus, after the pages before it`);
      at = i + 1;
    }
    // the README alone was this corpus (111,428 bytes) before the docs moved out of it
    assert.ok(Buffer.byteLength(prose) > 100_000, `the corpus has ${Buffer.byteLength(prose)} bytes`);
  });

  it('TypeScript blocks are excerpts of an example a test runs (its lines, in order)', () => {
    let n = 0;
    for (const doc of docs)
      for (const f of splitFences(doc).fences.filter((x) => x.lang === 'ts' || x.lang === 'typescript')) {
        n++;
        const head = /^\/\/ (examples\/[\w.-]+\.ts)/.exec(f.body[0]?.text ?? '');
        assert.ok(head, `${where(doc.path, f.line)}: a TypeScript block starts with "// examples/NAME.ts", the file it is taken from`);
        const source = readFileSync(join(ROOT, head[1]!), 'utf8')
          .split('\n')
          .map((l) => l.trim());
        let at = 0;
        for (const { line, text } of f.body.slice(1)) {
          const t = text.trim().replace("from 'rac'", "from '../src/index.ts'");
          if (t === '' || t === '// …') continue;
          const i = source.indexOf(t, at);
          assert.ok(i >= 0, `${where(doc.path, line)}: "${t}" is not in ${head[1]} (after line ${at})`);
          at = i + 1;
        }
      }
    assert.ok(n >= 1, 'no TypeScript block found');
  });
});
