/**
 * The kernel autotuner: for each (kernel family, shape class) a model uses, time every candidate
 * variant on this adapter and keep the fastest. Choices are cached per adapter (vendor,
 * architecture, device, description — which carries the driver version — features, and a hash of
 * the candidates' WGSL): on disk in Node, in localStorage on a page, in IndexedDB in a worker, so
 * later loads skip the timing. `AGENTARK_KERNELS=gemv=splitk,gemm=tiled` (or the bench's
 * --kernels) forces variants; `AGENTARK_AUTOTUNE=0` (or RuntimeOptions.autotune = false) turns
 * tuning off, leaving the register-tiled kernels everywhere.
 *
 * Tuning is lazy: the first dispatch of an untuned shape class runs the fallback variant and
 * queues the class; the backend times the queued classes at its next readback (GpuBackend.toHost)
 * on the real weight buffer, so a model is tuned by its first use, and only for shapes it meets.
 *
 * Families and candidates so far:
 * - gemv (Y = X·Wᵀ with M <= 8 rows: decode, small batches): 'register' (matmul.wgsl's 1-D grid
 *   of 4-column register tiles, tuned on CPU adapters) and 'splitk' (matmul_splitk.wgsl: one
 *   workgroup per column splitting K, reduced in workgroup memory) and, where the adapter has the
 *   `subgroups` feature, 'subgroup' (matmul_subgroup.wgsl: the same split reduced by subgroupAdd).
 * - gemm (Y = X·Wᵀ with M > 8 rows: prefill, training forward): 'register' (matmul.wgsl's 4x4
 *   register tiles read straight from global memory) and 'tiled' (matmul_tiled.wgsl: 32x32 output
 *   tiles staged through workgroup memory as vec4, a 4x4 register micro-tile per invocation) and
 *   'tiled64' (the same file with 16x16 invocations: 64x64 tiles, K-steps of 16) and, with
 *   `subgroups`, 'broadcast16' and 'broadcast8' (matmul_broadcast.wgsl: 16 or 8 rows a workgroup,
 *   each X value read once per subgroup and shared by subgroupBroadcast).
 * - gemm_dx (dX = dY·W) and gemm_dw (dW = dYᵀ·X), the training GEMMs: 'register'
 *   (matmul_backward.wgsl) and 'tiled' (matmul_backward_tiled.wgsl, operands staged through
 *   workgroup memory, transposed on load where needed) and, with `subgroups`, 'broadcast16'
 *   (matmul_backward_broadcast.wgsl: 16 output rows a workgroup, the shared dY values broadcast).
 * - attention_prefill (causal attention of 16+ query tokens): 'tiled' (attention_prefill.wgsl, one
 *   invocation per query with the whole row in registers) and 'splitd' (attention_prefill_splitd.wgsl,
 *   4 invocations per query splitting the head dimension) and, with `subgroups`, 'broadcast'
 *   (attention_prefill_broadcast.wgsl: key/value rows read a quarter each by 4 lanes and broadcast;
 *   head dims not multiples of 4 run 'tiled').
 * - attention_decode (fewer query tokens: decode steps of one sequence or a batch): 'workgroup'
 *   (attention.wgsl, a workgroup per query sharing each chunk of keys) and 'serial'
 *   (attention_decode.wgsl, one invocation per query walking its keys, no barrier; timed at the
 *   context bucket of the cache's length, decodeContextBucket).
 * - mlp_decode (a decode step's MLP half-layer: output projection and residual add, RMSNorm, gate
 *   and up with SwiGLU, down projection and residual add): 'split' (gemv_residual.wgsl,
 *   norm_gemv.wgsl SWIGLU, gemv_residual.wgsl), 'fused' (norm_gemv.wgsl SWIGLU + RESIDUAL, the
 *   output projection repeated in every workgroup, then gemv_residual.wgsl) and 'block'
 *   (mlp_block.wgsl: all of it in one workgroup); each step fewer dispatches and less parallelism.
 *   Only the variants a shape takes are timed (mlpDecodeVariantsFor).
 * The first variant of a family is the fallback when nothing is tuned.
 */
import { fnv1a } from '../util/hash';
import { GpuError, type Gpu } from '../gpu/device';
import type { LayerWeights, LlamaModel } from '../model/llama';
import { shaderSource } from './shaders';

