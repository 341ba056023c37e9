/**
 * Where model files come from: a local directory (Node), a base URL, a Hugging Face repo id, or
 * in-memory Blobs (browser file pickers). Everything above this layer sees only FileSource, so a
 * new origin (e.g. a FileSystemDirectoryHandle) is one more small class.
 *
 * Node-only modules are imported dynamically so this file also loads in browsers.
 */

export type OnBytes = (received: number, total: number | null) => void;

export interface StreamOptions {
  signal?: AbortSignal;
}

export interface FileSource {
  /** Where the files live (directory, base URL, repo id), for messages and Checkpoint.source. */
  readonly location: string;
  /** Full path or URL of one file, for messages. */
  describe(name: string): string;
  exists(name: string): Promise<boolean>;
  readText(name: string): Promise<string>;
  size(name: string): Promise<number>;
  /** Bytes [start, end) of a file; throws if the file is shorter. */
  readRange(name: string, start: number, end: number, options?: StreamOptions): Promise<Uint8Array>;
  /**
   * The whole file as chunks. Throws a SourceError naming the file if it ends early or the
   * connection drops ("download of X interrupted after N of M bytes").
   */
  stream(name: string, onBytes?: OnBytes, options?: StreamOptions): AsyncIterable<Uint8Array>;
}

export class SourceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SourceError';
  }
}

/** A file name read from an untrusted file must be a plain relative path inside the folder. */
export function unsafeFileNameReason(name: string): string | null {
  if (name.length > 1024) return 'is too long';
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return 'contains control characters';
  }
  if (name.includes('\\')) return 'contains a backslash';
  if (name.startsWith('/')) return 'is an absolute path';
  if (/^[A-Za-z]:/.test(name) || /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(name)) return 'names a drive or URL';
  if (name.split('/').some((seg) => seg === '' || seg === '.' || seg === '..'))
    return "has an empty, '.' or '..' path segment";
  return null;
}

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

function env(name: string): string | undefined {
  return isNode() ? process.env[name] : undefined;
}

function errorText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  // undici reports socket failures as TypeError('fetch failed'/'terminated') with the real reason in `cause`.
  const cause = e.cause instanceof Error ? `: ${e.cause.message}` : '';
  return `${e.message}${cause}`;
}

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException('Aborted', 'AbortError');
}

const MORE_BYTES_THAN_ANNOUNCED = 'server sent more bytes than announced';

/** Reads a web ReadableStream to the end, turning a mid-stream failure or short body into one clear error. */
async function* readWebStream(
  body: ReadableStream<Uint8Array>,
  what: string,
  expectedTotal: number | null,
  onBytes: OnBytes | undefined,
  signal: AbortSignal | undefined,
): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  let received = 0;
  const interrupted = (detail: string, cause?: unknown): SourceError =>
    new SourceError(
      `download of ${what} interrupted after ${received} of ${expectedTotal ?? 'unknown'} bytes (${detail})`,
      { cause },
    );
  try {
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } catch (e) {
        throwIfAborted(signal);
        throw interrupted(errorText(e), e);
      }
      if (result.done) break;
      received += result.value.length;
      if (expectedTotal !== null && received > expectedTotal) throw interrupted(MORE_BYTES_THAN_ANNOUNCED);
      onBytes?.(received, expectedTotal);
      yield result.value;
    }
    if (expectedTotal !== null && received !== expectedTotal) throw interrupted('connection closed early');
  } finally {
    // Stops the transfer when the consumer bails out early (error, abort or a satisfied range read).
    reader.cancel().catch(() => {});
  }
}

/** Collects a chunk stream into the byte range [start, end); the stream must start at file offset 0. */
async function collectRange(chunks: AsyncIterable<Uint8Array>, start: number, end: number): Promise<Uint8Array> {
  const out = new Uint8Array(end - start);
  let position = 0; // file offset of the current chunk
  for await (const chunk of chunks) {
    const from = Math.max(start - position, 0);
    const to = Math.min(end - position, chunk.length);
    if (to > from) out.set(chunk.subarray(from, to), position + from - start);
    position += chunk.length;
    if (position >= end) return out;
  }
  throw new SourceError(`wanted bytes [${start}, ${end}) but the file ends at ${position}`);
}

