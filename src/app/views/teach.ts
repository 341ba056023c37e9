/**
 * Teach: run the multi-agent debate over a question set with a teacher engine (the local model, a
 * WebLLM prebuilt model or an OpenAI-compatible server), watch every agent in every round as it
 * writes, and download the trajectories as JSONL (the training data of the student).
 */
import type { TrajectoryRecord } from '../../teach/trajectory';
import type { DebateEvent, DebateRunSettings, DebateSlot, LoadedModel, TeacherEngineSpec } from '../api';
import { Comlink, newTaskId, type AppContext, type Page } from '../client';
import { downloadText, errorText, field, h, numberInput, readNumber, statusLine } from '../dom';
import { setMarkdown } from '../markdown';
import { questionsCard } from './questions-card';

interface QuestionView {
  section: HTMLElement;
  cells: Map<string, { el: HTMLElement; body: HTMLElement; text: string; meta: HTMLElement }>;
  final: HTMLElement;
}

const cellKey = (round: number, slot: DebateSlot) => (slot === 'aggregator' ? 'agg' : `${round}:${slot}`);

function stamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

export const teachPage: Page = {
  id: 'teach',
  title: 'Teach',
  mount(root: HTMLElement, ctx: AppContext) {
    const { api, state } = ctx;

    // ---- questions ------------------------------------------------------------------------
    const qc = questionsCard({
      prefix: 'teach',
      heading: '1 · Questions',
      defaultLimit: 3,
      usage: (n) => `the debate uses the first ${n}`,
      preview: true,
    });
    const questionsEl = qc.el;
    qc.onChange(() => updateRun());

    // ---- teacher --------------------------------------------------------------------------
    const engName = 'teach-engine';
    const engRadio = (value: string, label: string, checked = false) =>
      h('label', { class: 'choice' }, h('input', { type: 'radio', name: engName, value, checked }), ` ${label}`);
    const engines = h(
      'fieldset',
      { class: 'choices' },
      h('legend', {}, 'Teacher engine'),
      engRadio('local', 'Local model', true),
      engRadio('webllm', 'WebLLM prebuilt'),
      engRadio('openai', 'OpenAI-compatible'),
    );
    const localInfo = h('p', { class: 'muted', id: 'teach-local-info' });
    const webllmSelect = h('select', { id: 'teach-webllm' }, h('option', { value: '' }, 'Loading list…'));
    const openaiUrl = h('input', {
      type: 'url',
      id: 'teach-openai-url',
      placeholder: 'http://127.0.0.1:8000/v1',
      spellcheck: 'false',
    });
    const openaiKey = h('input', {
      type: 'password',
      id: 'teach-openai-key',
      autocomplete: 'off',
      placeholder: 'optional',
    });
    const openaiModel = h('input', {
      type: 'text',
      id: 'teach-openai-model',
      placeholder: 'model name',
      spellcheck: 'false',
    });
    const openaiConc = numberInput({ value: 4, min: 1, max: 64, step: 1 });
    const localBox = h('div', { 'data-eng': 'local' }, localInfo);
    const webllmBox = h(
      'div',
      { 'data-eng': 'webllm', hidden: true },
      field(
        'Model',
        webllmSelect,
        'Downloads weights from huggingface.co and a model library on first use; only f32 models are listed when the adapter lacks shader-f16.',
      ),
    );
    const openaiBox = h(
      'form',
      { 'data-eng': 'openai', hidden: true, onsubmit: (e: Event) => e.preventDefault() },
      field('Base URL', openaiUrl, 'The server must allow CORS from this page.'),
      h(
        'div',
        { class: 'grid2' },
        field('API key', openaiKey, 'Kept in this tab only.'),
        field('Model', openaiModel),
        field('Parallel requests', openaiConc),
      ),
    );
    const teacherCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'teach-t-h' },
      h('h2', { id: 'teach-t-h' }, '2 · Teacher'),
      engines,
      localBox,
      webllmBox,
      openaiBox,
    );
    const currentEng = () =>
      (engines.querySelector<HTMLInputElement>('input:checked')?.value ?? 'local') as TeacherEngineSpec['kind'];
    let webllmListed = false;
    engines.addEventListener('change', async () => {
      const v = currentEng();
      for (const box of [localBox, webllmBox, openaiBox]) box.hidden = box.dataset.eng !== v;
      updateRun();
      if (v === 'webllm' && !webllmListed) {
        webllmListed = true;
        try {
          const d = state.device ?? (await api.device());
          const list = await api.webllmModels(!(d.available && d.f16));
          webllmSelect.replaceChildren(...list.map((m) => h('option', { value: m }, m)));
          const small = list.find((m) => /Qwen2\.5-0\.5B/i.test(m) && /q4f32/.test(m)) ?? list[0];
          if (small) webllmSelect.value = small;
        } catch (e) {
          webllmListed = false;
          webllmSelect.replaceChildren(h('option', { value: '' }, `Unavailable: ${errorText(e)}`));
        }
      }
    });
    const engineSpec = (): TeacherEngineSpec => {
      const v = currentEng();
      if (v === 'webllm') return { kind: 'webllm', model: webllmSelect.value };
      if (v === 'openai')
        return {
          kind: 'openai',
          baseUrl: openaiUrl.value.trim(),
          apiKey: openaiKey.value,
          model: openaiModel.value.trim(),
          concurrency: Math.max(1, Math.floor(readNumber(openaiConc, 4))),
        };
      return { kind: 'local' };
    };

    // ---- debate ---------------------------------------------------------------------------
    const agentsInput = numberInput({ value: 3, min: 1, max: 16, step: 1 });
    agentsInput.id = 'teach-agents';
    const roundsInput = numberInput({ value: 2, min: 1, max: 10, step: 1 });
    roundsInput.id = 'teach-rounds';
    const aggSelect = h(
      'select',
      { id: 'teach-aggregator' },
      h('option', { value: 'llm' }, 'LLM judge'),
      h('option', { value: 'vote' }, 'Majority vote'),
    );
    const tempInput = numberInput({ value: 0.7, min: 0, max: 2, step: 0.05 });
    const formatSelect = h(
      'select',
      { id: 'teach-format' },
      h('option', { value: 'standard' }, 'Standard'),
      h('option', { value: 'small' }, 'Small model'),
    );
    // A short context cannot hold a standard debate that quotes whole solutions (the embedded
    // demo model has 384 tokens), so such models start on the small format.
    // Their judge is weaker than a vote over the revised answers (the demo model card: 48% vs 60%),
    // so they start on the vote too.
    const pickFormat = (m: LoadedModel | null) => {
      const small = !!m && m.contextLength <= 512;
      formatSelect.value = small ? 'small' : 'standard';
      aggSelect.value = small ? 'vote' : 'llm';
    };
    pickFormat(ctx.state.model);
    ctx.state.on('model', pickFormat);
    tempInput.id = 'teach-temperature';
    const maxTokInput = numberInput({ value: 512, min: 1, step: 1 });
    maxTokInput.id = 'teach-max-tokens';
    const seedInput = numberInput({ value: '', min: 0, step: 1, placeholder: 'random' });
    seedInput.id = 'teach-seed';
    const runBtn = h('button', { type: 'button', class: 'primary', id: 'teach-run' }, 'Run debate');
    const stopBtn = h('button', { type: 'button', class: 'danger', id: 'teach-stop', hidden: true }, 'Stop');
    const downloadBtn = h(
      'button',
      { type: 'button', class: 'secondary', id: 'teach-download', disabled: true },
      'Download trajectories (JSONL)',
    );
    const runStatus = statusLine();
    runStatus.el.id = 'teach-status';
    const runProgress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Questions debated' });
    const debateCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'teach-d-h' },
      h('h2', { id: 'teach-d-h' }, '3 · Debate'),
      h(
        'div',
        { class: 'grid3' },
        field('Agents', agentsInput),
        field('Rounds', roundsInput, 'Including the independent first round.'),
        field('Aggregator', aggSelect),
        field(
          'Format',
          formatSelect,
          'Standard quotes whole solutions; Small model quotes answers only and restates the question (the compact debate the demo model learnt).',
        ),
        field('Temperature', tempInput),
        field('Max tokens per reply', maxTokInput),
        field('Seed', seedInput),
      ),
      h('div', { class: 'row actions' }, runBtn, stopBtn, downloadBtn),
      runProgress,
      runStatus.el,
    );
    const live = h('div', { class: 'live', id: 'teach-live', 'aria-label': 'Debate transcript' });

    const updateRun = () => {
      const m = state.model;
      localInfo.textContent = m
        ? `Uses the loaded model ${m.id} (agents in a round decode as one batch).`
        : 'No model loaded: load one on the Models page, or pick another engine.';
      runBtn.disabled = !!running || !qc.all().length || (currentEng() === 'local' && !m);
    };
    state.on('model', updateRun);

    // ---- live view ------------------------------------------------------------------------
    const views = new Map<number, QuestionView>();
    const records: TrajectoryRecord[] = [];
    let dirty = new Set<{ body: HTMLElement; text: string }>();
    let _frame = 0;
    const flush = () => {
      _frame = 0;
      for (const c of dirty) setMarkdown(c.body, c.text);
      dirty = new Set();
    };
    const cellFor = (index: number, round: number, slot: DebateSlot) =>
      views.get(index)?.cells.get(cellKey(round, slot));

    const onEvent = (e: DebateEvent) => {
      switch (e.type) {
        case 'status':
          runStatus.set(e.progress !== undefined ? `${e.text} ${Math.round(e.progress * 100)}%` : e.text);
          break;
        case 'question': {
          for (const v of views.values()) v.section.querySelector('details')?.removeAttribute('open');
          const qBody = h('div', { class: 'markdown question' });
          setMarkdown(qBody, e.question);
          const table = h('table', { class: 'debate' });
          const head = h(
            'tr',
            {},
            h('th', { scope: 'col' }, 'Round'),
            ...e.agents.map((a) => h('th', { scope: 'col' }, a)),
          );
          const tbody = h('tbody', {});
          const cells: QuestionView['cells'] = new Map();
          const makeCell = (round: number, slot: DebateSlot, colspan?: number) => {
            const body = h('div', { class: 'markdown cell-body' });
            const meta = h('div', { class: 'cell-meta' });
            const el = h(
              'td',
              { class: 'cell waiting', 'data-round': round, 'data-slot': String(slot), colspan },
              body,
              meta,
            );
            cells.set(cellKey(round, slot), { el, body, text: '', meta });
            return el;
          };
          for (let r = 1; r <= e.rounds; r++)
            tbody.append(h('tr', {}, h('th', { scope: 'row' }, String(r)), ...e.agents.map((_, i) => makeCell(r, i))));
          if (e.aggregator === 'llm')
            tbody.append(
              h(
                'tr',
                { class: 'agg' },
                h('th', { scope: 'row' }, 'Judge'),
                makeCell(e.rounds + 1, 'aggregator', e.agents.length),
              ),
            );
          table.append(h('thead', {}, head), tbody);
          const final = h('p', { class: 'final muted' }, 'Debating…');
          const section = h(
            'section',
            { class: 'card question-view', 'data-index': e.index },
            h(
              'details',
              { open: true },
              h(
                'summary',
                {},
                h('span', { class: 'q-title' }, `Question ${e.index + 1}`),
                ' ',
                h('code', {}, e.id),
                ' ',
                final,
              ),
              qBody,
              h('div', { class: 'table-scroll' }, table),
            ),
          );
          live.prepend(section);
          views.set(e.index, { section, cells, final });
          runStatus.set(`Question ${e.index + 1} of ${total}: debating…`);
          break;
        }
        case 'call': {
          const c = cellFor(e.index, e.round, e.slot);
          if (c) {
            c.el.classList.remove('waiting');
            c.el.classList.add('active');
          }
          break;
        }
        case 'delta': {
          const c = cellFor(e.index, e.round, e.slot);
          if (!c) break;
          c.text += e.text;
          dirty.add(c);
          _frame ||= requestAnimationFrame(flush);
          break;
        }
        case 'call-done': {
          const c = cellFor(e.index, e.round, e.slot);
          if (c) {
            c.el.classList.remove('active');
            c.el.classList.add('done');
          }
          break;
        }
        case 'record': {
          records.push(e.record);
          const v = views.get(e.index);
          if (v) {
            flush();
            for (const round of e.record.rounds) {
              round.messages.forEach((m, i) => {
                const c = v.cells.get(cellKey(round.round, i));
                if (!c) return;
                setMarkdown(c.body, m.completion);
                c.meta.replaceChildren(
                  h(
                    'span',
                    { class: `pill ${m.correct ? 'yes' : 'bad'}` },
                    m.extracted === null ? 'no answer' : `answer ${m.extracted}`,
                  ),
                  ` ${m.usage.completion_tokens} tokens · ${(m.latencyMs / 1000).toFixed(1)} s`,
                );
              });
            }
            const agg = v.cells.get('agg');
            const a = e.record.aggregator;
            if (agg && a.completion !== undefined) {
              setMarkdown(agg.body, a.completion);
              const how = a.fallback === 'vote' ? ' · unparsed, majority vote used' : '';
              agg.meta.replaceChildren(
                h(
                  'span',
                  { class: `pill ${a.correct ? 'yes' : 'bad'}` },
                  a.extracted === null ? 'no answer' : `answer ${a.extracted}`,
                ),
                ` ${a.usage?.completion_tokens ?? 0} tokens · ${((a.latencyMs ?? 0) / 1000).toFixed(1)} s${how}`,
              );
            }
            const f = e.record.final;
            v.final.className = `final ${f.correct ? 'ok-text' : 'bad-text'}`;
            v.final.textContent =
              f.answer === null ? 'no final answer' : `final answer ${f.answer} (${f.correct ? 'correct' : 'wrong'})`;
          }
          const correct = records.filter((r) => r.final.correct).length;
          runProgress.value = records.length;
          runStatus.set(
            `${records.length} of ${total} debated · ${correct} correct (${Math.round((100 * correct) / records.length)}%)`,
            'ok',
          );
          downloadBtn.disabled = false;
          break;
        }
        case 'failed': {
          const v = views.get(e.index);
          if (v) {
            v.final.className = 'final bad-text';
            v.final.textContent = `failed: ${e.error}`;
          }
          break;
        }
      }
    };

    let running: string | null = null;
    let total = 0;
    runBtn.addEventListener('click', async () => {
      if (running) return;
      const picked = qc.picked();
      const seed = readNumber(seedInput, NaN);
      const settings: DebateRunSettings = {
        engine: engineSpec(),
        agents: Math.max(1, Math.floor(readNumber(agentsInput, 3))),
        rounds: Math.max(1, Math.floor(readNumber(roundsInput, 2))),
        aggregator: aggSelect.value as 'llm' | 'vote',
        temperature: readNumber(tempInput, 0.7),
        top_p: 1,
        max_tokens: Math.max(1, Math.floor(readNumber(maxTokInput, 512))),
        ...(Number.isFinite(seed) ? { seed: Math.floor(seed) } : {}),
        task: qc.task(),
        format: formatSelect.value as 'standard' | 'small',
      };
      const id = newTaskId('debate');
      running = id;
      total = picked.length;
      records.length = 0;
      views.clear();
      live.replaceChildren();
      downloadBtn.disabled = true;
      delete runStatus.el.dataset.done;
      stopBtn.hidden = false;
      runProgress.hidden = false;
      runProgress.max = total;
      runProgress.value = 0;
      updateRun();
      state.set('busy', 'Debating…');
      runStatus.set(
        `Starting ${settings.agents} agents × ${settings.rounds} rounds on ${total} question${total === 1 ? '' : 's'}…`,
      );
      try {
        const r = await api.debate(id, picked, settings, Comlink.proxy(onEvent));
        flush();
        const correct = records.filter((x) => x.final.correct).length;
        const parts = [`${r.completed} of ${total} debated in ${(r.wallMs / 1000).toFixed(1)} s`];
        if (records.length) parts.push(`${correct} correct`);
        if (r.failed.length) parts.push(`${r.failed.length} failed (${r.failed[0]!.error})`);
        if (r.aborted) parts.push('stopped');
        runStatus.set(`${parts.join(' · ')}.`, r.failed.length && !r.completed ? 'error' : r.aborted ? 'warn' : 'ok');
        runStatus.el.dataset.done = 'true';
        // A question cut off by Stop is no longer being debated.
        for (const v of views.values()) {
          if (v.final.textContent === 'Debating…') {
            v.final.className = 'final muted';
            v.final.textContent = 'stopped before the end (not recorded)';
          }
        }
      } catch (e) {
        runStatus.set(`Debate failed: ${errorText(e)}`, 'error');
      } finally {
        running = null;
        stopBtn.hidden = true;
        state.set('busy', null);
        updateRun();
      }
    });
    stopBtn.addEventListener('click', () => {
      if (running) void api.abort(running);
    });
    downloadBtn.addEventListener('click', () => {
      if (!records.length) return;
      downloadText(`trajectories-${stamp()}.jsonl`, `${records.map((r) => JSON.stringify(r)).join('\n')}\n`);
    });

    root.append(h('div', { class: 'teach-setup' }, questionsEl, teacherCard, debateCard), live);
    updateRun();
  },
};
