/**
 * The trainer: LoRA (PEFT semantics) or full fine-tuning of a Llama-family model on WebGPU or the
 * CPU twin. Masked causal-LM loss (HF convention), micro-batches with padding, gradient
 * accumulation, AdamW / SGD, clipping by global norm, warmup + schedule, seeded data order, progress
 * events, and checkpoints that resume bit-for-bit (data order and dropout masks are pure functions
 * of the seed, the epoch and the step).
 */
import type { Backend, WeightShape } from '../kernels/backend';
import type { AdamWParams, TrainOps } from '../kernels/train-backend';
import { PROJECTIONS, type Projection } from '../formats/config';
import { PROJECTION_FIELD, type LlamaModel, type AdapterWeights } from '../model/llama';
import { TrainingPass, hfName, type LoraParam, type MicroBatch, type TrainableSet } from '../model/backward';

/**
 * For micro-batch `index`, given each row's log-probability of its label token (0 for rows without
 * a label), return d(loss)/d(logp) per row, already divided by the normaliser (e.g. token count).
 */
export type PolicyGradientFn = (index: number, logp: Float32Array) => Float32Array;
import type { ProgressCallback } from '../progress';
import type { TrainExample } from './data';
import { batchExamples } from './data';
import { initLoraPair, loraScale, validateAdapter, type LoraConfig, type PeftAdapter } from '../formats/peft';
import { lrMultiplier, type ScheduleKind } from './schedule';
import { Rng } from '../util/random';

export interface TrainOptions {
  mode: 'lora' | 'full';
  rank: number;
  alpha: number;
  dropout: number;
  targets: Projection[];
  useRslora: boolean;
  lr: number;
  optimizer: 'adamw' | 'sgd';
  weightDecay: number;
  betas: [number, number];
  eps: number;
  maxGradNorm: number;
  schedule: ScheduleKind;
  warmupSteps: number;
  /** Optimizer steps; when absent, `epochs` passes over the data. */
  steps?: number;
  epochs?: number;
  batchSize: number;
  gradAccum: number;
  seed: number;
  padTokenId: number;
  /**
   * Activation recomputation per block: the forward keeps only each block's input and the backward
   * runs each block's forward again just before its backward (peak: one block's activations).
   */
  recompute?: boolean;
  /** Like transformers' group_by_length: batch rows of similar length together (less padding). */
  groupByLength?: boolean;
}

export const DEFAULT_TRAIN_OPTIONS: TrainOptions = {
  mode: 'lora',
  // PEFT's LoraConfig defaults (r 8, alpha 8, dropout 0, q/v projections for Llama-family models).
  rank: 8,
  alpha: 8,
  dropout: 0,
  targets: ['q_proj', 'v_proj'],
  useRslora: false,
  lr: 2e-4,
  optimizer: 'adamw',
  weightDecay: 0,
  betas: [0.9, 0.999],
  eps: 1e-8,
  maxGradNorm: 1,
  schedule: 'linear',
  warmupSteps: 0,
  batchSize: 4,
  gradAccum: 1,
  seed: 42,
  padTokenId: 0,
};

/** One trainable tensor with its gradient and optimizer moments. */
interface ParamSlot<T, W> {
  name: string;
  /** The backend weight handle (the forward reads it). */
  weight: W;
  /** The same storage as a tensor (the optimizer updates it in place). */
  tensor: T;
  grad: T;
  m: T | null;
  v: T | null;
  n: number;
}

/** Everything needed to continue a run exactly where it stopped. */
export interface TrainerState {
  step: number;
  epoch: number;
  cursor: number;
  tokensSeen: number;
  lastLoss: number | null;
}

export interface StepReport {
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

export class NonFiniteLossError extends Error {}

/**
 * Trains `model` on its own backend: the tensor, weight and index types T, W, I are the backend's,
 * and so are the training ops (Backend.createTrainOps).
 */
export class Trainer<T = unknown, W extends WeightShape = WeightShape, I = unknown> {
  readonly params: ParamSlot<T, W>[] = [];
  readonly set: TrainableSet<T, W>;
  readonly totalSteps: number;
  readonly state: TrainerState = { step: 0, epoch: 0, cursor: 0, tokensSeen: 0, lastLoss: null };
  private readonly ops: TrainOps<T, W, I>;
  private readonly pass: TrainingPass<T, W, I>;
  private readonly be: Backend<T, W, I>;
  private readonly stepsPerEpoch: number;

