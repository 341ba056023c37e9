/**
 * The engine worker: the local Runtime + LocalEngine, the teacher engines and the debate all run
 * here, so the page never blocks. Exposed with comlink; see api.ts for the contract.
 */
import * as Comlink from 'comlink';
import { LocalEngine, Runtime } from '../engine/local';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionOptions, ChatCompletionRequest, ChatEngine, FinishReason } from '../engine/types';
import { listWeightFiles, loadCheckpoint, readModelConfig, readWeightFileHeader } from '../formats/checkpoint';
import { filesSource, hfSource, HttpSource, type FileSource } from '../formats/source';
import { runDebate, type DebateOptions } from '../teach/debate';
import { collectStream, OpenAIEngine } from '../teach/openai-engine';
import type { Question } from '../teach/datasets';
import type {
  AdapterReport,
  ChatStats,
  DebateEvent,
  DebateRunResult,
  DebateRunSettings,
  DebateSlot,
  InspectResult,
  LoadedModel,
  LoadProgress,
  LoadSettings,
  ModelSource,
  TeacherEngineSpec,
  WorkerApi,
} from './api';
import { CachedSource, cacheAvailable } from './cache';
import { estimateMemory, summarize, type DeviceBudget } from './estimate';

const tasks = new Map<string, AbortController>();

function startTask(id: string): AbortController {
  tasks.get(id)?.abort();
  const c = new AbortController();
  tasks.set(id, c);
  return c;
}

function endTask(id: string, c: AbortController): void {
  if (tasks.get(id) === c) tasks.delete(id);
}

/**
 * Calls a comlink-proxied page callback without waiting for it (or failing on it). Returns a
 * promise that settles once the page handled it; calls on one callback arrive in order, so
 * awaiting the last one before returning means the page has seen every event.
 */
function notify<T>(fn: (x: T) => unknown, x: T): Promise<void> {
  try {
    return Promise.resolve(fn(x)).then(
      () => {},
      () => {},
    );
  } catch {
    return Promise.resolve(); // the page went away
  }
}

// ---------------------------------------------------------------------------------------------
// Device

let adapterReport: Promise<AdapterReport> | null = null;

function deviceMemoryGB(): number | null {
  const m = (navigator as Navigator & { deviceMemory?: number }).deviceMemory;
  return typeof m === 'number' ? m : null;
}

async function queryAdapter(): Promise<AdapterReport> {
  const base = { crossOriginIsolated: self.crossOriginIsolated === true, deviceMemoryGB: deviceMemoryGB(), hardwareConcurrency: navigator.hardwareConcurrency ?? 1 };
  const gpu = (navigator as Navigator).gpu;
  if (!gpu) {
    return { available: false, reason: 'WebGPU is not available here: navigator.gpu is missing. Use a recent Chrome or Edge (or enable WebGPU in the browser flags).', ...base };
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return { available: false, reason: `requestAdapter() failed: ${(e as Error).message}`, ...base };
  }
  if (!adapter) {
    return { available: false, reason: 'navigator.gpu exists but no WebGPU adapter was found (the GPU may be block-listed or WebGPU disabled).', ...base };
  }
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  const limits: Record<string, number> = {};
  const proto = Object.getPrototypeOf(adapter.limits) as object;
  for (const key of Object.keys(Object.getOwnPropertyDescriptors(proto))) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') limits[key] = v;
  }
  const features = [...adapter.features].map(String).sort();
  return {
    available: true,
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: (info as GPUAdapterInfo & { isFallbackAdapter?: boolean })?.isFallbackAdapter ?? false,
    features,
    f16: features.includes('shader-f16'),
    subgroups: features.includes('subgroups'),
    limits,
    ...base,
  };
}

function device(): Promise<AdapterReport> {
  adapterReport ??= queryAdapter();
  return adapterReport;
}

