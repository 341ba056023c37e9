/**
 * Hugging Face `config.json` → one normalized, validated ModelConfig for the decoder-only
 * architectures this runtime implements, plus the derived facts every consumer needs
 * (RoPE inverse frequencies, the exact tensor names and shapes a checkpoint must contain).
 */

export type Architecture = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export interface RopeScaling {
  type: 'llama3';
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
}

export interface ModelConfig {
  architecture: Architecture;
  /** `architectures[0]` as written in config.json, e.g. 'Qwen2ForCausalLM'. */
  hfArchitecture: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (always for Qwen2; `attention_bias` for Llama/Qwen3; never for Mistral). */
  attentionBias: boolean;
  /**
   * o_proj carries a bias. In transformers' Llama and Qwen3, `attention_bias` adds a bias to all
   * four projections (Qwen2 biases only q/k/v), so this is true exactly for Llama/Qwen3 with
   * `attention_bias: true`.
   */
  outputBias: boolean;
  /** Per-head RMSNorm on q and k before RoPE (Qwen3). */
  qkNorm: boolean;
  bosTokenId: number | null;
  /** `eos_token_id` may be an int or a list in config.json; always a list here. */
  eosTokenIds: number[];
  /** Window size when sliding-window attention is actually enabled, else null. */
  slidingWindow: number | null;
  /** `torch_dtype` (or the newer `dtype`) as written, e.g. 'bfloat16'. */
  torchDtype: string | null;
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(`config.json: ${message}`);
    this.name = 'ConfigError';
  }
}

const ARCHITECTURES: Record<string, Architecture> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};

export const SUPPORTED_HF_ARCHITECTURES: readonly string[] = Object.keys(ARCHITECTURES);

/** transformers' per-class defaults for fields a config.json may omit. */
const DEFAULTS: Record<Architecture, { maxPositionEmbeddings: number; rmsNormEps: number; ropeTheta: number }> = {
  llama: { maxPositionEmbeddings: 2048, rmsNormEps: 1e-6, ropeTheta: 10000 },
  mistral: { maxPositionEmbeddings: 4096 * 32, rmsNormEps: 1e-6, ropeTheta: 10000 },
  qwen2: { maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, ropeTheta: 10000 },
  qwen3: { maxPositionEmbeddings: 32768, rmsNormEps: 1e-6, ropeTheta: 10000 },
};

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Upper bounds on config numbers: each far above any released model of these architectures
 * (largest vocabularies ~262k, hidden 16k, 126 layers, 10M context), low enough that a hostile
 * config fails here instead of allocating until the process dies.
 */
export const CONFIG_LIMITS: Readonly<Record<string, number>> = {
  vocab_size: 1 << 21,
  hidden_size: 1 << 16,
  intermediate_size: 1 << 18,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  num_key_value_heads: 1024,
  head_dim: 1024,
  max_position_embeddings: 1 << 24,
  sliding_window: 1 << 24,
};

/** Largest parameter count a config may imply (about 1.1 trillion; real limits come from memory). */
export const MAX_PARAMETERS = 2 ** 40;

