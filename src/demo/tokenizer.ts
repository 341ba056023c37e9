/**
 * A compact Hugging Face tokenizer for the demo model: byte-level BPE (the 256 byte tokens of
 * GPT-2's byte-to-unicode table) plus merges learned here from the demo corpus, three ChatML
 * special tokens and a ChatML chat template. The files are the standard `tokenizer.json` /
 * `tokenizer_config.json` that @huggingface/tokenizers (and HF `tokenizers` / transformers in
 * Python) load.
 *
 * Arithmetic stays learnable: the pre-tokenizer isolates every digit and the trainer never merges
 * a digit with anything, so each digit 0–9 is always its own token (and always the same token:
 * a space before a number is never fused with the digit). Instead, the word, punctuation or
 * operator before a number absorbs that one space (" has " in "has 3", " + " in "3 + 4", "#### "
 * in "#### 7"), which saves a token per number without touching digits.
 *
 * The trainer is the classic one: pre-tokenize, count words, repeatedly merge the most frequent
 * adjacent pair (ties: the lexicographically smallest pair), until the vocabulary is full.
 */

export const ENDOFTEXT = '<|endoftext|>';
export const IM_START = '<|im_start|>';
export const IM_END = '<|im_end|>';
export const DEMO_SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END] as const;

/**
 * Pre-tokenizer (Oniguruma syntax, also a valid JS `u` regex): one digit; punctuation/symbol runs
 * with an optional leading space and either one trailing space before a digit or trailing
 * newlines; words with an optional leading space and one trailing space before a digit; newline
 * runs; other whitespace.
 */
export const DEMO_SPLIT_REGEX = String.raw`\p{N}| ?[^\s\p{L}\p{N}]+(?: (?=\p{N})|[\r\n]*)| ?\p{L}+(?: (?=\p{N}))?|\s*[\r\n]+|\s+(?!\S)|\s+`;

/** ChatML, as Qwen and the test fixtures write it; no default system prompt. */
export const DEMO_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** Exactly what DEMO_CHAT_TEMPLATE renders (for building the BPE corpus without the template engine). */
export function renderChatML(
  messages: readonly { role: string; content: string }[],
  addGenerationPrompt = false,
): string {
  const body = messages.map((m) => `${IM_START}${m.role}\n${m.content}${IM_END}\n`).join('');
  return addGenerationPrompt ? `${body}${IM_START}assistant\n` : body;
}

export interface DemoTokenizerOptions {
  /** Total vocabulary: 256 bytes + learned merges + 3 special tokens (default 512). */
  vocabSize?: number;
  /** A pair must occur at least this often to be merged (default 2). */
  minFrequency?: number;
  /**
   * Texts whose merges are learned first, before any from `corpusTexts` (e.g. the problems and
   * solutions, so the words the model reads and writes are whole tokens even though the long
   * fixed prompts are more frequent in the rows).
   */
  priorityTexts?: readonly string[];
}

export interface DemoTokenizerFiles {
  /** tokenizer.json contents. */
  tokenizerJson: Record<string, unknown>;
  /** tokenizer_config.json contents. */
  tokenizerConfig: Record<string, unknown>;
  /** Ids 0..size-1 are all used: 256 bytes, the merged tokens, then the 3 special tokens (size ≤ vocabSize). */
  size: number;
  /** Learned merges (a few may rebuild an existing token from other parts). */
  merges: number;
  ids: { endoftext: number; imStart: number; imEnd: number };
}

/** GPT-2's bytes_to_unicode: every byte gets a printable character. */
export function bytesToUnicode(): string[] {
  const printable = new Set<number>();
  for (let b = 0x21; b <= 0x7e; b++) printable.add(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.add(b);
  for (let b = 0xae; b <= 0xff; b++) printable.add(b);
  const table = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++)
    table[b] = printable.has(b) ? String.fromCharCode(b) : String.fromCharCode(256 + extra++);
  return table;
}

const BYTE_CHARS = bytesToUnicode();
const encoder = new TextEncoder();

function toByteChars(piece: string): string {
  let s = '';
  for (const byte of encoder.encode(piece)) s += BYTE_CHARS[byte];
  return s;
}

/** Text (no special tokens) → the raw pieces of the Split pre-tokenizer. */
function splitPieces(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(new RegExp(DEMO_SPLIT_REGEX, 'gu'))) if (m[0] !== '') out.push(m[0]);
  return out;
}

/** Text (no special tokens) → byte-level pre-tokens, as the tokenizer's pre-tokenizer produces them. */
export function pretokenize(text: string): string[] {
  return splitPieces(text).map(toByteChars);
}

/** Splits around the special tokens (which are never part of BPE words). */
function withoutSpecials(text: string): string[] {
  let parts = [text];
  for (const sp of DEMO_SPECIAL_TOKENS) parts = parts.flatMap((p) => p.split(sp));
  return parts.filter((p) => p.length > 0);
}

const isDigit = (sym: string): boolean => /[0-9]/.test(sym);

