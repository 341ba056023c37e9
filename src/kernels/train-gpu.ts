/**
 * The training kernels on WebGPU: typed wrappers that record dispatches of the shaders in shaders/
 * (*_backward, cross_entropy, dropout, optimizers) into the GpuBackend's current compute pass.
 * Each has a CPU twin in train-cpu.ts that tests compare it against.
 */
import { GpuError, type Gpu } from '../gpu/device';
import {
  rowsBinding,
  weightRowBytes,
  type Bindable,
  type GpuBackend,
  type GpuIndices,
  type GpuTensor,
  type GpuWeight,
} from './gpu';
import { attentionChunkRows } from './shaders';
import { declareKernel, groups1d, invocations, rowBlockGrid, size2d, type Kernel, type ParamValues } from './kernel';
import type { AdamWParams, TrainOps } from './train-backend';
import { dropoutScale, dropoutThreshold } from './train-cpu';
import { isQuantized, quantMatmulBackwardInput } from './quant-gpu';
import { gemmShapeKey, requireFeatureOf, tuneSlice } from './autotune';

function isWeight(w: GpuWeight | GpuTensor): w is GpuWeight {
  return (w as GpuWeight).shards !== undefined;
}

// ---- kernel declarations (see kernel.ts) ------------------------------------------------------

const matmulBackwardParams = { M: 'u32', N: 'u32', K: 'u32', nOffset: 'u32', ldy: 'u32', accumulate: 'u32' } as const;
type MatmulBackwardParams = ParamValues<typeof matmulBackwardParams>;
/** dX[M, K] (+)= dY[:, nOffset..nOffset+N] · W[N, K] for one row-shard of W (4x4 tiles of dX). */
export const MATMUL_BACKWARD_DX = declareKernel({
  name: 'matmul_backward(dX)',
  shader: 'matmul_backward',
  workgroupSize: [8, 8],
  params: matmulBackwardParams,
  bindings: {
    dy: (p: MatmulBackwardParams) => (p.M === 0 ? 0 : (p.M - 1) * p.ldy + p.nOffset + p.N),
    w: (p: MatmulBackwardParams) => p.N * p.K,
    out: (p: MatmulBackwardParams) => p.M * p.K,
  },
});
/** dW[N, K] (+)= dY[M, N]ᵀ · X[M, K] (4x4 tiles of dW). */
export const MATMUL_BACKWARD_DW = declareKernel({
  name: 'matmul_backward(dW)',
  shader: 'matmul_backward',
  defines: { DW: true },
  workgroupSize: [8, 8],
  params: matmulBackwardParams,
  bindings: {
    dy: (p: MatmulBackwardParams) => p.M * p.N,
    x: (p: MatmulBackwardParams) => p.M * p.K,
    out: (p: MatmulBackwardParams) => p.N * p.K,
  },
});

/** MATMUL_BACKWARD_DX staged through workgroup memory (the GPU-class candidate). */
export const MATMUL_BACKWARD_DX_TILED = declareKernel({
  ...MATMUL_BACKWARD_DX,
  name: 'matmul_backward(dX, tiled)',
  shader: 'matmul_backward_tiled',
  defines: { TK: 32 },
});
/** MATMUL_BACKWARD_DW staged through workgroup memory (the GPU-class candidate). */
export const MATMUL_BACKWARD_DW_TILED = declareKernel({
  ...MATMUL_BACKWARD_DW,
  name: 'matmul_backward(dW, tiled)',
  shader: 'matmul_backward_tiled',
  defines: { DW: true, TK: 32 },
});

/**
 * MATMUL_BACKWARD_DX for adapters with subgroups: 16 rows of dX a workgroup, each dY value read once
 * per subgroup and broadcast (matmul_backward_broadcast.wgsl).
 */
