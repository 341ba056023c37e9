/**
 * One entry point for the three distillation strategies, shared by `agentark distill` and the
 * app's worker, so both build the same rows from the same input with the same defaults.
 */
import type { ImportedSolutionSet } from '../teach/importers';
import type { TrajectoryRecord } from '../teach/trajectory';
import type { SftFormat } from './common';
import { buildDa } from './da';
import { buildPad } from './pad-labels';
import { buildPadSolutions, candidatesFromRecords, candidatesFromSets } from './pad-solutions';
import { buildRsft } from './rsft';

export type Strategy = 'rsft' | 'da' | 'pad';

export interface TrainingSetOptions {
  strategy: Strategy;
  /** rsft/da: row layout (default messages; DA's self-correction rows are always prompt-completion). */
  format?: SftFormat;
  /** rsft/da: student system prompt (undefined: the task's; null: none). */
  system?: string | null;
  /** rsft/da/pad paragraph: remove GSM8K calculator annotations (default true). */
  stripCalculator?: boolean;
  /** rsft/da: canonical last answer line (default true). */
  answerLine?: boolean;
  /** da: paths per question (default 4), duplicate threshold (default 0.7), self-correction rows (default true). */
  perQuestion?: number;
  threshold?: number;
  selfCorrection?: boolean;
  /** pad: 'solution' (default, AgentArk's rows) or 'paragraph' (this project's heuristic). */
  padSteps?: 'solution' | 'paragraph';
  /** pad solution: 'file' (default) keeps a labelled file's labels; 'graded' re-grades. */
  labels?: 'file' | 'graded';
  /** pad solution: LLM-judge labels per question id (pad-solutions.ts judgeLabels). */
  judged?: ReadonlyMap<string, boolean[]>;
}

export interface TrainingSet {
  rows: object[];
  stats: object;
  /** SFT rows (rsft, da) a trainer reads; PAD rows train the PRM instead. */
  trainable: boolean;
}

/** Builds the training set of `strategy` from trajectories (and, for imported files, their solution sets). */
export function buildTrainingSet(input: { records: TrajectoryRecord[]; sets?: ImportedSolutionSet[] }, opts: TrainingSetOptions): TrainingSet {
  const clean = { stripCalculator: opts.stripCalculator ?? true, answerLine: opts.answerLine ?? true };
  const prompt = opts.system === undefined ? {} : { system: opts.system };
  switch (opts.strategy) {
    case 'rsft': {
      const r = buildRsft(input.records, { ...clean, ...prompt, format: opts.format });
      return { rows: r.rows, stats: r.stats, trainable: true };
    }
    case 'da': {
      const r = buildDa(input.records, { ...clean, ...prompt, format: opts.format, perQuestion: opts.perQuestion, threshold: opts.threshold, selfCorrection: opts.selfCorrection });
      return { rows: r.rows, stats: r.stats, trainable: true };
    }
    case 'pad': {
      if (opts.padSteps === 'paragraph') {
        const r = buildPad(input.records, { stripCalculator: clean.stripCalculator });
        return { rows: r.rows, stats: { padSteps: 'paragraph', ...r.stats }, trainable: false };
      }
      const candidates = input.sets ? candidatesFromSets(input.sets) : candidatesFromRecords(input.records);
      const r = buildPadSolutions(candidates, { labels: opts.labels, judged: opts.judged });
      return { rows: r.rows, stats: { padSteps: 'solution', ...r.stats }, trainable: false };
    }
  }
}
