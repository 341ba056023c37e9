/**
 * Training: LoRA on the loaded model from a prepared dataset, step by step with events for the
 * page, pause / resume / cancel, and checkpoints in the browser's storage (OPFS) so a reload
 * resumes the run. The finished adapter is registered through the adapters module.
 */
import { toJsonl } from '../../distill/common';
import { checkpointFiles, parseTrainerState, restoreFromFiles } from '../../train/checkpoint';
import type { TrainExample } from '../../train/data';
import type { PeftAdapter } from '../../formats/peft';
import type { AdapterWeights } from '../../model/llama';
import { DEFAULT_TRAIN_OPTIONS, Trainer, type TrainOptions } from '../../train/trainer';
import type {
  AdapterInfo,
  StoredRunInfo,
  TrainEvent,
  TrainingState,
  TrainOutcome,
  TrainPoint,
  TrainMemoryPlan,
  TrainSettings,
} from '../api';
import { planTraining } from '../train-plan';
import { RUN_CHANNEL, runLockHeld, tryTakeRunLock, type RunMessage } from '../run-lock';
import {
  beginRun,
  discardRun,
  loadRun,
  opfsAvailable,
  readRunMeta,
  RUN_META_VERSION,
  updateRunMeta,
  writeCheckpoint,
  type RunMeta,
} from '../opfs';
import type { Adapters } from './adapters';
import { tokenizeRows, type BuiltDataset, type Datasets } from './datasets';
import { modelKey, type LoadedRuntime, type Models } from './models';
import { emitter, GPU_TASKS, notify, type Tasks } from './tasks';

interface TrainJob {
  trainer: Trainer;
  /** The adapter the trainer trains: attached to the model while the loop runs (the forward records its activations). */
  policy: AdapterWeights<unknown> | null;
  model: LoadedRuntime;
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

function trainOptions(s: TrainSettings, m: LoadedRuntime): TrainOptions {
  const tok = m.runtime.tokenizer;
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
    recompute: s.recompute ?? false,
    padTokenId: tok?.padTokenId ?? m.runtime.model.config.eosTokenIds[0] ?? 0,
  };
}

function newTrainer(
  m: LoadedRuntime,
  examples: TrainExample[],
  opts: TrainOptions,
): { trainer: Trainer; policy: AdapterWeights<unknown> | null } {
  const trainer = new Trainer(m.runtime.model, examples, opts);
  const policy = m.runtime.model.getAdapter() as AdapterWeights<unknown> | null;
  // The Trainer attaches its adapter to the model; until the loop runs, chat keeps what the registry has active.
  m.runtime.adapters.activate(m.runtime.adapters.activeName());
  return { trainer, policy };
}

const OTHER_TAB =
  'A training run is going on in another tab of this browser (one run per browser): its progress shows here; pause, cancel or finish it in that tab.';

export class Training {
  private job: TrainJob | null = null;
  /** The browser-wide run lock while this worker owns the run (see run-lock.ts). */
  private lock: { release(): void } | null = null;
  private channel: BroadcastChannel | null = null;
  /** The adapter of the last cancelled run at its last step, until kept or replaced. */
  private cancelled: { name: string; step: number; adapter: PeftAdapter } | null = null;

  constructor(
    private readonly tasks: Tasks,
    private readonly models: Models,
    private readonly datasets: Datasets,
    private readonly adapters: Adapters,
  ) {
    // A paused job lives on the old model; the stored run stays in OPFS.
    models.onUnload(() => {
      this.drop();
      this.cancelled = null;
    });
  }

  /** Frees a job's GPU memory; the Trainer leaves the adapter the registry had active in place. */
  private dispose(j: TrainJob): void {
    const be = j.trainer.model.backend;
    j.trainer.dispose();
    for (const p of j.trainer.params) be.freeWeight(p.weight as never);
    if (this.models.loaded === j.model) j.model.runtime.adapters.activate(j.model.runtime.adapters.activeName());
  }

  private drop(): void {
    if (this.job) this.dispose(this.job);
    this.job = null;
    this.disown();
  }

  /** Takes the browser-wide run lock (or keeps it); throws when another tab owns the run. */
  private async own(): Promise<void> {
    if (this.lock) return;
    const lock = await tryTakeRunLock();
    if (!lock) throw new Error(OTHER_TAB);
    this.lock = lock;
  }

  private disown(): void {
    this.lock?.release();
    this.lock = null;
  }

