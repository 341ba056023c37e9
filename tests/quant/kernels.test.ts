import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/kernels/cpu';
import { CpuTrainOps } from '../../src/kernels/train-cpu';
import { GpuBackend } from '../../src/kernels/gpu';
import { GpuTrainOps } from '../../src/kernels/train-gpu';
import { Gpu } from '../../src/gpu/device';
import { dequantize, quantize, type QuantFormat } from '../../src/quant/quantize';
import { cpuEmbeddingQ, cpuMatmulQ, cpuMatmulQBackwardInput } from '../../src/kernels/quant-cpu';
import { testGpu } from '../helpers/gpu';
import { maxRelErr, randn, rng } from '../helpers/rng';

let gpu: Gpu;
let g: GpuBackend;
const cpu = new CpuBackend();

beforeAll(async () => {
  gpu = await testGpu();
  g = await GpuBackend.create(gpu, 'f32');
});

function ids(n: number, max: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * max));
}

/** The reference: the f32 matmul of the CPU twin on the dequantized weight. */
function dequantRef(
  x: Float32Array,
  wq: ReturnType<typeof quantize>,
  bias: Float32Array | null,
  m: number,
): Float32Array {
  const ref = new Float32Array(m * wq.rows);
  cpu.matmul(x, cpu.weight('w', dequantize(wq), wq.rows, wq.cols), bias ? cpu.vector('b', bias) : null, m, ref);
  return ref;
}

