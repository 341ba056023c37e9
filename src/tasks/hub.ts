/**
 * Hugging Face Hub dataset ids as question sources: `openai/gsm8k` with a config ("main") and a
 * split ("test") is resolved to its data files through the Hub's file listing
 * (`GET {endpoint}/api/datasets/{id}/tree/{revision}?recursive=true`, paginated by `Link`
 * headers), then the files are downloaded from `{endpoint}/datasets/{id}/resolve/{revision}/{path}`
 * with progress, and read as Parquet (hyparquet) or JSON Lines.
 *
 * A dataset with no data files on its main branch (built by a loading script) is read from the
 * Hub's Parquet conversion (the `refs/convert/parquet` branch). Files are cached under Node (`$AGENTARK_CACHE`, default `~/.cache/agentark`, then
 * `datasets/{id}/{revision}/{path}`); without network the cached files of the split are used. In
 * the browser, pass `cache` (e.g. one backed by the Cache API or OPFS). The endpoint is
 * `$AGENTARK_HF_ENDPOINT` or https://huggingface.co; `$HF_TOKEN` authorises gated datasets.
 */
import type { LoadOptions, RawRow } from './datasets';
import { readJsonRows } from './datasets';
import { readBody, readParquetRows } from './parquet';

export interface HubFile {
  path: string;
  size: number;
}

/** Where downloaded dataset files are kept (key: `{id}/{revision}/{path}`). */
export interface DatasetCache {
  get(key: string): Promise<ArrayBuffer | null>;
  put(key: string, bytes: ArrayBuffer): Promise<void>;
  /** Cached keys under a prefix (for offline use); optional. */
  list?(prefix: string): Promise<string[]>;
}

export interface HubOptions extends LoadOptions {
  /** Default $AGENTARK_HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default $HF_TOKEN (Node). */
  token?: string;
  /** Default: a directory cache under Node, none in the browser. */
  cache?: DatasetCache | null;
}

const isNode = () => typeof process !== 'undefined' && typeof process.versions?.node === 'string';
const env = (k: string) => (isNode() ? process.env[k] : undefined);
const DATA_FILE = /\.(parquet|jsonl|json)$/i;
/** Data files, not the metadata JSON a dataset repo may carry. */
const isDataFile = (p: string) =>
  DATA_FILE.test(p) &&
  !/(^|\/)(dataset_infos?|dataset_dict|state)\.json$/.test(p) &&
  !p.split('/').some((seg) => seg.startsWith('.'));
