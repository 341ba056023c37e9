/**
 * Distil & train, Evaluate and Benchmark pages end to end, in Debian's Chromium with WebGPU on
 * SwiftShader: the built app served by `vite preview`, a tiny random Qwen2 checkpoint (and a
 * trajectory file) served from another localhost port with CORS, every request outside localhost
 * blocked.
 *
 * - a short LoRA run on rows distilled (R-SFT) from the served trajectory file: the loss chart
 *   grows step by step, the PEFT adapter downloads (its safetensors header parses) and the
 *   adapter appears in the Chat page's picker;
 * - a 2-question evaluation of the base model and that student fills the report table;
 * - the quick benchmark runs (with onnxruntime-web beside ours and the roofline) and offers its
 *   SpeedReport JSON, which compares against itself;
 * - a reload in the middle of a run resumes from the last checkpoint stored in the browser (OPFS).
 *
 * Screenshots go to test-artifacts/e2e/.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importedToTrajectories } from '../../src/distill/from-imported';
import { parseEvalReport } from '../../src/eval/report';
import { readSafetensors } from '../../src/formats/safetensors';
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

const PROBLEMS = [
  ['Tom has 2 apples and buys 3 more. How many apples does he have?', 'Tom has 2 + 3 = 5 apples.\n#### 5', 5],
  ['A box holds 4 pens. How many pens are in 2 boxes?', 'There are 4 * 2 = 8 pens.\n#### 8', 8],
  ['Ann had 9 stamps and gave away 4. How many are left?', 'Ann has 9 - 4 = 5 stamps left.\n#### 5', 5],
  ['Bo reads 3 pages a day for 3 days. How many pages?', 'Bo reads 3 * 3 = 9 pages.\n#### 9', 9],
  ['Cy has 6 cards and wins 1. How many cards now?', 'Cy has 6 + 1 = 7 cards.\n#### 7', 7],
  ['Di bakes 8 buns and eats 2. How many are left?', 'Di has 8 - 2 = 6 buns.\n#### 6', 6],
] as const;

/** One-round trajectories: two agents right, one wrong (as the debate's JSONL records). */
function trajectoryJsonl(): string {
  const sets = PROBLEMS.map(([question, answer, final], i) => ({
    id: `p${i + 1}`,
    question,
    reference: answer,
    task: 'gsm8k' as const,
    solutions: [
      { agent: 'agent1', text: answer },
      { agent: 'agent2', text: answer.replace(`#### ${final}`, `#### ${final + 1}`) },
      { agent: 'agent3', text: answer },
    ],
  }));
  return `${importedToTrajectories(sets, { createdAt: '2025-01-01T00:00:00.000Z' })
    .records.map((r) => JSON.stringify(r))
    .join('\n')}\n`;
}

