/**
 * Chat with the loaded model: streamed replies rendered as sanitised Markdown (KaTeX math), a stop
 * button, system prompt, sampling controls and tokens/s.
 */
import type { ChatCompletionRequest, ChatMessage } from '../../engine/types';
import { ADAPTERS_EVENT, type ChatStats, type LoadedModel } from '../api';
import { Comlink, newTaskId, type AppContext, type Page } from '../client';
import { errorText, field, h, numberInput, readNumber } from '../dom';
import { setMarkdown } from '../markdown';
import { defaultAgentSystemPrompt } from '../../tasks/prompts';

// The embedded student was trained with the debate's compact agent prompt; start from that.
const DEFAULT_SYSTEM = defaultAgentSystemPrompt('gsm8k', 'compact');

/** Contexts up to this many positions start in single-question mode (earlier turns would not fit). */
const SINGLE_QUESTION_CONTEXT = 512;

/**
 * GSM8K's answer marker "#### 12" is Markdown for a level-4 heading; in a reply it is the final
 * answer, so it is shown as one.
 */
export function answerMarkerAsAnswer(text: string): string {
  return text.replace(/^[ \t]*####[ \t]*(\S[^\n]*?)[ \t]*$/gm, (_, a: string) => `**Answer: ${a}**`);
}

function statsText(s: ChatStats): string {
  const parts = [
    `${s.completionTokens} tokens`,
    `${s.tokensPerS.toFixed(1)} tokens/s`,
    `first token ${s.ttftMs} ms`,
    `prompt ${s.promptTokens} tokens`,
  ];
  if (s.finishReason === 'length') parts.push('stopped at max tokens');
  if (s.finishReason === 'abort') parts.push('stopped');
  return parts.join(' · ');
}

export const chatPage: Page = {
  id: 'chat',
  title: 'Chat',
  mount(root: HTMLElement, ctx: AppContext) {
    const { api, state } = ctx;
    const history: ChatMessage[] = [];
    let generating: string | null = null;
    /** The adapter replies come from (null = the base model), for each reply's label. */
    let activeAdapter: string | null = null;

    // ---- settings -------------------------------------------------------------------------
    const system = h('textarea', { rows: 4, id: 'chat-system', spellcheck: 'true' });
    system.value = DEFAULT_SYSTEM;
    const temperature = numberInput({ value: 0.7, min: 0, max: 2, step: 0.05 });
    temperature.id = 'chat-temperature';
    const topP = numberInput({ value: 0.95, min: 0, max: 1, step: 0.01 });
    topP.id = 'chat-top-p';
    const topK = numberInput({ value: 40, min: 0, step: 1 });
    topK.id = 'chat-top-k';
    const maxTokens = numberInput({ value: 256, min: 1, step: 1 });
    maxTokens.id = 'chat-max-tokens';
    const seed = numberInput({ value: '', min: 0, step: 1, placeholder: 'random' });
    seed.id = 'chat-seed';
    const single = h('input', { type: 'checkbox', id: 'chat-single', checked: true });
    let singleTouched = false;
    single.addEventListener('change', () => (singleTouched = true));
    const singleNote = h('small', { class: 'hint', id: 'chat-single-hint' });
    const adapter = h('select', { id: 'chat-adapter', disabled: true }, h('option', { value: '' }, 'Base model'));
    const adapterFiles = h('input', {
      type: 'file',
      id: 'chat-adapter-files',
      multiple: true,
      accept: '.json,.safetensors',
      class: 'visually-hidden',
      tabindex: -1,
    });
    const adapterLoad = h(
      'button',
      { type: 'button', class: 'secondary small', id: 'chat-adapter-load', disabled: true },
      'Load PEFT files…',
    );
    const adapterNote = h(
      'small',
      { class: 'hint', id: 'chat-adapter-note' },
      'Base model, or a LoRA adapter trained on the Train page; switching needs no reload.',
    );
    const settings = h(
      'aside',
      { class: 'card chat-settings', 'aria-labelledby': 'chat-settings-h' },
      h('h2', { id: 'chat-settings-h' }, 'Settings'),
      field('System prompt', system),
      h(
        'div',
        { class: 'field' },
        h('label', { class: 'check', for: 'chat-single' }, single, ' Single question'),
        singleNote,
      ),
      h(
        'div',
        { class: 'grid2' },
        field('Temperature', temperature),
        field('Top p', topP),
        field('Top k', topK, '0 = off'),
        field('Max tokens', maxTokens),
        field('Seed', seed, 'Empty = random'),
      ),
      h(
        'div',
        { class: 'field' },
        h('label', { for: 'chat-adapter' }, 'Adapter'),
        h('div', { class: 'row adapter-row' }, adapter, adapterLoad),
        adapterNote,
        adapterFiles,
      ),
    );

    // ---- conversation ---------------------------------------------------------------------
    const notice = h('div', { class: 'notice', id: 'chat-notice' });
    const log = h('div', {
      class: 'messages',
      id: 'chat-log',
      role: 'log',
      'aria-live': 'polite',
      'aria-label': 'Conversation',
    });
    const empty = h('div', { class: 'muted empty markdown' });
    setMarkdown(empty, 'Replies are rendered as **Markdown** with math, e.g. $e^{i\\pi}+1=0$.');
    log.append(empty);
    const input = h('textarea', {
      id: 'chat-input',
      rows: 3,
      placeholder: 'Ask something… (Enter to send, Shift+Enter for a new line)',
      'aria-label': 'Message',
    });
    const send = h('button', { type: 'submit', class: 'primary', id: 'chat-send' }, 'Send');
    const stop = h('button', { type: 'button', class: 'danger', id: 'chat-stop', hidden: true }, 'Stop');
    const clearBtn = h('button', { type: 'button', class: 'secondary', id: 'chat-clear' }, 'Clear');
    const stats = h('p', { class: 'stats muted', id: 'chat-stats', 'aria-live': 'off' });
    const composer = h(
      'form',
      { class: 'composer' },
      input,
      h('div', { class: 'composer-actions' }, send, stop, clearBtn),
    );
    const conversation = h('div', { class: 'card chat-main' }, notice, log, composer, stats);

    const addMessage = (role: 'user' | 'assistant', text: string): { el: HTMLElement; body: HTMLElement } => {
      empty.remove();
      const body = h('div', { class: 'content markdown' });
      const label =
        role === 'user'
          ? 'You'
          : `${state.model?.id ?? 'Model'} · ${activeAdapter ? `adapter ${activeAdapter}` : 'base model'}`;
      const el = h('article', { class: `msg ${role}`, 'data-role': role }, h('header', {}, label), body);
      setMarkdown(body, role === 'assistant' ? answerMarkerAsAnswer(text) : text);
      log.append(el);
      log.scrollTop = log.scrollHeight;
      return { el, body };
    };

    const updateSingle = () => {
      const m = state.model;
      if (m && !singleTouched) single.checked = m.contextLength <= SINGLE_QUESTION_CONTEXT;
      singleNote.textContent = single.checked
        ? `Each question is sent alone (earlier turns are not)${m ? `: the context holds ${m.contextLength} positions` : ''}.`
        : 'Earlier turns are sent with each question; the oldest are left out when they no longer fit the context.';
    };
    single.addEventListener('change', updateSingle);
    state.on('model', updateSingle);

    const updateAvailability = () => {
      const m: LoadedModel | null = state.model;
      const ready = !!m;
      send.disabled = !ready || !!generating;
      input.disabled = !ready;
      notice.replaceChildren();
      if (!ready) {
        const go = h('button', { type: 'button', class: 'link', onclick: () => ctx.show('models') }, 'Models page');
        const d = state.device;
        if (d && !d.available) notice.append(`WebGPU is unavailable here, so no model can run: ${d.reason}`);
        else
          notice.append(
            state.busy ? `${state.busy} ` : 'No model loaded. Load one on the ',
            state.busy ? '' : go,
            state.busy ? '' : '.',
          );
        notice.hidden = false;
      } else {
        notice.hidden = true;
      }
    };
    state.on('model', updateAvailability);
    state.on('busy', updateAvailability);
    state.on('device', updateAvailability);

    const sampling = (): Omit<ChatCompletionRequest, 'messages'> => {
      const s = readNumber(seed, NaN);
      return {
        temperature: readNumber(temperature, 0.7),
        top_p: readNumber(topP, 1),
        top_k: Math.floor(readNumber(topK, 0)) || undefined,
        max_tokens: Math.max(1, Math.floor(readNumber(maxTokens, 256))),
        ...(Number.isFinite(s) ? { seed: Math.floor(s) } : {}),
      };
    };

    const submit = async () => {
      const text = input.value.trim();
      if (!text && !generating && state.model) {
        stats.textContent = 'Type a message first.';
        input.focus();
        return;
      }
      if (!text || generating || !state.model) return;
      input.value = '';
      history.push({ role: 'user', content: text });
      addMessage('user', text);
      const reply = addMessage('assistant', '');
      reply.el.classList.add('streaming');
      reply.el.dataset.deltas = '0';
      let replyText = '';
      let frame = 0;
      const t0 = performance.now();
      let pieces = 0;
      const onDelta = (piece: string) => {
        replyText += piece;
        pieces++;
        reply.el.dataset.deltas = String(pieces);
        if (!frame) {
          frame = requestAnimationFrame(() => {
            frame = 0;
            if (stopped) return;
            setMarkdown(reply.body, answerMarkerAsAnswer(replyText));
            log.scrollTop = log.scrollHeight;
            const s = (performance.now() - t0) / 1000;
            stats.textContent = `${pieces} tokens · ${(pieces / Math.max(s, 1e-3)).toFixed(1)} tokens/s…`;
          });
        }
      };
      const id = newTaskId('chat');
      generating = id;
      let stopped = false;
      // Stop acts at once in the thread, even while the model is still reading the prompt.
      stopNow = () => {
        if (stopped) return;
        stopped = true;
        cancelAnimationFrame(frame);
        setMarkdown(reply.body, answerMarkerAsAnswer(replyText));
        if (replyText) history.push({ role: 'assistant', content: replyText });
        else history.pop();
        reply.el.dataset.finish = 'abort';
        reply.el.append(h('p', { class: 'note' }, replyText ? 'Stopped.' : 'Stopped before the first token.'));
        stats.textContent = 'Stopped.';
        generating = null;
        stop.hidden = true;
        updateAvailability();
      };
      stop.hidden = false;
      updateAvailability();
      stats.textContent = 'Generating…';
      try {
        const sys = system.value.trim();
        const turns = single.checked ? history.slice(-1) : history;
        const messages: ChatMessage[] = [...(sys ? [{ role: 'system' as const, content: sys }] : []), ...turns];
        const result = await api.chat(id, { messages, ...sampling() }, Comlink.proxy(onDelta));
        if (!stopped) {
          cancelAnimationFrame(frame);
          frame = 0;
          replyText = result.text;
          setMarkdown(reply.body, answerMarkerAsAnswer(replyText));
          history.push({ role: 'assistant', content: replyText });
          stats.textContent = statsText(result);
          reply.el.dataset.finish = result.finishReason;
          if (result.finishReason === 'abort') reply.el.append(h('p', { class: 'note' }, 'Stopped.'));
          if (result.droppedMessages) {
            reply.el.dataset.dropped = String(result.droppedMessages);
            reply.el.before(
              h(
                'p',
                { class: 'note thread-note' },
                `${result.droppedMessages} earlier message${result.droppedMessages === 1 ? ' was' : 's were'} left out ` +
                  `so the conversation fits the context (${result.promptTokens} tokens sent).`,
              ),
            );
          }
        }
      } catch (e) {
        cancelAnimationFrame(frame);
        if (!stopped) {
          history.pop(); // the failed turn is not part of the context
          reply.el.classList.add('error');
          reply.el.dataset.finish = 'error';
          reply.body.textContent = `Error: ${errorText(e)}`;
          const clearIt = h(
            'button',
            { type: 'button', class: 'link', onclick: () => clearBtn.click() },
            'Clear the conversation',
          );
          const singleIt = h(
            'button',
            {
              type: 'button',
              class: 'link',
              onclick: () => {
                single.checked = true;
                singleTouched = true;
                updateSingle();
              },
            },
            'switch to Single question',
          );
          if (/context holds/.test(errorText(e)))
            reply.el.append(h('p', { class: 'note' }, clearIt, ' or ', singleIt, '.'));
          stats.textContent = '';
        }
      } finally {
        stopNow = null;
        reply.el.classList.remove('streaming');
        if (generating === id) {
          generating = null;
          stop.hidden = true;
        }
        updateAvailability();
        log.scrollTop = log.scrollHeight;
        input.focus();
      }
    };

    composer.addEventListener('submit', (e) => {
      e.preventDefault();
      void submit();
    });
    input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        void submit();
      }
    });
    let stopNow: (() => void) | null = null;
    stop.addEventListener('click', () => {
      if (!generating) return;
      void api.abort(generating);
      stopNow?.();
    });
    clearBtn.addEventListener('click', () => {
      if (generating) void api.abort(generating);
      history.length = 0;
      log.replaceChildren(empty);
      stats.textContent = '';
    });

    // ---- adapter picker: hot-swaps LoRA adapters on the loaded model --------------------------
    const refreshAdapters = async () => {
      const { list, active } = state.model
        ? await api.adapters().catch(() => ({ list: [], active: null }))
        : { list: [], active: null };
      adapter.replaceChildren(
        h('option', { value: '' }, 'Base model'),
        ...list.map((a) => h('option', { value: a.name }, `${a.name} (LoRA r${a.rank})`)),
      );
      adapter.value = active ?? '';
      activeAdapter = active;
      adapter.disabled = !state.model || !list.length;
      adapterLoad.disabled = !state.model;
      adapterNote.textContent = list.length
        ? `Replies come from ${active ?? 'the base model'} (${list.length} adapter${list.length === 1 ? '' : 's'} loaded; switching needs no reload).`
        : 'Base model, or a LoRA adapter trained on the Train page; switching needs no reload.';
    };
    adapter.addEventListener('change', async () => {
      try {
        await api.activateAdapter(adapter.value || null);
        state.dispatchEvent(new Event(ADAPTERS_EVENT));
      } catch (e) {
        await refreshAdapters();
        adapterNote.textContent = errorText(e);
      }
    });
    adapterLoad.addEventListener('click', () => adapterFiles.click());
    adapterFiles.addEventListener('change', async () => {
      const files = [...(adapterFiles.files ?? [])];
      adapterFiles.value = '';
      if (!files.length) return;
      const dir = files[0]!.webkitRelativePath.split('/')[0];
      const name = dir || `adapter-${Date.now().toString(36).slice(-4)}`;
      try {
        await api.loadAdapterFiles(name, files);
        await api.activateAdapter(name);
      } catch (e) {
        adapterNote.textContent = `Cannot load the adapter: ${errorText(e)}`;
        return;
      }
      state.dispatchEvent(new Event(ADAPTERS_EVENT));
    });
    state.addEventListener(ADAPTERS_EVENT, () => void refreshAdapters());
    state.on('model', () => void refreshAdapters());

    root.append(h('div', { class: 'chat-layout' }, conversation, settings));
    updateAvailability();
    updateSingle();
  },
};