// ---------------------------------------------------------------------------------------------
// Local directory (Node)

type NodeFs = typeof import('node:fs');
type NodePath = typeof import('node:path');
let nodeModules: Promise<{ fs: NodeFs; path: NodePath }> | null = null;

function loadNodeModules(): Promise<{ fs: NodeFs; path: NodePath }> {
  if (!isNode())
    throw new SourceError(
      'local directories can only be read under Node; in a browser use a URL, a repo id or picked files',
    );
  nodeModules ??= Promise.all([import('node:fs'), import('node:path')]).then(([fs, path]) => ({ fs, path }));
  return nodeModules;
}

export class LocalDirectorySource implements FileSource {
  constructor(readonly location: string) {}

  describe(name: string): string {
    return `${this.location.replace(/[\\/]+$/, '')}/${name}`;
  }

  private async pathOf(name: string): Promise<string> {
    const { path } = await loadNodeModules();
    const problem = unsafeFileNameReason(name);
    if (problem)
      throw new SourceError(
        `refusing to read ${JSON.stringify(name.slice(0, 200))} from ${this.location}: the name ${problem}`,
      );
    return path.join(this.location, name);
  }

  private notFound(name: string, cause: unknown): SourceError {
    const code = (cause as NodeJS.ErrnoException)?.code;
    if (code === 'ENOENT') return new SourceError(`${name} not found in ${this.location}`, { cause });
    return new SourceError(`cannot read ${this.describe(name)}: ${errorText(cause)}`, { cause });
  }

  async exists(name: string): Promise<boolean> {
    const { fs } = await loadNodeModules();
    try {
      return (await fs.promises.stat(await this.pathOf(name))).isFile();
    } catch {
      return false;
    }
  }

  async readText(name: string): Promise<string> {
    const { fs } = await loadNodeModules();
    try {
      return await fs.promises.readFile(await this.pathOf(name), 'utf8');
    } catch (e) {
      throw this.notFound(name, e);
    }
  }

  async size(name: string): Promise<number> {
    const { fs } = await loadNodeModules();
    try {
      return (await fs.promises.stat(await this.pathOf(name))).size;
    } catch (e) {
      throw this.notFound(name, e);
    }
  }

  async readRange(name: string, start: number, end: number): Promise<Uint8Array> {
    const { fs } = await loadNodeModules();
    let handle: import('node:fs/promises').FileHandle;
    try {
      handle = await fs.promises.open(await this.pathOf(name), 'r');
    } catch (e) {
      throw this.notFound(name, e);
    }
    try {
      const out = new Uint8Array(end - start);
      let filled = 0;
      while (filled < out.length) {
        const { bytesRead } = await handle.read(out, filled, out.length - filled, start + filled);
        if (bytesRead === 0) {
          throw new SourceError(
            `${this.describe(name)}: wanted bytes [${start}, ${end}) but the file ends at ${start + filled}`,
          );
        }
        filled += bytesRead;
      }
      return out;
    } finally {
      await handle.close();
    }
  }

