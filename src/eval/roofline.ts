/**
 * Roofline fractions for the Benchmark page and `npm run bench`: how close whole-model speed comes
 * to what this adapter can do at all. Prefill is compute-bound, so its FLOP/s are set against our
 * best GEMM measured in the same report; decode of one sequence is bandwidth-bound, so the bytes
 * it must read per second are set against a measured buffer-copy bandwidth of the adapter.
 */
import type { Gpu } from '../gpu/device';
import { BENCH_SIZES, type ModelSize, type SpeedReport } from './speed';

export interface CopyBandwidth {
  /** Bytes of one copy (source size). */
  bytes: number;
  /** Bytes moved per second, read + written counted (as STREAM's Copy counts them). */
  bytesPerS: number;
}

/**
 * copyBufferToBuffer of `bytes` (default 16 MiB, below any adapter's limits), `copies` per
 * submit, timed from submit to onSubmittedWorkDone; the median of 3 after a warm-up.
 */
export async function measureCopyBandwidth(gpu: Gpu, bytes = 16 * 2 ** 20, copies = 4): Promise<CopyBandwidth> {
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const src = gpu.createBuffer(bytes, usage, 'copy-bandwidth.src');
  const dst = gpu.createBuffer(bytes, usage, 'copy-bandwidth.dst');
  try {
    const once = async () => {
      const t0 = performance.now();
      const enc = gpu.device.createCommandEncoder();
      for (let i = 0; i < copies; i++) enc.copyBufferToBuffer(i % 2 ? dst : src, 0, i % 2 ? src : dst, 0, bytes);
      gpu.device.queue.submit([enc.finish()]);
      await gpu.device.queue.onSubmittedWorkDone();
      return performance.now() - t0;
    };
    await once();
    const times = [await once(), await once(), await once()].sort((a, b) => a - b);
    return { bytes, bytesPerS: (2 * bytes * copies) / (times[1] / 1000) };
  } finally {
    gpu.destroyBuffer(src);
    gpu.destroyBuffer(dst);
  }
}

/** Parameters of a Linear layout per layer and of the LM head (tied embeddings). */
function linearParams(s: ModelSize): { perLayer: number; head: number } {
  const headDim = s.hidden / s.heads;
  const q = s.heads * headDim;
  const kv = s.kvHeads * headDim;
  return { perLayer: s.hidden * (q + 2 * kv) + q * s.hidden + 3 * s.hidden * s.intermediate, head: s.vocab * s.hidden };
}

/**
 * FLOPs of a prefill of `tokens` tokens from position 0 (logits of the last one): 2 per
 * weight per token for the layers, the LM head once, and causal attention (q·k and the weighted
 * sum of v, 4 · headDim per query head and visible key).
 */
export function prefillFlops(s: ModelSize, tokens: number): number {
  const { perLayer, head } = linearParams(s);
  const headDim = s.hidden / s.heads;
  const attention = 4 * headDim * s.heads * ((tokens * (tokens + 1)) / 2);
  return s.layers * (2 * perLayer * tokens + attention) + 2 * head;
}

/**
 * Bytes one decode step at `position` must read with f32 weights: every layer weight and the LM
 * head once, the token's embedding row, the norms, and the KV cache up to the position (keys and
 * values); plus the new keys and values written. Activations (kilobytes) are left out.
 */
export function decodeBytes(s: ModelSize, position: number): number {
  const { perLayer, head } = linearParams(s);
  const kvDim = s.kvHeads * (s.hidden / s.heads);
  const weights = s.layers * (perLayer + 2 * s.hidden) + head + 2 * s.hidden;
  const cache = s.layers * 2 * kvDim * (position + 2);
  return 4 * (weights + cache);
}

export interface RooflineRow {
  model: string;
  /** WebGPU prefill FLOP/s and its fraction of the best GEMM's (null without a GEMM result). */
  prefillFlopsPerS: number;
  bestGemmFlopsPerS: number | null;
  prefillFraction: number | null;
  /** WebGPU decode bytes/s and its fraction of the copy bandwidth (null without a measurement). */
  decodeBytesPerS: number;
  copyBytesPerS: number | null;
  decodeFraction: number | null;
}

/**
 * One row per WebGPU whole-model result of `report` (sizes known by name), from its prefill and
 * decode tokens/s, the best GEMM GFLOP/s among its kernels and its copy bandwidth.
 */
export function rooflineRows(report: SpeedReport): RooflineRow[] {
  const gemms = report.kernels.filter((k) => k.kernel.includes('gemm')).map((k) => k.webgpuGflops * 1e9);
  const bestGemm = gemms.length ? Math.max(...gemms) : null;
  const copy = report.copyBandwidth?.bytesPerS ?? null;
  const rows: RooflineRow[] = [];
  for (const m of report.models) {
    const size = BENCH_SIZES.find((s) => s.name === m.model);
    if (!size || m.backend !== 'webgpu') continue;
    const prefillFlopsPerS = (prefillFlops(size, m.prefillTokens) * m.prefillTokensPerS) / m.prefillTokens;
    // Decode steps run from position prefillTokens on; the middle one stands for them all.
    const decodeBytesPerS = decodeBytes(size, m.prefillTokens + (m.decodeSteps ?? 16) / 2) * m.decodeTokensPerS;
    rows.push({
      model: m.model,
      prefillFlopsPerS,
      bestGemmFlopsPerS: bestGemm,
      prefillFraction: bestGemm ? prefillFlopsPerS / bestGemm : null,
      decodeBytesPerS,
      copyBytesPerS: copy,
      decodeFraction: copy ? decodeBytesPerS / copy : null,
    });
  }
  return rows;
}
