/**
 * The one way rac reads a file from a model directory (config.json, the shards, the safetensors
 * index, tokenizer files, chat templates, generation_config.json, README.md, …).
 *
 * - the name is a plain file name (no `/`, no `..`);
 * - the file's real path (symlinks resolved) lies inside the model directory's real path, or —
 *   for a Hugging Face hub cache snapshot `…/models--org--name/snapshots/<rev>/`, whose files are
 *   symlinks to `../../blobs/<hash>` — inside that repo's own `blobs/` directory; a link anywhere
 *   else is refused ("symlink escape");
 * - it is a regular file: a FIFO, socket or device is refused before it is opened for reading
 *   (and the open itself is non-blocking and re-checked with fstat, so a FIFO swapped in between
 *   cannot hang the process).
 *
 * - a hub cache snapshot directory (`…/models--org--name/snapshots/<rev>`) is itself a directory of
 *   that repo, not a symlink to one elsewhere.
 *
 * `readRegularFile` is the same FIFO/size rule for a file named by its path (a hub cache ref, a
 * recipe, a dataset): every file rac opens from a model directory or the hub cache goes through
 * this module.
 *
 * Errors never quote a file's content beyond `excerpt()`: at most 40 characters, JSON-escaped.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RacError } from '../errors.ts';

export class ModelFileError extends RacError {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'ModelFileError';
  }
}

/** Longest excerpt of file content (or of a config value) an error message may carry. */
export const EXCERPT_CHARS = 40;

/** `s` cut to EXCERPT_CHARS characters and JSON-escaped (control characters, quotes, newlines). */
export function excerpt(s: string, max = EXCERPT_CHARS): string {
  const chars = Array.from(s.slice(0, max * 2 + 2));
  return chars.length > max ? `${JSON.stringify(chars.slice(0, max).join(''))}…` : JSON.stringify(s);
}

/** A JSON value for an error message: JSON text cut to EXCERPT_CHARS characters. */
export function describeValue(v: unknown): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  if (s.length <= EXCERPT_CHARS) return s;
  return `${Array.from(s.slice(0, EXCERPT_CHARS * 2))
    .slice(0, EXCERPT_CHARS - 1)
    .join('')}…`;
}

function errText(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
}

function isInside(child: string, root: string): boolean {
  const rel = path.relative(root, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

function isPlainName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\\') && !name.includes('\0');
}

/**
 * Directories (real paths) a model file's real path may lie in: the model directory and, for a
 * hub cache snapshot (`…/models--org--name/snapshots/<rev>`), `…/models--org--name/blobs`.
 */
export function modelDirRoots(dir: string): string[] {
  const abs = path.resolve(dir);
  let real: string;
  try {
    real = fs.realpathSync(abs);
  } catch (e) {
    throw new ModelFileError(abs, `cannot open model directory (${errText(e)})`);
  }
  // A snapshot named by its place in the cache must be that place: a snapshot directory that is a
  // symlink elsewhere would make "inside the directory" mean inside whatever it points at.
  const namedSnapshots = path.dirname(abs);
  const namedRepo = path.dirname(namedSnapshots);
  if (path.basename(namedSnapshots) === 'snapshots' && /^(models|datasets)--/.test(path.basename(namedRepo))) {
    let realRepo: string;
    try {
      realRepo = fs.realpathSync(namedRepo);
    } catch (e) {
      throw new ModelFileError(abs, `cannot open model directory (${errText(e)})`);
    }
    const expected = path.join(realRepo, 'snapshots', path.basename(abs));
    if (real !== expected)
      throw new ModelFileError(
        abs,
        `is a hub cache snapshot that resolves to ${real}, outside its repository ${realRepo} (a snapshot directory must not be a symlink)`,
      );
  }
  const roots = [real];
  const snapshots = path.dirname(real);
  const repo = path.dirname(snapshots);
  if (path.basename(snapshots) === 'snapshots' && path.basename(repo).startsWith('models--')) roots.push(path.join(repo, 'blobs'));
  return roots;
}

/**
 * The real path `p` would have: symlinks resolved in the part that exists (the whole path when it
 * exists), the rest appended. For "is this output inside that input" checks before anything exists.
 */
export function realPathOf(p: string): string {
  const abs = path.resolve(p);
  let head = abs;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(head), ...rest.reverse());
    } catch {
      const up = path.dirname(head);
      if (up === head) return abs;
      rest.push(path.basename(head));
      head = up;
    }
  }
}

/** Whether real path `p` is `root` or lies inside it. */
export function isWithin(p: string, root: string): boolean {
  return p === root || isInside(p, root);
}

