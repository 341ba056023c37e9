/**
 * One entry point for the three distillation strategies, shared by `agentark distill` and the
 * app's Distil & train page: trajectories in, training rows (or PAD step labels) out. Also the
 * built-in example trajectories the app offers when the user has no debate yet.
 */
import { generateProblems } from '../demo/problems';
import type { TrajectoryRecord } from '../teach/trajectory';
import type { StudentPromptOptions } from '../tasks/prompts';
import type { CleanOptions, SftFormat } from './common';
import { buildDa } from './da';
import { importedToTrajectories } from './from-imported';
import { buildPad } from './pad-labels';
import { buildPadSolutions, candidatesFromRecords, type PadCandidate, type PadSolutionOptions } from './pad-solutions';
import { buildRsft } from './rsft';

export type DistillStrategy = 'rsft' | 'da' | 'pad';

export const DISTILL_STRATEGIES: readonly DistillStrategy[] = ['rsft', 'da', 'pad'];

export interface BuildTrainingSetOptions extends StudentPromptOptions, CleanOptions {
  /** rsft/da: row layout (default messages). */
  format?: SftFormat;
  /** da: at most K distinct correct paths per question. */
  perQuestion?: number;
  /** da: word-3-gram Jaccard at or above which two paths are duplicates. */
  threshold?: number;
  /** da: build self-correction conversations (default true). */
  selfCorrection?: boolean;
  /**
   * pad: 'solution' (default, the AgentArk paper's rows: one per question, whole solutions as
   * steps) or 'paragraph' (this project's paragraph heuristic).
   */
  padSteps?: 'solution' | 'paragraph';
  /** pad solution: the candidates when the caller has better ones than `records` (imported labelled sets). */
  padCandidates?: readonly PadCandidate[];
  /** pad solution: where labels come from (file labels, grading, an LLM judge's verdicts). */
  padLabels?: PadSolutionOptions;
}

export interface TrainingSet {
  rows: object[];
  /** The builder's counts (skipped by reason, rows by source, PAD step counts…). */
  stats: Record<string, number | Record<string, number>>;
  /**
   * Whether the rows fine-tune the student (R-SFT, DA). PAD's stepwise rows train a process
   * reward model instead.
   */
  studentRows: boolean;
}

/** Builds the rows of `strategy` from debate trajectories. */
export function buildTrainingSet(
  strategy: DistillStrategy,
  records: TrajectoryRecord[],
  opts: BuildTrainingSetOptions = {},
): TrainingSet {
  const counts = (s: object) => s as unknown as TrainingSet['stats'];
  const {
    format,
    perQuestion,
    threshold,
    selfCorrection,
    padSteps = 'solution',
    padCandidates,
    padLabels,
    ...clean
  } = opts;
  switch (strategy) {
    case 'rsft': {
      const r = buildRsft(records, { ...clean, format });
      return { rows: r.rows, stats: counts(r.stats), studentRows: true };
    }
    case 'da': {
      const r = buildDa(records, { ...clean, format, perQuestion, threshold, selfCorrection });
      return { rows: r.rows, stats: counts(r.stats), studentRows: true };
    }
    case 'pad': {
      if (padSteps === 'paragraph') {
        const r = buildPad(records, { stripCalculator: clean.stripCalculator });
        return { rows: r.rows, stats: counts({ padSteps, ...r.stats }), studentRows: false };
      }
      const r = buildPadSolutions(padCandidates ?? candidatesFromRecords(records), padLabels);
      return { rows: r.rows, stats: counts({ padSteps, ...r.stats }), studentRows: false };
    }
  }
}

/**
 * The built-in example: demo word problems (src/demo/problems.ts) as one-round trajectories with
 * three "agents": the worked solution twice and once with a slip in the last step, so every
 * strategy has something to build (R-SFT a target, DA a correction, PAD good and bad steps).
 */
export function exampleTrajectories(count: number): TrajectoryRecord[] {
  const problems = generateProblems({
    seed: 7,
    count: Math.max(1, Math.min(200, Math.floor(count))),
    split: 'train',
    difficulty: 0,
  });
  const sets = problems.map((p) => {
    const wrong = p.answer
      .replace(new RegExp(`= ${p.final}(?![\\d])`, 'g'), `= ${p.final + 1}`)
      .replace(/#### \d+\s*$/, `#### ${p.final + 1}`);
    return {
      id: `example-${p.id}`,
      question: p.question,
      reference: p.answer,
      task: 'gsm8k' as const,
      solutions: [
        { agent: 'agent1', text: p.answer },
        { agent: 'agent2', text: wrong },
        { agent: 'agent3', text: p.answer },
      ],
    };
  });
  return importedToTrajectories(sets).records;
}
