/**
 * Models: opening a source (URL, Hub repo, local files; other origins through the Cache Storage),
 * inspecting it, loading it onto the GPU and unloading it. Owns the loaded model; the other
 * feature modules reach it through `require()` and hear of unloads through `onUnload`.
 */
import { LocalEngine, Runtime } from '../../engine/local';
import { listWeightFiles, loadCheckpoint, readModelConfig, readWeightFileHeader } from '../../formats/checkpoint';
import { filesSource, hfSource, HttpSource, type FileSource } from '../../formats/source';
import { fnv1a } from '../../util/hash';
import type { InspectResult, LoadedModel, LoadProgress, LoadSettings, ModelSource } from '../api';
import { CachedSource, cacheAvailable } from '../cache';
import { estimateMemory, summarize } from '../estimate';
import { device, deviceBudget } from './device';
import { emitter, type Tasks } from './tasks';

/** The loaded model: its runtime (weights, tokenizer, adapters), the engine over it and what the page shows. */
export interface LoadedRuntime {
  runtime: Runtime;
  engine: LocalEngine;
  info: LoadedModel;
}

function sameOrigin(url: string): boolean {
  try {
    return new URL(url).origin === self.location.origin;
  } catch {
    return false;
  }
}

/** A short model name for the UI and trajectories: the repo id, the folder name or the URL's last path part. */
function displayName(source: ModelSource): string {
  if (source.kind === 'hf') return source.id;
  if (source.kind === 'files') return source.label;
  const u = new URL(source.url);
  const parts = u.pathname.split('/').filter(Boolean);
  return parts.length ? decodeURIComponent(parts.slice(-2).join('/')) : u.host;
}

/** A source whose file list is known (the build's listing of the embedded model): exists() asks no server, so no 404s. */
function listedSource(inner: FileSource, files: string[]): FileSource {
  const known = new Set(files);
  return {
    location: inner.location,
    describe: (name) => inner.describe(name),
    exists: async (name) => known.has(name),
    readText: (name) => inner.readText(name),
    size: (name) => inner.size(name),
    readRange: (name, start, end, options) => inner.readRange(name, start, end, options),
    stream: (name, onBytes, options) => inner.stream(name, onBytes, options),
  };
}

/** FNV-1a of the model config plus its id: a stored run resumes only on the same model. */
export function modelKey(m: LoadedRuntime): string {
  return `${m.info.id}#${fnv1a(`${m.info.id}|${JSON.stringify(m.runtime.model.config)}`).toString(16)}`;
}

export class Models {
  private current: LoadedRuntime | null = null;
  /** One CachedSource per cache for the worker's lifetime, so what it learnt (sizes, absent files) is reused. */
  private readonly cachedSources = new Map<string, CachedSource>();
  private readonly unloadHooks: (() => void)[] = [];

  constructor(private readonly tasks: Tasks) {}

  /** The loaded model, or null. */
  get loaded(): LoadedRuntime | null {
    return this.current;
  }

  require(): LoadedRuntime {
    if (!this.current) throw new Error('No model is loaded: load one on the Models page first.');
    return this.current;
  }

  /** Called (in order) before the loaded model is freed: state built on it must go first. */
  onUnload(fn: () => void): void {
    this.unloadHooks.push(fn);
  }

