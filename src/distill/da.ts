/**
 * DA (data augmentation, AgentArk): several distinct correct reasoning paths per question, plus
 * self-correction conversations.
 *
 * Paths: every agent message of every round (round order, then agent order — independent
 * round-1 solutions come first, as they are the most diverse) that re-grades correct and was not
 * cut off by the token limit is a candidate. A candidate is kept unless it duplicates a path
 * already kept: same normalised text (lowercase; whitespace and punctuation dropped; numbers and
 * arithmetic operators kept; see `normalizeText`) or Jaccard similarity of word 3-gram sets
 * ≥ `threshold` (default 0.7). At most `perQuestion` (K, default 4) paths per question. The
 * comparison is made on the cleaned text that goes into the row.
 *
 * Self-correction: an agent whose round-1 answer is wrong and whose answer at a later round r is
 * right (the first such r) gives the conversation
 *   user: question → assistant: its (wrong) answer of round r-1 →
 *   user: "Here are other agents' solutions: … Review your answer …" (the other agents' round r-1
 *         solutions, i.e. what it read before fixing) → assistant: its round-r (correct) answer,
 * with `source: "da-selfcorrect"`. At most `maxSelfCorrect` (default K) per question, distinct
 * under the same duplicate rule applied to the fixed answer.
 *
 * Rows: paths in TRL conversational `messages` form (default) or conversational prompt-completion
 * (`format: "prompt-completion"`). Self-correction rows are always prompt-completion: the earlier
 * turns, the wrong attempt included, are the `prompt` (not trained on) and only the corrected
 * answer is the `completion` — in `messages` form TRL's SFTTrainer (`assistant_only_loss`) would
 * train on every assistant turn and so learn the wrong attempt too. No trained turn of a DA row
 * ends in a wrong final answer.
 */
import type { Task } from '../tasks/answers';
import { answerFormatInstruction, studentMessages, type StudentPromptOptions } from '../tasks/prompts';
import type { TrajectoryRecord } from '../teach/trajectory';
import {
  Tally,
  cleanReasoning,
  hasReasoning,
  isCorrect,
  isNearDuplicate,
  recordReference,
  stripCalculator,
  toFormat,
  type CleanOptions,
  type DedupOptions,
  type MessagesRow,
  type SftFormat,
  type SftRow,
} from './common';
import type { BuildResult } from './rsft';

export interface DaOptions extends StudentPromptOptions, CleanOptions, DedupOptions {
  /** K: at most this many distinct correct paths per question (default 4). */
  perQuestion?: number;
  /** Build self-correction conversations (default true). */
  selfCorrection?: boolean;
  /** At most this many self-correction rows per question (default K). */
  maxSelfCorrect?: number;
  /** Quote at most the last N characters of each peer solution in the critique turn. */
  maxQuotedChars?: number;
  format?: SftFormat;
}

const usable = (m: { finish_reason?: string }) => m.finish_reason !== 'length' && m.finish_reason !== 'abort';

function quote(text: string, max?: number): string {
  const t = text.trim();
  if (!max || t.length <= max) return t;
  return `[…] ${t.slice(t.length - max)}`;
}

/** The critique turn of a self-correction example. */
export function critiquePrompt(task: Task, peers: { name: string; answer: string }[], maxQuotedChars?: number): string {
  const quoted = peers.map((p) => `--- ${p.name} ---\n${quote(p.answer, maxQuotedChars)}`).join('\n\n');
  return (
    `Here are other agents' solutions:\n\n${quoted}\n\n` +
    'Review your answer in the light of their reasoning: check every step, yours and theirs, and fix your answer if it is wrong. ' +
    `Then give your updated step-by-step solution. ${answerFormatInstruction(task)}`
  );
}

/** Distinct correct paths of one record (cleaned texts, at most K). */
export function distinctCorrectPaths(
  rec: TrajectoryRecord,
  opts: DaOptions = {},
): { paths: { text: string; agent: string; round: number }[]; duplicates: number; candidates: number } {
  const task = rec.task as Task;
  const ref = recordReference(rec);
  const k = opts.perQuestion ?? 4;
  const paths: { text: string; agent: string; round: number }[] = [];
  let duplicates = 0;
  let candidates = 0;
  if (ref === null) return { paths, duplicates, candidates };
  const rounds = [...rec.rounds].sort((a, b) => a.round - b.round);
  for (const r of rounds) {
    for (const m of r.messages) {
      if (!usable(m) || !hasReasoning(task, m.completion) || !isCorrect(task, m.completion, ref)) continue;
      candidates++;
      const text = cleanReasoning(task, m.completion, opts);
      if (paths.some((p) => isNearDuplicate(p.text, text, opts))) {
        duplicates++;
        continue;
      }
      if (paths.length < k) paths.push({ text, agent: m.agent, round: r.round });
    }
  }
  return { paths, duplicates, candidates };
}

