/**
 * Evaluate: the base model alone, the debate on it, and one student per loaded LoRA adapter, on a
 * question set (shipped, a file or a URL), run in the engine worker with progress. The EvalReport
 * (eval/harness.ts) is shown as a table (accuracy, self-correction attempt 1 → 2, Δ, wrong→right,
 * right→wrong, robustness, cost per question) and charts, and can be downloaded as JSON (or
 * Markdown). A report JSON — e.g. the demo's — can be opened and viewed the same way; the embedded
 * demo's report (public/data/demo-report.json, when the build ships one) is shown on first open.
 */
import { defaultModel, demoReport, shippedData } from 'virtual:agentark-public';
import type { EvalReport, RobustnessEntry, SystemReport } from '../../eval/harness';
import { debateGap, debateGapMarkdown, parseEvalReport, toMarkdown } from '../../eval/report';
import { demoEvalSettings, type DemoEvalSettings } from '../../demo/eval-settings';
import { ADAPTERS_EVENT, type EvalEvent, type EvalRunSettings } from '../api';
import { barChart } from '../charts';
import { Comlink, newTaskId, type AppContext, type Page } from '../client';
import { clear, downloadText, errorText, field, h, numberInput, readNumber, statusLine } from '../dom';
import { setMarkdown } from '../markdown';
import { questionsCard } from './questions-card';

/** How the app names the embedded model (public/models/default/). */
const EMBEDDED_ID = 'models/default';

