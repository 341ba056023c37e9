/**
 * CPU twins of the training kernels (shaders/*_backward.wgsl, cross_entropy, dropout, optimizers):
 * the same ops as the plainest loops, against which train-gpu.ts is tested and which are
 * themselves checked against finite differences of the forward twins in cpu.ts.
 */
import type { CpuWeight } from './cpu';
import { cpuMatmulQBackwardInput } from './quant-cpu';
import { IGNORE_INDEX, type AdamWParams, type TrainOps } from './train-backend';

type CpuW = CpuWeight | Float32Array;

function values(w: CpuW): Float32Array {
  return w instanceof Float32Array ? w : w.data;
}

/** PCG-RXS-M-XS hash of a u32 (the same u32 math as pcg() in shaders/dropout.wgsl). */
export function pcgHash(v: number): number {
  const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** Dropout keeps element i when dropoutHash(seed, i) >= dropoutThreshold(p). */
export function dropoutHash(seed: number, i: number): number {
  return pcgHash((i + pcgHash(seed >>> 0)) >>> 0);
}

export function dropoutThreshold(p: number): number {
  if (!(p > 0)) return 0;
  if (p >= 1) return 0xffffffff;
  return Math.min(0xffffffff, Math.floor(p * 2 ** 32));
}

/** The f32 multiplier of kept elements (0 when everything is dropped). */
export function dropoutScale(p: number): number {
  return p >= 1 ? 0 : Math.fround(1 / (1 - Math.max(0, p)));
}

export class CpuTrainOps implements TrainOps<Float32Array, CpuWeight, Uint32Array> {
  matmulBackwardInput(
    dy: Float32Array,
    w: CpuW,
    m: number,
    n: number,
    k: number,
    dx: Float32Array,
    accumulate: boolean,
  ): void {
    if (!(w instanceof Float32Array) && w.quant) return cpuMatmulQBackwardInput(dy, w.quant, m, dx, accumulate);
    const wd = values(w);
    const row = new Float64Array(k);
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let j = 0; j < n; j++) {
        const g = dy[i * n + j];
        const wo = j * k;
        for (let kk = 0; kk < k; kk++) row[kk] += g * wd[wo + kk];
      }
      for (let kk = 0; kk < k; kk++) dx[i * k + kk] = (accumulate ? dx[i * k + kk] : 0) + row[kk];
    }
  }

  matmulBackwardWeight(
    dy: Float32Array,
    x: Float32Array,
    m: number,
    n: number,
    k: number,
    dw: Float32Array,
    accumulate: boolean,
  ): void {
    const row = new Float64Array(k);
    for (let j = 0; j < n; j++) {
      row.fill(0);
      for (let i = 0; i < m; i++) {
        const g = dy[i * n + j];
        const xo = i * k;
        for (let kk = 0; kk < k; kk++) row[kk] += g * x[xo + kk];
      }
      for (let kk = 0; kk < k; kk++) dw[j * k + kk] = (accumulate ? dw[j * k + kk] : 0) + row[kk];
    }
  }

  matmulTensor(x: Float32Array, w: Float32Array, m: number, n: number, k: number, out: Float32Array): void {
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let kk = 0; kk < k; kk++) s += x[i * k + kk] * w[j * k + kk];
        out[i * n + j] = s;
      }
    }
  }

  biasBackward(dy: Float32Array, m: number, n: number, dbias: Float32Array, accumulate: boolean): void {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += dy[i * n + j];
      dbias[j] = (accumulate ? dbias[j] : 0) + s;
    }
  }

  /** dweight, when given, is accumulated into (+=): zero it at the start of a step. */
  rmsnormBackward(
    dy: Float32Array,
    x: Float32Array,
    weight: CpuW,
    rows: number,
    dim: number,
    eps: number,
    dx: Float32Array,
    dweight: Float32Array | null,
  ): void {
    const w = values(weight);
    for (let r = 0; r < rows; r++) {
      const b = r * dim;
      let ss = 0;
      let gx = 0;
      for (let d = 0; d < dim; d++) {
        ss += x[b + d] * x[b + d];
        gx += dy[b + d] * w[d] * x[b + d];
      }
      const inv = 1 / Math.sqrt(ss / dim + eps);
      const c = (inv * inv * inv * gx) / dim;
      for (let d = 0; d < dim; d++) {
        dx[b + d] = inv * dy[b + d] * w[d] - x[b + d] * c;
        if (dweight) dweight[d] += dy[b + d] * x[b + d] * inv;
      }
    }
  }

  ropeBackward(
    dx: Float32Array,
    positions: Uint32Array,
    cos: CpuWeight,
    sin: CpuWeight,
    tokens: number,
    heads: number,
    headDim: number,
    _maxPos?: number,
  ): void {
    const half = headDim / 2;
    for (let t = 0; t < tokens; t++) {
      const pos = positions[t];
      for (let h = 0; h < heads; h++) {
        const base = (t * heads + h) * headDim;
        for (let j = 0; j < half; j++) {
          const c = cos.data[pos * half + j];
          const s = sin.data[pos * half + j];
          const x1 = dx[base + j];
          const x2 = dx[base + j + half];
          dx[base + j] = x1 * c + x2 * s;
          dx[base + j + half] = x2 * c - x1 * s;
        }
      }
    }
  }

  attentionBackward(
    dout: Float32Array,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    slots: Uint32Array,
    positions: Uint32Array,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxSeq: number,
    slotCount: number,
    dq: Float32Array,
    dk: Float32Array,
    dv: Float32Array,
  ): void {
    const kvDim = kvHeads * headDim;
    const group = heads / kvHeads;
    const scale = 1 / Math.sqrt(headDim);
    dq.fill(0, 0, tokens * heads * headDim);
    dk.fill(0, 0, slotCount * maxSeq * kvDim);
    dv.fill(0, 0, slotCount * maxSeq * kvDim);
    for (let t = 0; t < tokens; t++) {
      const last = positions[t];
      const p = new Float64Array(last + 1);
      const dp = new Float64Array(last + 1);
      for (let h = 0; h < heads; h++) {
        const kvh = Math.floor(h / group);
        const qb = (t * heads + h) * headDim;
        const cb = slots[t] * maxSeq * kvDim + kvh * headDim;
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          let s = 0;
          let g = 0;
          for (let d = 0; d < headDim; d++) {
            s += q[qb + d] * k[cb + j * kvDim + d];
            g += dout[qb + d] * v[cb + j * kvDim + d];
          }
          p[j] = s * scale;
          dp[j] = g;
          max = Math.max(max, p[j]);
        }
        let sum = 0;
        for (let j = 0; j <= last; j++) sum += p[j] = Math.exp(p[j] - max);
        let D = 0;
        for (let j = 0; j <= last; j++) D += (p[j] /= sum) * dp[j];
        for (let j = 0; j <= last; j++) {
          const ds = p[j] * (dp[j] - D) * scale;
          const kb = cb + j * kvDim;
          for (let d = 0; d < headDim; d++) {
            dq[qb + d] += ds * k[kb + d];
            dk[kb + d] += ds * q[qb + d];
            dv[kb + d] += p[j] * dout[qb + d];
          }
        }
      }
    }
  }

  kvGather(
    cache: Float32Array,
    slots: Uint32Array,
    positions: Uint32Array,
    tokens: number,
    kvDim: number,
    maxSeq: number,
    out: Float32Array,
  ): void {
    for (let t = 0; t < tokens; t++) {
      const src = (slots[t] * maxSeq + positions[t]) * kvDim;
      out.set(cache.subarray(src, src + kvDim), t * kvDim);
    }
  }

  swigluBackward(
    dout: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    n: number,
    dgate: Float32Array,
    dup: Float32Array,
  ): void {
    for (let i = 0; i < n; i++) {
      const a = gate[i];
      const s = 1 / (1 + Math.exp(-a));
      dup[i] = dout[i] * a * s;
      dgate[i] = dout[i] * up[i] * s * (1 + a * (1 - s));
    }
  }

  embeddingBackward(
    dout: Float32Array,
    ids: Uint32Array,
    tokens: number,
    vocab: number,
    dim: number,
    dtable: Float32Array,
    accumulate: boolean,
  ): void {
    if (!accumulate) dtable.fill(0, 0, vocab * dim);
    for (let t = 0; t < tokens; t++) {
      const id = ids[t];
      if (id >= vocab) continue;
      for (let d = 0; d < dim; d++) dtable[id * dim + d] += dout[t * dim + d];
    }
  }

  crossEntropy(
    logits: Float32Array,
    labels: Uint32Array,
    rows: number,
    vocab: number,
    gradScale: number,
    losses: Float32Array,
    dlogits: Float32Array,
  ): void {
    for (let r = 0; r < rows; r++) {
      const b = r * vocab;
      const label = labels[r];
      if (label === IGNORE_INDEX || label >= vocab) {
        losses[r] = 0;
        dlogits.fill(0, b, b + vocab);
        continue;
      }
      let max = -Infinity;
      for (let j = 0; j < vocab; j++) max = Math.max(max, logits[b + j]);
      let sum = 0;
      for (let j = 0; j < vocab; j++) sum += Math.exp(logits[b + j] - max);
      losses[r] = Math.log(sum) + max - logits[b + label];
      for (let j = 0; j < vocab; j++)
        dlogits[b + j] = (Math.exp(logits[b + j] - max) / sum - (j === label ? 1 : 0)) * gradScale;
    }
  }

  logSumExpChunk(
    logits: Float32Array,
    labels: Uint32Array,
    rows: number,
    cols: number,
    colOffset: number,
    first: boolean,
    stats: Float32Array,
  ): void {
    for (let r = 0; r < rows; r++) {
      const b = r * cols;
      let mc = -Infinity;
      for (let j = 0; j < cols; j++) mc = Math.max(mc, logits[b + j]);
      let sc = 0;
      for (let j = 0; j < cols; j++) sc += Math.exp(logits[b + j] - mc);
      const label = labels[r];
      const inChunk = label >= colOffset && label - colOffset < cols;
      if (first) {
        stats[r * 3] = mc;
        stats[r * 3 + 1] = sc;
        stats[r * 3 + 2] = inChunk ? logits[b + label - colOffset] : 0;
        continue;
      }
      const m0 = stats[r * 3];
      const m = Math.max(m0, mc);
      stats[r * 3] = m;
      stats[r * 3 + 1] = stats[r * 3 + 1] * Math.exp(m0 - m) + sc * Math.exp(mc - m);
      if (inChunk) stats[r * 3 + 2] = logits[b + label - colOffset];
    }
  }

  crossEntropyChunkGrad(
    logits: Float32Array,
    labels: Uint32Array,
    stats: Float32Array,
    rows: number,
    cols: number,
    colOffset: number,
    vocab: number,
    gradScale: number,
  ): void {
    for (let r = 0; r < rows; r++) {
      const b = r * cols;
      const label = labels[r];
      if (label >= vocab) {
        logits.fill(0, b, b + cols);
        continue;
      }
      for (let j = 0; j < cols; j++) {
        const pj = Math.exp(logits[b + j] - stats[r * 3]) / stats[r * 3 + 1];
        logits[b + j] = (pj - (label === colOffset + j ? 1 : 0)) * gradScale;
      }
    }
  }

  dropout(x: Float32Array, n: number, p: number, seed: number, out: Float32Array): void {
    const threshold = dropoutThreshold(p);
    const scale = dropoutScale(p);
    for (let i = 0; i < n; i++) out[i] = dropoutHash(seed, i) >= threshold ? x[i] * scale : 0;
  }

  async sumSquares(x: Float32Array, n: number): Promise<number> {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i] * x[i];
    return s;
  }

  adamw(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, n: number, p: AdamWParams): void {
    const bc1 = 1 - p.beta1 ** p.step;
    const bc2 = 1 - p.beta2 ** p.step;
    for (let i = 0; i < n; i++) {
      const g = grad[i] * p.gradScale;
      m[i] = p.beta1 * m[i] + (1 - p.beta1) * g;
      v[i] = p.beta2 * v[i] + (1 - p.beta2) * g * g;
      param[i] = param[i] * (1 - p.lr * p.weightDecay) - (p.lr * (m[i] / bc1)) / (Math.sqrt(v[i] / bc2) + p.eps);
    }
  }

  sgd(param: Float32Array, grad: Float32Array, n: number, lr: number, gradScale: number): void {
    for (let i = 0; i < n; i++) param[i] -= lr * gradScale * grad[i];
  }

  zero(x: Float32Array, n: number): void {
    x.fill(0, 0, n);
  }

  scaleRows(x: Float32Array, scale: Float32Array, rows: number, cols: number): void {
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) x[r * cols + c] *= scale[r];
  }
}
