/** `agentark train`: LoRA or full fine-tuning on WebGPU, PEFT / HF safetensors out. */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import {
  loadCheckpoint,
  readModelSideFiles,
  readModelConfig,
  loadTokenizerFrom,
  type Checkpoint,
} from '../formats/checkpoint';
import { openSource } from '../formats/source';
import { loadPeftAdapter } from '../formats/peft';
import { Gpu } from '../gpu/device';
import { CpuBackend } from '../kernels/cpu';
import { GpuBackend } from '../kernels/gpu';
import { autotuneFromEnv, KernelTuner } from '../kernels/autotune';
import type { AnyBackend } from '../kernels/backend';
import { PROJECTIONS, type Projection } from '../formats/config';
import { LlamaModel } from '../model/llama';
import { loadTrainingData } from '../train/data';
import { randomInitTensors } from '../train/init';
import { DEFAULT_TRAIN_OPTIONS, NonFiniteLossError, Trainer, type TrainOptions } from '../train/trainer';
import { fullModelSafetensors, resumeCheckpoint, saveCheckpoint, writeFilesAtomically } from '../train/checkpoint';
import { serializePeftAdapter } from '../formats/peft';
import { choiceFlag, floatFlag, intFlag, parseFlags, quantizeFlag, stderrProgress, UsageError } from './args';
import { quantizeWeights } from '../quant/weights';
import { checkMemoryPlan, estimatePeakBytes, type MemoryPlanOptions } from '../model/memory';

