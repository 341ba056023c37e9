/**
 * The q8/q4 weights on WebGPU: upload (split into row shards that each fit one storage binding,
 * each shard with its packed values and its f16 scales) and the dispatches of the kernels that
 * read them packed (shaders/matmul_q.wgsl for prefill GEMM and decode GEMV, embedding_q.wgsl,
 * matmul_q_backward.wgsl for QLoRA). CPU twins: quant-cpu.ts.
 */
import { GpuError } from '../gpu/device';
import { groupsPerRow, quantizedBytes, sliceRows, wordsPerGroup, type QuantizedMatrix } from '../quant/quantize';
import type { GpuBackend, GpuIndices, GpuTensor, GpuWeight, GpuWeightShard } from './gpu';

const WG = 64;
/** Output tile of one 8x8 workgroup (4x4 per invocation). */
const TILE = 32;

export function isQuantized(w: GpuWeight): boolean {
  return w.quant !== undefined;
}

/** Upload a quantized matrix, row-sharded so that no binding exceeds the adapter's limit. */
export function uploadQuantized(backend: GpuBackend, label: string, q: QuantizedMatrix): GpuWeight {
  const gpu = backend.gpu;
  const rowBytes = groupsPerRow(q.cols) * wordsPerGroup(q.format) * 4;
  const rowsPerShard = Math.max(1, Math.floor(gpu.weightShardBytes / rowBytes));
  const shards: GpuWeightShard[] = [];
  for (let r = 0; r < q.rows; r += rowsPerShard) {
    const n = Math.min(rowsPerShard, q.rows - r);
    const part = n === q.rows ? q : sliceRows(q, r, r + n);
    shards.push({
      buffer: gpu.createStorage(part.quants, `${label}[${r}:${r + n}].${q.format}`),
      scales: gpu.createStorage(part.scales, `${label}[${r}:${r + n}].scales`),
      rowStart: r,
      rows: n,
    });
  }
  return { shards, rows: q.rows, cols: q.cols, dtype: 'f32', quant: q.format };
}

/** Bytes of a quantized weight on the GPU (what the memory planner counts). */
export function quantizedWeightBytes(w: GpuWeight): number {
  if (!isQuantized(w)) throw new GpuError('not a quantized weight');
  return quantizedBytes(w.quant!, w.rows, w.cols);
}

function defines(w: GpuWeight, extra: Record<string, boolean> = {}): Record<string, boolean> {
  return { Q4: w.quant === 'q4', ...extra };
}

/** out[M, N] = x[M, K] · Wᵀ (+ bias): GEMV for up to 8 rows (decode), the tiled GEMM above. */
export function quantMatmul(backend: GpuBackend, x: GpuTensor, w: GpuWeight, bias: GPUBuffer[] | null, m: number, out: GpuTensor): void {
  const k = w.cols;
  const groups = groupsPerRow(k);
  const gemv = m <= 8;
  w.shards.forEach((s, i) => {
    const params = [m, s.rows, k, s.rowStart, w.rows, bias ? 1 : 0, groups];
    const buffers = [x.buffer, s.buffer, s.scales!, bias ? bias[i] : backend.dummyBuffer, out.buffer];
    if (gemv) {
      backend.dispatch('matmul_q', defines(w, { VEC4: k % 4 === 0, GEMV: true }), 'f32', params, 'uuuuuuu', buffers, Math.ceil(s.rows / 4 / WG));
    } else {
      backend.dispatch('matmul_q', defines(w, { VEC4: k % 4 === 0 }), 'f32', params, 'uuuuuuu', buffers, [Math.ceil(s.rows / TILE), Math.ceil(m / TILE)]);
    }
  });
}

export function quantEmbedding(backend: GpuBackend, ids: GpuIndices, table: GpuWeight, tokens: number, out: GpuTensor): void {
  const groups = groupsPerRow(table.cols);
  for (const s of table.shards) {
    const params = [tokens, table.cols, s.rowStart, s.rows, groups];
    backend.dispatch('embedding_q', defines(table), 'f32', params, 'uuuuu', [ids.buffer, s.buffer, s.scales!, out.buffer], Math.ceil((tokens * table.cols) / WG));
  }
}

/** dx[M, K] (+)= dy[M, N] · W[N, K] over the row shards of a quantized W. */
export function quantMatmulBackwardInput(backend: GpuBackend, dy: GpuTensor, w: GpuWeight, m: number, dx: GpuTensor, accumulate: boolean): void {
  const k = w.cols;
  const groups = groupsPerRow(k);
  w.shards.forEach((s, i) => {
    const params = [m, s.rows, k, s.rowStart, w.rows, accumulate || i > 0 ? 1 : 0, groups];
    backend.dispatch('matmul_q_backward', defines(w), 'f32', params, 'uuuuuuu', [dy.buffer, s.buffer, s.scales!, dx.buffer], [Math.ceil(k / TILE), Math.ceil(m / TILE)]);
  });
}
