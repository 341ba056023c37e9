/**
 * The safetensors container: an 8-byte little-endian u64 header length N, N bytes of JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {...}}`), then the data
 * section; offsets are relative to the start of the data section (byte 8 + N).
 * Spec: https://github.com/huggingface/safetensors#format
 */

/** The float dtypes this runtime computes with. */
export type FloatDtype = 'F32' | 'F16' | 'BF16';
export const SUPPORTED_DTYPES: readonly FloatDtype[] = ['F32', 'F16', 'BF16'];

/** Bytes per element of every dtype the format defines (so foreign tensors can still be bounds-checked). */
const DTYPE_SIZES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

export function dtypeSize(dtype: string): number {
  const size = Object.hasOwn(DTYPE_SIZES, dtype) ? DTYPE_SIZES[dtype] : undefined;
  if (size === undefined) throw new SafetensorsError(`unknown dtype "${dtype}"`);
  return size;
}

export function isSupportedDtype(dtype: string): dtype is FloatDtype {
  return (SUPPORTED_DTYPES as readonly string[]).includes(dtype);
}

export class SafetensorsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SafetensorsError';
  }
}

export interface SafetensorsEntry {
  name: string;
  /** A FloatDtype unless parsed with `allowUnsupportedDtypes`. */
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file (header already added), end exclusive. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** N, the JSON header's byte length. */
  headerLength: number;
  /** 8 + N: where tensor data starts. */
  dataStart: number;
  /** Tensors in file order (by offset). */
  tensors: SafetensorsEntry[];
  metadata: Record<string, string>;
}

/** Same limit as the reference implementation: rejects garbage before trying to allocate it. */
export const MAX_HEADER_LENGTH = 100_000_000;

export interface ParseHeaderOptions {
  /** Prefixed to error messages, e.g. 'model-00001-of-00002.safetensors'. */
  fileName?: string;
  /** Accept non-float tensors (still bounds-checked); the caller decides which ones it needs. */
  allowUnsupportedDtypes?: boolean;
}

function fail(options: ParseHeaderOptions | undefined, message: string): never {
  throw new SafetensorsError(options?.fileName ? `${options.fileName}: ${message}` : message);
}

/** Reads and sanity-checks N from the first 8 bytes, so a caller knows how much more to read. */
export function readHeaderLength(first8: Uint8Array, fileSize: number, options?: ParseHeaderOptions): number {
  if (fileSize < 8 || first8.length < 8) {
    fail(options, `file is ${Math.min(fileSize, first8.length)} bytes, too small to hold a safetensors header`);
  }
  const n = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) fail(options, `header length ${n} past end of file (size ${fileSize})`);
  if (n > BigInt(MAX_HEADER_LENGTH)) fail(options, `header length ${n} exceeds the ${MAX_HEADER_LENGTH}-byte limit`);
  if (n < 2n) fail(options, `header length ${n} is too small to hold a JSON object`);
  return Number(n);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isNonNegativeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Parses and validates a header. `bytes` must start at file offset 0 and hold at least 8 + N
 * bytes (the whole file is fine); `fileSize` is the full file size, used to reject headers and
 * tensors that point past the end (a truncated download).
 */