async function budget(): Promise<DeviceBudget> {
  const d = await device();
  if (!d.available) return { limits: null, f16: false, deviceMemoryGB: d.deviceMemoryGB };
  return {
    limits: { maxStorageBufferBindingSize: d.limits.maxStorageBufferBindingSize ?? 0, maxBufferSize: d.limits.maxBufferSize ?? 0 },
    f16: d.f16,
    deviceMemoryGB: d.deviceMemoryGB,
  };
}

// ---------------------------------------------------------------------------------------------
// Models

interface Current {
  runtime: Runtime;
  engine: LocalEngine;
  info: LoadedModel;
}

let current: Current | null = null;

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

/** One CachedSource per cache for the worker's lifetime, so what it learnt (sizes, absent files) is reused. */
const cachedSources = new Map<string, CachedSource>();

/** The FileSource for a model; downloads from other origins go through the Cache Storage. */
async function openModel(source: ModelSource): Promise<{ files: FileSource; cached: CachedSource | null }> {
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
      if (sameOrigin(source.url)) return { files: inner, cached: null };
      break;
  }
  if (!cacheAvailable()) return { files: inner, cached: null };
  const fresh = new CachedSource(inner);
  // Reuse the remembered one unless the page deleted its cache meanwhile.
  const known = cachedSources.get(fresh.cacheName);
  const cached = known && (await caches.has(fresh.cacheName)) ? known : fresh;
  cachedSources.set(cached.cacheName, cached);
  return { files: cached, cached };
}

async function inspectSource(files: FileSource, settings: LoadSettings, signal?: AbortSignal): Promise<InspectResult> {
  const config = await readModelConfig(files);
  const weightFiles = await listWeightFiles(files);
  const headers = await Promise.all(weightFiles.map((f) => readWeightFileHeader(files, f, signal)));
  const hasTokenizer = await files.exists('tokenizer.json');
  return { summary: summarize(files.location, config, headers, hasTokenizer), estimate: estimateMemory(config, headers, settings, await budget()) };
}

async function inspect(source: ModelSource, settings: LoadSettings, taskId: string): Promise<InspectResult> {
  const ctrl = startTask(taskId);
  try {
    return await inspectSource((await openModel(source)).files, settings, ctrl.signal);
  } finally {
    endTask(taskId, ctrl);
  }
}

function unload(): void {
  current?.runtime.dispose();
  current = null;
}

async function load(source: ModelSource, settings: LoadSettings, taskId: string, onProgress: (e: LoadProgress) => void): Promise<LoadedModel> {
  const ctrl = startTask(taskId);
  const t0 = performance.now();
  let delivered: Promise<void> = Promise.resolve();
  const progress = (e: LoadProgress) => {
    delivered = notify(onProgress, e);
  };
  try {
    const { files, cached } = await openModel(source);
    progress({ phase: 'inspect', done: 0, total: 1, unit: 'items', note: 'reading config.json and weight headers' });
    const inspected = await inspectSource(files, settings, ctrl.signal);
    const blocking = inspected.estimate.checks.find((c) => c.level === 'error');
    if (blocking) throw new Error(blocking.text);
    const busy = [...tasks.keys()].find((id) => /^(chat|debate)-/.test(id));
    if (busy) throw new Error(`Stop the running ${busy.split('-')[0]} before loading another model.`);
    // Free the old model before the new one's weights arrive.
    unload();
    const ckpt = await loadCheckpoint(files, { signal: ctrl.signal, onProgress: progress });
    if (!ckpt.tokenizer) throw new Error(`${files.location} has no tokenizer.json; the app needs one to chat`);
    await cached?.save(true).catch(() => {});
    ctrl.signal.throwIfAborted();
    progress({ phase: 'upload', done: 0, total: 1, unit: 'items', note: 'uploading weights to the GPU and compiling kernels' });
    const runtime = await Runtime.fromCheckpoint(ckpt, { contextLength: settings.contextLength, maxBatch: settings.maxBatch, dtype: settings.dtype });
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
    current = { runtime, engine: new LocalEngine(runtime), info };
    await delivered;
    return info;
  } finally {
    endTask(taskId, ctrl);
  }
}

