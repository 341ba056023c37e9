/**
 * Evaluate: the base model alone, the debate on it, and one student per loaded LoRA adapter, on a
 * question set (shipped, a file or a URL), run in the engine worker with progress. The EvalReport
 * (eval/harness.ts) is shown as a table (accuracy, self-correction attempt 1 → 2, Δ, wrong→right,
 * right→wrong, robustness, cost per question) and charts, and can be downloaded as JSON (or
 * Markdown). A report JSON — e.g. the demo's — can be opened and viewed the same way; the embedded
 * demo's report (public/data/demo-report.json, when the build ships one) is shown on first open.
 */
import { demoReport, shippedData } from 'virtual:agentark-public';
import type { Task } from '../../tasks/answers';
import type { EvalReport, RobustnessEntry, SystemReport } from '../../eval/harness';
import { debateGap, debateGapMarkdown, parseEvalReport, toMarkdown } from '../../eval/report';
import { parseQuestions, type Question } from '../../tasks/datasets';
import { ADAPTERS_EVENT, type EvalEvent, type EvalRunSettings } from '../api';
import { barChart } from '../charts';
import { Comlink, newTaskId, type AppContext, type Page } from '../client';
import { clear, downloadText, errorText, field, h, numberInput, readNumber, statusLine } from '../dom';
import { setMarkdown } from '../markdown';

const pct = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(1)}%`);
const pts = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`);
const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/** A line on the extras the demo scripts add to their reports (`demo`: a summary, RL rewards, PRM AUC, debate accuracy). */
function demoExtras(r: EvalReport): string {
  const d = (r as EvalReport & { demo?: unknown }).demo;
  if (!d || typeof d !== 'object') return '';
  const x = d as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof x.summary === 'string') parts.push(x.summary);
  if (typeof x.temperature === 'number') parts.push(`sampled systems (marked T) use temperature ${x.temperature}; the others decode greedily`);
  if (typeof x.debateTrainFinalAccuracy === 'number') parts.push(`debate accuracy on the training questions ${pct(x.debateTrainFinalAccuracy)}`);
  if (typeof x.prmAuc === 'number') parts.push(`PRM held-out AUC ${x.prmAuc.toFixed(3)}`);
  const rl = Array.isArray(x.rl) ? x.rl.filter((v): v is number => typeof v === 'number') : [];
  if (rl.length) parts.push(`RL mean reward ${rl[0]!.toFixed(2)} → ${rl[rl.length - 1]!.toFixed(2)} over ${rl.length} steps`);
  return parts.join(' · ');
}

/** The demo's distillation comparison (`demo.baseline` vs `demo.teacher`, of `demo.students` if listed; report.ts), when named. */
function gapSection(r: EvalReport): HTMLElement | null {
  const d = (r as EvalReport & { demo?: { baseline?: unknown; teacher?: unknown; students?: unknown } }).demo;
  if (typeof d?.baseline !== 'string' || typeof d.teacher !== 'string') return null;
  const students = Array.isArray(d.students) && d.students.every((x) => typeof x === 'string') ? (d.students as string[]) : undefined;
  const box = h('div', { id: 'eval-gap' });
  try {
    setMarkdown(box, debateGapMarkdown(debateGap(r, d.baseline, d.teacher, students)));
  } catch (e) {
    box.textContent = `Cannot compare the students with the debate: ${errorText(e)}`;
  }
  return box;
}

function stamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

function robust(e: RobustnessEntry | null | undefined): string {
  return e ? `${pct(e.accuracy)} (${pts(e.delta)})` : '—';
}

