/**
 * The evaluation harness: any number of *systems* on one question set, each driven only through
 * ChatEngines, reported side by side as a versioned JSON `EvalReport` (charted by the web page;
 * `report.ts` renders it as Markdown).
 *
 * Systems:
 * - `single`: one agent, one call per question with the student prompt (`studentMessages`) —
 *   the base model, or a student (the same base with an adapter, or any other engine);
 * - `debate`: `runDebate` from teach/debate.ts (agents × rounds calls, plus the aggregator's);
 * - `self-consistency`: one agent, N sampled answers to the student prompt, majority vote over
 *   the extracted answers (Wang et al.; AgentArk's `methods/self_consistency`, `parallel_num: 5`)
 *   — the baseline that separates "the debate helps" from "voting over samples helps".
 *
 * Decodings (`decodings`): each system can be run greedy (temperature 0: the setting AgentArk's
 * evaluation reports) and sampled (its own temperature, else the evaluation's), each as its own
 * row with `decoding` set. Self-consistency is only run sampled: greedy samples are identical
 * and its vote would be the greedy single agent's answer.
 *
 * Statistics: every accuracy carries a Wilson 95% interval (`ci95`); `comparisons` pairs every
 * system with the single agent of the same decoding (the base, `meta.role === 'base'`) question
 * by question: wins, losses and the two-sided exact sign test.
 *
 * Question sets: questions may carry a `set` label (several `--data`/`--task` pairs evaluated in
 * one run); each system then also reports its accuracy per set (`bySet`), so a student distilled
 * on one task is shown on the others.
 *
 * Per system:
 * - accuracy: each question answered once (the student prompt / the whole debate), graded with
 *   answers.ts against the reference;
 * - self-correction (single systems; null for the debate): attempt 1 is the answer above; attempt
 *   2 is the reply to a follow-up user turn `REVIEW_PROMPT` in the same conversation. Reported:
 *   accuracy at both attempts, Δ = attempt2 − attempt1, and the wrong→right and right→wrong
 *   rates, both as fractions of ALL questions (so Δ = wrongToRight − rightToWrong), plus counts;
 * - robustness: accuracy on perturbed questions (perturb.ts): `distractor` (an irrelevant
 *   sentence added; every question) and `rename` (names changed, numbers scaled with the answer
 *   recomputed for structured questions; only questions the perturbation actually changed). Each
 *   comes with `baseline`, the system's accuracy on the same original questions, and
 *   `delta` = accuracy − baseline. A single system answers perturbed questions once (attempt 1);
 *   a debate runs a whole debate on each;
 * - cost: calls (responses received), prompt and completion tokens (summed from the `usage` of
 *   every response) and wall time, for answering the question set once (`cost`, with per-question means) and for
 *   everything the evaluation of the system made (`costAll`: + self-correction + robustness).
 *
 * A call that throws (after the engine's own retries) or is aborted counts as a wrong answer
 * for its phase and is counted in `errors` (its message kept per question); the run goes on.
 * Systems are evaluated one after the other (a system's `setup`, e.g. activating its adapter on
 * a shared runtime, runs right before it); questions of one system `concurrency` at a time.
 */
import { complete } from '../engine/complete';
import type { ChatEngine, ChatMessage } from '../engine/types';
import type { ProgressCallback } from '../progress';
import { AbortError } from '../util/abort';
import { answerFormatInstruction, studentMessages } from '../tasks/prompts';
import { majorityVote, runDebate, type DebateOptions, type Engines } from '../teach/debate';
import type { Question } from '../tasks/datasets';
import { answersEqual, extractAnswer, qaF1, referenceAnswer, type Task } from '../tasks/answers';
import { perturbQuestion, type PerturbableQuestion, type Perturbed } from './perturb';
import { signTest, wilsonInterval } from './stats';

export const EVAL_SCHEMA = 'agentark.eval/1';

