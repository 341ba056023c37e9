/**
 * PAD process-reward data as the AgentArk paper builds it (the default, `--pad-steps solution`):
 * one TRL stepwise row per question,
 *
 *   {"prompt": query, "completions": [solution texts], "labels": [is_correct per solution]}
 *
 * where the solutions are the debate's final-round agent answers followed by the aggregator's
 * output (what AgentArk's `methods/llm_debate/llm_debate_main.py` writes into `*_infer.jsonl`),
 * labelled against the reference (AgentArk's `label.py` labels them with an LLM judge; the judge
 * is optional here, `judgeLabels`), and only questions whose labels hold both true and false are
 * kept — the filter of AgentArk's `prm/finetune2.py` (`True in labels and False in labels`).
 * A "step" of such a row is a whole solution: TRL's PRMTrainer reads prompt + completion 1 + "\n"
 * + completion 2 + "\n" + … and puts each label on its completion's separator token.
 *
 * Inputs: our own debate trajectories, or AgentArk's files. An AgentArk labelled file keeps its
 * own labels and its solutions in file order with the texts verbatim, so the rows are exactly the
 * rows finetune2.py would train on. The paragraph-level heuristic of pad-labels.ts stays
 * available as `--pad-steps paragraph` (this project's own variant).
 */
import { complete } from '../engine/complete';
import type { ChatEngine } from '../engine/types';
import { referenceAnswer, type Task } from '../tasks/answers';
import { formatQuestion } from '../tasks/prompts';
import type { ImportedSolutionSet } from '../teach/importers';
import type { TrajectoryRecord } from '../teach/trajectory';
import { Tally, isCorrect } from './common';
import { finalRound } from './rsft';

/** One PAD row in AgentArk's layout (TRL stepwise supervision) plus provenance. */
export interface PadSolutionRow {
  prompt: string;
  completions: string[];
  labels: boolean[];
  /** Question id. */
  id: string;
  /** Who wrote each completion: agent names, "aggregator" last when there is one. */
  agents: string[];
}

export interface PadSolutionStats {
  questions: number;
  rows: number;
  solutions: number;
  positive: number;
  negative: number;
  /** Where the labels came from: the source file's, graded against the reference, or the judge's. */
  labelSource: Record<string, number>;
  skipped: Record<string, number>;
}

/** A question with its candidate solutions, before labelling. */
export interface PadCandidate {
  id: string;
  task: Task;
  prompt: string;
  reference: string;
  solutions: { agent: string; text: string; label?: boolean }[];
}

/** Candidates of our own debates: final-round agents, then the LLM aggregator's output (a vote has no text). */
export function candidatesFromRecords(records: readonly TrajectoryRecord[]): PadCandidate[] {
  return records.map((rec) => {
    const last = finalRound(rec);
    const solutions = (last?.messages ?? []).map((m) => ({ agent: m.agent, text: m.completion }));
    if (rec.aggregator.kind === 'llm' && typeof rec.aggregator.completion === 'string')
      solutions.push({ agent: 'aggregator', text: rec.aggregator.completion });
    return { id: rec.id, task: rec.task as Task, prompt: formatQuestion(rec), reference: rec.reference, solutions };
  });
}

/** Candidates of imported AgentArk solution sets: the query verbatim, solutions in file order with their labels. */
export function candidatesFromSets(sets: readonly ImportedSolutionSet[]): PadCandidate[] {
  return sets.map((s) => ({
    id: s.id,
    task: s.task,
    prompt: s.question,
    reference: s.reference,
    solutions: s.solutions.map((x) => ({
      agent: x.agent,
      text: x.text,
      ...(x.label !== undefined ? { label: x.label } : {}),
    })),
  }));
}

export interface PadSolutionOptions {
  /**
   * 'file' (default): a candidate whose solutions all carry the source file's labels keeps them;
   * the others are graded. 'graded': always grade against the reference.
   */
  labels?: 'file' | 'graded';
  /** Labels from an LLM judge, per candidate id (from `judgeLabels`); they win over the others. */
  judged?: ReadonlyMap<string, boolean[]>;
}

