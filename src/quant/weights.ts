/**
 * Which checkpoint tensors are quantized, and quantizing them once: every Linear of the blocks
 * and the embedding / LM head (tied or not) become q8/q4; norms and biases stay f32. The result
 * is cached (on disk in Node, in OPFS in the browser) under a key derived from the tensors' bytes,
 * so a second load of the same weights reads the packed values instead of quantizing again.
 */
import { PROJECTIONS, type ModelConfig } from '../formats/config';
import { toFloat32, type HostTensor } from '../formats/checkpoint';
import type { ProgressCallback } from '../progress';
import { defaultQuantCache, type QuantCache } from './cache';
import { f32ToF16Bits } from '../formats/dtype';
import { dequantize, quantize, type QuantFormat, type QuantizedMatrix } from './quantize';

/** Bump when the rules or the packing change: cached files of another version are ignored. */
export const QUANT_CACHE_VERSION = 'agentark.quant/1';

const MODULE_PATH: Record<string, string> = {
  q_proj: 'self_attn',
  k_proj: 'self_attn',
  v_proj: 'self_attn',
  o_proj: 'self_attn',
  gate_proj: 'mlp',
  up_proj: 'mlp',
  down_proj: 'mlp',
};

/** HF names of the tensors a q8/q4 model stores quantized. */
export function quantizedTensorNames(config: ModelConfig): string[] {
  const names: string[] = [];
  for (let i = 0; i < config.numLayers; i++)
    for (const p of PROJECTIONS) names.push(`model.layers.${i}.${MODULE_PATH[p]}.${p}.weight`);
  names.push('model.embed_tokens.weight');
  if (!config.tieWordEmbeddings) names.push('lm_head.weight');
  return names;
}

export interface QuantizeWeightsOptions {
  /** Where packed weights are cached; null disables the cache. Default: defaultQuantCache(). */
  cache?: QuantCache | null;
  onProgress?: ProgressCallback;
}

export interface QuantizedWeights {
  format: QuantFormat;
  matrices: Map<string, QuantizedMatrix>;
  /** True when the packed weights came from the cache (nothing was quantized). */
  fromCache: boolean;
  cacheKey: string;
}

