import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  COMPACT_DEBATE_PROMPTS,
  GSM8K_DEBATE_PROMPTS,
  correctAttempt,
  demoCorpus,
  demoQuestionSets,
  randomWrongAttempt,
  renderRow,
  rowMessages,
  selfPlayRows,
  toTrainingJsonl,
  writeQuestionSets,
  wrongAttempt,
  type DebatePrompts,
  type DemoRow,
  type MistakeKind,
} from '../../src/demo/corpus';
import { canonicalStructure, generateProblems, seededRandom, type Problem } from '../../src/demo/problems';
import { buildDemoTokenizer } from '../../src/demo/tokenizer';
import { grade, referenceAnswer } from '../../src/tasks/answers';
import { HFTokenizer } from '../../src/formats/tokenizer';
import { loadQuestions } from '../../src/tasks/datasets';
import { runDebate } from '../../src/teach/debate';
import { IGNORE_INDEX, parseTrainingJsonl, tokenizeRow } from '../../src/train/data';
import { createFakeEngine } from '../helpers/fake-engine';

let problems: Problem[];
let rows: DemoRow[];
let tok: HFTokenizer;

beforeAll(() => {
  problems = generateProblems({ seed: 4, count: 1000, difficulty: 0, split: 'train' });
  rows = demoCorpus({ seed: 4, problems });
  const files = buildDemoTokenizer(rows.map(renderRow));
  tok = new HFTokenizer(files.tokenizerJson, files.tokenizerConfig);
});

const byKind = (rs: DemoRow[], kind: string) => rs.filter((r) => r.meta.kind === kind);

describe('prompts', () => {
  it('are exactly what runDebate sends (round 1, round 2, aggregator)', async () => {
    const p = generateProblems({ seed: 9, count: 1, difficulty: 1, split: 'test' })[0]!;
    const rng = seededRandom(1);
    const answers = [
      correctAttempt(p),
      randomWrongAttempt(p, rng),
      correctAttempt(p),
      randomWrongAttempt(p, rng),
      randomWrongAttempt(p, rng),
    ];
    const engine = createFakeEngine({ reply: (_req, { call }) => answers[(call - 1) % answers.length]!.text });
    const rec = await runDebate(
      { id: p.id, question: p.question, answer: p.answer, task: 'gsm8k' },
      { numAgents: 5, rounds: 2, aggregator: 'llm', seed: 1 },
      engine,
    );
    const P = GSM8K_DEBATE_PROMPTS;
    const [r1, r2] = [rec.rounds[0]!.messages, rec.rounds[1]!.messages];
    r1.forEach((m, i) => {
      expect(m.agent).toBe(P.agentName(i));
      expect(m.prompt).toEqual([
        { role: 'system', content: P.system },
        { role: 'user', content: P.question(p.question) },
      ]);
    });
    r2.forEach((m, i) => {
      const others = r1.filter((_, j) => j !== i).map((o) => ({ name: o.agent, answer: o.completion }));
      expect(m.prompt).toEqual([
        { role: 'system', content: P.system },
        { role: 'user', content: P.question(p.question) },
        { role: 'assistant', content: r1[i]!.completion },
        { role: 'user', content: P.debateTurn(others) },
      ]);
    });
    expect(rec.aggregator.kind).toBe('llm');
    if (rec.aggregator.kind === 'llm') {
      expect(rec.aggregator.prompt).toEqual([
        { role: 'system', content: P.aggregatorSystem },
        {
          role: 'user',
          content: P.aggregatorUser(
            p.question,
            r2.map((m) => ({ name: m.agent, answer: m.completion })),
          ),
        },
      ]);
    }
  });
});