  constructor(
    readonly model: LlamaModel<T, W, I>,
    readonly examples: TrainExample[],
    readonly opts: TrainOptions,
    init?: PeftAdapter,
  ) {
    if (!examples.length) throw new Error('the training dataset is empty');
    if (opts.batchSize < 1 || opts.gradAccum < 1) throw new Error('--batch and --grad-accum must be at least 1');
    if (!(opts.lr >= 0)) throw new Error(`learning rate must be a non-negative number, got ${opts.lr}`);
    this.be = model.backend;
    this.ops = this.be.createTrainOps();
    this.stepsPerEpoch = Math.max(1, Math.ceil(examples.length / (opts.batchSize * opts.gradAccum)));
    this.totalSteps = opts.steps ?? Math.ceil((opts.epochs ?? 1) * this.stepsPerEpoch);
    if (this.totalSteps < 1) throw new Error('nothing to train: steps must be at least 1');
    this.set = opts.mode === 'lora' ? this.setupLora(init) : this.setupFull();
    this.pass = new TrainingPass(model, this.ops, this.set);
  }

  private slot(name: string, weight: W, n: number): ParamSlot<T, W> {
    const be = this.be;
    const grad = be.tensor(n, `grad.${name}`);
    const adam = this.opts.optimizer === 'adamw';
    const m = adam ? be.tensor(n, `adam.m.${name}`) : null;
    const v = adam ? be.tensor(n, `adam.v.${name}`) : null;
    for (const t of [m, v]) if (t) this.ops.zero(t, n);
    const p: ParamSlot<T, W> = { name, weight, tensor: be.weightAsTensor(weight), grad, m, v, n };
    this.params.push(p);
    return p;
  }

