/**
 * Kernel variants against the CPU twin (odd shapes, both weight types), and the autotuner: it
 * times the candidates once per shape class and adapter, caches the choice, and obeys a forced
 * variant.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/kernels/cpu';
import { GpuBackend } from '../../src/kernels/gpu';
import {
  attentionShapeKey,
  attentionDecodeShapeKey,
  mlpDecodeShapeKey,
  candidatesOn,
  KERNEL_FAMILIES,
  KernelTuner,
  gemmShapeKey,
  gemvShapeKey,
  parseForcedKernels,
  tuneSlice,
  type TuningSummary,
} from '../../src/kernels/autotune';
import { Gpu } from '../../src/gpu/device';
import { f32ToF16Bits } from '../../src/formats/dtype';
import { testGpu } from '../helpers/gpu';
import { writeTinyModel } from '../helpers/tiny-model';
import { choiceRows, describeChoices } from '../../src/kernels/tuning-report';
import { loadCheckpoint } from '../../src/formats/checkpoint';
import { Runtime } from '../../src/engine/local';
import { maxRelErr, randn } from '../helpers/rng';

let gpu: Gpu;
let g32: GpuBackend;
let g16: GpuBackend | null = null;
const cpu = new CpuBackend();

beforeAll(async () => {
  gpu = await testGpu();
  g32 = await GpuBackend.create(gpu, 'f32');
  if (gpu.features.f16) g16 = await GpuBackend.create(gpu, 'f16');
});

/** A store in memory, so tests never touch ~/.cache. */
function memoryStore() {
  let saved: Record<string, Record<string, { choice: string; ms: Record<string, number> }>> = {};
  return {
    saves: 0,
    async load() {
      return JSON.parse(JSON.stringify(saved));
    },
    async save(all: typeof saved) {
      saved = JSON.parse(JSON.stringify(all));
      this.saves++;
    },
  };
}

describe('GEMV variants vs the CPU twin', () => {
  // M up to the GEMV limit of 8; N and K not multiples of 4, 64 or the workgroup size; K below,
  // around and far above the 64 invocations that split it.
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 37, 19],
    [3, 70, 40],
    [5, 5, 131],
    [8, 33, 64],
    [7, 129, 200],
  ];
  for (const variant of KERNEL_FAMILIES.gemv) {
    for (const [m, n, k] of shapes) {
      it(`${variant}: M=${m} N=${n} K=${k}, with and without bias`, async ({ skip }) => {
        if (!candidatesOn(gpu, 'gemv').includes(variant)) skip(`this adapter lacks the feature '${variant}' needs`);
        g32.gemvKernel = variant;
        try {
          for (const bias of [false, true]) {
            const x = randn(m * k, m * 100 + k);
            const w = randn(n * k, n + 7 * k, 0.5);
            const b = bias ? randn(n, 3) : null;
            const ref = new Float32Array(m * n);
            cpu.matmul(x, cpu.weight('w', w, n, k), b ? cpu.vector('b', b) : null, m, ref);
            const out = g32.tensor(m * n);
            g32.matmul(g32.fromHost(x), g32.weight('w', w, n, k), b ? g32.vector('b', b) : null, m, out);
            expect(maxRelErr(await g32.toHost(out, m * n), ref), `bias=${bias}`).toBeLessThan(1e-5);
          }
        } finally {
          g32.gemvKernel = 'auto';
        }
      });
    }
    it(`${variant}: f16 weights match the CPU twin on the same f16 values`, async ({ skip }) => {
      if (!g16) skip('this adapter lacks shader-f16');
      if (!candidatesOn(gpu, 'gemv').includes(variant)) skip(`this adapter lacks the feature '${variant}' needs`);
      const [m, n, k] = [5, 45, 36];
      const x = randn(m * k, 5);
      const bits = f32ToF16Bits(randn(n * k, 6, 0.3));
      const ref = new Float32Array(m * n);
      cpu.matmul(x, cpu.weight('w', bits, n, k), null, m, ref);
      g16!.gemvKernel = variant;
      try {
        const out = g16!.tensor(m * n);
        g16!.matmul(g16!.fromHost(x), g16!.weight('w', bits, n, k), null, m, out);
        expect(maxRelErr(await g16!.toHost(out, m * n), ref)).toBeLessThan(1e-5);
      } finally {
        g16!.gemvKernel = 'auto';
      }
    });
  }
});

