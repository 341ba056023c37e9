/**
 * The app's service worker (src/app/pwa/service-worker.js) in Node, on stand-ins for the worker
 * globals: an in-memory Cache Storage and a network that can be switched off. Install precaches,
 * then offline: cached files, byte ranges sliced from them (seeded random ranges against the
 * bytes), HEAD, navigations and other origins.
 */
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { rng } from '../helpers/rng';

const SOURCE = fs.readFileSync(fileURLToPath(new URL('../../src/app/pwa/service-worker.js', import.meta.url)), 'utf8');
const ORIGIN = 'https://ark.example';
const SCOPE = `${ORIGIN}/app/`;

type Listener = (event: unknown) => void;
interface FetchEventStub {
  request: { method: string; url: string; mode: string; headers: Headers };
  respondWith(r: Promise<Response>): void;
}

/** The service worker loaded over `files` (path under the scope → body), with its network on or off. */
function loadWorker(files: Record<string, Uint8Array<ArrayBuffer> | string>, precache: string[]) {
  const listeners = new Map<string, Listener>();
  const stores = new Map<string, Map<string, Response>>();
  const network = { online: true, requests: [] as string[] };
  const caches = {
    open: async (name: string) => {
      if (!stores.has(name)) stores.set(name, new Map());
      const store = stores.get(name)!;
      return {
        put: async (key: string | Request, res: Response) => {
          store.set(typeof key === 'string' ? key : key.url, res);
        },
        match: async (key: string) => store.get(key)?.clone(),
      };
    },
    keys: async () => [...stores.keys()],
    delete: async (name: string) => stores.delete(name),
  };
  const fetchStub = async (input: Request | { url: string }) => {
    network.requests.push(input.url);
    if (!network.online) throw new TypeError('Failed to fetch');
    const url = new URL(input.url);
    const name = url.pathname.slice(new URL(SCOPE).pathname.length);
    const body = url.origin === ORIGIN ? files[name === '' ? 'index.html' : name] : undefined;
    if (body === undefined) return new Response('not found', { status: 404 });
    const length = typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    return new Response(body, { status: 200, headers: { 'Content-Length': String(length), 'X-From': 'network' } });
  };
  const self = {
    addEventListener: (type: string, fn: Listener) => listeners.set(type, fn),
    registration: { scope: SCOPE },
    location: { origin: ORIGIN },
    skipWaiting: async () => {},
    clients: { claim: async () => {} },
  };
  new Function('self', 'caches', 'fetch', 'VERSION', 'PRECACHE', SOURCE)(self, caches, fetchStub, 'v1', precache);

  const lifecycle = async (type: 'install' | 'activate') => {
    let done: Promise<unknown> = Promise.resolve();
    listeners.get(type)!({ waitUntil: (p: Promise<unknown>) => (done = p) });
    await done;
  };
  /** The worker's answer to a request, or null when it leaves the request to the browser. */
  const request = async (
    url: string,
    opts: { method?: string; mode?: string; headers?: Record<string, string> } = {},
  ): Promise<Response | null> => {
    let answer: Promise<Response> | null = null;
    const event: FetchEventStub = {
      request: { method: opts.method ?? 'GET', url, mode: opts.mode ?? 'cors', headers: new Headers(opts.headers) },
      respondWith: (r) => {
        answer = r;
      },
    };
    listeners.get('fetch')!(event);
    return answer ? await answer : null;
  };
  return { network, stores, lifecycle, request };
}

const bytes = (n: number, seed: number) => {
  const r = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
};

