/**
 * The demo model's training corpus, in the exact conversation formats the debate protocol
 * (src/teach/debate.ts, task gsm8k) puts in front of a model, so that answering, debating and
 * judging are all skills it was trained on:
 *
 * - `single`: system + question → the worked solution ("… #### n"). A `{"messages"}` row.
 * - `debate`: system + question, the agent's own earlier answer (an assistant turn), the debate
 *   turn quoting the other agents' answers → the correct worked solution. The own earlier answer
 *   is part of the prompt and is NOT trained on (it is often wrong), so these are TRL
 *   conversational `{"prompt": [...], "completion": [...]}` rows: the loss covers the completion
 *   only. The quoted answers are a realistic mix: some correct, some with an arithmetic slip that
 *   propagates, a misread operation, a skipped step, or a wrong final line; wrong agents often
 *   share the same mistake, so the majority is wrong in a good fraction of rows and only
 *   re-deriving the answer is always right.
 * - `aggregator`: the judge's system prompt + the aggregator prompt over five final answers →
 *   "#### n" (or, with `aggregatorTarget: 'solution'`, the full worked solution). `{"messages"}`.
 *
 * Nothing in a prompt gives the answer away beyond what a real debate shows (the peers' answers).
 */
import { answerLine, defaultAgentSystemPrompt, formatQuestion, type PromptStyle } from '../tasks/prompts';
import { aggregatorPrompt, aggregatorSystemPrompt, debateTurn } from '../teach/debate';
import {
  EXPRESSION_RE,
  apply,
  expression,
  generateProblems,
  hashString,
  pick,
  seededRandom,
  writeGsm8kJsonl,
  type Difficulty,
  type Problem,
  type Step,
} from './problems';
import { renderChatML } from './tokenizer';

/** A type alias (not an interface) so it is assignable to HFTokenizer's ChatTemplateMessage. */
export type ChatMessage = {
  role: 'system' | 'user' | 'assistant';
  content: string;
};

export type RowKind = 'single' | 'debate' | 'aggregator';

export interface RowMeta {
  kind: RowKind;
  problemId: string;
  final: number;
  /** debate/aggregator: the final answers the agents in the prompt gave (own answer first for debate rows). */
  shown?: number[];
  /** debate/aggregator: whether the plurality of `shown` (ties → earliest) is the correct answer. */
  majorityCorrect?: boolean;
}

export type DemoRow =
  | { messages: ChatMessage[]; meta: RowMeta }
  | { prompt: ChatMessage[]; completion: ChatMessage[]; meta: RowMeta };

// ---------------------------------------------------------------------------------------------
// Prompts: the debate's, for task gsm8k.
//
// Built from debate.ts's own prompt functions (tests/demo/corpus.test.ts also runs a real debate
// with a scripted engine and checks that every prompt it sends equals what these builders produce).

export interface DebatePrompts {
  /** The agents' system prompt. */
  system: string;
  /** The round-1 user turn. */
  question(question: string): string;
  /** The user turn of rounds ≥ 2 (with `question`: restated, DebateOptions.restateQuestion). */
  debateTurn(others: { name: string; answer: string }[], question?: string): string;
  aggregatorSystem: string;
  aggregatorUser(question: string, finals: { name: string; answer: string }[]): string;
  /** Agent i's name (0-based), as the debate names agents. */
  agentName(i: number): string;
}

/** The debate's prompts in one prompt style, task gsm8k, no personas, no quoting limit. */
function gsm8kDebatePrompts(style: PromptStyle): DebatePrompts {
  return {
    system: defaultAgentSystemPrompt('gsm8k', style),
    question: (question) => formatQuestion({ question }),
    debateTurn: (others, question) => debateTurn('gsm8k', others, undefined, style, question),
    aggregatorSystem: aggregatorSystemPrompt('gsm8k', undefined, style),
    aggregatorUser: (question, finals) =>
      aggregatorPrompt('gsm8k', formatQuestion({ question }), finals, undefined, style),
    agentName: (i) => `agent${i + 1}`,
  };
}

/** The debate's default prompts (DEBATE_PROMPT_VERSION 'agentark-debate/1'), task gsm8k. */
export const GSM8K_DEBATE_PROMPTS: DebatePrompts = gsm8kDebatePrompts('default');

