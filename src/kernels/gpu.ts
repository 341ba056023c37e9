/**
 * Typed wrappers around the WGSL kernels in shaders/: each method binds buffers, fills a cached
 * uniform with the shape and records one dispatch into the current compute pass. Work is submitted
 * on flush() or when results are read back.
 */
import type { Gpu } from '../gpu/device';
import { GpuError } from '../gpu/device';
import type { Backend, KvCacheShape, WeightShape } from './backend';
import { loadShaders, shaderSource, type ShaderDefines, type ShaderName } from './shaders';
import type { QuantizedMatrix } from '../quant/quantize';
import { isQuantized, quantEmbedding, quantMatmul, uploadQuantized } from './quant-gpu';

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

const WG = 64;
/**
 * From this many query tokens on, attention runs the tiled kernel (attention_prefill.wgsl); below
 * it (decode steps, whose tokens are in different slots) the one-workgroup-per-query kernel.
 */
export const PREFILL_ATTENTION_MIN_TOKENS = 16;

/** Key (or value) rows per workgroup-memory chunk in the tiled attention kernels: 4 KiB of f32. */
export function attentionChunkRows(headDim: number): number {
  return Math.max(1, Math.floor(1024 / headDim));
}

export class GpuBackend implements Backend<GpuTensor, GpuWeight, GpuIndices> {
  readonly name = 'webgpu';
  readonly weightType: 'f16' | 'f32';
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private readonly dummy: GPUBuffer;
  /** Which attention kernel runs: by token count ('auto'), or one forced (benchmarks, tests). */
  attentionKernel: 'auto' | 'tiled' | 'per-query' = 'auto';

  private constructor(readonly gpu: Gpu, weightType: 'f16' | 'f32') {
    this.weightType = weightType;
    this.dummy = gpu.createStorage(new Float32Array(4), 'dummy-bias');
  }

  /** `weightType` 'f16' needs the adapter's shader-f16 feature. */
  static async create(gpu: Gpu, weightType: 'f16' | 'f32' = 'f32'): Promise<GpuBackend> {
    if (weightType === 'f16' && !gpu.features.f16) throw new GpuError('f16 weights need the shader-f16 feature, which this adapter lacks');
    await loadShaders();
    return new GpuBackend(gpu, weightType);
  }

  // ---- memory -------------------------------------------------------------------------------

  weight(label: string, data: Float32Array | Uint16Array, rows: number, cols: number): GpuWeight {
    // The element type follows the data: frozen base weights use the backend's weightType, while
    // trainable weights (LoRA, full fine-tuning) are always f32.
    const dtype: 'f16' | 'f32' = data instanceof Uint16Array ? 'f16' : 'f32';
    if (dtype === 'f16' && !this.gpu.features.f16) throw new GpuError(`weight ${label}: f16 data needs the shader-f16 feature`);
    if (data.length !== rows * cols) throw new Error(`weight ${label}: ${data.length} values for shape [${rows}, ${cols}]`);
    const rowBytes = cols * data.BYTES_PER_ELEMENT;
    // Shard by rows so no binding exceeds maxStorageBufferBindingSize (e.g. a large vocabulary).
    const rowsPerShard = Math.max(1, Math.floor(this.gpu.weightShardBytes / rowBytes));
    const shards: GpuWeightShard[] = [];
    for (let r = 0; r < rows; r += rowsPerShard) {
      const n = Math.min(rowsPerShard, rows - r);
      const part = data.subarray(r * cols, (r + n) * cols);
      shards.push({ buffer: this.gpu.createStorage(part, `${label}[${r}:${r + n}]`), rowStart: r, rows: n });
    }
    return { shards, rows, cols, dtype };
  }

  quantizedWeight(label: string, q: QuantizedMatrix): GpuWeight {
    return uploadQuantized(this, label, q);
  }

