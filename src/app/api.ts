/**
 * The contract between the page (main thread) and the engine worker (src/app/worker.ts).
 *
 * The worker is exposed with comlink, so every method is async on the page side. Long-running
 * calls take a `taskId` (see `newTaskId()` in client.ts); `abort(taskId)` cancels them. Streaming
 * output comes back through callbacks the page wraps in `Comlink.proxy(...)`; the worker never
 * waits for them.
 */
import type { ChatCompletionRequest, FinishReason } from '../engine/types';
import type { Task } from '../eval/answers';
import type { ProgressEvent } from '../progress';
import type { Question } from '../teach/datasets';
import type { TrajectoryRecord } from '../teach/trajectory';

/** Where a model comes from. `url` is an absolute base-folder URL (the page resolves relative ones). */
export type ModelSource =
  | { kind: 'url'; url: string }
  | { kind: 'hf'; id: string; endpoint?: string; token?: string }
  | { kind: 'files'; files: File[]; label: string };

export interface LoadSettings {
  /** Positions per sequence (prompt + reply); capped by the model's own limit. */
  contextLength: number;
  /** Sequences decoded together (KV-cache slots): debate agents share one batch. */
  maxBatch: number;
  /** Weight storage on the GPU; 'auto' keeps f16 files in f16 where shader-f16 exists. */
  dtype: 'auto' | 'f16' | 'f32';
}

export type AdapterReport =
  | {
      available: true;
      vendor: string;
      architecture: string;
      device: string;
      description: string;
      isFallbackAdapter: boolean;
      /** Every feature the adapter offers, sorted. */
      features: string[];
      f16: boolean;
      subgroups: boolean;
      limits: Record<string, number>;
      crossOriginIsolated: boolean;
      deviceMemoryGB: number | null;
      hardwareConcurrency: number;
    }
  | { available: false; reason: string; crossOriginIsolated: boolean; deviceMemoryGB: number | null; hardwareConcurrency: number };

export interface ModelSummary {
  /** Directory, URL, repo id or folder name. */
  location: string;
  hfArchitecture: string;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  maxPositions: number;
  /** config.json's torch_dtype. */
  torchDtype: string | null;
  /** Data types found in the safetensors files. */
  fileDtypes: string[];
  hasTokenizer: boolean;
}

export interface MemoryCheck {
  level: 'ok' | 'warn' | 'error';
  text: string;
}

export interface MemoryEstimate {
  parameters: number;
  /** Bytes of the safetensors files (what is downloaded). */
  fileBytes: number;
  weightType: 'f16' | 'f32';
  /** parameters × bytes per weight on the GPU. */
  weightBytes: number;
  /** K and V for every layer, slot and position (f32). */
  kvBytes: number;
  /** One layer's K (or V) buffer: must fit maxStorageBufferBindingSize. */
  kvLayerBytes: number;
  /** Activations and logits during a prefill (approximate). */
  workspaceBytes: number;
  totalBytes: number;
  contextLength: number;
  maxBatch: number;
  largestTensor: { name: string; bytes: number };
  checks: MemoryCheck[];
}

export interface InspectResult {
  summary: ModelSummary;
  estimate: MemoryEstimate;
}

export interface LoadedModel {
  /** Short name: repo id, folder name or the URL's last path parts. */
  id: string;
  sourceKind: ModelSource['kind'];
  summary: ModelSummary;
  estimate: MemoryEstimate;
  /** e.g. "webgpu (f32 weights) on google / swiftshader ...". */
  backend: string;
  contextLength: number;
  maxBatch: number;
  loadMs: number;
  /** Whether the files were kept in the browser's Cache Storage. */
  cached: boolean;
}

/** A load in progress: file bytes, then the upload to the GPU. */
export type LoadProgress = ProgressEvent & { phase: 'inspect' | 'download' | 'upload' | string; note?: string };

export interface ChatStats {
  /** The whole reply (the streamed pieces joined). */
  text: string;
  promptTokens: number;
  completionTokens: number;
  /** Time to the first token. */
  ttftMs: number;
  totalMs: number;
  /** Completion tokens per second after the first one (decode speed). */
  tokensPerS: number;
  finishReason: FinishReason;
}

export type TeacherEngineSpec =
  | { kind: 'local' }
  | { kind: 'webllm'; model: string }
  | { kind: 'openai'; baseUrl: string; apiKey?: string; model: string; concurrency?: number };

export interface DebateRunSettings {
  engine: TeacherEngineSpec;
  agents: number;
  rounds: number;
  aggregator: 'llm' | 'vote';
  temperature: number;
  top_p: number;
  max_tokens: number;
  seed?: number;
  /** Overrides each question's task. */
  task?: Task;
}

/** Which call of a debate a streamed piece belongs to. */
export type DebateSlot = number | 'aggregator';

export type DebateEvent =
  | { type: 'status'; text: string; progress?: number }
  | { type: 'question'; index: number; id: string; question: string; agents: string[]; rounds: number; aggregator: 'llm' | 'vote' }
  | { type: 'call'; index: number; round: number; slot: DebateSlot }
  | { type: 'delta'; index: number; round: number; slot: DebateSlot; text: string }
  | { type: 'call-done'; index: number; round: number; slot: DebateSlot; finishReason: FinishReason }
  | { type: 'record'; index: number; record: TrajectoryRecord }
  | { type: 'failed'; index: number; id: string; error: string };

export interface DebateRunResult {
  completed: number;
  failed: { id: string; error: string }[];
  aborted: boolean;
  wallMs: number;
}

export interface WorkerApi {
  /** The WebGPU adapter as the worker sees it (where the engine runs). */
  device(): Promise<AdapterReport>;
  /** Reads config.json and the safetensors headers only (a few KB), and estimates memory. */
  inspect(source: ModelSource, settings: LoadSettings, taskId: string): Promise<InspectResult>;
  /** Downloads (or reads from cache) and uploads a model; replaces the current one. */
  load(source: ModelSource, settings: LoadSettings, taskId: string, onProgress: (e: LoadProgress) => void): Promise<LoadedModel>;
  unload(): Promise<void>;
  loaded(): Promise<LoadedModel | null>;
  /** GPU buffer bytes the loaded model holds (null on the CPU path or with no model). */
  memoryStats(): Promise<{ allocatedBytes: number; peakBytes: number } | null>;
  /** Streams one assistant reply from the loaded model. */
  chat(taskId: string, req: ChatCompletionRequest, onDelta: (text: string) => void): Promise<ChatStats>;
  /** WebLLM prebuilt chat models (only those without shader-f16 when `withoutF16`). */
  webllmModels(withoutF16: boolean): Promise<string[]>;
  /** Debates each question in turn; records arrive through `onEvent` as they finish. */
  debate(taskId: string, questions: Question[], settings: DebateRunSettings, onEvent: (e: DebateEvent) => void): Promise<DebateRunResult>;
  abort(taskId: string): void;
}
