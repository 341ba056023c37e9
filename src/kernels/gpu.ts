/**
 * Typed wrappers around the WGSL kernels in shaders/: each method binds buffers, fills a cached
 * uniform with the shape and records one dispatch into the current compute pass. Work is submitted
 * on flush() or when results are read back.
 */
import type { Gpu } from '../gpu/device';
import { GpuError } from '../gpu/device';
import { shardRows, WEIGHT_VIEW_ROW_ALIGN, type Backend, type KvCacheShape, type WeightShape } from './backend';
import type { TrainOps } from './train-backend';
import { GpuTrainOps } from './train-gpu';
import {
  checkAgainstWgsl,
  declareKernel,
  groups1d,
  invocations,
  size2d,
  KernelError,
  packUniform,
  uniformKey,
  rowBlockGrid,
  type Kernel,
  type ParamTypes,
  type ParamValues,
} from './kernel';
import {
  candidatesOn,
  requireFeatureOf,
  gemmShapeKey,
  gemvShapeKey,
  KERNEL_FAMILIES,
  tuneSlice,
  forcedFromEnv,
  attentionShapeKey,
  type AttentionPrefillVariant,
  type AttentionDecodeVariant,
  attentionDecodeShapeKey,
  decodeContextBucket,
  mlpDecodeShapeKey,
  type MlpDecodeVariant,
  type GemmBackwardVariant,
  type GemmVariant,
  type GemvVariant,
  type KernelFamily,
  type KernelTuner,
} from './autotune';
import { attentionChunkRows, loadShaders, shaderSource, splitdChunkRows, type ShaderDefines } from './shaders';

export { attentionChunkRows };
import { groupsPerRow, wordsPerGroup, type QuantizedMatrix } from '../quant/quantize';
import { isQuantized, quantEmbedding, quantMatmul, uploadQuantized } from './quant-gpu';
import {
  gpuCanFuse,
  gpuMatmulAdd,
  gpuNormMatmul,
  gpuNormSwiglu,
  gpuRopeKvAttention,
  gpuRopeKvWrite,
  gpuMlpDecode,
  mlpDecodeVariantsFor,
  type MlpWeights,
} from './fused-gpu';

export interface GpuTensor {
  buffer: GPUBuffer;
  /** Elements (f32) the tensor was allocated for. */
  length: number;
}

export interface GpuWeightShard {
  buffer: GPUBuffer;
  /** f16 scales of a q8/q4 shard (src/quant/quantize.ts). */
  scales?: GPUBuffer;
  rowStart: number;
  rows: number;
  /** A view (GpuBackend.weightRows): rows of `buffer` (and `scales`) before this shard's first row. */
  rowOffset?: number;
}

export interface GpuWeight extends WeightShape {
  shards: GpuWeightShard[];
  dtype: 'f16' | 'f32';
  /** Set for a frozen q8/q4 weight: the shards then hold packed values and scales, not dtype. */
  quant?: 'q8' | 'q4';
}

export interface GpuIndices {
  buffer: GPUBuffer;
  length: number;
}

