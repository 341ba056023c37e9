/**
 * The app's service worker (built into dist/sw.js by src/app/pwa/plugin.ts, which prepends
 * VERSION and PRECACHE): after the first visit the app, the embedded model, its adapter and the
 * shipped question sets and report are in the Cache Storage, so the app opens, loads its model and
 * chats offline.
 *
 * - install: every PRECACHE file into the cache of this build's VERSION (old builds' caches are
 *   deleted on activate);
 * - navigations: the network first (a new deployment wins), the cached app when it is unreachable;
 * - other same-origin GETs: the cache first (hashed assets, the model, the data), else the network,
 *   whose good answers are kept for next time. HEAD answers from the cache too, and a Range request
 *   (the model loader reads safetensors headers and tensors by byte range) gets its slice of the
 *   cached file as a 206: Cache.match ignores Range and would hand back the whole file each time;
 * - other origins (the Hugging Face Hub, a WebLLM CDN): untouched.
 */
/* global VERSION, PRECACHE */
const CACHE = `agentark-app-${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await Promise.all(
        PRECACHE.map(async (path) => {
          const url = new URL(path, self.registration.scope).href;
          // no-store: past the HTTP cache both ways. 'reload' writes its entry, and the page's range
          // reads of the same file in flight on the first visit then mixed with it (a 206 longer than
          // its Content-Length in Chromium).
          const res = await fetch(new Request(url, { cache: 'no-store' }));
          if (!res.ok) throw new Error(`precaching ${path}: HTTP ${res.status}`);
          await cache.put(url, res);
        }),
      );
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys())
        if (key.startsWith('agentark-app-') && key !== CACHE) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET' && req.method !== 'HEAD') return;
  const url = new URL(req.url);
  if (url.origin !== self.location.origin) return;
  event.respondWith(req.mode === 'navigate' ? navigation(req) : resource(req, url));
});

async function navigation(req) {
  try {
    return await fetch(req);
  } catch (e) {
    const cache = await caches.open(CACHE);
    const app =
      (await cache.match(new URL('./', self.registration.scope).href)) ??
      (await cache.match(new URL('index.html', self.registration.scope).href));
    if (app) return app;
    throw e;
  }
}

async function resource(req, url) {
  const cache = await caches.open(CACHE);
  const key = url.origin + url.pathname;
  const cached = await cache.match(key);
  if (cached) {
    if (req.method === 'HEAD') return new Response(null, { status: cached.status, headers: cached.headers });
    const range = req.headers.get('range');
    return range ? await rangeOf(cached, range) : cached;
  }
  const res = await fetch(req);
  if (req.method === 'GET' && res.status === 200 && !req.headers.has('range'))
    await cache.put(key, res.clone()).catch(() => {});
  return res;
}

/**
 * One `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a cached full response: a 206 with its
 * Content-Range, a 416 when it starts past the end; any other Range header (several ranges, other
 * units, an end before the start) gets the whole file, as HTTP lets a server answer one it ignores.
 */
async function rangeOf(full, header) {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '') || (m[1] !== '' && m[2] !== '' && Number(m[2]) < Number(m[1]))) return full;
  const body = await full.blob();
  const size = body.size;
  let start;
  let end; // exclusive
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1);
  }
  const headers = new Headers(full.headers);
  headers.delete('Content-Encoding'); // the cached body is already decoded
  if (start >= size || end <= start) {
    headers.set('Content-Range', `bytes */${size}`);
    headers.delete('Content-Length');
    return new Response(null, { status: 416, statusText: 'Range Not Satisfiable', headers });
  }
  headers.set('Content-Range', `bytes ${start}-${end - 1}/${size}`);
  headers.set('Content-Length', String(end - start));
  return new Response(body.slice(start, end), { status: 206, statusText: 'Partial Content', headers });
}