describe('distil & train, evaluate and benchmark pages in Chromium', () => {
  let modelDir = '';
  let model: ServedDirectory | null = null;
  let app: ServedApp | null = null;
  let browser: Browser | null = null;
  let page: Page;
  const pageErrors: string[] = [];
  const timings: Record<string, number> = {};
  const lap = (name: string, t0: number) => (timings[name] = Math.round(performance.now() - t0));
  const modelUrl = () => `${model!.url}/`;
  const waitForModel = (p: Page) => p.locator('#model-badge.ok').waitFor({ timeout: 60_000 });

  beforeAll(async () => {
    requireChromium();
    const t0 = performance.now();
    modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-e2e-train-'));
    writeTinyModel(modelDir, { arch: 'qwen2', dtype: 'F32' });
    const configPath = path.join(modelDir, 'config.json');
    const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(configPath, JSON.stringify({ ...config, max_position_embeddings: 4096 }, null, 2));
    fs.writeFileSync(path.join(modelDir, 'trajectories.jsonl'), trajectoryJsonl());
    model = await serveDirectory(modelDir);
    app = await buildAndPreview();
    lap('build+preview', t0);
    browser = await launchBrowser({ corsOrigins: [model.url] });
    page = await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('dialog', (d) => void d.accept());
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await model?.close();
    if (modelDir) fs.rmSync(modelDir, { recursive: true, force: true });
    if (Object.keys(timings).length) console.log('e2e train/eval timings (ms):', JSON.stringify(timings));
  });

  it('distils a served trajectory file (R-SFT), trains a LoRA adapter with a live loss chart and downloads it', async () => {
    const t0 = performance.now();
    await page.goto(`${app!.url}/?model=${encodeURIComponent(modelUrl())}#train`);
    await waitForModel(page);
    lap('model load', t0);
    await page.check('input[name=train-source][value=url]');
    await page.fill('#train-url', `${model!.url}/trajectories.jsonl`);
    await page.click('#train-fetch');
    await page.uncheck('#train-system');
    await expect
      .poll(() => page.locator('#train-data-status').getAttribute('data-rows'), { timeout: 20_000 })
      .toBe(String(PROBLEMS.length));
    await expect.poll(() => page.locator('#train-counts-table').textContent()).toContain('Tokens');
    // PAD builds stepwise rows (counted, downloadable, not trained here); DA adds self-corrections.
    await page.check('input[name=train-strategy][value=pad]');
    await expect.poll(() => page.locator('#train-counts-table').textContent()).toContain('Stepwise rows');
    expect(await page.locator('#train-counts-table').textContent()).toMatch(/Wrong solutions\s*[1-9]/);
    // The paragraph layout (agentark distill --pad-steps paragraph) labels steps of a solution instead.
    await page.selectOption('#train-pad-steps', 'paragraph');
    await expect.poll(() => page.locator('#train-counts-table').textContent()).toMatch(/Negative steps\s*[1-9]/);
    await page.selectOption('#train-pad-steps', 'solution');
    await expect.poll(() => page.locator('#train-counts-table').textContent()).toMatch(/Wrong solutions\s*[1-9]/);
    expect(await page.locator('#train-start').isDisabled()).toBe(true);
    await page.check('input[name=train-strategy][value=da]');
    await expect
      .poll(async () => Number(await page.locator('#train-data-status').getAttribute('data-rows')))
      .toBeGreaterThan(PROBLEMS.length);
    await page.check('input[name=train-strategy][value=rsft]');
    await expect.poll(() => page.locator('#train-data-status').getAttribute('data-rows')).toBe(String(PROBLEMS.length));
    await page.fill('#train-name', 'tiny-student');
    await page.selectOption('#train-length-kind', 'steps');
    await page.fill('#train-steps', '6');
    await page.fill('#train-batch', '2');
    await page.fill('#train-lr', '0.002');
    await page.fill('#train-ckpt-every', '2');
    // Record the loss chart's point count as it changes.
    await page.evaluate(() => {
      const w = window as unknown as { __points: number[] };
      w.__points = [];
      const el = document.getElementById('train-loss-chart')!;
      new MutationObserver(() => w.__points.push(Number(el.dataset.points))).observe(el, {
        attributes: true,
        attributeFilter: ['data-points'],
      });
    });
    // The memory planner's estimate for this model, rows and settings shows before the run.
    await expect
      .poll(() => page.locator('#train-memory-plan').textContent())
      .toMatch(
        /^Memory plan: about .* of GPU memory at the peak of a step .* LoRA rank 8 on q_proj,v_proj, batch 2 x \d+ tokens\.$/,
      );
    expect(await page.locator('#train-memory-plan').getAttribute('data-fits')).toBe('true');
    const t1 = performance.now();
    await page.click('#train-start');
    await waitInPage(
      page,
      'the 6-step training run to finish',
      () => document.querySelector('#train-status')?.getAttribute('data-done') === 'true',
      null,
      {
        describe: async () =>
          `status: ${await page.locator('#train-status').textContent()}; step ${await page.locator('#train-step').getAttribute('data-step')}`,
      },
    );
    lap('train 6 steps', t1);
    expect(await page.locator('#train-step').getAttribute('data-step')).toBe('6');
    expect(await page.locator('#train-loss-chart').getAttribute('data-points')).toBe('6');
    expect(await page.locator('#train-lr-chart').getAttribute('data-points')).toBe('6');
    const points = await page.evaluate(() => (window as unknown as { __points: number[] }).__points);
    expect(new Set(points.filter((p) => p > 0)).size, 'the loss chart grows step by step').toBeGreaterThanOrEqual(3);
    expect(Number(await page.locator('#train-checkpoint').getAttribute('data-step'))).toBe(4);
    expect(await page.locator('#train-progress-label').textContent()).toMatch(/loss \d/);
    await screenshot(page, 'train');
    await page.locator('#train-loss-chart').scrollIntoViewIfNeeded();
    await screenshot(page, 'train-charts');

    const download = page.waitForEvent('download');
    await page.click('#train-download-weights');
    const d = await download;
    expect(d.suggestedFilename()).toBe('adapter_model.safetensors');
    const file = path.join(ARTIFACTS, 'adapter_model.safetensors');
    await d.saveAs(file);
    const st = readSafetensors(new Uint8Array(fs.readFileSync(file)));
    const names = st.tensors.map((t) => t.name);
    expect(names).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight');
    expect(names).toContain('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight');
    expect(st.tensors.find((t) => t.name.endsWith('q_proj.lora_A.weight'))!.shape[0]).toBe(8);
    const cfgDownload = page.waitForEvent('download');
    await page.click('#train-download-config');
    const cfgFile = path.join(ARTIFACTS, 'adapter_config.json');
    await (await cfgDownload).saveAs(cfgFile);
    expect(JSON.parse(fs.readFileSync(cfgFile, 'utf8'))).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 16 });

    // The adapter is in the Chat page's picker and hot-swaps.
    await page.click('#train-use-in-chat');
    await expect.poll(() => page.locator('#chat-adapter').inputValue()).toBe('tiny-student');
    expect(await page.locator('#chat-adapter option').allTextContents()).toEqual([
      'Base model',
      'tiny-student (LoRA r8)',
    ]);
    await page.fill('#chat-max-tokens', '6');
    await page.fill('#chat-input', 'What is 2 + 3?');
    await page.press('#chat-input', 'Enter');
    await expect
      .poll(() => page.locator('#chat-log .msg.assistant').last().getAttribute('data-finish'), { timeout: 30_000 })
      .not.toBeNull();
    await page.selectOption('#chat-adapter', '');
    await expect.poll(() => page.locator('#chat-adapter-note').textContent()).toContain('base model');
    await screenshot(page, 'chat-adapter');
  }, 240_000);

  it('evaluates the base model and the student on 2 questions and fills the report', async () => {
    const t0 = performance.now();
    await page.click('#tab-evaluate');
    await page.check('input[name=eval-source][value=file]');
    const questions = PROBLEMS.slice(0, 2).map(([question, answer]) => ({ question, answer }));
    await page.setInputFiles('#eval-file', {
      name: 'questions.jsonl',
      mimeType: 'application/json',
      buffer: Buffer.from(questions.map((q) => JSON.stringify(q)).join('\n')),
    });
    await expect.poll(() => page.locator('#eval-q-status').textContent()).toContain('2 questions');
    await page.fill('#eval-limit', '2');
    await page.fill('#eval-max-tokens', '8');
    await expect.poll(() => page.locator('input[name=eval-student]').count()).toBe(1);
    expect(await page.locator('input[name=eval-student]').isChecked()).toBe(true);
    await page.click('#eval-run');
    await page.locator('#eval-status[data-done=true]').waitFor({ timeout: 150_000 });
    lap('eval 2 questions × 2 systems', t0);
    const rows = page.locator('#eval-table tbody tr');
    expect(await rows.count()).toBe(2);
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-system')))).toEqual([
      'single',
      'student:tiny-student',
    ]);
    const cells = await rows.first().locator('td').allTextContents();
    expect(cells[1]).toMatch(/%\s*\(\d\/2\)/);
    expect(cells[2]).toMatch(/→/); // self-correction attempt 1 → 2
    expect(Number(await page.locator('#eval-accuracy-chart').getAttribute('data-points'))).toBeGreaterThanOrEqual(2);
    expect(Number(await page.locator('#eval-cost-chart').getAttribute('data-points'))).toBe(6);
    await page.locator('#eval-results').scrollIntoViewIfNeeded();
    await screenshot(page, 'evaluate');

    const download = page.waitForEvent('download');
    await page.click('#eval-download');
    const file = path.join(ARTIFACTS, 'eval-report.json');
    await (await download).saveAs(file);
    const report = parseEvalReport(fs.readFileSync(file, 'utf8'));
    expect(report.questions).toBe(2);
    expect(report.systems.map((s) => s.name)).toEqual(['single', 'student:tiny-student']);
    expect(report.systems[1]!.meta).toMatchObject({ role: 'student', adapter: 'tiny-student' });
    expect(report.systems[0]!.cost.calls).toBe(2);

    // A report JSON opens in the same view.
    await page.setInputFiles('#eval-open', file);
    await expect.poll(() => page.locator('#eval-report-head').textContent()).toContain('eval-report.json');
    expect(await rows.count()).toBe(2);
  }, 240_000);

  it('trains the PAD reward model (with its held-out AUC) and runs RL on the student with pause and resume', async () => {
    const t0 = performance.now();
    await page.click('#tab-train');
    await page.check('input[name=train-source][value=example]');
    await page.fill('#train-example-count', '16');
    await page.locator('#train-example-count').dispatchEvent('change');
    await page.check('input[name=train-strategy][value=pad]');
    await expect
      .poll(() => page.locator('#train-counts-table').textContent(), { timeout: 20_000 })
      .toContain('Stepwise rows');
    await waitInPage(
      page,
      'the PRM button to enable on PAD rows',
      () => !(document.querySelector('#pad-prm-train') as HTMLButtonElement).disabled,
      null,
    );
    await page.fill('#pad-epochs', '30');
    await page.fill('#pad-holdout', '0.25');
    await page.click('#pad-prm-train');
    const prmState = async () =>
      `status: ${await page.locator('#pad-prm-status').textContent()}; ${await page.locator('#pad-prm-label').textContent()}`;
    await waitInPage(
      page,
      'the reward model to train',
      () => document.querySelector('#pad-prm-status')?.getAttribute('data-done') === 'true',
      null,
      { describe: prmState },
    );
    expect(await page.locator('#pad-prm-status').textContent()).toMatch(
      /Trained on \d+ labelled solutions of \d+ questions/,
    );
    const aucText = await page.locator('#pad-prm-status').getAttribute('data-auc');
    // Every held-out question has right and wrong solutions (two agents right, one wrong): an AUC exists.
    expect(aucText).toMatch(/^[01]\.\d{4}$/);
    expect(await page.locator('#pad-prm-status').textContent()).toMatch(
      /Held-out AUC [\d.]+ on 12 solutions of 4 unseen questions/,
    );
    expect(Number(await page.locator('#pad-prm-loss-chart').getAttribute('data-points'))).toBe(30);
    expect(await page.locator('#rl-use-prm').isChecked()).toBe(true);
    const prmDownload = page.waitForEvent('download');
    await page.click('#pad-prm-download');
    expect((await prmDownload).suggestedFilename()).toBe('prm_head.safetensors');
    lap('PRM', t0);

    // RL from the R-SFT student, with the PRM in the reward: pause after a step, resume, finish.
    const t1 = performance.now();
    await page.check('input[name=rl-source][value=file]');
    const questions = PROBLEMS.map(([question, answer], i) => ({ id: `rl${i}`, question, answer }));
    await page.setInputFiles('#rl-file', {
      name: 'rl.jsonl',
      mimeType: 'application/json',
      buffer: Buffer.from(questions.map((q) => JSON.stringify(q)).join('\n')),
    });
    await expect.poll(() => page.locator('#rl-q-status').textContent()).toContain('6 questions');
    await page.selectOption('#rl-init', 'tiny-student');
    await page.fill('#rl-name', 'tiny-pad');
    await page.fill('#rl-steps', '3');
    await page.fill('#rl-group', '2');
    await page.fill('#rl-prompts', '1');
    await page.fill('#rl-ppo-epochs', '1');
    await page.fill('#rl-max-tokens', '6');
    await page.click('#rl-start');
    const rlState = async () =>
      `status: ${await page.locator('#rl-status').textContent()}; step ${await page.locator('#rl-step').getAttribute('data-step')}`;
    await waitInPage(
      page,
      'the first RL step',
      () => Number(document.querySelector('#rl-step')?.getAttribute('data-step') ?? 0) >= 1,
      null,
      { describe: rlState },
    );
    await page.click('#rl-pause');
    await waitInPage(
      page,
      'RL to pause',
      () => /Paused at step \d/.test(document.querySelector('#rl-status')?.textContent ?? ''),
      null,
      { describe: rlState },
    );
    const pausedAt = Number(await page.locator('#rl-step').getAttribute('data-step'));
    expect(await page.locator('#rl-label').textContent()).toMatch(
      /reward [\d.]+ · KL -?[\d.e-]+ · group accuracy \d+%/,
    );
    await page.click('#rl-resume');
    await waitInPage(
      page,
      'RL to finish',
      () => document.querySelector('#rl-status')?.getAttribute('data-done') === 'true',
      null,
      { describe: rlState },
    );
    expect(pausedAt).toBeGreaterThanOrEqual(1);
    expect(await page.locator('#rl-step').getAttribute('data-step')).toBe('3');
    expect(Number(await page.locator('#rl-reward-chart').getAttribute('data-points'))).toBe(3);
    expect(Number(await page.locator('#rl-accuracy-chart').getAttribute('data-points'))).toBe(3);
    await page.locator('#train-pad').scrollIntoViewIfNeeded();
    await screenshot(page, 'train-pad');
    await page.click('#rl-use-in-chat');
    await expect.poll(() => page.locator('#chat-adapter').inputValue()).toBe('tiny-pad');
    lap('RL 3 steps', t1);
  }, 1_800_000);

  it('runs the quick benchmark and offers the SpeedReport JSON, which compares side by side', async () => {
    const t0 = performance.now();
    await page.goto(`${app!.url}/?bench=quick#bench`);
    await page.click('#bench-run');
    await page
      .locator('#bench-status[data-done=true]')
      .waitFor({ timeout: 330_000 })
      .catch(async (e) => {
        throw new Error(`${e} — status: ${await page.locator('#bench-status').textContent()}`);
      });
    lap('bench quick', t0);
    expect((await page.locator('#bench-adapter .adapter-name').textContent())?.trim()).toMatch(/\S/);
    expect(await page.locator('#bench-kernels-table tbody tr').count()).toBe(4);
    expect(await page.locator('#bench-models-table tbody tr').count()).toBe(4);
    expect(await page.locator('#bench-training-table tbody tr').count()).toBe(2);
    // Ours beside onnxruntime-web (WebGPU EP, loaded for this): a prefill and a decode row, each
    // with both times and the ratio; the chart of both; the roofline fractions.
    const peerRowsShown = page.locator('#bench-peer-table tbody tr');
    expect(await peerRowsShown.count()).toBe(2);
    for (const phase of ['prefill', 'decode']) {
      const row = page.locator(`#bench-peer-table tr[data-model="tiny-0.11M"][data-phase="${phase}"]`);
      expect(await row.locator('td.ort').textContent()).toMatch(/^\d+(\.\d+)? ms/);
      expect(await row.locator('td.ratio').textContent()).toMatch(/^\d+\.\d\d×$/);
    }
    expect(await page.locator('#bench-peer-chart').isVisible()).toBe(true);
    const roof = page.locator('#bench-roofline-table tr[data-model="tiny-0.11M"]');
    expect(await roof.locator('td.prefill-fraction').textContent()).toMatch(/^\d+(\.\d+)?%$/);
    expect(await roof.locator('td.decode-fraction').textContent()).toMatch(/^\d+(\.\d+)?%$/);
    const download = page.waitForEvent('download');
    await page.click('#bench-download');
    const file = path.join(ARTIFACTS, 'bench-results.json');
    await (await download).saveAs(file);
    const report = JSON.parse(fs.readFileSync(file, 'utf8')) as {
      adapter: string;
      kernels: { webgpuGflops: number }[];
      models: { model: string; backend: string; params: number }[];
      training: { mode: string }[];
      peer: { model: string; ortEp: string; prefillRatio: number; decodeRatio: number }[];
      copyBandwidth: { bytesPerS: number };
    };
    expect(report.adapter).toMatch(/\S/);
    expect(report.kernels).toHaveLength(2);
    expect(report.kernels.every((k) => k.webgpuGflops > 0)).toBe(true);
    // Each size is named by its parameter count.
    expect(
      report.models.every(
        (m) => Math.abs(m.params / 1e6 - Number(/-([\d.]+)M$/.exec(m.model)![1])) / (m.params / 1e6) < 0.05,
      ),
    ).toBe(true);
    expect(report.models.map((m) => `${m.model}/${m.backend}`)).toEqual(['tiny-0.11M/webgpu', 'tiny-0.11M/cpu']);
    expect(report.training.map((t) => t.mode)).toEqual(['lora', 'lora']);
    expect(report.peer.map((p) => `${p.model}/${p.ortEp}`)).toEqual(['tiny-0.11M/webgpu']);
    expect(report.peer[0].prefillRatio > 0 && report.peer[0].decodeRatio > 0).toBe(true);
    expect(report.copyBandwidth.bytesPerS).toBeGreaterThan(0);
    await page.setInputFiles('#bench-compare', file);
    await expect.poll(() => page.locator('#bench-kernels-table td.ratio').first().textContent()).toBe('1.00×');
    await screenshot(page, 'bench');
  }, 420_000);

  it('resumes a run from the last checkpoint stored in the browser after a reload', async () => {
    const t0 = performance.now();
    // Every value the step counter takes, from the first moment of each page load.
    await page.addInitScript(() => {
      const w = window as unknown as { __steps: number[] };
      w.__steps = [];
      new MutationObserver((muts) => {
        for (const m of muts) {
          const el = m.target as HTMLElement;
          if (el.id === 'train-step') w.__steps.push(Number(el.dataset.step));
        }
      }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-step'] });
    });
    await page.goto(`${app!.url}/?model=${encodeURIComponent(modelUrl())}#train`);
    await waitForModel(page);
    await page.check('input[name=train-source][value=example]');
    await page.fill('#train-example-count', '12');
    await page.uncheck('#train-system');
    await expect
      .poll(() => page.locator('#train-data-status').getAttribute('data-rows'), { timeout: 20_000 })
      .toBe('12');
    await expect.poll(() => page.locator('#train-counts-table').textContent()).toContain('Tokens');
    await page.fill('#train-name', 'resumed-student');
    await page.selectOption('#train-length-kind', 'steps');
    await page.fill('#train-steps', '200');
    await page.fill('#train-batch', '1');
    await page.fill('#train-ckpt-every', '3');
    await page.click('#train-start');
    // Every wait below is for an event the page shows (a checkpoint, a resumed run, a step), with a
    // generous bound: a busy machine makes them slower, never different.
    const runState = async () =>
      `status: ${await page.locator('#train-status').textContent()}; step ${await page.locator('#train-step').getAttribute('data-step')}`;
    await waitInPage(
      page,
      'the first checkpoint (step 3) stored in the browser',
      (a) => Number(document.querySelector(a.sel)?.getAttribute('data-step') ?? 0) >= 3,
      { sel: '#train-checkpoint' },
      { describe: runState },
    );
    const seen = Number(await page.locator('#train-checkpoint').getAttribute('data-step'));
    const before = Number(await page.locator('#train-step').getAttribute('data-step'));
    expect(before).toBeLessThan(200);

    await page.reload();
    await waitInPage(
      page,
      'the run to resume from its checkpoint after the reload',
      (a) => /^\d+$/.test(document.querySelector(a.sel)?.getAttribute(a.name) ?? ''),
      { sel: '#train-run', name: 'data-resumed-from' },
      { describe: runState },
    );
    const resumedFrom = Number(await page.locator('#train-run').getAttribute('data-resumed-from'));
    expect(resumedFrom).toBeGreaterThanOrEqual(seen);
    expect(resumedFrom % 3).toBe(0);
    await waitInPage(
      page,
      `a step after the resumed checkpoint (${resumedFrom})`,
      (a) => Number(document.querySelector('#train-step')?.getAttribute('data-step') ?? 0) > a,
      resumedFrom,
      { describe: runState },
    );
    const steps = await page.evaluate(() => (window as unknown as { __steps: number[] }).__steps);
    expect(steps[0], 'the step counter starts at the checkpoint, not 0').toBe(resumedFrom);
    expect(Math.min(...steps)).toBe(resumedFrom);
    expect(steps).toContain(resumedFrom + 1);
    // The loss history came back with the checkpoint.
    expect(Number(await page.locator('#train-loss-chart').getAttribute('data-points'))).toBeGreaterThan(resumedFrom);
    expect(await page.locator('#train-status').textContent()).toContain(`checkpoint at step ${resumedFrom}`);
    lap('train, reload, resume', t0);
    await screenshot(page, 'train-resumed');

    // Pause keeps the state (and checkpoints it); resume continues from the same step.
    await page.click('#train-pause');
    await waitInPage(
      page,
      'the run to pause after its current step',
      () => /Paused at step \d+/.test(document.querySelector('#train-status')?.textContent ?? ''),
      null,
      { describe: runState },
    );
    const pausedAt = Number(/Paused at step (\d+)/.exec((await page.locator('#train-status').textContent())!)![1]);
    expect(Number(await page.locator('#train-checkpoint').getAttribute('data-step'))).toBe(pausedAt);
    expect(await page.locator('#train-resume').isVisible()).toBe(true);
    await page.click('#train-resume');
    await waitInPage(
      page,
      `a step after the pause (${pausedAt})`,
      (a) => Number(document.querySelector('#train-step')?.getAttribute('data-step') ?? 0) > a,
      pausedAt,
      { describe: runState },
    );
    const afterPause = await page.evaluate(() => (window as unknown as { __steps: number[] }).__steps);
    const sincePause = afterPause.slice(afterPause.indexOf(pausedAt));
    expect(Math.min(...sincePause), 'resume continues from the paused step').toBe(pausedAt);
    expect(sincePause).toContain(pausedAt + 1);

    await page.click('#train-cancel');
    await waitInPage(
      page,
      'the run to stop after Cancel',
      () => /Cancelled/.test(document.querySelector('#train-status')?.textContent ?? ''),
      null,
      { describe: runState },
    );
    await expect.poll(() => page.locator('#train-stored').isHidden()).toBe(true);
    // Nothing is left in the browser's storage.
    expect(
      await page.evaluate(async () => {
        const root = await navigator.storage.getDirectory();
        const names: string[] = [];
        for await (const key of (root as unknown as { keys(): AsyncIterable<string> }).keys()) names.push(key);
        return names;
      }),
    ).toEqual([]);
    // The cancelled run's adapter, as it was at its last step, is offered and can be kept.
    const keep = page.locator('#train-keep-partial');
    expect(await keep.textContent()).toMatch(/Keep the adapter from step \d+/);
    const step = /step (\d+)/.exec((await keep.textContent())!)![1];
    await keep.click();
    await waitInPage(
      page,
      'the partial adapter to register',
      () => /Kept the adapter/.test(document.querySelector('#train-status')?.textContent ?? ''),
      null,
    );
    await expect
      .poll(() => page.locator('#chat-adapter option').allTextContents())
      .toContain(`resumed-student-step${step} (LoRA r8)`);
  }, 1_800_000); // the waits inside are bounded (10 min each) and say what they wait for

  it('runs one training run per browser: a second tab shows it read-only, chats, and takes it over when the first tab closes', async () => {
    const first = page;
    await first.goto(`${app!.url}/?model=${encodeURIComponent(modelUrl())}#train`);
    await waitForModel(first);
    await first.check('input[name=train-source][value=example]');
    await first.fill('#train-example-count', '12');
    await first.uncheck('#train-system');
    await expect
      .poll(() => first.locator('#train-data-status').getAttribute('data-rows'), { timeout: 20_000 })
      .toBe('12');
    await first.fill('#train-name', 'one-run');
    await first.selectOption('#train-length-kind', 'steps');
    await first.fill('#train-steps', '400');
    await first.fill('#train-batch', '1');
    await first.fill('#train-ckpt-every', '2');
    await first.click('#train-start');
    const state = (p: Page) => async () =>
      `status: ${await p.locator('#train-status').textContent()}; step ${await p.locator('#train-step').getAttribute('data-step')}`;
    await waitInPage(
      first,
      'the first checkpoint of the run in tab 1',
      () => Number(document.querySelector('#train-checkpoint')?.getAttribute('data-step') ?? 0) >= 2,
      null,
      { describe: state(first) },
    );

    // A second tab, opened on Chat: it must not resume the run, only show it.
    const second = await browser!.context.newPage();
    second.on('pageerror', (e) => pageErrors.push(`tab 2: ${e.message}`));
    await second.goto(`${app!.url}/?model=${encodeURIComponent(modelUrl())}#chat`);
    await waitForModel(second);
    await waitInPage(
      second,
      'the read-only view of the run in tab 1',
      () => !(document.querySelector('#train-other-tab') as HTMLElement | null)?.hidden,
      null,
      { describe: state(second) },
    );
    expect(await second.locator('#train-other-tab').textContent()).toContain(
      'Another tab of this browser is training one-run',
    );
    expect(await second.locator('#busy-badge').textContent()).toBe('Training in another tab…');
    const shown = Number(await second.locator('#train-step').getAttribute('data-step'));
    await waitInPage(
      second,
      'a step of tab 1 mirrored in tab 2',
      (a) => Number(document.querySelector('#train-step')?.getAttribute('data-step') ?? 0) > a,
      shown,
      { describe: state(second) },
    );
    await second.click('#tab-train');
    expect(await second.locator('#train-start').isDisabled()).toBe(true);
    expect(await second.locator('#train-pause').isHidden()).toBe(true);
    expect(await second.locator('#train-stored-resume').isDisabled()).toBe(true);
    // Its chat is not refused (it does not train).
    await second.click('#tab-chat');
    await second.fill('#chat-max-tokens', '4');
    await second.fill('#chat-input', 'Hi');
    await second.press('#chat-input', 'Enter');
    await waitInPage(
      second,
      'a chat reply in tab 2',
      () => document.querySelector('#chat-log .msg.assistant:last-child')?.getAttribute('data-finish') != null,
      null,
    );
    expect(await second.locator('#chat-log .msg.assistant').last().getAttribute('data-finish')).not.toBe('error');

    // Tab 1 closes mid-run: tab 2 takes the run over from the last checkpoint.
    await first.close();
    page = second;
    await waitInPage(
      second,
      'tab 2 to resume the run after tab 1 closed',
      () => /^\d+$/.test(document.querySelector('#train-run')?.getAttribute('data-resumed-from') ?? ''),
      null,
      { describe: state(second) },
    );
    expect(Number(await second.locator('#train-run').getAttribute('data-resumed-from')) % 2).toBe(0);
    await second.click('#tab-train');
    expect(await second.locator('#train-pause').isVisible(), await state(second)()).toBe(true);
    await second.click('#train-cancel');
    await waitInPage(
      second,
      'the run to stop after Cancel',
      () => /Cancelled/.test(document.querySelector('#train-status')?.textContent ?? ''),
      null,
      { describe: state(second) },
    );
  }, 1_800_000);

  it('never reached beyond localhost and raised no page errors', () => {
    expect(browser!.blocked).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
