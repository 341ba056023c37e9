/** Shared flag parsing for the CLI commands (node:util parseArgs with clear errors). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {}

export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  try {
    const parsed = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
    if ((parsed.values as Record<string, unknown>).help) {
      console.log(usage);
      return null;
    }
    return parsed.values as { [K in keyof T]?: T[K]['type'] extends 'boolean' ? boolean : string };
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${usage}`);
  }
}

export function intFlag(value: string | undefined, name: string, fallback: number): number;
export function intFlag(value: string | undefined, name: string): number | undefined;
export function intFlag(value: string | undefined, name: string, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got '${value}'`);
  return n;
}

export function floatFlag(value: string | undefined, name: string, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${value}'`);
  return n;
}

export function idsFlag(value: string): number[] {
  const ids = value.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  if (!ids.length || ids.some((n) => !Number.isInteger(n) || n < 0)) throw new UsageError(`--ids must be comma-separated non-negative integers, got '${value}'`);
  return ids;
}

/** Progress on stderr (stdout stays clean for --json output). */
export function stderrProgress(label: string) {
  let last = 0;
  return (e: { phase: string; done: number; total: number; unit: string }) => {
    const now = Date.now();
    if (now - last < 500 && e.done < e.total) return;
    last = now;
    const pct = e.total ? ((100 * e.done) / e.total).toFixed(0) : '?';
    const amount = e.unit === 'bytes' ? `${(e.done / 2 ** 20).toFixed(1)}/${(e.total / 2 ** 20).toFixed(1)} MiB` : `${e.done}/${e.total} ${e.unit}`;
    process.stderr.write(`${label} ${e.phase}: ${amount} (${pct}%)\n`);
  };
}

export const RUNTIME_FLAGS = {
  model: { type: 'string' },
  adapter: { type: 'string' },
  backend: { type: 'string' },
  dtype: { type: 'string' },
  'context-length': { type: 'string' },
  quantize: { type: 'string' },
} as const;

/** `--quantize q8|q4` (frozen weights quantized on load, see src/quant/quantize.ts). */
export function quantizeFlag(value: string | undefined): 'q8' | 'q4' | undefined {
  if (value === undefined) return undefined;
  if (value !== 'q8' && value !== 'q4') throw new UsageError(`--quantize must be q8 or q4, got '${value}'`);
  return value;
}

export function runtimeOptions(v: { backend?: string; dtype?: string; 'context-length'?: string; adapter?: string; quantize?: string }) {
  const backend = v.backend ?? 'webgpu';
  if (backend !== 'webgpu' && backend !== 'cpu') throw new UsageError(`--backend must be webgpu or cpu, got '${backend}'`);
  const dtype = v.dtype ?? 'auto';
  if (!['auto', 'f16', 'f32'].includes(dtype)) throw new UsageError(`--dtype must be auto, f16 or f32, got '${dtype}'`);
  return { backend: backend as 'webgpu' | 'cpu', dtype: dtype as 'auto' | 'f16' | 'f32', contextLength: intFlag(v['context-length'], 'context-length'), adapter: v.adapter, quantize: quantizeFlag(v.quantize) };
}