export const KERNEL_FAMILIES = {
  gemv: ['register', 'splitk', 'subgroup'],
  gemm: ['register', 'tiled', 'tiled64', 'broadcast16', 'broadcast8'],
  gemm_dx: ['register', 'tiled', 'broadcast16'],
  gemm_dw: ['register', 'tiled', 'broadcast16'],
  attention_prefill: ['tiled', 'splitd', 'broadcast'],
  attention_decode: ['workgroup', 'serial'],
  mlp_decode: ['split', 'fused', 'block'],
} as const;
export type KernelFamily = keyof typeof KERNEL_FAMILIES;
export type GemvVariant = (typeof KERNEL_FAMILIES)['gemv'][number];
export type GemmVariant = (typeof KERNEL_FAMILIES)['gemm'][number];
export type AttentionPrefillVariant = (typeof KERNEL_FAMILIES)['attention_prefill'][number];
export type AttentionDecodeVariant = (typeof KERNEL_FAMILIES)['attention_decode'][number];
export type MlpDecodeVariant = (typeof KERNEL_FAMILIES)['mlp_decode'][number];
/** The variants of the training GEMMs (gemm_dx, gemm_dw). */
export type GemmBackwardVariant = (typeof KERNEL_FAMILIES)['gemm_dx'][number];

/** Variants that need an adapter feature, and which (the others run everywhere). */
const NEEDS_FEATURE: Record<string, 'subgroups'> = {
  subgroup: 'subgroups',
  broadcast16: 'subgroups',
  broadcast8: 'subgroups',
  broadcast: 'subgroups',
};

/** The candidates of `family` this adapter can run. */
export function candidatesOn(gpu: Pick<Gpu, 'features'>, family: KernelFamily): readonly string[] {
  return KERNEL_FAMILIES[family].filter((v) => {
    const feature = NEEDS_FEATURE[v];
    return !feature || gpu.features[feature];
  });
}

/** A clear error when a (forced) `variant` needs an adapter feature this device lacks. */
export function requireFeatureOf(gpu: Pick<Gpu, 'features' | 'describe'>, variant: string, what: string): void {
  const feature = NEEDS_FEATURE[variant];
  if (feature && !gpu.features[feature])
    throw new GpuError(
      `the '${variant}' ${what} needs the adapter's ${feature} feature, which ${gpu.describe()} lacks`,
    );
}

/** Whether Runtime loads tune kernels: on unless AGENTARK_AUTOTUNE is 0/false/off (Node). */
export function autotuneFromEnv(): boolean {
  const v = typeof process !== 'undefined' ? process.env?.AGENTARK_AUTOTUNE : undefined;
  return !v || !/^(0|false|off|no)$/i.test(v.trim());
}

export interface TuneRecord {
  choice: string;
  /** Milliseconds per dispatch of each candidate (median of the timed batches). */
  ms: Record<string, number>;
}

export interface TuningSummary {
  adapterKey: string;
  /** Every choice in force: shape class → record ('forced' choices have no timings). */
  choices: Record<string, TuneRecord & { source: 'tuned' | 'cached' | 'forced' }>;
  /** Wall time spent timing candidates in this process. */
  tuningMs: number;
}

const STORAGE_KEY = 'agentark.kernel-choices.v1';

/** AGENTARK_KERNELS in Node (undefined in a browser). */
function kernelsEnv(): string | undefined {
  return typeof process !== 'undefined' ? process.env?.AGENTARK_KERNELS : undefined;
}

/** The variant AGENTARK_KERNELS forces for `family`, else 'auto' (GpuBackend's *Kernel fields). */
export function forcedFromEnv<V extends string>(family: KernelFamily): 'auto' | V {
  return (parseForcedKernels(kernelsEnv())[family] ?? 'auto') as 'auto' | V;
}

/** Parse `gemv=splitk,...`; unknown families or variants are errors naming the known ones. */
export function parseForcedKernels(spec: string | undefined): Partial<Record<KernelFamily, string>> {
  const out: Partial<Record<KernelFamily, string>> = {};
  if (!spec) return out;
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [family, variant] = part.split('=').map((s) => s.trim());
    const known = KERNEL_FAMILIES[family as KernelFamily] as readonly string[] | undefined;
    if (!known)
      throw new Error(
        `AGENTARK_KERNELS: unknown kernel family '${family}' (known: ${Object.keys(KERNEL_FAMILIES).join(', ')})`,
      );
    if (!known.includes(variant))
      throw new Error(`AGENTARK_KERNELS: unknown ${family} variant '${variant}' (known: ${known.join(', ')})`);
    out[family as KernelFamily] = variant;
  }
  return out;
}

