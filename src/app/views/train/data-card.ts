/**
 * Card 1 of Distil & train: the trajectories (the Teach page's last debate, the built-in example,
 * a file or a URL) and the strategy (R-SFT, DA or PAD step labels) that turn them into training
 * rows, built in the worker with their counts against the loaded model.
 */
import type { DatasetSummary, DistillSettings, DistillStrategy, TrainDataSource } from '../../api';
import type { AppContext } from '../../client';
import { clear, downloadText, errorText, field, h, numberInput, readNumber, statusLine } from '../../dom';
import { formatCount } from '../../estimate';
import { labelOf, stamp } from './common';

export const STRATEGIES: [DistillStrategy, string, string][] = [
  [
    'rsft',
    'R-SFT',
    'One conversation per question whose debate ended correct: the final (judge or best agent) reasoning.',
  ],
  [
    'da',
    'DA',
    'Data augmentation: up to K distinct correct reasoning paths per question, plus self-correction conversations.',
  ],
  [
    'pad',
    'PAD labels',
    'Step-wise correctness labels of every solution (TRL stepwise rows): they train the process reward model in card 4.',
  ],
];

export interface DataCard {
  el: HTMLElement;
  /** The built set (null while building, on error or without a source). */
  dataset(): DatasetSummary | null;
  /** Called after every build (or failed build). */
  onBuilt(fn: () => void): void;
  /** Rebuilds soon (e.g. against a newly loaded model). */
  rebuild(): void;
  /** Re-reads the last debate's size (the Teach page may have run one). */
  refreshDebate(): Promise<void>;
}