  /** Mirrors the run on the BroadcastChannel for other tabs; answers a new tab's hello with the run so far. */
  private broadcast(m: RunMessage): void {
    if (typeof BroadcastChannel === 'undefined') return;
    if (!this.channel) {
      this.channel = new BroadcastChannel(RUN_CHANNEL);
      this.channel.onmessage = (e: MessageEvent<RunMessage>) => {
        const j = this.job;
        if (e.data?.type === 'hello' && j && this.lock)
          this.channel!.postMessage({ type: 'event', event: this.startEvent(j, null) } satisfies RunMessage);
      };
    }
    this.channel.postMessage(m);
  }

  private startEvent(j: TrainJob, resumedFrom: number | null): TrainEvent {
    const t = j.trainer;
    return {
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
    };
  }

  /** Asks a running job to stop after its step (it checkpoints) and waits for it. */
  async pauseAndWait(): Promise<void> {
    if (this.job?.state !== 'running') return;
    this.job.pauseRequested = true;
    await this.job.stopped;
  }

  private async saveCheckpoint(
    j: TrainJob,
    status: 'running' | 'paused',
    emit: (e: TrainEvent) => void,
  ): Promise<void> {
    if (!j.store) return;
    const t0 = performance.now();
    try {
      const files = await checkpointFiles(j.trainer);
      const meta: RunMeta<TrainSettings> = {
        ...j.meta,
        step: j.trainer.state.step,
        status,
        history: j.history.filter((p) => p.step <= j.trainer.state.step),
      };
      const r = await writeCheckpoint(meta, files);
      j.meta = r.meta;
      emit({ type: 'checkpoint', step: r.meta.step, bytes: r.bytes, ms: Math.round(performance.now() - t0) });
    } catch (e) {
      j.store = false;
      emit({
        type: 'status',
        text: `Could not write a checkpoint to the browser's storage (${(e as Error).message}); training goes on without checkpoints.`,
      });
    }
  }

  private async runJob(
    taskId: string,
    j: TrainJob,
    resumedFrom: number | null,
    onEvent: (e: TrainEvent) => void,
  ): Promise<TrainOutcome> {
    let stopped = () => {};
    j.stopped = new Promise<void>((resolve) => (stopped = resolve));
    try {
      return await this.runLoop(taskId, j, resumedFrom, onEvent);
    } finally {
      stopped();
    }
  }

  private async runLoop(
    taskId: string,
    j: TrainJob,
    resumedFrom: number | null,
    onEvent: (e: TrainEvent) => void,
  ): Promise<TrainOutcome> {
    const ctrl = this.tasks.start(taskId);
    const page = emitter(onEvent);
    const delivered = page.delivered;
    const emit = (e: TrainEvent) => {
      page.emit(e);
      this.broadcast({ type: 'event', event: e });
    };
    j.state = 'running';
    j.taskId = taskId;
    j.pauseRequested = false;
    j.cancelRequested = false;
    const t = j.trainer;
    emit(this.startEvent(j, resumedFrom));
    const every = Math.max(0, Math.floor(j.settings.checkpointEvery));
    const rt = j.model.runtime;
    // The trained adapter on the model while the loop runs; what the registry has active afterwards.
    rt.model.setAdapter(j.policy as never);
    const restore = () => {
      if (this.models.loaded === j.model) rt.adapters.activate(rt.adapters.activeName());
    };
    try {
      while (t.state.step < t.totalSteps && !j.pauseRequested && !j.cancelRequested && !ctrl.signal.aborted) {
        const r = await t.step();
        j.history.push({ step: r.step, loss: r.loss, lr: r.lr });
        emit({
          type: 'step',
          step: r.step,
          totalSteps: r.totalSteps,
          loss: r.loss,
          lr: r.lr,
          gradNorm: r.gradNorm,
          tokens: r.tokens,
          tokensPerS: r.tokensPerS,
          stepMs: r.stepMs,
          etaS: r.etaS,
        });
        if (every > 0 && r.step % every === 0 && r.step < r.totalSteps && !j.cancelRequested)
          await this.saveCheckpoint(j, 'running', emit);
      }
    } catch (e) {
      restore();
      // The stored checkpoint stays (marked paused, so it is not resumed automatically in a loop).
      if (j.store) await updateRunMeta({ ...j.meta, status: 'paused' }).catch(() => {});
      this.dispose(j);
      if (this.job === j) this.job = null;
      this.disown();
      this.broadcast({ type: 'end', outcome: { status: 'failed', error: (e as Error).message ?? String(e) } });
      this.tasks.end(taskId, ctrl);
      await delivered();
      throw e;
    }
    restore();
    this.tasks.end(taskId, ctrl);
    const base = { step: t.state.step, totalSteps: t.totalSteps, finalLoss: t.state.lastLoss };
    if (j.cancelRequested || ctrl.signal.aborted) {
      // The partial adapter is offered to the page before the run's memory goes.
      this.cancelled =
        t.state.step > 0 ? { name: j.settings.name, step: t.state.step, adapter: await t.adapter() } : null;
      this.dispose(j);
      if (this.job === j) this.job = null;
      await discardRun().catch(() => {});
      this.disown();
      const outcome: TrainOutcome = { status: 'cancelled', ...base, adapter: null };
      this.broadcast({ type: 'end', outcome });
      await delivered();
      return outcome;
    }
    if (t.state.step < t.totalSteps) {
      await this.saveCheckpoint(j, 'paused', emit);
      j.state = 'paused';
      j.taskId = null;
      const outcome: TrainOutcome = { status: 'paused', ...base, adapter: null };
      this.broadcast({ type: 'end', outcome });
      await delivered();
      return outcome;
    }
    // Finished: register the adapter on the runtime (hot-swappable in chat) and drop the run.
    const adapter = await t.adapter();
    const info = await this.adapters.register(j.settings.name, adapter, 'trained');
    this.dispose(j);
    if (this.job === j) this.job = null;
    await discardRun().catch(() => {});
    this.disown();
    const outcome: TrainOutcome = { status: 'finished', ...base, adapter: info };
    this.broadcast({ type: 'end', outcome });
    await delivered();
    return outcome;
  }

