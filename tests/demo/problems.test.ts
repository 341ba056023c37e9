import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  EXPRESSION_RE,
  MAX_VALUE,
  TEMPLATES,
  apply,
  canonicalStructure,
  generateProblems,
  splitOf,
  toGsm8kJsonl,
  writeGsm8kJsonl,
  type Difficulty,
  type Problem,
} from '../../src/demo/problems';
import { extractAnswer, grade, referenceAnswer } from '../../src/tasks/answers';
import { loadQuestions, parseQuestions } from '../../src/tasks/datasets';

const DIFFICULTIES: Difficulty[] = [0, 1, 2];

/** Recomputes every step from the ones it refers to and checks the solution text says the same. */
function checkConsistent(p: Problem): void {
  const lines = p.answer.split('\n');
  expect(lines.length).toBe(p.steps.length + 1);
  expect(lines[lines.length - 1]).toBe(`#### ${p.final}`);
  p.steps.forEach((s, i) => {
    if (s.aFrom !== undefined) {
      expect(s.aFrom).toBeLessThan(i);
      expect(s.a).toBe(p.steps[s.aFrom]!.result);
    }
    if (s.bFrom !== undefined) {
      expect(s.bFrom).toBeLessThan(i);
      expect(s.b).toBe(p.steps[s.bFrom]!.result);
    }
    expect(s.result).toBe(apply(s.op, s.a, s.b));
    expect(s.result).toBeGreaterThanOrEqual(0);
    expect(s.result).toBeLessThanOrEqual(MAX_VALUE);
    // Numbers taken from the question are single digits, and appear in it.
    for (const [v, from] of [
      [s.a, s.aFrom],
      [s.b, s.bFrom],
    ] as const) {
      if (from === undefined) {
        expect(v).toBeGreaterThanOrEqual(1);
        expect(v).toBeLessThanOrEqual(9);
        expect(p.question).toMatch(new RegExp(`\\b${v}\\b`));
      }
    }
    const m = EXPRESSION_RE.exec(lines[i]!);
    expect(m, lines[i]).not.toBeNull();
    expect([Number(m![1]), m![2], Number(m![3]), Number(m![4])]).toEqual([s.a, s.op, s.b, s.result]);
  });
  expect(p.final).toBe(p.steps[p.steps.length - 1]!.result);
}

