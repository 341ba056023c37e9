/**
 * The Evaluate page reproduces the shipped demo report, in Debian's Chromium with WebGPU on
 * SwiftShader: the app built with the real public/ (the embedded model, its shipped adapter, the
 * held-out questions and public/data/demo-report.json), opened without `?model=`.
 *
 * - the page starts from the report's own settings (system prompt, temperature, max tokens, seed,
 *   the sparse 5×2 debate with a vote, greedy students) and says so;
 * - on the first 20 held-out questions the greedy systems (single agent, the shipped student) agree
 *   with the report on every question, and the sampled single agent stays within sampling noise;
 * - the debate with those settings fits the model's context (no failed call), and a run whose calls
 *   fail ends as a warning with the count, not "Done".
 *
 * The self-correction probe (a second turn, which does not change the accuracy column) is left out
 * of the 20-question run to keep it short on a software adapter.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseEvalReport } from '../../src/eval/report';
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

const REPORT = path.join(ROOT, 'public', 'data', 'demo-report.json');
const ADAPTER_CARD = path.join(ROOT, 'public', 'models', 'default', 'adapter', 'agentark.json');
/** The shipped adapter's name (its row in the report). */
const shippedAdapter = () => (JSON.parse(fs.readFileSync(ADAPTER_CARD, 'utf8')) as { name: string }).name;
const hasDemo =
  fs.existsSync(REPORT) && fs.existsSync(path.join(ROOT, 'public', 'models', 'default', 'model.safetensors'));

