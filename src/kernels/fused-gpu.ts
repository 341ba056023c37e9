/**
 * Decode's fused kernels on WebGPU: a decode step of a small model is bound by the number of
 * dispatches more than by arithmetic on software adapters, so the ops that are cheap to fuse run
 * as one dispatch each (the model picks them when `canFuse` allows, model/llama.ts):
 *   - norm_gemv.wgsl: RMSNorm in the prologue of the projections that read it (q, k, v in one
 *     dispatch; gate and up with SwiGLU in the epilogue; the final norm with the LM head), and
 *     (RESIDUAL, where the autotuner's mlp_decode picks it) o_proj with its residual add repeated
 *     in every workgroup's prologue before gate and up;
 *   - gemv_residual.wgsl: o_proj and down_proj added onto the residual stream in the epilogue;
 *   - rope_kv_write.wgsl: RoPE of q and k, and the KV-cache write, in one dispatch.
 * CPU twins: fused-cpu.ts.
 */
import { GpuError } from '../gpu/device';
import type { KvCacheShape } from './backend';
import type { GpuBackend, GpuIndices, GpuTensor, GpuWeight } from './gpu';
import { declareKernel, groups1d, type ParamValues } from './kernel';
import { FUSED_MAX_ROWS } from './fused-cpu';

const normParams = { M: 'u32', K: 'u32', N0: 'u32', N1: 'u32', N2: 'u32', eps: 'f32' } as const;
type NormParams = ParamValues<typeof normParams>;

/** outs[i] = (rmsnorm(x) * g) · W_iᵀ for up to three weights (unused ones: N = 0, placeholder buffers). */
export const NORM_GEMV = declareKernel({
  name: 'norm_gemv',
  shader: 'norm_gemv',
  workgroupSize: 64,
  params: normParams,
  bindings: {
    x: (p: NormParams) => p.M * p.K,
    g: (p: NormParams) => p.K,
    w0: (p: NormParams) => p.N0 * p.K,
    w1: (p: NormParams) => p.N1 * p.K,
    w2: (p: NormParams) => p.N2 * p.K,
    y0: (p: NormParams) => p.M * p.N0,
    y1: (p: NormParams) => p.M * p.N1,
    y2: (p: NormParams) => p.M * p.N2,
  },
});

/** out = silu(rmsnorm(x)·gateᵀ) * (rmsnorm(x)·upᵀ): the MLP's input side in one dispatch. */
export const NORM_GEMV_SWIGLU = declareKernel({
  name: 'norm_gemv(swiglu)',
  shader: 'norm_gemv',
  defines: { SWIGLU: true },
  workgroupSize: 64,
  params: normParams,
  bindings: {
    x: (p: NormParams) => p.M * p.K,
    g: (p: NormParams) => p.K,
    w0: (p: NormParams) => p.N0 * p.K,
    w1: (p: NormParams) => p.N1 * p.K,
    y0: (p: NormParams) => p.M * p.N0,
  },
});

/**
 * xOut = x + att·Woᵀ, then out = silu(rmsnorm(xOut)·gateᵀ) * (rmsnorm(xOut)·upᵀ): NORM_GEMV_SWIGLU
 * with the output projection and residual add in its prologue (XQ, the rows' vec4s in workgroup
 * memory, is a per-dispatch define).
 */
export const NORM_GEMV_RESIDUAL_SWIGLU = declareKernel({
  name: 'norm_gemv(residual,swiglu)',
  shader: 'norm_gemv',
  defines: { SWIGLU: true, RESIDUAL: true },
  workgroupSize: 64,
  params: { ...normParams, KO: 'u32' },
  bindings: {
    x: (p) => p.M * p.K,
    g: (p) => p.K,
    w0: (p) => p.N0 * p.K,
    w1: (p) => p.N1 * p.K,
    y0: (p) => p.M * p.N0,
    att: (p) => p.M * p.KO,
    wo: (p) => p.K * p.KO,
    xOut: (p) => p.M * p.K,
  },
});

