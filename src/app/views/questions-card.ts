/**
 * The "Questions" card shared by Teach, Evaluate and the PAD card's RL: a question set from the
 * build (public/data/*.jsonl), a file or a URL, read with the chosen task, of which the first N are
 * used. Element ids start with the page's prefix (`eval-file`, `teach-limit`, …).
 */
import { shippedData } from 'virtual:agentark-public';
import type { Task } from '../../tasks/answers';
import { parseQuestions, type Question } from '../../tasks/datasets';
import { clear, errorText, field, h, numberInput, readNumber, statusLine } from '../dom';
import { setMarkdown } from '../markdown';

const TASKS: [Task, string][] = [
  ['gsm8k', 'GSM8K'],
  ['math', 'MATH'],
  ['mc', 'Multiple choice'],
];

export interface QuestionsCard {
  el: HTMLElement;
  /** The first N questions (what the page uses). */
  picked(): Question[];
  /** Every question read. */
  all(): Question[];
  task(): Task;
  /** The file or set name, for reports. */
  sourceName(): string | null;
  /** Picks a shipped set (e.g. the one a report names) and loads it. */
  selectShipped(path: string): void;
  setLimit(n: number): void;
  /** Called whenever the questions (or N) change. */
  onChange(fn: () => void): void;
}

