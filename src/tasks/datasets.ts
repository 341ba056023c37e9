/**
 * Question sets for the debate teacher and the evaluation: JSONL, a JSON array or Parquet, from a
 * file path, an http(s) URL or a Hugging Face dataset id (`openai/gsm8k` with a config and split,
 * resolved through the Hub's file listing: hub.ts), in any of the common layouts:
 *
 * - GSM8K:            {"question", "answer": "... #### 18"}
 * - MATH / MATH-500:  {"problem", "solution" (with \boxed{}), "answer"?}
 * - MetaMathQA:       {"query", "response": "... The answer is: X"}
 * - AIME / AMC:       {"problem" | "Problem", "answer" | "Answer": integer}
 * - multiple choice:  {"question", "choices": [...] | "A".."E" fields, "answer": "C" | 2} (MMLU:
 *                     `choices` + 0-based `answer`; ARC: {"text": [...], "label": [...]})
 * - MedMCQA:          {"question", "opa".."opd", "cop"}: `cop` is 0-based in the Hub's files and
 *                     1-based in the original release's JSON; read from the file (a 0 or a 4 among
 *                     the rows decides; Parquet defaults to 0-based), or `copBase`
 * - MedQA:            {"question", "options": {"A": …, …}, "answer_idx": "C"}
 * - short-answer QA:  {"question", "answer": "…"} (HotpotQA; task `qa`)
 * - plain / AgentArk: {"question" | "query", "answer" | "gt" | "ground_truth"}
 *
 * Field names are matched case-insensitively when the lowercase one is absent ("Problem").
 * Ids are the row's `id` when present, else `<basename>#<row>` (1-based line of a JSONL file; item
 * of a JSON array; row of a Parquet file), so they are stable across runs. Bad rows throw an
 * error naming file and row.
 */
import { referenceAnswer, type Task } from './answers';
import type { DatasetCache } from './hub';

export type { Task } from './answers';

export interface Question {
  id: string;
  /** The prompt text; for multiple choice it includes the lettered choices. */
  question: string;
  /** The reference, full text (a GSM8K solution, a MATH solution or bare answer, an MC letter). */
  answer: string;
  task: Task;
  /** Multiple choice only: the choice texts, in letter order. */
  choices?: string[];
  /** The question set's label when several sets are evaluated in one run (`agentark eval --data A --data B`). */
  set?: string;
}

export interface LoadOptions {
  /** Keep only the first `limit` questions (rows after it are not parsed). */
  limit?: number;
  /** MedMCQA: whether `cop` counts options from 0 or from 1 (default: read from the file). */
  copBase?: 0 | 1;
  /** Hub dataset ids: the config (subset) and split (default: the only config; split "test"). */
  config?: string;
  split?: string;
  /** Hub dataset ids: revision (default "main"). */
  revision?: string;
  /** Hub dataset ids: the Hub endpoint (default $AGENTARK_HF_ENDPOINT or https://huggingface.co). */
  endpoint?: string;
  /** Hub dataset ids: a token for gated datasets (default $HF_TOKEN under Node). */
  token?: string;
  /** Hub dataset ids: where downloads are kept (default: ~/.cache/agentark under Node, none in a browser). */
  cache?: DatasetCache | null;
  /** Download progress (bytes) of Parquet files and Hub datasets. */
  onProgress?: (e: { phase: string; done: number; total: number; unit: 'bytes' }) => void;
  signal?: AbortSignal;
}

const LETTERS = ['A', 'B', 'C', 'D', 'E'];
const QUESTION_KEYS = ['question', 'problem', 'query', 'prompt', 'input'];
const ANSWER_KEYS = ['answer', 'solution', 'gt', 'ground_truth', 'answerKey', 'target', 'output', 'response'];

/** A row as read from a file, with where it came from. */
export interface RawRow {
  row: unknown;
  /** 1-based line (JSONL), item (JSON array) or row (Parquet). */
  index: number;
  /** "file:line" for error messages. */
  where: string;
}