/** Bytes [offset, offset + size) of a buffer (offset a multiple of 256), e.g. the rows of a weight view. */
export interface GpuBufferSlice {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/** A storage binding: a tensor or index list (its `length` 4-byte elements), a slice, or a whole buffer. */
export type Bindable = GpuTensor | GpuIndices | GpuBufferSlice | GPUBuffer;

/** One compiled variant of a kernel: its pipeline key, pipeline, layout and binding element sizes. */
interface Variant {
  key: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  scalarBytes: number[];
}

/** Bytes of one row of a weight's shard buffer: f32/f16 values, or packed q8/q4 groups. */
export function weightRowBytes(w: GpuWeight): number {
  if (w.quant) return groupsPerRow(w.cols) * wordsPerGroup(w.quant) * 4;
  return w.cols * (w.dtype === 'f16' ? 2 : 4);
}

/** The binding of `rows` rows of `rowBytes` from row `rowOffset` of `buffer` (the whole buffer when 0). */
export function rowsBinding(
  buffer: GPUBuffer,
  rowOffset: number | undefined,
  rows: number,
  rowBytes: number,
): Bindable {
  if (!rowOffset) return buffer;
  const offset = rowOffset * rowBytes;
  return { buffer, offset, size: Math.min(buffer.size - offset, Math.ceil((rows * rowBytes) / 4) * 4) };
}

export interface RunOptions {
  /** Defines of this dispatch (VEC4, compiled-in head dims...), on top of the kernel's own. */
  defines?: ShaderDefines;
  /** The WT of the shader (a weight binding's element type); 'f32' when absent. */
  weightType?: 'f16' | 'f32';
}

// ---- kernel declarations (see kernel.ts) ------------------------------------------------------

export const EMBEDDING = declareKernel({
  name: 'embedding',
  shader: 'embedding',
  workgroupSize: 64,
  params: { tokens: 'u32', dim: 'u32', rowStart: 'u32', rows: 'u32' },
  bindings: { ids: (p) => p.tokens, table: (p) => p.rows * p.dim, out: (p) => p.tokens * p.dim },
});

/** One workgroup a row; WG a power of two (the reduction tree). */
export const ARGMAX = declareKernel({
  name: 'argmax',
  shader: 'argmax',
  workgroupSize: 128,
  params: { rows: 'u32', vocab: 'u32', outOffset: 'u32' },
  bindings: { logits: (p) => p.rows * p.vocab, next: (p) => p.rows, tokens: (p) => p.outOffset + p.rows },
});

/** ARGMAX, then the winner's embedding row copied out (a greedy burst's next input). */
export const ARGMAX_EMBED = declareKernel({
  name: 'argmax(embed)',
  shader: 'argmax',
  defines: { EMBED: true },
  workgroupSize: 128,
  params: { rows: 'u32', vocab: 'u32', outOffset: 'u32', dim: 'u32' },
  bindings: {
    logits: (p) => p.rows * p.vocab,
    next: (p) => p.rows,
    tokens: (p) => p.outOffset + p.rows,
    table: (p) => p.vocab * p.dim,
    embedded: (p) => p.rows * p.dim,
  },
});

export const RMSNORM = declareKernel({
  name: 'rmsnorm',
  shader: 'rmsnorm',
  workgroupSize: 64,
  params: { rows: 'u32', dim: 'u32', eps: 'f32' },
  bindings: { x: (p) => p.rows * p.dim, weight: (p) => p.dim, out: (p) => p.rows * p.dim },
});

const matmulParams = { M: 'u32', N: 'u32', K: 'u32', nOffset: 'u32', ldy: 'u32', hasBias: 'u32' } as const;
const matmulBindings = {
  x: (p: ParamValues<typeof matmulParams>) => p.M * p.K,
  w: (p: ParamValues<typeof matmulParams>) => p.N * p.K,
  bias: (p: ParamValues<typeof matmulParams>) => (p.hasBias ? p.N : 0),
  y: (p: ParamValues<typeof matmulParams>) => (p.M === 0 ? 0 : (p.M - 1) * p.ldy + p.nOffset + p.N),
};
/** Y[M, nOffset..nOffset+N] = X·Wᵀ (+ bias): register-tiled, each invocation a 4x4 output tile. */
export const MATMUL = declareKernel({
  name: 'matmul',
  shader: 'matmul',
  workgroupSize: [8, 8],
  params: matmulParams,
  bindings: matmulBindings,
});
/** The same product for few rows, GPU-class: one workgroup per column splits K and reduces in workgroup memory. */
export const MATMUL_SPLITK = declareKernel({
  name: 'matmul(gemv-splitk)',
  shader: 'matmul_splitk',
  workgroupSize: 64,
  params: matmulParams,
  bindings: matmulBindings,
});
/** MATMUL_SPLITK's split of K reduced by subgroupAdd (adapters with the `subgroups` feature). */
export const MATMUL_SUBGROUP = declareKernel({
  name: 'matmul(gemv-subgroup)',
  shader: 'matmul_subgroup',
  workgroupSize: 64,
  params: matmulParams,
  bindings: matmulBindings,
});
/**
 * The same product for many rows, GPU-class: 32x32 output tiles staged through workgroup memory
 * (K-steps of TK), a 4x4 register micro-tile per invocation.
 */
export const MATMUL_TILED = declareKernel({
  name: 'matmul(tiled)',
  shader: 'matmul_tiled',
  defines: { TK: 32 },
  workgroupSize: [8, 8],
  params: matmulParams,
  bindings: matmulBindings,
});
/** MATMUL_TILED with 64x64 output tiles (16x16 invocations, K-steps of 16): for large GPUs and products. */
export const MATMUL_TILED64 = declareKernel({
  ...MATMUL_TILED,
  name: 'matmul(tiled64)',
  defines: { TK: 16 },
  workgroupSize: [16, 16],
});
/**
 * The same product for many rows on adapters with subgroups: TM rows x 256 columns a workgroup,
 * 4 columns of every row an invocation, each X value read once per subgroup and broadcast.
 */
export const MATMUL_BROADCAST16 = declareKernel({
  name: 'matmul(broadcast16)',
  shader: 'matmul_broadcast',
  defines: { TM: 16 },
  workgroupSize: 64,
  params: matmulParams,
  bindings: matmulBindings,
});
/** MATMUL_BROADCAST16 with 8 rows a workgroup (fewer registers, twice the workgroups). */
export const MATMUL_BROADCAST8 = declareKernel({
  ...MATMUL_BROADCAST16,
  name: 'matmul(broadcast8)',
  defines: { TM: 8 },
});
/** The same product for few rows (decode): a 1-D grid over column quads. */
export const MATMUL_GEMV = declareKernel({
  name: 'matmul(gemv)',
  shader: 'matmul',
  defines: { GEMV: true },
  workgroupSize: 64,
  params: matmulParams,
  bindings: matmulBindings,
});

export const ROPE = declareKernel({
  name: 'rope',
  shader: 'rope',
  workgroupSize: 64,
  params: { tokens: 'u32', heads: 'u32', headDim: 'u32', maxPos: 'u32' },
  bindings: {
    x: (p) => p.tokens * p.heads * p.headDim,
    positions: (p) => p.tokens,
    cosTable: (p) => (p.maxPos * p.headDim) / 2,
    sinTable: (p) => (p.maxPos * p.headDim) / 2,
  },
});

export const KV_WRITE = declareKernel({
  name: 'kv_write',
  shader: 'kv_write',
  workgroupSize: 64,
  params: { tokens: 'u32', kvDim: 'u32', maxSeq: 'u32' },
  bindings: {
    k: (p) => p.tokens * p.kvDim,
    v: (p) => p.tokens * p.kvDim,
    slots: (p) => p.tokens,
    positions: (p) => p.tokens,
    // At least one slot (the slot count is not a parameter of the kernel).
    cacheK: (p) => p.maxSeq * p.kvDim,
    cacheV: (p) => p.maxSeq * p.kvDim,
  },
});

const attentionParams = {
  tokens: 'u32',
  heads: 'u32',
  kvHeads: 'u32',
  headDim: 'u32',
  maxSeq: 'u32',
  scale: 'f32',
} as const;
const attentionBindings = {
  q: (p: ParamValues<typeof attentionParams>) => p.tokens * p.heads * p.headDim,
  cacheK: (p: ParamValues<typeof attentionParams>) => p.maxSeq * p.kvHeads * p.headDim,
  cacheV: (p: ParamValues<typeof attentionParams>) => p.maxSeq * p.kvHeads * p.headDim,
  slots: (p: ParamValues<typeof attentionParams>) => p.tokens,
  positions: (p: ParamValues<typeof attentionParams>) => p.tokens,
  out: (p: ParamValues<typeof attentionParams>) => p.tokens * p.heads * p.headDim,
};
/** One workgroup per (token, query head); head_dim up to 4 · workgroup size (and 256). */
export const ATTENTION = declareKernel({
  name: 'attention',
  shader: 'attention',
  workgroupSize: 64,
  params: attentionParams,
  bindings: attentionBindings,
});
/** One invocation per (token, head) walking its keys, no workgroup memory (define HD: head dim). */
export const ATTENTION_DECODE = declareKernel({
  name: 'attention_decode',
  shader: 'attention_decode',
  workgroupSize: 32,
  params: attentionParams,
  bindings: attentionBindings,
});
/** One invocation per (token, head), a workgroup per WG consecutive tokens of one head. */
export const ATTENTION_PREFILL = declareKernel({
  name: 'attention_prefill',
  shader: 'attention_prefill',
  workgroupSize: 64,
  params: attentionParams,
  bindings: attentionBindings,
});

/**
 * The same on adapters with subgroups: key and value rows read a quarter each by lanes 0-3 of a
 * subgroup and broadcast, no workgroup memory (head dims that are multiples of 4).
 */
export const ATTENTION_PREFILL_BROADCAST = declareKernel({
  name: 'attention_prefill(broadcast)',
  shader: 'attention_prefill_broadcast',
  workgroupSize: 64,
  params: attentionParams,
  bindings: attentionBindings,
});

/** The same, each query served by LANES invocations that split the head dimension. */
export const ATTENTION_PREFILL_SPLITD = declareKernel({
  name: 'attention_prefill(split-d)',
  shader: 'attention_prefill_splitd',
  defines: { LANES: 4 },
  workgroupSize: 64,
  params: attentionParams,
  bindings: attentionBindings,
});

export const SWIGLU = declareKernel({
  name: 'swiglu',
  shader: 'swiglu',
  workgroupSize: 64,
  params: { n: 'u32' },
  bindings: { gate: (p) => p.n, up: (p) => p.n, out: (p) => p.n },
});

export const RESIDUAL_ADD = declareKernel({
  name: 'residual_add',
  shader: 'residual_add',
  workgroupSize: 64,
  params: { n: 'u32', scale: 'f32' },
  bindings: { x: (p) => p.n, y: (p) => p.n },
});

/**
 * From this many query tokens on, attention runs the prefill family (attention_prefill.wgsl and
 * its variants); below it (decode steps, whose tokens are in different slots) the decode family.
 */
export const PREFILL_ATTENTION_MIN_TOKENS = 16;

/** Largest head dim the attention kernels take (attention.wgsl: 4 dims a lane, 256 at most). */
const ATTENTION_MAX_HEAD_DIM = Math.min(256, 4 * invocations(ATTENTION.workgroupSize));

/** Bind groups kept for reuse (a decode step of a 24-layer model records a few hundred). */
const BIND_GROUP_CACHE = 4096;

/** canFuse keeps the fused kernels unless another GEMV variant timed this much faster than theirs. */
const FUSE_UNLESS_GEMV_FASTER = 2;

export class GpuBackend implements Backend<GpuTensor, GpuWeight, GpuIndices> {
  readonly name = 'webgpu';
  readonly weightType: 'f16' | 'f32';
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly dummy: GPUBuffer;
  /** Picks GEMV/GEMM variants per shape class (null: the register-tiled kernels, untuned). */
  tuner: KernelTuner | null = null;
  /** Force one GEMV variant regardless of the tuner (tests; AGENTARK_KERNELS=gemv=... in Node). */
  gemvKernel: 'auto' | GemvVariant = forcedFromEnv<GemvVariant>('gemv');
  /** Force one GEMM variant regardless of the tuner (tests; AGENTARK_KERNELS=gemm=... in Node). */
  gemmKernel: 'auto' | GemmVariant = forcedFromEnv<GemmVariant>('gemm');
  /** Force the training GEMMs' variant (dX and dW) regardless of the tuner (tests; AGENTARK_KERNELS=gemm_dx=...). */
  gemmDxKernel: 'auto' | GemmBackwardVariant = forcedFromEnv<GemmBackwardVariant>('gemm_dx');
  gemmDwKernel: 'auto' | GemmBackwardVariant = forcedFromEnv<GemmBackwardVariant>('gemm_dw');
  /** Force the prefill attention variant regardless of the tuner (tests; AGENTARK_KERNELS=attention_prefill=...). */
  attentionPrefillKernel: 'auto' | AttentionPrefillVariant =
    forcedFromEnv<AttentionPrefillVariant>('attention_prefill');
  /** Force the decode attention variant regardless of the tuner (tests; AGENTARK_KERNELS=attention_decode=...). */
  attentionDecodeKernel: 'auto' | AttentionDecodeVariant = forcedFromEnv<AttentionDecodeVariant>('attention_decode');
  /** Force the decode MLP half-layer's variant regardless of the tuner (tests; AGENTARK_KERNELS=mlp_decode=...). */
  mlpDecodeKernel: 'auto' | MlpDecodeVariant = forcedFromEnv<MlpDecodeVariant>('mlp_decode');
  /** Shape classes first dispatched untuned, timed at the next readback (see autotune.ts). */
  private readonly pendingTunes = new Map<string, TuneJob & { family: KernelFamily }>();
  /**
   * Which attention family runs: by token count ('auto'), or one forced (benchmarks, tests):
   * 'tiled' the prefill family, 'decode' the decode family, whatever the token count.
   */
  attentionKernel: 'auto' | 'tiled' | 'decode' = 'auto';

