/**
 * Test fixtures in the exact Hugging Face on-disk layout: a tiny, seeded-random model for each
 * supported architecture (config.json, safetensors single-file or sharded with index,
 * generation_config.json) plus a real byte-level BPE tokenizer.json/tokenizer_config.json with a
 * ChatML chat template. Also a static HTTP server that can mimic the Hub and misbehave on demand.
 */
import { fnv1a } from '../../src/util/hash';
import { mulberry32 } from '../../src/util/random';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import type { AddressInfo } from 'node:net';
import { expectedTensors, parseConfig } from '../../src/formats/config';
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/formats/dtype';
import { writeSafetensors, type TensorToWrite } from '../../src/formats/safetensors';

export type TinyArch = 'llama' | 'mistral' | 'qwen2' | 'qwen3';

export interface TinyModelOptions {
  arch: TinyArch;
  dtype?: 'F32' | 'BF16' | 'F16';
  /** tie_word_embeddings; default true for qwen2/qwen3 (as in the small Qwen releases), false otherwise. */
  tied?: boolean;
  /** Split the weights over two files plus model.safetensors.index.json. */
  sharded?: boolean;
  seed?: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  headDim?: number;
  intermediate?: number;
  vocab?: number;
  /** llama only: a llama3 rope_scaling block (factor 8, original context 64 so it bites at tiny sizes). */
  ropeScaling?: boolean;
  ropeTheta?: number;
  /** Also write tensors the loader must ignore: a rotary inv_freq buffer and, if tied, an lm_head copy. */
  extraTensors?: boolean;
}

/** config.json as written (real HF field names). */
export type HFConfigJson = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

function normalSampler(seed: number): () => number {
  const uniform = mulberry32(seed);
  return () => {
    const u = Math.max(uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  };
}

/** Stable per-tensor seed so adding or dropping one tensor does not reshuffle the others. */
function hashName(name: string, seed: number): number {
  return fnv1a(name, 0x811c9dc5 ^ seed);
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

/** GPT-2's bytes_to_unicode: every byte gets a printable character, so BPE never sees raw bytes. */
export function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = printable.includes(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  }
  return table;
}

/** Common English pairs; each merge's parts exist before it (checked when building). */
const MERGES: [string, string][] = [
  ['Ġ', 't'],
  ['h', 'e'],
  ['Ġt', 'he'],
  ['i', 'n'],
  ['e', 'r'],
  ['Ġ', 'a'],
  ['a', 'n'],
  ['o', 'n'],
  ['r', 'e'],
  ['Ġ', 's'],
  ['e', 'd'],
  ['Ġ', 'w'],
  ['i', 's'],
  ['Ġ', 'o'],
  ['o', 'r'],
  ['Ġ', 'c'],
  ['a', 't'],
  ['e', 'n'],
  ['Ġ', 'b'],
  ['i', 't'],
  ['Ġ', 'h'],
  ['e', 's'],
  ['Ġ', 'f'],
  ['Ġ', 'm'],
  ['l', 'l'],
  ['Ġ', 'p'],
  ['o', 'u'],
  ['Ġ', 'd'],
  ['a', 'r'],
  ['in', 'g'],
  ['Ġa', 'n'],
  ['Ġan', 'd'],
  ['Ġo', 'f'],
  ['Ġt', 'o'],
  ['Ġ', 'i'],
  ['Ġi', 'n'],
  ['Ġ', 'is'],
  ['Ġ', 'l'],
  ['l', 'e'],
  ['H', 'e'],
  ['He', 'll'],
  ['Hell', 'o'],
  ['Ġw', 'or'],
  ['Ġwor', 'l'],
  ['Ġworl', 'd'],
  ['Ġ', 'y'],
  ['Ġy', 'ou'],
  ['Ġ', 'W'],
  ['ĠW', 'h'],
  ['ĠWh', 'at'],
];

const QWEN_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const CHATML_BODY =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

export interface TinyTokenizerFiles {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** Token ids by content, for assertions. */
  ids: { endoftext: number; imStart: number; imEnd: number; bos: number | null };
  size: number;
}

/**
 * Qwen-style (NFC, regex Split + ByteLevel, no BOS) for qwen2/qwen3; GPT-2/Llama-3-style
 * (ByteLevel regex, BOS added by a TemplateProcessing post-processor and by the template) for
 * llama/mistral, so both "template writes BOS" and "encoder adds BOS" paths are exercised.
 */
export function tinyTokenizer(arch: TinyArch): TinyTokenizerFiles {
  const byteChars = bytesToUnicode();
  const vocab: Record<string, number> = {};
  byteChars.forEach((ch, b) => (vocab[ch] = b));
  let next = 256;
  for (const [a, b] of MERGES) {
    if (!(a in vocab) || !(b in vocab)) throw new Error(`tiny tokenizer: merge ${a} ${b} uses an unknown part`);
    if (!(a + b in vocab)) vocab[a + b] = next++;
  }
  const withBos = arch === 'llama' || arch === 'mistral';
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', ...(withBos ? ['<|begin_of_text|>'] : [])];
  const addedTokens = specials.map((content, i) => ({
    id: next + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const ids = {
    endoftext: next,
    imStart: next + 1,
    imEnd: next + 2,
    bos: withBos ? next + 3 : null,
  };
  const size = next + specials.length;

  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizerJson: Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: withBos ? null : { type: 'NFC' },
    pre_tokenizer: withBos
      ? { ...byteLevel, trim_offsets: true, use_regex: true }
      : {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: QWEN_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
            byteLevel,
          ],
        },
    post_processor: withBos
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: {
            '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [ids.bos], tokens: ['<|begin_of_text|>'] },
          },
        }
      : byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: MERGES.map(([a, b]) => `${a} ${b}`),
    },
  };

  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: withBos,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest])),
    bos_token: withBos ? '<|begin_of_text|>' : null,
    chat_template: withBos ? `{{ bos_token }}${CHATML_BODY}` : CHATML_BODY,
    clean_up_tokenization_spaces: false,
    eos_token: '<|im_end|>',
    errors: 'replace',
    model_max_length: 4096,
    pad_token: '<|endoftext|>',
    split_special_tokens: false,
    tokenizer_class: withBos ? 'PreTrainedTokenizerFast' : 'Qwen2Tokenizer',
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig, ids, size };
}

