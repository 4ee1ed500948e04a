/**
 * Hugging Face hub ids → local paths, through the hub cache that transformers, vLLM, datasets and
 * llama.cpp share:
 *
 *   <cache>/models--org--name/refs/<branch or tag>         the commit the name points at
 *   <cache>/models--org--name/snapshots/<commit>/<file>    symlinks into ../../blobs/<etag>
 *   <cache>/datasets--org--name/…                          the same for datasets
 *
 * `<cache>` is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else
 * `~/.cache/huggingface/hub` (huggingface_hub's order). An id is `org/name` or `org/name@revision`
 * (a branch, a tag or a full commit hash); a path that exists locally always wins over an id.
 *
 * What the cache lacks is downloaded, when the network is allowed (`HF_HUB_OFFLINE` unset), into the
 * same layout — only the files rac reads (config, tokenizer, generation config, chat template,
 * safetensors shards and index, README; for a dataset the Parquet shards of the asked split).
 * `@huggingface/hub` resolves the revision and lists the files; the bytes are fetched here, because
 * nothing the hub says is trusted as a path or as content:
 *
 * - every listed file's name must be a plain relative path, its size a byte count, its `oid` a git
 *   blob id (40 hex) and its `lfs.oid` a sha256 (64 hex) — checked for every file before any byte
 *   is written (the package joins `blobs/` with the listed hash unchecked);
 * - each file streams to `blobs/<hash>.<pid>.incomplete`, and is renamed to `blobs/<hash>` only when
 *   its size and hash (sha256 for LFS files, else the git blob id) are what the listing says;
 *   otherwise it is removed and the download fails; `refs/<revision>` is written last;
 * - a download that gets less than `RAC_HUB_MIN_BYTES_PER_S` (1024) over `RAC_HUB_STALL_S` (60)
 *   seconds is abandoned; a progress line with bytes/s is logged every `RAC_HUB_PROGRESS_S` (5).
 *
 * `HF_TOKEN` authenticates gated and private repos. Every file read from the cache (refs, the
 * safetensors index) goes through model-file.ts's regular-file rule (a FIFO is refused, not waited
 * on), and a snapshot directory must be a directory of its repo, not a symlink out of it.
 *
 * This module only maps ids to a snapshot directory (or a dataset split's files); reading the
 * files inside is the loaders' business.
 */
