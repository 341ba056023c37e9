/**
 * Import existing multi-solution outputs as solution sets, so they can be graded, used as
 * trajectories or as distillation data without re-running a debate:
 *
 * - GSM8K's `example_model_solutions.jsonl` (four GPT-3 solutions per problem, each labelled);
 * - AgentArk's own inference output (`*_infer.jsonl`), whose `response` concatenates the agents'
 *   final-round solutions and, last, the aggregator's output — as `===== Solution N =====` blocks
 *   (the vLLM batch path of `methods/llm_debate/llm_debate_main.py`) or as `Solution N:` blocks
 *   (its sequential path) — and its labelled form written by AgentArk's `label.py`
 *   (`{"query","gt","solutions":[{"id","text","is_correct"}],"labels"}`), whose labels are kept.
 *
 * `ImportedSolutionSet` is deliberately minimal; converting it to the debate module's trajectory
 * record is the caller's business.
 */
import type { Task } from '../tasks/answers';

export interface ImportedSolution {
  agent: string;
  text: string;
  /** Correctness label carried by the source file, when it has one. */
  label?: boolean;
  /** 'aggregator': the debate's aggregator output (AgentArk's last block), not one more voter. */
  role?: 'aggregator';
}

export interface ImportedSolutionSet {
  id: string;
  question: string;
  /** The reference as given (full solution or bare answer); grade with referenceAnswer(). */
  reference: string;
  task: Task;
  solutions: ImportedSolution[];
}

interface JsonlRow {
  line: number;
  row: Record<string, unknown>;
}

function* jsonlRows(text: string, sourceName: string): Generator<JsonlRow> {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (err) {
      throw new Error(`${sourceName}:${i + 1}: invalid JSON: ${(err as Error).message}`);
    }
    if (typeof row !== 'object' || row === null || Array.isArray(row)) {
      throw new Error(`${sourceName}:${i + 1}: expected a JSON object per line`);
    }
    yield { line: i + 1, row: row as Record<string, unknown> };
  }
}

function rowId(row: Record<string, unknown>, fallback: string): string {
  if (typeof row.id === 'string' && row.id.trim()) return row.id;
  if (typeof row.id === 'number') return String(row.id);
  return fallback;
}

/**
 * GSM8K `example_model_solutions.jsonl`: one set per problem, one solution per solver key
 * (`6b_finetuning`, `175b_verification`, ...: agent = key, label = `is_correct`), reference =
 * `ground_truth` (a solution ending "A: <n>"). Ids are `<sourceName>#<line>`; the file is in
 * GSM8K test order, so line N is also test.jsonl line N.
 */
export function importExampleModelSolutions(
  jsonlText: string,
  sourceName = 'example_model_solutions.jsonl',
): ImportedSolutionSet[] {
  const out: ImportedSolutionSet[] = [];
  for (const { line, row } of jsonlRows(jsonlText, sourceName)) {
    const where = `${sourceName}:${line}`;
    if (typeof row.question !== 'string') throw new Error(`${where}: missing "question"`);
    if (typeof row.ground_truth !== 'string') throw new Error(`${where}: missing "ground_truth"`);
    const solutions: ImportedSolution[] = [];
    for (const [agent, value] of Object.entries(row)) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) continue;
      const v = value as { solution?: unknown; is_correct?: unknown };
      if (typeof v.solution !== 'string') throw new Error(`${where}: "${agent}" has no "solution" text`);
      const sol: ImportedSolution = { agent, text: v.solution };
      if (typeof v.is_correct === 'boolean') sol.label = v.is_correct;
      solutions.push(sol);
    }
    if (!solutions.length) throw new Error(`${where}: no solutions (expected objects with "solution")`);
    out.push({
      id: rowId(row, `${sourceName}#${line}`),
      question: row.question,
      reference: row.ground_truth,
      task: 'gsm8k',
      solutions,
    });
  }
  return out;
}

/** `===== Solution N =====` on a line of its own (llm_debate's vLLM batch path). */
const BANNER_HEADER = /^[ \t]*={3,}[ \t]*Solution[ \t]*#?(\d+)[ \t]*:?[ \t]*={3,}[ \t]*$/gim;
/**
 * `Solution N:` at the start of a line (llm_debate's sequential path writes "Solution 1:\n…" and
 * the aggregator as "\nSolution n+1:\n…"). AgentArk's label.py splits on the phrase anywhere in
 * the text; the line start keeps a solution that mentions "solution 2:" in its prose in one piece.
 */
const PLAIN_HEADER = /^[ \t]*Solution[ \t]+(\d+)[ \t]*:/gm;

