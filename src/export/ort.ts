/**
 * Running an exported decoder with onnxruntime-web: the correctness check of `agentark export`
 * (wasm execution provider) and the peer of `npm run bench` (WebGPU execution provider, on the same
 * adapter as our runtime). onnxruntime-web is imported only here, and only when one of these runs.
 *
 * In Node, its WebGPU EP finds the GPU through `navigator.gpu`; provideNavigatorGpu() supplies it
 * from the `webgpu` package (Dawn).
 */
import type * as Ort from 'onnxruntime-web';

export type OrtEp = 'wasm' | 'webgpu';
type OrtModule = typeof Ort;

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

/**
 * Node only: make `navigator.gpu` a Dawn instance (the one our runtime then uses as well, so both
 * sit on the same adapter). Dawn rejects `queue.writeBuffer` from views of a SharedArrayBuffer,
 * which onnxruntime's threaded wasm memory is, so such writes are copied first.
 */
export async function provideNavigatorGpu(): Promise<void> {
  if (!isNode) return;
  const g = globalThis as unknown as { navigator?: { gpu?: GPU; __agentarkShim?: boolean } };
  if (g.navigator?.__agentarkShim) return;
  const mod = (await import('webgpu')) as unknown as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, mod.globals);
  const dawn = g.navigator?.gpu ?? mod.create([]);
  const wrapDevice = (device: GPUDevice): GPUDevice => {
    const queue = device.queue;
    const write = queue.writeBuffer.bind(queue);
    queue.writeBuffer = ((
      buffer: GPUBuffer,
      offset: number,
      data: BufferSource,
      dataOffset?: number,
      size?: number,
    ) => {
      if (ArrayBuffer.isView(data) && data.buffer instanceof SharedArrayBuffer) {
        const bpe = (data as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1;
        const start = data.byteOffset + (dataOffset ?? 0) * bpe;
        const bytes = size === undefined ? data.byteLength - (dataOffset ?? 0) * bpe : size * bpe;
        return write(buffer, offset, new Uint8Array(data.buffer, start, bytes).slice());
      }
      return write(buffer, offset, data, dataOffset, size);
    }) as GPUQueue['writeBuffer'];
    return device;
  };
  const wrapAdapter = (adapter: GPUAdapter | null): GPUAdapter | null =>
    adapter &&
    new Proxy(adapter, {
      get(target, prop) {
        if (prop === 'requestDevice')
          return async (desc?: GPUDeviceDescriptor) => wrapDevice(await target.requestDevice(desc));
        const value = (target as unknown as Record<string | symbol, unknown>)[prop];
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  const gpu = {
    requestAdapter: async (opts?: GPURequestAdapterOptions) => wrapAdapter(await dawn.requestAdapter(opts)),
    getPreferredCanvasFormat: () => 'rgba8unorm' as GPUTextureFormat,
    get wgslLanguageFeatures() {
      return dawn.wgslLanguageFeatures;
    },
  } as unknown as GPU;
  const nav = { ...(g.navigator ?? {}), gpu, __agentarkShim: true };
  Object.defineProperty(globalThis, 'navigator', { value: nav, configurable: true, writable: true });
}

/**
 * Node only: onnxruntime-web waits for Dawn's mapAsync from inside its wasm (asyncify), and Dawn
 * delivers the callback only while Node's event loop turns; with nothing else scheduled the wait
 * never ends (observed here: a 2x3 MatMul hung for minutes, and ran at once with a timer). So a
 * 1 ms timer runs while any WebGPU session is alive.
 */
let tickerUsers = 0;
let ticker: ReturnType<typeof setInterval> | null = null;
function holdEventLoopTicker(): () => void {
  if (!isNode) return () => {};
  if (tickerUsers++ === 0) ticker = setInterval(() => {}, 1);
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--tickerUsers === 0 && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
  };
}

const loaded = new Map<OrtEp, Promise<OrtModule>>();

/** onnxruntime-web with the bundle for `ep` (the WebGPU bundle also carries the wasm EP). */
export function loadOrt(ep: OrtEp): Promise<OrtModule> {
  let p = loaded.get(ep);
  if (!p) {
    p = (async () => {
      if (ep === 'webgpu') await provideNavigatorGpu();
      const ort = (
        ep === 'webgpu' ? await import('onnxruntime-web/webgpu') : await import('onnxruntime-web')
      ) as OrtModule & { default?: OrtModule };
      const mod = (ort.InferenceSession ? ort : ort.default) as OrtModule;
      // Node has no cross-origin-isolated worker setup for ORT's threads; one thread suffices for a check.
      // The WebGPU EP runs its kernels on the GPU: no wasm threads either (in the browser they would
      // be workers spawned from the bundle's own URL, which a bundled app worker does not keep).
      if (isNode || ep === 'webgpu') mod.env.wasm.numThreads = 1;
      return mod;
    })();
    loaded.set(ep, p);
  }
  return p;
}

export interface OrtDecoderShape {
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
}

/** One sequence's KV cache as onnxruntime tensors (on the GPU with the WebGPU EP). */
export interface OrtPast {
  tensors: Map<string, Ort.Tensor>;
  length: number;
}

/**
 * An exported decoder in an onnxruntime-web session. run() feeds `ids` after `past` and returns
 * the logits of every new position and the extended cache; with the WebGPU EP the cache stays in
 * GPU buffers between steps (as transformers.js keeps it), so only logits cross to the host.
 */
export class OrtDecoder {
  private constructor(
    readonly ort: OrtModule,
    readonly session: Ort.InferenceSession,
    readonly shape: OrtDecoderShape,
    readonly ep: OrtEp,
    private readonly releaseTicker: () => void,
  ) {}

  static async create(
    model: Uint8Array,
    shape: OrtDecoderShape,
    ep: OrtEp,
    externalData: { path: string; data: Uint8Array }[] = [],
  ): Promise<OrtDecoder> {
    const ort = await loadOrt(ep);
    const presentNames = Array.from({ length: shape.numLayers }, (_, i) => [
      `present.${i}.key`,
      `present.${i}.value`,
    ]).flat();
    const options: Ort.InferenceSession.SessionOptions = {
      executionProviders: [ep],
      graphOptimizationLevel: 'all',
      ...(externalData.length ? { externalData } : {}),
      ...(ep === 'webgpu'
        ? {
            preferredOutputLocation: Object.fromEntries([
              ['logits', 'cpu'],
              ...presentNames.map((n) => [n, 'gpu-buffer']),
            ]),
          }
        : {}),
    };
    const releaseTicker = ep === 'webgpu' ? holdEventLoopTicker() : () => {};
    try {
      const session = await ort.InferenceSession.create(model, options);
      return new OrtDecoder(ort, session, shape, ep, releaseTicker);
    } catch (e) {
      releaseTicker();
      throw e;
    }
  }

  emptyPast(): OrtPast {
    const { numLayers, numKvHeads, headDim } = this.shape;
    const tensors = new Map<string, Ort.Tensor>();
    for (let i = 0; i < numLayers; i++) {
      for (const kind of ['key', 'value'])
        tensors.set(
          `past_key_values.${i}.${kind}`,
          new this.ort.Tensor('float32', new Float32Array(0), [1, numKvHeads, 0, headDim]),
        );
    }
    return { tensors, length: 0 };
  }

  /** Feed `ids` at positions past.length…; returns logits [ids.length, vocab] and the new cache. */
  async run(ids: ArrayLike<number>, past: OrtPast): Promise<{ logits: Float32Array; present: OrtPast }> {
    const n = ids.length;
    const total = past.length + n;
    const feeds: Record<string, Ort.Tensor> = {
      input_ids: new this.ort.Tensor('int64', BigInt64Array.from(Array.from(ids, BigInt)), [1, n]),
      attention_mask: new this.ort.Tensor('int64', new BigInt64Array(total).fill(1n), [1, total]),
      position_ids: new this.ort.Tensor(
        'int64',
        BigInt64Array.from({ length: n }, (_, i) => BigInt(past.length + i)),
        [1, n],
      ),
    };
    for (const [name, t] of past.tensors) feeds[name] = t;
    const out = await this.session.run(feeds);
    const logitsTensor = out.logits;
    const logits = (await logitsTensor.getData()) as Float32Array;
    const present = new Map<string, Ort.Tensor>();
    for (let i = 0; i < this.shape.numLayers; i++) {
      for (const kind of ['key', 'value']) present.set(`past_key_values.${i}.${kind}`, out[`present.${i}.${kind}`]);
    }
    return { logits, present: { tensors: present, length: total } };
  }

  /** Release a cache's GPU buffers (no-op for CPU tensors). */
  disposePast(past: OrtPast): void {
    for (const t of past.tensors.values()) if (t.location === 'gpu-buffer') t.dispose();
  }

  async release(): Promise<void> {
    try {
      await this.session.release();
    } finally {
      this.releaseTicker();
    }
  }
}