export const MATMUL_BACKWARD_DX_BROADCAST = declareKernel({
  ...MATMUL_BACKWARD_DX,
  name: 'matmul_backward(dX, broadcast16)',
  shader: 'matmul_backward_broadcast',
  defines: { TM: 16 },
  workgroupSize: 64,
});
/** MATMUL_BACKWARD_DW for adapters with subgroups: 16 rows of dW a workgroup, their dY values broadcast. */
export const MATMUL_BACKWARD_DW_BROADCAST = declareKernel({
  ...MATMUL_BACKWARD_DW,
  name: 'matmul_backward(dW, broadcast16)',
  shader: 'matmul_backward_broadcast',
  defines: { DW: true, TM: 16 },
  workgroupSize: 64,
});

export const BIAS_BACKWARD = declareKernel({
  name: 'bias_backward',
  shader: 'bias_backward',
  workgroupSize: 64,
  params: { M: 'u32', N: 'u32', accumulate: 'u32' },
  bindings: { dy: (p) => p.M * p.N, dbias: (p) => p.N },
});

const rmsnormParams = { rows: 'u32', dim: 'u32', eps: 'f32' } as const;
type RmsnormParams = ParamValues<typeof rmsnormParams>;
/** dx of one row per workgroup; stores 1/rms of each row in rstd for the dweight pass. */
export const RMSNORM_BACKWARD = declareKernel({
  name: 'rmsnorm_backward',
  shader: 'rmsnorm_backward',
  workgroupSize: 64,
  params: rmsnormParams,
  bindings: {
    dy: (p: RmsnormParams) => p.rows * p.dim,
    x: (p: RmsnormParams) => p.rows * p.dim,
    weight: (p: RmsnormParams) => p.dim,
    dx: (p: RmsnormParams) => p.rows * p.dim,
    rstd: (p: RmsnormParams) => p.rows,
  },
});
/** dweight[d] += Σ_rows dy · x · rstd, one invocation per column. */
export const RMSNORM_BACKWARD_DWEIGHT = declareKernel({
  name: 'rmsnorm_backward(dweight)',
  shader: 'rmsnorm_backward',
  defines: { DWEIGHT: true },
  workgroupSize: 64,
  params: rmsnormParams,
  bindings: {
    dy: (p: RmsnormParams) => p.rows * p.dim,
    x: (p: RmsnormParams) => p.rows * p.dim,
    rstd: (p: RmsnormParams) => p.rows,
    dweight: (p: RmsnormParams) => p.dim,
  },
});

export const ROPE_BACKWARD = declareKernel({
  name: 'rope_backward',
  shader: 'rope_backward',
  workgroupSize: 64,
  params: { tokens: 'u32', heads: 'u32', headDim: 'u32', maxPos: 'u32' },
  bindings: {
    x: (p) => p.tokens * p.heads * p.headDim,
    positions: (p) => p.tokens,
    cosTable: (p) => (p.maxPos * p.headDim) / 2,
    sinTable: (p) => (p.maxPos * p.headDim) / 2,
  },
});

/** Pass 1: dq, and the softmax statistics [lse, D] per (token, head) then [slot, position] per token. */
export const ATTENTION_BACKWARD_DQ = declareKernel({
  name: 'attention_backward_dq',
  shader: 'attention_backward_dq',
  workgroupSize: 64,
  params: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', maxSeq: 'u32', scale: 'f32' },
  bindings: {
    dout: (p) => p.tokens * p.heads * p.headDim,
    q: (p) => p.tokens * p.heads * p.headDim,
    cacheK: (p) => p.maxSeq * p.kvHeads * p.headDim,
    cacheV: (p) => p.maxSeq * p.kvHeads * p.headDim,
    slots: (p) => p.tokens,
    positions: (p) => p.tokens,
    dq: (p) => p.tokens * p.heads * p.headDim,
    stats: (p) => p.tokens * p.heads * 2 + p.tokens * 2,
  },
});

