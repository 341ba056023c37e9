/**
 * Training rows (JSONL) → token examples, following the conventions of Hugging Face TRL's
 * SFTTrainer so a dataset means the same thing here as there:
 *
 * - `{"messages": [{role, content}, ...]}`: rendered with the tokenizer's chat template; the loss
 *   covers only the assistant turns (their content and end-of-turn token, not the role header
 *   the template writes before them).
 * - `{"prompt": "...", "completion": "..."}`: prompt unlabelled, completion + EOS labelled.
 *   TRL's conversational form (`prompt` and `completion` are message lists) goes through the
 *   chat template; the completion messages are labelled.
 * - `{"text": "..."}`: language modelling on everything, + EOS.
 * - `{"input_ids": [...], "labels"?: [...]}`: already tokenized; labels default to input_ids.
 *
 * Labels are aligned with input_ids (-100 = ignored); the loss shifts them inside, exactly like
 * transformers' causal-LM loss (logits[t] predicts labels[t+1]).
 */
import type { ChatTemplateMessage, HFTokenizer } from '../formats/tokenizer';

export const IGNORE_INDEX = -100;

export interface TrainExample {
  inputIds: number[];
  /** Aligned with inputIds, -100 = ignored; the loss shifts inside. */
  labels: number[];
}

export interface TokenizeOptions {
  /** The longest example accepted (the training context); longer rows are an error, never truncated. */
  maxLength: number;
  /** Appended to text/completion rows; default the tokenizer's EOS token. */
  eosTokenId?: number;
  /** When given, every id must be below it (the model's vocab_size). */
  vocabSize?: number;
}

export class TrainingDataError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrainingDataError';
  }
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------
// Parsing

interface RowAt {
  row: unknown;
  /** e.g. 'train.jsonl:3 row 2' — file, 1-based line, 1-based row (blank lines are not rows). */
  where: string;
}

