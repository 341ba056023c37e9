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
 *   gets the whole cached file (allowed by HTTP; the model loader takes its slice);
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
          const res = await fetch(new Request(url, { cache: 'reload' }));
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
  if (cached)
    return req.method === 'HEAD' ? new Response(null, { status: cached.status, headers: cached.headers }) : cached;
  const res = await fetch(req);
  if (req.method === 'GET' && res.status === 200 && !req.headers.has('range'))
    await cache.put(key, res.clone()).catch(() => {});
  return res;
}