/** Where choices persist: a JSON file in Node, localStorage in the browser, nothing elsewhere. */
interface ChoiceStore {
  load(): Promise<Record<string, Record<string, TuneRecord>>>;
  save(all: Record<string, Record<string, TuneRecord>>): Promise<void>;
}

function defaultStore(): ChoiceStore {
  const isNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';
  if (isNode) {
    const file = async () => {
      const path = await import('node:path');
      const os = await import('node:os');
      return path.join(
        process.env.AGENTARK_CACHE_DIR ?? path.join(os.homedir(), '.cache', 'agentark'),
        'kernel-choices.json',
      );
    };
    return {
      async load() {
        const fs = await import('node:fs/promises');
        try {
          return JSON.parse(await fs.readFile(await file(), 'utf8'));
        } catch {
          return {}; // absent or unreadable: tune again
        }
      },
      async save(all) {
        const fs = await import('node:fs/promises');
        const path = await import('node:path');
        const f = await file();
        await fs.mkdir(path.dirname(f), { recursive: true });
        const tmp = `${f}.tmp-${process.pid}`;
        await fs.writeFile(tmp, JSON.stringify(all, null, 1));
        await fs.rename(tmp, f);
      },
    };
  }
  const ls = (globalThis as { localStorage?: Storage }).localStorage;
  const idb = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  // Workers (where the app runs models) have no localStorage but do have IndexedDB.
  if (!ls && idb) return indexedDbStore(idb);
  return {
    async load() {
      try {
        return ls ? JSON.parse(ls.getItem(STORAGE_KEY) ?? '{}') : {};
      } catch {
        return {};
      }
    },
    async save(all) {
      try {
        ls?.setItem(STORAGE_KEY, JSON.stringify(all));
      } catch {
        // Storage full or unavailable: choices live for this session.
      }
    },
  };
}

