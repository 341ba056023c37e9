/**
 * CPU twins of every WGSL kernel: the same op, written as the plainest loops that match HF
 * semantics. Tests compare each GPU kernel against these; benchmarks run them side by side.
 */
import type { Backend, KvCacheShape, WeightShape } from './backend';
import type { TrainOps } from './train-backend';
import { CpuTrainOps } from './train-cpu';
import { f16ToF32 as f16BitsToF32 } from '../formats/dtype';
import { sliceRows, type QuantizedMatrix } from '../quant/quantize';
import { cpuEmbeddingQ, cpuMatmulQ } from './quant-cpu';
import { cpuMatmulAdd, cpuNormMatmul, cpuNormSwiglu, cpuRopeKvWrite, FUSED_MAX_ROWS } from './fused-cpu';

export interface CpuWeight extends WeightShape {
  /** f32 values; empty for a quantized weight, which `quant` holds packed. */
  data: Float32Array;
  quant?: QuantizedMatrix;
}

export function cpuEmbedding(
  ids: Uint32Array,
  table: Float32Array,
  dim: number,
  tokens: number,
  out: Float32Array,
): void {
  for (let t = 0; t < tokens; t++) out.set(table.subarray(ids[t] * dim, ids[t] * dim + dim), t * dim);
}

/** The first index of the largest of logits[start, start + n) (NaN never wins after index 0). */
export function argmaxRow(logits: Float32Array, start = 0, n = logits.length - start): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (logits[start + i] > logits[start + best]) best = i;
  return best;
}

export function cpuArgmaxRows(
  logits: Float32Array,
  rows: number,
  vocab: number,
  next: Uint32Array,
  tokens: Uint32Array,
  outOffset: number,
): void {
  for (let r = 0; r < rows; r++) {
    next[r] = argmaxRow(logits, r * vocab, vocab);
    tokens[outOffset + r] = next[r];
  }
}

export function cpuRmsnorm(
  x: Float32Array,
  weight: Float32Array,
  rows: number,
  dim: number,
  eps: number,
  out: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += x[r * dim + d] * x[r * dim + d];
    const inv = 1 / Math.sqrt(s / dim + eps);
    for (let d = 0; d < dim; d++) out[r * dim + d] = x[r * dim + d] * inv * weight[d];
  }
}

export function cpuMatmul(
  x: Float32Array,
  w: Float32Array,
  bias: Float32Array | null,
  m: number,
  n: number,
  k: number,
  out: Float32Array,
): void {
  for (let i = 0; i < m; i++) {
    const xo = i * k;
    for (let j = 0; j < n; j++) {
      const wo = j * k;
      let s = 0;
      for (let kk = 0; kk < k; kk++) s += x[xo + kk] * w[wo + kk];
      out[i * n + j] = s + (bias ? bias[j] : 0);
    }
  }
}

export function cpuRope(
  x: Float32Array,
  positions: Uint32Array,
  cos: Float32Array,
  sin: Float32Array,
  tokens: number,
  heads: number,
  headDim: number,
): void {
  const half = headDim / 2;
  for (let t = 0; t < tokens; t++) {
    const pos = positions[t];
    for (let h = 0; h < heads; h++) {
      const base = (t * heads + h) * headDim;
      for (let j = 0; j < half; j++) {
        const c = cos[pos * half + j];
        const s = sin[pos * half + j];
        const x1 = x[base + j];
        const x2 = x[base + j + half];
        x[base + j] = x1 * c - x2 * s;
        x[base + j + half] = x2 * c + x1 * s;
      }
    }
  }
}

export function cpuKvWrite(
  k: Float32Array,
  v: Float32Array,
  cacheK: Float32Array,
  cacheV: Float32Array,
  slots: Uint32Array,
  positions: Uint32Array,
  tokens: number,
  c: KvCacheShape,
): void {
  for (let t = 0; t < tokens; t++) {
    const dst = (slots[t] * c.maxSeq + positions[t]) * c.kvDim;
    cacheK.set(k.subarray(t * c.kvDim, (t + 1) * c.kvDim), dst);
    cacheV.set(v.subarray(t * c.kvDim, (t + 1) * c.kvDim), dst);
  }
}