export function parseSafetensorsHeader(
  bytes: Uint8Array,
  fileSize: number,
  options?: ParseHeaderOptions,
): SafetensorsHeader {
  const headerLength = readHeaderLength(bytes, fileSize, options);
  const dataStart = 8 + headerLength;
  if (bytes.length < dataStart) {
    fail(options, `need ${dataStart} bytes to parse the header, got ${bytes.length}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, dataStart)));
  } catch (e) {
    fail(options, `header is not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(json)) fail(options, 'header is not a JSON object');

  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsEntry[] = [];
  for (const [name, info] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (isObject(info)) for (const [k, v] of Object.entries(info)) if (typeof v === 'string') metadata[k] = v;
      continue;
    }
    if (!isObject(info)) fail(options, `tensor "${name}": entry is not an object`);
    const { dtype, shape, data_offsets: offsets } = info;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZES, dtype)) {
      fail(options, `tensor "${name}" has unknown dtype ${JSON.stringify(dtype)}`);
    }
    if (!options?.allowUnsupportedDtypes && !isSupportedDtype(dtype)) {
      fail(options, `tensor "${name}" has unsupported dtype ${dtype}; supported: ${SUPPORTED_DTYPES.join(', ')}`);
    }
    if (!Array.isArray(shape) || !shape.every(isNonNegativeInt)) {
      fail(options, `tensor "${name}" has invalid shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every(isNonNegativeInt) ||
      offsets[1] < offsets[0]
    ) {
      fail(options, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const expectedBytes = shape.reduce((a: number, b: number) => a * b, 1) * DTYPE_SIZES[dtype];
    if (end - begin !== expectedBytes) {
      fail(
        options,
        `tensor "${name}": data_offsets [${begin}, ${end}] span ${end - begin} bytes, ` +
          `but ${dtype} [${shape.join(', ')}] needs ${expectedBytes}`,
      );
    }
    if (end > dataSize) {
      fail(
        options,
        `file truncated: tensor "${name}" ends at data offset ${end} but the data section is only ` +
          `${dataSize} bytes (file size ${fileSize})`,
      );
    }
    tensors.push({ name, dtype, shape: shape as number[], begin: dataStart + begin, end: dataStart + end });
  }
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < tensors.length; i++) {
    const prev = tensors[i - 1];
    const cur = tensors[i];
    // Empty tensors may share an offset with their neighbour; real overlap means a corrupt header.
    if (cur.begin < prev.end && cur.end > cur.begin) {
      fail(options, `tensors "${prev.name}" and "${cur.name}" overlap`);
    }
  }
  return { headerLength, dataStart, tensors, metadata };
}

export interface TensorToWrite {
  name: string;
  dtype: string;
  shape: number[];
  /** Raw little-endian bytes. */
  data: Uint8Array;
}

/**
 * Serializes tensors the way the reference `safetensors` library does: data laid out by dtype
 * size (largest first, so every tensor stays aligned to its element size) then by name, header
 * JSON padded with spaces so the data section starts at a multiple of 8.
 */
export function writeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const names = new Set<string>();
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new SafetensorsError('"__metadata__" is reserved and cannot name a tensor');
    if (names.has(t.name)) throw new SafetensorsError(`duplicate tensor name "${t.name}"`);
    names.add(t.name);
    const expected = t.shape.reduce((a, b) => a * b, 1) * dtypeSize(t.dtype);
    if (t.data.length !== expected) {
      throw new SafetensorsError(
        `tensor "${t.name}": ${t.dtype} [${t.shape.join(', ')}] needs ${expected} bytes, got ${t.data.length}`,
      );
    }
  }
  const ordered = [...tensors].sort(
    (a, b) => dtypeSize(b.dtype) - dtypeSize(a.dtype) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );

  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    header.__metadata__ = Object.fromEntries(Object.entries(metadata).sort(([a], [b]) => (a < b ? -1 : 1)));
  }
  let offset = 0;
  for (const t of ordered) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLength = Math.ceil(json.length / 8) * 8;

  const out = new Uint8Array(8 + headerLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLength);
  let position = 8 + headerLength;
  for (const t of ordered) {
    out.set(t.data, position);
    position += t.data.length;
  }
  return out;
}

/** A whole in-memory safetensors file → its tensors (data are views into `bytes`). */
export function readSafetensors(
  bytes: Uint8Array,
  options?: ParseHeaderOptions,
): { tensors: TensorToWrite[]; metadata: Record<string, string> } {
  const header = parseSafetensorsHeader(bytes, bytes.length, options);
  return {
    tensors: header.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      data: bytes.subarray(t.begin, t.end),
    })),
    metadata: header.metadata,
  };
}