/** Pass 2: dk, dv in cache layout, a workgroup per (slot, WG key positions, kv head). */
export const ATTENTION_BACKWARD_DKV = declareKernel({
  name: 'attention_backward_dkv',
  shader: 'attention_backward_dkv',
  workgroupSize: 64,
  params: {
    tokens: 'u32',
    heads: 'u32',
    kvHeads: 'u32',
    headDim: 'u32',
    maxSeq: 'u32',
    slotCount: 'u32',
    scale: 'f32',
  },
  bindings: {
    dout: (p) => p.tokens * p.heads * p.headDim,
    q: (p) => p.tokens * p.heads * p.headDim,
    cacheK: (p) => p.slotCount * p.maxSeq * p.kvHeads * p.headDim,
    cacheV: (p) => p.slotCount * p.maxSeq * p.kvHeads * p.headDim,
    stats: (p) => p.tokens * p.heads * 2 + p.tokens * 2,
    dk: (p) => p.slotCount * p.maxSeq * p.kvHeads * p.headDim,
    dv: (p) => p.slotCount * p.maxSeq * p.kvHeads * p.headDim,
  },
});

export const KV_GATHER = declareKernel({
  name: 'kv_gather',
  shader: 'kv_gather',
  workgroupSize: 64,
  params: { tokens: 'u32', kvDim: 'u32', maxSeq: 'u32' },
  bindings: {
    cache: (p) => p.maxSeq * p.kvDim,
    slots: (p) => p.tokens,
    positions: (p) => p.tokens,
    out: (p) => p.tokens * p.kvDim,
  },
});

export const SWIGLU_BACKWARD = declareKernel({
  name: 'swiglu_backward',
  shader: 'swiglu_backward',
  workgroupSize: 64,
  params: { n: 'u32' },
  bindings: { dout: (p) => p.n, gate: (p) => p.n, up: (p) => p.n, dgate: (p) => p.n, dup: (p) => p.n },
});

export const EMBEDDING_BACKWARD = declareKernel({
  name: 'embedding_backward',
  shader: 'embedding_backward',
  workgroupSize: 64,
  params: { tokens: 'u32', vocab: 'u32', dim: 'u32' },
  bindings: { dout: (p) => p.tokens * p.dim, ids: (p) => p.tokens, dtable: (p) => p.vocab * p.dim },
});

export const CROSS_ENTROPY = declareKernel({
  name: 'cross_entropy',
  shader: 'cross_entropy',
  workgroupSize: 64,
  params: { rows: 'u32', vocab: 'u32', gradScale: 'f32' },
  bindings: {
    logits: (p) => p.rows * p.vocab,
    labels: (p) => p.rows,
    losses: (p) => p.rows,
    dlogits: (p) => p.rows * p.vocab,
  },
});

export const LOGSUMEXP_CHUNK = declareKernel({
  name: 'logsumexp_chunk',
  shader: 'logsumexp_chunk',
  workgroupSize: 64,
  params: { rows: 'u32', cols: 'u32', colOffset: 'u32', first: 'u32' },
  bindings: { logits: (p) => p.rows * p.cols, labels: (p) => p.rows, stats: (p) => p.rows * 3 },
});

export const CROSS_ENTROPY_CHUNK_GRAD = declareKernel({
  name: 'cross_entropy_chunk_grad',
  shader: 'cross_entropy_chunk_grad',
  workgroupSize: 64,
  params: { rows: 'u32', cols: 'u32', colOffset: 'u32', vocab: 'u32', gradScale: 'f32' },
  bindings: { logits: (p) => p.rows * p.cols, labels: (p) => p.rows, stats: (p) => p.rows * 3 },
});

export const DROPOUT = declareKernel({
  name: 'dropout',
  shader: 'dropout',
  workgroupSize: 64,
  params: { n: 'u32', seed: 'u32', threshold: 'u32', scale: 'f32' },
  bindings: { x: (p) => p.n, out: (p) => p.n },
});

