/**
 * Hugging Face tokenizers (tokenizer.json + tokenizer_config.json) and chat templates, via
 * @huggingface/tokenizers and @huggingface/jinja, behind the small API the runtime needs.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { backtrackingRegexReason } from './regex-safety';

export { backtrackingRegexReason };

export class TokenizerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenizerError';
  }
}

/**
 * Limits on rendering a chat template (which comes with the model, i.e. from strangers, and is
 * rendered on every request by `serve`). Real templates use a few thousand steps and produce
 * kilobytes; `{% for i in range(100000000) %}` must fail in milliseconds, not run out of memory.
 */
export interface ChatTemplateLimits {
  /** Longest rendered text, and longest string any expression may build (characters). */
  maxOutputChars: number;
  /** Evaluation steps (expression and statement nodes visited). */
  maxSteps: number;
  /** Wall-clock budget in milliseconds. */
  maxMs: number;
  /** Longest list range() may build. */
  maxRangeLength: number;
}

export const DEFAULT_CHAT_TEMPLATE_LIMITS: Readonly<ChatTemplateLimits> = {
  maxOutputChars: 4 << 20,
  maxSteps: 2_000_000,
  maxMs: 2000,
  maxRangeLength: 100_000,
};

/** Largest tokenizer.json / chat template accepted, and most added tokens. */
export const MAX_TOKENIZER_JSON_CHARS = 256 << 20;
export const MAX_CHAT_TEMPLATE_CHARS = 1 << 20;
export const MAX_ADDED_TOKENS = 1 << 20;
/** Token ids must index an embedding table; no vocabulary is anywhere near this. */
export const MAX_TOKEN_ID = (1 << 21) - 1;
/** Longest text encode() accepts (characters); longer text is a caller bug or an attack. */
export const MAX_ENCODE_CHARS = 16 << 20;

class TemplateLimitError extends Error {}

/** Every `{"Regex": "..."}` pattern in a tokenizer.json (normalizers, pre-tokenizers, decoders), with its JSON path. */
function tokenizerRegexes(
  json: unknown,
  where = 'tokenizer.json',
  out: { where: string; pattern: string }[] = [],
  depth = 0,
): { where: string; pattern: string }[] {
  if (depth > 32 || typeof json !== 'object' || json === null) return out;
  if (Array.isArray(json)) {
    json.forEach((v, i) => tokenizerRegexes(v, `${where}[${i}]`, out, depth + 1));
    return out;
  }
  for (const [k, v] of Object.entries(json)) {
    if (k === 'vocab' || k === 'merges' || k === 'added_tokens') continue; // large, and never regexes
    if (k === 'Regex' && typeof v === 'string') out.push({ where, pattern: v });
    else tokenizerRegexes(v, `${where}.${k}`, out, depth + 1);
  }
  return out;
}

/** Checks the numbers and patterns of a tokenizer.json before the library builds anything from them. */
function checkTokenizerJson(json: Json): void {
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) throw new TokenizerError('tokenizer.json: "added_tokens" must be a list');
  if (added.length > MAX_ADDED_TOKENS)
    throw new TokenizerError(`tokenizer.json: ${added.length} added tokens; at most ${MAX_ADDED_TOKENS} are supported`);
  added.forEach((t, i) => {
    const id = isObject(t) ? t.id : undefined;
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) {
      throw new TokenizerError(
        `tokenizer.json: added_tokens[${i}] has id ${JSON.stringify(id)}; ids must be integers in [0, ${MAX_TOKEN_ID}]`,
      );
    }
    if (typeof t.content !== 'string' || t.content.length > 1024)
      throw new TokenizerError(
        `tokenizer.json: added_tokens[${i}] (id ${id}) must have a "content" string of at most 1024 characters`,
      );
  });
  const model = json.model as Json;
  const vocab = model.vocab;
  if (Array.isArray(vocab)) {
    if (vocab.length > MAX_TOKEN_ID + 1)
      throw new TokenizerError(
        `tokenizer.json: model.vocab has ${vocab.length} entries; at most ${MAX_TOKEN_ID + 1} are supported`,
      );
  } else if (isObject(vocab)) {
    for (const [token, id] of Object.entries(vocab)) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id > MAX_TOKEN_ID) {
        throw new TokenizerError(
          `tokenizer.json: model.vocab[${JSON.stringify(token.slice(0, 40))}] has id ${JSON.stringify(id)}; ids must be integers in [0, ${MAX_TOKEN_ID}]`,
        );
      }
    }
  }
  for (const { where, pattern } of tokenizerRegexes(json)) {
    const reason = backtrackingRegexReason(pattern);
    if (reason)
      throw new TokenizerError(`${where}: the pattern ${JSON.stringify(pattern.slice(0, 80))} ${reason}; refusing it`);
  }
}