const isParquetName = (spec: string) => /\.parquet(?:$|[?#])/i.test(spec);

/**
 * Load questions from a file path, an http(s) URL (JSONL, JSON or Parquet) or a Hugging Face
 * dataset id (`owner/name`, with `config` / `split`; see hub.ts).
 */
export async function loadQuestions(spec: string, task: Task, opts: LoadOptions = {}): Promise<Question[]> {
  const { isHubDatasetSpec, loadHubDatasetRows } = await import('./hub');
  if (await isHubDatasetSpec(spec)) {
    const { rows, name, parquet } = await loadHubDatasetRows(spec, opts);
    return rowsToQuestions(rows, task, name, { ...opts, defaultCopBase: parquet ? 0 : undefined });
  }
  if (isParquetName(spec)) {
    const { readParquetRows, readParquetSource } = await import('./parquet');
    const bytes = await readParquetSource(spec, opts);
    return rowsToQuestions(await readParquetRows(bytes, spec, { limit: opts.limit }), task, spec, {
      ...opts,
      defaultCopBase: 0,
    });
  }
  let text: string;
  if (/^https?:\/\//i.test(spec)) {
    const res = await fetch(spec, { signal: opts.signal });
    if (!res.ok) throw new Error(`loadQuestions: GET ${spec} failed: HTTP ${res.status} ${res.statusText}`);
    text = await res.text();
  } else {
    const { readFile } = await import('node:fs/promises');
    try {
      text = await readFile(spec, 'utf8');
    } catch (err) {
      throw new Error(`loadQuestions: cannot read ${spec}: ${(err as Error).message}`);
    }
  }
  return parseQuestionsLimited(text, task, spec, opts.limit, opts);
}

/**
 * Questions from a file's bytes (a browser File, a download): Parquet when the name ends in
 * .parquet or the bytes start with "PAR1", else JSONL / a JSON array.
 */
export async function parseQuestionFile(
  bytes: ArrayBuffer | Uint8Array,
  name: string,
  task: Task,
  opts: Pick<LoadOptions, 'limit' | 'copBase'> = {},
): Promise<Question[]> {
  const u8 = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  const magic = u8.length >= 4 && u8[0] === 0x50 && u8[1] === 0x41 && u8[2] === 0x52 && u8[3] === 0x31;
  if (isParquetName(name) || magic) {
    const { readParquetRows } = await import('./parquet');
    const buf = u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength) as ArrayBuffer;
    return rowsToQuestions(await readParquetRows(buf, name, { limit: opts.limit }), task, name, {
      ...opts,
      defaultCopBase: 0,
    });
  }
  return parseQuestionsLimited(new TextDecoder().decode(u8), task, name, opts.limit, opts);
}

/** Parse JSONL (or a JSON array) text into questions; `sourceName` names the file in ids and errors. */
export function parseQuestions(
  jsonlText: string,
  task: Task,
  sourceName: string,
  opts: Pick<LoadOptions, 'copBase'> = {},
): Question[] {
  return parseQuestionsLimited(jsonlText, task, sourceName, undefined, opts);
}

/** The raw rows of JSONL or JSON-array text (at most `limit`). */
export function readJsonRows(text: string, sourceName: string, limit?: number): RawRow[] {
  const max = limit === undefined ? Infinity : Math.max(0, Math.floor(limit));
  const out: RawRow[] = [];
  if (max === 0) return out;
  const body = text.replace(/^\uFEFF/, '');
  if (body.trimStart().startsWith('[')) {
    let items: unknown;
    try {
      items = JSON.parse(body);
    } catch (err) {
      throw new Error(`${sourceName}: invalid JSON array: ${(err as Error).message}`);
    }
    if (!Array.isArray(items)) throw new Error(`${sourceName}: expected a JSON array`);
    for (let i = 0; i < items.length && out.length < max; i++)
      out.push({ row: items[i], index: i + 1, where: `${sourceName}: item ${i + 1}` });
    return out;
  }
  const lines = body.split(/\r?\n/);
  for (let i = 0; i < lines.length && out.length < max; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const where = `${sourceName}:${i + 1}`;
    try {
      out.push({ row: JSON.parse(line), index: i + 1, where });
    } catch (err) {
      throw new Error(`${where}: invalid JSON: ${(err as Error).message}`);
    }
  }
  return out;
}

function parseQuestionsLimited(
  text: string,
  task: Task,
  sourceName: string,
  limit: number | undefined,
  opts: Pick<LoadOptions, 'copBase'>,
): Question[] {
  return rowsToQuestions(readJsonRows(text, sourceName, limit), task, sourceName, opts);
}

/**
 * Questions from raw rows of any layout (see the module comment). `defaultCopBase`: MedMCQA's
 * `cop` base when the rows do not show it (Parquet from the Hub: 0).
 */
export function rowsToQuestions(
  rows: readonly RawRow[],
  task: Task,
  sourceName: string,
  opts: Pick<LoadOptions, 'copBase'> & { defaultCopBase?: 0 | 1 } = {},
): Question[] {
  const base = basename(sourceName);
  const objects = rows.map((r) => {
    if (typeof r.row !== 'object' || r.row === null || Array.isArray(r.row))
      throw new Error(`${r.where}: expected a JSON object per line`);
    return withLowercaseKeys(r.row as Record<string, unknown>);
  });
  const copBase = opts.copBase ?? detectCopBase(objects, sourceName, opts.defaultCopBase);
  return rows.map((r, i) => toQuestion(adaptRow(objects[i]!, copBase), task, `${base}#${r.index}`, r.where));
}

/** Lowercase field names added for capitalised ones ("Problem" → "problem") when absent; BigInt values as numbers. */
function withLowercaseKeys(r: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) out[k] = typeof v === 'bigint' ? Number(v) : v;
  for (const [k, v] of Object.entries(out)) {
    const lower = k.toLowerCase();
    if (!(lower in out)) out[lower] = v;
  }
  return out;
}

