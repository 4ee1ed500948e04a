/**
 * Reading the docs as the docs check reads them: README.md and docs/*.md split into fenced code
 * blocks, inline code spans, links and heading anchors (GitHub's rules), each with its line; and
 * the shell lines of a code block cut into commands (words, with quotes, `\` continuations,
 * comments, `&&` / `|` / `;` and redirections handled as a POSIX shell reads them).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DocFile {
  /** Path relative to the repository root: README.md, or a page under docs/. */
  path: string;
  text: string;
  lines: string[];
}

export interface Fence {
  file: string;
  /** The info string's first word (sh, yaml, ts, …; '' when none). */
  lang: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The block's lines (indentation of the fence removed), each with its 1-based line. */
  body: { line: number; text: string }[];
}

export interface Span {
  file: string;
  line: number;
  text: string;
}

export interface Link extends Span {
  target: string;
}

/** README.md, then docs/*.md in name order. */
export function readDocs(root: string): DocFile[] {
  const names = [
    'README.md',
    ...readdirSync(join(root, 'docs'))
      .filter((n) => n.endsWith('.md'))
      .sort()
      .map((n) => `docs/${n}`),
  ];
  return names.map((path) => {
    const text = readFileSync(join(root, path), 'utf8');
    return { path, text, lines: text.split('\n') };
  });
}

const FENCE = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)/;

