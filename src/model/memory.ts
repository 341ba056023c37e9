/**
 * The memory planner: peak GPU bytes of loading a model, generating with it, or one training step,
 * estimated before anything is allocated — by running the real model, trainer and training-pass
 * code against a backend that computes nothing and only keeps the books the GPU layer keeps
 * (weights as dedicated buffers, activations from a pool of size buckets that are reused and never
 * returned, the training ops' scratch buffers). So the estimate follows every allocation the code
 * makes, recomputation and chunked losses included, and tests compare it with measured peaks.
 * `checkMemoryPlan` compares it with the adapter's limits and a user budget, and refuses with a
 * message naming what to change.
 */
import { PROJECTIONS, type ModelConfig, type Projection } from '../formats/config';
import { bucketSize } from '../gpu/device';
import { shardRows, type Backend, type KvCacheShape, type WeightShape } from '../kernels/backend';
import type { AdamWParams, TrainOps } from '../kernels/train-backend';
import type { QuantFormat, QuantizedMatrix } from '../quant/quantize';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../train/trainer';
import { LlamaModel, type LayerWeights } from './llama';

export type WeightFormat = 'f32' | 'f16' | QuantFormat;

export interface MemoryPlanOptions {
  weights: WeightFormat;
  /** RoPE table length / KV cache positions (default: seqLen for training, 2048 for inference). */
  contextLength?: number;
  /** Training: micro-batch rows and tokens per row. Omit `train` for inference. */
  train?: {
    batch: number;
    seqLen: number;
    mode?: 'lora' | 'full';
    rank?: number;
    targets?: Projection[];
    optimizer?: 'adamw' | 'sgd';
    dropout?: number;
    recompute?: boolean;
  };
  /** Inference: KV-cache slots (concurrent sequences) and the longest prefill (default contextLength). */
  maxBatch?: number;
  prefillTokens?: number;
  /** Largest single buffer the adapter allows (weights are sharded below it). */
  maxBindingBytes?: number;
}

export interface MemoryEstimate {
  /** Peak bytes of every GPU buffer alive at once (weights, pool, scratch). */
  peakBytes: number;
  /** Bytes of the model's weights (quantized values and scales, norms, biases, RoPE tables). */
  weightBytes: number;
  /** The largest single activation buffer (what maxStorageBufferBindingSize must hold). */
  largestBufferBytes: number;
  /** What was estimated, in words (for messages and `agentark bench`). */
  describe: string;
}

// ---- the book-keeping backend -------------------------------------------------------------

interface DryTensor {
  bytes: number;
  length: number;
}
interface DryWeight extends WeightShape {
  bytes: number;
}
type DryIndices = DryTensor;

class Books {
  allocated = 0;
  peak = 0;
  largest = 0;
  private readonly free = new Map<number, number>();
  constructor(readonly maxBinding: number) {}
  alloc(bytes: number): void {
    this.allocated += bytes;
    this.peak = Math.max(this.peak, this.allocated);
  }
  /** A dedicated buffer, as Gpu.createStorage sizes it. */
  storage(bytes: number): number {
    const size = Math.max(16, Math.ceil(bytes / 4) * 4);
    this.alloc(size);
    return size;
  }
  /** A pooled buffer, as Gpu.acquire sizes and reuses it. */
  acquire(bytes: number): number {
    this.largest = Math.max(this.largest, bytes);
    const size = bucketSize(bytes);
    const n = this.free.get(size) ?? 0;
    if (n > 0) this.free.set(size, n - 1);
    else this.alloc(size);
    return size;
  }
  release(size: number): void {
    this.free.set(size, (this.free.get(size) ?? 0) + 1);
  }
  destroy(bytes: number): void {
    this.allocated -= bytes;
  }
}