/** Partial sums of squares, one per block of blockSize (a multiple of the workgroup size) elements. */
export const SUM_SQUARES = declareKernel({
  name: 'sum_squares',
  shader: 'sum_squares',
  workgroupSize: 64,
  params: { n: 'u32', blockSize: 'u32' },
  bindings: { x: (p) => p.n, partials: (p) => Math.ceil(p.n / p.blockSize) },
});

export const ADAMW = declareKernel({
  name: 'adamw',
  shader: 'adamw',
  workgroupSize: 64,
  params: {
    n: 'u32',
    lr: 'f32',
    beta1: 'f32',
    beta2: 'f32',
    eps: 'f32',
    weightDecay: 'f32',
    bc1: 'f32',
    bc2: 'f32',
    gradScale: 'f32',
  },
  bindings: { param: (p) => p.n, grad: (p) => p.n, m: (p) => p.n, v: (p) => p.n },
});

export const SGD = declareKernel({
  name: 'sgd',
  shader: 'sgd',
  workgroupSize: 64,
  params: { n: 'u32', step: 'f32' },
  bindings: { param: (p) => p.n, grad: (p) => p.n },
});

export const FILL = declareKernel({
  name: 'fill',
  shader: 'fill',
  workgroupSize: 64,
  params: { n: 'u32', value: 'f32' },
  bindings: { x: (p) => p.n },
});

export const SCALE_ROWS = declareKernel({
  name: 'scale_rows',
  shader: 'scale_rows',
  workgroupSize: 64,
  params: { rows: 'u32', cols: 'u32' },
  bindings: { x: (p) => p.rows * p.cols, scale: (p) => p.rows },
});

/** Grid of a 4x4-per-invocation tiled GEMM kernel covering [rows, cols] of output. */
function tiledGrid(workgroupSize: number | readonly [number, number], cols: number, rows: number): [number, number] {
  const [wx, wy] = size2d(workgroupSize);
  return [Math.ceil(cols / (4 * wx)), Math.ceil(rows / (4 * wy))];
}

/** A training GEMM variant's kernel and grid over an output of `rows` x `cols`. */
function backwardKernel<B extends string>(
  gpu: Pick<Gpu, 'features' | 'describe'>,
  variant: string,
  kernels: Record<'register' | 'tiled' | 'broadcast16', Kernel<typeof matmulBackwardParams, B>>,
  cols: number,
  rows: number,
): { kernel: Kernel<typeof matmulBackwardParams, B>; grid: [number, number] } {
  if (variant === 'broadcast16') {
    requireFeatureOf(gpu, variant, 'training GEMM');
    return { kernel: kernels.broadcast16, grid: rowBlockGrid(kernels.broadcast16, cols, rows) };
  }
  const kernel = variant === 'tiled' ? kernels.tiled : kernels.register;
  return { kernel, grid: tiledGrid(kernel.workgroupSize, cols, rows) };
}

export class GpuTrainOps implements TrainOps<GpuTensor, GpuWeight, GpuIndices> {
  private readonly dummy: GPUBuffer;
  private readonly scratch = new Map<string, GPUBuffer>();

  constructor(readonly backend: GpuBackend) {
    this.dummy = backend.gpu.createStorage(new Float32Array(4), 'train-dummy');
  }

  /** A persistent scratch buffer of at least `bytes` (grown geometrically; never shrinks). */
  private scratchBuffer(name: string, bytes: number): GPUBuffer {
    const have = this.scratch.get(name);
    if (have && have.size >= bytes) return have;
    if (have) {
      // Queued dispatches may still use the old buffer: submit them before it goes back to the pool.
      this.backend.flush();
      this.backend.gpu.release(have);
    }
    const buf = this.backend.gpu.acquire(Math.max(bytes, (have?.size ?? 0) * 2, 256), `train-${name}`);
    this.scratch.set(name, buf);
    return buf;
  }

