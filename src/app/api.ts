/**
 * The contract between the page (main thread) and the engine worker (src/app/worker.ts).
 *
 * The worker is exposed with comlink, so every method is async on the page side. Long-running
 * calls take a `taskId` (see `newTaskId()` in client.ts); `abort(taskId)` cancels them. Streaming
 * output comes back through callbacks the page wraps in `Comlink.proxy(...)`; the worker never
 * waits for them.
 */
import type { DistillStrategy } from '../distill/build';
import type { ChatCompletionRequest, FinishReason } from '../engine/types';
import type { Task } from '../tasks/answers';
import type { EvalReport } from '../eval/harness';
import type { KernelResult, ModelResult, SpeedReport, TrainResult } from '../eval/speed';
import type { PeerResult } from '../eval/ort-peer';
import type { CopyBandwidth } from '../eval/roofline';
import type { Projection } from '../formats/config';
import type { TuningSummary } from '../kernels/autotune';
import type { ProgressEvent } from '../progress';
import type { Question } from '../tasks/datasets';
import type { TrajectoryRecord } from '../teach/trajectory';

/** Where a model comes from. `url` is an absolute base-folder URL (the page resolves relative ones). */
export type ModelSource =
  | {
      kind: 'url';
      url: string;
      /** The folder's file names when known (the embedded model): same-origin loads then ask the server only for files that exist. */
      files?: string[];
    }
  | { kind: 'hf'; id: string; endpoint?: string; token?: string }
  | { kind: 'files'; files: File[]; label: string };

export interface LoadSettings {
  /** Positions per sequence (prompt + reply); capped by the model's own limit. */
  contextLength: number;
  /** Sequences decoded together (KV-cache slots): debate agents share one batch. */
  maxBatch: number;
  /** Weight storage on the GPU; 'auto' keeps f16 files in f16 where shader-f16 exists. */
  dtype: 'auto' | 'f16' | 'f32';
  /** Quantize the frozen Linear and embedding weights on load (kept in the browser for the next load). */
  quantize?: 'q8' | 'q4';
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
  | {
      available: false;
      reason: string;
      crossOriginIsolated: boolean;
      deviceMemoryGB: number | null;
      hardwareConcurrency: number;
    };

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
  /** How the weights are kept on the GPU (q8 / q4: quantized on load, with f16 group scales). */
  weightType: 'f16' | 'f32' | 'q8' | 'q4';
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
  /** Earlier messages left out so the conversation fits the context (the oldest first). */
  droppedMessages: number;
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
  /**
   * Prompt format: 'standard' (default wording, whole solutions quoted) or 'small' (compact
   * wording, final answers quoted, the question restated: what the embedded demo model debates in).
   */
  format?: 'standard' | 'small';
}

/** Which call of a debate a streamed piece belongs to. */
export type DebateSlot = number | 'aggregator';

export type DebateEvent =
  | { type: 'status'; text: string; progress?: number }
  | {
      type: 'question';
      index: number;
      id: string;
      question: string;
      agents: string[];
      rounds: number;
      aggregator: 'llm' | 'vote';
    }
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

// ---- Distillation and training -----------------------------------------------------------------

/** Where the training data comes from. File and URL contents are read by the page. */
export type TrainDataSource =
  | { kind: 'debate' }
  | { kind: 'example'; count: number }
  | { kind: 'text'; text: string; name: string };

export type { DistillStrategy };

export interface DistillSettings {
  strategy: DistillStrategy;
  /** Task of AgentArk inference output (the other layouts carry theirs). */
  task: Task;
  /** messages: train on every assistant turn; prompt-completion: only the last one. */
  format: 'messages' | 'prompt-completion';
  /** Remove GSM8K <<a=b>> calculator annotations. */
  stripCalculator: boolean;
  /** Start each conversation with the task's student system prompt (else no system message). */
  systemPrompt: boolean;
  /** DA: at most K distinct correct paths per question. */
  perQuestion: number;
  /** DA: build self-correction conversations. */
  selfCorrection: boolean;
  /** PAD: a label per whole solution (the AgentArk rows, default) or per paragraph of one. */
  padSteps?: 'solution' | 'paragraph';
  /** Only the first N records (0 = all). */
  limit: number;
}

export interface TokenStats {
  examples: number;
  tokens: number;
  /** Tokens the loss covers. */
  labelled: number;
  longest: number;
  /** Rows longer than the context (left out of training). */
  tooLong: number;
  contextLength: number;
}

