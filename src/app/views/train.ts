/**
 * Distil & train: turn debate trajectories (the Teach page's last debate, a file, a URL such as a
 * dataset file on the Hugging Face Hub, or the built-in example) into training rows with R-SFT,
 * DA or PAD step labels, then LoRA-train the loaded model on them in the engine worker, with
 * live loss / learning-rate charts, pause / resume / cancel, checkpoints in the browser's storage
 * (a reload resumes from the last one) and the PEFT adapter to download. The finished adapter is
 * registered on the runtime and appears in the Chat page's adapter picker.
 */
import { PROJECTIONS } from '../../model/llama';
import {
  ADAPTERS_EVENT,
  type AdapterInfo,
  type DatasetSummary,
  type DistillSettings,
  type DistillStrategy,
  type StoredRunInfo,
  type TrainDataSource,
  type TrainEvent,
  type TrainOutcome,
  type TrainSettings,
} from '../api';
import { lineChart } from '../charts';
import { Comlink, newTaskId, type AppContext, type Page } from '../client';
import { append, clear, downloadText, errorText, field, h, numberInput, readNumber, statusLine } from '../dom';
import { formatCount } from '../estimate';
import { RUN_CHANNEL, whenRunLockFree, type RunMessage } from '../run-lock';

const STRATEGIES: [DistillStrategy, string, string][] = [
  ['rsft', 'R-SFT', 'One conversation per question whose debate ended correct: the final (judge or best agent) reasoning.'],
  ['da', 'DA', 'Data augmentation: up to K distinct correct reasoning paths per question, plus self-correction conversations.'],
  ['pad', 'PAD labels', 'Step-wise correctness labels of every solution (TRL stepwise rows) for a process reward model; not trained here.'],
];

function stamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

