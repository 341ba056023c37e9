/**
 * Downloaded model files kept in the browser's Cache Storage, one cache per model
 * (`agentark-model:<location>`), so a model downloads once and then loads offline.
 *
 * CachedSource wraps any FileSource: bodies come from the cache when present; otherwise they are
 * fetched and streamed into the cache while being read (no second copy in memory). A manifest
 * entry records each file's size and which optional files are absent; after a complete load it
 * lets the loader answer every question from the cache without touching the network.
 */
import type { FileSource, OnBytes, StreamOptions } from '../formats/source';

export const MODEL_CACHE_PREFIX = 'agentark-model:';
/** Cache keys must be http(s) URLs; this one never leaves the browser. */
const MANIFEST_KEY = 'https://agentark.invalid/manifest.json';

export interface CacheManifest {
  location: string;
  /** Files present: name → size in bytes (-1 when only their existence is known). */
  files: Record<string, number>;
  /** Optional files the source does not have. */
  absent: string[];
  /** Set after a load that read everything it needed. */
  complete: boolean;
  savedAt: string;
}

export interface CachedModelInfo {
  cacheName: string;
  location: string;
  bytes: number;
  files: number;
  complete: boolean;
  savedAt: string | null;
}

export function cacheAvailable(): boolean {
  return typeof caches !== 'undefined';
}

export class CachedSource implements FileSource {
  readonly location: string;
  readonly cacheName: string;
  private cachePromise: Promise<Cache> | null = null;
  private manifest: CacheManifest | null = null;
  private manifestLoaded: Promise<void> | null = null;
  private writes: Promise<unknown>[] = [];

  constructor(private readonly inner: FileSource) {
    this.location = inner.location;
    this.cacheName = MODEL_CACHE_PREFIX + inner.location;
  }

  describe(name: string): string {
    return this.inner.describe(name);
  }

  private cache(): Promise<Cache> {
    this.cachePromise ??= caches.open(this.cacheName);
    return this.cachePromise;
  }

  private async state(): Promise<CacheManifest> {
    this.manifestLoaded ??= (async () => {
      const hit = await (await this.cache()).match(MANIFEST_KEY);
      const saved = hit ? ((await hit.json().catch(() => null)) as CacheManifest | null) : null;
      this.manifest = saved ?? {
        location: this.location,
        files: {},
        absent: [],
        complete: false,
        savedAt: new Date().toISOString(),
      };
    })();
    await this.manifestLoaded;
    return this.manifest!;
  }

  private async hit(name: string): Promise<Response | undefined> {
    return (await this.cache()).match(this.inner.describe(name));
  }

  private async note(name: string, size: number | null): Promise<void> {
    const m = await this.state();
    if (size === null) {
      if (!m.absent.includes(name)) m.absent.push(name);
      delete m.files[name];
    } else {
      if (size >= 0 || !(name in m.files)) m.files[name] = size;
      m.absent = m.absent.filter((n) => n !== name);
    }
  }

  /** Writes the manifest; `complete` after a successful load. */
  async save(complete: boolean): Promise<void> {
    await Promise.allSettled(this.writes);
    const m = await this.state();
    m.complete = complete;
    m.savedAt = new Date().toISOString();
    await (await this.cache()).put(
      MANIFEST_KEY,
      new Response(JSON.stringify(m), { headers: { 'content-type': 'application/json' } }),
    );
  }

  async exists(name: string): Promise<boolean> {
    const m = await this.state();
    if (name in m.files) return true;
    if (m.absent.includes(name)) return false;
    if (await this.hit(name)) return true;
    const found = await this.inner.exists(name);
    await this.note(name, found ? -1 : null);
    return found;
  }

  async readText(name: string): Promise<string> {
    const cached = await this.hit(name);
    if (cached) return cached.text();
    const text = await this.inner.readText(name);
    const bytes = new TextEncoder().encode(text).length;
    this.writes.push((await this.cache()).put(this.inner.describe(name), new Response(text)).catch(() => {}));
    await this.note(name, bytes);
    return text;
  }