export interface DatasetSummary {
  /** Handle of the built rows in the worker (for training and download). */
  id: string;
  source: string;
  /** Layout of the input; 'training-rows' = already TRL rows, used as they are. */
  inputFormat: 'trajectory' | 'example_model_solutions' | 'agentark' | 'training-rows';
  records: number;
  strategy: DistillStrategy | 'rows';
  rows: number;
  /** The builder's counts (skipped by reason, rows by source, PAD step counts…). */
  stats: Record<string, number | string | Record<string, number>>;
  warnings: string[];
  /** False for PAD's stepwise rows (they train a process reward model, not the student). */
  trainable: boolean;
  /** Token counts against the loaded model (null with no model or untrainable rows). */
  tokens: TokenStats | null;
  /** The first row, pretty-printed. */
  preview: string;
}

export interface TrainSettings {
  /** Name the adapter is registered under. */
  name: string;
  rank: number;
  alpha: number;
  dropout: number;
  targets: Projection[];
  lr: number;
  schedule: 'linear' | 'cosine' | 'constant';
  warmupSteps: number;
  /** Optimizer steps; when absent, `epochs` passes over the data. */
  steps?: number;
  epochs?: number;
  batchSize: number;
  gradAccum: number;
  seed: number;
  /** Write a checkpoint to the browser's storage every N steps (0 = only on pause). */
  checkpointEvery: number;
  /** Keep one block's activations and recompute the rest in the backward pass (less memory, slower steps). */
  recompute?: boolean;
}

/** The memory planner's estimate of a training run on the loaded model (src/app/train-plan.ts). */
export interface TrainMemoryPlan {
  fits: boolean;
  /** The estimate in words, or the planner's message naming what to change when it does not fit. */
  text: string;
  peakBytes: number;
}

export interface TrainPoint {
  step: number;
  loss: number;
  lr: number;
}

export type TrainEvent =
  | { type: 'status'; text: string }
  | {
      type: 'start';
      name: string;
      step: number;
      totalSteps: number;
      examples: number;
      trainableParams: number;
      /** Checkpoint step the run resumed from (null = a fresh run). */
      resumedFrom: number | null;
      /** Loss / lr of the steps before `step` (restored with the checkpoint). */
      history: TrainPoint[];
      settings: TrainSettings;
      source: string;
    }
  | {
      type: 'step';
      step: number;
      totalSteps: number;
      loss: number;
      lr: number;
      gradNorm: number;
      tokens: number;
      tokensPerS: number;
      stepMs: number;
      etaS: number;
    }
  | { type: 'checkpoint'; step: number; bytes: number; ms: number };

export interface AdapterInfo {
  name: string;
  rank: number;
  alpha: number;
  targets: string[];
  parameters: number;
  origin: 'trained' | 'file';
}

export interface TrainOutcome {
  status: 'finished' | 'paused' | 'cancelled';
  step: number;
  totalSteps: number;
  finalLoss: number | null;
  /** The registered adapter (finished runs). */
  adapter: AdapterInfo | null;
}

/** An unfinished run kept in the browser's storage (OPFS). */
export interface StoredRunInfo {
  /** Whether another tab of this browser owns the run (it trains or holds it paused there). */
  elsewhere: boolean;
  name: string;
  modelId: string;
  /** Whether the loaded model is the one the run was started on (id and config). */
  sameModel: boolean;
  step: number;
  totalSteps: number;
  status: 'running' | 'paused';
  savedAt: string;
  source: string;
  examples: number;
  history: TrainPoint[];
  settings: TrainSettings;
}

export interface TrainingState {
  state: 'idle' | 'running' | 'paused';
  name: string | null;
  step: number;
  totalSteps: number;
}

/** PEFT files of an adapter, by name. */
export interface AdapterFiles {
  'adapter_config.json': string;
  'adapter_model.safetensors': Uint8Array;
}

// ---- PAD: process reward model and RL ---------------------------------------------------------

export interface PrmSettings {
  /** Share of the questions held out for the AUC (whole questions, not single solutions). */
  holdout: number;
  epochs: number;
  lr: number;
  seed: number;
}

export type PrmEvent =
  | { type: 'features'; done: number; total: number }
  | { type: 'epoch'; epoch: number; epochs: number; loss: number }
  | { type: 'scoring'; done: number; total: number };

export interface PrmResult {
  /** What a labelled example is: a whole solution (the AgentArk layout) or a step of one (paragraph layout). */
  unit: 'solution' | 'step';
  /** Rows (questions for solutions, solutions for steps) and labelled examples, trained on and held out. */
  trainRows: number;
  trainExamples: number;
  heldOutRows: number;
  heldOutExamples: number;
  /** Held-out AUC over solutions (all steps right = positive); null without held-out solutions of both kinds. */
  heldOutAuc: number | null;
  firstLoss: number | null;
  finalLoss: number | null;
  losses: number[];
}