/** The interpreter of @huggingface/jinja with a step, time and string-length budget. */
class BudgetedInterpreter extends Interpreter {
  private steps = 0;
  private readonly deadline: number;

  constructor(
    env: Environment,
    private readonly limits: ChatTemplateLimits,
  ) {
    super(env);
    this.deadline = performance.now() + limits.maxMs;
  }

  override evaluate(...args: Parameters<Interpreter['evaluate']>): ReturnType<Interpreter['evaluate']> {
    const { limits } = this;
    if (++this.steps > limits.maxSteps)
      throw new TemplateLimitError(`rendering took more than ${limits.maxSteps} steps`);
    if ((this.steps & 1023) === 0 && performance.now() > this.deadline)
      throw new TemplateLimitError(`rendering took longer than ${limits.maxMs} ms`);
    const out = super.evaluate(...args);
    if (out.type === 'StringValue' && (out.value as string).length > limits.maxOutputChars) {
      throw new TemplateLimitError(`rendering produced more than ${limits.maxOutputChars} characters`);
    }
    return out;
  }
}

const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];

/** transformers' strftime_now (Llama 3 templates print today's date), for the codes templates use. */
function strftimeNow(format: string): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  return String(format).replace(/%[YmdbBHM%]/g, (code) => {
    switch (code) {
      case '%Y':
        return String(d.getFullYear());
      case '%m':
        return pad(d.getMonth() + 1);
      case '%d':
        return pad(d.getDate());
      case '%b':
        return MONTHS[d.getMonth()]!.slice(0, 3);
      case '%B':
        return MONTHS[d.getMonth()]!;
      case '%H':
        return pad(d.getHours());
      case '%M':
        return pad(d.getMinutes());
      default:
        return '%';
    }
  });
}

/** Renders a parsed template like Template.render, under `limits`. */
export function renderTemplateWithLimits(
  template: Template,
  context: Record<string, unknown>,
  limits: ChatTemplateLimits = DEFAULT_CHAT_TEMPLATE_LIMITS,
): string {
  const range = (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    if (![start, stop, step].every((x) => typeof x === 'number' && Number.isFinite(x)))
      throw new Error('range() needs finite numbers');
    if (step === 0) throw new Error('range() step must not be zero');
    const length = Math.max(0, Math.ceil((stop - start) / step));
    if (length > limits.maxRangeLength)
      throw new TemplateLimitError(`range() of ${length} items is longer than the limit ${limits.maxRangeLength}`);
    return Array.from({ length }, (_, i) => start + i * step);
  };
  // The globals Template.render sets up, with a bounded range().
  const env = new Environment();
  const globals: Record<string, unknown> = {
    false: false,
    true: true,
    none: null,
    False: false,
    True: true,
    None: null,
    raise_exception: (message: unknown) => {
      throw new Error(String(message));
    },
    range,
    strftime_now: strftimeNow,
  };
  for (const [k, v] of Object.entries({ ...globals, ...context })) env.set(k, v);
  const out = new BudgetedInterpreter(env, limits).run(template.parsed);
  return (out as { value: string }).value;
}

