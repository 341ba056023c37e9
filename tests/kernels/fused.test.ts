/**
 * Decode's fused kernels (norm_gemv, gemv_residual, rope_kv_write, attention_decode with RoPE and
 * the cache write) against their CPU twins on
 * seeded random inputs, shapes off the 4-column quad and the 64-invocation workgroup; then the
 * whole model: fused and separate ops give the same logits and greedy tokens, in fewer dispatches.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/kernels/cpu';
import { GpuBackend } from '../../src/kernels/gpu';
import type { Gpu } from '../../src/gpu/device';
import { f32ToF16Bits } from '../../src/formats/dtype';
import { FUSED_MAX_ROWS, interleaveCosSin } from '../../src/kernels/fused-cpu';
import { mlpDecodeVariantsFor } from '../../src/kernels/fused-gpu';
import { gemvShapeKey, KernelTuner, type MlpDecodeVariant } from '../../src/kernels/autotune';
import { LlamaModel } from '../../src/model/llama';
import { randomInitTensors } from '../../src/train/init';
import { benchConfig, BENCH_SIZES } from '../../src/eval/speed';
import { testGpu } from '../helpers/gpu';
import { maxRelErr, randn, rng } from '../helpers/rng';

let gpu: Gpu;
let g32: GpuBackend;
let g16: GpuBackend | null = null;
const cpu = new CpuBackend();

beforeAll(async () => {
  gpu = await testGpu();
  g32 = await GpuBackend.create(gpu, 'f32');
  if (gpu.features.f16) g16 = await GpuBackend.create(gpu, 'f16');
});

describe('fused decode kernels: WebGPU vs CPU twin', () => {
  // [rows, K, N of each weight]: N not multiples of 4, quads straddling workgroups (N > 256).
  const normCases: [number, number, number[]][] = [
    [1, 4, [1]],
    [1, 20, [37, 13, 13]],
    [3, 36, [301, 5]],
    [5, 64, [64, 32, 32]],
    [8, 12, [9, 250, 3]],
  ];
  for (const [rows, k, ns] of normCases) {
    it(`norm_gemv rows=${rows} K=${k} N=${ns.join(',')}`, async () => {
      const seed = rows * 100 + k;
      const x = randn(rows * k, seed, 2);
      const g = randn(k, seed + 1);
      const ws = ns.map((n, i) => randn(n * k, seed + 10 + i, 0.5));
      const refs = ns.map((n) => new Float32Array(rows * n));
      cpu.normMatmul(
        x,
        cpu.vector('g', g),
        1e-5,
        ws.map((w, i) => cpu.weight('w', w, ns[i], k)),
        rows,
        refs,
      );
      const outs = ns.map((n) => g32.tensor(rows * n));
      const weights = ws.map((w, i) => g32.weight('w', w, ns[i], k));
      g32.normMatmul(g32.fromHost(x), g32.vector('g', g), 1e-5, weights, rows, outs);
      for (let i = 0; i < ns.length; i++)
        expect(maxRelErr(await g32.toHost(outs[i], rows * ns[i]), refs[i])).toBeLessThan(1e-5);
    });
  }

  for (const [rows, k, n] of [
    [1, 8, 3],
    [2, 28, 45],
    [7, 44, 270],
  ]) {
    it(`norm_gemv(swiglu) rows=${rows} K=${k} N=${n}`, async () => {
      const x = randn(rows * k, n, 2);
      const g = randn(k, n + 1);
      const gate = randn(n * k, n + 2, 0.5);
      const up = randn(n * k, n + 3, 0.5);
      const ref = new Float32Array(rows * n);
      cpu.normSwiglu(x, cpu.vector('g', g), 1e-6, cpu.weight('g', gate, n, k), cpu.weight('u', up, n, k), rows, ref);
      const out = g32.tensor(rows * n);
      const [gg, gu] = [g32.weight('g', gate, n, k), g32.weight('u', up, n, k)];
      g32.normSwiglu(g32.fromHost(x), g32.vector('g', g), 1e-6, gg, gu, rows, out);
      expect(maxRelErr(await g32.toHost(out, rows * n), ref)).toBeLessThan(1e-5);
    });
  }

  for (const [rows, k, n] of [
    [1, 4, 1],
    [3, 36, 19],
    [8, 68, 257],
  ]) {
    it(`gemv_residual rows=${rows} K=${k} N=${n}`, async () => {
      const x = randn(rows * k, k, 1);
      const w = randn(n * k, k + 1, 0.5);
      const y = randn(rows * n, k + 2, 3);
      const ref = y.slice();
      cpu.matmulAdd(x, cpu.weight('w', w, n, k), rows, ref);
      const gy = g32.fromHost(y);
      g32.matmulAdd(g32.fromHost(x), g32.weight('w', w, n, k), rows, gy);
      expect(maxRelErr(await g32.toHost(gy, rows * n), ref)).toBeLessThan(1e-5);
    });
  }

  // [rows, hidden, o_proj's K, intermediate, weights]: intermediates past one workgroup (N > 256:
  // every workgroup of 'fused' repeats the prologue, only the first writes xOut; 'block' loops its
  // one workgroup over the quads), a hidden size past 4·WG (prologues take a second turn), and
  // rows whose SwiGLU output does not fit in workgroup memory (no 'block').
  for (const [rows, h, kO, n, dtype] of [
    [1, 8, 12, 4, 'f32'],
    [1, 64, 64, 176, 'f32'],
    [3, 36, 20, 44, 'f32'],
    [5, 64, 64, 300, 'f32'],
    [8, 28, 44, 532, 'f32'],
    [2, 264, 16, 40, 'f32'],
    [8, 64, 64, 1024, 'f32'],
    [2, 24, 16, 40, 'f16'],
  ] as const) {
    it(`mlpDecode rows=${rows} hidden=${h} KO=${kO} N=${n} (${dtype}): every variant = twin`, async ({ skip }) => {
      const b = dtype === 'f16' ? g16 : g32;
      if (!b) return skip();
      const seed = rows * 1000 + h + n;
      const half = (v: Float32Array) => (dtype === 'f16' ? f32ToF16Bits(v) : v);
      const [att, x, g] = [randn(rows * kO, seed, 1), randn(rows * h, seed + 1, 2), randn(h, seed + 2)];
      const [o, gate, up, down] = [
        half(randn(h * kO, seed + 3, 0.4)),
        half(randn(n * h, seed + 4, 0.4)),
        half(randn(n * h, seed + 5, 0.4)),
        half(randn(h * n, seed + 6, 0.4)),
      ];
      const refX = x.slice();
      const refAct = new Float32Array(rows * n);
      const cw = { o: cpu.weight('o', o, h, kO), norm: cpu.vector('g', g), gate: cpu.weight('g', gate, n, h) };
      const cpuW = { ...cw, up: cpu.weight('u', up, n, h), down: cpu.weight('d', down, h, n) };
      expect(cpu.mlpDecode(att, refX, cpuW, 1e-5, rows, refX, refAct)).toBe(refX);
      const gw = { o: b.weight('o', o, h, kO), norm: b.vector('g', g), gate: b.weight('g', gate, n, h) };
      const w = { ...gw, up: b.weight('u', up, n, h), down: b.weight('d', down, h, n) };
      const variants = mlpDecodeVariantsFor(b, w, rows);
      // 'block' keeps the rows and their SwiGLU output in workgroup memory.
      const fits = rows * (h + n) * 4 + 32 <= gpu.device.limits.maxComputeWorkgroupStorageSize;
      expect(variants).toEqual(fits ? ['split', 'fused', 'block'] : ['split', 'fused']);
      for (const variant of variants) {
        b.mlpDecodeKernel = variant as MlpDecodeVariant;
        try {
          const [gx, xOut, act] = [b.fromHost(x), b.fromHost(new Float32Array(rows * h).fill(7)), b.tensor(rows * n)];
          const stream = b.mlpDecode(b.fromHost(att), gx, w, 1e-5, rows, xOut, act);
          expect(stream, variant).toBe(variant === 'fused' ? xOut : gx);
          expect(maxRelErr(await b.toHost(stream, rows * h), refX), variant).toBeLessThan(1e-5);
          if (variant !== 'block') expect(maxRelErr(await b.toHost(act, rows * n), refAct), variant).toBeLessThan(1e-5);
          // The fused kernel leaves its input stream as it was.
          if (variant === 'fused') expect(Array.from(await b.toHost(gx, rows * h))).toEqual(Array.from(x));
        } finally {
          b.mlpDecodeKernel = 'auto';
        }
      }
    });
  }

  it('the fused GEMVs read f16 weights like the CPU twin reads the same f16 values', async ({ skip }) => {
    if (!g16) skip();
    const [rows, k, n] = [3, 24, 41];
    const x = randn(rows * k, 1);
    const g = randn(k, 2);
    const [a, b] = [f32ToF16Bits(randn(n * k, 3, 0.4)), f32ToF16Bits(randn(n * k, 4, 0.4))];
    const ref = new Float32Array(rows * n);
    cpu.normSwiglu(x, cpu.vector('g', g), 1e-5, cpu.weight('a', a, n, k), cpu.weight('b', b, n, k), rows, ref);
    const out = g16!.tensor(rows * n);
    g16!.normSwiglu(
      g16!.fromHost(x),
      g16!.vector('g', g),
      1e-5,
      g16!.weight('a', a, n, k),
      g16!.weight('b', b, n, k),
      rows,
      out,
    );
    expect(maxRelErr(await g16!.toHost(out, rows * n), ref)).toBeLessThan(1e-5);
    const y = randn(rows * n, 5);
    const refY = y.slice();
    cpu.matmulAdd(x, cpu.weight('a', a, n, k), rows, refY);
    const gy = g16!.fromHost(y);
    g16!.matmulAdd(g16!.fromHost(x), g16!.weight('a', a, n, k), rows, gy);
    expect(maxRelErr(await g16!.toHost(gy, rows * n), refY)).toBeLessThan(1e-5);
  });

  it('the fused GEMVs refuse what they cannot take, naming it', () => {
    const w = g32.weight('w', randn(5 * 6, 1), 5, 6); // K = 6: not a multiple of 4
    expect(g32.canFuse(w, 1)).toBe(false);
    expect(() => g32.matmulAdd(g32.tensor(6), w, 1, g32.tensor(5))).toThrow(/K % 4 == 0.*weight \[5, 6\]/);
    const w8 = g32.weight('w', randn(5 * 8, 1), 5, 8);
    expect(g32.canFuse(w8, FUSED_MAX_ROWS + 1)).toBe(false);
    expect(g32.canFuse(w8, 1)).toBe(true);
    // Another GEMV variant chosen for the shape: the separate ops run it.
    g32.gemvKernel = 'splitk';
    try {
      expect(g32.canFuse(w8, 1)).toBe(false);
    } finally {
      g32.gemvKernel = 'auto';
    }
    expect(() => g32.normMatmul(g32.tensor(8), g32.vector('g', randn(4, 2)), 1e-5, [w8], 1, [g32.tensor(5)])).toThrow(
      /does not take inputs of 4 features/,
    );
  });

  it('a GEMV variant tuned faster than the register one stops the fusion only when clearly faster', async () => {
    const be = await GpuBackend.create(gpu, 'f32');
    be.tuner = await KernelTuner.create(gpu, { store: { load: async () => ({}), save: async () => {} }, forced: '' });
    const w = be.weight('w', randn(12 * 8, 1), 12, 8);
    const key = gemvShapeKey(1, 12, 8, 'f32');
    expect(be.canFuse(w, 1)).toBe(true); // untuned: the register kernel
    await be.tuner.record(key, { register: 0.125, splitk: 0.54, subgroup: 0.123 }, 1);
    expect(be.tuner.choice('gemv', key, 'register')).toBe('subgroup');
    expect(be.canFuse(w, 1)).toBe(true); // a tie: fusing saves dispatches
    await be.tuner.record(key, { register: 0.181, splitk: 0.138, subgroup: 0.099 }, 1);
    expect(be.canFuse(w, 1)).toBe(true); // 1.8x: less than the dispatches fusing saves
    await be.tuner.record(key, { register: 0.5, splitk: 0.2, subgroup: 0.3 }, 1);
    expect(be.canFuse(w, 1)).toBe(false);
  });

  for (const [label, tokens, heads, kvHeads, headDim, maxSeq, slots] of [
    ['one decode token', 1, 4, 2, 8, 20, 1],
    ['a batch in 3 slots', 5, 3, 3, 6, 17, 3],
    ['head_dim 2, 70 q heads (two workgroups)', 4, 70, 1, 2, 9, 4],
  ] as const) {
    it(`rope_kv_write: ${label}`, async () => {
      const kvDim = kvHeads * headDim;
      const maxPos = maxSeq + 3;
      const r = rng(tokens * 7 + headDim);
      const slotIds = Uint32Array.from({ length: tokens }, (_, t) => t % slots);
      // Distinct cells (two tokens writing one would race on the GPU): the n-th token of a slot
      // at a random position in [4n, 4n + 4).
      const positions = Uint32Array.from({ length: tokens }, (_, t) => 4 * Math.floor(t / slots) + Math.floor(r() * 4));
      const [cos, sin] = [randn((maxPos * headDim) / 2, 31), randn((maxPos * headDim) / 2, 32)];
      const cosSin = interleaveCosSin(cos, sin);
      const q = randn(tokens * heads * headDim, 30);
      const k = randn(tokens * kvDim, 33);
      const v = randn(tokens * kvDim, 34);
      const cacheK = randn(slots * maxSeq * kvDim, 35);
      const cacheV = randn(slots * maxSeq * kvDim, 36);
      const shape = { slots, maxSeq, kvDim };
      const [rq, rk, rv] = [q.slice(), cacheK.slice(), cacheV.slice()];
      const dims = [tokens, heads, kvHeads, headDim, maxPos] as const;
      cpu.ropeKvWrite(rq, k, v, rk, rv, slotIds, positions, cpu.vector('cs', cosSin), ...dims, shape);
      // The twin is the separate ops: rope on q and on a copy of k, then kv_write.
      const [c, s] = [cpu.vector('c', cos), cpu.vector('s', sin)];
      const sq = q.slice();
      cpu.rope(sq, positions, c, s, tokens, heads, headDim, maxPos);
      const rotated = k.slice();
      cpu.rope(rotated, positions, c, s, tokens, kvHeads, headDim, maxPos);
      const [sk, sv] = [cacheK.slice(), cacheV.slice()];
      cpu.kvWrite(rotated, v, sk, sv, slotIds, positions, tokens, shape);
      expect(Array.from(rq)).toEqual(Array.from(sq));
      expect(Array.from(rk)).toEqual(Array.from(sk));
      expect(Array.from(rv)).toEqual(Array.from(sv));
      const [gq, gk, gv] = [g32.fromHost(q), g32.fromHost(cacheK), g32.fromHost(cacheV)];
      const gkIn = g32.fromHost(k);
      const [gs, gp] = [g32.indices(slotIds), g32.indices(positions)];
      g32.ropeKvWrite(gq, gkIn, g32.fromHost(v), gk, gv, gs, gp, g32.vector('cs', cosSin), ...dims, shape);
      expect(maxRelErr(await g32.toHost(gq, rq.length), rq)).toBeLessThan(1e-6);
      expect(maxRelErr(await g32.toHost(gk, rk.length), rk)).toBeLessThan(1e-6);
      expect(Array.from(await g32.toHost(gv, rv.length))).toEqual(Array.from(rv));
      expect(Array.from(await g32.toHost(gkIn, k.length))).toEqual(Array.from(k));
    });
  }

  // Decode attention with RoPE and the cache write folded in (attention_decode.wgsl, ROPE_KV):
  // tokens in distinct slots, one at position 0 (its own key only), GQA groups, head dims not
  // multiples of 4, more queries than one 32-invocation workgroup.
  for (const [label, tokens, heads, kvHeads, headDim, maxSeq] of [
    ['one decode token', 1, 4, 2, 8, 20],
    ['a batch of 5, one at position 0', 5, 6, 2, 10, 33],
    ['head_dim 24, 3 x 14 queries (two workgroups)', 3, 14, 7, 24, 70],
  ] as const) {
    it(`rope + kv write + decode attention: ${label}`, async () => {
      const kvDim = kvHeads * headDim;
      const maxPos = maxSeq + 3;
      const r = rng(tokens * 13 + headDim);
      const slotIds = Uint32Array.from({ length: tokens }, (_, t) => (t * 2 + 1) % tokens);
      const positions = Uint32Array.from({ length: tokens }, (_, t) => (t === 1 ? 0 : Math.floor(r() * maxSeq)));
      const [cos, sin] = [randn((maxPos * headDim) / 2, 41), randn((maxPos * headDim) / 2, 42)];
      const cosSin = interleaveCosSin(cos, sin);
      const q = randn(tokens * heads * headDim, 43);
      const k = randn(tokens * kvDim, 44);
      const v = randn(tokens * kvDim, 45);
      const cacheK = randn(tokens * maxSeq * kvDim, 46);
      const cacheV = randn(tokens * maxSeq * kvDim, 47);
      const shape = { slots: tokens, maxSeq, kvDim };
      const dims = [tokens, heads, kvHeads, headDim, maxPos] as const;
      const [rk, rv] = [cacheK.slice(), cacheV.slice()];
      const ref = new Float32Array(q.length);
      const twin = cpu.ropeKvAttention(
        q.slice(),
        k,
        v,
        rk,
        rv,
        slotIds,
        positions,
        cpu.vector('cs', cosSin),
        ...dims,
        shape,
        ref,
      );
      expect(twin).toBe(ref);
      for (const variant of ['serial', 'workgroup'] as const) {
        g32.attentionDecodeKernel = variant;
        try {
          const [gq, gk, gv, out] = [g32.fromHost(q), g32.fromHost(cacheK), g32.fromHost(cacheV), g32.tensor(q.length)];
          const [gs, gp] = [g32.indices(slotIds), g32.indices(positions)];
          const cs = g32.vector('cs', cosSin);
          const result = g32.ropeKvAttention(
            gq,
            g32.fromHost(k),
            g32.fromHost(v),
            gk,
            gv,
            gs,
            gp,
            cs,
            ...dims,
            shape,
            out,
          );
          // The serial variant is the one dispatch, in place; the other runs rope_kv_write first.
          expect(result, variant).toBe(variant === 'serial' ? gq : out);
          expect(maxRelErr(await g32.toHost(result, ref.length), ref), variant).toBeLessThan(1e-5);
          expect(maxRelErr(await g32.toHost(gk, rk.length), rk), variant).toBeLessThan(1e-6);
          expect(Array.from(await g32.toHost(gv, rv.length)), variant).toEqual(Array.from(rv));
        } finally {
          g32.attentionDecodeKernel = 'auto';
        }
      }
    });
  }
});

describe('fused decode in the model', () => {
  // The bench's tiny size with a vocabulary and intermediate size that are not multiples of 4 rows
  // per quad (K stays a multiple of 4: hidden 64, intermediate 180).
  const config = { ...benchConfig(BENCH_SIZES[0]), vocabSize: 301, intermediateSize: 180 };

  const prompt = 9;
  async function prefilled(backend: GpuBackend | CpuBackend, fused: boolean, batch: number) {
    const model = LlamaModel.fromTensors(backend as never, config, randomInitTensors(config, 7), 40) as LlamaModel;
    model.fusedDecode = fused;
    const cache = model.createCache(batch, 40);
    await model.forward(
      {
        ids: Uint32Array.from({ length: batch * prompt }, (_, i) => (i * 37) % config.vocabSize),
        positions: Uint32Array.from({ length: batch * prompt }, (_, i) => i % prompt),
        slots: Uint32Array.from({ length: batch * prompt }, (_, i) => Math.floor(i / prompt)),
        logitRows: [],
      },
      cache,
    );
    return { model, cache };
  }
  const firstIds = (batch: number) => Array.from({ length: batch }, (_, b) => (b * 11 + 3) % config.vocabSize);

  async function decode(backend: GpuBackend | CpuBackend, fused: boolean, batch: number) {
    const { model, cache } = await prefilled(backend, fused, batch);
    let last = firstIds(batch);
    const tokens: number[][] = [];
    const logits: Float32Array[] = [];
    let dispatches = 0;
    for (let s = 0; s < 6; s++) {
      const before = backend instanceof GpuBackend ? backend.dispatches : 0;
      const out = await model.forward(
        {
          ids: Uint32Array.from(last),
          positions: new Uint32Array(batch).fill(prompt + s),
          slots: Uint32Array.from({ length: batch }, (_, b) => b),
          logitRows: Array.from({ length: batch }, (_, b) => b),
        },
        cache,
      );
      if (backend instanceof GpuBackend) dispatches = backend.dispatches - before;
      logits.push(out);
      last = Array.from({ length: batch }, (_, b) => {
        const row = out.subarray(b * config.vocabSize, (b + 1) * config.vocabSize);
        return row.indexOf(Math.max(...row));
      });
      tokens.push(last);
    }
    model.freeCache(cache);
    model.dispose();
    return { tokens, logits, dispatches };
  }

  for (const batch of [1, 5, FUSED_MAX_ROWS + 1]) {
    it(`greedy decode of ${batch} sequence(s): fused = separate ops (logits within 1e-5, same tokens), fewer dispatches`, async () => {
      const separate = await decode(g32, false, batch);
      const fused = await decode(g32, true, batch);
      // With the serial decode attention, RoPE and the cache write go into it (one dispatch less a layer).
      g32.attentionDecodeKernel = 'serial';
      const fusedSerial = await decode(g32, true, batch);
      // And with the MLP half-layer in two dispatches (the residual stream then alternates
      // buffers), and in one workgroup.
      g32.mlpDecodeKernel = 'fused';
      const fusedMlp = await decode(g32, true, batch);
      g32.mlpDecodeKernel = 'block';
      const blockMlp = await decode(g32, true, batch).finally(() => {
        g32.attentionDecodeKernel = 'auto';
        g32.mlpDecodeKernel = 'auto';
      });
      const twin = await decode(cpu, true, batch);
      const twinSeparate = await decode(cpu, false, batch);
      expect(fused.tokens).toEqual(separate.tokens);
      expect(fusedSerial.tokens).toEqual(separate.tokens);
      expect(fusedMlp.tokens).toEqual(separate.tokens);
      expect(blockMlp.tokens).toEqual(separate.tokens);
      expect(twin.tokens).toEqual(separate.tokens);
      for (let s = 0; s < separate.logits.length; s++) {
        expect(maxRelErr(fused.logits[s], separate.logits[s])).toBeLessThan(1e-5);
        expect(maxRelErr(fused.logits[s], twin.logits[s])).toBeLessThan(1e-5);
        expect(maxRelErr(fusedSerial.logits[s], separate.logits[s])).toBeLessThan(1e-5);
        expect(maxRelErr(fusedMlp.logits[s], separate.logits[s])).toBeLessThan(1e-5);
        expect(maxRelErr(blockMlp.logits[s], separate.logits[s])).toBeLessThan(1e-5);
        // The twins run the separate ops in the same order: exactly equal.
        expect(Array.from(twin.logits[s])).toEqual(Array.from(twinSeparate.logits[s]));
      }
      // 2 layers: 16 dispatches a layer + embedding, final norm, LM head = 35; fused 6 a layer + 2 = 14.
      // Past FUSED_MAX_ROWS only RoPE + KV write fuse (the GEMMs take many rows).
      expect(separate.dispatches).toBe(35);
      expect(fused.dispatches).toBe(batch <= FUSED_MAX_ROWS ? 14 : 31);
      expect(fusedSerial.dispatches).toBe(batch <= FUSED_MAX_ROWS ? 12 : 29);
      expect(fusedMlp.dispatches).toBe(batch <= FUSED_MAX_ROWS ? 10 : 29);
      expect(blockMlp.dispatches).toBe(batch <= FUSED_MAX_ROWS ? 8 : 29);
    });
  }

  // A burst: each step's argmax writes the next step's embedding (no embedding dispatch after the
  // first step), and the tokens are those of step-by-step decoding with the host's argmax.
  for (const batch of [1, 5]) {
    it(`greedy burst of ${batch} sequence(s) = step-by-step decode, embedding folded into the argmax`, async () => {
      const steps = 6;
      const stepwise = await decode(g32, true, batch);
      const burst = async (backend: GpuBackend | CpuBackend) => {
        const { model, cache } = await prefilled(backend, true, batch);
        const before = backend instanceof GpuBackend ? backend.dispatches : 0;
        const positions = new Uint32Array(batch).fill(prompt);
        const slots = Uint32Array.from({ length: batch }, (_, b) => b);
        const out = await model.greedyDecode(
          { ids: Uint32Array.from(firstIds(batch)), positions, slots },
          cache,
          steps,
        );
        const dispatches = backend instanceof GpuBackend ? backend.dispatches - before : 0;
        model.freeCache(cache);
        model.dispose();
        const tokens = Array.from({ length: steps }, (_, s) => Array.from(out.subarray(s * batch, (s + 1) * batch)));
        return { tokens, dispatches };
      };
      const gpuBurst = await burst(g32);
      expect(gpuBurst.tokens).toEqual(stepwise.tokens);
      expect((await burst(cpu)).tokens).toEqual(stepwise.tokens);
      // Each step: the forward's dispatches + its argmax, less the embedding after the first step.
      expect(gpuBurst.dispatches).toBe(steps * (stepwise.dispatches + 1) - (steps - 1));
    });
  }
});
