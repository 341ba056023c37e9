import { beforeAll, describe, expect, it } from 'vitest';
import {
  CpuBackend,
  cpuAttention,
  cpuEmbedding,
  cpuKvWrite,
  cpuMatmul,
  cpuRmsnorm,
  cpuRope,
  cpuSwiglu,
} from '../../src/kernels/cpu';
import { GpuBackend, type GpuTensor } from '../../src/kernels/gpu';
import { Gpu } from '../../src/gpu/device';
import { CpuTrainOps, dropoutHash, dropoutThreshold } from '../../src/kernels/train-cpu';
import { GpuTrainOps } from '../../src/kernels/train-gpu';
import { candidatesOn, KERNEL_FAMILIES, type GemmBackwardVariant } from '../../src/kernels/autotune';
import { crossEntropyChunkLosses, IGNORE_INDEX, type AdamWParams } from '../../src/kernels/train-backend';
import { testGpu } from '../helpers/gpu';
import { maxRelErr, randn, rng } from '../helpers/rng';
import { f32ToF16Bits } from '../../src/formats/dtype';

let gpu: Gpu;
let g32: GpuBackend;
let t32: GpuTrainOps;
let g16: GpuBackend | null = null;
let t16: GpuTrainOps | null = null;
const cpu = new CpuBackend();
const ct = new CpuTrainOps();

beforeAll(async () => {
  gpu = await testGpu();
  g32 = await GpuBackend.create(gpu, 'f32');
  t32 = new GpuTrainOps(g32);
  if (gpu.features.f16) {
    g16 = await GpuBackend.create(gpu, 'f16');
    t16 = new GpuTrainOps(g16);
  }
});

function ids(n: number, max: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * max));
}

const host = (t: GpuTensor, n: number) => g32.toHost(t, n);

/** Σ out ⊙ r in float64: a scalar loss whose gradient with respect to `out` is r. */
function dot(out: Float32Array, r: Float32Array): number {
  let s = 0;
  for (let i = 0; i < r.length; i++) s += out[i] * r[i];
  return s;
}

/**
 * Central differences of `loss` with respect to x[i] for the given indices (all when omitted),
 * perturbing the f32 value in place and dividing by the step actually taken after rounding.
 */
function fd(loss: () => number, x: Float32Array, indices?: number[], h = 1e-2): Float32Array {
  const idx = indices ?? Array.from(x.keys());
  const g = new Float32Array(idx.length);
  idx.forEach((i, n) => {
    const o = x[i];
    x[i] = o + h;
    const hp = x[i] - o;
    const lp = loss();
    x[i] = o - h;
    const hm = o - x[i];
    const lm = loss();
    x[i] = o;
    g[n] = (lp - lm) / (hp + hm);
  });
  return g;
}

function pick(a: Float32Array, indices: number[]): Float32Array {
  return Float32Array.from(indices, (i) => a[i]);
}