async function sha256Hex(parts: Uint8Array[]): Promise<string> {
  // One digest per part, then a digest of the digests: no single huge buffer is needed.
  const digests: Uint8Array[] = [];
  for (const p of parts)
    digests.push(new Uint8Array(await crypto.subtle.digest('SHA-256', p as Uint8Array<ArrayBuffer>)));
  const all = new Uint8Array(digests.length * 32);
  for (const [i, d] of digests.entries()) all.set(d, i * 32);
  const top = new Uint8Array(await crypto.subtle.digest('SHA-256', all));
  return Array.from(top, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The cache key: rules version, format, and every quantized tensor's name, dtype, shape and bytes. */
export async function quantCacheKey(
  config: ModelConfig,
  tensors: Map<string, HostTensor>,
  format: QuantFormat,
): Promise<string> {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [enc.encode(`${QUANT_CACHE_VERSION}:${format}`)];
  for (const name of quantizedTensorNames(config)) {
    const t = tensors.get(name);
    if (!t) throw new Error(`checkpoint is missing tensor ${name}`);
    parts.push(enc.encode(`${name}:${t.dtype}:${t.shape.join('x')}`), t.data);
  }
  return (await sha256Hex(parts)).slice(0, 32);
}

/** Quantize (or read from the cache) every tensor quantizedTensorNames() lists. */
export async function quantizeWeights(
  config: ModelConfig,
  tensors: Map<string, HostTensor>,
  format: QuantFormat,
  opts: QuantizeWeightsOptions = {},
): Promise<QuantizedWeights> {
  const cache = opts.cache === undefined ? await defaultQuantCache() : opts.cache;
  const names = quantizedTensorNames(config);
  const cacheKey = await quantCacheKey(config, tensors, format);
  if (cache) {
    const bytes = await cache.get(cacheKey);
    if (bytes) {
      try {
        const matrices = decodeQuantized(bytes);
        if (names.every((n) => matrices.has(n))) return { format, matrices, fromCache: true, cacheKey };
      } catch {
        // A truncated or foreign file: quantize again and overwrite it.
      }
    }
  }
  const matrices = new Map<string, QuantizedMatrix>();
  names.forEach((name, i) => {
    const t = tensors.get(name)!;
    if (t.shape.length !== 2) throw new Error(`${name}: expected a 2-D weight, got shape [${t.shape.join(', ')}]`);
    matrices.set(name, quantize(toFloat32(t), t.shape[0], t.shape[1], format));
    opts.onProgress?.({ phase: `quantize ${format}`, done: i + 1, total: names.length, unit: 'items' });
  });
  if (cache) await cache.put(cacheKey, encodeQuantized(matrices));
  return { format, matrices, fromCache: false, cacheKey };
}

interface EntryHeader {
  name: string;
  format: QuantFormat;
  rows: number;
  cols: number;
  quantsOffset: number;
  quantsWords: number;
  scalesOffset: number;
  scalesCount: number;
}

/** One blob: u32 header length, JSON header, then 4-byte-aligned packed words and scales. */
export function encodeQuantized(matrices: Map<string, QuantizedMatrix>): Uint8Array {
  const entries: EntryHeader[] = [];
  let offset = 0;
  for (const [name, m] of matrices) {
    const quantsOffset = offset;
    offset += m.quants.byteLength;
    const scalesOffset = offset;
    offset += Math.ceil(m.scales.byteLength / 4) * 4;
    entries.push({
      name,
      format: m.format,
      rows: m.rows,
      cols: m.cols,
      quantsOffset,
      quantsWords: m.quants.length,
      scalesOffset,
      scalesCount: m.scales.length,
    });
  }
  let header = new TextEncoder().encode(JSON.stringify({ version: QUANT_CACHE_VERSION, entries }));
  const headerLen = Math.ceil(header.length / 4) * 4;
  const out = new Uint8Array(4 + headerLen + offset);
  new DataView(out.buffer).setUint32(0, headerLen, true);
  out.fill(0x20, 4, 4 + headerLen);
  out.set(header, 4);
  header = new Uint8Array(0);
  const base = 4 + headerLen;
  for (const e of entries) {
    const m = matrices.get(e.name)!;
    out.set(new Uint8Array(m.quants.buffer, m.quants.byteOffset, m.quants.byteLength), base + e.quantsOffset);
    out.set(new Uint8Array(m.scales.buffer, m.scales.byteOffset, m.scales.byteLength), base + e.scalesOffset);
  }
  return out;
}

export function decodeQuantized(bytes: Uint8Array): Map<string, QuantizedMatrix> {
  const buf = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const headerLen = new DataView(buf.buffer, buf.byteOffset, buf.byteLength).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(buf.subarray(4, 4 + headerLen))) as {
    version: string;
    entries: EntryHeader[];
  };
  if (header.version !== QUANT_CACHE_VERSION)
    throw new Error(`quantized cache version ${header.version}, expected ${QUANT_CACHE_VERSION}`);
  const base = buf.byteOffset + 4 + headerLen;
  const out = new Map<string, QuantizedMatrix>();
  for (const e of header.entries) {
    if (base - buf.byteOffset + e.scalesOffset + e.scalesCount * 2 > buf.byteLength)
      throw new Error('quantized cache file is truncated');
    out.set(e.name, {
      format: e.format,
      rows: e.rows,
      cols: e.cols,
      quants: new Uint32Array(buf.buffer, base + e.quantsOffset, e.quantsWords),
      scales: new Uint16Array(buf.buffer, base + e.scalesOffset, e.scalesCount),
    });
  }
  return out;
}

/**
 * Replace each quantized tensor of `tensors` by its dequantized values (in place), as F32 or F16:
 * the base a QLoRA adapter was trained against, for merging or exporting.
 */
export function dequantizeInto(
  tensors: Map<string, HostTensor>,
  matrices: Map<string, QuantizedMatrix>,
  dtype: 'F32' | 'F16',
): void {
  for (const [name, m] of matrices) {
    const values = dequantize(m);
    const data = dtype === 'F32' ? new Uint8Array(values.buffer) : new Uint8Array(f32ToF16Bits(values).buffer);
    tensors.set(name, { name, dtype, shape: [m.rows, m.cols], data });
  }
}
