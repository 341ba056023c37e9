/**
 * The baselines and statistics of the evaluation report: self-consistency (N samples, majority
 * vote), greedy beside sampled runs of every system, Wilson intervals, the paired sign test
 * against the single agent, and several question sets in one run (one column per set).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/eval';
import { startServer } from '../../src/engine/server';
import type { ChatCompletionRequest } from '../../src/engine/types';
import { evaluate, type EvalSystem } from '../../src/eval/harness';
import { parseEvalReport, toMarkdown } from '../../src/eval/report';
import { signTest, wilsonInterval } from '../../src/eval/stats';
import type { Question } from '../../src/tasks/datasets';
import { createFakeEngine } from '../helpers/fake-engine';

describe('statistics', () => {
  it('Wilson 95% intervals match published values', () => {
    // Reference values: Newcombe (1998), Table I, and the usual textbook cases.
    const cases: [number, number, number, number][] = [
      [81, 263, 0.2553, 0.3662],
      [15, 148, 0.0624, 0.1605],
      [0, 20, 0, 0.1611],
      [1, 29, 0.0061, 0.1718],
      [56, 100, 0.4623, 0.6533],
    ];
    for (const [k, n, lo, hi] of cases) {
      const [a, b] = wilsonInterval(k, n);
      expect(a, `${k}/${n}`).toBeCloseTo(lo, 4);
      expect(b, `${k}/${n}`).toBeCloseTo(hi, 4);
    }
    expect(wilsonInterval(0, 0)).toEqual([0, 1]);
    expect(wilsonInterval(10, 10)[1]).toBe(1);
  });

  it('the sign test is the exact two-sided binomial test', () => {
    expect(signTest(0, 0)).toBe(1);
    expect(signTest(2, 0)).toBe(0.5);
    expect(signTest(9, 1)).toBeCloseTo(22 / 1024, 12);
    expect(signTest(1, 9)).toBeCloseTo(22 / 1024, 12);
    expect(signTest(5, 5)).toBe(1);
    expect(signTest(20, 5)).toBeCloseTo(0.004077, 5);
  });
});

const QS: Question[] = [
  { id: 'a', task: 'gsm8k', question: 'alpha: what is 3 + 4?', answer: '#### 7' },
  { id: 'b', task: 'gsm8k', question: 'beta: what is 5 * 6?', answer: '#### 30' },
  { id: 'c', task: 'gsm8k', question: 'gamma: what is 12 * 3?', answer: '#### 36' },
];
const RIGHT: Record<string, number> = { alpha: 7, beta: 30, gamma: 36 };

/**
 * Greedy (temperature 0): right on alpha only. Sampled: right unless seed % 3 === 1 (per question
 * and seed), so a vote over seeds 0..4 (right, wrong, right, right, wrong) is right on all.
 */
function reply(req: ChatCompletionRequest): string {
  const user = req.messages.find((m) => m.role === 'user')!.content;
  const key = Object.keys(RIGHT).find((k) => user.includes(k))!;
  let ok: boolean;
  if (!req.temperature) ok = key === 'alpha';
  else ok = (req.seed ?? 0) % 3 !== 1;
  return `Computed.\n#### ${ok ? RIGHT[key] : RIGHT[key]! + 1 + ((req.seed ?? 0) % 2)}`;
}