const pct = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(1)}%`);
const pts = (x: number | null | undefined) =>
  x == null || !Number.isFinite(x) ? '—' : `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`;
const num = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/** A line on the extras the demo scripts add to their reports (`demo`: a summary, RL rewards, PRM AUC, debate accuracy). */
function demoExtras(r: EvalReport): string {
  const d = (r as EvalReport & { demo?: unknown }).demo;
  if (!d || typeof d !== 'object') return '';
  const x = d as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof x.summary === 'string') parts.push(x.summary);
  if (typeof x.temperature === 'number')
    parts.push(`sampled systems (marked T) use temperature ${x.temperature}; the others decode greedily`);
  if (typeof x.debateTrainFinalAccuracy === 'number')
    parts.push(`debate accuracy on the training questions ${pct(x.debateTrainFinalAccuracy)}`);
  if (typeof x.prmAuc === 'number') parts.push(`PRM held-out AUC ${x.prmAuc.toFixed(3)}`);
  const rl = Array.isArray(x.rl) ? x.rl.filter((v): v is number => typeof v === 'number') : [];
  if (rl.length)
    parts.push(`RL mean reward ${rl[0]!.toFixed(2)} → ${rl[rl.length - 1]!.toFixed(2)} over ${rl.length} steps`);
  return parts.join(' · ');
}

/** The demo's distillation comparison (`demo.baseline` vs `demo.teacher`, of `demo.students` if listed; report.ts), when named. */
function gapSection(r: EvalReport): HTMLElement | null {
  const d = (r as EvalReport & { demo?: { baseline?: unknown; teacher?: unknown; students?: unknown } }).demo;
  if (typeof d?.baseline !== 'string' || typeof d.teacher !== 'string') return null;
  const students =
    Array.isArray(d.students) && d.students.every((x) => typeof x === 'string') ? (d.students as string[]) : undefined;
  const box = h('div', { id: 'eval-gap' });
  try {
    setMarkdown(box, debateGapMarkdown(debateGap(r, d.baseline, d.teacher, students)));
    box.append(
      h(
        'p',
        { class: 'muted small', id: 'eval-gap-share' },
        "Share of the debate's lead = (student − single agent) ÷ (debate − single agent): 100% matches the debate, " +
          'above 100% (e.g. 166.7%) beats it, below 0% falls behind the single agent. On a few questions these ' +
          'shares swing widely; the sign test says whether the difference from the single agent is more than chance.',
      ),
    );
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
  {
    head: 'System',
    cell: (s) =>
      h(
        'span',
        {},
        h('strong', {}, s.name),
        s.kind === 'debate' && s.meta
          ? h('span', { class: 'muted small' }, ` ${s.meta.agents}×${s.meta.rounds}`)
          : null,
      ),
  },
  { head: 'Accuracy', num: true, cell: (s) => `${pct(s.accuracy)} (${s.correct}/${s.n})` },
  {
    head: 'Attempt 1 → 2',
    title: 'Self-correction: the reply to "Review your answer and fix it if it is wrong"',
    num: true,
    cell: (s) => (s.selfCorrection ? `${pct(s.selfCorrection.attempt1)} → ${pct(s.selfCorrection.attempt2)}` : '—'),
  },
  { head: 'Δ pts', num: true, cell: (s) => (s.selfCorrection ? pts(s.selfCorrection.delta) : '—') },
  { head: 'Wrong→right', num: true, cell: (s) => (s.selfCorrection ? pct(s.selfCorrection.wrongToRight) : '—') },
  { head: 'Right→wrong', num: true, cell: (s) => (s.selfCorrection ? pct(s.selfCorrection.rightToWrong) : '—') },
  {
    head: 'Distractor (Δ)',
    title: 'Accuracy with an irrelevant sentence added (Δ against the same questions unperturbed)',
    num: true,
    cell: (s) => robust(s.robustness?.distractor),
  },
  {
    head: 'Renamed (Δ)',
    title: 'Accuracy with names changed and numbers scaled (Δ against the same questions)',
    num: true,
    cell: (s) => robust(s.robustness?.rename),
  },
  { head: 'Calls/q', num: true, cell: (s) => num(s.cost.perQuestion.calls) },
  {
    head: 'Tokens/q',
    title: 'prompt + completion tokens per question',
    num: true,
    cell: (s) => `${num(s.cost.perQuestion.promptTokens)} + ${num(s.cost.perQuestion.completionTokens)}`,
  },
  { head: 'Time/q', num: true, cell: (s) => `${(s.cost.perQuestion.wallMs / 1000).toFixed(2)} s` },
];

export const evaluatePage: Page = {
  id: 'evaluate',
  title: 'Evaluate',
  mount(root: HTMLElement, ctx: AppContext) {
    const { api, state } = ctx;

    // ---- questions --------------------------------------------------------------------------
    const qc = questionsCard({
      prefix: 'eval',
      heading: '1 · Questions',
      defaultLimit: 20,
      usage: (n) => `evaluating the first ${n}`,
    });
    const questionsCardEl = qc.el;
    qc.onChange(() => updateRun());

    // ---- systems ----------------------------------------------------------------------------
    const check = (id: string, label: string | Node, checked: boolean, extra: Record<string, string> = {}) => {
      const input = h('input', { type: 'checkbox', id, checked, ...extra });
      return { input, el: h('label', { class: 'check', for: id }, input, ' ', label) };
    };
    const single = check('eval-single', 'Single agent (base model)', true);
    const greedy = check('eval-greedy', 'Single agent, greedy (temperature 0)', false);
    const debate = check('eval-debate', 'Debate on the base model', false);
    const studentsGreedy = check('eval-students-greedy', 'Students greedy (temperature 0)', false);
    const agents = numberInput({ value: 3, min: 1, max: 8, step: 1 });
    agents.id = 'eval-agents';
    const rounds = numberInput({ value: 2, min: 1, max: 5, step: 1 });
    rounds.id = 'eval-rounds';
    const aggregator = h(
      'select',
      { id: 'eval-aggregator' },
      h('option', { value: 'vote' }, 'Majority vote'),
      h('option', { value: 'llm' }, 'LLM judge'),
    );
    const debateFormat = h(
      'select',
      { id: 'eval-debate-format' },
      h('option', { value: 'small' }, 'Small model (compact, answers quoted)'),
      h('option', { value: 'standard' }, 'Standard (whole solutions quoted)'),
    );
    const debateBox = h(
      'div',
      { class: 'grid2 indent', hidden: true },
      field('Agents', agents),
      field('Rounds', rounds),
      field('Aggregator', aggregator),
      field('Prompt format', debateFormat, 'Small fits short contexts.'),
    );
    debate.input.addEventListener('change', () => {
      debateBox.hidden = !debate.input.checked;
      updateRun();
    });
    single.input.addEventListener('change', () => updateRun());
    greedy.input.addEventListener('change', () => updateRun());
    const students = h('div', { id: 'eval-students', class: 'students' });
    const systemsCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'eval-s-h' },
      h('h2', { id: 'eval-s-h' }, '2 · Systems'),
      h('div', { class: 'check-list' }, single.el, greedy.el, debate.el),
      debateBox,
      h('h3', {}, 'Students (LoRA adapters)'),
      students,
      h('div', { class: 'check-list' }, studentsGreedy.el),
    );
    const refreshStudents = async () => {
      const was = new Map([...students.querySelectorAll<HTMLInputElement>('input')].map((i) => [i.value, i.checked]));
      const { list } = state.model ? await api.adapters().catch(() => ({ list: [] })) : { list: [] };
      clear(students);
      if (!list.length)
        students.append(
          h(
            'p',
            { class: 'muted small' },
            'No adapters on the loaded model: train one on the Distil & train page, or load PEFT files in the Chat settings.',
          ),
        );
      for (const a of list) {
        const c = check(
          `eval-student-${a.name.replace(/[^\w-]/g, '_')}`,
          h('span', {}, `student: ${a.name}`, h('span', { class: 'muted small' }, ` r${a.rank}`)),
          was.get(a.name) ?? true,
          { name: 'eval-student', value: a.name },
        );
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
    const systemPrompt = h('textarea', {
      id: 'eval-system',
      rows: 3,
      spellcheck: 'false',
      placeholder: "Empty = the task's default student prompt",
    });
    const settingsOrigin = h('p', { class: 'muted small', id: 'eval-settings-origin', hidden: true });
    const resetSettings = h(
      'button',
      { type: 'button', class: 'link', id: 'eval-settings-reset', hidden: true },
      "Back to the report's settings",
    );
    const selfCorrection = check(
      'eval-self-correction',
      'Self-correction probe (a second "review your answer" turn)',
      true,
    );
    const robustness = check(
      'eval-robustness',
      'Robustness (distractor sentence, renamed names / scaled numbers)',
      true,
    );
    const runBtn = h('button', { type: 'button', class: 'primary', id: 'eval-run', disabled: true }, 'Run evaluation');
    const stopBtn = h('button', { type: 'button', class: 'danger', id: 'eval-stop', hidden: true }, 'Stop');
    const progress = h('progress', {
      id: 'eval-progress',
      max: 1,
      value: 0,
      hidden: true,
      'aria-label': 'Evaluation progress',
    });
    const progressLabel = h('span', { class: 'muted progress-label', id: 'eval-progress-label' });
    const runStatus = statusLine();
    runStatus.el.id = 'eval-status';
    const runCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'eval-r-h' },
      h('h2', { id: 'eval-r-h' }, '3 · Run'),
      h('div', {}, settingsOrigin, resetSettings),
      field('System prompt', systemPrompt, 'Of the single agent and the students.'),
      h(
        'div',
        { class: 'grid3' },
        field('Max tokens', maxTokens),
        field('Temperature', temperature, '0 = greedy'),
        field('Seed', seed),
      ),
      h('div', { class: 'check-list' }, selfCorrection.el, robustness.el),
      h('div', { class: 'row actions' }, runBtn, stopBtn),
      h('div', { class: 'progress-row' }, progress, progressLabel),
      runStatus.el,
    );

    // ---- results ----------------------------------------------------------------------------
    const openInput = h('input', {
      type: 'file',
      id: 'eval-open',
      accept: '.json,application/json',
      class: 'visually-hidden',
      tabindex: -1,
    });
    const openBtn = h('button', { type: 'button', class: 'secondary', id: 'eval-open-btn' }, 'Open a report JSON…');
    const downloadBtn = h(
      'button',
      { type: 'button', class: 'secondary', id: 'eval-download', disabled: true },
      'Download JSON',
    );
    const downloadMd = h(
      'button',
      { type: 'button', class: 'secondary', id: 'eval-download-md', disabled: true },
      'Markdown',
    );
    const reportHead = h(
      'p',
      { class: 'muted', id: 'eval-report-head' },
      'Run an evaluation, or open a report JSON (e.g. the demo’s).',
    );
    const reportNote = h('p', { class: 'muted small', id: 'eval-report-note', hidden: true });
    const tableBox = h('div', { class: 'table-scroll' });
    const compareBox = h('div', { id: 'eval-compare', hidden: true });
    const accuracyChart = barChart({
      id: 'eval-accuracy-chart',
      title: 'Accuracy per system',
      yLabel: 'accuracy',
      percent: true,
    });
    const costChart = barChart({
      id: 'eval-cost-chart',
      title: 'Cost per question per system',
      yLabel: 'tokens per question',
      rightLabel: 'seconds per question',
    });
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
      h(
        'div',
        { class: 'card-head' },
        h('h2', { id: 'eval-res-h' }, 'Report'),
        h('div', { class: 'row' }, openBtn, downloadBtn, downloadMd, openInput),
      ),
      reportHead,
      reportNote,
      compareBox,
      tableBox,
      charts,
      perQuestion,
    );
    root.append(h('div', { class: 'teach-setup' }, questionsCardEl, systemsCard, runCard), resultsCard);

    let report: EvalReport | null = null;
    const showReport = (r: EvalReport, origin: string, source: 'demo' | 'run' | 'file' = 'file') => {
      report = r;
      resultsCard.dataset.source = source;
      const extras = demoExtras(r);
      reportNote.textContent = extras ? `Demo: ${extras}.` : '';
      reportNote.hidden = !extras;
      const st = r.settings;
      reportHead.textContent =
        `${origin} · ${r.task}${r.dataset ? ` · ${r.dataset}` : ''} · ${r.questions} questions · max tokens ${st.maxTokens} ` +
        `· temperature ${st.temperature}${st.seed !== null ? ` · seed ${st.seed}` : ''} · ${new Date(r.createdAt).toLocaleString()}`;
      clear(tableBox);
      const head = h(
        'tr',
        {},
        ...COLUMNS.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null, title: c.title }, c.head)),
      );
      const rows = r.systems.map((s) =>
        h(
          'tr',
          { 'data-system': s.name },
          ...COLUMNS.map((c) => h('td', { class: c.num ? 'num nowrap' : null }, c.cell(s))),
        ),
      );
      tableBox.append(
        h('table', { class: 'list report', id: 'eval-table' }, h('thead', {}, head), h('tbody', {}, ...rows)),
      );
      const gap = gapSection(r);
      if (gap) tableBox.append(gap);
      const errs = r.systems.filter((s) => s.errors > 0);
      if (errs.length)
        tableBox.append(
          h(
            'p',
            { class: 'bad-text small' },
            `Failed calls (counted wrong): ${errs.map((s) => `${s.name} ${s.errors}`).join(', ')}.`,
          ),
        );
      const names = r.systems.map((s) => s.name);
      charts.hidden = false;
      accuracyChart.set(names, [
        { label: 'accuracy', data: r.systems.map((s) => s.accuracy) },
        ...(r.settings.selfCorrection
          ? [{ label: 'after review (attempt 2)', data: r.systems.map((s) => s.selfCorrection?.attempt2 ?? null) }]
          : []),
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
          h(
            'td',
            { class: 'num', title: error ?? (extracted === null ? 'no answer' : `answer ${extracted}`) },
            h('span', { class: `pill ${ok ? 'yes' : 'bad'}` }, ok ? '✓' : '✗'),
          );
        const t = h(
          'table',
          { class: 'list compact' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Question'),
              ...names.map((n) => h('th', { scope: 'col', class: 'num' }, n)),
            ),
          ),
          h(
            'tbody',
            {},
            ...ids.map((id, i) =>
              h(
                'tr',
                {},
                h('td', { class: 'break' }, id),
                ...r.systems.map((s) =>
                  mark(s.questions[i]?.correct, s.questions[i]?.extracted, s.questions[i]?.error),
                ),
              ),
            ),
          ),
        );
        perQuestion.append(
          h('details', {}, h('summary', {}, `Per question (${ids.length})`), h('div', { class: 'table-scroll' }, t)),
        );
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

    // ---- the embedded report's own settings, and this run compared with it ----------------------
    /** The embedded demo report: the page starts from its settings and compares runs with it. */
    let shippedReport: EvalReport | null = null;
    /** The report's system names, used for this run's systems while its settings are in place. */
    let reportNames: EvalRunSettings['names'] | null = null;
    const applyReportSettings = (r: EvalReport) => {
      const d: DemoEvalSettings = demoEvalSettings(r);
      const st = r.settings;
      const extras =
        (r as EvalReport & { demo?: { baseline?: string; teacher?: string; students?: string[]; shipped?: string } })
          .demo ?? {};
      // The report's base systems: single-call rows that are not students, one greedy and one sampled.
      const studentNames = new Set(Array.isArray(extras.students) ? extras.students : []);
      const baseSingles = r.systems.filter(
        (x) => x.kind === 'single' && !studentNames.has(x.name) && !/^student\b/.test(x.name),
      );
      const greedyName = baseSingles.find((x) => /greedy/.test(x.name))?.name;
      const sampledName = baseSingles.find((x) => !/greedy/.test(x.name))?.name;
      reportNames = { single: sampledName, greedy: greedyName, debate: extras.teacher };
      // The shipped student is compared with its own row: decoded as the report decoded it.
      const shippedRow = r.systems.find((x) => x.name === extras.shipped);
      studentsGreedy.input.checked = !!shippedRow && /greedy/.test(shippedRow.name);
      systemPrompt.value = d.system;
      maxTokens.value = String(st.maxTokens);
      temperature.value = String(st.temperature);
      seed.value = st.seed === null ? '' : String(st.seed);
      selfCorrection.input.checked = st.selfCorrection;
      robustness.input.checked = st.robustness;
      single.input.checked = !!sampledName;
      greedy.input.checked = !!greedyName;
      debate.input.checked = !!extras.teacher;
      debateBox.hidden = !debate.input.checked;
      agents.value = String(d.agents);
      rounds.value = String(d.rounds);
      aggregator.value = d.aggregator;
      debateFormat.value = d.debateFormat;
      // The report names its file, possibly followed by the problems it used ("…/demo-test.jsonl, problems 1–100").
      const reportFile = r.dataset?.split(',')[0]?.trim();
      const shipped = reportFile ? shippedData.find((p) => reportFile.endsWith(p)) : undefined;
      if (shipped) qc.selectShipped(shipped);
      settingsOrigin.hidden = resetSettings.hidden = false;
      settingsOrigin.textContent =
        `Settings of the embedded report: the compact agent system prompt, temperature ${st.temperature} ` +
        `(a greedy single agent beside${studentsGreedy.input.checked ? ', the students greedy' : ''}), max tokens ${st.maxTokens}, seed ${st.seed ?? 'none'}` +
        `${st.selfCorrection ? ', the self-correction probe' : ''}; the debate ${d.agents}×${d.rounds} with ` +
        `${d.aggregator === 'vote' ? 'a vote' : 'an LLM judge'} in the ${d.debateFormat === 'small' ? 'small-model' : 'standard'} format. ` +
        'A run on its questions is compared with it question by question.';
      updateRun();
    };
    /** The report describes the embedded model: its settings are the defaults while that model is loaded. */
    let applied = false;
    const applyIfEmbedded = () => {
      if (
        applied ||
        !shippedReport ||
        !defaultModel ||
        state.model?.sourceKind !== 'url' ||
        state.model.id !== EMBEDDED_ID
      )
        return;
      applied = true;
      applyReportSettings(shippedReport);
    };
    state.on('model', () => {
      if (state.model && state.model.id !== EMBEDDED_ID) {
        reportNames = null;
        settingsOrigin.hidden = resetSettings.hidden = true;
      }
      applyIfEmbedded();
    });
    resetSettings.addEventListener('click', () => {
      if (shippedReport) applyReportSettings(shippedReport);
    });
    /** A run's systems beside the embedded report's systems of the same name, on the same questions. */
    const showComparison = (r: EvalReport) => {
      clear(compareBox);
      compareBox.hidden = true;
      const ref = shippedReport;
      if (!ref) return;
      const rows: HTMLElement[] = [];
      for (const sys of r.systems) {
        const other = ref.systems.find((x) => x.name === sys.name);
        if (!other) continue;
        const byId = new Map(other.questions.map((q) => [q.id, q.correct]));
        const shared = sys.questions.filter((q) => byId.has(q.id));
        if (!shared.length) continue;
        const here = shared.filter((q) => q.correct).length;
        const there = shared.filter((q) => byId.get(q.id)).length;
        const same = shared.filter((q) => q.correct === byId.get(q.id)).length;
        rows.push(
          h(
            'tr',
            {
              'data-system': sys.name,
              'data-here': here,
              'data-report': there,
              'data-same': same,
              'data-n': shared.length,
            },
            h('th', { scope: 'row' }, sys.name),
            h('td', { class: 'num' }, `${here}/${shared.length}`),
            h('td', { class: 'num' }, `${there}/${shared.length}`),
            h('td', { class: 'num' }, `${same}/${shared.length}`),
          ),
        );
      }
      if (!rows.length) return;
      compareBox.hidden = false;
      compareBox.append(
        h('h3', {}, 'Compared with the embedded report'),
        h(
          'div',
          { class: 'table-scroll' },
          h(
            'table',
            { class: 'list compact', id: 'eval-compare-table' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', { scope: 'col' }, 'System'),
                h('th', { scope: 'col', class: 'num' }, 'This run'),
                h('th', { scope: 'col', class: 'num' }, 'Report, same questions'),
                h('th', { scope: 'col', class: 'num' }, 'Same verdict'),
              ),
            ),
            h('tbody', {}, ...rows),
          ),
        ),
        h(
          'p',
          { class: 'muted small' },
          'Greedy systems should agree on every question; sampled ones agree within sampling noise.',
        ),
      );
    };

    let running: string | null = null;
    const selectedStudents = () =>
      [...students.querySelectorAll<HTMLInputElement>('input:checked')].map((i) => i.value);
    const updateRun = () => {
      const any = single.input.checked || greedy.input.checked || debate.input.checked || selectedStudents().length > 0;
      runBtn.disabled = !!running || !state.model || !qc.all().length || !any;
      runBtn.title = !state.model
        ? 'Load a model first'
        : !qc.all().length
          ? 'Pick questions first'
          : !any
            ? 'Pick at least one system'
            : '';
    };
    state.on('model', updateRun);

    runBtn.addEventListener('click', async () => {
      if (running) return;
      const picked = qc.picked();
      const s = readNumber(seed, NaN);
      const temp = Math.max(0, readNumber(temperature, 0));
      const sys = systemPrompt.value.trim();
      const settings: EvalRunSettings = {
        single: single.input.checked,
        greedy: greedy.input.checked,
        debate: debate.input.checked
          ? {
              agents: Math.max(1, Math.floor(readNumber(agents, 3))),
              rounds: Math.max(1, Math.floor(readNumber(rounds, 2))),
              aggregator: aggregator.value as 'llm' | 'vote',
              format: debateFormat.value as 'small' | 'standard',
              temperature: temp,
            }
          : null,
        ...(sys ? { system: sys } : {}),
        ...(reportNames ? { names: reportNames, plainStudentNames: true } : {}),
        students: selectedStudents(),
        ...(studentsGreedy.input.checked ? { studentsGreedy: true } : {}),
        maxTokens: Math.max(1, Math.floor(readNumber(maxTokens, 256))),
        temperature: temp,
        ...(Number.isFinite(s) ? { seed: Math.floor(s) } : {}),
        selfCorrection: selfCorrection.input.checked,
        robustness: robustness.input.checked,
        task: qc.task(),
        dataset: qc.sourceName() ?? undefined,
      };
      const nSystems =
        (settings.single ? 1 : 0) + (settings.greedy ? 1 : 0) + (settings.debate ? 1 : 0) + settings.students.length;
      const id = newTaskId('eval');
      running = id;
      updateRun();
      stopBtn.hidden = false;
      progress.hidden = false;
      progress.max = nSystems * picked.length;
      progress.value = 0;
      delete runStatus.el.dataset.done;
      runStatus.set(
        `Evaluating ${nSystems} system${nSystems === 1 ? '' : 's'} on ${picked.length} question${picked.length === 1 ? '' : 's'}…`,
      );
      state.set('busy', 'Evaluating…');
      const t0 = performance.now();
      const onEvent = (e: EvalEvent) => {
        progress.max = e.systems * e.total;
        progress.value = e.systemIndex * e.total + e.done;
        progressLabel.textContent = `${e.system}: ${e.done} of ${e.total} · accuracy so far ${pct(e.accuracy)}`;
      };
      try {
        const { stopped, ...r } = await api.evaluate(id, picked, settings, Comlink.proxy(onEvent));
        showReport(r, stopped ? 'This run (stopped: the systems finished before Stop)' : 'This run', 'run');
        showComparison(r);
        const took = `${((performance.now() - t0) / 1000).toFixed(1)} s`;
        const failedCalls = r.systems.reduce((a, x) => a + x.errors, 0);
        if (failedCalls) {
          const first = r.systems.flatMap((x) => x.questions).find((q) => q.error)?.error;
          runStatus.set(
            `Finished in ${took} with ${failedCalls} failed call${failedCalls === 1 ? '' : 's'} (counted wrong)${first ? `, e.g. ${first}` : ''}.`,
            'warn',
          );
        } else if (stopped)
          runStatus.set(
            `Stopped after ${took}: the report keeps the ${r.systems.length} system${r.systems.length === 1 ? '' : 's'} finished before Stop.`,
            'warn',
          );
        else runStatus.set(`Done in ${took}.`, 'ok');
        runStatus.el.dataset.done = 'true';
        runStatus.el.dataset.failedCalls = String(failedCalls);
      } catch (e) {
        const aborted = (e as Error).name === 'AbortError' || /abort/i.test(errorText(e));
        runStatus.set(
          aborted ? 'Evaluation stopped.' : `Evaluation failed: ${errorText(e)}`,
          aborted ? 'warn' : 'error',
        );
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
        shippedReport = r;
        applyIfEmbedded();
        if (!report) showReport(r, 'Embedded demo report', 'demo');
      } catch (e) {
        if (!report) runStatus.set(`Cannot show the embedded demo report (${file}): ${errorText(e)}`, 'warn');
      }
    };
    this.onShow = () => {
      void refreshStudents();
    };
    if (demoReport && !demoTried) {
      demoTried = true;
      void showDemoReport(demoReport);
    }
    void refreshStudents();
  },
};
