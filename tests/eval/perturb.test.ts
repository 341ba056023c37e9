/** The perturbations' guarantees, checked on every question of GSM8K's real test set and on structured problems. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { referenceAnswer } from '../../src/tasks/answers';
import {
  DISTRACTOR_SENTENCES,
  FEMALE_NAMES,
  MALE_NAMES,
  addDistractor,
  applyNames,
  checkStructure,
  evaluateFormula,
  insertBeforeLastSentence,
  perturbQuestion,
  renameAndRescale,
  renderTemplate,
  structureFromSteps,
  type ArithmeticStep,
  type PerturbableQuestion,
} from '../../src/eval/perturb';
import { generateProblems } from '../../src/demo/problems';
import { parseQuestions, type Question } from '../../src/tasks/datasets';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const gsm8k = parseQuestions(
  readFileSync(path.resolve(repoRoot, 'public/data/gsm8k/test.jsonl'), 'utf8'),
  'gsm8k',
  'test.jsonl',
);
const digits = (s: string) => s.match(/\d+(?:[.,]\d+)*/g) ?? [];
const content = (s: string) =>
  new Set(
    (s.toLowerCase().match(/\p{L}{4,}/gu) ?? []).filter(
      (w) =>
        !['that', 'this', 'with', 'from', 'have', 'into', 'their', 'there', 'nearby', 'across', 'through'].includes(w),
    ),
  );