function parseRows(text: string, sourceName: string): RowAt[] {
  const trimmed = text.trimStart();
  if (trimmed.startsWith('[')) {
    // A JSON array of rows (what `json.dump(list_of_rows)` writes) is accepted too.
    let array: unknown;
    try {
      array = JSON.parse(trimmed);
    } catch (e) {
      throw new TrainingDataError(`${sourceName}: invalid JSON array (${(e as Error).message})`, { cause: e });
    }
    return (array as unknown[]).map((row, i) => {
      const where = `${sourceName} row ${i + 1}`;
      if (!isObject(row))
        throw new TrainingDataError(`${where}: expected a JSON object, got ${JSON.stringify(row)?.slice(0, 80)}`);
      return { row, where };
    });
  }
  const rows: RowAt[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/^\uFEFF/, '').trim();
    if (line === '') continue;
    const where = `${sourceName}:${i + 1} row ${rows.length + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new TrainingDataError(`${sourceName}:${i + 1}: invalid JSON (${(e as Error).message})`, { cause: e });
    }
    if (!isObject(row)) throw new TrainingDataError(`${where}: expected a JSON object, got ${line.slice(0, 80)}`);
    rows.push({ row, where });
  }
  return rows;
}

/** JSONL → rows; blank lines skipped; errors name `sourceName:line`. A JSON array is accepted too. */
export function parseTrainingJsonl(text: string, sourceName: string): unknown[] {
  return parseRows(text, sourceName).map((r) => r.row);
}

/**
 * Whether JSONL (or JSON array) text already holds training rows (TRL messages /
 * prompt-completion / text / input_ids), judged from its first row; debate trajectories, PAD
 * stepwise rows and imported solution files are not.
 */
export function looksLikeTrainingRows(text: string): boolean {
  const first = text.replace(/^\uFEFF/, '').trimStart();
  let row: unknown;
  try {
    row = first.startsWith('[') ? (JSON.parse(first) as unknown[])[0] : JSON.parse(first.split('\n', 1)[0] ?? '');
  } catch {
    return false;
  }
  if (!isObject(row)) return false;
  if (row.schema !== undefined || row.response !== undefined || row.solutions !== undefined) return false;
  return (
    Array.isArray(row.messages) ||
    ('prompt' in row && 'completion' in row) ||
    typeof row.text === 'string' ||
    Array.isArray(row.input_ids)
  );
}

// ---------------------------------------------------------------------------------------------
// Chat rows

interface Segment {
  text: string;
  labelled: boolean;
}

function needTokenizer(tok: HFTokenizer | null, where: string, kind: string): HFTokenizer {
  if (!tok) throw new TrainingDataError(`${where}: ${kind} rows need a tokenizer (the model has no tokenizer.json)`);
  return tok;
}

function parseMessages(value: unknown, where: string, field: string): ChatTemplateMessage[] {
  if (!Array.isArray(value) || value.length === 0) {
    throw new TrainingDataError(`${where}: "${field}" must be a non-empty list of {role, content} messages`);
  }
  return value.map((m, i) => {
    if (!isObject(m) || typeof m.role !== 'string') {
      throw new TrainingDataError(`${where}: ${field}[${i}] must be an object with a string "role"`);
    }
    if (m.content === undefined || m.content === null) {
      if (!(m.role === 'assistant' && Array.isArray(m.tool_calls))) {
        throw new TrainingDataError(`${where}: ${field}[${i}] (${m.role}) has no "content"`);
      }
    }
    return m as ChatTemplateMessage;
  });
}

function render(
  tok: HFTokenizer,
  messages: ChatTemplateMessage[],
  addGenerationPrompt: boolean,
  where: string,
): string {
  try {
    return tok.applyChatTemplate(messages, { addGenerationPrompt });
  } catch (e) {
    throw new TrainingDataError(`${where}: ${(e as Error).message}`, { cause: e });
  }
}

function notPrefixError(where: string, what: string, prefix: string, full: string): TrainingDataError {
  let i = 0;
  while (i < prefix.length && i < full.length && prefix[i] === full[i]) i++;
  const around = (s: string) => JSON.stringify(s.slice(Math.max(0, i - 20), i + 30));
  return new TrainingDataError(
    `${where}: the chat template does not render the conversation incrementally (${what}); ` +
      `the texts differ at character ${i}: ${around(prefix)} vs ${around(full)}. ` +
      'Templates that rewrite earlier turns (e.g. drop <think> blocks of past assistant turns) cannot be ' +
      'used for assistant-only labels; pre-tokenize such rows (input_ids + labels) instead.',
  );
}

/**
 * Renders messages[:i+1] for every i and splits the text into consecutive segments: for a
 * labelled assistant turn, the generation prompt the template writes before it is unlabelled
 * and the rest of its delta is labelled; every other message's delta is unlabelled unless
 * `labelled(i)` says otherwise. Every rendering must extend the previous one.
 */
function chatSegments(
  tok: HFTokenizer,
  messages: ChatTemplateMessage[],
  labelled: (i: number) => boolean,
  where: string,
): Segment[] {
  const segments: Segment[] = [];
  let done = '';
  for (let i = 0; i < messages.length; i++) {
    const full = render(tok, messages.slice(0, i + 1), false, where);
    if (labelled(i) && messages[i].role === 'assistant') {
      const prompt = render(tok, messages.slice(0, i), true, where);
      if (!prompt.startsWith(done))
        throw notPrefixError(where, `messages[:${i}] + generation prompt vs messages[:${i}]`, done, prompt);
      if (!full.startsWith(prompt))
        throw notPrefixError(where, `messages[:${i + 1}] vs messages[:${i}] + generation prompt`, prompt, full);
      segments.push({ text: prompt.slice(done.length), labelled: false });
      segments.push({ text: full.slice(prompt.length), labelled: true });
    } else {
      if (!full.startsWith(done)) throw notPrefixError(where, `messages[:${i + 1}] vs messages[:${i}]`, done, full);
      segments.push({ text: full.slice(done.length), labelled: labelled(i) });
    }
    done = full;
  }
  return segments;
}

/**
 * Segment texts → ids, each encoded on its own without special tokens (the template wrote any
 * BOS). In a labelled assistant segment, whitespace the template writes after the end-of-turn
 * token (ChatML's '\n' after <|im_end|>) is formatting the model never generates: unlabelled.
 */
function encodeSegments(tok: HFTokenizer, segments: Segment[], endIds: Set<number>): TrainExample {
  const inputIds: number[] = [];
  const labels: number[] = [];
  for (const segment of segments) {
    if (segment.text === '') continue;
    const ids = tok.encode(segment.text, { addSpecialTokens: false });
    let labelledCount = segment.labelled ? ids.length : 0;
    if (segment.labelled) {
      let last = ids.length - 1;
      while (last >= 0 && !endIds.has(ids[last]) && !tok.isSpecialToken(ids[last])) last--;
      if (last >= 0 && last < ids.length - 1 && tok.decode(ids.slice(last + 1)).trim() === '') labelledCount = last + 1;
    }
    for (let j = 0; j < ids.length; j++) {
      inputIds.push(ids[j]);
      labels.push(j < labelledCount ? ids[j] : IGNORE_INDEX);
    }
  }
  return { inputIds, labels };
}

// ---------------------------------------------------------------------------------------------
// Rows → examples

function eosId(tok: HFTokenizer | null, opts: TokenizeOptions, where: string): number {
  const id = opts.eosTokenId ?? tok?.eosTokenId ?? null;
  if (id === null)
    throw new TrainingDataError(
      `${where}: no EOS token to end the example (the tokenizer has no eos_token; set eosTokenId)`,
    );
  return id;
}

function withEos(ids: number[], eos: number): number[] {
  return ids.length > 0 && ids[ids.length - 1] === eos ? ids : [...ids, eos];
}

function tokenIds(value: unknown, where: string, field: string, allowIgnore: boolean): number[] {
  if (!Array.isArray(value)) throw new TrainingDataError(`${where}: "${field}" must be a list of integers`);
  value.forEach((v, i) => {
    const ok = typeof v === 'number' && Number.isInteger(v) && (v >= 0 || (allowIgnore && v === IGNORE_INDEX));
    if (!ok) {
      throw new TrainingDataError(
        `${where}: ${field}[${i}] is ${JSON.stringify(v)}; expected a non-negative integer${allowIgnore ? ' or -100' : ''}`,
      );
    }
  });
  return value as number[];
}

function promptCompletion(row: Json, tok: HFTokenizer | null, opts: TokenizeOptions, where: string): TrainExample {
  const { prompt, completion } = row;
  const t = needTokenizer(tok, where, 'prompt/completion');
  if (typeof prompt === 'string' && typeof completion === 'string') {
    // TRL: prompt tokenized with special tokens (BOS), prompt+completion tokenized together;
    // when the joint encoding does not start with the prompt's tokens (a token merged across the
    // boundary), the two are encoded separately so the labels cover exactly the completion.
    const eos = eosId(t, opts, where);
    const promptIds = t.encode(prompt, { addSpecialTokens: true });
    const joint = t.encode(prompt + completion, { addSpecialTokens: true });
    let completionIds: number[];
    if (joint.length > promptIds.length && promptIds.every((id, i) => joint[i] === id))
      completionIds = joint.slice(promptIds.length);
    else completionIds = t.encode(completion, { addSpecialTokens: false });
    completionIds = withEos(completionIds, eos);
    return {
      inputIds: [...promptIds, ...completionIds],
      labels: [...promptIds.map(() => IGNORE_INDEX), ...completionIds],
    };
  }
  if (Array.isArray(prompt) && Array.isArray(completion)) {
    const promptMessages = parseMessages(prompt, where, 'prompt');
    const completionMessages = parseMessages(completion, where, 'completion');
    const messages = [...promptMessages, ...completionMessages];
    const segments = chatSegments(t, messages, (i) => i >= promptMessages.length, where);
    return encodeSegments(t, segments, endTokenIds(t, opts));
  }
  throw new TrainingDataError(`${where}: "prompt" and "completion" must both be strings or both be lists of messages`);
}

function endTokenIds(tok: HFTokenizer, opts: TokenizeOptions): Set<number> {
  const ids = new Set(tok.eosTokenIds());
  if (opts.eosTokenId !== undefined) ids.add(opts.eosTokenId);
  return ids;
}

function describeRow(row: Json): string {
  const keys = Object.keys(row);
  return keys.length ? `keys ${keys.map((k) => JSON.stringify(k)).join(', ')}` : 'no keys';
}

/** One row → one example; `where` (e.g. 'train.jsonl:3 row 3') prefixes every error. */
/**
 * No token is this long, so a row with more characters than maxLength × this cannot fit the
 * context: rejected before the (slow, memory-hungry) template rendering and tokenization.
 */
export const MAX_CHARS_PER_TOKEN = 64;

/** Characters in every string of a row, stopping early once past `limit`. */
function rowChars(value: unknown, limit: number): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0 && total <= limit) {
    const v = stack.pop();
    if (typeof v === 'string') total += v.length;
    else if (Array.isArray(v)) {
      total += v.length; // token-id lists count one per entry
      for (const x of v) stack.push(x);
    } else if (isObject(v)) for (const x of Object.values(v)) stack.push(x);
  }
  return total;
}

export function tokenizeRow(row: unknown, tok: HFTokenizer | null, opts: TokenizeOptions, where: string): TrainExample {
  if (!isObject(row)) throw new TrainingDataError(`${where}: expected a JSON object`);
  const charLimit = opts.maxLength * MAX_CHARS_PER_TOKEN;
  const chars = rowChars(row, charLimit);
  if (chars > charLimit) {
    throw new TrainingDataError(
      `${where}: the row is over ${charLimit} characters, more than a ${opts.maxLength}-token context can hold; shorten or split it`,
    );
  }
  let example: TrainExample;
  if ('input_ids' in row) {
    const inputIds = tokenIds(row.input_ids, where, 'input_ids', false);
    const labels =
      row.labels === undefined || row.labels === null ? [...inputIds] : tokenIds(row.labels, where, 'labels', true);
    if (labels.length !== inputIds.length) {
      throw new TrainingDataError(
        `${where}: "labels" has ${labels.length} entries but "input_ids" has ${inputIds.length}`,
      );
    }
    example = { inputIds: [...inputIds], labels: [...labels] };
  } else if ('messages' in row) {
    const t = needTokenizer(tok, where, 'messages');
    const messages = parseMessages(row.messages, where, 'messages');
    if (!messages.some((m) => m.role === 'assistant')) {
      throw new TrainingDataError(
        `${where}: no assistant message, so nothing to learn (the loss covers assistant turns only)`,
      );
    }
    const isAssistant = (i: number) => messages[i].role === 'assistant';
    example = encodeSegments(t, chatSegments(t, messages, isAssistant, where), endTokenIds(t, opts));
  } else if ('prompt' in row || 'completion' in row) {
    example = promptCompletion(row, tok, opts, where);
  } else if ('text' in row) {
    if (typeof row.text !== 'string') throw new TrainingDataError(`${where}: "text" must be a string`);
    const t = needTokenizer(tok, where, 'text');
    const ids = withEos(t.encode(row.text, { addSpecialTokens: true }), eosId(t, opts, where));
    example = { inputIds: ids, labels: [...ids] };
  } else {
    throw new TrainingDataError(
      `${where}: unrecognized row (${describeRow(row)}); expected "messages", "prompt"+"completion", "text" or "input_ids"`,
    );
  }

  const n = example.inputIds.length;
  if (n === 0) throw new TrainingDataError(`${where}: the row has no tokens`);
  if (n > opts.maxLength) {
    throw new TrainingDataError(
      `${where} has ${n} tokens, longer than the context (${opts.maxLength}); shorten or split it`,
    );
  }
  // The loss at position t predicts labels[t+1], so labels[0] never counts.
  if (!example.labels.some((l, i) => i > 0 && l !== IGNORE_INDEX)) {
    throw new TrainingDataError(
      `${where}: no labelled token (every label is -100 or only the first one is set), so nothing to learn`,
    );
  }
  if (opts.vocabSize !== undefined) {
    for (const [field, ids] of [
      ['input_ids', example.inputIds],
      ['labels', example.labels],
    ] as const) {
      const bad = ids.findIndex((id) => id >= opts.vocabSize!);
      if (bad >= 0) {
        throw new TrainingDataError(
          `${where}: ${field}[${bad}] = ${ids[bad]} is not below the model's vocab_size ${opts.vocabSize}`,
        );
      }
    }
  }
  return example;
}

