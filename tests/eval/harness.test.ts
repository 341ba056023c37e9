/**
 * The evaluation harness against the scripted fake engine: every answer of every system is
 * dictated by the tables below, every response's usage is fixed (10 prompt tokens per message,
 * one completion token per word) and the clock advances 100 ms per call, so every number of
 * the report is computed by hand in the expectations.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { attachStructures, run } from '../../src/cli/eval';
import { startServer } from '../../src/engine/server';
import type { ChatCompletionRequest, ChatEngine } from '../../src/engine/types';
import { evaluate, REVIEW_PROMPT, type EvalSystem } from '../../src/eval/harness';
import { DISTRACTOR_SENTENCES, type PerturbableQuestion } from '../../src/eval/perturb';
import { parseEvalReport, toMarkdown } from '../../src/eval/report';
import { createFakeEngine } from '../helpers/fake-engine';

const QUESTIONS: PerturbableQuestion[] = [
  {
    id: 'q1',
    task: 'gsm8k',
    question: 'Janet has 3 apples and buys 4 more. How many apples does Janet have now?',
    answer: 'Janet has 3 + 4 = 7 apples.\n#### 7',
    structure: {
      template: '{p} has {x} apples and buys {y} more. How many apples does {p} have now?',
      names: { p: 'Janet' },
      numbers: { x: 3, y: 4 },
      answer: 'x + y',
    },
  },
  {
    id: 'q2',
    task: 'gsm8k',
    question: 'Tom reads 5 pages every day for 6 days. How many pages does Tom read?',
    answer: '5 * 6 = 30\n#### 30',
  },
  {
    id: 'q3',
    task: 'gsm8k',
    question: 'A box holds 12 pencils. How many pencils are in 3 boxes?',
    answer: '12 * 3 = 36\n#### 36',
  },
  {
    id: 'q4',
    task: 'gsm8k',
    question: 'Maria bakes 10 cookies and eats 2 of them. How many cookies are left?',
    answer: '10 - 2 = 8\n#### 8',
  },
];

type Key = 'apples' | 'pages' | 'pencils' | 'cookies';
type Variant = 'original' | 'distractor' | 'rename';
const RIGHT: Record<Key, number> = { apples: 7, pages: 30, pencils: 36, cookies: 8 };
const T = true;
const F = false;
/** Attempt 1 (and robustness) of the single-agent systems: [apples, pages, pencils, cookies]. */
const FIRST: Record<string, Record<Variant, boolean[]>> = {
  base: { original: [T, F, T, F], distractor: [F, F, T, F], rename: [T, T, T, F] },
  student: { original: [T, T, T, T], distractor: [T, F, T, T], rename: [T, T, T, T] },
};
/** Attempt 2 after the review turn. */
const REVIEW: Record<string, boolean[]> = { base: [T, T, F, T], student: [F, T, T, T] };
/** The debate's aggregator (agents are right after the debate round, irrelevant to the final answer). */
const JUDGE: Record<Variant, boolean[]> = { original: [T, T, T, F], distractor: [T, T, F, F], rename: [T, T, T, F] };
const KEYS: Key[] = ['apples', 'pages', 'pencils', 'cookies'];

/** The scripted reply: always four words, "Answer computed.\n#### n". */
function scriptedReply(req: ChatCompletionRequest): string {
  const user0 = req.messages.find((m) => m.role === 'user')!.content;
  const key = KEYS.find((k) => user0.includes(k))!;
  const distractor = DISTRACTOR_SENTENCES.some((s) => user0.includes(s));
  const renamed = key !== 'pencils' && !/\b(Janet|Tom|Maria)\b/.test(user0);
  const variant: Variant = distractor ? 'distractor' : renamed ? 'rename' : 'original';
  let right = RIGHT[key];
  if (key === 'apples' && variant === 'rename') {
    const m = /has (\d+) apples and buys (\d+) more/.exec(user0)!;
    right = Number(m[1]) + Number(m[2]);
  }
  const i = KEYS.indexOf(key);
  const judge = req.messages[0]!.content.includes('impartial judge');
  const debated = req.messages.some((m) => m.role === 'user' && m.content.startsWith('Here are the latest solutions'));
  const review = req.messages[req.messages.length - 1]!.content.startsWith(REVIEW_PROMPT);
  const model = req.model ?? 'base';
  let ok: boolean;
  if (judge) ok = JUDGE[variant][i]!;
  else if (debated) ok = true;
  else if (review) ok = REVIEW[model]![i]!;
  else ok = FIRST[model]![variant][i]!;
  return `Answer computed.\n#### ${ok ? right : right + 1}`;
}

