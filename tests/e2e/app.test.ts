/**
 * The web app end to end, in Debian's Chromium with WebGPU on SwiftShader: the built app served by
 * `vite preview`, a tiny random Qwen2 checkpoint served from another localhost port (with CORS,
 * like the Hub) and opened through `?model=`, and every request outside localhost blocked.
 *
 * Screenshots go to test-artifacts/e2e/.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTrajectoryLine } from '../../src/teach/trajectory';
import { serveDirectory, writeTinyModel, type ServedDirectory } from '../helpers/tiny-model';
import {
  ARTIFACTS,
  buildAndPreview,
  launchBrowser,
  requireChromium,
  screenshot,
  waitInPage,
  type Browser,
  type ServedApp,
} from './harness';

const XSS = '<img src=x onerror=alert(1)>';

describe('web app in Chromium (WebGPU on the software adapter)', () => {
  let modelDir = '';
  let model: ServedDirectory | null = null;
  let app: ServedApp | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];
  const timings: Record<string, number> = {};
  const lap = (name: string, t0: number) => (timings[name] = Math.round(performance.now() - t0));

  beforeAll(async () => {
    requireChromium();
    const t0 = performance.now();
    modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-e2e-model-'));
    writeTinyModel(modelDir, { arch: 'qwen2', dtype: 'F32' });
    // Room for the debate's round-2 prompts (the tiny tokenizer is close to one token per byte).
    const configPath = path.join(modelDir, 'config.json');
    const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(configPath, JSON.stringify({ ...config, max_position_embeddings: 4096 }, null, 2));
    model = await serveDirectory(modelDir);
    app = await buildAndPreview();
    lap('build+preview', t0);
    browser = await launchBrowser({ corsOrigins: [model.url] });
    page = await browser.context.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await model?.close();
    if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
    if (Object.keys(timings).length) console.log('e2e timings (ms):', JSON.stringify(timings));
  });

  it('opens cross-origin isolated and the device page shows the WebGPU adapter', async () => {
    const t0 = performance.now();
    await page.goto(`${app!.url}/?model=${encodeURIComponent(`${model!.url}/`)}#device`);
    expect(await page.evaluate(() => self.crossOriginIsolated)).toBe(true);
    const name = page.locator('#adapter-name');
    await name.waitFor({ timeout: 30_000 });
    const adapterName = (await name.textContent())?.trim() ?? '';
    expect(adapterName).toMatch(/\S/);
    expect(adapterName).not.toBe('unknown adapter');
    const features = await page.locator('#adapter-features').textContent();
    expect(features).toContain('shader-f16');
    expect(features).toContain('subgroups');
    expect(await page.locator('.limits tbody tr').count()).toBeGreaterThan(10);
    lap('device', t0);
    await screenshot(page, 'device');
  });

  it('loads the ?model= checkpoint with byte progress and keeps it in Cache Storage', async () => {
    const t0 = performance.now();
    await page.click('#tab-models');
    await page.locator('#model-status[data-state=loaded]').waitFor({ timeout: 90_000 });
    lap('model load', t0);
    const bytes = await page
      .locator('.page-models progress')
      .evaluate((p) => ({ done: Number(p.getAttribute('data-bytes')), total: Number(p.getAttribute('data-total')) }));
    expect(bytes.total).toBe(fs.statSync(path.join(modelDir, 'model.safetensors')).size);
    expect(bytes.done).toBe(bytes.total);
    await expect.poll(() => page.locator('#cache-table tbody tr').count(), { timeout: 10_000 }).toBe(1);
    expect(await page.locator('#cache-table').textContent()).toContain(model!.url);
    await expect.poll(() => page.locator('#model-badge').textContent()).toContain('127.0.0.1');
    await screenshot(page, 'models');
  });

  it('streams a chat reply token by token and reports tokens/s', async () => {
    const t0 = performance.now();
    await page.click('#tab-chat');
    await page.fill('#chat-max-tokens', '24');
    await page.fill('#chat-seed', '7');
    // Record every step of the reply as it arrives: the delta counter and the rendered text.
    await page.evaluate(() => {
      const w = window as unknown as { __steps: { deltas: number; text: number; streaming: boolean }[] };
      w.__steps = [];
      new MutationObserver(() => {
        const msg = document.querySelector<HTMLElement>('#chat-log .msg.assistant:last-of-type');
        if (!msg) return;
        w.__steps.push({
          deltas: Number(msg.dataset.deltas ?? 0),
          text: msg.querySelector('.content')?.textContent?.length ?? 0,
          streaming: msg.classList.contains('streaming'),
        });
      }).observe(document.getElementById('chat-log')!, {
        subtree: true,
        childList: true,
        attributes: true,
        characterData: true,
      });
    });
    await page.fill('#chat-input', 'Hello! What is 2 + 3?');
    await page.press('#chat-input', 'Enter');
    const reply = page.locator('#chat-log .msg.assistant').last();
    await reply.waitFor();
    await expect.poll(() => reply.getAttribute('data-finish'), { timeout: 60_000 }).not.toBeNull();
    lap('chat reply', t0);
    const steps = await page.evaluate(
      () => (window as unknown as { __steps: { deltas: number; text: number; streaming: boolean }[] }).__steps,
    );
    const streamingDeltas = new Set(steps.filter((s) => s.streaming && s.deltas > 0).map((s) => s.deltas));
    const streamingTexts = new Set(steps.filter((s) => s.streaming && s.text > 0).map((s) => s.text));
    expect(streamingDeltas.size, 'tokens arrive one by one').toBeGreaterThanOrEqual(3);
    expect(streamingTexts.size, 'the reply grows on screen while streaming').toBeGreaterThanOrEqual(2);
    expect(await page.locator('#chat-stats').textContent()).toMatch(/\d+ tokens · [\d.]+ tokens\/s/);
    await screenshot(page, 'chat');
  });

  it("the Device page lists the autotuner's kernel choices for the chatted model, with their timings", async () => {
    await page.click('#tab-device');
    const rows = page.locator('#kernel-choices tbody tr');
    await expect.poll(() => rows.count(), { timeout: 30_000 }).toBeGreaterThan(0);
    const text = (await page.locator('#kernel-choices').textContent()) ?? '';
    // The prompt's prefill ran GEMMs and the reply's decode steps GEMVs: both were timed here.
    expect(text).toContain('gemm');
    expect(text).toContain('gemv');
    expect(text).toMatch(/register [\d.]+ ms, tiled [\d.]+ ms/);
    expect(await page.locator('#kernel-choices tbody tr[data-source=tuned]').count()).toBe(await rows.count());
    expect(await page.locator('#kernel-tuning-time').textContent()).toMatch(/[\d.]+ s spent timing candidates/);
    await screenshot(page, 'device-kernels');
    await page.click('#tab-chat');
  });

  it('shows an XSS attempt as inert text (Markdown and math still render)', async () => {
    const requests: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    await page.fill('#chat-max-tokens', '8');
    await page.fill('#chat-input', `${XSS} and **bold** $x^2$`);
    await page.click('#chat-send');
    const reply = page.locator('#chat-log .msg.assistant').last();
    await expect.poll(() => reply.getAttribute('data-finish'), { timeout: 60_000 }).not.toBeNull();
    const user = page.locator('#chat-log .msg.user').last();
    expect(await user.locator('.content').textContent()).toContain(XSS);
    expect(await user.locator('strong').textContent()).toBe('bold');
    expect(await user.locator('.katex').count()).toBe(1);
    expect(await page.locator('#chat-log img').count()).toBe(0);
    expect(await page.evaluate(() => document.querySelectorAll('[onerror]').length)).toBe(0);
    await page.waitForTimeout(300);
    expect(dialogs).toEqual([]);
    expect(requests.filter((u) => /\/x$/.test(u))).toEqual([]);
    await screenshot(page, 'chat-xss');
  });

  it('runs a 2-agent × 2-round debate on the local model and downloads the trajectories', async () => {
    const t0 = performance.now();
    await page.click('#tab-teach');
    // WebLLM's prebuilt list loads in the worker without touching the network; f32 models only here.
    await page.check('input[name=teach-engine][value=webllm]');
    await expect.poll(() => page.locator('#teach-webllm option').count(), { timeout: 30_000 }).toBeGreaterThan(1);
    const webllmModels = await page.locator('#teach-webllm option').allTextContents();
    expect(webllmModels.every((m) => /f32/.test(m))).toBe(true);
    await page.check('input[name=teach-engine][value=local]');
    await page.check('input[name=teach-source][value=file]');
    const questions = [
      {
        question: 'Tom has 2 apples and buys 3 more. How many apples does he have?',
        answer: 'He has 2 + 3 = 5 apples.\n#### 5',
      },
      { question: 'A box holds 4 pens. How many pens are in 2 boxes?', answer: '4 * 2 = 8\n#### 8' },
    ];
    await page.setInputFiles('#teach-file', {
      name: 'questions.jsonl',
      mimeType: 'application/json',
      buffer: Buffer.from(questions.map((q) => JSON.stringify(q)).join('\n')),
    });
    await expect.poll(() => page.locator('.page-teach .status').first().textContent()).toContain('2 questions');
    await page.fill('#teach-limit', '2');
    await page.fill('#teach-agents', '2');
    await page.fill('#teach-rounds', '2');
    await page.selectOption('#teach-aggregator', 'llm');
    // A long-context model starts on the standard format; the small one (answers only, question
    // restated) is one choice away.
    expect(await page.locator('#teach-format').inputValue()).toBe('standard');
    await page.selectOption('#teach-format', 'small');
    await page.fill('#teach-max-tokens', '6');
    await page.fill('#teach-seed', '1');
    await page.click('#teach-run');
    await page.locator('#teach-status[data-done=true]').waitFor({ timeout: 120_000 });
    lap('debate', t0);
    expect(await page.locator('#teach-status').textContent()).toMatch(/2 of 2 debated/);
    // Both questions, each with 2 agents × 2 rounds and the judge, all finished.
    expect(await page.locator('.question-view').count()).toBe(2);
    expect(await page.locator('.question-view td.cell.done').count()).toBe(2 * (2 * 2 + 1));
    await page
      .locator('.question-view[data-index="0"] details')
      .evaluate((d) => ((d as HTMLDetailsElement).open = true));
    await screenshot(page, 'teach');

    const download = page.waitForEvent('download');
    await page.click('#teach-download');
    const file = path.join(ARTIFACTS, 'trajectories.jsonl');
    await (await download).saveAs(file);
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    const records = lines.map((l, i) => parseTrajectoryLine(l, i + 1));
    for (const r of records) {
      expect(r.config).toMatchObject({ agents: 2, rounds: 2, aggregator: 'llm' });
      expect(r.rounds.map((x) => x.messages.length)).toEqual([2, 2]);
      expect(r.aggregator.kind).toBe('llm');
      expect(r.rounds[0]!.messages[0]!.usage.completion_tokens).toBeGreaterThan(0);
      const turn = r.rounds[1]!.messages[0]!.prompt[3]!.content;
      expect(turn).toContain(`Question: ${r.question}`);
      expect(turn).toMatch(/--- agent2 ---\n(#### \S+|\(no final answer\))\n\nQuestion: /);
    }
    expect(records.map((r) => r.question)).toEqual(questions.map((q) => q.question));
  }, 240_000);

  it('loads a model from a local folder', async () => {
    const t0 = performance.now();
    await page.click('#tab-models');
    await page.check('input[name=model-kind][value=folder]');
    // The folder picker itself cannot be driven headless; its <input webkitdirectory> fallback can.
    await page.setInputFiles('#model-folder-input', modelDir);
    await expect.poll(() => page.locator('.source-box[data-kind=folder] .muted').textContent()).toMatch(/\d+ files/);
    await page.click('#load-model');
    await expect
      .poll(() => page.locator('#model-status').textContent(), { timeout: 60_000 })
      .toContain(path.basename(modelDir));
    expect(await page.locator('.loaded-body').textContent()).toContain('local folder');
    lap('folder load', t0);
    await screenshot(page, 'models-folder');
  });

  it('loads the downloaded model again from Cache Storage with its server gone', async () => {
    const t0 = performance.now();
    await model!.close();
    const toModelHost: string[] = [];
    const track = (r: { url(): string }) => r.url().startsWith(model!.url) && toModelHost.push(r.url());
    browser!.context.on('request', track);
    try {
      await page.goto(`${app!.url}/?model=${encodeURIComponent(`${model!.url}/`)}&visit=2#models`);
      await page.locator('#model-status[data-state=loaded]').waitFor({ timeout: 60_000 });
      expect(await page.locator('.loaded-body').textContent()).toContain('yes (Cache Storage)');
      expect(toModelHost, 'everything came from the cache').toEqual([]);
    } finally {
      browser!.context.off('request', track);
    }
    lap('cached load', t0);
  });

  it('loads the model quantized to q4 on the Models page and chats', async () => {
    // The model's files come from Cache Storage (its server is gone since the last test).
    await page.click('#tab-models');
    await page.selectOption('#model-dtype', 'q4');
    await page.click('#load-model');
    await waitInPage(
      page,
      'the q4 load',
      () => /q4 weights/.test(document.querySelector('.loaded-body')?.textContent ?? ''),
      null,
    );
    expect(await page.locator('.loaded-body').textContent()).toMatch(/Weights \(q4\)/);
    await page.click('#tab-chat');
    await page.fill('#chat-max-tokens', '6');
    await page.fill('#chat-input', 'What is 2 + 3?');
    await page.press('#chat-input', 'Enter');
    await waitInPage(
      page,
      'a reply from the q4 model',
      () => document.querySelector('#chat-log .msg.assistant:last-child')?.getAttribute('data-finish') != null,
      null,
    );
    expect(await page.locator('#chat-log .msg.assistant').last().getAttribute('data-finish')).not.toBe('error');
    await page.selectOption('#model-dtype', 'auto').catch(() => {});
  }, 600_000);

  it('never reached beyond localhost and raised no page errors', () => {
    expect(browser!.blocked).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(dialogs).toEqual([]);
  });

  it('says clearly when WebGPU is unavailable', async () => {
    const plain = await launchBrowser({ webgpu: false });
    try {
      const p = await plain.context.newPage();
      await p.goto(`${app!.url}/#device`);
      const alert = p.locator('#webgpu-unavailable');
      await alert.waitFor({ timeout: 30_000 });
      expect(await alert.textContent()).toMatch(/WebGPU is unavailable/);
      await screenshot(p, 'device-no-webgpu');
      await p.click('#tab-chat');
      await expect.poll(() => p.locator('#chat-notice').textContent()).toMatch(/^WebGPU is unavailable here/);
      // The Models page says so first too, not that the model "does not fit the device".
      await p.click('#tab-models');
      await expect
        .poll(() => p.locator('#model-load-status').textContent(), { timeout: 30_000 })
        .toMatch(/WebGPU is unavailable here/);
      await p.click('#tab-chat');
      expect(await p.locator('#chat-send').isDisabled()).toBe(true);
      await screenshot(p, 'chat-no-model');
    } finally {
      await plain.close();
    }
  });
});