import { createHash, type Hash } from 'node:crypto';
import {
  type Dirent,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { isWithin, ModelFileError, readModelFile, readRegularFile } from './model-file.ts';
import { RacError } from '../errors.ts';

export class HubError extends RacError {
  constructor(message: string) {
    super(message);
    this.name = 'HubError';
  }
}

export type RepoType = 'model' | 'dataset';

/** What a run names as its model or dataset: the id, the revision asked for and the commit it resolved to. */
export interface HubSource {
  type: RepoType;
  id: string;
  revision: string;
  commit: string;
  /** Datasets: the config and split read. */
  config?: string;
  split?: string;
}

export interface HubOptions {
  /** Environment (default process.env): HF_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_HUB_OFFLINE, HF_TOKEN, HF_ENDPOINT. */
  env?: NodeJS.ProcessEnv;
  /** The fetch downloads go through (default: the global fetch). */
  fetch?: typeof fetch;
  /** The hub's address (default `$HF_ENDPOINT`, else https://huggingface.co). */
  hubUrl?: string;
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
}

/** Longest ref file read (a commit id and a newline; anything longer is not a ref). */
const MAX_REF_BYTES = 4096;

/** The file at `path` through the regular-file rule, errors as HubError; undefined when absent. */
function readCacheFile(path: string, maxBytes: number, what: string): Buffer | undefined {
  try {
    return readRegularFile(path, maxBytes, what);
  } catch (e) {
    if (e instanceof ModelFileError) throw new HubError(e.message);
    throw e;
  }
}

/**
 * Refuses a snapshot directory that is not a directory of its repo (a symlink to, or through, a
 * directory elsewhere). Nothing to refuse when it does not exist.
 */
function checkSnapshotDir(cacheDir: string, type: RepoType, id: string, commit: string): void {
  const repo = repoFolder(cacheDir, type, id);
  const snap = join(repo, 'snapshots', commit);
  let real: string;
  try {
    real = realpathSync(snap);
  } catch {
    if (existsSync(snap) || isLink(snap)) throw new HubError(`${snap}: a snapshot that does not resolve (a dangling symlink)`);
    return;
  }
  const folder = repo.split(sep).pop()!;
  if (real !== join(realpathSync(repo), 'snapshots', commit))
    throw new HubError(
      `${snap}: the snapshot directory is a symlink to ${real}, outside ${folder} in the hub cache ${cacheDir} (a snapshot must be a directory of its repo)`,
    );
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

const COMMIT = /^[0-9a-f]{40}$/;
const PART = '[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?';
const ID = new RegExp(`^(${PART}/${PART})(?:@([^\\s@]+))?$`);

/** The hub cache directory for this environment. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['HF_HUB_CACHE']) return resolve(env['HF_HUB_CACHE']);
  if (env['HUGGINGFACE_HUB_CACHE']) return resolve(env['HUGGINGFACE_HUB_CACHE']);
  if (env['HF_HOME']) return resolve(env['HF_HOME'], 'hub');
  return resolve(env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'huggingface', 'hub');
}

/** HF_HUB_OFFLINE as huggingface_hub reads it: 1, true, yes, on (any case). */
export function isOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return ['1', 'true', 'yes', 'on'].includes((env['HF_HUB_OFFLINE'] ?? '').trim().toLowerCase());
}

/** `org/name` or `org/name@revision` → its parts; null for anything else. */
export function parseHubId(spec: string): { id: string; revision?: string } | null {
  const m = ID.exec(spec);
  if (!m || m[1]!.includes('..') || m[1]!.includes('--')) return null;
  const rev = m[2];
  if (rev !== undefined && (rev.split('/').some((p) => p === '' || p === '.' || p === '..') || rev.includes('\\'))) return null;
  return { id: m[1]!, ...(rev !== undefined ? { revision: rev } : {}) };
}

/** `<cache>/models--org--name` (or datasets--…). */
export function repoFolder(cacheDir: string, type: RepoType, id: string): string {
  return join(cacheDir, `${type}s--${id.split('/').join('--')}`);
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** The commit `revision` names in the cache: refs/<revision>, else a full commit hash under snapshots/; null when neither. */
export function cachedCommit(cacheDir: string, type: RepoType, id: string, revision: string): string | null {
  const repo = repoFolder(cacheDir, type, id);
  const ref = join(repo, 'refs', ...revision.split('/'));
  if (existsSync(ref) && !isDir(ref)) {
    const c = (readCacheFile(ref, MAX_REF_BYTES, 'a ref') ?? Buffer.alloc(0)).toString('utf8').trim();
    if (COMMIT.test(c) && isDir(join(repo, 'snapshots', c))) return c;
  }
  if (COMMIT.test(revision) && isDir(join(repo, 'snapshots', revision))) return revision;
  return null;
}

// ---- which files rac needs

const MODEL_FILES = new Set([
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'added_tokens.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
  'chat_template.jinja',
  'chat_template.json',
  'model.safetensors.index.json',
  'README.md',
]);

/** Top-level files of a model repo rac reads (weights: safetensors only). */
export function isModelFile(path: string): boolean {
  return !path.includes('/') && (MODEL_FILES.has(path) || path.endsWith('.safetensors'));
}

/** What a snapshot directory lacks to be opened as a model: config.json, and the safetensors (every shard the index lists). */
export function missingModelFiles(dir: string): string[] {
  const missing: string[] = [];
  if (!existsSync(join(dir, 'config.json'))) missing.push('config.json');
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) {
    let shards: string[] = [];
    try {
      const j = JSON.parse(readModelFile(dir, 'model.safetensors.index.json')!.toString('utf8')) as { weight_map?: Record<string, string> };
      shards = [...new Set(Object.values(j.weight_map ?? {}))].filter((v) => typeof v === 'string').sort();
    } catch (e) {
      if (e instanceof ModelFileError) throw new HubError(e.message);
      return [...missing, 'a readable model.safetensors.index.json'];
    }
    for (const s of shards) if (!existsSync(join(dir, s))) missing.push(s);
  } else {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      /* no directory: everything is missing */
    }
    if (!names.some((n) => n.endsWith('.safetensors') && existsSync(join(dir, n))))
      missing.push('model.safetensors (or model.safetensors.index.json and its shards)');
  }
  return missing;
}

