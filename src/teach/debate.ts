/**
 * The multi-agent debate that produces the teacher trajectories (AgentArk protocol).
 *
 * Round 1: every agent answers the question independently. Rounds 2..R: every agent sees the
 * other agents' latest answers (its own previous answer stays in its own conversation as an
 * assistant turn) and gives an updated answer. Then an aggregator states the final answer: either
 * one extra LLM call that reads all final answers (`llm`), or a majority vote over the extracted
 * answers with ties going to the earliest agent (`vote`). `rounds` counts all rounds, round 1
 * included (default 2, i.e. one debate round after the independent one), with 5 agents.
 *
 * Agents of a round run concurrently (a batching engine decodes them together). Every call's
 * prompt, completion, usage, latency, extracted answer and correctness goes into the trajectory.
 */
import { complete } from '../engine/complete';
import type { ChatEngine, ChatMessage, FinishReason } from '../engine/types';
import type { ProgressCallback } from '../progress';
import { AbortError, isAbortError } from '../util/abort';
import { answersEqual, extractAnswer, isTask, referenceAnswer, type Task } from '../tasks/answers';
import type { Question } from '../tasks/datasets';
import { answerFormatInstruction, answerLine, formatQuestion, taskPersona, type PromptStyle } from '../tasks/prompts';
import {
  TRAJECTORY_SCHEMA,
  openTrajectoryLog,
  summarizeTrajectories,
  type AgentMessage,
  type AggregatorRecord,
  type DebateRound,
  type SamplingParams,
  type TrajectoryRecord,
} from './trajectory';

export const DEBATE_PROMPT_VERSION = 'agentark-debate/1';

export interface AgentSpec {
  /** Shown to the other agents and stored in the trajectory; default `agent<i>`. */
  name?: string;
  /** Key into the engines record (default "default"). */
  engine?: string;
  /** Model id sent with each request and recorded (default: the run's `model`, else "default"). */
  model?: string;
  /** Replaces the task's default system prompt (the answer-format instruction is still appended). */
  systemPrompt?: string;
  /** Extra persona text appended to the system prompt (e.g. "You are a sceptical reviewer."). */
  persona?: string;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  /** Per-agent seed; otherwise derived from the run seed. */
  seed?: number;
}

export interface AggregatorSpec {
  engine?: string;
  model?: string;
  systemPrompt?: string;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  seed?: number;
}

export interface DebateOptions {
  /** Overrides the question's task. */
  task?: Task;
  /** Number of agents (default 5, or agents.length when `agents` is given). */
  numAgents?: number;
  /** Per-agent settings; cycled when numAgents is larger. */
  agents?: AgentSpec[];
  /** Total rounds including the independent first round (default 2). */
  rounds?: number;
  /** Default 'llm'. */
  aggregator?: 'llm' | 'vote';
  aggregatorSpec?: AggregatorSpec;
  /** Defaults for every agent. */
  model?: string;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  /** Base seed; agent i in round r gets seed + 1000*(r-1) + i. */
  seed?: number;
  /**
   * Keep at most this many characters of each other agent's answer when quoting it (the tail is
   * kept, since it holds the final answer). Unlimited by default.
   */
  maxQuotedChars?: number;
  /**
   * What later rounds and the aggregator read of each agent: its whole latest solution (default)
   * or only its final answer, written in the task's answer format ("#### 12"): a sparse debate,
   * cheaper, and short enough for a small model's context.
   */
  quote?: 'solution' | 'answer';
  /**
   * Repeat the question at the end of later rounds' turns, next to where the agent starts
   * writing: a small model loses track of numbers stated a few hundred tokens back.
   */
  restateQuestion?: boolean;
  /**
   * 'default': the full wording above; 'compact': short instructions for small models with short
   * contexts (the embedded demo is trained on exactly these strings).
   */
  promptStyle?: PromptStyle;
  /** Questions debated at once by runDebateSet (default 1). */
  concurrency?: number;
  /** The engine(s) to use when none are passed explicitly (runDebateSet always uses these). */
  engines?: Engines;
}

export type Engines = ChatEngine | Record<string, ChatEngine>;

function isEngine(x: unknown): x is ChatEngine {
  const c = (x as ChatEngine | undefined)?.chat?.completions?.create;
  return typeof c === 'function';
}

function pickEngine(engines: Engines, key: string | undefined): ChatEngine {
  if (isEngine(engines)) return engines;
  const k = key ?? 'default';
  const e = engines[k] ?? (key === undefined ? Object.values(engines)[0] : undefined);
  if (!e)
    throw new Error(
      `debate: no engine named ${JSON.stringify(k)} (have: ${Object.keys(engines).join(', ') || 'none'})`,
    );
  return e;
}