export const USAGE = `usage: agentark train --model <dir|url|hf-id> --data <file.jsonl> --out <dir>
       [--mode lora|full] [--from-scratch] [--rank R] [--alpha A] [--dropout P] [--targets q_proj,v_proj,...]
       [--rslora] [--lr LR] [--optimizer adamw|sgd] [--weight-decay WD] [--max-grad-norm N]
       [--schedule linear|cosine|constant] [--warmup STEPS] [--steps N | --epochs E] [--batch B]
       [--grad-accum G] [--context-length N] [--init-adapter <dir>] [--resume] [--seed S]
       [--checkpoint-every N] [--stop-after N] [--group-by-length] [--backend webgpu|cpu]
       [--quantize q8|q4] [--recompute] [--memory-budget MIB]

Data rows (JSONL): {"messages": [...]} (loss on assistant turns), {"prompt", "completion"},
{"text"}, or pre-tokenized {"input_ids", "labels"}. Writes a PEFT adapter (LoRA) or an HF
checkpoint (full) to --out, checkpoints to --out/checkpoint (resume with --resume), and a JSON
summary on stdout. --stop-after N ends this run at step N (the schedule still spans --steps), with
a checkpoint and the weights of that step, so a later --resume run carries on where it stopped.
--quantize q8|q4 (LoRA only) trains on a quantized frozen base (QLoRA): the base is read packed,
the LoRA weights and their gradients stay f32, and the adapter is an ordinary PEFT adapter.
--recompute keeps only each block's input in the forward and recomputes the block before its
backward (peak activations: one block's worth plus the residual stream). Before allocating, the
memory planner estimates the step's peak GPU bytes and refuses a plan above the adapter's buffer
limits or --memory-budget, naming what to change.`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(
    argv,
    {
      model: { type: 'string' },
      data: { type: 'string' },
      out: { type: 'string' },
      mode: { type: 'string' },
      'from-scratch': { type: 'boolean' },
      rank: { type: 'string' },
      alpha: { type: 'string' },
      dropout: { type: 'string' },
      targets: { type: 'string' },
      rslora: { type: 'boolean' },
      lr: { type: 'string' },
      optimizer: { type: 'string' },
      'weight-decay': { type: 'string' },
      'max-grad-norm': { type: 'string' },
      schedule: { type: 'string' },
      warmup: { type: 'string' },
      steps: { type: 'string' },
      epochs: { type: 'string' },
      batch: { type: 'string' },
      'grad-accum': { type: 'string' },
      'context-length': { type: 'string' },
      'init-adapter': { type: 'string' },
      resume: { type: 'boolean' },
      'stop-after': { type: 'string' },
      seed: { type: 'string' },
      'checkpoint-every': { type: 'string' },
      'group-by-length': { type: 'boolean' },
      backend: { type: 'string' },
      quantize: { type: 'string' },
      recompute: { type: 'boolean' },
      'memory-budget': { type: 'string' },
      quiet: { type: 'boolean' },
    },
    USAGE,
  );
  if (!v) return 0;
  for (const req of ['model', 'data', 'out'] as const) if (!v[req]) throw new UsageError(`--${req} is required`);
  const mode = choiceFlag(v.mode as string | undefined, 'mode', ['lora', 'full'], 'lora');
  const quantizeTo = quantizeFlag(v.quantize as string | undefined);
  if (quantizeTo && mode !== 'lora')
    throw new UsageError(`--quantize ${quantizeTo} freezes the base weights: it needs --mode lora (QLoRA)`);
  const optimizer = choiceFlag(
    v.optimizer as string | undefined,
    'optimizer',
    ['adamw', 'sgd'],
    DEFAULT_TRAIN_OPTIONS.optimizer,
  );
  const schedule = choiceFlag(
    v.schedule as string | undefined,
    'schedule',
    ['linear', 'cosine', 'constant'],
    DEFAULT_TRAIN_OPTIONS.schedule,
  );
  if (v.steps && v.epochs) throw new UsageError('give --steps or --epochs, not both');
  const targets = v.targets
    ? (v.targets as string)
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : DEFAULT_TRAIN_OPTIONS.targets;
  const opts: TrainOptions = {
    ...DEFAULT_TRAIN_OPTIONS,
    mode,
    rank: intFlag(v.rank as string | undefined, 'rank', DEFAULT_TRAIN_OPTIONS.rank),
    alpha: floatFlag(v.alpha as string | undefined, 'alpha', DEFAULT_TRAIN_OPTIONS.alpha)!,
    dropout: floatFlag(v.dropout as string | undefined, 'dropout', DEFAULT_TRAIN_OPTIONS.dropout)!,
    targets: targets as Projection[],
    useRslora: Boolean(v.rslora),
    lr: floatFlag(v.lr as string | undefined, 'lr', mode === 'full' ? 1e-3 : DEFAULT_TRAIN_OPTIONS.lr)!,
    optimizer,
    weightDecay: floatFlag(v['weight-decay'] as string | undefined, 'weight-decay', DEFAULT_TRAIN_OPTIONS.weightDecay)!,
    maxGradNorm: floatFlag(
      v['max-grad-norm'] as string | undefined,
      'max-grad-norm',
      DEFAULT_TRAIN_OPTIONS.maxGradNorm,
    )!,
    schedule,
    warmupSteps: intFlag(v.warmup as string | undefined, 'warmup', 0),
    steps: intFlag(v.steps as string | undefined, 'steps'),
    epochs: floatFlag(v.epochs as string | undefined, 'epochs'),
    batchSize: intFlag(v.batch as string | undefined, 'batch', DEFAULT_TRAIN_OPTIONS.batchSize),
    gradAccum: intFlag(v['grad-accum'] as string | undefined, 'grad-accum', 1),
    seed: intFlag(v.seed as string | undefined, 'seed', DEFAULT_TRAIN_OPTIONS.seed),
    groupByLength: Boolean(v['group-by-length']),
    recompute: Boolean(v.recompute),
  };
  if (opts.dropout < 0 || opts.dropout >= 1) throw new UsageError(`--dropout must be in [0, 1), got ${opts.dropout}`);
  for (const t of targets) {
    if (!(PROJECTIONS as readonly string[]).includes(t))
      throw new UsageError(
        `target module '${t}' does not exist in Llama-family models; choose from ${PROJECTIONS.join(', ')}`,
      );
  }
  const out = v.out as string;
  const checkpointDir = path.join(out, 'checkpoint');
  const log = v.quiet ? () => {} : (line: string) => process.stderr.write(`${line}\n`);

  // Files → host tensors.
  const source = openSource(v.model as string);
  let ckpt: Checkpoint;
  if (v['from-scratch']) {
    if (mode !== 'full') throw new UsageError('--from-scratch needs --mode full');
    const config = await readModelConfig(source);
    const tokenizer = await loadTokenizerFrom(source);
    ckpt = {
      config,
      tensors: randomInitTensors(config, opts.seed),
      tokenizer,
      source: v.model as string,
      eosTokenIds: config.eosTokenIds,
    };
  } else {
    ckpt = await loadCheckpoint(source, { onProgress: v.quiet ? undefined : stderrProgress('load') });
  }
  const c = ckpt.config;
  const contextLength = Math.min(
    intFlag(v['context-length'] as string | undefined, 'context-length', 1024),
    c.maxPositionEmbeddings,
  );
  opts.padTokenId = ckpt.tokenizer?.padTokenId ?? c.eosTokenIds[0] ?? 0;

  const examples = await loadTrainingData(v.data as string, ckpt.tokenizer, {
    maxLength: contextLength,
    vocabSize: c.vocabSize,
  });

  // Host tensors → model on the backend. Trainable weights (full mode) must be f32 and unsharded.
  let backend: AnyBackend;
  let gpu: Gpu | null = null;
  if (v.backend === 'cpu') backend = new CpuBackend();
  else {
    gpu = await Gpu.create();
    const halfFile = [...ckpt.tensors.values()].some((t) => t.dtype !== 'F32');
    const gpuBackend = await GpuBackend.create(gpu, mode === 'lora' && halfFile && gpu.features.f16 ? 'f16' : 'f32');
    // The forward GEMMs' variants are timed at their first use on this adapter (AGENTARK_AUTOTUNE=0: off).
    if (autotuneFromEnv()) gpuBackend.tuner = await KernelTuner.create(gpu);
    backend = gpuBackend;
    // The memory plan, before any weight is uploaded: refuse what cannot fit, saying what to change.
    const seqLen = Math.min(contextLength, Math.max(...examples.map((e) => e.inputIds.length)));
    const plan: MemoryPlanOptions = {
      weights: quantizeTo ?? backend.weightType,
      contextLength,
      maxBindingBytes: gpu.weightShardBytes,
      train: {
        batch: opts.batchSize,
        seqLen,
        mode,
        rank: opts.rank,
        targets: opts.targets,
        optimizer: opts.optimizer,
        dropout: opts.dropout,
        recompute: opts.recompute,
      },
    };
    const estimate = await estimatePeakBytes(c, plan);
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
    log(`memory plan: about ${(estimate.peakBytes / 2 ** 20).toFixed(0)} MiB peak (${estimate.describe})`);
  }
  const quantized = quantizeTo
    ? await quantizeWeights(c, ckpt.tensors, quantizeTo, { onProgress: v.quiet ? undefined : stderrProgress('load') })
    : null;
  const model = LlamaModel.fromTensors(backend, c, ckpt.tensors, contextLength, quantized?.matrices);
  ckpt.tensors.clear();

  const init = v['init-adapter'] ? await loadPeftAdapter(v['init-adapter'] as string) : undefined;
  if (init && mode !== 'lora') throw new UsageError('--init-adapter needs --mode lora');
  const trainer = new Trainer(model, examples, opts, init);
  log(
    `training ${mode} on ${examples.length} rows, ${trainer.totalSteps} steps, ` +
      `${trainer.params.reduce((a, p) => a + p.n, 0)} trainable parameters — ${gpu ? gpu.describe() : 'cpu twin'}`,
  );

  if (v.resume) {
    const st = await resumeCheckpoint(checkpointDir, trainer, log);
    if (st) log(`resumed from ${checkpointDir} at step ${st.state.step}`);
    else log(`no checkpoint in ${checkpointDir}; starting from step 0`);
  }

  const every = intFlag(v['checkpoint-every'] as string | undefined, 'checkpoint-every', 50);
  const stopAfter = intFlag(v['stop-after'] as string | undefined, 'stop-after', trainer.totalSteps);
  const stop = new AbortController();
  if (trainer.state.step >= stopAfter) stop.abort();
  const losses: number[] = [];
  let lastSaved = trainer.state.step;
  const t0 = performance.now();
  try {
    await trainer.run({
      signal: stop.signal,
      onStep: async (r) => {
        if (r.step >= stopAfter) stop.abort();
        losses.push(r.loss);
        log(
          `step ${r.step}/${r.totalSteps} loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(3)} grad_norm ${r.gradNorm.toFixed(3)} ` +
            `${r.tokensPerS.toFixed(1)} tok/s eta ${r.etaS.toFixed(0)}s`,
        );
        if (every > 0 && r.step % every === 0 && r.step < r.totalSteps) {
          await saveCheckpoint(checkpointDir, trainer);
          lastSaved = r.step;
        }
      },
    });
  } catch (e) {
    if (e instanceof NonFiniteLossError) {
      throw new Error(
        `${e.message}. The last good checkpoint (step ${lastSaved}) is kept in ${checkpointDir}; lower the learning rate and resume with --resume.`,
      );
    }
    throw e;
  }
  await saveCheckpoint(checkpointDir, trainer);

  // Final artefacts in interoperable formats.
  if (mode === 'lora') {
    await writeFilesAtomically(`${out}.final`, serializePeftAdapter(await trainer.adapter()));
    await moveFilesInto(`${out}.final`, out);
  } else {
    const files: Record<string, string | Uint8Array> = { 'model.safetensors': await fullModelSafetensors(trainer) };
    Object.assign(files, await readModelSideFiles(source));
    await writeFilesAtomically(`${out}.final`, files);
    await moveFilesInto(`${out}.final`, out);
  }
  const summary = {
    mode,
    steps: trainer.state.step,
    examples: examples.length,
    trainableParameters: trainer.params.reduce((a, p) => a + p.n, 0),
    firstLoss: losses[0] ?? null,
    finalLoss: trainer.state.lastLoss,
    tokensSeen: trainer.state.tokensSeen,
    wallS: (performance.now() - t0) / 1000,
    out,
    backend: gpu ? gpu.describe() : 'cpu',
    quantize: quantizeTo ?? null,
  };
  console.log(JSON.stringify(summary));
  trainer.dispose();
  gpu?.destroy();
  return 0;
}

/** Move every file of `from` into `to` (keeping `to`'s checkpoint folder), then remove `from`. */
async function moveFilesInto(from: string, to: string): Promise<void> {
  await fs.mkdir(to, { recursive: true });
  for (const name of await fs.readdir(from)) await fs.rename(path.join(from, name), path.join(to, name));
  await fs.rm(from, { recursive: true, force: true });
}