/** y += x · Wᵀ (a projection onto the residual stream). */
export const GEMV_RESIDUAL = declareKernel({
  name: 'gemv_residual',
  shader: 'gemv_residual',
  workgroupSize: 64,
  params: { M: 'u32', N: 'u32', K: 'u32' },
  bindings: { x: (p) => p.M * p.K, w: (p) => p.N * p.K, y: (p) => p.M * p.N },
});

/** The bindings of the kernels that rotate q and k and write the KV cache (rope_kv_write, ROPE_KV). */
type RopeKvShape = { tokens: number; heads: number; kvHeads: number; headDim: number; maxPos: number; maxSeq: number };
const ropeKvBindings = {
  q: (p: RopeKvShape) => p.tokens * p.heads * p.headDim,
  k: (p: RopeKvShape) => p.tokens * p.kvHeads * p.headDim,
  v: (p: RopeKvShape) => p.tokens * p.kvHeads * p.headDim,
  slots: (p: RopeKvShape) => p.tokens,
  positions: (p: RopeKvShape) => p.tokens,
  cosSin: (p: RopeKvShape) => p.maxPos * p.headDim,
  // At least one slot (the slot count is not a parameter of the kernels).
  cacheK: (p: RopeKvShape) => p.maxSeq * p.kvHeads * p.headDim,
  cacheV: (p: RopeKvShape) => p.maxSeq * p.kvHeads * p.headDim,
};

/** q = rope(q) in place, cacheK[slot, pos] = rope(k), cacheV[slot, pos] = v. */
export const ROPE_KV_WRITE = declareKernel({
  name: 'rope_kv_write',
  shader: 'rope_kv_write',
  workgroupSize: 64,
  params: { tokens: 'u32', heads: 'u32', kvHeads: 'u32', headDim: 'u32', maxPos: 'u32', maxSeq: 'u32' },
  bindings: ropeKvBindings,
});

/**
 * Decode attention with rope_kv_write folded in (attention_decode.wgsl, ROPE_KV): tokens in
 * distinct slots; the attention output overwrites q.
 */
export const ROPE_KV_ATTENTION = declareKernel({
  name: 'attention_decode(rope_kv)',
  shader: 'attention_decode',
  defines: { ROPE_KV: true },
  workgroupSize: 32,
  params: {
    tokens: 'u32',
    heads: 'u32',
    kvHeads: 'u32',
    headDim: 'u32',
    maxSeq: 'u32',
    scale: 'f32',
    maxPos: 'u32',
  },
  bindings: ropeKvBindings,
});

/** What the fused GEMVs can read: one unquantized shard with K % 4 == 0 (their vec4 loads). */
function readable(w: GpuWeight): boolean {
  return !w.quant && w.shards.length === 1 && w.cols % 4 === 0;
}

/**
 * Whether the model should take the fused GEMVs for weight `w` and `rows` rows: a weight they can
 * read, and at most FUSED_MAX_ROWS rows (decode; prefill's many rows go to the tiled GEMM).
 * Anything else runs the separate ops.
 */
export function gpuCanFuse(w: GpuWeight, rows: number): boolean {
  return rows >= 1 && rows <= FUSED_MAX_ROWS && readable(w);
}

/** Placeholder outputs for the unused weights of norm_gemv: writable bindings must not alias. */
const placeholders = new WeakMap<GpuBackend, [GPUBuffer, GPUBuffer]>();
function placeholderOutputs(be: GpuBackend): [GPUBuffer, GPUBuffer] {
  let p = placeholders.get(be);
  if (!p) {
    p = [
      be.gpu.createStorage(new Float32Array(4), 'unused-out-1'),
      be.gpu.createStorage(new Float32Array(4), 'unused-out-2'),
    ];
    placeholders.set(be, p);
  }
  return p;
}

