/**
 * Kernel declarations: what a WGSL compute shader takes, said once, by name, and checked.
 *
 * How to declare a kernel (see gpu.ts and train-gpu.ts for every existing one):
 *
 * ```ts
 * export const RMSNORM = declareKernel({
 *   name: 'rmsnorm',              // used in error messages and pipeline keys
 *   shader: 'rmsnorm',            // shaders/rmsnorm.wgsl (add new files to SHADER_NAMES)
 *   workgroupSize: 64,            // or [8, 8]; injected into the WGSL as WG (or WG_X, WG_Y)
 *   params: { rows: 'u32', dim: 'u32', eps: 'f32' },  // the fields of `struct Params`, in order
 *   bindings: {                   // storage bindings 1.. in order, by their WGSL names, each with
 *     x: (p) => p.rows * p.dim,   //   the number of elements it must hold for these params
 *     weight: (p) => p.dim,
 *     out: (p) => p.rows * p.dim,
 *   },
 * });
 * backend.run(RMSNORM, { rows, dim, eps }, { x, weight: w.shards[0].buffer, out }, rows);
 * ```
 *
 * The WGSL side: `struct Params { rows: u32, dim: u32, eps: f32 }` at `@binding(0)` as
 * `var<uniform> p: Params`, then one `var<storage, ...> name: array<...>` per binding, numbered
 * from 1 in the declared order; `@workgroup_size(WG)` (`WG_X, WG_Y` for a 2-D size), and WG
 * wherever the shader depends on the workgroup size (strides, workgroup arrays; tree reductions
 * need a power of two). Fixed `defines` select one `//#if` variant of a shared file (a variant
 * whose bindings differ is its own declaration); per-dispatch defines (VEC4, head dims) go to run().
 * Grids: `groups1d(K, n)` workgroups cover n invocations of a 1-D kernel; `size2d(K.workgroupSize)`
 * gives [x, y] for 2-D grids, so no workgroup size is written a second time in TypeScript.
 * Another workgroup size of the same WGSL (an autotuner's candidate) is another declaration:
 * `declareKernel({ ...RMSNORM, name: 'rmsnorm@128', workgroupSize: 128 })` (its own pipeline).
 *
 * Checks, each an error naming the kernel:
 * - at pipeline creation (once per variant): the params' names and types against the WGSL
 *   struct, and the binding names against the WGSL bindings, so a reordered or missing field is
 *   caught before anything runs;
 * - at every dispatch: a missing, extra, non-finite or (for u32) non-integer parameter, and every
 *   buffer's size against what its binding needs for these params (binding name, both sizes).
 * The uniform buffer is packed from the named values in the struct's order (4 bytes a field).
 */
import type { ShaderDefines, ShaderName } from './shaders';

export type ParamType = 'u32' | 'i32' | 'f32';
export type ParamTypes = Record<string, ParamType>;
export type ParamValues<P extends ParamTypes> = { [K in keyof P]: number };

export interface KernelDeclaration<P extends ParamTypes, B extends string> {
  name: string;
  shader: ShaderName;
  /** Defines every dispatch of this kernel compiles with (the variant of a shared file). */
  defines?: ShaderDefines;
  /** Invocations per workgroup; the WGSL reads it as WG (1-D) or WG_X, WG_Y (2-D). */
  workgroupSize: number | readonly [number, number];
  params: P;
  /** Elements (of the binding's WGSL scalar type) each storage binding must hold, by WGSL name. */
  bindings: Record<B, (p: ParamValues<P>) => number>;
}

export interface Kernel<P extends ParamTypes = ParamTypes, B extends string = string> extends KernelDeclaration<P, B> {
  readonly paramNames: readonly (keyof P & string)[];
  readonly bindingNames: readonly B[];
  /** The declaration's defines plus the workgroup size (WG or WG_X, WG_Y). */
  readonly fixedDefines: ShaderDefines;
}

export class KernelError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KernelError';
  }
}

export function declareKernel<P extends ParamTypes, B extends string>(decl: KernelDeclaration<P, B>): Kernel<P, B> {
  const ws = decl.workgroupSize;
  const sizes = typeof ws === 'number' ? [ws] : [...ws];
  if (!sizes.every((s) => Number.isInteger(s) && s > 0))
    throw new KernelError(`kernel ${decl.name}: workgroup size ${JSON.stringify(ws)} is not positive integers`);
  return {
    ...decl,
    paramNames: Object.keys(decl.params) as (keyof P & string)[],
    bindingNames: Object.keys(decl.bindings) as B[],
    fixedDefines: { ...decl.defines, ...workgroupDefines(ws) },
  };
}

/** The defines that carry a workgroup size into the WGSL (merged into every dispatch's defines). */
export function workgroupDefines(size: number | readonly [number, number]): ShaderDefines {
  return typeof size === 'number' ? { WG: size } : { WG_X: size[0], WG_Y: size[1] };
}

/** Invocations of one workgroup (the product of its dimensions). */
export function invocations(size: number | readonly [number, number]): number {
  return typeof size === 'number' ? size : size[0] * size[1];
}

/** A workgroup size as [x, y] (a 1-D size is [size, 1]). */
export function size2d(size: number | readonly [number, number]): [number, number] {
  return typeof size === 'number' ? [size, 1] : [size[0], size[1]];
}

/** Workgroups for `n` invocations of a 1-D kernel. */
export function groups1d<P extends ParamTypes, B extends string>(kernel: Kernel<P, B>, n: number): number {
  return Math.ceil(n / invocations(kernel.workgroupSize));
}

/**
 * Workgroups of a row-block kernel (the broadcast GEMMs) over an output of rows x cols: each
 * workgroup owns TM rows (a define of the kernel) and 4 columns an invocation.
 */
