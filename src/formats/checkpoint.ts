/**
 * Loads a Hugging Face checkpoint folder (config.json, safetensors shards, tokenizer files) into
 * host memory. Every header is read and checked against the config before any tensor data is
 * transferred, so a wrong or broken checkpoint fails in milliseconds, not after a 1 GB download.
 */
import type { ProgressCallback } from '../progress';
import { checkPlannedBytes, expectedTensors, parseConfig, tokenIdList, type ModelConfig } from './config';
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from './dtype';
import {
  isSupportedDtype,
  parseSafetensorsHeader,
  readHeaderLength,
  SUPPORTED_DTYPES,
  type FloatDtype,
  type SafetensorsEntry,
} from './safetensors';
import { openSource, unsafeFileNameReason, type FileSource } from './source';
import { HFTokenizer } from './tokenizer';

/** The small files that travel with a model's weights (copied into merged / trained checkpoints). */
export const MODEL_SIDE_FILES = [
  'config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'generation_config.json',
  'special_tokens_map.json',
  'chat_template.jinja',
] as const;

/** The side files `source` has, as text by name. */
export async function readModelSideFiles(source: FileSource): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of MODEL_SIDE_FILES) if (await source.exists(name)) out[name] = await source.readText(name);
  return out;
}

export interface HostTensor {
  name: string;
  dtype: FloatDtype;
  shape: number[];
  /** Raw little-endian bytes. Loaded tensors own their buffer (byteOffset 0), so typed views are aligned. */
  data: Uint8Array;
}

/** generation_config.json, camel-cased; absent fields stay undefined. */
export interface GenerationConfig {
  bosTokenId?: number;
  eosTokenIds: number[];
  padTokenId?: number;
  doSample?: boolean;
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  maxNewTokens?: number;
}

export interface Checkpoint {
  config: ModelConfig;
  tensors: Map<string, HostTensor>;
  tokenizer: HFTokenizer | null;
  /** Where it was loaded from (directory, URL or repo id). */
  source: string;
  generationConfig?: GenerationConfig;
  /** Every id that should stop generation: config.json, generation_config.json and tokenizer eos, merged. */
  eosTokenIds: number[];
}

export interface LoadCheckpointOptions {
  /** Byte progress over all weight files: {phase: 'download', done, total, unit: 'bytes'}. */
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Default true; false skips tokenizer files (tokenizer is then null). */
  loadTokenizer?: boolean;
}

export class CheckpointError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckpointError';
  }
}

// ---------------------------------------------------------------------------------------------
// Tensor data conversions

function elementCount(t: HostTensor): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/** A typed view when the bytes are suitably aligned, else an aligned copy. */
function view<T>(
  t: HostTensor,
  bytesPerElement: number,
  make: (buffer: ArrayBufferLike, offset: number, length: number) => T,
): T {
  const n = elementCount(t);
  if (t.data.byteOffset % bytesPerElement === 0) return make(t.data.buffer, t.data.byteOffset, n);
  const copy = t.data.slice();
  return make(copy.buffer, 0, n);
}

/** float32 values; for F32 tensors this is a view sharing memory with `t.data` (do not mutate). */
export function toFloat32(t: HostTensor): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return view(t, 4, (b, o, n) => new Float32Array(b, o, n));
    case 'F16':
      return f16ToF32(view(t, 2, (b, o, n) => new Uint16Array(b, o, n)));
    case 'BF16':
      return bf16ToF32(view(t, 2, (b, o, n) => new Uint16Array(b, o, n)));
  }
}

