/**
 * PAD in the app (steps b and c of the CLI's `agentark prm` and `agentark rl`): a process reward
 * model head trained on PAD step labels over the loaded model's features, with its held-out AUC;
 * then RL on a student LoRA (verifiable reward + the PRM's score of the weakest step), step by
 * step with progress (reward, KL, accuracy of the group) and pause / resume / cancel. The
 * finished adapter is registered like a trained one.
 */
import { studentMessages } from '../../tasks/prompts';
import {
  auc,
  fitPrmHead,
  scoreFeature,
  scoreSolution,
  serializePrmHead,
  splitSteps,
  stepFeatures,
  type PrmHead,
  type StepwiseRow,
} from '../../distill/prm';
import { DEFAULT_RL_OPTIONS, runRl, type RlPrompt } from '../../distill/rl';
import { Rng } from '../../util/random';
import { grade } from '../../tasks/answers';
import type { AdapterWeights } from '../../model/llama';
import type { Question } from '../../tasks/datasets';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../../train/trainer';
import type { PrmEvent, PrmResult, RlEvent, RlOutcome, RlSettings, PrmSettings, RlPoint } from '../api';
import type { Adapters } from './adapters';
import type { Datasets } from './datasets';
import type { LoadedRuntime, Models } from './models';
import { emitter, GPU_TASKS, type Tasks } from './tasks';

interface RlJob {
  trainer: Trainer;
  model: LoadedRuntime;
  /** The adapter being trained (the trainer attaches it to the model; re-attached on resume). */
  policy: AdapterWeights<unknown> | null;
  settings: RlSettings;
  prompts: RlPrompt[];
  byId: Map<string, Question>;
  step: number;
  history: RlPoint[];
  state: 'running' | 'paused';
  pauseRequested: boolean;
  cancelRequested: boolean;
}

/** A row of the AgentArk layout (pad-solutions.ts): completions are whole solutions by named agents. */
function isSolutionRow(r: StepwiseRow): boolean {
  return Array.isArray((r as StepwiseRow & { agents?: unknown }).agents);
}

function isStepwise(r: unknown): r is StepwiseRow {
  const x = r as StepwiseRow;
  return (
    typeof x?.prompt === 'string' &&
    Array.isArray(x.completions) &&
    Array.isArray(x.labels) &&
    x.completions.length === x.labels.length
  );
}

/** Frees a trainer's GPU memory, its LoRA weights included (as the training module does). */
function freeTrainer(t: Trainer): void {
  const be = t.model.backend;
  t.dispose();
  for (const p of t.params) be.freeWeight(p.weight as never);
}

export class Pad {
  private prm: { head: PrmHead; result: PrmResult } | null = null;
  private job: RlJob | null = null;

  constructor(
    private readonly tasks: Tasks,
    private readonly models: Models,
    private readonly datasets: Datasets,
    private readonly adapters: Adapters,
  ) {
    // The head and a paused run were built on the loaded model's features and weights.
    models.onUnload(() => {
      this.prm = null;
      if (this.job) freeTrainer(this.job.trainer);
      this.job = null;
    });
  }

