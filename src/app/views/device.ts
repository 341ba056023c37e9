/** Device: the WebGPU adapter the engine worker gets, its features and limits, and the model's GPU memory. */
import type { AdapterReport } from '../api';
import type { AppContext, Page } from '../client';
import { clear, h } from '../dom';
import { formatBytes } from '../estimate';
import type { TuningSummary } from '../../kernels/autotune';
import { choiceRows } from '../../kernels/tuning-report';

const KEY_FEATURES: [string, string][] = [
  ['shader-f16', 'f16 weights and math (halves weight memory)'],
  ['subgroups', 'subgroup reductions'],
  ['timestamp-query', 'GPU timings'],
];

const BYTE_LIMITS = /Size$/;

/** A yes/no pill; `needed` marks a "no" as a problem rather than a missing extra. */
function yesNo(v: boolean, needed = false): HTMLElement {
  return h('span', { class: `pill ${v ? 'yes' : needed ? 'bad' : 'no'}` }, v ? 'yes' : 'no');
}

/** A CPU-emulated adapter (SwiftShader, llvmpipe / lavapipe, WARP…): it works, slowly. */
export function isSoftwareAdapter(d: AdapterReport): boolean {
  if (!d.available) return false;
  return (
    d.isFallbackAdapter ||
    /swiftshader|llvmpipe|lavapipe|software|basic render|warp/i.test(
      `${d.vendor} ${d.architecture} ${d.device} ${d.description}`,
    )
  );
}

const SOURCE_NOTE: Record<string, string> = {
  tuned: 'timed on this adapter in this session',
  cached: 'timed on this adapter in an earlier session',
  forced: 'forced (AGENTARK_KERNELS)',
};

/**
 * The autotuner's kernel choices for the loaded model: each (family, shape class) with the
 * variant chosen, the milliseconds per dispatch every candidate took, and where the choice came from.
 */
function kernelTable(t: TuningSummary | null, modelLoaded: boolean): HTMLElement {
  const caption = h('caption', {}, 'Kernel choices (autotuner)');
  if (!t) {
    return h(
      'div',
      { id: 'kernel-choices' },
      h('h3', {}, 'Kernel choices'),
      h(
        'p',
        { class: 'muted' },
        modelLoaded
          ? 'No autotuner on this model (CPU path, or tuning turned off).'
          : 'Load a model: kernel variants are timed on this adapter at their first use and the fastest kept.',
      ),
    );
  }
  const rows = choiceRows(t);
  return h(
    'div',
    { id: 'kernel-choices' },
    h(
      'table',
      { class: 'list' },
      caption,
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { scope: 'col' }, 'Family'),
          h('th', { scope: 'col' }, 'Shape class'),
          h('th', { scope: 'col' }, 'Chosen'),
          h('th', { scope: 'col' }, 'ms per dispatch, by candidate'),
          h('th', { scope: 'col' }, 'Source'),
        ),
      ),
      h(
        'tbody',
        {},
        ...rows.map((r) =>
          h(
            'tr',
            { 'data-source': r.source },
            h('td', {}, h('code', {}, r.family)),
            h('td', {}, r.shape),
            h('td', {}, h('code', {}, r.choice)),
            h('td', {}, r.candidates || '—'),
            h('td', { title: SOURCE_NOTE[r.source] }, r.source),
          ),
        ),
      ),
    ),
    h(
      'p',
      { class: 'muted', id: 'kernel-tuning-time' },
      rows.length
        ? `${(t.tuningMs / 1000).toFixed(2)} s spent timing candidates in this session; choices are cached per adapter.`
        : 'No matrix product has run yet: shapes are tuned at their first use (send a chat message).',
    ),
  );
}

