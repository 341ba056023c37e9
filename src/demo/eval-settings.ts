/**
 * How the embedded demo is evaluated (scripts/demo.ts writes public/data/demo-report.json with
 * these), so the app's Evaluate page can start from the very settings its shipped report used and
 * reproduce its numbers. One definition for both.
 */
import { DEMO_DEBATE, DEMO_MAX_TOKENS, DEMO_SEED, DEMO_SYSTEM, DEMO_TEMPERATURE } from './settings';

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

/** The demo's settings (src/demo/settings.ts, which scripts/demo.ts runs with) in the page's terms. */
export const DEMO_EVAL: DemoEvalSettings = {
  system: DEMO_SYSTEM,
  debateFormat: 'small',
  agents: DEMO_DEBATE.numAgents ?? 5,
  rounds: DEMO_DEBATE.rounds ?? 2,
  aggregator: DEMO_DEBATE.aggregator === 'llm' ? 'llm' : 'vote',
  maxTokens: DEMO_MAX_TOKENS,
  temperature: DEMO_TEMPERATURE,
  seed: DEMO_SEED,
};

/** Reads `demo.evalSettings` of a report (written by scripts/demo.ts), else the current definition. */
export function demoEvalSettings(report: unknown): DemoEvalSettings {
  const d = (report as { demo?: { evalSettings?: Partial<DemoEvalSettings> } } | null)?.demo?.evalSettings;
  return { ...DEMO_EVAL, ...(d && typeof d === 'object' ? d : {}) };
}