describe('the service worker', () => {
  const model = bytes(1031, 7); // not a round size
  const files = { 'index.html': '<!doctype html><title>ark</title>', 'assets/app.js': 'boot()', 'models/m.bin': model };
  const setUp = async () => {
    const sw = loadWorker(files, ['./', 'assets/app.js', 'models/m.bin']);
    await sw.lifecycle('install');
    await sw.lifecycle('activate');
    sw.network.online = false;
    sw.network.requests.length = 0;
    return sw;
  };

  it('precaches every listed file on install and fails the install on a missing one', async () => {
    const sw = await setUp();
    expect([...sw.stores.keys()]).toEqual(['agentark-app-v1']);
    expect([...sw.stores.get('agentark-app-v1')!.keys()].sort()).toEqual(
      [`${SCOPE}`, `${SCOPE}assets/app.js`, `${SCOPE}models/m.bin`].sort(),
    );
    const broken = loadWorker(files, ['./', 'missing.js']);
    await expect(broken.lifecycle('install')).rejects.toThrow(/precaching missing\.js: HTTP 404/);
  });

  it('answers offline from the cache: files, HEAD, navigations', async () => {
    const sw = await setUp();
    const js = await sw.request(`${SCOPE}assets/app.js?v=2`);
    expect(js!.status).toBe(200);
    expect(await js!.text()).toBe('boot()');
    const head = await sw.request(`${SCOPE}models/m.bin`, { method: 'HEAD' });
    expect(head!.status).toBe(200);
    expect(head!.headers.get('content-length')).toBe(String(model.byteLength));
    expect(await head!.text()).toBe('');
    const page = await sw.request(`${SCOPE}#chat`, { mode: 'navigate' });
    expect(await page!.text()).toBe(files['index.html']);
    expect(sw.network.requests).toEqual([`${SCOPE}#chat`]); // only the navigation tried the network first
    await expect(sw.request(`${SCOPE}assets/other.js`)).rejects.toThrow(/Failed to fetch/);
  });

  it('slices byte ranges out of the cached file (206 with Content-Range)', async () => {
    const sw = await setUp();
    const r = rng(11);
    const size = model.byteLength;
    const cases: [string, number, number][] = [
      ['bytes=0-0', 0, 1],
      ['bytes=0-7', 0, 8],
      [`bytes=${size - 1}-`, size - 1, size],
      ['bytes=-10', size - 10, size],
      [`bytes=-${size + 5}`, 0, size],
      [`bytes=1000-${size + 50}`, 1000, size],
    ];
    for (let i = 0; i < 20; i++) {
      const a = Math.floor(r() * size);
      const b = a + Math.floor(r() * (size - a));
      cases.push([`bytes=${a}-${b}`, a, b + 1]);
    }
    for (const [header, start, end] of cases) {
      const res = await sw.request(`${SCOPE}models/m.bin`, { headers: { Range: header } });
      expect(res!.status, header).toBe(206);
      expect(res!.headers.get('content-range'), header).toBe(`bytes ${start}-${end - 1}/${size}`);
      expect(res!.headers.get('content-length'), header).toBe(String(end - start));
      expect(new Uint8Array(await res!.arrayBuffer()), header).toEqual(model.slice(start, end));
    }
    expect(sw.network.requests).toEqual([]);
  });

  it('answers a range past the end with 416 and one it cannot serve with the whole file', async () => {
    const sw = await setUp();
    const size = model.byteLength;
    for (const header of [`bytes=${size}-`, `bytes=${size + 3}-${size + 9}`, 'bytes=-0']) {
      const res = await sw.request(`${SCOPE}models/m.bin`, { headers: { Range: header } });
      expect(res!.status, header).toBe(416);
      expect(res!.headers.get('content-range'), header).toBe(`bytes */${size}`);
    }
    for (const header of ['bytes=0-1,5-6', 'items=0-3', 'bytes=9-2', 'bytes=-']) {
      const res = await sw.request(`${SCOPE}models/m.bin`, { headers: { Range: header } });
      expect(res!.status, header).toBe(200);
      expect(new Uint8Array(await res!.arrayBuffer()), header).toEqual(model);
    }
  });

  it('leaves other origins and other methods to the browser', async () => {
    const sw = await setUp();
    expect(await sw.request('https://huggingface.co/x/resolve/main/config.json')).toBeNull();
    expect(await sw.request(`${SCOPE}assets/app.js`, { method: 'POST' })).toBeNull();
  });
});