// ---------------------------------------------------------------------------------------------
// Prompts

function systemPrompt(task: Task, spec: AgentSpec | AggregatorSpec, style: PromptStyle = 'default'): string {
  const base = spec.systemPrompt ?? taskPersona(task, style);
  const persona = 'persona' in spec && spec.persona ? ` ${spec.persona}` : '';
  return `${base}${persona} ${answerFormatInstruction(task, style)}`;
}

function quote(text: string, max?: number): string {
  const t = text.trim();
  if (!max || t.length <= max) return t;
  return `[…] ${t.slice(t.length - max)}`;
}

/**
 * The debate for small models (the embedded demo model is trained on exactly this): compact
 * wording, the others' final answers only, the question restated in later rounds.
 */
export const SMALL_MODEL_DEBATE = {
  promptStyle: 'compact',
  quote: 'answer',
  restateQuestion: true,
} as const satisfies Pick<DebateOptions, 'promptStyle' | 'quote' | 'restateQuestion'>;

/**
 * The user turn of a later round: the other agents' latest answers and the request to revise;
 * with `question`, the question is repeated just before the request.
 */
export function debateTurn(
  task: Task,
  others: { name: string; answer: string }[],
  max?: number,
  style: PromptStyle = 'default',
  question?: string,
): string {
  const quoted = others.map((o) => `--- ${o.name} ---\n${quote(o.answer, max)}`).join('\n\n');
  const again = question === undefined ? '' : `Question: ${question}\n\n`;
  if (style === 'compact')
    return (
      `Answers from the other agents:\n\n${quoted}\n\n${again}` +
      `Check each step, yours and theirs, and give your corrected solution. ${answerFormatInstruction(task, 'compact')}`
    );
  return (
    `Here are the latest solutions from the other agents:\n\n${quoted}\n\n${again}` +
    'Use their reasoning as additional evidence, but think for yourself: check every step, yours and theirs, ' +
    'and point out any mistakes you find. Then give your updated step-by-step solution. ' +
    answerFormatInstruction(task)
  );
}

/** The aggregator's user turn: the question and every agent's final answer. */
export function aggregatorPrompt(
  task: Task,
  question: string,
  finals: { name: string; answer: string }[],
  max?: number,
  style: PromptStyle = 'default',
): string {
  const quoted = finals.map((o) => `--- ${o.name} ---\n${quote(o.answer, max)}`).join('\n\n');
  if (style === 'compact')
    return `Question:\n${question}\n\nFinal answers of the agents:\n\n${quoted}\n\nState the correct final answer. ${answerFormatInstruction(task, 'compact')}`;
  return (
    `Question:\n${question}\n\nSeveral agents debated this question. Their final solutions are:\n\n${quoted}\n\n` +
    'Weigh the arguments, identify which reasoning is correct, and state the single final answer with a brief justification. ' +
    answerFormatInstruction(task)
  );
}

/** The aggregator's system prompt. */
export function aggregatorSystemPrompt(task: Task, custom?: string, style: PromptStyle = 'default'): string {
  if (custom) return `${custom} ${answerFormatInstruction(task, style)}`;
  return style === 'compact'
    ? `You judge a debate between agents. ${answerFormatInstruction(task, 'compact')}`
    : `You are the impartial judge of a debate between several agents. ${answerFormatInstruction(task)}`;
}

// ---------------------------------------------------------------------------------------------
// One debate

interface ResolvedAgent {
  name: string;
  engine: ChatEngine;
  model: string;
  system: string;
  temperature: number;
  top_p: number;
  max_tokens: number;
  seed: number | null;
}

/** Thrown when a debate is aborted; nothing is written for that question. */
export class DebateAbortedError extends AbortError {
  constructor(id: string) {
    super(`debate of question ${id} aborted`);
  }
}

function engineModel(engine: ChatEngine): string {
  const own = (engine as { model?: unknown }).model;
  return typeof own === 'string' && own !== '' ? own : 'default';
}