export function dataCard(ctx: AppContext): DataCard {
  const { api } = ctx;
  const listeners: (() => void)[] = [];
  const updateButtons = () => listeners.forEach((fn) => fn());
  const radio = (name: string, value: string, label: string, checked = false) =>
    h('label', { class: 'choice' }, h('input', { type: 'radio', name, value, checked }), ` ${label}`);
  const debateLabel = h('span', {}, 'Last debate');
  const sources = h(
    'fieldset',
    { class: 'choices' },
    h('legend', {}, 'Trajectories from'),
    h(
      'label',
      { class: 'choice' },
      h('input', { type: 'radio', name: 'train-source', value: 'debate' }),
      ' ',
      debateLabel,
    ),
    radio('train-source', 'example', 'Built-in example', true),
    radio('train-source', 'file', 'File'),
    radio('train-source', 'url', 'URL'),
  );
  const exampleCount = numberInput({ value: 24, min: 1, max: 200, step: 1 });
  exampleCount.id = 'train-example-count';
  const fileInput = h('input', { type: 'file', id: 'train-file', accept: '.jsonl,.json,.ndjson,application/json' });
  const urlInput = h('input', {
    type: 'url',
    id: 'train-url',
    placeholder: 'https://huggingface.co/datasets/<id>/resolve/main/<file>.jsonl',
    spellcheck: 'false',
  });
  const fetchBtn = h('button', { type: 'button', class: 'secondary', id: 'train-fetch' }, 'Fetch');
  const debateBox = h(
    'div',
    { 'data-src': 'debate', hidden: true },
    h('p', { class: 'muted small', id: 'train-debate-info' }, 'Run a debate on the Teach page first.'),
  );
  const exampleBox = h(
    'div',
    { 'data-src': 'example' },
    field(
      'Demo word problems',
      exampleCount,
      'Generated GSM8K-style problems, each with two correct solutions and one with a slip.',
    ),
  );
  const fileBox = h(
    'div',
    { 'data-src': 'file', hidden: true },
    field(
      'JSONL file',
      fileInput,
      'Trajectories (agentark.trajectory/1), GSM8K example_model_solutions.jsonl, AgentArk output, or ready training rows.',
    ),
  );
  const urlBox = h(
    'div',
    { 'data-src': 'url', hidden: true },
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'train-url' }, 'URL'),
      h('div', { class: 'row' }, urlInput, fetchBtn),
      h('small', { class: 'hint' }, 'Any CORS-enabled file, e.g. a dataset file on the Hugging Face Hub.'),
    ),
  );

  const strategies = h(
    'fieldset',
    { class: 'choices' },
    h('legend', {}, 'Strategy'),
    ...STRATEGIES.map(([v, label, title], i) =>
      h(
        'label',
        { class: 'choice', title },
        h('input', { type: 'radio', name: 'train-strategy', value: v, checked: i === 0 }),
        ` ${label}`,
      ),
    ),
  );
  const strategyHint = h('p', { class: 'hint strategy-hint' });
  const taskSelect = h(
    'select',
    { id: 'train-task' },
    h('option', { value: 'gsm8k' }, 'GSM8K'),
    h('option', { value: 'math' }, 'MATH'),
    h('option', { value: 'mc' }, 'Multiple choice'),
  );
  const taskField = field('Task', taskSelect, 'of AgentArk output files');
  const formatSelect = h(
    'select',
    { id: 'train-format' },
    h('option', { value: 'messages' }, 'messages (every assistant turn)'),
    h('option', { value: 'prompt-completion' }, 'prompt-completion (last turn)'),
  );
  const padSteps = h(
    'select',
    { id: 'train-pad-steps' },
    h('option', { value: 'solution' }, 'whole solutions (AgentArk)'),
    h('option', { value: 'paragraph' }, 'paragraphs of a solution'),
  );
  const padBox = h(
    'div',
    { hidden: true },
    field('PAD steps', padSteps, 'What one label is about (agentark distill --pad-steps).'),
  );
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
  const daBox = h(
    'div',
    { class: 'grid2', hidden: true },
    field('Paths per question (K)', perQuestion),
    h('div', { class: 'field checks-field' }, selfCorrect.el),
  );
  const dataStatus = statusLine();
  dataStatus.el.id = 'train-data-status';
  const counts = h('div', { class: 'counts', id: 'train-counts' });
  const preview = h('div', { class: 'preview' });
  const rowsDownload = h(
    'button',
    { type: 'button', class: 'secondary small', id: 'train-rows-download', disabled: true },
    'Download rows (JSONL)',
  );
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
    padBox,
    h('div', { class: 'check-row' }, systemPrompt.el, stripCalc.el),
    dataStatus.el,
    counts,
    preview,
    h('div', { class: 'row' }, rowsDownload),
  );

  let raw: { text: string; name: string } | null = null;
  let dataset: DatasetSummary | null = null;
  let buildSeq = 0;
  let buildTimer = 0;
  let debateCount = 0;
  const currentSource = () => sources.querySelector<HTMLInputElement>('input:checked')?.value ?? 'example';
  const currentStrategy = () =>
    (strategies.querySelector<HTMLInputElement>('input:checked')?.value ?? 'rsft') as DistillStrategy;

  const distillSettings = (): DistillSettings => ({
    strategy: currentStrategy(),
    task: taskSelect.value as DistillSettings['task'],
    format: formatSelect.value as DistillSettings['format'],
    padSteps: padSteps.value as DistillSettings['padSteps'],
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
      if (typeof v === 'number' || typeof v === 'string') rows.push(row(labelOf(k), String(v)));
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
      dataStatus.set(
        v === 'debate'
          ? 'No debate has finished in this session: run one on the Teach page.'
          : v === 'file'
            ? 'Choose a file.'
            : 'Enter a URL and fetch it.',
      );
      updateButtons();
      return;
    }
    dataStatus.set('Building the training set…');
    try {
      const d = await api.prepareDataset(src, distillSettings());
      if (seq !== buildSeq) return;
      dataset = d;
      const what =
        d.strategy === 'rows'
          ? 'ready training rows (used as they are)'
          : `${STRATEGIES.find((s) => s[0] === d.strategy)![1]} from ${d.records} record${d.records === 1 ? '' : 's'}`;
      const tone = !d.rows ? 'warn' : d.warnings.length ? 'warn' : 'ok';
      dataStatus.set(
        `${d.source}: ${d.rows} row${d.rows === 1 ? '' : 's'} — ${what}.` +
          `${d.warnings.length ? ` ${d.warnings.join(' ')}` : ''}` +
          `${d.trainable ? '' : ' PAD rows train the process reward model in card 4 below (or download them for agentark prm).'}`,
        tone,
      );
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
    padBox.hidden = s !== 'pad';
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
  for (const el of [
    taskSelect,
    formatSelect,
    padSteps,
    limitInput,
    perQuestion,
    exampleCount,
    selfCorrect.input,
    systemPrompt.input,
    stripCalc.input,
  ])
    el.addEventListener('change', rebuild);
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
  const refreshDebate = async () => {
    debateCount = await api.debateRecordCount().catch(() => 0);
    debateLabel.textContent = debateCount ? `Last debate (${debateCount})` : 'Last debate';
    (debateBox.firstChild as HTMLElement).textContent = debateCount
      ? `${debateCount} trajector${debateCount === 1 ? 'y' : 'ies'} from the debate run on the Teach page.`
      : 'No debate has finished in this session: run one on the Teach page.';
  };
  updateStrategyUi();
  updateSourceUi();
  rebuild();
  void refreshDebate();
  return {
    el: dataCard,
    dataset: () => dataset,
    onBuilt: (fn) => listeners.push(fn),
    rebuild,
    async refreshDebate() {
      await refreshDebate();
      if (currentSource() === 'debate') rebuild();
    },
  };
}