export function cpuAttention(
  q: Float32Array,
  cacheK: Float32Array,
  cacheV: Float32Array,
  slots: Uint32Array,
  positions: Uint32Array,
  tokens: number,
  heads: number,
  kvHeads: number,
  headDim: number,
  maxSeq: number,
  out: Float32Array,
): void {
  const kvDim = kvHeads * headDim;
  const group = heads / kvHeads;
  const scale = 1 / Math.sqrt(headDim);
  for (let t = 0; t < tokens; t++) {
    const last = positions[t];
    const scores = new Float64Array(last + 1);
    for (let h = 0; h < heads; h++) {
      const kvh = Math.floor(h / group);
      const qb = (t * heads + h) * headDim;
      const cb = slots[t] * maxSeq * kvDim + kvh * headDim;
      let max = -Infinity;
      for (let j = 0; j <= last; j++) {
        let s = 0;
        for (let d = 0; d < headDim; d++) s += q[qb + d] * cacheK[cb + j * kvDim + d];
        scores[j] = s * scale;
        max = Math.max(max, scores[j]);
      }
      let sum = 0;
      for (let j = 0; j <= last; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let d = 0; d < headDim; d++) {
        let acc = 0;
        for (let j = 0; j <= last; j++) acc += scores[j] * cacheV[cb + j * kvDim + d];
        out[qb + d] = acc / sum;
      }
    }
  }
}

export function cpuSwiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
  for (let i = 0; i < n; i++) out[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
}

export function cpuAdd(x: Float32Array, y: Float32Array, n: number, scale = 1): void {
  for (let i = 0; i < n; i++) x[i] += scale * y[i];
}

export class CpuBackend implements Backend<Float32Array, CpuWeight, Uint32Array> {
  readonly name = 'cpu';
  readonly weightType = 'f32';