const COLUMNS: { head: string; title?: string; cell: (s: SystemReport) => string | HTMLElement; num?: boolean }[] = [
  { head: 'System', cell: (s) => h('span', {}, h('strong', {}, s.name), s.kind === 'debate' && s.meta ? h('span', { class: 'muted small' }, ` ${s.meta.agents}×${s.meta.rounds}`) : null) },
  { head: 'Accuracy', num: true, cell: (s) => `${pct(s.accuracy)} (${s.correct}/${s.n})` },
  { head: 'Attempt 1 → 2', title: 'Self-correction: the reply to "Review your answer and fix it if it is wrong"', num: true, cell: (s) => (s.selfCorrection ? `${pct(s.selfCorrection.attempt1)} → ${pct(s.selfCorrection.attempt2)}` : '—') },
  { head: 'Δ pts', num: true, cell: (s) => (s.selfCorrection ? pts(s.selfCorrection.delta) : '—') },
  { head: 'Wrong→right', num: true, cell: (s) => (s.selfCorrection ? pct(s.selfCorrection.wrongToRight) : '—') },
  { head: 'Right→wrong', num: true, cell: (s) => (s.selfCorrection ? pct(s.selfCorrection.rightToWrong) : '—') },
  { head: 'Distractor (Δ)', title: 'Accuracy with an irrelevant sentence added (Δ against the same questions unperturbed)', num: true, cell: (s) => robust(s.robustness?.distractor) },
  { head: 'Renamed (Δ)', title: 'Accuracy with names changed and numbers scaled (Δ against the same questions)', num: true, cell: (s) => robust(s.robustness?.rename) },
  { head: 'Calls/q', num: true, cell: (s) => num(s.cost.perQuestion.calls) },
  { head: 'Tokens/q', title: 'prompt + completion tokens per question', num: true, cell: (s) => `${num(s.cost.perQuestion.promptTokens)} + ${num(s.cost.perQuestion.completionTokens)}` },
  { head: 'Time/q', num: true, cell: (s) => `${(s.cost.perQuestion.wallMs / 1000).toFixed(2)} s` },
];