class DryTrainOps implements TrainOps<DryTensor, DryWeight, DryIndices> {
  private readonly scratch = new Map<string, number>();
  constructor(private readonly books: Books) {
    books.storage(16); // GpuTrainOps' dummy binding
  }
  /** GpuTrainOps.scratchBuffer: grown geometrically, never shrunk. */
  private grow(name: string, bytes: number): void {
    const have = this.scratch.get(name);
    if (have !== undefined && have >= bytes) return;
    if (have !== undefined) this.books.release(have);
    this.scratch.set(name, this.books.acquire(Math.max(bytes, (have ?? 0) * 2, 256)));
  }
  matmulBackwardInput(): void {}
  matmulBackwardWeight(): void {}
  matmulTensor(): void {}
  biasBackward(): void {}
  rmsnormBackward(_dy: DryTensor, _x: DryTensor, _w: DryWeight | DryTensor, rows: number): void {
    if (rows > 0) this.grow('rstd', rows * 4);
  }
  ropeBackward(): void {}
  attentionBackward(
    _d: DryTensor,
    _q: DryTensor,
    _k: DryTensor,
    _v: DryTensor,
    _s: DryIndices,
    _p: DryIndices,
    tokens: number,
    heads: number,
  ): void {
    if (tokens > 0) this.grow('attn-stats', (tokens * heads * 2 + tokens * 2) * 4);
  }
  kvGather(): void {}
  swigluBackward(): void {}
  embeddingBackward(): void {}
  crossEntropy(): void {}
  logSumExpChunk(): void {}
  crossEntropyChunkGrad(): void {}
  dropout(): void {}
  async sumSquares(_x: DryTensor, n: number): Promise<number> {
    if (n === 0) return 0;
    const groups = Math.min(1024, Math.ceil(n / (64 * 16)));
    const block = Math.ceil(n / groups / 64) * 64;
    const size = this.books.acquire(Math.ceil(n / block) * 4);
    this.books.release(size);
    return 0;
  }
  adamw(_p: DryTensor, _g: DryTensor, _m: DryTensor, _v: DryTensor, _n: number, _a: AdamWParams): void {}
  sgd(): void {}
  zero(): void {}
  scaleRows(): void {}
}

/** A Backend that computes nothing and counts bytes like the GPU layer (Gpu + GpuBackend). */
export class DryRunBackend implements Backend<DryTensor, DryWeight, DryIndices> {
  readonly name = 'dry-run';
  readonly books: Books;
  constructor(
    readonly weightType: 'f16' | 'f32',
    maxBindingBytes = 2 ** 31,
  ) {
    this.books = new Books(maxBindingBytes);
    this.books.storage(16); // GpuBackend's dummy bias
  }
  /** A weight of `rows` x `cols` in `format`, sharded by rows below the binding limit like the GPU. */
  sizedWeight(rows: number, cols: number, format: WeightFormat): DryWeight {
    if (format === 'q8' || format === 'q4') {
      // uploadQuantized: shards of whole rows by the packed values' size; per shard one buffer of
      // packed values and one of scales (f16 pairs in u32 words).
      const groups = Math.ceil(cols / 32);
      const rowWords = groups * (format === 'q8' ? 8 : 4);
      const per = shardRows(rows, Math.floor(this.books.maxBinding / (rowWords * 4)));
      let bytes = 0;
      for (let r = 0; r < rows; r += per) {
        const n = Math.min(per, rows - r);
        bytes += this.books.storage(n * rowWords * 4) + this.books.storage(Math.ceil((n * groups) / 2) * 4);
      }
      return { rows, cols, bytes };
    }
    const el = format === 'f16' ? 2 : 4;
    const per = shardRows(rows, Math.floor(this.books.maxBinding / (cols * el)));
    let bytes = 0;
    for (let r = 0; r < rows; r += per) bytes += this.books.storage(Math.min(per, rows - r) * cols * el);
    return { rows, cols, bytes };
  }
  weight(_label: string, data: Float32Array | Uint16Array, rows: number, cols: number): DryWeight {
    return this.sizedWeight(rows, cols, data instanceof Uint16Array ? 'f16' : 'f32');
  }
  quantizedWeight(_label: string, q: QuantizedMatrix): DryWeight {
    return this.sizedWeight(q.rows, q.cols, q.format);
  }
  vector(_label: string, data: Float32Array): DryWeight {
    return { rows: 1, cols: data.length, bytes: this.books.storage(data.byteLength) };
  }
  sizedVector(n: number): DryWeight {
    return { rows: 1, cols: n, bytes: this.books.storage(n * 4) };
  }
  indices(data: Uint32Array): DryIndices {
    return { bytes: this.books.acquire(Math.max(16, data.byteLength)), length: data.length };
  }
  tensor(n: number): DryTensor {
    return { bytes: this.books.acquire(Math.max(16, n * 4)), length: n };
  }
  fromHost(data: Float32Array): DryTensor {
    return this.tensor(data.length);
  }
  async toHost(_t: DryTensor, n: number): Promise<Float32Array> {
    // Ones, not zeros: values read back must give finite losses (a log-sum-exp's sum is ≥ 1).
    return new Float32Array(n).fill(1);
  }
  upload(): void {}
  free(t: DryTensor): void {
    if (t.bytes > 0) this.books.release(t.bytes);
  }
  freeIndices(i: DryIndices): void {
    this.books.release(i.bytes);
  }
  freeWeight(w: DryWeight): void {
    this.books.destroy(w.bytes);
  }
  weightRows(w: DryWeight, _r0: number, n: number): DryWeight {
    return { rows: n, cols: w.cols, bytes: 0 };
  }
  weightAsTensor(w: DryWeight): DryTensor {
    return { bytes: 0, length: w.rows * w.cols };
  }
  embedding(): void {}
  rmsnorm(): void {}
  matmul(): void {}
  rope(): void {}
  kvWrite(
    _k: DryTensor,
    _v: DryTensor,
    _ck: DryTensor,
    _cv: DryTensor,
    _s: DryIndices,
    _p: DryIndices,
    _t: number,
    _c: KvCacheShape,
  ): void {}
  attention(): void {}
  swiglu(): void {}
  argmaxRows(): void {}
  async indicesToHost(_i: DryIndices, n: number): Promise<Uint32Array> {
    return new Uint32Array(n);
  }
  add(): void {}
  /** The planner books the separate ops (their buffers are what a step allocates either way). */
  canFuse(): boolean {
    return false;
  }
  normMatmul(): void {}
  normSwiglu(): void {}
  matmulAdd(): void {}
  mlpDecode(_att: DryTensor, x: DryTensor): DryTensor {
    return x;
  }
  ropeKvWrite(): void {}
  /** Books what the separate path allocates: the result goes to `out`. */
  ropeKvAttention(
    _q: DryTensor,
    _k: DryTensor,
    _v: DryTensor,
    _cacheK: DryTensor,
    _cacheV: DryTensor,
    _slots: DryIndices,
    _positions: DryIndices,
    _cosSin: DryWeight,
    _tokens: number,
    _heads: number,
    _kvHeads: number,
    _headDim: number,
    _maxPos: number,
    _cache: KvCacheShape,
    out: DryTensor,
  ): DryTensor {
    return out;
  }
  gatherRows(): void {}
  copy(): void {}
  flush(): void {}
  createTrainOps(): TrainOps<DryTensor, DryWeight, DryIndices> {
    return new DryTrainOps(this.books);
  }
}