export interface RlSettings {
  /** Name the finished adapter is registered under. */
  name: string;
  /** Start from this loaded adapter (e.g. the R-SFT student); null = a fresh LoRA on the base model. */
  initAdapter: string | null;
  /** Student system prompt: undefined = the task's default, null = none. */
  system?: string | null;
  /** Add prmWeight × the PRM's score of the weakest step to the verifiable reward. */
  usePrm: boolean;
  prmWeight: number;
  groupSize: number;
  promptsPerStep: number;
  steps: number;
  ppoEpochs: number;
  lr: number;
  clip: number;
  klCoef: number;
  maxTokens: number;
  temperature: number;
  /** Fresh LoRA only (an initial adapter brings its own). */
  rank: number;
  alpha: number;
  targets: Projection[];
  seed: number;
}

export interface RlPoint {
  step: number;
  /** Mean reward of the step's samples. */
  reward: number;
  /** Mean KL to the base model (k3 estimator). */
  kl: number;
  /** Share of the step's samples with a correct final answer. */
  accuracy: number;
  clipFraction: number;
}

export type RlEvent =
  | { type: 'start'; name: string; step: number; steps: number; history: RlPoint[] }
  | ({ type: 'step'; steps: number; stepMs: number } & RlPoint);

export interface RlOutcome {
  status: 'finished' | 'paused' | 'cancelled';
  step: number;
  steps: number;
  history: RlPoint[];
  adapter: AdapterInfo | null;
}

// ---- Evaluation -------------------------------------------------------------------------------

export interface EvalRunSettings {
  /** The base model answering alone (at `temperature`). */
  single: boolean;
  /** The base model answering alone, greedy (temperature 0), beside the sampled one. */
  greedy?: boolean;
  /** The debate on the base model (null = not evaluated); its agents sample at `temperature` (default: the debate's own). */
  debate: {
    agents: number;
    rounds: number;
    aggregator: 'llm' | 'vote';
    format?: 'standard' | 'small';
    temperature?: number;
  } | null;
  /** System prompt of the single agent and the students: undefined = the task's default, null = none. */
  system?: string | null;
  /** Report names of the base systems (default "single", "single (greedy)", "debate"). */
  names?: { single?: string; greedy?: string; debate?: string };
  /** Adapter names: one student system each (named "student:<adapter>" unless `plainStudentNames`). */
  students: string[];
  /** Name student systems by their adapter name alone (as the demo report does). */
  plainStudentNames?: boolean;
  /** Decode the students greedily (temperature 0) whatever `temperature` is (the demo reports greedy students). */
  studentsGreedy?: boolean;
  maxTokens: number;
  temperature: number;
  seed?: number;
  selfCorrection: boolean;
  robustness: boolean;
  task?: Task;
  dataset?: string;
}

export type EvalEvent = {
  type: 'progress';
  system: string;
  systemIndex: number;
  systems: number;
  done: number;
  total: number;
  accuracy: number;
};

// ---- Benchmarks -------------------------------------------------------------------------------

export interface BenchSettings {
  /** BENCH_SIZES names for the whole-model and training runs. */
  sizes: string[];
  /** [m, n, k] matmul shapes ([] = no kernel benchmark). */
  kernelShapes: [number, number, number][];
  /** The attention kernels (prefill and decode variants, with the CPU twin), as in `npm run bench`. */
  attention?: boolean;
  models: boolean;
  training: boolean;
  trainingModes: ('lora' | 'full')[];
  /** The CPU twin beside WebGPU. */
  cpuTwin: boolean;
  /** Our runtime beside onnxruntime-web's WebGPU EP on the same weights (loaded only when asked). */
  peer?: boolean;
  /** Roofline fractions: a buffer-copy bandwidth measurement (and one GEMM when none is selected). */
  roofline?: boolean;
}

export type BenchEvent =
  | { type: 'status'; text: string; done: number; total: number }
  | { type: 'kernel'; result: KernelResult }
  | { type: 'model'; result: ModelResult }
  | { type: 'train'; result: TrainResult }
  | { type: 'peer'; result: PeerResult }
  | { type: 'copy'; result: CopyBandwidth };

/** Event name on AppState (an EventTarget) when the adapters or the active one change. */
export const ADAPTERS_EVENT = 'adapters';

export interface AdapterList {
  list: AdapterInfo[];
  active: string | null;
}

