/**
 * PAD step labels (process supervision from the debate): every agent solution of every round
 * becomes one TRL stepwise-supervision row `{prompt, completions, labels, id, agent, round,
 * survived}` — exactly the columns of TRL's PRM datasets (prompt, completions, labels) plus
 * provenance (`id` is the question id; (id, agent, round) identifies the solution).
 *
 * Steps: the solution split on blank lines, or on single newlines when it has no blank line;
 * empty steps dropped. Calculator annotations are removed from the emitted step text (option).
 *
 * Labels — a heuristic, since only final answers are graded:
 *   - a solution whose final answer re-grades correct: every step true;
 *   - a wrong (or unparsable) solution: the reference solution and every correct solution of the
 *     same question (any agent, any round, and a correct LLM aggregator output) form the
 *     evidence. Let C be every number occurring in the evidence or in the question and S the set
 *     of normalised evidence steps (`normalizeText`). A step is *consistent* when its normalised
 *     text is in S, or every intermediate number it produces is in C: the results of its
 *     calculations (the number after each "=" and each `<<a=b>>` result), or, when it has no
 *     "=", every number it mentions that is not in the question. Steps before the first
 *     inconsistent step are true, that step and the later ones false; then two overrides: a step
 *     whose normalised text appears in S is always true (it literally occurs in a correct
 *     solution), and the last step is always false (it states the wrong answer) — the last-step
 *     rule wins when both apply.
 *   Numbers are compared by value, signs ignored.
 *
 * `survived`: the solution's extracted answer equals the debate's final answer (false when
 * either is missing).
 */
import { answersEqual, extractAnswer, type Task } from '../tasks/answers';
import { formatQuestion } from '../tasks/prompts';
import type { TrajectoryRecord } from '../teach/trajectory';
import { Tally, isCorrect, normalizeText, recordReference, stripCalculator, type StepwiseRow } from './common';

export interface PadOptions {
  /** Remove GSM8K calculator annotations from the emitted steps (default true). */
  stripCalculator?: boolean;
  /** Drop a solution whose step list repeats one already emitted for the same question (default true). */
  dedupe?: boolean;
}

export interface PadStats {
  questions: number;
  solutions: number;
  rows: number;
  correctSolutions: number;
  wrongSolutions: number;
  survived: number;
  steps: number;
  positiveSteps: number;
  negativeSteps: number;
  skipped: Record<string, number>;
}

/** Splits a solution into steps: on blank lines, else on newlines. */
export function splitSteps(text: string): string[] {
  const t = text.replace(/\r\n?/g, '\n').trim();
  if (!t) return [];
  const parts = /\n[ \t]*\n/.test(t) ? t.split(/\n[ \t]*\n+/) : t.split('\n');
  return parts.map((p) => p.trim()).filter(Boolean);
}

const NUM = /\d[\d,]*(?:\.\d+)?/g;

function toNum(raw: string): number | null {
  let s = raw;
  if (/^\d{1,3}(?:,\d{3})+(?:\.\d+)?$/.test(s)) s = s.replace(/,/g, '');
  else s = s.replace(/,.*$/, '');
  const v = Number(s);
  return Number.isFinite(v) ? v : null;
}

const key = (v: number) => String(Math.round(Math.abs(v) * 1e6) / 1e6);

const NUMBER_WORDS: Record<string, number> = {
  zero: 0,
  one: 1,
  two: 2,
  three: 3,
  four: 4,
  five: 5,
  six: 6,
  seven: 7,
  eight: 8,
  nine: 9,
  ten: 10,
  eleven: 11,
  twelve: 12,
  thirteen: 13,
  fourteen: 14,
  fifteen: 15,
  sixteen: 16,
  seventeen: 17,
  eighteen: 18,
  nineteen: 19,
  twenty: 20,
  thirty: 30,
  forty: 40,
  fifty: 50,
  sixty: 60,
  seventy: 70,
  eighty: 80,
  ninety: 90,
  hundred: 100,
  thousand: 1000,
  million: 1000000,
  dozen: 12,
  half: 0.5,
  twice: 2,
  double: 2,
  triple: 3,
  quarter: 0.25,
};

/** Every number in a text (annotations included, and simple number words), as comparison keys. */
export function numberKeys(text: string): Set<string> {
  const out = new Set<string>();
  for (const m of text.matchAll(NUM)) {
    const v = toNum(m[0]);
    if (v !== null) out.add(key(v));
  }
  for (const m of text.toLowerCase().matchAll(/\p{L}+/gu)) {
    if (Object.hasOwn(NUMBER_WORDS, m[0])) out.add(key(NUMBER_WORDS[m[0]]!));
  }
  return out;
}

/**
 * The intermediate numbers a step produces: calculation results (after "=", and `<<a=b>>`
 * results); without any "=", the numbers it mentions that are not in the question.
 */
