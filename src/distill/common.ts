/**
 * Shared pieces of the distillation builders (R-SFT, DA, PAD):
 *
 * - TRL-compatible row types (conversational `messages`, conversational prompt-completion,
 *   stepwise supervision) and a JSONL writer;
 * - text clean-up of teacher reasoning (GSM8K calculator annotations, a canonical last answer line);
 * - the de-duplication primitives of DA (normalised text, word n-gram Jaccard).
 *
 * Everything here except `writeJsonl` is pure and runs in the browser as well.
 */
import type { ChatMessage } from '../engine/types';
import { answersEqual, extractAnswer, lastBoxed, referenceAnswer, type Task } from '../tasks/answers';
import type { TrajectoryRecord } from '../teach/trajectory';

// ---------------------------------------------------------------------------------------------
// Row shapes (Hugging Face TRL dataset formats)

export type RowSource = 'rsft' | 'da' | 'da-selfcorrect';

/** TRL conversational language-modelling row. */
export interface MessagesRow {
  messages: ChatMessage[];
  id: string;
  source: RowSource;
}

/** TRL conversational prompt-completion row: only the completion is trained on. */
export interface PromptCompletionRow {
  prompt: ChatMessage[];
  completion: ChatMessage[];
  id: string;
  source: RowSource;
}

export type SftRow = MessagesRow | PromptCompletionRow;

/**
 * `messages`: one conversation per row (TRL SFTTrainer trains on every assistant turn with
 * `assistant_only_loss`, on everything otherwise). `prompt-completion`: the same conversation
 * split before its last assistant turn, so only that turn is trained on — what a self-correction
 * example needs if the wrong first attempt must not be learned.
 */
export type SftFormat = 'messages' | 'prompt-completion';

export function toFormat(row: MessagesRow, format: SftFormat): SftRow {
  if (format === 'messages') return row;
  const last = row.messages.length - 1;
  return { prompt: row.messages.slice(0, last), completion: [row.messages[last]!], id: row.id, source: row.source };
}

/** TRL stepwise-supervision row (PRMTrainer), plus provenance. */
export interface StepwiseRow {
  prompt: string;
  completions: string[];
  labels: boolean[];
  id: string;
  agent: string;
  round: number;
  survived: boolean;
}

/** Serialises rows as JSONL (one compact JSON object per line, trailing newline). */
export function toJsonl(rows: readonly object[]): string {
  return rows.map((r) => `${JSON.stringify(r)}\n`).join('');
}

