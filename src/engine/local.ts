/**
 * The local runtime as a ChatEngine: a checkpoint loaded onto WebGPU (or the CPU twin), a
 * Generator doing continuous batching, and the OpenAI chat-completions shape on top — the same
 * shape WebLLM and OpenAI-compatible servers expose, so callers never know which one they drive.
 */
import { loadCheckpoint, type Checkpoint } from '../formats/checkpoint';
import type { HFTokenizer } from '../formats/tokenizer';
import { Gpu, type GpuOptions } from '../gpu/device';
import { CpuBackend } from '../kernels/cpu';
import { GpuBackend } from '../kernels/gpu';
import { autotuneFromEnv, KernelTuner, type TuningSummary } from '../kernels/autotune';
import type { AnyBackend } from '../kernels/backend';
import { LlamaModel } from '../model/llama';
import type { QuantFormat } from '../quant/quantize';
import type { QuantCache } from '../quant/cache';
import { quantizeWeights } from '../quant/weights';
import { chunkedTokenLogprobs } from '../model/loss-head';
import { checkMemoryPlan, estimatePeakBytes, type MemoryEstimate, type MemoryPlanOptions } from '../model/memory';
import type { ModelConfig } from '../formats/config';
import type { TrainOps } from '../kernels/train-backend';
import type { ProgressCallback } from '../progress';
import { Generator, type GenerationRequest, type GenerationResult } from './generator';
import { AdapterRegistry } from './adapters';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionOptions,
  ChatCompletionRequest,
  ChatEngine,
  ChatMessage,
} from './types';
import { EngineRequestError } from './types';

export interface RuntimeOptions {
  /** 'webgpu' (default) or 'cpu' (the plain-TS twin; slow, but needs no GPU). */
  backend?: 'webgpu' | 'cpu';
  /** Weight storage on the GPU: 'auto' keeps f16/bf16 files in f16 where shader-f16 exists, f32 otherwise. */
  dtype?: 'auto' | 'f16' | 'f32';
  contextLength?: number;
  maxBatch?: number;
  /** Quantize the frozen Linear/embedding weights to q8 or q4 on load (cached for the next load). */
  quantize?: QuantFormat;
  /** Where quantized weights are cached (default: defaultQuantCache(); null: no cache). */
  quantCache?: QuantCache | null;
  /** A PEFT LoRA adapter (dir, URL or HF id) to load and activate on top of the base. */
  adapter?: string;
  /**
   * Bytes of GPU memory this runtime may take (weights + KV cache + the longest prefill, as the
   * memory planner estimates them before any upload); none when undefined. The plan is always
   * checked against the adapter's largest buffer.
   */
  memoryBudgetBytes?: number;
  /**
   * Time kernel variants per shape class on this adapter at first use and cache the choices
   * (src/kernels/autotune.ts). Default: on, unless AGENTARK_AUTOTUNE=0 in the environment.
   */
  autotune?: boolean;
  gpu?: Gpu;
  gpuOptions?: GpuOptions;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

/**
 * The memory planner's estimate of generation (weights, KV cache, one prefill) against the
 * adapter's limits and a budget; throws MemoryPlanError naming what to change.
 */
export async function checkGenerationPlan(
  config: ModelConfig,
  gpu: Gpu,
  plan: MemoryPlanOptions & { budgetBytes?: number },
): Promise<MemoryEstimate> {
  const { budgetBytes, ...options } = plan;
  const estimate = await estimatePeakBytes(config, options);
  const limits = {
    maxBufferSize: gpu.info.maxBufferSize,
    maxStorageBufferBindingSize: gpu.info.maxStorageBufferBindingSize,
    budgetBytes,
  };
  checkMemoryPlan(estimate, limits, options);
  return estimate;
}

/** A model on a backend, with its tokenizer and a generator: what every command drives. */
export class Runtime {
  /** LoRA adapters resident next to the base; hot-swappable between requests. */
  readonly adapters: AdapterRegistry;
  /** The frozen weights' q8/q4 format, or null when they are f16/f32. */
  quantized: QuantFormat | null = null;
  /** The memory planner's estimate of generation's peak on the GPU (null on the CPU backend). */
  memoryPlan: MemoryEstimate | null = null;

  private constructor(
    readonly model: LlamaModel,
    readonly tokenizer: HFTokenizer | null,
    readonly generator: Generator,
    readonly backend: AnyBackend,
    readonly modelId: string,
    readonly gpu: Gpu | null,
  ) {
    this.adapters = new AdapterRegistry(model);
  }

  static async load(spec: string, opts: RuntimeOptions = {}): Promise<Runtime> {
    const ckpt = await loadCheckpoint(spec, { onProgress: opts.onProgress, signal: opts.signal });
    return Runtime.fromCheckpoint(ckpt, opts);
  }