/** f16 bit patterns (rounded to nearest even from F32/BF16); for F16 tensors a view of `t.data`. */
export function toF16Bits(t: HostTensor): Uint16Array {
  if (t.dtype === 'F16') return view(t, 2, (b, o, n) => new Uint16Array(b, o, n));
  const bits = f32ToF16Bits(toFloat32(t));
  // Finite F32/BF16 values beyond ±65504 become ±Inf in F16, which would poison every output.
  const overflow = firstNonFinite({
    ...t,
    dtype: 'F16',
    data: new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength),
  });
  if (overflow !== null) {
    throw new CheckpointError(
      `${t.name} holds ${toFloat32(t)[overflow.index]} at element ${overflow.index}, beyond F16's range (±65504); load it with --dtype f32`,
    );
  }
  return bits;
}

/** bf16 bit patterns (rounded to nearest even from F32; F16 → BF16 may lose mantissa bits). */
export function toBf16Bits(t: HostTensor): Uint16Array {
  if (t.dtype === 'BF16') return view(t, 2, (b, o, n) => new Uint16Array(b, o, n));
  return f32ToBf16Bits(toFloat32(t));
}

// ---------------------------------------------------------------------------------------------
// Reading pieces of a checkpoint

async function readJson(source: FileSource, name: string): Promise<unknown> {
  const text = await source.readText(name);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`${name}: invalid JSON (${(e as Error).message})`, { cause: e });
  }
}

/** config.json → validated ModelConfig. */
export async function readModelConfig(source: FileSource): Promise<ModelConfig> {
  return parseConfig(await readJson(source, 'config.json'));
}

/** At most this many shards (real checkpoints have a few hundred at most). */
const MAX_SHARDS = 10_000;

/**
 * The shard names of a model.safetensors.index.json, checked to stay inside the model folder
 * (or repo): relative, no '..' or '.' segments, no backslashes, drive letters or control characters.
 */
export function shardFilesOfIndex(index: unknown, indexName = 'model.safetensors.index.json'): string[] {
  const weightMap = (index as { weight_map?: unknown })?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointError(`${indexName}: missing "weight_map"`);
  }
  const files = [...new Set(Object.values(weightMap))];
  if (files.length === 0 || !files.every((f) => typeof f === 'string' && f.length > 0)) {
    throw new CheckpointError(`${indexName}: "weight_map" must map tensor names to file names`);
  }
  if (files.length > MAX_SHARDS)
    throw new CheckpointError(`${indexName}: names ${files.length} shard files; at most ${MAX_SHARDS} are supported`);
  for (const f of files as string[]) {
    const problem = unsafeFileNameReason(f);
    if (problem)
      throw new CheckpointError(
        `${indexName}: shard file name ${JSON.stringify(f.slice(0, 200))} ${problem}; shards must be files inside the model folder`,
      );
  }
  return (files as string[]).sort();
}

/** The safetensors files of a checkpoint: the shards named by the index, or the single file. */
export async function listWeightFiles(source: FileSource): Promise<string[]> {
  const indexName = 'model.safetensors.index.json';
  if (await source.exists(indexName)) return shardFilesOfIndex(await readJson(source, indexName), indexName);
  if (await source.exists('model.safetensors')) return ['model.safetensors'];
  throw new CheckpointError(
    `no model.safetensors or model.safetensors.index.json in ${source.location} ` +
      '(only safetensors checkpoints are supported, not pytorch_model.bin)',
  );
}

/** The first 64 KiB usually hold a whole header, so most files need one request. */
const HEADER_PROBE_BYTES = 1 << 16;

export interface WeightFileHeader {
  file: string;
  size: number;
  tensors: SafetensorsEntry[];
}

/** Reads only the header of one safetensors file (a Range request over HTTP). */
export async function readWeightFileHeader(
  source: FileSource,
  file: string,
  signal?: AbortSignal,
): Promise<WeightFileHeader> {
  const size = await source.size(file);
  const options = { fileName: file, allowUnsupportedDtypes: true };
  let bytes = await source.readRange(file, 0, Math.min(size, HEADER_PROBE_BYTES), { signal });
  const headerLength = readHeaderLength(bytes, size, options);
  if (bytes.length < 8 + headerLength) bytes = await source.readRange(file, 0, 8 + headerLength, { signal });
  const header = parseSafetensorsHeader(bytes, size, options);
  return { file, size, tensors: header.tensors };
}

