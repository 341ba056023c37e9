/**
 * PEFT LoRA adapters in exactly the layout `peft` reads and writes (`PeftModel.save_pretrained` /
 * `PeftModel.from_pretrained`): a folder with
 *
 * - `adapter_config.json`: `{"peft_type": "LORA", "r", "lora_alpha", "target_modules", ...}`
 * - `adapter_model.safetensors`: for every adapted linear layer two tensors,
 *   `base_model.model.<module>.lora_A.weight` [r, in_features] and
 *   `base_model.model.<module>.lora_B.weight` [out_features, r], where `<module>` is the layer's
 *   name inside the transformers model, e.g. `model.layers.3.self_attn.q_proj`.
 *
 * The adapted layer computes `y = W x + b + scale · B (A x)`, scale = lora_alpha / r
 * (lora_alpha / sqrt(r) with use_rslora). Only the attention and MLP projections of the
 * Llama-family decoder can be adapted here (no lm_head / embedding LoRA, no DoRA, no per-module
 * rank_pattern / alpha_pattern).
 */
import { toFloat32 } from './checkpoint';
import { PROJECTIONS, type ModelConfig, type Projection } from './config';
import { isSupportedDtype, readSafetensors, writeSafetensors, type TensorToWrite } from './safetensors';
import { backtrackingRegexReason } from './regex-safety';
import { openSource, type FileSource } from './source';

export interface LoraConfig {
  r: number;
  loraAlpha: number;
  loraDropout: number;
  /**
   * Module names as adapter_config.json lists them (usually projection names such as 'q_proj').
   * When the file gives a regex string instead, this holds the projections it selects and
   * `targetModulesRegex` keeps the original string (written back on save).
   */
  targetModules: string[];
  useRslora: boolean;
  baseModelNameOrPath: string | null;
  bias: 'none';
  /** adapter_config.json's `target_modules` when it was a regex string (matched with re.fullmatch). */
  targetModulesRegex?: string;
}

export interface LoraTensorPair {
  layer: number;
  module: Projection;
  /** lora_A: [r, in_features]. */
  a: { shape: [number, number]; data: Float32Array };
  /** lora_B: [out_features, r]. */
  b: { shape: [number, number]; data: Float32Array };
}

export interface PeftAdapter {
  config: LoraConfig;
  pairs: LoraTensorPair[];
}

export class PeftError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PeftError';
  }
}

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

const ATTENTION_PROJECTIONS: readonly Projection[] = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

/** The multiplier of B·A: alpha/r, or alpha/sqrt(r) for rank-stabilized LoRA. */
export function loraScale(c: LoraConfig): number {
  return c.useRslora ? c.loraAlpha / Math.sqrt(c.r) : c.loraAlpha / c.r;
}

/** The module's name inside a transformers Llama-family model, e.g. 'model.layers.0.mlp.up_proj'. */
export function moduleName(layer: number, module: Projection): string {
  const group = ATTENTION_PROJECTIONS.includes(module) ? 'self_attn' : 'mlp';
  return `model.layers.${layer}.${group}.${module}`;
}

/** The tensor name PEFT saves, e.g. 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'. */
export function peftKey(layer: number, module: Projection, which: 'A' | 'B'): string {
  return `base_model.model.${moduleName(layer, module)}.lora_${which}.weight`;
}

// An adapter name segment ('lora_A.default.weight') never appears in files PEFT saves, but
// hand-made state dicts sometimes carry it; it is accepted and ignored.
const PEFT_KEY =
  /^base_model\.model\.model\.layers\.(\d+)\.(self_attn|mlp)\.([a-z_]+)\.lora_([AB])(?:\.[A-Za-z0-9_-]+)?\.weight$/;

/** Inverse of peftKey; null for anything else (other modules, biases, DoRA vectors, ...). */
export function parsePeftKey(key: string): { layer: number; module: Projection; which: 'A' | 'B' } | null {
  const m = PEFT_KEY.exec(key);
  if (!m) return null;
  const module = m[3] as Projection;
  if (!PROJECTIONS.includes(module)) return null;
  const expectedGroup = ATTENTION_PROJECTIONS.includes(module) ? 'self_attn' : 'mlp';
  if (m[2] !== expectedGroup) return null;
  const layer = Number(m[1]);
  if (!Number.isSafeInteger(layer)) return null;
  return { layer, module, which: m[4] as 'A' | 'B' };
}