/** The follow-up turn of the self-correction probe (the task's answer-format instruction is appended). */
export const REVIEW_PROMPT =
  'Review your answer and fix it if it is wrong. Check each step of your reasoning; if you find a mistake, correct it and give the corrected solution.';

export function reviewPrompt(task: Task): string {
  return `${REVIEW_PROMPT} ${answerFormatInstruction(task)}`;
}

// ---------------------------------------------------------------------------------------------
// Systems

interface SystemBase {
  /** Unique name in the report, e.g. "single", "debate", "student:adapter-a". */
  name: string;
  /** Runs right before the system is evaluated (e.g. `runtime.adapters.activate(...)`). */
  setup?: () => void | Promise<void>;
  /** Free-form provenance recorded in the report (model, adapter dir, ...). */
  meta?: Record<string, string | number | boolean>;
}

export interface SingleSystem extends SystemBase {
  kind: 'single';
  engine: ChatEngine;
  /** Model id sent with each request. */
  model?: string;
  /** Student system prompt: undefined → default, null → none, string → as is. */
  system?: string | null;
  /** Overrides the evaluation's temperature / max tokens / seed. */
  temperature?: number;
  top_p?: number;
  maxTokens?: number;
  seed?: number;
}

export interface DebateSystem extends SystemBase {
  kind: 'debate';
  engines: Engines;
  /** Debate settings; `task`, and unless set here `max_tokens` and `seed`, come from the evaluation. */
  debate: DebateOptions;
}

export interface SelfConsistencySystem extends SystemBase {
  kind: 'self-consistency';
  engine: ChatEngine;
  model?: string;
  /** Student system prompt: undefined → default, null → none, string → as is. */
  system?: string | null;
  /** Samples per question (default 5, AgentArk's `parallel_num`). */
  samples?: number;
  /** Sampling temperature (default: the evaluation's, else 0.7). */
  temperature?: number;
  top_p?: number;
  maxTokens?: number;
  seed?: number;
}

export type EvalSystem = SingleSystem | DebateSystem | SelfConsistencySystem;
export type SystemKind = EvalSystem['kind'];

/** 'greedy': temperature 0 everywhere; 'sampled': the system's own temperature (else the evaluation's). */
export type Decoding = 'greedy' | 'sampled';

/** The sampled temperature when neither the system nor the evaluation sets one. */
export const DEFAULT_SAMPLED_TEMPERATURE = 0.7;

export interface EvalOptions {
  /** Default: each question's own task. */
  task?: Task;
  /** Max tokens per reply (default 512). */
  maxTokens?: number;
  /** Single systems' sampling temperature (default 0: greedy). */
  temperature?: number;
  seed?: number;
  /**
   * Run every system once per decoding, each run its own row named "<name> [greedy]" /
   * "<name> [sampled]" (the name alone when only one decoding is given). Default: one run at each
   * system's own settings, named as given.
   */
  decodings?: Decoding[];
  /** Run the self-correction probe (default true). */
  selfCorrection?: boolean;
  /** Run the perturbed questions (default true). */
  robustness?: boolean;
  /** Seed of the perturbations (default 0). */
  perturbSeed?: number;
  /** Questions of one system in flight at once (default 1). */
  concurrency?: number;
  /** Recorded in the report. */
  dataset?: string;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Clock in ms for wall times (default performance.now); injectable for tests. */
  now?: () => number;
}

// ---------------------------------------------------------------------------------------------
// Report

export interface CostTotals {
  calls: number;
  promptTokens: number;
  completionTokens: number;
  wallMs: number;
}

export interface Cost extends CostTotals {
  /** Means per question. */
  perQuestion: CostTotals;
}