function requireEngine(): LocalEngine {
  if (!current) throw new Error('No model is loaded: load one on the Models page first.');
  return current.engine;
}

// ---------------------------------------------------------------------------------------------
// Chat

async function chat(taskId: string, req: ChatCompletionRequest, onDelta: (text: string) => void): Promise<ChatStats> {
  const engine = requireEngine();
  const ctrl = startTask(taskId);
  const t0 = performance.now();
  let first = 0;
  let finishReason: FinishReason = 'stop';
  let promptTokens = 0;
  let completionTokens = 0;
  let deltas = 0;
  let text = '';
  let delivered: Promise<void> = Promise.resolve();
  try {
    const stream = await engine.chat.completions.create({ ...req, stream: true, n: 1 }, { signal: ctrl.signal });
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        if (ch.delta.content) {
          if (!first) first = performance.now();
          deltas++;
          text += ch.delta.content;
          delivered = notify(onDelta, ch.delta.content);
        }
        if (ch.finish_reason) finishReason = ch.finish_reason;
      }
      if (chunk.usage) {
        promptTokens = chunk.usage.prompt_tokens;
        completionTokens = chunk.usage.completion_tokens;
      }
    }
  } finally {
    endTask(taskId, ctrl);
  }
  await delivered;
  const end = performance.now();
  if (ctrl.signal.aborted) finishReason = 'abort';
  const tokens = completionTokens || deltas;
  const decodeS = first ? (end - first) / 1000 : 0;
  return {
    text,
    promptTokens,
    completionTokens: tokens,
    ttftMs: first ? Math.round(first - t0) : Math.round(end - t0),
    totalMs: Math.round(end - t0),
    tokensPerS: decodeS > 0 && tokens > 1 ? (tokens - 1) / decodeS : tokens / Math.max((end - t0) / 1000, 1e-3),
    finishReason,
  };
}

// ---------------------------------------------------------------------------------------------
// Teacher engines and the debate

let webllm: { model: string; engine: ChatEngine } | null = null;

async function teacherEngine(spec: TeacherEngineSpec, emit: (e: DebateEvent) => void): Promise<{ engine: ChatEngine; model: string }> {
  switch (spec.kind) {
    case 'local': {
      const engine = requireEngine();
      return { engine, model: current!.info.id };
    }
    case 'openai':
      if (!spec.baseUrl) throw new Error('Enter the base URL of the OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1).');
      if (!spec.model) throw new Error('Enter the model name the server should use.');
      return { engine: new OpenAIEngine({ baseUrl: spec.baseUrl, apiKey: spec.apiKey || undefined, model: spec.model, concurrency: spec.concurrency ?? 4 }), model: spec.model };
    case 'webllm': {
      if (webllm?.model !== spec.model) {
        webllm = null;
        emit({ type: 'status', text: `Loading WebLLM model ${spec.model} (downloads weights and a model library on first use)…`, progress: 0 });
        const { createWebLLMEngine } = await import('../teach/webllm-engine');
        const engine = await createWebLLMEngine(spec.model, {
          onProgress: (e) => emit({ type: 'status', text: `Loading WebLLM model ${spec.model}…`, progress: e.total ? e.done / e.total : 0 }),
        });
        webllm = { model: spec.model, engine };
      }
      return { engine: webllm.engine, model: spec.model };
    }
  }
}

/**
 * Wraps a teacher engine for one question so every call streams to the page. runDebate asks for
 * plain completions and starts a round's calls in agent order, then the aggregator, so the n-th
 * call identifies its round and agent.
 */