function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isDirectory()) return 'a directory';
  return 'not a plain file';
}

/**
 * The path of `name` inside model directory `dir` after the checks above, or undefined when no
 * such entry exists (a dangling symlink is an error, not "absent"). `roots` may be passed when
 * many files of one directory are checked (modelDirRoots resolves the directory once).
 */
export function modelFilePath(dir: string, name: string, roots: readonly string[] = modelDirRoots(dir)): string | undefined {
  const abs = path.resolve(dir);
  const p = path.join(abs, name);
  if (!isPlainName(name)) throw new ModelFileError(abs, `${JSON.stringify(name)} is not a plain file name inside the model directory`);
  let lst: fs.Stats;
  try {
    lst = fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelFileError(p, `cannot stat (${errText(e)})`);
  }
  let real = p;
  if (lst.isSymbolicLink()) {
    try {
      real = fs.realpathSync(p);
    } catch (e) {
      throw new ModelFileError(p, `is a symlink that does not resolve (${errText(e)})`);
    }
  } else {
    real = path.join(roots[0]!, name);
  }
  if (!roots.some((r) => isInside(real, r))) {
    throw new ModelFileError(p, `resolves to ${real}, outside the model directory (symlink escape)`);
  }
  let st = lst;
  if (lst.isSymbolicLink()) {
    try {
      st = fs.statSync(real);
    } catch (e) {
      throw new ModelFileError(p, `cannot stat (${errText(e)})`);
    }
  }
  if (!st.isFile()) throw new ModelFileError(p, `is ${kindOf(st)}, not a regular file`);
  return p;
}

/** Opens a checked model file read-only (non-blocking open, re-checked with fstat). */
export function openModelFile(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    throw new ModelFileError(file, `cannot open (${errText(e)})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new ModelFileError(file, `is ${kindOf(st)}, not a regular file`);
    return { fd, size: st.size };
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

/** Largest side file (JSON, template, card) read whole into memory. */
export const MAX_SIDE_FILE_BYTES = 256 * 1024 * 1024;

/** Reads all of an opened regular file: at most `max` bytes (more is an error naming `file` and `what`). */
function readOpened(file: string, fd: number, size: number, max: number, what: string): Buffer {
  if (size > max) throw new ModelFileError(file, `is ${size} bytes, more than the ${max}-byte limit for ${what}`);
  const buf = Buffer.alloc(size);
  let done = 0;
  while (done < size) {
    const got = fs.readSync(fd, buf, done, size - done, done);
    if (got === 0) break;
    done += got;
  }
  return done === size ? buf : buf.subarray(0, done);
}

/** The bytes of `dir/name` (checked as above), or undefined when absent. */
export function readModelFile(dir: string, name: string, opts: { maxBytes?: number } = {}): Buffer | undefined {
  const p = modelFilePath(dir, name);
  if (p === undefined) return undefined;
  const { fd, size } = openModelFile(p);
  try {
    return readOpened(p, fd, size, opts.maxBytes ?? MAX_SIDE_FILE_BYTES, 'this file');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The bytes of the file at `file` (symlinks followed), or undefined when there is none: a FIFO,
 * socket, device or directory is refused without blocking (non-blocking open, fstat), and a file
 * over `maxBytes` is refused before it is read. `what` names the file's role in the size error.
 */
export function readRegularFile(file: string, maxBytes: number, what = 'this file'): Buffer | undefined {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ModelFileError(file, `cannot open (${errText(e)})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new ModelFileError(file, `is ${kindOf(st)}, not a regular file`);
    return readOpened(file, fd, st.size, maxBytes, what);
  } finally {
    fs.closeSync(fd);
  }
}

/** `dir/name` as UTF-8 text, or undefined when absent. */
export function readModelText(dir: string, name: string): string | undefined {
  return readModelFile(dir, name)?.toString('utf8');
}

/**
 * `dir/name` parsed as JSON, or undefined when absent. A parse error names the position and at
 * most an excerpt of the text there (never V8's message, which quotes the content raw).
 */
export function readModelJson(dir: string, name: string): unknown {
  const text = readModelText(dir, name);
  if (text === undefined) return undefined;
  return parseJsonText(path.join(path.resolve(dir), name), text);
}

/** JSON.parse with an error naming `file`, the position and a short escaped excerpt. */
export function parseJsonText(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message);
    const pos = m ? Number(m[1]) : 0;
    const at = m ? ` at position ${pos}` : '';
    const near = text.length === 0 ? 'the file is empty' : `near ${excerpt(text.slice(pos))}`;
    throw new ModelFileError(file, `invalid JSON${at} (${near})`);
  }
}
