/**
 * Hugging Face hub fixtures: cache layouts written like huggingface_hub writes them (content in
 * blobs/, snapshot files as relative symlinks into them, refs naming commits), and a loopback
 * server speaking the hub's file endpoints for a few repos (what @huggingface/hub calls).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, relative } from 'node:path';

export type Files = Record<string, Buffer>;

/** Every file under `dir` (relative posix paths → bytes). */
export function filesOf(dir: string, base = ''): Files {
  const out: Files = {};
  for (const name of readdirSync(join(dir, base))) {
    const rel = base ? `${base}/${name}` : name;
    if (statSync(join(dir, rel)).isDirectory()) Object.assign(out, filesOf(dir, rel));
    else out[rel] = readFileSync(join(dir, rel));
  }
  return out;
}

export function sha1(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex');
}

/** The git blob id of `b` (what the hub lists as a file's `oid`): sha1 of "blob <size>\0" + the bytes. */
export function gitOid(b: Buffer): string {
  return createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A commit id (40 hex) derived from a label. */
export function commitOf(label: string): string {
  return sha1(Buffer.from(label));
}

/** Write one snapshot of a repo into a cache: blobs, relative symlinks, and the given refs. */
export function writeCachedRepo(
  cache: string,
  type: 'model' | 'dataset',
  id: string,
  commit: string,
  files: Files,
  refs: Record<string, string> = {},
): string {
  const repo = join(cache, `${type}s--${id.split('/').join('--')}`);
  const snap = join(repo, 'snapshots', commit);
  for (const [path, bytes] of Object.entries(files)) {
    const blob = join(repo, 'blobs', sha256(bytes));
    mkdirSync(dirname(blob), { recursive: true });
    writeFileSync(blob, bytes);
    const link = join(snap, ...path.split('/'));
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(relative(dirname(link), blob), link);
  }
  mkdirSync(snap, { recursive: true });
  for (const [ref, c] of Object.entries(refs)) {
    const f = join(repo, 'refs', ...ref.split('/'));
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(f, c);
  }
  return snap;
}

export interface HubRepo {
  type: 'model' | 'dataset';
  id: string;
  commit: string;
  /** Refs other than the commit itself (default: main → commit). */
  refs?: Record<string, string>;
  files: Files;
  /** Refuse requests without this bearer token (401), like a gated repo. */
  token?: string;
  /** A hostile hub: rewrite the listing's entry for a file (tree and paths-info). */
  entry?: (path: string, e: ListedFile) => ListedFile;
  /** A hostile or slow hub: answer `resolve` for a file yourself (return false to let the fixture answer). */
  serve?: (path: string, bytes: Buffer, req: IncomingMessage, res: ServerResponse) => boolean;
}

/** A file entry of the hub's listing (tree, paths-info). */
export interface ListedFile {
  type: 'file';
  path: string;
  size: number;
  oid: string;
  lfs?: { oid: string; size: number; pointerSize: number };
}

export interface FakeHub {
  url: string;
  /** Every request: method and path (with query). */
  requests: { method: string; url: string; auth: string | undefined }[];
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body));
  res.writeHead(status, {
    'Content-Type': Buffer.isBuffer(body) ? 'application/octet-stream' : 'application/json',
    'Content-Length': String(b.length),
    ...headers,
  });
  res.end(b);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A loopback hub (127.0.0.1, an ephemeral port) serving `repos`; close it in `finally`. */
export async function startFakeHub(repos: HubRepo[]): Promise<FakeHub> {
  const requests: FakeHub['requests'] = [];
  const entry = (r: HubRepo, path: string): ListedFile => {
    const b = r.files[path]!;
    const lfs = path.endsWith('.safetensors') || path.endsWith('.parquet');
    const e: ListedFile = {
      type: 'file',
      path,
      size: b.length,
      oid: gitOid(b),
      ...(lfs ? { lfs: { oid: sha256(b), size: b.length, pointerSize: 130 } } : {}),
    };
    return r.entry ? r.entry(path, e) : e;
  };
  const commitFor = (r: HubRepo, rev: string) => (rev === r.commit ? r.commit : (r.refs ?? { main: r.commit })[rev]);
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const auth = req.headers.authorization;
      requests.push({ method: req.method ?? 'GET', url: req.url ?? '', auth });
      const parts = decodeURIComponent(url.pathname).split('/').filter(Boolean);
      let api = false;
      if (parts[0] === 'api') {
        api = true;
        parts.shift();
      }
      let type: 'model' | 'dataset' = 'model';
      if (parts[0] === 'datasets' || (api && parts[0] === 'models')) {
        type = parts[0] === 'datasets' ? 'dataset' : 'model';
        parts.shift();
      }
      const id = `${parts[0]}/${parts[1]}`;
      const repo = repos.find((r) => r.type === type && r.id === id);
      if (!repo) return send(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
      if (repo.token && auth !== `Bearer ${repo.token}`)
        return send(res, 401, { error: 'Access to this repository is restricted' }, { 'X-Error-Code': 'GatedRepo' });
      const action = parts[2];
      const commit = commitFor(repo, parts[3] ?? '');
      if (!commit) return send(res, 404, { error: `Invalid rev id: ${parts[3]}` }, { 'X-Error-Code': 'RevisionNotFound' });
      const rest = parts.slice(4).join('/');
      if (api && action === 'revision') return send(res, 200, { _id: commit.slice(0, 24), id, sha: commit, private: false });
      if (api && action === 'tree') {
        const list = Object.keys(repo.files).filter((p) => p.startsWith(rest ? `${rest}/` : ''));
        const dirs = [
          ...new Set(
            list.flatMap((p) =>
              p
                .split('/')
                .slice(0, -1)
                .map((_, i, a) => a.slice(0, i + 1).join('/')),
            ),
          ),
        ];
        return send(res, 200, [
          ...dirs.map((d) => ({ type: 'directory', path: d, size: 0, oid: sha1(Buffer.from(d)) })),
          ...list.map((p) => entry(repo, p)),
        ]);
      }
      if (api && action === 'paths-info') {
        const body = JSON.parse(await readBody(req)) as { paths: string[] };
        return send(
          res,
          200,
          body.paths
            .filter((p) => repo.files[p])
            .map((p) => ({ ...entry(repo, p), lastCommit: { id: commit, title: 'fixture', date: '2026-01-01T00:00:00Z' } })),
        );
      }
      if (!api && action === 'resolve') {
        const b = repo.files[rest];
        if (!b) return send(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
        // (size probes — HEAD, or the one-byte range @huggingface/hub asks first — get the true answer)
        if (req.method !== 'HEAD' && req.headers.range !== 'bytes=0-0' && repo.serve?.(rest, b, req, res)) return;
        const etag = `"${entry(repo, rest).lfs?.oid ?? gitOid(b)}"`;
        const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
        if (range) {
          const a = Number(range[1]);
          const z = range[2] ? Math.min(Number(range[2]), b.length - 1) : b.length - 1;
          return send(res, 206, b.subarray(a, z + 1), {
            'Content-Range': `bytes ${a}-${z}/${b.length}`,
            ETag: etag,
            'Accept-Ranges': 'bytes',
          });
        }
        return send(res, 200, b, { ETag: etag, 'Accept-Ranges': 'bytes' });
      }
      return send(res, 404, { error: `no route ${req.method} ${url.pathname}` });
    })().catch((e: unknown) => send(res, 500, { error: String(e) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