/** The debate's compact prompt style (promptStyle 'compact'), task gsm8k: what the demo model reads. */
export const COMPACT_DEBATE_PROMPTS: DebatePrompts = gsm8kDebatePrompts('compact');

// ---------------------------------------------------------------------------------------------
// Wrong answers

export type MistakeKind = 'slip' | 'op' | 'skip' | 'final';

export interface Attempt {
  text: string;
  final: number;
  correct: boolean;
  mistake?: MistakeKind;
}

function solutionLines(p: Problem): string[] {
  const lines = p.answer.split('\n');
  const body = lines.slice(0, -1);
  if (body.length !== p.steps.length || !/^#### \d+$/.test(lines[lines.length - 1]!)) {
    throw new Error(`demo corpus: problem ${p.id} does not have one solution line per step`);
  }
  return body;
}

const SLIPS = [1, -1, 2, -2, 1, -1, 10, -10];

/**
 * A wrong worked solution of `p` (same wording, wrong numbers), or null if this kind of mistake
 * does not fit the problem. Later steps are recomputed from the wrong value, as a solver who
 * made the mistake would.
 */
export function wrongAttempt(p: Problem, kind: MistakeKind, rng: () => number): Attempt | null {
  const lines = solutionLines(p);
  const n = p.steps.length;
  if (kind === 'final') {
    // Every line right, the final line wrong: an intermediate result, or a near miss.
    const candidates = new Set<number>();
    for (const s of p.steps.slice(0, -1)) candidates.add(s.result);
    for (const d of [1, -1, 2, -2]) candidates.add(p.final + d);
    const options = [...candidates].filter((v) => v >= 0 && v !== p.final).sort((x, y) => x - y);
    if (!options.length) return null;
    const w = pick(rng, options);
    return { text: `${lines.join('\n')}\n#### ${w}`, final: w, correct: false, mistake: 'final' };
  }
  let k: number;
  if (kind === 'slip') k = Math.floor(rng() * n);
  else {
    const eligible = p.steps.map((s, i) => (s.op !== '*' ? i : -1)).filter((i) => i >= 0);
    if (!eligible.length) return null;
    k = pick(rng, eligible);
  }
  const delta = pick(rng, SLIPS);
  const vals: number[] = [];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const s: Step = p.steps[i]!;
    const a = s.aFrom !== undefined ? vals[s.aFrom]! : s.a;
    const b = s.bFrom !== undefined ? vals[s.bFrom]! : s.b;
    if (kind === 'skip' && i === k) {
      vals.push(a); // forgot this step: the amount stays as it was
      continue;
    }
    const op = kind === 'op' && i === k ? (s.op === '+' ? '-' : '+') : s.op;
    let r = apply(op, a, b);
    if (kind === 'slip' && i === k) r += delta;
    if (r < 0 || r > 199) return null;
    vals.push(r);
    out.push(lines[i]!.replace(EXPRESSION_RE, expression(op, a, b, r)));
  }
  const final = vals[n - 1]!;
  if (final === p.final || out.length === 0) return null;
  return { text: `${out.join('\n')}\n#### ${final}`, final, correct: false, mistake: kind };
}

export interface MistakeWeights {
  slip: number;
  op: number;
  skip: number;
  final: number;
}

export const DEFAULT_MISTAKES: MistakeWeights = { slip: 0.4, op: 0.25, skip: 0.15, final: 0.2 };

/** A wrong attempt of a kind drawn from `weights` (falls back to other kinds when one does not fit). */
export function randomWrongAttempt(p: Problem, rng: () => number, weights: MistakeWeights = DEFAULT_MISTAKES): Attempt {
  const kinds = Object.keys(weights) as MistakeKind[];
  const total = kinds.reduce((s, k) => s + Math.max(0, weights[k]), 0);
  for (let tries = 0; tries < 20; tries++) {
    let u = rng() * total;
    let kind: MistakeKind = kinds[kinds.length - 1]!;
    for (const k of kinds) {
      u -= Math.max(0, weights[k]);
      if (u < 0) {
        kind = k;
        break;
      }
    }
    const a = wrongAttempt(p, kind, rng);
    if (a) return a;
  }
  // Always possible: a near miss on the final line.
  return wrongAttempt(p, 'final', rng)!;
}

export function correctAttempt(p: Problem): Attempt {
  return { text: p.answer, final: p.final, correct: true };
}

