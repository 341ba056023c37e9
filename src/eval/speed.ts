/**
 * Speed benchmarks shared by `npm run bench` (Node) and the page's Benchmark view: per-kernel
 * GFLOP/s and whole-model prefill/decode tokens/s, WebGPU beside the CPU twin, on random weights
 * of a few Llama-layout sizes. Results are ratios measured side by side in one run; absolute
 * numbers on a software adapter are noise.
 */
import { parseConfig, type ModelConfig } from '../formats/config';
import { SYNTHETIC_CONFIGS, syntheticConfigJson, syntheticTensors } from '../model/synthetic';
import { randomInitTensors } from '../train/init';
import { Gpu } from '../gpu/device';
import { CpuBackend } from '../kernels/cpu';
import { GpuBackend } from '../kernels/gpu';
import type { AnyBackend } from '../kernels/backend';
import { LlamaModel, type KvCache } from '../model/llama';
import {
  candidatesOn,
  KernelTuner,
  modelLinearShapes,
  type GemmVariant,
  type GemvVariant,
  type TuningSummary,
} from '../kernels/autotune';

/** Let the backend's autotuner (if any) pick kernel variants for this model's shapes. */
async function tuneFor(backend: AnyBackend, model: LlamaModel): Promise<void> {
  if (backend instanceof GpuBackend && backend.tuner) await backend.autotune(modelLinearShapes(model));
}

export interface ModelSize {
  name: string;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  vocab: number;
}

/** Named by their parameter count (tied embeddings): 108,864, 3,033,344 and 18,455,040. */
export const BENCH_SIZES: ModelSize[] = [
  { name: 'tiny-0.11M', hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 176, vocab: 256 },
  { name: 'small-3.0M', hidden: 256, layers: 4, heads: 8, kvHeads: 4, intermediate: 688, vocab: 512 },
  { name: 'medium-18M', hidden: 512, layers: 6, heads: 8, kvHeads: 4, intermediate: 1376, vocab: 2048 },
];

export function benchConfig(s: ModelSize): ModelConfig {
  return {
    architecture: 'llama',
    hfArchitecture: 'LlamaForCausalLM',
    vocabSize: s.vocab,
    hiddenSize: s.hidden,
    intermediateSize: s.intermediate,
    numLayers: s.layers,
    numHeads: s.heads,
    numKvHeads: s.kvHeads,
    headDim: s.hidden / s.heads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 1024,
    tieWordEmbeddings: true,
    attentionBias: false,
    outputBias: false,
    qkNorm: false,
    bosTokenId: null,
    eosTokenIds: [],
    slidingWindow: null,
    torchDtype: 'float32',
  };
}

export interface KernelResult {
  kernel: string;
  shape: string;
  webgpuGflops: number;
  cpuGflops: number;
}

export interface ModelResult {
  model: string;
  params: number;
  backend: string;
  prefillTokens: number;
  prefillTokensPerS: number;
  decodeTokensPerS: number;
  /** Decode steps timed (after the prefill; the roofline's decode position). */
  decodeSteps?: number;
}

async function timeIt(fn: () => Promise<void>, minMs = 300, maxRuns = 20): Promise<number> {
  await fn(); // warm-up: pipeline compilation, buffer pools
  const t0 = performance.now();
  let runs = 0;
  while (runs < maxRuns && (runs === 0 || performance.now() - t0 < minMs)) {
    await fn();
    runs++;
  }
  return (performance.now() - t0) / runs;
}