  matmulBackwardInput(
    dy: GpuTensor,
    w: GpuWeight | GpuTensor,
    m: number,
    n: number,
    k: number,
    dx: GpuTensor,
    accumulate: boolean,
  ): void {
    if (m === 0 || k === 0) return;
    if (!isWeight(w)) {
      const params = { M: m, N: n, K: k, nOffset: 0, ldy: n, accumulate: accumulate ? 1 : 0 };
      this.dxShard(params, dy, w, 'f32', dx);
      return;
    }
    if (w.rows !== n || w.cols !== k)
      throw new GpuError(`matmulBackwardInput: weight is [${w.rows}, ${w.cols}], expected [${n}, ${k}]`);
    if (isQuantized(w)) return quantMatmulBackwardInput(this.backend, dy, w, m, dx, accumulate);
    // dX = sum over row-shards of dY[:, shard] · W[shard]: the first shard honours `accumulate`,
    // the others add to it (dispatches in one pass run in order).
    w.shards.forEach((s, i) => {
      const params = { M: m, N: s.rows, K: k, nOffset: s.rowStart, ldy: n, accumulate: accumulate || i > 0 ? 1 : 0 };
      this.dxShard(params, dy, rowsBinding(s.buffer, s.rowOffset, s.rows, weightRowBytes(w)), w.dtype, dx);
    });
  }

  /**
   * One dX dispatch for a row-shard of W, the variant chosen like the forward's (forced, tuned or
   * register-tiled; an untuned class is timed at the next readback on scratch dY/dX and the real W).
   */
  private dxShard(
    params: MatmulBackwardParams,
    dy: GpuTensor,
    w: Bindable | GpuTensor,
    weightType: 'f16' | 'f32',
    dx: GpuTensor,
  ): void {
    const be = this.backend;
    const { M, N, K } = params;
    const run = (variant: string, p: MatmulBackwardParams, dyT: GpuTensor, out: GpuTensor) => {
      const { kernel, grid } = backwardKernel(
        be.gpu,
        variant,
        { register: MATMUL_BACKWARD_DX, tiled: MATMUL_BACKWARD_DX_TILED, broadcast16: MATMUL_BACKWARD_DX_BROADCAST },
        K,
        p.M,
      );
      const defines = { VEC4: K % 4 === 0, YVEC4: p.ldy % 4 === 0 && p.nOffset % 4 === 0 };
      be.run(kernel, p, { dy: dyT, w, out }, grid, { defines, weightType });
    };
    const variant = be.chooseVariant(
      'gemm_dx',
      be.gemmDxKernel,
      () => gemmShapeKey(M, N, K, weightType, 'gemm_dx'),
      () => ({
        flops: 2 * tuneSlice(M, 2 * N * K) * N * K,
        prepare: () => {
          const m = tuneSlice(M, 2 * N * K);
          const dyT = be.fromHost(new Float32Array(m * N));
          const out = be.tensor(m * K, 'tune.dx');
          const p = { ...params, M: m, nOffset: 0, ldy: N, accumulate: 0 };
          return {
            dispatch: (v: string) => run(v, p, dyT, out),
            dispose: () => {
              be.free(dyT);
              be.free(out);
            },
          };
        },
      }),
    );
    run(variant, params, dy, dx);
  }