  async *stream(name: string, onBytes?: OnBytes, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    const { fs } = await loadNodeModules();
    const total = await this.size(name);
    const file = fs.createReadStream(await this.pathOf(name), { highWaterMark: 1 << 20, signal: options?.signal });
    let received = 0;
    try {
      for await (const chunk of file as AsyncIterable<Buffer>) {
        received += chunk.length;
        onBytes?.(received, total);
        yield new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
      }
    } catch (e) {
      throwIfAborted(options?.signal);
      throw new SourceError(
        `reading ${this.describe(name)} failed after ${received} of ${total} bytes: ${errorText(e)}`,
        { cause: e },
      );
    } finally {
      file.destroy();
    }
    if (received !== total) {
      throw new SourceError(`${this.describe(name)} changed size while being read (${received} of ${total} bytes)`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP(S): a base folder URL; Hugging Face repos are the special case `<endpoint>/<id>/resolve/<rev>/`.

export class HttpSource implements FileSource {
  private readonly base: string;

  constructor(
    baseUrl: string,
    readonly location: string = baseUrl,
    private readonly headers: Record<string, string> = {},
  ) {
    this.base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  }

  url(name: string): string {
    // Every segment is percent-encoded, and none may be '.'/'..', so the URL stays under the base (the repo).
    const problem = unsafeFileNameReason(name);
    if (problem)
      throw new SourceError(
        `refusing to fetch ${JSON.stringify(name.slice(0, 200))} from ${this.base}: the name ${problem}`,
      );
    return this.base + name.split('/').map(encodeURIComponent).join('/');
  }

  describe(name: string): string {
    return this.url(name);
  }

  private async fetch(name: string, init: RequestInit & { headers?: Record<string, string> } = {}): Promise<Response> {
    const url = this.url(name);
    try {
      return await fetch(url, { ...init, headers: { ...this.headers, ...init.headers } });
    } catch (e) {
      throwIfAborted(init.signal ?? undefined);
      throw new SourceError(`fetching ${name} from ${url} failed: ${errorText(e)}`, { cause: e });
    }
  }

  private statusError(name: string, response: Response): SourceError {
    const hint =
      response.status === 401 || response.status === 403
        ? ' (private or gated repository? set HF_TOKEN, or check the repo id)'
        : '';
    return new SourceError(
      `${name}: HTTP ${response.status} ${response.statusText} from ${response.url || this.url(name)}${hint}`,
    );
  }

  async exists(name: string): Promise<boolean> {
    const response = await this.fetch(name, { method: 'HEAD' });
    if (response.ok) return true;
    if (response.status === 404) return false;
    if (response.status === 405 || response.status === 501) {
      // Server without HEAD: ask for one byte instead.
      const probe = await this.fetch(name, { headers: { Range: 'bytes=0-0' } });
      await probe.body?.cancel();
      if (probe.ok) return true;
      if (probe.status === 404) return false;
      throw this.statusError(name, probe);
    }
    throw this.statusError(name, response);
  }

  async readText(name: string): Promise<string> {
    const response = await this.fetch(name);
    if (!response.ok) throw this.statusError(name, response);
    try {
      return await response.text();
    } catch (e) {
      throw new SourceError(`download of ${name} from ${this.url(name)} failed: ${errorText(e)}`, { cause: e });
    }
  }

  async size(name: string): Promise<number> {
    const head = await this.fetch(name, { method: 'HEAD' });
    if (head.ok) {
      const length = contentLength(head);
      if (length !== null) return length;
    } else if (head.status !== 405 && head.status !== 501) {
      throw this.statusError(name, head);
    }
    // No usable HEAD: the total in a one-byte range answer's Content-Range, or the full answer's length.
    const probe = await this.fetch(name, { headers: { Range: 'bytes=0-0' } });
    await probe.body?.cancel();
    if (!probe.ok) throw this.statusError(name, probe);
    const total = probe.status === 206 ? contentRangeTotal(probe) : contentLength(probe);
    if (total === null)
      throw new SourceError(`cannot determine the size of ${name} at ${this.url(name)}: no Content-Length`);
    return total;
  }

  async readRange(name: string, start: number, end: number, options?: StreamOptions): Promise<Uint8Array> {
    try {
      return await this.readRangeOnce(name, start, end, options, false);
    } catch (e) {
      // A body longer than its own Content-Length is a garbled answer, not a short file: seen once
      // in Chromium while a service worker filled its cache from the same URL. Ask once more,
      // past the HTTP cache; a second bad answer is the error.
      if (!(e instanceof SourceError && e.message.includes(MORE_BYTES_THAN_ANNOUNCED))) throw e;
      return await this.readRangeOnce(name, start, end, options, true);
    }
  }

  private async readRangeOnce(
    name: string,
    start: number,
    end: number,
    options: StreamOptions | undefined,
    bypassCache: boolean,
  ): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    const response = await this.fetch(name, {
      headers: { Range: `bytes=${start}-${end - 1}` },
      signal: options?.signal,
      // Node's fetch has no HTTP cache to bypass (and rejects cache modes it does not implement).
      ...(bypassCache && !isNode() ? { cache: 'no-store' as const } : {}),
    });
    if (response.status === 416) {
      await response.body?.cancel();
      throw new SourceError(
        `${name}: wanted bytes [${start}, ${end}) but the file is shorter (HTTP 416 from ${this.url(name)})`,
      );
    }
    if (!response.ok || !response.body) throw this.statusError(name, response);
    const what = `${name} from ${this.url(name)}`;
    try {
      if (response.status === 206) {
        const rangeStart = contentRangeStart(response);
        if (rangeStart !== start) {
          throw new SourceError(`${name}: asked for bytes from ${start}, server answered from ${rangeStart}`);
        }
        return await collectRange(
          readWebStream(response.body, what, contentLength(response), undefined, options?.signal),
          0,
          end - start,
        );
      }
      // Server ignored Range and sent the whole file: keep the wanted slice, cancel the rest.
      return await collectRange(
        readWebStream(response.body, what, identityLength(response), undefined, options?.signal),
        start,
        end,
      );
    } catch (e) {
      if (e instanceof SourceError && e.message.startsWith('wanted bytes')) {
        throw new SourceError(`${what}: ${e.message}`, { cause: e });
      }
      throw e;
    }
  }

  async *stream(name: string, onBytes?: OnBytes, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    const response = await this.fetch(name, { signal: options?.signal });
    if (!response.ok || !response.body) throw this.statusError(name, response);
    yield* readWebStream(
      response.body,
      `${name} from ${this.url(name)}`,
      identityLength(response),
      onBytes,
      options?.signal,
    );
  }
}

function contentLength(response: Response): number | null {
  const header = response.headers.get('content-length');
  if (header === null || !/^\d+$/.test(header.trim())) return null;
  return Number(header);
}

/** Content-Length counts encoded bytes; fetch hands us decoded ones, so it only bounds an unencoded body. */
function identityLength(response: Response): number | null {
  const encoding = response.headers.get('content-encoding');
  return encoding && encoding !== 'identity' ? null : contentLength(response);
}

function contentRangeStart(response: Response): number | null {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers.get('content-range')?.trim() ?? '');
  return m ? Number(m[1]) : null;
}

function contentRangeTotal(response: Response): number | null {
  const m = /^bytes \d+-\d+\/(\d+)$/.exec(response.headers.get('content-range')?.trim() ?? '');
  return m ? Number(m[1]) : null;
}

// ---------------------------------------------------------------------------------------------
// In-memory Blobs: files picked in a browser (File is a Blob) or built in tests.

export class BlobSource implements FileSource {
  constructor(
    private readonly files: Map<string, Blob>,
    readonly location = 'selected files',
  ) {}

  describe(name: string): string {
    return `${this.location}/${name}`;
  }

  private get(name: string): Blob {
    const blob = this.files.get(name);
    if (!blob) throw new SourceError(`${name} not found in ${this.location}`);
    return blob;
  }

  async exists(name: string): Promise<boolean> {
    return this.files.has(name);
  }

  async readText(name: string): Promise<string> {
    return this.get(name).text();
  }

  async size(name: string): Promise<number> {
    return this.get(name).size;
  }

  async readRange(name: string, start: number, end: number): Promise<Uint8Array> {
    const blob = this.get(name);
    if (end > blob.size)
      throw new SourceError(
        `${this.describe(name)}: wanted bytes [${start}, ${end}) but the file ends at ${blob.size}`,
      );
    return new Uint8Array(await blob.slice(start, end).arrayBuffer());
  }

  async *stream(name: string, onBytes?: OnBytes, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    const blob = this.get(name);
    yield* readWebStream(
      blob.stream() as ReadableStream<Uint8Array>,
      this.describe(name),
      blob.size,
      onBytes,
      options?.signal,
    );
  }
}

/** Files from `<input type=file webkitdirectory>` or drag-and-drop, keyed by base name. */
export function filesSource(files: Iterable<File>, location = 'selected files'): BlobSource {
  const map = new Map<string, Blob>();
  for (const file of files) map.set(file.name, file);
  return new BlobSource(map, location);
}

// ---------------------------------------------------------------------------------------------
// Resolving a spec string

export interface OpenSourceOptions {
  /** Overrides AGENTARK_HF_ENDPOINT / https://huggingface.co for repo ids. */
  hfEndpoint?: string;
  /** Bearer token for gated/private repos; defaults to the HF_TOKEN environment variable under Node. */
  hfToken?: string;
}

const HF_REPO_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$/;

/** `owner/name` or `owner/name@revision`: looks like a Hugging Face repo id (could also be a relative path). */
export function looksLikeHfRepoId(spec: string): boolean {
  return HF_REPO_ID.test(spec) && !spec.includes('..');
}

export function hfSource(repoIdWithRevision: string, options: OpenSourceOptions = {}): HttpSource {
  const [repoId, revision = 'main'] = repoIdWithRevision.split('@');
  const endpoint = (options.hfEndpoint ?? env('AGENTARK_HF_ENDPOINT') ?? 'https://huggingface.co').replace(/\/+$/, '');
  const token = options.hfToken ?? env('HF_TOKEN');
  const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
  return new HttpSource(`${endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/`, repoIdWithRevision, headers);
}

/** Defers a choice that needs I/O (is `a/b` a local directory or a repo id?) to the first call. */
class DeferredSource implements FileSource {
  private resolved: Promise<FileSource> | null = null;
  private settled: FileSource | null = null;

  constructor(
    readonly location: string,
    private readonly resolve: () => Promise<FileSource>,
    private readonly describeGuess: (name: string) => string,
  ) {}

  private source(): Promise<FileSource> {
    this.resolved ??= this.resolve().then((source) => (this.settled = source));
    return this.resolved;
  }

  describe(name: string): string {
    return this.settled ? this.settled.describe(name) : this.describeGuess(name);
  }
  async exists(name: string): Promise<boolean> {
    return (await this.source()).exists(name);
  }
  async readText(name: string): Promise<string> {
    return (await this.source()).readText(name);
  }
  async size(name: string): Promise<number> {
    return (await this.source()).size(name);
  }
  async readRange(name: string, start: number, end: number, options?: StreamOptions): Promise<Uint8Array> {
    return (await this.source()).readRange(name, start, end, options);
  }
  async *stream(name: string, onBytes?: OnBytes, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    yield* (await this.source()).stream(name, onBytes, options);
  }
}

async function isLocalDirectory(path: string): Promise<boolean> {
  if (!isNode()) return false;
  const { fs } = await loadNodeModules();
  try {
    return (await fs.promises.stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * `http(s)://…` → that base folder; `owner/name[@rev]` → a local directory of that name if one
 * exists (Node), else the Hugging Face repo; anything else → a local directory.
 */
export function openSource(spec: string, options: OpenSourceOptions = {}): FileSource {
  if (/^https?:\/\//i.test(spec)) return new HttpSource(spec);
  if (spec.startsWith('file://')) return new LocalDirectorySource(decodeURIComponent(new URL(spec).pathname));
  if (looksLikeHfRepoId(spec)) {
    if (!isNode()) return hfSource(spec, options);
    const hf = hfSource(spec, options);
    return new DeferredSource(
      spec,
      async () => ((await isLocalDirectory(spec)) ? new LocalDirectorySource(spec) : hf),
      (name) => hf.describe(name),
    );
  }
  return new LocalDirectorySource(spec);
}