function checkFusable(op: string, w: GpuWeight, rows: number, k: number): void {
  if (rows < 1 || !readable(w))
    throw new GpuError(
      `${op}: the fused kernel takes rows of an unquantized, unsharded weight with K % 4 == 0 ` +
        `(got ${rows} rows, weight [${w.rows}, ${w.cols}], ${w.shards.length} shard(s)${w.quant ? `, ${w.quant}` : ''})`,
    );
  if (w.cols !== k) throw new GpuError(`${op}: weight [${w.rows}, ${w.cols}] does not take inputs of ${k} features`);
}

export function gpuNormMatmul(
  be: GpuBackend,
  x: GpuTensor,
  norm: GpuWeight,
  eps: number,
  weights: GpuWeight[],
  rows: number,
  outs: GpuTensor[],
): void {
  if (weights.length < 1 || weights.length > 3 || weights.length !== outs.length)
    throw new GpuError(`normMatmul: 1 to 3 weights, one output each (got ${weights.length} and ${outs.length})`);
  const K = norm.cols;
  for (const w of weights) checkFusable('normMatmul', w, rows, K);
  const dtypes = new Set(weights.map((w) => w.dtype));
  if (dtypes.size > 1) throw new GpuError('normMatmul: the weights must share one element type');
  const [d1, d2] = placeholderOutputs(be);
  const N = [0, 1, 2].map((i) => weights[i]?.rows ?? 0);
  const params = { M: rows, K, N0: N[0], N1: N[1], N2: N[2], eps };
  const quads = N.reduce((s, n) => s + Math.ceil(n / 4), 0);
  be.run(
    NORM_GEMV,
    params,
    {
      x,
      g: norm.shards[0].buffer,
      w0: weights[0].shards[0].buffer,
      w1: weights[1]?.shards[0].buffer ?? be.dummyBuffer,
      w2: weights[2]?.shards[0].buffer ?? be.dummyBuffer,
      y0: outs[0],
      y1: outs[1] ?? d1,
      y2: outs[2] ?? d2,
    },
    groups1d(NORM_GEMV, quads),
    { weightType: weights[0].dtype },
  );
}

export function gpuNormSwiglu(
  be: GpuBackend,
  x: GpuTensor,
  norm: GpuWeight,
  eps: number,
  gate: GpuWeight,
  up: GpuWeight,
  rows: number,
  out: GpuTensor,
): void {
  const K = norm.cols;
  checkFusable('normSwiglu', gate, rows, K);
  checkFusable('normSwiglu', up, rows, K);
  if (gate.rows !== up.rows || gate.dtype !== up.dtype)
    throw new GpuError(`normSwiglu: gate [${gate.rows}, ${gate.cols}] and up [${up.rows}, ${up.cols}] differ`);
  const params = { M: rows, K, N0: gate.rows, N1: up.rows, N2: 0, eps };
  const buffers = { x, g: norm.shards[0].buffer, w0: gate.shards[0].buffer, w1: up.shards[0].buffer, y0: out };
  be.run(NORM_GEMV_SWIGLU, params, buffers, groups1d(NORM_GEMV_SWIGLU, Math.ceil(gate.rows / 4)), {
    weightType: gate.dtype,
  });
}

/** The weights of a decode step's MLP half-layer (Backend.mlpDecode). */
export interface MlpWeights<W> {
  o: W;
  norm: W;
  gate: W;
  up: W;
  down: W;
}

/**
 * The mlp_decode variants that take these weights and rows: always 'split'; 'fused' (norm_gemv
 * RESIDUAL) where the fused GEMVs read o, gate and up in one element type and the rows fit in
 * workgroup memory; 'block' (mlp_block.wgsl) where down joins them and the rows and their SwiGLU
 * output fit, with an intermediate size % 4 == 0.
 */