  weight(_label: string, data: Float32Array | Uint16Array, rows: number, cols: number): CpuWeight {
    const f32 = data instanceof Uint16Array ? f16BitsToF32(data) : data;
    return { data: f32, rows, cols };
  }
  quantizedWeight(_label: string, q: QuantizedMatrix): CpuWeight {
    return { data: new Float32Array(0), rows: q.rows, cols: q.cols, quant: q };
  }
  vector(_label: string, data: Float32Array): CpuWeight {
    return { data, rows: 1, cols: data.length };
  }
  indices(data: Uint32Array): Uint32Array {
    return data;
  }
  tensor(n: number): Float32Array {
    return new Float32Array(n);
  }
  fromHost(data: Float32Array): Float32Array {
    return data.slice();
  }
  async toHost(t: Float32Array, n: number, offset = 0): Promise<Float32Array> {
    return t.slice(offset, offset + n);
  }
  upload(t: Float32Array, data: Float32Array): void {
    t.set(data);
  }
  free(): void {}
  freeIndices(): void {}
  async indicesToHost(i: Uint32Array, n: number): Promise<Uint32Array> {
    return i.slice(0, n);
  }
  argmaxRows(
    logits: Float32Array,
    rows: number,
    vocab: number,
    next: Uint32Array,
    tokens: Uint32Array,
    outOffset: number,
    embed?: { table: CpuWeight; out: Float32Array },
  ): void {
    cpuArgmaxRows(logits, rows, vocab, next, tokens, outOffset);
    if (embed) this.embedding(next, embed.table, rows, embed.out);
  }
  freeWeight(): void {}
  weightRows(w: CpuWeight, r0: number, n: number): CpuWeight {
    if (!Number.isInteger(r0) || !Number.isInteger(n) || r0 < 0 || n < 1 || r0 + n > w.rows)
      throw new Error(`weightRows: rows [${r0}, ${r0 + n}) are not inside a weight of ${w.rows} rows`);
    if (w.quant) return { data: w.data, rows: n, cols: w.cols, quant: sliceRows(w.quant, r0, r0 + n) };
    return { data: w.data.subarray(r0 * w.cols, (r0 + n) * w.cols), rows: n, cols: w.cols };
  }
  weightAsTensor(w: CpuWeight): Float32Array {
    if (w.quant) throw new Error('a quantized weight is frozen: it cannot be trained in place (use LoRA)');
    return w.data;
  }
  embedding(ids: Uint32Array, table: CpuWeight, tokens: number, out: Float32Array): void {
    if (table.quant) return cpuEmbeddingQ(ids, table.quant, tokens, out);
    cpuEmbedding(ids, table.data, table.cols, tokens, out);
  }
  rmsnorm(x: Float32Array, weight: CpuWeight, rows: number, dim: number, eps: number, out: Float32Array): void {
    cpuRmsnorm(x, weight.data, rows, dim, eps, out);
  }
  matmul(x: Float32Array, w: CpuWeight, bias: CpuWeight | null, m: number, out: Float32Array): void {
    if (w.quant) return cpuMatmulQ(x, w.quant, bias ? bias.data : null, m, out);
    cpuMatmul(x, w.data, bias ? bias.data : null, m, w.rows, w.cols, out);
  }
  rope(
    x: Float32Array,
    positions: Uint32Array,
    cos: CpuWeight,
    sin: CpuWeight,
    tokens: number,
    heads: number,
    headDim: number,
    _maxPos?: number,
  ): void {
    cpuRope(x, positions, cos.data, sin.data, tokens, heads, headDim);
  }
  kvWrite(
    k: Float32Array,
    v: Float32Array,
    cacheK: Float32Array,
    cacheV: Float32Array,
    slots: Uint32Array,
    positions: Uint32Array,
    tokens: number,
    cache: KvCacheShape,
  ): void {
    cpuKvWrite(k, v, cacheK, cacheV, slots, positions, tokens, cache);
  }
  attention(
    q: Float32Array,
    cacheK: Float32Array,
    cacheV: Float32Array,
    slots: Uint32Array,
    positions: Uint32Array,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxSeq: number,
    out: Float32Array,
  ): void {
    cpuAttention(q, cacheK, cacheV, slots, positions, tokens, heads, kvHeads, headDim, maxSeq, out);
  }
  swiglu(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void {
    cpuSwiglu(gate, up, n, out);
  }
  add(x: Float32Array, y: Float32Array, n: number, scale = 1): void {
    cpuAdd(x, y, n, scale);
  }
  gatherRows(src: Float32Array, rows: number[], cols: number, out: Float32Array): void {
    rows.forEach((r, i) => out.set(src.subarray(r * cols, (r + 1) * cols), i * cols));
  }
  copy(src: Float32Array, srcOffset: number, dst: Float32Array, dstOffset: number, n: number): void {
    dst.set(src.subarray(srcOffset, srcOffset + n), dstOffset);
  }
  /** An unquantized weight, few rows (the GPU's limits, so both backends take the same path). */
  canFuse(w: CpuWeight, rows: number): boolean {
    return !w.quant && rows >= 1 && rows <= FUSED_MAX_ROWS;
  }
  normMatmul(
    x: Float32Array,
    norm: CpuWeight,
    eps: number,
    weights: CpuWeight[],
    rows: number,
    outs: Float32Array[],
  ): void {
    cpuNormMatmul(x, norm.data, eps, weights, rows, outs);
  }
  normSwiglu(
    x: Float32Array,
    norm: CpuWeight,
    eps: number,
    gate: CpuWeight,
    up: CpuWeight,
    rows: number,
    out: Float32Array,
  ): void {
    cpuNormSwiglu(x, norm.data, eps, gate, up, rows, out);
  }
  matmulAdd(x: Float32Array, w: CpuWeight, rows: number, y: Float32Array): void {
    cpuMatmulAdd(x, w, rows, y);
  }
  mlpDecode(
    att: Float32Array,
    x: Float32Array,
    w: { o: CpuWeight; norm: CpuWeight; gate: CpuWeight; up: CpuWeight; down: CpuWeight },
    eps: number,
    rows: number,
    _xOut: Float32Array,
    act: Float32Array,
  ): Float32Array {
    cpuMatmulAdd(att, w.o, rows, x);
    cpuNormSwiglu(x, w.norm.data, eps, w.gate, w.up, rows, act);
    cpuMatmulAdd(act, w.down, rows, x);
    return x;
  }
  ropeKvWrite(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    cacheK: Float32Array,
    cacheV: Float32Array,
    slots: Uint32Array,
    positions: Uint32Array,
    cosSin: CpuWeight,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    _maxPos: number,
    cache: KvCacheShape,
  ): void {
    cpuRopeKvWrite(q, k, v, cacheK, cacheV, slots, positions, cosSin.data, tokens, heads, kvHeads, headDim, cache);
  }
  ropeKvAttention(
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    cacheK: Float32Array,
    cacheV: Float32Array,
    slots: Uint32Array,
    positions: Uint32Array,
    cosSin: CpuWeight,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxPos: number,
    cache: KvCacheShape,
    out: Float32Array,
  ): Float32Array {
    this.ropeKvWrite(q, k, v, cacheK, cacheV, slots, positions, cosSin, tokens, heads, kvHeads, headDim, maxPos, cache);
    this.attention(q, cacheK, cacheV, slots, positions, tokens, heads, kvHeads, headDim, cache.maxSeq, out);
    return out;
  }
  flush(): void {}
  createTrainOps(): TrainOps<Float32Array, CpuWeight, Uint32Array> {
    return new CpuTrainOps();
  }
}
