/**
 * Models: load a checkpoint from a Hugging Face id, a URL or a local folder, with byte progress,
 * a memory estimate against the device before loading, and the Cache Storage copies of earlier
 * downloads (size, load, delete). At startup it loads `?model=` or the embedded default model; with
 * the default model it also loads the demo's LoRA adapter shipped beside it (if any) and activates
 * it, so Chat starts on the distilled student (the base model stays one pick away).
 */
import { looksLikeHfRepoId } from '../../formats/source';
import { defaultAdapter, defaultModel, defaultModelFiles } from 'virtual:agentark-public';
import {
  ADAPTERS_EVENT,
  type InspectResult,
  type LoadedModel,
  type LoadProgress,
  type LoadSettings,
  type MemoryEstimate,
  type ModelSource,
  type ModelSummary,
} from '../api';
import { cacheAvailable, deleteCachedModel, listCachedModels, MODEL_CACHE_PREFIX } from '../cache';
import { Comlink, newTaskId, type AppContext, type Page } from '../client';
import { clear, errorText, field, h, numberInput, readNumber, statusLine } from '../dom';
import { formatBytes, formatCount } from '../estimate';

/** `?model=` and typed specs: http(s) URLs and paths are folders on a server; `owner/name` is a Hub repo. */
export function parseModelSpec(spec: string, hfEndpoint?: string): ModelSource {
  const s = spec.trim();
  if (/^https?:\/\//i.test(s)) return { kind: 'url', url: s };
  if (!s.startsWith('.') && !s.startsWith('/') && looksLikeHfRepoId(s))
    return { kind: 'hf', id: s, ...(hfEndpoint ? { endpoint: hfEndpoint } : {}) };
  return { kind: 'url', url: new URL(s, document.baseURI).href };
}

export function describeSource(s: ModelSource): string {
  return s.kind === 'url' ? s.url : s.kind === 'hf' ? `${s.id} (Hugging Face)` : `${s.label} (local folder)`;
}

export function estimateTable(e: MemoryEstimate): HTMLTableElement {
  const row = (k: string, v: string, strong = false) =>
    h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, strong ? h('strong', {}, v) : v));
  return h(
    'table',
    { class: 'kv estimate' },
    h('caption', {}, 'Memory estimate'),
    h(
      'tbody',
      {},
      row('Parameters', formatCount(e.parameters)),
      row('Download', formatBytes(e.fileBytes)),
      row(`Weights (${e.weightType})`, formatBytes(e.weightBytes)),
      row(`KV cache (${e.maxBatch} × ${e.contextLength} positions)`, formatBytes(e.kvBytes)),
      row('Workspace (approx.)', formatBytes(e.workspaceBytes)),
      row('Total', formatBytes(e.totalBytes), true),
    ),
  );
}

export function checksList(e: MemoryEstimate): HTMLUListElement {
  return h(
    'ul',
    { class: 'checks' },
    ...e.checks.map((c) =>
      h(
        'li',
        { 'data-level': c.level },
        h('span', { class: 'icon', 'aria-hidden': 'true' }, c.level === 'ok' ? '✓' : c.level === 'warn' ? '!' : '✕'),
        h('span', { class: 'visually-hidden' }, `${c.level}: `),
        c.text,
      ),
    ),
  );
}

function duration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function summaryText(s: ModelSummary): string {
  const shape = `${s.layers} layers · hidden ${s.hidden} · ${s.heads}/${s.kvHeads} heads · vocab ${s.vocab}`;
  return `${s.hfArchitecture} · ${shape} · files ${s.fileDtypes.join('/')}`;
}

function progressText(e: LoadProgress, rate: number | null): string {
  if (e.unit !== 'bytes') return e.note ?? `${e.phase}…`;
  const pct = e.total ? Math.floor((100 * e.done) / e.total) : 0;
  const parts = [`${formatBytes(e.done)} of ${formatBytes(e.total)} (${pct}%)`];
  if (rate && rate > 0) parts.push(`${formatBytes(rate)}/s`);
  if (e.etaS !== undefined && e.done < e.total) parts.push(`about ${Math.ceil(e.etaS)} s left`);
  return parts.join(' · ');
}

type DirEntry = {
  kind: 'file' | 'directory';
  getFile?: () => Promise<File>;
  entries?: () => AsyncIterable<[string, DirEntry]>;
};
type DirHandle = { name: string; entries(): AsyncIterable<[string, DirEntry]> };

