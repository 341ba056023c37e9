/**
 * The ops of a Llama-family forward pass, implemented twice: on WebGPU (gpu.ts, the product) and in
 * plain TypeScript (cpu.ts, the twin every kernel is tested against). The model (model/llama.ts)
 * is written against this interface; each backend also makes the training ops of its own kind.
 */
import type { TrainOps } from './train-backend';

import type { QuantizedMatrix } from '../quant/quantize';

/** A linear weight [rows, cols] (HF layout [out, in]), possibly split into row shards on the GPU. */
export interface WeightShape {
  rows: number;
  cols: number;
}

/**
 * Row starts of Backend.weightRows views are multiples of this many rows, so that on the GPU the
 * view's binding offset (rows × bytes per row, f16 rows and q8/q4 scales included) is a multiple
 * of 256 bytes, the largest minStorageBufferOffsetAlignment WebGPU allows; weights split into row
 * shards use shard sizes in multiples of it too.
 */
export const WEIGHT_VIEW_ROW_ALIGN = 128;

/**
 * Rows per shard of a weight of `rows` rows when `fit` rows fit one binding: all of them when they
 * fit, else `fit` rounded down to a multiple of WEIGHT_VIEW_ROW_ALIGN (when at least that many fit).
 */
export function shardRows(rows: number, fit: number): number {
  if (fit >= rows) return Math.max(1, rows);
  return Math.max(1, fit >= WEIGHT_VIEW_ROW_ALIGN ? fit - (fit % WEIGHT_VIEW_ROW_ALIGN) : fit);
}

export interface KvCacheShape {
  slots: number;
  maxSeq: number;
  kvDim: number;
}

