/**
 * The CLI's one flag layer: node:util parseArgs with clear errors, number flags with bounds, and
 * the usage error every command reports the same way (message, usage text, exit code 2).
 */
import { type ParseArgsConfig, parseArgs } from 'node:util';

/** Bad command-line input: the command prints it with its usage text and exits with code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command's usage text, shown after the message (omitted when the message carries it). */
    readonly usage?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Prints a usage error as `agentark <command>: message` plus the usage text; returns exit code 2. */
export function reportUsageError(command: string, e: UsageError, usage = e.usage): number {
  process.stderr.write(`agentark ${command}: ${e.message}${usage ? `\n\n${usage.trimEnd()}` : ''}\n`);
  return 2;
}

/** The parsed type of one parseArgs option. */
type FlagValue<O> = O extends { type: 'boolean' }
  ? O extends { multiple: true }
    ? boolean[]
    : boolean
  : O extends { multiple: true }
    ? string[]
    : string;

/** Parses `argv` against `options` (plus -h/--help); null after printing the usage for --help. */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
  usage: string,
) {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message, usage);
  }
  if ((parsed.values as Record<string, unknown>).help) {
    process.stdout.write(`${usage.trimEnd()}\n`);
    return null;
  }
  return parsed.values as { [K in keyof T]?: FlagValue<T[K]> };
}

/** Inclusive bounds of a number flag; `above` is an exclusive lower bound. */
export interface FlagRange {
  min?: number;
  above?: number;
  max?: number;
}

function checkRange(n: number, value: string, name: string, kind: string, range: FlagRange): number {
  const { min, above, max } = range;
  const bad = (min !== undefined && n < min) || (above !== undefined && n <= above) || (max !== undefined && n > max);
  if (bad) {
    const lo = above !== undefined ? `(${above}` : min !== undefined ? `[${min}` : '';
    const want =
      max !== undefined
        ? `${kind} in ${lo || '(-∞'}, ${max}]`
        : above !== undefined
          ? `${kind} > ${above}`
          : `${kind} >= ${min}`;
    throw new UsageError(`--${name} must be ${want}, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** An integer flag: `fallback` when absent; a UsageError naming the flag when not an integer in `range`. */
export function intFlag(value: string | undefined, name: string, fallback: number, range?: FlagRange): number;
export function intFlag(
  value: string | undefined,
  name: string,
  fallback?: number,
  range?: FlagRange,
): number | undefined;
export function intFlag(
  value: string | undefined,
  name: string,
  fallback?: number,
  range: FlagRange = {},
): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n))
    throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(value)}`);
  return checkRange(n, value, name, 'an integer', range);
}

/** A number flag: `fallback` when absent; a UsageError naming the flag when not a finite number in `range`. */
export function floatFlag(value: string | undefined, name: string, fallback: number, range?: FlagRange): number;
export function floatFlag(
  value: string | undefined,
  name: string,
  fallback?: number,
  range?: FlagRange,
): number | undefined;
export function floatFlag(
  value: string | undefined,
  name: string,
  fallback?: number,
  range: FlagRange = {},
): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n))
    throw new UsageError(`--${name} must be a number, got ${JSON.stringify(value)}`);
  return checkRange(n, value, name, 'a number', range);
}

/** One of a fixed set of words: `fallback` when absent. */
export function choiceFlag<const C extends string>(
  value: string | undefined,
  name: string,
  choices: readonly C[],
  fallback: C,
): C;
export function choiceFlag<const C extends string>(
  value: string | undefined,
  name: string,
  choices: readonly C[],
  fallback?: C,
): C | undefined;
export function choiceFlag<const C extends string>(
  value: string | undefined,
  name: string,
  choices: readonly C[],
  fallback?: C,
): C | undefined {
  if (value === undefined) return fallback;
  if ((choices as readonly string[]).includes(value)) return value as C;
  const list = choices.length > 1 ? `${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}` : choices[0];
  throw new UsageError(`--${name} must be ${list}, got ${JSON.stringify(value)}`);
}

export function idsFlag(value: string): number[] {
  const ids = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (!ids.length || ids.some((n) => !Number.isInteger(n) || n < 0))
    throw new UsageError(`--ids must be comma-separated non-negative integers, got '${value}'`);
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
    const amount =
      e.unit === 'bytes'
        ? `${(e.done / 2 ** 20).toFixed(1)}/${(e.total / 2 ** 20).toFixed(1)} MiB`
        : `${e.done}/${e.total} ${e.unit}`;
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

/** `--memory-budget MIB` of the commands that only generate (generate, serve): see RuntimeOptions.memoryBudgetBytes. */
export const GENERATION_BUDGET_FLAG = { 'memory-budget': { type: 'string' } } as const;

/** `--quantize q8|q4` (frozen weights quantized on load, see src/quant/quantize.ts). */
export function quantizeFlag(value: string | undefined): 'q8' | 'q4' | undefined {
  return choiceFlag(value, 'quantize', ['q8', 'q4']);
}

export function runtimeOptions(v: {
  backend?: string;
  dtype?: string;
  'context-length'?: string;
  adapter?: string;
  quantize?: string;
  'memory-budget'?: string;
}) {
  const budgetMiB = floatFlag(v['memory-budget'], 'memory-budget', undefined, { above: 0 });
  return {
    backend: choiceFlag(v.backend, 'backend', ['webgpu', 'cpu'], 'webgpu'),
    dtype: choiceFlag(v.dtype, 'dtype', ['auto', 'f16', 'f32'], 'auto'),
    contextLength: intFlag(v['context-length'], 'context-length', undefined, { min: 1 }),
    adapter: v.adapter,
    quantize: quantizeFlag(v.quantize),
    memoryBudgetBytes: budgetMiB === undefined ? undefined : budgetMiB * 2 ** 20,
  };
}
