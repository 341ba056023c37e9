/**
 * Benchmark: the speed benchmarks of `npm run bench` (eval/speed.ts) on the visitor's GPU, in the
 * engine worker on a device of their own — matmul GFLOP/s, whole-model prefill / decode tokens/s
 * and training tokens/s, WebGPU beside the CPU twin — small sizes by default. The result downloads
 * as the same SpeedReport JSON the CLI writes (bench-results.json), and another such JSON can be
 * loaded to compare side by side (ratios this / other).
 *
 * Beside them, as `npm run bench` does: our runtime against onnxruntime-web's WebGPU execution
 * provider on the same weights (eval/ort-peer.ts; onnxruntime-web and its wasm are fetched from
 * this origin only when that box is ticked), and roofline fractions (eval/roofline.ts): prefill
 * FLOP/s against our best GEMM in the run, decode bytes/s against the adapter's copy bandwidth.
 *
 * `?bench=quick` preselects the quickest setting (tiny model, small matmuls, LoRA training only).
 */
import { BENCH_SIZES, type KernelResult, type ModelResult, type SpeedReport, type TrainResult } from '../../eval/speed';
import type { PeerResult } from '../../eval/ort-peer';
import { rooflineRows, type RooflineRow } from '../../eval/roofline';
import type { BenchEvent, BenchSettings } from '../api';
import { barChart } from '../charts';
import { Comlink, newTaskId, type AppContext, type Page } from '../client';
import { clear, downloadText, errorText, h, statusLine } from '../dom';

const KERNEL_PRESETS: Record<string, { label: string; shapes: [number, number, number][] }> = {
  quick: {
    label: 'Quick (1×256×256, 64×256×256)',
    shapes: [
      [1, 256, 256],
      [64, 256, 256],
    ],
  },
  standard: {
    label: 'Standard (as npm run bench)',
    shapes: [
      [1, 1024, 1024],
      [128, 512, 512],
      [256, 1024, 1024],
    ],
  },
  none: { label: 'None', shapes: [] },
};

function stamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}`;
}

/** A loose check of a SpeedReport read from JSON. */
export function parseSpeedReport(text: string): SpeedReport {
  const r = JSON.parse(text) as Partial<SpeedReport>;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.adapter !== 'string' ||
    !Array.isArray(r.kernels) ||
    !Array.isArray(r.models) ||
    !Array.isArray(r.training)
  ) {
    throw new Error('not a speed report (expected {adapter, kernels, models, training} as written by npm run bench)');
  }
  return r as SpeedReport;
}

const short = (name: string) => (name.length > 18 ? `${name.slice(0, 16)}…` : name);

const f1 = (x: number | undefined) =>
  x === undefined || !Number.isFinite(x) ? '—' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);

/** One comparable measurement: a key, what it is, and the value (higher is better). */
interface Measure {
  key: string;
  cells: string[];
  value: number;
}

const kernelRows = (r: SpeedReport): Measure[] =>
  r.kernels.flatMap((k: KernelResult) => [
    { key: `k|${k.kernel}|${k.shape}|webgpu`, cells: [k.kernel, k.shape, 'webgpu'], value: k.webgpuGflops },
    { key: `k|${k.kernel}|${k.shape}|cpu`, cells: [k.kernel, k.shape, 'cpu twin'], value: k.cpuGflops },
  ]);
const modelRows = (r: SpeedReport): Measure[] =>
  r.models.flatMap((m: ModelResult) => [
    {
      key: `m|${m.model}|${m.backend}|prefill`,
      cells: [m.model, `${(m.params / 1e6).toFixed(2)}M`, m.backend, `prefill ${m.prefillTokens}`],
      value: m.prefillTokensPerS,
    },
    {
      key: `m|${m.model}|${m.backend}|decode`,
      cells: [m.model, `${(m.params / 1e6).toFixed(2)}M`, m.backend, 'decode'],
      value: m.decodeTokensPerS,
    },
  ]);
const trainRows = (r: SpeedReport): Measure[] =>
  r.training.map((t: TrainResult) => ({
    key: `t|${t.model}|${t.mode}|${t.backend}`,
    cells: [
      t.model,
      t.mode,
      t.backend,
      `${t.batch}×${t.seqLen}`,
      `${t.stepMs.toFixed(0)} ms`,
      t.peakGpuBytes === null ? '—' : `${(t.peakGpuBytes / 2 ** 20).toFixed(1)} MiB`,
    ],
    value: t.tokensPerS,
  }));

/** Our runtime beside onnxruntime-web: one row per model and phase (times, higher ratio = we are faster). */
export interface PeerRow {
  model: string;
  phase: string;
  unit: string;
  ours: number;
  ort: number;
  /** onnxruntime-web's time / ours. */
  ratio: number;
}

export function peerRows(peer: PeerResult[]): PeerRow[] {
  return peer.flatMap((p) => [
    {
      model: p.model,
      phase: `prefill ${p.prefillTokens}`,
      unit: 'ms',
      ours: p.ours.prefillMs,
      ort: p.ort.prefillMs,
      ratio: p.prefillRatio,
    },
    {
      model: p.model,
      phase: 'decode',
      unit: 'ms/token',
      ours: p.ours.decodeMsPerToken,
      ort: p.ort.decodeMsPerToken,
      ratio: p.decodeRatio,
    },
  ]);
}

const pct = (x: number | null) => (x === null ? '—' : `${(x * 100).toFixed(x < 0.01 ? 2 : 1)}%`);
const giga = (x: number | null) => (x === null ? '—' : f1(x / 1e9));

export const benchPage: Page = {
  id: 'bench',
  title: 'Benchmark',
  mount(root: HTMLElement, ctx: AppContext) {
    const { api, state } = ctx;
    const quick = ctx.params.get('bench') === 'quick';

    // ---- settings ---------------------------------------------------------------------------
    const check = (name: string, value: string, label: string, checked: boolean, id?: string) => {
      const input = h('input', { type: 'checkbox', name, value, checked, id });
      return { input, el: h('label', { class: 'choice' }, input, ` ${label}`) };
    };
    const sizes = BENCH_SIZES.map((s, i) =>
      check('bench-size', s.name, `${s.name} (hidden ${s.hidden}, ${s.layers} layers)`, quick ? i === 0 : i < 2),
    );
    const kernels = h(
      'select',
      { id: 'bench-kernels' },
      ...Object.entries(KERNEL_PRESETS).map(([k, p]) => h('option', { value: k }, p.label)),
    );
    kernels.value = quick ? 'quick' : 'standard';
    const attention = check('bench-what', 'attention', 'Attention kernels', !quick, 'bench-attention');
    const models = check('bench-what', 'models', 'Prefill / decode', true, 'bench-models');
    const training = check('bench-what', 'training', 'Training (LoRA)', true, 'bench-training');
    const full = check('bench-what', 'full', 'Training (full)', !quick, 'bench-full');
    const cpu = check('bench-what', 'cpu', 'CPU twin beside WebGPU', true, 'bench-cpu');
    const peer = check('bench-what', 'peer', 'onnxruntime-web beside ours (WebGPU EP)', true, 'bench-peer');
    const roofline = check('bench-what', 'roofline', 'Roofline (copy bandwidth, best GEMM)', true, 'bench-roofline');
    const runBtn = h('button', { type: 'button', class: 'primary', id: 'bench-run' }, 'Run benchmarks');
    const stopBtn = h('button', { type: 'button', class: 'danger', id: 'bench-stop', hidden: true }, 'Stop');
    const progress = h('progress', {
      id: 'bench-progress',
      max: 1,
      value: 0,
      hidden: true,
      'aria-label': 'Benchmark progress',
    });
    const progressLabel = h('span', { class: 'muted progress-label' });
    const status = statusLine();
    status.el.id = 'bench-status';
    const settingsCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'bench-s-h' },
      h('h2', { id: 'bench-s-h' }, 'Speed on this GPU'),
      h(
        'p',
        { class: 'muted small' },
        'Random weights in the Llama layout; the engine runs them on a WebGPU device of its own (a loaded model ' +
          'stays loaded). Compare ratios within one run: on a software adapter absolute numbers are noise.',
      ),
      h('fieldset', { class: 'choices' }, h('legend', {}, 'Model sizes'), ...sizes.map((s) => s.el)),
      h('div', { class: 'field' }, h('label', { for: 'bench-kernels' }, 'Matmul kernels'), kernels),
      h(
        'fieldset',
        { class: 'choices' },
        h('legend', {}, 'Measure'),
        attention.el,
        models.el,
        training.el,
        full.el,
        cpu.el,
        peer.el,
        roofline.el,
      ),
      h('div', { class: 'row actions' }, runBtn, stopBtn),
      h('div', { class: 'progress-row' }, progress, progressLabel),
      status.el,
    );

    // ---- results ----------------------------------------------------------------------------
    const downloadBtn = h(
      'button',
      { type: 'button', class: 'secondary', id: 'bench-download', disabled: true },
      'Download JSON',
    );
    const openInput = h('input', {
      type: 'file',
      id: 'bench-open',
      accept: '.json,application/json',
      class: 'visually-hidden',
      tabindex: -1,
    });
    const openBtn = h('button', { type: 'button', class: 'secondary' }, 'Open a report…');
    const compareInput = h('input', {
      type: 'file',
      id: 'bench-compare',
      accept: '.json,application/json',
      class: 'visually-hidden',
      tabindex: -1,
    });
    const compareBtn = h('button', { type: 'button', class: 'secondary', id: 'bench-compare-btn' }, 'Compare with…');
    const clearCompare = h('button', { type: 'button', class: 'link', hidden: true }, 'stop comparing');
    const adapterLine = h(
      'div',
      { class: 'bench-adapters', id: 'bench-adapter' },
      h(
        'p',
        { class: 'muted' },
        'Run the benchmarks, or open a report JSON (bench-results.json from npm run bench works too).',
      ),
    );
    const tables = h('div', { id: 'bench-tables' });
    const chart = barChart({ id: 'bench-chart', title: 'Tokens per second per model', yLabel: 'tokens / s' });
    const chartFig = h('figure', { hidden: true }, h('figcaption', {}, 'Tokens per second'), chart.el);
    const peerChart = barChart({
      id: 'bench-peer-chart',
      title: 'Ours and onnxruntime-web (WebGPU EP), same weights',
      yLabel: 'tokens / s',
    });
    const peerFig = h(
      'figure',
      { hidden: true },
      h('figcaption', {}, 'Tokens per second: our runtime and onnxruntime-web'),
      peerChart.el,
    );
    const resultsCard = h(
      'section',
      { class: 'card', 'aria-labelledby': 'bench-r-h' },
      h(
        'div',
        { class: 'card-head' },
        h('h2', { id: 'bench-r-h' }, 'Results'),
        h('div', { class: 'row' }, openBtn, compareBtn, downloadBtn, openInput, compareInput),
      ),
      adapterLine,
      tables,
      chartFig,
      peerFig,
    );
    root.append(
      h(
        'div',
        { class: 'page-grid bench-grid' },
        h('div', { class: 'col' }, settingsCard),
        h('div', { class: 'col' }, resultsCard),
      ),
    );

    let mine: SpeedReport | null = null;
    let mineName = 'this run';
    let other: SpeedReport | null = null;
    let otherName = '';

    const table = (id: string, caption: string, heads: string[], unit: string, a: Measure[], b: Measure[] | null) => {
      const bMap = new Map((b ?? []).map((m) => [m.key, m]));
      const keys = [...a.map((m) => m.key), ...(b ?? []).map((m) => m.key).filter((k) => !a.some((m) => m.key === k))];
      const aMap = new Map(a.map((m) => [m.key, m]));
      if (!keys.length) return null;
      const head = h(
        'tr',
        {},
        ...heads.map((x) => h('th', { scope: 'col' }, x)),
        h('th', { scope: 'col', class: 'num', title: mineName }, b ? short(mineName) : unit),
        ...(b
          ? [
              h('th', { scope: 'col', class: 'num', title: otherName }, short(otherName)),
              h('th', { scope: 'col', class: 'num', title: `${short(mineName)} / ${short(otherName)}` }, 'ratio'),
            ]
          : []),
      );
      const rows = keys.map((k) => {
        const x = aMap.get(k);
        const y = bMap.get(k);
        const cells = (x ?? y)!.cells;
        const ratio = x && y && y.value > 0 ? x.value / y.value : null;
        return h(
          'tr',
          { 'data-key': k },
          ...cells.map((c) => h('td', {}, c)),
          h('td', { class: 'num' }, f1(x?.value)),
          ...(b
            ? [
                h('td', { class: 'num' }, f1(y?.value)),
                h(
                  'td',
                  { class: `num ratio ${ratio === null ? '' : ratio >= 1 ? 'ok-text' : 'bad-text'}` },
                  ratio === null ? '—' : `${ratio.toFixed(2)}×`,
                ),
              ]
            : []),
        );
      });
      return h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'list bench', id },
          h('caption', {}, caption, h('span', { class: 'muted unit' }, ` · ${unit}${b ? ', higher is faster' : ''}`)),
          h('thead', {}, head),
          h('tbody', {}, ...rows),
        ),
      );
    };

    const peerTable = (results: PeerResult[]) => {
      const rows = peerRows(results);
      if (!rows.length) return null;
      const eps = [...new Set(results.map((p) => p.ortEp))].join(', ');
      return h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'list bench', id: 'bench-peer-table' },
          h(
            'caption',
            {},
            `Ours beside onnxruntime-web (${eps} EP, same weights, warm medians)`,
            h('span', { class: 'muted unit' }, ' · ratio = its time / ours, above 1 = we are faster'),
          ),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['Model', 'Phase', 'Ours', 'onnxruntime-web'].map((x) => h('th', { scope: 'col' }, x)),
              h('th', { scope: 'col', class: 'num' }, 'ratio'),
            ),
          ),
          h(
            'tbody',
            {},
            ...rows.map((r) =>
              h(
                'tr',
                { 'data-model': r.model, 'data-phase': r.phase.split(' ')[0] },
                h('td', {}, r.model),
                h('td', {}, r.phase),
                h('td', { class: 'num' }, `${f1(r.ours)} ${r.unit}`),
                h('td', { class: 'num ort' }, `${f1(r.ort)} ${r.unit}`),
                h('td', { class: `num ratio ${r.ratio >= 1 ? 'ok-text' : 'bad-text'}` }, `${r.ratio.toFixed(2)}×`),
              ),
            ),
          ),
        ),
        h(
          'p',
          { class: 'muted small' },
          results
            .map(
              (p) =>
                `${p.model}: onnxruntime-web session ${p.ortSessionS.toFixed(1)} s; next-token logits max |Δ| ` +
                `${p.maxAbsDiff.toExponential(1)} of max |logit| ${p.maxAbsLogit.toFixed(2)}`,
            )
            .join(' · '),
        ),
      );
    };

    const rooflineTable = (rows: RooflineRow[], r: SpeedReport) => {
      if (!rows.length || (!r.copyBandwidth && rows.every((x) => x.prefillFraction === null))) return null;
      return h(
        'div',
        { class: 'table-scroll' },
        h(
          'table',
          { class: 'list bench', id: 'bench-roofline-table' },
          h(
            'caption',
            {},
            'Roofline (WebGPU)',
            h(
              'span',
              { class: 'muted unit' },
              ' · prefill GFLOP/s of our best GEMM in this run; decode GB/s read of the copy bandwidth (read + written)',
            ),
          ),
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', { scope: 'col' }, 'Model'),
              ...['Prefill GFLOP/s', 'Best GEMM', 'of it', 'Decode GB/s', 'Copy GB/s', 'of it'].map((x) =>
                h('th', { scope: 'col', class: 'num' }, x),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            ...rows.map((x) =>
              h(
                'tr',
                { 'data-model': x.model },
                h('td', {}, x.model),
                h('td', { class: 'num' }, giga(x.prefillFlopsPerS)),
                h('td', { class: 'num' }, giga(x.bestGemmFlopsPerS)),
                h('td', { class: 'num prefill-fraction' }, pct(x.prefillFraction)),
                h('td', { class: 'num' }, giga(x.decodeBytesPerS)),
                h('td', { class: 'num' }, giga(x.copyBytesPerS)),
                h('td', { class: 'num decode-fraction' }, pct(x.decodeFraction)),
              ),
            ),
          ),
        ),
      );
    };

    const render = () => {
      clear(adapterLine);
      clear(tables);
      const base = mine ?? other;
      if (!base) {
        adapterLine.append(h('p', { class: 'muted' }, 'Run the benchmarks, or open a report JSON.'));
        chartFig.hidden = true;
        return;
      }
      const a = mine ?? other!;
      const b = mine && other ? other : null;
      adapterLine.append(
        h(
          'p',
          {},
          h('strong', {}, `Adapter (${mine ? mineName : otherName}): `),
          h('span', { class: 'adapter-name' }, a.adapter),
        ),
      );
      if (b)
        adapterLine.append(h('p', {}, h('strong', {}, `Compared with (${otherName}): `), b.adapter, ' ', clearCompare));
      clearCompare.hidden = !b;
      const t1 = table(
        'bench-kernels-table',
        'Kernels (matmul, attention)',
        ['Kernel', 'Shape', 'Backend'],
        'GFLOP/s',
        kernelRows(a),
        b ? kernelRows(b) : null,
      );
      const t2 = table(
        'bench-models-table',
        'Whole model (prefill / decode)',
        ['Model', 'Params', 'Backend', 'Phase'],
        'tokens/s',
        modelRows(a),
        b ? modelRows(b) : null,
      );
      const t3 = table(
        'bench-training-table',
        'Training steps',
        ['Model', 'Mode', 'Backend', 'Batch×seq', 'Step', 'Peak GPU'],
        'tokens/s',
        trainRows(a),
        b ? trainRows(b) : null,
      );
      const t4 = peerTable(a.peer ?? []);
      const t5 = rooflineTable(rooflineRows(a), a);
      for (const t of [t1, t2, t4, t5, t3]) if (t) tables.append(t);
      if (!t1 && !t2 && !t3 && !t4 && !t5) tables.append(h('p', { class: 'muted' }, 'No results yet.'));
      const pr = peerRows(a.peer ?? []);
      peerFig.hidden = !pr.length;
      if (pr.length) {
        // Tokens per second of each phase: prefill tokens / its time, one token / a decode step.
        const perS = (r: PeerRow, ms: number) =>
          r.phase === 'decode' ? 1000 / ms : (Number(r.phase.split(' ')[1]) * 1000) / ms;
        peerChart.set(
          pr.map((r) => `${r.model} ${r.phase.split(' ')[0]}`),
          [
            { label: 'ours', data: pr.map((r) => perS(r, r.ours)) },
            { label: 'onnxruntime-web', data: pr.map((r) => perS(r, r.ort)) },
          ],
        );
      }
      const m = a.models;
      chartFig.hidden = !m.length;
      if (m.length) {
        const labels = m.map((x) => `${x.model} ${x.backend}`);
        chart.set(labels, [
          { label: 'prefill tok/s', data: m.map((x) => x.prefillTokensPerS) },
          { label: 'decode tok/s', data: m.map((x) => x.decodeTokensPerS) },
        ]);
      }
      downloadBtn.disabled = !mine;
    };

    const readJson = async (input: HTMLInputElement): Promise<{ report: SpeedReport; name: string } | null> => {
      const f = input.files?.[0];
      input.value = '';
      if (!f) return null;
      try {
        return { report: parseSpeedReport(await f.text()), name: f.name };
      } catch (e) {
        status.set(`Cannot open ${f.name}: ${errorText(e)}`, 'error');
        return null;
      }
    };
    openBtn.addEventListener('click', () => openInput.click());
    compareBtn.addEventListener('click', () => compareInput.click());
    openInput.addEventListener('change', async () => {
      const r = await readJson(openInput);
      if (!r) return;
      mine = r.report;
      mineName = r.name;
      render();
    });
    compareInput.addEventListener('change', async () => {
      const r = await readJson(compareInput);
      if (!r) return;
      other = r.report;
      otherName = r.name;
      render();
      status.set(`Comparing with ${r.name}.`, 'ok');
    });
    clearCompare.addEventListener('click', () => {
      other = null;
      render();
    });
    downloadBtn.addEventListener('click', () => {
      if (mine) downloadText(`bench-results-${stamp()}.json`, JSON.stringify(mine, null, 2), 'application/json');
    });

    // ---- run --------------------------------------------------------------------------------
    let running: string | null = null;
    const settings = (): BenchSettings => ({
      sizes: sizes.filter((s) => s.input.checked).map((s) => s.input.value),
      kernelShapes: KERNEL_PRESETS[kernels.value]?.shapes ?? [],
      attention: attention.input.checked,
      models: models.input.checked,
      training: training.input.checked || full.input.checked,
      trainingModes: [
        ...(training.input.checked ? (['lora'] as const) : []),
        ...(full.input.checked ? (['full'] as const) : []),
      ],
      cpuTwin: cpu.input.checked,
      peer: peer.input.checked,
      roofline: roofline.input.checked,
    });
    runBtn.addEventListener('click', async () => {
      if (running) return;
      const s = settings();
      const id = newTaskId('bench');
      running = id;
      runBtn.disabled = true;
      stopBtn.hidden = false;
      progress.hidden = false;
      progress.value = 0;
      delete status.el.dataset.done;
      mine = { adapter: '…', kernels: [], models: [], training: [] };
      mineName = 'this run';
      render();
      state.set('busy', 'Benchmarking…');
      const onEvent = (e: BenchEvent) => {
        if (!mine) return;
        if (e.type === 'status') {
          progress.max = Math.max(1, e.total);
          progress.value = e.done;
          progressLabel.textContent = e.text;
          return;
        }
        if (e.type === 'kernel') mine.kernels.push(e.result);
        else if (e.type === 'model') mine.models.push(e.result);
        else if (e.type === 'peer') (mine.peer ??= []).push(e.result);
        else if (e.type === 'copy') mine.copyBandwidth = e.result;
        else mine.training.push(e.result);
        render();
      };
      status.set('Running… (the page stays usable; the engine is busy until it finishes)');
      try {
        mine = await api.bench(id, s, Comlink.proxy(onEvent));
        render();
        status.set('Done. Download the JSON to compare later runs or machines.', 'ok');
        status.el.dataset.done = 'true';
      } catch (e) {
        const aborted = (e as Error).name === 'AbortError' || /abort/i.test(errorText(e));
        status.set(aborted ? 'Stopped.' : `Benchmark failed: ${errorText(e)}`, aborted ? 'warn' : 'error');
      } finally {
        running = null;
        runBtn.disabled = false;
        stopBtn.hidden = true;
        progressLabel.textContent = '';
        state.set('busy', null);
      }
    });
    stopBtn.addEventListener('click', () => {
      if (running) void api.abort(running);
    });
    render();
  },
};