function formatShape(shape: number[]): string {
  return `[${shape.join(', ')}]`;
}

interface PlannedTensor {
  entry: SafetensorsEntry & { dtype: FloatDtype };
  file: string;
}

/**
 * Matches the tensors found in the headers against what the config implies. Unknown extras
 * (rotary_emb.inv_freq, a tied lm_head.weight, …) are ignored; anything missing, misshapen or in
 * a dtype we cannot compute with is an error naming the tensor.
 */
export function planTensors(config: ModelConfig, headers: WeightFileHeader[]): Map<string, PlannedTensor> {
  const found = new Map<string, { entry: SafetensorsEntry; file: string }>();
  for (const { file, tensors } of headers) {
    for (const entry of tensors) {
      const previous = found.get(entry.name);
      if (previous) throw new CheckpointError(`tensor ${entry.name} appears in both ${previous.file} and ${file}`);
      found.set(entry.name, { entry, file });
    }
  }
  const planned = new Map<string, PlannedTensor>();
  const missing: string[] = [];
  for (const [name, shape] of expectedTensors(config)) {
    const hit = found.get(name);
    if (!hit) {
      missing.push(name);
      continue;
    }
    const { entry, file } = hit;
    if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError(
        `${name} has shape ${formatShape(entry.shape)}, config implies ${formatShape(shape)} (in ${file})`,
      );
    }
    if (!isSupportedDtype(entry.dtype)) {
      throw new CheckpointError(
        `${name} has unsupported dtype ${entry.dtype} (in ${file}); supported: ${SUPPORTED_DTYPES.join(', ')}`,
      );
    }
    planned.set(name, { entry: entry as PlannedTensor['entry'], file });
  }
  if (missing.length > 0) {
    const shown = missing.slice(0, 5).join(', ');
    const more = missing.length > 5 ? ` and ${missing.length - 5} more` : '';
    const where = headers.map((h) => h.file).join(', ');
    throw new CheckpointError(
      missing.length === 1
        ? `missing tensor ${shown} (not in ${where})`
        : `missing ${missing.length} tensors: ${shown}${more} (not in ${where})`,
    );
  }
  return planned;
}

/** tokenizer.json (+ tokenizer_config.json, chat_template.jinja when present), or null if there is none. */
export async function loadTokenizerFrom(source: FileSource): Promise<HFTokenizer | null> {
  if (!(await source.exists('tokenizer.json'))) return null;
  const [tokenizerJson, tokenizerConfig, chatTemplate] = await Promise.all([
    source.readText('tokenizer.json'),
    source.exists('tokenizer_config.json').then((has) => (has ? source.readText('tokenizer_config.json') : null)),
    source.exists('chat_template.jinja').then((has) => (has ? source.readText('chat_template.jinja') : null)),
  ]);
  return HFTokenizer.fromText(tokenizerJson, tokenizerConfig, chatTemplate);
}

