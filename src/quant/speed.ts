/**
 * Side-by-side speed of the weight formats on one adapter, in one run (`npm run bench`): the same
 * X·Wᵀ as a decode GEMV (1 row) and a prefill GEMM (64 rows) with W in f32, f16 (when the adapter
 * has shader-f16), q8 and q4. On software adapters only the ratios mean anything.
 */
import type { GpuBackend, GpuWeight } from '../kernels/gpu';
import { f32ToF16Bits } from '../formats/dtype';
import { quantize } from './quantize';

export interface FormatSpeed {
  format: 'f32' | 'f16' | 'q8' | 'q4';
  shape: string;
  rows: number;
  gflops: number;
  /** Time relative to f32 on the same shape (below 1: faster). */
  vsF32: number;
}

export async function benchmarkWeightFormats(
  f32: GpuBackend,
  f16: GpuBackend | null,
  n = 4864,
  k = 896,
  reps = 3,
): Promise<FormatSpeed[]> {
  const w = new Float32Array(n * k);
  let s = 7;
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    w[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  const weights: [FormatSpeed['format'], GpuBackend, GpuWeight][] = [['f32', f32, f32.weight('w.f32', w, n, k)]];
  if (f16) weights.push(['f16', f16, f16.weight('w.f16', f32ToF16Bits(w), n, k)]);
  weights.push(
    ['q8', f32, f32.quantizedWeight('w.q8', quantize(w, n, k, 'q8'))],
    ['q4', f32, f32.quantizedWeight('w.q4', quantize(w, n, k, 'q4'))],
  );
  const out: FormatSpeed[] = [];
  for (const m of [1, 64]) {
    let base = 0;
    for (const [format, be, wt] of weights) {
      const x = be.fromHost(new Float32Array(m * k).fill(0.01));
      const y = be.tensor(m * n);
      be.matmul(x, wt, null, m, y);
      await be.toHost(y, 1); // warm-up (pipeline compile)
      const t0 = performance.now();
      for (let r = 0; r < reps; r++) be.matmul(x, wt, null, m, y);
      await be.toHost(y, 1);
      const ms = (performance.now() - t0) / reps;
      if (format === 'f32') base = ms;
      out.push({
        format,
        shape: `${m}x${k} · ${n}x${k}ᵀ`,
        rows: m,
        gflops: (2 * m * n * k) / ms / 1e6,
        vsF32: ms / base,
      });
      be.free(x);
      be.free(y);
    }
  }
  for (const [, be, wt] of weights) be.freeWeight(wt);
  return out;
}