export interface Backend<T, W, I> {
  readonly name: string;
  /** Element type the weights are stored in. */
  readonly weightType: 'f16' | 'f32';
  /** A 2-D weight from f32 values, or from f16 bit patterns when weightType is 'f16'. */
  weight(label: string, data: Float32Array | Uint16Array, rows: number, cols: number): W & WeightShape;
  /** A frozen q8/q4 weight (src/quant/quantize.ts), read packed by the kernels. */
  quantizedWeight(label: string, q: QuantizedMatrix): W & WeightShape;
  /** A small f32 vector (norm weights, biases, rope tables); never sharded or converted. */
  vector(label: string, data: Float32Array): W;
  indices(data: Uint32Array): I;
  tensor(n: number, label?: string): T;
  fromHost(data: Float32Array): T;
  toHost(t: T, n: number, offset?: number): Promise<Float32Array>;
  /** Overwrite the start of tensor `t` with `data` (e.g. restoring a checkpoint). */
  upload(t: T, data: Float32Array): void;
  free(t: T): void;
  freeIndices(i: I): void;
  freeWeight(w: W): void;
  /**
   * Rows [r0, r0 + n) of a 2-D weight sharing its storage (for matmul and matmulBackwardInput only;
   * never freed itself). r0 must be a multiple of WEIGHT_VIEW_ROW_ALIGN.
   */
  weightRows(w: W & WeightShape, r0: number, n: number): W & WeightShape;
  /** The f32 storage of an unsharded f32 weight as a tensor, so an optimizer can update it in place. */
  weightAsTensor(w: W): T;
  /** out[t, :] = table[ids[t], :] */
  embedding(ids: I, table: W & WeightShape, tokens: number, out: T): void;
  /** out[r, :] = rmsnorm(x[r, :]) * weight */
  rmsnorm(x: T, weight: W, rows: number, dim: number, eps: number, out: T): void;
  /** out[M, N] = x[M, K] · w[N, K]^T (+ bias) */
  matmul(x: T, w: W & WeightShape, bias: W | null, m: number, out: T): void;
  /** In-place rotate-half RoPE on x[tokens, heads, headDim] using cos/sin tables [maxPos, headDim/2]. */
  rope(x: T, positions: I, cos: W, sin: W, tokens: number, heads: number, headDim: number, maxPos: number): void;
  kvWrite(k: T, v: T, cacheK: T, cacheV: T, slots: I, positions: I, tokens: number, cache: KvCacheShape): void;
  attention(
    q: T,
    cacheK: T,
    cacheV: T,
    slots: I,
    positions: I,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxSeq: number,
    out: T,
  ): void;
  swiglu(gate: T, up: T, n: number, out: T): void;
  /**
   * Greedy decoding on the device: next[r] = argmax of logits[r, :] (ties to the lower id, as the
   * host's argmax), also written to tokens[outOffset + r] so a burst of steps reads back once.
   * With `embed`, also embed.out[r, :] = embed.table[next[r], :]: the next step's input (one
   * dispatch on WebGPU where the table allows).
   */
  argmaxRows(
    logits: T,
    rows: number,
    vocab: number,
    next: I,
    tokens: I,
    outOffset: number,
    embed?: { table: W & WeightShape; out: T },
  ): void;
  /** The first n values of an index list, on the host. */
  indicesToHost(i: I, n: number): Promise<Uint32Array>;
  /** x += scale · y */
  add(x: T, y: T, n: number, scale?: number): void;
  /** out[i, :] = src[rows[i], :] (buffer copies, no kernel; rows [0] with cols = n copies a whole tensor) */
  gatherRows(src: T, rows: number[], cols: number, out: T): void;
  /** dst[dstOffset .. +n] = src[srcOffset .. +n] (elements; a buffer copy, no kernel). */
  copy(src: T, srcOffset: number, dst: T, dstOffset: number, n: number): void;
  /**
   * Decode's fused ops (one dispatch each on WebGPU: shaders/norm_gemv.wgsl, gemv_residual.wgsl,
   * rope_kv_write.wgsl; CPU twins in fused-cpu.ts). The model uses them only where `canFuse` says
   * the backend takes weight `w` for `rows` rows, and runs the separate ops otherwise.
   */
  canFuse(w: W & WeightShape, rows: number): boolean;
  /** outs[i] = rmsnorm(x)·weights[i]ᵀ for one to three weights of the same input (no bias). */
  normMatmul(x: T, norm: W, eps: number, weights: (W & WeightShape)[], rows: number, outs: T[]): void;
  /** out = silu(rmsnorm(x)·gateᵀ) * (rmsnorm(x)·upᵀ) */
  normSwiglu(x: T, norm: W, eps: number, gate: W & WeightShape, up: W & WeightShape, rows: number, out: T): void;
  /** y += x·wᵀ (no bias) */
  matmulAdd(x: T, w: W & WeightShape, rows: number, y: T): void;
  /**
   * A decode step's MLP half-layer: x2 = x + att·oᵀ (the attention's output projection onto the
   * residual stream), then x2 + SwiGLU(rmsnorm(x2)·gateᵀ, rmsnorm(x2)·upᵀ)·downᵀ. Returns the
   * tensor holding the new residual stream: `x` updated in place, or `xOut` where the backend ran a
   * kernel that cannot update x in place. `act` [rows, intermediate] is scratch. Only for weights
   * canFuse takes.
   */
  mlpDecode(
    att: T,
    x: T,
    w: { o: W & WeightShape; norm: W; gate: W & WeightShape; up: W & WeightShape; down: W & WeightShape },
    eps: number,
    rows: number,
    xOut: T,
    act: T,
  ): T;
  /**
   * RoPE of q in place, and of k written with v into the cache at each token's (slot, position); k
   * itself is left unrotated. `cosSin`: the cos/sin tables [maxPos, headDim/2] interleaved
   * (fused-cpu.ts interleaveCosSin).
   */
  ropeKvWrite(
    q: T,
    k: T,
    v: T,
    cacheK: T,
    cacheV: T,
    slots: I,
    positions: I,
    cosSin: W,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxPos: number,
    cache: KvCacheShape,
  ): void;
  /**
   * Decode attention with its RoPE and KV-cache write, for `tokens` tokens in distinct slots each
   * at its newest position: ropeKvWrite, then attention into `out`. Returns the tensor that holds
   * the result: `out`, or `q` itself where the backend does all three in one dispatch (q is then
   * overwritten).
   */
  ropeKvAttention(
    q: T,
    k: T,
    v: T,
    cacheK: T,
    cacheV: T,
    slots: I,
    positions: I,
    cosSin: W,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxPos: number,
    cache: KvCacheShape,
    out: T,
  ): T;
  /** Submit queued work (no-op on the CPU). */
  flush(): void;
  /** The training ops (backward kernels, loss, optimizers) on this backend's tensors. */
  createTrainOps(): TrainOps<T, W, I>;
}

/** A backend whose handle types the caller does not name (code that only passes handles along). */
// biome-ignore lint/suspicious/noExplicitAny: Backend is invariant in T/W/I (parameters and results), so `unknown` would reject every concrete backend
export type AnyBackend = Backend<any, any, any>;