/** GFLOP/s of the forward matmul (GEMM and GEMV paths), WebGPU vs the CPU twin. */
export async function benchmarkKernels(
  gpu: Gpu,
  shapes: [number, number, number][] = [
    [1, 1024, 1024],
    [128, 512, 512],
    [256, 1024, 1024],
  ],
): Promise<KernelResult[]> {
  const g = await GpuBackend.create(gpu, 'f32');
  const cpu = new CpuBackend();
  const results: KernelResult[] = [];
  for (const [m, n, k] of shapes) {
    const x = new Float32Array(m * k).map((_, i) => Math.sin(i));
    const w = new Float32Array(n * k).map((_, i) => Math.cos(i));
    const gx = g.fromHost(x);
    const gw = g.weight('bench.w', w, n, k);
    const gout = g.tensor(m * n);
    const cw = cpu.weight('w', w, n, k);
    const cout = new Float32Array(m * n);
    const cpuMs = await timeIt(async () => cpu.matmul(x, cw, null, m, cout), 200, 3);
    const flops = 2 * m * n * k;
    // Every candidate of the family side by side (what the autotuner chooses between).
    const family = m <= 8 ? 'gemv' : 'gemm';
    for (const variant of candidatesOn(gpu, family)) {
      if (family === 'gemv') g.gemvKernel = variant as GemvVariant;
      else g.gemmKernel = variant as GemmVariant;
      const gpuMs = await timeIt(async () => {
        g.matmul(gx, gw, null, m, gout);
        await g.toHost(gout, 1);
      });
      results.push({
        kernel: `matmul (${family}, ${variant})`,
        shape: `${m}x${n}x${k}`,
        webgpuGflops: flops / gpuMs / 1e6,
        cpuGflops: flops / cpuMs / 1e6,
      });
    }
    g.gemvKernel = 'auto';
    g.gemmKernel = 'auto';
    g.free(gx);
    g.free(gout);
    g.freeWeight(gw);
  }
  return results;
}

/**
 * Causal attention over a prefilled cache (`seqs` sequences of `len` tokens, each in its own slot):
 * the prefill family's kernels and the decode family's side by side, and the CPU twin.
 * GFLOP/s count 4 * headDim flops per (query head, visible key): q.k and the weighted sum of v.
 */
export async function benchmarkAttention(
  gpu: Gpu,
  shapes: { seqs: number; len: number; heads: number; kvHeads: number; headDim: number }[] = [
    { seqs: 4, len: 128, heads: 4, kvHeads: 2, headDim: 24 },
    { seqs: 2, len: 256, heads: 8, kvHeads: 8, headDim: 64 },
  ],
): Promise<KernelResult[]> {
  const g = await GpuBackend.create(gpu, 'f32');
  const cpu = new CpuBackend();
  const results: KernelResult[] = [];
  for (const { seqs, len, heads, kvHeads, headDim } of shapes) {
    const tokens = seqs * len;
    const kvDim = kvHeads * headDim;
    const slots = Uint32Array.from({ length: tokens }, (_, t) => Math.floor(t / len));
    const positions = Uint32Array.from({ length: tokens }, (_, t) => t % len);
    const q = new Float32Array(tokens * heads * headDim).map((_, i) => Math.sin(i));
    const cacheK = new Float32Array(seqs * len * kvDim).map((_, i) => Math.cos(i));
    const cacheV = new Float32Array(seqs * len * kvDim).map((_, i) => Math.sin(2 * i));
    const flops = 4 * headDim * heads * seqs * ((len * (len + 1)) / 2);
    const gq = g.fromHost(q);
    const [gk, gv] = [g.fromHost(cacheK), g.fromHost(cacheV)];
    const [gs, gp] = [g.indices(slots), g.indices(positions)];
    const gout = g.tensor(q.length);
    const cout = new Float32Array(q.length);
    const cpuMs = await timeIt(
      async () => cpu.attention(q, cacheK, cacheV, slots, positions, tokens, heads, kvHeads, headDim, len, cout),
      200,
      3,
    );
    // Candidates of the prefill family and of the decode family (what the autotuner chooses
    // between), each on the whole prefill.
    const kernels = [
      ['tiled', 'tiled'],
      ['tiled', 'splitd'],
      ['decode', 'workgroup'],
      ['decode', 'serial'],
    ] as const;
    for (const [family, variant] of kernels) {
      g.attentionKernel = family;
      if (family === 'tiled') g.attentionPrefillKernel = variant;
      else g.attentionDecodeKernel = variant;
      const gpuMs = await timeIt(async () => {
        g.attention(gq, gk, gv, gs, gp, tokens, heads, kvHeads, headDim, len, gout);
        await g.toHost(gout, 1);
      });
      results.push({
        kernel: `attention (${family === 'tiled' ? 'prefill' : 'decode'}, ${variant})`,
        shape: `${seqs}x${len} tokens, ${heads}/${kvHeads} heads x ${headDim}`,
        webgpuGflops: flops / gpuMs / 1e6,
        cpuGflops: flops / cpuMs / 1e6,
      });
    }
    g.attentionKernel = 'auto';
    g.attentionPrefillKernel = 'auto';
    g.attentionDecodeKernel = 'auto';
    for (const t of [gq, gk, gv, gout]) g.free(t);
    g.freeIndices(gs);
    g.freeIndices(gp);
  }
  return results;
}

