import { describe, expect, it } from 'vitest';
import type { ChatCompletionRequest } from '../../src/engine/types';
import type { Question } from '../../src/tasks/datasets';
import { DebateAbortedError, majorityVote, runDebate, type DebateOptions } from '../../src/teach/debate';
import { answerFormatInstruction } from '../../src/tasks/prompts';
import { parseTrajectoryLine } from '../../src/teach/trajectory';
import { createFakeEngine } from '../helpers/fake-engine';
import { fnv1a } from '../../src/util/hash';

const q: Question = {
  id: 'q1',
  question: 'Tom has 3 apples and buys 4 more. How many apples does he have?',
  answer: 'He has 3 + 4 = 7.\n#### 7',
  task: 'gsm8k',
};

const isJudge = (req: ChatCompletionRequest) => req.messages[0]!.content.includes('judge');

/** A unique, recognisable reply per request, answering `answerOf(seed)`. */
function uniqueReply(answerOf: (req: ChatCompletionRequest) => number | string) {
  return (req: ChatCompletionRequest) =>
    `Solution ${fnv1a(JSON.stringify(req.messages) + String(req.seed)).toString(16)} by seed ${req.seed}.\n#### ${answerOf(req)}`;
}

describe('runDebate (fake engine)', () => {
  it('3 agents x 2 rounds: every round recorded, round-2 prompts quote the other agents only', async () => {
    const engine = createFakeEngine({ reply: uniqueReply((r) => (r.seed ?? 0) % 10) });
    const rec = await runDebate(q, { numAgents: 3, rounds: 2, aggregator: 'vote', seed: 100, model: 'm' }, engine);
    expect(rec.rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(rec.rounds.every((r) => r.messages.length === 3)).toBe(true);
    expect(engine.calls).toBe(6);
    const r1 = rec.rounds[0]!.messages;
    const r2 = rec.rounds[1]!.messages;
    // Round 1: independent, only system + question.
    for (const m of r1) {
      expect(m.prompt.map((p) => p.role)).toEqual(['system', 'user']);
      expect(m.prompt[0]!.content).toContain(answerFormatInstruction('gsm8k'));
      expect(m.prompt[1]!.content).toContain(q.question);
    }
    // Distinct agents, distinct seeds and distinct replies.
    expect(new Set(r1.map((m) => m.completion)).size).toBe(3);
    expect(r1.map((m) => m.params.seed)).toEqual([100, 101, 102]);
    expect(r2.map((m) => m.params.seed)).toEqual([1100, 1101, 1102]);
    r2.forEach((m, i) => {
      expect(m.agent).toBe(`agent${i + 1}`);
      expect(m.prompt.map((p) => p.role)).toEqual(['system', 'user', 'assistant', 'user']);
      // Its own round-1 answer is its assistant turn...
      expect(m.prompt[2]!.content).toBe(r1[i]!.completion);
      const turn = m.prompt[3]!.content;
      // ...and the debate turn quotes every other agent's round-1 answer, not its own.
      r1.forEach((o, j) => {
        if (j === i) {
          expect(turn).not.toContain(o.completion);
          expect(turn).not.toContain(`--- ${o.agent} ---`);
        } else {
          expect(turn).toContain(o.completion);
          expect(turn).toContain(`--- ${o.agent} ---`);
        }
      });
      expect(turn).toContain('#### <number>');
    });
    // The engine saw exactly the recorded prompts.
    const sent = engine.requests.map((r) => JSON.stringify(r.messages));
    for (const m of [...r1, ...r2]) expect(sent).toContain(JSON.stringify(m.prompt));
    // Extraction and grading per message.
    for (const m of [...r1, ...r2]) {
      expect(m.extracted).toBe(String((m.params.seed ?? 0) % 10));
      expect(m.correct).toBe(m.extracted === '7');
      expect(m.finish_reason).toBe('stop');
      expect(m.latencyMs).toBeGreaterThanOrEqual(0);
    }
    // The record is valid per the schema validator.
    expect(() => parseTrajectoryLine(JSON.stringify(rec), 1)).not.toThrow();
  });

  it('totals equal the sum of the recorded usages and the engine counters', async () => {
    const engine = createFakeEngine();
    const rec = await runDebate(q, { numAgents: 3, rounds: 2, aggregator: 'llm', seed: 1 }, engine);
    const msgs = rec.rounds.flatMap((r) => r.messages);
    const p = msgs.reduce((s, m) => s + m.usage.prompt_tokens, 0) + rec.aggregator.usage!.prompt_tokens;
    const c = msgs.reduce((s, m) => s + m.usage.completion_tokens, 0) + rec.aggregator.usage!.completion_tokens;
    expect(rec.totals.calls).toBe(7);
    expect(rec.totals.promptTokens).toBe(p);
    expect(rec.totals.completionTokens).toBe(c);
    expect(engine.calls).toBe(7);
    expect(engine.promptTokens).toBe(p);
    expect(engine.completionTokens).toBe(c);
    expect(p).toBeGreaterThan(0);
    expect(c).toBeGreaterThan(0);
  });

  it('vote aggregator: majority of the last round, no extra call', async () => {
    // Round 2 answers by agent index (seed 1000 + i): 7, 5, 7 → 7.
    const answers: Record<number, number> = { 0: 1, 1: 2, 2: 3, 1000: 7, 1001: 5, 1002: 7 };
    const engine = createFakeEngine({ reply: uniqueReply((r) => answers[r.seed!]!) });
    const rec = await runDebate(q, { numAgents: 3, rounds: 2, aggregator: 'vote', seed: 0 }, engine);
    expect(engine.calls).toBe(6);
    expect(rec.aggregator.kind).toBe('vote');
    expect(rec.aggregator.extracted).toBe('7');
    expect(rec.aggregator.votes).toEqual([
      { answer: '7', count: 2 },
      { answer: '5', count: 1 },
    ]);
    expect(rec.final).toEqual({ answer: '7', correct: true });
    expect(rec.totals.calls).toBe(6);
    expect(rec.rounds[0]!.messages.every((m) => !m.correct)).toBe(true);
  });

  it('majorityVote breaks ties by the earliest agent and ignores unparsed answers', () => {
    expect(majorityVote('gsm8k', ['3', '5', '5', '3']).answer).toBe('3');
    expect(majorityVote('gsm8k', [null, '5', '3', '3', '5']).answer).toBe('5');
    expect(majorityVote('gsm8k', ['2', '9', '9']).answer).toBe('9');
    expect(majorityVote('gsm8k', ['1,000', '1000.0', '7']).votes).toEqual([
      { answer: '1,000', count: 2 },
      { answer: '7', count: 1 },
    ]);
    expect(majorityVote('gsm8k', [null, null]).answer).toBeNull();
    expect(majorityVote('mc', ['b', 'A', 'B']).answer).toBe('b');
  });

  it('llm aggregator: one extra call that reads every final answer; its answer is final', async () => {
    const engine = createFakeEngine({
      reply: (req, _ctx) =>
        isJudge(req) ? 'Having weighed them: the answer is 7.\n#### 7' : uniqueReply(() => 4)(req),
    });
    const rec = await runDebate(
      q,
      { numAgents: 3, rounds: 2, aggregator: 'llm', seed: 5, model: 'judge-model' },
      engine,
    );
    expect(engine.calls).toBe(7);
    const ag = rec.aggregator;
    expect(ag.kind).toBe('llm');
    expect(ag.model).toBe('judge-model');
    expect(ag.params!.temperature).toBe(0);
    for (const m of rec.rounds[1]!.messages) expect(ag.prompt![1]!.content).toContain(m.completion);
    expect(ag.prompt![1]!.content).toContain(q.question);
    expect(ag.extracted).toBe('7');
    expect(rec.final).toEqual({ answer: '7', correct: true });
    // All agents said 4 → wrong, but the judge overruled.
    expect(rec.rounds[1]!.messages.every((m) => m.extracted === '4' && !m.correct)).toBe(true);
  });

  it("quote 'answer': later rounds and the judge read the others' final answers only (a sparse debate); restateQuestion repeats the question", async () => {
    const engine = createFakeEngine({
      reply: (req) => (isJudge(req) ? '#### 7' : uniqueReply((r) => (r.seed ?? 0) % 10)(req)),
    });
    const rec = await runDebate(
      q,
      {
        numAgents: 3,
        rounds: 2,
        aggregator: 'llm',
        seed: 20,
        quote: 'answer',
        restateQuestion: true,
        promptStyle: 'compact',
      },
      engine,
    );
    const [r1, r2] = [rec.rounds[0]!.messages, rec.rounds[1]!.messages];
    r2.forEach((m, i) => {
      // Its own earlier reply stays whole (an assistant turn); the others appear as "#### n" only.
      expect(m.prompt[2]).toEqual({ role: 'assistant', content: r1[i]!.completion });
      const turn = m.prompt[3]!.content;
      r1.forEach((o, j) => {
        expect(turn.includes(o.completion.split('\n')[0]!)).toBe(false);
        expect(turn.includes(`--- ${o.agent} ---\n#### ${o.extracted}\n`)).toBe(j !== i);
      });
      expect(turn).toContain(`\n\nQuestion: ${q.question}\n\nCheck each step`);
    });
    const judge = rec.aggregator.prompt![1]!.content;
    for (const m of r2) expect(judge).toContain(`--- ${m.agent} ---\n#### ${m.extracted}`);
    expect(judge).not.toContain('Solution ');
    await expect(runDebate(q, { numAgents: 2, rounds: 2, quote: 'summary' as never }, engine)).rejects.toThrow(
      /quote must be 'solution' or 'answer'/,
    );
  });

  it('llm aggregator without a parseable answer falls back to the vote', async () => {
    const engine = createFakeEngine({
      reply: (req) => (isJudge(req) ? 'I cannot decide.' : uniqueReply(() => 7)(req)),
    });
    const rec = await runDebate(q, { numAgents: 3, rounds: 1, aggregator: 'llm' }, engine);
    expect(rec.rounds).toHaveLength(1);
    expect(rec.aggregator.extracted).toBeNull();
    expect(rec.aggregator.fallback).toBe('vote');
    expect(rec.final).toEqual({ answer: '7', correct: true });
  });

  it('agents of a round run concurrently', async () => {
    const engine = createFakeEngine({ delayMs: 30 });
    await runDebate(q, { numAgents: 4, rounds: 2, aggregator: 'vote' }, engine);
    expect(engine.maxInFlight).toBe(4);
  });

  it('heterogeneous agents: engine, model, temperature and system prompt per agent', async () => {
    const a = createFakeEngine();
    const b = createFakeEngine();
    const opts: DebateOptions = {
      rounds: 2,
      aggregator: 'llm',
      aggregatorSpec: { engine: 'b', model: 'judge' },
      agents: [
        { name: 'alice', engine: 'a', model: 'ma', temperature: 0.2 },
        { name: 'bob', engine: 'b', model: 'mb', temperature: 1.1, systemPrompt: 'You are Bob, a physicist.' },
        { name: 'carol', engine: 'a', model: 'mc', persona: 'Be sceptical of the others.' },
      ],
      temperature: 0.5,
    };
    const rec = await runDebate(q, opts, { a, b });
    expect(a.calls).toBe(4);
    expect(b.calls).toBe(3);
    expect(a.requests.every((r) => r.model === 'ma' || r.model === 'mc')).toBe(true);
    expect(b.requests.map((r) => r.model).sort()).toEqual(['judge', 'mb', 'mb']);
    const r1 = rec.rounds[0]!.messages;
    expect(r1.map((m) => [m.agent, m.model, m.params.temperature])).toEqual([
      ['alice', 'ma', 0.2],
      ['bob', 'mb', 1.1],
      ['carol', 'mc', 0.5],
    ]);
    expect(r1[1]!.prompt[0]!.content).toMatch(/^You are Bob, a physicist\. .*#### <number>/);
    expect(r1[2]!.prompt[0]!.content).toContain('Be sceptical of the others.');
    expect(rec.rounds[1]!.messages[0]!.prompt[3]!.content).toContain('--- bob ---');
    expect(rec.config).toMatchObject({ agents: 3, rounds: 2, aggregator: 'llm' });
    await expect(runDebate(q, { agents: [{ engine: 'zzz' }] }, { a, b })).rejects.toThrow(/no engine named "zzz"/);
  });

  it('defaults follow the paper: 5 agents, 2 rounds, an llm aggregator', async () => {
    const engine = createFakeEngine();
    const rec = await runDebate(q, {}, engine);
    expect(rec.config).toMatchObject({ agents: 5, rounds: 2, aggregator: 'llm' });
    expect(engine.calls).toBe(11);
    expect(rec.rounds[1]!.messages[0]!.prompt[3]!.content.match(/--- agent\d ---/g)).toHaveLength(4);
  });

  it('asks for the task-specific answer format (MATH boxed, MC letter) and grades with it', async () => {
    const engine = createFakeEngine({
      reply: (req) =>
        req.messages[0]!.content.includes('\\boxed') ? 'so \\boxed{\\frac{1}{2}}' : 'I pick B.\nAnswer: B',
    });
    const m = await runDebate(
      { id: 'm1', question: 'Compute 2/4.', answer: 'It is $\\boxed{\\frac12}$.', task: 'math' },
      { numAgents: 2, rounds: 1, aggregator: 'vote' },
      engine,
    );
    expect(m.rounds[0]!.messages[0]!.prompt[0]!.content).toContain('\\boxed{');
    expect(m.final).toEqual({ answer: '\\frac{1}{2}', correct: true });
    const mc = await runDebate(
      {
        id: 'c1',
        question: 'Which is a mammal?\n\nA. shark\nB. whale',
        answer: 'B',
        task: 'mc',
        choices: ['shark', 'whale'],
      },
      { numAgents: 2, rounds: 1, aggregator: 'vote' },
      engine,
    );
    const prompt = mc.rounds[0]!.messages[0]!.prompt;
    expect(prompt[0]!.content).toContain('Answer: <letter>');
    expect(prompt[1]!.content.match(/B\. whale/g)).toHaveLength(1); // choices not duplicated
    expect(mc.choices).toEqual(['shark', 'whale']);
    expect(mc.final).toEqual({ answer: 'B', correct: true });
  });

  it('truncated replies are recorded with finish_reason length', async () => {
    const engine = createFakeEngine({ reply: () => 'one two three four five six seven eight nine ten\n#### 7' });
    const rec = await runDebate(q, { numAgents: 2, rounds: 1, aggregator: 'vote', max_tokens: 4 }, engine);
    for (const m of rec.rounds[0]!.messages) {
      expect(m.finish_reason).toBe('length');
      expect(m.usage.completion_tokens).toBe(4);
      expect(m.params.max_tokens).toBe(4);
    }
  });

  it('an abort rejects with DebateAbortedError', async () => {
    const engine = createFakeEngine({ delayMs: 200 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 30);
    await expect(runDebate(q, { numAgents: 3 }, engine, ac.signal)).rejects.toBeInstanceOf(DebateAbortedError);
    expect(engine.calls).toBe(3); // round 2 never started
  });
});