export function mlpDecodeVariantsFor(be: GpuBackend, w: MlpWeights<GpuWeight>, rows: number): string[] {
  const H = w.norm.cols;
  const I = w.gate.rows;
  const limit = be.gpu.device.limits.maxComputeWorkgroupStorageSize;
  const shapes = w.o.rows === H && w.gate.rows === w.up.rows && w.down.rows === H && w.down.cols === I;
  const sameType = (ws: GpuWeight[]) => ws.every((x) => gpuCanFuse(x, rows) && x.dtype === w.gate.dtype);
  const out = ['split'];
  if (!shapes) return out;
  if (sameType([w.o, w.gate, w.up]) && rows * H * 4 <= limit) out.push('fused');
  if (sameType([w.o, w.gate, w.up, w.down]) && I % 4 === 0 && rows * (H + I) * 4 + 32 <= limit) out.push('block');
  return out;
}

function checkMlpVariant(be: GpuBackend, variant: string, w: MlpWeights<GpuWeight>, rows: number): void {
  if (!mlpDecodeVariantsFor(be, w, rows).includes(variant))
    throw new GpuError(
      `mlpDecode: the '${variant}' kernel does not take o [${w.o.rows}, ${w.o.cols}], gate [${w.gate.rows}, ` +
        `${w.gate.cols}], up [${w.up.rows}, ${w.up.cols}] and down [${w.down.rows}, ${w.down.cols}] ` +
        `(${w.gate.dtype}) for ${rows} rows of ${w.norm.cols}`,
    );
}

/**
 * A decode MLP half-layer as `variant` of mlp_decode runs it (see mlpDecodeVariantsFor); returns
 * the tensor holding the new residual stream (x, or xOut for 'fused').
 */
export function gpuMlpDecode(
  be: GpuBackend,
  variant: string,
  att: GpuTensor,
  x: GpuTensor,
  w: MlpWeights<GpuWeight>,
  eps: number,
  rows: number,
  xOut: GpuTensor,
  act: GpuTensor,
): GpuTensor {
  if (variant === 'block') {
    mlpBlock(be, att, x, w, eps, rows);
    return x;
  }
  let stream = x;
  if (variant === 'fused') {
    residualNormSwiglu(be, att, x, w, eps, rows, xOut, act);
    stream = xOut;
  } else {
    gpuMatmulAdd(be, att, w.o, rows, x);
    gpuNormSwiglu(be, x, w.norm, eps, w.gate, w.up, rows, act);
  }
  gpuMatmulAdd(be, act, w.down, rows, stream);
  return stream;
}

/** X = X2 + SwiGLU(rmsnorm(X2))·Wdᵀ with X2 = X + A·Woᵀ, in place, in one workgroup (mlp_block.wgsl). */
export const MLP_BLOCK = declareKernel({
  name: 'mlp_block',
  shader: 'mlp_block',
  workgroupSize: 64,
  params: { M: 'u32', K: 'u32', N: 'u32', KO: 'u32', eps: 'f32' },
  bindings: {
    x: (p) => p.M * p.K,
    att: (p) => p.M * p.KO,
    wo: (p) => p.K * p.KO,
    g: (p) => p.K,
    wg: (p) => p.N * p.K,
    wu: (p) => p.N * p.K,
    wd: (p) => p.K * p.N,
  },
});

function mlpBlock(
  be: GpuBackend,
  att: GpuTensor,
  x: GpuTensor,
  w: MlpWeights<GpuWeight>,
  eps: number,
  rows: number,
): void {
  checkMlpVariant(be, 'block', w, rows);
  const [K, N] = [w.norm.cols, w.gate.rows];
  const params = { M: rows, K, N, KO: w.o.cols, eps };
  const buffers = {
    x,
    att,
    wo: w.o.shards[0].buffer,
    g: w.norm.shards[0].buffer,
    wg: w.gate.shards[0].buffer,
    wu: w.up.shards[0].buffer,
    wd: w.down.shards[0].buffer,
  };
  be.run(MLP_BLOCK, params, buffers, 1, {
    weightType: w.gate.dtype,
    defines: { MR: rows, XQ: (rows * K) / 4, HQ: (rows * N) / 4 },
  });
}