/** The branch where the Hub keeps its Parquet conversion of every dataset. */
export const CONVERTED = 'refs/convert/parquet';
const ID = /^(?:hf:\/\/datasets\/)?([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*)$/;

/**
 * Whether `spec` names a Hub dataset: `owner/name` (or `hf://datasets/owner/name`) that is not
 * an existing local path and has no file extension.
 */
export async function isHubDatasetSpec(spec: string): Promise<boolean> {
  if (spec.startsWith('hf://datasets/')) return ID.test(spec);
  if (!ID.test(spec) || /\.(jsonl|json|parquet)$/i.test(spec) || spec.includes('..')) return false;
  if (!isNode()) return true;
  const { stat } = await import('node:fs/promises');
  try {
    await stat(spec);
    return false;
  } catch {
    return true;
  }
}

function hubId(spec: string): string {
  const m = ID.exec(spec);
  if (!m) throw new Error(`not a Hugging Face dataset id: ${JSON.stringify(spec)} (expected owner/name)`);
  return m[1]!;
}

function endpointOf(opts: HubOptions): string {
  return (opts.endpoint ?? env('AGENTARK_HF_ENDPOINT') ?? 'https://huggingface.co').replace(/\/+$/, '');
}

function headersOf(opts: HubOptions): Record<string, string> {
  const token = opts.token ?? env('HF_TOKEN');
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** Every file of the dataset repo at `revision`, from the Hub's tree API (all pages). */
export async function listHubDatasetFiles(id: string, opts: HubOptions = {}): Promise<HubFile[]> {
  const revision = opts.revision ?? 'main';
  let url: string | null = `${endpointOf(opts)}/api/datasets/${id}/tree/${encodeURIComponent(revision)}?recursive=true`;
  const out: HubFile[] = [];
  while (url) {
    const res: Response = await fetch(url, { headers: headersOf(opts), signal: opts.signal });
    if (res.status === 401 || res.status === 403)
      throw new Error(
        `Hub dataset ${id}: access denied (HTTP ${res.status}); set HF_TOKEN for gated or private datasets`,
      );
    if (res.status === 404) throw new Error(`Hub dataset ${id}@${revision} not found (HTTP 404)`);
    if (!res.ok) throw new Error(`listing Hub dataset ${id}: HTTP ${res.status} ${res.statusText}`);
    const page = (await res.json()) as { type?: string; path?: string; size?: number }[];
    if (!Array.isArray(page)) throw new Error(`listing Hub dataset ${id}: unexpected answer (not a list of files)`);
    for (const e of page)
      if (e.type === 'file' && typeof e.path === 'string') out.push({ path: e.path, size: Number(e.size ?? 0) });
    const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '');
    url = next ? next[1]! : null;
  }
  return out;
}

/**
 * The data files of one config and split, in name order (shards: `test-00000-of-00002.parquet`,
 * …). A file belongs to split S when a path segment is S or starts with "S-", "S_" or "S.";
 * to config C when its first directory is C (`main/test-…`). Without a config, files outside
 * config directories (`data/…`, top level) are taken, else the only config; several configs need
 * one to be named. Parquet is preferred over JSON when a split has both.
 */
export function pickSplitFiles(
  id: string,
  files: readonly HubFile[],
  opts: { config?: string; split?: string } = {},
): HubFile[] {
  const split = opts.split ?? 'test';
  const data = files.filter((f) => isDataFile(f.path));
  const esc = split.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const inSplit = new RegExp(`(^|/)${esc}(/|[-_.])`);
  const ofSplit = data.filter((f) => inSplit.test(f.path));
  const topDir = (p: string) => (p.includes('/') ? p.split('/')[0]! : '');
  const neutral = (d: string) => d === '' || d === 'data';
  let chosen: HubFile[];
  if (opts.config !== undefined) {
    chosen = ofSplit.filter(
      (f) =>
        topDir(f.path) === opts.config || (f.path.startsWith('data/') && f.path.slice(5).split('/')[0] === opts.config),
    );
    if (!chosen.length && opts.config === 'default') chosen = ofSplit.filter((f) => neutral(topDir(f.path)));
  } else {
    const configs = [...new Set(ofSplit.map((f) => topDir(f.path)).filter((d) => !neutral(d)))];
    const plain = ofSplit.filter((f) => neutral(topDir(f.path)));
    if (plain.length) chosen = plain;
    else if (configs.length === 1) chosen = ofSplit;
    else if (configs.length > 1)
      throw new Error(
        `Hub dataset ${id} has several configs with a "${split}" split: ${configs.join(', ')}; give --config`,
      );
    else chosen = [];
  }
  if (!chosen.length) {
    const splits = [
      ...new Set(
        data.map((f) =>
          f.path
            .split('/')
            .pop()!
            .replace(/[-_.].*$/, ''),
        ),
      ),
    ].slice(0, 12);
    throw new Error(
      `Hub dataset ${id}: no data files for ${opts.config !== undefined ? `config "${opts.config}", ` : ''}split "${split}" (data files: ${
        data
          .slice(0, 8)
          .map((f) => f.path)
          .join(', ') || 'none'
      }${splits.length ? `; splits seen: ${splits.join(', ')}` : ''})`,
    );
  }
  const parquet = chosen.filter((f) => /\.parquet$/i.test(f.path));
  return (parquet.length ? parquet : chosen).sort((a, b) => a.path.localeCompare(b.path));
}

/** The directory cache of Node ($AGENTARK_CACHE or ~/.cache/agentark, then datasets/…). */
export async function nodeDatasetCache(root?: string): Promise<DatasetCache> {
  const [{ promises: fsp }, path, os] = await Promise.all([import('node:fs'), import('node:path'), import('node:os')]);
  const base = path.join(root ?? env('AGENTARK_CACHE') ?? path.join(os.homedir(), '.cache', 'agentark'), 'datasets');
  const file = (key: string) => path.join(base, ...key.split('/'));
  return {
    async get(key) {
      try {
        const b = await fsp.readFile(file(key));
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      } catch {
        return null;
      }
    },
    async put(key, bytes) {
      const f = file(key);
      await fsp.mkdir(path.dirname(f), { recursive: true });
      const tmp = `${f}.tmp-${process.pid}`;
      await fsp.writeFile(tmp, new Uint8Array(bytes));
      await fsp.rename(tmp, f);
    },
    async list(prefix) {
      const out: string[] = [];
      const walk = async (dir: string, rel: string) => {
        let entries: import('node:fs').Dirent[];
        try {
          entries = await fsp.readdir(dir, { withFileTypes: true });
        } catch {
          return;
        }
        for (const e of entries) {
          if (e.isDirectory()) await walk(path.join(dir, e.name), `${rel}${e.name}/`);
          else if (!e.name.includes('.tmp-')) out.push(`${prefix}${rel}${e.name}`);
        }
      };
      await walk(file(prefix), '');
      return out;
    },
  };
}

/**
 * The rows of a Hub dataset's split: files listed, picked, fetched (from the cache when there),
 * read and concatenated in file order (at most `limit` rows). Offline, the cached files are used.
 */
export async function loadHubDatasetRows(
  spec: string,
  opts: HubOptions = {},
): Promise<{ rows: RawRow[]; name: string; parquet: boolean; files: string[] }> {
  const id = hubId(spec);
  let revision = opts.revision ?? 'main';
  const cache = opts.cache === undefined ? (isNode() ? await nodeDatasetCache() : null) : opts.cache;
  let files: HubFile[];
  try {
    const listed = await listHubDatasetFiles(id, { ...opts, revision });
    if (opts.revision === undefined && !listed.some((f) => isDataFile(f.path))) {
      // No data files on main (a dataset built by a loading script): the Hub's own Parquet
      // conversion, `{config}/{split}/0000.parquet` on the refs/convert/parquet branch.
      revision = CONVERTED;
      files = pickSplitFiles(id, await listHubDatasetFiles(id, { ...opts, revision }), opts);
    } else files = pickSplitFiles(id, listed, opts);
  } catch (e) {
    // Offline (the listing failed to connect): the cached files of the split, if any.
    if (!(e instanceof TypeError) || !cache?.list) throw e;
    files = [];
    for (const rev of opts.revision === undefined ? [revision, CONVERTED] : [revision]) {
      const p = `${id}/${rev}/`;
      const cached = (await cache.list(p)).map((k) => ({ path: k.slice(p.length), size: 0 }));
      if (!cached.length) continue;
      revision = rev;
      files = pickSplitFiles(id, cached, opts);
      break;
    }
    if (!files.length) throw e;
  }
  const prefix = `${id}/${revision}/`;
  const name = `${id}${opts.config ? `/${opts.config}` : ''}/${opts.split ?? 'test'}`;
  const rows: RawRow[] = [];
  const limit = opts.limit ?? Infinity;
  const total = files.reduce((a, f) => a + f.size, 0);
  let doneBefore = 0;
  for (const f of files) {
    if (rows.length >= limit) break;
    const key = `${prefix}${f.path}`;
    let bytes = cache ? await cache.get(key) : null;
    if (!bytes) {
      const url = `${endpointOf(opts)}/datasets/${id}/resolve/${encodeURIComponent(revision)}/${f.path.split('/').map(encodeURIComponent).join('/')}`;
      const res = await fetch(url, { headers: headersOf(opts), signal: opts.signal });
      if (!res.ok) throw new Error(`downloading ${id}/${f.path}: HTTP ${res.status} ${res.statusText}`);
      const base = doneBefore;
      bytes = await readBody(
        res,
        `download ${id}/${f.path}`,
        opts.onProgress &&
          ((e) =>
            opts.onProgress!({
              phase: `download ${name}`,
              done: base + e.done,
              total: Math.max(total, base + e.total),
              unit: 'bytes',
            })),
      );
      await cache?.put(key, bytes);
    }
    doneBefore += bytes.byteLength;
    const source = `${id}/${f.path}`;
    const left = limit - rows.length;
    const got = /\.parquet$/i.test(f.path)
      ? await readParquetRows(bytes, source, { limit: Number.isFinite(left) ? left : undefined })
      : readJsonRows(new TextDecoder().decode(bytes), source, Number.isFinite(left) ? left : undefined);
    // Row numbers continue across shards, so ids stay unique and stable.
    for (const r of got) rows.push({ ...r, index: rows.length + 1 });
  }
  return { rows, name, parquet: files.some((f) => /\.parquet$/i.test(f.path)), files: files.map((f) => f.path) };
}