// ---------------------------------------------------------------------------------------------
// The corpus

export interface CorpusMix {
  /** Rows per problem of each kind; fractions are drawn (1.5 = one row, plus a second half the time). */
  single: number;
  debate: number;
  aggregator: number;
}

export const DEFAULT_MIX: CorpusMix = { single: 1, debate: 0.5, aggregator: 0.25 };

export interface DemoCorpusOptions {
  seed: number;
  problems: readonly Problem[];
  mix?: Partial<CorpusMix>;
  /** Agents in the debate (default 5: the own answer plus 4 peers). */
  numAgents?: number;
  /** Probability that a quoted answer (own or peer) is correct (default 0.5). */
  peerAccuracy?: number;
  /**
   * Probability that the wrong answers of one row are all the same mistake (default 0.5):
   * correlated errors, so a wrong majority is common.
   */
  sharedMistake?: number;
  mistakes?: MistakeWeights;
  /** Aggregator completion: the "#### n" line (default) or the full worked solution. */
  aggregatorTarget?: 'final' | 'solution';
  prompts?: DebatePrompts;
}

/** Plurality vote with ties to the earliest, like debate.ts's majorityVote. */
function plurality(values: number[]): number | null {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best: number | null = null;
  let bestCount = 0;
  for (const v of values) {
    const c = counts.get(v)!;
    if (c > bestCount) {
      best = v;
      bestCount = c;
    }
  }
  return best;
}

/** `n` attempts at `p`: each correct with probability `accuracy`; wrong ones often share one mistake. */
function attempts(
  p: Problem,
  n: number,
  rng: () => number,
  o: Required<Pick<DemoCorpusOptions, 'peerAccuracy' | 'sharedMistake' | 'mistakes'>>,
): Attempt[] {
  const shared = rng() < o.sharedMistake ? randomWrongAttempt(p, rng, o.mistakes) : null;
  return Array.from({ length: n }, () =>
    rng() < o.peerAccuracy ? correctAttempt(p) : (shared ?? randomWrongAttempt(p, rng, o.mistakes)),
  );
}