describe('training kernels: CPU twins vs finite differences of the forward twins', () => {
  it('matmul: dX, dW, dbias', () => {
    const [m, n, k] = [3, 5, 7];
    const x = randn(m * k, 1);
    const w = randn(n * k, 2);
    const b = randn(n, 3);
    const r = randn(m * n, 4);
    const out = new Float32Array(m * n);
    const loss = () => (cpuMatmul(x, w, b, m, n, k, out), dot(out, r));
    const dx = new Float32Array(m * k);
    const dw = new Float32Array(n * k);
    const db = new Float32Array(n);
    ct.matmulBackwardInput(r, cpu.weight('w', w, n, k), m, n, k, dx, false);
    ct.matmulBackwardWeight(r, x, m, n, k, dw, false);
    ct.biasBackward(r, m, n, db, false);
    expect(maxRelErr(dx, fd(loss, x))).toBeLessThan(1e-2);
    expect(maxRelErr(dw, fd(loss, w))).toBeLessThan(1e-2);
    expect(maxRelErr(db, fd(loss, b))).toBeLessThan(1e-2);
    // A trainable tensor as W gives the same dX; accumulate adds.
    const dx2 = dx.slice();
    ct.matmulBackwardInput(r, w, m, n, k, dx2, true);
    expect(
      maxRelErr(
        dx2,
        dx.map((v) => 2 * v),
      ),
    ).toBeLessThan(1e-6);
    const mt = new Float32Array(m * n);
    ct.matmulTensor(x, w, m, n, k, mt);
    cpuMatmul(x, w, null, m, n, k, out);
    expect(maxRelErr(mt, out)).toBeLessThan(1e-6);
  });

  it('rmsnorm: dx and dweight (accumulated)', () => {
    const [rows, dim, eps] = [3, 9, 1e-5];
    const x = randn(rows * dim, 5, 2);
    const w = randn(dim, 6);
    const r = randn(rows * dim, 7);
    const out = new Float32Array(rows * dim);
    const loss = () => (cpuRmsnorm(x, w, rows, dim, eps, out), dot(out, r));
    const dx = new Float32Array(rows * dim);
    const dwPrev = randn(dim, 8);
    const dw = dwPrev.slice();
    ct.rmsnormBackward(r, x, cpu.vector('w', w), rows, dim, eps, dx, dw);
    expect(maxRelErr(dx, fd(loss, x))).toBeLessThan(1e-2);
    expect(
      maxRelErr(
        dw.map((v, i) => v - dwPrev[i]),
        fd(loss, w),
      ),
    ).toBeLessThan(1e-2);
  });

  it('rope: backward is the transpose of the forward rotation', () => {
    const [tokens, heads, headDim, maxPos] = [4, 3, 6, 10];
    const half = headDim / 2;
    const cos = new Float32Array(maxPos * half);
    const sin = new Float32Array(maxPos * half);
    for (let p = 0; p < maxPos; p++)
      for (let j = 0; j < half; j++) {
        cos[p * half + j] = Math.cos(p * 0.3 ** j);
        sin[p * half + j] = Math.sin(p * 0.3 ** j);
      }
    const pos = ids(tokens, maxPos, 9);
    const x = randn(tokens * heads * headDim, 10);
    const r = randn(x.length, 11);
    const loss = () => {
      const y = x.slice();
      cpuRope(y, pos, cos, sin, tokens, heads, headDim);
      return dot(y, r);
    };
    const dx = r.slice();
    ct.ropeBackward(dx, pos, cpu.vector('c', cos), cpu.vector('s', sin), tokens, heads, headDim, maxPos);
    expect(maxRelErr(dx, fd(loss, x))).toBeLessThan(1e-2);
  });

  it('attention (GQA, two sequences in two slots, a cached prefix) + kv_write: dq, dk, dv, kv_gather', () => {
    const [heads, kvHeads, headDim, maxSeq, slotCount] = [4, 2, 6, 9, 2];
    const kvDim = kvHeads * headDim;
    // Sequence A: 4 tokens in slot 1 at positions 2..5 (positions 0..1 are cached history);
    // sequence B: 3 tokens in slot 0 at positions 0..2. Tokens interleaved.
    const slots = Uint32Array.from([1, 0, 1, 0, 1, 0, 1]);
    const positions = Uint32Array.from([2, 0, 3, 1, 4, 2, 5]);
    const tokens = slots.length;
    const shape = { slots: slotCount, maxSeq, kvDim };
    const q = randn(tokens * heads * headDim, 12);
    const k = randn(tokens * kvDim, 13);
    const v = randn(tokens * kvDim, 14);
    const cacheK0 = randn(slotCount * maxSeq * kvDim, 15);
    const cacheV0 = randn(slotCount * maxSeq * kvDim, 16);
    const r = randn(tokens * heads * headDim, 17);
    const out = new Float32Array(tokens * heads * headDim);
    const forward = (ck: Float32Array, cv: Float32Array) => {
      const rk = ck.slice();
      const rv = cv.slice();
      cpuKvWrite(k, v, rk, rv, slots, positions, tokens, shape);
      cpuAttention(q, rk, rv, slots, positions, tokens, heads, kvHeads, headDim, maxSeq, out);
      return dot(out, r);
    };
    const loss = () => forward(cacheK0, cacheV0);
    // The caches as the forward left them: the backward reads k, v in cache layout.
    const ck = cacheK0.slice();
    const cv = cacheV0.slice();
    cpuKvWrite(k, v, ck, cv, slots, positions, tokens, shape);
    const dq = new Float32Array(q.length);
    const dk = new Float32Array(ck.length);
    const dv = new Float32Array(cv.length);
    ct.attentionBackward(
      r,
      q,
      ck,
      cv,
      slots,
      positions,
      tokens,
      heads,
      kvHeads,
      headDim,
      maxSeq,
      slotCount,
      dq,
      dk,
      dv,
    );
    expect(maxRelErr(dq, fd(loss, q))).toBeLessThan(1e-2);
    // Token-order k, v reach the loss through kv_write: their gradient is kv_gather of dk, dv.
    const dkTok = new Float32Array(k.length);
    const dvTok = new Float32Array(v.length);
    ct.kvGather(dk, slots, positions, tokens, kvDim, maxSeq, dkTok);
    ct.kvGather(dv, slots, positions, tokens, kvDim, maxSeq, dvTok);
    expect(maxRelErr(dkTok, fd(loss, k))).toBeLessThan(1e-2);
    expect(maxRelErr(dvTok, fd(loss, v))).toBeLessThan(1e-2);
    // The cached history (slot 1, positions 0..1) gets gradients; rows no query sees get zero.
    const hist = Array.from({ length: 2 * kvDim }, (_, i) => maxSeq * kvDim + i);
    expect(maxRelErr(pick(dk, hist), fd(loss, cacheK0, hist))).toBeLessThan(1e-2);
    expect(maxRelErr(pick(dv, hist), fd(loss, cacheV0, hist))).toBeLessThan(1e-2);
    expect(pick(dk, hist).some((x) => x !== 0)).toBe(true);
    const unseen = Array.from({ length: kvDim }, (_, i) => (maxSeq + 7) * kvDim + i); // slot 1, position 7
    expect(Array.from(pick(dk, unseen)).every((x) => x === 0)).toBe(true);
    expect(Array.from(pick(dv, unseen)).every((x) => x === 0)).toBe(true);
  });

  it('swiglu: dgate, dup', () => {
    const n = 11;
    const gate = randn(n, 18, 3);
    const up = randn(n, 19);
    const r = randn(n, 20);
    const out = new Float32Array(n);
    const loss = () => (cpuSwiglu(gate, up, n, out), dot(out, r));
    const dgate = new Float32Array(n);
    const dup = new Float32Array(n);
    ct.swigluBackward(r, gate, up, n, dgate, dup);
    expect(maxRelErr(dgate, fd(loss, gate))).toBeLessThan(1e-2);
    expect(maxRelErr(dup, fd(loss, up))).toBeLessThan(1e-2);
  });

  it('embedding: scatter-add of repeated ids', () => {
    const [tokens, vocab, dim] = [6, 5, 3];
    const tok = Uint32Array.from([1, 3, 1, 0, 1, 3]);
    const table = randn(vocab * dim, 21);
    const r = randn(tokens * dim, 22);
    const out = new Float32Array(tokens * dim);
    const loss = () => (cpuEmbedding(tok, table, dim, tokens, out), dot(out, r));
    const dt = randn(vocab * dim, 23);
    ct.embeddingBackward(r, tok, tokens, vocab, dim, dt, false);
    expect(maxRelErr(dt, fd(loss, table))).toBeLessThan(1e-2);
    expect(Array.from(dt.subarray(2 * dim, 3 * dim))).toEqual([0, 0, 0]);
  });

  it('cross-entropy: losses match -log softmax, dlogits match finite differences, ignored rows are zero', () => {
    const [rows, vocab, gradScale] = [5, 7, 0.25];
    const logits = randn(rows * vocab, 24, 3);
    const labels = Uint32Array.from([3, IGNORE_INDEX, 0, 6, 2]);
    const losses = new Float32Array(rows);
    const dl = new Float32Array(rows * vocab);
    const loss = () => {
      const l = new Float32Array(rows);
      ct.crossEntropy(logits, labels, rows, vocab, gradScale, l, new Float32Array(rows * vocab));
      return gradScale * l.reduce((a, b) => a + b, 0);
    };
    ct.crossEntropy(logits, labels, rows, vocab, gradScale, losses, dl);
    for (let r = 0; r < rows; r++) {
      if (labels[r] === IGNORE_INDEX) {
        expect(losses[r]).toBe(0);
        continue;
      }
      let z = 0;
      for (let j = 0; j < vocab; j++) z += Math.exp(logits[r * vocab + j]);
      expect(losses[r]).toBeCloseTo(Math.log(z) - logits[r * vocab + labels[r]], 5);
    }
    expect(maxRelErr(dl, fd(loss, logits))).toBeLessThan(1e-2);
    expect(Array.from(dl.subarray(vocab, 2 * vocab)).every((x) => x === 0)).toBe(true);
    // Stable for large logits: shifting a row changes nothing.
    const shifted = logits.map((x) => x + 1000);
    const ls = new Float32Array(rows);
    ct.crossEntropy(shifted, labels, rows, vocab, gradScale, ls, new Float32Array(rows * vocab));
    expect(maxRelErr(ls, losses)).toBeLessThan(1e-3);
  });

  it('adamw matches torch.optim.AdamW written the way PyTorch computes it', () => {
    const n = 9;
    const p0 = randn(n, 25);
    const param = p0.slice();
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    const ref = Float64Array.from(p0);
    const rm = new Float64Array(n);
    const rv = new Float64Array(n);
    for (let step = 1; step <= 4; step++) {
      const grad = randn(n, 26 + step);
      const opts: AdamWParams = {
        lr: 0.01,
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weightDecay: 0.1,
        step,
        gradScale: 0.5,
      };
      ct.adamw(param, grad, m, v, n, opts);
      // torch: param.mul_(1 - lr*wd); exp_avg.lerp_(g, 1-b1); exp_avg_sq.mul_(b2).addcmul_(g, g, 1-b2);
      // denom = (exp_avg_sq.sqrt() / sqrt(bc2)).add_(eps); param.addcdiv_(exp_avg, denom, -lr/bc1)
      for (let i = 0; i < n; i++) {
        const g = grad[i] * opts.gradScale;
        ref[i] *= 1 - opts.lr * opts.weightDecay;
        rm[i] += (g - rm[i]) * (1 - opts.beta1);
        rv[i] = rv[i] * opts.beta2 + (1 - opts.beta2) * g * g;
        const denom = Math.sqrt(rv[i]) / Math.sqrt(1 - opts.beta2 ** step) + opts.eps;
        ref[i] -= (opts.lr / (1 - opts.beta1 ** step)) * (rm[i] / denom);
      }
    }
    expect(maxRelErr(param, Float32Array.from(ref))).toBeLessThan(1e-6);
    // First step without decay moves every parameter by ~lr against the gradient's sign.
    const p = new Float32Array([1, 1]);
    ct.adamw(p, new Float32Array([3, -0.2]), new Float32Array(2), new Float32Array(2), 2, {
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      step: 1,
      gradScale: 1,
    });
    expect(p[0]).toBeCloseTo(0.9, 6);
    expect(p[1]).toBeCloseTo(1.1, 6);
  });

  it('dropout hash: deterministic, seed-dependent, keeps about 1 - p', () => {
    const n = 20000;
    const keep = (seed: number, p: number) => {
      let c = 0;
      for (let i = 0; i < n; i++) c += dropoutHash(seed, i) >= dropoutThreshold(p) ? 1 : 0;
      return c / n;
    };
    expect(keep(1, 0.1)).toBeCloseTo(0.9, 1);
    expect(keep(2, 0.5)).toBeCloseTo(0.5, 1);
    expect(keep(3, 0)).toBe(1);
    let same = 0;
    for (let i = 0; i < 1000; i++) same += dropoutHash(7, i) >= 2 ** 31 === dropoutHash(8, i) >= 2 ** 31 ? 1 : 0;
    expect(same).toBeGreaterThan(400);
    expect(same).toBeLessThan(600);
  });
});