export interface ChatTemplateMessage {
  role: string;
  /** A string, or the list-of-parts form some templates accept. */
  content: unknown;
  [key: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the assistant-turn opener so the model answers next. Default true. */
  addGenerationPrompt?: boolean;
  /** For templates shipped as a list of {name, template}; default 'default' ('tool_use' when tools are given). */
  templateName?: string;
  tools?: unknown[];
  documents?: unknown[];
  /** Extra template variables, e.g. { enable_thinking: false } for Qwen3. */
  extra?: Record<string, unknown>;
}

export interface StreamDecoder {
  /** Adds one generated token; returns the text it completes (often '', e.g. mid UTF-8 sequence). */
  push(id: number): string;
  /** Everything still held back (incomplete characters render as U+FFFD); call when generation ends. */
  flush(): string;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** tokenizer_config.json spells special tokens as strings or as AddedToken dicts ({content, ...}). */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

function parseJsonFile(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${file}: invalid JSON (${(e as Error).message})`, { cause: e });
  }
}

export class HFTokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly config: Json;
  private readonly specialIds: Set<number>;
  private readonly templates = new Map<string, Template>();
  private readonly chatTemplates: Map<string, string>;
  /** Limits for rendering chat templates (tests and callers may tighten them). */
  templateLimits: ChatTemplateLimits = { ...DEFAULT_CHAT_TEMPLATE_LIMITS };

  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;

  /** From file contents; errors name the file that is malformed. */
  static fromText(
    tokenizerJson: string,
    tokenizerConfigJson?: string | null,
    chatTemplate?: string | null,
  ): HFTokenizer {
    if (tokenizerJson.length > MAX_TOKENIZER_JSON_CHARS)
      throw new TokenizerError(
        `tokenizer.json is ${tokenizerJson.length} characters; at most ${MAX_TOKENIZER_JSON_CHARS} are supported`,
      );
    if (tokenizerConfigJson && tokenizerConfigJson.length > MAX_TOKENIZER_JSON_CHARS)
      throw new TokenizerError(`tokenizer_config.json is ${tokenizerConfigJson.length} characters; too large`);
    const tokenizer = parseJsonFile(tokenizerJson, 'tokenizer.json');
    const config = tokenizerConfigJson == null ? {} : parseJsonFile(tokenizerConfigJson, 'tokenizer_config.json');
    return new HFTokenizer(tokenizer, config, chatTemplate);
  }

  /**
   * @param chatTemplate overrides tokenizer_config's chat_template (newer repos ship it as a
   *   separate chat_template.jinja file).
   */
  constructor(tokenizerJson: unknown, tokenizerConfig: unknown = {}, chatTemplate?: string | null) {
    if (!isObject(tokenizerJson)) throw new TokenizerError('tokenizer.json: expected a JSON object');
    if (!isObject(tokenizerJson.model)) throw new TokenizerError('tokenizer.json: missing "model" section');
    if (!isObject(tokenizerConfig)) throw new TokenizerError('tokenizer_config.json: expected a JSON object');
    checkTokenizerJson(tokenizerJson);
    // The library indexes these sections unconditionally; older files omit the empty ones.
    const completed: Json = {
      added_tokens: [],
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      ...tokenizerJson,
    };
    try {
      this.tokenizer = new Tokenizer(completed, tokenizerConfig);
    } catch (e) {
      throw new TokenizerError(`tokenizer.json: ${(e as Error).message}`, { cause: e });
    }
    this.config = tokenizerConfig;
    // The library checks little of the file up front; a malformed section (e.g. a pre-tokenizer
    // "behavior" that is not a string) would otherwise fail on the user's first prompt.
    try {
      const probe = this.tokenizer.encode('Hello, world! 123 é', { add_special_tokens: true }).ids;
      if (probe.length > 0) this.tokenizer.decode(probe, { skip_special_tokens: false });
    } catch (e) {
      throw new TokenizerError(
        `tokenizer.json: the tokenizer cannot encode a test sentence (${(e as Error).message}); the file is malformed`,
        { cause: e },
      );
    }

    this.specialIds = new Set<number>();
    for (const [id, token] of this.tokenizer.get_added_tokens_decoder()) if (token.special) this.specialIds.add(id);
    let maxId = -1;
    for (const id of this.tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    this.bosToken = tokenContent(tokenizerConfig.bos_token);
    this.eosToken = tokenContent(tokenizerConfig.eos_token);
    this.padToken = tokenContent(tokenizerConfig.pad_token);
    this.unkToken = tokenContent(tokenizerConfig.unk_token);

    this.chatTemplates = new Map();
    const configured = chatTemplate ?? tokenizerConfig.chat_template;
    if (typeof configured === 'string') {
      this.chatTemplates.set('default', configured);
    } else if (Array.isArray(configured)) {
      for (const entry of configured) {
        if (isObject(entry) && typeof entry.name === 'string' && typeof entry.template === 'string') {
          this.chatTemplates.set(entry.name, entry.template);
        }
      }
    }
    for (const [name, source] of this.chatTemplates) {
      if (source.length > MAX_CHAT_TEMPLATE_CHARS)
        throw new TokenizerError(
          `chat template "${name}" is ${source.length} characters; at most ${MAX_CHAT_TEMPLATE_CHARS} are supported`,
        );
    }
  }

  get bosTokenId(): number | null {
    return this.bosToken === null ? null : (this.tokenToId(this.bosToken) ?? null);
  }

  get eosTokenId(): number | null {
    return this.eosToken === null ? null : (this.tokenToId(this.eosToken) ?? null);
  }

  get padTokenId(): number | null {
    return this.padToken === null ? null : (this.tokenToId(this.padToken) ?? null);
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplates.size > 0;
  }

  encode(text: string, options: { addSpecialTokens?: boolean } = {}): number[] {
    if (text.length > MAX_ENCODE_CHARS)
      throw new TokenizerError(
        `text of ${text.length} characters is too long to tokenize (at most ${MAX_ENCODE_CHARS})`,
      );
    try {
      return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
    } catch (e) {
      throw new TokenizerError(
        `tokenizer.json: tokenizing failed (${(e as Error).message}); the tokenizer file is malformed`,
        { cause: e },
      );
    }
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library rejects empty input
    try {
      return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false });
    } catch (e) {
      throw new TokenizerError(
        `tokenizer.json: decoding failed (${(e as Error).message}); the tokenizer file is malformed`,
        { cause: e },
      );
    }
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  isSpecialToken(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** Ids that end generation: the model config's eos list plus the tokenizer's eos token. */
  eosTokenIds(config?: { eosTokenIds: number[] }): number[] {
    const ids = new Set(config?.eosTokenIds ?? []);
    const own = this.eosTokenId;
    if (own !== null) ids.add(own);
    return [...ids];
  }

  private template(options: ChatTemplateOptions): Template {
    if (this.chatTemplates.size === 0) {
      throw new TokenizerError('this tokenizer has no chat_template (tokenizer_config.json / chat_template.jinja)');
    }
    let name = options.templateName;
    if (name === undefined) name = options.tools?.length && this.chatTemplates.has('tool_use') ? 'tool_use' : 'default';
    const source = this.chatTemplates.get(name);
    if (source === undefined) {
      throw new TokenizerError(
        `no chat template named "${name}"; available: ${[...this.chatTemplates.keys()].join(', ')}`,
      );
    }
    let compiled = this.templates.get(name);
    if (!compiled) {
      try {
        compiled = new Template(source);
      } catch (e) {
        throw new TokenizerError(`chat template "${name}" does not parse: ${(e as Error).message}`, { cause: e });
      }
      this.templates.set(name, compiled);
    }
    return compiled;
  }

  /** The prompt text, rendered with the same variables transformers' apply_chat_template provides. */
  applyChatTemplate(messages: ChatTemplateMessage[], options: ChatTemplateOptions = {}): string {
    const template = this.template(options);
    const specialTokens: Json = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const content = tokenContent(this.config[key]);
      if (content !== null) specialTokens[key] = content;
    }
    if (Array.isArray(this.config.additional_special_tokens)) {
      specialTokens.additional_special_tokens = this.config.additional_special_tokens.map(tokenContent);
    }
    const context: Json = {
      ...specialTokens,
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? true,
      ...(options.tools ? { tools: options.tools } : {}),
      ...(options.documents ? { documents: options.documents } : {}),
      ...options.extra,
    };
    try {
      return renderTemplateWithLimits(template, context, this.templateLimits);
    } catch (e) {
      if (e instanceof TemplateLimitError)
        throw new TokenizerError(
          `chat template stopped: ${e.message} (a safety limit; the template is broken or hostile)`,
          { cause: e },
        );
      throw new TokenizerError(`chat template failed: ${(e as Error).message}`, { cause: e });
    }
  }

  /** Token ids of the rendered prompt; the template already wrote any BOS, so none is added again. */
  encodeChat(messages: ChatTemplateMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  /**
   * Incremental detokenizer for generation. Decodes a short window of recent tokens twice (with
   * and without the newest) and emits the difference, so byte-level pieces of one character and
   * decoders that treat the first token specially (SentencePiece's leading space) both come out
   * right; text ending in U+FFFD is an incomplete character and is held back.
   */
  createStreamDecoder(options: { skipSpecialTokens?: boolean } = {}): StreamDecoder {
    const decodeOptions = { skipSpecialTokens: options.skipSpecialTokens ?? true };
    const ids: number[] = [];
    let prefixOffset = 0; // window start: context for the decoder
    let readOffset = 0; // tokens before this have been emitted
    const emitPending = (final: boolean): string => {
      const prefixText = this.decode(ids.slice(prefixOffset, readOffset), decodeOptions);
      const fullText = this.decode(ids.slice(prefixOffset), decodeOptions);
      if (fullText.length > prefixText.length && (final || !fullText.endsWith('\uFFFD'))) {
        prefixOffset = readOffset;
        readOffset = ids.length;
        return fullText.slice(prefixText.length);
      }
      return '';
    };
    return {
      push: (id: number) => {
        ids.push(id);
        return emitPending(false);
      },
      flush: () => emitPending(true),
    };
  }
}