/** Prefill (one sequence of `prefillTokens`) and decode (`decodeSteps` single-token steps) tokens/s. */
export async function benchmarkModel(
  backend: AnyBackend,
  size: ModelSize,
  prefillTokens = 64,
  decodeSteps = 16,
): Promise<ModelResult> {
  const config = benchConfig(size);
  const tensors = randomInitTensors(config, 1);
  let params = 0;
  for (const t of tensors.values()) params += t.shape.reduce((a, b) => a * b, 1);
  const model = LlamaModel.fromTensors(backend, config, tensors, prefillTokens + decodeSteps + 1);
  await tuneFor(backend, model);
  const cache = model.createCache(1, prefillTokens + decodeSteps + 1);
  const ids = Uint32Array.from({ length: prefillTokens }, (_, i) => (i * 7) % size.vocab);
  const prefill = () =>
    model.forward(
      {
        ids,
        positions: Uint32Array.from(ids, (_, i) => i),
        slots: new Uint32Array(prefillTokens),
        logitRows: [prefillTokens - 1],
      },
      cache,
    );
  await prefill(); // warm-up
  let t0 = performance.now();
  await prefill();
  const prefillMs = performance.now() - t0;
  t0 = performance.now();
  for (let s = 0; s < decodeSteps; s++) {
    await model.forward(
      {
        ids: Uint32Array.of(s % size.vocab),
        positions: Uint32Array.of(prefillTokens + s),
        slots: Uint32Array.of(0),
        logitRows: [0],
      },
      cache,
    );
  }
  const decodeMs = performance.now() - t0;
  model.freeCache(cache);
  model.dispose();
  return {
    model: size.name,
    params,
    backend: backend.name,
    prefillTokens,
    prefillTokensPerS: (prefillTokens / prefillMs) * 1000,
    decodeTokensPerS: (decodeSteps / decodeMs) * 1000,
    decodeSteps,
  };
}

export interface DecodeVariant {
  /** 'webgpu (separate ops)', 'webgpu (fused)', 'webgpu (fused, greedy burst of 8)' or 'cpu twin'. */
  variant: string;
  /** Kernel dispatches one decode step records (null on the CPU). */
  dispatchesPerStep: number | null;
  /**
   * Median milliseconds of one single-token decode step (logits back on the host; in a greedy
   * burst, the burst's time over its steps, only its tokens back).
   */
  stepMs: number;
  decodeTokensPerS: number;
}

export interface DecodeResult {
  model: string;
  params: number;
  variants: DecodeVariant[];
}

/** Steps of the greedy-burst decode variant (Generator's default burst). */
const BENCH_BURST = 8;

/**
 * Single-sequence decode, four ways on the same random weights: WebGPU with the separate ops,
 * WebGPU with decode's fused ops (model.fusedDecode), the fused ops in greedy bursts of 8 steps on
 * the device (model.greedyDecode, what the Generator runs for greedy requests), and the CPU twin.
 * The four take turns of BENCH_BURST tokens (one burst, or that many single steps, each timed) so
 * load on a shared machine falls on all of them alike and all of them attend over the same
 * positions; each figure is the median of its warm steps over `steps` turns (a burst counts as its
 * time over its steps).
 */