/**
 * Learns merges from word counts until the vocabulary (`startTokens` plus merged tokens) has
 * `maxTokens` entries or no pair occurs `minFrequency` times. Symbols are strings of byte
 * characters; a pair with a digit in either part is never merged; ties go to the
 * lexicographically smallest pair. `prior` merges (learned earlier) are applied to the words
 * first, in order, and their tokens count as existing. A merge whose result already exists (the
 * same string built from other parts) is recorded but adds no token.
 */
export function learnMerges(
  wordCounts: Map<string, number>,
  maxTokens: number,
  opts: { minFrequency?: number; prior?: readonly [string, string][]; startTokens?: number } = {},
): [string, string][] {
  const minFrequency = opts.minFrequency ?? 2;
  const prior = opts.prior ?? [];
  const known = new Set<string>(BYTE_CHARS);
  for (const [a, b] of prior) known.add(a + b);
  let tokens = (opts.startTokens ?? 256) + new Set(prior.map(([a, b]) => a + b)).size;
  const words: { syms: string[]; count: number }[] = [];
  for (const [w, count] of wordCounts) words.push({ syms: Array.from(w), count });
  const mergeAll = (a: string, b: string) => {
    const merged = a + b;
    for (const w of words) {
      const s = w.syms;
      if (s.length < 2) continue;
      let j = 0;
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          s[j++] = merged;
          i++;
        } else s[j++] = s[i]!;
      }
      s.length = j;
    }
  };
  for (const [a, b] of prior) mergeAll(a, b);
  const merges: [string, string][] = [];
  while (tokens < maxTokens) {
    const pairCounts = new Map<string, number>();
    for (const { syms, count } of words) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const a = syms[i]!;
        const b = syms[i + 1]!;
        if (isDigit(a) || isDigit(b)) continue;
        const key = `${a} ${b}`;
        pairCounts.set(key, (pairCounts.get(key) ?? 0) + count);
      }
    }
    let best: string | null = null;
    let bestCount = 0;
    for (const [key, c] of pairCounts) {
      if (c > bestCount || (c === bestCount && best !== null && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best === null || bestCount < minFrequency) break;
    const [a, b] = best.split(' ') as [string, string];
    merges.push([a, b]);
    if (!known.has(a + b)) {
      known.add(a + b);
      tokens++;
    }
    mergeAll(a, b);
  }
  return merges;
}

/** Word (pre-token) frequencies of a corpus; special tokens are cut out first. */
export function countWords(texts: readonly string[]): Map<string, number> {
  const raw = new Map<string, number>();
  for (const text of texts) {
    for (const part of withoutSpecials(text)) {
      for (const piece of splitPieces(part)) raw.set(piece, (raw.get(piece) ?? 0) + 1);
    }
  }
  const counts = new Map<string, number>();
  for (const [piece, n] of raw) {
    const w = toByteChars(piece);
    counts.set(w, (counts.get(w) ?? 0) + n);
  }
  return counts;
}

/**
 * Trains the BPE merges on `corpusTexts` (pass the rendered chat rows the model will see, so the
 * role names and prompt words become tokens too) and returns the tokenizer files.
 */
export function buildDemoTokenizer(
  corpusTexts: readonly string[],
  opts: DemoTokenizerOptions = {},
): DemoTokenizerFiles {
  const vocabSize = opts.vocabSize ?? 512;
  const specials = DEMO_SPECIAL_TOKENS.length;
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specials) {
    throw new Error(`demo tokenizer: vocabSize must be an integer >= ${256 + specials}, got ${vocabSize}`);
  }
  const maxTokens = vocabSize - specials;
  const minFrequency = opts.minFrequency ?? 2;
  let merges: [string, string][] = [];
  if (opts.priorityTexts?.length) merges = learnMerges(countWords(opts.priorityTexts), maxTokens, { minFrequency });
  merges = [...merges, ...learnMerges(countWords(corpusTexts), maxTokens, { minFrequency, prior: merges })];

  const vocab: Record<string, number> = {};
  BYTE_CHARS.forEach((ch, b) => (vocab[ch] = b));
  let next = 256;
  for (const [a, b] of merges) {
    if (!(a in vocab) || !(b in vocab)) throw new Error(`demo tokenizer: merge ${a} ${b} uses an unknown part`);
    if (!(a + b in vocab)) vocab[a + b] = next++;
  }
  const ids = { endoftext: next, imStart: next + 1, imEnd: next + 2 };
  const addedTokens = DEMO_SPECIAL_TOKENS.map((content, i) => ({
    id: next + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));

  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizerJson: Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: DEMO_SPLIT_REGEX }, behavior: 'Isolated', invert: false },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
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
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest])),
    additional_special_tokens: [IM_START, IM_END],
    bos_token: null,
    chat_template: DEMO_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: IM_END,
    errors: 'replace',
    model_max_length: 2048,
    pad_token: ENDOFTEXT,
    split_special_tokens: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: null,
  };
  return { tokenizerJson, tokenizerConfig, size: next + specials, merges: merges.length, ids };
}