const isMedMcqa = (r: Record<string, unknown>) => 'opa' in r && 'opb' in r && 'cop' in r;

/** MedMCQA's `cop` base from the rows: a 0 means 0-based, a 4 means 1-based. */
function detectCopBase(
  rows: readonly Record<string, unknown>[],
  sourceName: string,
  fallback: 0 | 1 | undefined,
): 0 | 1 | null {
  const cops = rows.filter(isMedMcqa).map((r) => Number(r.cop));
  if (!cops.length) return null;
  const zero = cops.includes(0);
  const four = cops.includes(4);
  if (zero && four)
    throw new Error(`${sourceName}: MedMCQA "cop" holds both 0 and 4: neither 0- nor 1-based; fix the file`);
  if (zero) return 0;
  if (four) return 1;
  if (fallback !== undefined) return fallback;
  throw new Error(
    `${sourceName}: cannot tell whether MedMCQA "cop" counts from 0 (the Hub's files) or 1 (the original JSON): no row has 0 or 4; give --cop-base 0 or 1`,
  );
}

/** Known source layouts rewritten into the generic one (choices + answer). */
function adaptRow(r: Record<string, unknown>, copBase: 0 | 1 | null): Record<string, unknown> {
  if (isMedMcqa(r)) {
    const choices = ['opa', 'opb', 'opc', 'opd', 'ope']
      .filter((k) => typeof r[k] === 'string' || typeof r[k] === 'number')
      .map((k) => String(r[k]));
    return { ...r, choices, answer: Number(r.cop) - (copBase ?? 0) };
  }
  if (r.options && typeof r.options === 'object' && !Array.isArray(r.options) && typeof r.answer_idx === 'string') {
    // MedQA: an options map keyed by letter, answer_idx the letter.
    const map = r.options as Record<string, unknown>;
    const keys = Object.keys(map)
      .filter((k) => map[k] !== null && map[k] !== undefined)
      .sort();
    return { ...r, choices: keys.map((k) => String(map[k])), answer: r.answer_idx };
  }
  return r;
}

function basename(spec: string): string {
  let p = spec;
  if (/^https?:\/\//i.test(p)) {
    try {
      p = new URL(p).pathname;
    } catch {
      /* keep as is */
    }
  }
  const parts = p.split(/[\\/]/).filter(Boolean);
  return parts[parts.length - 1] ?? spec;
}

function firstString(row: Record<string, unknown>, keys: string[]): { key: string; value: string } | null {
  for (const key of keys) {
    const v = row[key];
    if (typeof v === 'string' && v.trim()) return { key, value: v };
    if (typeof v === 'number' && Number.isFinite(v)) return { key, value: String(v) };
  }
  return null;
}

function toQuestion(row: unknown, task: Task, defaultId: string, where: string): Question {
  if (typeof row !== 'object' || row === null || Array.isArray(row)) {
    throw new Error(`${where}: expected a JSON object per line`);
  }
  const r = row as Record<string, unknown>;
  const id = typeof r.id === 'string' && r.id.trim() ? r.id : typeof r.id === 'number' ? String(r.id) : defaultId;

  const q = firstString(r, QUESTION_KEYS);
  if (!q) throw new Error(`${where}: no question text (expected one of ${QUESTION_KEYS.join(', ')})`);

  if (task === 'mc') return toChoiceQuestion(r, id, q.value, where);

  const answer = task === 'math' ? mathReference(r) : (firstString(r, ANSWER_KEYS)?.value ?? null);
  if (answer === null) throw new Error(`${where}: no answer (expected one of ${ANSWER_KEYS.join(', ')})`);
  if (referenceAnswer(task, answer) === null) {
    throw new Error(`${where}: cannot find a ${task} reference answer in ${JSON.stringify(answer.slice(-120))}`);
  }
  return { id, question: q.value, answer, task };
}

/**
 * MATH rows may carry a full `solution` (answer in its last \boxed{}) and/or a bare `answer`.
 * Keep the full solution when its boxed answer agrees with `answer` (or there is no `answer`);
 * when they disagree, or the solution has no box, the explicit `answer` is the reference.
 */
function mathReference(r: Record<string, unknown>): string | null {
  const solution = firstString(r, ['solution'])?.value ?? null;
  const bare = firstString(r, ['answer', 'gt', 'ground_truth', 'target', 'output', 'response'])?.value ?? null;
  if (solution === null) return bare;
  if (bare === null) return solution;
  const fromSolution = /\\(?:boxed|fbox)/.test(solution) ? referenceAnswer('math', solution) : null;
  return fromSolution !== null && fromSolution === referenceAnswer('math', bare) ? solution : bare;
}