function optionalNumber(json: Record<string, unknown>, key: string): number | undefined {
  const v = json[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

async function readGenerationConfig(source: FileSource): Promise<GenerationConfig | undefined> {
  if (!(await source.exists('generation_config.json'))) return undefined;
  const json = await readJson(source, 'generation_config.json');
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CheckpointError('generation_config.json: expected a JSON object');
  }
  const g = json as Record<string, unknown>;
  return {
    bosTokenId: optionalNumber(g, 'bos_token_id'),
    eosTokenIds: tokenIdList(g.eos_token_id),
    padTokenId: optionalNumber(g, 'pad_token_id'),
    doSample: typeof g.do_sample === 'boolean' ? g.do_sample : undefined,
    temperature: optionalNumber(g, 'temperature'),
    topP: optionalNumber(g, 'top_p'),
    topK: optionalNumber(g, 'top_k'),
    repetitionPenalty: optionalNumber(g, 'repetition_penalty'),
    maxNewTokens: optionalNumber(g, 'max_new_tokens'),
  };
}

// ---------------------------------------------------------------------------------------------
// Streaming tensor data

/** Reports byte progress at most ~200 times per load (plus the final event), with an ETA. */
function progressReporter(total: number, onProgress: ProgressCallback | undefined): (done: number) => void {
  const started = Date.now();
  const step = Math.max(1, Math.floor(total / 200));
  let lastReported = -Infinity;
  return (done) => {
    if (!onProgress || (done - lastReported < step && done !== total) || done === lastReported) return;
    lastReported = done;
    const elapsedS = (Date.now() - started) / 1000;
    const etaS = done > 0 && elapsedS > 0 ? ((total - done) * elapsedS) / done : undefined;
    onProgress({ phase: 'download', done, total, unit: 'bytes', ...(etaS === undefined ? {} : { etaS }) });
  };
}

/** Streams one file, copying each wanted tensor's bytes into its own buffer as they pass. */
async function readTensorData(
  source: FileSource,
  file: string,
  wanted: PlannedTensor[],
  report: (bytesThisFile: number) => void,
  signal: AbortSignal | undefined,
): Promise<HostTensor[]> {
  const targets = wanted
    .map(({ entry }) => ({ entry, data: new Uint8Array(entry.end - entry.begin) }))
    .sort((a, b) => a.entry.begin - b.entry.begin);
  const needed = targets.reduce((max, t) => Math.max(max, t.entry.end), 0);
  let position = 0; // file offset of the next chunk
  let first = 0; // first target not yet complete
  for await (const chunk of source.stream(file, (received) => report(received), { signal })) {
    const chunkEnd = position + chunk.length;
    while (first < targets.length && targets[first].entry.end <= position) first++;
    for (let i = first; i < targets.length && targets[i].entry.begin < chunkEnd; i++) {
      const { entry, data } = targets[i];
      const from = Math.max(entry.begin, position);
      const to = Math.min(entry.end, chunkEnd);
      if (to > from) data.set(chunk.subarray(from - position, to - position), from - entry.begin);
    }
    position = chunkEnd;
  }
  if (position < needed) {
    throw new CheckpointError(`${file} is truncated: got ${position} bytes, its header promises ${needed}`);
  }
  const tensors = targets.map(({ entry, data }) => ({
    name: entry.name,
    dtype: entry.dtype,
    shape: entry.shape,
    data,
  }));
  for (const t of tensors) {
    const bad = firstNonFinite(t);
    if (bad !== null) {
      throw new CheckpointError(
        `${t.name} (in ${file}) holds non-finite values (${bad.value} at element ${bad.index} of ${elementCount(t)}); ` +
          'the checkpoint is corrupt or was saved after training diverged',
      );
    }
  }
  return tensors;
}

/**
 * The first NaN or ±Inf of a tensor, found on the bit patterns (exponent all ones), or null.
 * One linear pass (16-bit data two values per step), cheap next to reading the bytes.
 */
export function firstNonFinite(t: HostTensor): { index: number; value: string } | null {
  const n = elementCount(t);
  const describe = (notANumber: boolean, negative: boolean) =>
    notANumber ? 'NaN' : negative ? '-Infinity' : 'Infinity';
  if (t.dtype === 'F32') {
    const i = firstAllOnes32(
      view(t, 4, (b, o, len) => new Uint32Array(b, o, len)),
      0x7f800000,
    );
    if (i < 0) return null;
    const x = view(t, 4, (b, o, len) => new Uint32Array(b, o, len))[i]!;
    return { index: i, value: describe((x & 0x007fffff) !== 0, x >>> 31 === 1) };
  }
  const [exponent, mantissa] = t.dtype === 'F16' ? [0x7c00, 0x03ff] : [0x7f80, 0x007f];
  const bits = view(t, 2, (b, o, len) => new Uint16Array(b, o, len));
  // Fast pass over pairs when the bytes allow a 32-bit view; the exact element is found after.
  const pairs = bits.byteOffset % 4 === 0 ? new Uint32Array(bits.buffer, bits.byteOffset, n >> 1) : null;
  if (pairs && firstPairWithAllOnes(pairs, exponent) < 0 && (n % 2 === 0 || (bits[n - 1]! & exponent) !== exponent))
    return null;
  for (let i = 0; i < n; i++) {
    const x = bits[i]!;
    if ((x & exponent) === exponent) return { index: i, value: describe((x & mantissa) !== 0, x >>> 15 === 1) };
  }
  return null;
}

/** Index of the first word either of whose 16-bit halves has all bits of `mask` set, or -1. */
function firstPairWithAllOnes(words: Uint32Array, mask: number): number {
  const high = (mask << 16) >>> 0;
  for (let i = 0; i < words.length; i++) {
    const x = words[i]!;
    if ((x & mask) === mask || (x & high) >>> 0 === high) return i;
  }
  return -1;
}

/** Index of the first word whose bits under `mask` are all set, or -1. */
function firstAllOnes32(words: Uint32Array, mask: number): number {
  const m = mask >>> 0;
  for (let i = 0; i < words.length; i++) if ((words[i]! & m) >>> 0 === m) return i;
  return -1;
}

// ---------------------------------------------------------------------------------------------

export async function loadCheckpoint(spec: string | FileSource, opts: LoadCheckpointOptions = {}): Promise<Checkpoint> {
  const { signal } = opts;
  const source = typeof spec === 'string' ? openSource(spec) : spec;
  signal?.throwIfAborted();

  const config = await readModelConfig(source);
  const files = await listWeightFiles(source);
  const headers = await Promise.all(files.map((file) => readWeightFileHeader(source, file, signal)));
  const planned = planTensors(config, headers);

  // Small files next: a malformed tokenizer should fail before the weights are transferred.
  const [tokenizer, generationConfig] = await Promise.all([
    opts.loadTokenizer === false ? null : loadTokenizerFrom(source),
    readGenerationConfig(source),
  ]);
  if (tokenizer && tokenizer.vocabSize > config.vocabSize) {
    throw new CheckpointError(
      `tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${config.vocabSize}`,
    );
  }

  // Host memory for the tensors we keep: checked before the first byte is allocated.
  let plannedBytes = 0;
  for (const { entry } of planned.values()) plannedBytes += entry.end - entry.begin;
  checkPlannedBytes(plannedBytes, `loading ${planned.size} tensors from ${source.location}`);

  const total = headers.reduce((sum, h) => sum + h.size, 0);
  const report = progressReporter(total, opts.onProgress);
  report(0);
  const tensors = new Map<string, HostTensor>();
  let doneBefore = 0; // bytes of the files already read
  for (const { file, size } of headers) {
    signal?.throwIfAborted();
    const wanted = [...planned.values()].filter((p) => p.file === file);
    for (const tensor of await readTensorData(source, file, wanted, (n) => report(doneBefore + n), signal)) {
      tensors.set(tensor.name, tensor);
    }
    doneBefore += size;
    report(doneBefore);
  }

  // Preserve the config's canonical order for consumers that iterate.
  const ordered = new Map<string, HostTensor>();
  for (const name of planned.keys()) ordered.set(name, tensors.get(name)!);

  const eosTokenIds = [
    ...new Set([
      ...config.eosTokenIds,
      ...(generationConfig?.eosTokenIds ?? []),
      ...(tokenizer ? tokenizer.eosTokenIds() : []),
    ]),
  ];
  return {
    config,
    tensors: ordered,
    tokenizer,
    source: source.location,
    ...(generationConfig ? { generationConfig } : {}),
    eosTokenIds,
  };
}