  static async fromCheckpoint(ckpt: Checkpoint, opts: RuntimeOptions = {}): Promise<Runtime> {
    let gpu: Gpu | null = null;
    let backend: AnyBackend;
    if (opts.backend === 'cpu') {
      backend = new CpuBackend();
    } else {
      gpu = opts.gpu ?? (await Gpu.create(opts.gpuOptions));
      const halfFile = [...ckpt.tensors.values()].some((t) => t.dtype !== 'F32');
      const want = opts.dtype ?? 'auto';
      const weightType = want === 'auto' ? (gpu.features.f16 && halfFile ? 'f16' : 'f32') : want;
      const gpuBackend = await GpuBackend.create(gpu, weightType);
      if (opts.autotune ?? autotuneFromEnv()) gpuBackend.tuner = await KernelTuner.create(gpu);
      backend = gpuBackend;
    }
    const c = ckpt.config;
    const contextLength = Math.min(opts.contextLength ?? 2048, c.maxPositionEmbeddings, c.slidingWindow ?? Infinity);
    const maxBatch = opts.maxBatch ?? 8;
    // The generation plan, before anything is quantized or uploaded: refuse what cannot fit,
    // saying what to change. A whole prompt may be prefilled in one step.
    let memoryPlan: MemoryEstimate | null = null;
    if (gpu) {
      try {
        memoryPlan = await checkGenerationPlan(ckpt.config, gpu, {
          weights: opts.quantize ?? backend.weightType,
          contextLength,
          maxBatch,
          prefillTokens: contextLength,
          maxBindingBytes: gpu.weightShardBytes,
          budgetBytes: opts.memoryBudgetBytes,
        });
      } catch (e) {
        if (!opts.gpu) gpu.destroy();
        throw e;
      }
    }
    const quantized = opts.quantize
      ? await quantizeWeights(c, ckpt.tensors, opts.quantize, { cache: opts.quantCache, onProgress: opts.onProgress })
      : null;
    const model = LlamaModel.fromTensors(backend, c, ckpt.tensors, contextLength, quantized?.matrices);
    ckpt.tensors.clear(); // host copies are no longer needed once uploaded
    const generator = new Generator(model, ckpt.tokenizer, {
      maxBatch,
      contextLength,
      eosTokenIds: ckpt.eosTokenIds,
    });
    const modelId = ckpt.source.replace(/\/+$/, '').split('/').slice(-2).join('/');
    const runtime = new Runtime(model, ckpt.tokenizer, generator, backend, modelId, gpu);
    runtime.quantized = opts.quantize ?? null;
    runtime.memoryPlan = memoryPlan;
    if (opts.adapter) {
      await runtime.adapters.load('default', opts.adapter);
      runtime.adapters.activate('default');
    }
    return runtime;
  }

  /** The kernel autotuner's choices so far and the time spent timing them (null: CPU or tuning off). */
  kernelChoices(): TuningSummary | null {
    return this.backend instanceof GpuBackend && this.backend.tuner ? this.backend.tuner.summary() : null;
  }

  describeBackend(): string {
    const weights = this.quantized ?? this.backend.weightType;
    return this.gpu
      ? `webgpu (${weights} weights) on ${this.gpu.describe()}`
      : `cpu (TypeScript twin${this.quantized ? `, ${this.quantized} weights` : ''})`;
  }

  requireTokenizer(): HFTokenizer {
    if (!this.tokenizer) throw new Error(`${this.modelId} has no tokenizer.json: pass token ids instead of text`);
    return this.tokenizer;
  }

  promptIds(messages: ChatMessage[]): number[] {
    return this.requireTokenizer().encodeChat(messages.map((m) => ({ role: m.role, content: m.content })));
  }

  /** Logits [ids.length, vocab] of one forward pass over `ids` as a single sequence. */
  async logits(ids: number[]): Promise<Float32Array> {
    return this.fullForward(ids, 'all', 'logits');
  }

  private trainOps: TrainOps<unknown, unknown, unknown> | null = null;

  /**
   * log p(ids[t] | ids[<t]) for every t ≥ 1 (0 at t = 0), through the LM head in row chunks: the
   * [tokens, vocab] logits are never held whole (PRM features, RL log-probabilities).
   */
  async tokenLogprobs(ids: number[]): Promise<Float32Array> {
    const hidden = await this.hidden(
      ids,
      ids.map((_, i) => i),
    );
    this.trainOps ??= this.backend.createTrainOps() as TrainOps<unknown, unknown, unknown>;
    const ops = this.trainOps;
    return this.generator.exclusive(() =>
      chunkedTokenLogprobs(this.backend, ops as never, this.model as never, hidden, ids),
    );
  }

  /** Final-normed hidden states [rows.length, hidden] at the given positions of `ids`. */
  async hidden(ids: number[], rows: number[]): Promise<Float32Array> {
    return this.fullForward(ids, rows, 'hidden');
  }

  private async fullForward(ids: number[], rows: number[] | 'all', output: 'logits' | 'hidden'): Promise<Float32Array> {
    if (ids.length > this.generator.contextLength)
      throw new Error(`${ids.length} tokens exceed the context length ${this.generator.contextLength}`);
    return this.generator.exclusive((cache) =>
      this.model.forward(
        {
          ids: Uint32Array.from(ids),
          positions: Uint32Array.from(ids, (_, i) => i),
          slots: new Uint32Array(ids.length),
          logitRows: rows,
          output,
        },
        cache,
      ),
    );
  }