/**
 * Split an AgentArk `response` into its solution blocks (agent = `agent_N`): `===== Solution N =====`
 * banners when the response has any (label.py looks for the first one), else `Solution N:` headers. Text before
 * the first header is dropped; a response without headers is a single solution `agent_1`.
 *
 * With `aggregatorLast` (default true: llm_debate always appends its aggregator's output as the
 * last block) a response of two or more blocks has its last block marked `role: 'aggregator'`.
 */
export function splitAgentArkResponse(response: string, opts: { aggregatorLast?: boolean } = {}): ImportedSolution[] {
  const banner = new RegExp(BANNER_HEADER.source, 'im').test(response);
  const headers = [...response.matchAll(banner ? BANNER_HEADER : PLAIN_HEADER)];
  if (!headers.length) {
    const text = response.trim();
    return text ? [{ agent: 'agent_1', text }] : [];
  }
  const blocks: ImportedSolution[] = headers.map((h, i) => {
    const start = h.index! + h[0].length;
    const end = i + 1 < headers.length ? headers[i + 1]!.index! : response.length;
    return { agent: `agent_${h[1]}`, text: response.slice(start, end).trim() };
  });
  return markAggregator(blocks, opts.aggregatorLast ?? true);
}

function markAggregator(blocks: ImportedSolution[], aggregatorLast: boolean): ImportedSolution[] {
  if (!aggregatorLast || blocks.length < 2) return blocks;
  const last = blocks[blocks.length - 1]!;
  blocks[blocks.length - 1] = { ...last, agent: 'aggregator', role: 'aggregator' };
  return blocks;
}

const QUESTION_KEYS = ['question', 'query', 'problem'];
const REFERENCE_KEYS = ['answer', 'gt', 'ground_truth', 'solution'];

function pickString(row: Record<string, unknown>, keys: string[]): string | null {
  for (const k of keys) {
    const v = row[k];
    if (typeof v === 'string' && v.trim()) return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  return null;
}

/**
 * AgentArk inference output (one row per query): `response` made of `===== Solution N =====` or
 * `Solution N:` blocks, plus the query (`question`/`query`/`problem`) and reference (`answer`/`gt`/
 * `ground_truth`/`solution`). Also accepts AgentArk's labelled rows, whose `solutions` array is
 * `[{id, text, is_correct}]` with `labels` beside it (label.py: labels[i] = solutions[i].is_correct;
 * the `labels` array wins when both are given and have the solutions' length). In both forms the
 * last of two or more blocks is the aggregator's output (`aggregatorLast`, default true).
 * Rows with an `error` and no response, or an empty response, are skipped.
 */
export function importAgentArkOutput(
  jsonlText: string,
  task: Task,
  sourceName = 'agentark',
  opts: { aggregatorLast?: boolean } = {},
): ImportedSolutionSet[] {
  const out: ImportedSolutionSet[] = [];
  for (const { line, row } of jsonlRows(jsonlText, sourceName)) {
    const where = `${sourceName}:${line}`;
    const question = pickString(row, QUESTION_KEYS);
    if (question === null) throw new Error(`${where}: no question (expected one of ${QUESTION_KEYS.join(', ')})`);
    const reference = pickString(row, REFERENCE_KEYS);
    if (reference === null) throw new Error(`${where}: no reference (expected one of ${REFERENCE_KEYS.join(', ')})`);

    let solutions: ImportedSolution[];
    if (Array.isArray(row.solutions)) {
      const labels =
        Array.isArray(row.labels) &&
        row.labels.length === row.solutions.length &&
        row.labels.every((l) => typeof l === 'boolean')
          ? (row.labels as boolean[])
          : null;
      solutions = row.solutions.map((s, i) => {
        if (typeof s === 'string') return { agent: `agent_${i + 1}`, text: s };
        const o = (s ?? {}) as { id?: unknown; text?: unknown; is_correct?: unknown };
        if (typeof o.text !== 'string') throw new Error(`${where}: solutions[${i}] has no "text"`);
        const sol: ImportedSolution = {
          agent: `agent_${typeof o.id === 'number' || typeof o.id === 'string' ? o.id : i + 1}`,
          text: o.text,
        };
        if (labels) sol.label = labels[i];
        else if (typeof o.is_correct === 'boolean') sol.label = o.is_correct;
        return sol;
      });
      solutions = markAggregator(solutions, opts.aggregatorLast ?? true);
    } else if (typeof row.response === 'string') {
      solutions = splitAgentArkResponse(row.response, opts);
    } else if (row.error !== undefined) {
      continue; // failed inference row
    } else {
      throw new Error(`${where}: no "response" (or "solutions") field`);
    }
    if (!solutions.length) continue;
    out.push({ id: rowId(row, `${sourceName}#${line}`), question, reference, task, solutions });
  }
  return out;
}
