/**
 * End-to-end harness: builds the app with Vite's JS API and serves it with `vite preview` on
 * 127.0.0.1 (random port), and launches Debian's Chromium through playwright-core with WebGPU on
 * the software adapter, a fresh profile and every non-local request blocked.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page, Route } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'e2e');
export const CHROMIUM = process.env.AGENTARK_CHROMIUM ?? '/usr/bin/chromium';

export function requireChromium(): void {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium was not found at ${CHROMIUM}. The end-to-end tests drive Debian's Chromium (with its SwiftShader WebGPU adapter): ` +
        'install it with `sudo apt-get install -y chromium` (or set AGENTARK_CHROMIUM to another Chromium binary).',
    );
  }
}

export interface ServedApp {
  url: string;
  close(): Promise<void>;
}

/**
 * `vite build` into a temporary folder, then `vite preview` of it on 127.0.0.1 with a free port.
 * The build runs with NODE_ENV=production, as `npm run build` does: vitest sets NODE_ENV=test, and
 * Vite then makes a development-flavoured build (import.meta.env.PROD false, dependencies' dev paths).
 */
export async function buildAndPreview(): Promise<ServedApp> {
  const { build, preview } = await import('vite');
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-e2e-dist-'));
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await build({
      root: ROOT,
      configFile: path.join(ROOT, 'vite.config.ts'),
      logLevel: 'error',
      build: { outDir, emptyOutDir: true },
    });
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
  const server = await preview({
    root: ROOT,
    configFile: path.join(ROOT, 'vite.config.ts'),
    logLevel: 'error',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: false },
  });
  const address = server.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('vite preview did not report a port');
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: async () => {
      await server.close();
      fs.rmSync(outDir, { recursive: true, force: true });
    },
  };
}

const LOCAL_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

export interface Browser {
  context: BrowserContext;
  /** Requests the browser tried to make to anything but localhost (all aborted). */
  blocked: string[];
  close(): Promise<void>;
}

/**
 * Chromium with WebGPU on the software adapter, exactly as in webgpu-on-cpu.md (`webgpu: false`
 * leaves out --enable-unsafe-webgpu, so no adapter is found). Every request to
 * a host other than 127.0.0.1/localhost is aborted. Requests to `corsOrigins` get CORS headers
 * added, as a model host like huggingface.co sends them.
 *
 * Routed launches block service workers (Playwright's `serviceWorkers: 'block'`): a service worker
 * answers the page's requests before page.route sees them, and these tests mean to see them all.
 *
 * `serviceWorkers: true` (the offline test): the app's service worker runs, and nothing is routed,
 * so the test exercises the browser's own service worker path rather than Playwright's request
 * interception; instead every host but localhost is made unresolvable (--host-resolver-rules):
 * nothing leaves the machine either way, but `blocked` stays empty.
 */
export async function launchBrowser(
  opts: { corsOrigins?: string[]; webgpu?: boolean; serviceWorkers?: boolean } = {},
): Promise<Browser> {
  requireChromium();
  const { chromium } = await import('playwright-core');
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-e2e-profile-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--headless'],
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu-sandbox',
      ...(opts.webgpu === false ? [] : ['--enable-unsafe-webgpu']),
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...(opts.serviceWorkers ? ['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost'] : []),
    ],
    viewport: { width: 1360, height: 900 },
    acceptDownloads: true,
    serviceWorkers: opts.serviceWorkers ? 'allow' : 'block',
  });
  const blocked: string[] = [];
  const cors = new Set(opts.corsOrigins ?? []);
  if (!opts.serviceWorkers)
    await context.route('**/*', async (route: Route) => {
      const url = new URL(route.request().url());
      if (url.protocol === 'data:' || url.protocol === 'blob:') return route.continue();
      if (!LOCAL_HOSTS.has(url.hostname)) {
        blocked.push(url.href);
        return route.abort('blockedbyclient');
      }
      if (!cors.has(url.origin)) return route.continue();
      const corsHeaders = {
        'access-control-allow-origin': '*',
        'access-control-allow-headers': '*',
        'access-control-allow-methods': 'GET, HEAD, OPTIONS',
        'access-control-expose-headers': 'Content-Length, Content-Range, Accept-Ranges, Content-Encoding',
        'cross-origin-resource-policy': 'cross-origin',
      };
      if (route.request().method() === 'OPTIONS') return route.fulfill({ status: 204, headers: corsHeaders });
      const response = await route.fetch();
      return route.fulfill({ response, headers: { ...response.headers(), ...corsHeaders } });
    });
  return {
    context,
    blocked,
    close: async () => {
      await context.close();
      fs.rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<void> {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: false });
}

/**
 * Waits until `check(arg)` holds in the page, however long the machine takes, up to a generous
 * bound; a timeout names what it was waiting for (and `describe`'s view of the page then).
 */
export async function waitInPage<A>(
  page: Page,
  what: string,
  check: (arg: A) => boolean,
  arg: A,
  opts: { timeoutMs?: number; describe?: () => Promise<string> } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 600_000;
  try {
    await page.waitForFunction(check as (arg: unknown) => boolean, arg as unknown, {
      timeout: timeoutMs,
      polling: 200,
    });
  } catch (e) {
    const state = opts.describe ? await opts.describe().catch(() => '') : '';
    throw new Error(
      `Waited ${Math.round(timeoutMs / 1000)} s for ${what}${state ? ` (${state})` : ''}: ${(e as Error).message.split('\n')[0]}`,
    );
  }
}