  /** The memory plan of training the loaded model on a dataset (its longest row) with these settings. */
  async memoryPlan(datasetId: string, settings: TrainSettings): Promise<TrainMemoryPlan> {
    const m = this.models.require();
    const { examples, stats } = tokenizeRows(m, this.datasets.get(datasetId).rows, 'plan');
    if (!examples.length) return { fits: false, text: 'No usable row to train on.', peakBytes: 0 };
    return this.plan(m, stats.longest, settings);
  }

  private plan(m: LoadedRuntime, seqLen: number, settings: TrainSettings): Promise<TrainMemoryPlan> {
    const rt = m.runtime;
    const gpu = rt.gpu;
    return planTraining({
      config: rt.model.config,
      weights: rt.quantized ?? rt.backend.weightType,
      contextLength: rt.generator.contextLength,
      cacheSlots: rt.generator.maxBatch,
      seqLen,
      settings,
      limits: gpu
        ? { maxBufferSize: gpu.info.maxBufferSize, maxStorageBufferBindingSize: gpu.info.maxStorageBufferBindingSize }
        : { maxBufferSize: Infinity, maxStorageBufferBindingSize: Infinity },
      maxBindingBytes: gpu?.weightShardBytes,
    });
  }

  async start(
    taskId: string,
    datasetId: string,
    settings: TrainSettings,
    onEvent: (e: TrainEvent) => void,
  ): Promise<TrainOutcome> {
    const m = this.models.require();
    this.tasks.requireNo(GPU_TASKS, 'training');
    if (this.job) throw new Error(`The run "${this.job.settings.name}" is paused: resume or cancel it first.`);
    const ds = this.datasets.get(datasetId);
    if (!ds.trainable)
      throw new Error(
        'PAD step labels train the process reward model (card 4), not the student directly: pick R-SFT or DA here.',
      );
    if (!settings.name.trim()) throw new Error('Give the adapter a name.');
    await this.own();
    try {
      return await this.startOwned(taskId, m, ds, settings, onEvent);
    } catch (e) {
      if (!this.job) this.disown();
      throw e;
    }
  }