/** Every row of a JSONL file (path under Node, or http(s) URL) → examples; an empty dataset is an error. */
export async function loadTrainingData(
  spec: string,
  tok: HFTokenizer | null,
  opts: TokenizeOptions,
): Promise<TrainExample[]> {
  let text: string;
  if (/^https?:\/\//i.test(spec)) {
    let res: Response;
    try {
      res = await fetch(spec);
    } catch (e) {
      throw new TrainingDataError(`training data: GET ${spec} failed: ${(e as Error).message}`, { cause: e });
    }
    if (!res.ok) throw new TrainingDataError(`training data: GET ${spec} failed: HTTP ${res.status} ${res.statusText}`);
    text = await res.text();
  } else {
    const { readFile } = await import('node:fs/promises');
    try {
      text = await readFile(spec, 'utf8');
    } catch (e) {
      throw new TrainingDataError(`training data: cannot read ${spec}: ${(e as Error).message}`, { cause: e });
    }
  }
  const rows = parseRows(text, spec);
  if (rows.length === 0) throw new TrainingDataError(`training data ${spec} is empty (no rows)`);
  return rows.map(({ row, where }) => tokenizeRow(row, tok, opts, where));
}

// ---------------------------------------------------------------------------------------------
// Batching

export interface TrainBatch {
  /** [batch, seqLen] row-major, right-padded with padId. */
  inputIds: Uint32Array;
  /** [batch, seqLen], -100 at padding. */
  labels: Int32Array;
  batch: number;
  seqLen: number;
}