describe('wrong attempts', () => {
  it('each kind of mistake gives a wrong final answer, graded wrong; the solution is graded right', () => {
    const rng = seededRandom(3);
    const seen = new Map<MistakeKind, number>();
    for (const p of generateProblems({ seed: 6, count: 300, difficulty: 2, split: 'train' })) {
      expect(grade('gsm8k', correctAttempt(p).text, p.answer).correct).toBe(true);
      for (const kind of ['slip', 'op', 'skip', 'final'] as const) {
        const a = wrongAttempt(p, kind, rng);
        if (!a) continue;
        seen.set(kind, (seen.get(kind) ?? 0) + 1);
        expect(a.final).not.toBe(p.final);
        expect(a.mistake).toBe(kind);
        const g = grade('gsm8k', a.text, p.answer);
        expect(g.correct).toBe(false);
        expect(g.extracted).toBe(String(a.final));
        const lines = a.text.split('\n');
        expect(lines[lines.length - 1]).toBe(`#### ${a.final}`);
        if (kind === 'skip') expect(lines.length).toBe(p.steps.length);
        else expect(lines.length).toBe(p.steps.length + 1);
        if (kind === 'final') expect(lines.slice(0, -1)).toEqual(p.answer.split('\n').slice(0, -1));
        if (kind === 'op') {
          // Arithmetic right, operation wrong: every written line is a true equation.
          for (const line of lines.slice(0, -1)) {
            const m = /(\d+) ([+\-*]) (\d+) = (\d+)/.exec(line)!;
            const [x, y, r] = [Number(m[1]), Number(m[3]), Number(m[4])];
            expect(m[2] === '+' ? x + y : m[2] === '-' ? x - y : x * y).toBe(r);
          }
        }
      }
      const any = randomWrongAttempt(p, rng);
      expect(any.correct).toBe(false);
      expect(any.final).not.toBe(p.final);
    }
    for (const kind of ['slip', 'op', 'skip', 'final'] as const) expect(seen.get(kind) ?? 0).toBeGreaterThan(100);
  });

  it('a slip propagates: later lines compute correctly from the wrong value', () => {
    const p = generateProblems({ seed: 1, count: 50, difficulty: 0, split: 'train' }).find(
      (q) => q.steps[1]!.aFrom === 0,
    )!;
    const correctFirst = p.answer.split('\n')[0]!;
    let lines: string[] = [];
    for (let s = 0; s < 1000; s++) {
      const a = wrongAttempt(p, 'slip', seededRandom(s));
      if (a && a.text.split('\n')[0] !== correctFirst) {
        lines = a.text.split('\n');
        break;
      }
    }
    expect(lines).toHaveLength(3);
    const r1 = Number(/= (\d+)/.exec(lines[0]!)![1]);
    expect(r1).not.toBe(p.steps[0]!.result);
    const m2 = /(\d+) ([+-]) (\d+) = (\d+)/.exec(lines[1]!)!;
    expect(Number(m2[1])).toBe(r1);
    expect(Number(m2[4])).toBe(m2[2] === '+' ? r1 + Number(m2[3]) : r1 - Number(m2[3]));
  });
});