/** Labels each candidate and keeps the mixed-label questions (AgentArk's PRM rows). */
export function buildPadSolutions(
  candidates: readonly PadCandidate[],
  opts: PadSolutionOptions = {},
): { rows: PadSolutionRow[]; stats: PadSolutionStats } {
  const skipped = new Tally();
  const source = new Tally();
  const rows: PadSolutionRow[] = [];
  let solutions = 0;
  let positive = 0;
  let negative = 0;
  for (const c of candidates) {
    const texts = c.solutions.filter((s) => s.text.trim() !== '');
    if (texts.length < 2) {
      skipped.add(texts.length ? 'single-solution' : 'no-solutions');
      continue;
    }
    let labels: boolean[];
    let from: string;
    const judged = opts.judged?.get(c.id);
    if (judged && judged.length === texts.length) {
      labels = [...judged];
      from = 'judge';
    } else if ((opts.labels ?? 'file') === 'file' && texts.every((s) => s.label !== undefined)) {
      labels = texts.map((s) => s.label!);
      from = 'file';
    } else {
      const ref = referenceAnswer(c.task, c.reference);
      if (ref === null) {
        skipped.add('no-reference-answer');
        continue;
      }
      labels = texts.map((s) => isCorrect(c.task, s.text, ref));
      from = 'graded';
    }
    solutions += labels.length;
    if (!(labels.includes(true) && labels.includes(false))) {
      skipped.add(labels.includes(true) ? 'all-correct' : 'all-wrong');
      continue;
    }
    source.add(from);
    positive += labels.filter(Boolean).length;
    negative += labels.filter((l) => !l).length;
    rows.push({
      prompt: c.prompt,
      completions: texts.map((s) => s.text),
      labels,
      id: c.id,
      agents: texts.map((s) => s.agent),
    });
  }
  return {
    rows,
    stats: {
      questions: candidates.length,
      rows: rows.length,
      solutions,
      positive,
      negative,
      labelSource: source.counts,
      skipped: skipped.counts,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Optional LLM judge (AgentArk label.py)

/**
 * The judge's prompt, worded as AgentArk's `label.py` (`build_label_prompt`): the question, the
 * ground-truth final answer, the rules, and the candidate solution; the judge answers true/false.
 */
export function judgePrompt(question: string, solution: string, groundTruth: string): string {
  return [
    'You are labeling whether a solution correctly solves a question.',
    '--------------------------------',
    '# QUESTION',
    question,
    '--------------------------------',
    '# GROUND TRUTH FINAL ANSWER:',
    groundTruth,
    '--------------------------------',
    '# WHAT YOU SHOULD DO',
    'Does the candidate solution given below contain the correct final answer?',
    'Respond ONLY with: true or false',
    '',
    'Rules',
    '- If the ground truth is a number, the solution should match in numeric value.',
    "- If the ground truth is a person's name, the solution might slightly differ, " +
      'e.g. `Richard Bertrand Spencer`, `Richard B. Spencer`, `Spencer` are all the same person.',
    '--------------------------------',
    '# CANDIDATE SOLUTION:',
    solution,
  ].join('\n');
}

/** The judge's verdict: "true" → true; anything else (including unparsable output) → false, as label.py. */
export function parseJudgeVerdict(text: string): boolean {
  return (
    text
      .trim()
      .toLowerCase()
      .replace(/[^a-z]/g, '') === 'true'
  );
}

export interface JudgeOptions {
  model?: string;
  /** Judge calls in flight at once (default 4). */
  concurrency?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Labels every solution of every candidate with an LLM judge (greedy, 5 tokens, as label.py), on
 * any ChatEngine (e.g. an OpenAIEngine on an OpenAI-compatible server). The ground truth is the
 * reference's final answer (label.py extracts it for GSM8K/MATH), else the reference as given.
 */
export async function judgeLabels(
  candidates: readonly PadCandidate[],
  engine: ChatEngine,
  opts: JudgeOptions = {},
): Promise<Map<string, boolean[]>> {
  const jobs: { c: PadCandidate; k: number; text: string }[] = [];
  for (const c of candidates)
    c.solutions.filter((s) => s.text.trim() !== '').forEach((s, k) => jobs.push({ c, k, text: s.text }));
  const out = new Map<string, boolean[]>();
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      const gt = referenceAnswer(job.c.task, job.c.reference) ?? job.c.reference;
      // An aborted or empty judgement throws (complete()) instead of becoming a "wrong" label.
      const res = await complete(
        engine,
        {
          messages: [{ role: 'user', content: judgePrompt(job.c.prompt, job.text, gt) }],
          ...(opts.model ? { model: opts.model } : {}),
          temperature: 0,
          max_tokens: 5,
        },
        { signal: opts.signal, label: `the judgement of ${job.c.id} solution ${job.k + 1}` },
      );
      const labels = out.get(job.c.id) ?? [];
      labels[job.k] = parseJudgeVerdict(res.text);
      out.set(job.c.id, labels);
      opts.onProgress?.(++done, jobs.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, worker));
  return out;
}