  /** Trains the PRM head on a built PAD set: whole questions held out for the AUC. */
  async trainPrm(
    taskId: string,
    datasetId: string,
    s: PrmSettings,
    onEvent: (e: PrmEvent) => void,
  ): Promise<PrmResult> {
    const m = this.models.require();
    this.tasks.requireNo(GPU_TASKS, 'training the reward model');
    const ds = this.datasets.get(datasetId);
    const rows = ds.rows.filter(isStepwise);
    if (ds.strategy !== 'pad' || !rows.length)
      throw new Error(
        'The reward model trains on PAD step labels: build the training set with the PAD strategy first.',
      );
    const ctrl = this.tasks.start(taskId);
    const { emit, delivered } = emitter(onEvent);
    try {
      const prompts = [...new Set(rows.map((r) => r.prompt))];
      const rng = new Rng(s.seed);
      for (let i = prompts.length - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        [prompts[i], prompts[j]] = [prompts[j]!, prompts[i]!];
      }
      const heldOut = new Set(prompts.slice(0, Math.round(prompts.length * s.holdout)));
      const trainRows = rows.filter((r) => !heldOut.has(r.prompt));
      const testRows = rows.filter((r) => heldOut.has(r.prompt));
      if (!trainRows.length) throw new Error('Every question is held out: lower the held-out share.');
      const features: Float32Array[] = [];
      const labels: boolean[] = [];
      for (const [i, r] of trainRows.entries()) {
        ctrl.signal.throwIfAborted();
        (await stepFeatures(m.runtime, r)).forEach((f, k) => {
          features.push(f);
          labels.push(!!r.labels[k]);
        });
        emit({ type: 'features', done: i + 1, total: trainRows.length });
      }
      ctrl.signal.throwIfAborted();
      const { head, losses } = fitPrmHead(features, labels, {
        epochs: s.epochs,
        lr: s.lr,
        seed: s.seed,
        onProgress: (epoch, loss) => emit({ type: 'epoch', epoch, epochs: s.epochs, loss }),
      });
      // The AUC is over the held-out labelled completions (as `agentark prm` reports it): whole
      // solutions in the AgentArk layout (a row per question), paragraphs in the paragraph layout.
      const unit = rows.every(isSolutionRow) ? 'solution' : 'step';
      const scores: number[] = [];
      const truth: boolean[] = [];
      for (const [i, r] of testRows.entries()) {
        ctrl.signal.throwIfAborted();
        for (const x of await stepFeatures(m.runtime, r)) scores.push(scoreFeature(head, x));
        truth.push(...r.labels.map(Boolean));
        emit({ type: 'scoring', done: i + 1, total: testRows.length });
      }
      const heldOutAuc = scores.length ? auc(scores, truth) : null;
      const result: PrmResult = {
        unit,
        trainRows: trainRows.length,
        trainExamples: features.length,
        heldOutRows: testRows.length,
        heldOutExamples: scores.length,
        heldOutAuc: heldOutAuc !== null && Number.isFinite(heldOutAuc) ? heldOutAuc : null,
        firstLoss: losses[0] ?? null,
        finalLoss: losses.at(-1) ?? null,
        losses,
      };
      this.prm = { head, result };
      await delivered();
      return result;
    } finally {
      this.tasks.end(taskId, ctrl);
    }
  }

  /** The trained head as prm_head.safetensors (the CLI's format: `agentark rl --prm`). */
  prmFile(): Uint8Array {
    if (!this.prm) throw new Error('No reward model has been trained in this session.');
    const m = this.models.loaded;
    return serializePrmHead(this.prm.head, {
      base_model: m?.info.id ?? '',
      features: 'final-norm hidden state at the last token of each step',
    });
  }

  prmResult(): PrmResult | null {
    return this.prm?.result ?? null;
  }

  rlState(): { state: 'idle' | 'running' | 'paused'; step: number; steps: number } {
    const j = this.job;
    return j ? { state: j.state, step: j.step, steps: j.settings.steps } : { state: 'idle', step: 0, steps: 0 };
  }

  async startRl(
    taskId: string,
    questions: Question[],
    s: RlSettings,
    onEvent: (e: RlEvent) => void,
  ): Promise<RlOutcome> {
    const m = this.models.require();
    this.tasks.requireNo(GPU_TASKS, 'RL');
    if (this.job) throw new Error(`The RL run ${this.job.settings.name} is paused: resume or cancel it first.`);
    if (!questions.length) throw new Error('Pick the questions RL practises on.');
    if (!s.name.trim()) throw new Error('Give the adapter a name.');
    if (s.groupSize < 2)
      throw new Error('RL compares each sample with the rest of its group: the group needs at least 2 samples.');
    if (s.usePrm && !this.prm) throw new Error('Train the reward model first, or leave it out of the reward.');
    const init = s.initAdapter ? this.adapters.peft(s.initAdapter) : undefined;
    const system = s.system === undefined ? {} : { system: s.system };
    const prompts = questions.map((q) => ({
      id: q.id,
      prompt: m.runtime.promptIds(studentMessages(q.task, q, system)),
    }));
    const tooLong = prompts.find((p) => p.prompt.length + s.maxTokens > m.runtime.generator.contextLength);
    if (tooLong)
      throw new Error(
        `Question ${tooLong.id} takes ${tooLong.prompt.length} tokens; with ${s.maxTokens} for the answer that ` +
          `exceeds the context (${m.runtime.generator.contextLength}). Lower Max tokens or the system prompt.`,
      );
    const trainer = new Trainer(
      m.runtime.model,
      prompts.map((p) => ({ inputIds: p.prompt, labels: p.prompt })),
      {
        ...DEFAULT_TRAIN_OPTIONS,
        mode: 'lora',
        rank: s.rank,
        alpha: s.alpha,
        targets: [...s.targets],
        lr: s.lr,
        schedule: 'constant',
        steps: s.steps * s.ppoEpochs,
        seed: s.seed,
      },
      init,
    );
    const policy = m.runtime.model.getAdapter() as AdapterWeights<unknown> | null;
    this.job = {
      trainer,
      model: m,
      policy,
      settings: s,
      prompts,
      byId: new Map(questions.map((q) => [q.id, q])),
      step: 0,
      history: [],
      state: 'running',
      pauseRequested: false,
      cancelRequested: false,
    };
    return this.run(taskId, this.job, onEvent);
  }