// ---------------------------------------------------------------------------------------------
// Model

const ARCH_CLASS: Record<TinyArch, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
};

/** Per-architecture defaults chosen to exercise GQA ratios and headDim ≠ hidden/heads. */
const ARCH_DEFAULTS: Record<
  TinyArch,
  { heads: number; kvHeads: number; headDim?: number; ropeTheta: number; tied: boolean }
> = {
  llama: { heads: 4, kvHeads: 2, ropeTheta: 500000, tied: false },
  mistral: { heads: 4, kvHeads: 1, ropeTheta: 1000000, tied: false },
  qwen2: { heads: 4, kvHeads: 2, ropeTheta: 1000000, tied: true },
  qwen3: { heads: 4, kvHeads: 2, headDim: 24, ropeTheta: 1000000, tied: true },
};

/** The config.json a tiny model of these options has. */
export function tinyModelConfig(opts: TinyModelOptions): HFConfigJson {
  const d = ARCH_DEFAULTS[opts.arch];
  const tokenizer = tinyTokenizer(opts.arch);
  const hidden = opts.hidden ?? 64;
  const heads = opts.heads ?? d.heads;
  const headDim = opts.headDim ?? d.headDim ?? hidden / heads;
  const vocab = opts.vocab ?? 320;
  if (vocab < tokenizer.size) throw new Error(`vocab ${vocab} is smaller than the tiny tokenizer (${tokenizer.size})`);
  const dtypeName = { F32: 'float32', BF16: 'bfloat16', F16: 'float16' }[opts.dtype ?? 'F32'];

  const config: HFConfigJson = {
    architectures: [ARCH_CLASS[opts.arch]],
    model_type: opts.arch,
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: opts.intermediate ?? 96,
    num_hidden_layers: opts.layers ?? 2,
    num_attention_heads: heads,
    num_key_value_heads: opts.kvHeads ?? d.kvHeads,
    hidden_act: 'silu',
    max_position_embeddings: 512,
    initializer_range: 0.02,
    rms_norm_eps: 1e-6,
    rope_theta: opts.ropeTheta ?? d.ropeTheta,
    rope_scaling: null,
    tie_word_embeddings: opts.tied ?? d.tied,
    torch_dtype: dtypeName,
    use_cache: true,
    bos_token_id: tokenizer.ids.bos ?? tokenizer.ids.endoftext,
    eos_token_id: opts.arch === 'llama' ? [tokenizer.ids.endoftext, tokenizer.ids.imEnd] : tokenizer.ids.imEnd,
    transformers_version: '4.51.0',
  };
  switch (opts.arch) {
    case 'llama':
      config.attention_bias = false;
      config.attention_dropout = 0;
      config.mlp_bias = false;
      config.pretraining_tp = 1;
      if (opts.headDim !== undefined) config.head_dim = headDim;
      if (opts.ropeScaling) {
        config.rope_scaling = {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 64,
        };
      }
      break;
    case 'mistral':
      config.head_dim = headDim;
      config.sliding_window = null;
      config.attention_dropout = 0;
      break;
    case 'qwen2':
      // Real Qwen2 configs carry a window that is switched off.
      config.use_sliding_window = false;
      config.sliding_window = 32768;
      config.max_window_layers = 21;
      config.attention_dropout = 0;
      if (opts.headDim !== undefined) throw new Error('qwen2 derives head_dim from hidden/heads');
      break;
    case 'qwen3':
      config.head_dim = headDim;
      config.attention_bias = false;
      config.use_sliding_window = false;
      config.sliding_window = null;
      config.max_window_layers = 28;
      config.attention_dropout = 0;
      break;
  }
  if (opts.ropeScaling && opts.arch !== 'llama') throw new Error('ropeScaling is a llama3 option');
  return config;
}