describe('self-consistency and decodings', () => {
  it('self-consistency votes over N seeded samples; greedy and sampled rows; comparisons per decoding', async () => {
    const engine = createFakeEngine({ reply });
    const systems: EvalSystem[] = [
      { name: 'single', kind: 'single', engine, meta: { role: 'base' } },
      { name: 'sc', kind: 'self-consistency', engine, samples: 5, meta: { role: 'base' } },
    ];
    const report = await evaluate(QS, systems, {
      decodings: ['greedy', 'sampled'],
      temperature: 0.9,
      seed: 10,
      selfCorrection: false,
      robustness: false,
    });
    expect(report.systems.map((s) => [s.name, s.kind, s.decoding, s.correct])).toEqual([
      ['single [greedy]', 'single', 'greedy', 1],
      // seed 10: 10 % 3 = 1 → wrong on every question.
      ['single [sampled]', 'single', 'sampled', 0],
      // seeds 10..14: wrong, right, right, wrong, right → 3 right of 5, and the wrong ones disagree.
      ['sc [sampled]', 'self-consistency', 'sampled', 3],
    ]);
    const sc = report.systems[2]!;
    expect(sc.cost.calls).toBe(15);
    expect(sc.cost.perQuestion.calls).toBe(5);
    expect(sc.selfCorrection).toBeNull();
    const scReqs = engine.requests.filter((r) => r.temperature === 0.9).slice(-15);
    expect(new Set(scReqs.map((r) => r.seed))).toEqual(new Set([10, 11, 12, 13, 14]));
    // Greedy requests are temperature 0; sampled ones the evaluation's temperature.
    expect(engine.requests.filter((r) => r.temperature === 0)).toHaveLength(3);
    expect(engine.requests.filter((r) => r.temperature === 0.9)).toHaveLength(3 + 15);
    expect(report.comparisons).toEqual([
      {
        system: 'sc [sampled]',
        baseline: 'single [sampled]',
        decoding: 'sampled',
        delta: 1,
        wins: 3,
        losses: 0,
        pValue: 0.25,
      },
    ]);
    expect(report.settings.decodings).toEqual(['greedy', 'sampled']);
    const md = toMarkdown(report);
    expect(md).toContain('| sc [sampled] | self-consistency | 100.0% (3/3) [43.9–100.0] |');
    expect(md).toContain('| sc [sampled] | single [sampled] | +100.0 | 3 / 0 | 0.25 |');
    expect(() => parseEvalReport(JSON.stringify(report))).not.toThrow();
  });

  it('a greedy debate runs every agent at temperature 0', async () => {
    const engine = createFakeEngine({ reply });
    const report = await evaluate(
      QS.slice(0, 1),
      [
        {
          name: 'd',
          kind: 'debate',
          engines: engine,
          debate: { numAgents: 2, rounds: 2, aggregator: 'vote', temperature: 0.8 },
        },
      ],
      { decodings: ['greedy'], selfCorrection: false, robustness: false },
    );
    expect(report.systems.map((s) => s.name)).toEqual(['d']);
    expect(engine.requests).toHaveLength(4);
    expect(engine.requests.every((r) => r.temperature === 0)).toBe(true);
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
    return { code: await fn(), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('agentark eval with several question sets', () => {
  it('one column per --data/--task pair; ids carry the set; defaults run greedy and sampled with self-consistency', async () => {
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'eval-sets-'));
    const engine = createFakeEngine({
      reply: (req) =>
        req.messages.some((m) => m.content.includes('Answer: <letter>')) ? 'Computed.\nAnswer: B' : reply(req),
    });
    const server = await startServer(engine);
    try {
      const math = path.join(dir, 'arith.jsonl');
      await fsp.writeFile(
        math,
        QS.map((q) => JSON.stringify({ id: q.id, question: q.question, answer: q.answer })).join('\n'),
      );
      const mc = path.join(dir, 'quiz.jsonl');
      await fsp.writeFile(
        mc,
        [
          { id: 'a', question: 'Pick one', choices: ['x', 'y', 'z'], answer: 'B' },
          { id: 'b', question: 'Pick again', choices: ['x', 'y'], answer: 'A' },
        ]
          .map((r) => JSON.stringify(r))
          .join('\n'),
      );
      const out = path.join(dir, 'report.json');
      const common = [
        '--base-url',
        server.baseUrl,
        '--api-model',
        'fake-model',
        '--out',
        out,
        '--quiet',
        '--no-self-correction',
        '--no-robustness',
        '--seed',
        '10',
      ];
      const r = await capture(() =>
        run(['--data', math, '--task', 'gsm8k', '--data', mc, '--task', 'mc', '--debate-agents', '2', ...common]),
      );
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const report = parseEvalReport(await fsp.readFile(out, 'utf8'));
      expect(report.task).toBe('mixed');
      expect(report.sets).toEqual([
        { name: 'arith', task: 'gsm8k', questions: 3 },
        { name: 'quiz', task: 'mc', questions: 2 },
      ]);
      expect(report.systems.map((s) => s.name)).toEqual([
        'single [greedy]',
        'debate [greedy]',
        'single [sampled]',
        'self-consistency [sampled]',
        'debate [sampled]',
      ]);
      const single = report.systems[0]!;
      expect(single.questions.map((q) => [q.id, q.set])).toEqual([
        ['arith/a', 'arith'],
        ['arith/b', 'arith'],
        ['arith/c', 'arith'],
        ['quiz/a', 'quiz'],
        ['quiz/b', 'quiz'],
      ]);
      expect(single.bySet).toEqual({
        arith: { n: 3, correct: 1, accuracy: 1 / 3, ci95: wilsonInterval(1, 3) },
        quiz: { n: 2, correct: 1, accuracy: 0.5, ci95: wilsonInterval(1, 2) },
      });
      expect(r.out).toContain('## Accuracy per task [95% CI]');
      expect(r.out).toContain('| System | arith (gsm8k, n=3) | quiz (mc, n=2) |');
      expect(r.out).toContain('| single [greedy] | 33.3% (1/3) [6.1–79.2] | 50.0% (1/2) [9.5–90.5] |');

      const bad = await capture(() =>
        run(['--data', math, '--data', mc, '--task', 'gsm8k', '--task', 'mc', '--task', 'math', ...common]),
      );
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/give --task once \(for every --data\) or once per --data: got 3 --task for 2 --data/);
      const badDecoding = await capture(() => run(['--data', math, '--decoding', 'beam', ...common]));
      expect(badDecoding.code).toBe(2);
      expect(badDecoding.err).toMatch(/--decoding must be greedy, sampled or greedy,sampled/);
      const help = await capture(() => run(['--help']));
      expect(help.out).toMatch(/--decoding LIST +greedy,sampled \(default both/);
      expect(help.out).toMatch(/--sc-samples N +self-consistency: samples per question, majority vote \(default 5\)/);
    } finally {
      await server.close();
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