describe('GEMM variants vs the CPU twin', () => {
  // M past the GEMV limit; M, N and K not multiples of the 32x32 tile, the K-step of 32 or 4
  // (K = 131 takes five K-steps, the last partial; K = 19 and 131 take the guarded scalar path).
  const shapes: [number, number, number][] = [
    [9, 1, 1],
    [13, 37, 19],
    [33, 70, 40],
    [40, 65, 131],
    [17, 33, 64],
    [70, 129, 36],
    // Several 16-row groups and a 256-column workgroup edge (the broadcast kernels), K % 4 != 0.
    [45, 300, 38],
  ];
  for (const variant of KERNEL_FAMILIES.gemm) {
    for (const [m, n, k] of shapes) {
      it(`${variant}: M=${m} N=${n} K=${k}, with and without bias`, async ({ skip }) => {
        if (!candidatesOn(gpu, 'gemm').includes(variant)) skip(`this adapter lacks the feature '${variant}' needs`);
        g32.gemmKernel = variant;
        try {
          for (const bias of [false, true]) {
            const x = randn(m * k, m * 100 + k);
            const w = randn(n * k, n + 7 * k, 0.5);
            const b = bias ? randn(n, 3) : null;
            const ref = new Float32Array(m * n);
            cpu.matmul(x, cpu.weight('w', w, n, k), b ? cpu.vector('b', b) : null, m, ref);
            const out = g32.tensor(m * n);
            g32.matmul(g32.fromHost(x), g32.weight('w', w, n, k), b ? g32.vector('b', b) : null, m, out);
            expect(maxRelErr(await g32.toHost(out, m * n), ref), `bias=${bias}`).toBeLessThan(1e-5);
          }
        } finally {
          g32.gemmKernel = 'auto';
        }
      });
    }
    it(`${variant}: a weight sharded by rows writes each shard's columns of Y (nOffset, ldy)`, async ({ skip }) => {
      if (!candidatesOn(gpu, 'gemm').includes(variant)) skip(`this adapter lacks the feature '${variant}' needs`);
      const [m, n, k] = [21, 50, 28];
      const x = randn(m * k, 11);
      const w = randn(n * k, 12, 0.5);
      const bias = randn(n, 13);
      const ref = new Float32Array(m * n);
      cpu.matmul(x, cpu.weight('w', w, n, k), cpu.vector('b', bias), m, ref);
      const sharded = await GpuBackend.create(gpu, 'f32');
      sharded.gemmKernel = variant;
      // Shards of 17, 17 and 16 rows, each written into its columns of one Y of width 50.
      const shards = [0, 17, 34].map((r) => ({ rowStart: r, rows: Math.min(17, n - r) }));
      const out = sharded.tensor(m * n);
      for (const s of shards) {
        const part = sharded.weight('part', w.subarray(s.rowStart * k, (s.rowStart + s.rows) * k), s.rows, k);
        const b = sharded.vector('b', bias.subarray(s.rowStart, s.rowStart + s.rows));
        const params = { M: m, N: s.rows, K: k, nOffset: s.rowStart, ldy: n, hasBias: 1 };
        const buffers = { x: sharded.fromHost(x), w: part.shards[0].buffer, bias: b.shards[0].buffer, y: out };
        sharded.matmulRows(params, buffers, { VEC4: true }, 'f32');
      }
      expect(maxRelErr(await sharded.toHost(out, m * n), ref)).toBeLessThan(1e-5);
    });
    it(`${variant}: f16 weights match the CPU twin on the same f16 values`, async ({ skip }) => {
      if (!g16 || !candidatesOn(gpu, 'gemm').includes(variant)) skip();
      for (const [m, n, k] of [
        [37, 45, 36],
        [12, 9, 23],
      ]) {
        const x = randn(m * k, 5);
        const bits = f32ToF16Bits(randn(n * k, 6, 0.3));
        const ref = new Float32Array(m * n);
        cpu.matmul(x, cpu.weight('w', bits, n, k), null, m, ref);
        g16!.gemmKernel = variant;
        try {
          const out = g16!.tensor(m * n);
          g16!.matmul(g16!.fromHost(x), g16!.weight('w', bits, n, k), null, m, out);
          expect(maxRelErr(await g16!.toHost(out, m * n), ref), `${m}x${n}x${k}`).toBeLessThan(1e-5);
        } finally {
          g16!.gemmKernel = 'auto';
        }
      }
    });
  }
});