export interface WorkerApi {
  /** The WebGPU adapter as the worker sees it (where the engine runs). */
  device(): Promise<AdapterReport>;
  /** Reads config.json and the safetensors headers only (a few KB), and estimates memory. */
  inspect(source: ModelSource, settings: LoadSettings, taskId: string): Promise<InspectResult>;
  /** Downloads (or reads from cache) and uploads a model; replaces the current one. */
  load(
    source: ModelSource,
    settings: LoadSettings,
    taskId: string,
    onProgress: (e: LoadProgress) => void,
  ): Promise<LoadedModel>;
  unload(): Promise<void>;
  loaded(): Promise<LoadedModel | null>;
  /** GPU buffer bytes the loaded model holds (null on the CPU path or with no model). */
  memoryStats(): Promise<{ allocatedBytes: number; peakBytes: number } | null>;
  /** The kernel autotuner's choices for the loaded model (null: no model, CPU path or tuning off). */
  kernelChoices(): Promise<TuningSummary | null>;
  /** Streams one assistant reply from the loaded model. */
  chat(taskId: string, req: ChatCompletionRequest, onDelta: (text: string) => void): Promise<ChatStats>;
  /** WebLLM prebuilt chat models (only those without shader-f16 when `withoutF16`). */
  webllmModels(withoutF16: boolean): Promise<string[]>;
  /** Debates each question in turn; records arrive through `onEvent` as they finish. */
  debate(
    taskId: string,
    questions: Question[],
    settings: DebateRunSettings,
    onEvent: (e: DebateEvent) => void,
  ): Promise<DebateRunResult>;
  abort(taskId: string): void;

  // ---- distillation and training
  /** Trajectory records of the last debate run on the Teach page. */
  debateRecordCount(): Promise<number>;
  /** Builds training rows (R-SFT / DA / PAD) and, with a model loaded, counts their tokens. */
  prepareDataset(source: TrainDataSource, settings: DistillSettings): Promise<DatasetSummary>;
  /** The rows of a prepared dataset as JSONL. */
  datasetJsonl(id: string): Promise<string>;
  /** LoRA training of the loaded model on a prepared dataset; resolves when it finishes, pauses or is cancelled. */
  startTraining(
    taskId: string,
    datasetId: string,
    settings: TrainSettings,
    onEvent: (e: TrainEvent) => void,
  ): Promise<TrainOutcome>;
  /** The memory plan of training the loaded model on a prepared dataset with these settings. */
  trainingMemoryPlan(datasetId: string, settings: TrainSettings): Promise<TrainMemoryPlan>;
  /** Continues the paused run (in memory), else the run stored in the browser (OPFS). */
  resumeTraining(taskId: string, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome>;
  /** Stops the running job after its current step and checkpoints it. */
  pauseTraining(): Promise<void>;
  /** Stops a running job or discards a paused / stored one (its checkpoints are deleted). */
  cancelTraining(): Promise<void>;
  trainingState(): Promise<TrainingState>;
  /** Registers the last cancelled run's adapter, as it was at its last step, under "<name>-step<k>". */
  keepCancelledAdapter(): Promise<AdapterInfo>;
  /** The unfinished run stored in the browser, if any. */
  storedRun(): Promise<StoredRunInfo | null>;

  // ---- adapters (on the loaded model)
  adapters(): Promise<AdapterList>;
  /** Hot-swaps the adapter used by chat (null = the base model). */
  activateAdapter(name: string | null): Promise<void>;
  adapterFiles(name: string): Promise<AdapterFiles>;
  /** Loads a PEFT adapter from its files (adapter_config.json + adapter_model.safetensors). */
  loadAdapterFiles(name: string, files: File[]): Promise<AdapterInfo>;

  // ---- PAD: reward model and RL
  /** Trains the PRM head on a built PAD set; the AUC is on held-out questions. */
  trainPrm(
    taskId: string,
    datasetId: string,
    settings: PrmSettings,
    onEvent: (e: PrmEvent) => void,
  ): Promise<PrmResult>;
  /** The PRM trained in this session, if any. */
  prmResult(): Promise<PrmResult | null>;
  /** The PRM head as prm_head.safetensors. */
  prmFile(): Promise<Uint8Array>;
  /** RL on a student LoRA; resolves when it finishes, pauses or is cancelled. */
  startRl(
    taskId: string,
    questions: Question[],
    settings: RlSettings,
    onEvent: (e: RlEvent) => void,
  ): Promise<RlOutcome>;
  resumeRl(taskId: string, onEvent: (e: RlEvent) => void): Promise<RlOutcome>;
  /** Stops after the current RL step; the run stays in memory (resume continues it). */
  pauseRl(): Promise<void>;
  /** Stops a running RL run after its step, or drops a paused one (its adapter is not kept). */
  cancelRl(): Promise<void>;
  rlState(): Promise<{ state: 'idle' | 'running' | 'paused'; step: number; steps: number }>;

  // ---- evaluation and benchmarks
  /** Evaluates each system in turn; after a Stop, the systems finished before it come back with `stopped`. */
  evaluate(
    taskId: string,
    questions: Question[],
    settings: EvalRunSettings,
    onEvent: (e: EvalEvent) => void,
  ): Promise<EvalReport & { stopped?: boolean }>;
  bench(taskId: string, settings: BenchSettings, onEvent: (e: BenchEvent) => void): Promise<SpeedReport>;
}