  private async startOwned(
    taskId: string,
    m: LoadedRuntime,
    ds: BuiltDataset,
    settings: TrainSettings,
    onEvent: (e: TrainEvent) => void,
  ): Promise<TrainOutcome> {
    const { examples, stats, errors } = tokenizeRows(m, ds.rows, ds.source);
    if (!examples.length) {
      throw new Error(
        stats.tooLong
          ? `Every row is longer than the context (${stats.contextLength} positions): load the model with a longer context.`
          : `No usable row: ${errors[0] ?? 'the set is empty'}`,
      );
    }
    // Refuse a run the memory plan says cannot fit, with the planner's message.
    const plan = await this.plan(m, stats.longest, settings);
    if (!plan.fits) throw new Error(plan.text);
    const { trainer, policy } = newTrainer(m, examples, trainOptions(settings, m));
    const now = new Date().toISOString();
    const meta: RunMeta<TrainSettings> = {
      version: RUN_META_VERSION,
      runId: `run-${Date.now().toString(36)}`,
      name: settings.name,
      modelId: m.info.id,
      modelKey: modelKey(m),
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
    const j: TrainJob = {
      trainer,
      policy,
      model: m,
      meta,
      settings,
      history: [],
      state: 'running',
      taskId: null,
      pauseRequested: false,
      cancelRequested: false,
      store: opfsAvailable(),
      stopped: Promise.resolve(),
    };
    if (j.store) {
      try {
        await beginRun(meta, examples, toJsonl(ds.rows));
      } catch (e) {
        j.store = false;
        void notify(onEvent, {
          type: 'status',
          text: `The browser's storage is not writable (${(e as Error).message}); this run cannot be resumed after a reload.`,
        } as TrainEvent);
      }
    }
    this.job = j;
    return this.runJob(taskId, j, null, onEvent);
  }

  async resume(taskId: string, onEvent: (e: TrainEvent) => void): Promise<TrainOutcome> {
    this.tasks.requireNo(GPU_TASKS, 'training');
    if (this.job?.state === 'running') throw new Error('Training is already running.');
    if (this.job) {
      if (this.job.store) await updateRunMeta({ ...this.job.meta, status: 'running' }).catch(() => {});
      this.job.meta = { ...this.job.meta, status: 'running' };
      return this.runJob(taskId, this.job, null, onEvent);
    }
    const m = this.models.require();
    await this.own();
    try {
      return await this.resumeStored(taskId, m, onEvent);
    } catch (e) {
      if (!this.job) this.disown();
      throw e;
    }
  }

  private async resumeStored(
    taskId: string,
    m: LoadedRuntime,
    onEvent: (e: TrainEvent) => void,
  ): Promise<TrainOutcome> {
    const stored = await loadRun<TrainSettings>();
    if (!stored) throw new Error('There is no unfinished run to resume.');
    const { meta, examples, files } = stored;
    if (meta.modelKey !== modelKey(m))
      throw new Error(
        `This run was started on ${meta.modelId}: load that model (same files and settings) to resume it.`,
      );
    const dec = new TextDecoder();
    const stateJson = files['trainer_state.json'] ? dec.decode(files['trainer_state.json']) : null;
    const opts = stateJson
      ? parseTrainerState(stateJson, 'trainer_state.json in browser storage').options
      : trainOptions(meta.settings, m);
    const { trainer, policy } = newTrainer(m, examples, opts);
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
      policy,
      model: m,
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
    this.job = j;
    return this.runJob(taskId, j, step, onEvent);
  }

  /** Registers the cancelled run's adapter (as it was at its last step) under "<name>-step<k>". */
  async keepCancelled(): Promise<AdapterInfo> {
    const c = this.cancelled;
    if (!c) throw new Error('There is no cancelled run to keep.');
    this.cancelled = null;
    return this.adapters.register(`${c.name}-step${c.step}`, c.adapter, 'trained');
  }

  pause(): void {
    if (this.job?.state === 'running') this.job.pauseRequested = true;
  }

  /** Stops a running job after its step, or discards a paused / stored one. */
  async cancel(): Promise<void> {
    if (this.job?.state === 'running') {
      this.job.cancelRequested = true;
      return;
    }
    if (!this.job && !this.lock && (await runLockHeld())) throw new Error(OTHER_TAB);
    this.drop();
    await discardRun();
  }

  state(): TrainingState {
    const j = this.job;
    if (!j) return { state: 'idle', name: null, step: 0, totalSteps: 0 };
    return { state: j.state, name: j.settings.name, step: j.trainer.state.step, totalSteps: j.trainer.totalSteps };
  }

  async storedRun(): Promise<StoredRunInfo | null> {
    const meta = await readRunMeta<TrainSettings>().catch(() => null);
    if (!meta) return null;
    const m = this.models.loaded;
    return {
      elsewhere: !this.lock && (await runLockHeld()),
      name: meta.name,
      modelId: meta.modelId,
      sameModel: !!m && meta.modelKey === modelKey(m),
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
}