/** Scale of each kind of weight: large enough that logits are far from uniform. */
function sampleTensor(name: string, shape: number[], seed: number): Float32Array {
  const normal = normalSampler(hashName(name, seed));
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const isNorm = name.endsWith('norm.weight');
  const std = isNorm
    ? 0.1
    : name.endsWith('.bias')
      ? 0.05
      : name.includes('embed_tokens') || name === 'lm_head.weight'
        ? 0.3
        : 0.15;
  for (let i = 0; i < n; i++) out[i] = (isNorm ? 1 : 0) + std * normal();
  return out;
}

function encodeAs(values: Float32Array, dtype: 'F32' | 'BF16' | 'F16'): Uint8Array {
  const typed = dtype === 'F32' ? values : dtype === 'BF16' ? f32ToBf16Bits(values) : f32ToF16Bits(values);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/** Values exactly as stored (after rounding to the dtype), by HF name: what a loader must return. */
export function tinyModelWeights(opts: TinyModelOptions): Map<string, { shape: number[]; values: Float32Array }> {
  const config = parseConfig(tinyModelConfig(opts));
  const seed = opts.seed ?? 0;
  const dtype = opts.dtype ?? 'F32';
  const weights = new Map<string, { shape: number[]; values: Float32Array }>();
  for (const [name, shape] of expectedTensors(config)) {
    const exact = sampleTensor(name, shape, seed);
    const values =
      dtype === 'F32' ? exact : dtype === 'BF16' ? bf16ToF32(f32ToBf16Bits(exact)) : f16ToF32(f32ToF16Bits(exact));
    weights.set(name, { shape, values });
  }
  return weights;
}

/** Writes a complete HF-layout model folder and returns its config.json contents. */
export function writeTinyModel(dir: string, opts: TinyModelOptions): HFConfigJson {
  const config = tinyModelConfig(opts);
  const dtype = opts.dtype ?? 'F32';
  fs.mkdirSync(dir, { recursive: true });
  const writeJson = (file: string, value: unknown) =>
    fs.writeFileSync(path.join(dir, file), JSON.stringify(value, null, 2));

  const tensors: TensorToWrite[] = [];
  for (const [name, { shape, values }] of tinyModelWeights(opts)) {
    tensors.push({ name, dtype, shape, data: encodeAs(values, dtype) });
  }
  if (opts.extraTensors) {
    const parsed = parseConfig(config);
    const invFreq = new Float32Array(parsed.headDim / 2).map(
      (_, i) => 1 / parsed.ropeTheta ** ((2 * i) / parsed.headDim),
    );
    tensors.push({
      name: 'model.layers.0.self_attn.rotary_emb.inv_freq',
      dtype: 'F32',
      shape: [invFreq.length],
      data: new Uint8Array(invFreq.buffer),
    });
    if (parsed.tieWordEmbeddings) {
      const embed = tensors.find((t) => t.name === 'model.embed_tokens.weight')!;
      tensors.push({ ...embed, name: 'lm_head.weight' });
    }
  }

  if (opts.sharded) {
    // Like transformers' save_pretrained: consecutive tensors, two shards, an index with total_size.
    const half = Math.ceil(tensors.length / 2);
    const shards = [tensors.slice(0, half), tensors.slice(half)];
    const weightMap: Record<string, string> = {};
    let totalSize = 0;
    shards.forEach((shard, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      fs.writeFileSync(path.join(dir, file), writeSafetensors(shard, { format: 'pt' }));
      for (const t of shard) {
        weightMap[t.name] = file;
        totalSize += t.data.length;
      }
    });
    writeJson('model.safetensors.index.json', { metadata: { total_size: totalSize }, weight_map: weightMap });
  } else {
    fs.writeFileSync(path.join(dir, 'model.safetensors'), writeSafetensors(tensors, { format: 'pt' }));
  }

  const tokenizer = tinyTokenizer(opts.arch);
  writeJson('config.json', config);
  writeJson('tokenizer.json', tokenizer.tokenizerJson);
  writeJson('tokenizer_config.json', tokenizer.tokenizerConfig);
  writeJson('generation_config.json', {
    bos_token_id: config.bos_token_id,
    eos_token_id: [tokenizer.ids.imEnd, tokenizer.ids.endoftext],
    pad_token_id: tokenizer.ids.endoftext,
    do_sample: true,
    temperature: 0.7,
    top_p: 0.8,
    top_k: 20,
    repetition_penalty: 1.05,
    transformers_version: '4.51.0',
  });
  return config;
}

// ---------------------------------------------------------------------------------------------
// HTTP server

export interface ServeOptions {
  /** Send only this many body bytes of a larger response, then drop the connection. */
  dieAfterBytes?: number;
  /** Which files dieAfterBytes applies to; default: *.safetensors. */
  dieOn?: (file: string) => boolean;
  /** Ignore Range headers and always send the whole file (some static hosts do). */
  noRange?: boolean;
}

export interface ServedDirectory {
  /** http://127.0.0.1:PORT, no trailing slash. Use `${url}` as a base folder URL or as AGENTARK_HF_ENDPOINT. */
  url: string;
  /** Every request seen, in order. */
  requests: { method: string; path: string; file: string; range: string | null }[];
  close(): Promise<void>;
}

/**
 * Static server on 127.0.0.1 (random port) for `dir`. Files are reachable both as `/<file>` and
 * in the Hub's layout `/<owner>/<repo>/resolve/<revision>/<file>`.
 */
export async function serveDirectory(dir: string, options: ServeOptions = {}): Promise<ServedDirectory> {
  const root = path.resolve(dir);
  const requests: ServedDirectory['requests'] = [];
  const dieOn = options.dieOn ?? ((file: string) => file.endsWith('.safetensors'));

  const server = http.createServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = urlPath.match(/^\/[^/]+\/[^/]+\/resolve\/[^/]+\/(.+)$/)?.[1] ?? urlPath.replace(/^\/+/, '');
    const range = options.noRange ? null : (req.headers.range ?? null);
    requests.push({ method: req.method ?? 'GET', path: urlPath, file, range: req.headers.range ?? null });

    const full = path.resolve(root, file);
    if (!full.startsWith(root + path.sep) || !fs.existsSync(full) || !fs.statSync(full).isFile()) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('Entry not found');
      return;
    }
    const bytes = fs.readFileSync(full);
    let start = 0;
    let end = bytes.length; // exclusive
    let status = 200;
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
    if (!options.noRange) headers['Accept-Ranges'] = 'bytes';
    if (range) {
      const m = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (m) {
        start = Number(m[1]);
        end = m[2] ? Math.min(Number(m[2]) + 1, bytes.length) : bytes.length;
        if (start >= bytes.length) {
          res.writeHead(416, { 'Content-Range': `bytes */${bytes.length}` }).end();
          return;
        }
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end - 1}/${bytes.length}`;
      }
    }
    headers['Content-Length'] = String(end - start);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const body = bytes.subarray(start, end);
    if (options.dieAfterBytes !== undefined && dieOn(file) && body.length > options.dieAfterBytes) {
      res.write(body.subarray(0, options.dieAfterBytes), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