/** Relative paths (posix) of a dataset split's Parquet shards, in order, among `files`. */
export function splitShards(files: readonly string[], config: string, split: string): string[] {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const c = esc(config);
  const s = esc(split);
  const layouts = [
    new RegExp(`^${c}/${s}-[^/]*\\.parquet$`), // <config>/<split>-00000-of-00002.parquet
    new RegExp(`^${c}/${s}/[^/]*\\.parquet$`), // <config>/<split>/0000.parquet (refs/convert/parquet)
    ...(config === 'default'
      ? [new RegExp(`^data/${s}-[^/]*\\.parquet$`), new RegExp(`^data/${s}/[^/]*\\.parquet$`), new RegExp(`^${s}-[^/]*\\.parquet$`)]
      : [new RegExp(`^data/${c}/${s}-[^/]*\\.parquet$`)]),
  ];
  for (const re of layouts) {
    const hit = files.filter((f) => re.test(f));
    if (hit.length) return hit.sort();
  }
  return [];
}

function walk(dir: string, base = ''): string[] {
  const out: string[] = [];
  let ents: Dirent[];
  try {
    ents = readdirSync(join(dir, base), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of ents) {
    const rel = base ? `${base}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...walk(dir, rel));
    else if (existsSync(join(dir, rel))) out.push(rel); // a dangling symlink is not a file
  }
  return out;
}

// ---- provenance

/** What this process resolved, by path (a model's snapshot directory, each dataset shard): the revision asked for, config and split. */
const resolved = new Map<string, HubSource>();

function remember(path: string, source: HubSource): void {
  resolved.set(resolve(path), source);
}

function refsNaming(repo: string, commit: string): string[] {
  const refs = join(repo, 'refs');
  return walk(refs)
    .filter((r) => {
      try {
        return readRegularFile(join(refs, r), MAX_REF_BYTES, 'a ref')?.toString('utf8').trim() === commit;
      } catch {
        return false; // not a readable ref (a FIFO, a directory, too long): names nothing
      }
    })
    .sort((a, b) => (a === 'main' ? -1 : b === 'main' ? 1 : a.localeCompare(b)));
}

/**
 * The hub id and commit a path under a hub cache snapshot stands for (a model directory, or a
 * dataset shard), or null for any other path. The revision is the one this process resolved, else
 * a ref naming that commit (main first), else the commit itself; a dataset's config and split are
 * read from the shard's place in the snapshot when this process did not resolve it.
 */
export function hubSourceOf(path: string): HubSource | null {
  const p = resolve(path);
  const known = resolved.get(p);
  if (known) return { ...known };
  const m = /[\\/](models|datasets)--([^\\/]+?)--([^\\/]+)[\\/]snapshots[\\/]([0-9a-f]{40})(?=$|[\\/])/.exec(p);
  if (!m) return null;
  const type: RepoType = m[1] === 'models' ? 'model' : 'dataset';
  const commit = m[4]!;
  const snapshot = p.slice(0, m.index + m[0].length);
  const repo = join(snapshot, '..', '..');
  const src: HubSource = { type, id: `${m[2]}/${m[3]}`, revision: refsNaming(repo, commit)[0] ?? commit, commit };
  if (type === 'dataset' && p.length > snapshot.length) {
    const parts = p.slice(snapshot.length + 1).split(sep);
    const prefix = (f: string) => /^(.+?)-\d+-of-\d+/.exec(f)?.[1] ?? f.replace(/\.parquet$/, '').replace(/-.*$/, '');
    const file = parts[parts.length - 1]!;
    if (parts.length === 1) Object.assign(src, { config: 'default', split: prefix(file) });
    else if (parts[0] === 'data')
      Object.assign(src, parts.length === 2 ? { config: 'default', split: prefix(file) } : { config: 'default', split: parts[1] });
    else Object.assign(src, parts.length === 2 ? { config: parts[0], split: prefix(file) } : { config: parts[0], split: parts[1] });
  }
  return src;
}

// ---- resolution

function snapshotDir(cacheDir: string, type: RepoType, id: string, commit: string): string {
  return join(repoFolder(cacheDir, type, id), 'snapshots', commit);
}

/**
 * `--model` → a directory. A path that exists is returned as is; an id resolves through the hub
 * cache (downloading what is missing when allowed). Anything else is returned unchanged, for the
 * loader to report.
 */
export async function resolveModel(spec: string, opts: HubOptions = {}): Promise<{ dir: string; source?: HubSource }> {
  if (existsSync(spec)) return { dir: spec };
  const parsed = parseHubId(spec);
  if (!parsed) return { dir: spec };
  const env = opts.env ?? process.env;
  const cacheDir = hubCacheDir(env);
  const revision = parsed.revision ?? 'main';
  const repo = repoFolder(cacheDir, 'model', parsed.id);
  const commit = cachedCommit(cacheDir, 'model', parsed.id, revision);
  let why: string;
  if (commit !== null) {
    const dir = snapshotDir(cacheDir, 'model', parsed.id, commit);
    checkSnapshotDir(cacheDir, 'model', parsed.id, commit);
    const missing = missingModelFiles(dir);
    if (missing.length === 0) {
      const source: HubSource = { type: 'model', id: parsed.id, revision, commit };
      remember(dir, source);
      return { dir, source };
    }
    why = `snapshot ${commit} lacks ${missing.join(', ')}`;
  } else {
    why = noRevision(repo, revision);
  }
  if (isOffline(env))
    throw new HubError(
      `${spec}: not a local path, and not in the Hugging Face cache ${cacheDir} (${why}); HF_HUB_OFFLINE is set, so nothing was downloaded`,
    );
  const got = await download('model', parsed.id, revision, cacheDir, isModelFile, opts, why);
  const dir = snapshotDir(cacheDir, 'model', parsed.id, got);
  const missing = missingModelFiles(dir);
  if (missing.length)
    throw new HubError(`${spec}: the repository at ${got} has no ${missing.join(', ')} (rac reads safetensors weights; cache ${cacheDir})`);
  const source: HubSource = { type: 'model', id: parsed.id, revision, commit: got };
  remember(dir, source);
  return { dir, source };
}

export interface DatasetSplit {
  /** Default `default`. */
  config?: string;
  /** Default `train`. */
  split?: string;
}

/**
 * `--dataset` → its files. A path that exists is one file; an id resolves to the Parquet shards of
 * the config's split in the hub cache (downloading them when allowed), in shard order.
 */
export async function resolveDataset(
  spec: string,
  which: DatasetSplit = {},
  opts: HubOptions = {},
): Promise<{ files: string[]; source?: HubSource }> {
  if (existsSync(spec)) return { files: [spec] };
  const parsed = parseHubId(spec);
  if (!parsed) return { files: [spec] };
  const config = which.config ?? 'default';
  const split = which.split ?? 'train';
  const env = opts.env ?? process.env;
  const cacheDir = hubCacheDir(env);
  const revision = parsed.revision ?? 'main';
  const repo = repoFolder(cacheDir, 'dataset', parsed.id);
  const commit = cachedCommit(cacheDir, 'dataset', parsed.id, revision);
  const layouts = `${config}/${split}-*.parquet${config === 'default' ? ` or data/${split}-*.parquet` : ''}`;
  const found = (c: string) => {
    checkSnapshotDir(cacheDir, 'dataset', parsed.id, c);
    const dir = snapshotDir(cacheDir, 'dataset', parsed.id, c);
    const files = splitShards(walk(dir), config, split).map((f) => join(dir, ...f.split('/')));
    // A shard is a link into the repo's blobs/ (or a file of the snapshot), never a link out of the repo.
    const realRepo = realpathSync(repo);
    for (const f of files)
      if (!isWithin(realpathSync(f), realRepo))
        throw new HubError(`${f}: resolves to ${realpathSync(f)}, outside ${repo.split(sep).pop()} in the hub cache (symlink escape)`);
    return files;
  };
  let why: string;
  if (commit !== null) {
    const files = found(commit);
    if (files.length) {
      const source: HubSource = { type: 'dataset', id: parsed.id, revision, commit, config, split };
      for (const f of files) remember(f, source);
      return { files, source };
    }
    why = `snapshot ${commit} has no ${layouts}`;
  } else {
    why = noRevision(repo, revision);
  }
  if (isOffline(env))
    throw new HubError(
      `${spec}: not a local path, and not in the Hugging Face cache ${cacheDir} (${why}); HF_HUB_OFFLINE is set, so nothing was downloaded`,
    );
  const want = (p: string) => p === 'README.md' || splitShards([p], config, split).length > 0;
  const got = await download('dataset', parsed.id, revision, cacheDir, want, opts, why, (paths) => {
    // Only one layout is read: keep the shards of the first layout that matches.
    const shards = new Set(splitShards(paths, config, split));
    return paths.filter((p) => p === 'README.md' || shards.has(p));
  });
  const files = found(got);
  if (!files.length)
    throw new HubError(
      `${spec}: the dataset at ${got} has no Parquet files for config "${config}", split "${split}" (looked for ${layouts}; cache ${cacheDir})`,
    );
  const source: HubSource = { type: 'dataset', id: parsed.id, revision, commit: got, config, split };
  for (const f of files) remember(f, source);
  return { files, source };
}

function noRevision(repo: string, revision: string): string {
  if (!existsSync(repo)) return `no ${repo.split(sep).pop()}`;
  return COMMIT.test(revision) ? `no snapshots/${revision}` : `no refs/${revision} naming a snapshot`;
}

type HubModule = typeof import('@huggingface/hub');

async function hubModule(): Promise<HubModule> {
  try {
    return await import('@huggingface/hub');
  } catch {
    throw new HubError(
      'downloading from the Hugging Face hub needs the @huggingface/hub package (npm install); or put the files in the cache and set HF_HUB_OFFLINE=1',
    );
  }
}

/** The download settings of an environment: RAC_HUB_STALL_S, RAC_HUB_MIN_BYTES_PER_S, RAC_HUB_PROGRESS_S. */
export interface DownloadSettings {
  /** A download that receives less than `minBytesPerS` × this many seconds in that time is abandoned (default 60). */
  stallS: number;
  /** Default 1024. */
  minBytesPerS: number;
  /** Seconds between progress lines of a file being downloaded (default 5). */
  progressS: number;
}

export const DOWNLOAD_DEFAULTS: Readonly<DownloadSettings> = { stallS: 60, minBytesPerS: 1024, progressS: 5 };

/** The download settings from the environment (each optional; a bad value is an error naming the variable). */
export function downloadSettings(env: NodeJS.ProcessEnv = process.env): DownloadSettings {
  const num = (name: string, def: number, min: number, strict: boolean): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return def;
    const v = Number(raw);
    if (!Number.isFinite(v) || (strict ? v <= min : v < min))
      throw new HubError(`${name} must be a number ${strict ? '>' : '≥'} ${min}, got ${JSON.stringify(raw)}`);
    return v;
  };
  return {
    stallS: num('RAC_HUB_STALL_S', DOWNLOAD_DEFAULTS.stallS, 0, true),
    minBytesPerS: num('RAC_HUB_MIN_BYTES_PER_S', DOWNLOAD_DEFAULTS.minBytesPerS, 0, false),
    progressS: num('RAC_HUB_PROGRESS_S', DOWNLOAD_DEFAULTS.progressS, 0, true),
  };
}

/** A file of the hub's listing after the checks: where it goes and what its bytes must hash to. */
interface Listed {
  path: string;
  size: number;
  /** The blob's name: the sha256 (LFS files) or the git blob id. */
  etag: string;
  hash: 'sha256' | 'git';
}

const SHA1_HEX = /^[0-9a-f]{40}$/;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Whether `p` is a plain relative path: '/'-separated parts, none empty, `.` or `..`, no backslash or control character. */
export function isPlainRelativePath(p: string): boolean {
  return (
    p.length > 0 &&
    p.length <= 1024 &&
    !p.includes('\\') &&
    ![...p].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f) &&
    p.split('/').every((part) => part !== '' && part !== '.' && part !== '..')
  );
}

/** One listing entry, checked; throws naming the file and what is wrong with it. */
function checkListed(e: { path: unknown; size: unknown; oid?: unknown; lfs?: unknown }, where: string): Listed {
  const shown = typeof e.path === 'string' ? e.path : JSON.stringify(e.path);
  const fail = (problem: string): never => {
    throw new HubError(`${where}: the hub's listing of ${shown} ${problem}; nothing was downloaded`);
  };
  if (typeof e.path !== 'string' || !isPlainRelativePath(e.path)) fail('is not a plain relative path');
  const size = e.size;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`gives size ${JSON.stringify(size)}, not a byte count`);
  const lfs = e.lfs as { oid?: unknown; size?: unknown } | undefined;
  if (lfs !== undefined && lfs !== null) {
    if (typeof lfs.oid !== 'string' || !SHA256_HEX.test(lfs.oid))
      fail(`gives lfs.oid ${JSON.stringify(lfs.oid)}, not a sha256 (64 lowercase hex digits)`);
    if (lfs.size !== size) fail(`gives size ${String(size)} but lfs.size ${JSON.stringify(lfs.size)}`);
    return { path: e.path as string, size: size as number, etag: lfs.oid as string, hash: 'sha256' };
  }
  if (typeof e.oid !== 'string' || !SHA1_HEX.test(e.oid))
    fail(`gives oid ${JSON.stringify(e.oid)}, not a git blob id (40 lowercase hex digits)`);
  return { path: e.path as string, size: size as number, etag: e.oid as string, hash: 'git' };
}