export interface SelfCorrectionStats {
  n: number;
  /** Accuracy at attempt 1 (= the system's accuracy). */
  attempt1: number;
  attempt2: number;
  /** attempt2 − attempt1. */
  delta: number;
  /** Fraction of all questions wrong at attempt 1 and right at attempt 2. */
  wrongToRight: number;
  /** Fraction of all questions right at attempt 1 and wrong at attempt 2. */
  rightToWrong: number;
  counts: { correct1: number; correct2: number; wrongToRight: number; rightToWrong: number };
}

export interface RobustnessEntry {
  /** Perturbed questions evaluated. */
  n: number;
  correct: number;
  accuracy: number;
  /** The system's accuracy on the same questions unperturbed. */
  baseline: number;
  /** accuracy − baseline. */
  delta: number;
}

export interface Outcome {
  correct: boolean;
  extracted: string | null;
  error?: string;
}

/** Of a debate round's agent answers, how many were right. */
export interface RoundTally {
  correct: number;
  agents: number;
}

export interface QuestionResult extends Outcome {
  id: string;
  /** The question set's label, when the questions carry one. */
  set?: string;
  /** Short-answer QA: SQuAD token F1 of the extracted answer against the reference. */
  f1?: number;
  /** Cost of answering this question once. */
  cost: CostTotals;
  /** Debate systems: right answers among the agents' answers, per round. */
  rounds?: RoundTally[];
  attempt2?: Outcome;
  distractor?: Outcome;
  rename?: Outcome;
}

/** Accuracy with its Wilson 95% interval. */
export interface AccuracyStats {
  n: number;
  correct: number;
  accuracy: number;
  ci95: [number, number];
}

export interface SystemReport {
  name: string;
  kind: SystemKind;
  /** Set when the evaluation ran `decodings`. */
  decoding?: Decoding;
  meta?: Record<string, string | number | boolean>;
  n: number;
  correct: number;
  accuracy: number;
  /** Wilson 95% interval of the accuracy (absent in reports written before it existed). */
  ci95?: [number, number];
  /** Short-answer QA questions: mean SQuAD token F1 (accuracy is SQuAD exact match). */
  f1?: number;
  /** Per question set, when the questions carry `set` labels. */
  bySet?: Record<string, AccuracyStats>;
  /** Answers that could not be parsed. */
  unparsed: number;
  /** Calls that failed (counted as wrong). */
  errors: number;
  selfCorrection: SelfCorrectionStats | null;
  /**
   * Debate systems: the share of right answers among all agents' answers, per round. Round 1 is
   * one independent sample per agent: a single agent's accuracy, estimated from agents × questions
   * samples instead of one per question.
   */
  roundAccuracy?: number[];
  /** null when robustness was not run; an entry is null when no question was perturbed that way. */
  robustness: { distractor: RobustnessEntry | null; rename: RobustnessEntry | null } | null;
  cost: Cost;
  costAll: CostTotals;
  /** Wall time of the whole evaluation of this system (questions may overlap). */
  elapsedMs: number;
  questions: QuestionResult[];
}

export interface PerturbationSummary {
  seed: number;
  /** Questions with the distractor sentence (all). */
  distractor: number;
  rename: {
    changed: number;
    namesChanged: number;
    numbersScaled: number;
    answerRecomputed: number;
    structureIgnored: number;
  };
}

/** One system against the single agent of the same decoding, question by question. */
export interface PairedComparison {
  system: string;
  baseline: string;
  decoding?: Decoding;
  /** Accuracy minus the baseline's (fraction). */
  delta: number;
  /** Questions the system gets right and the baseline wrong, and the reverse. */
  wins: number;
  losses: number;
  /** Two-sided exact sign test on wins vs losses. */
  pValue: number;
}

export interface QuestionSetInfo {
  name: string;
  task: Task;
  questions: number;
}

