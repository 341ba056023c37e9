/**
 * The app shell: header, tabs (one per Page), hash routing (#chat, #models, …) and the engine
 * worker. Opens on the model given by `?model=<url-or-hf-id>`, else the embedded default model.
 */
import 'katex/dist/katex.min.css';
import './styles.css';
import { serviceWorker } from 'virtual:agentark-pwa';
import { AppState, startWorker, type AppContext, type Page } from './client';
import { h } from './dom';
import { benchPage } from './views/bench';
import { chatPage } from './views/chat';
import { devicePage } from './views/device';
import { evaluatePage } from './views/evaluate';
import { modelsPage } from './views/models';
import { teachPage } from './views/teach';
import { trainPage } from './views/train';

/** The ark: a hull carrying three agents (static markup). */
const LOGO_SVG =
  '<svg viewBox="0 0 32 32" width="28" height="28" aria-hidden="true" focusable="false">' +
  '<path d="M3 17h26l-4.5 8.5a3 3 0 0 1-2.6 1.5H10.1a3 3 0 0 1-2.6-1.5z" fill="currentColor"/>' +
  '<circle cx="10" cy="12" r="3" fill="currentColor" opacity=".55"/><circle cx="16" cy="9" r="3.4" fill="currentColor" opacity=".8"/>' +
  '<circle cx="22" cy="12" r="3" fill="currentColor" opacity=".55"/></svg>';

/** Tab order. */
const pages: Page[] = [chatPage, modelsPage, teachPage, trainPage, evaluatePage, benchPage, devicePage];

function boot(): void {
  const app = document.getElementById('app');
  if (!app) throw new Error('index.html has no #app');
  const state = new AppState();
  const api = startWorker();
  const params = new URLSearchParams(location.search);

  const logo = h('span', { class: 'logo' });
  logo.innerHTML = LOGO_SVG;
  const tablist = h('nav', { class: 'tabs', role: 'tablist', 'aria-label': 'Pages' });
  const modelBadge = h('span', { class: 'badge', id: 'model-badge', title: 'Loaded model' }, 'No model loaded');
  const busyBadge = h('span', { class: 'badge busy', id: 'busy-badge', hidden: true });
  const header = h(
    'header',
    { class: 'app-header' },
    h(
      'div',
      { class: 'brand' },
      logo,
      h('h1', {}, 'AgentArk Web'),
      h('span', { class: 'tagline' }, 'multi-agent debate → one small student model, on WebGPU'),
    ),
    h('div', { class: 'header-status' }, busyBadge, modelBadge),
  );
  const main = h('main', { class: 'pages' });
  app.append(header, tablist, main);

  const tabs = new Map<string, { tab: HTMLButtonElement; panel: HTMLElement; page: Page }>();
  const show = (id: string, focus = false) => {
    if (!tabs.has(id)) id = pages[0]!.id;
    for (const [pid, { tab, panel }] of tabs) {
      const on = pid === id;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      panel.hidden = !on;
    }
    const t = tabs.get(id)!;
    if (focus) t.tab.focus();
    if (location.hash !== `#${id}`) history.replaceState(null, '', `${location.pathname}${location.search}#${id}`);
    t.page.onShow?.();
  };
  const ctx: AppContext = { api, state, show, params };

  for (const page of pages) {
    const tab = h(
      'button',
      {
        role: 'tab',
        id: `tab-${page.id}`,
        'aria-controls': `panel-${page.id}`,
        type: 'button',
        onclick: () => show(page.id),
      },
      page.title,
    );
    const panel = h('section', {
      role: 'tabpanel',
      id: `panel-${page.id}`,
      'aria-labelledby': `tab-${page.id}`,
      class: `page page-${page.id}`,
      hidden: true,
    });
    tablist.append(tab);
    main.append(panel);
    tabs.set(page.id, { tab, panel, page });
  }
  tablist.addEventListener('keydown', (e) => {
    const ids = pages.map((p) => p.id);
    const cur = ids.indexOf((document.activeElement as HTMLElement | null)?.id.replace(/^tab-/, '') ?? '');
    if (cur < 0) return;
    let next = -1;
    if (e.key === 'ArrowRight') next = (cur + 1) % ids.length;
    else if (e.key === 'ArrowLeft') next = (cur - 1 + ids.length) % ids.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = ids.length - 1;
    if (next < 0) return;
    e.preventDefault();
    show(ids[next]!, true);
  });
  for (const { page, panel } of tabs.values()) page.mount(panel, ctx);

  state.on('model', (m) => {
    modelBadge.textContent = m ? m.id : 'No model loaded';
    modelBadge.classList.toggle('ok', !!m);
    modelBadge.title = m ? `${m.summary.location} — ${m.backend}` : 'Load a model on the Models page';
  });
  state.on('busy', (b) => {
    busyBadge.hidden = !b;
    busyBadge.textContent = b ?? '';
  });
  window.addEventListener('hashchange', () => show(location.hash.slice(1)));
  show(location.hash.slice(1) || pages[0]!.id);
  void api.device().then((d) => state.set('device', d));
}

/**
 * The production build works offline after the first visit: its service worker (dist/sw.js,
 * src/app/pwa/) keeps the app, the embedded model and the shipped data. Not in dev (no sw.js).
 */
function registerServiceWorker(): void {
  if (!serviceWorker || !('serviceWorker' in navigator)) return;
  navigator.serviceWorker.register(new URL(serviceWorker, document.baseURI), { scope: './' }).catch((e: unknown) => {
    console.warn(`The offline copy is unavailable: ${(e as Error).message}`);
  });
}

boot();
registerServiceWorker();