export const modelsPage: Page = {
  id: 'models',
  title: 'Models',
  mount(root: HTMLElement, ctx: AppContext) {
    const { api, state } = ctx;

    // ---- loaded model ---------------------------------------------------------------------
    const loadedBody = h('div', { class: 'loaded-body' });
    const unloadBtn = h('button', { type: 'button', class: 'secondary', disabled: true }, 'Unload');
    const adapterStatus = statusLine();
    adapterStatus.el.id = 'model-adapter-status';
    adapterStatus.set('');
    const loadedCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'loaded-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'loaded-h' }, 'Loaded model'), unloadBtn),
      loadedBody,
      adapterStatus.el,
    );

    const renderLoaded = (m: LoadedModel | null) => {
      clear(loadedBody);
      adapterStatus.set(''); // adapters live on the model they were loaded onto
      unloadBtn.disabled = !m;
      if (!m) {
        loadedBody.append(h('p', { class: 'muted', id: 'model-status' }, 'No model loaded. Choose one below.'));
        return;
      }
      loadedBody.append(
        h(
          'p',
          { id: 'model-status', class: 'ok-text', 'data-state': 'loaded' },
          `Loaded ${m.id} in ${duration(m.loadMs)}.`,
        ),
        h(
          'table',
          { class: 'kv' },
          h(
            'tbody',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, 'Source'),
              h(
                'td',
                { class: 'break' },
                m.sourceKind === 'files'
                  ? `${m.summary.location} (local folder)`
                  : m.sourceKind === 'hf'
                    ? `${m.summary.location} (Hugging Face)`
                    : m.summary.location,
              ),
            ),
            h('tr', {}, h('th', { scope: 'row' }, 'Model'), h('td', {}, summaryText(m.summary))),
            h('tr', {}, h('th', { scope: 'row' }, 'Backend'), h('td', {}, m.backend)),
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, 'Context'),
              h('td', {}, `${m.contextLength} positions × ${m.maxBatch} batch slots`),
            ),
            h(
              'tr',
              {},
              h('th', { scope: 'row' }, 'Cached'),
              h(
                'td',
                {},
                m.cached
                  ? 'yes (Cache Storage)'
                  : m.sourceKind === 'files'
                    ? 'no (read from your disk)'
                    : 'no (served by this site)',
              ),
            ),
          ),
        ),
        estimateTable(m.estimate),
      );
    };
    unloadBtn.addEventListener('click', async () => {
      await api.unload();
      state.set('model', null);
    });
    state.on('model', renderLoaded);
    renderLoaded(null);

    // ---- load form ------------------------------------------------------------------------
    const kindName = 'model-kind';
    const radio = (value: string, label: string, checked = false) =>
      h('label', { class: 'choice' }, h('input', { type: 'radio', name: kindName, value, checked }), ` ${label}`);
    const kinds = h(
      'fieldset',
      { class: 'choices' },
      h('legend', {}, 'Source'),
      radio('hf', 'Hugging Face', true),
      radio('url', 'URL'),
      radio('folder', 'Local folder'),
    );

    const hfInput = h('input', {
      type: 'text',
      placeholder: 'Qwen/Qwen2.5-0.5B-Instruct',
      autocomplete: 'off',
      spellcheck: 'false',
    });
    const hfEndpoint = h('input', { type: 'url', value: 'https://huggingface.co', spellcheck: 'false' });
    const hfToken = h('input', { type: 'password', autocomplete: 'off', placeholder: 'hf_…', spellcheck: 'false' });
    const urlInput = h('input', {
      type: 'url',
      placeholder: 'https://example.org/models/my-model/',
      spellcheck: 'false',
    });
    const folderBtn = h('button', { type: 'button', class: 'secondary' }, 'Choose folder…');
    const folderFallback = h('input', { type: 'file', hidden: true, multiple: true, id: 'model-folder-input' });
    folderFallback.setAttribute('webkitdirectory', '');
    const folderLabel = h('span', { class: 'muted' }, 'No folder chosen');
    const hfBox = h(
      'div',
      { class: 'source-box', 'data-kind': 'hf' },
      field('Repository id', hfInput, 'owner/name or owner/name@revision; downloads are cached in the browser.'),
      h(
        'div',
        { class: 'grid2' },
        field('Access token', hfToken, 'Only for gated or private repos; kept in this tab.'),
        field('Hub endpoint', hfEndpoint),
      ),
    );
    const urlBox = h(
      'div',
      { class: 'source-box', 'data-kind': 'url', hidden: true },
      field(
        'Folder URL',
        urlInput,
        'A folder with config.json, *.safetensors and tokenizer.json (the server must allow CORS).',
      ),
    );
    const folderBox = h(
      'div',
      { class: 'source-box', 'data-kind': 'folder', hidden: true },
      h(
        'div',
        { class: 'field' },
        h('span', { class: 'label' }, 'Folder'),
        h('div', { class: 'row' }, folderBtn, folderLabel),
        folderFallback,
      ),
    );
    let picked: { files: File[]; label: string; adapter: File[] | null } | null = null;

    const currentKind = () =>
      (kinds.querySelector<HTMLInputElement>('input:checked')?.value ?? 'hf') as 'hf' | 'url' | 'folder';
    kinds.addEventListener('change', () => {
      for (const box of [hfBox, urlBox, folderBox]) box.hidden = box.dataset.kind !== currentKind();
    });

    folderBtn.addEventListener('click', async () => {
      const picker = (window as unknown as { showDirectoryPicker?: (o?: object) => Promise<DirHandle> })
        .showDirectoryPicker;
      if (!picker) {
        folderFallback.click();
        return;
      }
      try {
        const dir = await picker({ mode: 'read' });
        const files: File[] = [];
        const adapterFiles: File[] = [];
        for await (const [name, entry] of dir.entries()) {
          if (entry.kind === 'file' && entry.getFile) files.push(await entry.getFile());
          else if (entry.kind === 'directory' && name === 'adapter' && entry.entries) {
            for await (const [, sub] of entry.entries())
              if (sub.kind === 'file' && sub.getFile) adapterFiles.push(await sub.getFile());
          }
        }
        setPicked(files, dir.name, adapterFiles);
      } catch (e) {
        if ((e as Error).name !== 'AbortError') status.set(errorText(e), 'error');
      }
    });
    folderFallback.addEventListener('change', () => {
      const all = [...(folderFallback.files ?? [])];
      // Only the folder's own files: subfolders (onnx/, original/…) are not part of the checkpoint,
      // except a PEFT adapter in adapter/ (as the embedded demo ships it), loaded with the model.
      const parts = (f: File) => (f.webkitRelativePath || f.name).split('/');
      const top = all.filter((f) => parts(f).length <= 2);
      const adapter = all.filter((f) => parts(f).length === 3 && parts(f)[1] === 'adapter');
      setPicked(top, all[0]?.webkitRelativePath.split('/')[0] || 'selected folder', adapter);
    });
    const setPicked = (files: File[], label: string, adapterFiles: File[] = []) => {
      const hasAdapter =
        adapterFiles.some((f) => f.name === 'adapter_config.json') &&
        adapterFiles.some((f) => f.name.endsWith('.safetensors'));
      picked = { files, label, adapter: hasAdapter ? adapterFiles : null };
      const total = files.reduce((a, f) => a + f.size, 0);
      folderLabel.textContent = `${label}: ${files.length} files, ${formatBytes(total)}${hasAdapter ? ' + a LoRA adapter in adapter/' : ''}`;
    };

    const ctxInput = numberInput({ value: 2048, min: 64, max: 131072, step: 64 });
    const batchInput = numberInput({ value: 4, min: 1, max: 64, step: 1 });
    const dtypeSelect = h(
      'select',
      { id: 'model-dtype' },
      h('option', { value: 'auto' }, 'auto'),
      h('option', { value: 'f32' }, 'f32'),
      h('option', { value: 'f16' }, 'f16 (needs shader-f16)'),
      h('option', { value: 'q8' }, 'q8 (quantized on load)'),
      h('option', { value: 'q4' }, 'q4 (quantized on load)'),
    );
    const settingsRow = h(
      'div',
      { class: 'grid3' },
      field('Context length', ctxInput, 'Positions per sequence.'),
      field('Batch slots', batchInput, 'Sequences decoded together (debate agents).'),
      field(
        'Weights on GPU',
        dtypeSelect,
        'q8 / q4 take about ¼ / ⅛ of f32; the quantized copy is kept in this browser.',
      ),
    );
    const settings = (): LoadSettings => ({
      contextLength: Math.max(16, Math.floor(readNumber(ctxInput, 2048))),
      maxBatch: Math.max(1, Math.floor(readNumber(batchInput, 4))),
      ...(dtypeSelect.value === 'q8' || dtypeSelect.value === 'q4'
        ? { dtype: 'auto' as const, quantize: dtypeSelect.value }
        : { dtype: dtypeSelect.value as LoadSettings['dtype'] }),
    });

    const checkBtn = h('button', { type: 'button', class: 'secondary' }, 'Check memory');
    const loadBtn = h('button', { type: 'button', class: 'primary', id: 'load-model' }, 'Load');
    const cancelBtn = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Cancel');
    const progress = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Download progress' });
    const progressLabel = h('span', { class: 'muted progress-label' });
    const status = statusLine();
    status.el.id = 'model-load-status';
    const estimateBox = h('div', { class: 'estimate-box', 'aria-live': 'polite' });
    const form = h(
      'form',
      { class: 'card', 'aria-labelledby': 'load-h', onsubmit: (e: Event) => e.preventDefault() },
      h('h2', { id: 'load-h' }, 'Load a model'),
      kinds,
      hfBox,
      urlBox,
      folderBox,
      settingsRow,
      h('div', { class: 'row actions' }, checkBtn, loadBtn, cancelBtn),
      h('div', { class: 'progress-row' }, progress, progressLabel),
      status.el,
      estimateBox,
    );

    const sourceFromForm = (): ModelSource => {
      const kind = currentKind();
      if (kind === 'hf') {
        const id = hfInput.value.trim();
        if (!looksLikeHfRepoId(id)) throw new Error('Enter a repository id like owner/name.');
        const endpoint = hfEndpoint.value.trim().replace(/\/+$/, '');
        const token = hfToken.value.trim();
        return {
          kind: 'hf',
          id,
          ...(endpoint && endpoint !== 'https://huggingface.co' ? { endpoint } : {}),
          ...(token ? { token } : {}),
        };
      }
      if (kind === 'url') {
        const url = urlInput.value.trim();
        if (!url) throw new Error('Enter the URL of a model folder.');
        return parseModelSpec(url);
      }
      if (!picked?.files.length) throw new Error('Choose a folder first.');
      return { kind: 'files', files: picked.files, label: picked.label };
    };

    let running: string | null = null;
    const setRunning = (id: string | null, what?: string) => {
      running = id;
      checkBtn.disabled = loadBtn.disabled = !!id;
      cancelBtn.hidden = !id;
      state.set('busy', id ? (what ?? 'Working…') : null);
    };
    cancelBtn.addEventListener('click', () => {
      if (running) void api.abort(running);
    });

    const showEstimate = (r: InspectResult) => {
      clear(estimateBox);
      estimateBox.append(
        h('p', { class: 'muted' }, summaryText(r.summary)),
        estimateTable(r.estimate),
        checksList(r.estimate),
      );
    };

    const inspect = async (source: ModelSource): Promise<InspectResult | null> => {
      const id = newTaskId('inspect');
      setRunning(id, 'Reading model headers…');
      // A new action: the previous one's outcome ("Done in …") no longer applies.
      progress.hidden = true;
      progressLabel.textContent = '';
      status.set(`Reading config.json and weight headers of ${describeSource(source)}…`);
      try {
        const r = await api.inspect(source, settings(), id);
        showEstimate(r);
        const device = await api.device();
        if (!device.available) {
          status.set(`WebGPU is unavailable here, so no model can be loaded: ${device.reason}`, 'error');
          return null;
        }
        const bad = r.estimate.checks.find((c) => c.level === 'error');
        status.set(
          bad ? 'This model does not fit the device with these settings.' : 'Estimate ready.',
          bad ? 'error' : 'ok',
        );
        return r;
      } catch (e) {
        status.set(`Could not read the model: ${errorText(e)}`, 'error');
        return null;
      } finally {
        setRunning(null);
      }
    };

    const load = async (source: ModelSource): Promise<LoadedModel | null> => {
      const id = newTaskId('load');
      setRunning(id, 'Loading model…');
      status.set(`Loading ${describeSource(source)}…`);
      progress.hidden = false;
      progress.value = 0;
      progressLabel.textContent = '';
      let last: { t: number; bytes: number } | null = null;
      let rate: number | null = null;
      const onProgress = (e: LoadProgress) => {
        if (e.unit === 'bytes') {
          const now = performance.now();
          if (last && now - last.t > 250) {
            const r = ((e.done - last.bytes) * 1000) / (now - last.t);
            rate = rate === null ? r : 0.7 * rate + 0.3 * r;
            last = { t: now, bytes: e.done };
          } else if (!last) last = { t: now, bytes: e.done };
          progress.max = Math.max(1, e.total);
          progress.value = e.done;
          progress.dataset.phase = 'download';
          progress.dataset.bytes = String(e.done);
          progress.dataset.total = String(e.total);
        } else {
          progress.dataset.phase = e.phase;
          if (e.phase === 'upload') progress.removeAttribute('value');
        }
        progressLabel.textContent = progressText(e, rate);
      };
      try {
        const m = await api.load(source, settings(), id, Comlink.proxy(onProgress));
        clear(estimateBox); // the loaded-model card shows it now
        state.set('model', m);
        const asked = settings().contextLength;
        status.set(
          m.contextLength < asked
            ? `Loaded ${m.id} with a context of ${m.contextLength} positions: the model holds no more (its max_position_embeddings), ` +
                `not the ${asked} asked for.`
            : `Loaded ${m.id}.`,
          'ok',
        );
        status.el.dataset.contextLength = String(m.contextLength);
        progress.max = 1;
        progress.value = 1;
        progressLabel.textContent = `Done in ${duration(m.loadMs)}.`;
        void refreshCache();
        return m;
      } catch (e) {
        const aborted = (e as Error).name === 'AbortError' || /abort/i.test(errorText(e));
        status.set(aborted ? 'Loading cancelled.' : `Loading failed: ${errorText(e)}`, aborted ? 'warn' : 'error');
        progress.hidden = true;
        progressLabel.textContent = '';
        state.set('model', await api.loaded());
        void refreshCache();
        return null;
      } finally {
        setRunning(null);
      }
    };

    checkBtn.addEventListener('click', async () => {
      try {
        await inspect(sourceFromForm());
      } catch (e) {
        status.set(errorText(e), 'error');
      }
    });
    loadBtn.addEventListener('click', async () => {
      let source: ModelSource;
      try {
        source = sourceFromForm();
      } catch (e) {
        status.set(errorText(e), 'error');
        return;
      }
      const r = await inspect(source);
      if (!r || r.estimate.checks.some((c) => c.level === 'error')) return;
      const adapterFiles = source.kind === 'files' ? picked?.adapter : null;
      const m = await load(source);
      if (m && adapterFiles) await loadFolderAdapter(adapterFiles, source.kind === 'files' ? source.label : m.id);
    });

    // ---- cache ----------------------------------------------------------------------------
    const cacheBody = h('div', {});
    const refreshBtn = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
    const cacheCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'cache-h' },
      h('div', { class: 'card-head' }, h('h2', { id: 'cache-h' }, 'Downloaded models'), refreshBtn),
      cacheBody,
    );
    const refreshCache = async () => {
      clear(cacheBody);
      if (!cacheAvailable()) {
        cacheBody.append(
          h(
            'p',
            { class: 'muted' },
            'Cache Storage is not available (the page must be served over https or from localhost); downloads are not kept.',
          ),
        );
        return;
      }
      const [list, est] = await Promise.all([
        listCachedModels(),
        navigator.storage?.estimate?.().catch(() => null) ?? null,
      ]);
      if (est?.quota)
        cacheBody.append(
          h(
            'p',
            { class: 'muted' },
            `Browser storage used: ${formatBytes(est.usage ?? 0)} of ${formatBytes(est.quota)} available to this site.`,
          ),
        );
      if (!list.length) {
        cacheBody.append(
          h(
            'p',
            { class: 'muted', id: 'cache-empty' },
            'Nothing cached yet. Models downloaded from the Hub or another site are kept here for offline use.',
          ),
        );
        return;
      }
      const rows = list.map((c) => {
        const del = h(
          'button',
          { type: 'button', class: 'danger small', 'aria-label': `Delete cached ${c.location}` },
          'Delete',
        );
        const use = h(
          'button',
          { type: 'button', class: 'secondary small', 'aria-label': `Load cached ${c.location}` },
          'Load',
        );
        del.addEventListener('click', async () => {
          if (!confirm(`Delete the cached copy of ${c.location} (${formatBytes(c.bytes)})?`)) return;
          await deleteCachedModel(c.cacheName);
          void refreshCache();
        });
        use.addEventListener('click', () => void load(parseModelSpec(c.location)));
        return h(
          'tr',
          { 'data-cache': c.cacheName.slice(MODEL_CACHE_PREFIX.length) },
          h(
            'td',
            { class: 'break location' },
            c.location,
            h('div', { class: 'muted small' }, `${c.files} files · ${c.complete ? 'complete' : 'partial download'}`),
          ),
          h('td', { class: 'num nowrap' }, formatBytes(c.bytes)),
          h(
            'td',
            { class: 'small' },
            c.savedAt ? new Date(c.savedAt).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'short' }) : '—',
          ),
          h('td', { class: 'row-actions' }, use, del),
        );
      });
      const head = h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Model'),
        h('th', { scope: 'col', class: 'num' }, 'Size'),
        h('th', { scope: 'col' }, 'Saved'),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')),
      );
      const table = h('table', { class: 'list', id: 'cache-table' }, h('thead', {}, head), h('tbody', {}, ...rows));
      cacheBody.append(h('div', { class: 'table-scroll' }, table));
    };
    refreshBtn.addEventListener('click', () => void refreshCache());

    root.append(
      h(
        'div',
        { class: 'page-grid' },
        h('div', { class: 'col' }, loadedCard, form),
        h('div', { class: 'col' }, cacheCard),
      ),
    );
    void refreshCache();

    // ---- the embedded demo's adapter --------------------------------------------------------
    /** Fetches the PEFT files shipped beside the default model, registers them under their name and activates them. */
    const loadDefaultAdapter = async (a: NonNullable<typeof defaultAdapter>) => {
      const base = new URL(a.path, document.baseURI);
      checkBtn.disabled = loadBtn.disabled = true; // the adapter belongs to this model: no other load meanwhile
      state.set('busy', `Loading adapter ${a.name}…`);
      try {
        const files = await Promise.all(
          ['adapter_config.json', 'adapter_model.safetensors'].map(async (f) => {
            const res = await fetch(new URL(f, base));
            if (!res.ok) throw new Error(`${f}: HTTP ${res.status} ${res.statusText}`);
            return new File([await res.blob()], f);
          }),
        );
        const info = await api.loadAdapterFiles(a.name, files);
        await api.activateAdapter(a.name);
        adapterStatus.set(
          `Adapter ${info.name} (LoRA r${info.rank}${a.strategy ? `, ${a.strategy}` : ''}) loaded with the embedded ` +
            `model and active in Chat; pick “Base model” there to compare.`,
          'ok',
        );
      } catch (e) {
        adapterStatus.set(`Could not load the embedded adapter ${a.name}: ${errorText(e)}`, 'warn');
      } finally {
        checkBtn.disabled = loadBtn.disabled = !!running;
        state.set('busy', null);
        state.dispatchEvent(new Event(ADAPTERS_EVENT));
      }
    };

    /** The PEFT adapter in a local folder's adapter/ subfolder, named by its agentark.json (else "<folder>/adapter"). */
    const loadFolderAdapter = async (files: File[], folder: string) => {
      let name = `${folder}/adapter`;
      const meta = files.find((f) => f.name === 'agentark.json');
      if (meta) {
        try {
          const j = JSON.parse(await meta.text()) as { name?: unknown };
          if (typeof j.name === 'string' && j.name.trim()) name = j.name.trim();
        } catch {
          // A broken agentark.json only loses the name.
        }
      }
      try {
        const info = await api.loadAdapterFiles(
          name,
          files.filter((f) => f.name !== 'agentark.json'),
        );
        await api.activateAdapter(name);
        adapterStatus.set(
          `Adapter ${info.name} (LoRA r${info.rank}) from the folder's adapter/ loaded and active in Chat; pick “Base model” there to compare.`,
          'ok',
        );
      } catch (e) {
        adapterStatus.set(`Could not load the folder's adapter/: ${errorText(e)}`, 'warn');
      } finally {
        state.dispatchEvent(new Event(ADAPTERS_EVENT));
      }
    };

    // ---- startup model --------------------------------------------------------------------
    const requested = ctx.params.get('model');
    const startup: ModelSource | null = requested
      ? parseModelSpec(requested)
      : defaultModel
        ? { kind: 'url', url: new URL(defaultModel, document.baseURI).href, files: defaultModelFiles }
        : null;
    if (startup) {
      if (startup.kind === 'hf') hfInput.value = startup.id;
      else if (startup.kind === 'url') {
        urlInput.value = startup.url;
        kinds.querySelector<HTMLInputElement>('input[value=url]')!.checked = true;
        kinds.dispatchEvent(new Event('change'));
      }
      void (async () => {
        const r = await inspect(startup);
        if (!r || r.estimate.checks.some((c) => c.level === 'error')) return;
        const m = await load(startup);
        if (m && !requested && defaultAdapter) await loadDefaultAdapter(defaultAdapter);
      })();
    }
  },
};