describe('generateProblems', () => {
  it('is deterministic by seed, and different seeds give different problems', () => {
    const a = generateProblems({ seed: 7, count: 50, difficulty: 1, split: 'train' });
    const b = generateProblems({ seed: 7, count: 50, difficulty: 1, split: 'train' });
    const c = generateProblems({ seed: 8, count: 50, difficulty: 1, split: 'train' });
    expect(b).toEqual(a);
    expect(c.map((p) => p.question)).not.toEqual(a.map((p) => p.question));
    // A longer run starts with the shorter one.
    expect(generateProblems({ seed: 7, count: 80, difficulty: 1, split: 'train' }).slice(0, 50)).toEqual(a);
  });

  for (const difficulty of DIFFICULTIES) {
    it(`difficulty ${difficulty}: steps, operations and answers are consistent and graded correct`, () => {
      const problems = generateProblems({ seed: 3, count: 400, difficulty, split: 'train' });
      expect(new Set(problems.map((p) => p.id)).size).toBe(400);
      expect(new Set(problems.map((p) => p.question)).size).toBe(400);
      const templates = new Set<string>();
      const stepCounts = new Set<number>();
      let multiplications = 0;
      for (const p of problems) {
        checkConsistent(p);
        expect(p.difficulty).toBe(difficulty);
        templates.add(p.template);
        stepCounts.add(p.steps.length);
        if (p.steps.some((s) => s.op === '*')) multiplications++;
        // The pipeline's grader reads the final answer from the solution, and from a model answer.
        expect(referenceAnswer('gsm8k', p.answer)).toBe(String(p.final));
        expect(grade('gsm8k', p.answer, p.answer).correct).toBe(true);
        expect(extractAnswer('gsm8k', `blah\n#### ${p.final}`)).toBe(String(p.final));
        expect(p.question).toMatch(/\?$/);
      }
      expect(templates.size).toBeGreaterThanOrEqual(6);
      expect([...templates].every((t) => (TEMPLATES as readonly string[]).includes(t))).toBe(true);
      if (difficulty === 0) {
        expect([...stepCounts]).toEqual([2]);
        expect(multiplications).toBe(0);
      } else if (difficulty === 1) {
        expect([...stepCounts].sort()).toEqual([2, 3]);
        expect(multiplications).toBeGreaterThan(40);
      } else {
        expect([...stepCounts].sort()).toEqual([3, 4]);
        expect(multiplications).toBeGreaterThan(40);
      }
    });
  }

  it('train and test never share a problem (by arithmetic structure), whatever the seeds', () => {
    for (const difficulty of DIFFICULTIES) {
      const train = generateProblems({ seed: 1, count: 1500, difficulty, split: 'train' });
      const test = generateProblems({ seed: 2, count: 300, difficulty, split: 'test' });
      const trainKeys = new Set(train.map((p) => canonicalStructure(p.steps)));
      const trainQuestions = new Set(train.map((p) => p.question));
      for (const p of test) {
        expect(splitOf(p.steps)).toBe('test');
        expect(trainKeys.has(canonicalStructure(p.steps))).toBe(false);
        expect(trainQuestions.has(p.question)).toBe(false);
      }
      for (const p of train) expect(splitOf(p.steps)).toBe('train');
    }
  });

  it('the split hash sends roughly testFraction of the structures to test', () => {
    const drawn = generateProblems({ seed: 5, count: 2000, difficulty: 0, split: 'train', testFraction: 0.5 });
    const other = drawn.map((p) => splitOf(p.steps, 0.2));
    const share = other.filter((s) => s === 'test').length / other.length;
    // The buckets nest: a structure in the 20% test set is also in the 50% one, so no 50%-train problem is in it.
    expect(share).toBe(0);
    const all = generateProblems({ seed: 5, count: 2000, difficulty: 0, split: 'train', testFraction: 0.01 });
    const frac = all.filter((p) => splitOf(p.steps, 0.2) === 'test').length / all.length;
    expect(frac).toBeGreaterThan(0.1);
    expect(frac).toBeLessThan(0.3);
  });

  it('rejects bad options', () => {
    expect(() => generateProblems({ seed: 1, count: 1, difficulty: 3 as Difficulty, split: 'train' })).toThrow(
      /difficulty/,
    );
    expect(() => generateProblems({ seed: 1, count: 1, split: 'dev' as 'train' })).toThrow(/split/);
    expect(() => generateProblems({ seed: 1, count: 1, split: 'test', testFraction: 0 })).toThrow(/testFraction/);
  });
});

describe('GSM8K JSONL', () => {
  it('is read back by loadQuestions with the same questions and references', async () => {
    const problems = generateProblems({ seed: 11, count: 25, difficulty: 2, split: 'test' });
    const text = toGsm8kJsonl(problems);
    expect(text.trim().split('\n')).toHaveLength(25);
    const parsed = parseQuestions(text, 'gsm8k', 'test.jsonl');
    expect(parsed.map((q) => q.id)).toEqual(problems.map((p) => p.id));
    expect(parsed.map((q) => q.question)).toEqual(problems.map((p) => p.question));
    parsed.forEach((q, i) => expect(referenceAnswer('gsm8k', q.answer)).toBe(String(problems[i]!.final)));

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-problems-'));
    try {
      const file = path.join(dir, 'nested', 'test.jsonl');
      await writeGsm8kJsonl(file, problems);
      const loaded = await loadQuestions(file, 'gsm8k');
      expect(loaded).toEqual(parsed.map((q) => ({ ...q })));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
