/**
 * How the embedded demo is evaluated (scripts/demo.ts writes public/data/demo-report.json with
 * these), so the app's Evaluate page can start from the very settings its shipped report used and
 * reproduce its numbers. One definition for both.
 */
import { defaultAgentSystemPrompt } from '../tasks/prompts';
import { SMALL_MODEL_DEBATE } from '../teach/debate';

export interface DemoEvalSettings {
  /** The student/single-agent system prompt: the debate's compact agent prompt. */
  system: string;
  /** The debate's prompt format: 'small' = SMALL_MODEL_DEBATE (compact, answers quoted, question restated). */
  debateFormat: 'small' | 'standard';
  agents: number;
  rounds: number;
  aggregator: 'vote' | 'llm';
  maxTokens: number;
  /** Sampling temperature of the debate's agents, the single agent and the students; a greedy single agent is reported beside them. */
  temperature: number;
  seed: number;
}

export const DEMO_EVAL: DemoEvalSettings = {
  system: defaultAgentSystemPrompt('gsm8k', SMALL_MODEL_DEBATE.promptStyle),
  debateFormat: 'small',
  agents: 5,
  rounds: 2,
  // The model's judge is weaker than a vote over the revised answers (48% vs 60% on held-out
  // problems 101-200, which chose these settings), so the round-2 answers are voted on.
  aggregator: 'vote',
  maxTokens: 64,
  temperature: 0.7,
  seed: 7,
};

/** Reads `demo.evalSettings` of a report (written by scripts/demo.ts), else the current definition. */
export function demoEvalSettings(report: unknown): DemoEvalSettings {
  const d = (report as { demo?: { evalSettings?: Partial<DemoEvalSettings> } } | null)?.demo?.evalSettings;
  return { ...DEMO_EVAL, ...(d && typeof d === 'object' ? d : {}) };
}