/** Choices as one record of an IndexedDB object store (database 'agentark-kernels'). */
function indexedDbStore(idb: IDBFactory): ChoiceStore {
  const open = () =>
    new Promise<IDBDatabase>((resolve, reject) => {
      const req = idb.open('agentark-kernels', 1);
      req.onupgradeneeded = () => req.result.createObjectStore('choices');
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  const request = <T>(mode: IDBTransactionMode, op: (s: IDBObjectStore) => IDBRequest<T>) =>
    open().then(
      (db) =>
        new Promise<T>((resolve, reject) => {
          const req = op(db.transaction('choices', mode).objectStore('choices'));
          req.onsuccess = () => {
            resolve(req.result);
            db.close();
          };
          req.onerror = () => {
            reject(req.error);
            db.close();
          };
        }),
    );
  return {
    async load() {
      try {
        return (
          ((await request('readonly', (s) => s.get(STORAGE_KEY))) as Record<string, Record<string, TuneRecord>>) ?? {}
        );
      } catch {
        return {}; // private mode or blocked storage: tune again
      }
    },
    async save(all) {
      try {
        await request('readwrite', (s) => s.put(all, STORAGE_KEY));
      } catch {
        // Storage unavailable: choices live for this session.
      }
    },
  };
}

/** The cache key of an adapter: what can change a kernel's speed, plus the candidates' sources. */
export function adapterKey(gpu: Gpu): string {
  const i = gpu.info;
  const f = i.features;
  const sources = Object.keys(KERNEL_FAMILIES).length
    ? shaderSource('matmul', { GEMV: true }) +
      shaderSource('matmul_splitk', { WG: 64 }) +
      shaderSource('matmul_tiled', { WG_X: 8, WG_Y: 8, TK: 32 }) +
      shaderSource('matmul_tiled', { WG_X: 16, WG_Y: 16, TK: 16 }) +
      shaderSource('matmul_subgroup', { WG: 64 }) +
      shaderSource('matmul_broadcast', { WG: 64, TM: 16 }) +
      shaderSource('matmul_backward_broadcast', { WG: 64, TM: 16 }) +
      shaderSource('matmul_backward_tiled', { WG_X: 8, WG_Y: 8, TK: 32 }) +
      shaderSource('attention_prefill', { WG: 64, HD: 64, KC: 16 }) +
      shaderSource('attention_prefill_splitd', { WG: 64, HD: 64, KC: 16, LANES: 4 }) +
      shaderSource('attention_prefill_broadcast', { WG: 64, HD: 64 }) +
      shaderSource('attention', { WG: 64 }) +
      shaderSource('attention_decode', { WG: 32, HD: 64 }) +
      shaderSource('norm_gemv', { WG: 64, SWIGLU: true, RESIDUAL: true, XQ: 16, MR: 1 }) +
      shaderSource('mlp_block', { WG: 64, XQ: 16, HQ: 16, MR: 1 })
    : '';
  return [
    i.vendor,
    i.architecture,
    i.device,
    i.description,
    `f16=${f.f16}`,
    `subgroups=${f.subgroups}`,
    `wgs=${i.maxComputeWorkgroupStorageSize}`,
    `kernels=${fnv1a(sources).toString(16)}`,
  ].join('|');
}

/** Shape class of a GEMV: M as 1 or 2–8 (one sequence or a batch), the exact N and K, the weight type. */
export function gemvShapeKey(m: number, n: number, k: number, dtype: 'f16' | 'f32'): string {
  return `gemv:m${m <= 1 ? 1 : 8}:n${n}:k${k}:${dtype}`;
}

/**
 * Shape class of a GEMM: M bucketed (prefill lengths vary from call to call; the buckets' best
 * variant changes slowly with M), the exact N and K, the weight type.
 */
export function gemmShapeKey(
  m: number,
  n: number,
  k: number,
  dtype: 'f16' | 'f32',
  family: 'gemm' | 'gemm_dx' | 'gemm_dw' = 'gemm',
): string {
  const bucket = m <= 32 ? 32 : m <= 128 ? 128 : m <= 512 ? 512 : 'big';
  return `${family}:m${bucket}:n${n}:k${k}:${dtype}`;
}

/** Shape class of a prefill attention: tokens bucketed like gemmShapeKey's M, the head layout. */
export function attentionShapeKey(tokens: number, heads: number, kvHeads: number, headDim: number): string {
  const bucket = tokens <= 32 ? 32 : tokens <= 128 ? 128 : tokens <= 512 ? 512 : 'big';
  return `attention_prefill:m${bucket}:h${heads}:kv${kvHeads}:d${headDim}`;
}

/**
 * The context class of a decode attention, from its cache's length: 256, 1024 or 4096 positions
 * (the last for anything longer). The serial kernel's one invocation per query walks every key, so
 * its ranking against the workgroup kernel turns with the context on a GPU with many lanes; the
 * candidates are timed at the bucket's length. The cache's length stands in for the context:
 * the backend does not see positions on the host.
 */
export function decodeContextBucket(maxSeq: number): number {
  return maxSeq <= 256 ? 256 : maxSeq <= 1024 ? 1024 : 4096;
}

/** Shape class of a decode attention: one query token or a batch (2–15), the head layout, the context bucket. */
export function attentionDecodeShapeKey(
  tokens: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  maxSeq: number,
): string {
  return `attention_decode:m${tokens <= 1 ? 1 : 8}:h${heads}:kv${kvHeads}:d${headDim}:c${decodeContextBucket(maxSeq)}`;
}

/** Shape class of a decode MLP half-layer: rows as 1 or 2–8, hidden, intermediate, o_proj's K, weight type. */
export function mlpDecodeShapeKey(m: number, hidden: number, intermediate: number, kO: number, dtype: string): string {
  return `mlp_decode:m${m <= 1 ? 1 : 8}:h${hidden}:i${intermediate}:o${kO}:${dtype}`;
}

/** Most flops one timed dispatch of a tuning run may cost: larger products are timed on a slice. */
const TUNE_MAX_FLOPS = 2e8;

/**
 * Rows (of independent outputs) to time a product on: all `rows` if that stays under
 * TUNE_MAX_FLOPS, else fewer, but at least 32 (a full tile). Every output row costs the same, so
 * the candidates' ranking holds on the slice while a 150k-row LM head's timing stays short.
 */
export function tuneSlice(rows: number, flopsPerRow: number): number {
  return Math.min(rows, Math.max(32, Math.floor(TUNE_MAX_FLOPS / flopsPerRow)));
}

export class KernelTuner {
  readonly adapterKey: string;
  private readonly forced: Partial<Record<KernelFamily, string>>;
  private readonly records = new Map<string, TuneRecord & { source: 'tuned' | 'cached' }>();
  /** Shape classes dispatched with a forced variant (shown in the summary, never timed). */
  private readonly forcedUses = new Set<string>();
  private all: Record<string, Record<string, TuneRecord>> = {};
  private tuningMs = 0;

  private constructor(
    gpu: Gpu,
    private readonly store: ChoiceStore,
    forcedSpec: string | undefined,
  ) {
    this.adapterKey = adapterKey(gpu);
    this.forced = parseForcedKernels(forcedSpec);
  }

  static async create(gpu: Gpu, opts: { forced?: string; store?: ChoiceStore } = {}): Promise<KernelTuner> {
    const tuner = new KernelTuner(gpu, opts.store ?? defaultStore(), opts.forced ?? kernelsEnv());
    tuner.all = await tuner.store.load();
    for (const [shape, r] of Object.entries(tuner.all[tuner.adapterKey] ?? {}))
      tuner.records.set(shape, { ...r, source: 'cached' });
    return tuner;
  }

  /** The variant to run for this shape class: forced, else tuned/cached, else `fallback`. */
  choice(family: KernelFamily, shapeKey: string, fallback: string): string {
    const forced = this.forced[family];
    if (forced) {
      this.forcedUses.add(shapeKey);
      return forced;
    }
    return this.records.get(shapeKey)?.choice ?? fallback;
  }

  /** The timed (or cached) milliseconds of each candidate of a shape class, if it was tuned. */
  timings(shapeKey: string): Record<string, number> | undefined {
    return this.records.get(shapeKey)?.ms;
  }

  needsTuning(family: KernelFamily, shapeKey: string): boolean {
    return !this.forced[family] && !this.records.has(shapeKey);
  }

  /** Record a timed choice (and persist every choice of this adapter). */
  async record(shapeKey: string, ms: Record<string, number>, spentMs: number): Promise<void> {
    const choice = Object.entries(ms).sort((a, b) => a[1] - b[1])[0][0];
    this.records.set(shapeKey, { choice, ms, source: 'tuned' });
    this.tuningMs += spentMs;
    this.all[this.adapterKey] = { ...(this.all[this.adapterKey] ?? {}), [shapeKey]: { choice, ms } };
    await this.store.save(this.all);
  }

  summary(): TuningSummary {
    const choices: TuningSummary['choices'] = {};
    for (const [shape, r] of this.records) {
      const family = shape.split(':')[0] as KernelFamily;
      choices[shape] = this.forced[family] ? { choice: this.forced[family]!, ms: {}, source: 'forced' } : r;
    }
    for (const shape of this.forcedUses) {
      const family = shape.split(':')[0] as KernelFamily;
      choices[shape] = { choice: this.forced[family]!, ms: {}, source: 'forced' };
    }
    return { adapterKey: this.adapterKey, choices, tuningMs: this.tuningMs };
  }
}

/** The [N, K] and weight type of every linear weight shard a model multiplies by (what GEMV sees). */
export function modelLinearShapes(
  model: Pick<LlamaModel, 'lmHead'> & { layers: readonly LayerWeights<unknown>[] },
): { n: number; k: number; dtype: 'f16' | 'f32' }[] {
  const out: { n: number; k: number; dtype: 'f16' | 'f32' }[] = [];
  const add = (w: unknown) => {
    const g = w as { cols?: number; dtype?: string; shards?: { rows: number }[] };
    if (!g?.shards || (g.dtype !== 'f16' && g.dtype !== 'f32')) return; // quantized or CPU weights
    for (const s of g.shards) out.push({ n: s.rows, k: g.cols!, dtype: g.dtype });
  };
  for (const L of model.layers) for (const w of [L.q, L.k, L.v, L.o, L.gate, L.up, L.down]) add(w);
  add(model.lmHead);
  return out;
}
