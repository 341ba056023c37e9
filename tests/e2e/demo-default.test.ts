/**
 * The embedded demo end to end, in Debian's Chromium with WebGPU on SwiftShader: the app is built
 * with its public dir pointed (AGENTARK_PUBLIC_DIR) at a temporary folder holding what the demo
 * ships — a tiny random model in models/default/, a random PEFT LoRA adapter with agentark.json in
 * models/default/adapter/ and an EvalReport in data/demo-report.json — and opened without
 * `?model=`. Every request outside localhost is blocked.
 *
 * - the default model loads and its adapter is loaded and active: Chat's picker shows it selected,
 *   "Base model" hot-swaps to the base model (a different greedy reply) and back (the same reply);
 * - the Evaluate page shows the demo report (table, charts, the report's `demo` extras);
 * - the shipped files are fetched once each and nothing the app asks for is missing (no 404s, no
 *   console errors).
 *
 * Screenshots go to test-artifacts/e2e/.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVAL_SCHEMA, type EvalReport, type SystemReport } from '../../src/eval/harness';
import { writeRandomPeftAdapter } from '../helpers/peft-fixture';
import { writeTinyModel } from '../helpers/tiny-model';
import {
  ARTIFACTS,
  buildAndPreview,
  launchBrowser,
  requireChromium,
  screenshot,
  type Browser,
  type ServedApp,
} from './harness';

const ADAPTER_NAME = 'student R-SFT';

function system(name: string, kind: 'single' | 'debate', correct: boolean[], calls: number): SystemReport {
  const n = correct.length;
  const c = correct.filter(Boolean).length;
  const per = { calls, promptTokens: 80 * calls, completionTokens: 40 * calls, wallMs: 500 * calls };
  const all = {
    calls: calls * n,
    promptTokens: per.promptTokens * n,
    completionTokens: per.completionTokens * n,
    wallMs: per.wallMs * n,
  };
  return {
    name,
    kind,
    ...(kind === 'debate' ? { meta: { agents: 3, rounds: 2 } } : {}),
    n,
    correct: c,
    accuracy: c / n,
    unparsed: 0,
    errors: 0,
    selfCorrection: null,
    robustness: null,
    cost: { ...all, perQuestion: per },
    costAll: all,
    elapsedMs: per.wallMs * n,
    questions: correct.map((ok, i) => ({ id: `q${i + 1}`, correct: ok, extracted: ok ? '5' : '4', cost: per })),
  };
}

/** A small report as scripts/demo.ts writes it: an EvalReport plus its `demo` extras. */
function demoReport(): EvalReport & { demo: Record<string, unknown> } {
  return {
    schema: EVAL_SCHEMA,
    createdAt: '2025-01-01T00:00:00.000Z',
    task: 'gsm8k',
    dataset: 'public/data/demo-test.jsonl',
    questions: 4,
    settings: {
      maxTokens: 64,
      temperature: 0,
      seed: 7,
      selfCorrection: false,
      robustness: false,
      concurrency: 1,
      reviewPrompt: 'Review your answer and fix it if it is wrong.',
    },
    perturbations: null,
    systems: [
      system('single agent (base)', 'single', [true, false, false, false], 1),
      system('debate 3x2 (base)', 'debate', [true, true, false, true], 7),
      system('student RSFT', 'single', [true, true, false, false], 1),
    ],
    demo: {
      baseline: 'single agent (base)',
      teacher: 'debate 3x2 (base)',
      rl: [0.5, 0.75],
      prmAuc: 0.8125,
      debateTrainFinalAccuracy: 0.75,
    },
  };
}

