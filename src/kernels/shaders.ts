/**
 * WGSL sources from shaders/ (one op per file) and the tiny preprocessor that picks variants:
 * `//#if NAME`, `//#if !NAME`, `//#else`, `//#endif`, the weight element type `WT`, and numeric
 * defines (a number value replaces the word NAME with that u32 constant, e.g. a head dim compiled
 * in so that per-row loops unroll).
 */

export type ShaderDefines = Record<string, boolean | number>;

/** Every file in shaders/, forward ops first; each has a CPU twin and a test. */
export const SHADER_NAMES = [
  'matmul',
  'embedding',
  'rmsnorm',
  'rope',
  'kv_write',
  'attention',
  'attention_prefill',
  'swiglu',
  'argmax',
  'residual_add',
  'matmul_backward',
  'bias_backward',
  'rmsnorm_backward',
  'rope_backward',
  'attention_backward_dq',
  'attention_backward_dkv',
  'kv_gather',
  'swiglu_backward',
  'embedding_backward',
  'cross_entropy',
  'logsumexp_chunk',
  'cross_entropy_chunk_grad',
  'dropout',
  'sum_squares',
  'adamw',
  'sgd',
  'fill',
  'scale_rows',
  'matmul_q',
  'embedding_q',
  'matmul_q_backward',
  'matmul_splitk',
  'matmul_tiled',
  'matmul_broadcast',
  'matmul_backward_broadcast',
  'attention_prefill_broadcast',
  'matmul_subgroup',
  'matmul_backward_tiled',
  'attention_prefill_splitd',
  'norm_gemv',
  'gemv_residual',
  'rope_kv_write',
  'attention_decode',
  'mlp_block',
] as const;
export type ShaderName = (typeof SHADER_NAMES)[number];

const sources = new Map<string, string>();

/** Load every shader once: from the file system in Node, from Vite's bundle in the browser. */
export async function loadShaders(): Promise<void> {
  if (sources.size) return;
  if (typeof process !== 'undefined' && process.versions?.node && typeof window === 'undefined') {
    const fs = await import('node:fs/promises');
    for (const name of SHADER_NAMES) {
      const url = new URL(`../../shaders/${name}.wgsl`, import.meta.url);
      sources.set(name, await fs.readFile(url, 'utf8'));
    }
    return;
  }
  const modules = import.meta.glob('../../shaders/*.wgsl', { query: '?raw', import: 'default', eager: true }) as Record<
    string,
    string
  >;
  for (const [path, text] of Object.entries(modules)) {
    sources.set(path.replace(/^.*\//, '').replace(/\.wgsl$/, ''), text);
  }
}

export function preprocess(source: string, defines: ShaderDefines, weightType: 'f16' | 'f32' = 'f32'): string {
  const out: string[] = [];
  const stack: { active: boolean; parentActive: boolean }[] = [];
  let active = true;
  for (const line of source.split('\n')) {
    const t = line.trim();
    let m: RegExpMatchArray | null;
    if ((m = t.match(/^\/\/#if\s+(!?)(\w+)$/))) {
      const value = Boolean(defines[m[2]]) !== (m[1] === '!');
      stack.push({ active, parentActive: active });
      active = active && value;
      stack[stack.length - 1].active = active;
    } else if (t === '//#else') {
      const top = stack[stack.length - 1];
      if (!top) throw new Error('shader preprocessor: #else without #if');
      active = top.parentActive && !top.active;
    } else if (t === '//#endif') {
      const top = stack.pop();
      if (!top) throw new Error('shader preprocessor: #endif without #if');
      active = top.parentActive;
    } else if (active) {
      out.push(line);
    }
  }
  if (stack.length) throw new Error('shader preprocessor: unterminated #if');
  let text = out.join('\n').replace(/\bWT\b/g, weightType);
  for (const [name, value] of Object.entries(defines)) {
    if (typeof value === 'number') text = text.replace(new RegExp(`\\b${name}\\b`, 'g'), `${value >>> 0}u`);
  }
  return text;
}

export function shaderSource(name: ShaderName, defines: ShaderDefines = {}, weightType: 'f16' | 'f32' = 'f32'): string {
  const src = sources.get(name);
  if (src === undefined) throw new Error(`shader ${name}.wgsl is not loaded (call loadShaders() first)`);
  return preprocess(src, { ...defines, F16: weightType === 'f16' }, weightType);
}

/** Key (or value) rows per workgroup-memory chunk in the tiled attention kernels: 4 KiB of f32. */
export function attentionChunkRows(headDim: number): number {
  return Math.max(1, Math.floor(1024 / headDim));
}

/**
 * Key (or value) rows per chunk in attention_prefill_splitd.wgsl: K and V chunks plus the lanes'
 * partial dot products (queries x KC x lanes) within 16 KiB of workgroup memory, at most 32 (the
 * chunk's scores live in registers).
 */
export function splitdChunkRows(headDim: number, queries: number, lanes: number): number {
  const floats = 4096 - queries - 2; // minus pendingSlot, curSlot, curLast
  return Math.max(1, Math.min(32, Math.floor(floats / (2 * headDim + queries * lanes))));
}
