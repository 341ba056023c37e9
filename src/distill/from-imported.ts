/**
 * Imported solution sets (GSM8K's `example_model_solutions.jsonl`, AgentArk inference output) as
 * debate trajectories, so the distillation builders run on real data without a debate.
 *
 * Each set becomes one `agentark.trajectory/1` record with a single round in which every solution
 * is one agent (agent = the solver key, e.g. `175b_verification`). Every solution is re-graded
 * with answers.ts (the file's own labels are only compared, see `labelDisagreements`; PAD's
 * solution rows read them from `ParsedInput.sets`). A solution marked `role: 'aggregator'`
 * (AgentArk's last block) becomes the record's LLM aggregator — R-SFT then prefers it when it is
 * correct, as for our own debates — and `final` is its answer (the agents' vote when it states
 * none, `fallback: 'vote'`). Without one, the aggregator is a majority `vote` over the extracted
 * answers (ties → the earliest agent), exactly as the debate's vote aggregator.
 *
 * What the source files do not record is filled with neutral placeholders: `params`
 * {temperature 0, top_p 1, max_tokens 0, seed null}, usage 0, latency 0, finish_reason "stop",
 * and `prompt` is the student prompt of the question (what the solver saw is unknown).
 */
import { answersEqual, extractAnswer, type Task } from '../tasks/answers';
import { majorityVote } from '../teach/debate';
import { importAgentArkOutput, importExampleModelSolutions, type ImportedSolutionSet } from '../teach/importers';
import { TRAJECTORY_SCHEMA, parseTrajectoryLine, type AgentMessage, type TrajectoryRecord } from '../teach/trajectory';
import { studentMessages } from '../tasks/prompts';
import { recordReference } from './common';

export const IMPORTED_PROMPT_VERSION = 'imported/1';

export interface FromImportedOptions {
  /** createdAt of every record (default: now). */
  createdAt?: string;
}

export interface FromImportedResult {
  records: TrajectoryRecord[];
  /** Solutions whose re-grade differs from the source file's `is_correct` label. */
  labelDisagreements: { id: string; agent: string; label: boolean; graded: boolean }[];
}

/** Converts imported solution sets into one-round, vote-aggregated trajectory records. */
export function importedToTrajectories(
  sets: ImportedSolutionSet[],
  opts: FromImportedOptions = {},
): FromImportedResult {
  const createdAt = opts.createdAt ?? new Date().toISOString();
  const labelDisagreements: FromImportedResult['labelDisagreements'] = [];
  const records = sets.map((set): TrajectoryRecord => {
    const task = set.task;
    const ref = recordReference(set);
    const prompt = studentMessages(task, set);
    const seen = new Map<string, number>();
    const aggregatorSolution = set.solutions.find((s) => s.role === 'aggregator');
    if (aggregatorSolution?.label !== undefined) {
      const graded = ref !== null && answersEqual(task, extractAnswer(task, aggregatorSolution.text), ref);
      if (graded !== aggregatorSolution.label)
        labelDisagreements.push({
          id: set.id,
          agent: aggregatorSolution.agent,
          label: aggregatorSolution.label,
          graded,
        });
    }
    const messages = set.solutions
      .filter((s) => s.role !== 'aggregator')
      .map((s): AgentMessage => {
        const extracted = extractAnswer(task, s.text);
        const correct = ref !== null && answersEqual(task, extracted, ref);
        if (s.label !== undefined && s.label !== correct)
          labelDisagreements.push({ id: set.id, agent: s.agent, label: s.label, graded: correct });
        // Agent names must be unique within a round.
        const k = (seen.get(s.agent) ?? 0) + 1;
        seen.set(s.agent, k);
        const agent = k === 1 ? s.agent : `${s.agent}-${k}`;
        return {
          agent,
          model: s.agent,
          params: { temperature: 0, top_p: 1, max_tokens: 0, seed: null },
          prompt: prompt.map((m) => ({ ...m })),
          completion: s.text,
          usage: { prompt_tokens: 0, completion_tokens: 0 },
          latencyMs: 0,
          extracted,
          correct,
          finish_reason: 'stop',
        };
      });
    const vote = majorityVote(
      task,
      messages.map((m) => m.extracted),
    );
    const voteCorrect = ref !== null && answersEqual(task, vote.answer, ref);
    let aggregator: TrajectoryRecord['aggregator'] = {
      kind: 'vote',
      extracted: vote.answer,
      correct: voteCorrect,
      votes: vote.votes,
    };
    if (aggregatorSolution) {
      const extracted = extractAnswer(task, aggregatorSolution.text);
      const correct = ref !== null && answersEqual(task, extracted, ref);
      aggregator =
        extracted !== null
          ? {
              kind: 'llm',
              model: 'imported',
              prompt: [],
              completion: aggregatorSolution.text,
              usage: { prompt_tokens: 0, completion_tokens: 0 },
              latencyMs: 0,
              finish_reason: 'stop',
              extracted,
              correct,
            }
          : {
              kind: 'llm',
              model: 'imported',
              prompt: [],
              completion: aggregatorSolution.text,
              usage: { prompt_tokens: 0, completion_tokens: 0 },
              latencyMs: 0,
              finish_reason: 'stop',
              extracted: vote.answer,
              correct: voteCorrect,
              fallback: 'vote',
              votes: vote.votes,
            };
    }
    return {
      schema: TRAJECTORY_SCHEMA,
      id: set.id,
      question: set.question,
      reference: set.reference,
      task,
      config: {
        agents: messages.length,
        rounds: 1,
        aggregator: aggregator.kind,
        promptVersion: IMPORTED_PROMPT_VERSION,
      },
      rounds: [{ round: 1, messages }],
      aggregator,
      final: { answer: aggregator.extracted, correct: aggregator.correct },
      totals: { calls: 0, promptTokens: 0, completionTokens: 0, wallMs: 0 },
      createdAt,
    };
  });
  return { records, labelDisagreements };
}