describe('demoCorpus', () => {
  it('is deterministic by seed', () => {
    const some = problems.slice(0, 100);
    expect(demoCorpus({ seed: 1, problems: some })).toEqual(demoCorpus({ seed: 1, problems: some }));
    expect(toTrainingJsonl(demoCorpus({ seed: 1, problems: some }))).not.toBe(
      toTrainingJsonl(demoCorpus({ seed: 2, problems: some })),
    );
  });

  it('follows the mix', () => {
    const counts = (rs: DemoRow[]) => ['single', 'debate', 'aggregator'].map((k) => byKind(rs, k).length);
    expect(counts(rows)).toEqual([1000, expect.closeTo(500, -2), expect.closeTo(250, -2)]);
    const custom = demoCorpus({
      seed: 4,
      problems: problems.slice(0, 200),
      mix: { single: 0, debate: 2, aggregator: 0.5 },
    });
    const [s, d, a] = counts(custom);
    expect(s).toBe(0);
    expect(d).toBe(400);
    expect(a).toBeGreaterThan(70);
    expect(a).toBeLessThan(130);
    expect(() => demoCorpus({ seed: 1, problems, mix: { single: -1 } })).toThrow(/mix/);
  });

  it('single rows: the debate round-1 prompt → the worked solution', () => {
    for (const r of byKind(rows, 'single').slice(0, 50)) {
      if (!('messages' in r)) throw new Error('single rows are messages rows');
      const p = problems.find((q) => q.id === r.meta.problemId)!;
      expect(r.messages).toEqual([
        { role: 'system', content: GSM8K_DEBATE_PROMPTS.system },
        { role: 'user', content: p.question },
        { role: 'assistant', content: p.answer },
      ]);
      expect(r.messages[1]!.content).not.toContain('####');
    }
  });

  it('debate rows: own earlier answer + the other agents → the correct solution; the majority is often wrong', () => {
    const debate = byKind(rows, 'debate');
    let majorityWrong = 0;
    let ownWrong = 0;
    let allWrong = 0;
    for (const r of debate) {
      if (!('prompt' in r)) throw new Error('debate rows are prompt/completion rows');
      const p = problems.find((q) => q.id === r.meta.problemId)!;
      expect(r.prompt.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
      expect(r.prompt[0]!.content).toBe(GSM8K_DEBATE_PROMPTS.system);
      expect(r.prompt[1]!.content).toBe(p.question);
      expect(r.completion).toEqual([{ role: 'assistant', content: p.answer }]);
      const turn = r.prompt[3]!.content;
      // Four peers, never the agent itself.
      const names = [...turn.matchAll(/^--- (agent\d) ---$/gm)].map((m) => m[1]);
      expect(names).toHaveLength(4);
      expect(new Set(names).size).toBe(4);
      // What the row says was shown matches the text.
      const shownFinals = [r.prompt[2]!.content, ...turn.split(/^--- agent\d ---$/m).slice(1)].map((t) =>
        Number(/#### (\d+)/.exec(t)![1]),
      );
      expect(shownFinals).toEqual(r.meta.shown);
      if (!r.meta.majorityCorrect) majorityWrong++;
      if (r.meta.shown![0] !== p.final) ownWrong++;
      if (!r.meta.shown!.includes(p.final)) allWrong++;
    }
    const n = debate.length;
    console.log(
      `debate rows: ${n}; own answer wrong ${((100 * ownWrong) / n).toFixed(0)}%, ` +
        `majority wrong ${((100 * majorityWrong) / n).toFixed(0)}%, all wrong ${((100 * allWrong) / n).toFixed(0)}%`,
    );
    expect(majorityWrong / n).toBeGreaterThan(0.2);
    expect(majorityWrong / n).toBeLessThan(0.55);
    expect(ownWrong / n).toBeGreaterThan(0.35);
    expect(ownWrong / n).toBeLessThan(0.65);
    expect(allWrong).toBeGreaterThan(0);
  });

  it('aggregator rows: the judge prompt over five final answers → "#### n" (or the solution)', () => {
    for (const r of byKind(rows, 'aggregator').slice(0, 50)) {
      if (!('messages' in r)) throw new Error('aggregator rows are messages rows');
      expect(r.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
      expect(r.messages[0]!.content).toBe(GSM8K_DEBATE_PROMPTS.aggregatorSystem);
      expect([...r.messages[1]!.content.matchAll(/^--- agent\d ---$/gm)]).toHaveLength(5);
      expect(r.messages[2]!.content).toBe(`#### ${r.meta.final}`);
    }
    const full = demoCorpus({
      seed: 4,
      problems: problems.slice(0, 20),
      mix: { single: 0, debate: 0, aggregator: 1 },
      aggregatorTarget: 'solution',
    });
    for (const r of full)
      expect(rowMessages(r).at(-1)!.content).toBe(problems.find((q) => q.id === r.meta.problemId)!.answer);
  });

  it('rows tokenize through the chat template with labels only on the trained assistant turn', () => {
    const imEnd = tok.tokenToId('<|im_end|>')!;
    const rowsFromJsonl = parseTrainingJsonl(toTrainingJsonl(rows.slice(0, 120)), 'demo.jsonl') as DemoRow[];
    expect(rowsFromJsonl).toEqual(rows.slice(0, 120));
    for (const r of rowsFromJsonl) {
      const ex = tokenizeRow(r, tok, { maxLength: 1024, vocabSize: 512 }, 'demo');
      // The whole row is the chat template's rendering.
      expect(tok.decode(ex.inputIds)).toBe(tok.applyChatTemplate(rowMessages(r), { addGenerationPrompt: false }));
      const labelled = ex.labels.filter((l) => l !== IGNORE_INDEX);
      const target = rowMessages(r).at(-1)!.content;
      expect(tok.decode(labelled)).toBe(`${target}<|im_end|>`);
      expect(labelled.at(-1)).toBe(imEnd);
      // One contiguous labelled span at the end (the '\n' after <|im_end|> is not trained).
      const first = ex.labels.findIndex((l) => l !== IGNORE_INDEX);
      expect(ex.labels.slice(first, first + labelled.length)).toEqual(labelled);
      expect(ex.labels.slice(first + labelled.length).every((l) => l === IGNORE_INDEX)).toBe(true);
      // In debate rows the (possibly wrong) earlier answer is context, not a target.
      if ('prompt' in r) expect(tok.decode(ex.inputIds.slice(0, first))).toContain(r.prompt[2]!.content);
    }
  });

  it('row lengths (debate.ts prompts and the compact proposal)', () => {
    const measure = (label: string, prompts: DebatePrompts, difficulty: 0 | 1 | 2) => {
      const ps = generateProblems({ seed: 5, count: 1500, difficulty, split: 'train' });
      const rs = demoCorpus({ seed: 5, problems: ps, prompts });
      const files = buildDemoTokenizer(rs.map(renderRow));
      const t = new HFTokenizer(files.tokenizerJson, files.tokenizerConfig);
      const out: Record<string, { mean: number; max: number; labelled: number }> = {};
      for (const kind of ['single', 'debate', 'aggregator']) {
        const ex = byKind(rs, kind)
          .slice(0, 300)
          .map((r) => tokenizeRow(r, t, { maxLength: 4096 }, kind));
        const lens = ex.map((e) => e.inputIds.length);
        const lab = ex.map((e) => e.labels.filter((l) => l !== IGNORE_INDEX).length);
        out[kind] = {
          mean: Math.round(lens.reduce((a, b) => a + b, 0) / lens.length),
          max: Math.max(...lens),
          labelled: Math.round(lab.reduce((a, b) => a + b, 0) / lab.length),
        };
      }
      console.log(
        `${label}, difficulty ${difficulty}, vocab ${files.size}: ${Object.entries(out)
          .map(([k, v]) => `${k} ${v.mean} (max ${v.max}, labelled ${v.labelled})`)
          .join('; ')}`,
      );
      return out;
    };
    const d0 = measure('debate.ts prompts', GSM8K_DEBATE_PROMPTS, 0);
    expect(d0.debate!.max).toBeLessThanOrEqual(512);
    expect(d0.aggregator!.max).toBeLessThanOrEqual(512);
    const compact = measure('compact prompts', COMPACT_DEBATE_PROMPTS, 0);
    expect(compact.debate!.mean).toBeLessThan(d0.debate!.mean);
    measure('compact prompts', COMPACT_DEBATE_PROMPTS, 1);
  });
});

describe('selfPlayRows', () => {
  it('rebuild the exact round-2 and judge prompts of a real debate from its round 1, labelled with the reference', async () => {
    const ps = generateProblems({ seed: 12, count: 6, difficulty: 0, split: 'train' });
    const rng = seededRandom(5);
    const P = COMPACT_DEBATE_PROMPTS;
    const records = [];
    for (const p of ps) {
      const answers = [
        correctAttempt(p),
        randomWrongAttempt(p, rng),
        correctAttempt(p),
        randomWrongAttempt(p, rng),
        correctAttempt(p),
      ];
      const engine = createFakeEngine({ reply: (_req, { call }) => answers[(call - 1) % answers.length]!.text });
      records.push(
        await runDebate(
          { id: p.id, question: p.question, answer: p.answer, task: 'gsm8k' },
          { numAgents: 5, rounds: 2, aggregator: 'vote', promptStyle: 'compact', seed: 1 },
          engine,
        ),
      );
    }
    const out = selfPlayRows(records, {
      seed: 3,
      prompts: P,
      debatePerQuestion: 3,
      aggregatorPerQuestion: 1,
      singlePerQuestion: 1,
    });
    expect(byKind(out, 'debate')).toHaveLength(18);
    expect(byKind(out, 'aggregator')).toHaveLength(6);
    expect(byKind(out, 'single')).toHaveLength(6);
    for (const r of out) {
      const rec = records.find((x) => x.id === r.meta.problemId)!;
      const p = ps.find((x) => x.id === r.meta.problemId)!;
      expect(r.meta.final).toBe(p.final);
      if (r.meta.kind === 'debate') {
        if (!('prompt' in r)) throw new Error('debate rows are prompt/completion rows');
        // The prompt is what that seat was sent in round 2; the loss covers the reference only.
        const seat = rec.rounds[1]!.messages.find(
          (m) => m.prompt[2]!.content === r.prompt[2]!.content && m.prompt[3]!.content === r.prompt[3]!.content,
        );
        expect(seat).toBeDefined();
        expect(r.prompt).toEqual(seat!.prompt);
        expect(r.completion).toEqual([{ role: 'assistant', content: p.answer }]);
      } else if (r.meta.kind === 'aggregator') {
        if (!('messages' in r)) throw new Error('aggregator rows are messages rows');
        expect(r.messages[1]!.content).toBe(
          P.aggregatorUser(
            p.question,
            rec.rounds[0]!.messages.map((m) => ({ name: m.agent, answer: m.completion })),
          ),
        );
        expect(r.messages[2]!.content).toBe(`#### ${p.final}`);
        expect(r.meta.majorityCorrect).toBe(true);
      } else {
        expect(rowMessages(r).map((m) => m.content)).toEqual([P.system, p.question, p.answer]);
      }
    }
    // Two seats of one question differ (no seat repeated).
    const seats = byKind(out, 'debate')
      .filter((r) => r.meta.problemId === ps[0]!.id)
      .map((r) => ('prompt' in r ? r.prompt[3]!.content : ''));
    expect(new Set(seats).size).toBe(3);
    expect(selfPlayRows(records, { seed: 3, prompts: P })).toEqual(selfPlayRows(records, { seed: 3, prompts: P }));
    // Sparse: the same seats and prompts as a debate run with quote 'answer'.
    const sparse = [];
    for (const p of ps) {
      const rec = records.find((x) => x.id === p.id)!;
      const replies = rec.rounds[0]!.messages.map((m) => m.completion);
      const engine = createFakeEngine({ reply: (_req, { call }) => replies[(call - 1) % replies.length]! });
      sparse.push(
        await runDebate(
          { id: p.id, question: p.question, answer: p.answer, task: 'gsm8k' },
          {
            numAgents: 5,
            rounds: 2,
            aggregator: 'vote',
            promptStyle: 'compact',
            quote: 'answer',
            restateQuestion: true,
            seed: 1,
          },
          engine,
        ),
      );
    }
    for (const r of byKind(
      selfPlayRows(sparse, { seed: 3, prompts: P, quote: 'answer', restateQuestion: true, debatePerQuestion: 5 }),
      'debate',
    )) {
      if (!('prompt' in r)) throw new Error('debate rows are prompt/completion rows');
      const rec = sparse.find((x) => x.id === r.meta.problemId)!;
      expect(rec.rounds[1]!.messages.some((m) => JSON.stringify(m.prompt) === JSON.stringify(r.prompt))).toBe(true);
      expect(r.prompt[3]!.content).not.toContain(' = ');
      expect(r.prompt[3]!.content).toContain(`Question: ${rec.question}`);
    }
  });

  it('names a record without a usable round 1 or reference', () => {
    const rec = {
      id: 'q7',
      question: 'x',
      reference: 'no final line',
      rounds: [
        {
          messages: [
            { completion: 'a', extracted: '1' },
            { completion: 'b', extracted: '2' },
          ],
        },
      ],
    };
    expect(() => selfPlayRows([rec], { seed: 1 })).toThrow(/q7.*#### n/);
    expect(() => selfPlayRows([{ ...rec, rounds: [] }], { seed: 1 })).toThrow(/q7.*round 1/);
  });
});

describe('question sets', () => {
  it('writes disjoint train/test GSM8K JSONL that loadQuestions reads and the grader scores', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-sets-'));
    try {
      const out = await writeQuestionSets(dir, { seed: 3, difficulty: 1, trainCount: 300, testCount: 60 });
      expect(out).toMatchObject({ trainPath: path.join(dir, 'train.jsonl'), testPath: path.join(dir, 'test.jsonl') });
      const train = await loadQuestions(out.trainPath, 'gsm8k');
      const test = await loadQuestions(out.testPath, 'gsm8k');
      expect(train).toHaveLength(300);
      expect(test).toHaveLength(60);
      test.forEach((q, i) => {
        expect(q.question).toBe(out.test[i]!.question);
        expect(referenceAnswer('gsm8k', q.answer)).toBe(String(out.test[i]!.final));
      });
      const trainKeys = new Set(out.train.map((p) => canonicalStructure(p.steps)));
      expect(out.test.some((p) => trainKeys.has(canonicalStructure(p.steps)))).toBe(false);
      expect(new Set([...train, ...test].map((q) => q.id)).size).toBe(360);
      expect(demoQuestionSets({ seed: 3, difficulty: 1, trainCount: 300, testCount: 60 })).toEqual({
        train: out.train,
        test: out.test,
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
