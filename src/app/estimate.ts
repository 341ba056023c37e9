/**
 * Memory needed by a checkpoint on this device, from config.json and the safetensors headers alone
 * (read before any weight is downloaded): parameters × bytes per weight + the f32 KV cache
 * (layers × 2 × slots × positions × kv_heads × head_dim) + an approximate prefill workspace.
 */
import type { ModelConfig } from '../formats/config';
import { planTensors, type WeightFileHeader } from '../formats/checkpoint';
import type { LoadSettings, MemoryCheck, MemoryEstimate, ModelSummary } from './api';

export interface DeviceBudget {
  /** null when there is no WebGPU adapter. */
  limits: { maxStorageBufferBindingSize: number; maxBufferSize: number } | null;
  f16: boolean;
  /** navigator.deviceMemory (GB, rounded and capped by the browser), when known. */
  deviceMemoryGB: number | null;
}

/** Tokens admitted into one prefill step (the generator's default prefill budget). */
const PREFILL_TOKENS = 1024;

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[i]}`;
}

export function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} K`;
  return String(n);
}

/** The context length the runtime will actually use for these settings. */
export function effectiveContext(config: ModelConfig, contextLength: number): number {
  return Math.min(contextLength, config.maxPositionEmbeddings, config.slidingWindow ?? Infinity);
}

export function summarize(
  location: string,
  config: ModelConfig,
  headers: WeightFileHeader[],
  hasTokenizer: boolean,
): ModelSummary {
  const dtypes = new Set<string>();
  for (const h of headers) for (const t of h.tensors) dtypes.add(t.dtype);
  return {
    location,
    hfArchitecture: config.hfArchitecture,
    layers: config.numLayers,
    hidden: config.hiddenSize,
    heads: config.numHeads,
    kvHeads: config.numKvHeads,
    headDim: config.headDim,
    vocab: config.vocabSize,
    maxPositions: config.maxPositionEmbeddings,
    torchDtype: config.torchDtype,
    fileDtypes: [...dtypes].sort(),
    hasTokenizer,
  };
}

export function estimateMemory(
  config: ModelConfig,
  headers: WeightFileHeader[],
  settings: LoadSettings,
  device: DeviceBudget,
): MemoryEstimate {
  const planned = planTensors(config, headers);
  let parameters = 0;
  let halfFile = false;
  let largest = { name: '', elements: 0 };
  for (const [name, { entry }] of planned) {
    const n = entry.shape.reduce((a, b) => a * b, 1);
    parameters += n;
    if (entry.dtype !== 'F32') halfFile = true;
    if (n > largest.elements) largest = { name, elements: n };
  }
  const weightType =
    settings.quantize ?? (settings.dtype === 'auto' ? (device.f16 && halfFile ? 'f16' : 'f32') : settings.dtype);
  // q8 / q4: one byte or half a byte per weight plus an f16 scale per group of 32 (src/quant/quantize.ts).
  const bytesPerWeight = { f32: 4, f16: 2, q8: 1 + 2 / 32, q4: 0.5 + 2 / 32 }[weightType];
  const contextLength = effectiveContext(config, settings.contextLength);
  const kvDim = config.numKvHeads * config.headDim;
  const kvLayerBytes = settings.maxBatch * contextLength * kvDim * 4;
  const kvBytes = 2 * config.numLayers * kvLayerBytes;
  const tokens = Math.min(PREFILL_TOKENS, contextLength * settings.maxBatch);
  const perToken =
    4 * (4 * config.hiddenSize + 2 * config.numHeads * config.headDim + 2 * kvDim + 3 * config.intermediateSize);
  const attention = 4 * config.numHeads * Math.min(tokens, contextLength) * contextLength;
  const workspaceBytes = tokens * perToken + attention + settings.maxBatch * config.vocabSize * 4;
  const weightBytes = parameters * bytesPerWeight;
  const totalBytes = weightBytes + kvBytes + workspaceBytes;
  const fileBytes = headers.reduce((a, h) => a + h.size, 0);

  const checks: MemoryCheck[] = [];
  if (!device.limits) {
    checks.push({ level: 'error', text: 'No WebGPU adapter: the model cannot run on the GPU in this browser.' });
  } else {
    const { maxStorageBufferBindingSize: binding, maxBufferSize } = device.limits;
    const limit = Math.min(binding, maxBufferSize);
    if (kvLayerBytes > limit) {
      checks.push({
        level: 'error',
        text:
          `One layer's KV cache needs ${formatBytes(kvLayerBytes)}, above this adapter's ${formatBytes(limit)} ` +
          `buffer limit: lower the context length or the batch slots.`,
      });
    } else {
      checks.push({
        level: 'ok',
        text: `KV cache per layer ${formatBytes(kvLayerBytes)} fits the ${formatBytes(limit)} buffer limit.`,
      });
    }
    const largestBytes = largest.elements * bytesPerWeight;
    if (largestBytes > limit) {
      checks.push({
        level: 'ok',
        text: `The largest tensor (${largest.name}, ${formatBytes(largestBytes)}) exceeds one buffer (${formatBytes(limit)}); it is split into row shards.`,
      });
    }
  }
  if (weightType === 'f16' && !device.f16) {
    checks.push({
      level: 'error',
      text: 'f16 weights need the shader-f16 feature, which this adapter lacks: choose f32 or auto.',
    });
  }
  if (device.deviceMemoryGB) {
    const ram = device.deviceMemoryGB * 2 ** 30;
    const share = totalBytes / ram;
    if (share > 0.75)
      checks.push({
        level: 'warn',
        text:
          `About ${formatBytes(totalBytes)} against roughly ${device.deviceMemoryGB} GB of device memory reported ` +
          `by the browser: loading may fail or swap.`,
      });
    else
      checks.push({
        level: 'ok',
        text: `About ${formatBytes(totalBytes)} of roughly ${device.deviceMemoryGB} GB device memory (browser's estimate).`,
      });
  }
  return {
    parameters,
    fileBytes,
    weightType,
    weightBytes,
    kvBytes,
    kvLayerBytes,
    workspaceBytes,
    totalBytes,
    contextLength,
    maxBatch: settings.maxBatch,
    largestTensor: { name: largest.name, bytes: largest.elements * bytesPerWeight },
    checks,
  };
}