/** The fenced code blocks of a file, and its lines outside them (prose, with their numbers). */
export function splitFences(doc: DocFile): { fences: Fence[]; prose: { line: number; text: string }[] } {
  const fences: Fence[] = [];
  const prose: { line: number; text: string }[] = [];
  let open: { fence: Fence; marker: string; indent: number } | null = null;
  doc.lines.forEach((text, i) => {
    const line = i + 1;
    if (open) {
      const m = /^\s*(`{3,}|~{3,})\s*$/.exec(text);
      if (m && m[1]![0] === open.marker[0] && m[1]!.length >= open.marker.length) {
        fences.push(open.fence);
        open = null;
      } else {
        open.fence.body.push({ line, text: text.slice(Math.min(open.indent, text.length - text.trimStart().length)) });
      }
      return;
    }
    const m = FENCE.exec(text);
    if (m) {
      open = { fence: { file: doc.path, lang: m[3]!.toLowerCase(), line, body: [] }, marker: m[2]!, indent: m[1]!.length };
      return;
    }
    prose.push({ line, text });
  });
  if (open) throw new Error(`${doc.path}:${(open as { fence: Fence }).fence.line}: code fence never closed`);
  return { fences, prose };
}

/** Inline code spans of prose lines (a span does not cross a line in these docs). */
export function inlineCode(doc: DocFile): Span[] {
  const out: Span[] = [];
  for (const { line, text } of splitFences(doc).prose) {
    const re = /(`+)(.+?)\1(?!`)/g;
    for (const m of text.matchAll(re)) out.push({ file: doc.path, line, text: m[2]!.trim() });
  }
  return out;
}

/** Markdown links `[text](target)` in prose, outside inline code. */
export function links(doc: DocFile): Link[] {
  const out: Link[] = [];
  for (const { line, text } of splitFences(doc).prose) {
    const plain = text.replace(/(`+)(.+?)\1(?!`)/g, (s) => ' '.repeat(s.length));
    for (const m of plain.matchAll(/\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) out.push({ file: doc.path, line, text: m[0], target: m[1]! });
  }
  return out;
}

/** GitHub's anchor for a heading: lowercased, punctuation dropped, spaces to hyphens; repeats get -1, -2, … */
export function anchors(doc: DocFile): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const { text } of splitFences(doc).prose) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (!m) continue;
    const plain = m[1]!
      .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links keep their text
      .replace(/<[^>]+>/g, '') // html tags
      .replace(/[`*_~]/g, (c) => (c === '_' ? '_' : '')); // code and emphasis markers
    const base = plain
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** One command of a shell line: its words (env assignments and redirections removed). */
export interface ShellCommand {
  words: string[];
  /** `NAME=value` words before the command. */
  env: string[];
}

/**
 * Shell lines of a code block: `\` continuations joined and a leading `$ ` prompt dropped; each
 * logical line with the number of its first physical line (comments go in shellCommands).
 */
export function shellLines(fence: Fence): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let first = 0;
  let joined: string | null = null;
  for (const { line, text } of fence.body) {
    const t: string = joined === null ? text.replace(/^\s*\$\s+/, '') : text;
    const cont: boolean = /\\\s*$/.test(t) && !/^\s*#/.test(t);
    const piece: string = cont ? t.replace(/\\\s*$/, ' ') : t;
    if (joined === null) first = line;
    joined = (joined ?? '') + piece;
    if (!cont) {
      if (joined.trim()) out.push({ line: first, text: joined });
      joined = null;
    }
  }
  if (joined?.trim()) out.push({ line: first, text: joined });
  return out;
}

/** Split a shell line into its commands (at `&&`, `||`, `|`, `;`, `&`), as words. */
export function shellCommands(text: string): ShellCommand[] {
  const cmds: string[][] = [[]];
  let word: string | null = null;
  const end = () => {
    if (word !== null) cmds[cmds.length - 1]!.push(word);
    word = null;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'") {
      const j = text.indexOf("'", i + 1);
      if (j < 0) throw new Error(`unclosed ' in: ${text}`);
      word = (word ?? '') + text.slice(i + 1, j);
      i = j;
    } else if (c === '"') {
      let s = '';
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && '"\\$`'.includes(text[j + 1] ?? '')) j++;
        s += text[j];
      }
      if (j >= text.length) throw new Error(`unclosed " in: ${text}`);
      word = (word ?? '') + s;
      i = j;
    } else if (c === '\\') {
      word = (word ?? '') + (text[i + 1] ?? '');
      i++;
    } else if (/\s/.test(c)) {
      end();
    } else if (c === '#' && word === null) {
      break; // a comment to the end of the line
    } else if ('&|;'.includes(c)) {
      // `a|b` (no spaces) is synopsis notation for alternatives, not a pipe: no command block has it
      if (c === '|' && text[i + 1] !== '|' && word !== null && text[i + 1] !== undefined && !/\s/.test(text[i + 1]!))
        throw new Error(`"${word}|…" reads as synopsis notation (alternatives), not a command: ${text.trim()}`);
      end();
      if (text[i + 1] === c) i++;
      cmds.push([]);
    } else if (c === '>' || c === '<') {
      // a redirection: drop it and its target (2>&1, >file, > file, >> file)
      if (word !== null && /^\d$/.test(word)) word = null;
      end();
      if (text[i + 1] === c) i++;
      if (text[i + 1] === '&') {
        i++;
        while (i + 1 < text.length && /\d/.test(text[i + 1]!)) i++;
        continue;
      }
      while (i + 1 < text.length && /\s/.test(text[i + 1]!)) i++;
      while (i + 1 < text.length && !/[\s;&|]/.test(text[i + 1]!)) i++;
    } else {
      word = (word ?? '') + c;
    }
  }
  end();
  return cmds
    .filter((w) => w.length > 0)
    .map((w) => {
      let k = 0;
      while (k < w.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(w[k]!)) k++;
      return { env: w.slice(0, k), words: w.slice(k) };
    })
    .filter((c) => c.words.length > 0);
}

/**
 * The arguments of a `rac` invocation — `rac …`, `npx rac …`, `./bin/rac.js …`, `node bin/rac.js …`,
 * `npm run rac -- …` — or null when the command is not one.
 */
export function racArgs(words: string[]): string[] | null {
  const [a, b, c, d] = words;
  if (a === 'rac' || a === './bin/rac.js' || a === 'bin/rac.js') return words.slice(1);
  if (a === 'npx' && b === 'rac') return words.slice(2);
  if (a === 'node' && (b === 'bin/rac.js' || b === './bin/rac.js')) return words.slice(2);
  if (a === 'npm' && b === 'run' && c === 'rac') return d === '--' ? words.slice(4) : words.slice(3);
  return null;
}