function resolveAgents(task: Task, opts: DebateOptions, engines: Engines): ResolvedAgent[] {
  const specs = opts.agents?.length ? opts.agents : [{}];
  const n = opts.numAgents ?? (opts.agents?.length ? opts.agents.length : 5);
  if (!(n >= 1)) throw new Error(`debate: need at least one agent, got ${n}`);
  const out: ResolvedAgent[] = [];
  for (let i = 0; i < n; i++) {
    const s = specs[i % specs.length]!;
    out.push({
      name: s.name && n <= specs.length ? s.name : s.name ? `${s.name}-${i + 1}` : `agent${i + 1}`,
      engine: pickEngine(engines, s.engine),
      // An engine bound to one model (OpenAIEngine's `model`) names it; servers answer unknown ids with 404.
      model: s.model ?? opts.model ?? engineModel(pickEngine(engines, s.engine)),
      system: systemPrompt(task, s, opts.promptStyle),
      temperature: s.temperature ?? opts.temperature ?? 0.7,
      top_p: s.top_p ?? opts.top_p ?? 1,
      max_tokens: s.max_tokens ?? opts.max_tokens ?? 1024,
      seed: s.seed ?? (opts.seed !== undefined ? opts.seed + i : null),
    });
  }
  const names = new Set(out.map((a) => a.name));
  if (names.size !== out.length) throw new Error('debate: agent names must be unique');
  return out;
}

interface CallResult {
  completion: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  latencyMs: number;
  finish_reason: FinishReason;
}

async function call(
  engine: ChatEngine,
  model: string,
  messages: ChatMessage[],
  params: SamplingParams,
  signal: AbortSignal | undefined,
  id: string,
): Promise<CallResult> {
  const req = {
    messages,
    model,
    temperature: params.temperature,
    top_p: params.top_p,
    max_tokens: params.max_tokens,
    ...(params.seed !== null ? { seed: params.seed } : {}),
  };
  try {
    const r = await complete(engine, req, { signal, label: `question ${id}` });
    return { completion: r.text, usage: r.usage, latencyMs: r.latencyMs, finish_reason: r.finishReason };
  } catch (e) {
    if (isAbortError(e)) throw new DebateAbortedError(id);
    throw e;
  }
}

/** Majority vote over extracted answers; ties go to the answer first given by the earliest agent. */
export function majorityVote(
  task: Task,
  answers: (string | null)[],
): { answer: string | null; votes: { answer: string; count: number }[] } {
  const groups: { answer: string; count: number; first: number }[] = [];
  answers.forEach((a, i) => {
    if (a == null) return;
    const g = groups.find((x) => answersEqual(task, x.answer, a));
    if (g) g.count++;
    else groups.push({ answer: a, count: 1, first: i });
  });
  let best: (typeof groups)[number] | undefined;
  for (const g of groups)
    if (!best || g.count > best.count || (g.count === best.count && g.first < best.first)) best = g;
  return { answer: best?.answer ?? null, votes: groups.map(({ answer, count }) => ({ answer, count })) };
}