  private constructor(
    readonly gpu: Gpu,
    weightType: 'f16' | 'f32',
  ) {
    this.weightType = weightType;
    this.dummy = gpu.createStorage(new Float32Array(4), 'dummy-bias');
    gpu.addRecorder(() => this.flush());
  }

  /** `weightType` 'f16' needs the adapter's shader-f16 feature. */
  static async create(gpu: Gpu, weightType: 'f16' | 'f32' = 'f32'): Promise<GpuBackend> {
    if (weightType === 'f16' && !gpu.features.f16)
      throw new GpuError('f16 weights need the shader-f16 feature, which this adapter lacks');
    await loadShaders();
    return new GpuBackend(gpu, weightType);
  }

  // ---- memory -------------------------------------------------------------------------------

  weight(label: string, data: Float32Array | Uint16Array, rows: number, cols: number): GpuWeight {
    // The element type follows the data: frozen base weights use the backend's weightType, while
    // trainable weights (LoRA, full fine-tuning) are always f32.
    const dtype: 'f16' | 'f32' = data instanceof Uint16Array ? 'f16' : 'f32';
    if (dtype === 'f16' && !this.gpu.features.f16)
      throw new GpuError(`weight ${label}: f16 data needs the shader-f16 feature`);
    if (data.length !== rows * cols)
      throw new Error(`weight ${label}: ${data.length} values for shape [${rows}, ${cols}]`);
    const rowBytes = cols * data.BYTES_PER_ELEMENT;
    // Shard by rows so no binding exceeds maxStorageBufferBindingSize (e.g. a large vocabulary).
    const rowsPerShard = shardRows(rows, Math.floor(this.gpu.weightShardBytes / rowBytes));
    const shards: GpuWeightShard[] = [];
    for (let r = 0; r < rows; r += rowsPerShard) {
      const n = Math.min(rowsPerShard, rows - r);
      const part = data.subarray(r * cols, (r + n) * cols);
      shards.push({ buffer: this.gpu.createStorage(part, `${label}[${r}:${r + n}]`), rowStart: r, rows: n });
    }
    return { shards, rows, cols, dtype };
  }

  weightRows(w: GpuWeight, r0: number, n: number): GpuWeight {
    if (!Number.isInteger(r0) || !Number.isInteger(n) || r0 < 0 || n < 1 || r0 + n > w.rows)
      throw new GpuError(`weightRows: rows [${r0}, ${r0 + n}) are not inside a weight of ${w.rows} rows`);
    if (r0 === 0 && n === w.rows) return w;
    const align = this.gpu.device.limits.minStorageBufferOffsetAlignment;
    const rowBytes = weightRowBytes(w);
    const shards: GpuWeightShard[] = [];
    for (const s of w.shards) {
      const a = Math.max(r0, s.rowStart);
      const b = Math.min(r0 + n, s.rowStart + s.rows);
      if (a >= b) continue;
      const rowOffset = (s.rowOffset ?? 0) + a - s.rowStart;
      // Scales of q8/q4 rows are f16, two bytes per group.
      const misaligned = (rowOffset * rowBytes) % align || (w.quant && (rowOffset * groupsPerRow(w.cols) * 2) % align);
      if (misaligned)
        throw new GpuError(
          `weightRows: rows from ${r0} start ${rowOffset} rows into a shard, not a multiple of ${WEIGHT_VIEW_ROW_ALIGN} rows`,
        );
      shards.push({ buffer: s.buffer, scales: s.scales, rowStart: a - r0, rows: b - a, rowOffset });
    }
    return { ...w, shards, rows: n };
  }

  quantizedWeight(label: string, q: QuantizedMatrix): GpuWeight {
    return uploadQuantized(this, label, q);
  }

  /** A small placeholder storage buffer for unused bindings (e.g. no bias). */
  get dummyBuffer(): GPUBuffer {
    return this.dummy;
  }

  vector(label: string, data: Float32Array): GpuWeight {
    return {
      shards: [{ buffer: this.gpu.createStorage(data, label), rowStart: 0, rows: 1 }],
      rows: 1,
      cols: data.length,
      dtype: 'f32',
    };
  }

  indices(data: Uint32Array): GpuIndices {
    const buffer = this.gpu.acquire(Math.max(16, data.byteLength), 'indices');
    this.write(buffer, data);
    return { buffer, length: data.length };
  }

  /**
   * Host → GPU copy, ordered after every dispatch recorded so far. queue.writeBuffer runs before
   * command buffers submitted later, so pending work is submitted first: otherwise a pooled buffer
   * still read by a recorded dispatch, or a tensor a recorded dispatch zeroes, would be overwritten
   * out of order.
   */
  write(buffer: GPUBuffer, data: ArrayBufferView): void {
    this.flush();
    this.gpu.write(buffer, data);
  }