function tapEngine(base: ChatEngine, index: number, agents: number, rounds: number, emit: (e: DebateEvent) => void): ChatEngine {
  let calls = 0;
  const create = async (req: ChatCompletionRequest, opts?: ChatCompletionOptions): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> => {
    if (req.stream) return base.chat.completions.create(req, opts);
    const n = calls++;
    const round = Math.min(Math.floor(n / agents) + 1, rounds + 1);
    const slot: DebateSlot = n >= agents * rounds ? 'aggregator' : n % agents;
    emit({ type: 'call', index, round, slot });
    const stream = await base.chat.completions.create({ ...req, stream: true }, opts);
    const tapped = (async function* () {
      for await (const chunk of stream) {
        for (const ch of chunk.choices) if (ch.delta.content) emit({ type: 'delta', index, round, slot, text: ch.delta.content });
        yield chunk;
      }
    })();
    const completion = await collectStream(tapped);
    emit({ type: 'call-done', index, round, slot, finishReason: completion.choices[0]?.finish_reason ?? 'stop' });
    return completion;
  };
  return { chat: { completions: { create: create as ChatEngine['chat']['completions']['create'] } }, models: () => base.models() };
}

async function debate(taskId: string, questions: Question[], settings: DebateRunSettings, onEvent: (e: DebateEvent) => void): Promise<DebateRunResult> {
  const ctrl = startTask(taskId);
  let delivered: Promise<void> = Promise.resolve();
  const emit = (e: DebateEvent) => {
    delivered = notify(onEvent, e);
  };
  const t0 = performance.now();
  const failed: { id: string; error: string }[] = [];
  let completed = 0;
  try {
    const { engine, model } = await teacherEngine(settings.engine, emit);
    const agents = Math.max(1, Math.floor(settings.agents));
    const rounds = Math.max(1, Math.floor(settings.rounds));
    const opts: DebateOptions = {
      numAgents: agents,
      rounds,
      aggregator: settings.aggregator,
      model,
      temperature: settings.temperature,
      top_p: settings.top_p,
      max_tokens: settings.max_tokens,
      ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
      ...(settings.task ? { task: settings.task } : {}),
    };
    const names = Array.from({ length: agents }, (_, i) => `agent${i + 1}`);
    for (let index = 0; index < questions.length && !ctrl.signal.aborted; index++) {
      const q = questions[index]!;
      emit({ type: 'question', index, id: q.id, question: q.question, agents: names, rounds, aggregator: settings.aggregator });
      try {
        const record = await runDebate(q, opts, tapEngine(engine, index, agents, rounds, emit), ctrl.signal);
        if (ctrl.signal.aborted) break;
        completed++;
        emit({ type: 'record', index, record });
      } catch (e) {
        if (ctrl.signal.aborted) break;
        const error = (e as Error).message ?? String(e);
        failed.push({ id: q.id, error });
        emit({ type: 'failed', index, id: q.id, error });
      }
    }
  } finally {
    endTask(taskId, ctrl);
  }
  await delivered;
  return { completed, failed, aborted: ctrl.signal.aborted, wallMs: Math.round(performance.now() - t0) };
}

async function webllmModels(withoutF16: boolean): Promise<string[]> {
  const { webllmTeacherModels } = await import('../teach/webllm-engine');
  return webllmTeacherModels({ withoutShaderF16: withoutF16 });
}

// ---------------------------------------------------------------------------------------------

const api: WorkerApi = {
  device,
  inspect,
  load,
  async unload() {
    for (const [id, c] of tasks) if (/^(chat|debate)-/.test(id)) c.abort(new DOMException('The model was unloaded', 'AbortError'));
    unload();
  },
  async loaded() {
    return current?.info ?? null;
  },
  async memoryStats() {
    return current?.runtime.gpu?.memoryStats() ?? null;
  },
  chat,
  webllmModels,
  debate,
  abort(taskId: string) {
    tasks.get(taskId)?.abort(new DOMException('Stopped by the user', 'AbortError'));
  },
};

Comlink.expose(api);
