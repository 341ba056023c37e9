/**
 * Installable and offline, in Debian's Chromium: the production build (with the real public/: the
 * embedded model and data) is opened once, its service worker precaches the app and the model; then
 * the server is shut down and the browser goes offline, the page reloads, loads the model and chats.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildAndPreview,
  launchBrowser,
  requireChromium,
  ROOT,
  screenshot,
  waitInPage,
  type Browser,
  type ServedApp,
} from './harness';

const hasDemo = fs.existsSync(path.join(ROOT, 'public', 'models', 'default', 'config.json'));

describe.skipIf(!hasDemo)('installable and offline after the first visit', () => {
  let app: ServedApp | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const pageErrors: string[] = [];
  const state = async () =>
    page.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration();
      const models = document.querySelector('#model-load-status')?.textContent ?? '';
      return `model: ${models}; service worker: ${reg?.active?.state ?? reg?.installing?.state ?? 'none'}, controller ${!!navigator.serviceWorker.controller}`;
    });

  beforeAll(async () => {
    requireChromium();
    delete process.env.AGENTARK_PUBLIC_DIR;
    app = await buildAndPreview();
    browser = await launchBrowser({ serviceWorkers: true });
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('has a web app manifest with icons', async () => {
    await page.goto(`${app!.url}/#chat`);
    const href = await page.locator('link[rel=manifest]').getAttribute('href');
    const manifest = await page.evaluate(async (h) => (await fetch(h!)).json(), href);
    expect(manifest).toMatchObject({ name: 'AgentArk Web', start_url: './', display: 'standalone' });
    const sizes = (manifest.icons as { sizes: string; type: string; src: string }[]).map((i) => i.sizes);
    expect(sizes).toEqual(expect.arrayContaining(['192x192', '512x512']));
    for (const icon of manifest.icons as { src: string; type: string }[]) {
      const ok = await page.evaluate(async (src) => {
        const r = await fetch(src);
        return (
          r.ok && (r.headers.get('content-type') ?? '').startsWith('image/') && (await r.arrayBuffer()).byteLength > 100
        );
      }, icon.src);
      expect(ok, icon.src).toBe(true);
    }
  });

  it('precaches the app and the embedded model on the first visit', async () => {
    await waitInPage(page, 'the embedded model to load', () => !!document.querySelector('#model-badge.ok'), null, {
      describe: state,
    });
    // The worker installs (precaching everything) and activates, and clients.claim() makes it
    // control this page without a reload.
    await page.evaluate(async () => {
      await navigator.serviceWorker.ready;
    });
    await waitInPage(page, 'the service worker to control the page', () => !!navigator.serviceWorker.controller, null, {
      describe: state,
    });
    const cached = await page.evaluate(async () => {
      const names = (await caches.keys()).filter((k) => k.startsWith('agentark-app-'));
      const urls = names.length
        ? (await (await caches.open(names[0]!)).keys()).map((r) => new URL(r.url).pathname)
        : [];
      return { names, urls };
    });
    expect(cached.names).toHaveLength(1);
    const precache = JSON.parse(
      /const PRECACHE = (\[.*\]);/.exec(await (await fetch(`${app!.url}/sw.js`)).text())![1]!,
    ) as string[];
    expect(cached.urls.sort()).toEqual(precache.map((f) => new URL(f, `${app!.url}/`).pathname).sort());
    const modelFiles = (dir: string): string[] =>
      fs
        .readdirSync(path.join(ROOT, 'public', dir), { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? modelFiles(`${dir}/${e.name}`) : [`/${dir}/${e.name}`]));
    // Every file of the embedded model the app fetches (not its model card or training log) and the
    // shipped question sets and report the app lists at start (public/data/*.jsonl, *.json).
    const needed = [
      ...modelFiles('models/default').filter((f) => !/\.(md|txt)$|\/agentark\.json$/.test(f)),
      ...fs
        .readdirSync(path.join(ROOT, 'public', 'data'))
        .filter((f) => /\.(jsonl|json)$/.test(f))
        .map((f) => `/data/${f}`),
    ];
    expect(needed).toEqual(expect.arrayContaining(['/models/default/model.safetensors', '/data/demo-report.json']));
    expect(cached.urls).toEqual(expect.arrayContaining(['/', '/manifest.webmanifest', ...needed]));
    expect(
      cached.urls.some((u) => /^\/assets\/worker-.*\.js$/.test(u)),
      'the engine worker',
    ).toBe(true);
  }, 900_000);

  it('reloads with the server gone and the browser offline, loads the model and chats', async () => {
    await app!.close();
    app = null;
    await browser!.context.setOffline(true);
    await page.reload();
    await waitInPage(
      page,
      'the embedded model to load offline',
      () => !!document.querySelector('#model-badge.ok'),
      null,
      { describe: state },
    );
    expect(await page.evaluate(() => navigator.onLine)).toBe(false);
    expect(await page.evaluate(() => !!navigator.serviceWorker.controller && crossOriginIsolated)).toBe(true);
    // The model loader reads by byte range: the worker slices the cached file (a 206, not the whole file).
    const slice = await page.evaluate(async () => {
      const r = await fetch('models/default/model.safetensors', { headers: { Range: 'bytes=8-15' } });
      return {
        status: r.status,
        range: r.headers.get('content-range'),
        bytes: [...new Uint8Array(await r.arrayBuffer())],
      };
    });
    const model = fs.readFileSync(path.join(ROOT, 'public', 'models', 'default', 'model.safetensors'));
    expect(slice).toEqual({ status: 206, range: `bytes 8-15/${model.byteLength}`, bytes: [...model.subarray(8, 16)] });
    await page.fill('#chat-temperature', '0');
    await page.fill('#chat-max-tokens', '16');
    await page.fill('#chat-input', 'Tom has 2 apples and buys 3 more. How many apples does he have?');
    await page.press('#chat-input', 'Enter');
    await waitInPage(
      page,
      'the offline chat reply',
      () => document.querySelector('#chat-log .msg.assistant:last-child')?.getAttribute('data-finish') != null,
      null,
    );
    const reply = page.locator('#chat-log .msg.assistant').last();
    expect(await reply.getAttribute('data-finish')).not.toBe('error');
    expect(((await reply.locator('.content').textContent()) ?? '').trim()).toMatch(/\S/);
    await screenshot(page, 'offline-chat');
  }, 600_000);

  it('raised no page errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