function sizeText(bytes: number): string {
  if (bytes < 1024) return `${bytes.toFixed(1)} B`;
  if (bytes < 2 ** 20) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Download `revision` of a repo's wanted files into the cache; returns the commit. The revision is
 * resolved and the files listed through @huggingface/hub; every listed file is checked (above)
 * before anything is written; each file's bytes are verified before its blob is renamed into
 * place; the ref is written last, so an interrupted or refused download never makes a ref name an
 * incomplete snapshot.
 */
async function download(
  type: RepoType,
  id: string,
  revision: string,
  cacheDir: string,
  want: (path: string) => boolean,
  opts: HubOptions,
  why: string,
  pick: (paths: string[]) => string[] = (p) => p,
): Promise<string> {
  const env = opts.env ?? process.env;
  const settings = downloadSettings(env);
  const hub = await hubModule();
  const hubUrl = (opts.hubUrl ?? env['HF_ENDPOINT'] ?? 'https://huggingface.co').replace(/\/+$/, '');
  const token = env['HF_TOKEN'] || env['HUGGING_FACE_HUB_TOKEN'] || undefined;
  const baseFetch = opts.fetch ?? fetch;
  // The package's requests (revision, listing) get the stall bound as a whole-request timeout.
  const metaFetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const timeout = AbortSignal.timeout(Math.max(settings.stallS, 1) * 1000);
    return baseFetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
  }) as typeof fetch;
  const common = { hubUrl, fetch: metaFetch, ...(token ? { accessToken: token } : {}) };
  const repo = { type, name: id } as const;
  const log = opts.log ?? (() => {});
  const where = `${id}@${revision}`;
  const hint = (status: number | undefined) =>
    status === 401 || status === 403 ? (token ? ' (HF_TOKEN is set but was refused)' : ' (a gated or private repo needs HF_TOKEN)') : '';
  const fail = (what: string, e: unknown): never => {
    if (e instanceof HubError) throw e;
    const msg = e instanceof Error ? e.message : String(e);
    const status = (e as { statusCode?: number }).statusCode;
    throw new HubError(`${where}: ${what} from ${hubUrl} failed: ${msg}${hint(status)}; the cache ${cacheDir} had ${why}`);
  };
  log(`hub: ${where} is not in ${cacheDir} (${why}); downloading from ${hubUrl}`);
  let commit: string;
  try {
    const info =
      type === 'model'
        ? await hub.modelInfo({ name: id, revision, additionalFields: ['sha'], ...common })
        : await hub.datasetInfo({ name: id, revision, additionalFields: ['sha'], ...common });
    commit = String((info as { sha?: unknown }).sha ?? '');
  } catch (e) {
    return fail(`resolving the revision`, e);
  }
  if (!COMMIT.test(commit))
    throw new HubError(`${where}: the hub at ${hubUrl} named no commit (got ${JSON.stringify(commit.slice(0, 80))})`);
  const entries: { path: unknown; size: unknown; oid?: unknown; lfs?: unknown }[] = [];
  try {
    for await (const e of hub.listFiles({ repo, recursive: true, revision: commit, ...common }))
      if (e.type === 'file' && typeof e.path === 'string' && want(e.path)) entries.push(e);
  } catch (e) {
    return fail('listing the files', e);
  }
  const chosen = new Set(pick(entries.map((e) => e.path as string)));
  // Every file is checked before any byte is written.
  const files = entries
    .filter((e) => chosen.has(e.path as string))
    .map((e) => checkListed(e, where))
    .sort((a, b) => a.path.localeCompare(b.path));
  for (let i = 1; i < files.length; i++)
    if (files[i]!.path === files[i - 1]!.path)
      throw new HubError(`${where}: the hub's listing names ${files[i]!.path} twice; nothing was downloaded`);
  const repoDir = repoFolder(cacheDir, type, id);
  checkSnapshotDir(cacheDir, type, id, commit);
  const total = files.reduce((a, f) => a + f.size, 0);
  log(`hub: ${id} ${commit}: ${files.length} files, ${(total / 2 ** 20).toFixed(1)} MiB`);
  const blobs = join(repoDir, 'blobs');
  const snapshot = join(repoDir, 'snapshots', commit);
  mkdirSync(blobs, { recursive: true });
  mkdirSync(snapshot, { recursive: true });
  checkSnapshotDir(cacheDir, type, id, commit);
  const realSnapshot = realpathSync(snapshot);
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  let done = 0;
  for (const [i, f] of files.entries()) {
    const tag = `[${i + 1}/${files.length}] ${f.path}`;
    const t0 = performance.now();
    const blob = join(blobs, f.etag);
    if (!blobReady(blob, f.size)) {
      const url = `${hubUrl}/${type === 'dataset' ? 'datasets/' : ''}${id}/resolve/${commit}/${f.path.split('/').map(encodeURIComponent).join('/')}`;
      await fetchBlob(f, url, blob, {
        fetch: baseFetch,
        headers,
        settings,
        where,
        hubUrl,
        hint,
        log: (line) => log(`hub: ${tag} ${line}`),
      });
    }
    const link = join(snapshot, ...f.path.split('/'));
    mkdirSync(dirname(link), { recursive: true });
    const realParent = realpathSync(dirname(link));
    if (!isWithin(realParent, realSnapshot))
      throw new HubError(`${where}: ${f.path}: its directory in the snapshot resolves to ${realParent}, outside ${snapshot}`);
    rmSync(link, { force: true });
    symlinkSync(relative(dirname(link), blob), link);
    done += f.size;
    const s = (performance.now() - t0) / 1000;
    log(
      `hub: ${tag} ${(f.size / 2 ** 20).toFixed(1)} MiB in ${s.toFixed(1)}s · ${((100 * done) / Math.max(1, total)).toFixed(0)}% of ${(total / 2 ** 20).toFixed(1)} MiB`,
    );
  }
  if (revision !== commit) {
    const ref = join(repoDir, 'refs', ...revision.split('/'));
    mkdirSync(join(ref, '..'), { recursive: true });
    writeFileSync(`${ref}.tmp-${process.pid}`, commit);
    renameSync(`${ref}.tmp-${process.pid}`, ref);
  }
  return commit;
}

