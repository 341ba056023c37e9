/**
 * The distillation builders on real data: GSM8K's example_model_solutions.jsonl (1,319 problems,
 * four real model solutions each, with is_correct labels) imported as one-round trajectories.
 * Checks are made against the raw file (its labels and texts), not against the builders' own
 * bookkeeping.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { answersEqual, extractAnswer, grade } from '../../src/tasks/answers';
import {
  cleanReasoning,
  jaccard,
  normalizeText,
  toJsonl,
  wordNgrams,
  type MessagesRow,
  type StepwiseRow,
} from '../../src/distill/common';
import { studentSystemPrompt } from '../../src/tasks/prompts';
import { buildDa } from '../../src/distill/da';
import { importedToTrajectories } from '../../src/distill/from-imported';
import { buildPad, splitSteps } from '../../src/distill/pad-labels';
import { buildRsft } from '../../src/distill/rsft';
import { importExampleModelSolutions } from '../../src/teach/importers';
import { parseTrajectoryLine, type TrajectoryRecord } from '../../src/teach/trajectory';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = path.resolve(repoRoot, 'public/data/gsm8k');
const text = readFileSync(path.join(dataDir, 'example_model_solutions.jsonl'), 'utf8');

interface RawSolution {
  is_correct: boolean;
  solution: string;
}
type RawRow = { question: string; ground_truth: string } & Record<string, unknown>;
const raw: RawRow[] = text
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as RawRow);
const solutionsOf = (row: RawRow) =>
  Object.entries(row).filter((e): e is [string, RawSolution] => typeof e[1] === 'object' && e[1] !== null);
const rawById = new Map(raw.map((r, i) => [`example_model_solutions.jsonl#${i + 1}`, r]));

let records: TrajectoryRecord[];
let labelDisagreements: number;
beforeAll(() => {
  const r = importedToTrajectories(importExampleModelSolutions(text), { createdAt: '2025-01-01T00:00:00.000Z' });
  records = r.records;
  labelDisagreements = r.labelDisagreements.length;
});

describe('example_model_solutions.jsonl as trajectories', () => {
  it('gives one valid one-round record of four graded agents and a vote per problem', () => {
    expect(records).toHaveLength(1319);
    for (const rec of records) {
      expect(() => parseTrajectoryLine(JSON.stringify(rec), 1)).not.toThrow();
      const row = rawById.get(rec.id)!;
      expect(rec.question).toBe(row.question);
      expect(rec.rounds).toHaveLength(1);
      expect(rec.rounds[0]!.messages.map((m) => m.agent)).toEqual(solutionsOf(row).map(([k]) => k));
      expect(rec.aggregator.kind).toBe('vote');
      expect(rec.config).toMatchObject({ agents: 4, rounds: 1, aggregator: 'vote' });
    }
    // Re-grading with answers.ts agrees with the file's labels on every solution.
    expect(labelDisagreements).toBe(0);
    const labelled = records.flatMap((r) =>
      r.rounds[0]!.messages.map((m) => (rawById.get(r.id)![m.agent] as RawSolution).is_correct === m.correct),
    );
    expect(labelled.every(Boolean)).toBe(true);
  });
});

describe('R-SFT on real data', () => {
  it('keeps exactly the problems with a correct solution, and only reasoning graded correct', () => {
    const { rows, stats } = buildRsft(records);
    const solvable = raw.filter((r) => solutionsOf(r).some(([, s]) => s.is_correct)).length;
    expect(solvable).toBeGreaterThan(800);
    expect(rows).toHaveLength(solvable);
    expect(stats).toMatchObject({
      questions: 1319,
      rows: solvable,
      skipped: { 'no-correct-final-reasoning': 1319 - solvable },
    });
    for (const r of rows as MessagesRow[]) {
      const row = rawById.get(r.id)!;
      // TRL conversational format, exactly.
      expect(Object.keys(r).sort()).toEqual(['id', 'messages', 'source']);
      expect(r.source).toBe('rsft');
      expect(r.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
      expect(
        r.messages.every((m) => Object.keys(m).sort().join() === 'content,role' && typeof m.content === 'string'),
      ).toBe(true);
      expect(r.messages[0]!.content).toBe(studentSystemPrompt('gsm8k'));
      expect(r.messages[1]!.content).toBe(row.question.trim());
      const content = r.messages[2]!.content;
      // Re-grade the assistant content against the reference.
      expect(grade('gsm8k', content, row.ground_truth).correct).toBe(true);
      // Ends with the parseable answer line the prompt asks for; no calculator annotations.
      expect(content.split('\n').pop()).toMatch(/^#### -?\d+(\.\d+)?$/);
      expect(content).not.toMatch(/<<|>>/);
      // It is the shortest correct solution (labels from the file), cleaned.
      const correct = solutionsOf(row)
        .filter(([, s]) => s.is_correct)
        .map(([, s]) => s.solution);
      const shortest = correct.reduce((a, b) => (b.trim().length < a.trim().length ? b : a));
      expect(content).toBe(cleanReasoning('gsm8k', shortest));
    }
  });

  it('rows survive a JSONL round trip unchanged', () => {
    const { rows } = buildRsft(records.slice(0, 50));
    const back = toJsonl(rows)
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(back).toEqual(rows);
  });
});

describe('DA on real data', () => {
  for (const k of [1, 2, 4]) {
    it(`K=${k}: at most K paths per question, pairwise distinct under both dedup rules, all graded correct`, () => {
      const { rows, stats } = buildDa(records, { perQuestion: k });
      const byQ = new Map<string, string[]>();
      for (const r of rows as MessagesRow[]) {
        expect(Object.keys(r).sort()).toEqual(['id', 'messages', 'source']);
        expect(r.source).toBe('da');
        expect(r.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant']);
        const qid = r.id.replace(/#da\d+$/, '');
        const row = rawById.get(qid)!;
        expect(row).toBeDefined();
        expect(r.messages[1]!.content).toBe(row.question.trim());
        const content = r.messages[2]!.content;
        expect(grade('gsm8k', content, row.ground_truth).correct).toBe(true);
        byQ.set(qid, [...(byQ.get(qid) ?? []), content]);
      }
      let pairs = 0;
      for (const paths of byQ.values()) {
        expect(paths.length).toBeLessThanOrEqual(k);
        for (let i = 0; i < paths.length; i++) {
          for (let j = i + 1; j < paths.length; j++) {
            pairs++;
            expect(normalizeText(paths[i]!)).not.toBe(normalizeText(paths[j]!));
            expect(jaccard(wordNgrams(paths[i]!), wordNgrams(paths[j]!))).toBeLessThan(0.7);
          }
        }
      }
      // Every problem with a correct solution contributes at least one path.
      const solvable = raw.filter((r) => solutionsOf(r).some(([, s]) => s.is_correct)).length;
      expect(byQ.size).toBe(solvable);
      if (k === 1) expect(rows).toHaveLength(solvable);
      if (k > 1) {
        expect(pairs).toBeGreaterThan(100);
        // Near-duplicates exist in the real data and were removed.
        expect(stats.skipped['duplicate-path']).toBeGreaterThan(0);
      }
      expect(stats.rows).toBe(rows.length);
    });
  }

  it('one-round imports give no self-correction examples', () => {
    const { rows } = buildDa(records, { perQuestion: 4 });
    expect((rows as MessagesRow[]).some((r) => r.source === 'da-selfcorrect')).toBe(false);
  });
});

describe('PAD labels on real data', () => {
  let rows: StepwiseRow[];
  beforeAll(() => {
    rows = buildPad(records).rows;
  });

  /** Majority vote over the solutions' answers, ties → earliest (computed here, independently). */
  function vote(answers: (string | null)[]): string | null {
    const groups: { a: string; n: number }[] = [];
    for (const a of answers) {
      if (a === null) continue;
      const g = groups.find((x) => answersEqual('gsm8k', x.a, a));
      if (g) g.n++;
      else groups.push({ a, n: 1 });
    }
    let best: { a: string; n: number } | null = null;
    for (const g of groups) if (!best || g.n > best.n) best = g;
    return best?.a ?? null;
  }

  it('rows have exactly the TRL stepwise-supervision columns (+ provenance) with the right types', () => {
    expect(rows.length).toBeGreaterThan(5000);
    for (const r of rows) {
      expect(Object.keys(r).sort()).toEqual(['agent', 'completions', 'id', 'labels', 'prompt', 'round', 'survived']);
      expect(typeof r.prompt).toBe('string');
      expect(Array.isArray(r.completions) && r.completions.every((c) => typeof c === 'string' && c.length > 0)).toBe(
        true,
      );
      expect(Array.isArray(r.labels) && r.labels.every((l) => typeof l === 'boolean')).toBe(true);
      expect(r.labels.length).toBe(r.completions.length);
      expect(r.completions.length).toBeGreaterThan(0);
      expect(typeof r.id).toBe('string');
      expect(typeof r.agent).toBe('string');
      expect(r.round).toBe(1);
      expect(typeof r.survived).toBe('boolean');
    }
  });

  it('correct solution → all steps true; wrong solution → last step false; survived = answer equals the vote', () => {
    let wrong = 0;
    let mixed = 0;
    for (const r of rows) {
      const row = rawById.get(r.id)!;
      const sol = row[r.agent] as RawSolution;
      expect(r.prompt).toBe(row.question.trim());
      // Steps are the solution's lines (these solutions have no blank lines), annotations removed.
      expect(r.completions.length).toBe(splitSteps(sol.solution).length);
      if (sol.is_correct) {
        expect(r.labels.every((l) => l)).toBe(true);
      } else {
        wrong++;
        expect(r.labels[r.labels.length - 1]).toBe(false);
        if (r.labels.some((l) => l)) mixed++;
      }
      const answers = solutionsOf(row).map(([, s]) => extractAnswer('gsm8k', s.solution));
      expect(r.survived).toBe(answersEqual('gsm8k', extractAnswer('gsm8k', sol.solution), vote(answers)));
    }
    expect(wrong).toBeGreaterThan(3000);
    // The heuristic gives partial credit to a good share of wrong solutions.
    expect(mixed).toBeGreaterThan(500);
  });

  it('a step of a wrong solution that occurs in a correct solution is labelled true (unless last)', () => {
    let checked = 0;
    for (const r of rows) {
      const row = rawById.get(r.id)!;
      if ((row[r.agent] as RawSolution).is_correct) continue;
      const goodSteps = new Set(
        [
          row.ground_truth,
          ...solutionsOf(row)
            .filter(([, s]) => s.is_correct)
            .map(([, s]) => s.solution),
        ].flatMap((t) => splitSteps(t).map(normalizeText)),
      );
      r.completions.forEach((c, i) => {
        if (i === r.completions.length - 1) return;
        if (goodSteps.has(normalizeText(c))) {
          checked++;
          expect(r.labels[i]).toBe(true);
        }
      });
    }
    expect(checked).toBeGreaterThan(50);
  });

  it('labels the first problem as worked out by hand', () => {
    const q1 = rows.filter((r) => r.id === 'example_model_solutions.jsonl#1');
    const by = Object.fromEntries(q1.map((r) => [r.agent, r]));
    // 3 + 4 = 7 eggs used is right; 16 * 7 = 112 is not a number of any correct solution.
    expect(by['6b_verification']!.labels).toEqual([true, false, false, false, false]);
    expect(by['175b_verification']!.labels).toEqual([true, true, true, true]);
    expect(by['175b_verification']!.completions[1]).toBe(
      "Each day Janet's ducks lay 16 eggs and she uses 7, 16 - 7 = 9 duck eggs are for sale",
    );
    // Four different answers: the vote's tie goes to the first solver (26).
    expect(q1.map((r) => [r.agent, r.survived])).toEqual([
      ['6b_finetuning', true],
      ['6b_verification', false],
      ['175b_finetuning', false],
      ['175b_verification', false],
    ]);
  });
});