export function questionsCard(opts: {
  prefix: string;
  heading: string;
  defaultLimit: number;
  /** The status line's tail, e.g. "the debate uses the first 3". */
  usage: (n: number) => string;
  preview?: boolean;
  /** A shipped set to start with (default: the first in the build). */
  initial?: string;
  tag?: 'section' | 'div';
}): QuestionsCard {
  const p = opts.prefix;
  const hasShipped = shippedData.length > 0;
  const radio = (value: string, label: string, checked: boolean, disabled = false) =>
    h(
      'label',
      { class: 'choice' },
      h('input', { type: 'radio', name: `${p}-source`, value, checked, disabled }),
      ` ${label}`,
    );
  const sources = h(
    'fieldset',
    { class: 'choices' },
    h('legend', {}, 'Questions from'),
    radio('shipped', 'Shipped set', hasShipped, !hasShipped),
    radio('file', 'File', !hasShipped),
    radio('url', 'URL', false),
  );
  const shippedSelect = h(
    'select',
    { id: `${p}-shipped`, disabled: !hasShipped },
    ...(hasShipped
      ? shippedData.map((d) => h('option', { value: d }, d.replace(/^data\//, '')))
      : [h('option', { value: '' }, 'none in this build')]),
  );
  const fileInput = h('input', { type: 'file', id: `${p}-file`, accept: '.jsonl,.json,.ndjson,application/json' });
  const urlInput = h('input', {
    type: 'url',
    id: `${p}-url`,
    placeholder: 'https://…/questions.jsonl',
    spellcheck: 'false',
  });
  const fetchBtn = h('button', { type: 'button', class: 'secondary', id: `${p}-fetch` }, 'Fetch');
  const shippedBox = h(
    'div',
    { 'data-src': 'shipped', hidden: !hasShipped },
    field(
      'Set',
      shippedSelect,
      hasShipped ? undefined : 'No question sets ship with this build (public/data/*.jsonl).',
    ),
  );
  const fileBox = h(
    'div',
    { 'data-src': 'file', hidden: hasShipped },
    field('JSONL file', fileInput, 'GSM8K, MATH, multiple-choice or plain {question, answer} rows.'),
  );
  const urlBox = h(
    'div',
    { 'data-src': 'url', hidden: true },
    h(
      'div',
      { class: 'field' },
      h('label', { for: `${p}-url` }, 'URL'),
      h('div', { class: 'row' }, urlInput, fetchBtn),
    ),
  );
  const taskSelect = h('select', { id: `${p}-task` }, ...TASKS.map(([t, label]) => h('option', { value: t }, label)));
  const limitInput = numberInput({ value: opts.defaultLimit, min: 1, step: 1 });
  limitInput.id = `${p}-limit`;
  const status = statusLine();
  status.el.id = `${p}-q-status`;
  const preview = h('div', { class: 'preview' });
  const el = h(
    opts.tag ?? 'section',
    { class: opts.tag === 'div' ? 'questions' : 'card', 'aria-labelledby': `${p}-q-h` },
    h(opts.tag === 'div' ? 'h3' : 'h2', { id: `${p}-q-h` }, opts.heading),
    sources,
    shippedBox,
    fileBox,
    urlBox,
    h('div', { class: 'grid2' }, field('Task', taskSelect), field('Use the first', limitInput, 'questions')),
    status.el,
    preview,
  );

  let raw: { text: string; name: string } | null = null;
  let questions: Question[] = [];
  const listeners: (() => void)[] = [];
  const changed = () => listeners.forEach((fn) => fn());
  const limit = () => Math.max(1, Math.floor(readNumber(limitInput, opts.defaultLimit)));
  const reparse = () => {
    clear(preview);
    questions = [];
    if (!raw) status.set('');
    else {
      try {
        questions = parseQuestions(raw.text, taskSelect.value as Task, raw.name);
        if (!questions.length) throw new Error('no questions in it');
        status.set(
          `${questions.length} questions in ${raw.name}; ${opts.usage(Math.min(limit(), questions.length))}.`,
          'ok',
        );
        if (opts.preview) {
          const first = h('div', { class: 'markdown' });
          setMarkdown(first, questions[0]!.question);
          preview.append(h('details', {}, h('summary', {}, `First question (${questions[0]!.id})`), first));
        }
      } catch (e) {
        status.set(`Cannot read ${raw.name}: ${errorText(e)}`, 'error');
      }
    }
    changed();
  };
  let loadSeq = 0;
  const loadUrl = async (url: string, name: string) => {
    const seq = ++loadSeq;
    status.set(`Fetching ${name}…`);
    try {
      const res = await fetch(url);
      if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
      const text = await res.text();
      if (seq !== loadSeq) return; // a later pick replaced this one
      raw = { text, name };
    } catch (e) {
      if (seq !== loadSeq) return;
      raw = null;
      status.set(`Cannot fetch ${name}: ${errorText(e)}`, 'error');
      questions = [];
      changed();
      return;
    }
    reparse();
  };
  const loadShipped = () =>
    void loadUrl(new URL(shippedSelect.value, document.baseURI).href, shippedSelect.value.replace(/^data\//, ''));
  const current = () => sources.querySelector<HTMLInputElement>('input:checked')?.value ?? 'file';
  sources.addEventListener('change', () => {
    const v = current();
    for (const box of [shippedBox, fileBox, urlBox]) box.hidden = box.dataset.src !== v;
    raw = null;
    loadSeq++;
    if (v === 'shipped' && hasShipped) loadShipped();
    else reparse();
  });
  shippedSelect.addEventListener('change', loadShipped);
  fileInput.addEventListener('change', async () => {
    const f = fileInput.files?.[0];
    if (!f) return;
    loadSeq++;
    raw = { text: await f.text(), name: f.name };
    reparse();
  });
  const fetchUrl = () => {
    const u = urlInput.value.trim();
    if (u) void loadUrl(u, decodeURIComponent(u.split('/').pop() || u));
  };
  fetchBtn.addEventListener('click', fetchUrl);
  urlInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') fetchUrl();
  });
  taskSelect.addEventListener('change', reparse);
  limitInput.addEventListener('change', reparse);
  if (hasShipped) {
    if (opts.initial && shippedData.includes(opts.initial)) shippedSelect.value = opts.initial;
    loadShipped();
  }

  return {
    el,
    picked: () => questions.slice(0, limit()),
    all: () => questions,
    task: () => taskSelect.value as Task,
    sourceName: () => raw?.name ?? null,
    selectShipped(path: string) {
      if (!hasShipped || !shippedData.includes(path)) return;
      const radioShipped = sources.querySelector<HTMLInputElement>('input[value=shipped]')!;
      if (!radioShipped.checked) {
        radioShipped.checked = true;
        for (const box of [shippedBox, fileBox, urlBox]) box.hidden = box.dataset.src !== 'shipped';
      }
      if (shippedSelect.value === path && raw) return;
      shippedSelect.value = path;
      loadShipped();
    },
    setLimit(n: number) {
      limitInput.value = String(n);
      reparse();
    },
    onChange(fn) {
      listeners.push(fn);
    },
  };
}