  /** The FileSource for a model; downloads from other origins go through the Cache Storage. */
  private async open(source: ModelSource): Promise<{ files: FileSource; cached: CachedSource | null }> {
    let inner: FileSource;
    switch (source.kind) {
      case 'files':
        return { files: filesSource(source.files, source.label), cached: null };
      case 'hf':
        inner = hfSource(source.id, { hfEndpoint: source.endpoint, hfToken: source.token });
        break;
      case 'url':
        if (!/^https?:\/\//i.test(source.url)) throw new Error(`not an http(s) URL: ${source.url}`);
        inner = new HttpSource(source.url);
        if (sameOrigin(source.url))
          return { files: source.files ? listedSource(inner, source.files) : inner, cached: null };
        break;
    }
    if (!cacheAvailable()) return { files: inner, cached: null };
    const fresh = new CachedSource(inner);
    // Reuse the remembered one unless the page deleted its cache meanwhile.
    const known = this.cachedSources.get(fresh.cacheName);
    const cached = known && (await caches.has(fresh.cacheName)) ? known : fresh;
    this.cachedSources.set(cached.cacheName, cached);
    return { files: cached, cached };
  }

  private async inspectFiles(files: FileSource, settings: LoadSettings, signal?: AbortSignal): Promise<InspectResult> {
    const config = await readModelConfig(files);
    const weightFiles = await listWeightFiles(files);
    const headers = await Promise.all(weightFiles.map((f) => readWeightFileHeader(files, f, signal)));
    const hasTokenizer = await files.exists('tokenizer.json');
    return {
      summary: summarize(files.location, config, headers, hasTokenizer),
      estimate: estimateMemory(config, headers, settings, await deviceBudget()),
    };
  }

  async inspect(source: ModelSource, settings: LoadSettings, taskId: string): Promise<InspectResult> {
    const ctrl = this.tasks.start(taskId);
    try {
      return await this.inspectFiles((await this.open(source)).files, settings, ctrl.signal);
    } finally {
      this.tasks.end(taskId, ctrl);
    }
  }

  /** Frees the loaded model (and, through the hooks, whatever lives on it). */
  unload(): void {
    for (const fn of this.unloadHooks) fn();
    this.current?.runtime.dispose();
    this.current = null;
  }

  async load(
    source: ModelSource,
    settings: LoadSettings,
    taskId: string,
    onProgress: (e: LoadProgress) => void,
  ): Promise<LoadedModel> {
    const ctrl = this.tasks.start(taskId);
    const t0 = performance.now();
    const { emit: progress, delivered } = emitter(onProgress);
    try {
      const d = await device();
      if (!d.available) throw new Error(`WebGPU is unavailable here: ${d.reason}`);
      const { files, cached } = await this.open(source);
      progress({ phase: 'inspect', done: 0, total: 1, unit: 'items', note: 'reading config.json and weight headers' });
      const inspected = await this.inspectFiles(files, settings, ctrl.signal);
      const blocking = inspected.estimate.checks.find((c) => c.level === 'error');
      if (blocking) throw new Error(blocking.text);
      const busy = this.tasks.busy(['chat', 'debate', 'eval', 'train', 'prm', 'rl', 'bench']);
      if (busy) throw new Error(`Stop the running ${busy} before loading another model.`);
      // Free the old model before the new one's weights arrive.
      this.unload();
      const ckpt = await loadCheckpoint(files, { signal: ctrl.signal, onProgress: progress });
      if (!ckpt.tokenizer) throw new Error(`${files.location} has no tokenizer.json; the app needs one to chat`);
      await cached?.save(true).catch(() => {});
      ctrl.signal.throwIfAborted();
      progress({
        phase: 'upload',
        done: 0,
        total: 1,
        unit: 'items',
        note: 'uploading weights to the GPU and compiling kernels',
      });
      if (settings.quantize) {
        const note = `quantizing the weights to ${settings.quantize} (kept in this browser for the next load)`;
        progress({ phase: 'upload', done: 0, total: 1, unit: 'items', note });
      }
      const runtime = await Runtime.fromCheckpoint(ckpt, {
        contextLength: settings.contextLength,
        maxBatch: settings.maxBatch,
        dtype: settings.dtype,
        ...(settings.quantize ? { quantize: settings.quantize } : {}),
      });
      progress({ phase: 'upload', done: 1, total: 1, unit: 'items', note: 'ready' });
      const info: LoadedModel = {
        id: displayName(source),
        sourceKind: source.kind,
        summary: inspected.summary,
        estimate: inspected.estimate,
        backend: runtime.describeBackend(),
        contextLength: runtime.generator.contextLength,
        maxBatch: runtime.generator.maxBatch,
        loadMs: Math.round(performance.now() - t0),
        cached: cached !== null,
      };
      this.current = { runtime, engine: new LocalEngine(runtime), info };
      await delivered();
      return info;
    } finally {
      this.tasks.end(taskId, ctrl);
    }
  }
}