describe('autotuner', () => {
  it('tunes a GEMM shape class at its first use (the next readback), then runs the choice', async () => {
    const store = memoryStore();
    const be = await GpuBackend.create(gpu, 'f32');
    be.tuner = await KernelTuner.create(gpu, { store, forced: '' });
    const [m, n, k] = [20, 24, 12];
    const x = randn(m * k, 21);
    const w = randn(n * k, 22);
    const ref = new Float32Array(m * n);
    cpu.matmul(x, cpu.weight('w', w, n, k), null, m, ref);
    const gw = be.weight('w', w, n, k);
    const key = gemmShapeKey(m, n, k, 'f32');
    expect(be.tuner.needsTuning('gemm', key)).toBe(true);
    for (let pass = 0; pass < 2; pass++) {
      const out = be.tensor(m * n);
      be.matmul(be.fromHost(x), gw, null, m, out);
      expect(maxRelErr(await be.toHost(out, m * n), ref), `pass ${pass}`).toBeLessThan(1e-5);
    }
    const r = be.tuner.summary().choices[key];
    expect(r.source).toBe('tuned');
    expect(Object.keys(r.ms).sort()).toEqual([...KERNEL_FAMILIES.gemm].sort());
    expect(r.choice).toBe(Object.entries(r.ms).sort((a, b) => a[1] - b[1])[0][0]);
    // Same bucket of M (9..32), same N and K: one class, timed once.
    expect(gemmShapeKey(31, n, k, 'f32')).toBe(key);
    expect(gemmShapeKey(33, n, k, 'f32')).not.toBe(key);
    expect(store.saves).toBe(1);
  });

  it('times each candidate once per shape class, keeps the fastest, and reuses the cached choice', async () => {
    const store = memoryStore();
    const be = await GpuBackend.create(gpu, 'f32');
    be.tuner = await KernelTuner.create(gpu, { store, forced: '' });
    await be.autotune([
      { n: 48, k: 40, dtype: 'f32' },
      { n: 48, k: 40, dtype: 'f32' },
      { n: 17, k: 23, dtype: 'f32' },
    ]);
    const first = be.tuner.summary();
    // Two distinct shapes, each at M = 1 and M = 5: four timed classes, the duplicate skipped.
    expect(Object.keys(first.choices).sort()).toEqual(
      [
        gemvShapeKey(1, 17, 23, 'f32'),
        gemvShapeKey(1, 48, 40, 'f32'),
        gemvShapeKey(5, 17, 23, 'f32'),
        gemvShapeKey(5, 48, 40, 'f32'),
      ].sort(),
    );
    for (const r of Object.values(first.choices)) {
      expect(r.source).toBe('tuned');
      expect(Object.keys(r.ms).sort()).toEqual([...candidatesOn(gpu, 'gemv')].sort());
      const fastest = Object.entries(r.ms).sort((a, b) => a[1] - b[1])[0][0];
      expect(r.choice).toBe(fastest);
    }
    expect(first.tuningMs).toBeGreaterThan(0);
    expect(store.saves).toBe(4);
    // A later load on the same adapter: cached, nothing timed again.
    const again = await KernelTuner.create(gpu, { store, forced: '' });
    expect(again.needsTuning('gemv', gemvShapeKey(1, 48, 40, 'f32'))).toBe(false);
    expect(again.needsTuning('gemv', gemvShapeKey(1, 49, 40, 'f32'))).toBe(true);
    expect(Object.values(again.summary().choices).every((r) => r.source === 'cached')).toBe(true);
    // The tuned backend computes the same product as the CPU twin whichever variant won.
    const x = randn(5 * 40, 1);
    const w = randn(48 * 40, 2);
    const ref = new Float32Array(5 * 48);
    cpu.matmul(x, cpu.weight('w', w, 48, 40), null, 5, ref);
    const out = be.tensor(5 * 48);
    be.matmul(be.fromHost(x), be.weight('w', w, 48, 40), null, 5, out);
    expect(maxRelErr(await be.toHost(out, 5 * 48), ref)).toBeLessThan(1e-5);
  });

  it('the subgroup GEMV is a candidate exactly where the adapter has subgroups; forcing it elsewhere is a clear error', async () => {
    expect(candidatesOn({ features: { f16: false, subgroups: true, timestampQuery: false } }, 'gemv')).toContain(
      'subgroup',
    );
    expect(candidatesOn({ features: { f16: true, subgroups: false, timestampQuery: true } }, 'gemv')).toEqual([
      'register',
      'splitk',
    ]);
    expect(candidatesOn(gpu, 'gemv').includes('subgroup')).toBe(gpu.features.subgroups);
    // A device without the feature (requested without it when the adapter has it).
    const plain = gpu.features.subgroups ? await Gpu.create({ disableSubgroups: true }) : gpu;
    expect(plain.features.subgroups).toBe(false);
    expect(candidatesOn(plain, 'gemv')).toEqual(['register', 'splitk']);
    expect(candidatesOn(plain, 'gemm')).toEqual(['register', 'tiled', 'tiled64']);
    expect(candidatesOn(gpu, 'gemm').includes('broadcast16')).toBe(gpu.features.subgroups);
    const be = await GpuBackend.create(plain, 'f32');
    be.gemvKernel = 'subgroup';
    expect(() => be.matmul(be.tensor(4), be.weight('w', new Float32Array(4), 1, 4), null, 1, be.tensor(1))).toThrow(
      /'subgroup' GEMV needs the adapter's subgroups feature/,
    );
    be.gemmKernel = 'broadcast16';
    expect(() => be.matmul(be.tensor(9 * 4), be.weight('w', new Float32Array(4), 1, 4), null, 9, be.tensor(9))).toThrow(
      /'broadcast16' GEMM needs the adapter's subgroups feature/,
    );
    if (plain !== gpu) plain.destroy();
  });

  it('tunes the decode MLP half-layer (mlp_decode) at first use, timing only the variants the shape takes', async () => {
    const be = await GpuBackend.create(gpu, 'f32');
    be.tuner = await KernelTuner.create(gpu, { store: memoryStore(), forced: '' });
    for (const [n, rows] of [
      [20, 1],
      [1024, 8],
    ]) {
      const [h, kO] = [16, 8];
      const [att, x, g] = [randn(rows * kO, 51), randn(rows * h, 52), randn(h, 53)];
      const [o, gate, up, down] = [
        randn(h * kO, 54, 0.5),
        randn(n * h, 55, 0.5),
        randn(n * h, 56, 0.5),
        randn(h * n, 57),
      ];
      const refX = x.slice();
      const cw = { o: cpu.weight('o', o, h, kO), norm: cpu.vector('g', g), gate: cpu.weight('g', gate, n, h) };
      const cpuW = { ...cw, up: cpu.weight('u', up, n, h), down: cpu.weight('d', down, h, n) };
      cpu.mlpDecode(att, refX, cpuW, 1e-5, rows, refX, new Float32Array(rows * n));
      const gw = { o: be.weight('o', o, h, kO), norm: be.vector('g', g), gate: be.weight('g', gate, n, h) };
      const w = { ...gw, up: be.weight('u', up, n, h), down: be.weight('d', down, h, n) };
      for (let pass = 0; pass < 2; pass++) {
        const [gx, xOut, act] = [be.fromHost(x), be.tensor(rows * h), be.tensor(rows * n)];
        const stream = be.mlpDecode(be.fromHost(att), gx, w, 1e-5, rows, xOut, act);
        expect(maxRelErr(await be.toHost(stream, rows * h), refX), `N ${n} pass ${pass}`).toBeLessThan(1e-5);
      }
      const r = be.tuner.summary().choices[mlpDecodeShapeKey(rows, h, n, kO, 'f32')];
      expect(r.source).toBe('tuned');
      // 'block' only where the rows and their SwiGLU output fit in workgroup memory.
      const fits = rows * (h + n) * 4 + 32 <= gpu.device.limits.maxComputeWorkgroupStorageSize;
      expect(Object.keys(r.ms)).toEqual(fits ? [...KERNEL_FAMILIES.mlp_decode] : ['split', 'fused']);
    }
  });

  it('decode attention classes carry the context bucket of the cache (256, 1024, 4096+)', () => {
    const at = (maxSeq: number) => attentionDecodeShapeKey(1, 4, 2, 16, maxSeq);
    expect(at(40)).toBe(at(256));
    expect(at(257)).not.toBe(at(256));
    expect(at(1024)).toBe(at(300));
    expect(at(1025)).toBe(at(32768));
    expect(at(32768)).toMatch(/:c4096$/);
  });

  it('a forced variant wins over timing; a bad specification names what is known', async () => {
    const tuner = await KernelTuner.create(gpu, { store: memoryStore(), forced: 'gemv=splitk' });
    expect(tuner.choice('gemv', gemvShapeKey(1, 8, 8, 'f32'), 'register')).toBe('splitk');
    expect(tuner.needsTuning('gemv', gemvShapeKey(1, 8, 8, 'f32'))).toBe(false);
    expect(() => parseForcedKernels('gemv=fast')).toThrow(
      /unknown gemv variant 'fast' \(known: register, splitk, subgroup\)/,
    );
    expect(() => parseForcedKernels('gemm=fast')).toThrow(
      /unknown gemm variant 'fast' \(known: register, tiled, tiled64, broadcast16, broadcast8\)/,
    );
    expect(() => parseForcedKernels('conv=register')).toThrow(/unknown kernel family 'conv'/);
    const gemm = await KernelTuner.create(gpu, { store: memoryStore(), forced: 'gemm=tiled' });
    const key = gemmShapeKey(40, 8, 8, 'f32');
    expect(gemm.choice('gemm', key, 'register')).toBe('tiled');
    expect(gemm.summary().choices[key]).toEqual({ choice: 'tiled', ms: {}, source: 'forced' });
  });

  it('a class whose timing fails (its weight freed before the readback) stays untuned; the readback still works', async () => {
    const be = await GpuBackend.create(gpu, 'f32');
    be.tuner = await KernelTuner.create(gpu, { store: memoryStore(), forced: '' });
    const [m, n, k] = [12, 8, 8];
    const x = randn(m * k, 41);
    const w = randn(n * k, 42);
    const ref = new Float32Array(m * n);
    cpu.matmul(x, cpu.weight('w', w, n, k), null, m, ref);
    const gw = be.weight('w', w, n, k);
    const out = be.tensor(m * n);
    be.matmul(be.fromHost(x), gw, null, m, out);
    be.flush(); // the product is submitted while its weight is alive
    be.freeWeight(gw);
    expect(maxRelErr(await be.toHost(out, m * n), ref)).toBeLessThan(1e-5);
    expect(be.tuner.needsTuning('gemm', gemmShapeKey(m, n, k, 'f32'))).toBe(true);
    expect(be.tuner.summary().tuningMs).toBe(0);
  });

  it('tunes the training GEMMs (dX, dW) at first use too, and the gradients stay right', async () => {
    const be = await GpuBackend.create(gpu, 'f32');
    be.tuner = await KernelTuner.create(gpu, { store: memoryStore(), forced: '' });
    const ops = be.createTrainOps();
    const [m, n, k] = [20, 24, 12];
    const dy = randn(m * n, 31);
    const x = randn(m * k, 32);
    const w = randn(n * k, 33);
    const ct = cpu.createTrainOps();
    const rdx = new Float32Array(m * k);
    const rdw = new Float32Array(n * k);
    ct.matmulBackwardInput(dy, w, m, n, k, rdx, false);
    ct.matmulBackwardWeight(dy, x, m, n, k, rdw, false);
    for (let pass = 0; pass < 2; pass++) {
      const gdx = be.tensor(m * k);
      const gdw = be.tensor(n * k);
      ops.matmulBackwardInput(be.fromHost(dy), be.weight('w', w, n, k), m, n, k, gdx, false);
      ops.matmulBackwardWeight(be.fromHost(dy), be.fromHost(x), m, n, k, gdw, false);
      expect(maxRelErr(await be.toHost(gdx, m * k), rdx), `dX pass ${pass}`).toBeLessThan(1e-4);
      expect(maxRelErr(await be.toHost(gdw, n * k), rdw), `dW pass ${pass}`).toBeLessThan(1e-4);
    }
    const choices = be.tuner.summary().choices;
    for (const family of ['gemm_dx', 'gemm_dw'] as const) {
      const r = choices[gemmShapeKey(m, n, k, 'f32', family)];
      expect(r?.source, family).toBe('tuned');
      expect(Object.keys(r.ms).sort()).toEqual([...KERNEL_FAMILIES[family]].sort());
    }
  });

  it('Runtime loads tune at first use (autotune on), reuse the cache on the next load, and compute the same logits', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-tune-rt-'));
    writeTinyModel(dir, { arch: 'qwen2', hidden: 32, layers: 1, heads: 4, kvHeads: 2, intermediate: 40, vocab: 320 });
    const before = process.env.AGENTARK_CACHE_DIR;
    process.env.AGENTARK_CACHE_DIR = dir;
    try {
      const prompt = Array.from({ length: 19 }, (_, i) => (i * 7) % 320); // 19 rows: GEMM shapes
      const opts = { gpu, dtype: 'f32' as const, contextLength: 32, maxBatch: 1 };
      const plain = await Runtime.fromCheckpoint(await loadCheckpoint(dir), { ...opts, autotune: false });
      expect(plain.kernelChoices()).toBeNull();
      const want = await plain.logits(prompt);
      const tuned = await Runtime.fromCheckpoint(await loadCheckpoint(dir), { ...opts, autotune: true });
      expect(maxRelErr(await tuned.logits(prompt), want)).toBeLessThan(1e-4);
      const first = tuned.kernelChoices()!;
      const gemm = Object.entries(first.choices).filter(([k]) => k.startsWith('gemm:'));
      expect(gemm.length).toBeGreaterThan(0);
      for (const [, r] of gemm) {
        expect(r.source).toBe('tuned');
        expect(Object.keys(r.ms).sort()).toEqual([...KERNEL_FAMILIES.gemm].sort());
      }
      // The 19-token prompt's attention is a prefill: its candidates were timed too.
      const attention = Object.entries(first.choices).filter(([k]) => k.startsWith('attention_prefill:'));
      expect(attention.map(([, r]) => Object.keys(r.ms).sort())).toEqual([
        [...KERNEL_FAMILIES.attention_prefill].sort(),
      ]);
      expect(first.tuningMs).toBeGreaterThan(0);
      // The tuned choices now run: same logits.
      expect(maxRelErr(await tuned.logits(prompt), want)).toBeLessThan(1e-4);
      const again = await Runtime.fromCheckpoint(await loadCheckpoint(dir), { ...opts, autotune: true });
      expect(maxRelErr(await again.logits(prompt), want)).toBeLessThan(1e-4);
      const second = again.kernelChoices()!;
      expect(second.tuningMs).toBe(0);
      for (const [k] of gemm) expect(second.choices[k]?.source).toBe('cached');
    } finally {
      if (before === undefined) delete process.env.AGENTARK_CACHE_DIR;
      else process.env.AGENTARK_CACHE_DIR = before;
    }
  });

  it('persists choices per adapter in a JSON file under AGENTARK_CACHE_DIR (Node)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-tune-'));
    const before = process.env.AGENTARK_CACHE_DIR;
    process.env.AGENTARK_CACHE_DIR = dir;
    try {
      const be = await GpuBackend.create(gpu, 'f32');
      be.tuner = await KernelTuner.create(gpu, { forced: '' });
      await be.autotune([{ n: 9, k: 12, dtype: 'f32' }]);
      const { readFileSync } = await import('node:fs');
      const saved = JSON.parse(readFileSync(path.join(dir, 'kernel-choices.json'), 'utf8'));
      expect(Object.keys(saved)).toEqual([be.tuner.adapterKey]);
      expect(be.tuner.adapterKey).toContain(gpu.info.vendor);
      expect(Object.keys(saved[be.tuner.adapterKey]).sort()).toEqual(
        [gemvShapeKey(1, 9, 12, 'f32'), gemvShapeKey(5, 9, 12, 'f32')].sort(),
      );
    } finally {
      if (before === undefined) delete process.env.AGENTARK_CACHE_DIR;
      else process.env.AGENTARK_CACHE_DIR = before;
    }
  });
});

