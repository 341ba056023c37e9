import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/kernels/cpu';
import { GpuBackend } from '../../src/kernels/gpu';
import { Gpu } from '../../src/gpu/device';
import { testGpu } from '../helpers/gpu';
import { maxRelErr, randn, rng } from '../helpers/rng';
import { f32ToF16Bits } from '../../src/formats/dtype';
import { quantize } from '../../src/quant/quantize';
import {
  candidatesOn,
  KERNEL_FAMILIES,
  type AttentionDecodeVariant,
  type AttentionPrefillVariant,
} from '../../src/kernels/autotune';

let gpu: Gpu;
let g32: GpuBackend;
let g16: GpuBackend | null = null;
const cpu = new CpuBackend();

beforeAll(async () => {
  gpu = await testGpu();
  g32 = await GpuBackend.create(gpu, 'f32');
  if (gpu.features.f16) g16 = await GpuBackend.create(gpu, 'f16');
});

function ids(n: number, max: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: n }, () => Math.floor(r() * max));
}

describe('kernels: WebGPU vs CPU twin', () => {
  it('reports the adapter', () => {
    console.log(`adapter: ${gpu.describe()}`);
    expect(gpu.info.maxStorageBufferBindingSize).toBeGreaterThan(0);
  });

  // Shapes straddle the 32x32 GEMM tile and the vec4 path (K % 4 == 0 and != 0).
  const matmulShapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 37, 20],
    [3, 50, 19],
    [5, 64, 64],
    [9, 33, 12],
    [33, 65, 7],
    [70, 31, 44],
    [128, 96, 64],
  ];
  for (const [m, n, k] of matmulShapes) {
    for (const bias of [false, true]) {
      it(`matmul M=${m} N=${n} K=${k} bias=${bias}`, async () => {
        const x = randn(m * k, m * 1000 + n * 10 + k);
        const w = randn(n * k, n * 7 + k, 0.5);
        const b = bias ? randn(n, 99) : null;
        const ref = new Float32Array(m * n);
        cpu.matmul(x, cpu.weight('w', w, n, k), b ? cpu.vector('b', b) : null, m, ref);
        const out = g32.tensor(m * n);
        g32.matmul(g32.fromHost(x), g32.weight('w', w, n, k), b ? g32.vector('b', b) : null, m, out);
        expect(maxRelErr(await g32.toHost(out, m * n), ref)).toBeLessThan(1e-5);
      });
    }
  }

  // Vocabularies around the workgroup (128) and odd; ties (the max repeated) must go to the lower id.
  for (const [rows, vocab] of [
    [1, 1],
    [3, 5],
    [2, 127],
    [4, 129],
    [8, 1000],
    [2, 4099],
  ] as const) {
    it(`argmax rows=${rows} vocab=${vocab} (ties to the lower id)`, async () => {
      const logits = randn(rows * vocab, rows * 31 + vocab);
      const r = rng(vocab);
      for (let row = 0; row < rows; row++) {
        // Copy the row's largest value to a few other places, earlier and later.
        let best = row * vocab;
        for (let v = 0; v < vocab; v++) if (logits[row * vocab + v] > logits[best]) best = row * vocab + v;
        for (let t = 0; t < 3; t++) logits[row * vocab + Math.floor(r() * vocab)] = logits[best];
      }
      const offset = 5;
      const next = new Uint32Array(rows);
      const tokens = new Uint32Array(offset + rows);
      cpu.argmaxRows(logits, rows, vocab, next, tokens, offset);
      const gNext = g32.indices(new Uint32Array(rows));
      const gTokens = g32.indices(new Uint32Array(offset + rows).fill(7));
      g32.argmaxRows(g32.fromHost(logits), rows, vocab, gNext, gTokens, offset);
      expect(Array.from(await g32.indicesToHost(gNext, rows))).toEqual(Array.from(next));
      const all = await g32.indicesToHost(gTokens, offset + rows);
      expect(Array.from(all.subarray(offset))).toEqual(Array.from(next));
      expect(Array.from(all.subarray(0, offset))).toEqual([7, 7, 7, 7, 7]); // untouched before the offset
    });
  }

  // The next step's embedding from the argmax: one dispatch (f32, f16 tables; dims below and
  // above the workgroup), and the separate embedding where the table is sharded or quantized.
  for (const [rows, vocab, dim, table] of [
    [1, 7, 5, 'f32'],
    [3, 300, 130, 'f32'],
    [2, 41, 24, 'f16'],
    [2, 70, 12, 'sharded'],
    [2, 64, 32, 'q8'],
  ] as const) {
    it(`argmax rows=${rows} vocab=${vocab} with the winners' embedding (dim ${dim}, ${table} table)`, async ({
      skip,
    }) => {
      if (table === 'f16' && !g16) skip();
      const logits = randn(rows * vocab, rows + vocab);
      const values = randn(vocab * dim, dim, 0.5);
      const next = new Uint32Array(rows);
      const ref = new Float32Array(rows * dim);
      const small =
        table === 'sharded' ? await GpuBackend.create(await Gpu.create({ weightShardBytes: 1024 }), 'f32') : null;
      const b = table === 'f16' ? g16! : (small ?? g32);
      const bits = table === 'f16' ? f32ToF16Bits(values) : null;
      const cpuTable = bits ? cpu.weight('e', bits, vocab, dim) : cpu.weight('e', values, vocab, dim);
      const gpuTable = bits ? b.weight('e', bits, vocab, dim) : b.weight('e', values, vocab, dim);
      const packed = table === 'q8' ? quantize(values, vocab, dim, 'q8') : null;
      const quantTable = packed ? { cpu: cpu.quantizedWeight('e', packed), gpu: b.quantizedWeight('e', packed) } : null;
      cpu.argmaxRows(logits, rows, vocab, next, new Uint32Array(rows), 0, {
        table: quantTable?.cpu ?? cpuTable,
        out: ref,
      });
      if (table === 'sharded') expect(gpuTable.shards.length).toBeGreaterThan(1);
      const gNext = b.indices(new Uint32Array(rows));
      const out = b.tensor(rows * dim);
      const embed = { table: quantTable?.gpu ?? gpuTable, out };
      b.argmaxRows(b.fromHost(logits), rows, vocab, gNext, b.indices(new Uint32Array(rows)), 0, embed);
      expect(Array.from(await b.indicesToHost(gNext, rows))).toEqual(Array.from(next));
      const got = await b.toHost(out, rows * dim);
      expect(Array.from(got)).toEqual(Array.from(ref));
      // The twin is argmax then embedding: the rows are the winners' rows of the table.
      for (let r = 0; r < rows; r++)
        if (!bits && !quantTable)
          expect(Array.from(got.subarray(r * dim, (r + 1) * dim))).toEqual(
            Array.from(values.subarray(next[r] * dim, (next[r] + 1) * dim)),
          );
    });
  }

  it('matmul with f16 weights matches the CPU twin on the same f16 values', async ({ skip }) => {
    if (!g16) skip();
    const [m, n, k] = [6, 45, 36];
    const x = randn(m * k, 5);
    const bits = f32ToF16Bits(randn(n * k, 6, 0.3));
    const ref = new Float32Array(m * n);
    cpu.matmul(x, cpu.weight('w', bits, n, k), null, m, ref);
    const out = g16!.tensor(m * n);
    g16!.matmul(g16!.fromHost(x), g16!.weight('w', bits, n, k), null, m, out);
    expect(maxRelErr(await g16!.toHost(out, m * n), ref)).toBeLessThan(1e-5);
  });

  it('matmul and embedding over a weight sharded by rows (small maxStorageBufferBindingSize)', async () => {
    const small = await Gpu.create({ weightShardBytes: 1024 });
    const b = await GpuBackend.create(small, 'f32');
    const [m, n, k] = [40, 70, 12]; // 12 floats a row -> 21 rows a shard -> 4 shards
    const x = randn(m * k, 1);
    const w = randn(n * k, 2);
    const bias = randn(n, 3);
    const wg = b.weight('w', w, n, k);
    expect(wg.shards.length).toBe(4);
    const ref = new Float32Array(m * n);
    cpu.matmul(x, cpu.weight('w', w, n, k), cpu.vector('b', bias), m, ref);
    const out = b.tensor(m * n);
    b.matmul(b.fromHost(x), wg, b.vector('b', bias), m, out);
    expect(maxRelErr(await b.toHost(out, m * n), ref)).toBeLessThan(1e-5);
    const tok = ids(9, n, 4);
    const eref = new Float32Array(9 * k);
    cpu.embedding(tok, cpu.weight('w', w, n, k), 9, eref);
    const eout = b.tensor(9 * k);
    b.embedding(b.indices(tok), wg, 9, eout);
    expect(Array.from(await b.toHost(eout, 9 * k))).toEqual(Array.from(eref));
    small.destroy();
  });

  for (const [tokens, vocab, dim] of [
    [1, 10, 8],
    [7, 50, 13],
  ]) {
    it(`embedding tokens=${tokens} vocab=${vocab} dim=${dim}`, async () => {
      const table = randn(vocab * dim, 11);
      const tok = ids(tokens, vocab, 12);
      const ref = new Float32Array(tokens * dim);
      cpu.embedding(tok, cpu.weight('e', table, vocab, dim), tokens, ref);
      const out = g32.tensor(tokens * dim);
      g32.embedding(g32.indices(tok), g32.weight('e', table, vocab, dim), tokens, out);
      expect(Array.from(await g32.toHost(out, tokens * dim))).toEqual(Array.from(ref));
    });
  }

  for (const [rows, dim] of [
    [1, 8],
    [5, 63],
    [17, 200],
    [3, 1000],
  ]) {
    it(`rmsnorm rows=${rows} dim=${dim}`, async () => {
      const x = randn(rows * dim, rows + dim, 3);
      const w = randn(dim, 7);
      const ref = new Float32Array(rows * dim);
      cpu.rmsnorm(x, cpu.vector('w', w), rows, dim, 1e-6, ref);
      const out = g32.tensor(rows * dim);
      g32.rmsnorm(g32.fromHost(x), g32.vector('w', w), rows, dim, 1e-6, out);
      expect(maxRelErr(await g32.toHost(out, rows * dim), ref)).toBeLessThan(1e-5);
    });
  }

  for (const [tokens, heads, headDim] of [
    [1, 1, 2],
    [5, 3, 10],
    [9, 4, 24],
  ]) {
    it(`rope tokens=${tokens} heads=${heads} headDim=${headDim}`, async () => {
      const maxPos = 40;
      const half = headDim / 2;
      const cos = randn(maxPos * half, 1);
      const sin = randn(maxPos * half, 2);
      const pos = ids(tokens, maxPos, 3);
      const x = randn(tokens * heads * headDim, 4);
      const ref = x.slice();
      cpu.rope(ref, pos, cpu.vector('c', cos), cpu.vector('s', sin), tokens, heads, headDim, maxPos);
      const xt = g32.fromHost(x);
      g32.rope(xt, g32.indices(pos), g32.vector('c', cos), g32.vector('s', sin), tokens, heads, headDim, maxPos);
      expect(maxRelErr(await g32.toHost(xt, x.length), ref)).toBeLessThan(1e-5);
    });
  }

  // (tokens, heads, kvHeads, headDim, maxSeq, slots): prefill with a long history (> one 64-key
  // chunk), single-token decode, and a batch of sequences in different slots at different lengths.
  const attnCases: [string, number, number, number, number, number, number][] = [
    ['prefill', 7, 4, 2, 24, 100, 1],
    ['long prefill', 70, 2, 1, 16, 150, 1],
    ['decode', 1, 6, 3, 10, 90, 1],
    ['batched decode', 4, 4, 4, 8, 130, 4],
    ['mha head_dim 256', 2, 2, 2, 256, 20, 1],
    // From PREFILL_ATTENTION_MIN_TOKENS tokens on, the tiled kernel: tiles that mix slots at
    // scattered positions, a last tile that is not full, head dims that are not multiples of 4.
    ['tiled, 3 slots interleaved', 90, 4, 2, 24, 60, 3],
    ['tiled, odd head_dim', 33, 3, 3, 10, 50, 2],
    ['tiled head_dim 256', 20, 2, 1, 256, 40, 1],
  ];
  for (const [label, tokens, heads, kvHeads, headDim, maxSeq, slots] of attnCases) {
    it(`kv_write + attention: ${label}`, async () => {
      const kvDim = kvHeads * headDim;
      const r = rng(tokens * 31 + headDim);
      const slotIds = Uint32Array.from({ length: tokens }, (_, t) => (slots === 1 ? 0 : t % slots));
      // Scattered positions, distinct within a slot: two tokens writing one cache cell would race
      // on the GPU (the model never does that), and the CPU twin's last-write-wins would not match.
      const freeCells = Array.from({ length: slots }, () => Array.from({ length: maxSeq }, (_, p) => p));
      const positions = Uint32Array.from({ length: tokens }, (_, t) => {
        if (slots === 1) return maxSeq - tokens - 5 + t;
        const free = freeCells[t % slots];
        return free.splice(Math.floor(r() * free.length), 1)[0];
      });
      const cacheK = randn(slots * maxSeq * kvDim, 21);
      const cacheV = randn(slots * maxSeq * kvDim, 22);
      const k = randn(tokens * kvDim, 23);
      const v = randn(tokens * kvDim, 24);
      const q = randn(tokens * heads * headDim, 25);
      const shape = { slots, maxSeq, kvDim };
      const rk = cacheK.slice();
      const rv = cacheV.slice();
      cpu.kvWrite(k, v, rk, rv, slotIds, positions, tokens, shape);
      const ref = new Float32Array(tokens * heads * headDim);
      cpu.attention(q, rk, rv, slotIds, positions, tokens, heads, kvHeads, headDim, maxSeq, ref);
      const gk = g32.fromHost(cacheK);
      const gv = g32.fromHost(cacheV);
      const gs = g32.indices(slotIds);
      const gp = g32.indices(positions);
      g32.kvWrite(g32.fromHost(k), g32.fromHost(v), gk, gv, gs, gp, tokens, shape);
      const out = g32.tensor(ref.length);
      g32.attention(g32.fromHost(q), gk, gv, gs, gp, tokens, heads, kvHeads, headDim, maxSeq, out);
      expect(maxRelErr(await g32.toHost(gk, rk.length), rk)).toBe(0);
      expect(maxRelErr(await g32.toHost(out, ref.length), ref)).toBeLessThan(1e-5);
      // Every candidate of both families on any token count, head dims not multiples of 4
      // included: decode's invocation per query walking its keys ('serial') and workgroup per
      // query; prefill's 4 lanes per query splitting head_dim and (with subgroups) rows broadcast
      // from 4 lanes (its head dims not multiples of 4 run the tiled kernel).
      const candidates = [
        ...KERNEL_FAMILIES.attention_decode.map((v) => ['decode', v] as const),
        ...candidatesOn(gpu, 'attention_prefill').map((v) => ['tiled', v as AttentionPrefillVariant] as const),
      ];
      for (const [family, variant] of candidates) {
        g32.attentionKernel = family;
        if (family === 'decode') g32.attentionDecodeKernel = variant as AttentionDecodeVariant;
        else g32.attentionPrefillKernel = variant as AttentionPrefillVariant;
        try {
          const outVariant = g32.tensor(ref.length);
          g32.attention(g32.fromHost(q), gk, gv, gs, gp, tokens, heads, kvHeads, headDim, maxSeq, outVariant);
          expect(maxRelErr(await g32.toHost(outVariant, ref.length), ref), variant).toBeLessThan(1e-5);
        } finally {
          g32.attentionKernel = 'auto';
          g32.attentionDecodeKernel = 'auto';
          g32.attentionPrefillKernel = 'auto';
        }
      }
    });
  }

  for (const n of [1, 63, 1000]) {
    it(`swiglu and residual add n=${n}`, async () => {
      const a = randn(n, 1, 3);
      const b = randn(n, 2);
      const ref = new Float32Array(n);
      cpu.swiglu(a, b, n, ref);
      const out = g32.tensor(n);
      g32.swiglu(g32.fromHost(a), g32.fromHost(b), n, out);
      expect(maxRelErr(await g32.toHost(out, n), ref)).toBeLessThan(1e-5);
      const x = a.slice();
      cpu.add(x, b, n, 0.75);
      const gx = g32.fromHost(a);
      g32.add(gx, g32.fromHost(b), n, 0.75);
      expect(maxRelErr(await g32.toHost(gx, n), x)).toBeLessThan(1e-6);
    });
  }
});