function positiveInt(json: Json, key: string, fallback?: number): number {
  const v = json[key] ?? fallback;
  if (v === undefined) throw new ConfigError(`missing required field "${key}"`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) {
    throw new ConfigError(`"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  }
  const max = CONFIG_LIMITS[key];
  if (max !== undefined && v > max) throw new ConfigError(`"${key}" is ${v}, above the supported maximum ${max}`);
  return v;
}

function positiveNumber(json: Json, key: string, fallback?: number, where = ''): number {
  const v = json[key] ?? fallback;
  if (v === undefined) throw new ConfigError(`missing required field "${where}${key}"`);
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ConfigError(`"${where}${key}" must be a positive number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function optionalBool(json: Json, key: string, fallback: boolean): boolean {
  const v = json[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new ConfigError(`"${key}" must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

function tokenId(v: unknown, key: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= 2 ** 31) {
    throw new ConfigError(`"${key}" must be a non-negative integer (or a list of them), got ${JSON.stringify(v)}`);
  }
  return v;
}

/** int | int[] | null → list; shared with generation_config.json, which uses the same convention. */
export function tokenIdList(v: unknown, key = 'eos_token_id'): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (list.length > 1024) throw new ConfigError(`"${key}" lists ${list.length} ids; at most 1024 are supported`);
  return [...new Set(list.map((id) => tokenId(id, key)))];
}

/**
 * RoPE settings live in `rope_scaling` (+ top-level `rope_theta`) in transformers ≤4.x and in
 * `rope_parameters` (which also holds `rope_theta`) in newer configs; both spell the kind as
 * `rope_type`, older ones as `type`.
 */
function parseRope(json: Json, defaultTheta: number): { ropeTheta: number; ropeScaling: RopeScaling | null } {
  const params = isObject(json.rope_parameters) ? json.rope_parameters : null;
  const scaling = params ?? json.rope_scaling ?? null;
  const ropeTheta = positiveNumber(
    params && params.rope_theta !== undefined ? params : json,
    'rope_theta',
    defaultTheta,
  );
  if (scaling === null) return { ropeTheta, ropeScaling: null };
  if (!isObject(scaling))
    throw new ConfigError(`"rope_scaling" must be an object or null, got ${JSON.stringify(scaling)}`);
  const kind = scaling.rope_type ?? scaling.type ?? 'default';
  if (kind === 'default') return { ropeTheta, ropeScaling: null };
  if (kind !== 'llama3') {
    throw new ConfigError(`unsupported RoPE scaling type ${JSON.stringify(kind)}; supported: none/"default", "llama3"`);
  }
  const where = params ? 'rope_parameters.' : 'rope_scaling.';
  const ropeScaling: RopeScaling = {
    type: 'llama3',
    factor: positiveNumber(scaling, 'factor', undefined, where),
    lowFreqFactor: positiveNumber(scaling, 'low_freq_factor', undefined, where),
    highFreqFactor: positiveNumber(scaling, 'high_freq_factor', undefined, where),
    originalMaxPositionEmbeddings: positiveNumber(scaling, 'original_max_position_embeddings', undefined, where),
  };
  if (ropeScaling.highFreqFactor <= ropeScaling.lowFreqFactor) {
    throw new ConfigError(`llama3 RoPE scaling needs high_freq_factor > low_freq_factor`);
  }
  return { ropeTheta, ropeScaling };
}

export function parseConfig(json: unknown): ModelConfig {
  if (!isObject(json)) throw new ConfigError('expected a JSON object');
  const archList = json.architectures;
  const hfArchitecture = Array.isArray(archList) && typeof archList[0] === 'string' ? archList[0] : undefined;
  if (!hfArchitecture) {
    throw new ConfigError(`missing "architectures"; supported: ${SUPPORTED_HF_ARCHITECTURES.join(', ')}`);
  }
  // Own keys only: "constructor" or "__proto__" must not find Object.prototype's members.
  const architecture = Object.hasOwn(ARCHITECTURES, hfArchitecture) ? ARCHITECTURES[hfArchitecture] : undefined;
  if (!architecture) {
    throw new ConfigError(
      `unsupported architecture "${hfArchitecture}"; supported: ${SUPPORTED_HF_ARCHITECTURES.join(', ')}`,
    );
  }
  const defaults = DEFAULTS[architecture];

  const vocabSize = positiveInt(json, 'vocab_size');
  const hiddenSize = positiveInt(json, 'hidden_size');
  const intermediateSize = positiveInt(json, 'intermediate_size');
  const numLayers = positiveInt(json, 'num_hidden_layers');
  const numHeads = positiveInt(json, 'num_attention_heads');
  const numKvHeads = positiveInt(json, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new ConfigError(
      `num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`,
    );
  }
  if (json.head_dim == null && architecture !== 'qwen3' && hiddenSize % numHeads !== 0) {
    throw new ConfigError(
      `hidden_size (${hiddenSize}) is not divisible by num_attention_heads (${numHeads}) and no head_dim is given`,
    );
  }
  // Qwen3Config defaults head_dim to 128; the others derive it from hidden_size.
  const defaultHeadDim = architecture === 'qwen3' ? 128 : hiddenSize / numHeads;
  const headDim = positiveInt(json, 'head_dim', defaultHeadDim);
  if (headDim % 2 !== 0) throw new ConfigError(`head_dim must be even for RoPE, got ${headDim}`);

  if (json.mlp_bias === true) throw new ConfigError('"mlp_bias": true is not supported');
  const hiddenAct = json.hidden_act ?? 'silu';
  if (hiddenAct !== 'silu') throw new ConfigError(`unsupported hidden_act ${JSON.stringify(hiddenAct)}; only "silu"`);

  const { ropeTheta, ropeScaling } = parseRope(json, defaults.ropeTheta);

  // Qwen2 configs carry sliding_window even when it is off; only use_sliding_window turns it on.
  let slidingWindow: number | null = null;
  const usesSlidingWindow = architecture === 'mistral' ? true : json.use_sliding_window === true;
  if (usesSlidingWindow && json.sliding_window != null) slidingWindow = positiveInt(json, 'sliding_window');

  // Mistral's attention has no bias switch; Qwen2 always biases q/k/v.
  const attentionBias =
    architecture === 'qwen2' ? true : architecture === 'mistral' ? false : optionalBool(json, 'attention_bias', false);

  const bosTokenId = json.bos_token_id == null ? null : tokenId(json.bos_token_id, 'bos_token_id');
  const dtype = json.torch_dtype ?? json.dtype ?? null;

  const rmsNormEps = positiveNumber(json, 'rms_norm_eps', defaults.rmsNormEps);
  if (rmsNormEps >= 1) throw new ConfigError(`"rms_norm_eps" must be below 1, got ${rmsNormEps}`);
  const config: ModelConfig = {
    architecture,
    hfArchitecture,
    vocabSize,
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps,
    ropeTheta,
    ropeScaling,
    maxPositionEmbeddings: positiveInt(json, 'max_position_embeddings', defaults.maxPositionEmbeddings),
    tieWordEmbeddings: optionalBool(json, 'tie_word_embeddings', false),
    attentionBias,
    outputBias: attentionBias && (architecture === 'llama' || architecture === 'qwen3'),
    qkNorm: architecture === 'qwen3',
    bosTokenId,
    eosTokenIds: tokenIdList(json.eos_token_id),
    slidingWindow,
    torchDtype: typeof dtype === 'string' ? dtype : null,
  };
  const parameters = parameterCount(config);
  if (parameters > MAX_PARAMETERS) {
    throw new ConfigError(
      `the config implies ${parameters.toExponential(2)} parameters, above the supported maximum ${MAX_PARAMETERS.toExponential(2)}`,
    );
  }
  return config;
}

/** Parameters the config implies (every tensor of expectedTensors), computed without listing them. */
export function parameterCount(cfg: ModelConfig): number {
  const H = cfg.hiddenSize;
  const q = cfg.numHeads * cfg.headDim;
  const kv = cfg.numKvHeads * cfg.headDim;
  const I = cfg.intermediateSize;
  let perLayer = 2 * H + q * H + 2 * kv * H + H * q + 3 * I * H;
  if (cfg.attentionBias) perLayer += q + 2 * kv;
  if (cfg.outputBias) perLayer += H;
  if (cfg.qkNorm) perLayer += 2 * cfg.headDim;
  return cfg.vocabSize * H * (cfg.tieWordEmbeddings ? 1 : 2) + cfg.numLayers * perLayer + H;
}

/**
 * Memory this process may reasonably plan to use: 3/4 of RAM under Node; 8 GiB in a browser,
 * which does not say (navigator.deviceMemory stops at 8 GB) and fails on its own past that.
 */
export function memoryBudgetBytes(): number {
  const getBuiltin = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process
    ?.getBuiltinModule;
  const os = getBuiltin?.('node:os') as { totalmem(): number } | undefined;
  return os ? Math.floor(os.totalmem() * 0.75) : 8 * 2 ** 30;
}

export class PlannedMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlannedMemoryError';
  }
}

/** Throws before allocating when `bytes` is beyond the budget, naming what wanted them. */
export function checkPlannedBytes(bytes: number, what: string, budget = memoryBudgetBytes()): void {
  if (!(bytes <= budget)) {
    const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
    throw new PlannedMemoryError(
      `${what} needs ${gib(bytes)}, more than the ${gib(budget)} this machine can give it; refusing before allocating`,
    );
  }
}

/**
 * headDim/2 RoPE inverse frequencies, as transformers' `_compute_default_rope_parameters` and
 * `_compute_llama3_parameters` define them. Evaluated in float64 and rounded once to float32
 * (transformers evaluates in float32, so the last bit may differ from a given torch build).
 */
export function ropeInvFreq(cfg: ModelConfig): Float32Array {
  // transformers computes these in float32 (arange cast to float, pow and reciprocal in float32);
  // rounding after every operation reproduces its values to the bit in practice, where a float64
  // computation rounded once differs in the last bit for a third of the frequencies.
  const f = Math.fround;
  const half = cfg.headDim / 2;
  const out = new Float32Array(half);
  const scaling = cfg.ropeScaling;
  for (let i = 0; i < half; i++) {
    let invFreq = f(1 / f(f(cfg.ropeTheta) ** f(f(2 * i) / cfg.headDim)));
    if (scaling) {
      const oldContext = scaling.originalMaxPositionEmbeddings;
      const lowFreqWavelen = oldContext / scaling.lowFreqFactor;
      const highFreqWavelen = oldContext / scaling.highFreqFactor;
      const wavelen = f((2 * Math.PI) / invFreq);
      if (wavelen > lowFreqWavelen) {
        invFreq = f(invFreq / scaling.factor); // long wavelengths: fully interpolated
      } else if (wavelen >= highFreqWavelen) {
        // Medium band: blend between interpolated and original frequencies.
        const smooth = f(
          (f(oldContext / wavelen) - scaling.lowFreqFactor) / (scaling.highFreqFactor - scaling.lowFreqFactor),
        );
        invFreq = f(f(f(1 - smooth) * invFreq) / scaling.factor + f(smooth * invFreq));
      } // short wavelengths (< highFreqWavelen): unchanged
    }
    out[i] = invFreq;
  }
  return out;
}

/** The linear projections of a Llama-family block, by their HF module names (what LoRA adapters target). */
export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type Projection = (typeof PROJECTIONS)[number];

/** Every tensor the model needs, by HF name, with its shape, in checkpoint order. */
export function expectedTensors(cfg: ModelConfig): Map<string, number[]> {
  const H = cfg.hiddenSize;
  const I = cfg.intermediateSize;
  const qDim = cfg.numHeads * cfg.headDim;
  const kvDim = cfg.numKvHeads * cfg.headDim;
  const tensors = new Map<string, number[]>();
  tensors.set('model.embed_tokens.weight', [cfg.vocabSize, H]);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;
    tensors.set(`${p}input_layernorm.weight`, [H]);
    tensors.set(`${p}self_attn.q_proj.weight`, [qDim, H]);
    tensors.set(`${p}self_attn.k_proj.weight`, [kvDim, H]);
    tensors.set(`${p}self_attn.v_proj.weight`, [kvDim, H]);
    tensors.set(`${p}self_attn.o_proj.weight`, [H, qDim]);
    if (cfg.attentionBias) {
      tensors.set(`${p}self_attn.q_proj.bias`, [qDim]);
      tensors.set(`${p}self_attn.k_proj.bias`, [kvDim]);
      tensors.set(`${p}self_attn.v_proj.bias`, [kvDim]);
    }
    if (cfg.outputBias) tensors.set(`${p}self_attn.o_proj.bias`, [H]);
    if (cfg.qkNorm) {
      tensors.set(`${p}self_attn.q_norm.weight`, [cfg.headDim]);
      tensors.set(`${p}self_attn.k_norm.weight`, [cfg.headDim]);
    }
    tensors.set(`${p}post_attention_layernorm.weight`, [H]);
    tensors.set(`${p}mlp.gate_proj.weight`, [I, H]);
    tensors.set(`${p}mlp.up_proj.weight`, [I, H]);
    tensors.set(`${p}mlp.down_proj.weight`, [H, I]);
  }
  tensors.set('model.norm.weight', [H]);
  if (!cfg.tieWordEmbeddings) tensors.set('lm_head.weight', [cfg.vocabSize, H]);
  return tensors;
}