describe('embedded demo: default model + adapter + report', () => {
  let publicDir = '';
  let app: ServedApp | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const previousPublicDir = process.env.AGENTARK_PUBLIC_DIR;
  const pageErrors: string[] = [];
  const failed: string[] = [];
  const consoleErrors: string[] = [];
  const requested: string[] = [];
  const timings: Record<string, number> = {};
  const lap = (name: string, t0: number) => (timings[name] = Math.round(performance.now() - t0));

  beforeAll(async () => {
    requireChromium();
    const t0 = performance.now();
    publicDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-e2e-public-'));
    const modelDir = path.join(publicDir, 'models', 'default');
    const config = writeTinyModel(modelDir, { arch: 'qwen2', dtype: 'F32' });
    const adapterDir = path.join(modelDir, 'adapter');
    writeRandomPeftAdapter(adapterDir, config, { r: 4, alpha: 8, seed: 11 });
    fs.writeFileSync(path.join(adapterDir, 'agentark.json'), JSON.stringify({ name: ADAPTER_NAME, strategy: 'rsft' }));
    fs.mkdirSync(path.join(publicDir, 'data'));
    fs.writeFileSync(path.join(publicDir, 'data', 'demo-report.json'), JSON.stringify(demoReport(), null, 2));
    process.env.AGENTARK_PUBLIC_DIR = publicDir;
    app = await buildAndPreview();
    lap('build+preview', t0);
    browser = await launchBrowser();
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('request', (r) => requested.push(new URL(r.url()).pathname));
    page.on('response', (r) => {
      if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`);
    });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    if (previousPublicDir === undefined) delete process.env.AGENTARK_PUBLIC_DIR;
    else process.env.AGENTARK_PUBLIC_DIR = previousPublicDir;
    if (publicDir) fs.rmSync(publicDir, { recursive: true, force: true });
    if (Object.keys(timings).length) console.log('e2e timings (ms):', JSON.stringify(timings));
  });

  it('opens on the default model with the demo adapter active in Chat', async () => {
    const t0 = performance.now();
    await page.goto(`${app!.url}/#chat`);
    await page.locator('#model-badge.ok').waitFor({ timeout: 60_000 });
    lap('model load', t0);
    const picker = page.locator('#chat-adapter');
    await expect.poll(() => picker.inputValue(), { timeout: 30_000 }).toBe(ADAPTER_NAME);
    lap('adapter active', t0);
    expect(await picker.isEnabled()).toBe(true);
    expect(await picker.locator('option').allTextContents()).toEqual(['Base model', `${ADAPTER_NAME} (LoRA r4)`]);
    expect(await page.locator('#chat-adapter-note').textContent()).toContain(`Replies come from ${ADAPTER_NAME}`);
    expect(await page.locator('#model-badge').textContent()).toContain('models/default');
    await screenshot(page, 'demo-chat-adapter');

    await page.click('#tab-models');
    expect(await page.locator('#model-adapter-status').textContent()).toContain(
      `Adapter ${ADAPTER_NAME} (LoRA r4, rsft)`,
    );
  });

  it('hot-swaps to the base model and back', async () => {
    await page.click('#tab-chat');
    const picker = page.locator('#chat-adapter');
    const note = page.locator('#chat-adapter-note');
    await page.fill('#chat-temperature', '0');
    await page.fill('#chat-max-tokens', '12');
    /** A greedy reply to the same one-turn conversation. */
    const reply = async (): Promise<string> => {
      await page.click('#chat-clear');
      await page.fill('#chat-input', 'What is 2 + 3?');
      await page.press('#chat-input', 'Enter');
      const msg = page.locator('#chat-log .msg.assistant').last();
      await expect.poll(() => msg.getAttribute('data-finish'), { timeout: 30_000 }).not.toBeNull();
      expect(await msg.evaluate((m) => m.classList.contains('error'))).toBe(false);
      return (await msg.locator('.content').textContent()) ?? '';
    };
    const withAdapter = await reply();
    await picker.selectOption('');
    // The note is rebuilt from the worker's adapter list after the switch.
    await expect.poll(() => note.textContent(), { timeout: 10_000 }).toContain('Replies come from the base model');
    expect(await picker.inputValue()).toBe('');
    const base = await reply();
    await picker.selectOption(ADAPTER_NAME);
    await expect.poll(() => note.textContent(), { timeout: 10_000 }).toContain(`Replies come from ${ADAPTER_NAME}`);
    const again = await reply();
    expect(base, 'the random LoRA changes the greedy reply').not.toBe(withAdapter);
    expect(again, 'switching back restores the adapter').toBe(withAdapter);
  });

  it('the Evaluate page shows the embedded demo report', async () => {
    await page.click('#tab-evaluate');
    const rows = page.locator('#eval-table tbody tr');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBe(3);
    expect(await page.locator('#eval-report-head').textContent()).toMatch(
      /^Embedded demo report · gsm8k · public\/data\/demo-test\.jsonl · 4 questions/,
    );
    expect(await page.locator('#eval-results').getAttribute('data-source')).toBe('demo');
    expect(await rows.nth(1).getAttribute('data-system')).toBe('debate 3x2 (base)');
    expect(await rows.nth(1).textContent()).toContain('75.0% (3/4)');
    expect(await page.locator('#eval-report-note').textContent()).toContain('PRM held-out AUC 0.813');
    // The distillation comparison: debate 75% vs single 25%; the student (50%) recovers half.
    const gap = page.locator('#eval-gap');
    expect(await gap.textContent()).toContain('a lead of +50.0 pts');
    expect(await gap.locator('tbody tr').first().textContent()).toContain(
      "helps: recovers 50% of the debate's lead (not significant at this size)",
    );
    expect(await page.locator('#eval-results .chart-grid').isHidden()).toBe(false);
    expect(await page.locator('#eval-download').isEnabled()).toBe(true);
    // The user can still run an evaluation of their own (the demo adapter is one of the students).
    await expect.poll(() => page.locator('#eval-students input[value="student R-SFT"]').count()).toBe(1);
    await screenshot(page, 'demo-evaluate');
  });

  it('fetched the shipped files once each, with no 404s, no page errors and nothing off localhost', () => {
    const count = (p: string) => requested.filter((r) => r === p).length;
    expect(count('/models/default/adapter/adapter_config.json')).toBe(1);
    expect(count('/models/default/adapter/adapter_model.safetensors')).toBe(1);
    expect(count('/models/default/adapter/agentark.json'), 'read at build time').toBe(0);
    expect(count('/data/demo-report.json')).toBe(1);
    // The build lists the model's files too, so the loader probes no missing optional file.
    expect(count('/models/default/model.safetensors.index.json')).toBe(0);
    expect(failed).toEqual([]);
    expect(consoleErrors).toEqual([]);
    expect(pageErrors).toEqual([]);
    expect(browser!.blocked).toEqual([]);
  });
});