  matmulBackwardWeight(
    dy: GpuTensor,
    x: GpuTensor,
    m: number,
    n: number,
    k: number,
    dw: GpuTensor,
    accumulate: boolean,
  ): void {
    if (n === 0 || k === 0) return;
    const be = this.backend;
    const params = { M: m, N: n, K: k, nOffset: 0, ldy: n, accumulate: accumulate ? 1 : 0 };
    const run = (variant: string, p: MatmulBackwardParams, dyT: GpuTensor, xT: GpuTensor, out: GpuTensor) => {
      const { kernel, grid } = backwardKernel(
        be.gpu,
        variant,
        { register: MATMUL_BACKWARD_DW, tiled: MATMUL_BACKWARD_DW_TILED, broadcast16: MATMUL_BACKWARD_DW_BROADCAST },
        k,
        p.N,
      );
      const defines = { VEC4: k % 4 === 0, YVEC4: p.N % 4 === 0 };
      be.run(kernel, p, { dy: dyT, x: xT, out }, grid, { defines });
    };
    // Trainable weights are f32: the class carries 'f32' whatever the frozen weights are.
    const variant = be.chooseVariant(
      'gemm_dw',
      be.gemmDwKernel,
      () => gemmShapeKey(m, n, k, 'f32', 'gemm_dw'),
      () => ({
        flops: 2 * m * tuneSlice(n, 2 * m * k) * k,
        prepare: () => {
          const nt = tuneSlice(n, 2 * m * k);
          const dyT = be.fromHost(new Float32Array(m * nt));
          const xT = be.fromHost(new Float32Array(m * k));
          const out = be.tensor(nt * k, 'tune.dw');
          const p = { ...params, N: nt, ldy: nt, accumulate: 0 };
          return {
            dispatch: (v: string) => run(v, p, dyT, xT, out),
            dispose: () => {
              be.free(dyT);
              be.free(xT);
              be.free(out);
            },
          };
        },
      }),
    );
    run(variant, params, dy, x, dw);
  }

  matmulTensor(x: GpuTensor, w: GpuTensor, m: number, n: number, k: number, out: GpuTensor): void {
    if (m === 0 || n === 0) return;
    // The forward GEMM of matmul.wgsl with W an f32 tensor as a single shard and no bias.
    const params = { M: m, N: n, K: k, nOffset: 0, ldy: n, hasBias: 0 };
    this.backend.matmulRows(params, { x, w, bias: this.dummy, y: out }, { VEC4: k % 4 === 0 }, 'f32');
  }

  biasBackward(dy: GpuTensor, m: number, n: number, dbias: GpuTensor, accumulate: boolean): void {
    this.backend.run(
      BIAS_BACKWARD,
      { M: m, N: n, accumulate: accumulate ? 1 : 0 },
      { dy, dbias },
      groups1d(BIAS_BACKWARD, n),
    );
  }

  /** dweight, when given, is accumulated into (+=): zero it at the start of a step. */
  rmsnormBackward(
    dy: GpuTensor,
    x: GpuTensor,
    weight: GpuWeight | GpuTensor,
    rows: number,
    dim: number,
    eps: number,
    dx: GpuTensor,
    dweight: GpuTensor | null,
  ): void {
    if (rows === 0) return;
    const wBuf = isWeight(weight) ? weight.shards[0].buffer : weight.buffer;
    const weightType = isWeight(weight) ? weight.dtype : 'f32';
    if (isWeight(weight) && weight.shards.length > 1)
      throw new GpuError('rmsnormBackward: the norm weight must not be sharded');
    const rstd = this.scratchBuffer('rstd', rows * 4);
    this.backend.run(RMSNORM_BACKWARD, { rows, dim, eps }, { dy, x, weight: wBuf, dx, rstd }, rows, { weightType });
    if (dweight) {
      this.backend.run(
        RMSNORM_BACKWARD_DWEIGHT,
        { rows, dim, eps },
        { dy, x, rstd, dweight },
        groups1d(RMSNORM_BACKWARD_DWEIGHT, dim),
      );
    }
  }

  ropeBackward(
    dx: GpuTensor,
    positions: GpuIndices,
    cos: GpuWeight,
    sin: GpuWeight,
    tokens: number,
    heads: number,
    headDim: number,
    maxPos: number,
  ): void {
    const buffers = { x: dx, positions, cosTable: cos.shards[0].buffer, sinTable: sin.shards[0].buffer };
    this.backend.run(
      ROPE_BACKWARD,
      { tokens, heads, headDim, maxPos },
      buffers,
      groups1d(ROPE_BACKWARD, (tokens * heads * headDim) / 2),
    );
  }