export async function benchmarkDecode(
  backend: GpuBackend,
  size: ModelSize,
  promptTokens = 32,
  steps = 16,
): Promise<DecodeResult> {
  const config = benchConfig(size);
  const tensors = randomInitTensors(config, 1);
  let params = 0;
  for (const t of tensors.values()) params += t.shape.reduce((a, b) => a * b, 1);
  const maxSeq = promptTokens + (steps + 1) * BENCH_BURST + 2;
  const gpuModel = LlamaModel.fromTensors(backend as AnyBackend, config, tensors, maxSeq);
  await tuneFor(backend, gpuModel);
  const cpuModel = LlamaModel.fromTensors(new CpuBackend() as AnyBackend, config, randomInitTensors(config, 1), maxSeq);
  type Run = {
    variant: string;
    model: LlamaModel;
    fused: boolean;
    burst: number;
    pos: number;
    cache: KvCache<unknown>;
    times: number[];
    dispatches: number | null;
  };
  const runs: Run[] = [
    { variant: 'webgpu (separate ops)', model: gpuModel, fused: false, burst: 1 },
    { variant: 'webgpu (fused)', model: gpuModel, fused: true, burst: 1 },
    { variant: `webgpu (fused, greedy burst of ${BENCH_BURST})`, model: gpuModel, fused: true, burst: BENCH_BURST },
    { variant: 'cpu twin', model: cpuModel, fused: true, burst: 1 },
  ].map((r) => ({ ...r, pos: promptTokens, cache: r.model.createCache(1, maxSeq), times: [], dispatches: null }));
  const ids = Uint32Array.from({ length: promptTokens }, (_, i) => (i * 7) % size.vocab);
  /** One step (or burst) from the run's position; returns its milliseconds per token. */
  const step = async (r: Run): Promise<number> => {
    r.model.fusedDecode = r.fused;
    const before = backend.dispatches;
    const t0 = performance.now();
    const batch = {
      ids: Uint32Array.of((r.pos * 3) % size.vocab),
      positions: Uint32Array.of(r.pos),
      slots: Uint32Array.of(0),
    };
    if (r.burst > 1) await r.model.greedyDecode(batch, r.cache, r.burst);
    else await r.model.forward({ ...batch, logitRows: [0] }, r.cache);
    const ms = (performance.now() - t0) / r.burst;
    if (r.model.backend === backend) r.dispatches = (backend.dispatches - before) / r.burst;
    r.pos += r.burst;
    return ms;
  };
  /** One turn: BENCH_BURST tokens, as one burst or as single steps (each step's time kept). */
  const turn = async (r: Run): Promise<number[]> => {
    const times: number[] = [];
    for (let t = 0; t < BENCH_BURST; t += r.burst) times.push(await step(r));
    return times;
  };
  for (const r of runs) {
    r.model.fusedDecode = r.fused;
    await r.model.forward(
      {
        ids,
        positions: Uint32Array.from(ids, (_, i) => i),
        slots: new Uint32Array(promptTokens),
        logitRows: [promptTokens - 1],
      },
      r.cache,
    );
    await turn(r); // warm-up: the decode shapes' pipelines and bind groups
  }
  for (let s = 1; s <= steps; s++) for (const r of runs) r.times.push(...(await turn(r)));
  for (const r of runs) r.model.freeCache(r.cache);
  gpuModel.dispose();
  gpuModel.fusedDecode = true;
  return {
    model: size.name,
    params,
    variants: runs.map((r) => {
      const sorted = [...r.times].sort((a, b) => a - b);
      const stepMs = sorted[sorted.length >> 1];
      return { variant: r.variant, dispatchesPerStep: r.dispatches, stepMs, decodeTokensPerS: 1000 / stepMs };
    }),
  };
}

export interface TrainResult {
  model: string;
  mode: 'lora' | 'full';
  backend: string;
  batch: number;
  seqLen: number;
  stepMs: number;
  tokensPerS: number;
  /** Peak bytes of GPU buffers allocated during the run (weights + activations + optimizer); null on the CPU. */
  peakGpuBytes: number | null;
}

