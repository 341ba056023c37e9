/**
 * `agentark grade`: accuracy of a JSONL file of trajectories (lines with a "schema" field) or of
 * plain `{question, answer, prediction}` rows. Prints an accuracy JSON; `--out` writes every row
 * back with `extracted` and a boolean `correct`.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { answersEqual, extractAnswer, isTask, referenceAnswer, TASKS, type Task } from '../tasks/answers';
import { parseTrajectoryLine, summarizeTrajectories, type TrajectoryRecord } from '../teach/trajectory';
import { choiceFlag, parseFlags, reportUsageError, UsageError } from './args';

export const USAGE = `usage: agentark grade --data FILE [--task gsm8k|math|mc] [--out graded.jsonl]

  --data FILE   trajectories (agentark.trajectory/1) or rows {question, answer, prediction}
                (also accepted: reference/gt for the answer, response/output/completion for the prediction)
  --task T      gsm8k | math | mc | qa (default: each row's "task" field, else gsm8k)
  --out FILE    write every row plus "extracted" and boolean "correct"
`;

const PRED_KEYS = ['prediction', 'response', 'output', 'completion', 'generated', 'model_output'];
const REF_KEYS = ['answer', 'reference', 'gt', 'ground_truth', 'target', 'solution'];

function pick(row: Record<string, unknown>, keys: string[]): string | undefined {
  for (const k of keys) {
    const v = row[k];
    if (typeof v === 'string') return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  return undefined;
}

export interface GradeSummary {
  file: string;
  kind: 'trajectory' | 'predictions' | 'mixed' | 'empty';
  task: string;
  rows: number;
  correct: number;
  accuracy: number;
  /** Rows whose prediction had no parseable answer. */
  unparsed: number;
  /** Trajectories only: per-round mean agent accuracy. */
  roundAccuracy?: number[];
}

export async function run(argv: string[]): Promise<number> {
  let values: { data?: string; task?: string; out?: string } | null;
  let forced: Task | undefined;
  try {
    values = parseFlags(argv, { data: { type: 'string' }, task: { type: 'string' }, out: { type: 'string' } }, USAGE);
    if (!values) return 0;
    if (!values.data) throw new UsageError('--data is required', USAGE);
    forced = choiceFlag(values.task, 'task', TASKS);
  } catch (e) {
    return reportUsageError('grade', e as UsageError, USAGE);
  }
  let text: string;
  try {
    text = await fsp.readFile(values.data, 'utf8');
  } catch (e) {
    process.stderr.write(`agentark grade: cannot read ${values.data}: ${(e as Error).message}\n`);
    return 1;
  }
  const outRows: string[] = [];
  const trajectories: TrajectoryRecord[] = [];
  let rows = 0;
  let correct = 0;
  let unparsed = 0;
  let nTraj = 0;
  let nPred = 0;
  const tasks = new Set<string>();
  const lines = text.split('\n');
  try {
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (!line) continue;
      const lineNo = i + 1;
      let row: Record<string, unknown>;
      try {
        row = JSON.parse(line) as Record<string, unknown>;
      } catch (e) {
        // A half-written last line (interrupted run) is skipped; anything else is an error.
        if (i === lines.length - 1 && !text.endsWith('\n')) {
          process.stderr.write(`warning: ${values.data}: skipping a partial last line ${lineNo}\n`);
          continue;
        }
        throw new Error(`${values.data}:${lineNo}: not valid JSON (${(e as Error).message})`);
      }
      let extracted: string | null;
      let ok: boolean;
      let task: Task;
      if (row && typeof row === 'object' && 'schema' in row) {
        let rec: TrajectoryRecord;
        try {
          rec = parseTrajectoryLine(line, lineNo);
        } catch (e) {
          throw new Error(`${values.data}: ${(e as Error).message}`);
        }
        task = forced ?? rec.task;
        // The final answer is already extracted; regrade it against the reference.
        extracted = rec.final.answer;
        ok = answersEqual(task, extracted, referenceAnswer(task, rec.reference));
        trajectories.push(rec);
        nTraj++;
      } else {
        task = forced ?? (row.task as Task | undefined) ?? 'gsm8k';
        if (!isTask(task)) throw new Error(`${values.data}:${lineNo}: unknown task ${JSON.stringify(task)}`);
        const pred = pick(row, PRED_KEYS);
        const ref = pick(row, REF_KEYS);
        if (pred === undefined)
          throw new Error(`${values.data}:${lineNo}: no prediction (expected one of ${PRED_KEYS.join(', ')})`);
        if (ref === undefined)
          throw new Error(`${values.data}:${lineNo}: no reference answer (expected one of ${REF_KEYS.join(', ')})`);
        extracted = extractAnswer(task, pred);
        ok = answersEqual(task, extracted, referenceAnswer(task, ref));
        nPred++;
      }
      tasks.add(task);
      rows++;
      if (ok) correct++;
      if (extracted === null) unparsed++;
      if (values.out) outRows.push(JSON.stringify({ ...row, extracted, correct: ok }));
    }
  } catch (e) {
    process.stderr.write(`agentark grade: ${(e as Error).message}\n`);
    return 1;
  }
  const summary: GradeSummary = {
    file: values.data,
    kind: rows === 0 ? 'empty' : nTraj && nPred ? 'mixed' : nTraj ? 'trajectory' : 'predictions',
    task: [...tasks].join(',') || (forced ?? 'gsm8k'),
    rows,
    correct,
    accuracy: rows ? Math.round((correct / rows) * 10000) / 10000 : 0,
    unparsed,
  };
  if (trajectories.length) summary.roundAccuracy = summarizeTrajectories(trajectories).roundAccuracy;
  if (values.out) {
    await fsp.mkdir(path.dirname(path.resolve(values.out)), { recursive: true });
    await fsp.writeFile(values.out, outRows.map((r) => `${r}\n`).join(''));
  }
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  return 0;
}
