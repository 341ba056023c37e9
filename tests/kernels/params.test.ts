import { beforeAll, describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/kernels/cpu';
import { GpuBackend, RMSNORM, SWIGLU } from '../../src/kernels/gpu';
import { declareKernel, groups1d, packUniform, parseWgslInterface } from '../../src/kernels/kernel';
import { loadShaders, shaderSource } from '../../src/kernels/shaders';
import type { Gpu } from '../../src/gpu/device';
import { testGpu } from '../helpers/gpu';
import { maxRelErr, randn } from '../helpers/rng';

let gpu: Gpu;
let g32: GpuBackend;
const cpu = new CpuBackend();

beforeAll(async () => {
  gpu = await testGpu();
  g32 = await GpuBackend.create(gpu, 'f32');
});

describe('kernel declarations: named parameters checked against the WGSL', () => {
  it('reads the uniform struct and the bindings (with their element sizes) from the WGSL', async () => {
    await loadShaders();
    const iface = parseWgslInterface(shaderSource('matmul', { VEC4: true, WG_X: 8, WG_Y: 8 }, 'f16'));
    expect(iface.params).toEqual([
      { name: 'M', type: 'u32' },
      { name: 'N', type: 'u32' },
      { name: 'K', type: 'u32' },
      { name: 'nOffset', type: 'u32' },
      { name: 'ldy', type: 'u32' },
      { name: 'hasBias', type: 'u32' },
    ]);
    expect([...iface.bindings].map(([b, v]) => [b, v.name, v.scalarBytes])).toEqual([
      [0, 'p', 4],
      [1, 'x', 4],
      [2, 'w', 2],
      [3, 'bias', 4],
      [4, 'y', 4],
    ]);
  });

  it('packs the uniform in the struct order, u32 and f32 by their declared types', () => {
    const bytes = packUniform(RMSNORM, { eps: 0.5, dim: 7, rows: 3 });
    const view = new DataView(bytes);
    expect(bytes.byteLength).toBe(16);
    expect([view.getUint32(0, true), view.getUint32(4, true), view.getFloat32(8, true)]).toEqual([3, 7, 0.5]);
  });

  it('a declaration whose params are in another order than the WGSL struct fails at pipeline creation, naming the kernel', () => {
    const swapped = declareKernel({
      ...RMSNORM,
      name: 'rmsnorm-swapped',
      params: { dim: 'u32', rows: 'u32', eps: 'f32' },
    });
    const x = g32.tensor(8);
    expect(() => g32.run(swapped, { rows: 1, dim: 8, eps: 1e-6 }, { x, weight: x, out: x }, 1)).toThrow(
      new RegExp(
        String.raw`kernel rmsnorm-swapped: its params are declared as \{ dim: u32, rows: u32, eps: f32 \} ` +
          String.raw`but shaders/rmsnorm\.wgsl has struct Params \{ rows: u32, dim: u32, eps: f32 \}`,
      ),
    );
  });

  it('a declaration with a wrong type or a missing field fails too', () => {
    const x = g32.tensor(8);
    const asU32 = declareKernel({
      ...RMSNORM,
      name: 'rmsnorm-eps-u32',
      params: { rows: 'u32', dim: 'u32', eps: 'u32' },
    } as never) as typeof RMSNORM;
    expect(() => g32.run(asU32, { rows: 1, dim: 8, eps: 0 }, { x, weight: x, out: x }, 1)).toThrow(
      /rmsnorm-eps-u32: its params are declared as \{ rows: u32, dim: u32, eps: u32 \}/,
    );
    const short = declareKernel({
      ...RMSNORM,
      name: 'rmsnorm-short',
      params: { rows: 'u32', dim: 'u32' },
    } as never) as typeof RMSNORM;
    expect(() => g32.run(short, { rows: 1, dim: 8 } as never, { x, weight: x, out: x }, 1)).toThrow(
      /rmsnorm-short: its params are declared as \{ rows: u32, dim: u32 \}/,
    );
  });

  it('a declaration whose bindings differ from the WGSL fails, naming both lists', () => {
    const x = g32.tensor(8);
    const renamed = declareKernel({
      ...SWIGLU,
      name: 'swiglu-renamed',
      bindings: { up: (p) => p.n, gate: (p) => p.n, out: (p) => p.n },
    });
    expect(() => g32.run(renamed, { n: 8 }, { up: x, gate: x, out: x }, 1)).toThrow(
      /swiglu-renamed: its bindings are declared as \[1:up, 2:gate, 3:out\] but shaders\/swiglu\.wgsl binds \[1:gate, 2:up, 3:out\]/,
    );
  });

  it('a missing, unknown or ill-typed parameter at dispatch is an error naming the kernel and the parameter', () => {
    const x = g32.tensor(8);
    const buffers = { x, weight: x, out: x };
    expect(() => g32.run(RMSNORM, { rows: 1, dim: 8 } as never, buffers, 1)).toThrow(
      "kernel rmsnorm: parameter 'eps' is missing",
    );
    expect(() => g32.run(RMSNORM, { rows: 1, dim: 8, eps: 1e-6, epsilon: 1 } as never, buffers, 1)).toThrow(
      "kernel rmsnorm: unknown parameter 'epsilon'",
    );
    expect(() => g32.run(RMSNORM, { rows: 1.5, dim: 8, eps: 1e-6 }, buffers, 1)).toThrow(
      "kernel rmsnorm: parameter 'rows' (u32) is 1.5",
    );
    expect(() => g32.run(RMSNORM, { rows: -1, dim: 8, eps: 1e-6 }, buffers, 1)).toThrow(
      "kernel rmsnorm: parameter 'rows' (u32) is -1",
    );
    expect(() => g32.run(RMSNORM, { rows: 1, dim: 8, eps: NaN }, buffers, 1)).toThrow(
      "kernel rmsnorm: parameter 'eps' is NaN",
    );
  });

  it('an undersized buffer is an error naming the kernel, the binding and both sizes', () => {
    const rows = 3;
    const dim = 10;
    const x = g32.tensor(rows * dim);
    const weight = g32.vector('w', new Float32Array(dim));
    const out = g32.tensor(rows * dim - 1);
    expect(() => g32.run(RMSNORM, { rows, dim, eps: 1e-6 }, { x, weight: weight.shards[0].buffer, out }, rows)).toThrow(
      /kernel rmsnorm: binding 'out' \(3\) needs 120 bytes for \{"rows":3,"dim":10,"eps":0\.000001\} but its buffer holds 116 bytes/,
    );
    // Through the typed wrappers too: a wrong length no longer reads or writes out of bounds.
    expect(() => g32.swiglu(x, x, rows * dim + 1, out)).toThrow(
      /kernel swiglu: binding 'gate' \(1\) needs 124 bytes .* holds 120 bytes/,
    );
    g32.flush();
  });

  it('a missing or unknown buffer is an error naming the binding', () => {
    const x = g32.tensor(8);
    expect(() => g32.run(SWIGLU, { n: 8 }, { gate: x, up: x } as never, 1)).toThrow(
      "kernel swiglu: no buffer given for binding 'out'",
    );
    expect(() => g32.run(SWIGLU, { n: 8 }, { gate: x, up: x, out: x, extra: x } as never, 1)).toThrow(
      "kernel swiglu: unknown binding 'extra'",
    );
  });

  it('the workgroup size is one definition: the same WGSL runs at 32, 64 and 128 invocations with the same results', async () => {
    const [rows, dim] = [5, 300];
    const x = randn(rows * dim, 1, 2);
    const w = randn(dim, 2);
    const ref = new Float32Array(rows * dim);
    cpu.rmsnorm(x, cpu.vector('w', w), rows, dim, 1e-6, ref);
    const gate = randn(1000, 3);
    const up = randn(1000, 4);
    const sref = new Float32Array(1000);
    cpu.swiglu(gate, up, 1000, sref);
    for (const size of [32, 64, 128]) {
      const norm = declareKernel({ ...RMSNORM, name: `rmsnorm-wg${size}`, workgroupSize: size });
      const out = g32.tensor(rows * dim);
      g32.run(
        norm,
        { rows, dim, eps: 1e-6 },
        { x: g32.fromHost(x), weight: g32.vector('w', w).shards[0].buffer, out },
        rows,
      );
      expect(maxRelErr(await g32.toHost(out, rows * dim), ref), `rmsnorm at ${size}`).toBeLessThan(1e-5);
      const swiglu = declareKernel({ ...SWIGLU, name: `swiglu-wg${size}`, workgroupSize: size });
      const sout = g32.tensor(1000);
      g32.run(
        swiglu,
        { n: 1000 },
        { gate: g32.fromHost(gate), up: g32.fromHost(up), out: sout },
        groups1d(swiglu, 1000),
      );
      expect(maxRelErr(await g32.toHost(sout, 1000), sref), `swiglu at ${size}`).toBeLessThan(1e-5);
    }
  });
});

describe('uniform cache', () => {
  it('clearing it destroys the buffers and lowers allocatedBytes, after submitting work that still uses them', async () => {
    const n = 100;
    const a = randn(n, 5);
    const b = randn(n, 6);
    const ref = new Float32Array(n);
    cpu.swiglu(a, b, n, ref);
    const ga = g32.fromHost(a);
    const gb = g32.fromHost(b);
    const out = g32.tensor(n);
    const before = gpu.memoryStats().allocatedBytes;
    const cachedBefore = gpu.cachedUniforms;
    // A parameter value no other test uses, so this dispatch allocates a new uniform buffer.
    g32.run(SWIGLU, { n }, { gate: ga, up: gb, out }, groups1d(SWIGLU, n));
    g32.add(out, gb, n, 0.123456);
    g32.add(out, gb, n, -0.123456);
    expect(gpu.cachedUniforms).toBeGreaterThan(cachedBefore);
    expect(gpu.memoryStats().allocatedBytes).toBeGreaterThan(before);
    const allocated = gpu.memoryStats().allocatedBytes;
    const cached = gpu.cachedUniforms;
    // The dispatches above are recorded, not submitted: clearing must submit them first.
    gpu.clearUniforms();
    expect(gpu.cachedUniforms).toBe(0);
    // Every uniform buffer is at least 16 bytes.
    expect(gpu.memoryStats().allocatedBytes).toBeLessThanOrEqual(allocated - 16 * cached);
    expect(maxRelErr(await g32.toHost(out, n), ref)).toBeLessThan(1e-5);
  });
});