export function intermediateNumbers(step: string, questionNumbers: Set<string>): string[] {
  const out: string[] = [];
  for (const m of step.matchAll(/<<[^<>\n]*=\s*([^<>\n]*)>>/g)) {
    const n = m[1]!.match(NUM);
    const v = n ? toNum(n[0]) : null;
    if (v !== null) out.push(key(v));
  }
  const plain = stripCalculator(step);
  if (plain.includes('=')) {
    for (const m of plain.matchAll(/=\s*[$€£]?\s*(\d[\d,]*(?:\.\d+)?)/g)) {
      const v = toNum(m[1]!);
      if (v !== null) out.push(key(v));
    }
    return out;
  }
  if (out.length) return out;
  for (const m of plain.matchAll(NUM)) {
    const v = toNum(m[0]);
    if (v !== null && !questionNumbers.has(key(v))) out.push(key(v));
  }
  return out;
}

export interface StepEvidence {
  numbers: Set<string>;
  steps: Set<string>;
  questionNumbers: Set<string>;
}

/** The evidence of a question: numbers and normalised steps of its correct solutions and reference. */
export function stepEvidence(rec: TrajectoryRecord): StepEvidence {
  const task = rec.task as Task;
  const ref = recordReference(rec);
  const questionNumbers = numberKeys(formatQuestion(rec));
  const numbers = new Set(questionNumbers);
  const steps = new Set<string>();
  const addSolution = (text: string) => {
    for (const n of numberKeys(text)) numbers.add(n);
    for (const s of splitSteps(text)) {
      const norm = normalizeText(s);
      if (norm) steps.add(norm);
    }
  };
  addSolution(rec.reference);
  for (const r of rec.rounds)
    for (const m of r.messages) if (isCorrect(task, m.completion, ref)) addSolution(m.completion);
  if (
    rec.aggregator.kind === 'llm' &&
    typeof rec.aggregator.completion === 'string' &&
    isCorrect(task, rec.aggregator.completion, ref)
  )
    addSolution(rec.aggregator.completion);
  return { numbers, steps, questionNumbers };
}

/** Labels of one solution's steps (raw step texts, annotations included). See the module comment. */
export function labelSteps(steps: string[], correct: boolean, ev: StepEvidence): boolean[] {
  if (correct) return steps.map(() => true);
  const inEvidence = steps.map((s) => {
    const n = normalizeText(s);
    return n !== '' && ev.steps.has(n);
  });
  let firstBad = steps.length;
  for (let i = 0; i < steps.length; i++) {
    if (inEvidence[i]) continue;
    const nums = intermediateNumbers(steps[i]!, ev.questionNumbers);
    if (nums.some((n) => !ev.numbers.has(n))) {
      firstBad = i;
      break;
    }
  }
  const labels = steps.map((_, i) => i < firstBad || inEvidence[i]!);
  if (labels.length) labels[labels.length - 1] = false;
  return labels;
}

/** Builds the PAD stepwise rows of a set of trajectories. */
export function buildPad(records: TrajectoryRecord[], opts: PadOptions = {}): { rows: StepwiseRow[]; stats: PadStats } {
  const strip = opts.stripCalculator ?? true;
  const skipped = new Tally();
  const rows: StepwiseRow[] = [];
  const stats: PadStats = {
    questions: records.length,
    solutions: 0,
    rows: 0,
    correctSolutions: 0,
    wrongSolutions: 0,
    survived: 0,
    steps: 0,
    positiveSteps: 0,
    negativeSteps: 0,
    skipped: skipped.counts,
  };
  for (const rec of records) {
    const task = rec.task as Task;
    const ref = recordReference(rec);
    if (ref === null) {
      skipped.add('no-reference-answer');
      continue;
    }
    const ev = stepEvidence(rec);
    const prompt = formatQuestion(rec);
    const seen = new Set<string>();
    const rounds = [...rec.rounds].sort((a, b) => a.round - b.round);
    for (const r of rounds) {
      for (const m of r.messages) {
        stats.solutions++;
        const pairs = splitSteps(m.completion)
          .map((rawStep) => ({
            rawStep,
            text: strip
              ? stripCalculator(rawStep)
                  .replace(/[ \t]{2,}/g, ' ')
                  .trim()
              : rawStep,
          }))
          .filter((p) => p.text !== '');
        if (!pairs.length) {
          skipped.add('empty-solution');
          continue;
        }
        const steps = pairs.map((p) => p.rawStep);
        const completions = pairs.map((p) => p.text);
        const dedupKey = completions.map(normalizeText).join('\u0001');
        if ((opts.dedupe ?? true) && seen.has(dedupKey)) {
          skipped.add('duplicate-solution');
          continue;
        }
        seen.add(dedupKey);
        const extracted = extractAnswer(task, m.completion);
        const correct = ref !== null && answersEqual(task, extracted, ref);
        const labels = labelSteps(steps, correct, ev);
        const survived = answersEqual(task, extracted, rec.final.answer);
        rows.push({ prompt, completions, labels, id: rec.id, agent: m.agent, round: r.round, survived });
        if (correct) stats.correctSolutions++;
        else stats.wrongSolutions++;
        if (survived) stats.survived++;
        stats.steps += labels.length;
        stats.positiveSteps += labels.filter(Boolean).length;
        stats.negativeSteps += labels.filter((l) => !l).length;
      }
    }
  }
  stats.rows = rows.length;
  return { rows, stats };
}
