/**
 * `agentark distill`: build a training set (R-SFT, DA or PAD step labels) from debate
 * trajectories — or straight from imported solution files (GSM8K example_model_solutions.jsonl,
 * AgentArk inference output), detected from the first line — and write it as TRL-compatible JSONL.
 * Prints a JSON summary on stdout.
 */
import { promises as fsp } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Task } from '../eval/answers';
import { writeJsonl, type SftFormat } from '../distill/common';
import { buildTrainingSet, DISTILL_STRATEGIES, type DistillStrategy } from '../distill/build';
import { parseDistillInput } from '../distill/from-imported';

export const USAGE = `usage: agentark distill --strategy rsft|da|pad --traj FILE --out FILE [options]

  --strategy S          rsft | da | pad
  --traj FILE           trajectory JSONL (agentark.trajectory/1), or GSM8K example_model_solutions.jsonl,
                        or AgentArk inference output (the layout is detected)
  --out FILE            training JSONL to write (TRL format: messages / prompt-completion / stepwise)
  --task T              gsm8k | math | mc: task of AgentArk inference output (default gsm8k)
  --per-question K      da: at most K distinct correct paths per question (default 4)
  --jaccard X           da: word-3-gram Jaccard at or above which two paths are duplicates (default 0.7)
  --no-self-correct     da: no self-correction conversations
  --format F            rsft/da: messages (default) | prompt-completion (only the last assistant turn is trained)
  --system TEXT         rsft/da: student system prompt (default: the task's solver prompt)
  --no-system           rsft/da: no system message
  --keep-calculator     keep GSM8K <<a=b>> calculator annotations
  --keep-answer-line    rsft/da: keep the reasoning's own last line (default: canonical "#### n" / \\boxed{} / "Answer: X")
  --limit N             only the first N questions
`;

class UsageError extends Error {}

function int(name: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        strategy: { type: 'string' },
        traj: { type: 'string' },
        out: { type: 'string' },
        task: { type: 'string' },
        'per-question': { type: 'string' },
        jaccard: { type: 'string' },
        'no-self-correct': { type: 'boolean', default: false },
        format: { type: 'string', default: 'messages' },
        system: { type: 'string' },
        'no-system': { type: 'boolean', default: false },
        'keep-calculator': { type: 'boolean', default: false },
        'keep-answer-line': { type: 'boolean', default: false },
        limit: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: false,
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`agentark distill: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let strategy: DistillStrategy;
  let traj: string;
  let out: string;
  let task: Task | undefined;
  let perQuestion: number | undefined;
  let threshold: number | undefined;
  let format: SftFormat;
  let limit: number | undefined;
  try {
    strategy = values.strategy as DistillStrategy;
    if (!strategy) throw new UsageError('--strategy is required (rsft, da or pad)');
    if (!DISTILL_STRATEGIES.includes(strategy)) throw new UsageError(`--strategy must be rsft, da or pad, got ${JSON.stringify(strategy)}`);
    if (!values.traj) throw new UsageError('--traj is required');
    if (!values.out) throw new UsageError('--out is required');
    traj = values.traj as string;
    out = values.out as string;
    task = values.task as Task | undefined;
    if (task !== undefined && task !== 'gsm8k' && task !== 'math' && task !== 'mc') throw new UsageError(`--task must be gsm8k, math or mc, got ${JSON.stringify(task)}`);
    perQuestion = int('per-question', values['per-question'] as string | undefined, 1);
    if (values.jaccard !== undefined) {
      threshold = Number(values.jaccard);
      if (!(threshold > 0 && threshold <= 1)) throw new UsageError(`--jaccard must be in (0, 1], got ${JSON.stringify(values.jaccard)}`);
    }
    format = values.format as SftFormat;
    if (format !== 'messages' && format !== 'prompt-completion') throw new UsageError(`--format must be messages or prompt-completion, got ${JSON.stringify(format)}`);
    if (values.system !== undefined && values['no-system']) throw new UsageError('--system and --no-system are exclusive');
    limit = int('limit', values.limit as string | undefined, 0);
    if (strategy !== 'da' && (perQuestion !== undefined || threshold !== undefined || values['no-self-correct'])) {
      throw new UsageError('--per-question, --jaccard and --no-self-correct apply to --strategy da only');
    }
  } catch (e) {
    process.stderr.write(`agentark distill: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }

  try {
    let text: string;
    try {
      text = await fsp.readFile(traj, 'utf8');
    } catch (e) {
      throw new Error(`cannot read --traj ${traj}: ${(e as Error).message}`);
    }
    const warnings: string[] = [];
    const input = parseDistillInput(text, traj, { task, onWarning: (m) => warnings.push(m) });
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    const records = limit !== undefined ? input.records.slice(0, limit) : input.records;
    const system = values['no-system'] ? null : (values.system as string | undefined);
    const clean = { stripCalculator: !values['keep-calculator'], answerLine: !values['keep-answer-line'] };
    const { rows, stats } = buildTrainingSet(strategy, records, { ...clean, system, format, perQuestion, threshold, selfCorrection: !values['no-self-correct'] });
    await writeJsonl(out, rows);
    const summary = {
      strategy,
      input: { file: traj, format: input.format, records: input.records.length, ...(input.format !== 'trajectory' ? { labelDisagreements: input.labelDisagreements.length } : {}) },
      ...stats,
      out,
      written: rows.length,
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`agentark distill: ${(e as Error).message}\n`);
    return 1;
  }
}
