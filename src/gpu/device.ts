/**
 * The GPU layer: the only module that talks to WebGPU directly. It finds a device (navigator.gpu in
 * the browser, the `webgpu` npm package (Dawn) in Node), enables optional features when present,
 * pools buffers, caches pipelines and turns device loss and out-of-memory into clear errors.
 */

export interface GpuFeatures {
  f16: boolean;
  subgroups: boolean;
  timestampQuery: boolean;
}

export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  features: GpuFeatures;
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
}

export class GpuError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GpuError';
  }
}

export interface GpuOptions {
  /** Ignore shader-f16 even when the adapter has it (forces the f32 weight path). */
  disableF16?: boolean;
  /** Ignore subgroups even when the adapter has them (the kernels' fallbacks, in tests). */
  disableSubgroups?: boolean;
  /** Shard weights at this many bytes instead of the adapter's limit (to exercise sharding in tests). */
  weightShardBytes?: number;
  powerPreference?: GPUPowerPreference;
}

let nodeGpu: GPU | null = null;

/** Uniform buffers kept before the cache is emptied (each is 16-48 bytes, plus a driver object). */
export const MAX_CACHED_UNIFORMS = 4096;

async function getGpu(): Promise<GPU> {
  if (typeof navigator !== 'undefined' && (navigator as Navigator).gpu) return (navigator as Navigator).gpu;
  if (typeof process !== 'undefined' && process.versions?.node) {
    if (!nodeGpu) {
      const mod = (await import('webgpu')) as unknown as {
        create: (flags: string[]) => GPU;
        globals: Record<string, unknown>;
      };
      Object.assign(globalThis, mod.globals);
      nodeGpu = mod.create([]);
    }
    return nodeGpu;
  }
  throw new GpuError(
    'WebGPU is not available in this browser (navigator.gpu is missing). Use a recent Chrome/Edge, or enable WebGPU in your browser flags.',
  );
}

interface PooledBuffer {
  buffer: GPUBuffer;
  size: number;
}

/** Round sizes up so a pool hit is likely while wasting at most ~25% of memory. */
export function bucketSize(bytes: number): number {
  const minimum = 256;
  if (bytes <= minimum) return minimum;
  const pow = 2 ** Math.floor(Math.log2(bytes));
  const quarter = pow / 4;
  return Math.ceil(bytes / quarter) * quarter;
}

export class Gpu {
  readonly device: GPUDevice;
  readonly info: GpuInfo;
  readonly features: GpuFeatures;
  /** Largest storage binding the adapter allows. */
  readonly maxBindingBytes: number;
  /** Weights larger than this are split into row shards. */
  readonly weightShardBytes: number;
  private lost: string | null = null;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  private readonly freeBuffers = new Map<string, PooledBuffer[]>();
  private readonly uniformCache = new Map<string, GPUBuffer>();
  private readonly recorders = new Set<() => void>();
  private allocatedBytes = 0;
  private peakBytes = 0;