export type InputFormat = 'trajectory' | 'example_model_solutions' | 'agentark';

/** Which of the supported layouts a JSONL text is in, from its first non-empty line. */
export function detectInputFormat(text: string): InputFormat {
  const first = text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .find((l) => l.trim());
  if (first === undefined) throw new Error('empty input: no JSONL rows');
  let row: unknown;
  try {
    row = JSON.parse(first);
  } catch (e) {
    throw new Error(`first line is not valid JSON (${(e as Error).message})`);
  }
  if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new Error('first line is not a JSON object');
  const r = row as Record<string, unknown>;
  if (r.schema === TRAJECTORY_SCHEMA) return 'trajectory';
  if (r.schema !== undefined)
    throw new Error(`unsupported schema ${JSON.stringify(r.schema)} (expected "${TRAJECTORY_SCHEMA}")`);
  const hasSolutionObject = Object.values(r).some(
    (v) =>
      typeof v === 'object' &&
      v !== null &&
      !Array.isArray(v) &&
      typeof (v as { solution?: unknown }).solution === 'string',
  );
  if (typeof r.ground_truth === 'string' && hasSolutionObject) return 'example_model_solutions';
  if (typeof r.response === 'string' || Array.isArray(r.solutions)) return 'agentark';
  throw new Error(
    'unrecognised input: expected agentark.trajectory/1 records, GSM8K example_model_solutions.jsonl rows or AgentArk inference rows (response / solutions)',
  );
}

export interface ParsedInput {
  format: InputFormat;
  records: TrajectoryRecord[];
  labelDisagreements: FromImportedResult['labelDisagreements'];
  /** Imported layouts: the solution sets as read (file labels and order kept), one per record. */
  sets?: ImportedSolutionSet[];
}

/**
 * Parses any supported input into trajectory records: trajectory JSONL as is (every line
 * validated), imported layouts through `importedToTrajectories`. `task` applies to AgentArk
 * output only (the other layouts carry or imply theirs).
 */
export function parseDistillInput(
  text: string,
  sourceName: string,
  opts: { task?: Task; createdAt?: string; onWarning?: (msg: string) => void; aggregatorLast?: boolean } = {},
): ParsedInput {
  const format = detectInputFormat(text);
  if (format === 'trajectory') {
    const records: TrajectoryRecord[] = [];
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      const l = line.replace(/\r$/, '');
      if (!l.trim()) return;
      try {
        records.push(parseTrajectoryLine(l, i + 1));
      } catch (e) {
        // A half-written last line (a debate killed mid-write) is skipped, as readTrajectories does.
        if (i === lines.length - 1)
          opts.onWarning?.(`${sourceName}: ignoring a partial last line (${(e as Error).message})`);
        else throw new Error(`${sourceName}: ${(e as Error).message}`);
      }
    });
    return { format, records, labelDisagreements: [] };
  }
  const base = sourceName.split(/[\\/]/).filter(Boolean).pop() ?? sourceName;
  const sets =
    format === 'example_model_solutions'
      ? importExampleModelSolutions(text, base)
      : importAgentArkOutput(text, opts.task ?? 'gsm8k', base, { aggregatorLast: opts.aggregatorLast });
  const r = importedToTrajectories(sets, { createdAt: opts.createdAt });
  return { format, records: r.records, labelDisagreements: r.labelDisagreements, sets };
}