/** in/out features of one projection of the base model (nn.Linear weight is [out, in]). */
export function projectionShape(model: ModelConfig, module: Projection): { inFeatures: number; outFeatures: number } {
  const H = model.hiddenSize;
  const q = model.numHeads * model.headDim;
  const kv = model.numKvHeads * model.headDim;
  const I = model.intermediateSize;
  switch (module) {
    case 'q_proj':
      return { inFeatures: H, outFeatures: q };
    case 'k_proj':
    case 'v_proj':
      return { inFeatures: H, outFeatures: kv };
    case 'o_proj':
      return { inFeatures: q, outFeatures: H };
    case 'gate_proj':
    case 'up_proj':
      return { inFeatures: H, outFeatures: I };
    case 'down_proj':
      return { inFeatures: I, outFeatures: H };
  }
}

/**
 * The projection a target_modules entry names, by PEFT's rule (the module's name equals the entry
 * or ends with '.' + entry), or null when it names something else.
 */
export function targetProjection(target: string): Projection | null {
  const last = target.slice(target.lastIndexOf('.') + 1);
  if (!(PROJECTIONS as readonly string[]).includes(last)) return null;
  // A qualified entry must also agree with where the projection lives ('mlp.q_proj' names nothing).
  const parts = target.split('.');
  if (parts.length >= 2) {
    const group = parts[parts.length - 2];
    const expected = ATTENTION_PROJECTIONS.includes(last as Projection) ? 'self_attn' : 'mlp';
    if (group !== expected) return null;
  }
  return last as Projection;
}

function unsupportedTargetReason(target: string, model: ModelConfig): string {
  const last = target.slice(target.lastIndexOf('.') + 1);
  if (last === 'lm_head') return `LoRA on lm_head is not supported (only the projections ${PROJECTIONS.join(', ')})`;
  if (last === 'embed_tokens' || last === 'wte') {
    return `LoRA on the token embedding (${last}) is not supported (only the projections ${PROJECTIONS.join(', ')})`;
  }
  return (
    `target module "${target}" is not a linear projection of ${model.hfArchitecture} ` +
    `(its LoRA-able modules are ${PROJECTIONS.join(', ')}); was this adapter made for another architecture?`
  );
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/**
 * Checks an adapter against the base model it is meant for. Throws a PeftError naming the
 * offending tensor or field; returns normally when every pair fits.
 */
export function validateAdapter(adapter: PeftAdapter, model: ModelConfig): void {
  const { config, pairs } = adapter;
  const r = config.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0) {
    throw new PeftError(`adapter_config.json: "r" must be a positive integer, got ${JSON.stringify(r)}`);
  }
  if (typeof config.loraAlpha !== 'number' || !Number.isFinite(config.loraAlpha)) {
    throw new PeftError(
      `adapter_config.json: "lora_alpha" must be a finite number, got ${JSON.stringify(config.loraAlpha)}`,
    );
  }
  if (!(config.loraDropout >= 0 && config.loraDropout < 1)) {
    throw new PeftError(
      `adapter_config.json: "lora_dropout" must be in [0, 1), got ${JSON.stringify(config.loraDropout)}`,
    );
  }
  if (config.targetModules.length === 0) throw new PeftError('adapter_config.json: "target_modules" is empty');
  const targeted = new Set<Projection>();
  for (const target of config.targetModules) {
    const projection = targetProjection(target);
    if (projection === null) throw new PeftError(`adapter: ${unsupportedTargetReason(target, model)}`);
    targeted.add(projection);
  }

  const seen = new Set<string>();
  for (const pair of pairs) {
    const { layer, module } = pair;
    const where = moduleName(layer, module);
    if (!Number.isInteger(layer) || layer < 0 || layer >= model.numLayers) {
      throw new PeftError(`adapter has tensors for ${where}, but the model has only ${model.numLayers} layers`);
    }
    if (!(PROJECTIONS as readonly string[]).includes(module)) {
      throw new PeftError(`adapter: ${unsupportedTargetReason(String(module), model)}`);
    }
    if (seen.has(where)) throw new PeftError(`adapter has two LoRA pairs for ${where}`);
    seen.add(where);
    if (!targeted.has(module)) {
      throw new PeftError(
        `adapter has tensors for ${where}, but target_modules (${config.targetModules.join(', ')}) does not include ${module}`,
      );
    }
    const { inFeatures, outFeatures } = projectionShape(model, module);
    const check = (which: 'A' | 'B', got: { shape: readonly number[]; data: Float32Array }, want: [number, number]) => {
      const name = peftKey(layer, module, which);
      if (got.shape.length !== 2 || got.shape[0] !== want[0] || got.shape[1] !== want[1]) {
        const dims =
          which === 'A'
            ? `[r, in_features] with r=${r}, ${module} in_features=${inFeatures}`
            : `[out_features, r] with ${module} out_features=${outFeatures}, r=${r}`;
        throw new PeftError(`${name} has shape ${shapeText(got.shape)}, expected ${shapeText(want)} (${dims})`);
      }
      if (got.data.length !== want[0] * want[1]) {
        throw new PeftError(
          `${name}: shape ${shapeText(want)} needs ${want[0] * want[1]} values, got ${got.data.length}`,
        );
      }
    };
    if (!pair.a) throw new PeftError(`${peftKey(layer, module, 'A')} is missing (its lora_B is present)`);
    if (!pair.b) throw new PeftError(`${peftKey(layer, module, 'B')} is missing (its lora_A is present)`);
    check('A', pair.a, [r, inFeatures]);
    check('B', pair.b, [outFeatures, r]);
  }
}