describe.skipIf(!hasDemo)('the embedded demo as shipped: Evaluate reproduces its report, Chat fits its context', () => {
  let app: ServedApp | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const pageErrors: string[] = [];
  const status = async () =>
    `status: ${await page.locator('#eval-status').textContent()}; ${await page.locator('#eval-progress-label').textContent()}`;

  beforeAll(async () => {
    requireChromium();
    delete process.env.AGENTARK_PUBLIC_DIR;
    app = await buildAndPreview();
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it("starts from the report's own settings", async () => {
    await page.goto(`${app!.url}/#evaluate`);
    await page.locator('#model-badge.ok').waitFor({ timeout: 120_000 });
    await waitInPage(
      page,
      "the report's settings",
      () => !(document.querySelector('#eval-settings-origin') as HTMLElement).hidden,
      null,
    );
    await waitInPage(
      page,
      'the held-out questions',
      () => /demo-test\.jsonl/.test(document.querySelector('#eval-q-status')?.textContent ?? ''),
      null,
    );
    const report = parseEvalReport(fs.readFileSync(REPORT, 'utf8'));
    expect(await page.locator('#eval-max-tokens').inputValue()).toBe(String(report.settings.maxTokens));
    expect(Number(await page.locator('#eval-temperature').inputValue())).toBe(report.settings.temperature);
    expect(await page.locator('#eval-seed').inputValue()).toBe(String(report.settings.seed));
    expect(await page.locator('#eval-system').inputValue()).toMatch(/\S/);
    expect(await page.locator('#eval-greedy').isChecked()).toBe(true);
    expect(await page.locator('#eval-students-greedy').isChecked()).toBe(true);
    expect(await page.locator('#eval-debate').isChecked()).toBe(true);
    expect(await page.locator('#eval-agents').inputValue()).toBe('5');
    expect(await page.locator('#eval-aggregator').inputValue()).toBe('vote');
    expect(await page.locator('#eval-debate-format').inputValue()).toBe('small');
    expect(await page.locator('#eval-settings-origin').textContent()).toContain('Settings of the embedded report');
  });

  it('reproduces the report on the first 20 held-out questions (greedy exactly, sampled within noise)', async () => {
    await page.uncheck('#eval-debate');
    await page.uncheck('#eval-self-correction');
    await page.fill('#eval-limit', '20');
    await page.locator('#eval-limit').dispatchEvent('change');
    await page.click('#eval-run');
    await waitInPage(
      page,
      'the 20-question evaluation to finish',
      () => document.querySelector('#eval-status')?.getAttribute('data-done') === 'true',
      null,
      { describe: status },
    );
    expect(await page.locator('#eval-status').getAttribute('data-failed-calls')).toBe('0');
    const rows = await page.locator('#eval-compare-table tbody tr').evaluateAll((trs) =>
      trs.map((tr) => ({
        name: tr.getAttribute('data-system'),
        here: Number(tr.getAttribute('data-here')),
        report: Number(tr.getAttribute('data-report')),
        same: Number(tr.getAttribute('data-same')),
        n: Number(tr.getAttribute('data-n')),
      })),
    );
    console.log('demo report vs this run (first 20 held-out questions):', JSON.stringify(rows));
    const greedy = rows.filter((r) => /greedy/.test(r.name ?? ''));
    expect(greedy.map((r) => r.name).sort(), 'the greedy systems compared').toEqual(
      ['single agent (base, greedy)', shippedAdapter()].sort(),
    );
    for (const r of greedy) {
      expect(r.n).toBe(20);
      expect(r.same, `${r.name}: greedy decoding agrees with the report on every question`).toBe(20);
      expect(r.here).toBe(r.report);
    }
    const sampled = rows.filter((r) => !greedy.includes(r));
    expect(sampled.map((r) => r.name)).toEqual(['single agent (base, T 0.7)']);
    // Two binomial(20, p) counts differ by more than 6 in under 5% of runs for any p.
    for (const r of sampled)
      expect(Math.abs(r.here - r.report), `${r.name}: ${r.here} vs ${r.report} of 20`).toBeLessThanOrEqual(6);
    await page.locator('#eval-compare').scrollIntoViewIfNeeded();
    await screenshot(page, 'evaluate-vs-report');
  }, 1_800_000);

  it("the report's debate fits the context: no failed call", async () => {
    await page.click('#eval-settings-reset');
    await page.uncheck('#eval-single');
    await page.uncheck('#eval-greedy');
    await page.uncheck('#eval-self-correction');
    for (const s of await page.locator('input[name=eval-student]').all()) await s.uncheck();
    expect(await page.locator('#eval-debate').isChecked()).toBe(true);
    await page.fill('#eval-limit', '2');
    await page.locator('#eval-limit').dispatchEvent('change');
    await page.click('#eval-run');
    await waitInPage(
      page,
      'the 2-question debate evaluation to finish',
      () => document.querySelector('#eval-status')?.getAttribute('data-done') === 'true',
      null,
      { describe: status },
    );
    expect(await page.locator('#eval-status').getAttribute('data-failed-calls')).toBe('0');
    expect(await page.locator('#eval-status').textContent()).toMatch(/^Done in/);
  }, 1_800_000);

  it('a run with failed calls ends as a warning with their count', async () => {
    // A system prompt longer than the context makes every call fail.
    await page.check('#eval-greedy');
    await page.uncheck('#eval-debate');
    await page.fill('#eval-system', 'Think. '.repeat(400));
    await page.click('#eval-run');
    await waitInPage(
      page,
      'the failing evaluation to end',
      () => document.querySelector('#eval-status')?.getAttribute('data-done') === 'true',
      null,
      { describe: status },
    );
    expect(await page.locator('#eval-status').getAttribute('data-failed-calls')).toBe('2');
    expect(await page.locator('#eval-status').getAttribute('data-tone')).toBe('warn');
    expect(await page.locator('#eval-status').textContent()).toMatch(/with 2 failed calls/);
  }, 600_000);

  it('chats one question at a time on the 384-position model, with the answer marker shown as an answer', async () => {
    await page.click('#tab-chat');
    expect(
      await page.locator('#chat-single').isChecked(),
      'single-question mode is the default for contexts <= 512',
    ).toBe(true);
    await page.fill('#chat-temperature', '0');
    for (const q of [
      'A box holds 4 pens. How many pens are in 2 boxes?',
      'Tom has 2 apples and buys 3 more. How many apples does he have?',
      'Ann had 9 stamps and gave away 4. How many are left?',
    ]) {
      await page.fill('#chat-input', q);
      await page.press('#chat-input', 'Enter');
      await waitInPage(
        page,
        `the reply to "${q}"`,
        () => document.querySelector('#chat-log .msg.assistant:last-child')?.getAttribute('data-finish') != null,
        null,
      );
      expect(await page.locator('#chat-log .msg.assistant').last().getAttribute('data-finish')).not.toBe('error');
    }
    const header = await page.locator('#chat-log .msg.assistant header').last().textContent();
    expect(header).toContain(`adapter ${shippedAdapter()}`);
    const replies = await page.locator('#chat-log .msg.assistant .content').allInnerTexts();
    expect(await page.locator('#chat-log .msg.assistant .content h4').count(), '"#### n" is not a heading').toBe(0);
    expect(
      replies.some((t) => /Answer: \S/.test(t)),
      replies.join(' | '),
    ).toBe(true);
    await screenshot(page, 'demo-chat-single');
  }, 600_000);

  it('raised no page errors and reached nothing beyond localhost', () => {
    expect(pageErrors).toEqual([]);
    expect(browser!.blocked).toEqual([]);
  });
});