/** Fisher–Yates with the given generator; returns `items`. */
function shuffleInPlace<T>(items: T[], rng: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

function rowsOf(mean: number, rng: () => number): number {
  const whole = Math.floor(mean);
  return whole + (rng() < mean - whole ? 1 : 0);
}

/** Training rows for `problems`, deterministic in all options. */
export function demoCorpus(opts: DemoCorpusOptions): DemoRow[] {
  const mix: CorpusMix = { ...DEFAULT_MIX, ...opts.mix };
  for (const [k, v] of Object.entries(mix))
    if (!(v >= 0)) throw new Error(`demo corpus: mix.${k} must be >= 0, got ${v}`);
  const prompts = opts.prompts ?? GSM8K_DEBATE_PROMPTS;
  const numAgents = opts.numAgents ?? 5;
  if (!(Number.isInteger(numAgents) && numAgents >= 2))
    throw new Error(`demo corpus: numAgents must be an integer >= 2, got ${numAgents}`);
  const o = {
    peerAccuracy: opts.peerAccuracy ?? 0.5,
    sharedMistake: opts.sharedMistake ?? 0.5,
    mistakes: opts.mistakes ?? DEFAULT_MISTAKES,
  };
  const aggregatorTarget = opts.aggregatorTarget ?? 'final';
  const rows: DemoRow[] = [];

  for (const p of opts.problems) {
    const rng = seededRandom(hashString(`demo-corpus|${opts.seed}|${p.id}|${p.question}`));
    const system: ChatMessage = { role: 'system', content: prompts.system };
    const user: ChatMessage = { role: 'user', content: prompts.question(p.question) };

    for (let r = rowsOf(mix.single, rng); r > 0; r--) {
      rows.push({
        messages: [system, user, { role: 'assistant', content: p.answer }],
        meta: { kind: 'single', problemId: p.id, final: p.final },
      });
    }

    for (let r = rowsOf(mix.debate, rng); r > 0; r--) {
      const self = Math.floor(rng() * numAgents);
      const all = attempts(p, numAgents, rng, o);
      const others = all.map((a, j) => ({ name: prompts.agentName(j), answer: a.text })).filter((_, j) => j !== self);
      const shown = [all[self]!.final, ...all.filter((_, j) => j !== self).map((a) => a.final)];
      rows.push({
        prompt: [
          system,
          user,
          { role: 'assistant', content: all[self]!.text },
          { role: 'user', content: prompts.debateTurn(others) },
        ],
        completion: [{ role: 'assistant', content: p.answer }],
        meta: {
          kind: 'debate',
          problemId: p.id,
          final: p.final,
          shown,
          majorityCorrect: plurality(all.map((a) => a.final)) === p.final,
        },
      });
    }

    for (let r = rowsOf(mix.aggregator, rng); r > 0; r--) {
      const all = attempts(p, numAgents, rng, o);
      const finals = all.map((a, j) => ({ name: prompts.agentName(j), answer: a.text }));
      const shown = all.map((a) => a.final);
      rows.push({
        messages: [
          { role: 'system', content: prompts.aggregatorSystem },
          { role: 'user', content: prompts.aggregatorUser(p.question, finals) },
          { role: 'assistant', content: aggregatorTarget === 'final' ? `#### ${p.final}` : p.answer },
        ],
        meta: {
          kind: 'aggregator',
          problemId: p.id,
          final: p.final,
          shown,
          majorityCorrect: plurality(shown) === p.final,
        },
      });
    }
  }
  // Interleave kinds (deterministically) so a prefix of the file is a fair sample.
  return shuffleInPlace(rows, seededRandom(hashString(`demo-corpus-order|${opts.seed}`)));
}

// ---------------------------------------------------------------------------------------------
// Self-play rows: the model's own round-1 answers as the debate's evidence

export interface SelfPlayOptions {
  seed: number;
  /** Debate-round rows per question, each from a different agent's seat (default 2, at most the agents). */
  debatePerQuestion?: number;
  /** Aggregator rows per question (default 1; fractions are drawn). */
  aggregatorPerQuestion?: number;
  /** Single-agent rows per question (default 0.5; fractions are drawn), so answering alone is not forgotten. */
  singlePerQuestion?: number;
  prompts?: DebatePrompts;
  /** What the revising agent and the judge read of the others (DebateOptions.quote; default 'solution'). */
  quote?: 'solution' | 'answer';
  /** Repeat the question in the revision turn (DebateOptions.restateQuestion). */
  restateQuestion?: boolean;
}

/**
 * Training rows built on what the model itself wrote in round 1 of a real debate (`rounds[0]` of
 * trajectories recorded with the same prompts), each labelled with the reference solution: the
 * revision turn after reading the other agents' actual answers, the judge's turn over the actual
 * five finals, and some plain answering. Synthetic mistakes (`demoCorpus`) teach the format; these
 * teach the model to revise in the situations its own samples create (its own kinds of slips, its
 * own agreement rates), which is what a debate at test time shows it.
 */
export function selfPlayRows(
  records: readonly {
    id: string;
    question: string;
    reference: string;
    rounds: readonly { messages: readonly { completion: string; extracted: string | null }[] }[];
  }[],
  opts: SelfPlayOptions,
): DemoRow[] {
  const prompts = opts.prompts ?? GSM8K_DEBATE_PROMPTS;
  const rows: DemoRow[] = [];
  for (const rec of records) {
    const first = rec.rounds[0]?.messages;
    if (!first || first.length < 2)
      throw new Error(`self-play rows: question ${rec.id} has no round 1 with at least 2 agents`);
    const m = /^#### (\d+)$/m.exec(rec.reference);
    if (!m) throw new Error(`self-play rows: question ${rec.id}: the reference does not end in "#### n"`);
    const final = Number(m[1]);
    const rng = seededRandom(hashString(`self-play|${opts.seed}|${rec.id}`));
    const answers = first.map((a) => a.completion.trim());
    const quoted = opts.quote === 'answer' ? first.map((a) => answerLine('gsm8k', a.extracted)) : answers;
    const finals = first.map((a) => (a.extracted !== null && /^\d+$/.test(a.extracted) ? Number(a.extracted) : NaN));
    const system: ChatMessage = { role: 'system', content: prompts.system };
    const user: ChatMessage = { role: 'user', content: prompts.question(rec.question) };
    const seats = shuffleInPlace(
      answers.map((_, i) => i),
      rng,
    );
    const majorityCorrect = plurality(finals.filter((f) => !Number.isNaN(f))) === final;
    for (const self of seats.slice(0, Math.min(opts.debatePerQuestion ?? 2, seats.length))) {
      const others = quoted.map((answer, j) => ({ name: prompts.agentName(j), answer })).filter((_, j) => j !== self);
      rows.push({
        prompt: [
          system,
          user,
          { role: 'assistant', content: answers[self]! },
          {
            role: 'user',
            content: prompts.debateTurn(others, opts.restateQuestion ? prompts.question(rec.question) : undefined),
          },
        ],
        completion: [{ role: 'assistant', content: rec.reference.trim() }],
        meta: {
          kind: 'debate',
          problemId: rec.id,
          final,
          shown: [finals[self]!, ...finals.filter((_, j) => j !== self)],
          majorityCorrect,
        },
      });
    }
    for (let r = rowsOf(opts.aggregatorPerQuestion ?? 1, rng); r > 0; r--) {
      rows.push({
        messages: [
          { role: 'system', content: prompts.aggregatorSystem },
          {
            role: 'user',
            content: prompts.aggregatorUser(
              rec.question,
              quoted.map((answer, j) => ({ name: prompts.agentName(j), answer })),
            ),
          },
          { role: 'assistant', content: `#### ${final}` },
        ],
        meta: { kind: 'aggregator', problemId: rec.id, final, shown: finals, majorityCorrect },
      });
    }
    for (let r = rowsOf(opts.singlePerQuestion ?? 0.5, rng); r > 0; r--) {
      rows.push({
        messages: [system, user, { role: 'assistant', content: rec.reference.trim() }],
        meta: { kind: 'single', problemId: rec.id, final },
      });
    }
  }
  return shuffleInPlace(rows, seededRandom(hashString(`self-play-order|${opts.seed}`)));
}

/** All messages of a row, in order (prompt then completion). */
export function rowMessages(row: DemoRow): ChatMessage[] {
  return 'messages' in row ? row.messages : [...row.prompt, ...row.completion];
}

/**
 * A row as the model sees it (ChatML text). `buildDemoTokenizer(rows.map(renderRow))` trains the
 * tokenizer on exactly what the model reads and writes, in the proportions of the mix.
 */
export function renderRow(row: DemoRow): string {
  return renderChatML(rowMessages(row));
}

/** JSONL of training rows (meta kept unless `stripMeta`; the trainer ignores it). */
export function toTrainingJsonl(rows: readonly DemoRow[], opts: { stripMeta?: boolean } = {}): string {
  return (
    rows
      .map((r) =>
        JSON.stringify(opts.stripMeta ? Object.fromEntries(Object.entries(r).filter(([k]) => k !== 'meta')) : r),
      )
      .join('\n') + (rows.length ? '\n' : '')
  );
}

// ---------------------------------------------------------------------------------------------
// Question sets

export interface QuestionSetOptions {
  seed: number;
  difficulty?: Difficulty;
  trainCount: number;
  testCount: number;
  testFraction?: number;
}

/** The train and test problems of the demo (disjoint by construction). */
export function demoQuestionSets(opts: QuestionSetOptions): { train: Problem[]; test: Problem[] } {
  const common = {
    seed: opts.seed,
    difficulty: opts.difficulty ?? 0,
    ...(opts.testFraction !== undefined ? { testFraction: opts.testFraction } : {}),
  };
  return {
    train: generateProblems({ ...common, count: opts.trainCount, split: 'train' }),
    test: generateProblems({ ...common, count: opts.testCount, split: 'test' }),
  };
}

/**
 * Writes `<dir>/train.jsonl` and `<dir>/test.jsonl` in GSM8K layout (Node only); returns the
 * paths and the problems.
 */
export async function writeQuestionSets(
  dir: string,
  opts: QuestionSetOptions,
): Promise<{ trainPath: string; testPath: string; train: Problem[]; test: Problem[] }> {
  const { join } = await import('node:path');
  const sets = demoQuestionSets(opts);
  const trainPath = join(dir, 'train.jsonl');
  const testPath = join(dir, 'test.jsonl');
  await writeGsm8kJsonl(trainPath, sets.train);
  await writeGsm8kJsonl(testPath, sets.test);
  return { trainPath, testPath, ...sets };
}