  /** A small placeholder storage buffer for unused bindings (e.g. no bias). */
  get dummyBuffer(): GPUBuffer {
    return this.dummy;
  }

  vector(label: string, data: Float32Array): GpuWeight {
    return { shards: [{ buffer: this.gpu.createStorage(data, label), rowStart: 0, rows: 1 }], rows: 1, cols: data.length, dtype: 'f32' };
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
    return this.gpu.readF32(t.buffer, n, offset);
  }

  free(t: GpuTensor): void {
    this.gpu.release(t.buffer);
  }

  freeIndices(i: GpuIndices): void {
    this.gpu.release(i.buffer);
  }

  weightAsTensor(w: GpuWeight): GpuTensor {
    if (w.quant) throw new GpuError('a quantized weight is frozen: it cannot be trained in place (use LoRA)');
    if (w.shards.length !== 1 || w.dtype !== 'f32') throw new GpuError(`only an unsharded f32 weight can be trained in place (got ${w.shards.length} shards, ${w.dtype})`);
    return { buffer: w.shards[0].buffer, length: w.rows * w.cols };
  }

  freeWeight(w: GpuWeight): void {
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

  /**
   * Record one dispatch of `shader` (a file in shaders/) with its uniform `params` (`kinds`: one
   * 'u' or 'f' per value) and storage `buffers` bound at 1.. in order.
   */
  dispatch(
    shader: ShaderName,
    defines: ShaderDefines,
    weightType: 'f16' | 'f32',
    params: number[],
    kinds: string,
    buffers: GPUBuffer[],
    workgroups: number | [number, number],
  ): void {
    this.gpu.checkAlive();
    const key = `${shader}:${weightType}:${Object.entries(defines).filter(([, v]) => v !== false).map(([k, v]) => (v === true ? k : `${k}=${v}`)).join(',')}`;
    // The WGSL is preprocessed only when the pipeline is not cached yet (dispatch is a hot path).
    const pipeline = this.gpu.pipeline(key, () => shaderSource(shader, defines, weightType));
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.gpu.uniform(params, kinds) } }];
    buffers.forEach((buffer, i) => entries.push({ binding: i + 1, resource: { buffer } }));
    const bindGroup = this.gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
    const pass = this.computePass();
    pass.setPipeline(pipeline);
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
    for (const s of table.shards) {
      this.dispatch('embedding', {}, table.dtype, [tokens, table.cols, s.rowStart, s.rows], 'uuuu', [ids.buffer, s.buffer, out.buffer], Math.ceil((tokens * table.cols) / WG));
    }
  }

  rmsnorm(x: GpuTensor, weight: GpuWeight, rows: number, dim: number, eps: number, out: GpuTensor): void {
    this.dispatch('rmsnorm', {}, 'f32', [rows, dim, eps], 'uuf', [x.buffer, weight.shards[0].buffer, out.buffer], rows);
  }

  matmul(x: GpuTensor, w: GpuWeight, bias: GpuWeight | null, m: number, out: GpuTensor): void {
    if (isQuantized(w)) return quantMatmul(this, x, w, bias ? w.shards.map((s) => this.biasShard(bias, s)) : null, m, out);
    const k = w.cols;
    const vec4 = k % 4 === 0;
    // Few rows (decode, small batches): a 1-D grid over columns that streams each weight row once.
    const gemv = m <= 8;
    for (const s of w.shards) {
      const biasBuffer = bias ? this.biasShard(bias, s) : this.dummy;
      const params = [m, s.rows, k, s.rowStart, w.rows, bias ? 1 : 0];
      const buffers = [x.buffer, s.buffer, biasBuffer, out.buffer];
      if (gemv) {
        this.dispatch('matmul', { VEC4: vec4, GEMV: true }, w.dtype, params, 'uuuuuu', buffers, Math.ceil(s.rows / 4 / WG));
      } else {
        this.dispatch('matmul', { VEC4: vec4 }, w.dtype, params, 'uuuuuu', buffers, [Math.ceil(s.rows / 32), Math.ceil(m / 32)]);
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
      buf = this.gpu.createBuffer(Math.max(16, s.rows * 4), GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, 'bias-shard');
      enc.copyBufferToBuffer(bias.shards[0].buffer, s.rowStart * 4, buf, 0, s.rows * 4);
      this.gpu.device.queue.submit([enc.finish()]);
      m.set(s.rowStart, buf);
    }
    return buf;
  }

  rope(x: GpuTensor, positions: GpuIndices, cos: GpuWeight, sin: GpuWeight, tokens: number, heads: number, headDim: number, maxPos: number): void {
    this.dispatch('rope', {}, 'f32', [tokens, heads, headDim, maxPos], 'uuuu', [x.buffer, positions.buffer, cos.shards[0].buffer, sin.shards[0].buffer], Math.ceil((tokens * heads * (headDim / 2)) / WG));
  }

  kvWrite(k: GpuTensor, v: GpuTensor, cacheK: GpuTensor, cacheV: GpuTensor, slots: GpuIndices, positions: GpuIndices, tokens: number, cache: KvCacheShape): void {
    this.dispatch('kv_write', {}, 'f32', [tokens, cache.kvDim, cache.maxSeq], 'uuu', [k.buffer, v.buffer, slots.buffer, positions.buffer, cacheK.buffer, cacheV.buffer], Math.ceil((tokens * cache.kvDim) / WG));
  }

  attention(q: GpuTensor, cacheK: GpuTensor, cacheV: GpuTensor, slots: GpuIndices, positions: GpuIndices, tokens: number, heads: number, kvHeads: number, headDim: number, maxSeq: number, out: GpuTensor): void {
    if (headDim > 256) throw new GpuError(`attention kernel supports head_dim up to 256, got ${headDim}`);
    const params = [tokens, heads, kvHeads, headDim, maxSeq, 1 / Math.sqrt(headDim)];
    const buffers = [q.buffer, cacheK.buffer, cacheV.buffer, slots.buffer, positions.buffer, out.buffer];
    if (this.attentionKernel === 'tiled' || (this.attentionKernel === 'auto' && tokens >= PREFILL_ATTENTION_MIN_TOKENS)) {
      // Prefill/training: 64 queries per workgroup share every key row read (see the shader).
      const defines = { HD: headDim, KC: attentionChunkRows(headDim) };
      this.dispatch('attention_prefill', defines, 'f32', params, 'uuuuuf', buffers, Math.ceil(tokens / 64) * heads);
      return;
    }
    this.dispatch('attention', {}, 'f32', params, 'uuuuuf', buffers, tokens * heads);
  }

  swiglu(gate: GpuTensor, up: GpuTensor, n: number, out: GpuTensor): void {
    this.dispatch('swiglu', {}, 'f32', [n], 'u', [gate.buffer, up.buffer, out.buffer], Math.ceil(n / WG));
  }

  add(x: GpuTensor, y: GpuTensor, n: number, scale = 1): void {
    this.dispatch('residual_add', {}, 'f32', [n, scale], 'uf', [x.buffer, y.buffer], Math.ceil(n / WG));
  }

  gatherRows(src: GpuTensor, rows: number[], cols: number, out: GpuTensor): void {
    // Buffer copies must happen outside a compute pass.
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    this.encoder ??= this.gpu.device.createCommandEncoder();
    rows.forEach((r, i) => this.encoder!.copyBufferToBuffer(src.buffer, r * cols * 4, out.buffer, i * cols * 4, cols * 4));
  }
}

/** Split a workgroup count over two dimensions to stay under maxComputeWorkgroupsPerDimension. */
function grid(count: number): [number, number] {
  const max = 65535;
  if (count <= max) return [Math.max(1, count), 1];
  const y = Math.ceil(count / max);
  return [Math.ceil(count / y), y];
}