export interface EvalReport {
  schema: typeof EVAL_SCHEMA;
  createdAt: string;
  task: Task | 'mixed';
  dataset?: string;
  questions: number;
  settings: {
    maxTokens: number;
    temperature: number;
    decodings?: Decoding[];
    seed: number | null;
    selfCorrection: boolean;
    robustness: boolean;
    concurrency: number;
    reviewPrompt: string;
  };
  perturbations: PerturbationSummary | null;
  systems: SystemReport[];
  /** Every system against the base single agent of its decoding (absent when there is none). */
  comparisons?: PairedComparison[];
  /** The question sets, when the questions carry `set` labels. */
  sets?: QuestionSetInfo[];
}

// ---------------------------------------------------------------------------------------------
// Running

const zero = (): CostTotals => ({ calls: 0, promptTokens: 0, completionTokens: 0, wallMs: 0 });
const addCost = (a: CostTotals, b: CostTotals) => {
  a.calls += b.calls;
  a.promptTokens += b.promptTokens;
  a.completionTokens += b.completionTokens;
  a.wallMs += b.wallMs;
};
const round1 = (x: number) => Math.round(x * 10) / 10;

interface Answer extends Outcome {
  cost: CostTotals;
  /** Debate systems: right answers among the agents' answers, per round. */
  rounds?: RoundTally[];
  /** The reply text (single systems), for the follow-up turn. */
  text?: string;
  messages?: ChatMessage[];
}

function gradeAnswer(task: Task, extracted: string | null, reference: string): boolean {
  const ref = referenceAnswer(task, reference);
  return ref !== null && answersEqual(task, extracted, ref);
}

async function chatCall(
  engine: ChatEngine,
  messages: ChatMessage[],
  sys: SingleSystem | SelfConsistencySystem,
  opts: EvalOptions,
  signal?: AbortSignal,
  seedOffset = 0,
) {
  const base = sys.seed ?? opts.seed;
  const seed = base === undefined ? undefined : base + seedOffset;
  const req = {
    messages,
    ...(sys.model !== undefined ? { model: sys.model } : {}),
    temperature: sys.temperature ?? opts.temperature ?? 0,
    ...(sys.top_p !== undefined ? { top_p: sys.top_p } : {}),
    max_tokens: sys.maxTokens ?? opts.maxTokens ?? 512,
    ...(seed !== undefined ? { seed } : {}),
  };
  const r = await complete(engine, req, { signal });
  return { text: r.text, usage: { prompt: r.usage.prompt_tokens, completion: r.usage.completion_tokens } };
}

/** One single-agent answer to `messages`, graded against `reference`. */
async function singleAnswer(
  sys: SingleSystem,
  task: Task,
  messages: ChatMessage[],
  reference: string,
  opts: EvalOptions,
  now: () => number,
): Promise<Answer> {
  const t0 = now();
  try {
    const r = await chatCall(sys.engine, messages, sys, opts, opts.signal);
    const extracted = extractAnswer(task, r.text);
    return {
      correct: gradeAnswer(task, extracted, reference),
      extracted,
      text: r.text,
      messages,
      cost: {
        calls: 1,
        promptTokens: r.usage.prompt,
        completionTokens: r.usage.completion,
        wallMs: round1(now() - t0),
      },
    };
  } catch (e) {
    if (opts.signal?.aborted) throw new AbortError('evaluation aborted');
    return {
      correct: false,
      extracted: null,
      error: (e as Error).message,
      cost: { ...zero(), wallMs: round1(now() - t0) },
    };
  }
}

