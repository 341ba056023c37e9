/**
 * The q8/q4 weights on WebGPU: upload (split into row shards that each fit one storage binding,
 * each shard with its packed values and its f16 scales) and the dispatches of the kernels that
 * read them packed (shaders/matmul_q.wgsl for prefill GEMM and decode GEMV, embedding_q.wgsl,
 * matmul_q_backward.wgsl for QLoRA). CPU twins: quant-cpu.ts.
 */
import { GpuError } from '../gpu/device';
import {
  groupsPerRow,
  quantizedBytes,
  sliceRows,
  wordsPerGroup,
  type QuantFormat,
  type QuantizedMatrix,
} from '../quant/quantize';
import { shardRows } from './backend';
import {
  rowsBinding,
  weightRowBytes,
  type Bindable,
  type GpuBackend,
  type GpuIndices,
  type GpuTensor,
  type GpuWeight,
  type GpuWeightShard,
} from './gpu';
import { declareKernel, groups1d, size2d, type ParamValues } from './kernel';

export function isQuantized(w: GpuWeight): boolean {
  return w.quant !== undefined;
}

const matmulParams = {
  M: 'u32',
  N: 'u32',
  K: 'u32',
  nOffset: 'u32',
  ldy: 'u32',
  hasBias: 'u32',
  groups: 'u32',
} as const;
type MatmulParams = ParamValues<typeof matmulParams>;
const backwardParams = {
  M: 'u32',
  N: 'u32',
  K: 'u32',
  nOffset: 'u32',
  ldy: 'u32',
  accumulate: 'u32',
  groups: 'u32',
} as const;

/** The kernels of one format (their packed-value bindings differ in size, so each is declared per format). */
function declareFormat(format: QuantFormat) {
  const wpg = wordsPerGroup(format);
  const defines = { Q4: format === 'q4' };
  const matmulBindings = {
    x: (p: MatmulParams) => p.M * p.K,
    wq: (p: MatmulParams) => p.N * p.groups * wpg,
    scales: (p: MatmulParams) => Math.ceil((p.N * p.groups) / 2),
    bias: (p: MatmulParams) => (p.hasBias ? p.N : 0),
    y: (p: MatmulParams) => (p.M === 0 ? 0 : (p.M - 1) * p.ldy + p.nOffset + p.N),
  };
  return {
    /** Y[M, nOffset..+N] = X·Wᵀ (+ bias), 4x4 outputs an invocation (prefill). */
    matmul: declareKernel({
      name: `matmul_q(${format})`,
      shader: 'matmul_q',
      defines,
      workgroupSize: [8, 8],
      params: matmulParams,
      bindings: matmulBindings,
    }),
    /** The same for few rows (decode): a 1-D grid over column quads. */
    gemv: declareKernel({
      name: `matmul_q(${format},gemv)`,
      shader: 'matmul_q',
      defines: { ...defines, GEMV: true },
      workgroupSize: 64,
      params: matmulParams,
      bindings: matmulBindings,
    }),
    embedding: declareKernel({
      name: `embedding_q(${format})`,
      shader: 'embedding_q',
      defines,
      workgroupSize: 64,
      params: { tokens: 'u32', dim: 'u32', rowStart: 'u32', rows: 'u32', groups: 'u32' },
      bindings: {
        ids: (p) => p.tokens,
        wq: (p) => p.rows * p.groups * wpg,
        scales: (p) => Math.ceil((p.rows * p.groups) / 2),
        out: (p) => p.tokens * p.dim,
      },
    }),
    backward: declareKernel({
      name: `matmul_q_backward(${format})`,
      shader: 'matmul_q_backward',
      defines,
      workgroupSize: [8, 8],
      params: backwardParams,
      bindings: {
        dy: (p) => (p.M === 0 ? 0 : (p.M - 1) * p.ldy + p.nOffset + p.N),
        wq: (p) => p.N * p.groups * wpg,
        scales: (p) => Math.ceil((p.N * p.groups) / 2),
        out: (p) => p.M * p.K,
      },
    }),
  };
}