describe('training kernels: WebGPU vs CPU twin', () => {
  // Shapes straddle the 32x32 tiles and the vec4 paths (K % 4, N % 4 == 0 and != 0), M = 1 included.
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 37, 20],
    [3, 50, 19],
    [5, 64, 64],
    [9, 33, 12],
    [33, 65, 7],
    [70, 31, 44],
    [128, 96, 64],
  ];
  /** Run `fn` with every training GEMM (dX, dW, and the forward x·wᵀ) forced to `variant`. */
  async function withVariant(b: GpuBackend, variant: GemmBackwardVariant, fn: () => Promise<void>): Promise<void> {
    b.gemmDxKernel = b.gemmDwKernel = b.gemmKernel = variant;
    try {
      await fn();
    } finally {
      b.gemmDxKernel = b.gemmDwKernel = b.gemmKernel = 'auto';
    }
  }
  for (const variant of KERNEL_FAMILIES.gemm_dx)
    for (const [m, n, k] of shapes) {
      it(`matmul backward (${variant}) M=${m} N=${n} K=${k}: dX (frozen weight, tensor), dW, dbias, x·wᵀ`, ({
        skip,
      }) => {
        if (!candidatesOn(gpu, 'gemm_dx').includes(variant)) skip(`this adapter lacks the feature '${variant}' needs`);
        return withVariant(g32, variant, async () => {
          const dy = randn(m * n, m * 100 + n);
          const x = randn(m * k, k * 3 + 1);
          const w = randn(n * k, n * 7 + k, 0.5);
          const prevX = randn(m * k, 5);
          const prevW = randn(n * k, 6);
          const prevB = randn(n, 7);
          const gdy = g32.fromHost(dy);
          for (const accumulate of [false, true]) {
            const rdx = prevX.slice();
            ct.matmulBackwardInput(dy, w, m, n, k, rdx, accumulate);
            for (const asTensor of [false, true]) {
              const gdx = g32.fromHost(prevX);
              t32.matmulBackwardInput(
                gdy,
                asTensor ? g32.fromHost(w) : g32.weight('w', w, n, k),
                m,
                n,
                k,
                gdx,
                accumulate,
              );
              expect(maxRelErr(await host(gdx, m * k), rdx)).toBeLessThan(1e-4);
            }
            const rdw = prevW.slice();
            ct.matmulBackwardWeight(dy, x, m, n, k, rdw, accumulate);
            const gdw = g32.fromHost(prevW);
            t32.matmulBackwardWeight(gdy, g32.fromHost(x), m, n, k, gdw, accumulate);
            expect(maxRelErr(await host(gdw, n * k), rdw)).toBeLessThan(1e-4);
            const rdb = prevB.slice();
            ct.biasBackward(dy, m, n, rdb, accumulate);
            const gdb = g32.fromHost(prevB);
            t32.biasBackward(gdy, m, n, gdb, accumulate);
            expect(maxRelErr(await host(gdb, n), rdb)).toBeLessThan(1e-4);
          }
          const ry = new Float32Array(m * n);
          ct.matmulTensor(x, w, m, n, k, ry);
          const gy = g32.tensor(m * n);
          t32.matmulTensor(g32.fromHost(x), g32.fromHost(w), m, n, k, gy);
          expect(maxRelErr(await host(gy, m * n), ry)).toBeLessThan(1e-4);
        });
      });
    }

  it('matmul backward dX and rmsnorm backward with f16 weights (the CPU twin on the same f16 values)', async ({
    skip,
  }) => {
    if (!g16 || !t16) skip();
    for (const variant of candidatesOn(gpu, 'gemm_dx') as GemmBackwardVariant[])
      await withVariant(g16!, variant, async () => {
        for (const [m, n, k] of [
          [6, 45, 36],
          [13, 40, 21],
        ]) {
          const dy = randn(m * n, 5);
          const bits = f32ToF16Bits(randn(n * k, 6, 0.3));
          const ref = new Float32Array(m * k);
          ct.matmulBackwardInput(dy, cpu.weight('w', bits, n, k), m, n, k, ref, false);
          const out = g16!.tensor(m * k);
          t16!.matmulBackwardInput(g16!.fromHost(dy), g16!.weight('w', bits, n, k), m, n, k, out, false);
          expect(maxRelErr(await g16!.toHost(out, m * k), ref), variant).toBeLessThan(1e-4);
        }
      });
    // An f16 norm weight works too (rmsnorm backward reads it as WT).
    const [rows, dim] = [3, 37];
    const x = randn(rows * dim, 7);
    const dy = randn(rows * dim, 8);
    const wb = f32ToF16Bits(randn(dim, 9));
    const rdx = new Float32Array(rows * dim);
    const rdw = new Float32Array(dim);
    ct.rmsnormBackward(dy, x, cpu.weight('w', wb, 1, dim), rows, dim, 1e-5, rdx, rdw);
    const gdx = g16!.tensor(rows * dim);
    const gdw = g16!.fromHost(new Float32Array(dim));
    t16!.rmsnormBackward(g16!.fromHost(dy), g16!.fromHost(x), g16!.weight('w', wb, 1, dim), rows, dim, 1e-5, gdx, gdw);
    expect(maxRelErr(await g16!.toHost(gdx, rows * dim), rdx)).toBeLessThan(1e-4);
    expect(maxRelErr(await g16!.toHost(gdw, dim), rdw)).toBeLessThan(1e-4);
  });

  it('matmul backward dX over a weight sharded by rows (f32, and f16 when available)', async () => {
    const small = await Gpu.create({ weightShardBytes: 1024 });
    try {
      const types: ('f32' | 'f16')[] = small.features.f16 ? ['f32', 'f16'] : ['f32'];
      for (const type of types) {
        const b = await GpuBackend.create(small, type);
        const ops = new GpuTrainOps(b);
        for (const variant of candidatesOn(small, 'gemm_dx') as GemmBackwardVariant[])
          await withVariant(b, variant, async () => {
            // [70, 12] f32: 21 rows a shard (offsets not multiples of 4); [64, 16] f32: 16 rows a shard
            // (the vec4 dY path); f16 halves the bytes a row.
            for (const [m, n, k, shards] of [
              [40, 70, 12, type === 'f32' ? 4 : 2],
              [9, 64, 16, type === 'f32' ? 4 : 2],
              [1, 50, 7, type === 'f32' ? 2 : 1],
            ]) {
              const dy = randn(m * n, 1);
              const w = randn(n * k, 2);
              const data = type === 'f16' ? f32ToF16Bits(w) : w;
              const wg = b.weight('w', data, n, k);
              expect(wg.shards.length).toBe(shards);
              const prev = randn(m * k, 3);
              for (const accumulate of [false, true]) {
                const ref = prev.slice();
                ct.matmulBackwardInput(dy, cpu.weight('w', data, n, k), m, n, k, ref, accumulate);
                const out = b.fromHost(prev);
                ops.matmulBackwardInput(b.fromHost(dy), wg, m, n, k, out, accumulate);
                expect(maxRelErr(await b.toHost(out, m * k), ref), `${type} ${variant}`).toBeLessThan(1e-4);
              }
            }
          });
      }
    } finally {
      small.destroy();
    }
  });

  for (const [rows, dim] of [
    [1, 8],
    [5, 63],
    [17, 200],
    [3, 1000],
  ]) {
    it(`rmsnorm backward rows=${rows} dim=${dim} (weight as vector and as tensor)`, async () => {
      const x = randn(rows * dim, rows + dim, 3);
      const w = randn(dim, 7);
      const dy = randn(rows * dim, 8);
      const prev = randn(dim, 9);
      const rdx = new Float32Array(rows * dim);
      const rdw = prev.slice();
      ct.rmsnormBackward(dy, x, w, rows, dim, 1e-6, rdx, rdw);
      for (const asTensor of [false, true]) {
        const gdx = g32.tensor(rows * dim);
        const gdw = g32.fromHost(prev);
        t32.rmsnormBackward(
          g32.fromHost(dy),
          g32.fromHost(x),
          asTensor ? g32.fromHost(w) : g32.vector('w', w),
          rows,
          dim,
          1e-6,
          gdx,
          gdw,
        );
        expect(maxRelErr(await host(gdx, rows * dim), rdx)).toBeLessThan(1e-4);
        expect(maxRelErr(await host(gdw, dim), rdw)).toBeLessThan(1e-4);
      }
      const gdx = g32.tensor(rows * dim);
      t32.rmsnormBackward(g32.fromHost(dy), g32.fromHost(x), g32.vector('w', w), rows, dim, 1e-6, gdx, null);
      expect(maxRelErr(await host(gdx, rows * dim), rdx)).toBeLessThan(1e-4);
    });
  }

  for (const [tokens, heads, headDim] of [
    [1, 1, 2],
    [5, 3, 10],
    [9, 4, 24],
  ]) {
    it(`rope backward tokens=${tokens} heads=${heads} headDim=${headDim}`, async () => {
      const maxPos = 40;
      const half = headDim / 2;
      const cos = randn(maxPos * half, 1);
      const sin = randn(maxPos * half, 2);
      const pos = ids(tokens, maxPos, 3);
      const x = randn(tokens * heads * headDim, 4);
      const ref = x.slice();
      ct.ropeBackward(ref, pos, cpu.vector('c', cos), cpu.vector('s', sin), tokens, heads, headDim, maxPos);
      const gx = g32.fromHost(x);
      t32.ropeBackward(
        gx,
        g32.indices(pos),
        g32.vector('c', cos),
        g32.vector('s', sin),
        tokens,
        heads,
        headDim,
        maxPos,
      );
      expect(maxRelErr(await host(gx, x.length), ref)).toBeLessThan(1e-4);
    });
  }

  // (label, sequence lengths, first position of each sequence, slot of each sequence, slotCount,
  // heads, kvHeads, headDim, maxSeq, packed). Packed: the sequences' tokens back to back in the
  // batch (as a trainer lays them out; sequence boundaries fall inside the kernel's 4-token
  // groups); otherwise interleaved token by token (every group mixes slots).
  const attnCases: [string, number[], number[], number[], number, number, number, number, number, boolean][] = [
    [
      'GQA 4/2, 3 sequences (5, 70, 33) interleaved in 3 slots, head_dim 10',
      [5, 70, 33],
      [0, 0, 0],
      [2, 0, 1],
      3,
      4,
      2,
      10,
      80,
      false,
    ],
    ['GQA 4/2, 3 sequences (5, 70, 30) packed, head_dim 12', [5, 70, 30], [0, 0, 0], [1, 2, 0], 3, 4, 2, 12, 72, true],
    ['GQA 4/2, 2 sequences with cached prefixes, head_dim 6', [12, 40], [30, 3], [1, 0], 3, 4, 2, 6, 130, false],
    ['GQA 6/2, one sequence of 67, head_dim 72 (> 64 variant)', [67], [0], [0], 1, 6, 2, 72, 70, true],
    ['MHA 2/2, single-token decode in 2 slots, head_dim 16', [1, 1], [9, 64], [0, 1], 2, 2, 2, 16, 65, false],
    ['MHA 2/2, 2 packed sequences (3, 6), head_dim 256', [3, 6], [0, 2], [0, 1], 2, 2, 2, 256, 9, true],
  ];
  for (const [label, lens, starts, seqSlots, slotCount, heads, kvHeads, headDim, maxSeq, packed] of attnCases) {
    it(`attention backward: ${label}`, async () => {
      const kvDim = kvHeads * headDim;
      const slotList: number[] = [];
      const posList: number[] = [];
      const push = (s: number, i: number) => {
        slotList.push(seqSlots[s]);
        posList.push(starts[s] + i);
      };
      if (packed) {
        lens.forEach((len, s) => {
          for (let i = 0; i < len; i++) push(s, i);
        });
      } else {
        for (let i = 0; i < Math.max(...lens); i++) lens.forEach((len, s) => i < len && push(s, i));
      }
      const slots = Uint32Array.from(slotList);
      const positions = Uint32Array.from(posList);
      const tokens = slots.length;
      const seed = tokens * 13 + headDim;
      const ck = randn(slotCount * maxSeq * kvDim, seed + 1);
      const cv = randn(slotCount * maxSeq * kvDim, seed + 2);
      cpuKvWrite(randn(tokens * kvDim, seed + 3), randn(tokens * kvDim, seed + 4), ck, cv, slots, positions, tokens, {
        slots: slotCount,
        maxSeq,
        kvDim,
      });
      const q = randn(tokens * heads * headDim, seed + 5);
      const dout = randn(tokens * heads * headDim, seed + 6);
      const rdq = new Float32Array(q.length);
      const rdk = new Float32Array(ck.length);
      const rdv = new Float32Array(cv.length);
      ct.attentionBackward(
        dout,
        q,
        ck,
        cv,
        slots,
        positions,
        tokens,
        heads,
        kvHeads,
        headDim,
        maxSeq,
        slotCount,
        rdq,
        rdk,
        rdv,
      );
      // Outputs start as garbage: dk, dv must be overwritten everywhere.
      const gdq = g32.fromHost(randn(q.length, 1));
      const gdk = g32.fromHost(randn(ck.length, 2));
      const gdv = g32.fromHost(randn(cv.length, 3));
      const gs = g32.indices(slots);
      const gp = g32.indices(positions);
      t32.attentionBackward(
        g32.fromHost(dout),
        g32.fromHost(q),
        g32.fromHost(ck),
        g32.fromHost(cv),
        gs,
        gp,
        tokens,
        heads,
        kvHeads,
        headDim,
        maxSeq,
        slotCount,
        gdq,
        gdk,
        gdv,
      );
      expect(maxRelErr(await host(gdq, q.length), rdq)).toBeLessThan(1e-4);
      expect(maxRelErr(await host(gdk, ck.length), rdk)).toBeLessThan(1e-4);
      expect(maxRelErr(await host(gdv, cv.length), rdv)).toBeLessThan(1e-4);
      // kv_gather back to token order.
      const rg = new Float32Array(tokens * kvDim);
      ct.kvGather(rdk, slots, positions, tokens, kvDim, maxSeq, rg);
      const gg = g32.tensor(tokens * kvDim);
      t32.kvGather(gdk, gs, gp, tokens, kvDim, maxSeq, gg);
      expect(maxRelErr(await host(gg, tokens * kvDim), rg)).toBeLessThan(1e-4);
    });
  }

  for (const n of [1, 63, 1000]) {
    it(`swiglu backward, dropout, sgd, zero n=${n}`, async () => {
      const gate = randn(n, 1, 3);
      const up = randn(n, 2);
      const dout = randn(n, 3);
      const rg = new Float32Array(n);
      const ru = new Float32Array(n);
      ct.swigluBackward(dout, gate, up, n, rg, ru);
      const gg = g32.tensor(n);
      const gu = g32.tensor(n);
      t32.swigluBackward(g32.fromHost(dout), g32.fromHost(gate), g32.fromHost(up), n, gg, gu);
      expect(maxRelErr(await host(gg, n), rg)).toBeLessThan(1e-4);
      expect(maxRelErr(await host(gu, n), ru)).toBeLessThan(1e-4);

      for (const [p, seed] of [
        [0, 5],
        [0.1, 6],
        [0.5, 0xdeadbeef],
        [1, 7],
      ]) {
        const ref = new Float32Array(n);
        ct.dropout(gate, n, p, seed, ref);
        const out = g32.tensor(n);
        t32.dropout(g32.fromHost(gate), n, p, seed, out);
        const got = await host(out, n);
        expect(Array.from(got)).toEqual(Array.from(ref)); // bit for bit
        if (p === 0) expect(Array.from(got)).toEqual(Array.from(gate));
        if (p === 1) expect(got.every((x) => x === 0)).toBe(true);
      }

      const param = randn(n, 8);
      const grad = randn(n, 9);
      const rp = param.slice();
      ct.sgd(rp, grad, n, 0.03, 0.5);
      const gp = g32.fromHost(param);
      t32.sgd(gp, g32.fromHost(grad), n, 0.03, 0.5);
      expect(maxRelErr(await host(gp, n), rp)).toBeLessThan(1e-4);

      t32.zero(gp, n);
      expect((await host(gp, n)).every((x) => x === 0)).toBe(true);
    });
  }

  for (const [rows, cols] of [
    [1, 1],
    [7, 33],
    [130, 50],
  ]) {
    it(`scaleRows rows=${rows} cols=${cols}`, async () => {
      const x = randn(rows * cols, rows);
      const scale = randn(rows, cols);
      const ref = x.slice();
      ct.scaleRows(ref, scale, rows, cols);
      expect(ref[cols - 1]).toBeCloseTo(x[cols - 1] * scale[0], 6);
      const gx = g32.fromHost(x);
      t32.scaleRows(gx, g32.fromHost(scale), rows, cols);
      expect(maxRelErr(await host(gx, rows * cols), ref)).toBeLessThan(1e-6);
    });
  }

  for (const [tokens, vocab, dim] of [
    [1, 10, 8],
    [7, 50, 13],
    [300, 20, 70],
  ]) {
    it(`embedding backward tokens=${tokens} vocab=${vocab} dim=${dim}`, async () => {
      const tok = ids(tokens, vocab, 12);
      const dout = randn(tokens * dim, 13);
      const prev = randn(vocab * dim, 14);
      for (const accumulate of [false, true]) {
        const ref = prev.slice();
        ct.embeddingBackward(dout, tok, tokens, vocab, dim, ref, accumulate);
        const gt = g32.fromHost(prev);
        t32.embeddingBackward(g32.fromHost(dout), g32.indices(tok), tokens, vocab, dim, gt, accumulate);
        expect(maxRelErr(await host(gt, vocab * dim), ref)).toBeLessThan(1e-4);
      }
    });
  }

  for (const [rows, vocab] of [
    [1, 1],
    [5, 50],
    [9, 1001],
    [2, 32000],
  ]) {
    it(`cross-entropy rows=${rows} vocab=${vocab}`, async () => {
      const logits = randn(rows * vocab, rows + vocab, 4);
      const r = rng(vocab);
      const labels = Uint32Array.from({ length: rows }, (_, i) =>
        i % 4 === 1 ? IGNORE_INDEX : Math.floor(r() * vocab),
      );
      const rl = new Float32Array(rows);
      const rd = new Float32Array(rows * vocab);
      ct.crossEntropy(logits, labels, rows, vocab, 0.125, rl, rd);
      const gl = g32.tensor(rows);
      const gd = g32.fromHost(randn(rows * vocab, 1));
      t32.crossEntropy(g32.fromHost(logits), g32.indices(labels), rows, vocab, 0.125, gl, gd);
      const got = await host(gl, rows);
      expect(maxRelErr(got, rl)).toBeLessThan(1e-4);
      expect(maxRelErr(await host(gd, rows * vocab), rd)).toBeLessThan(1e-4);
      // Large logits stay finite (max-subtracted) and give the same losses.
      const gl2 = g32.tensor(rows);
      t32.crossEntropy(g32.fromHost(logits.map((x) => x + 1000)), g32.indices(labels), rows, vocab, 0.125, gl2, gd);
      expect(maxRelErr(await host(gl2, rows), rl)).toBeLessThan(1e-3);
    });
  }

  for (const [rows, vocab, cols] of [
    [1, 1, 1],
    [5, 300, 128],
    [9, 1001, 333],
  ]) {
    it(`logsumexp_chunk + cross_entropy_chunk_grad rows=${rows} vocab=${vocab} in chunks of ${cols} equal the CPU twin and cross_entropy`, async () => {
      const logits = randn(rows * vocab, rows + vocab + 7, 4);
      const r = rng(vocab + 1);
      const labels = Uint32Array.from({ length: rows }, (_, i) =>
        i % 4 === 1 ? IGNORE_INDEX : Math.floor(r() * vocab),
      );
      const chunk = (c0: number) => {
        const n = Math.min(cols, vocab - c0);
        const out = new Float32Array(rows * n);
        for (let i = 0; i < rows; i++) out.set(logits.subarray(i * vocab + c0, i * vocab + c0 + n), i * n);
        return out;
      };
      const stats = new Float32Array(rows * 3);
      const gStats = g32.tensor(rows * 3);
      const gLabels = g32.indices(labels);
      for (let c0 = 0; c0 < vocab; c0 += cols) {
        const n = Math.min(cols, vocab - c0);
        ct.logSumExpChunk(chunk(c0), labels, rows, n, c0, c0 === 0, stats);
        t32.logSumExpChunk(g32.fromHost(chunk(c0)), gLabels, rows, n, c0, c0 === 0, gStats);
      }
      const gotStats = await host(gStats, rows * 3);
      expect(maxRelErr(gotStats, stats)).toBeLessThan(1e-5);
      // Losses and gradients equal the one-pass cross_entropy.
      const refLosses = new Float32Array(rows);
      const refGrad = new Float32Array(rows * vocab);
      ct.crossEntropy(logits, labels, rows, vocab, 0.125, refLosses, refGrad);
      expect(maxRelErr(crossEntropyChunkLosses(gotStats, labels, vocab), refLosses)).toBeLessThan(1e-5);
      for (let c0 = 0; c0 < vocab; c0 += cols) {
        const n = Math.min(cols, vocab - c0);
        const want = chunk(c0);
        ct.crossEntropyChunkGrad(want, labels, stats, rows, n, c0, vocab, 0.125);
        const got = g32.fromHost(chunk(c0));
        t32.crossEntropyChunkGrad(got, gLabels, gStats, rows, n, c0, vocab, 0.125);
        expect(maxRelErr(await host(got, rows * n), want)).toBeLessThan(1e-5);
        for (let i = 0; i < rows; i++)
          expect(
            maxRelErr(want.subarray(i * n, (i + 1) * n), refGrad.subarray(i * vocab + c0, i * vocab + c0 + n)),
          ).toBeLessThan(1e-5);
      }
    });
  }

  for (const n of [1, 1000, 100003]) {
    it(`sumSquares n=${n}`, async () => {
      const x = randn(n, n);
      const ref = await ct.sumSquares(x, n);
      const got = await t32.sumSquares(g32.fromHost(x), n);
      expect(Math.abs(got - ref) / ref).toBeLessThan(1e-5);
    });
  }

  it('adamw, several steps', async () => {
    const n = 1001;
    const rp = randn(n, 1);
    const rm = new Float32Array(n);
    const rv = new Float32Array(n);
    const gp = g32.fromHost(rp);
    const gm = g32.fromHost(rm);
    const gv = g32.fromHost(rv);
    for (let step = 1; step <= 5; step++) {
      const grad = randn(n, 10 + step);
      const p: AdamWParams = { lr: 3e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step, gradScale: 0.7 };
      ct.adamw(rp, grad, rm, rv, n, p);
      t32.adamw(gp, g32.fromHost(grad), gm, gv, n, p);
    }
    expect(maxRelErr(await host(gp, n), rp)).toBeLessThan(1e-4);
    expect(maxRelErr(await host(gm, n), rm)).toBeLessThan(1e-4);
    expect(maxRelErr(await host(gv, n), rv)).toBeLessThan(1e-4);
  });
});
