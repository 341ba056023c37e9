/**
 * R-SFT (reasoning-enhanced SFT, AgentArk): one training conversation per question whose
 * assistant turn is the debate's final reasoning, and only when that reasoning is correct.
 *
 * Per question, the target is
 *   1. the LLM aggregator's output, if it re-grades correct against the reference and holds
 *      reasoning (a bare verdict such as "#### 12" does not: `hasReasoning`); else
 *   2. the best correct message of the final round: those whose answer agrees with the debate's
 *      final answer first, then the shortest (trimmed length), then the earliest agent.
 * Messages cut off by the token limit (finish_reason "length"/"abort"), and bare answers without
 * reasoning, are never targets.
 * Questions with no correct final reasoning are skipped (and counted by reason). Correctness is
 * always re-graded with answers.ts; the stored `correct` flags are not trusted.
 *
 * Rows are TRL conversational: `{"messages": [system?, user, assistant], "id", "source": "rsft"}`,
 * with system/user being exactly the student prompt (`studentMessages`) and the assistant content
 * the cleaned reasoning (calculator annotations removed, canonical answer line; see
 * `cleanReasoning`, which re-checks that the answer is unchanged).
 */
import { answersEqual, type Task } from '../tasks/answers';
import { studentMessages, type StudentPromptOptions } from '../tasks/prompts';
import type { AgentMessage, TrajectoryRecord } from '../teach/trajectory';
import {
  Tally,
  cleanReasoning,
  hasReasoning,
  isCorrect,
  recordReference,
  toFormat,
  type CleanOptions,
  type MessagesRow,
  type SftFormat,
  type SftRow,
} from './common';

export interface RsftOptions extends StudentPromptOptions, CleanOptions {
  /** Row layout (default `messages`). */
  format?: SftFormat;
}

export interface BuildStats {
  questions: number;
  rows: number;
  /** Questions (or candidates) skipped, by reason. */
  skipped: Record<string, number>;
  /** Rows by where their target came from. */
  bySource: Record<string, number>;
}

export interface BuildResult<R> {
  rows: R[];
  stats: BuildStats;
}

const usable = (m: { finish_reason?: string }) => m.finish_reason !== 'length' && m.finish_reason !== 'abort';

/** The final round (highest round number) of a record, or undefined when it has none. */
export function finalRound(rec: TrajectoryRecord) {
  let best: TrajectoryRecord['rounds'][number] | undefined;
  for (const r of rec.rounds) if (!best || r.round > best.round) best = r;
  return best;
}

/**
 * Picks the R-SFT target of one record: `{text, from}` or `{skip: reason}`.
 * `from` is "aggregator" or "agent:<name>".
 */
export function selectRsftTarget(rec: TrajectoryRecord): { text: string; from: string } | { skip: string } {
  const task = rec.task as Task;
  const ref = recordReference(rec);
  if (ref === null) return { skip: 'no-reference-answer' };
  const ag = rec.aggregator;
  if (
    ag.kind === 'llm' &&
    typeof ag.completion === 'string' &&
    usable(ag) &&
    hasReasoning(task, ag.completion) &&
    isCorrect(task, ag.completion, ref)
  ) {
    return { text: ag.completion, from: 'aggregator' };
  }
  const last = finalRound(rec);
  if (!last?.messages.length) return { skip: 'no-rounds' };
  const candidates = last.messages
    .map((m, i) => ({ m, i }))
    .filter(({ m }) => usable(m) && hasReasoning(task, m.completion) && isCorrect(task, m.completion, ref));
  if (!candidates.length) return { skip: 'no-correct-final-reasoning' };
  const agrees = (m: AgentMessage) => answersEqual(task, m.extracted, rec.final.answer);
  candidates.sort(
    (a, b) =>
      Number(agrees(b.m)) - Number(agrees(a.m)) ||
      a.m.completion.trim().length - b.m.completion.trim().length ||
      a.i - b.i,
  );
  const best = candidates[0]!.m;
  return { text: best.completion, from: `agent:${best.agent}` };
}

/** Builds the R-SFT rows of a set of trajectories. */
export function buildRsft(records: TrajectoryRecord[], opts: RsftOptions = {}): BuildResult<SftRow> {
  const skipped = new Tally();
  const bySource = new Tally();
  const rows: SftRow[] = [];
  for (const rec of records) {
    const task = rec.task as Task;
    const pick = selectRsftTarget(rec);
    if ('skip' in pick) {
      skipped.add(pick.skip);
      continue;
    }
    const content = cleanReasoning(task, pick.text, opts);
    const row: MessagesRow = {
      messages: [...studentMessages(task, rec, opts), { role: 'assistant', content }],
      id: rec.id,
      source: 'rsft',
    };
    rows.push(toFormat(row, opts.format ?? 'messages'));
    bySource.add(pick.from === 'aggregator' ? 'aggregator' : 'final-round-agent');
  }
  return {
    rows,
    stats: { questions: records.length, rows: rows.length, skipped: skipped.counts, bySource: bySource.counts },
  };
}