  generate(req: GenerationRequest): Promise<GenerationResult> {
    return this.generator.generate(req);
  }

  dispose(): void {
    this.generator.dispose();
    this.gpu?.destroy();
  }
}

let completionCounter = 0;

/** The OpenAI chat-completions shape over a Runtime. */
export class LocalEngine implements ChatEngine {
  readonly chat: ChatEngine['chat'];

  constructor(readonly runtime: Runtime) {
    this.chat = { completions: { create: this.create.bind(this) as ChatEngine['chat']['completions']['create'] } };
  }

  async models(): Promise<string[]> {
    return [this.runtime.modelId];
  }

  private requests(req: ChatCompletionRequest, signal?: AbortSignal): GenerationRequest[] {
    if (!Array.isArray(req.messages) || !req.messages.length) throw new Error('messages must be a non-empty array');
    const prompt = this.runtime.promptIds(req.messages);
    const n = req.n ?? 1;
    const stop = req.stop === undefined ? [] : Array.isArray(req.stop) ? req.stop : [req.stop];
    const contextLength = this.runtime.generator.contextLength;
    // The prompt plus at least one generated token must fit.
    if (prompt.length >= contextLength) {
      throw new EngineRequestError(
        `This model's maximum context length is ${contextLength} tokens. ` +
          `However, your messages resulted in ${prompt.length} tokens. Please reduce the length of the messages.`,
        400,
        'context_length_exceeded',
        'messages',
      );
    }
    const room = contextLength - prompt.length;
    return Array.from({ length: n }, (_, i) => ({
      prompt,
      maxTokens: Math.max(1, Math.min(req.max_tokens ?? room, room)),
      sampling: {
        temperature: req.temperature ?? 1,
        topP: req.top_p,
        topK: req.top_k,
        repetitionPenalty: req.repetition_penalty,
        seed: req.seed === undefined ? undefined : req.seed + i,
      },
      stop,
      signal,
    }));
  }

  private async create(
    req: ChatCompletionRequest,
    opts: ChatCompletionOptions = {},
  ): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    const id = `chatcmpl-local-${Date.now().toString(36)}-${completionCounter++}`;
    const created = Math.floor(Date.now() / 1000);
    const model = req.model ?? this.runtime.modelId;
    const gens = this.requests(req, opts.signal);
    if (!req.stream) {
      const results = await Promise.all(gens.map((g) => this.runtime.generate(g)));
      const completion = results.reduce((a, r) => a + r.tokens.length, 0);
      return {
        id,
        object: 'chat.completion',
        created,
        model,
        choices: results.map((r, index) => ({
          index,
          message: { role: 'assistant', content: r.text },
          finish_reason: r.finishReason,
        })),
        usage: {
          prompt_tokens: gens[0].prompt.length,
          completion_tokens: completion,
          total_tokens: gens[0].prompt.length + completion,
        },
      };
    }
    return this.stream(id, created, model, gens);
  }

  private async *stream(
    id: string,
    created: number,
    model: string,
    gens: GenerationRequest[],
  ): AsyncIterable<ChatCompletionChunk> {
    const queue: ChatCompletionChunk[] = [];
    let wake: (() => void) | null = null;
    const push = (c: ChatCompletionChunk) => {
      queue.push(c);
      wake?.();
    };
    const chunk = (
      index: number,
      delta: Partial<ChatMessage>,
      finish: ChatCompletionChunk['choices'][0]['finish_reason'],
    ): ChatCompletionChunk => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index, delta, finish_reason: finish }],
    });
    gens.forEach((_, index) => push(chunk(index, { role: 'assistant', content: '' }, null)));
    let failure: Error | null = null;
    const all = Promise.all(
      gens.map((g, index) =>
        this.runtime
          .generate({ ...g, onToken: (_id, delta) => delta && push(chunk(index, { content: delta }, null)) })
          .then((r) => {
            push(chunk(index, {}, r.finishReason));
            return r;
          }),
      ),
    ).catch((e) => {
      failure = e as Error;
      return null;
    });
    let done = false;
    let results: GenerationResult[] | null = null;
    void all.then((r) => {
      results = r;
      done = true;
      wake?.();
    });
    while (true) {
      while (queue.length) yield queue.shift()!;
      if (done) break;
      await new Promise<void>((r) => (wake = r));
      wake = null;
    }
    while (queue.length) yield queue.shift()!;
    if (failure) throw failure;
    const completion = (results ?? []).reduce((a: number, r: GenerationResult) => a + r.tokens.length, 0);
    yield {
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [],
      usage: {
        prompt_tokens: gens[0].prompt.length,
        completion_tokens: completion,
        total_tokens: gens[0].prompt.length + completion,
      },
    };
  }
}

/** Load a model and wrap it as a ChatEngine (what `agentark debate --engine local` uses). */
export async function createLocalEngine(opts: { model: string } & RuntimeOptions): Promise<LocalEngine> {
  return new LocalEngine(await Runtime.load(opts.model, opts));
}