/** A model with `config`'s shapes on the dry-run backend (no host tensors are made). */
function dryModel(
  be: DryRunBackend,
  config: ModelConfig,
  format: WeightFormat,
  maxPositions: number,
): LlamaModel<DryTensor, DryWeight, DryIndices> {
  const c = config;
  const H = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const I = c.intermediateSize;
  const lin = (rows: number, cols: number) => be.sizedWeight(rows, cols, format);
  const vec = (n: number) => be.sizedVector(n);
  const opt = (n: number, present: boolean) => (present ? vec(n) : null);
  const layers: LayerWeights<DryWeight>[] = [];
  for (let i = 0; i < c.numLayers; i++) {
    layers.push({
      inputNorm: vec(H),
      q: lin(qDim, H),
      k: lin(kvDim, H),
      v: lin(kvDim, H),
      o: lin(H, qDim),
      qBias: opt(qDim, c.attentionBias),
      kBias: opt(kvDim, c.attentionBias),
      vBias: opt(kvDim, c.attentionBias),
      oBias: opt(H, c.outputBias),
      qNorm: opt(c.headDim, c.qkNorm),
      kNorm: opt(c.headDim, c.qkNorm),
      postNorm: vec(H),
      gate: lin(I, H),
      up: lin(I, H),
      down: lin(H, I),
    });
  }
  const embed = lin(c.vocabSize, H);
  const lmHead = c.tieWordEmbeddings ? embed : lin(c.vocabSize, H);
  const norm = vec(H);
  const half = (maxPositions * c.headDim) / 2;
  return new LlamaModel(be, c, embed, layers, norm, lmHead, maxPositions, vec(half), vec(half));
}