/** Training steps per second on random data: one micro-batch of `batch` x `seqLen` tokens per step. */
export async function benchmarkTraining(
  backend: AnyBackend,
  size: ModelSize,
  mode: 'lora' | 'full',
  batch = 4,
  seqLen = 64,
  steps = 3,
): Promise<TrainResult> {
  const { Trainer, DEFAULT_TRAIN_OPTIONS } = await import('../train/trainer');
  const gpu = backend instanceof GpuBackend ? backend.gpu : null;
  gpu?.resetPeak();
  const baseline = gpu ? gpu.memoryStats().allocatedBytes : 0;
  const config = benchConfig(size);
  const model = LlamaModel.fromTensors(backend, config, randomInitTensors(config, 1), seqLen);
  const examples = Array.from({ length: batch * (steps + 1) }, (_, r) => {
    const ids = Array.from({ length: seqLen }, (_, i) => (r * 31 + i * 7) % size.vocab);
    return { inputIds: ids, labels: ids };
  });
  const trainer = new Trainer(model, examples, {
    ...DEFAULT_TRAIN_OPTIONS,
    mode,
    batchSize: batch,
    steps: steps + 1,
    targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    rank: 8,
    alpha: 16,
  });
  await trainer.step(); // warm-up
  const t0 = performance.now();
  let tokens = 0;
  for (let i = 0; i < steps; i++) tokens += (await trainer.step()).tokens;
  const ms = (performance.now() - t0) / steps;
  // Peak above what was allocated before this run: weights, activations, gradients, optimizer state.
  const peak = gpu ? gpu.memoryStats().peakBytes - baseline : null;
  trainer.dispose();
  model.dispose();
  return {
    model: size.name,
    mode,
    backend: backend.name,
    batch,
    seqLen,
    stepMs: ms,
    tokensPerS: (tokens / steps / ms) * 1000,
    peakGpuBytes: peak,
  };
}

export interface BatchDecodeResult {
  model: string;
  batch: number;
  /** Milliseconds of one decode step of one sequence, and of `batch` sequences in one forward. */
  singleStepMs: number;
  batchStepMs: number;
  /** batchStepMs / singleStepMs: well under `batch` means batching pays. */
  ratio: number;
  /** Kernel dispatches one decode step records (WebGPU only; null on the CPU). */
  dispatchesPerStep: number | null;
}

/**
 * Decode cost of a batch (the debate's agents, one token each, in their own cache slots) against
 * one sequence, warm medians over `steps` steps each, and the dispatches one step records.
 */
export async function benchmarkBatchDecode(
  backend: AnyBackend,
  size: ModelSize,
  batch = 5,
  promptTokens = 32,
  steps = 8,
): Promise<BatchDecodeResult> {
  const config = benchConfig(size);
  const model = LlamaModel.fromTensors(backend, config, randomInitTensors(config, 1), promptTokens + 2 * steps + 2);
  await tuneFor(backend, model);
  const maxSeq = promptTokens + 2 * steps + 2;
  const cache = model.createCache(batch, maxSeq);
  const n = batch * promptTokens;
  await model.forward(
    {
      ids: Uint32Array.from({ length: n }, (_, i) => (i * 7) % size.vocab),
      positions: Uint32Array.from({ length: n }, (_, i) => i % promptTokens),
      slots: Uint32Array.from({ length: n }, (_, i) => Math.floor(i / promptTokens)),
      logitRows: [n - 1],
    },
    cache,
  );
  let pos = promptTokens;
  const step = (rows: number) =>
    model.forward(
      {
        ids: Uint32Array.from({ length: rows }, (_, r) => (pos * 3 + r) % size.vocab),
        positions: new Uint32Array(rows).fill(pos),
        slots: Uint32Array.from({ length: rows }, (_, r) => r),
        logitRows: Array.from({ length: rows }, (_, r) => r),
      },
      cache,
    );
  const timeSteps = async (rows: number): Promise<number> => {
    const times: number[] = [];
    for (let s = 0; s < steps; s++) {
      const t0 = performance.now();
      await step(rows);
      times.push(performance.now() - t0);
      pos++;
    }
    times.sort((a, b) => a - b);
    return times[times.length >> 1];
  };
  await step(batch); // warm-up of the batch shapes (the prefill warmed nothing of decode)
  await step(1);
  pos++;
  const gpuBackend = backend instanceof GpuBackend ? backend : null;
  const before = gpuBackend?.dispatches ?? 0;
  await step(1);
  const dispatchesPerStep = gpuBackend ? gpuBackend.dispatches - before : null;
  pos++;
  const singleStepMs = await timeSteps(1);
  const batchStepMs = await timeSteps(batch);
  model.freeCache(cache);
  model.dispose();
  return { model: size.name, batch, singleStepMs, batchStepMs, ratio: batchStepMs / singleStepMs, dispatchesPerStep };
}

