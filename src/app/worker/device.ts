/** The WebGPU adapter as the worker sees it (queried once), and the budget the memory estimate uses. */
import type { AdapterReport } from '../api';
import type { DeviceBudget } from '../estimate';

function deviceMemoryGB(): number | null {
  const m = (navigator as Navigator & { deviceMemory?: number }).deviceMemory;
  return typeof m === 'number' ? m : null;
}

async function queryAdapter(): Promise<AdapterReport> {
  const base = {
    crossOriginIsolated: self.crossOriginIsolated === true,
    deviceMemoryGB: deviceMemoryGB(),
    hardwareConcurrency: navigator.hardwareConcurrency ?? 1,
  };
  const gpu = (navigator as Navigator).gpu;
  if (!gpu) {
    return {
      available: false,
      reason:
        'WebGPU is not available here: navigator.gpu is missing. Use a recent Chrome or Edge (or enable WebGPU in the browser flags).',
      ...base,
    };
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch (e) {
    return { available: false, reason: `requestAdapter() failed: ${(e as Error).message}`, ...base };
  }
  if (!adapter) {
    return {
      available: false,
      reason: 'navigator.gpu exists but no WebGPU adapter was found (the GPU may be block-listed or WebGPU disabled).',
      ...base,
    };
  }
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  const limits: Record<string, number> = {};
  const proto = Object.getPrototypeOf(adapter.limits) as object;
  for (const key of Object.keys(Object.getOwnPropertyDescriptors(proto))) {
    const v = (adapter.limits as unknown as Record<string, unknown>)[key];
    if (typeof v === 'number') limits[key] = v;
  }
  const features = [...adapter.features].map(String).sort();
  return {
    available: true,
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
    isFallbackAdapter: (info as GPUAdapterInfo & { isFallbackAdapter?: boolean })?.isFallbackAdapter ?? false,
    features,
    f16: features.includes('shader-f16'),
    subgroups: features.includes('subgroups'),
    limits,
    ...base,
  };
}

let report: Promise<AdapterReport> | null = null;

export function device(): Promise<AdapterReport> {
  report ??= queryAdapter();
  return report;
}

export async function deviceBudget(): Promise<DeviceBudget> {
  const d = await device();
  if (!d.available) return { limits: null, f16: false, deviceMemoryGB: d.deviceMemoryGB };
  return {
    limits: {
      maxStorageBufferBindingSize: d.limits.maxStorageBufferBindingSize ?? 0,
      maxBufferSize: d.limits.maxBufferSize ?? 0,
    },
    f16: d.f16,
    deviceMemoryGB: d.deviceMemoryGB,
  };
}
