/**
 * `agentark bench --model`: how fast *this* model runs here — cold load, then warm prefill and
 * decode tokens/s and one LoRA training step (after a warm-up pass, median of --runs), the peak
 * GPU bytes measured by the GPU layer next to the memory planner's estimate for the same plan.
 */
import { loadCheckpoint, type Checkpoint } from '../formats/checkpoint';
import { PROJECTIONS, parseConfig, type Projection } from '../formats/config';
import { Gpu } from '../gpu/device';
import { GpuBackend } from '../kernels/gpu';
import { autotuneFromEnv, KernelTuner } from '../kernels/autotune';
import { describeChoices } from '../kernels/tuning-report';
import { CpuBackend } from '../kernels/cpu';
import type { AnyBackend } from '../kernels/backend';
import { LlamaModel } from '../model/llama';
import { checkMemoryPlan, estimatePeakBytes, type MemoryPlanOptions } from '../model/memory';
import { syntheticConfigJson, syntheticTensors } from '../model/synthetic';
import { quantizeWeights } from '../quant/weights';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../train/trainer';
import type { PeerResult } from '../eval/ort-peer';
import { floatFlag, intFlag, parseFlags, quantizeFlag, stderrProgress, UsageError } from './args';

const USAGE = `usage: agentark bench (--model <dir|url|hf-id> | --synthetic qwen2.5-0.5b [--layers N])
       [--quantize q8|q4] [--dtype auto|f16|f32] [--batch B] [--seq N] [--decode-tokens N] [--runs R]
       [--rank R] [--targets all|q_proj,v_proj,...] [--recompute] [--no-train] [--memory-budget MIB]
       [--backend webgpu|cpu] [--peer] [--json]

  Loads the model (cold load timed separately: read, quantize or read the quantized cache, upload),
  then measures one QLoRA/LoRA step on batch B x N random tokens (rank 16 on all linear layers by
  default), prefill of N tokens and --decode-tokens single-token decode steps: each after a warm-up
  pass, the median of --runs (default 3). --synthetic builds a checkpoint with that model's exact
  config and random weights (all its layers, or --layers N). --json prints one object with
  prefillTokensPerS, decodeTokensPerS, trainStepS, peakGpuBytes, estimatedPeakGpuBytes, adapter.
  --peer also runs the same weights (f32 on both sides, whatever --quantize says) through
  onnxruntime-web's WebGPU execution provider on this adapter (the graph \`agentark export\` writes):
  warm prefill of N tokens and decode, the median of --runs, and the ratio (its time / ours).`;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function timed<R>(fn: () => Promise<R>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(
    argv,
    {
      model: { type: 'string' },
      synthetic: { type: 'string' },
      layers: { type: 'string' },
      quantize: { type: 'string' },
      dtype: { type: 'string' },
      batch: { type: 'string' },
      seq: { type: 'string' },
      'decode-tokens': { type: 'string' },
      runs: { type: 'string' },
      rank: { type: 'string' },
      targets: { type: 'string' },
      recompute: { type: 'boolean' },
      'no-train': { type: 'boolean' },
      'memory-budget': { type: 'string' },
      backend: { type: 'string' },
      peer: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    USAGE,
  );
  if (!v) return 0;
  if (Boolean(v.model) === Boolean(v.synthetic))
    throw new UsageError(`give exactly one of --model or --synthetic\n\n${USAGE}`);
  const quantize = quantizeFlag(v.quantize as string | undefined);
  const batch = intFlag(v.batch as string | undefined, 'batch', 1);
  const seq = intFlag(v.seq as string | undefined, 'seq', 128);
  const decodeTokens = intFlag(v['decode-tokens'] as string | undefined, 'decode-tokens', 16);
  const runs = intFlag(v.runs as string | undefined, 'runs', 3);
  const rank = intFlag(v.rank as string | undefined, 'rank', 16);
  if (batch < 1 || seq < 2 || decodeTokens < 1 || runs < 1 || rank < 1)
    throw new UsageError('--batch, --runs, --rank and --decode-tokens must be at least 1, --seq at least 2');
  const targetsFlag = (v.targets as string | undefined) ?? 'all';
  const targets = (
    targetsFlag === 'all' ? [...PROJECTIONS] : targetsFlag.split(',').map((s) => s.trim())
  ) as Projection[];
  for (const t of targets)
    if (!(PROJECTIONS as readonly string[]).includes(t))
      throw new UsageError(`unknown target module '${t}'; choose from ${PROJECTIONS.join(', ')} or all`);
  if (v.peer && v.backend === 'cpu') throw new UsageError('--peer compares WebGPU runtimes: it needs --backend webgpu');
  const dtype = (v.dtype as string | undefined) ?? 'auto';
  if (!['auto', 'f16', 'f32'].includes(dtype)) throw new UsageError(`--dtype must be auto, f16 or f32, got '${dtype}'`);
  const log = v.json ? () => {} : (line: string) => process.stderr.write(`${line}\n`);
  const contextLength = seq + decodeTokens + 1;

  // ---- cold load: files (or a synthetic checkpoint), quantization or its cache, upload ----
  let gpu: Gpu | null = null;
  let backend: AnyBackend;
  if (v.backend === 'cpu') backend = new CpuBackend();
  else if (v.backend === undefined || v.backend === 'webgpu') gpu = await Gpu.create();
  else throw new UsageError(`--backend must be webgpu or cpu, got '${v.backend}'`);
  try {
    const t0 = performance.now();
    let ckpt: Pick<Checkpoint, 'config' | 'tensors' | 'source'>;
    if (v.synthetic) {
      const config = parseConfig(
        syntheticConfigJson(v.synthetic as string, intFlag(v.layers as string | undefined, 'layers')),
      );
      log(`building a synthetic ${v.synthetic} checkpoint (${config.numLayers} layers, random weights)...`);
      ckpt = { config, tensors: syntheticTensors(config, 1), source: `synthetic:${v.synthetic}` };
    } else {
      ckpt = await loadCheckpoint(v.model as string, {
        loadTokenizer: false,
        onProgress: v.json ? undefined : stderrProgress('load'),
      });
    }
    const c = ckpt.config;
    const readS = (performance.now() - t0) / 1000;
    if (gpu) {
      const halfFile = [...ckpt.tensors.values()].some((t) => t.dtype !== 'F32');
      const gpuBackend = await GpuBackend.create(
        gpu,
        dtype === 'auto' ? (gpu.features.f16 && halfFile ? 'f16' : 'f32') : (dtype as 'f16' | 'f32'),
      );
      // Kernel variants are timed at first use, i.e. in the warm-up passes, never in a timed run.
      if (autotuneFromEnv()) gpuBackend.tuner = await KernelTuner.create(gpu);
      backend = gpuBackend;
    }
    backend = backend!;
    const weights = quantize ?? backend.weightType;
    const plan: MemoryPlanOptions = {
      weights,
      contextLength,
      maxBindingBytes: gpu?.weightShardBytes,
      train: v['no-train'] ? undefined : { batch, seqLen: seq, rank, targets, recompute: Boolean(v.recompute) },
      maxBatch: 1,
      prefillTokens: seq,
    };
    const estimate = await estimatePeakBytes(c, plan);
    if (gpu) {
      const budget = floatFlag(v['memory-budget'] as string | undefined, 'memory-budget');
      checkMemoryPlan(
        estimate,
        {
          maxBufferSize: gpu.info.maxBufferSize,
          maxStorageBufferBindingSize: gpu.info.maxStorageBufferBindingSize,
          budgetBytes: budget === undefined ? undefined : budget * 2 ** 20,
        },
        plan,
      );
    }
    log(
      `memory plan: ${estimate.describe}: about ${(estimate.peakBytes / 2 ** 20).toFixed(0)} MiB peak, ` +
        `weights ${(estimate.weightBytes / 2 ** 20).toFixed(0)} MiB`,
    );
    const t1 = performance.now();
    const q = quantize
      ? await quantizeWeights(c, ckpt.tensors, quantize, { onProgress: v.json ? undefined : stderrProgress('load') })
      : null;
    const quantizeS = (performance.now() - t1) / 1000;
    const model = LlamaModel.fromTensors(backend, c, ckpt.tensors, contextLength, q?.matrices);
    // The peer needs the host weights after our model is measured; otherwise free them now.
    if (!v.peer) ckpt.tensors.clear();
    backend.flush();
    const coldLoadS = (performance.now() - t0) / 1000;
    const weightGpuBytes = gpu ? gpu.memoryStats().allocatedBytes : null;
    log(
      `cold load ${coldLoadS.toFixed(1)} s (read ${readS.toFixed(1)} s, ` +
        `${quantize ? `${q!.fromCache ? 'quantized weights from the cache' : 'quantize'} ${quantizeS.toFixed(1)} s, ` : ''}upload)`,
    );

    // ---- one training step (first, so the measured peak is the step's, not inference leftovers) ----
    let trainStepS: number | null = null;
    if (plan.train) {
      const ids = Array.from({ length: seq }, (_, i) => (i * 7919 + 13) % c.vocabSize);
      const trainer = new Trainer(model, [{ inputIds: ids, labels: ids }], {
        ...DEFAULT_TRAIN_OPTIONS,
        rank,
        alpha: rank,
        targets,
        batchSize: batch,
        steps: runs + 1,
        recompute: Boolean(v.recompute),
      });
      const micro = {
        inputIds: Uint32Array.from({ length: batch * seq }, (_, i) => ids[i % seq]),
        labels: Int32Array.from({ length: batch * seq }, (_, i) => ids[i % seq]),
        batch,
        seqLen: seq,
      };
      const times: number[] = [];
      for (let r = 0; r <= runs; r++) {
        const s = await timed(() => trainer.stepOn([micro]));
        if (r > 0) times.push(s);
        log(`train step ${r === 0 ? 'warm-up' : r}: ${s.toFixed(2)} s`);
      }
      trainStepS = median(times);
      trainer.dispose();
      model.setAdapter(null);
    }
    // With training, the plan (and so the comparison) is the step's; without, generation's.
    let peakGpuBytes = gpu ? gpu.memoryStats().peakBytes : null;

    // ---- prefill and decode ----
    const cache = model.createCache(1, contextLength);
    const promptIds = Uint32Array.from({ length: seq }, (_, i) => (i * 7 + 1) % c.vocabSize);
    const prefill = () =>
      model.forward(
        {
          ids: promptIds,
          positions: Uint32Array.from(promptIds, (_, i) => i),
          slots: new Uint32Array(seq),
          logitRows: [seq - 1],
        },
        cache,
      );
    const decode = async () => {
      for (let s = 0; s < decodeTokens; s++) {
        await model.forward(
          {
            ids: Uint32Array.of((s * 31 + 5) % c.vocabSize),
            positions: Uint32Array.of(seq + s),
            slots: Uint32Array.of(0),
            logitRows: [0],
          },
          cache,
        );
      }
    };
    const prefillS: number[] = [];
    const decodeS: number[] = [];
    for (let r = 0; r <= runs; r++) {
      const p = await timed(prefill);
      const d = await timed(decode);
      if (r > 0) {
        prefillS.push(p);
        decodeS.push(d);
      }
      log(
        `prefill ${seq} tokens ${p.toFixed(2)} s, decode ${decodeTokens} tokens ${d.toFixed(2)} s${r === 0 ? ' (warm-up)' : ''}`,
      );
    }
    model.freeCache(cache);
    if (gpu && !plan.train) peakGpuBytes = gpu.memoryStats().peakBytes;
    model.dispose();

    // ---- onnxruntime-web on the same weights and adapter ----
    let peer: PeerResult | null = null;
    if (v.peer && gpu) {
      const { benchmarkOrtPeerOn } = await import('../eval/ort-peer');
      peer = await benchmarkOrtPeerOn(
        gpu,
        { name: ckpt.source, config: c, tensors: ckpt.tensors },
        { prefillTokens: seq, decodeSteps: decodeTokens, runs, log },
      );
      ckpt.tensors.clear();
    }
    const result = {
      model: ckpt.source,
      layers: c.numLayers,
      weights,
      batch,
      seq,
      decodeTokens,
      runs,
      lora: plan.train ? { rank, targets, recompute: Boolean(v.recompute) } : null,
      coldLoadS,
      quantizedFromCache: q ? q.fromCache : null,
      prefillTokensPerS: seq / median(prefillS),
      decodeTokensPerS: decodeTokens / median(decodeS),
      trainStepS,
      weightGpuBytes,
      peakGpuBytes,
      estimatedPeakGpuBytes: estimate.peakBytes,
      adapter: gpu ? gpu.describe() : 'cpu (TypeScript twin)',
      kernels: backend instanceof GpuBackend && backend.tuner ? backend.tuner.summary() : null,
      peer,
    };
    if (v.json) console.log(JSON.stringify(result));
    else {
      const mib = (b: number | null) => (b === null ? 'n/a' : `${(b / 2 ** 20).toFixed(1)} MiB`);
      const lora = `LoRA rank ${rank} on ${targets.length === PROJECTIONS.length ? 'all linear layers' : targets.join(',')}`;
      const trainStep =
        trainStepS === null
          ? 'n/a'
          : `${trainStepS.toFixed(2)} s (batch ${batch} x ${seq}, ${lora}${v.recompute ? ', --recompute' : ''})`;
      console.log(
        [
          `${result.model} (${c.numLayers} layers, ${weights} weights) on ${result.adapter}`,
          `cold load        ${coldLoadS.toFixed(1)} s` +
            `${q ? (q.fromCache ? ' (quantized weights read from the cache)' : ' (quantized now; cached for the next load)') : ''}`,
          `prefill          ${result.prefillTokensPerS.toFixed(1)} tokens/s (${seq} tokens, median of ${runs})`,
          `decode           ${result.decodeTokensPerS.toFixed(2)} tokens/s (median of ${runs} x ${decodeTokens} tokens)`,
          `train step       ${trainStep}`,
          `weights on GPU   ${mib(weightGpuBytes)}`,
          `peak GPU memory  ${mib(peakGpuBytes)} measured, ${mib(estimate.peakBytes)} estimated`,
          ...(result.kernels
            ? [
                `kernels          ${Object.keys(result.kernels.choices).length} shape classes, ` +
                  `${(result.kernels.tuningMs / 1000).toFixed(1)} s timing candidates in this run (AGENTARK_AUTOTUNE=0 turns it off)`,
                ...describeChoices(result.kernels).map((l) => `  ${l}`),
              ]
            : []),
          ...(peer
            ? [
                `onnxruntime-web  prefill ${peer.ort.prefillMs.toFixed(1)} ms vs ours ${peer.ours.prefillMs.toFixed(1)} ms ` +
                  `(x${peer.prefillRatio.toFixed(2)}), decode ${peer.ort.decodeMsPerToken.toFixed(2)} vs ` +
                  `${peer.ours.decodeMsPerToken.toFixed(2)} ms/token (x${peer.decodeRatio.toFixed(2)}); f32 weights on both ` +
                  `sides, its ${peer.ortEp} EP; ratio = its time / ours`,
              ]
            : []),
        ].join('\n'),
      );
    }
    return 0;
  } finally {
    gpu?.destroy();
  }
}