/** N sampled answers (concurrently), majority vote over the extracted answers (ties: the earliest sample). */
async function selfConsistencyAnswer(
  sys: SelfConsistencySystem,
  task: Task,
  messages: ChatMessage[],
  reference: string,
  opts: EvalOptions,
  now: () => number,
): Promise<Answer> {
  const t0 = now();
  const n = Math.max(1, Math.floor(sys.samples ?? 5));
  const temperature = sys.temperature ?? (opts.temperature ? opts.temperature : DEFAULT_SAMPLED_TEMPERATURE);
  try {
    const replies = await Promise.all(
      Array.from({ length: n }, (_, k) =>
        chatCall(sys.engine, messages, { ...sys, temperature }, opts, opts.signal, k),
      ),
    );
    const vote = majorityVote(
      task,
      replies.map((r) => extractAnswer(task, r.text)),
    );
    const cost: CostTotals = { calls: n, promptTokens: 0, completionTokens: 0, wallMs: round1(now() - t0) };
    for (const r of replies) {
      cost.promptTokens += r.usage.prompt;
      cost.completionTokens += r.usage.completion;
    }
    return { correct: gradeAnswer(task, vote.answer, reference), extracted: vote.answer, cost };
  } catch (e) {
    if (opts.signal?.aborted) throw new AbortError('evaluation aborted');
    return {
      correct: false,
      extracted: null,
      error: (e as Error).message,
      cost: { ...zero(), wallMs: round1(now() - t0) },
    };
  }
}

async function debateAnswer(
  sys: DebateSystem,
  task: Task,
  q: Question,
  opts: EvalOptions,
  now: () => number,
): Promise<Answer> {
  const t0 = now();
  try {
    const dopts: DebateOptions = {
      max_tokens: opts.maxTokens ?? 512,
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    };
    for (const [k, v] of Object.entries(sys.debate)) if (v !== undefined) (dopts as Record<string, unknown>)[k] = v;
    const rec = await runDebate(q, { ...dopts, task }, sys.engines, opts.signal);
    return {
      correct: rec.final.correct,
      extracted: rec.final.answer,
      rounds: rec.rounds.map((r) => ({
        correct: r.messages.filter((m) => m.correct).length,
        agents: r.messages.length,
      })),
      cost: {
        calls: rec.totals.calls,
        promptTokens: rec.totals.promptTokens,
        completionTokens: rec.totals.completionTokens,
        wallMs: round1(now() - t0),
      },
    };
  } catch (e) {
    if (opts.signal?.aborted) throw new AbortError('evaluation aborted');
    return {
      correct: false,
      extracted: null,
      error: (e as Error).message,
      cost: { ...zero(), wallMs: round1(now() - t0) },
    };
  }
}

/** Right answers over all agents' answers, per round (rounds missing from failed debates are skipped). */
function debateRoundAccuracy(results: readonly QuestionResult[]): number[] {
  const sums: RoundTally[] = [];
  for (const r of results) {
    r.rounds?.forEach((t, k) => {
      const s = (sums[k] ??= { correct: 0, agents: 0 });
      s.correct += t.correct;
      s.agents += t.agents;
    });
  }
  return sums.map((s) => (s.agents ? s.correct / s.agents : 0));
}

const outcome = (a: Answer): Outcome => ({
  correct: a.correct,
  extracted: a.extracted,
  ...(a.error !== undefined ? { error: a.error } : {}),
});

interface Prepared {
  q: PerturbableQuestion;
  task: Task;
  distractor: Perturbed | null;
  rename: Perturbed | null;
  /** A carried structure was not usable (see perturb.ts). */
  structureIgnored: boolean;
}