function readChoices(r: Record<string, unknown>, where: string): { texts: string[]; labels: string[] } | null {
  const raw = r.choices ?? r.options;
  if (Array.isArray(raw)) {
    const texts: string[] = [];
    const labels: string[] = [];
    raw.forEach((c, i) => {
      if (typeof c === 'string' || typeof c === 'number') {
        texts.push(String(c));
        labels.push(LETTERS[i] ?? String(i + 1));
      } else if (c && typeof c === 'object' && typeof (c as { text?: unknown }).text === 'string') {
        const obj = c as { text: string; label?: unknown };
        texts.push(obj.text);
        labels.push(typeof obj.label === 'string' ? obj.label : (LETTERS[i] ?? String(i + 1)));
      } else {
        throw new Error(`${where}: choice ${i + 1} is neither a string nor {text}`);
      }
    });
    return { texts, labels };
  }
  if (raw && typeof raw === 'object') {
    // ARC style: {"text": [...], "label": [...]}
    const o = raw as { text?: unknown; label?: unknown };
    if (Array.isArray(o.text)) {
      const texts = o.text.map(String);
      const labels = Array.isArray(o.label) ? o.label.map(String) : texts.map((_, i) => LETTERS[i] ?? String(i + 1));
      return { texts, labels };
    }
    throw new Error(`${where}: "choices" must be an array or {text, label}`);
  }
  const fields = LETTERS.filter((l) => typeof r[l] === 'string' || typeof r[l] === 'number');
  if (fields.length) {
    // A..E fields must be contiguous from A.
    fields.forEach((l, i) => {
      if (l !== LETTERS[i]) throw new Error(`${where}: choice fields must run from A without gaps`);
    });
    return { texts: fields.map((l) => String(r[l])), labels: [...fields] };
  }
  return null;
}

function toChoiceQuestion(r: Record<string, unknown>, id: string, question: string, where: string): Question {
  const choices = readChoices(r, where);
  if (choices && choices.texts.length > LETTERS.length) {
    throw new Error(`${where}: ${choices.texts.length} choices; at most ${LETTERS.length} (A–E) are supported`);
  }
  if (choices && choices.texts.length < 2)
    throw new Error(`${where}: a multiple-choice question needs at least 2 choices`);
  const raw = r.answer ?? r.answerKey ?? r.label ?? r.gt ?? r.ground_truth;
  const letter = choiceLetter(raw, choices, where);
  if (!choices) {
    // The question text already lists its choices.
    return { id, question, answer: letter, task: 'mc' };
  }
  const listed = choices.texts.map((t, i) => `${LETTERS[i]}. ${t}`).join('\n');
  return { id, question: `${question.trimEnd()}\n\n${listed}`, answer: letter, task: 'mc', choices: choices.texts };
}

/**
 * The answer letter. A JSON number is a 0-based index; a string matching a choice label (ARC uses
 * "1".."4" labels) maps by label; a letter A–E is taken as is; a digit string without numeric
 * labels is a 0-based index; otherwise the answer must equal one of the choice texts.
 */
function choiceLetter(raw: unknown, choices: { texts: string[]; labels: string[] } | null, where: string): string {
  const n = choices?.texts.length ?? LETTERS.length;
  const byIndex = (i: number): string => {
    if (!Number.isInteger(i) || i < 0 || i >= n)
      throw new Error(`${where}: answer index ${i} out of range 0..${n - 1}`);
    return LETTERS[i]!;
  };
  if (typeof raw === 'number') return byIndex(raw);
  if (typeof raw !== 'string' || !raw.trim())
    throw new Error(`${where}: no answer (expected "answer" letter or index)`);
  const s = raw.trim();
  if (choices) {
    const labelIdx = choices.labels.indexOf(s);
    if (labelIdx >= 0) return byIndex(labelIdx);
  }
  const letter = /^\(?([A-Ea-e])\)?\.?$/.exec(s);
  if (letter) {
    const L = letter[1]!.toUpperCase();
    byIndex(LETTERS.indexOf(L));
    return L;
  }
  if (/^\d+$/.test(s)) return byIndex(Number(s));
  if (choices) {
    const textIdx = choices.texts.findIndex((t) => t.trim() === s);
    if (textIdx >= 0) return byIndex(textIdx);
  }
  const ref = referenceAnswer('mc', s);
  if (ref !== null) return byIndex(LETTERS.indexOf(ref));
  throw new Error(`${where}: cannot read answer ${JSON.stringify(s.slice(0, 80))} as a choice`);
}