export interface SpeedReport {
  adapter: string;
  kernels: KernelResult[];
  models: ModelResult[];
  training: TrainResult[];
  /** Optional so reports built elsewhere (the app's Benchmark page) need not carry them. */
  batchDecode?: (BatchDecodeResult & { backend: string })[];
  /** Our runtime beside onnxruntime-web's WebGPU EP on the same weights and adapter. */
  peer?: import('./ort-peer').PeerResult[];
  /** Single-sequence decode: WebGPU separate ops, WebGPU fused, CPU twin (dispatches per step, tokens/s). */
  decode?: DecodeResult[];
  /** Buffer-copy bandwidth of the adapter (the decode roofline; src/eval/roofline.ts). */
  copyBandwidth?: import('./roofline').CopyBandwidth;
  /** The autotuner's choices on this adapter and the time spent timing candidates. */
  tuning?: TuningSummary;
}

export type BenchSection = 'kernels' | 'models' | 'training' | 'batch' | 'peer' | 'decode';
export const BENCH_SECTIONS: readonly BenchSection[] = ['kernels', 'models', 'training', 'batch', 'peer', 'decode'];

/** A real model's exact config with random weights (src/model/synthetic.ts), e.g. Qwen2.5-0.5B at 2 layers. */
export interface SyntheticPeerModel {
  name: string;
  synthetic: string;
  layers: number;
}

/** `qwen2.5-0.5b:2` → that config at 2 layers; null when the name is not of that form. */
export function parseSyntheticPeer(spec: string): SyntheticPeerModel | null {
  const m = /^([\w.-]+):(\d+)$/.exec(spec.trim());
  if (!m || !(m[1] in SYNTHETIC_CONFIGS)) return null;
  return { name: `${m[1]} (${m[2]} layers)`, synthetic: m[1], layers: Number(m[2]) };
}

function syntheticPeerModel(spec: SyntheticPeerModel) {
  const config = parseConfig(syntheticConfigJson(spec.synthetic, spec.layers));
  return { name: spec.name, config, tensors: syntheticTensors(config, 1) };
}

export interface SpeedOptions {
  sizes?: ModelSize[];
  cpuTwin?: boolean;
  /** Sections to run (default all). */
  sections?: readonly BenchSection[];
  /** false: no autotuner (the register-tiled GEMV everywhere unless AGENTARK_KERNELS forces one). */
  autotune?: boolean;
  /** Models compared with onnxruntime-web (default the 3.0M model; each one costs an ORT session). */
  peerSizes?: (ModelSize | SyntheticPeerModel)[];
  log?: (line: string) => void;
}