  attentionBackward(
    dout: GpuTensor,
    q: GpuTensor,
    k: GpuTensor,
    v: GpuTensor,
    slots: GpuIndices,
    positions: GpuIndices,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxSeq: number,
    slotCount: number,
    dq: GpuTensor,
    dk: GpuTensor,
    dv: GpuTensor,
  ): void {
    if (headDim > 256) throw new GpuError(`attention backward supports head_dim up to 256, got ${headDim}`);
    if (heads % kvHeads !== 0)
      throw new GpuError(`attention backward: ${heads} heads are not a multiple of ${kvHeads} kv heads`);
    const scale = 1 / Math.sqrt(headDim);
    if (tokens === 0) {
      this.zero(dk, slotCount * maxSeq * kvHeads * headDim);
      this.zero(dv, slotCount * maxSeq * kvHeads * headDim);
      return;
    }
    // [lse, D] per (token, head), then [slot, position] per token (written by pass 1).
    const stats = this.scratchBuffer('attn-stats', (tokens * heads * 2 + tokens * 2) * 4);
    // Pass 1: one workgroup per (WG consecutive tokens, head); pass 2: per (slot, WG keys, kv head).
    const group = heads / kvHeads;
    const dqDefines = { HD: headDim, KC: attentionChunkRows(headDim) };
    this.backend.run(
      ATTENTION_BACKWARD_DQ,
      { tokens, heads, kvHeads, headDim, maxSeq, scale },
      { dout, q, cacheK: k, cacheV: v, slots, positions, dq, stats },
      groups1d(ATTENTION_BACKWARD_DQ, tokens) * heads,
      { defines: dqDefines },
    );
    const blocks = groups1d(ATTENTION_BACKWARD_DKV, maxSeq);
    const dkvDefines = { HD: headDim, GQ: group, QC: Math.max(1, Math.min(64, Math.floor(1024 / (group * headDim)))) };
    this.backend.run(
      ATTENTION_BACKWARD_DKV,
      { tokens, heads, kvHeads, headDim, maxSeq, slotCount, scale },
      { dout, q, cacheK: k, cacheV: v, stats, dk, dv },
      slotCount * blocks * kvHeads,
      { defines: dkvDefines },
    );
  }

  kvGather(
    cache: GpuTensor,
    slots: GpuIndices,
    positions: GpuIndices,
    tokens: number,
    kvDim: number,
    maxSeq: number,
    out: GpuTensor,
  ): void {
    this.backend.run(
      KV_GATHER,
      { tokens, kvDim, maxSeq },
      { cache, slots, positions, out },
      groups1d(KV_GATHER, tokens * kvDim),
    );
  }

  swigluBackward(dout: GpuTensor, gate: GpuTensor, up: GpuTensor, n: number, dgate: GpuTensor, dup: GpuTensor): void {
    this.backend.run(SWIGLU_BACKWARD, { n }, { dout, gate, up, dgate, dup }, groups1d(SWIGLU_BACKWARD, n));
  }

  embeddingBackward(
    dout: GpuTensor,
    ids: GpuIndices,
    tokens: number,
    vocab: number,
    dim: number,
    dtable: GpuTensor,
    accumulate: boolean,
  ): void {
    if (!accumulate) this.zero(dtable, vocab * dim);
    this.backend.run(
      EMBEDDING_BACKWARD,
      { tokens, vocab, dim },
      { dout, ids, dtable },
      groups1d(EMBEDDING_BACKWARD, dim),
    );
  }

  crossEntropy(
    logits: GpuTensor,
    labels: GpuIndices,
    rows: number,
    vocab: number,
    gradScale: number,
    losses: GpuTensor,
    dlogits: GpuTensor,
  ): void {
    if (logits.buffer === dlogits.buffer) throw new GpuError('crossEntropy: dlogits must not alias logits');
    this.backend.run(CROSS_ENTROPY, { rows, vocab, gradScale }, { logits, labels, losses, dlogits }, rows);
  }

