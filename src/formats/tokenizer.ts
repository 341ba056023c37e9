/**
 * Hugging Face tokenizers (tokenizer.json + tokenizer_config.json) and chat templates, via
 * @huggingface/tokenizers and @huggingface/jinja, behind the small API the runtime needs.
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';

export class TokenizerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenizerError';
  }
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

  readonly vocabSize: number;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;

  /** From file contents; errors name the file that is malformed. */
  static fromText(tokenizerJson: string, tokenizerConfigJson?: string | null, chatTemplate?: string | null): HFTokenizer {
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
    // The library indexes these sections unconditionally; older files omit the empty ones.
    const completed: Json = { added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...tokenizerJson };
    try {
      this.tokenizer = new Tokenizer(completed, tokenizerConfig);
    } catch (e) {
      throw new TokenizerError(`tokenizer.json: ${(e as Error).message}`, { cause: e });
    }
    this.config = tokenizerConfig;

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
    return this.tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;
  }

  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    if (ids.length === 0) return ''; // the library rejects empty input
    return this.tokenizer.decode(Array.from(ids), { skip_special_tokens: options.skipSpecialTokens ?? false });
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
      throw new TokenizerError(`no chat template named "${name}"; available: ${[...this.chatTemplates.keys()].join(', ')}`);
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
      return template.render(context);
    } catch (e) {
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