export async function runSpeedBenchmarks(opts: SpeedOptions = {}): Promise<SpeedReport> {
  const log = opts.log ?? (() => {});
  const sections = new Set(opts.sections ?? BENCH_SECTIONS);
  if (sections.has('peer')) {
    // onnxruntime-web's WebGPU EP finds the adapter through navigator.gpu: in Node, provide it
    // before our device is created, so both runtimes sit on one Dawn instance and adapter.
    const { provideNavigatorGpu } = await import('../export/ort');
    await provideNavigatorGpu();
  }
  const gpu = await Gpu.create();
  const report: SpeedReport & Required<Pick<SpeedReport, 'batchDecode' | 'peer'>> = {
    adapter: gpu.describe(),
    kernels: [],
    models: [],
    training: [],
    batchDecode: [],
    peer: [],
  };
  log(`adapter: ${report.adapter}`);
  if (sections.has('kernels')) {
    report.kernels = [...(await benchmarkKernels(gpu)), ...(await benchmarkAttention(gpu))];
    const { measureCopyBandwidth } = await import('./roofline');
    report.copyBandwidth = await measureCopyBandwidth(gpu);
    log(`copy bandwidth: ${(report.copyBandwidth.bytesPerS / 1e9).toFixed(2)} GB/s (read + written)`);
    for (const k of report.kernels)
      log(
        `kernel ${k.kernel} ${k.shape}: webgpu ${k.webgpuGflops.toFixed(2)} GFLOP/s, cpu twin ${k.cpuGflops.toFixed(2)} GFLOP/s`,
      );
  }
  const backend = await GpuBackend.create(gpu, 'f32');
  const tuner = opts.autotune === false ? null : await KernelTuner.create(gpu);
  backend.tuner = tuner;
  if (sections.has('decode')) {
    report.decode = [];
    for (const size of opts.sizes ?? BENCH_SIZES) {
      const r = await benchmarkDecode(backend, size);
      report.decode.push(r);
      const cpu = r.variants.find((v) => v.dispatchesPerStep === null)!;
      for (const v of r.variants)
        log(
          `decode ${r.model} ${v.variant}: ${v.decodeTokensPerS.toFixed(1)} tok/s (${v.stepMs.toFixed(2)} ms/step, ` +
            `x${(v.decodeTokensPerS / cpu.decodeTokensPerS).toFixed(2)} of the CPU twin)` +
            `${v.dispatchesPerStep !== null ? `, ${v.dispatchesPerStep} dispatches/step` : ''}`,
        );
    }
  }
  if (sections.has('batch')) {
    for (const size of opts.sizes ?? BENCH_SIZES) {
      const backends: AnyBackend[] = opts.cpuTwin === false ? [backend] : [backend, new CpuBackend()];
      for (const b of backends) {
        const r = { ...(await benchmarkBatchDecode(b, size)), backend: b.name };
        report.batchDecode.push(r);
        log(
          `batch decode ${r.model} on ${r.backend}: 1 sequence ${r.singleStepMs.toFixed(2)} ms/step, ` +
            `${r.batch} sequences ${r.batchStepMs.toFixed(2)} ms/step (x${r.ratio.toFixed(2)})` +
            `${r.dispatchesPerStep !== null ? `, ${r.dispatchesPerStep} dispatches/step` : ''}`,
        );
      }
    }
  }
  for (const size of sections.has('models') ? (opts.sizes ?? BENCH_SIZES) : []) {
    const backends: AnyBackend[] = opts.cpuTwin === false ? [backend] : [backend, new CpuBackend()];
    for (const b of backends) {
      const r = await benchmarkModel(b, size);
      report.models.push(r);
      log(
        `model ${r.model} (${(r.params / 1e6).toFixed(2)}M params) on ${r.backend}: ` +
          `prefill ${r.prefillTokensPerS.toFixed(1)} tok/s, decode ${r.decodeTokensPerS.toFixed(1)} tok/s`,
      );
    }
  }
  // Training: the two smaller sizes (the CPU twin is too slow beyond), LoRA and full, side by side.
  for (const size of sections.has('training') ? (opts.sizes ?? BENCH_SIZES).slice(0, 2) : []) {
    for (const mode of ['lora', 'full'] as const) {
      const backends: AnyBackend[] = opts.cpuTwin === false ? [backend] : [backend, new CpuBackend()];
      for (const b of backends) {
        const r = await benchmarkTraining(b, size, mode);
        report.training.push(r);
        log(
          `train ${r.model} ${r.mode} on ${r.backend}: ${r.tokensPerS.toFixed(1)} tok/s, ${r.stepMs.toFixed(0)} ms/step` +
            `${r.peakGpuBytes !== null ? `, peak GPU buffers ${(r.peakGpuBytes / 2 ** 20).toFixed(1)} MiB` : ''}`,
        );
      }
    }
  }
  // onnxruntime-web goes last: after its sessions, everything else in the process ran about 3x
  // slower here (decode of small-3.0M, WebGPU 3.3 -> 12.1 ms a step and the CPU twin 6.2 -> 13 ms),
  // so sections after it would measure its leftovers rather than our kernels.
  if (sections.has('peer')) {
    const { benchmarkOrtPeer, benchmarkOrtPeerOn } = await import('./ort-peer');
    for (const size of opts.peerSizes ?? [BENCH_SIZES[1]])
      report.peer.push(
        'synthetic' in size
          ? // A real model's vocabulary (152K for Qwen2.5) makes each onnxruntime-web decode step take
            // seconds on a software adapter: fewer steps and runs.
            await benchmarkOrtPeerOn(gpu, syntheticPeerModel(size), { log, tuner, runs: 3, decodeSteps: 4 })
          : await benchmarkOrtPeer(gpu, size, { log, tuner }),
      );
  }
  if (tuner) {
    report.tuning = tuner.summary();
    const t = report.tuning;
    log(
      `autotuner: ${Object.keys(t.choices).length} shape classes, ${(t.tuningMs / 1000).toFixed(1)} s timing candidates in this run`,
    );
  }
  return report;
}