export const evaluatePage: Page = {
  id: 'evaluate',
  title: 'Evaluate',
  mount(root: HTMLElement, ctx: AppContext) {
    const { api, state } = ctx;

    // ---- questions --------------------------------------------------------------------------
    const hasShipped = shippedData.length > 0;
    const radio = (value: string, label: string, checked: boolean, disabled = false) =>
      h('label', { class: 'choice' }, h('input', { type: 'radio', name: 'eval-source', value, checked, disabled }), ` ${label}`);
    const sources = h('fieldset', { class: 'choices' }, h('legend', {}, 'Questions from'), radio('shipped', 'Shipped set', hasShipped, !hasShipped), radio('file', 'File', !hasShipped), radio('url', 'URL', false));
    const shippedSelect = h('select', { id: 'eval-shipped', disabled: !hasShipped }, ...(hasShipped ? shippedData.map((p) => h('option', { value: p }, p.replace(/^data\//, ''))) : [h('option', { value: '' }, 'none in this build')]));
    const fileInput = h('input', { type: 'file', id: 'eval-file', accept: '.jsonl,.json,.ndjson,application/json' });
    const urlInput = h('input', { type: 'url', id: 'eval-url', placeholder: 'https://…/test.jsonl', spellcheck: 'false' });
    const fetchBtn = h('button', { type: 'button', class: 'secondary', id: 'eval-fetch' }, 'Fetch');
    const shippedBox = h('div', { 'data-src': 'shipped', hidden: !hasShipped }, field('Set', shippedSelect));
    const fileBox = h('div', { 'data-src': 'file', hidden: hasShipped }, field('JSONL file', fileInput, 'GSM8K, MATH, multiple-choice or {question, answer} rows.'));
    const urlBox = h('div', { 'data-src': 'url', hidden: true }, h('div', { class: 'field' }, h('label', { for: 'eval-url' }, 'URL'), h('div', { class: 'row' }, urlInput, fetchBtn)));
    const taskSelect = h('select', { id: 'eval-task' }, h('option', { value: 'gsm8k' }, 'GSM8K'), h('option', { value: 'math' }, 'MATH'), h('option', { value: 'mc' }, 'Multiple choice'));
    const limitInput = numberInput({ value: 20, min: 1, step: 1 });
    limitInput.id = 'eval-limit';
    const qStatus = statusLine();
    qStatus.el.id = 'eval-q-status';
    const questionsCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'eval-q-h' },
      h('h2', { id: 'eval-q-h' }, '1 · Questions'),
      sources,
      shippedBox,
      fileBox,
      urlBox,
      h('div', { class: 'grid2' }, field('Task', taskSelect), field('Use the first', limitInput, 'questions')),
      qStatus.el,
    );

    let raw: { text: string; name: string } | null = null;
    let questions: Question[] = [];
    const currentSrc = () => sources.querySelector<HTMLInputElement>('input:checked')?.value ?? 'file';
    const limit = () => Math.max(1, Math.floor(readNumber(limitInput, 20)));
    const reparse = () => {
      questions = [];
      if (!raw) qStatus.set('');
      else {
        try {
          questions = parseQuestions(raw.text, taskSelect.value as Task, raw.name);
          if (!questions.length) throw new Error('no questions in it');
          qStatus.set(`${questions.length} questions in ${raw.name}; evaluating the first ${Math.min(limit(), questions.length)}.`, 'ok');
        } catch (e) {
          qStatus.set(`Cannot read ${raw.name}: ${errorText(e)}`, 'error');
        }
      }
      updateRun();
    };
    const loadUrl = async (url: string, name: string) => {
      qStatus.set(`Fetching ${name}…`);
      try {
        const res = await fetch(url);
        if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
        raw = { text: await res.text(), name };
      } catch (e) {
        raw = null;
        qStatus.set(`Cannot fetch ${name}: ${errorText(e)}`, 'error');
        updateRun();
        return;
      }
      reparse();
    };
    const loadShipped = () => void loadUrl(new URL(shippedSelect.value, document.baseURI).href, shippedSelect.value.replace(/^data\//, ''));
    sources.addEventListener('change', () => {
      const v = currentSrc();
      for (const box of [shippedBox, fileBox, urlBox]) box.hidden = box.dataset.src !== v;
      raw = null;
      if (v === 'shipped' && hasShipped) loadShipped();
      else reparse();
    });
    shippedSelect.addEventListener('change', loadShipped);
    fileInput.addEventListener('change', async () => {
      const f = fileInput.files?.[0];
      if (!f) return;
      raw = { text: await f.text(), name: f.name };
      reparse();
    });
    fetchBtn.addEventListener('click', () => {
      const u = urlInput.value.trim();
      if (u) void loadUrl(u, decodeURIComponent(u.split('/').pop() || u));
    });
    taskSelect.addEventListener('change', reparse);
    limitInput.addEventListener('change', reparse);
    if (hasShipped) loadShipped();

    // ---- systems ----------------------------------------------------------------------------
    const check = (id: string, label: string | Node, checked: boolean, extra: Record<string, string> = {}) => {
      const input = h('input', { type: 'checkbox', id, checked, ...extra });
      return { input, el: h('label', { class: 'check', for: id }, input, ' ', label) };
    };
    const single = check('eval-single', 'Single agent (base model)', true);
    const debate = check('eval-debate', 'Debate on the base model', false);
    const agents = numberInput({ value: 3, min: 1, max: 8, step: 1 });
    agents.id = 'eval-agents';
    const rounds = numberInput({ value: 2, min: 1, max: 5, step: 1 });
    rounds.id = 'eval-rounds';
    const aggregator = h('select', { id: 'eval-aggregator' }, h('option', { value: 'llm' }, 'LLM judge'), h('option', { value: 'vote' }, 'Majority vote'));
    const debateBox = h('div', { class: 'grid3 indent', hidden: true }, field('Agents', agents), field('Rounds', rounds), field('Aggregator', aggregator));
    debate.input.addEventListener('change', () => {
      debateBox.hidden = !debate.input.checked;
      updateRun();
    });
    single.input.addEventListener('change', () => updateRun());
    const students = h('div', { id: 'eval-students', class: 'students' });
    const systemsCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'eval-s-h' },
      h('h2', { id: 'eval-s-h' }, '2 · Systems'),
      h('div', { class: 'check-list' }, single.el, debate.el),
      debateBox,
      h('h3', {}, 'Students (LoRA adapters)'),
      students,
    );
    const refreshStudents = async () => {
      const was = new Map([...students.querySelectorAll<HTMLInputElement>('input')].map((i) => [i.value, i.checked]));
      const { list } = state.model ? await api.adapters().catch(() => ({ list: [] })) : { list: [] };
      clear(students);
      if (!list.length) students.append(h('p', { class: 'muted small' }, 'No adapters on the loaded model: train one on the Distil & train page, or load PEFT files in the Chat settings.'));
      for (const a of list) {
        const c = check(`eval-student-${a.name.replace(/[^\w-]/g, '_')}`, h('span', {}, `student: ${a.name}`, h('span', { class: 'muted small' }, ` r${a.rank}`)), was.get(a.name) ?? true, { name: 'eval-student', value: a.name });
        c.input.addEventListener('change', () => updateRun());
        students.append(c.el);
      }
      updateRun();
    };
    state.addEventListener(ADAPTERS_EVENT, () => void refreshStudents());
    state.on('model', () => void refreshStudents());

    // ---- settings + run ---------------------------------------------------------------------
    const maxTokens = numberInput({ value: 256, min: 1, step: 1 });
    maxTokens.id = 'eval-max-tokens';
    const temperature = numberInput({ value: 0, min: 0, max: 2, step: 0.05 });
    temperature.id = 'eval-temperature';
    const seed = numberInput({ value: '', min: 0, step: 1, placeholder: 'none' });
    seed.id = 'eval-seed';
    const selfCorrection = check('eval-self-correction', 'Self-correction probe (a second "review your answer" turn)', true);
    const robustness = check('eval-robustness', 'Robustness (distractor sentence, renamed names / scaled numbers)', true);
    const runBtn = h('button', { type: 'button', class: 'primary', id: 'eval-run', disabled: true }, 'Run evaluation');
    const stopBtn = h('button', { type: 'button', class: 'danger', id: 'eval-stop', hidden: true }, 'Stop');
    const progress = h('progress', { id: 'eval-progress', max: 1, value: 0, hidden: true, 'aria-label': 'Evaluation progress' });
    const progressLabel = h('span', { class: 'muted progress-label', id: 'eval-progress-label' });
    const runStatus = statusLine();
    runStatus.el.id = 'eval-status';
    const runCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'eval-r-h' },
      h('h2', { id: 'eval-r-h' }, '3 · Run'),
      h('div', { class: 'grid3' }, field('Max tokens', maxTokens), field('Temperature', temperature, '0 = greedy'), field('Seed', seed)),
      h('div', { class: 'check-list' }, selfCorrection.el, robustness.el),
      h('div', { class: 'row actions' }, runBtn, stopBtn),
      h('div', { class: 'progress-row' }, progress, progressLabel),
      runStatus.el,
    );

    // ---- results ----------------------------------------------------------------------------
    const openInput = h('input', { type: 'file', id: 'eval-open', accept: '.json,application/json', class: 'visually-hidden', tabindex: -1 });
    const openBtn = h('button', { type: 'button', class: 'secondary', id: 'eval-open-btn' }, 'Open a report JSON…');
    const downloadBtn = h('button', { type: 'button', class: 'secondary', id: 'eval-download', disabled: true }, 'Download JSON');
    const downloadMd = h('button', { type: 'button', class: 'secondary', id: 'eval-download-md', disabled: true }, 'Markdown');
    const reportHead = h('p', { class: 'muted', id: 'eval-report-head' }, 'Run an evaluation, or open a report JSON (e.g. the demo’s).');
    const reportNote = h('p', { class: 'muted small', id: 'eval-report-note', hidden: true });
    const tableBox = h('div', { class: 'table-scroll' });
    const accuracyChart = barChart({ id: 'eval-accuracy-chart', title: 'Accuracy per system', yLabel: 'accuracy', percent: true });
    const costChart = barChart({ id: 'eval-cost-chart', title: 'Cost per question per system', yLabel: 'tokens per question', rightLabel: 'seconds per question' });
    const perQuestion = h('div', { class: 'per-question' });
    const charts = h(
      'div',
      { class: 'chart-grid', hidden: true },
      h('figure', {}, h('figcaption', {}, 'Accuracy'), accuracyChart.el),
      h('figure', {}, h('figcaption', {}, 'Cost per question'), costChart.el),
    );
    const resultsCard = h(
      'section',
      { class: 'card', id: 'eval-results', 'aria-labelledby': 'eval-res-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'eval-res-h' }, 'Report'), h('div', { class: 'row' }, openBtn, downloadBtn, downloadMd, openInput)),
      reportHead,
      reportNote,
      tableBox,
      charts,
      perQuestion,
    );
    root.append(h('div', { class: 'teach-setup' }, questionsCard, systemsCard, runCard), resultsCard);

    let report: EvalReport | null = null;
    const showReport = (r: EvalReport, origin: string, source: 'demo' | 'run' | 'file' = 'file') => {
      report = r;
      resultsCard.dataset.source = source;
      const extras = demoExtras(r);
      reportNote.textContent = extras ? `Demo: ${extras}.` : '';
      reportNote.hidden = !extras;
      const st = r.settings;
      reportHead.textContent = `${origin} · ${r.task}${r.dataset ? ` · ${r.dataset}` : ''} · ${r.questions} questions · max tokens ${st.maxTokens} · temperature ${st.temperature}${st.seed !== null ? ` · seed ${st.seed}` : ''} · ${new Date(r.createdAt).toLocaleString()}`;
      clear(tableBox);
      const head = h('tr', {}, ...COLUMNS.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null, title: c.title }, c.head)));
      const rows = r.systems.map((s) => h('tr', { 'data-system': s.name }, ...COLUMNS.map((c) => h('td', { class: c.num ? 'num nowrap' : null }, c.cell(s)))));
      tableBox.append(h('table', { class: 'list report', id: 'eval-table' }, h('thead', {}, head), h('tbody', {}, ...rows)));
      const gap = gapSection(r);
      if (gap) tableBox.append(gap);
      const errs = r.systems.filter((s) => s.errors > 0);
      if (errs.length) tableBox.append(h('p', { class: 'bad-text small' }, `Failed calls (counted wrong): ${errs.map((s) => `${s.name} ${s.errors}`).join(', ')}.`));
      const names = r.systems.map((s) => s.name);
      charts.hidden = false;
      accuracyChart.set(names, [
        { label: 'accuracy', data: r.systems.map((s) => s.accuracy) },
        ...(r.settings.selfCorrection ? [{ label: 'after review (attempt 2)', data: r.systems.map((s) => s.selfCorrection?.attempt2 ?? null) }] : []),
        ...(r.settings.robustness
          ? [
              { label: 'distractor', data: r.systems.map((s) => s.robustness?.distractor?.accuracy ?? null) },
              { label: 'renamed', data: r.systems.map((s) => s.robustness?.rename?.accuracy ?? null) },
            ]
          : []),
      ]);
      costChart.set(names, [
        { label: 'prompt tokens / q', data: r.systems.map((s) => s.cost.perQuestion.promptTokens) },
        { label: 'completion tokens / q', data: r.systems.map((s) => s.cost.perQuestion.completionTokens) },
        { label: 'seconds / q', data: r.systems.map((s) => s.cost.perQuestion.wallMs / 1000), right: true },
      ]);
      // Per question: which system got it right.
      clear(perQuestion);
      const ids = r.systems[0]?.questions.map((q) => q.id) ?? [];
      if (ids.length) {
        const mark = (ok: boolean | undefined, extracted: string | null | undefined, error?: string) =>
          h('td', { class: 'num', title: error ?? (extracted === null ? 'no answer' : `answer ${extracted}`) }, h('span', { class: `pill ${ok ? 'yes' : 'bad'}` }, ok ? '✓' : '✗'));
        const t = h(
          'table',
          { class: 'list compact' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Question'), ...names.map((n) => h('th', { scope: 'col', class: 'num' }, n)))),
          h('tbody', {}, ...ids.map((id, i) => h('tr', {}, h('td', { class: 'break' }, id), ...r.systems.map((s) => mark(s.questions[i]?.correct, s.questions[i]?.extracted, s.questions[i]?.error))))),
        );
        perQuestion.append(h('details', {}, h('summary', {}, `Per question (${ids.length})`), h('div', { class: 'table-scroll' }, t)));
      }
      downloadBtn.disabled = downloadMd.disabled = false;
    };
    downloadBtn.addEventListener('click', () => {
      if (report) downloadText(`eval-${stamp()}.json`, `${JSON.stringify(report, null, 2)}\n`, 'application/json');
    });
    downloadMd.addEventListener('click', () => {
      if (report) downloadText(`eval-${stamp()}.md`, toMarkdown(report), 'text/markdown');
    });
    openBtn.addEventListener('click', () => openInput.click());
    openInput.addEventListener('change', async () => {
      const f = openInput.files?.[0];
      openInput.value = '';
      if (!f) return;
      try {
        showReport(parseEvalReport(await f.text()), f.name);
        runStatus.set(`Opened ${f.name}.`, 'ok');
      } catch (e) {
        runStatus.set(`Cannot open ${f.name}: ${errorText(e)}`, 'error');
      }
    });

    let running: string | null = null;
    const selectedStudents = () => [...students.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value);
    const updateRun = () => {
      const any = single.input.checked || debate.input.checked || selectedStudents().length > 0;
      runBtn.disabled = !!running || !state.model || !questions.length || !any;
      runBtn.title = !state.model ? 'Load a model first' : !questions.length ? 'Pick questions first' : !any ? 'Pick at least one system' : '';
    };
    state.on('model', updateRun);

    runBtn.addEventListener('click', async () => {
      if (running) return;
      const picked = questions.slice(0, limit());
      const s = readNumber(seed, NaN);
      const settings: EvalRunSettings = {
        single: single.input.checked,
        debate: debate.input.checked ? { agents: Math.max(1, Math.floor(readNumber(agents, 3))), rounds: Math.max(1, Math.floor(readNumber(rounds, 2))), aggregator: aggregator.value as 'llm' | 'vote' } : null,
        students: selectedStudents(),
        maxTokens: Math.max(1, Math.floor(readNumber(maxTokens, 256))),
        temperature: Math.max(0, readNumber(temperature, 0)),
        ...(Number.isFinite(s) ? { seed: Math.floor(s) } : {}),
        selfCorrection: selfCorrection.input.checked,
        robustness: robustness.input.checked,
        task: taskSelect.value as Task,
        dataset: raw?.name,
      };
      const nSystems = (settings.single ? 1 : 0) + (settings.debate ? 1 : 0) + settings.students.length;
      const id = newTaskId('eval');
      running = id;
      updateRun();
      stopBtn.hidden = false;
      progress.hidden = false;
      progress.max = nSystems * picked.length;
      progress.value = 0;
      delete runStatus.el.dataset.done;
      runStatus.set(`Evaluating ${nSystems} system${nSystems === 1 ? '' : 's'} on ${picked.length} question${picked.length === 1 ? '' : 's'}…`);
      state.set('busy', 'Evaluating…');
      const t0 = performance.now();
      const onEvent = (e: EvalEvent) => {
        progress.max = e.systems * e.total;
        progress.value = e.systemIndex * e.total + e.done;
        progressLabel.textContent = `${e.system}: ${e.done} of ${e.total} · accuracy so far ${pct(e.accuracy)}`;
      };
      try {
        const r = await api.evaluate(id, picked, settings, Comlink.proxy(onEvent));
        showReport(r, 'This run', 'run');
        runStatus.set(`Done in ${((performance.now() - t0) / 1000).toFixed(1)} s.`, 'ok');
        runStatus.el.dataset.done = 'true';
      } catch (e) {
        const aborted = (e as Error).name === 'AbortError' || /abort/i.test(errorText(e));
        runStatus.set(aborted ? 'Evaluation stopped.' : `Evaluation failed: ${errorText(e)}`, aborted ? 'warn' : 'error');
      } finally {
        running = null;
        stopBtn.hidden = true;
        progressLabel.textContent = '';
        state.set('busy', null);
        updateRun();
      }
    });
    stopBtn.addEventListener('click', () => {
      if (running) void api.abort(running);
    });
    // The embedded demo's report, fetched the first time the page is shown (unless another report is up by then).
    let demoTried = false;
    const showDemoReport = async (file: string) => {
      try {
        const res = await fetch(new URL(file, document.baseURI));
        if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`);
        const r = parseEvalReport(await res.text());
        if (!report) showReport(r, 'Embedded demo report', 'demo');
      } catch (e) {
        if (!report) runStatus.set(`Cannot show the embedded demo report (${file}): ${errorText(e)}`, 'warn');
      }
    };
    this.onShow = () => {
      void refreshStudents();
      if (demoReport && !demoTried) {
        demoTried = true;
        void showDemoReport(demoReport);
      }
    };
    void refreshStudents();
  },
};
