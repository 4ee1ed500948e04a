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
 * What the cache lacks is downloaded, when the network is allowed (`HF_HUB_OFFLINE` unset), through
 * the official `@huggingface/hub` package into the same layout — only the files rac reads (config,
 * tokenizer, generation config, chat template, safetensors shards and index, README; for a dataset
 * the Parquet shards of the asked split). `HF_TOKEN` authenticates gated and private repos.
 *
 * This module only maps ids to a snapshot directory (or a dataset split's files); reading the
 * files inside is the loaders' business.
 */
import { type Dirent, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve, sep } from 'node:path';

export class HubError extends Error {
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
    const c = readFileSync(ref, 'utf8').trim();
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
      const j = JSON.parse(readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> };
      shards = [...new Set(Object.values(j.weight_map ?? {}))].sort();
    } catch {
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
        return readFileSync(join(refs, r), 'utf8').trim() === commit;
      } catch {
        return false;
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
    const dir = snapshotDir(cacheDir, 'dataset', parsed.id, c);
    return splitShards(walk(dir), config, split).map((f) => join(dir, ...f.split('/')));
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

/**
 * Download `revision` of a repo's wanted files into the cache; returns the commit. Each file goes
 * through @huggingface/hub's downloadFileToCacheDir (blob + relative snapshot symlink); the ref
 * is written last, so an interrupted download never makes a ref name an incomplete snapshot.
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
  const hub = await hubModule();
  const hubUrl = (opts.hubUrl ?? env['HF_ENDPOINT'] ?? 'https://huggingface.co').replace(/\/+$/, '');
  const token = env['HF_TOKEN'] || env['HUGGING_FACE_HUB_TOKEN'] || undefined;
  const common = { hubUrl, ...(opts.fetch ? { fetch: opts.fetch } : {}), ...(token ? { accessToken: token } : {}) };
  const repo = { type, name: id } as const;
  const log = opts.log ?? (() => {});
  const fail = (what: string, e: unknown): never => {
    const msg = e instanceof Error ? e.message : String(e);
    const status = (e as { statusCode?: number }).statusCode;
    const hint =
      status === 401 || status === 403 ? (token ? ' (HF_TOKEN is set but was refused)' : ' (a gated or private repo needs HF_TOKEN)') : '';
    throw new HubError(`${id}@${revision}: ${what} from ${hubUrl} failed: ${msg}${hint}; the cache ${cacheDir} had ${why}`);
  };
  log(`hub: ${id}@${revision} is not in ${cacheDir} (${why}); downloading from ${hubUrl}`);
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
  if (!COMMIT.test(commit)) throw new HubError(`${id}@${revision}: the hub at ${hubUrl} named no commit (got "${commit}")`);
  const entries: { path: string; size: number }[] = [];
  try {
    for await (const e of hub.listFiles({ repo, recursive: true, revision: commit, ...common }))
      if (e.type === 'file' && want(e.path)) entries.push({ path: e.path, size: e.size });
  } catch (e) {
    return fail('listing the files', e);
  }
  const chosen = new Set(pick(entries.map((e) => e.path)));
  const files = entries.filter((e) => chosen.has(e.path)).sort((a, b) => a.path.localeCompare(b.path));
  const total = files.reduce((a, f) => a + f.size, 0);
  log(`hub: ${id} ${commit}: ${files.length} files, ${(total / 2 ** 20).toFixed(1)} MiB`);
  // downloadFileToCacheDir announces each file with console.debug, which writes to stdout.
  const debug = console.debug;
  console.debug = () => {};
  try {
    let done = 0;
    for (const [i, f] of files.entries()) {
      const t0 = performance.now();
      try {
        await hub.downloadFileToCacheDir({ repo, path: f.path, revision: commit, cacheDir, ...common });
      } catch (e) {
        return fail(`downloading ${f.path}`, e);
      }
      done += f.size;
      const s = (performance.now() - t0) / 1000;
      log(
        `hub: [${i + 1}/${files.length}] ${f.path} ${(f.size / 2 ** 20).toFixed(1)} MiB in ${s.toFixed(1)}s · ${((100 * done) / Math.max(1, total)).toFixed(0)}% of ${(total / 2 ** 20).toFixed(1)} MiB`,
      );
    }
  } finally {
    console.debug = debug;
  }
  if (revision !== commit) {
    const ref = join(repoFolder(cacheDir, type, id), 'refs', ...revision.split('/'));
    mkdirSync(join(ref, '..'), { recursive: true });
    writeFileSync(`${ref}.tmp-${process.pid}`, commit);
    renameSync(`${ref}.tmp-${process.pid}`, ref);
  }
  return commit;
}