async function evalQuestion(
  sys: EvalSystem,
  p: Prepared,
  opts: EvalOptions,
  now: () => number,
): Promise<{ result: QuestionResult; all: CostTotals; errors: number }> {
  const { q, task } = p;
  const all = zero();
  let errors = 0;
  const ask = async (question: Question): Promise<Answer> => {
    const a =
      sys.kind === 'single'
        ? await singleAnswer(
            sys,
            task,
            studentMessages(task, question, { system: sys.system }),
            String(question.answer),
            opts,
            now,
          )
        : sys.kind === 'self-consistency'
          ? await selfConsistencyAnswer(
              sys,
              task,
              studentMessages(task, question, { system: sys.system }),
              String(question.answer),
              opts,
              now,
            )
          : await debateAnswer(sys, task, question, opts, now);
    addCost(all, a.cost);
    if (a.error !== undefined) errors++;
    return a;
  };
  const first = await ask(q);
  const f1 = task === 'qa' ? { f1: qaF1(first.extracted ?? '', referenceAnswer('qa', String(q.answer)) ?? '') } : {};
  const result: QuestionResult = {
    id: String(q.id),
    ...(q.set !== undefined ? { set: q.set } : {}),
    ...f1,
    ...outcome(first),
    cost: { ...first.cost },
    ...(first.rounds ? { rounds: first.rounds } : {}),
  };
  if (sys.kind === 'single' && (opts.selfCorrection ?? true)) {
    let second: Answer;
    if (first.error !== undefined || first.messages === undefined) {
      second = { correct: false, extracted: null, error: 'attempt 1 failed', cost: zero() };
    } else {
      const messages: ChatMessage[] = [
        ...first.messages,
        { role: 'assistant', content: first.text ?? '' },
        { role: 'user', content: reviewPrompt(task) },
      ];
      second = await singleAnswer(sys, task, messages, String(q.answer), opts, now);
      addCost(all, second.cost);
      if (second.error !== undefined) errors++;
    }
    result.attempt2 = outcome(second);
  }
  if (p.distractor) result.distractor = outcome(await ask(p.distractor.question));
  if (p.rename) result.rename = outcome(await ask(p.rename.question));
  return { result, all, errors };
}

function robustnessEntry(results: QuestionResult[], key: 'distractor' | 'rename'): RobustnessEntry | null {
  const used = results.filter((r) => r[key] !== undefined);
  if (!used.length) return null;
  const correct = used.filter((r) => r[key]!.correct).length;
  const base = used.filter((r) => r.correct).length;
  const accuracy = correct / used.length;
  const baseline = base / used.length;
  return { n: used.length, correct, accuracy, baseline, delta: accuracy - baseline };
}

/** The system as run under `decoding` (see EvalOptions.decodings); null when that run would be degenerate. */
function underDecoding(sys: EvalSystem, decoding: Decoding, opts: EvalOptions, suffix: boolean): EvalSystem | null {
  const name = suffix ? `${sys.name} [${decoding}]` : sys.name;
  const sampledT = opts.temperature ? opts.temperature : DEFAULT_SAMPLED_TEMPERATURE;
  switch (sys.kind) {
    case 'single':
      return { ...sys, name, temperature: decoding === 'greedy' ? 0 : (sys.temperature ?? sampledT) };
    case 'self-consistency':
      return decoding === 'greedy' ? null : { ...sys, name, temperature: sys.temperature ?? sampledT };
    case 'debate': {
      if (decoding === 'sampled') return { ...sys, name };
      const debate: DebateOptions = {
        ...sys.debate,
        temperature: 0,
        agents: sys.debate.agents?.map((a) => ({ ...a, temperature: 0 })),
      };
      if (sys.debate.aggregatorSpec) debate.aggregatorSpec = { ...sys.debate.aggregatorSpec, temperature: 0 };
      return { ...sys, name, debate };
    }
  }
}

const mean0 = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);

/** Accuracy and its Wilson 95% interval over `results`. */
function accuracyStats(results: readonly QuestionResult[]): AccuracyStats {
  const n = results.length;
  const correct = results.filter((r) => r.correct).length;
  return { n, correct, accuracy: n ? correct / n : 0, ci95: wilsonInterval(correct, n) };
}