export const QUANT_KERNELS = { q8: declareFormat('q8'), q4: declareFormat('q4') };

/** Upload a quantized matrix, row-sharded so that no binding exceeds the adapter's limit. */
export function uploadQuantized(backend: GpuBackend, label: string, q: QuantizedMatrix): GpuWeight {
  const gpu = backend.gpu;
  const rowBytes = groupsPerRow(q.cols) * wordsPerGroup(q.format) * 4;
  const rowsPerShard = shardRows(q.rows, Math.floor(gpu.weightShardBytes / rowBytes));
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
  if (!w.quant) throw new GpuError('not a quantized weight');
  return quantizedBytes(w.quant, w.rows, w.cols);
}

/** out[M, N] = x[M, K] · Wᵀ (+ bias): GEMV for up to 8 rows (decode), the tiled GEMM above. */
export function quantMatmul(
  backend: GpuBackend,
  x: GpuTensor,
  w: GpuWeight,
  bias: GPUBuffer[] | null,
  m: number,
  out: GpuTensor,
): void {
  const kernels = QUANT_KERNELS[w.quant!];
  const k = w.cols;
  const groups = groupsPerRow(k);
  const defines = { VEC4: k % 4 === 0 };
  w.shards.forEach((s, i) => {
    const params = { M: m, N: s.rows, K: k, nOffset: s.rowStart, ldy: w.rows, hasBias: bias ? 1 : 0, groups };
    const buffers: Record<'x' | 'wq' | 'scales' | 'bias' | 'y', Bindable> = {
      x,
      wq: rowsBinding(s.buffer, s.rowOffset, s.rows, weightRowBytes(w)),
      scales: rowsBinding(s.scales!, s.rowOffset, s.rows, groups * 2),
      bias: bias ? bias[i] : backend.dummyBuffer,
      y: out,
    };
    if (m <= 8) {
      backend.run(kernels.gemv, params, buffers, groups1d(kernels.gemv, Math.ceil(s.rows / 4)), { defines });
    } else {
      const [wx, wy] = size2d(kernels.matmul.workgroupSize);
      backend.run(kernels.matmul, params, buffers, [Math.ceil(s.rows / (4 * wx)), Math.ceil(m / (4 * wy))], {
        defines,
      });
    }
  });
}

export function quantEmbedding(
  backend: GpuBackend,
  ids: GpuIndices,
  table: GpuWeight,
  tokens: number,
  out: GpuTensor,
): void {
  const kernel = QUANT_KERNELS[table.quant!].embedding;
  const groups = groupsPerRow(table.cols);
  if (table.shards.some((s) => s.rowOffset)) throw new GpuError('embedding: a view of a weight is not a table');
  for (const s of table.shards) {
    const params = { tokens, dim: table.cols, rowStart: s.rowStart, rows: s.rows, groups };
    backend.run(kernel, params, { ids, wq: s.buffer, scales: s.scales!, out }, groups1d(kernel, tokens * table.cols));
  }
}

/** dx[M, K] (+)= dy[M, N] · W[N, K] over the row shards of a quantized W. */
export function quantMatmulBackwardInput(
  backend: GpuBackend,
  dy: GpuTensor,
  w: GpuWeight,
  m: number,
  dx: GpuTensor,
  accumulate: boolean,
): void {
  const kernel = QUANT_KERNELS[w.quant!].backward;
  const k = w.cols;
  const groups = groupsPerRow(k);
  const [wx, wy] = size2d(kernel.workgroupSize);
  w.shards.forEach((s, i) => {
    const params = {
      M: m,
      N: s.rows,
      K: k,
      nOffset: s.rowStart,
      ldy: w.rows,
      accumulate: accumulate || i > 0 ? 1 : 0,
      groups,
    };
    const wq = rowsBinding(s.buffer, s.rowOffset, s.rows, weightRowBytes(w));
    const scales = rowsBinding(s.scales!, s.rowOffset, s.rows, groups * 2);
    backend.run(kernel, params, { dy, wq, scales, out: dx }, [Math.ceil(k / (4 * wx)), Math.ceil(m / (4 * wy))]);
  });
}