describe('tuning cost', () => {
  it('times large products on a slice of their output rows (at least one 32-row tile, at most 0.2 GFLOP)', () => {
    // A 151,936-row LM head at 128 prompt rows: 871 rows timed instead of all.
    expect(tuneSlice(151936, 2 * 128 * 896)).toBe(871);
    expect(tuneSlice(500, 2 * 128 * 896)).toBe(500);
    expect(tuneSlice(1000, 1e9)).toBe(32);
    expect(tuneSlice(10, 1e9)).toBe(10);
  });
});

describe('tuning report', () => {
  it('names each shape class in words with the choice, every candidate timing and the source', () => {
    const summary: TuningSummary = {
      adapterKey: 'a',
      tuningMs: 12,
      choices: {
        [gemmShapeKey(100, 896, 896, 'f16')]: {
          choice: 'tiled',
          ms: { register: 3.14, tiled: 1.2 },
          source: 'tuned',
        },
        [gemvShapeKey(1, 896, 4864, 'f32')]: { choice: 'splitk', ms: {}, source: 'forced' },
        [attentionShapeKey(200, 14, 2, 64)]: { choice: 'splitd', ms: { tiled: 2, splitd: 1 }, source: 'tuned' },
        [gemvShapeKey(5, 896, 4864, 'f32')]: {
          choice: 'register',
          ms: { register: 0.25, splitk: 0.5 },
          source: 'cached',
        },
        [attentionDecodeShapeKey(1, 14, 2, 64, 2048)]: {
          choice: 'serial',
          ms: { workgroup: 0.4, serial: 0.06 },
          source: 'tuned',
        },
        [mlpDecodeShapeKey(5, 896, 4864, 896, 'f16')]: {
          choice: 'split',
          ms: { split: 1.4, fused: 2.1, block: 9.5 },
          source: 'tuned',
        },
      },
    };
    expect(choiceRows(summary)).toEqual([
      {
        family: 'attention_decode',
        shape: '1 token, 14 heads / 2 kv heads, head_dim 64, cache > 1024',
        choice: 'serial',
        candidates: 'workgroup 0.400 ms, serial 0.060 ms',
        source: 'tuned',
      },
      {
        family: 'attention_prefill',
        shape: 'tokens 129–512, 14 heads / 2 kv heads, head_dim 64',
        choice: 'splitd',
        candidates: 'tiled 2.0 ms, splitd 1.0 ms',
        source: 'tuned',
      },
      {
        family: 'gemm',
        shape: 'M 33–128, N 896, K 896, f16 weights',
        choice: 'tiled',
        candidates: 'register 3.1 ms, tiled 1.2 ms',
        source: 'tuned',
      },
      {
        family: 'gemv',
        shape: 'M = 1, N 896, K 4864, f32 weights',
        choice: 'splitk',
        candidates: '',
        source: 'forced',
      },
      {
        family: 'gemv',
        shape: 'M 2–8, N 896, K 4864, f32 weights',
        choice: 'register',
        candidates: 'register 0.250 ms, splitk 0.500 ms',
        source: 'cached',
      },
      {
        family: 'mlp_decode',
        shape: 'M 2–8, hidden 896, intermediate 4864, o_proj K 896, f16 weights',
        choice: 'split',
        candidates: 'split 1.4 ms, fused 2.1 ms, block 9.5 ms',
        source: 'tuned',
      },
    ]);
    expect(describeChoices(summary)[2]).toBe(
      'gemm  M 33–128, N 896, K 896, f16 weights: tiled (tuned: register 3.1 ms, tiled 1.2 ms)',
    );
  });
});