  logSumExpChunk(
    logits: GpuTensor,
    labels: GpuIndices,
    rows: number,
    cols: number,
    colOffset: number,
    first: boolean,
    stats: GpuTensor,
  ): void {
    if (rows === 0) return;
    if (cols === 0) throw new GpuError('logSumExpChunk: an empty vocabulary chunk');
    const params = { rows, cols, colOffset, first: first ? 1 : 0 };
    this.backend.run(LOGSUMEXP_CHUNK, params, { logits, labels, stats }, rows);
  }

  crossEntropyChunkGrad(
    logits: GpuTensor,
    labels: GpuIndices,
    stats: GpuTensor,
    rows: number,
    cols: number,
    colOffset: number,
    vocab: number,
    gradScale: number,
  ): void {
    if (rows * cols === 0) return;
    const params = { rows, cols, colOffset, vocab, gradScale };
    this.backend.run(
      CROSS_ENTROPY_CHUNK_GRAD,
      params,
      { logits, labels, stats },
      groups1d(CROSS_ENTROPY_CHUNK_GRAD, rows * cols),
    );
  }

  dropout(x: GpuTensor, n: number, p: number, seed: number, out: GpuTensor): void {
    const params = { n, seed: seed >>> 0, threshold: dropoutThreshold(p), scale: dropoutScale(p) };
    this.backend.run(DROPOUT, params, { x, out }, groups1d(DROPOUT, n));
  }

  async sumSquares(x: GpuTensor, n: number): Promise<number> {
    if (n === 0) return 0;
    // One workgroup per block of wg·iters elements, at most 1024 partials, summed on the host in f64.
    const wg = invocations(SUM_SQUARES.workgroupSize);
    const groups = Math.min(1024, Math.ceil(n / (wg * 16)));
    const blockSize = Math.ceil(n / groups / wg) * wg;
    const count = Math.ceil(n / blockSize);
    const partials = this.backend.gpu.acquire(count * 4, 'sum-squares');
    this.backend.run(SUM_SQUARES, { n, blockSize }, { x, partials: { buffer: partials, length: count } }, [count, 1]);
    this.backend.flush();
    try {
      const parts = await this.backend.gpu.readF32(partials, count);
      let s = 0;
      for (const v of parts) s += v;
      return s;
    } finally {
      this.backend.gpu.release(partials);
    }
  }

  adamw(param: GpuTensor, grad: GpuTensor, m: GpuTensor, v: GpuTensor, n: number, p: AdamWParams): void {
    const bc1 = 1 - p.beta1 ** p.step;
    const bc2 = 1 - p.beta2 ** p.step;
    const params = {
      n,
      lr: p.lr,
      beta1: p.beta1,
      beta2: p.beta2,
      eps: p.eps,
      weightDecay: p.weightDecay,
      bc1,
      bc2,
      gradScale: p.gradScale,
    };
    this.backend.run(ADAMW, params, { param, grad, m, v }, groups1d(ADAMW, n));
  }

  sgd(param: GpuTensor, grad: GpuTensor, n: number, lr: number, gradScale: number): void {
    this.backend.run(SGD, { n, step: lr * gradScale }, { param, grad }, groups1d(SGD, n));
  }

  zero(x: GpuTensor, n: number): void {
    if (n === 0) return;
    this.backend.run(FILL, { n, value: 0 }, { x }, groups1d(FILL, n));
  }

  scaleRows(x: GpuTensor, scale: GpuTensor, rows: number, cols: number): void {
    if (rows * cols === 0) return;
    this.backend.run(SCALE_ROWS, { rows, cols }, { x, scale }, groups1d(SCALE_ROWS, rows * cols));
  }
}
