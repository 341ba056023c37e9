/**
 * `agentark distill`: build a training set (R-SFT, DA or PAD step labels) from debate
 * trajectories — or straight from imported solution files (GSM8K example_model_solutions.jsonl,
 * AgentArk inference output), detected from the first line — and write it as TRL-compatible JSONL.
 * Prints a JSON summary on stdout.
 */
import { promises as fsp } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Task } from '../tasks/answers';
import { writeJsonl, type SftFormat } from '../distill/common';
import { buildDa } from '../distill/da';
import { parseDistillInput } from '../distill/from-imported';
import { buildPad } from '../distill/pad-labels';
import { buildPadSolutions, candidatesFromRecords, candidatesFromSets, judgeLabels } from '../distill/pad-solutions';
import { OpenAIEngine } from '../teach/openai-engine';
import { buildRsft } from '../distill/rsft';

export const USAGE = `usage: agentark distill --strategy rsft|da|pad --traj FILE --out FILE [options]

  --strategy S          rsft | da | pad
  --traj FILE           trajectory JSONL (agentark.trajectory/1), or GSM8K example_model_solutions.jsonl,
                        or AgentArk inference output (the layout is detected)
  --out FILE            training JSONL to write (TRL format: messages / prompt-completion / stepwise)
  --task T              gsm8k | math | mc: task of AgentArk inference output (default gsm8k)
  --pad-steps S         pad: solution (default: AgentArk's PRM rows, one per question: the final-round
                        agents' solutions and the aggregator's, labelled, mixed-label questions only)
                        | paragraph (this project's variant: every solution split into paragraphs,
                        step labels by number matching against correct solutions)
  --labels L            pad solution: file (default: an AgentArk labelled file keeps its labels;
                        otherwise graded against the reference) | graded (always re-grade)
  --judge-base-url URL  pad solution: label with an LLM judge (AgentArk label.py's prompt, true/false)
                        on this OpenAI-compatible endpoint instead
  --judge-model NAME    pad solution: the judge's model name (default "default")
  --judge-api-key K     pad solution: the judge endpoint's API key (default $OPENAI_API_KEY)
  --no-aggregator-last  AgentArk input: the last block is one more agent, not the aggregator's output
  --per-question K      da: at most K distinct correct paths per question (default 4)
  --jaccard X           da: word-3-gram Jaccard at or above which two paths are duplicates (default 0.7)
  --no-self-correct     da: no self-correction conversations
  --format F            rsft/da: messages (default) | prompt-completion (only the last assistant turn is trained)
  --system TEXT         rsft/da: student system prompt (default: the task's solver prompt)
  --no-system           rsft/da: no system message
  --keep-calculator     rsft/da/pad paragraph: keep GSM8K <<a=b>> calculator annotations
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
        'pad-steps': { type: 'string', default: 'solution' },
        labels: { type: 'string', default: 'file' },
        'judge-base-url': { type: 'string' },
        'judge-model': { type: 'string' },
        'judge-api-key': { type: 'string' },
        'no-aggregator-last': { type: 'boolean', default: false },
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
  let strategy: 'rsft' | 'da' | 'pad';
  let traj: string;
  let out: string;
  let task: Task | undefined;
  let perQuestion: number | undefined;
  let threshold: number | undefined;
  let format: SftFormat;
  let limit: number | undefined;
  try {
    strategy = values.strategy as 'rsft' | 'da' | 'pad';
    if (!strategy) throw new UsageError('--strategy is required (rsft, da or pad)');
    if (!['rsft', 'da', 'pad'].includes(strategy)) throw new UsageError(`--strategy must be rsft, da or pad, got ${JSON.stringify(strategy)}`);
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
    if (values['pad-steps'] !== 'solution' && values['pad-steps'] !== 'paragraph') throw new UsageError(`--pad-steps must be solution or paragraph, got ${JSON.stringify(values['pad-steps'])}`);
    if (values.labels !== 'file' && values.labels !== 'graded') throw new UsageError(`--labels must be file or graded, got ${JSON.stringify(values.labels)}`);
    const padSolutionOnly = argv.some((a) => /^--(labels|judge-base-url|judge-model|judge-api-key)(=|$)/.test(a));
    if (padSolutionOnly && (strategy !== 'pad' || values['pad-steps'] !== 'solution')) throw new UsageError('--labels and --judge-* apply to --strategy pad with --pad-steps solution only');
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
    const input = parseDistillInput(text, traj, { task, aggregatorLast: !values['no-aggregator-last'], onWarning: (m) => warnings.push(m) });
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    const records = limit !== undefined ? input.records.slice(0, limit) : input.records;
    const system = values['no-system'] ? null : (values.system as string | undefined);
    const clean = { stripCalculator: !values['keep-calculator'], answerLine: !values['keep-answer-line'] };
    let rows: object[];
    let stats: object;
    if (strategy === 'rsft') {
      const r = buildRsft(records, { ...clean, system, format });
      rows = r.rows;
      stats = r.stats;
    } else if (strategy === 'da') {
      const r = buildDa(records, { ...clean, system, format, perQuestion, threshold, selfCorrection: !values['no-self-correct'] });
      rows = r.rows;
      stats = r.stats;
    } else if (values['pad-steps'] === 'paragraph') {
      const r = buildPad(records, { stripCalculator: !values['keep-calculator'] });
      rows = r.rows;
      stats = { padSteps: 'paragraph', ...r.stats };
    } else {
      const sets = input.sets && limit !== undefined ? input.sets.slice(0, limit) : input.sets;
      const candidates = sets ? candidatesFromSets(sets) : candidatesFromRecords(records);
      let judged: Map<string, boolean[]> | undefined;
      const judgeUrl = values['judge-base-url'] as string | undefined;
      if (judgeUrl) {
        const engine = new OpenAIEngine({ baseUrl: judgeUrl, apiKey: (values['judge-api-key'] as string | undefined) ?? process.env.OPENAI_API_KEY, model: (values['judge-model'] as string | undefined) ?? 'default' });
        judged = await judgeLabels(candidates, engine, { model: (values['judge-model'] as string | undefined) ?? 'default', onProgress: (d, t) => void (d % 50 === 0 || d === t ? process.stderr.write(`judge ${d}/${t}\n`) : 0) });
      }
      const r = buildPadSolutions(candidates, { labels: values.labels as 'file' | 'graded', judged });
      rows = r.rows;
      stats = { padSteps: 'solution', ...r.stats };
    }
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