  async size(name: string): Promise<number> {
    const m = await this.state();
    const known = m.files[name];
    if (known !== undefined && known >= 0) return known;
    const cached = await this.hit(name);
    if (cached) return (await cached.blob()).size;
    const size = await this.inner.size(name);
    await this.note(name, size);
    return size;
  }

  async readRange(name: string, start: number, end: number, options?: StreamOptions): Promise<Uint8Array> {
    const cached = await this.hit(name);
    if (!cached) return this.inner.readRange(name, start, end, options);
    const blob = await cached.blob();
    if (end > blob.size)
      throw new Error(
        `${this.describe(name)} (cached): wanted bytes [${start}, ${end}) but the file ends at ${blob.size}`,
      );
    return new Uint8Array(await blob.slice(start, end).arrayBuffer());
  }

  async *stream(name: string, onBytes?: OnBytes, options?: StreamOptions): AsyncGenerator<Uint8Array> {
    const cached = await this.hit(name);
    if (cached) {
      const blob = await cached.blob();
      const reader = (blob.stream() as ReadableStream<Uint8Array>).getReader();
      let received = 0;
      try {
        for (;;) {
          options?.signal?.throwIfAborted();
          const { done, value } = await reader.read();
          if (done) break;
          received += value.length;
          onBytes?.(received, blob.size);
          yield value;
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
      return;
    }
    // Not cached: read from the source and write the same chunks into the cache as they pass.
    const cache = await this.cache();
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    const writer = pipe.writable.getWriter();
    const put = cache.put(
      this.inner.describe(name),
      new Response(pipe.readable, { headers: { 'content-type': 'application/octet-stream' } }),
    );
    let caching = true;
    put.catch(() => {
      caching = false; // quota exceeded or similar: keep loading, just without the cache
    });
    let received = 0;
    let finished = false;
    try {
      for await (const chunk of this.inner.stream(name, onBytes, options)) {
        received += chunk.length;
        if (caching) {
          await writer.ready;
          writer.write(chunk).catch(() => {});
        }
        yield chunk;
      }
      finished = true;
    } finally {
      if (finished) {
        await writer.close().catch(() => {});
        await put.then(
          () => this.note(name, received),
          () => {},
        );
      } else {
        await writer.abort(new Error('download interrupted')).catch(() => {});
        await put.catch(() => {});
      }
    }
  }
}

/** Every model cache with its size, newest first. */
export async function listCachedModels(): Promise<CachedModelInfo[]> {
  if (!cacheAvailable()) return [];
  const out: CachedModelInfo[] = [];
  for (const cacheName of await caches.keys()) {
    if (!cacheName.startsWith(MODEL_CACHE_PREFIX)) continue;
    const cache = await caches.open(cacheName);
    const hit = await cache.match(MANIFEST_KEY);
    const manifest = hit ? ((await hit.json().catch(() => null)) as CacheManifest | null) : null;
    let bytes = 0;
    let files = 0;
    for (const req of await cache.keys()) {
      if (req.url === MANIFEST_KEY) continue;
      const res = await cache.match(req);
      if (!res) continue;
      bytes += (await res.blob()).size;
      files++;
    }
    out.push({
      cacheName,
      location: manifest?.location ?? cacheName.slice(MODEL_CACHE_PREFIX.length),
      bytes,
      files,
      complete: manifest?.complete ?? false,
      savedAt: manifest?.savedAt ?? null,
    });
  }
  return out.sort((a, b) => (b.savedAt ?? '').localeCompare(a.savedAt ?? ''));
}

export async function deleteCachedModel(cacheName: string): Promise<boolean> {
  if (!cacheAvailable() || !cacheName.startsWith(MODEL_CACHE_PREFIX)) return false;
  return caches.delete(cacheName);
}
