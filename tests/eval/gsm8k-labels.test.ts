/**
 * Grade all 5,276 real model solutions in GSM8K's example_model_solutions.jsonl against each
 * problem's ground truth and compare with the file's `is_correct` labels.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { grade, referenceAnswer } from '../../src/tasks/answers';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = path.resolve(repoRoot, 'public/data/gsm8k');

interface Solution {
  is_correct: boolean;
  solution: string;
}
type Row = { question: string; ground_truth: string } & Record<string, unknown>;

const rows: Row[] = readFileSync(path.join(dataDir, 'example_model_solutions.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Row);

function solutionsOf(row: Row): [string, Solution][] {
  return Object.entries(row).filter((e): e is [string, Solution] => typeof e[1] === 'object' && e[1] !== null);
}

interface Disagreement {
  id: string;
  extracted: string | null;
  reference: string | null;
  label: boolean;
}

/** Grade every solution (optionally rewritten) and collect disagreements with `is_correct`. */
function agreement(rewrite: (solution: string) => string = (s) => s) {
  let total = 0;
  const disagreements: Disagreement[] = [];
  rows.forEach((row, i) => {
    for (const [solver, sol] of solutionsOf(row)) {
      total++;
      const g = grade('gsm8k', rewrite(sol.solution), row.ground_truth);
      if (g.correct !== sol.is_correct) {
        disagreements.push({
          id: `#${i + 1}/${solver}`,
          extracted: g.extracted,
          reference: g.reference,
          label: sol.is_correct,
        });
      }
    }
  });
  return { total, agree: total - disagreements.length, disagreements };
}

function report(name: string, r: ReturnType<typeof agreement>): void {
  console.log(
    `[${name}] agreement ${r.agree}/${r.total} (${((100 * r.agree) / r.total).toFixed(2)}%), ` +
      `disagreements: ${r.disagreements.length}`,
  );
  for (const d of r.disagreements.slice(0, 5)) console.log('  ', JSON.stringify(d));
}

/** Replace the final "A: <answer>" line with another way of stating the answer. */
function restate(format: (answer: string) => string) {
  return (solution: string) => solution.replace(/\nA: ([^\n]*)\s*$/, (_m, a: string) => `\n${format(a)}`);
}

describe('GSM8K example_model_solutions.jsonl vs is_correct labels', () => {
  it('the file holds 1,319 problems × 4 solutions', () => {
    expect(rows).toHaveLength(1319);
    expect(rows.reduce((n, r) => n + solutionsOf(r).length, 0)).toBe(5276);
  });

  it('every ground truth yields a reference answer', () => {
    for (const row of rows) expect(referenceAnswer('gsm8k', row.ground_truth)).not.toBeNull();
  });

  it('grading agrees with ≥ 99.5% of the 5,276 labels', () => {
    const r = agreement();
    report('as written', r);
    expect(r.total).toBe(5276);
    expect(r.agree / r.total).toBeGreaterThanOrEqual(0.995);
  });

  // The same real solutions with the final answer stated in the other supported ways: checks each
  // extraction path on messy text (calculator annotations, intermediate numbers, units).
  const variants: [string, (s: string) => string][] = [
    ['#### n', restate((a) => `#### ${a}`)],
    ['The answer is n.', restate((a) => `The answer is ${a}.`)],
    ['Answer: n', restate((a) => `Answer: ${a}`)],
    ['**Final Answer:** n', restate((a) => `**Final Answer:** ${a}`)],
    ['\\boxed{n}', restate((a) => `So the result is $\\boxed{${a}}$.`)],
    ['last number (bare n)', restate((a) => a)],
  ];
  it.each(variants)('agreement holds when the answer is stated as %s', (name, rewrite) => {
    const r = agreement(rewrite);
    report(name, r);
    expect(r.agree / r.total).toBeGreaterThanOrEqual(0.995);
  });
});

describe('GSM8K test.jsonl references', () => {
  const test = readFileSync(path.join(dataDir, 'test.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { question: string; answer: string });

  it('"#### n" references equal the example file\'s "A: n" ground truths, row by row', () => {
    expect(test).toHaveLength(rows.length);
    test.forEach((t, i) => {
      expect(t.question).toBe(rows[i]!.question);
      const ref = referenceAnswer('gsm8k', t.answer);
      expect(ref, `row ${i + 1}`).toMatch(/^-?\d+(\.\d+)?$/);
      expect(ref, `row ${i + 1}`).toBe(referenceAnswer('gsm8k', rows[i]!.ground_truth));
    });
  });
});