  tensor(n: number, label = 'activation'): GpuTensor {
    return { buffer: this.gpu.acquire(Math.max(16, n * 4), label), length: n };
  }

  fromHost(data: Float32Array): GpuTensor {
    const t = this.tensor(data.length);
    this.write(t.buffer, data);
    return t;
  }

  async toHost(t: GpuTensor, n: number, offset = 0): Promise<Float32Array> {
    this.flush();
    const out = await this.gpu.readF32(t.buffer, n, offset);
    // A readback ends a forward step: the moment to time the shape classes it met for the first time.
    if (this.pendingTunes.size) await this.tunePending();
    return out;
  }

  upload(t: GpuTensor, data: Float32Array): void {
    if (data.length > t.length) throw new GpuError(`upload: ${data.length} values into a tensor of ${t.length}`);
    this.write(t.buffer, data);
  }

  createTrainOps(): TrainOps<GpuTensor, GpuWeight, GpuIndices> {
    return new GpuTrainOps(this);
  }

  free(t: GpuTensor): void {
    this.gpu.release(t.buffer);
  }

  freeIndices(i: GpuIndices): void {
    this.gpu.release(i.buffer);
  }

  weightAsTensor(w: GpuWeight): GpuTensor {
    if (w.quant) throw new GpuError('a quantized weight is frozen: it cannot be trained in place (use LoRA)');
    if (w.shards.length !== 1 || w.dtype !== 'f32')
      throw new GpuError(
        `only an unsharded f32 weight can be trained in place (got ${w.shards.length} shards, ${w.dtype})`,
      );
    if (w.shards[0].rowOffset) throw new GpuError('a view of a weight cannot be trained in place');
    return { buffer: w.shards[0].buffer, length: w.rows * w.cols };
  }

  freeWeight(w: GpuWeight): void {
    if (w.shards.some((s) => s.rowOffset)) throw new GpuError('a view of a weight is not freed; free the weight');
    for (const s of w.shards) {
      this.gpu.destroyBuffer(s.buffer);
      if (s.scales) this.gpu.destroyBuffer(s.scales);
    }
  }

  // ---- dispatch -----------------------------------------------------------------------------

  private computePass(): GPUComputePassEncoder {
    if (!this.pass) {
      this.encoder ??= this.gpu.device.createCommandEncoder();
      this.pass = this.encoder.beginComputePass();
    }
    return this.pass;
  }

  flush(): void {
    if (this.pass) this.pass.end();
    if (this.encoder) this.gpu.device.queue.submit([this.encoder.finish()]);
    this.pass = null;
    this.encoder = null;
  }

  /** Dispatches recorded so far (the benchmark reports them per decode step). */
  dispatches = 0;

  /**
   * Bind groups by pipeline and buffer identities: pooled buffers and cached uniforms recur from
   * one decode step to the next, so a step's bind groups are created once and then reused. A
   * destroyed buffer's entries are never hit again (a new buffer gets a new id); the cache is
   * cleared when it grows past BIND_GROUP_CACHE entries.
   */
  private readonly bindGroups = new Map<string, GPUBindGroup>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 1;

  private bufferId(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) this.bufferIds.set(buffer, (id = this.nextBufferId++));
    return id;
  }

  /**
   * Pipelines by kernel, then by weight type and the call's own defines (the kernel's fixed
   * defines are the same for every call), with the element size of each binding read from their
   * WGSL. Two levels keep run()'s lookup to a short key on its hot path.
   */
  private readonly variants = new Map<Kernel<ParamTypes, string>, Map<string, Variant>>();

  private variant(kernel: Kernel<ParamTypes, string>, weightType: 'f16' | 'f32', callDefines?: ShaderDefines): Variant {
    let byKey = this.variants.get(kernel);
    if (!byKey) this.variants.set(kernel, (byKey = new Map()));
    let local: string = weightType;
    if (callDefines) {
      for (const k in callDefines) {
        const v = callDefines[k];
        local += v === true ? `,${k}` : v === false ? `,!${k}` : `,${k}=${v}`;
      }
    }
    let variant = byKey.get(local);
    if (!variant) {
      // The WGSL is preprocessed and checked only when the variant is new (run is a hot path).
      const defines = callDefines ? { ...kernel.fixedDefines, ...callDefines } : kernel.fixedDefines;
      let key = `${kernel.name}:${weightType}`;
      for (const k in defines) {
        const v = defines[k];
        if (v !== false) key += v === true ? `,${k}` : `,${k}=${v}`;
      }
      const code = shaderSource(kernel.shader, defines, weightType);
      const scalarBytes = checkAgainstWgsl(kernel, code);
      const pipeline = this.gpu.pipeline(key, () => code);
      variant = { key, pipeline, layout: pipeline.getBindGroupLayout(0), scalarBytes };
      byKey.set(local, variant);
    }
    return variant;
  }