/** Runs the full debate for one question and returns its trajectory record (not written anywhere). */
export async function runDebate(
  question: Question,
  opts: DebateOptions,
  engines: Engines | undefined = opts.engines,
  signal?: AbortSignal,
): Promise<TrajectoryRecord> {
  if (!engines) throw new Error('debate: no engine given (pass engines or opts.engines)');
  const task = (opts.task ?? question.task) as Task;
  if (!isTask(task)) throw new Error(`debate: unknown task ${JSON.stringify(task)}`);
  const rounds = opts.rounds ?? 2;
  if (!(rounds >= 1)) throw new Error(`debate: rounds must be >= 1, got ${rounds}`);
  if (opts.quote !== undefined && opts.quote !== 'solution' && opts.quote !== 'answer')
    throw new Error(`debate: quote must be 'solution' or 'answer', got ${JSON.stringify(opts.quote)}`);
  const aggKind = opts.aggregator ?? 'llm';
  const agents = resolveAgents(task, opts, engines);
  const ref = referenceAnswer(task, String(question.answer ?? ''));
  const grade = (text: string) => {
    const extracted = extractAnswer(task, text);
    return { extracted, correct: ref !== null && answersEqual(task, extracted, ref) };
  };
  const qText = formatQuestion(question);
  const t0 = performance.now();
  let calls = 0;
  let promptTokens = 0;
  let completionTokens = 0;
  const count = (u: { prompt_tokens: number; completion_tokens: number }) => {
    calls++;
    promptTokens += u.prompt_tokens;
    completionTokens += u.completion_tokens;
  };

  // Each agent's own conversation.
  const convs: ChatMessage[][] = agents.map((a) => [
    { role: 'system', content: a.system },
    { role: 'user', content: `${qText}` },
  ]);
  // What the others read of each agent's latest message (see DebateOptions.quote).
  const latest: string[] = agents.map(() => '');
  const roundRecs: DebateRound[] = [];

  for (let r = 1; r <= rounds; r++) {
    if (r > 1) {
      agents.forEach((_a, i) => {
        const others = agents.map((b, j) => ({ name: b.name, answer: latest[j]! })).filter((_, j) => j !== i);
        convs[i]!.push({
          role: 'user',
          content: debateTurn(
            task,
            others,
            opts.maxQuotedChars,
            opts.promptStyle,
            opts.restateQuestion ? qText : undefined,
          ),
        });
      });
    }
    const messages = await Promise.all(
      agents.map(async (a, i): Promise<AgentMessage> => {
        const params: SamplingParams = {
          temperature: a.temperature,
          top_p: a.top_p,
          max_tokens: a.max_tokens,
          seed: a.seed === null ? null : a.seed + 1000 * (r - 1),
        };
        const prompt = convs[i]!.map((m) => ({ ...m }));
        const res = await call(a.engine, a.model, prompt, params, signal, question.id);
        const g = grade(res.completion);
        return {
          agent: a.name,
          model: a.model,
          params,
          prompt,
          completion: res.completion,
          usage: res.usage,
          latencyMs: res.latencyMs,
          extracted: g.extracted,
          correct: g.correct,
          finish_reason: res.finish_reason,
        };
      }),
    );
    messages.forEach((m, i) => {
      count(m.usage);
      latest[i] = opts.quote === 'answer' ? answerLine(task, m.extracted) : m.completion;
      convs[i]!.push({ role: 'assistant', content: m.completion });
    });
    roundRecs.push({ round: r, messages });
  }

  const lastRound = roundRecs[roundRecs.length - 1]!;
  const vote = majorityVote(
    task,
    lastRound.messages.map((m) => m.extracted),
  );
  let aggregator: AggregatorRecord;
  if (aggKind === 'vote') {
    aggregator = {
      kind: 'vote',
      extracted: vote.answer,
      correct: ref !== null && answersEqual(task, vote.answer, ref),
      votes: vote.votes,
    };
  } else {
    const spec = opts.aggregatorSpec ?? {};
    const engine = pickEngine(engines, spec.engine);
    const model = spec.model ?? opts.model ?? agents[0]!.model;
    const params: SamplingParams = {
      temperature: spec.temperature ?? 0,
      top_p: spec.top_p ?? 1,
      max_tokens: spec.max_tokens ?? opts.max_tokens ?? 1024,
      seed: spec.seed ?? (opts.seed !== undefined ? opts.seed + 1000 * rounds : null),
    };
    const prompt: ChatMessage[] = [
      { role: 'system', content: aggregatorSystemPrompt(task, spec.systemPrompt, opts.promptStyle) },
      {
        role: 'user',
        content: aggregatorPrompt(
          task,
          qText,
          agents.map((a, i) => ({ name: a.name, answer: latest[i]! })),
          opts.maxQuotedChars,
          opts.promptStyle,
        ),
      },
    ];
    const res = await call(engine, model, prompt, params, signal, question.id);
    count(res.usage);
    const g = grade(res.completion);
    aggregator = {
      kind: 'llm',
      model,
      params,
      prompt,
      completion: res.completion,
      usage: res.usage,
      latencyMs: res.latencyMs,
      finish_reason: res.finish_reason,
      extracted: g.extracted,
      correct: g.correct,
    };
    if (g.extracted === null && vote.answer !== null) {
      aggregator.fallback = 'vote';
      aggregator.votes = vote.votes;
    }
  }
  const finalAnswer = aggregator.extracted ?? (aggregator.fallback === 'vote' ? vote.answer : null);
  return {
    schema: TRAJECTORY_SCHEMA,
    id: String(question.id),
    question: question.question,
    reference: String(question.answer ?? ''),
    task,
    ...(Array.isArray(question.choices) ? { choices: (question.choices as unknown[]).map(String) } : {}),
    config: { agents: agents.length, rounds, aggregator: aggKind, promptVersion: DEBATE_PROMPT_VERSION },
    rounds: roundRecs,
    aggregator,
    final: { answer: finalAnswer, correct: ref !== null && answersEqual(task, finalAnswer, ref) },
    totals: { calls, promptTokens, completionTokens, wallMs: Math.round(performance.now() - t0) },
    createdAt: new Date().toISOString(),
  };
}

// ---------------------------------------------------------------------------------------------
// A resumable set

