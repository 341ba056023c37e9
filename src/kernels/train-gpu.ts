/**
 * The training kernels on WebGPU: typed wrappers that record dispatches of the shaders in shaders/
 * (*_backward, cross_entropy, dropout, optimizers) into the GpuBackend's current compute pass.
 * Each has a CPU twin in train-cpu.ts that tests compare it against.
 */
import { GpuError } from '../gpu/device';
import type { GpuBackend, GpuIndices, GpuTensor, GpuWeight } from './gpu';
import { attentionChunkRows } from './gpu';
import type { AdamWParams, TrainOps } from './train-backend';
import { dropoutScale, dropoutThreshold } from './train-cpu';
import { isQuantized, quantMatmulBackwardInput } from './quant-gpu';

const WG = 64;
/** Output tile of one 8x8 workgroup of the register-tiled GEMMs (4x4 per invocation). */
const TILE = 32;

function isWeight(w: GpuWeight | GpuTensor): w is GpuWeight {
  return (w as GpuWeight).shards !== undefined;
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

  matmulBackwardInput(dy: GpuTensor, w: GpuWeight | GpuTensor, m: number, n: number, k: number, dx: GpuTensor, accumulate: boolean): void {
    if (m === 0 || k === 0) return;
    const vec4 = k % 4 === 0;
    const grid: [number, number] = [Math.ceil(k / TILE), Math.ceil(m / TILE)];
    if (!isWeight(w)) {
      const params = [m, n, k, 0, n, accumulate ? 1 : 0];
      this.backend.dispatch('matmul_backward', { VEC4: vec4, YVEC4: n % 4 === 0 }, 'f32', params, 'uuuuuu', [dy.buffer, w.buffer, dx.buffer], grid);
      return;
    }
    if (w.rows !== n || w.cols !== k) throw new GpuError(`matmulBackwardInput: weight is [${w.rows}, ${w.cols}], expected [${n}, ${k}]`);
    if (isQuantized(w)) return quantMatmulBackwardInput(this.backend, dy, w, m, dx, accumulate);
    // dX = sum over row-shards of dY[:, shard] · W[shard]: the first shard honours `accumulate`,
    // the others add to it (dispatches in one pass run in order).
    w.shards.forEach((s, i) => {
      const params = [m, s.rows, k, s.rowStart, n, accumulate || i > 0 ? 1 : 0];
      const defines = { VEC4: vec4, YVEC4: n % 4 === 0 && s.rowStart % 4 === 0 };
      this.backend.dispatch('matmul_backward', defines, w.dtype, params, 'uuuuuu', [dy.buffer, s.buffer, dx.buffer], grid);
    });
  }

  matmulBackwardWeight(dy: GpuTensor, x: GpuTensor, m: number, n: number, k: number, dw: GpuTensor, accumulate: boolean): void {
    if (n === 0 || k === 0) return;
    const params = [m, n, k, 0, n, accumulate ? 1 : 0];
    const defines = { DW: true, VEC4: k % 4 === 0, YVEC4: n % 4 === 0 };
    this.backend.dispatch('matmul_backward', defines, 'f32', params, 'uuuuuu', [dy.buffer, x.buffer, dw.buffer], [Math.ceil(k / TILE), Math.ceil(n / TILE)]);
  }

  matmulTensor(x: GpuTensor, w: GpuTensor, m: number, n: number, k: number, out: GpuTensor): void {
    if (m === 0 || n === 0) return;
    // The forward GEMM of matmul.wgsl with W an f32 tensor as a single shard and no bias.
    const params = [m, n, k, 0, n, 0];
    const buffers = [x.buffer, w.buffer, this.dummy, out.buffer];
    const vec4 = k % 4 === 0;
    if (m <= 8) {
      this.backend.dispatch('matmul', { VEC4: vec4, GEMV: true }, 'f32', params, 'uuuuuu', buffers, Math.ceil(n / 4 / WG));
    } else {
      this.backend.dispatch('matmul', { VEC4: vec4 }, 'f32', params, 'uuuuuu', buffers, [Math.ceil(n / TILE), Math.ceil(m / TILE)]);
    }
  }

  biasBackward(dy: GpuTensor, m: number, n: number, dbias: GpuTensor, accumulate: boolean): void {
    this.backend.dispatch('bias_backward', {}, 'f32', [m, n, accumulate ? 1 : 0], 'uuu', [dy.buffer, dbias.buffer], Math.ceil(n / WG));
  }

  /** dweight, when given, is accumulated into (+=): zero it at the start of a step. */
  rmsnormBackward(dy: GpuTensor, x: GpuTensor, weight: GpuWeight | GpuTensor, rows: number, dim: number, eps: number, dx: GpuTensor, dweight: GpuTensor | null): void {
    if (rows === 0) return;
    const wBuf = isWeight(weight) ? weight.shards[0].buffer : weight.buffer;
    const wType = isWeight(weight) ? weight.dtype : 'f32';
    if (isWeight(weight) && weight.shards.length > 1) throw new GpuError('rmsnormBackward: the norm weight must not be sharded');
    const rstd = this.scratchBuffer('rstd', rows * 4);
    this.backend.dispatch('rmsnorm_backward', {}, wType, [rows, dim, eps], 'uuf', [dy.buffer, x.buffer, wBuf, dx.buffer, rstd], rows);
    if (dweight) {
      this.backend.dispatch('rmsnorm_backward', { DWEIGHT: true }, 'f32', [rows, dim, eps], 'uuf', [dy.buffer, x.buffer, rstd, dweight.buffer], Math.ceil(dim / WG));
    }
  }

  ropeBackward(dx: GpuTensor, positions: GpuIndices, cos: GpuWeight, sin: GpuWeight, tokens: number, heads: number, headDim: number, maxPos: number): void {
    const params = [tokens, heads, headDim, maxPos];
    this.backend.dispatch('rope_backward', {}, 'f32', params, 'uuuu', [dx.buffer, positions.buffer, cos.shards[0].buffer, sin.shards[0].buffer], Math.ceil((tokens * heads * (headDim / 2)) / WG));
  }

  attentionBackward(
    dout: GpuTensor, q: GpuTensor, k: GpuTensor, v: GpuTensor, slots: GpuIndices, positions: GpuIndices,
    tokens: number, heads: number, kvHeads: number, headDim: number, maxSeq: number, slotCount: number,
    dq: GpuTensor, dk: GpuTensor, dv: GpuTensor,
  ): void {
    if (headDim > 256) throw new GpuError(`attention backward supports head_dim up to 256, got ${headDim}`);
    if (heads % kvHeads !== 0) throw new GpuError(`attention backward: ${heads} heads are not a multiple of ${kvHeads} kv heads`);
    const scale = 1 / Math.sqrt(headDim);
    if (tokens === 0) {
      this.zero(dk, slotCount * maxSeq * kvHeads * headDim);
      this.zero(dv, slotCount * maxSeq * kvHeads * headDim);
      return;
    }
    // [lse, D] per (token, head), then [slot, position] per token (written by pass 1).
    const stats = this.scratchBuffer('attn-stats', (tokens * heads * 2 + tokens * 2) * 4);
    // Pass 1: one workgroup per (64 consecutive tokens, head); pass 2: per (slot, 64 keys, kv head).
    const group = heads / kvHeads;
    const dqDefines = { HD: headDim, KC: attentionChunkRows(headDim) };
    this.backend.dispatch(
      'attention_backward_dq', dqDefines, 'f32', [tokens, heads, kvHeads, headDim, maxSeq, scale], 'uuuuuf',
      [dout.buffer, q.buffer, k.buffer, v.buffer, slots.buffer, positions.buffer, dq.buffer, stats], Math.ceil(tokens / 64) * heads,
    );
    const blocks = Math.ceil(maxSeq / WG);
    const dkvDefines = { HD: headDim, GQ: group, QC: Math.max(1, Math.min(64, Math.floor(1024 / (group * headDim)))) };
    this.backend.dispatch(
      'attention_backward_dkv', dkvDefines, 'f32', [tokens, heads, kvHeads, headDim, maxSeq, slotCount, scale], 'uuuuuuf',
      [dout.buffer, q.buffer, k.buffer, v.buffer, stats, dk.buffer, dv.buffer], slotCount * blocks * kvHeads,
    );
  }

  kvGather(cache: GpuTensor, slots: GpuIndices, positions: GpuIndices, tokens: number, kvDim: number, maxSeq: number, out: GpuTensor): void {
    this.backend.dispatch('kv_gather', {}, 'f32', [tokens, kvDim, maxSeq], 'uuu', [cache.buffer, slots.buffer, positions.buffer, out.buffer], Math.ceil((tokens * kvDim) / WG));
  }

  swigluBackward(dout: GpuTensor, gate: GpuTensor, up: GpuTensor, n: number, dgate: GpuTensor, dup: GpuTensor): void {
    this.backend.dispatch('swiglu_backward', {}, 'f32', [n], 'u', [dout.buffer, gate.buffer, up.buffer, dgate.buffer, dup.buffer], Math.ceil(n / WG));
  }

  embeddingBackward(dout: GpuTensor, ids: GpuIndices, tokens: number, vocab: number, dim: number, dtable: GpuTensor, accumulate: boolean): void {
    if (!accumulate) this.zero(dtable, vocab * dim);
    this.backend.dispatch('embedding_backward', {}, 'f32', [tokens, vocab, dim], 'uuu', [dout.buffer, ids.buffer, dtable.buffer], Math.ceil(dim / WG));
  }

  crossEntropy(logits: GpuTensor, labels: GpuIndices, rows: number, vocab: number, gradScale: number, losses: GpuTensor, dlogits: GpuTensor): void {
    if (logits.buffer === dlogits.buffer) throw new GpuError('crossEntropy: dlogits must not alias logits');
    this.backend.dispatch('cross_entropy', {}, 'f32', [rows, vocab, gradScale], 'uuf', [logits.buffer, labels.buffer, losses.buffer, dlogits.buffer], rows);
  }

  dropout(x: GpuTensor, n: number, p: number, seed: number, out: GpuTensor): void {
    this.backend.dispatch('dropout', {}, 'f32', [n, seed >>> 0, dropoutThreshold(p), dropoutScale(p)], 'uuuf', [x.buffer, out.buffer], Math.ceil(n / WG));
  }

  async sumSquares(x: GpuTensor, n: number): Promise<number> {
    if (n === 0) return 0;
    // One workgroup per block of 64·iters elements, at most 1024 partials, summed on the host in f64.
    const groups = Math.min(1024, Math.ceil(n / (WG * 16)));
    const block = Math.ceil(n / groups / WG) * WG;
    const count = Math.ceil(n / block);
    const partials = this.backend.gpu.acquire(count * 4, 'sum-squares');
    this.backend.dispatch('sum_squares', {}, 'f32', [n, block], 'uu', [x.buffer, partials], [count, 1]);
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
    const params = [n, p.lr, p.beta1, p.beta2, p.eps, p.weightDecay, bc1, bc2, p.gradScale];
    this.backend.dispatch('adamw', {}, 'f32', params, 'uffffffff', [param.buffer, grad.buffer, m.buffer, v.buffer], Math.ceil(n / WG));
  }

  sgd(param: GpuTensor, grad: GpuTensor, n: number, lr: number, gradScale: number): void {
    this.backend.dispatch('sgd', {}, 'f32', [n, lr * gradScale], 'uf', [param.buffer, grad.buffer], Math.ceil(n / WG));
  }

  zero(x: GpuTensor, n: number): void {
    if (n === 0) return;
    this.backend.dispatch('fill', {}, 'f32', [n, 0], 'uf', [x.buffer], Math.ceil(n / WG));
  }

  scaleRows(x: GpuTensor, scale: GpuTensor, rows: number, cols: number): void {
    if (rows * cols === 0) return;
    this.backend.dispatch('scale_rows', {}, 'f32', [rows, cols], 'uu', [x.buffer, scale.buffer], Math.ceil((rows * cols) / WG));
  }
}
