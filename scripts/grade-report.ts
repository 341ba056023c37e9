/**
 * Grade every solution in GSM8K's example_model_solutions.jsonl with src/tasks/answers.ts and list
 * where our verdict disagrees with the file's `is_correct` label.
 *
 *   npx tsx scripts/grade-report.ts [path/to/example_model_solutions.jsonl] [--all]
 *
 * Default path: public/data/gsm8k/example_model_solutions.jsonl relative to the repo root.
 * Prints one block per disagreement (row, solver, extracted, reference, label, last line), then
 * "suspect labels": solutions whose reasoning ends on the reference value while the stated final
 * answer ("A: n") differs from it and is a digit prefix of it (e.g. body 5600, "A: 5"), which
 * looks like the final answer was cut at a thousands comma when the file was made. Such labels
 * grade the truncated line (false) although the worked solution is right.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { answersEqual, extractAnswer, grade } from '../src/tasks/answers';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const file =
  args.find((a) => !a.startsWith('--')) ?? path.resolve(repoRoot, 'public/data/gsm8k/example_model_solutions.jsonl');
const showAll = args.includes('--all');

interface Row {
  question: string;
  ground_truth: string;
  [solver: string]: string | { is_correct: boolean; solution: string };
}

const lines = readFileSync(file, 'utf8')
  .split('\n')
  .filter((l) => l.trim());
let total = 0;
let agree = 0;
const disagreements: string[] = [];
const suspects: string[] = [];
lines.forEach((line, i) => {
  const row = JSON.parse(line) as Row;
  for (const [solver, value] of Object.entries(row)) {
    if (typeof value !== 'object' || value === null) continue;
    total++;
    const g = grade('gsm8k', value.solution, row.ground_truth);
    const body = value.solution.replace(/\n\s*A:[^\n]*\s*$/, '');
    if (body !== value.solution && g.extracted !== null && g.reference !== null) {
      const fromBody = extractAnswer('gsm8k', body);
      if (
        fromBody !== null &&
        !g.correct &&
        answersEqual('gsm8k', fromBody, g.reference) &&
        fromBody.startsWith(g.extracted) &&
        fromBody.length > g.extracted.length
      ) {
        suspects.push(
          `#${i + 1} ${solver}: stated=${g.extracted} body=${fromBody} reference=${g.reference} label=${value.is_correct}`,
        );
      }
    }
    if (g.correct === value.is_correct) {
      agree++;
      continue;
    }
    const lastLine = value.solution.trim().split('\n').pop() ?? '';
    disagreements.push(
      `#${i + 1} ${solver}: extracted=${g.extracted} reference=${g.reference} label=${value.is_correct} ours=${g.correct}\n` +
        `    last line: ${JSON.stringify(lastLine.slice(0, 160))}` +
        (showAll ? `\n    solution: ${JSON.stringify(value.solution)}` : ''),
    );
  }
});

console.log(`${file}`);
console.log(`agreement: ${agree} / ${total} (${((100 * agree) / total).toFixed(2)}%), disagreements: ${total - agree}`);
for (const d of disagreements) console.log(d);
console.log(`suspect labels (final answer looks truncated at a thousands comma): ${suspects.length}`);
for (const d of suspects) console.log(`  ${d}`);