// ---------------------------------------------------------------------------------------------
// adapter_config.json

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isEmptyPattern(v: unknown): boolean {
  return v === undefined || v === null || (isObject(v) && Object.keys(v).length === 0);
}

/** Longest target_modules regex accepted, and most unbounded quantifiers in it. */
const MAX_TARGET_REGEX_CHARS = 1000;
const MAX_TARGET_REGEX_STARS = 4;

/**
 * Python `re` → JS for the patterns target_modules uses in practice; fullmatch semantics. The
 * pattern comes from a stranger's file and JS regexes backtrack, so shapes that can take
 * exponential time (nested quantifiers, backreferences) are refused, and so are more than a few
 * unbounded quantifiers (polynomial time). It is only ever run against the model's own module
 * names (`model.layers.<i>.<group>.<proj>`, under 64 characters), so what passes is fast.
 */
function compileFullMatch(pattern: string): RegExp {
  const where = `adapter_config.json: target_modules regex ${JSON.stringify(pattern.slice(0, 120))}`;
  if (pattern.length > MAX_TARGET_REGEX_CHARS)
    throw new PeftError(
      `${where} is ${pattern.length} characters long; at most ${MAX_TARGET_REGEX_CHARS} are supported`,
    );
  const reason = backtrackingRegexReason(pattern);
  if (reason)
    throw new PeftError(
      `${where} ${reason}; use a list of module names instead (PEFT matches them exactly or as a '.'-suffix)`,
    );
  const stars =
    pattern
      .replace(/\\./g, '')
      .replace(/\[(?:\\.|[^\]])*\]/g, 'c')
      .match(/[*+]|\{\d+,\}/g)?.length ?? 0;
  if (stars > MAX_TARGET_REGEX_STARS)
    throw new PeftError(`${where} has ${stars} unbounded repetitions; at most ${MAX_TARGET_REGEX_STARS} are supported`);
  try {
    return new RegExp(`^(?:${pattern})$`);
  } catch (e) {
    throw new PeftError(
      `adapter_config.json: target_modules regex ${JSON.stringify(pattern)} does not compile: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

interface ParsedConfig {
  config: LoraConfig;
  /**
   * For a regex (or absent) target_modules: the projections it selects are those of the file's
   * pairs, each of which must match.
   */
  regex: RegExp | null;
}

/** adapter_config.json → LoraConfig; rejects features this runtime does not implement. */
export function parseAdapterConfig(json: unknown): ParsedConfig {
  const file = ADAPTER_CONFIG_FILE;
  if (!isObject(json)) throw new PeftError(`${file}: expected a JSON object`);
  const peftType = json.peft_type ?? 'LORA';
  if (peftType !== 'LORA')
    throw new PeftError(`${file}: peft_type ${JSON.stringify(peftType)} is not supported (only LORA)`);
  const r = json.r ?? 8; // LoraConfig's default
  if (typeof r !== 'number' || !Number.isInteger(r) || r <= 0 || r > 65536) {
    throw new PeftError(`${file}: "r" must be an integer in [1, 65536], got ${JSON.stringify(r)}`);
  }
  const loraAlpha = json.lora_alpha ?? 8;
  if (typeof loraAlpha !== 'number' || !Number.isFinite(loraAlpha)) {
    throw new PeftError(`${file}: "lora_alpha" must be a number, got ${JSON.stringify(loraAlpha)}`);
  }
  const loraDropout = json.lora_dropout ?? 0;
  if (typeof loraDropout !== 'number' || !(loraDropout >= 0 && loraDropout < 1)) {
    throw new PeftError(`${file}: "lora_dropout" must be a number in [0, 1), got ${JSON.stringify(loraDropout)}`);
  }
  for (const key of ['rank_pattern', 'alpha_pattern'] as const) {
    if (!isEmptyPattern(json[key])) {
      throw new PeftError(
        `${file}: "${key}" ${JSON.stringify(json[key])} is not supported (one rank and alpha for every module)`,
      );
    }
  }
  const unsupportedFlags: [string, string][] = [
    ['use_dora', 'DoRA (use_dora) is not supported'],
    ['fan_in_fan_out', 'fan_in_fan_out (Conv1D-style GPT-2 weights) is not supported'],
    ['lora_bias', 'lora_bias is not supported'],
  ];
  for (const [key, message] of unsupportedFlags) if (json[key] === true) throw new PeftError(`${file}: ${message}`);
  const bias = json.bias ?? 'none';
  if (bias !== 'none') throw new PeftError(`${file}: bias ${JSON.stringify(bias)} is not supported (only "none")`);
  const modulesToSave = json.modules_to_save;
  if (Array.isArray(modulesToSave) && modulesToSave.length > 0) {
    throw new PeftError(
      `${file}: modules_to_save ${JSON.stringify(modulesToSave)} is not supported (full copies of modules)`,
    );
  }
  const useRslora = json.use_rslora ?? false;
  if (typeof useRslora !== 'boolean') throw new PeftError(`${file}: "use_rslora" must be a boolean`);
  const base = json.base_model_name_or_path;

  let targetModules: string[];
  let regex: RegExp | null = null;
  let targetModulesRegex: string | undefined;
  const targets = json.target_modules;
  if (typeof targets === 'string') {
    if (targets === 'all-linear') {
      // PEFT expands it to every linear layer but the output head: all seven projections here.
      targetModules = [...PROJECTIONS];
      targetModulesRegex = targets;
    } else {
      regex = compileFullMatch(targets);
      targetModulesRegex = targets;
      targetModules = []; // filled in from the tensors once they are read
    }
  } else if (Array.isArray(targets) && targets.every((t) => typeof t === 'string')) {
    if (targets.length > 1000 || targets.some((t) => t.length > 256)) {
      throw new PeftError(
        `${file}: "target_modules" lists ${targets.length} names (at most 1000, each at most 256 characters)`,
      );
    }
    targetModules = targets as string[];
  } else if (targets === undefined || targets === null) {
    // PEFT fills target_modules in when it wraps the model, so saved adapters carry it; for a
    // hand-written config without it, the modules present in the file decide.
    regex = /^/;
    targetModules = [];
  } else {
    throw new PeftError(
      `${file}: "target_modules" must be a list of module names or a regex string, got ${JSON.stringify(targets)}`,
    );
  }

  const config: LoraConfig = {
    r,
    loraAlpha,
    loraDropout,
    targetModules,
    useRslora,
    baseModelNameOrPath: typeof base === 'string' ? base : null,
    bias: 'none',
    ...(targetModulesRegex !== undefined ? { targetModulesRegex } : {}),
  };
  return { config, regex };
}

/** adapter_config.json as PEFT (0.13+) writes it: sorted keys, two-space indent. */
export function adapterConfigJson(config: LoraConfig): string {
  const json: Json = {
    alpha_pattern: {},
    auto_mapping: null,
    base_model_name_or_path: config.baseModelNameOrPath,
    bias: 'none',
    exclude_modules: null,
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: config.loraAlpha,
    lora_bias: false,
    lora_dropout: config.loraDropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    r: config.r,
    rank_pattern: {},
    revision: null,
    target_modules: config.targetModulesRegex ?? [...config.targetModules],
    task_type: 'CAUSAL_LM',
    use_dora: false,
    use_rslora: config.useRslora,
  };
  const sorted = Object.fromEntries(
    Object.keys(json)
      .sort()
      .map((k) => [k, json[k]]),
  );
  return JSON.stringify(sorted, null, 2);
}

// ---------------------------------------------------------------------------------------------
// adapter_model.safetensors

function unsupportedTensorReason(key: string): string {
  if (/lora_magnitude_vector/.test(key)) return 'DoRA magnitude vectors are not supported';
  if (/lora_embedding_[AB]|embed_tokens/.test(key)) return 'LoRA on the token embedding is not supported';
  if (/(^|\.)lm_head\./.test(key)) return 'LoRA on lm_head is not supported';
  if (/\.bias$/.test(key)) return 'bias tensors (bias != "none" / lora_bias) are not supported';
  if (/\.lora_[AB]\./.test(key)) {
    return `it does not adapt a projection (${PROJECTIONS.join(', ')}) of a Llama-family layer`;
  }
  return 'only base_model.model.model.layers.<i>.(self_attn|mlp).<proj>.lora_A/lora_B.weight tensors are understood';
}

/** The pairs in a PEFT adapter_model.safetensors file (any float dtype, widened to f32). */
export function readAdapterTensors(bytes: Uint8Array, fileName = ADAPTER_WEIGHTS_FILE): LoraTensorPair[] {
  let tensors: TensorToWrite[];
  try {
    tensors = readSafetensors(bytes, { fileName, allowUnsupportedDtypes: true }).tensors;
  } catch (e) {
    throw new PeftError((e as Error).message, { cause: e });
  }
  const halves = new Map<
    string,
    { layer: number; module: Projection; A?: LoraTensorPair['a']; B?: LoraTensorPair['b'] }
  >();
  for (const t of tensors) {
    const key = parsePeftKey(t.name);
    if (!key) throw new PeftError(`${fileName}: unsupported tensor ${t.name}: ${unsupportedTensorReason(t.name)}`);
    if (!isSupportedDtype(t.dtype))
      throw new PeftError(`${fileName}: ${t.name} has dtype ${t.dtype}; supported: F32, F16, BF16`);
    if (t.shape.length !== 2)
      throw new PeftError(`${fileName}: ${t.name} has shape ${shapeText(t.shape)}, expected a matrix`);
    const id = moduleName(key.layer, key.module);
    let entry = halves.get(id);
    if (!entry) halves.set(id, (entry = { layer: key.layer, module: key.module }));
    if (entry[key.which]) throw new PeftError(`${fileName}: two lora_${key.which} tensors for ${id}`);
    // toFloat32 views F32 data in place; copy so the pair owns its values.
    const data = Float32Array.from(toFloat32({ name: t.name, dtype: t.dtype, shape: t.shape, data: t.data }));
    const bad = data.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0)
      throw new PeftError(
        `${fileName}: ${t.name} holds non-finite values (${data[bad]} at element ${bad} of ${data.length})`,
      );
    entry[key.which] = { shape: [t.shape[0], t.shape[1]], data };
  }
  const pairs: LoraTensorPair[] = [];
  for (const [id, entry] of halves) {
    if (!entry.A) throw new PeftError(`${fileName}: ${id}.lora_A.weight is missing (its lora_B is present)`);
    if (!entry.B) throw new PeftError(`${fileName}: ${id}.lora_B.weight is missing (its lora_A is present)`);
    pairs.push({ layer: entry.layer, module: entry.module, a: entry.A, b: entry.B });
  }
  pairs.sort((x, y) => x.layer - y.layer || PROJECTIONS.indexOf(x.module) - PROJECTIONS.indexOf(y.module));
  return pairs;
}

/** adapter_config.json + adapter_model.safetensors from a directory, URL, HF repo id or FileSource. */
export async function loadPeftAdapter(spec: string | FileSource): Promise<PeftAdapter> {
  const source = typeof spec === 'string' ? openSource(spec) : spec;
  if (!(await source.exists(ADAPTER_CONFIG_FILE))) {
    throw new PeftError(`no ${ADAPTER_CONFIG_FILE} in ${source.location} (not a PEFT adapter folder?)`);
  }
  let json: unknown;
  const text = await source.readText(ADAPTER_CONFIG_FILE);
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new PeftError(`${source.describe(ADAPTER_CONFIG_FILE)}: invalid JSON (${(e as Error).message})`, {
      cause: e,
    });
  }
  const { config, regex } = parseAdapterConfig(json);
  if (!(await source.exists(ADAPTER_WEIGHTS_FILE))) {
    const legacy = (await source.exists('adapter_model.bin'))
      ? ' (adapter_model.bin, the pickle format, is not supported)'
      : '';
    throw new PeftError(`no ${ADAPTER_WEIGHTS_FILE} in ${source.location}${legacy}`);
  }
  const size = await source.size(ADAPTER_WEIGHTS_FILE);
  const bytes = await source.readRange(ADAPTER_WEIGHTS_FILE, 0, size);
  const pairs = readAdapterTensors(bytes);
  if (pairs.length === 0) throw new PeftError(`${source.describe(ADAPTER_WEIGHTS_FILE)} holds no LoRA tensors`);

  if (regex) {
    // The projections the regex selects among the modules PEFT wrapped (the file's pairs).
    const selected = new Set<Projection>();
    for (const pair of pairs) {
      const name = moduleName(pair.layer, pair.module);
      if (!regex.test(name)) {
        throw new PeftError(
          `${ADAPTER_WEIGHTS_FILE} has tensors for ${name}, which target_modules ${JSON.stringify(config.targetModulesRegex)} does not match`,
        );
      }
      selected.add(pair.module);
    }
    config.targetModules = PROJECTIONS.filter((p) => selected.has(p));
  }
  return { config, pairs };
}

/** The two files of a PEFT adapter folder, tensors in F32 (with PEFT's {"format": "pt"} metadata). */
export function serializePeftAdapter(adapter: PeftAdapter): {
  'adapter_config.json': string;
  'adapter_model.safetensors': Uint8Array;
} {
  const tensors: TensorToWrite[] = [];
  const bytesOf = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  for (const pair of adapter.pairs) {
    tensors.push({
      name: peftKey(pair.layer, pair.module, 'A'),
      dtype: 'F32',
      shape: [...pair.a.shape],
      data: bytesOf(pair.a.data),
    });
    tensors.push({
      name: peftKey(pair.layer, pair.module, 'B'),
      dtype: 'F32',
      shape: [...pair.b.shape],
      data: bytesOf(pair.b.data),
    });
  }
  return {
    'adapter_config.json': adapterConfigJson(adapter.config),
    'adapter_model.safetensors': writeSafetensors(tensors, { format: 'pt' }),
  };
}

/** Writes the adapter folder (Node only); creates `dir` if needed. */
export async function savePeftAdapter(dir: string, adapter: PeftAdapter): Promise<void> {
  const [fs, path] = await Promise.all([import('node:fs/promises'), import('node:path')]);
  const files = serializePeftAdapter(adapter);
  await fs.mkdir(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    // Write then rename, so a crash never leaves a half-written adapter behind.
    const final = path.join(dir, name);
    const temp = `${final}.tmp-${process.pid}`;
    await fs.writeFile(temp, content);
    await fs.rename(temp, final);
  }
}

/**
 * A fresh pair as PEFT initializes it (init_lora_weights=True): lora_A by nn.Linear's
 * kaiming_uniform_(a=√5), i.e. gain = √(2/(1+a²)) = √(1/3), bound = gain·√(3/fan_in) = 1/√in,
 * A ~ U(-bound, bound); lora_B zeros, so the adapter starts as the identity.
 * `rng` returns uniform numbers in [0, 1).
 */
export function initLoraPair(
  layer: number,
  module: Projection,
  r: number,
  inFeatures: number,
  outFeatures: number,
  rng: () => number,
): LoraTensorPair {
  const gain = Math.sqrt(2 / (1 + 5));
  const bound = gain * Math.sqrt(3 / inFeatures);
  const a = new Float32Array(r * inFeatures);
  for (let i = 0; i < a.length; i++) a[i] = (2 * rng() - 1) * bound;
  return {
    layer,
    module,
    a: { shape: [r, inFeatures], data: a },
    b: { shape: [outFeatures, r], data: new Float32Array(outFeatures * r) },
  };
}