function render(
  body: HTMLElement,
  d: AdapterReport,
  mem: { allocatedBytes: number; peakBytes: number } | null,
  backend: string | null,
  kernels: TuningSummary | null,
): void {
  clear(body);
  const software = isSoftwareAdapter(d);
  const env = h(
    'table',
    { class: 'kv' },
    h('caption', {}, 'Browser'),
    h(
      'tbody',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, 'WebGPU'),
        h('td', {}, software ? h('span', { class: 'pill warn' }, 'yes, on the CPU') : yesNo(d.available, true)),
      ),
      h('tr', {}, h('th', { scope: 'row' }, 'Cross-origin isolated'), h('td', {}, yesNo(d.crossOriginIsolated, true))),
      h('tr', {}, h('th', { scope: 'row' }, 'CPU threads'), h('td', {}, String(d.hardwareConcurrency))),
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, 'Device memory'),
        h('td', {}, d.deviceMemoryGB ? `≈ ${d.deviceMemoryGB} GB (browser estimate)` : 'unknown'),
      ),
    ),
  );
  if (!d.available) {
    body.append(
      h(
        'div',
        { class: 'alert error', role: 'alert', id: 'webgpu-unavailable' },
        h('strong', {}, 'WebGPU is unavailable. '),
        d.reason,
        h(
          'p',
          {},
          'The app needs WebGPU to run models: use a recent Chrome, Edge or another browser with WebGPU enabled, ' +
            'on a machine whose GPU is not block-listed. The Teach page can still use an OpenAI-compatible server.',
        ),
      ),
      env,
    );
    return;
  }
  const name = [d.vendor, d.architecture, d.device].filter(Boolean).join(' / ') || 'unknown adapter';
  if (software) {
    body.append(
      h(
        'div',
        { class: 'alert warn', role: 'status', id: 'software-adapter' },
        h('strong', {}, 'A software adapter: everything will be slow. '),
        `${name} runs WebGPU on the CPU. The app works, but generation and training are many times slower than ` +
          `on a GPU; enable hardware acceleration in the browser settings, or use a machine with a supported GPU.`,
      ),
    );
  }
  const adapter = h(
    'table',
    { class: 'kv', id: 'adapter-info' },
    h('caption', {}, 'Adapter'),
    h(
      'tbody',
      {},
      h('tr', {}, h('th', { scope: 'row' }, 'Adapter'), h('td', { id: 'adapter-name' }, name)),
      d.description ? h('tr', {}, h('th', { scope: 'row' }, 'Description'), h('td', {}, d.description)) : null,
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, 'Software (CPU) adapter'),
        h('td', {}, software ? h('span', { class: 'pill warn' }, 'yes: slow') : yesNo(false)),
      ),
      backend ? h('tr', {}, h('th', { scope: 'row' }, 'Model backend'), h('td', {}, backend)) : null,
      mem
        ? h(
            'tr',
            {},
            h('th', { scope: 'row' }, 'Model GPU memory'),
            h('td', {}, `${formatBytes(mem.allocatedBytes)} allocated, peak ${formatBytes(mem.peakBytes)}`),
          )
        : null,
    ),
  );
  const key = h(
    'table',
    { class: 'kv', id: 'adapter-features' },
    h('caption', {}, 'Key features'),
    h(
      'tbody',
      {},
      ...KEY_FEATURES.map(([f, what]) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, h('code', {}, f)),
          h('td', {}, yesNo(d.features.includes(f)), ' ', h('span', { class: 'muted' }, what)),
        ),
      ),
    ),
  );
  const all = h('p', { class: 'feature-list' }, ...d.features.map((f) => h('code', { class: 'tag' }, f)));
  const limits = h(
    'table',
    { class: 'list limits' },
    h('caption', {}, 'Limits'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Limit'), h('th', { scope: 'col', class: 'num' }, 'Value'))),
    h(
      'tbody',
      {},
      ...Object.entries(d.limits)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) =>
          h(
            'tr',
            {},
            h('td', {}, h('code', {}, k)),
            h('td', { class: 'num' }, BYTE_LIMITS.test(k) && v >= 1024 ? `${formatBytes(v)} (${v})` : String(v)),
          ),
        ),
    ),
  );
  if (!d.f16) {
    body.append(
      h(
        'div',
        { class: 'alert info' },
        'This adapter has no shader-f16: models run with f32 weights (twice the memory of f16).',
      ),
    );
  }
  body.append(
    h(
      'div',
      { class: 'page-grid' },
      h('div', { class: 'col' }, adapter, key, h('h3', {}, 'All features'), all, env),
      h('div', { class: 'col' }, kernelTable(kernels, backend !== null), limits),
    ),
  );
}

export const devicePage: Page = {
  id: 'device',
  title: 'Device',
  mount(root: HTMLElement, ctx: AppContext) {
    const body = h(
      'div',
      { id: 'device-body' },
      h('p', { class: 'muted' }, 'Asking the browser for a WebGPU adapter…'),
    );
    root.append(
      h(
        'section',
        { class: 'card', 'aria-labelledby': 'device-h' },
        h('h2', { id: 'device-h' }, 'WebGPU device'),
        body,
      ),
    );
    const refresh = async () => {
      const d = ctx.state.device ?? (await ctx.api.device());
      const mem = ctx.state.model ? await ctx.api.memoryStats() : null;
      const kernels = ctx.state.model ? await ctx.api.kernelChoices() : null;
      render(body, d, mem, ctx.state.model?.backend ?? null, kernels);
    };
    ctx.state.on('device', () => void refresh());
    ctx.state.on('model', () => void refresh());
    this.onShow = () => void refresh();
  },
};
