/**
 * The engine worker: the local Runtime + LocalEngine, the teacher engines and the debate all run
 * here, so the page never blocks. Exposed with comlink; see api.ts for the contract.
 */
import * as Comlink from 'comlink';
import { toJsonl } from '../distill/common';
import { buildDa } from '../distill/da';
import { importedToTrajectories, parseDistillInput } from '../distill/from-imported';
import { buildPad } from '../distill/pad-labels';
import { buildRsft } from '../distill/rsft';
import { generateProblems } from '../demo/problems';
import { LocalEngine, Runtime } from '../engine/local';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionOptions, ChatCompletionRequest, ChatEngine, FinishReason } from '../engine/types';
import { evaluate, type EvalReport, type EvalSystem } from '../eval/harness';
import { BENCH_SIZES, benchmarkKernels, benchmarkModel, benchmarkTraining, type SpeedReport } from '../eval/speed';
import { listWeightFiles, loadCheckpoint, readModelConfig, readWeightFileHeader } from '../formats/checkpoint';
import { loadPeftAdapter, serializePeftAdapter, type PeftAdapter } from '../formats/peft';
import { filesSource, hfSource, HttpSource, type FileSource } from '../formats/source';
import { Gpu } from '../gpu/device';
import type { AnyBackend } from '../kernels/backend';
import { CpuBackend } from '../kernels/cpu';
import { GpuBackend } from '../kernels/gpu';
import { SMALL_MODEL_DEBATE, runDebate, type DebateOptions } from '../teach/debate';
import { collectStream, OpenAIEngine } from '../teach/openai-engine';
import type { Question } from '../tasks/datasets';
import type { TrajectoryRecord } from '../teach/trajectory';
import { checkpointFiles, parseTrainerState, restoreFromFiles } from '../train/checkpoint';
import { parseTrainingJsonl, tokenizeRow, TrainingDataError, type TrainExample } from '../train/data';
import { DEFAULT_TRAIN_OPTIONS, Trainer, type TrainOptions } from '../train/trainer';
import type {
  AdapterFiles,
  AdapterInfo,
  AdapterList,
  AdapterReport,
  BenchEvent,
  BenchSettings,
  ChatStats,
  DatasetSummary,
  DistillSettings,
  EvalEvent,
  EvalRunSettings,
  StoredRunInfo,
  TokenStats,
  TrainDataSource,
  TrainEvent,
  TrainingState,
  TrainOutcome,
  TrainPoint,
  TrainSettings,
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
import { beginRun, discardRun, loadRun, opfsAvailable, readRunMeta, RUN_META_VERSION, updateRunMeta, writeCheckpoint, type RunMeta } from './opfs';

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

const TASK_NAMES: Record<string, string> = { chat: 'chat reply', debate: 'debate', eval: 'evaluation', bench: 'benchmark', train: 'training run', load: 'model load' };

/** The first running task of one of `kinds` (other than `self`), as a readable name. */
function runningTask(kinds: string[], self?: string): string | null {
  for (const id of tasks.keys()) {
    const kind = id.split('-')[0]!;
    if (id !== self && kinds.includes(kind)) return TASK_NAMES[kind] ?? kind;
  }
  return null;
}

/** Throws when one of `kinds` is running: they would compete for the GPU (or the model's adapter). */
function requireNo(kinds: string[], what: string, self?: string): void {
  const busy = runningTask(kinds, self);
  if (busy) throw new Error(`A ${busy} is running: stop or pause it before ${what}.`);
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
      if (sameOrigin(source.url)) return { files: source.files ? listedSource(inner, source.files) : inner, cached: null };
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
  // A paused training job and the adapters live on the old model; the stored run stays in OPFS.
  if (job) disposeJob(job);
  job = null;
  hostAdapters.clear();
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
    const busy = [...tasks.keys()].find((id) => /^(chat|debate|eval|train|bench)-/.test(id));
    if (busy) throw new Error(`Stop the running ${TASK_NAMES[busy.split('-')[0]!] ?? busy.split('-')[0]} before loading another model.`);
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
  requireNo(['train', 'eval', 'bench'], 'chatting');
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

/** Trajectories of the last debate (the Train page can distil them). */
let lastDebate: TrajectoryRecord[] = [];

async function debate(taskId: string, questions: Question[], settings: DebateRunSettings, onEvent: (e: DebateEvent) => void): Promise<DebateRunResult> {
  if (settings.engine.kind === 'local') requireNo(['train', 'eval', 'bench'], 'debating');
  const ctrl = startTask(taskId);
  lastDebate = [];
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
      ...(settings.format === 'small' ? SMALL_MODEL_DEBATE : {}),
    };
    const names = Array.from({ length: agents }, (_, i) => `agent${i + 1}`);
    for (let index = 0; index < questions.length && !ctrl.signal.aborted; index++) {
      const q = questions[index]!;
      emit({ type: 'question', index, id: q.id, question: q.question, agents: names, rounds, aggregator: settings.aggregator });
      try {
        const record = await runDebate(q, opts, tapEngine(engine, index, agents, rounds, emit), ctrl.signal);
        if (ctrl.signal.aborted) break;
        completed++;
        lastDebate.push(record);
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
// Distillation: trajectories → training rows

/** Built training sets by id (the last few only). */
const datasets = new Map<string, { rows: object[]; trainable: boolean; source: string }>();
let datasetCounter = 0;

/**
 * The built-in example: demo word problems (src/demo/problems.ts) as one-round trajectories with
 * three "agents": the worked solution twice and once with a slip in the last step, so every
 * strategy has something to build (R-SFT a target, DA a correction, PAD good and bad steps).
 */
function exampleTrajectories(count: number): TrajectoryRecord[] {
  const problems = generateProblems({ seed: 7, count: Math.max(1, Math.min(200, Math.floor(count))), split: 'train', difficulty: 0 });
  const sets = problems.map((p) => {
    const wrong = p.answer.replace(new RegExp(`= ${p.final}(?![\\d])`, 'g'), `= ${p.final + 1}`).replace(/#### \d+\s*$/, `#### ${p.final + 1}`);
    return {
      id: `example-${p.id}`,
      question: p.question,
      reference: p.answer,
      task: 'gsm8k' as const,
      solutions: [
        { agent: 'agent1', text: p.answer },
        { agent: 'agent2', text: wrong },
        { agent: 'agent3', text: p.answer },
      ],
    };
  });
  return importedToTrajectories(sets).records;
}

/** Whether JSONL text already holds training rows (TRL messages / prompt-completion / text / input_ids). */
function looksLikeTrainingRows(text: string): boolean {
  const first = text.replace(/^\uFEFF/, '').trimStart();
  let row: unknown;
  if (first.startsWith('[')) {
    try {
      row = (JSON.parse(first) as unknown[])[0];
    } catch {
      return false;
    }
  } else {
    const line = first.split('\n', 1)[0] ?? '';
    try {
      row = JSON.parse(line);
    } catch {
      return false;
    }
  }
  if (typeof row !== 'object' || row === null) return false;
  const r = row as Record<string, unknown>;
  if (r.schema !== undefined || r.response !== undefined || r.solutions !== undefined) return false;
  return Array.isArray(r.messages) || ('prompt' in r && 'completion' in r) || typeof r.text === 'string' || Array.isArray(r.input_ids);
}

/** Rows → examples against the loaded model; rows too long for the context are counted and left out. */
function tokenizeRows(rows: object[], where: string): { examples: TrainExample[]; stats: TokenStats; errors: string[] } {
  const cur = requireCurrent();
  const contextLength = cur.runtime.generator.contextLength;
  const examples: TrainExample[] = [];
  const errors: string[] = [];
  let tooLong = 0;
  rows.forEach((row, i) => {
    try {
      examples.push(tokenizeRow(row, cur.runtime.tokenizer, { maxLength: contextLength, vocabSize: cur.runtime.model.config.vocabSize }, `${where} row ${i + 1}`));
    } catch (e) {
      if (e instanceof TrainingDataError && /longer than the context/.test(e.message)) tooLong++;
      else errors.push((e as Error).message);
    }
  });
  let tokens = 0;
  let labelled = 0;
  let longest = 0;
  for (const e of examples) {
    tokens += e.inputIds.length;
    longest = Math.max(longest, e.inputIds.length);
    for (let i = 1; i < e.labels.length; i++) if (e.labels[i]! >= 0) labelled++;
  }
  return { examples, stats: { examples: examples.length, tokens, labelled, longest, tooLong, contextLength }, errors };
}

async function prepareDataset(source: TrainDataSource, s: DistillSettings): Promise<DatasetSummary> {
  const warnings: string[] = [];
  let records: TrajectoryRecord[];
  let inputFormat: DatasetSummary['inputFormat'] = 'trajectory';
  let name: string;
  let rows: object[];
  let strategy: DatasetSummary['strategy'] = s.strategy;
  let stats: DatasetSummary['stats'];
  let trainable = true;

  if (source.kind === 'text' && looksLikeTrainingRows(source.text)) {
    rows = parseTrainingJsonl(source.text, source.name) as object[];
    if (s.limit > 0) rows = rows.slice(0, s.limit);
    name = source.name;
    inputFormat = 'training-rows';
    strategy = 'rows';
    records = [];
    stats = { rows: rows.length };
  } else {
    if (source.kind === 'debate') {
      if (!lastDebate.length) throw new Error('No debate has finished in this session yet: run one on the Teach page, or pick another source.');
      records = [...lastDebate];
      name = `last debate (${records.length} record${records.length === 1 ? '' : 's'})`;
    } else if (source.kind === 'example') {
      records = exampleTrajectories(source.count);
      name = `built-in example (${records.length} demo problems)`;
    } else {
      const parsed = parseDistillInput(source.text, source.name, { task: s.task, onWarning: (m) => warnings.push(m) });
      records = parsed.records;
      inputFormat = parsed.format;
      name = source.name;
      if (parsed.labelDisagreements.length) warnings.push(`${parsed.labelDisagreements.length} solution label(s) in the file disagree with the re-grade (the re-grade is used).`);
    }
    if (s.limit > 0) records = records.slice(0, s.limit);
    if (!records.length) throw new Error(`${name}: no records`);
    const clean = { stripCalculator: s.stripCalculator, answerLine: true, ...(s.systemPrompt ? {} : { system: null }) };
    if (s.strategy === 'rsft') {
      const r = buildRsft(records, { ...clean, format: s.format });
      rows = r.rows;
      stats = r.stats as unknown as DatasetSummary['stats'];
    } else if (s.strategy === 'da') {
      const r = buildDa(records, { ...clean, format: s.format, perQuestion: Math.max(1, Math.floor(s.perQuestion)), selfCorrection: s.selfCorrection });
      rows = r.rows;
      stats = r.stats as unknown as DatasetSummary['stats'];
    } else {
      const r = buildPad(records, { stripCalculator: s.stripCalculator });
      rows = r.rows;
      stats = r.stats as unknown as DatasetSummary['stats'];
      trainable = false;
    }
  }
  const id = `ds${++datasetCounter}`;
  datasets.set(id, { rows, trainable, source: name });
  while (datasets.size > 4) datasets.delete(datasets.keys().next().value!);
  let tokens: TokenStats | null = null;
  if (trainable && current && rows.length) {
    const t = tokenizeRows(rows, name);
    tokens = t.stats;
    if (t.errors.length) warnings.push(`${t.errors.length} row(s) cannot be used: ${t.errors[0]}`);
  }
  return {
    id,
    source: name,
    inputFormat,
    records: records.length,
    strategy,
    rows: rows.length,
    stats,
    warnings,
    trainable,
    tokens,
    preview: rows.length ? JSON.stringify(rows[0], null, 2) : '',
  };
}

// ---------------------------------------------------------------------------------------------
// Training (LoRA on the loaded model), checkpointed to OPFS

interface TrainJob {
  trainer: Trainer;
  model: Current;
  meta: RunMeta<TrainSettings>;
  settings: TrainSettings;
  history: TrainPoint[];
  state: 'running' | 'paused';
  taskId: string | null;
  pauseRequested: boolean;
  cancelRequested: boolean;
  /** Whether checkpoints can be written (OPFS available and the first write worked). */
  store: boolean;
  /** Settles when the running loop has stopped (finished, paused, cancelled or failed). */
  stopped: Promise<void>;
}

let job: TrainJob | null = null;

/** PEFT adapters registered on the loaded runtime, with their host copies (for downloads). */
const hostAdapters = new Map<string, { adapter: PeftAdapter; info: AdapterInfo }>();

function requireCurrent(): Current {
  if (!current) throw new Error('No model is loaded: load one on the Models page first.');
  return current;
}

/** FNV-1a of the model config plus its id: a stored run resumes only on the same model. */
function modelKey(cur: Current): string {
  const text = `${cur.info.id}|${JSON.stringify(cur.runtime.model.config)}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return `${cur.info.id}#${(h >>> 0).toString(16)}`;
}

function trainOptions(s: TrainSettings, cur: Current): TrainOptions {
  const tok = cur.runtime.tokenizer;
  return {
    ...DEFAULT_TRAIN_OPTIONS,
    mode: 'lora',
    rank: s.rank,
    alpha: s.alpha,
    dropout: s.dropout,
    targets: [...s.targets],
    lr: s.lr,
    schedule: s.schedule,
    warmupSteps: s.warmupSteps,
    ...(s.steps ? { steps: s.steps } : { epochs: s.epochs ?? 1 }),
    batchSize: s.batchSize,
    gradAccum: s.gradAccum,
    seed: s.seed,
    padTokenId: tok?.padTokenId ?? cur.runtime.model.config.eosTokenIds[0] ?? 0,
  };
}

function adapterInfo(name: string, a: PeftAdapter, origin: AdapterInfo['origin']): AdapterInfo {
  let parameters = 0;
  for (const p of a.pairs) parameters += p.a.data.length + p.b.data.length;
  return { name, rank: a.config.r, alpha: a.config.loraAlpha, targets: [...a.config.targetModules], parameters, origin };
}

/** Frees a job's GPU memory; the Trainer leaves the adapter the registry had active in place. */
function disposeJob(j: TrainJob): void {
  const be = j.trainer.model.backend;
  j.trainer.dispose();
  for (const p of j.trainer.params) be.freeWeight(p.weight as never);
  if (current === j.model) j.model.runtime.adapters.activate(j.model.runtime.adapters.activeName());
}

function newTrainer(cur: Current, examples: TrainExample[], opts: TrainOptions): Trainer {
  const trainer = new Trainer(cur.runtime.model, examples, opts);
  // The Trainer attaches its adapter to the model; chat keeps using what the registry has active.
  cur.runtime.adapters.activate(cur.runtime.adapters.activeName());
  return trainer;
}

async function saveCheckpoint(j: TrainJob, status: 'running' | 'paused', emit: (e: TrainEvent) => void): Promise<void> {
  if (!j.store) return;
  const t0 = performance.now();
  try {
    const files = await checkpointFiles(j.trainer);
    const meta: RunMeta<TrainSettings> = { ...j.meta, step: j.trainer.state.step, status, history: j.history.filter((p) => p.step <= j.trainer.state.step) };
    const r = await writeCheckpoint(meta, files);
    j.meta = r.meta;
    emit({ type: 'checkpoint', step: r.meta.step, bytes: r.bytes, ms: Math.round(performance.now() - t0) });
  } catch (e) {
    j.store = false;
    emit({ type: 'status', text: `Could not write a checkpoint to the browser's storage (${(e as Error).message}); training goes on without checkpoints.` });
  }
}

async function runJob(taskId: string, j: TrainJob, resumedFrom: number | null, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
  let stopped = () => {};
  j.stopped = new Promise<void>((resolve) => (stopped = resolve));
  try {
    return await runLoop(taskId, j, resumedFrom, onEvent);
  } finally {
    stopped();
  }
}

async function runLoop(taskId: string, j: TrainJob, resumedFrom: number | null, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
  const ctrl = startTask(taskId);
  let delivered: Promise<void> = Promise.resolve();
  const emit = (e: TrainEvent) => {
    delivered = notify(onEvent, e);
  };
  j.state = 'running';
  j.taskId = taskId;
  j.pauseRequested = false;
  j.cancelRequested = false;
  const t = j.trainer;
  emit({
    type: 'start',
    name: j.settings.name,
    step: t.state.step,
    totalSteps: t.totalSteps,
    examples: t.examples.length,
    trainableParams: t.params.reduce((a, p) => a + p.n, 0),
    resumedFrom,
    history: [...j.history],
    settings: j.settings,
    source: j.meta.source,
  });
  const every = Math.max(0, Math.floor(j.settings.checkpointEvery));
  try {
    while (t.state.step < t.totalSteps && !j.pauseRequested && !j.cancelRequested && !ctrl.signal.aborted) {
      const r = await t.step();
      j.history.push({ step: r.step, loss: r.loss, lr: r.lr });
      emit({ type: 'step', step: r.step, totalSteps: r.totalSteps, loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, tokens: r.tokens, tokensPerS: r.tokensPerS, stepMs: r.stepMs, etaS: r.etaS });
      if (every > 0 && r.step % every === 0 && r.step < r.totalSteps && !j.cancelRequested) await saveCheckpoint(j, 'running', emit);
    }
  } catch (e) {
    // The stored checkpoint stays (marked paused, so it is not resumed automatically in a loop).
    if (j.store) await updateRunMeta({ ...j.meta, status: 'paused' }).catch(() => {});
    disposeJob(j);
    if (job === j) job = null;
    endTask(taskId, ctrl);
    await delivered;
    throw e;
  }
  endTask(taskId, ctrl);
  const base = { step: t.state.step, totalSteps: t.totalSteps, finalLoss: t.state.lastLoss };
  if (j.cancelRequested || ctrl.signal.aborted) {
    disposeJob(j);
    if (job === j) job = null;
    await discardRun().catch(() => {});
    await delivered;
    return { status: 'cancelled', ...base, adapter: null };
  }
  if (t.state.step < t.totalSteps) {
    await saveCheckpoint(j, 'paused', emit);
    j.state = 'paused';
    j.taskId = null;
    await delivered;
    return { status: 'paused', ...base, adapter: null };
  }
  // Finished: register the adapter on the runtime (hot-swappable in chat) and drop the run.
  const adapter = await t.adapter();
  const cur = j.model;
  await cur.runtime.adapters.load(j.settings.name, adapter);
  const info = adapterInfo(j.settings.name, adapter, 'trained');
  hostAdapters.set(j.settings.name, { adapter, info });
  disposeJob(j);
  if (job === j) job = null;
  await discardRun().catch(() => {});
  await delivered;
  return { status: 'finished', ...base, adapter: info };
}

async function startTraining(taskId: string, datasetId: string, settings: TrainSettings, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
  const cur = requireCurrent();
  requireNo(['chat', 'debate', 'eval', 'bench', 'train', 'load'], 'training');
  if (job) throw new Error(`The run "${job.settings.name}" is paused: resume or cancel it first.`);
  const ds = datasets.get(datasetId);
  if (!ds) throw new Error('The training set is gone: build it again.');
  if (!ds.trainable) throw new Error('PAD step labels train a process reward model (agentark prm), not the student: pick R-SFT or DA.');
  if (!settings.name.trim()) throw new Error('Give the adapter a name.');
  const { examples, stats, errors } = tokenizeRows(ds.rows, ds.source);
  if (!examples.length) {
    throw new Error(stats.tooLong ? `Every row is longer than the context (${stats.contextLength} positions): load the model with a longer context.` : `No usable row: ${errors[0] ?? 'the set is empty'}`);
  }
  const trainer = newTrainer(cur, examples, trainOptions(settings, cur));
  const now = new Date().toISOString();
  const meta: RunMeta<TrainSettings> = {
    version: RUN_META_VERSION,
    runId: `run-${Date.now().toString(36)}`,
    name: settings.name,
    modelId: cur.info.id,
    modelKey: modelKey(cur),
    settings,
    source: ds.source,
    examples: examples.length,
    totalSteps: trainer.totalSteps,
    step: 0,
    slot: null,
    status: 'running',
    history: [],
    createdAt: now,
    savedAt: now,
  };
  const j: TrainJob = { trainer, model: cur, meta, settings, history: [], state: 'running', taskId: null, pauseRequested: false, cancelRequested: false, store: opfsAvailable(), stopped: Promise.resolve() };
  if (j.store) {
    try {
      await beginRun(meta, examples, toJsonl(ds.rows));
    } catch (e) {
      j.store = false;
      void notify(onEvent, { type: 'status', text: `The browser's storage is not writable (${(e as Error).message}); this run cannot be resumed after a reload.` } as TrainEvent);
    }
  }
  job = j;
  return runJob(taskId, j, null, onEvent);
}

async function resumeTraining(taskId: string, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
  requireNo(['chat', 'debate', 'eval', 'bench', 'train', 'load'], 'training');
  if (job?.state === 'running') throw new Error('Training is already running.');
  if (job) {
    if (job.store) await updateRunMeta({ ...job.meta, status: 'running' }).catch(() => {});
    job.meta = { ...job.meta, status: 'running' };
    return runJob(taskId, job, null, onEvent);
  }
  const cur = requireCurrent();
  const stored = await loadRun<TrainSettings>();
  if (!stored) throw new Error('There is no unfinished run to resume.');
  const { meta, examples, files } = stored;
  if (meta.modelKey !== modelKey(cur)) throw new Error(`This run was started on ${meta.modelId}: load that model (same files and settings) to resume it.`);
  const dec = new TextDecoder();
  const stateJson = files['trainer_state.json'] ? dec.decode(files['trainer_state.json']) : null;
  const opts = stateJson ? parseTrainerState(stateJson, 'trainer_state.json in browser storage').options : trainOptions(meta.settings, cur);
  const trainer = newTrainer(cur, examples, opts);
  try {
    if (stateJson) {
      const tensors = files['trainer_state.safetensors'];
      if (!tensors) throw new Error('the stored checkpoint has no trainer_state.safetensors');
      restoreFromFiles(trainer, stateJson, tensors, 'checkpoint in browser storage');
    }
  } catch (e) {
    trainer.dispose();
    throw e;
  }
  const step = trainer.state.step;
  const j: TrainJob = {
    trainer,
    model: cur,
    meta: { ...meta, status: 'running' },
    settings: meta.settings,
    history: meta.history.filter((p) => p.step <= step),
    state: 'running',
    taskId: null,
    pauseRequested: false,
    cancelRequested: false,
    store: true,
    stopped: Promise.resolve(),
  };
  await updateRunMeta(j.meta).catch(() => {});
  job = j;
  return runJob(taskId, j, step, onEvent);
}

async function storedRun(): Promise<StoredRunInfo | null> {
  const meta = await readRunMeta<TrainSettings>().catch(() => null);
  if (!meta) return null;
  return {
    name: meta.name,
    modelId: meta.modelId,
    sameModel: !!current && meta.modelKey === modelKey(current),
    step: meta.step,
    totalSteps: meta.totalSteps,
    status: meta.status,
    savedAt: meta.savedAt,
    source: meta.source,
    examples: meta.examples,
    history: meta.history,
    settings: meta.settings,
  };
}

function adapterList(): AdapterList {
  if (!current) return { list: [], active: null };
  const names = current.runtime.adapters.names();
  return { list: names.map((n) => hostAdapters.get(n)?.info).filter((x): x is AdapterInfo => !!x), active: current.runtime.adapters.activeName() };
}

async function loadAdapterFiles(name: string, files: File[]): Promise<AdapterInfo> {
  const cur = requireCurrent();
  requireNo(['train', 'eval'], 'loading an adapter');
  if (!name.trim()) throw new Error('Give the adapter a name.');
  const adapter = await loadPeftAdapter(filesSource(files, name));
  await cur.runtime.adapters.load(name, adapter);
  const info = adapterInfo(name, adapter, 'file');
  hostAdapters.set(name, { adapter, info });
  return info;
}

function adapterFiles(name: string): AdapterFiles {
  const a = hostAdapters.get(name);
  if (!a) throw new Error(`No adapter named ${name}`);
  const base = current?.info.sourceKind === 'hf' ? current.info.id : (a.adapter.config.baseModelNameOrPath ?? current?.info.id ?? null);
  return serializePeftAdapter({ ...a.adapter, config: { ...a.adapter.config, baseModelNameOrPath: base } });
}

// ---------------------------------------------------------------------------------------------
// Evaluation

async function runEvaluation(taskId: string, questions: Question[], s: EvalRunSettings, onEvent: (e: EvalEvent) => void): Promise<EvalReport> {
  const cur = requireCurrent();
  requireNo(['chat', 'debate', 'eval', 'bench', 'train', 'load'], 'evaluating');
  if (!questions.length) throw new Error('No questions to evaluate.');
  const rt = cur.runtime;
  const model = cur.info.id;
  const base = () => rt.adapters.activate(null);
  const systems: EvalSystem[] = [];
  if (s.single) systems.push({ name: 'single', kind: 'single', engine: cur.engine, model, setup: base, meta: { role: 'base', model } });
  if (s.debate) {
    const d = s.debate;
    systems.push({
      name: 'debate',
      kind: 'debate',
      engines: cur.engine,
      setup: base,
      meta: { role: 'base', model, agents: d.agents, rounds: d.rounds, aggregator: d.aggregator },
      debate: { numAgents: Math.max(1, Math.floor(d.agents)), rounds: Math.max(1, Math.floor(d.rounds)), aggregator: d.aggregator, model },
    });
  }
  for (const name of s.students) {
    if (!rt.adapters.names().includes(name)) throw new Error(`The adapter ${name} is not loaded.`);
    systems.push({ name: `student:${name}`, kind: 'single', engine: cur.engine, model, setup: () => rt.adapters.activate(name), meta: { role: 'student', adapter: name } });
  }
  if (!systems.length) throw new Error('Pick at least one system to evaluate.');
  const perQuestion = s.debate ? Math.max(1, s.debate.agents) : 1;
  const concurrency = Math.max(1, Math.floor(cur.info.maxBatch / perQuestion));
  const names = systems.map((x) => x.name);
  const ctrl = startTask(taskId);
  const previous = rt.adapters.activeName();
  let delivered: Promise<void> = Promise.resolve();
  try {
    const report = await evaluate(questions, systems, {
      ...(s.task ? { task: s.task } : {}),
      maxTokens: s.maxTokens,
      temperature: s.temperature,
      ...(s.seed !== undefined ? { seed: s.seed } : {}),
      selfCorrection: s.selfCorrection,
      robustness: s.robustness,
      concurrency,
      ...(s.dataset ? { dataset: s.dataset } : {}),
      signal: ctrl.signal,
      onProgress: (p) => {
        const system = p.phase.replace(/^eval /, '');
        delivered = notify(onEvent, { type: 'progress', system, systemIndex: names.indexOf(system), systems: names.length, done: p.done, total: p.total, accuracy: p.metrics?.accuracy ?? 0 });
      },
    });
    await delivered;
    return report;
  } finally {
    if (current === cur) rt.adapters.activate(previous && rt.adapters.names().includes(previous) ? previous : null);
    endTask(taskId, ctrl);
  }
}

// ---------------------------------------------------------------------------------------------
// Speed benchmarks (a separate GPU device; the same SpeedReport as `npm run bench`)

async function runBench(taskId: string, s: BenchSettings, onEvent: (e: BenchEvent) => void): Promise<SpeedReport> {
  // The app loads the default model when it opens; a benchmark started meanwhile waits for that
  // load rather than failing (the two would compete for the GPU). Other tasks must be stopped.
  if (runningTask(['load'])) {
    await notify(onEvent, { type: 'status', text: 'Waiting for the model load to finish…', done: 0, total: 1 });
    while (runningTask(['load'])) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  requireNo(['chat', 'debate', 'eval', 'bench', 'train', 'load'], 'benchmarking');
  const sizes = BENCH_SIZES.filter((b) => s.sizes.includes(b.name));
  const trainSizes = s.training ? sizes : [];
  const modes = s.trainingModes.length ? s.trainingModes : (['lora'] as const);
  const perBackend = s.cpuTwin ? 2 : 1;
  const total = s.kernelShapes.length + (s.models ? sizes.length * perBackend : 0) + trainSizes.length * modes.length * perBackend;
  const ctrl = startTask(taskId);
  let delivered: Promise<void> = Promise.resolve();
  const emit = (e: BenchEvent) => {
    delivered = notify(onEvent, e);
  };
  let done = 0;
  const status = (text: string) => emit({ type: 'status', text, done, total });
  const check = () => ctrl.signal.throwIfAborted();
  let gpu: Gpu | null = null;
  try {
    status('Creating a WebGPU device…');
    gpu = await Gpu.create();
    const report: SpeedReport = { adapter: gpu.describe(), kernels: [], models: [], training: [] };
    for (const shape of s.kernelShapes) {
      check();
      status(`Kernel matmul ${shape.join('×')}…`);
      const [r] = await benchmarkKernels(gpu, [shape]);
      report.kernels.push(r!);
      done++;
      emit({ type: 'kernel', result: r! });
    }
    const gpuBackend = await GpuBackend.create(gpu, 'f32');
    const backends = (): AnyBackend[] => (s.cpuTwin ? [gpuBackend, new CpuBackend()] : [gpuBackend]);
    if (s.models) {
      for (const size of sizes) {
        for (const b of backends()) {
          check();
          status(`Model ${size.name} on ${b.name}: prefill and decode…`);
          const r = await benchmarkModel(b, size);
          report.models.push(r);
          done++;
          emit({ type: 'model', result: r });
        }
      }
    }
    for (const size of trainSizes) {
      for (const mode of modes) {
        for (const b of backends()) {
          check();
          status(`Training ${size.name} (${mode}) on ${b.name}…`);
          const r = await benchmarkTraining(b, size, mode);
          report.training.push(r);
          done++;
          emit({ type: 'train', result: r });
        }
      }
    }
    status('Done.');
    await delivered;
    return report;
  } finally {
    gpu?.destroy();
    endTask(taskId, ctrl);
  }
}

// ---------------------------------------------------------------------------------------------

const api: WorkerApi = {
  device,
  inspect,
  load,
  async unload() {
    for (const [id, c] of tasks) if (/^(chat|debate|eval)-/.test(id)) c.abort(new DOMException('The model was unloaded', 'AbortError'));
    // A running training job stops after its step and checkpoints (resumable once the model is back).
    if (job?.state === 'running') {
      job.pauseRequested = true;
      await job.stopped;
    }
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

  async debateRecordCount() {
    return lastDebate.length;
  },
  prepareDataset,
  async datasetJsonl(id: string) {
    const ds = datasets.get(id);
    if (!ds) throw new Error('The training set is gone: build it again.');
    return toJsonl(ds.rows);
  },
  startTraining,
  resumeTraining,
  async pauseTraining() {
    if (job?.state === 'running') job.pauseRequested = true;
  },
  async cancelTraining() {
    if (job?.state === 'running') {
      job.cancelRequested = true;
      return;
    }
    if (job) disposeJob(job);
    job = null;
    await discardRun();
  },
  async trainingState(): Promise<TrainingState> {
    if (!job) return { state: 'idle', name: null, step: 0, totalSteps: 0 };
    return { state: job.state, name: job.settings.name, step: job.trainer.state.step, totalSteps: job.trainer.totalSteps };
  },
  storedRun,
  async adapters() {
    return adapterList();
  },
  async activateAdapter(name: string | null) {
    requireNo(['train', 'eval'], 'switching adapters');
    requireCurrent().runtime.adapters.activate(name);
  },
  async adapterFiles(name: string) {
    return adapterFiles(name);
  },
  loadAdapterFiles,
  evaluate: runEvaluation,
  bench: runBench,
};

Comlink.expose(api);