  private setupLora(init?: PeftAdapter): TrainableSet<T, W> {
    const o = this.opts;
    const c = this.model.config;
    if (init) {
      validateAdapter(init, c);
      o.rank = init.config.r;
      o.alpha = init.config.loraAlpha;
      o.useRslora = init.config.useRslora;
      o.targets = [...new Set(init.pairs.map((p) => p.module))];
    }
    if (!Number.isInteger(o.rank) || o.rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${o.rank}`);
    if (!o.targets.length) throw new Error('no LoRA target modules given');
    for (const t of o.targets) {
      if (!(PROJECTIONS as readonly string[]).includes(t))
        throw new Error(
          `target module '${t}' does not exist in ${c.hfArchitecture}; choose from ${PROJECTIONS.join(', ')}`,
        );
    }
    const config: LoraConfig = this.loraConfig();
    const rng = new Rng(o.seed);
    const lora = new Map<string, LoraParam<T, W>>();
    const adapter: AdapterWeights<W> = new Map();
    const scale = loraScale(config);
    for (let layer = 0; layer < c.numLayers; layer++) {
      for (const module of o.targets) {
        const w = this.model.layers[layer][PROJECTION_FIELD[module]];
        const pair = init
          ? init.pairs.find((p) => p.layer === layer && p.module === module)
          : initLoraPair(layer, module, o.rank, w.cols, w.rows, () => rng.next());
        if (!pair) continue;
        const a = this.be.weight(`lora.${layer}.${module}.A`, pair.a.data.slice(), pair.a.shape[0], pair.a.shape[1]);
        const b = this.be.weight(`lora.${layer}.${module}.B`, pair.b.data.slice(), pair.b.shape[0], pair.b.shape[1]);
        const pa = this.slot(`${layer}.${module}.A`, a, pair.a.data.length);
        const pb = this.slot(`${layer}.${module}.B`, b, pair.b.data.length);
        lora.set(`${layer}.${module}`, {
          layer,
          module,
          a,
          b,
          rank: o.rank,
          inFeatures: w.cols,
          outFeatures: w.rows,
          gradA: pa.grad,
          gradB: pb.grad,
        });
        adapter.set(`${layer}.${module}`, { a, b, rank: o.rank, scale });
      }
    }
    // The model's own forward (generation, evaluation) sees the adapter being trained.
    this.model.setAdapter(adapter);
    return { mode: 'lora', lora, loraScale: scale, loraDropout: o.dropout, full: new Map(), recompute: o.recompute };
  }

  private setupFull(): TrainableSet<T, W> {
    const full = new Map<string, T>();
    for (const [name, w] of this.namedWeights()) full.set(name, this.slot(name, w, w.rows * w.cols).grad);
    this.model.setAdapter(null);
    return { mode: 'full', lora: new Map(), loraScale: 0, loraDropout: 0, full, recompute: this.opts.recompute };
  }

  /** Every weight of the model by HF name (tied lm_head appears once, as the embedding). */
  namedWeights(): [string, W][] {
    const m = this.model;
    const c = m.config;
    const out: [string, W][] = [['model.embed_tokens.weight', m.embed]];
    m.layers.forEach((L, i) => {
      out.push([hfName(i, 'input_layernorm'), L.inputNorm], [hfName(i, 'post_attention_layernorm'), L.postNorm]);
      for (const p of PROJECTIONS) out.push([hfName(i, p), L[PROJECTION_FIELD[p]]]);
      const biases: [Projection, W | null][] = [
        ['q_proj', L.qBias],
        ['k_proj', L.kBias],
        ['v_proj', L.vBias],
        ['o_proj', L.oBias],
      ];
      for (const [p, b] of biases) if (b) out.push([hfName(i, p, 'bias'), b]);
      if (L.qNorm && L.kNorm) out.push([hfName(i, 'q_norm'), L.qNorm], [hfName(i, 'k_norm'), L.kNorm]);
    });
    out.push(['model.norm.weight', m.norm]);
    if (!c.tieWordEmbeddings) out.push(['lm_head.weight', m.lmHead]);
    return out;
  }

  loraConfig(): LoraConfig {
    const o = this.opts;
    return {
      r: o.rank,
      loraAlpha: o.alpha,
      loraDropout: o.dropout,
      targetModules: [...o.targets],
      useRslora: o.useRslora,
      baseModelNameOrPath: null,
      bias: 'none',
    };
  }

  /** The example order of an epoch: a seeded shuffle, a pure function of (seed, epoch). */
  epochOrder(epoch: number): number[] {
    const order = this.examples.map((_, i) => i);
    const rng = new Rng((this.opts.seed * 1000003 + epoch) >>> 0);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    if (!this.opts.groupByLength) return order;
    // Sort within mega-batches of 50 micro-batches (still random across them), then shuffle the
    // resulting batches so long and short ones alternate.
    const per = this.opts.batchSize;
    const mega = per * 50;
    const sorted: number[] = [];
    for (let i = 0; i < order.length; i += mega) {
      sorted.push(
        ...order.slice(i, i + mega).sort((a, b) => this.examples[b].inputIds.length - this.examples[a].inputIds.length),
      );
    }
    const batches: number[][] = [];
    for (let i = 0; i < sorted.length; i += per) batches.push(sorted.slice(i, i + per));
    for (let i = batches.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [batches[i], batches[j]] = [batches[j], batches[i]];
    }
    return batches.flat();
  }

  /** The next optimizer step's micro-batches, advancing the data cursor (wrapping epochs). */
  private nextExamples(): number[][] {
    const per = this.opts.batchSize;
    const micro: number[][] = [];
    for (let g = 0; g < this.opts.gradAccum; g++) {
      if (this.state.cursor >= this.examples.length) {
        this.state.epoch++;
        this.state.cursor = 0;
      }
      const order = this.epochOrder(this.state.epoch);
      const ids = order.slice(this.state.cursor, this.state.cursor + per);
      this.state.cursor += ids.length;
      micro.push(ids);
    }
    return micro;
  }

  /** One optimizer step on the next batches of the dataset. Throws NonFiniteLossError (before touching the weights) on a NaN/inf loss. */
  async step(): Promise<StepReport> {
    const savedCursor = { epoch: this.state.epoch, cursor: this.state.cursor };
    const micro = this.nextExamples();
    const batches = micro.map((ids) => batchExamples(this.examples, ids, ids.length, this.opts.padTokenId)[0]);
    try {
      return await this.stepOn(batches);
    } catch (e) {
      if (e instanceof NonFiniteLossError) Object.assign(this.state, savedCursor);
      throw e;
    }
  }

  /**
   * One optimizer step on given micro-batches (gradient accumulation over them). With
   * `policyGradient`, the loss is not cross-entropy but a per-token objective whose derivative with
   * respect to each token's log-probability the callback returns (RL); see TrainingPass.step.
   */
  async stepOn(batches: MicroBatch[], policyGradient?: PolicyGradientFn): Promise<StepReport> {
    const t0 = performance.now();
    const o = this.opts;
    let totalTokens = 0;
    for (const b of batches)
      for (let i = 0; i < b.labels.length; i++) if (b.labels[i] >= 0 && i % b.seqLen !== 0) totalTokens++;
    for (const p of this.params) this.ops.zero(p.grad, p.n);
    let lossSum = 0;
    let tokens = 0;
    for (let g = 0; g < batches.length; g++) {
      const stepSeed =
        (Math.imul(o.seed + 1, 0x9e3779b1) ^ Math.imul(this.state.step + 1, 0x85ebca6b) ^ (g * 0x27d4eb2f)) >>> 0;
      const pg = policyGradient ? (logp: Float32Array) => policyGradient(g, logp) : undefined;
      const r = await this.pass.step(batches[g], 1 / Math.max(1, totalTokens), stepSeed, pg);
      lossSum += r.lossSum;
      tokens += r.tokens;
    }
    const loss = tokens ? lossSum / tokens : 0;
    if (!Number.isFinite(loss)) {
      throw new NonFiniteLossError(
        `the loss became ${loss} at step ${this.state.step + 1}; training stopped before updating the weights`,
      );
    }
    let sq = 0;
    for (const p of this.params) sq += await this.ops.sumSquares(p.grad, p.n);
    const gradNorm = Math.sqrt(sq);
    if (!Number.isFinite(gradNorm)) {
      throw new NonFiniteLossError(
        `the gradient norm became ${gradNorm} at step ${this.state.step + 1}; training stopped before updating the weights`,
      );
    }
    const clip = o.maxGradNorm > 0 ? Math.min(1, o.maxGradNorm / (gradNorm + 1e-6)) : 1;
    const lr = o.lr * lrMultiplier(o.schedule, this.state.step, this.totalSteps, o.warmupSteps);
    for (const p of this.params) {
      if (o.optimizer === 'sgd') {
        this.ops.sgd(p.tensor, p.grad, p.n, lr, clip);
      } else {
        // Norm weights and biases are 1-D; like HF's default param groups, no decay on them.
        const decay = isMatrix(p) ? o.weightDecay : 0;
        const ap: AdamWParams = {
          lr,
          beta1: o.betas[0],
          beta2: o.betas[1],
          eps: o.eps,
          weightDecay: decay,
          step: this.state.step + 1,
          gradScale: clip,
        };
        if (!p.m || !p.v) throw new Error(`AdamW moments of ${p.name} are missing`);
        this.ops.adamw(p.tensor, p.grad, p.m, p.v, p.n, ap);
      }
    }
    this.be.flush();
    this.state.step++;
    this.state.tokensSeen += tokens;
    this.state.lastLoss = loss;
    const stepMs = performance.now() - t0;
    return {
      step: this.state.step,
      totalSteps: this.totalSteps,
      loss,
      lr,
      gradNorm,
      tokens,
      tokensPerS: (tokens / stepMs) * 1000,
      stepMs,
      etaS: ((this.totalSteps - this.state.step) * stepMs) / 1000,
    };
  }

  /** Train until `totalSteps`, calling `onStep` after each step (checkpointing is the caller's). */
  async run(
    opts: {
      onStep?: (r: StepReport) => Promise<void> | void;
      onProgress?: ProgressCallback;
      signal?: AbortSignal;
    } = {},
  ): Promise<StepReport[]> {
    const reports: StepReport[] = [];
    while (this.state.step < this.totalSteps) {
      if (opts.signal?.aborted) break;
      const r = await this.step();
      reports.push(r);
      opts.onProgress?.({
        phase: 'train',
        done: r.step,
        total: r.totalSteps,
        unit: 'steps',
        etaS: r.etaS,
        metrics: { loss: r.loss, lr: r.lr, gradNorm: r.gradNorm, tokensPerS: r.tokensPerS },
      });
      await opts.onStep?.(r);
    }
    return reports;
  }

  /** Host copies of every trainable tensor and optimizer moment (for checkpoints and export). */
  async snapshot(): Promise<Map<string, Float32Array>> {
    const out = new Map<string, Float32Array>();
    for (const p of this.params) {
      out.set(p.name, await this.be.toHost(p.tensor, p.n));
      if (p.m) out.set(`${p.name}.exp_avg`, await this.be.toHost(p.m, p.n));
      if (p.v) out.set(`${p.name}.exp_avg_sq`, await this.be.toHost(p.v, p.n));
    }
    return out;
  }

  /** Restore tensors written by snapshot() (resume). */
  restore(tensors: Map<string, Float32Array>, state: TrainerState): void {
    for (const p of this.params) {
      for (const [suffix, target] of [
        ['', p.tensor],
        ['.exp_avg', p.m],
        ['.exp_avg_sq', p.v],
      ] as const) {
        if (!target) continue;
        const data = tensors.get(p.name + suffix);
        if (!data || data.length !== p.n)
          throw new Error(`checkpoint is missing or has a wrong-sized tensor ${p.name + suffix}`);
        this.be.upload(target, data);
      }
    }
    Object.assign(this.state, state);
  }

  /** The adapter being trained, as PEFT tensors (LoRA mode). */
  async adapter(): Promise<PeftAdapter> {
    if (this.set.mode !== 'lora') throw new Error('adapter() is only available in LoRA mode');
    const snap = await this.snapshot();
    const pairs = [...this.set.lora.values()].map((p) => ({
      layer: p.layer,
      module: p.module,
      a: { shape: [p.rank, p.inFeatures] as [number, number], data: snap.get(`${p.layer}.${p.module}.A`)! },
      b: { shape: [p.outFeatures, p.rank] as [number, number], data: snap.get(`${p.layer}.${p.module}.B`)! },
    }));
    return { config: this.loraConfig(), pairs };
  }

  dispose(): void {
    for (const p of this.params) for (const t of [p.grad, p.m, p.v]) if (t) this.be.free(t);
  }
}

function isMatrix<T, W extends WeightShape>(p: ParamSlot<T, W>): boolean {
  return p.weight.rows > 1 && p.weight.cols > 1;
}
