/**
 * The memory plan of a training run on the app's loaded model, shown on the Distil & train page
 * before the run and checked when it starts: the planner's estimate of one step (weights, LoRA
 * state, activations, the chunked loss; src/model/memory.ts) plus the chat KV cache the loaded
 * model already holds, against the adapter's buffer limits and an optional budget.
 */
import type { ModelConfig } from '../formats/config';
import { bucketSize } from '../gpu/device';
import {
  checkMemoryPlan,
  estimatePeakBytes,
  MemoryPlanError,
  type MemoryEstimate,
  type MemoryLimits,
  type MemoryPlanOptions,
  type WeightFormat,
} from '../model/memory';
import type { TrainMemoryPlan, TrainSettings } from './api';
import { formatBytes } from './estimate';

export interface TrainPlanInput {
  config: ModelConfig;
  /** The loaded weights' format (q8/q4 when quantized on load, else the backend's f16/f32). */
  weights: WeightFormat;
  /** The loaded model's context length (its RoPE tables and KV cache positions). */
  contextLength: number;
  /** KV-cache slots the loaded model's generator holds. */
  cacheSlots: number;
  /** Tokens of the longest training row (micro-batches are padded to their longest row). */
  seqLen: number;
  settings: Pick<TrainSettings, 'rank' | 'targets' | 'dropout' | 'batchSize' | 'recompute'>;
  limits: MemoryLimits;
  maxBindingBytes?: number;
}

/** Bytes of the KV cache the loaded model's generator allocated (one pooled buffer per layer for K and V). */
export function kvCacheBytes(config: ModelConfig, slots: number, positions: number): number {
  return 2 * config.numLayers * bucketSize(slots * positions * config.numKvHeads * config.headDim * 4);
}

/** The sentence the page shows for a plan that fits. */
export function trainPlanText(estimate: MemoryEstimate, cacheBytes: number): string {
  return (
    `Memory plan: about ${formatBytes(estimate.peakBytes + cacheBytes)} of GPU memory at the peak of a step ` +
    `(weights ${formatBytes(estimate.weightBytes)}, chat KV cache ${formatBytes(cacheBytes)}) — ${estimate.describe}.`
  );
}

/** The plan, its text, and whether it fits (else the text is the planner's message naming what to change). */
export async function planTraining(input: TrainPlanInput): Promise<TrainMemoryPlan> {
  const s = input.settings;
  const plan: MemoryPlanOptions = {
    weights: input.weights,
    contextLength: input.contextLength,
    maxBindingBytes: input.maxBindingBytes,
    train: {
      batch: s.batchSize,
      seqLen: input.seqLen,
      mode: 'lora',
      rank: s.rank,
      targets: s.targets,
      dropout: s.dropout,
      recompute: s.recompute ?? false,
    },
  };
  const estimate = await estimatePeakBytes(input.config, plan);
  const cacheBytes = kvCacheBytes(input.config, input.cacheSlots, input.contextLength);
  const peakBytes = estimate.peakBytes + cacheBytes;
  try {
    checkMemoryPlan({ ...estimate, peakBytes }, input.limits, plan);
  } catch (e) {
    if (e instanceof MemoryPlanError) return { fits: false, text: e.message, peakBytes };
    throw e;
  }
  return { fits: true, text: trainPlanText(estimate, cacheBytes), peakBytes };
}
