/**
 * Question sets for the debate teacher and the evaluation: JSONL (or a JSON array) from a file
 * path or an http(s) URL, in any of the common layouts:
 *
 * - GSM8K:            {"question", "answer": "... #### 18"}
 * - MATH:             {"problem", "solution", "answer"?}
 * - multiple choice:  {"question", "choices": [...] | "A".."E" fields, "answer": "C" | 2}
 * - plain / AgentArk: {"question" | "query", "answer" | "gt" | "ground_truth"}
 *
 * Ids are the row's `id` when present, else `<basename>#<line>` (1-based line; `#<item>` for a
 * JSON array), so they are stable across runs. Bad rows throw an error naming file and line.
 */
import { referenceAnswer, type Task } from './answers';

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
}

const LETTERS = ['A', 'B', 'C', 'D', 'E'];
const QUESTION_KEYS = ['question', 'problem', 'query', 'prompt', 'input'];
const ANSWER_KEYS = ['answer', 'solution', 'gt', 'ground_truth', 'answerKey', 'target', 'output'];

/** Load questions from a file path or an http(s) URL. */
export async function loadQuestions(spec: string, task: Task, opts: LoadOptions = {}): Promise<Question[]> {
  let text: string;
  if (/^https?:\/\//i.test(spec)) {
    const res = await fetch(spec);
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
  return parseQuestionsLimited(text, task, spec, opts.limit);
}

/** Parse JSONL (or a JSON array) text into questions; `sourceName` names the file in ids and errors. */
export function parseQuestions(jsonlText: string, task: Task, sourceName: string): Question[] {
  return parseQuestionsLimited(jsonlText, task, sourceName);
}

function parseQuestionsLimited(text: string, task: Task, sourceName: string, limit?: number): Question[] {
  const base = basename(sourceName);
  const max = limit === undefined ? Infinity : Math.max(0, Math.floor(limit));
  const out: Question[] = [];
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
    for (let i = 0; i < items.length && out.length < max; i++) {
      out.push(toQuestion(items[i], task, `${base}#${i + 1}`, `${sourceName}: item ${i + 1}`));
    }
    return out;
  }

  const lines = body.split(/\r?\n/);
  for (let i = 0; i < lines.length && out.length < max; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    const where = `${sourceName}:${i + 1}`;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new Error(`${where}: invalid JSON: ${(err as Error).message}`);
    }
    out.push(toQuestion(row, task, `${base}#${i + 1}`, where));
  }
  return out;
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
  const id =
    typeof r.id === 'string' && r.id.trim() ? r.id : typeof r.id === 'number' ? String(r.id) : defaultId;

  const q = firstString(r, QUESTION_KEYS);
  if (!q) throw new Error(`${where}: no question text (expected one of ${QUESTION_KEYS.join(', ')})`);

  if (task === 'mc') return toChoiceQuestion(r, id, q.value, where);

  const answer = task === 'math' ? mathReference(r) : firstString(r, ANSWER_KEYS)?.value ?? null;
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
  const bare = firstString(r, ['answer', 'gt', 'ground_truth', 'target', 'output'])?.value ?? null;
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
  if (choices && choices.texts.length < 2) throw new Error(`${where}: a multiple-choice question needs at least 2 choices`);
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
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`${where}: answer index ${i} out of range 0..${n - 1}`);
    return LETTERS[i]!;
  };
  if (typeof raw === 'number') return byIndex(raw);
  if (typeof raw !== 'string' || !raw.trim()) throw new Error(`${where}: no answer (expected "answer" letter or index)`);
  const s = raw.trim();
  if (choices) {
    const labelIdx = choices.labels.findIndex((l) => l === s);
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