/** The fake engine with the scripted replies and usage fixed at 10 prompt tokens per message. */
function scriptedEngine(
  onCall?: () => void,
): ChatEngine & { calls: () => number; requests: () => ChatCompletionRequest[] } {
  const fake = createFakeEngine({ reply: (req) => scriptedReply(req) });
  const engine = {
    calls: () => fake.calls,
    requests: () => fake.requests,
    // The scripted replies depend on the requested model, so the server must list both.
    models: async () => ['base', 'student'],
    chat: {
      completions: {
        create: (async (req: ChatCompletionRequest, o?: { signal?: AbortSignal }) => {
          const res = (await fake.chat.completions.create({ ...req, stream: false }, o)) as Awaited<
            ReturnType<ChatEngine['chat']['completions']['create']>
          > & { usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
          onCall?.();
          const pt = 10 * req.messages.length;
          return {
            ...res,
            usage: {
              prompt_tokens: pt,
              completion_tokens: res.usage.completion_tokens,
              total_tokens: pt + res.usage.completion_tokens,
            },
          };
        }) as ChatEngine['chat']['completions']['create'],
      },
    },
  };
  return engine;
}

describe('evaluate', () => {
  it('reports every number as computed by hand', async () => {
    let clock = 0;
    const engine = scriptedEngine(() => (clock += 100));
    const setups: string[] = [];
    const systems: EvalSystem[] = [
      { name: 'single', kind: 'single', engine, model: 'base', setup: () => void setups.push('single') },
      {
        name: 'debate',
        kind: 'debate',
        engines: engine,
        debate: { numAgents: 2, rounds: 2, aggregator: 'llm', model: 'base' },
        setup: () => void setups.push('debate'),
      },
      {
        name: 'student',
        kind: 'single',
        engine,
        model: 'student',
        setup: () => void setups.push('student'),
        meta: { adapter: 'a' },
      },
    ];
    const progress: number[] = [];
    const report = await evaluate(QUESTIONS, systems, {
      maxTokens: 64,
      now: () => clock,
      onProgress: (e) => progress.push(e.done),
      dataset: 'fixture',
    });
    expect(setups).toEqual(['single', 'debate', 'student']);
    expect(progress).toEqual([1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
    expect(() => parseEvalReport(JSON.stringify(report))).not.toThrow();
    expect(report).toMatchObject({
      schema: 'agentark.eval/1',
      task: 'gsm8k',
      dataset: 'fixture',
      questions: 4,
      settings: { maxTokens: 64, temperature: 0, seed: null, selfCorrection: true, robustness: true, concurrency: 1 },
      // All 4 get the distractor; q1 (names + numbers), q2 and q4 (names) are renamed, q3 has no name.
      perturbations: {
        seed: 0,
        distractor: 4,
        rename: { changed: 3, namesChanged: 3, numbersScaled: 1, answerRecomputed: 1, structureIgnored: 0 },
      },
    });
    const [single, debate, student] = report.systems;

    // Single: attempt 1 right on q1, q3 → 2/4; attempt 2 right on q1, q2, q4 → 3/4.
    // Distractor: only q3 right → 1/4 vs 2/4. Renamed (q1, q2, q4): q1, q2 right → 2/3 vs 1/3 (q1).
    // Cost: 1 call per question, 2 messages → 20 prompt tokens, 4 completion tokens, 100 ms.
    // All calls: 4 + 4 review (4 messages → 40 prompt tokens) + 4 distractor + 3 renamed = 15.
    expect(single).toEqual({
      name: 'single',
      kind: 'single',
      n: 4,
      correct: 2,
      accuracy: 0.5,
      ci95: [expect.closeTo(0.15004, 4), expect.closeTo(0.84996, 4)],
      unparsed: 0,
      errors: 0,
      selfCorrection: {
        n: 4,
        attempt1: 0.5,
        attempt2: 0.75,
        delta: 0.25,
        wrongToRight: 0.5,
        rightToWrong: 0.25,
        counts: { correct1: 2, correct2: 3, wrongToRight: 2, rightToWrong: 1 },
      },
      robustness: {
        distractor: { n: 4, correct: 1, accuracy: 0.25, baseline: 0.5, delta: -0.25 },
        rename: { n: 3, correct: 2, accuracy: 2 / 3, baseline: 1 / 3, delta: 1 / 3 },
      },
      cost: {
        calls: 4,
        promptTokens: 80,
        completionTokens: 16,
        wallMs: 400,
        perQuestion: { calls: 1, promptTokens: 20, completionTokens: 4, wallMs: 100 },
      },
      costAll: { calls: 15, promptTokens: 80 + 160 + 80 + 60, completionTokens: 60, wallMs: 1500 },
      elapsedMs: 1500,
      questions: expect.any(Array),
    });
    expect(
      single!.questions.map((q) => [
        q.id,
        q.correct,
        q.extracted,
        q.attempt2!.correct,
        q.distractor!.correct,
        q.rename?.correct ?? null,
      ]),
    ).toEqual([
      ['q1', true, '7', true, false, true],
      ['q2', false, '31', true, false, true],
      ['q3', true, '36', false, true, null],
      ['q4', false, '9', true, false, false],
    ]);

    // Debate (2 agents × 2 rounds + aggregator = 5 calls): prompt tokens 2×20 + 2×40 + 20 = 140,
    // completion 5×4 = 20, 500 ms per question. Aggregator right on q1–q3 → 3/4; distractor
    // right on q1, q2 → 2/4 vs 3/4; renamed right on q1, q2 → 2/3 vs 2/3.
    expect(debate).toEqual({
      name: 'debate',
      kind: 'debate',
      n: 4,
      correct: 3,
      accuracy: 0.75,
      ci95: [expect.closeTo(0.30064, 4), expect.closeTo(0.95442, 4)],
      unparsed: 0,
      errors: 0,
      selfCorrection: null,
      // Round 1: both agents answer as the base model does alone (right on q1, q3) → 4/8;
      // round 2: every debated answer is right → 8/8.
      roundAccuracy: [0.5, 1],
      robustness: {
        distractor: { n: 4, correct: 2, accuracy: 0.5, baseline: 0.75, delta: -0.25 },
        rename: { n: 3, correct: 2, accuracy: 2 / 3, baseline: 2 / 3, delta: 0 },
      },
      cost: {
        calls: 20,
        promptTokens: 560,
        completionTokens: 80,
        wallMs: 2000,
        perQuestion: { calls: 5, promptTokens: 140, completionTokens: 20, wallMs: 500 },
      },
      costAll: { calls: 55, promptTokens: 560 + 560 + 420, completionTokens: 220, wallMs: 5500 },
      elapsedMs: 5500,
      questions: expect.any(Array),
    });
    expect(debate!.questions.every((q) => q.attempt2 === undefined)).toBe(true);
    expect(debate!.questions.map((q) => q.rounds!.map((r) => `${r.correct}/${r.agents}`))).toEqual([
      ['2/2', '2/2'],
      ['0/2', '2/2'],
      ['2/2', '2/2'],
      ['0/2', '2/2'],
    ]);
    expect(single!.roundAccuracy).toBeUndefined();

    // Student: attempt 1 all right; review breaks q1 → 3/4 (Δ −1/4, right→wrong 1/4).
    // Distractor: q2 wrong → 3/4 vs 1; renamed all right → 1 vs 1.
    expect(student).toEqual({
      name: 'student',
      kind: 'single',
      meta: { adapter: 'a' },
      n: 4,
      correct: 4,
      accuracy: 1,
      ci95: [expect.closeTo(0.51007, 4), 1],
      unparsed: 0,
      errors: 0,
      selfCorrection: {
        n: 4,
        attempt1: 1,
        attempt2: 0.75,
        delta: -0.25,
        wrongToRight: 0,
        rightToWrong: 0.25,
        counts: { correct1: 4, correct2: 3, wrongToRight: 0, rightToWrong: 1 },
      },
      robustness: {
        distractor: { n: 4, correct: 3, accuracy: 0.75, baseline: 1, delta: -0.25 },
        rename: { n: 3, correct: 3, accuracy: 1, baseline: 1, delta: 0 },
      },
      cost: {
        calls: 4,
        promptTokens: 80,
        completionTokens: 16,
        wallMs: 400,
        perQuestion: { calls: 1, promptTokens: 20, completionTokens: 4, wallMs: 100 },
      },
      costAll: { calls: 15, promptTokens: 380, completionTokens: 60, wallMs: 1500 },
      elapsedMs: 1500,
      questions: expect.any(Array),
    });
    expect(engine.calls()).toBe(15 + 55 + 15);

    const md = toMarkdown(report);
    expect(md).toContain(
      '| single | single | 50.0% (2/4) [15.0–85.0] | 50.0% → 75.0% | +25.0 | ' +
        '50.0% | 25.0% | 25.0% (−25.0, n=4) | 66.7% (+33.3, n=3) | 1 | 20 | 4 | 0.10 |',
    );
    expect(md).toContain(
      '| debate | debate | 75.0% (3/4) [30.1–95.4] | — | — | — | — | 50.0% (−25.0, n=4) | 66.7% (+0.0, n=3) | 5 | 140 | 20 | 0.50 |',
    );
    expect(md).toContain(
      '| student | single | 100.0% (4/4) [51.0–100.0] | 100.0% → 75.0% | −25.0 | ' +
        '0.0% | 25.0% | 75.0% (−25.0, n=4) | 100.0% (+0.0, n=3) | 1 | 20 | 4 | 0.10 |',
    );
  });

  it('without self-correction and robustness only the answering calls are made', async () => {
    const engine = scriptedEngine();
    const report = await evaluate(QUESTIONS, [{ name: 's', kind: 'single', engine, model: 'base' }], {
      selfCorrection: false,
      robustness: false,
    });
    expect(engine.calls()).toBe(4);
    expect(report.perturbations).toBeNull();
    expect(report.systems[0]).toMatchObject({
      accuracy: 0.5,
      selfCorrection: null,
      robustness: null,
      cost: { calls: 4 },
      costAll: { calls: 4, promptTokens: 80, completionTokens: 16 },
    });
  });

  it('failed calls count as wrong answers and errors; concurrency keeps question order', async () => {
    const engine = scriptedEngine();
    let n = 0;
    const flaky: ChatEngine = {
      models: engine.models,
      chat: {
        completions: {
          create: (async (req: ChatCompletionRequest) => {
            if (++n === 1) throw new Error('boom');
            return engine.chat.completions.create({ ...req, stream: false });
          }) as ChatEngine['chat']['completions']['create'],
        },
      },
    };
    const report = await evaluate(QUESTIONS, [{ name: 's', kind: 'single', engine: flaky, model: 'student' }], {
      robustness: false,
      concurrency: 3,
    });
    const s = report.systems[0]!;
    expect(s.questions.map((q) => q.id)).toEqual(['q1', 'q2', 'q3', 'q4']);
    expect(s.errors).toBe(1);
    expect(s.correct).toBe(3);
    expect(s.questions.filter((q) => q.error === 'boom')).toHaveLength(1);
    // The failed question's second attempt is not made (and is wrong); calls count responses.
    expect(s.costAll.calls).toBe(2 * 3);
    expect(s.questions.find((q) => q.error)!.attempt2).toEqual({
      correct: false,
      extracted: null,
      error: 'attempt 1 failed',
    });
    expect(toMarkdown(report)).toMatch(/Failed calls \(counted wrong\): s 1/);
  });

  it('rejects duplicate system names', async () => {
    const engine = scriptedEngine();
    await expect(
      evaluate(QUESTIONS, [
        { name: 'a', kind: 'single', engine },
        { name: 'a', kind: 'single', engine },
      ]),
    ).rejects.toThrow(/duplicate system name/);
  });
});

async function capture(fn: () => Promise<number>) {
  let out = '';
  let err = '';
  const o = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    const code = await fn();
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('agentark eval', () => {
  it('against the scripted fake engine over HTTP: every number as computed by hand', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'eval-cli-'));
    const engine = scriptedEngine();
    const server = await startServer(engine);
    try {
      const data = path.join(dir, 'questions.jsonl');
      await fsp.writeFile(data, `${QUESTIONS.map((q) => JSON.stringify(q)).join('\n')}\n`);
      const out = path.join(dir, 'out', 'report.json');
      const md = path.join(dir, 'out', 'report.md');
      const args = [
        '--data',
        data,
        '--task',
        'gsm8k',
        '--base-url',
        server.baseUrl,
        '--api-model',
        'base',
        '--student-model',
        'student',
      ];
      const r = await capture(() =>
        run([
          ...args,
          '--decoding',
          'greedy',
          '--systems',
          'single,debate,student',
          '--debate-agents',
          '2',
          '--debate-rounds',
          '2',
          '--max-tokens',
          '64',
          '--seed',
          '5',
          '--out',
          out,
          '--markdown',
          md,
          '--quiet',
        ]),
      );
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const report = parseEvalReport(await fsp.readFile(out, 'utf8'));
      expect(report).toMatchObject({
        schema: 'agentark.eval/1',
        task: 'gsm8k',
        dataset: data,
        questions: 4,
        settings: {
          maxTokens: 64,
          temperature: 0.7,
          decodings: ['greedy'],
          seed: 5,
          selfCorrection: true,
          robustness: true,
        },
        perturbations: {
          distractor: 4,
          rename: { changed: 3, namesChanged: 3, numbersScaled: 1, answerRecomputed: 1, structureIgnored: 0 },
        },
      });
      expect(report.systems.map((s) => [s.name, s.kind, s.meta])).toEqual([
        ['single', 'single', { role: 'base', model: 'base' }],
        ['debate', 'debate', { role: 'base', model: 'base', agents: '2', rounds: '2', aggregator: 'llm' }],
        ['student', 'single', { role: 'student', model: 'student' }],
      ]);
      const strip = (s: (typeof report.systems)[number]) => {
        expect(s.cost.wallMs).toBeGreaterThanOrEqual(0);
        expect(s.costAll.wallMs).toBeGreaterThanOrEqual(s.cost.wallMs);
        expect(s.elapsedMs).toBeGreaterThanOrEqual(0);
        const { questions: _q, meta: _m, elapsedMs: _e, ...rest } = s;
        return {
          ...rest,
          cost: { ...rest.cost, wallMs: 0, perQuestion: { ...rest.cost.perQuestion, wallMs: 0 } },
          costAll: { ...rest.costAll, wallMs: 0 },
        };
      };
      const [single, debate, student] = report.systems.map(strip);
      expect(single).toEqual({
        name: 'single',
        kind: 'single',
        decoding: 'greedy',
        n: 4,
        correct: 2,
        accuracy: 0.5,
        ci95: [expect.closeTo(0.15004, 4), expect.closeTo(0.84996, 4)],
        unparsed: 0,
        errors: 0,
        selfCorrection: {
          n: 4,
          attempt1: 0.5,
          attempt2: 0.75,
          delta: 0.25,
          wrongToRight: 0.5,
          rightToWrong: 0.25,
          counts: { correct1: 2, correct2: 3, wrongToRight: 2, rightToWrong: 1 },
        },
        robustness: {
          distractor: { n: 4, correct: 1, accuracy: 0.25, baseline: 0.5, delta: -0.25 },
          rename: { n: 3, correct: 2, accuracy: 2 / 3, baseline: 1 / 3, delta: 1 / 3 },
        },
        cost: {
          calls: 4,
          promptTokens: 80,
          completionTokens: 16,
          wallMs: 0,
          perQuestion: { calls: 1, promptTokens: 20, completionTokens: 4, wallMs: 0 },
        },
        costAll: { calls: 15, promptTokens: 380, completionTokens: 60, wallMs: 0 },
      });
      expect(debate).toEqual({
        name: 'debate',
        kind: 'debate',
        decoding: 'greedy',
        n: 4,
        correct: 3,
        accuracy: 0.75,
        ci95: [expect.closeTo(0.30064, 4), expect.closeTo(0.95442, 4)],
        unparsed: 0,
        errors: 0,
        selfCorrection: null,
        roundAccuracy: [0.5, 1],
        robustness: {
          distractor: { n: 4, correct: 2, accuracy: 0.5, baseline: 0.75, delta: -0.25 },
          rename: { n: 3, correct: 2, accuracy: 2 / 3, baseline: 2 / 3, delta: 0 },
        },
        cost: {
          calls: 20,
          promptTokens: 560,
          completionTokens: 80,
          wallMs: 0,
          perQuestion: { calls: 5, promptTokens: 140, completionTokens: 20, wallMs: 0 },
        },
        costAll: { calls: 55, promptTokens: 1540, completionTokens: 220, wallMs: 0 },
      });
      expect(student).toEqual({
        name: 'student',
        kind: 'single',
        decoding: 'greedy',
        n: 4,
        correct: 4,
        accuracy: 1,
        ci95: [expect.closeTo(0.51007, 4), 1],
        unparsed: 0,
        errors: 0,
        selfCorrection: {
          n: 4,
          attempt1: 1,
          attempt2: 0.75,
          delta: -0.25,
          wrongToRight: 0,
          rightToWrong: 0.25,
          counts: { correct1: 4, correct2: 3, wrongToRight: 0, rightToWrong: 1 },
        },
        robustness: {
          distractor: { n: 4, correct: 3, accuracy: 0.75, baseline: 1, delta: -0.25 },
          rename: { n: 3, correct: 3, accuracy: 1, baseline: 1, delta: 0 },
        },
        cost: {
          calls: 4,
          promptTokens: 80,
          completionTokens: 16,
          wallMs: 0,
          perQuestion: { calls: 1, promptTokens: 20, completionTokens: 4, wallMs: 0 },
        },
        costAll: { calls: 15, promptTokens: 380, completionTokens: 60, wallMs: 0 },
      });
      // The server saw exactly these calls and tokens.
      expect(server.stats.completions).toBe(85);
      expect(server.stats.promptTokens).toBe(380 + 1540 + 380);
      expect(server.stats.completionTokens).toBe(60 + 220 + 60);
      // Every request carried max_tokens and a seed; under --decoding greedy everything is greedy.
      const reqs = engine.requests();
      expect(reqs).toHaveLength(85);
      expect(reqs.every((q) => q.max_tokens === 64 && typeof q.seed === 'number')).toBe(true);
      const studentReqs = reqs.filter((q) => q.model === 'student');
      expect(studentReqs.every((q) => q.seed === 5)).toBe(true);
      expect(studentReqs).toHaveLength(15);
      expect(reqs.filter((q) => q.temperature === 0)).toHaveLength(85);
      // The paired comparison with the single agent (greedy): debate wins q2, loses none; student wins q2 and q4.
      expect(report.comparisons).toEqual([
        { system: 'debate', baseline: 'single', decoding: 'greedy', delta: 0.25, wins: 1, losses: 0, pValue: 1 },
        { system: 'student', baseline: 'single', decoding: 'greedy', delta: 0.5, wins: 2, losses: 0, pValue: 0.5 },
      ]);
      const markdown = await fsp.readFile(md, 'utf8');
      expect(r.out).toBe(markdown);
      expect(markdown).toMatch(/^# Evaluation: gsm8k/);
      expect(markdown).toContain('| student | single | +50.0 | 2 / 0 | 0.50 |');
      expect(markdown).toContain(
        '| single | single | 50.0% (2/4) [15.0–85.0] | 50.0% → 75.0% | +25.0 | ' +
          '50.0% | 25.0% | 25.0% (−25.0, n=4) | 66.7% (+33.3, n=3) | 1 | 20 | 4 |',
      );
      expect(markdown).toContain(
        '| student | single | 100.0% (4/4) [51.0–100.0] | 100.0% → 75.0% | −25.0 | ' +
          '0.0% | 25.0% | 75.0% (−25.0, n=4) | 100.0% (+0.0, n=3) | 1 | 20 | 4 |',
      );

      // --systems, --limit and the switches.
      const out2 = path.join(dir, 'r2.json');
      const r2 = await capture(() =>
        run([
          ...args,
          '--decoding',
          'greedy',
          '--systems',
          'single',
          '--limit',
          '2',
          '--no-self-correction',
          '--no-robustness',
          '--out',
          out2,
          '--quiet',
        ]),
      );
      expect(r2.code).toBe(0);
      const rep2 = parseEvalReport(await fsp.readFile(out2, 'utf8'));
      expect(rep2.questions).toBe(2);
      expect(rep2.systems.map((s) => [s.name, s.correct, s.costAll.calls, s.selfCorrection, s.robustness])).toEqual([
        ['single', 1, 2, null, null],
      ]);
    } finally {
      await server.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('attaches the structure or steps rows carry, by id or line', () => {
    const text = [
      JSON.stringify({
        id: 'a',
        question: 'x',
        answer: '#### 1',
        structure: { template: 'x', numbers: {}, answer: '1' },
      }),
      JSON.stringify({ question: 'y', answer: '#### 2', steps: [{ op: '+', a: 1, b: 1, result: 2 }] }),
      JSON.stringify({ question: 'z', answer: '#### 3' }),
    ].join('\n');
    const qs = [
      { id: 'a', question: 'x', answer: '#### 1', task: 'gsm8k' as const },
      { id: 'q.jsonl#2', question: 'y', answer: '#### 2', task: 'gsm8k' as const },
      { id: 'q.jsonl#3', question: 'z', answer: '#### 3', task: 'gsm8k' as const },
    ];
    const out = attachStructures(text, qs, '/tmp/q.jsonl');
    expect(out[0]!.structure).toEqual({ template: 'x', numbers: {}, answer: '1' });
    expect(out[1]!.steps).toEqual([{ op: '+', a: 1, b: 1, result: 2 }]);
    expect(out[2]).toEqual(qs[2]);
  });

  it('usage errors exit 2 with the usage text', async () => {
    const cases: [string[], RegExp][] = [
      [['--out', 'o'], /--data is required/],
      [['--data', 'd'], /--out is required/],
      [['--data', 'd', '--out', 'o'], /give --model DIR .* or --base-url URL/],
      [['--data', 'd', '--out', 'o', '--model', 'm', '--base-url', 'http://x'], /exclusive/],
      [['--data', 'd', '--out', 'o', '--base-url', 'http://x', '--adapter', 'a'], /--adapter needs the local engine/],
      [['--data', 'd', '--out', 'o', '--model', 'm', '--student-model', 's'], /--student-model applies to --base-url/],
      [
        ['--data', 'd', '--out', 'o', '--base-url', 'http://x', '--systems', 'single,oracle'],
        /unknown system "oracle"/,
      ],
      [['--data', 'd', '--out', 'o', '--base-url', 'http://x', '--systems', 'student'], /needs --adapter/],
      [
        ['--data', 'd', '--out', 'o', '--base-url', 'http://x', '--debate-agents', '0'],
        /--debate-agents must be an integer >= 1/,
      ],
      [
        ['--data', 'd', '--out', 'o', '--base-url', 'http://x', '--debate-aggregator', 'mean'],
        /--debate-aggregator must be llm or vote/,
      ],
      [['--data', 'd', '--out', 'o', '--base-url', 'http://x', '--task', 'essay'], /--task must be/],
      [['--nope'], /Unknown option/],
    ];
    for (const [argv, re] of cases) {
      const r = await capture(() => run(argv));
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.err).toMatch(re);
      expect(r.err).toMatch(/usage: agentark eval/);
    }
    const help = await capture(() => run(['--help']));
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/--student-model NAME/);
  });
});