/** xOut = x + att·Woᵀ and out = SwiGLU(rmsnorm(xOut)) in one dispatch (norm_gemv.wgsl RESIDUAL). */
function residualNormSwiglu(
  be: GpuBackend,
  att: GpuTensor,
  x: GpuTensor,
  w: MlpWeights<GpuWeight>,
  eps: number,
  rows: number,
  xOut: GpuTensor,
  out: GpuTensor,
): void {
  checkMlpVariant(be, 'fused', w, rows);
  const K = w.norm.cols;
  const params = { M: rows, K, N0: w.gate.rows, N1: w.up.rows, N2: 0, eps, KO: w.o.cols };
  const buffers = {
    x,
    g: w.norm.shards[0].buffer,
    w0: w.gate.shards[0].buffer,
    w1: w.up.shards[0].buffer,
    y0: out,
    att,
    wo: w.o.shards[0].buffer,
    xOut,
  };
  const grid = groups1d(NORM_GEMV_RESIDUAL_SWIGLU, Math.ceil(w.gate.rows / 4));
  be.run(NORM_GEMV_RESIDUAL_SWIGLU, params, buffers, grid, {
    weightType: w.gate.dtype,
    defines: { MR: rows, XQ: (rows * K) / 4 },
  });
}

export function gpuMatmulAdd(be: GpuBackend, x: GpuTensor, w: GpuWeight, rows: number, y: GpuTensor): void {
  checkFusable('matmulAdd', w, rows, w.cols);
  const params = { M: rows, N: w.rows, K: w.cols };
  be.run(GEMV_RESIDUAL, params, { x, w: w.shards[0].buffer, y }, groups1d(GEMV_RESIDUAL, Math.ceil(w.rows / 4)), {
    weightType: w.dtype,
  });
}

/** RoPE pairs elements d and d + headDim/2; the new keys must fill the cache's rows. */
function checkRopeKv(op: string, kvHeads: number, headDim: number, cache: KvCacheShape): void {
  if (headDim % 2 !== 0) throw new GpuError(`${op}: head_dim ${headDim} is odd`);
  if (kvHeads * headDim !== cache.kvDim)
    throw new GpuError(`${op}: ${kvHeads} kv heads x ${headDim} do not match the cache's kvDim ${cache.kvDim}`);
}

export function gpuRopeKvWrite(
  be: GpuBackend,
  q: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  cacheK: GpuTensor,
  cacheV: GpuTensor,
  slots: GpuIndices,
  positions: GpuIndices,
  cosSin: GpuWeight,
  tokens: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  maxPos: number,
  cache: KvCacheShape,
): void {
  checkRopeKv('ropeKvWrite', kvHeads, headDim, cache);
  const params = { tokens, heads, kvHeads, headDim, maxPos, maxSeq: cache.maxSeq };
  const buffers = { q, k, v, slots, positions, cosSin: cosSin.shards[0].buffer, cacheK, cacheV };
  const pairs = (tokens * (heads + kvHeads) * headDim) / 2;
  be.run(ROPE_KV_WRITE, params, buffers, groups1d(ROPE_KV_WRITE, pairs));
}

/** ROPE_KV_ATTENTION over `tokens` tokens in distinct slots: attention of each query into q, in place. */
export function gpuRopeKvAttention(
  be: GpuBackend,
  q: GpuTensor,
  k: GpuTensor,
  v: GpuTensor,
  cacheK: GpuTensor,
  cacheV: GpuTensor,
  slots: GpuIndices,
  positions: GpuIndices,
  cosSin: GpuWeight,
  tokens: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  maxPos: number,
  cache: KvCacheShape,
): void {
  checkRopeKv('ropeKvAttention', kvHeads, headDim, cache);
  const params = { tokens, heads, kvHeads, headDim, maxSeq: cache.maxSeq, scale: 1 / Math.sqrt(headDim), maxPos };
  const buffers = { q, k, v, slots, positions, cosSin: cosSin.shards[0].buffer, cacheK, cacheV };
  be.run(ROPE_KV_ATTENTION, params, buffers, groups1d(ROPE_KV_ATTENTION, tokens * heads), {
    defines: { HD: headDim },
  });
}