/** Builds the DA rows (paths, then self-correction examples) of a set of trajectories. */
export function buildDa(records: TrajectoryRecord[], opts: DaOptions = {}): BuildResult<SftRow> {
  const k = opts.perQuestion ?? 4;
  if (!(Number.isInteger(k) && k >= 1)) throw new Error(`DA: perQuestion must be an integer >= 1, got ${k}`);
  const threshold = opts.threshold ?? 0.7;
  if (!(threshold > 0 && threshold <= 1)) throw new Error(`DA: threshold must be in (0, 1], got ${threshold}`);
  const maxSc = opts.maxSelfCorrect ?? k;
  const format = opts.format ?? 'messages';
  const skipped = new Tally();
  const bySource = new Tally();
  const rows: SftRow[] = [];
  for (const rec of records) {
    const task = rec.task as Task;
    const ref = recordReference(rec);
    if (ref === null) {
      skipped.add('no-reference-answer');
      continue;
    }
    const prompt = studentMessages(task, rec, opts);
    const { paths, duplicates, candidates } = distinctCorrectPaths(rec, opts);
    if (duplicates) skipped.add('duplicate-path', duplicates);
    if (candidates - duplicates > paths.length)
      skipped.add('over-per-question-limit', candidates - duplicates - paths.length);
    paths.forEach((p, i) => {
      const row: MessagesRow = {
        messages: [...prompt, { role: 'assistant', content: p.text }],
        id: `${rec.id}#da${i + 1}`,
        source: 'da',
      };
      rows.push(toFormat(row, format));
      bySource.add('da');
    });
    let sc = 0;
    if (opts.selfCorrection ?? true) {
      const kept: string[] = [];
      for (const ex of selfCorrections(rec, opts)) {
        if (kept.some((t) => isNearDuplicate(t, ex.fixed, opts))) {
          skipped.add('duplicate-self-correction');
          continue;
        }
        if (sc >= maxSc) {
          skipped.add('over-self-correction-limit');
          continue;
        }
        kept.push(ex.fixed);
        sc++;
        const row: MessagesRow = {
          messages: [
            ...prompt,
            { role: 'assistant', content: ex.wrong },
            { role: 'user', content: ex.critique },
            { role: 'assistant', content: ex.fixed },
          ],
          id: `${rec.id}#sc-${ex.agent}-r${ex.round}`,
          source: 'da-selfcorrect',
        };
        rows.push(toFormat(row, 'prompt-completion'));
        bySource.add('da-selfcorrect');
      }
    }
    if (!paths.length && !sc) skipped.add('no-correct-reasoning');
  }
  return {
    rows,
    stats: { questions: records.length, rows: rows.length, skipped: skipped.counts, bySource: bySource.counts },
  };
}

export interface SelfCorrection {
  agent: string;
  /** The round whose answer is the fix. */
  round: number;
  wrong: string;
  critique: string;
  fixed: string;
}

/** The wrong-at-round-1 → right-later flips of one record (see the module comment). */
export function selfCorrections(
  rec: TrajectoryRecord,
  opts: Pick<DaOptions, 'maxQuotedChars' | 'stripCalculator' | 'answerLine'> = {},
): SelfCorrection[] {
  const task = rec.task as Task;
  const ref = recordReference(rec);
  if (ref === null) return [];
  const rounds = [...rec.rounds].sort((a, b) => a.round - b.round);
  const first = rounds[0];
  if (!first || rounds.length < 2) return [];
  const out: SelfCorrection[] = [];
  for (const m1 of first.messages) {
    if (isCorrect(task, m1.completion, ref)) continue;
    for (let ri = 1; ri < rounds.length; ri++) {
      const m = rounds[ri]!.messages.find((x) => x.agent === m1.agent);
      if (!m || !isCorrect(task, m.completion, ref)) continue;
      if (!usable(m)) break;
      const prev = rounds[ri - 1]!;
      const mine = prev.messages.find((x) => x.agent === m1.agent);
      if (!mine) break;
      const strip = opts.stripCalculator ?? true;
      const peers = prev.messages
        .filter((x) => x.agent !== m1.agent)
        .map((x) => ({ name: x.agent, answer: strip ? stripCalculator(x.completion) : x.completion }));
      if (!peers.length) break;
      out.push({
        agent: m1.agent,
        round: rounds[ri]!.round,
        wrong: cleanReasoning(task, mine.completion, opts),
        critique: critiquePrompt(task, peers, opts.maxQuotedChars),
        fixed: cleanReasoning(task, m.completion, opts),
      });
      break;
    }
  }
  return out;
}