export function rowBlockGrid<P extends ParamTypes, B extends string>(
  kernel: Kernel<P, B>,
  cols: number,
  rows: number,
): [number, number] {
  return [Math.ceil(cols / (4 * invocations(kernel.workgroupSize))), Math.ceil(rows / Number(kernel.fixedDefines.TM))];
}

// ---- the WGSL side ------------------------------------------------------------------------------

export interface WgslInterface {
  /** `struct Params` fields in order. */
  params: { name: string; type: string }[];
  /** Storage bindings of group 0 by number (0 is the uniform). */
  bindings: Map<number, { name: string; scalarBytes: number; space: string }>;
}

const SCALAR_BYTES: Record<string, number> = { f32: 4, u32: 4, i32: 4, f16: 2 };

/** Read the uniform struct and the bindings from preprocessed WGSL. */
export function parseWgslInterface(wgsl: string): WgslInterface {
  const code = wgsl.replace(/\/\/[^\n]*/g, '');
  const struct = code.match(/struct\s+Params\s*\{([^}]*)\}/);
  const params = struct
    ? struct[1]
        .split(/[,\n]/)
        .map((f) => f.trim())
        .filter(Boolean)
        .map((f) => {
          const m = f.match(/^(\w+)\s*:\s*(.+)$/);
          return { name: m ? m[1] : f, type: m ? m[2].trim() : '?' };
        })
    : [];
  const bindings = new Map<number, { name: string; scalarBytes: number; space: string }>();
  for (const m of code.matchAll(/@group\(0\)\s*@binding\((\d+)\)\s*var<([^>]*)>\s*(\w+)\s*:\s*([^;]+);/g)) {
    const scalar = [...m[4].matchAll(/\b(f32|f16|u32|i32)\b/g)].pop()?.[1];
    bindings.set(Number(m[1]), { name: m[3], space: m[2].trim(), scalarBytes: scalar ? SCALAR_BYTES[scalar] : 4 });
  }
  return { params, bindings };
}

/**
 * Compare a declaration with the WGSL it compiles to; returns the element size (bytes) of every
 * declared binding, in order. Throws a KernelError describing the first mismatch.
 */
export function checkAgainstWgsl<P extends ParamTypes, B extends string>(kernel: Kernel<P, B>, wgsl: string): number[] {
  const iface = parseWgslInterface(wgsl);
  const declared = kernel.paramNames.map((n) => `${n}: ${kernel.params[n]}`).join(', ');
  const actual = iface.params.map((f) => `${f.name}: ${f.type}`).join(', ');
  if (declared !== actual) {
    throw new KernelError(
      `kernel ${kernel.name}: its params are declared as { ${declared} } but shaders/${kernel.shader}.wgsl has struct Params { ${actual} }`,
    );
  }
  const uniform = iface.bindings.get(0);
  if (uniform?.space !== 'uniform')
    throw new KernelError(
      `kernel ${kernel.name}: shaders/${kernel.shader}.wgsl has no var<uniform> Params at binding 0`,
    );
  const storageNumbers = [...iface.bindings.keys()].filter((b) => b !== 0).sort((a, b) => a - b);
  const wgslNames = storageNumbers.map((b) => `${b}:${iface.bindings.get(b)!.name}`).join(', ');
  const declNames = kernel.bindingNames.map((n, i) => `${i + 1}:${n}`).join(', ');
  if (wgslNames !== declNames) {
    throw new KernelError(
      `kernel ${kernel.name}: its bindings are declared as [${declNames}] but shaders/${kernel.shader}.wgsl binds [${wgslNames}]`,
    );
  }
  return kernel.bindingNames.map((_, i) => iface.bindings.get(i + 1)!.scalarBytes);
}

// ---- the uniform --------------------------------------------------------------------------------

/** Validate `values` against the declaration; returns a cache key for their packed bytes. */
export function uniformKey<P extends ParamTypes>(kernel: Kernel<P, string>, values: ParamValues<P>): string {
  let key = kernel.name;
  for (const name of kernel.paramNames) {
    const v = values[name];
    if (v === undefined) throw new KernelError(`kernel ${kernel.name}: parameter '${name}' is missing`);
    const type = kernel.params[name];
    if (!Number.isFinite(v)) throw new KernelError(`kernel ${kernel.name}: parameter '${name}' is ${v}`);
    if (
      type !== 'f32' &&
      (!Number.isInteger(v) || (type === 'u32' ? v < 0 || v > 0xffffffff : v < -(2 ** 31) || v >= 2 ** 31))
    ) {
      throw new KernelError(`kernel ${kernel.name}: parameter '${name}' (${type}) is ${v}`);
    }
    key += `,${v}`;
  }
  if (Object.keys(values).length !== kernel.paramNames.length) {
    const extra = Object.keys(values).filter((k) => !(k in kernel.params));
    throw new KernelError(
      `kernel ${kernel.name}: unknown parameter${extra.length > 1 ? 's' : ''} ${extra.map((e) => `'${e}'`).join(', ')}`,
    );
  }
  return key;
}

/** The uniform's bytes: one 4-byte field per param in declaration (= struct) order, padded to 16. */
export function packUniform<P extends ParamTypes>(kernel: Kernel<P, string>, values: ParamValues<P>): ArrayBuffer {
  const bytes = new ArrayBuffer(Math.max(16, Math.ceil((kernel.paramNames.length * 4) / 16) * 16));
  const view = new DataView(bytes);
  kernel.paramNames.forEach((name, i) => {
    const type = kernel.params[name];
    if (type === 'f32') view.setFloat32(i * 4, values[name], true);
    else if (type === 'i32') view.setInt32(i * 4, values[name], true);
    else view.setUint32(i * 4, values[name], true);
  });
  return bytes;
}
