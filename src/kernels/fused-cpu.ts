/**
 * CPU twins of decode's fused kernels (fused-gpu.ts): each is the separate ops it replaces, run in
 * the same order, so the twin's numbers equal the unfused path's exactly.
 */
import type { KvCacheShape } from './backend';

/**
 * Rows (sequences of a decode batch) up to which the model takes the fused GEMVs: the GEMV regime
 * of matmul.wgsl (beyond it the tiled GEMM is faster). The twins keep the same limit so both
 * backends take the same path.
 */
export const FUSED_MAX_ROWS = 8;
import { cpuAdd, cpuKvWrite, cpuMatmul, cpuRmsnorm, cpuRope, cpuSwiglu } from './cpu';

/** outs[i] = (rmsnorm(x) * g) · W_iᵀ */
export function cpuNormMatmul(
  x: Float32Array,
  g: Float32Array,
  eps: number,
  weights: { data: Float32Array; rows: number; cols: number }[],
  rows: number,
  outs: Float32Array[],
): void {
  const k = g.length;
  const h = new Float32Array(rows * k);
  cpuRmsnorm(x, g, rows, k, eps, h);
  weights.forEach((w, i) => cpuMatmul(h, w.data, null, rows, w.rows, w.cols, outs[i]));
}

/** out = silu(rmsnorm(x)·gateᵀ) * (rmsnorm(x)·upᵀ) */
export function cpuNormSwiglu(
  x: Float32Array,
  g: Float32Array,
  eps: number,
  gate: { data: Float32Array; rows: number; cols: number },
  up: { data: Float32Array; rows: number; cols: number },
  rows: number,
  out: Float32Array,
): void {
  const gated = new Float32Array(rows * gate.rows);
  const upOut = new Float32Array(rows * up.rows);
  cpuNormMatmul(x, g, eps, [gate, up], rows, [gated, upOut]);
  cpuSwiglu(gated, upOut, rows * gate.rows, out);
}

/** y += x · Wᵀ */
export function cpuMatmulAdd(
  x: Float32Array,
  w: { data: Float32Array; rows: number; cols: number },
  rows: number,
  y: Float32Array,
): void {
  const prod = new Float32Array(rows * w.rows);
  cpuMatmul(x, w.data, null, rows, w.rows, w.cols, prod);
  cpuAdd(y, prod, rows * w.rows);
}

/** cos and sin tables [positions, headDim/2] interleaved as (cos, sin) pairs: rope_kv_write's table. */
export function interleaveCosSin(cos: Float32Array, sin: Float32Array): Float32Array {
  const out = new Float32Array(2 * cos.length);
  for (let i = 0; i < cos.length; i++) {
    out[2 * i] = cos[i];
    out[2 * i + 1] = sin[i];
  }
  return out;
}

/** q = rope(q) in place; cacheK[slot, pos] = rope(k), cacheV[slot, pos] = v; k itself is left as it was. */
export function cpuRopeKvWrite(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  cacheK: Float32Array,
  cacheV: Float32Array,
  slots: Uint32Array,
  positions: Uint32Array,
  cosSin: Float32Array,
  tokens: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  cache: KvCacheShape,
): void {
  const cos = cosSin.filter((_, i) => i % 2 === 0);
  const sin = cosSin.filter((_, i) => i % 2 === 1);
  cpuRope(q, positions, cos, sin, tokens, heads, headDim);
  const rotated = k.slice(0, tokens * kvHeads * headDim);
  cpuRope(rotated, positions, cos, sin, tokens, kvHeads, headDim);
  cpuKvWrite(rotated, v, cacheK, cacheV, slots, positions, tokens, cache);
}