  async resumeRl(taskId: string, onEvent: (e: RlEvent) => void): Promise<RlOutcome> {
    this.tasks.requireNo(GPU_TASKS, 'RL');
    const j = this.job;
    if (!j) throw new Error('There is no paused RL run.');
    if (j.state === 'running') throw new Error('RL is already running.');
    return this.run(taskId, j, onEvent);
  }

  pauseRl(): void {
    if (this.job?.state === 'running') this.job.pauseRequested = true;
  }

  /** Stops a running RL run after its step (its adapter is dropped), or drops a paused one. */
  cancelRl(): void {
    const j = this.job;
    if (!j) return;
    if (j.state === 'running') j.cancelRequested = true;
    else this.dispose(j);
  }

  private dispose(j: RlJob): void {
    freeTrainer(j.trainer);
    if (this.job === j) this.job = null;
    // Chat goes back to what the adapter registry has active.
    if (this.models.loaded === j.model) j.model.runtime.adapters.activate(j.model.runtime.adapters.activeName());
  }

  private async run(taskId: string, j: RlJob, onEvent: (e: RlEvent) => void): Promise<RlOutcome> {
    const ctrl = this.tasks.start(taskId);
    const { emit, delivered } = emitter(onEvent);
    const s = j.settings;
    const rt = j.model.runtime;
    j.state = 'running';
    j.pauseRequested = j.cancelRequested = false;
    emit({ type: 'start', name: s.name, step: j.step, steps: s.steps, history: [...j.history] });
    const base = () => ({ step: j.step, steps: s.steps, history: [...j.history] });
    try {
      rt.model.setAdapter(j.policy as never);
      while (j.step < s.steps && !j.pauseRequested && !j.cancelRequested && !ctrl.signal.aborted) {
        // One RL step per call: the prompts continue where the last step stopped, each step its own seed.
        const offset = (j.step * s.promptsPerStep) % j.prompts.length;
        const rotated = [...j.prompts.slice(offset), ...j.prompts.slice(0, offset)];
        let correct = 0;
        let samples = 0;
        const t0 = performance.now();
        const [r] = await runRl(
          rt,
          j.trainer,
          rotated,
          async (sample) => {
            const q = j.byId.get(sample.prompt.id)!;
            const ok = grade(q.task, sample.text, q.answer).correct;
            samples++;
            if (ok) correct++;
            const verifiable = ok ? 1 : 0;
            if (!s.usePrm || !this.prm) return verifiable;
            // An empty completion has no step to score (and nothing to run the model on).
            const steps =
              this.prm.result.unit === 'solution' ? [sample.text.trim()].filter(Boolean) : splitSteps(sample.text);
            if (!steps.length) return verifiable;
            const { solution } = await scoreSolution(rt, this.prm.head, q.question, steps);
            return verifiable + s.prmWeight * solution;
          },
          {
            ...DEFAULT_RL_OPTIONS,
            steps: 1,
            ppoEpochs: s.ppoEpochs,
            groupSize: s.groupSize,
            promptsPerStep: s.promptsPerStep,
            maxTokens: s.maxTokens,
            clip: s.clip,
            klCoef: s.klCoef,
            sampling: { temperature: s.temperature },
            seed: s.seed * 7919 + j.step,
          },
        );
        j.step++;
        const point: RlPoint = {
          step: j.step,
          reward: r!.meanReward,
          kl: r!.meanKl,
          accuracy: samples ? correct / samples : 0,
          clipFraction: r!.clipFraction,
        };
        j.history.push(point);
        emit({ type: 'step', ...point, steps: s.steps, stepMs: Math.round(performance.now() - t0) });
      }
    } catch (e) {
      this.dispose(j);
      this.tasks.end(taskId, ctrl);
      await delivered();
      throw e;
    }
    this.tasks.end(taskId, ctrl);
    if (j.cancelRequested || ctrl.signal.aborted) {
      this.dispose(j);
      await delivered();
      return { status: 'cancelled', ...base(), adapter: null };
    }
    if (j.step < s.steps) {
      j.state = 'paused';
      // While paused, chat uses what the adapter registry has active.
      rt.adapters.activate(rt.adapters.activeName());
      await delivered();
      return { status: 'paused', ...base(), adapter: null };
    }
    const adapter = await j.trainer.adapter();
    this.dispose(j);
    const info = await this.adapters.register(s.name, adapter, 'trained');
    await delivered();
    return { status: 'finished', ...base(), adapter: info };
  }
}