/** Every system against the base single agent of its decoding (the first `single` with role "base", else the first `single`). */
export function pairedComparisons(systems: readonly SystemReport[]): PairedComparison[] {
  const out: PairedComparison[] = [];
  const groups = new Map<string, SystemReport[]>();
  for (const s of systems) {
    const k = s.decoding ?? '';
    groups.set(k, [...(groups.get(k) ?? []), s]);
  }
  for (const group of groups.values()) {
    const base =
      group.find((s) => s.kind === 'single' && s.meta?.role === 'base') ?? group.find((s) => s.kind === 'single');
    if (!base) continue;
    const byId = new Map(base.questions.map((q) => [q.id, q.correct]));
    for (const s of group) {
      if (s === base) continue;
      let wins = 0;
      let losses = 0;
      for (const q of s.questions) {
        const other = byId.get(q.id);
        if (other === undefined) continue;
        if (q.correct && !other) wins++;
        if (!q.correct && other) losses++;
      }
      out.push({
        system: s.name,
        baseline: base.name,
        ...(s.decoding ? { decoding: s.decoding } : {}),
        delta: s.accuracy - base.accuracy,
        wins,
        losses,
        pValue: signTest(wins, losses),
      });
    }
  }
  return out;
}

/** Evaluates every system on `questions` (see the module comment). */
export async function evaluate(
  questions: PerturbableQuestion[],
  givenSystems: EvalSystem[],
  opts: EvalOptions = {},
): Promise<EvalReport> {
  const now = opts.now ?? (() => performance.now());
  const names = new Set<string>();
  for (const s of givenSystems) {
    if (names.has(s.name)) throw new Error(`evaluate: duplicate system name ${JSON.stringify(s.name)}`);
    names.add(s.name);
  }
  const decodings = opts.decodings?.length ? [...new Set(opts.decodings)] : null;
  const systems: (EvalSystem & { decoding?: Decoding })[] = decodings
    ? decodings.flatMap((d) =>
        givenSystems
          .map((s) => underDecoding(s, d, opts, decodings.length > 1))
          .filter((s): s is EvalSystem => s !== null)
          .map((s) => ({ ...s, decoding: d })),
      )
    : givenSystems;
  const selfCorrection = opts.selfCorrection ?? true;
  const robustness = opts.robustness ?? true;
  const perturbSeed = opts.perturbSeed ?? 0;
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 1));
  const prepared: Prepared[] = questions.map((q) => {
    const task = (opts.task ?? q.task) as Task;
    if (!robustness) return { q, task, distractor: null, rename: null, structureIgnored: false };
    const p = perturbQuestion({ ...q, task }, perturbSeed);
    return {
      q,
      task,
      distractor: p.distractor.changed ? p.distractor : null,
      rename: p.rename.changed ? p.rename : null,
      structureIgnored: p.rename.structureIgnored !== undefined,
    };
  });
  const tasks = new Set(prepared.map((p) => p.task));

  let perturbations: PerturbationSummary | null = null;
  if (robustness) {
    const ren = prepared.map((p) => p.rename).filter((r): r is Perturbed => r !== null);
    perturbations = {
      seed: perturbSeed,
      distractor: prepared.filter((p) => p.distractor).length,
      rename: {
        changed: ren.length,
        namesChanged: ren.filter((r) => (r.names ?? []).length > 0).length,
        numbersScaled: ren.filter((r) => r.scale != null).length,
        answerRecomputed: ren.filter((r) => r.answerRecomputed).length,
        structureIgnored: prepared.filter((p) => p.structureIgnored).length,
      },
    };
  }

  const reports: SystemReport[] = [];
  for (const sys of systems) {
    if (opts.signal?.aborted) throw new AbortError('evaluation aborted');
    await sys.setup?.();
    const t0 = now();
    const results: QuestionResult[] = new Array(prepared.length);
    const costAll = zero();
    let errors = 0;
    let done = 0;
    let next = 0;
    const worker = async () => {
      while (true) {
        if (opts.signal?.aborted) throw new AbortError('evaluation aborted');
        const i = next++;
        if (i >= prepared.length) return;
        const r = await evalQuestion(sys, prepared[i]!, opts, now);
        results[i] = r.result;
        addCost(costAll, r.all);
        errors += r.errors;
        done++;
        opts.onProgress?.({
          phase: `eval ${sys.name}`,
          done,
          total: prepared.length,
          unit: 'questions',
          metrics: { accuracy: results.filter((x) => x?.correct).length / done },
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, Math.max(1, prepared.length)) }, worker));
    const n = results.length;
    const correct = results.filter((r) => r.correct).length;
    const cost = zero();
    for (const r of results) addCost(cost, r.cost);
    const mean = (x: number) => (n ? x / n : 0);
    let sc: SelfCorrectionStats | null = null;
    if (sys.kind === 'single' && selfCorrection) {
      const c1 = correct;
      const c2 = results.filter((r) => r.attempt2?.correct).length;
      const w2r = results.filter((r) => !r.correct && r.attempt2?.correct).length;
      const r2w = results.filter((r) => r.correct && !r.attempt2?.correct).length;
      sc = {
        n,
        attempt1: mean(c1),
        attempt2: mean(c2),
        delta: mean(c2) - mean(c1),
        wrongToRight: mean(w2r),
        rightToWrong: mean(r2w),
        counts: { correct1: c1, correct2: c2, wrongToRight: w2r, rightToWrong: r2w },
      };
    }
    costAll.wallMs = round1(costAll.wallMs);
    cost.wallMs = round1(cost.wallMs);
    const roundAccuracy = sys.kind === 'debate' ? debateRoundAccuracy(results) : undefined;
    const bySet: Record<string, AccuracyStats> = {};
    for (const label of new Set(results.map((r) => r.set).filter((x): x is string => x !== undefined)))
      bySet[label] = accuracyStats(results.filter((r) => r.set === label));
    reports.push({
      name: sys.name,
      kind: sys.kind,
      ...(sys.decoding ? { decoding: sys.decoding } : {}),
      ...(sys.meta ? { meta: sys.meta } : {}),
      n,
      correct,
      accuracy: mean(correct),
      ci95: wilsonInterval(correct, n),
      ...(results.some((r) => r.f1 !== undefined)
        ? { f1: mean0(results.filter((r) => r.f1 !== undefined).map((r) => r.f1!)) }
        : {}),
      ...(Object.keys(bySet).length ? { bySet } : {}),
      unparsed: results.filter((r) => r.extracted === null && r.error === undefined).length,
      errors,
      selfCorrection: sc,
      ...(roundAccuracy ? { roundAccuracy } : {}),
      robustness: robustness
        ? { distractor: robustnessEntry(results, 'distractor'), rename: robustnessEntry(results, 'rename') }
        : null,
      cost: {
        ...cost,
        perQuestion: {
          calls: mean(cost.calls),
          promptTokens: mean(cost.promptTokens),
          completionTokens: mean(cost.completionTokens),
          wallMs: round1(mean(cost.wallMs)),
        },
      },
      costAll,
      elapsedMs: round1(now() - t0),
      questions: results,
    });
  }
  const comparisons = pairedComparisons(reports);
  const sets: QuestionSetInfo[] = [];
  for (const p of prepared) {
    const label = p.q.set;
    if (label === undefined) continue;
    const info = sets.find((x) => x.name === label);
    if (info) info.questions++;
    else sets.push({ name: label, task: p.task, questions: 1 });
  }
  return {
    schema: EVAL_SCHEMA,
    createdAt: new Date().toISOString(),
    task: tasks.size === 1 ? [...tasks][0]! : tasks.size === 0 ? (opts.task ?? 'gsm8k') : 'mixed',
    ...(opts.dataset !== undefined ? { dataset: opts.dataset } : {}),
    questions: questions.length,
    settings: {
      maxTokens: opts.maxTokens ?? 512,
      temperature: opts.temperature ?? 0,
      ...(decodings ? { decodings } : {}),
      seed: opts.seed ?? null,
      selfCorrection,
      robustness,
      concurrency,
      reviewPrompt: REVIEW_PROMPT,
    },
    perturbations,
    systems: reports,
    ...(comparisons.length ? { comparisons } : {}),
    ...(sets.length ? { sets } : {}),
  };
}