describe('distractor sentence', () => {
  it('on all 1,319 GSM8K test questions: only one unrelated sentence is added, before the asking sentence', () => {
    for (const q of gsm8k) {
      const p = addDistractor(q, 0);
      expect(p.changed).toBe(true);
      expect(DISTRACTOR_SENTENCES).toContain(p.sentence);
      const t = p.question.question;
      // Removing the sentence (and the space after it) restores the original exactly.
      const at = t.indexOf(p.sentence!);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(t.slice(0, at) + t.slice(at + p.sentence!.length + 1)).toBe(q.question);
      // It shares no content word with the question.
      const words = content(q.question);
      expect([...content(p.sentence!)].filter((w) => words.has(w))).toEqual([]);
      // The reference is untouched and the question still ends with the original asking sentence.
      expect(p.question.answer).toBe(q.answer);
      expect(p.question.id).toBe(`${q.id}~distractor`);
      // What follows the sentence is one sentence (the asking one): no sentence boundary in it.
      const rest = t.slice(at + p.sentence!.length + 1).trimEnd();
      if (!/(?:^|\s)(?:Mr|Mrs|Ms|Dr|St)\.\s/.test(rest)) expect(rest).not.toMatch(/[.!?]["'”’)]?\s+["'“(]?[A-Z0-9]/);
    }
  });

  it('is deterministic per seed and varies with it', () => {
    const q = gsm8k[0]!;
    expect(addDistractor(q, 7)).toEqual(addDistractor(q, 7));
    const picked = new Set(Array.from({ length: 20 }, (_, s) => addDistractor(q, s).sentence));
    expect(picked.size).toBeGreaterThan(1);
  });

  it('places the sentence correctly around abbreviations, single sentences and multiple-choice options', () => {
    expect(insertBeforeLastSentence('Mr. Lee has 3 cats. How many legs do they have?', 'X.')).toBe(
      'Mr. Lee has 3 cats. X. How many legs do they have?',
    );
    expect(insertBeforeLastSentence('How many legs do 3 cats have?', 'X.')).toBe('X. How many legs do 3 cats have?');
    expect(insertBeforeLastSentence('It costs $2.50 each. How much for 4?', 'X.')).toBe(
      'It costs $2.50 each. X. How much for 4?',
    );
    expect(insertBeforeLastSentence('Pick one. Which is a prime?\n\nA. 4\nB. 7', 'X.')).toBe(
      'Pick one. X. Which is a prime?\n\nA. 4\nB. 7',
    );
  });
});

describe('renaming (free text)', () => {
  it('on all GSM8K test questions: names replaced consistently within gender, numbers and answer untouched', () => {
    let changed = 0;
    for (const q of gsm8k) {
      const p = renameAndRescale(q, 0);
      const t = p.question.question;
      expect(p.scale).toBeNull();
      expect(p.answerRecomputed).toBe(false);
      expect(digits(t)).toEqual(digits(q.question));
      expect(referenceAnswer('gsm8k', p.question.answer)).toBe(referenceAnswer('gsm8k', q.answer));
      if (!p.changed) {
        expect(t).toBe(q.question);
        expect(p.names).toEqual([]);
        continue;
      }
      changed++;
      expect(p.names!.length).toBeGreaterThan(0);
      for (const { from, to } of p.names!) {
        expect(FEMALE_NAMES.includes(from)).toBe(FEMALE_NAMES.includes(to));
        expect(MALE_NAMES.includes(from)).toBe(MALE_NAMES.includes(to));
        expect(new RegExp(`\\b${from}\\b`).test(t)).toBe(false);
        expect(new RegExp(`\\b${to}\\b`, 'i').test(q.question)).toBe(false);
      }
      // The mapping is a bijection on the text: mapping back restores the original.
      expect(
        applyNames(
          t,
          p.names!.map(({ from, to }) => ({ from: to, to: from })),
        ),
      ).toBe(q.question);
      expect(
        applyNames(
          p.question.answer,
          p.names!.map(({ from, to }) => ({ from: to, to: from })),
        ),
      ).toBe(q.answer);
    }
    expect(changed).toBeGreaterThan(500);
  });

  it('first question: Janet becomes another woman in question and reference', () => {
    const p = renameAndRescale(gsm8k[0]!, 0);
    expect(p.names).toHaveLength(1);
    expect(p.names![0]!.from).toBe('Janet');
    expect(FEMALE_NAMES).toContain(p.names![0]!.to);
    expect(p.question.question.startsWith(`${p.names![0]!.to}’s ducks`)).toBe(true);
  });

  it('applies mappings simultaneously', () => {
    expect(
      applyNames('Ann met Bob; Bob met Ann.', [
        { from: 'Ann', to: 'Bob' },
        { from: 'Bob', to: 'Ann' },
      ]),
    ).toBe('Bob met Ann; Ann met Bob.');
  });
});

describe('structured problems: numbers scaled, answer recomputed', () => {
  const apples: PerturbableQuestion = {
    id: 's1',
    task: 'gsm8k',
    question: 'Janet has 3 apples and buys 4 more. How many apples does Janet have now?',
    answer: '#### 7',
    structure: {
      template: '{p} has {x} apples and buys {y} more. How many apples does {p} have now?',
      names: { p: 'Janet' },
      numbers: { x: 3, y: 4 },
      answer: 'x + y',
    },
  };

  it('scales every number by one factor and recomputes the reference from the formula', () => {
    const p = renameAndRescale(apples, 0);
    expect(p.changed).toBe(true);
    expect(p.answerRecomputed).toBe(true);
    const k = p.scale!;
    expect([2, 3, 4, 5, 10]).toContain(k);
    const to = p.names![0]!.to;
    expect(p.question.question).toBe(
      `${to} has ${3 * k} apples and buys ${4 * k} more. How many apples does ${to} have now?`,
    );
    expect(p.question.answer).toBe(`#### ${7 * k}`);
    expect(p.question).not.toHaveProperty('structure');
  });

  it('keeps fixed numbers, and never produces non-integer answers for gsm8k', () => {
    const week: PerturbableQuestion = {
      id: 's2',
      task: 'gsm8k',
      question: 'A shop sells 5 cakes a day. How many cakes does it sell in 7 days?',
      answer: '#### 35',
      structure: {
        template: 'A shop sells {x} cakes a day. How many cakes does it sell in {d} days?',
        numbers: { x: 5, d: 7 },
        answer: 'x * d',
        fixed: ['d'],
      },
    };
    const p = renameAndRescale(week, 3);
    expect(p.question.question).toBe(
      `A shop sells ${5 * p.scale!} cakes a day. How many cakes does it sell in 7 days?`,
    );
    expect(p.question.answer).toBe(`#### ${35 * p.scale!}`);
    // 10 / 4 = 2.5; any common factor keeps 2.5, so no factor gives an integer: numbers kept.
    const ratio: PerturbableQuestion = {
      id: 's3',
      task: 'gsm8k',
      question: 'Split 10 liters into 4 jugs equally. How many liters per jug?',
      answer: '#### 2.5',
      structure: {
        template: 'Split {a} liters into {b} jugs equally. How many liters per jug?',
        numbers: { a: 10, b: 4 },
        answer: 'a / b',
      },
    };
    const r = renameAndRescale(ratio, 0);
    expect(r.scale).toBeNull();
    expect(r.changed).toBe(false);
    expect(r.question.answer).toBe('#### 2.5');
  });

  it('ignores a structure that does not describe its question', () => {
    const wrongText = {
      ...apples,
      question: 'Janet has 3 apples and buys 5 more. How many apples does Janet have now?',
      answer: '#### 8',
    };
    expect(checkStructure(wrongText)).toMatch(/does not reproduce the question/);
    const p = renameAndRescale(wrongText, 0);
    expect(p.structureIgnored).toMatch(/does not reproduce the question/);
    expect(p.scale).toBeNull();
    expect(p.question.answer).toBe(`#### 8`);
    const wrongFormula = { ...apples, structure: { ...apples.structure!, answer: 'x * y' } };
    expect(checkStructure(wrongFormula)).toMatch(/does not reproduce the reference/);
    expect(renameAndRescale(wrongFormula, 0).scale).toBeNull();
    expect(checkStructure(apples)).toBeNull();
  });

  it('formulas: precedence, parentheses, unary minus, intermediates; nothing but arithmetic', () => {
    expect(evaluateFormula('a + b * c', { a: 1, b: 2, c: 3 })).toEqual({ value: 7, intermediates: [6, 7] });
    expect(evaluateFormula('(a + b) * c', { a: 1, b: 2, c: 3 }).value).toBe(9);
    expect(evaluateFormula('a - -b / 2', { a: 1, b: 4 }).value).toBe(3);
    expect(evaluateFormula('a × 3 ÷ 2', { a: 4 }).value).toBe(6);
    expect(() => evaluateFormula('process.exit(1)', {})).toThrow(/unknown name process/);
    expect(() => evaluateFormula('a +', { a: 1 })).toThrow(/unexpected end/);
    expect(() => evaluateFormula('constructor', {})).toThrow(/unknown name/);
    expect(renderTemplate(apples.structure!, { x: 30, y: 40 })).toBe(
      'Janet has 30 apples and buys 40 more. How many apples does Janet have now?',
    );
  });

  it('perturbQuestion gives both perturbations', () => {
    const q: Question = gsm8k[2]!;
    const p = perturbQuestion(q, 1);
    expect(p.distractor.kind).toBe('distractor');
    expect(p.rename.kind).toBe('rename');
    expect(p.rename.question.id).toBe(`${q.id}~rename`);
  });
});

describe("structures from the demo generator's steps", () => {
  const run = (steps: readonly ArithmeticStep[], k: number) => {
    const vals: number[] = [];
    for (const st of steps) {
      const a = st.aFrom !== undefined ? vals[st.aFrom]! : st.a * k;
      const b = st.bFrom !== undefined ? vals[st.bFrom]! : st.b * k;
      vals.push(st.op === '+' ? a + b : st.op === '-' ? a - b : a * b);
    }
    return vals;
  };

  it('every generated problem: structure derived and verified; scaled numbers; answer = the steps re-executed', () => {
    let scaled = 0;
    for (const difficulty of [0, 1, 2] as const) {
      for (const p of generateProblems({ seed: 3, count: 150, difficulty, split: 'test' })) {
        const q: PerturbableQuestion = {
          id: p.id,
          question: p.question,
          answer: p.answer,
          task: 'gsm8k',
          steps: p.steps,
        };
        const s = structureFromSteps(p.question, p.steps);
        expect(s, p.question).not.toBeNull();
        expect(checkStructure({ ...q, structure: s! })).toBeNull();
        const r = renameAndRescale(q, 0);
        expect(r.structureIgnored).toBeUndefined();
        expect(r.question).not.toHaveProperty('steps');
        if (r.scale === null) continue;
        scaled++;
        const k = r.scale!;
        expect(digits(r.question.question).map(Number)).toEqual(digits(p.question).map((d) => Number(d) * k));
        const vals = run(p.steps, k);
        expect(vals.every((v) => v >= 0)).toBe(true);
        expect(r.question.answer).toBe(`#### ${vals[vals.length - 1]}`);
        expect(r.answerRecomputed).toBe(true);
      }
    }
    expect(scaled).toBeGreaterThan(400);
  });

  it('gives up when the steps do not account for the question', () => {
    const steps: ArithmeticStep[] = [{ op: '+', a: 3, b: 4, result: 7 }];
    expect(structureFromSteps('Tom has 3 apples and buys 4 more.', steps)).toEqual({
      template: 'Tom has {n0} apples and buys {n1} more.',
      numbers: { n0: 3, n1: 4 },
      answer: '(n0 + n1)',
    });
    expect(structureFromSteps('On day 2 Tom has 3 apples and buys 4 more.', steps)).toBeNull(); // 2 is used by no step
    expect(structureFromSteps('Tom has 3 apples and buys 5 more.', steps)).toBeNull(); // 4 is not in the question
    expect(structureFromSteps('Tom has 3.5 kg and buys 4 more.', [{ op: '+', a: 3.5, b: 4, result: 7.5 }])).toBeNull();
    expect(structureFromSteps('Tom has 3 apples.', [{ op: '+', a: 3, b: 3, result: 6, aFrom: 5 }])).toBeNull();
    // A number used twice (the demo's "together" questions).
    expect(
      structureFromSteps('Ann has 4. Bo has 2 more than Ann. How many together?', [
        { op: '+', a: 4, b: 2, result: 6 },
        { op: '+', a: 4, b: 6, result: 10, bFrom: 0 },
      ]),
    ).toMatchObject({ answer: '(n0 + (n0 + n1))' });
  });
});
