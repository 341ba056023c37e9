/**
 * Phones: every page at 375 × 800 in Debian's Chromium, with the embedded model loaded (so the
 * pages hold their real content: the distillation counts, the demo report, the adapter list).
 * Nothing scrolls the page sideways; a table wider than its card scrolls inside the card (never
 * clipped); the tab bar fits.
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

const PAGES = ['chat', 'models', 'teach', 'train', 'evaluate', 'bench', 'device'];
const hasDemo = fs.existsSync(path.join(ROOT, 'public', 'models', 'default', 'config.json'));

/** What sticks out at the current page: the document's overflow, and tables neither fitting nor in a scroller. */
async function overflow(page: Page): Promise<{ docWidth: number; viewport: number; offenders: string[] }> {
  return page.evaluate(() => {
    const viewport = window.innerWidth;
    const offenders: string[] = [];
    const panel = document.querySelector('[role=tabpanel]:not([hidden])')!;
    const describe = (el: Element) => {
      const cls = el.className && typeof el.className === 'string' ? `.${el.className.split(' ').join('.')}` : '';
      return `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${cls}`;
    };
    for (const el of [...panel.querySelectorAll('*'), ...document.querySelectorAll('header *, nav *')]) {
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height) continue;
      // Inside a horizontal scroller, sticking out of the viewport is fine (it scrolls there).
      let scroller: Element | null = el.parentElement;
      let scrolled = false;
      while (scroller && scroller !== document.body) {
        const ox = getComputedStyle(scroller).overflowX;
        if (ox === 'auto' || ox === 'scroll') {
          scrolled = true;
          break;
        }
        scroller = scroller.parentElement;
      }
      if (!scrolled && (r.right > viewport + 1 || r.left < -1))
        offenders.push(`${describe(el)} [${Math.round(r.left)}, ${Math.round(r.right)}]`);
    }
    // A table wider than its box must be able to scroll (not clipped by overflow: hidden).
    for (const t of panel.querySelectorAll('table')) {
      let box: Element | null = t;
      let ok = false;
      while (box && box !== document.body) {
        const ox = getComputedStyle(box).overflowX;
        if (ox === 'auto' || ox === 'scroll') {
          ok = true;
          break;
        }
        if (ox === 'hidden' || ox === 'clip') break;
        box = box.parentElement;
      }
      const r = t.getBoundingClientRect();
      if (!ok && r.width > viewport)
        offenders.push(`${describe(t)} is ${Math.round(r.width)} px wide and cannot scroll`);
    }
    return {
      docWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
      viewport,
      offenders: offenders.slice(0, 10),
    };
  });
}

describe.skipIf(!hasDemo)('phones: every page at 375 × 800', () => {
  let app: ServedApp | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    requireChromium();
    delete process.env.AGENTARK_PUBLIC_DIR;
    app = await buildAndPreview();
    browser = await launchBrowser();
    page = await browser.context.newPage();
    await page.setViewportSize({ width: 375, height: 800 });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${app!.url}/#chat`);
    await page.locator('#model-badge.ok').waitFor({ timeout: 120_000 });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('the tab bar fits in two rows at most', async () => {
    const box = await page.locator('nav.tabs').boundingBox();
    expect(box!.width).toBeLessThanOrEqual(375);
    const tabHeight = (await page.locator('#tab-chat').boundingBox())!.height;
    expect(box!.height).toBeLessThanOrEqual(2 * tabHeight + 4);
  });

  for (const id of PAGES) {
    it(`${id}: nothing scrolls the page sideways`, async () => {
      await page.click(`#tab-${id}`);
      if (id === 'train')
        await waitInPage(page, 'the example training set', () => !!document.querySelector('#train-counts-table'), null);
      if (id === 'evaluate')
        await waitInPage(page, 'the embedded report', () => !!document.querySelector('#eval-table'), null);
      const o = await overflow(page);
      await screenshot(page, `phone-${id}`);
      expect(o.offenders, `elements sticking out of the 375 px page on ${id}`).toEqual([]);
      expect(o.docWidth, `document width on ${id}`).toBeLessThanOrEqual(o.viewport);
    });
  }

  it('raised no page errors', () => {
    expect(pageErrors).toEqual([]);
  });
});
