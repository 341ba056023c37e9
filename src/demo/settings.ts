/**
 * The embedded demo's debate and sampling settings, shared by `npm run demo` (scripts/demo.ts) and
 * its larger data run (scripts/demo-data.ts), so the students and the table use one definition.
 */
import { defaultAgentSystemPrompt } from '../tasks/prompts';
import { SMALL_MODEL_DEBATE, type DebateOptions } from '../teach/debate';

export const DEMO_SEED = 7;
/** Sampling temperature of the debate's agents and of every sampled system the demo reports. */
export const DEMO_TEMPERATURE = 0.7;
export const DEMO_MAX_TOKENS = 64;
/** The system prompt the demo model answers under (alone, in a debate, and as a student). */
export const DEMO_SYSTEM = defaultAgentSystemPrompt('gsm8k', SMALL_MODEL_DEBATE.promptStyle);

/**
 * The demo's debate: 5 agents x 2 rounds, sparse (later rounds read the others' final answers),
 * the question restated, and a vote over round 2 (the model's judge is weaker than a vote: 48% vs
 * 60% on held-out problems 101-200).
 */
export const DEMO_DEBATE: DebateOptions = {
  numAgents: 5,
  rounds: 2,
  aggregator: 'vote',
  ...SMALL_MODEL_DEBATE,
  temperature: DEMO_TEMPERATURE,
  max_tokens: DEMO_MAX_TOKENS,
  seed: DEMO_SEED,
  concurrency: 3,
};

/**
 * Five more independent samples of the base per question (a one-round "debate" with other seeds:
 * the debate gives agent i in round r the seed seed + 1000(r-1) + i). With the debate's round 1,
 * ten independent samples: the debate's ten calls spent on plain sampling (the STaR ablation).
 */
export const DEMO_INDEPENDENT_SAMPLES: DebateOptions = { ...DEMO_DEBATE, rounds: 1, seed: DEMO_SEED + 5000 };