/** Whether `blob` is already a regular file of the listed size (a blob of another size is removed: it is broken). */
function blobReady(blob: string, size: number): boolean {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(blob);
  } catch {
    return false;
  }
  if (st.isFile() && st.size === size) return true;
  rmSync(blob, { force: true });
  return false;
}

interface FetchContext {
  fetch: typeof fetch;
  headers: Record<string, string>;
  settings: DownloadSettings;
  where: string;
  hubUrl: string;
  hint: (status: number | undefined) => string;
  log: (line: string) => void;
}

/**
 * Streams `url` into `<blob>.<pid>.incomplete` and renames it to `blob` when its size and hash are
 * the listing's; otherwise removes it and throws. Abandons a download slower than the stall bound.
 */
async function fetchBlob(f: Listed, url: string, blob: string, c: FetchContext): Promise<void> {
  const tmp = `${blob}.${process.pid}.incomplete`;
  const { stallS, minBytesPerS, progressS } = c.settings;
  const hash: Hash = createHash(f.hash === 'sha256' ? 'sha256' : 'sha1');
  if (f.hash === 'git') hash.update(`blob ${f.size}\0`);
  const abort = new AbortController();
  let received = 0;
  let stalled: string | null = null;
  // The stall bound: at least minBytesPerS × stallS bytes in every stallS seconds (measured from the request).
  let windowStart = performance.now();
  let windowBytes = 0;
  const t0 = performance.now();
  const stallTimer = setInterval(
    () => {
      const now = performance.now();
      if (now - windowStart < stallS * 1000) return;
      const got = received - windowBytes;
      if (got < minBytesPerS * stallS) {
        stalled = `stalled: ${got} bytes in the last ${stallS} s (less than ${minBytesPerS} bytes/s, RAC_HUB_STALL_S=${stallS}, RAC_HUB_MIN_BYTES_PER_S=${minBytesPerS})`;
        abort.abort();
      }
      windowStart = now;
      windowBytes = received;
    },
    Math.min(1000, (stallS * 1000) / 4),
  );
  const progressTimer = setInterval(() => {
    const s = (performance.now() - t0) / 1000;
    c.log(`${sizeText(received)} of ${sizeText(f.size)}, ${sizeText(received / Math.max(s, 1e-3))}/s`);
  }, progressS * 1000);
  const fh = await openFile(tmp, 'w');
  let kept = false;
  try {
    const refuse = (problem: string): never => {
      throw new HubError(`${c.where}: ${f.path}: ${problem}; nothing was kept`);
    };
    let res: Response;
    try {
      res = await c.fetch(url, { headers: c.headers, signal: abort.signal, redirect: 'follow' });
    } catch (e) {
      if (stalled) refuse(`${stalled}; 0 of ${f.size} bytes received`);
      return refuse(`downloading from ${c.hubUrl} failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      refuse(`downloading from ${c.hubUrl} failed: HTTP ${res.status}${c.hint(res.status)}`);
    }
    const declared = res.headers.get('content-length');
    if (declared !== null && Number(declared) !== f.size && !res.headers.get('content-encoding'))
      refuse(`the hub sends ${declared} bytes, its listing says ${f.size}`);
    if (!res.body) refuse('the hub sent no body');
    const reader = res.body!.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        received += value.byteLength;
        if (received > f.size) refuse(`the hub sent more than the ${f.size} bytes its listing says`);
        hash.update(value);
        let off = 0;
        while (off < value.byteLength) off += (await fh.write(value, off, value.byteLength - off)).bytesWritten;
      }
    } catch (e) {
      await reader.cancel().catch(() => {});
      if (e instanceof HubError) throw e;
      if (stalled) refuse(`${stalled}; ${received} of ${f.size} bytes received`);
      refuse(`downloading from ${c.hubUrl} failed after ${received} of ${f.size} bytes: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (received !== f.size) refuse(`received ${received} of ${f.size} bytes`);
    const got = hash.digest('hex');
    if (got !== f.etag)
      refuse(`the bytes received have ${f.hash === 'sha256' ? 'sha256' : 'git blob id'} ${got}, the hub's listing says ${f.etag}`);
    await fh.close();
    renameSync(tmp, blob);
    kept = true;
  } finally {
    clearInterval(stallTimer);
    clearInterval(progressTimer);
    if (!kept) {
      await fh.close().catch(() => {});
      rmSync(tmp, { force: true });
    }
  }
}