describe('quantized-weight kernels: WebGPU vs CPU twin vs dequantized f32', () => {
  it('reports the adapter', () => console.log(`adapter: ${gpu.describe()}`));

  // M <= 8 takes the GEMV path (4-row tiles then single rows), larger M the tiled GEMM; K covers
  // whole groups, a short last group, and K % 4 != 0 (scalar X loads).
  const shapes: [number, number, number][] = [
    [1, 37, 64],
    [1, 5, 37],
    [5, 50, 40],
    [8, 33, 96],
    [9, 33, 37],
    [33, 65, 64],
    [70, 31, 44],
  ];
  for (const format of ['q8', 'q4'] as QuantFormat[]) {
    for (const [m, n, k] of shapes) {
      it(`${format} matmul M=${m} N=${n} K=${k}`, async () => {
        const x = randn(m * k, m * 1000 + n * 10 + k);
        const wq = quantize(randn(n * k, n * 7 + k, 0.5), n, k, format);
        const bias = m % 2 ? randn(n, 99) : null;
        const ref = dequantRef(x, wq, bias, m);
        const twin = new Float32Array(m * n);
        cpuMatmulQ(x, wq, bias, m, twin);
        expect(maxRelErr(twin, ref)).toBeLessThan(1e-5);
        const cpuOut = new Float32Array(m * n);
        cpu.matmul(x, cpu.quantizedWeight('w', wq), bias ? cpu.vector('b', bias) : null, m, cpuOut);
        expect(Array.from(cpuOut)).toEqual(Array.from(twin));
        const out = g.tensor(m * n);
        g.matmul(g.fromHost(x), g.quantizedWeight('w', wq), bias ? g.vector('b', bias) : null, m, out);
        expect(maxRelErr(await g.toHost(out, m * n), ref)).toBeLessThan(1e-5);
      });
    }

    it(`${format} embedding matches the dequantized table exactly`, async () => {
      const [vocab, dim, tokens] = [29, 45, 11];
      const wq = quantize(randn(vocab * dim, 5), vocab, dim, format);
      const table = dequantize(wq);
      const tok = ids(tokens, vocab, 6);
      const ref = new Float32Array(tokens * dim);
      cpu.embedding(tok, cpu.weight('e', table, vocab, dim), tokens, ref);
      const twin = new Float32Array(tokens * dim);
      cpuEmbeddingQ(tok, wq, tokens, twin);
      expect(Array.from(twin)).toEqual(Array.from(ref));
      const out = g.tensor(tokens * dim);
      g.embedding(g.indices(tok), g.quantizedWeight('e', wq), tokens, out);
      expect(Array.from(await g.toHost(out, tokens * dim))).toEqual(Array.from(ref));
    });

    for (const [m, n, k] of [
      [5, 13, 37],
      [33, 40, 64],
      [9, 70, 44],
    ] as [number, number, number][]) {
      it(`${format} matmul backward input M=${m} N=${n} K=${k}`, async () => {
        const dy = randn(m * n, m + n + k);
        const wq = quantize(randn(n * k, n * 3 + k), n, k, format);
        const ref = new Float32Array(m * k);
        new CpuTrainOps().matmulBackwardInput(dy, cpu.weight('w', dequantize(wq), n, k), m, n, k, ref, false);
        const twin = new Float32Array(m * k);
        cpuMatmulQBackwardInput(dy, wq, m, twin, false);
        expect(maxRelErr(twin, ref)).toBeLessThan(1e-6);
        const ops = new GpuTrainOps(g);
        const dx = g.fromHost(new Float32Array(m * k).fill(1));
        ops.matmulBackwardInput(g.fromHost(dy), g.quantizedWeight('w', wq), m, n, k, dx, true);
        expect(
          maxRelErr(
            await g.toHost(dx, m * k),
            ref.map((v) => v + 1),
          ),
        ).toBeLessThan(1e-5);
      });
    }
  }

  it('q4 matmul, backward and embedding over a weight sharded by rows', async () => {
    const small = await Gpu.create({ weightShardBytes: 256 });
    const b = await GpuBackend.create(small, 'f32');
    const [m, n, k] = [12, 70, 40]; // 2 groups x 4 words x 4 bytes = 32 bytes a row -> 8 rows a shard
    const wq = quantize(randn(n * k, 2), n, k, 'q4');
    const bias = randn(n, 3);
    const x = randn(m * k, 1);
    const wg = b.quantizedWeight('w', wq);
    expect(wg.shards.length).toBe(9);
    const out = b.tensor(m * n);
    b.matmul(b.fromHost(x), wg, b.vector('b', bias), m, out);
    expect(maxRelErr(await b.toHost(out, m * n), dequantRef(x, wq, bias, m))).toBeLessThan(1e-5);
    const gemv = b.tensor(2 * n);
    b.matmul(b.fromHost(x.subarray(0, 2 * k)), wg, null, 2, gemv);
    expect(maxRelErr(await b.toHost(gemv, 2 * n), dequantRef(x.subarray(0, 2 * k), wq, null, 2))).toBeLessThan(1e-5);
    const tok = ids(9, n, 4);
    const eref = new Float32Array(9 * k);
    cpuEmbeddingQ(tok, wq, 9, eref);
    const eout = b.tensor(9 * k);
    b.embedding(b.indices(tok), wg, 9, eout);
    expect(Array.from(await b.toHost(eout, 9 * k))).toEqual(Array.from(eref));
    const dy = randn(m * n, 8);
    const dref = new Float32Array(m * k);
    cpuMatmulQBackwardInput(dy, wq, m, dref, false);
    const dx = b.tensor(m * k);
    new GpuTrainOps(b).matmulBackwardInput(b.fromHost(dy), wg, m, n, k, dx, false);
    expect(maxRelErr(await b.toHost(dx, m * k), dref)).toBeLessThan(1e-5);
    small.destroy();
  });
  it("views of a weight's rows (weightRows): matmul and backward equal the CPU twin, f32 and q4, GEMM and GEMV, same offset and another size", async () => {
    const t = new GpuTrainOps(g);
    const ct = new CpuTrainOps();
    const [n, k] = [300, 40]; // q4: 32 bytes a row; 128 rows are a 4096-byte offset, their scales 512 bytes
    const wf = randn(n * k, 11);
    for (const format of ['f32', 'q4'] as const) {
      const wq = format === 'q4' ? quantize(wf, n, k, 'q4') : null;
      const gw = wq ? g.quantizedWeight('w', wq) : g.weight('w', wf, n, k);
      const cw = wq ? cpu.quantizedWeight('w', wq) : cpu.weight('w', wf, n, k);
      // Views at the same start with two sizes, a whole shard's first rows, and the partial last rows.
      for (const [r0, rows] of [
        [128, 64],
        [128, 172],
        [0, 128],
        [256, 44],
      ]) {
        for (const m of [3, 13]) {
          const x = randn(m * k, r0 + rows + m);
          const want = new Float32Array(m * rows);
          cpu.matmul(x, cpu.weightRows(cw, r0, rows), null, m, want);
          const got = g.tensor(m * rows);
          g.matmul(g.fromHost(x), g.weightRows(gw, r0, rows), null, m, got);
          expect(maxRelErr(await g.toHost(got, m * rows), want), `${format} [${r0}, +${rows}) m=${m}`).toBeLessThan(
            1e-5,
          );
          const dy = randn(m * rows, 3 * m + rows);
          const dwant = new Float32Array(m * k);
          ct.matmulBackwardInput(dy, cpu.weightRows(cw, r0, rows), m, rows, k, dwant, false);
          const dx = g.tensor(m * k);
          t.matmulBackwardInput(g.fromHost(dy), g.weightRows(gw, r0, rows), m, rows, k, dx, false);
          expect(maxRelErr(await g.toHost(dx, m * k), dwant)).toBeLessThan(1e-5);
        }
      }
      // The view's rows are the weight's rows: its full matmul's columns r0 .. r0 + rows.
      const x = randn(5 * k, 1);
      const full = new Float32Array(5 * n);
      cpu.matmul(x, cw, null, 5, full);
      const part = new Float32Array(5 * 44);
      cpu.matmul(x, cpu.weightRows(cw, 256, 44), null, 5, part);
      for (let i = 0; i < 5; i++)
        expect(Array.from(part.subarray(i * 44, (i + 1) * 44))).toEqual(
          Array.from(full.subarray(i * n + 256, i * n + 300)),
        );
      expect(() => g.weightRows(gw, 1, 10)).toThrow(/not a multiple of 128 rows/);
      expect(() => g.weightRows(gw, 256, 45)).toThrow(/not inside a weight of 300 rows/);
    }
  });
});