/**
 * Groups examples (in `order`, e.g. a shuffled index list) into micro-batches of `batchSize`
 * (the last one may be smaller), each padded on the right to its own longest example. Right
 * padding never changes the real tokens' logits under a causal mask, and padded labels are -100.
 */
export function batchExamples(
  examples: TrainExample[],
  order: number[],
  batchSize: number,
  padId: number,
): TrainBatch[] {
  if (!Number.isInteger(batchSize) || batchSize <= 0)
    throw new TrainingDataError(`batch size must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(padId) || padId < 0)
    throw new TrainingDataError(`pad id must be a non-negative integer, got ${padId}`);
  const batches: TrainBatch[] = [];
  for (let start = 0; start < order.length; start += batchSize) {
    const members = order.slice(start, start + batchSize).map((index) => {
      const example = examples[index];
      if (!example)
        throw new TrainingDataError(`batch order refers to example ${index}, but there are ${examples.length}`);
      return example;
    });
    const seqLen = Math.max(...members.map((e) => e.inputIds.length));
    const inputIds = new Uint32Array(members.length * seqLen).fill(padId);
    const labels = new Int32Array(members.length * seqLen).fill(IGNORE_INDEX);
    members.forEach((e, b) => {
      inputIds.set(e.inputIds, b * seqLen);
      labels.set(e.labels, b * seqLen);
    });
    batches.push({ inputIds, labels, batch: members.length, seqLen });
  }
  return batches;
}
