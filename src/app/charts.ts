/**
 * Charts for the Train, Evaluate and Benchmark pages, drawn by Chart.js (only the pieces used are
 * registered, so the rest is tree-shaken). Colours come from the page's CSS variables, so light
 * and dark themes both read well. Each chart's container carries `data-points` (how many data
 * points it shows) for tests and assistive summaries.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  LogarithmicScale,
  PointElement,
  Tooltip,
  type ChartDataset,
} from 'chart.js';
import { h } from './dom';

Chart.register(
  LineController,
  LineElement,
  PointElement,
  BarController,
  BarElement,
  LinearScale,
  LogarithmicScale,
  CategoryScale,
  Tooltip,
  Legend,
);

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

/** A palette for series, starting with the accent colour. */
function palette(): string[] {
  return [
    cssVar('--accent', '#2f5fd0'),
    cssVar('--ok', '#1c7c45'),
    cssVar('--warn', '#9a6200'),
    cssVar('--bad', '#b42318'),
    '#7c4dbc',
    '#0f8a8a',
    '#b0567a',
  ];
}

function baseColors() {
  return { text: cssVar('--muted', '#5d6576'), grid: cssVar('--border', '#dde1e8') };
}

function frame(id: string, label: string, height: string): { wrap: HTMLElement; canvas: HTMLCanvasElement } {
  const canvas = h('canvas', { role: 'img', 'aria-label': label });
  const wrap = h('div', { class: 'chart', id, 'data-points': 0, style: `height:${height}` }, canvas);
  return { wrap, canvas };
}

export interface LineChart {
  el: HTMLElement;
  /** Appends a point (x ascending). */
  push(x: number, y: number): void;
  /** Replaces every point. */
  set(points: { x: number; y: number }[]): void;
  points(): number;
  destroy(): void;
}

/**
 * A line chart of y over a numeric x (e.g. loss per step). Redraws are batched to one per
 * animation frame, so pushing a point every step stays cheap.
 */
export function lineChart(opts: {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  color?: string;
  height?: string;
  /** Tooltip values (default: as is). */
  format?: (y: number) => string;
  /** Axis tick labels (default: Chart.js's). */
  tickFormat?: (y: number) => string;
}): LineChart {
  const { wrap, canvas } = frame(opts.id, opts.title, opts.height ?? '220px');
  const c = baseColors();
  const color = opts.color ?? palette()[0]!;
  const data: { x: number; y: number }[] = [];
  const chart = new Chart(canvas, {
    type: 'line',
    data: {
      datasets: [
        {
          label: opts.yLabel,
          data,
          borderColor: color,
          backgroundColor: color,
          borderWidth: 2,
          pointRadius: 0,
          pointHitRadius: 6,
          tension: 0,
        },
      ],
    },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      parsing: false,
      normalized: true,
      interaction: { mode: 'nearest', axis: 'x', intersect: false },
      plugins: {
        legend: { display: false },
        title: { display: false },
        tooltip: {
          callbacks: {
            label: (ctx) => `${opts.yLabel}: ${opts.format ? opts.format(ctx.parsed.y ?? 0) : String(ctx.parsed.y)}`,
          },
        },
      },
      scales: {
        x: {
          type: 'linear',
          title: { display: true, text: opts.xLabel, color: c.text },
          ticks: { color: c.text, precision: 0 },
          grid: { color: c.grid },
        },
        y: {
          type: 'linear',
          title: { display: true, text: opts.yLabel, color: c.text },
          ticks: { color: c.text, ...(opts.tickFormat ? { callback: (v) => opts.tickFormat!(Number(v)) } : {}) },
          grid: { color: c.grid },
        },
      },
    },
  });
  let frameId = 0;
  const redraw = () => {
    wrap.dataset.points = String(data.length);
    if (!frameId) {
      frameId = requestAnimationFrame(() => {
        frameId = 0;
        chart.update('none');
      });
    }
  };
  return {
    el: wrap,
    push(x, y) {
      if (!Number.isFinite(y)) return;
      data.push({ x, y });
      redraw();
    },
    set(points) {
      data.length = 0;
      for (const p of points) if (Number.isFinite(p.y)) data.push({ x: p.x, y: p.y });
      redraw();
    },
    points: () => data.length,
    destroy: () => chart.destroy(),
  };
}

export interface BarSeries {
  label: string;
  data: (number | null)[];
  /** Put this series on the right-hand axis. */
  right?: boolean;
}

export interface BarChart {
  el: HTMLElement;
  set(categories: string[], series: BarSeries[]): void;
  destroy(): void;
}

/** Grouped bars: one group per category (e.g. system), one bar per series. */
export function barChart(opts: {
  id: string;
  title: string;
  yLabel: string;
  rightLabel?: string;
  percent?: boolean;
  height?: string;
}): BarChart {
  const { wrap, canvas } = frame(opts.id, opts.title, opts.height ?? '260px');
  const c = baseColors();
  const colors = palette();
  const fmt = (v: number) =>
    opts.percent ? `${Math.round(v * 100)}%` : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  const chart = new Chart<'bar', (number | null)[], string>(canvas, {
    type: 'bar',
    data: { labels: [], datasets: [] },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      plugins: {
        legend: { position: 'bottom', labels: { color: c.text, boxWidth: 12 } },
        tooltip: {
          callbacks: { label: (ctx) => `${ctx.dataset.label}: ${ctx.parsed.y === null ? '—' : fmt(ctx.parsed.y)}` },
        },
      },
      scales: {
        x: { ticks: { color: c.text }, grid: { display: false } },
        y: {
          beginAtZero: true,
          ...(opts.percent ? { max: 1 } : {}),
          title: { display: true, text: opts.yLabel, color: c.text },
          ticks: { color: c.text, callback: (v) => fmt(Number(v)) },
          grid: { color: c.grid },
        },
        y1: {
          display: !!opts.rightLabel,
          position: 'right',
          beginAtZero: true,
          title: { display: !!opts.rightLabel, text: opts.rightLabel ?? '', color: c.text },
          ticks: { color: c.text, callback: (v) => fmt(Number(v)) },
          grid: { drawOnChartArea: false },
        },
      },
    },
  });
  return {
    el: wrap,
    set(categories, series) {
      chart.data.labels = categories;
      chart.data.datasets = series.map(
        (s, i): ChartDataset<'bar', (number | null)[]> => ({
          label: s.label,
          data: s.data,
          backgroundColor: colors[i % colors.length],
          borderRadius: 3,
          yAxisID: s.right ? 'y1' : 'y',
        }),
      );
      wrap.dataset.points = String(series.reduce((a, s) => a + s.data.filter((v) => v !== null).length, 0));
      chart.update('none');
    },
    destroy: () => chart.destroy(),
  };
}