/** Peak GPU bytes of the plan (see the file comment). */
export async function estimatePeakBytes(config: ModelConfig, opts: MemoryPlanOptions): Promise<MemoryEstimate> {
  const floatType = opts.weights === 'f16' ? 'f16' : 'f32';
  const be = new DryRunBackend(floatType, opts.maxBindingBytes);
  const t = opts.train;
  const contextLength = opts.contextLength ?? (t ? t.seqLen : Math.min(2048, config.maxPositionEmbeddings));
  const model = dryModel(be, config, opts.weights, contextLength);
  const weightBytes = be.books.allocated;
  let describe: string;
  if (t) {
    const mode = t.mode ?? 'lora';
    const examples = [{ inputIds: new Array<number>(t.seqLen).fill(0), labels: new Array<number>(t.seqLen).fill(0) }];
    const trainer = new Trainer(model, examples, {
      ...DEFAULT_TRAIN_OPTIONS,
      mode,
      rank: t.rank ?? DEFAULT_TRAIN_OPTIONS.rank,
      targets: t.targets ?? DEFAULT_TRAIN_OPTIONS.targets,
      optimizer: t.optimizer ?? 'adamw',
      dropout: t.dropout ?? 0,
      recompute: t.recompute ?? false,
      batchSize: t.batch,
      steps: 1,
    });
    const micro = {
      inputIds: new Uint32Array(t.batch * t.seqLen),
      labels: new Int32Array(t.batch * t.seqLen),
      batch: t.batch,
      seqLen: t.seqLen,
    };
    await trainer.stepOn([micro]);
    describe =
      `${opts.weights} weights, ` +
      `${mode === 'lora' ? `LoRA rank ${trainer.opts.rank} on ${trainer.opts.targets.join(',')}` : 'full fine-tuning'}` +
      `, batch ${t.batch} x ${t.seqLen} tokens${t.recompute ? ', --recompute' : ''}`;
  } else {
    const slots = opts.maxBatch ?? 1;
    const cache = model.createCache(slots, contextLength);
    const n = Math.min(opts.prefillTokens ?? contextLength, contextLength);
    await model.forward(
      {
        ids: new Uint32Array(n),
        positions: Uint32Array.from({ length: n }, (_, i) => i),
        slots: new Uint32Array(n),
        logitRows: [n - 1],
      },
      cache,
    );
    describe = `${opts.weights} weights, KV cache ${slots} x ${contextLength} positions, prefill ${n} tokens`;
  }
  return { peakBytes: be.books.peak, weightBytes, largestBufferBytes: be.books.largest, describe };
}

export class MemoryPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MemoryPlanError';
  }
}

export interface MemoryLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  /** Bytes the user allows this run (e.g. --memory-budget); none when undefined. */
  budgetBytes?: number;
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 10 * 2 ** 20 ? 2 : 0)} MiB`;

/** Throw a MemoryPlanError naming what to change when the estimate does not fit the limits. */
export function checkMemoryPlan(estimate: MemoryEstimate, limits: MemoryLimits, opts: MemoryPlanOptions): void {
  const advice: string[] = [];
  const t = opts.train;
  if (t && t.batch > 1) advice.push(`a smaller --batch (now ${t.batch})`);
  if (t && !t.recompute) advice.push('--recompute (keeps one block of activations instead of all)');
  if (opts.weights !== 'q4') advice.push(`--quantize q4 (weights are ${opts.weights})`);
  if (!t && (opts.maxBatch ?? 1) > 1) advice.push(`fewer sequences at once (--max-batch, now ${opts.maxBatch})`);
  if (t) advice.push(`shorter rows (--context-length, now ${t.seqLen})`);
  else advice.push(`a shorter context (--context-length, now ${opts.contextLength ?? 'default'})`);
  const binding = Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize);
  if (estimate.largestBufferBytes > binding) {
    throw new MemoryPlanError(
      `${estimate.describe}: one activation buffer needs ${mib(estimate.largestBufferBytes)}, ` +
        `above this adapter's largest buffer (${mib(binding)}). Try ${advice.filter((a) => !a.startsWith('--quantize')).join(', or ')}.`,
    );
  }
  if (limits.budgetBytes !== undefined && estimate.peakBytes > limits.budgetBytes) {
    throw new MemoryPlanError(
      `${estimate.describe}: needs about ${mib(estimate.peakBytes)} of GPU memory (weights ${mib(estimate.weightBytes)}), ` +
        `above the budget of ${mib(limits.budgetBytes)}. Try ${advice.join(', or ')}.`,
    );
  }
}

/** The projections LoRA targets when "all linear layers" are asked for. */
export const ALL_LINEAR: Projection[] = [...PROJECTIONS];