  private constructor(device: GPUDevice, info: GpuInfo, maxBindingBytes: number, weightShardBytes: number) {
    this.device = device;
    this.weightShardBytes = weightShardBytes;
    this.info = info;
    this.features = info.features;
    this.maxBindingBytes = maxBindingBytes;
    device.lost.then((e) => {
      this.lost = `${e.reason}: ${e.message}`;
    });
  }

  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    const gpu = await getGpu();
    const adapter = await gpu.requestAdapter({ powerPreference: opts.powerPreference ?? 'high-performance' });
    if (!adapter) {
      throw new GpuError(
        'No WebGPU adapter found. In Node this needs a Vulkan driver (set VK_ICD_FILENAMES; see scripts/with-webgpu.sh); in a browser, enable WebGPU.',
      );
    }
    const want: GPUFeatureName[] = [];
    const f16 = adapter.features.has('shader-f16') && !opts.disableF16;
    if (f16) want.push('shader-f16');
    const subgroups = adapter.features.has('subgroups' as GPUFeatureName) && !opts.disableSubgroups;
    if (subgroups) want.push('subgroups' as GPUFeatureName);
    const timestampQuery = adapter.features.has('timestamp-query');
    if (timestampQuery) want.push('timestamp-query');
    const lim = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: want,
      requiredLimits: {
        maxStorageBufferBindingSize: lim.maxStorageBufferBindingSize,
        maxBufferSize: lim.maxBufferSize,
        maxComputeWorkgroupStorageSize: lim.maxComputeWorkgroupStorageSize,
        maxComputeInvocationsPerWorkgroup: lim.maxComputeInvocationsPerWorkgroup,
        maxStorageBuffersPerShaderStage: lim.maxStorageBuffersPerShaderStage,
        maxComputeWorkgroupsPerDimension: lim.maxComputeWorkgroupsPerDimension,
      },
    });
    const ai = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
    const info: GpuInfo = {
      vendor: ai?.vendor ?? '',
      architecture: ai?.architecture ?? '',
      device: ai?.device ?? '',
      description: ai?.description ?? '',
      features: { f16, subgroups, timestampQuery },
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    };
    const maxBindingBytes = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
    return new Gpu(device, info, maxBindingBytes, Math.min(maxBindingBytes, opts.weightShardBytes ?? maxBindingBytes));
  }

  /** A one-line description of the adapter, for logs and benchmark reports. */
  describe(): string {
    const i = this.info;
    const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' / ') || 'unknown adapter';
    const feats =
      Object.entries(i.features)
        .filter(([, v]) => v)
        .map(([k]) => k)
        .join(',') || 'none';
    return `${name} [features: ${feats}; maxStorageBinding ${(i.maxStorageBufferBindingSize / 2 ** 20).toFixed(0)} MiB]`;
  }

  checkAlive(): void {
    if (this.lost) throw new GpuError(`The WebGPU device was lost (${this.lost}). Reload the model to continue.`);
  }

  pipeline(key: string, code: () => string, entryPoint = 'main'): GPUComputePipeline {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.device.createShaderModule({ code: code(), label: key });
      p = this.device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint }, label: key });
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Compile a shader and surface WGSL errors with the kernel's name (used by tests). */
  async compileCheck(key: string, code: string): Promise<void> {
    const module = this.device.createShaderModule({ code, label: key });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length)
      throw new GpuError(
        `WGSL compile error in ${key}: ${errors.map((e) => `${e.lineNum}:${e.linePos} ${e.message}`).join('; ')}`,
      );
  }

  /** A storage buffer from the pool (contents undefined). Release with `release()`. */
  acquire(bytes: number, label = 'activation'): GPUBuffer {
    this.checkAlive();
    if (bytes > this.maxBindingBytes) {
      throw new GpuError(
        `Buffer '${label}' needs ${bytes} bytes, ` +
          `above this adapter's maxStorageBufferBindingSize (${this.maxBindingBytes}); reduce the batch or context length.`,
      );
    }
    const size = bucketSize(bytes);
    const list = this.freeBuffers.get(`s${size}`);
    const hit = list?.pop();
    if (hit) return hit.buffer;
    return this.createBuffer(size, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label);
  }

  release(buffer: GPUBuffer): void {
    const key = `s${buffer.size}`;
    let list = this.freeBuffers.get(key);
    if (!list) this.freeBuffers.set(key, (list = []));
    list.push({ buffer, size: buffer.size });
  }

  /** A dedicated (unpooled) storage buffer holding `data`, e.g. a weight shard. */
  createStorage(data: ArrayBufferView, label: string): GPUBuffer {
    const size = Math.max(16, Math.ceil(data.byteLength / 4) * 4);
    const buffer = this.createBuffer(
      size,
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | GPUBufferUsage.COPY_SRC,
      label,
      true,
    );
    const range = buffer.getMappedRange();
    new Uint8Array(range).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    buffer.unmap();
    return buffer;
  }

  createBuffer(size: number, usage: number, label: string, mappedAtCreation = false): GPUBuffer {
    this.checkAlive();
    this.device.pushErrorScope('out-of-memory');
    const buffer = this.device.createBuffer({ size, usage, label, mappedAtCreation });
    void this.device.popErrorScope().then((err) => {
      if (err) this.lost = `out of memory allocating ${label} (${size} bytes): ${err.message}`;
    });
    this.allocatedBytes += size;
    this.peakBytes = Math.max(this.peakBytes, this.allocatedBytes);
    return buffer;
  }

  destroyBuffer(buffer: GPUBuffer): void {
    this.allocatedBytes -= buffer.size;
    buffer.destroy();
  }

  /**
   * Whatever records GPU work against this device and has not submitted it yet (a GpuBackend's
   * open compute pass). Called before cached uniform buffers are destroyed, so no recorded
   * dispatch refers to a destroyed buffer.
   */
  addRecorder(flush: () => void): void {
    this.recorders.add(flush);
  }

  /**
   * A uniform buffer with the bytes `pack()` returns, cached under `key` (the kernel and its
   * parameter values): the same shape parameters recur every layer and step. When the cache is
   * full, pending work is submitted and every cached buffer is destroyed.
   */
  uniform(key: string, pack: () => ArrayBuffer): GPUBuffer {
    let buf = this.uniformCache.get(key);
    if (!buf) {
      if (this.uniformCache.size >= MAX_CACHED_UNIFORMS) this.clearUniforms();
      const bytes = pack();
      buf = this.createBuffer(bytes.byteLength, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, 'uniform', true);
      new Uint8Array(buf.getMappedRange()).set(new Uint8Array(bytes));
      buf.unmap();
      this.uniformCache.set(key, buf);
    }
    return buf;
  }

  /** Destroy every cached uniform buffer (after submitting what recorders hold). */
  clearUniforms(): void {
    for (const flush of this.recorders) flush();
    for (const buf of this.uniformCache.values()) this.destroyBuffer(buf);
    this.uniformCache.clear();
  }

  /** Number of uniform buffers in the cache (for tests). */
  get cachedUniforms(): number {
    return this.uniformCache.size;
  }

  write(buffer: GPUBuffer, data: ArrayBufferView, offset = 0): void {
    this.device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Copy `bytes` from a GPU buffer to the host. */
  async read(buffer: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
    this.checkAlive();
    const staging = this.device.createBuffer({
      size: Math.ceil(bytes / 4) * 4,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    const enc = this.device.createCommandEncoder();
    enc.copyBufferToBuffer(buffer, offset, staging, 0, staging.size);
    this.device.queue.submit([enc.finish()]);
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.checkAlive();
      throw new GpuError(`Reading results back from the GPU failed: ${(e as Error).message}`);
    }
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    return out;
  }

  async readF32(buffer: GPUBuffer, count: number, offsetElems = 0): Promise<Float32Array> {
    return new Float32Array(await this.read(buffer, count * 4, offsetElems * 4));
  }

  memoryStats(): { allocatedBytes: number; peakBytes: number } {
    return { allocatedBytes: this.allocatedBytes, peakBytes: this.peakBytes };
  }

  resetPeak(): void {
    this.peakBytes = this.allocatedBytes;
  }

  destroy(): void {
    for (const list of this.freeBuffers.values()) for (const b of list) b.buffer.destroy();
    this.freeBuffers.clear();
    for (const buf of this.uniformCache.values()) buf.destroy();
    this.uniformCache.clear();
    this.device.destroy();
  }
}