export interface DebateSetOptions {
  /** Trajectory JSONL; records already there are skipped (resume). */
  out: string;
  onProgress?: ProgressCallback;
  /** Called after each record is durably written. */
  onRecord?: (rec: TrajectoryRecord, info: { done: number; total: number }) => void;
  /** Called when a question fails (after the engine's own retries); it is not written and a rerun retries it. */
  onError?: (err: Error, question: Question) => void;
  onWarning?: (msg: string) => void;
  signal?: AbortSignal;
  /** Stop the run after this many consecutive question failures (default 5; 0 = never). */
  maxConsecutiveFailures?: number;
  /** Overrides opts.engines. */
  engines?: Engines;
  /** Overrides opts.concurrency. */
  concurrency?: number;
}

export interface DebateSetResult {
  total: number;
  /** Already in the log before this run. */
  skipped: number;
  /** Written by this run. */
  completed: number;
  failed: { id: string; error: string }[];
  aborted: boolean;
  /** Set when the run stopped because of too many consecutive failures. */
  stoppedEarly?: string;
  wallMs: number;
}

/**
 * Debates every question not yet in `out` with `opts.engines`, `opts.concurrency` questions at a time, appending each
 * finished record. Aborting (signal) stops new work, abandons in-flight questions (nothing half
 * is written) and resolves with `aborted: true`.
 */
export async function runDebateSet(
  questions: Question[],
  opts: DebateOptions,
  set: DebateSetOptions,
): Promise<DebateSetResult> {
  const engines = set.engines ?? opts.engines;
  if (!engines) throw new Error('runDebateSet: no engine (set opts.engines)');
  const t0 = performance.now();
  const log = await openTrajectoryLog(set.out, { onWarning: set.onWarning });
  const seen = new Set<string>();
  const todo: Question[] = [];
  let skipped = 0;
  for (const q of questions) {
    const id = String(q.id);
    if (seen.has(id)) {
      set.onWarning?.(`question id ${JSON.stringify(id)} appears more than once in the input; debating it once`);
      continue;
    }
    seen.add(id);
    if (log.finishedIds.has(id)) skipped++;
    else todo.push(q);
  }
  const total = seen.size;
  const done = () => skipped + completed;
  let completed = 0;
  let consecutiveFailures = 0;
  const failed: { id: string; error: string }[] = [];
  const maxFail = set.maxConsecutiveFailures ?? 5;
  const inner = new AbortController();
  let stoppedEarly: string | undefined;
  const onOuterAbort = () => inner.abort(set.signal?.reason);
  if (set.signal?.aborted) inner.abort(set.signal.reason);
  else set.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const written: TrajectoryRecord[] = log.existing.filter((r) => seen.has(r.id));
  const tRun = performance.now();

  const progress = () => {
    if (!set.onProgress) return;
    const elapsed = (performance.now() - tRun) / 1000;
    const rate = completed > 0 ? completed / elapsed : 0;
    const left = total - done();
    const s = summarizeTrajectories(written);
    set.onProgress({
      phase: 'debate',
      done: done(),
      total,
      unit: 'questions',
      ...(rate > 0 ? { etaS: Math.round(left / rate) } : {}),
      metrics: {
        accuracy: s.accuracy,
        calls: s.calls,
        promptTokens: s.promptTokens,
        completionTokens: s.completionTokens,
        failed: failed.length,
      },
    });
  };
  progress();

  let next = 0;
  const worker = async () => {
    while (!inner.signal.aborted) {
      const q = todo[next++];
      if (!q) return;
      try {
        const rec = await runDebate(q, opts, engines, inner.signal);
        if (inner.signal.aborted) return; // finished only because of the abort: do not record
        await log.append(rec);
        written.push(rec);
        completed++;
        consecutiveFailures = 0;
        set.onRecord?.(rec, { done: done(), total });
        progress();
      } catch (e) {
        if (inner.signal.aborted) return;
        const err = e instanceof Error ? e : new Error(String(e));
        failed.push({ id: String(q.id), error: err.message });
        consecutiveFailures++;
        set.onError?.(err, q);
        progress();
        if (maxFail > 0 && consecutiveFailures >= maxFail) {
          stoppedEarly = `stopped after ${consecutiveFailures} consecutive failures; last: ${err.message}`;
          inner.abort(new Error(stoppedEarly));
        }
      }
    }
  };
  const c = Math.max(1, Math.min(set.concurrency ?? opts.concurrency ?? 1, todo.length || 1));
  try {
    await Promise.all(Array.from({ length: c }, worker));
  } finally {
    set.signal?.removeEventListener('abort', onOuterAbort);
    await log.close();
  }
  return {
    total,
    skipped,
    completed,
    failed,
    aborted: !!set.signal?.aborted,
    ...(stoppedEarly ? { stoppedEarly } : {}),
    wallMs: Math.round(performance.now() - t0),
  };
}