function duration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '—';
  if (s < 60) return `${Math.ceil(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function sizeText(bytes: number): string {
  return bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Offers bytes as a file download. */
function downloadBytes(name: string, bytes: Uint8Array, type = 'application/octet-stream'): void {
  const url = URL.createObjectURL(new Blob([bytes as unknown as BlobPart], { type }));
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export const trainPage: Page = {
  id: 'train',
  title: 'Distil & train',
  mount(root: HTMLElement, ctx: AppContext) {
    const { api, state } = ctx;

    // ---- 1 · data -------------------------------------------------------------------------
    const radio = (name: string, value: string, label: string, checked = false) =>
      h('label', { class: 'choice' }, h('input', { type: 'radio', name, value, checked }), ` ${label}`);
    const debateLabel = h('span', {}, 'Last debate');
    const sources = h(
      'fieldset',
      { class: 'choices' },
      h('legend', {}, 'Trajectories from'),
      h('label', { class: 'choice' }, h('input', { type: 'radio', name: 'train-source', value: 'debate' }), ' ', debateLabel),
      radio('train-source', 'example', 'Built-in example', true),
      radio('train-source', 'file', 'File'),
      radio('train-source', 'url', 'URL'),
    );
    const exampleCount = numberInput({ value: 24, min: 1, max: 200, step: 1 });
    exampleCount.id = 'train-example-count';
    const fileInput = h('input', { type: 'file', id: 'train-file', accept: '.jsonl,.json,.ndjson,application/json' });
    const urlInput = h('input', { type: 'url', id: 'train-url', placeholder: 'https://huggingface.co/datasets/<id>/resolve/main/<file>.jsonl', spellcheck: 'false' });
    const fetchBtn = h('button', { type: 'button', class: 'secondary', id: 'train-fetch' }, 'Fetch');
    const debateBox = h('div', { 'data-src': 'debate', hidden: true }, h('p', { class: 'muted small', id: 'train-debate-info' }, 'Run a debate on the Teach page first.'));
    const exampleBox = h('div', { 'data-src': 'example' }, field('Demo word problems', exampleCount, 'Generated GSM8K-style problems, each with two correct solutions and one with a slip.'));
    const fileBox = h('div', { 'data-src': 'file', hidden: true }, field('JSONL file', fileInput, 'Trajectories (agentark.trajectory/1), GSM8K example_model_solutions.jsonl, AgentArk output, or ready training rows.'));
    const urlBox = h(
      'div',
      { 'data-src': 'url', hidden: true },
      h('div', { class: 'field' }, h('label', { for: 'train-url' }, 'URL'), h('div', { class: 'row' }, urlInput, fetchBtn), h('small', { class: 'hint' }, 'Any CORS-enabled file, e.g. a dataset file on the Hugging Face Hub.')),
    );

    const strategies = h(
      'fieldset',
      { class: 'choices' },
      h('legend', {}, 'Strategy'),
      ...STRATEGIES.map(([v, label, title], i) => h('label', { class: 'choice', title }, h('input', { type: 'radio', name: 'train-strategy', value: v, checked: i === 0 }), ` ${label}`)),
    );
    const strategyHint = h('p', { class: 'hint strategy-hint' });
    const taskSelect = h('select', { id: 'train-task' }, h('option', { value: 'gsm8k' }, 'GSM8K'), h('option', { value: 'math' }, 'MATH'), h('option', { value: 'mc' }, 'Multiple choice'));
    const taskField = field('Task', taskSelect, 'of AgentArk output files');
    const formatSelect = h('select', { id: 'train-format' }, h('option', { value: 'messages' }, 'messages (every assistant turn)'), h('option', { value: 'prompt-completion' }, 'prompt-completion (last turn)'));
    const limitInput = numberInput({ value: '', min: 0, step: 1, placeholder: 'all' });
    limitInput.id = 'train-limit';
    const perQuestion = numberInput({ value: 4, min: 1, max: 32, step: 1 });
    perQuestion.id = 'train-per-question';
    const check = (id: string, label: string, checked: boolean) => {
      const input = h('input', { type: 'checkbox', id, checked });
      return { input, el: h('label', { class: 'check', for: id }, input, ` ${label}`) };
    };
    const selfCorrect = check('train-self-correct', 'Self-correction conversations', true);
    const systemPrompt = check('train-system', "Task's system prompt", true);
    const stripCalc = check('train-strip-calc', 'Strip <<a=b>> calculator notes', true);
    const daBox = h('div', { class: 'grid2', hidden: true }, field('Paths per question (K)', perQuestion), h('div', { class: 'field checks-field' }, selfCorrect.el));
    const dataStatus = statusLine();
    dataStatus.el.id = 'train-data-status';
    const counts = h('div', { class: 'counts', id: 'train-counts' });
    const preview = h('div', { class: 'preview' });
    const rowsDownload = h('button', { type: 'button', class: 'secondary small', id: 'train-rows-download', disabled: true }, 'Download rows (JSONL)');
    const dataCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'train-data-h' },
      h('h2', { id: 'train-data-h' }, '1 · Training data'),
      sources,
      debateBox,
      exampleBox,
      fileBox,
      urlBox,
      strategies,
      strategyHint,
      h('div', { class: 'grid2' }, taskField, field('Use the first', limitInput, 'records (empty = all)')),
      field('Row format', formatSelect),
      daBox,
      h('div', { class: 'check-row' }, systemPrompt.el, stripCalc.el),
      dataStatus.el,
      counts,
      preview,
      h('div', { class: 'row' }, rowsDownload),
    );

    // ---- 2 · hyperparameters ----------------------------------------------------------------
    const nameInput = h('input', { type: 'text', id: 'train-name', value: `student-${stamp()}`, spellcheck: 'false', autocomplete: 'off' });
    const num = (id: string, value: number | '', o: { min?: number; max?: number; step?: number | 'any'; placeholder?: string } = {}) => {
      const el = numberInput({ value, ...o });
      el.id = id;
      return el;
    };
    const rank = num('train-rank', 8, { min: 1, max: 256, step: 1 });
    const alpha = num('train-alpha', 16, { min: 0, step: 'any' });
    const dropout = num('train-dropout', 0.05, { min: 0, max: 0.9, step: 0.01 });
    const lr = num('train-lr', 0.0002, { min: 0, step: 'any' });
    const lengthKind = h('select', { id: 'train-length-kind' }, h('option', { value: 'epochs' }, 'epochs'), h('option', { value: 'steps' }, 'steps'));
    const epochs = num('train-epochs', 2, { min: 0.01, step: 'any' });
    const steps = num('train-steps', 60, { min: 1, step: 1 });
    steps.hidden = true;
    const batch = num('train-batch', 2, { min: 1, max: 64, step: 1 });
    const accum = num('train-grad-accum', 1, { min: 1, max: 256, step: 1 });
    const seed = num('train-seed', 42, { min: 0, step: 1 });
    const warmup = num('train-warmup', 0, { min: 0, step: 1 });
    const schedule = h('select', { id: 'train-schedule' }, h('option', { value: 'linear' }, 'linear'), h('option', { value: 'cosine' }, 'cosine'), h('option', { value: 'constant' }, 'constant'));
    const ckptEvery = num('train-ckpt-every', 5, { min: 0, step: 1 });
    const targets = h(
      'fieldset',
      { class: 'choices targets' },
      h('legend', {}, 'LoRA target modules'),
      ...PROJECTIONS.map((p) => h('label', { class: 'choice small' }, h('input', { type: 'checkbox', name: 'train-target', value: p, checked: p === 'q_proj' || p === 'v_proj' }), ` ${p}`)),
    );
    const lengthLabel = h('label', { for: 'train-epochs' }, 'Epochs');
    const lengthField = h('div', { class: 'field' }, lengthLabel, epochs, steps);
    const hyperCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'train-hp-h' },
      h('h2', { id: 'train-hp-h' }, '2 · LoRA and optimizer'),
      field('Adapter name', nameInput, 'Shown in the Chat and Evaluate pages.'),
      h('div', { class: 'grid3' }, field('Rank r', rank), field('Alpha', alpha, 'scale = alpha / r'), field('Dropout', dropout)),
      targets,
      h('div', { class: 'grid3' }, field('Learning rate', lr), field('Schedule', schedule), field('Warmup steps', warmup)),
      h('div', { class: 'grid3' }, field('Train for', lengthKind), lengthField, field('Batch', batch, 'rows per micro-batch')),
      h('div', { class: 'grid3' }, field('Grad. accum.', accum, 'micro-batches per step'), field('Seed', seed), field('Checkpoint', ckptEvery, 'every N steps, kept in this browser')),
    );

    // ---- 3 · run ----------------------------------------------------------------------------
    const startBtn = h('button', { type: 'button', class: 'primary', id: 'train-start', disabled: true }, 'Start training');
    const pauseBtn = h('button', { type: 'button', class: 'secondary', id: 'train-pause', hidden: true }, 'Pause');
    const resumeBtn = h('button', { type: 'button', class: 'primary', id: 'train-resume', hidden: true }, 'Resume');
    const cancelBtn = h('button', { type: 'button', class: 'danger', id: 'train-cancel', hidden: true }, 'Cancel');
    const progress = h('progress', { id: 'train-progress', max: 1, value: 0, 'aria-label': 'Training steps' });
    const stepText = h('strong', { id: 'train-step', 'data-step': 0, 'data-total': 0 }, 'Not started');
    const progressLabel = h('span', { class: 'muted progress-label', id: 'train-progress-label' });
    const ckptText = h('p', { class: 'muted small ckpt', id: 'train-checkpoint', 'data-step': 0 });
    const runStatus = statusLine();
    runStatus.el.id = 'train-status';
    const stored = h('div', { class: 'stored-run', id: 'train-stored', hidden: true });
    const otherTab = h('p', { class: 'note', id: 'train-other-tab', hidden: true });
    const metrics = h('dl', { class: 'metrics', id: 'train-metrics' });
    const runCard = h(
      'section',
      { class: 'card run-card', id: 'train-run', 'aria-labelledby': 'train-run-h' },
      h('h2', { id: 'train-run-h' }, '3 · Train'),
      otherTab,
      stored,
      h('p', { class: 'muted small', id: 'train-model-info' }),
      h('div', { class: 'row actions' }, startBtn, pauseBtn, resumeBtn, cancelBtn),
      h('div', { class: 'progress-row' }, h('div', { class: 'step-line' }, stepText, progressLabel), progress),
      metrics,
      ckptText,
      runStatus.el,
    );

    const chartsNote = h('span', { class: 'muted small' });
    const lossChart = lineChart({ id: 'train-loss-chart', title: 'Training loss per step', xLabel: 'step', yLabel: 'loss', format: (v) => v.toFixed(4) });
    const lrChart = lineChart({ id: 'train-lr-chart', title: 'Learning rate per step', xLabel: 'step', yLabel: 'learning rate', color: palette2(), format: (v) => v.toExponential(2), tickFormat: (v) => v.toExponential(1) });
    const chartsCard = h(
      'section',
      { class: 'card', id: 'train-charts', 'aria-labelledby': 'train-charts-h', hidden: true },
      h('div', { class: 'card-head' }, h('h2', { id: 'train-charts-h' }, 'Loss and learning rate'), chartsNote),
      h('div', { class: 'chart-grid' }, h('figure', {}, h('figcaption', {}, 'Loss'), lossChart.el), h('figure', {}, h('figcaption', {}, 'Learning rate'), lrChart.el)),
    );

    const resultBody = h('div', {});
    const resultCard = h('section', { class: 'card', id: 'train-result', 'aria-labelledby': 'train-result-h', hidden: true }, h('h2', { id: 'train-result-h' }, 'Adapter'), resultBody);

    root.append(h('div', { class: 'train-setup' }, dataCard, hyperCard, h('div', { class: 'col' }, runCard, resultCard)), chartsCard);

    // ---- data handling ----------------------------------------------------------------------
    let raw: { text: string; name: string } | null = null;
    let dataset: DatasetSummary | null = null;
    let buildSeq = 0;
    let buildTimer = 0;
    let debateCount = 0;
    const currentSource = () => sources.querySelector<HTMLInputElement>('input:checked')?.value ?? 'example';
    const currentStrategy = () => (strategies.querySelector<HTMLInputElement>('input:checked')?.value ?? 'rsft') as DistillStrategy;

    const distillSettings = (): DistillSettings => ({
      strategy: currentStrategy(),
      task: taskSelect.value as DistillSettings['task'],
      format: formatSelect.value as DistillSettings['format'],
      stripCalculator: stripCalc.input.checked,
      systemPrompt: systemPrompt.input.checked,
      perQuestion: Math.max(1, Math.floor(readNumber(perQuestion, 4))),
      selfCorrection: selfCorrect.input.checked,
      limit: Math.max(0, Math.floor(readNumber(limitInput, 0))),
    });

    const dataSource = (): TrainDataSource | null => {
      const v = currentSource();
      if (v === 'debate') return debateCount ? { kind: 'debate' } : null;
      if (v === 'example') return { kind: 'example', count: Math.max(1, Math.floor(readNumber(exampleCount, 24))) };
      return raw ? { kind: 'text', text: raw.text, name: raw.name } : null;
    };

    const renderCounts = (d: DatasetSummary) => {
      clear(counts);
      const row = (k: string, v: string) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', { class: 'num' }, v));
      const rows: HTMLElement[] = [];
      if (d.inputFormat !== 'training-rows') rows.push(row('Records (questions)', String(d.records)));
      rows.push(row(d.strategy === 'pad' ? 'Stepwise rows' : 'Training rows', String(d.rows)));
      for (const [k, v] of Object.entries(d.stats)) {
        if (k === 'rows' || k === 'questions') continue;
        if (typeof v === 'number') rows.push(row(labelOf(k), String(v)));
        else for (const [k2, v2] of Object.entries(v)) rows.push(row(`${labelOf(k)}: ${k2}`, String(v2)));
      }
      if (d.tokens) {
        rows.push(row('Tokens (labelled)', `${formatCount(d.tokens.tokens)} (${formatCount(d.tokens.labelled)})`));
        rows.push(row('Longest row', `${d.tokens.longest} of ${d.tokens.contextLength}`));
        if (d.tokens.tooLong) rows.push(row('Too long for the context (left out)', String(d.tokens.tooLong)));
      }
      counts.append(h('table', { class: 'kv compact', id: 'train-counts-table' }, h('tbody', {}, ...rows)));
    };

    const build = async () => {
      const seq = ++buildSeq;
      const src = dataSource();
      dataset = null;
      delete dataStatus.el.dataset.rows;
      rowsDownload.disabled = true;
      clear(preview);
      clear(counts);
      if (!src) {
        const v = currentSource();
        dataStatus.set(v === 'debate' ? 'No debate has finished in this session: run one on the Teach page.' : v === 'file' ? 'Choose a file.' : 'Enter a URL and fetch it.');
        updateButtons();
        return;
      }
      dataStatus.set('Building the training set…');
      try {
        const d = await api.prepareDataset(src, distillSettings());
        if (seq !== buildSeq) return;
        dataset = d;
        const what = d.strategy === 'rows' ? 'ready training rows (used as they are)' : `${STRATEGIES.find((s) => s[0] === d.strategy)![1]} from ${d.records} record${d.records === 1 ? '' : 's'}`;
        const tone = !d.rows ? 'warn' : d.warnings.length ? 'warn' : 'ok';
        dataStatus.set(`${d.source}: ${d.rows} row${d.rows === 1 ? '' : 's'} — ${what}.${d.warnings.length ? ` ${d.warnings.join(' ')}` : ''}${d.trainable ? '' : ' PAD rows train a process reward model (CLI: agentark prm); download them here.'}`, tone);
        dataStatus.el.dataset.rows = String(d.rows);
        renderCounts(d);
        if (d.preview) {
          const pre = h('pre', { class: 'row-preview' });
          pre.textContent = d.preview;
          preview.append(h('details', {}, h('summary', {}, 'First row'), pre));
        }
        rowsDownload.disabled = !d.rows;
      } catch (e) {
        if (seq !== buildSeq) return;
        dataStatus.set(`Cannot build the training set: ${errorText(e)}`, 'error');
      }
      updateButtons();
    };
    const rebuild = () => {
      clearTimeout(buildTimer);
      buildTimer = window.setTimeout(() => void build(), 150);
    };

    const updateStrategyUi = () => {
      const s = currentStrategy();
      strategyHint.textContent = STRATEGIES.find((x) => x[0] === s)![2];
      daBox.hidden = s !== 'da';
      formatSelect.disabled = s === 'pad';
      systemPrompt.input.disabled = s === 'pad';
    };
    const updateSourceUi = () => {
      const v = currentSource();
      for (const box of [debateBox, exampleBox, fileBox, urlBox]) box.hidden = box.dataset.src !== v;
      taskField.hidden = v !== 'file' && v !== 'url';
    };
    sources.addEventListener('change', () => {
      const v = currentSource();
      updateSourceUi();
      if (v === 'file' || v === 'url') raw = null;
      if (v === 'file' && fileInput.files?.[0]) void readFile();
      else rebuild();
    });
    strategies.addEventListener('change', () => {
      updateStrategyUi();
      rebuild();
    });
    for (const el of [taskSelect, formatSelect, limitInput, perQuestion, exampleCount, selfCorrect.input, systemPrompt.input, stripCalc.input]) el.addEventListener('change', rebuild);
    const readFile = async () => {
      const f = fileInput.files?.[0];
      if (!f) return;
      raw = { text: await f.text(), name: f.name };
      rebuild();
    };
    fileInput.addEventListener('change', () => void readFile());
    const fetchUrl = async () => {
      const u = urlInput.value.trim();
      if (!u) return;
      dataStatus.set(`Fetching ${u}…`);
      try {
        const res = await fetch(u);
        if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
        raw = { text: await res.text(), name: decodeURIComponent(new URL(u).pathname.split('/').pop() || u) };
        rebuild();
      } catch (e) {
        raw = null;
        dataStatus.set(`Cannot fetch ${u}: ${errorText(e)}`, 'error');
      }
    };
    fetchBtn.addEventListener('click', () => void fetchUrl());
    urlInput.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') void fetchUrl();
    });
    rowsDownload.addEventListener('click', async () => {
      if (!dataset) return;
      downloadText(`${dataset.strategy}-rows-${stamp()}.jsonl`, await api.datasetJsonl(dataset.id));
    });
    lengthKind.addEventListener('change', () => {
      const byEpochs = lengthKind.value === 'epochs';
      epochs.hidden = !byEpochs;
      steps.hidden = byEpochs;
      lengthLabel.textContent = byEpochs ? 'Epochs' : 'Optimizer steps';
      lengthLabel.htmlFor = byEpochs ? 'train-epochs' : 'train-steps';
    });

    // ---- training ---------------------------------------------------------------------------
    let phase: 'idle' | 'running' | 'paused' = 'idle';
    let storedRun: StoredRunInfo | null = null;
    let autoResumeDone = false;
    let stepEma = 0;
    /** Another tab's run shows here read-only (it holds the browser's run lock). */
    let watching = false;
    let waitingForLock = false;

    const trainSettings = (): TrainSettings => {
      const t = [...targets.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value) as TrainSettings['targets'];
      const byEpochs = lengthKind.value === 'epochs';
      return {
        name: nameInput.value.trim(),
        rank: Math.max(1, Math.floor(readNumber(rank, 8))),
        alpha: readNumber(alpha, 16),
        dropout: Math.min(0.9, Math.max(0, readNumber(dropout, 0))),
        targets: t,
        lr: readNumber(lr, 2e-4),
        schedule: schedule.value as TrainSettings['schedule'],
        warmupSteps: Math.max(0, Math.floor(readNumber(warmup, 0))),
        ...(byEpochs ? { epochs: Math.max(0.01, readNumber(epochs, 1)) } : { steps: Math.max(1, Math.floor(readNumber(steps, 60))) }),
        batchSize: Math.max(1, Math.floor(readNumber(batch, 2))),
        gradAccum: Math.max(1, Math.floor(readNumber(accum, 1))),
        seed: Math.max(0, Math.floor(readNumber(seed, 42))),
        checkpointEvery: Math.max(0, Math.floor(readNumber(ckptEvery, 5))),
      };
    };
    const applySettings = (s: TrainSettings) => {
      nameInput.value = s.name;
      rank.value = String(s.rank);
      alpha.value = String(s.alpha);
      dropout.value = String(s.dropout);
      lr.value = String(s.lr);
      schedule.value = s.schedule;
      warmup.value = String(s.warmupSteps);
      lengthKind.value = s.steps ? 'steps' : 'epochs';
      lengthKind.dispatchEvent(new Event('change'));
      if (s.steps) steps.value = String(s.steps);
      else epochs.value = String(s.epochs ?? 1);
      batch.value = String(s.batchSize);
      accum.value = String(s.gradAccum);
      seed.value = String(s.seed);
      ckptEvery.value = String(s.checkpointEvery);
      for (const i of targets.querySelectorAll<HTMLInputElement>('input')) i.checked = s.targets.includes(i.value as never);
    };

    const updateButtons = () => {
      const m = state.model;
      startBtn.hidden = phase !== 'idle';
      startBtn.disabled = watching || !!storedRun?.elsewhere || !m || !dataset || !dataset.trainable || !dataset.rows;
      pauseBtn.hidden = phase !== 'running';
      resumeBtn.hidden = phase !== 'paused';
      cancelBtn.hidden = phase === 'idle';
      for (const el of hyperCard.querySelectorAll<HTMLInputElement | HTMLSelectElement>('input, select')) el.disabled = phase !== 'idle';
      const info = runCard.querySelector('#train-model-info')!;
      info.textContent = m
        ? `Trains a LoRA adapter on ${m.id} (context ${m.contextLength}); the base weights stay frozen.`
        : 'No model loaded: load one on the Models page.';
    };

    const setStep = (step: number, total: number) => {
      stepText.dataset.step = String(step);
      stepText.dataset.total = String(total);
      stepText.textContent = `Step ${step} of ${total}`;
      progress.max = Math.max(1, total);
      progress.value = step;
    };

    const metric = (k: string, v: string) => [h('dt', {}, k), h('dd', {}, v)];
    const onEvent = (e: TrainEvent) => {
      switch (e.type) {
        case 'status':
          runStatus.set(e.text, 'warn');
          break;
        case 'start': {
          chartsCard.hidden = false;
          chartsNote.textContent = '';
          runCard.dataset.resumedFrom = e.resumedFrom === null ? '' : String(e.resumedFrom);
          runCard.dataset.startStep = String(e.step);
          lossChart.set(e.history.map((p) => ({ x: p.step, y: p.loss })));
          lrChart.set(e.history.map((p) => ({ x: p.step, y: p.lr })));
          setStep(e.step, e.totalSteps);
          stepEma = 0;
          progressLabel.textContent = e.step ? '' : 'first step…';
          metrics.replaceChildren(
            ...metric('Data', `${e.examples} rows · ${e.source}`),
            ...metric('LoRA', `r ${e.settings.rank}, alpha ${e.settings.alpha} on ${e.settings.targets.join(', ')} · ${formatCount(e.trainableParams)} parameters`),
            ...metric('Optimizer', `lr ${e.settings.lr} (${e.settings.schedule}) · batch ${e.settings.batchSize} × ${e.settings.gradAccum}`),
          );
          runStatus.set(
            e.resumedFrom !== null
              ? `Resumed ${e.name} from the checkpoint at step ${e.resumedFrom} stored in this browser.`
              : e.step
                ? `Continuing ${e.name} at step ${e.step}.`
                : `Training ${e.name} on ${e.source}: ${e.totalSteps} steps.`,
          );
          break;
        }
        case 'step': {
          lossChart.push(e.step, e.loss);
          lrChart.push(e.step, e.lr);
          setStep(e.step, e.totalSteps);
          stepEma = stepEma ? 0.7 * stepEma + 0.3 * e.stepMs : e.stepMs;
          const eta = ((e.totalSteps - e.step) * stepEma) / 1000;
          progressLabel.textContent = `loss ${e.loss.toFixed(4)} · lr ${e.lr.toExponential(2)} · ${e.tokensPerS.toFixed(0)} tokens/s · ${e.step < e.totalSteps ? `about ${duration(eta)} left` : 'done'}`;
          progressLabel.dataset.eta = String(Math.round(eta));
          break;
        }
        case 'checkpoint':
          ckptText.dataset.step = String(e.step);
          ckptText.textContent = `Last checkpoint in this browser: step ${e.step} (${sizeText(e.bytes)}, ${e.ms} ms).`;
          break;
      }
    };

    const showResult = (a: AdapterInfo) => {
      resultCard.hidden = false;
      clear(resultBody);
      const dl = (file: 'adapter_model.safetensors' | 'adapter_config.json', id: string) => {
        const b = h('button', { type: 'button', class: 'secondary small', id }, `⤓ ${file}`);
        b.addEventListener('click', async () => {
          try {
            const files = await api.adapterFiles(a.name);
            if (file === 'adapter_config.json') downloadText(file, files[file], 'application/json');
            else downloadBytes(file, files[file]);
          } catch (e) {
            runStatus.set(`Download failed: ${errorText(e)}`, 'error');
          }
        });
        return b;
      };
      const use = h('button', { type: 'button', class: 'primary', id: 'train-use-in-chat' }, 'Chat with it');
      use.addEventListener('click', async () => {
        try {
          await api.activateAdapter(a.name);
          state.dispatchEvent(new Event(ADAPTERS_EVENT));
          ctx.show('chat');
        } catch (e) {
          runStatus.set(errorText(e), 'error');
        }
      });
      resultBody.append(
        h('p', { class: 'ok-text' }, h('strong', {}, a.name), ` — rank ${a.rank}, alpha ${a.alpha}, ${a.targets.join(', ')} · ${formatCount(a.parameters)} parameters.`),
        h('p', { class: 'muted small' }, 'Registered on the loaded model: pick it in the Chat page (hot swap, no reload) or evaluate it on the Evaluate page.'),
        h('div', { class: 'field' }, h('span', { class: 'label' }, 'PEFT files'), h('div', { class: 'row' }, dl('adapter_model.safetensors', 'train-download-weights'), dl('adapter_config.json', 'train-download-config'))),
        h('small', { class: 'hint' }, 'Save both in one folder: it loads in Hugging Face PEFT and with `agentark … --adapter <folder>`.'),
        h('div', { class: 'row actions' }, use),
      );
    };

    const finish = (r: TrainOutcome) => {
      if (r.status === 'paused') {
        phase = 'paused';
        runStatus.set(`Paused at step ${r.step} of ${r.totalSteps}; the state is kept (and checkpointed in this browser).`, 'warn');
      } else {
        phase = 'idle';
        if (r.status === 'cancelled') runStatus.set(`Cancelled at step ${r.step}; its checkpoints were deleted.`, 'warn');
        else {
          runStatus.set(`Finished ${r.totalSteps} steps${r.finalLoss !== null ? `, final loss ${r.finalLoss.toFixed(4)}` : ''}. The adapter is registered on the model.`, 'ok');
          runStatus.el.dataset.done = 'true';
          if (r.adapter) showResult(r.adapter);
          state.dispatchEvent(new Event(ADAPTERS_EVENT));
          nameInput.value = `student-${stamp()}`;
        }
      }
      state.set('busy', null);
      updateButtons();
      void refreshStored();
    };

    const run = async (call: (id: string) => Promise<TrainOutcome>) => {
      const id = newTaskId('train');
      phase = 'running';
      watching = false;
      otherTab.hidden = true;
      delete runStatus.el.dataset.done;
      stored.hidden = true;
      state.set('busy', 'Training…');
      updateButtons();
      try {
        finish(await call(id));
      } catch (e) {
        phase = (await api.trainingState().catch(() => ({ state: 'idle' as const }))).state === 'paused' ? 'paused' : 'idle';
        state.set('busy', null);
        runStatus.set(`Training stopped: ${errorText(e)}`, 'error');
        updateButtons();
        void refreshStored();
      }
    };

    startBtn.addEventListener('click', () => {
      if (!dataset || phase !== 'idle') return;
      const s = trainSettings();
      if (!s.targets.length) {
        runStatus.set('Pick at least one target module.', 'error');
        return;
      }
      if (storedRun && !confirm(`Starting a new run replaces the unfinished run ${storedRun.name} stored in this browser. Start anyway?`)) return;
      chartsNote.textContent = '';
      lossChart.set([]);
      lrChart.set([]);
      ckptText.textContent = '';
      ckptText.dataset.step = '0';
      resultCard.hidden = true;
      const ds = dataset.id;
      void run((id) => api.startTraining(id, ds, s, Comlink.proxy(onEvent)));
    });
    pauseBtn.addEventListener('click', () => {
      if (phase !== 'running') return;
      pauseBtn.disabled = true;
      runStatus.set('Pausing after the current step…');
      void api.pauseTraining().finally(() => (pauseBtn.disabled = false));
    });
    const resume = () => {
      if (phase === 'running') return;
      void run((id) => api.resumeTraining(id, Comlink.proxy(onEvent)));
    };
    resumeBtn.addEventListener('click', resume);
    cancelBtn.addEventListener('click', async () => {
      if (phase === 'idle') return;
      if (phase === 'running') {
        runStatus.set('Cancelling after the current step…');
        await api.cancelTraining();
        return;
      }
      await api.cancelTraining();
      phase = 'idle';
      runStatus.set('Cancelled; the paused run and its checkpoints were deleted.', 'warn');
      updateButtons();
      void refreshStored();
    });

    // ---- a run stored in the browser ----------------------------------------------------
    const refreshStored = async () => {
      storedRun = phase === 'idle' ? await api.storedRun().catch(() => null) : null;
      clear(stored);
      stored.hidden = !storedRun;
      if (!storedRun) {
        if (chartsNote.textContent?.startsWith('stored run')) {
          // The previewed run is gone (discarded or finished elsewhere).
          lossChart.set([]);
          lrChart.set([]);
          chartsNote.textContent = '';
          chartsCard.hidden = true;
        }
        return;
      }
      const r = storedRun;
      const when = new Date(r.savedAt).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' });
      const resumeStored = h('button', { type: 'button', class: 'primary small', id: 'train-stored-resume', disabled: !r.sameModel || r.elsewhere }, 'Resume');
      const discard = h('button', { type: 'button', class: 'danger small', id: 'train-stored-discard', disabled: r.elsewhere }, 'Discard');
      resumeStored.addEventListener('click', () => {
        applySettings(r.settings);
        resume();
      });
      discard.addEventListener('click', async () => {
        if (!confirm(`Delete the unfinished run ${r.name} (step ${r.step} of ${r.totalSteps}) from this browser?`)) return;
        await api.cancelTraining();
        void refreshStored();
      });
      append(
        stored,
        h('p', {}, h('strong', {}, 'Unfinished run: '), `${r.name} — ${r.step ? `checkpoint at step ${r.step}` : 'no checkpoint yet'} of ${r.totalSteps}, ${r.examples} rows from ${r.source}, saved ${when}${r.status === 'paused' ? ' (paused)' : ''}.`),
        r.elsewhere
          ? h('p', { class: 'muted small' }, 'Another tab of this browser owns it: resume, pause or discard it there. This tab takes it over from its last checkpoint if that tab closes mid-run.')
          : r.sameModel
            ? null
            : h('p', { class: 'bad-text small' }, `It was started on ${r.modelId}: load that model to resume it.`),
        h('div', { class: 'row' }, resumeStored, discard),
      );
      if (r.history.length) {
        lossChart.set(r.history.map((p) => ({ x: p.step, y: p.loss })));
        lrChart.set(r.history.map((p) => ({ x: p.step, y: p.lr })));
        chartsCard.hidden = false;
        chartsNote.textContent = `stored run ${r.name}, up to step ${r.step}`;
      }
      if (r.elsewhere) {
        // Never resume a run another tab holds; when that tab lets go (closed mid-run), look again.
        if (!waitingForLock) {
          waitingForLock = true;
          void whenRunLockFree().then(() => {
            waitingForLock = false;
            void refreshStored();
          });
        }
        updateButtons();
        return;
      }
      // A run cut off by a reload (not paused on purpose) continues by itself on the same model.
      if (r.sameModel && r.status === 'running' && !autoResumeDone && phase === 'idle') {
        autoResumeDone = true;
        applySettings(r.settings);
        resume();
      }
    };

    // ---- another tab's run, read-only ----------------------------------------------------------
    if (typeof BroadcastChannel !== 'undefined') {
      const channel = new BroadcastChannel(RUN_CHANNEL);
      channel.onmessage = (ev: MessageEvent<RunMessage>) => {
        const msg = ev.data;
        if (phase !== 'idle') return; // this tab's own run (its worker posts here too)
        if (msg.type === 'event') {
          if (!watching) {
            watching = true;
            state.set('busy', 'Training in another tab…');
          }
          onEvent(msg.event);
          if (msg.event.type === 'start') {
            otherTab.hidden = false;
            otherTab.textContent = `Another tab of this browser is training ${msg.event.name}: its progress shows here, read-only (one run per browser).`;
          }
          updateButtons();
        } else if (msg.type === 'end' && watching) {
          watching = false;
          state.set('busy', null);
          const o = msg.outcome;
          otherTab.textContent = o.status === 'failed' ? `The run in the other tab stopped: ${o.error}` : `The run in the other tab was ${o.status === 'finished' ? 'finished' : o.status} at step ${o.step} of ${o.totalSteps}.`;
          progressLabel.textContent = '';
          updateButtons();
          void refreshStored();
        }
      };
      channel.postMessage({ type: 'hello' } satisfies RunMessage);
    }

    // ---- wiring ---------------------------------------------------------------------------
    const refreshDebate = async () => {
      debateCount = await api.debateRecordCount().catch(() => 0);
      debateLabel.textContent = debateCount ? `Last debate (${debateCount})` : 'Last debate';
      (debateBox.firstChild as HTMLElement).textContent = debateCount
        ? `${debateCount} trajector${debateCount === 1 ? 'y' : 'ies'} from the debate run on the Teach page.`
        : 'No debate has finished in this session: run one on the Teach page.';
    };
    state.on('model', async () => {
      // Loading or unloading a model drops a paused job (its checkpoint stays in the browser).
      if (phase === 'paused') phase = (await api.trainingState()).state;
      updateButtons();
      rebuild(); // token counts against the new model
      void refreshStored();
    });
    this.onShow = () => {
      void refreshDebate().then(() => {
        if (currentSource() === 'debate') rebuild();
      });
    };
    updateStrategyUi();
    updateSourceUi();
    updateButtons();
    rebuild();
    void refreshDebate();
    void refreshStored();
  },
};

function labelOf(key: string): string {
  const words: Record<string, string> = {
    skipped: 'Skipped',
    bySource: 'Rows from',
    solutions: 'Solutions',
    correctSolutions: 'Correct solutions',
    wrongSolutions: 'Wrong solutions',
    survived: 'Survived to the end',
    steps: 'Steps',
    positiveSteps: 'Positive steps',
    negativeSteps: 'Negative steps',
  };
  return words[key] ?? key.replace(/([A-Z])/g, ' $1').replace(/^./, (c) => c.toUpperCase());
}

function palette2(): string {
  return getComputedStyle(document.documentElement).getPropertyValue('--ok').trim() || '#1c7c45';
}