  /**
   * Record one dispatch of `kernel` with its named `params` and storage `buffers` (by WGSL
   * binding name). The first dispatch of each variant checks the declaration against the WGSL;
   * every dispatch checks the parameters and each buffer's size (see kernel.ts).
   */
  run<P extends ParamTypes, B extends string>(
    kernel: Kernel<P, B>,
    params: ParamValues<P>,
    buffers: Record<B, Bindable>,
    workgroups: number | [number, number],
    opts: RunOptions = {},
  ): void {
    this.gpu.checkAlive();
    const variant = this.variant(kernel as Kernel<ParamTypes, string>, opts.weightType ?? 'f32', opts.defines);
    const uniform = this.gpu.uniform(uniformKey(kernel, params), () => packUniform(kernel, params));
    // The bind group's key is its pipeline and buffer identities; its entries are built only when
    // it is new (decode steps recur with the same pooled buffers and cached uniforms).
    let groupKey = `${variant.key}|${this.bufferId(uniform)}`;
    const names = kernel.bindingNames;
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      const bound: Bindable | undefined = buffers[name];
      if (!bound) throw new KernelError(`kernel ${kernel.name}: no buffer given for binding '${name}'`);
      const buffer = 'buffer' in bound ? bound.buffer : bound;
      const slice = 'offset' in bound ? bound : null;
      const have = slice
        ? slice.size
        : 'length' in bound
          ? Math.min(bound.length * 4, bound.buffer.size)
          : (bound as GPUBuffer).size;
      const need = kernel.bindings[name](params) * variant.scalarBytes[i];
      if (need > have) {
        throw new KernelError(
          `kernel ${kernel.name}: binding '${name}' (${i + 1}) needs ${need} bytes for ${JSON.stringify(params)} but its buffer holds ${have} bytes`,
        );
      }
      // A slice (rows of a weight view) is its own binding: the same buffer at another offset or size.
      groupKey += slice ? `|${this.bufferId(buffer)}@${slice.offset}+${slice.size}` : `|${this.bufferId(buffer)}`;
    }
    let given = 0;
    for (const _ in buffers) given++;
    if (given !== names.length) {
      const extra = Object.keys(buffers).filter((k) => !names.includes(k as B));
      throw new KernelError(
        `kernel ${kernel.name}: unknown binding${extra.length > 1 ? 's' : ''} ${extra.map((e) => `'${e}'`).join(', ')}`,
      );
    }
    let bindGroup = this.bindGroups.get(groupKey);
    if (!bindGroup) {
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: uniform } }];
      names.forEach((name, i) => {
        const bound: Bindable = buffers[name];
        const buffer = 'buffer' in bound ? bound.buffer : bound;
        const resource = 'offset' in bound ? { buffer, offset: bound.offset, size: bound.size } : { buffer };
        entries.push({ binding: i + 1, resource });
      });
      if (this.bindGroups.size >= BIND_GROUP_CACHE) this.bindGroups.clear();
      bindGroup = this.gpu.device.createBindGroup({ layout: variant.layout, entries });
      this.bindGroups.set(groupKey, bindGroup);
    }
    this.dispatches++;
    const pass = this.computePass();
    pass.setPipeline(variant.pipeline);
    pass.setBindGroup(0, bindGroup);
    if (typeof workgroups === 'number') {
      const [x, y] = grid(workgroups);
      pass.dispatchWorkgroups(x, y);
    } else {
      pass.dispatchWorkgroups(workgroups[0], workgroups[1]);
    }
  }

  // ---- ops ----------------------------------------------------------------------------------

  embedding(ids: GpuIndices, table: GpuWeight, tokens: number, out: GpuTensor): void {
    if (isQuantized(table)) return quantEmbedding(this, ids, table, tokens, out);
    if (table.shards.some((s) => s.rowOffset)) throw new GpuError('embedding: a view of a weight is not a table');
    for (const s of table.shards) {
      const params = { tokens, dim: table.cols, rowStart: s.rowStart, rows: s.rows };
      this.run(EMBEDDING, params, { ids, table: s.buffer, out }, groups1d(EMBEDDING, tokens * table.cols), {
        weightType: table.dtype,
      });
    }
  }

  rmsnorm(x: GpuTensor, weight: GpuWeight, rows: number, dim: number, eps: number, out: GpuTensor): void {
    this.run(RMSNORM, { rows, dim, eps }, { x, weight: weight.shards[0].buffer, out }, rows);
  }

  matmul(x: GpuTensor, w: GpuWeight, bias: GpuWeight | null, m: number, out: GpuTensor): void {
    if (isQuantized(w))
      return quantMatmul(this, x, w, bias ? w.shards.map((s) => this.biasShard(bias, s)) : null, m, out);
    const k = w.cols;
    const defines = { VEC4: k % 4 === 0 };
    for (const s of w.shards) {
      const params = { M: m, N: s.rows, K: k, nOffset: s.rowStart, ldy: w.rows, hasBias: bias ? 1 : 0 };
      const wRows = rowsBinding(s.buffer, s.rowOffset, s.rows, weightRowBytes(w));
      const buffers = { x, w: wRows, bias: bias ? this.biasShard(bias, s) : this.dummy, y: out };
      this.matmulRows(params, buffers, defines, w.dtype);
    }
  }

  /**
   * One Y = X·Wᵀ dispatch: few rows (decode, small batches) run a GEMV variant, more rows a GEMM
   * variant (see chooseVariant).
   */
  matmulRows(
    params: ParamValues<typeof MATMUL.params>,
    buffers: Record<'x' | 'w' | 'bias' | 'y', Bindable>,
    defines: ShaderDefines,
    weightType: 'f16' | 'f32',
  ): void {
    const family: KernelFamily = params.M <= 8 ? 'gemv' : 'gemm';
    const { M, N, K } = params;
    const variant = this.chooseVariant(
      family,
      family === 'gemv' ? this.gemvKernel : this.gemmKernel,
      () => (family === 'gemv' ? gemvShapeKey(M, N, K, weightType) : gemmShapeKey(M, N, K, weightType)),
      () => ({
        flops: 2 * M * tuneSlice(N, 2 * M * K) * K,
        prepare: () => {
          // X zeros and a scratch Y; the real weight (read only), its first rows for large products.
          const n = tuneSlice(N, 2 * M * K);
          const x = this.fromHost(new Float32Array(M * K));
          const y = this.tensor(M * n, 'tune.y');
          const p = { ...params, N: n, nOffset: 0, ldy: n, hasBias: 0 };
          const b = { x, w: buffers.w, bias: this.dummy, y };
          return {
            dispatch: (v: string) => this.runMatmulVariant(family, v, p, b, defines, weightType),
            dispose: () => {
              this.free(x);
              this.free(y);
            },
          };
        },
      }),
    );
    this.runMatmulVariant(family, variant, params, buffers, defines, weightType);
  }

  /**
   * The variant of `family` to run: `forced` unless 'auto', else the tuner's choice for the shape
   * class, else the family's first variant (the kernels tuned on CPU adapters, always valid). A
   * class the tuner has not seen is queued with `job` (how to time its candidates) for the next
   * readback.
   */
  chooseVariant(family: KernelFamily, forced: string, key: () => string, job: () => TuneJob): string {
    if (forced !== 'auto') return forced;
    const fallback = KERNEL_FAMILIES[family][0];
    const tuner = this.tuner;
    if (!tuner) return fallback;
    const k = key();
    if (tuner.needsTuning(family, k) && !this.pendingTunes.has(k)) this.pendingTunes.set(k, { family, ...job() });
    return tuner.choice(family, k, fallback);
  }

  private runMatmulVariant(
    family: KernelFamily,
    variant: string,
    params: ParamValues<typeof MATMUL.params>,
    buffers: Record<'x' | 'w' | 'bias' | 'y', Bindable>,
    defines: ShaderDefines,
    weightType: 'f16' | 'f32',
  ): void {
    const opts = { defines, weightType };
    if (family === 'gemv') {
      if (variant === 'splitk') this.run(MATMUL_SPLITK, params, buffers, params.N, opts);
      else if (variant === 'subgroup') {
        requireFeatureOf(this.gpu, variant, 'GEMV');
        this.run(MATMUL_SUBGROUP, params, buffers, params.N, opts);
      } else this.run(MATMUL_GEMV, params, buffers, groups1d(MATMUL_GEMV, Math.ceil(params.N / 4)), opts);
      return;
    }
    if (variant === 'broadcast16' || variant === 'broadcast8') {
      requireFeatureOf(this.gpu, variant, 'GEMM');
      const kernel = variant === 'broadcast16' ? MATMUL_BROADCAST16 : MATMUL_BROADCAST8;
      this.run(kernel, params, buffers, rowBlockGrid(kernel, params.N, params.M), opts);
      return;
    }
    const kernel = variant === 'tiled' ? MATMUL_TILED : variant === 'tiled64' ? MATMUL_TILED64 : MATMUL;
    const [wx, wy] = size2d(kernel.workgroupSize);
    this.run(kernel, params, buffers, [Math.ceil(params.N / (4 * wx)), Math.ceil(params.M / (4 * wy))], opts);
  }

  /**
   * Milliseconds per dispatch of every candidate of `family` this adapter runs: one warm-up
   * dispatch each, then the median of 3 batches (5 for cheap classes), wall clock around submit → onSubmittedWorkDone
   * (timestamp queries are coarse or absent in browsers). A batch is 8 dispatches, 2 over 50 MFLOP
   * and 1 over 200 MFLOP (one dispatch then lasts long enough to time). Candidates take their
   * batches in turn, so a burst of load on a shared machine falls on all alike rather than on the
   * one being timed (which once made a 4x faster kernel lose, and choices are cached).
   */
  private async timeVariants(family: KernelFamily, job: TuneJob): Promise<Record<string, number>> {
    const reps = job.flops > 2e8 ? 1 : job.flops > 5e7 ? 2 : 8;
    const run = job.prepare();
    const candidates = job.candidates ?? candidatesOn(this.gpu, family);
    const batch = async (variant: string, n: number) => {
      const t0 = performance.now();
      for (let i = 0; i < n; i++) run.dispatch(variant);
      this.flush();
      await this.gpu.device.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / n;
    };
    const times: Record<string, number[]> = {};
    try {
      for (const variant of candidates) await batch(variant, 1); // compiles the pipelines, warms caches
      for (const variant of candidates) times[variant] = [await batch(variant, reps)];
      // A candidate over 4x the best first batch cannot win: that batch is its timing, unless its
      // batches are cheap (under 5 ms), where one burst of load on a shared machine can cost 5x
      // (it once dropped a decode MLP variant that was faster).
      const best = Math.min(...candidates.map((v) => times[v][0]));
      const live = candidates.filter((v) => times[v][0] <= 4 * best || times[v][0] * reps < 5);
      // Cheap classes (every batch under 2 ms) take 5 batches: their medians are what noise moves most.
      const rounds = live.every((v) => times[v][0] * reps < 2) ? 4 : 2;
      for (let round = 0; round < rounds; round++)
        for (const variant of live) times[variant].push(await batch(variant, reps));
    } finally {
      run.dispose();
    }
    const ms: Record<string, number> = {};
    for (const variant of candidates) {
      const sorted = times[variant].sort((a, b) => a - b);
      ms[variant] = sorted[sorted.length >> 1];
    }
    return ms;
  }

  /**
   * Time the shape classes queued by chooseVariant (real weights, scratch activations) and record
   * the fastest variant of each. Called by toHost; a class whose timing fails (an error, or a
   * validation error such as a weight freed meanwhile) stays untuned and keeps the fallback.
   */
  async tunePending(): Promise<void> {
    const tuner = this.tuner;
    const pending = [...this.pendingTunes];
    this.pendingTunes.clear();
    if (!tuner) return;
    for (const [key, job] of pending) {
      if (!tuner.needsTuning(job.family, key)) continue;
      const started = performance.now();
      this.gpu.device.pushErrorScope('validation');
      let ms: Record<string, number> | null = null;
      try {
        ms = await this.timeVariants(job.family, job);
      } catch (e) {
        // Tuning must never break the run it rides on: the class keeps the fallback, untimed.
        console.warn(`kernel autotuner: timing ${key} failed (${(e as Error).message}); keeping the fallback`);
      } finally {
        const error = await this.gpu.device.popErrorScope();
        if (error) ms = null;
      }
      if (ms) await tuner.record(key, ms, performance.now() - started);
    }
  }

  /**
   * Time every GEMV candidate on the weight shapes given (each at M = 1 and M = 5, the debate's
   * batch) unless the tuner already has a choice for that shape class, and record the fastest.
   * Other classes are tuned lazily, at first use (tunePending).
   */
  async autotune(shapes: { n: number; k: number; dtype: 'f16' | 'f32' }[]): Promise<void> {
    const tuner = this.tuner;
    if (!tuner) return;
    const seen = new Set<string>();
    for (const { n, k, dtype } of shapes) {
      for (const m of [1, 5]) {
        const key = gemvShapeKey(m, n, k, dtype);
        if (seen.has(key) || !tuner.needsTuning('gemv', key)) continue;
        seen.add(key);
        const started = performance.now();
        const bytes = dtype === 'f16' ? 2 : 4;
        const ms = await this.timeVariants('gemv', {
          flops: 2 * m * n * k,
          prepare: () => {
            const x = this.fromHost(new Float32Array(m * k));
            const y = this.tensor(m * n, 'tune.y');
            const w = this.gpu.createBuffer(
              Math.max(16, Math.ceil((n * k * bytes) / 4) * 4),
              GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
              'tune.w',
            );
            const params = { M: m, N: n, K: k, nOffset: 0, ldy: n, hasBias: 0 };
            const buffers = { x, w, bias: this.dummy, y };
            return {
              dispatch: (v: string) => this.runMatmulVariant('gemv', v, params, buffers, { VEC4: k % 4 === 0 }, dtype),
              dispose: () => {
                this.free(x);
                this.free(y);
                this.gpu.destroyBuffer(w);
              },
            };
          },
        });
        await tuner.record(key, ms, performance.now() - started);
      }
    }
  }

  /** Biases are tiny; for a sharded weight, upload the matching slice once and keep it. */
  private readonly biasSlices = new WeakMap<GpuWeight, Map<number, GPUBuffer>>();
  private biasShard(bias: GpuWeight, s: GpuWeightShard): GPUBuffer {
    if (s.rowStart === 0) return bias.shards[0].buffer;
    let m = this.biasSlices.get(bias);
    if (!m) this.biasSlices.set(bias, (m = new Map()));
    let buf = m.get(s.rowStart);
    if (!buf) {
      // Offset bindings must be 256-byte aligned; a separate small buffer avoids that constraint.
      const enc = this.gpu.device.createCommandEncoder();
      buf = this.gpu.createBuffer(
        Math.max(16, s.rows * 4),
        GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
        'bias-shard',
      );
      enc.copyBufferToBuffer(bias.shards[0].buffer, s.rowStart * 4, buf, 0, s.rows * 4);
      this.gpu.device.queue.submit([enc.finish()]);
      m.set(s.rowStart, buf);
    }
    return buf;
  }

  rope(
    x: GpuTensor,
    positions: GpuIndices,
    cos: GpuWeight,
    sin: GpuWeight,
    tokens: number,
    heads: number,
    headDim: number,
    maxPos: number,
  ): void {
    const buffers = { x, positions, cosTable: cos.shards[0].buffer, sinTable: sin.shards[0].buffer };
    this.run(ROPE, { tokens, heads, headDim, maxPos }, buffers, groups1d(ROPE, (tokens * heads * headDim) / 2));
  }

  kvWrite(
    k: GpuTensor,
    v: GpuTensor,
    cacheK: GpuTensor,
    cacheV: GpuTensor,
    slots: GpuIndices,
    positions: GpuIndices,
    tokens: number,
    cache: KvCacheShape,
  ): void {
    const params = { tokens, kvDim: cache.kvDim, maxSeq: cache.maxSeq };
    this.run(KV_WRITE, params, { k, v, slots, positions, cacheK, cacheV }, groups1d(KV_WRITE, tokens * cache.kvDim));
  }

  attention(
    q: GpuTensor,
    cacheK: GpuTensor,
    cacheV: GpuTensor,
    slots: GpuIndices,
    positions: GpuIndices,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxSeq: number,
    out: GpuTensor,
  ): void {
    if (headDim > ATTENTION_MAX_HEAD_DIM)
      throw new GpuError(`attention kernel supports head_dim up to ${ATTENTION_MAX_HEAD_DIM}, got ${headDim}`);
    const params = { tokens, heads, kvHeads, headDim, maxSeq, scale: 1 / Math.sqrt(headDim) };
    const buffers = { q, cacheK, cacheV, slots, positions, out };
    if (!this.decodeFamily(tokens)) {
      // Prefill/training: a workgroup of queries shares every key row read (see the shaders).
      const variant = this.chooseVariant(
        'attention_prefill',
        this.attentionPrefillKernel,
        () => attentionShapeKey(tokens, heads, kvHeads, headDim),
        () => ({
          flops: (2 * heads * tokens * tokens * headDim) / kvHeads,
          prepare: () => {
            // One sequence of `tokens` positions in one slot, the query heads of one KV head: the
            // causal work of a prefill, per KV head (every KV head's workgroups do the same work).
            const kvDim = headDim;
            const params1 = { ...params, heads: heads / kvHeads, kvHeads: 1 };
            const qT = this.fromHost(new Float32Array(tokens * params1.heads * headDim));
            const kT = this.fromHost(new Float32Array(tokens * kvDim));
            const vT = this.fromHost(new Float32Array(tokens * kvDim));
            const slotsT = this.indices(new Uint32Array(tokens));
            const positionsT = this.indices(Uint32Array.from({ length: tokens }, (_, i) => i));
            const outT = this.tensor(tokens * params1.heads * headDim, 'tune.attention');
            const p = { ...params1, maxSeq: tokens };
            const b = { q: qT, cacheK: kT, cacheV: vT, slots: slotsT, positions: positionsT, out: outT };
            return {
              dispatch: (v: string) => this.runPrefillAttention(v, p, b),
              dispose: () => {
                for (const t of [qT, kT, vT, outT]) this.free(t);
                this.freeIndices(slotsT);
                this.freeIndices(positionsT);
              },
            };
          },
        }),
      );
      this.runPrefillAttention(variant, params, buffers);
      return;
    }
    this.runDecodeAttention(this.decodeAttentionVariant(params), params, buffers);
  }

  /** Whether attention of `tokens` query tokens runs the decode family (else the prefill family). */
  private decodeFamily(tokens: number): boolean {
    return (
      this.attentionKernel === 'decode' || (this.attentionKernel === 'auto' && tokens < PREFILL_ATTENTION_MIN_TOKENS)
    );
  }

  /** The decode family's variant for this attention's shape class (see attention_decode in autotune.ts). */
  private decodeAttentionVariant(params: ParamValues<typeof attentionParams>): AttentionDecodeVariant {
    const { tokens, heads, kvHeads, headDim } = params;
    return this.chooseVariant(
      'attention_decode',
      this.attentionDecodeKernel,
      () => attentionDecodeShapeKey(tokens, heads, kvHeads, headDim, params.maxSeq),
      () => ({
        flops: 4 * tokens * heads * decodeContextBucket(params.maxSeq) * headDim,
        prepare: () => {
          // Each query in its own slot at the last position of the context bucket.
          const context = decodeContextBucket(params.maxSeq);
          const kvDim = kvHeads * headDim;
          const qT = this.fromHost(new Float32Array(tokens * heads * headDim));
          const kT = this.fromHost(new Float32Array(tokens * context * kvDim));
          const vT = this.fromHost(new Float32Array(tokens * context * kvDim));
          const slotsT = this.indices(Uint32Array.from({ length: tokens }, (_, i) => i));
          const positionsT = this.indices(new Uint32Array(tokens).fill(context - 1));
          const outT = this.tensor(tokens * heads * headDim, 'tune.attention');
          const p = { ...params, maxSeq: context };
          const b = { q: qT, cacheK: kT, cacheV: vT, slots: slotsT, positions: positionsT, out: outT };
          return {
            dispatch: (v: string) => this.runDecodeAttention(v, p, b),
            dispose: () => {
              for (const t of [qT, kT, vT, outT]) this.free(t);
              this.freeIndices(slotsT);
              this.freeIndices(positionsT);
            },
          };
        },
      }),
    ) as AttentionDecodeVariant;
  }

  private runDecodeAttention(
    variant: string,
    params: ParamValues<typeof attentionParams>,
    buffers: Record<keyof typeof attentionBindings, Bindable>,
  ): void {
    const { tokens, heads, headDim } = params;
    if (variant === 'serial') {
      this.run(ATTENTION_DECODE, params, buffers, groups1d(ATTENTION_DECODE, tokens * heads), {
        defines: { HD: headDim },
      });
      return;
    }
    this.run(ATTENTION, params, buffers, tokens * heads);
  }

  private runPrefillAttention(
    variant: string,
    params: ParamValues<typeof attentionParams>,
    buffers: Record<keyof typeof attentionBindings, Bindable>,
  ): void {
    const { tokens, heads, headDim } = params;
    if (variant === 'broadcast' && headDim % 4 === 0) {
      requireFeatureOf(this.gpu, variant, 'attention');
      const defines = { HD: headDim };
      this.run(ATTENTION_PREFILL_BROADCAST, params, buffers, groups1d(ATTENTION_PREFILL_BROADCAST, tokens) * heads, {
        defines,
      });
      return;
    }
    if (variant === 'splitd') {
      const lanes = ATTENTION_PREFILL_SPLITD.fixedDefines.LANES as number;
      const queries = invocations(ATTENTION_PREFILL_SPLITD.workgroupSize) / lanes;
      const defines = { HD: headDim, KC: splitdChunkRows(headDim, queries, lanes) };
      this.run(ATTENTION_PREFILL_SPLITD, params, buffers, Math.ceil(tokens / queries) * heads, { defines });
      return;
    }
    const defines = { HD: headDim, KC: attentionChunkRows(headDim) };
    this.run(ATTENTION_PREFILL, params, buffers, groups1d(ATTENTION_PREFILL, tokens) * heads, { defines });
  }

  argmaxRows(
    logits: GpuTensor,
    rows: number,
    vocab: number,
    next: GpuIndices,
    tokens: GpuIndices,
    outOffset: number,
    embed?: { table: GpuWeight; out: GpuTensor },
  ): void {
    // One table buffer of the same vocabulary: the copy joins the argmax's dispatch.
    const table = embed?.table;
    if (
      embed &&
      table &&
      !isQuantized(table) &&
      table.shards.length === 1 &&
      !table.shards[0].rowOffset &&
      table.rows === vocab
    ) {
      const params = { rows, vocab, outOffset, dim: table.cols };
      const buffers = { logits, next, tokens, table: table.shards[0].buffer, embedded: embed.out };
      this.run(ARGMAX_EMBED, params, buffers, rows, { weightType: table.dtype });
      return;
    }
    this.run(ARGMAX, { rows, vocab, outOffset }, { logits, next, tokens }, rows);
    if (embed) this.embedding(next, embed.table, rows, embed.out);
  }

  async indicesToHost(i: GpuIndices, n: number): Promise<Uint32Array> {
    this.flush();
    const out = new Uint32Array(await this.gpu.read(i.buffer, n * 4));
    // A greedy burst ends here rather than in toHost: its shape classes are timed now too.
    if (this.pendingTunes.size) await this.tunePending();
    return out;
  }

  swiglu(gate: GpuTensor, up: GpuTensor, n: number, out: GpuTensor): void {
    this.run(SWIGLU, { n }, { gate, up, out }, groups1d(SWIGLU, n));
  }

  add(x: GpuTensor, y: GpuTensor, n: number, scale = 1): void {
    this.run(RESIDUAL_ADD, { n, scale }, { x, y }, groups1d(RESIDUAL_ADD, n));
  }

  // ---- decode's fused ops (fused-gpu.ts) ------------------------------------------------------

  /**
   * The fused GEMVs carry the register-tiled GEMV's loop: where another GEMV variant is forced, or
   * was tuned over FUSE_UNLESS_GEMV_FASTER times faster for this shape class, the separate ops run
   * (and use it).
   */
  canFuse(w: GpuWeight, rows: number): boolean {
    if (!gpuCanFuse(w, rows)) return false;
    if (this.gemvKernel !== 'auto') return this.gemvKernel === 'register';
    const key = gemvShapeKey(rows, w.rows, w.cols, w.dtype);
    const gemv = this.tuner?.choice('gemv', key, 'register') ?? 'register';
    if (gemv === 'register') return true;
    // Another variant won the timing of the GEMV alone. Fusing saves at least one dispatch, worth
    // about the time of the fastest small GEMV, so it gives way only when the register kernel
    // loses more than that (ties and noise on tiny shapes once split every fused group of a tiny
    // model: 14 or 20 dispatches a step instead of 8).
    const ms = this.tuner?.timings(key);
    return ms?.register !== undefined && ms.register <= FUSE_UNLESS_GEMV_FASTER * Math.min(...Object.values(ms));
  }

  normMatmul(x: GpuTensor, norm: GpuWeight, eps: number, weights: GpuWeight[], rows: number, outs: GpuTensor[]): void {
    gpuNormMatmul(this, x, norm, eps, weights, rows, outs);
  }

  normSwiglu(
    x: GpuTensor,
    norm: GpuWeight,
    eps: number,
    gate: GpuWeight,
    up: GpuWeight,
    rows: number,
    out: GpuTensor,
  ): void {
    gpuNormSwiglu(this, x, norm, eps, gate, up, rows, out);
  }

  matmulAdd(x: GpuTensor, w: GpuWeight, rows: number, y: GpuTensor): void {
    gpuMatmulAdd(this, x, w, rows, y);
  }

  mlpDecode(
    att: GpuTensor,
    x: GpuTensor,
    w: MlpWeights<GpuWeight>,
    eps: number,
    rows: number,
    xOut: GpuTensor,
    act: GpuTensor,
  ): GpuTensor {
    const variants = mlpDecodeVariantsFor(this, w, rows);
    const chosen = variants.length > 1 ? this.mlpDecodeVariant(w, eps, rows, variants) : 'split';
    // A forced variant these weights do not fit runs the separate kernels.
    return gpuMlpDecode(this, variants.includes(chosen) ? chosen : 'split', att, x, w, eps, rows, xOut, act);
  }

  /** The mlp_decode variant for this shape class, timed on the real weights (see autotune.ts). */
  private mlpDecodeVariant(w: MlpWeights<GpuWeight>, eps: number, rows: number, variants: string[]): string {
    const [H, I, kO] = [w.norm.cols, w.gate.rows, w.o.cols];
    return this.chooseVariant(
      'mlp_decode',
      this.mlpDecodeKernel,
      () => mlpDecodeShapeKey(rows, H, I, kO, w.gate.dtype),
      () => ({
        flops: 2 * rows * (H * kO + 3 * H * I),
        candidates: variants,
        prepare: () => {
          const att = this.fromHost(new Float32Array(rows * kO));
          const x = this.fromHost(new Float32Array(rows * H));
          const xOut = this.tensor(rows * H, 'tune.mlp.x');
          const act = this.tensor(rows * I, 'tune.mlp.act');
          return {
            dispatch: (v: string) => void gpuMlpDecode(this, v, att, x, w, eps, rows, xOut, act),
            dispose: () => {
              for (const t of [att, x, xOut, act]) this.free(t);
            },
          };
        },
      }),
    );
  }

  ropeKvWrite(
    q: GpuTensor,
    k: GpuTensor,
    v: GpuTensor,
    cacheK: GpuTensor,
    cacheV: GpuTensor,
    slots: GpuIndices,
    positions: GpuIndices,
    cosSin: GpuWeight,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxPos: number,
    cache: KvCacheShape,
  ): void {
    const shape = [tokens, heads, kvHeads, headDim, maxPos] as const;
    gpuRopeKvWrite(this, q, k, v, cacheK, cacheV, slots, positions, cosSin, ...shape, cache);
  }

  ropeKvAttention(
    q: GpuTensor,
    k: GpuTensor,
    v: GpuTensor,
    cacheK: GpuTensor,
    cacheV: GpuTensor,
    slots: GpuIndices,
    positions: GpuIndices,
    cosSin: GpuWeight,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxPos: number,
    cache: KvCacheShape,
    out: GpuTensor,
  ): GpuTensor {
    const shape = [tokens, heads, kvHeads, headDim, maxPos] as const;
    const params = { tokens, heads, kvHeads, headDim, maxSeq: cache.maxSeq, scale: 1 / Math.sqrt(headDim) };
    // The serial kernel takes the RoPE and the cache write in; the others run after rope_kv_write
    // (whose attention() names a head dim over the limit).
    if (
      this.decodeFamily(tokens) &&
      headDim <= ATTENTION_MAX_HEAD_DIM &&
      this.decodeAttentionVariant(params) === 'serial'
    ) {
      gpuRopeKvAttention(this, q, k, v, cacheK, cacheV, slots, positions, cosSin, ...shape, cache);
      return q;
    }
    gpuRopeKvWrite(this, q, k, v, cacheK, cacheV, slots, positions, cosSin, ...shape, cache);
    this.attention(q, cacheK, cacheV, slots, positions, tokens, heads, kvHeads, headDim, cache.maxSeq, out);
    return out;
  }

  copy(src: GpuTensor, srcOffset: number, dst: GpuTensor, dstOffset: number, n: number): void {
    if (n === 0) return;
    if (srcOffset + n > src.length || dstOffset + n > dst.length)
      throw new GpuError(
        `copy of ${n} elements out of bounds (${srcOffset}/${src.length} -> ${dstOffset}/${dst.length})`,
      );
    // Buffer copies must happen outside a compute pass.
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder ??= this.gpu.device.createCommandEncoder();
    this.encoder.copyBufferToBuffer(src.buffer, srcOffset * 4, dst.buffer, dstOffset * 4, n * 4);
  }

  gatherRows(src: GpuTensor, rows: number[], cols: number, out: GpuTensor): void {
    // Buffer copies must happen outside a compute pass.
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder ??= this.gpu.device.createCommandEncoder();
    rows.forEach((r, i) =>
      this.encoder!.copyBufferToBuffer(src.buffer, r * cols * 4, out.buffer, i * cols * 4, cols * 4),
    );
  }
}

/** How to time the candidates of a shape class met untuned (see chooseVariant). */
export interface TuneJob {
  /** Flops of one dispatch (how many dispatches a timed batch needs). */
  flops: number;
  /** The candidates this shape takes, when not every one the adapter runs does. */
  candidates?: readonly string[];
  /** Scratch inputs and outputs (real weights are only read); the dispatcher of any candidate on them. */
  prepare(): { dispatch(variant: string): void; dispose(): void };
}

/** Split a workgroup count over two dimensions to stay under maxComputeWorkgroupsPerDimension. */
function grid(count: number): [number, number] {
  const max = 65535;
  if (count <= max) return [Math.max(1, count), 1];
  const y = Math.ceil(count / max);
  return [Math.ceil(count / y), y];
}