/** Writes rows as JSONL (Node only), creating the directory; written to a temp file first, then renamed. */
export async function writeJsonl(file: string, rows: readonly object[]): Promise<void> {
  const [{ promises: fsp }, path] = await Promise.all([import('node:fs'), import('node:path')]);
  await fsp.mkdir(path.dirname(path.resolve(file)), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  await fsp.writeFile(tmp, toJsonl(rows), 'utf8');
  await fsp.rename(tmp, file);
}

// ---------------------------------------------------------------------------------------------
// Grading helpers

/** The record's normalised reference answer (null when the reference holds none). */
export function recordReference(rec: Pick<TrajectoryRecord, 'task' | 'reference'>): string | null {
  return referenceAnswer(rec.task, rec.reference);
}

/** Re-grades `text` against a normalised reference (never trusts stored flags). */
export function isCorrect(task: Task, text: string, ref: string | null): boolean {
  return ref !== null && answersEqual(task, extractAnswer(task, text), ref);
}

// ---------------------------------------------------------------------------------------------
// Reasoning text clean-up

/** Removes GSM8K calculator annotations `<<16-3=13>>` (the result is written right after them). */
export function stripCalculator(text: string): string {
  return text.replace(/<<[^<>\n]*>>/g, '');
}

export interface CleanOptions {
  /** Remove GSM8K `<<...>>` calculator annotations (default true). */
  stripCalculator?: boolean;
  /**
   * Make the last line the canonical answer line of the task — `#### n` (gsm8k), a `\boxed{}`
   * (math), `Answer: X` (mc) — which is what the student prompt asks for (default true). A GSM8K
   * "A: 18" / "Answer: 18" last line is rewritten; otherwise the line is appended.
   */
  answerLine?: boolean;
}

/**
 * Whether `text` holds reasoning besides its final answer: something other than the "#### n"
 * line (gsm8k), the \boxed{…} (math) or the "Answer: X" line (mc) is left. A judge that only
 * states a verdict ("#### 12") is right or wrong but has nothing to distil.
 */
export function hasReasoning(task: Task, text: string): boolean {
  const rest =
    task === 'gsm8k'
      ? text.replace(/^\s*####.*$/gm, '')
      : task === 'math'
        ? text.replace(/\\boxed\s*\{(?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*\}/g, '')
        : task === 'qa'
          ? text.replace(/^\s*(?:Final\s+)?Answer\s*:.*$/gim, '')
          : text.replace(/^\s*Answer:\s*[A-Ea-e]\s*$/gm, '');
  return /[\p{L}\p{N}]/u.test(rest);
}

/**
 * Cleans one teacher reasoning for use as a training target. The result is re-graded: if the
 * clean-up changed the extracted answer, the original (trimmed) text is returned instead, so a
 * correct reasoning always stays correct.
 */
export function cleanReasoning(task: Task, text: string, opts: CleanOptions = {}): string {
  const original = text.trim();
  const before = extractAnswer(task, original);
  let t = original;
  if (opts.stripCalculator ?? true) t = stripCalculator(t);
  t = t
    .replace(/[ \t]+$/gm, '')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
  if ((opts.answerLine ?? true) && before !== null) t = withAnswerLine(task, t, before);
  const after = extractAnswer(task, t);
  if (before !== null && !answersEqual(task, before, after)) return original;
  return t;
}

function withAnswerLine(task: Task, text: string, answer: string): string {
  const lines = text.split('\n');
  let i = lines.length - 1;
  while (i >= 0 && !lines[i]!.trim()) i--;
  const last = i >= 0 ? lines[i]!.trim() : '';
  const head = lines.slice(0, Math.max(0, i)).join('\n').trimEnd();
  const join = (body: string, line: string) => (body ? `${body}\n${line}` : line);
  switch (task) {
    case 'gsm8k': {
      if (/^####\s*\S/.test(last)) return text;
      if (/^(?:A|Answer|Final answer)\s*[:：]\s*\S/i.test(last)) return join(head, `#### ${answer}`);
      return `${text}\n#### ${answer}`;
    }
    case 'math': {
      if (lastBoxed(last) !== null) return text;
      return `${text}\n\\boxed{${answer}}`;
    }
    case 'mc': {
      if (/^Answer:\s*[A-E]\s*$/.test(last)) return text;
      return `${text}\nAnswer: ${answer}`;
    }
    case 'qa': {
      if (/^(?:Final\s+)?Answer\s*:\s*\S/i.test(last)) return text;
      return `${text}\nAnswer: ${answer}`;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// De-duplication

/**
 * Tokens for comparing reasoning texts: lowercase words, numbers (thousands separators dropped,
 * decimals kept) and arithmetic operators; whitespace and other punctuation are dropped, and GSM8K
 * calculator annotations removed.
 */
export function dedupTokens(text: string): string[] {
  const t = stripCalculator(text)
    .toLowerCase()
    .replace(/(\d),(?=\d{3}(?!\d))/g, '$1');
  return t.match(/\d+(?:\.\d+)?|\p{L}+|[+\-*/×÷=%^<>]/gu) ?? [];
}

/** The normalised text: dedupTokens joined by single spaces. */
export function normalizeText(text: string): string {
  return dedupTokens(text).join(' ');
}

/** The set of word n-grams (a text shorter than n gives its whole token sequence as one gram). */
export function wordNgrams(text: string, n = 3): Set<string> {
  const toks = dedupTokens(text);
  const out = new Set<string>();
  if (toks.length < n) {
    if (toks.length) out.add(toks.join(' '));
    return out;
  }
  for (let i = 0; i + n <= toks.length; i++) out.add(toks.slice(i, i + n).join(' '));
  return out;
}

export function jaccard<T>(a: Set<T>, b: Set<T>): number {
  if (!a.size && !b.size) return 1;
  let inter = 0;
  const [small, big] = a.size <= b.size ? [a, b] : [b, a];
  for (const x of small) if (big.has(x)) inter++;
  return inter / (a.size + b.size - inter);
}

export interface DedupOptions {
  /** Jaccard over word n-grams at or above which two texts are duplicates (default 0.7). */
  threshold?: number;
  /** n of the word n-grams (default 3). */
  n?: number;
}

/** The DA duplicate rule: equal normalised text, or n-gram Jaccard ≥ threshold. */
export function isNearDuplicate(a: string, b: string, opts: DedupOptions = {}): boolean {
  if (normalizeText(a) === normalizeText(b)) return true;
  return jaccard(wordNgrams(a, opts.n ?? 3), wordNgrams(b, opts.n ?? 3)) >= (opts.threshold ?? 0.7);
}

/** Counts skip reasons. */
export class Tally {
  readonly counts: Record<string, number> = {};
  add(reason: string, by = 1): void {
    this.counts[reason] = (this.counts[reason] ?? 0) + by;
  }
  total(): number {
    return Object.values(this.counts).reduce((a, b) => a + b, 0);
  }
}
