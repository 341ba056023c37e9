/**
 * The page side of the engine worker, plus the little shared state pages react to.
 *
 * Pages get an AppContext: `ctx.api` is the comlink remote of WorkerApi (every call async), and
 * `ctx.state` holds the loaded model and the device report with change events.
 */
import * as Comlink from 'comlink';
import type { AdapterReport, LoadedModel, WorkerApi } from './api';

export type Api = Comlink.Remote<WorkerApi>;

let taskCounter = 0;
/** A fresh id for a cancellable worker call (`api.abort(id)`). */
export function newTaskId(kind: string): string {
  return `${kind}-${Date.now().toString(36)}-${++taskCounter}`;
}

export function startWorker(): Api {
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'agentark-engine' });
  return Comlink.wrap<WorkerApi>(worker);
}

export { Comlink };

type Events = { model: LoadedModel | null; device: AdapterReport; busy: string | null };

/** Observable app state shared by the pages. */
export class AppState extends EventTarget {
  model: LoadedModel | null = null;
  device: AdapterReport | null = null;
  /** What the engine is doing (loading, generating…), for the header. */
  busy: string | null = null;

  set<K extends keyof Events>(key: K, value: Events[K]): void {
    (this as unknown as Record<string, unknown>)[key] = value;
    this.dispatchEvent(new CustomEvent(key, { detail: value }));
  }

  on<K extends keyof Events>(key: K, fn: (value: Events[K]) => void): void {
    this.addEventListener(key, (e) => fn((e as CustomEvent<Events[K]>).detail));
  }
}

export interface AppContext {
  api: Api;
  state: AppState;
  /** Switch to another page by id. */
  show(page: string): void;
  /** Query parameters of the page URL (`?model=…`). */
  params: URLSearchParams;
}

/** One tab of the app. New pages (training, evaluation) implement this and join `pages` in main.ts. */
export interface Page {
  id: string;
  title: string;
  /** Builds the page into `root` once, at startup. */
  mount(root: HTMLElement, ctx: AppContext): void;
  /** Called each time the tab becomes visible. */
  onShow?(): void;
}
