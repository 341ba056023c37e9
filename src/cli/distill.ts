/**
 * `agentark distill`: build a training set (R-SFT, DA or PAD step labels) from debate
 * trajectories — or straight from imported solution files (GSM8K example_model_solutions.jsonl,
 * AgentArk inference output), detected from the first line — and write it as TRL-compatible JSONL.
 * Prints a JSON summary on stdout.
 */
import { promises as fsp } from 'node:fs';
import { isTask, type Task } from '../tasks/answers';
import { writeJsonl, type SftFormat } from '../distill/common';
import { buildTrainingSet, DISTILL_STRATEGIES, type DistillStrategy } from '../distill/build';
import { parseDistillInput } from '../distill/from-imported';
import { candidatesFromRecords, candidatesFromSets, judgeLabels } from '../distill/pad-solutions';
import { OpenAIEngine } from '../teach/openai-engine';
import { floatFlag, intFlag, parseFlags, reportUsageError, UsageError } from './args';

export const USAGE = `usage: agentark distill --strategy rsft|da|pad --traj FILE --out FILE [options]

  --strategy S          rsft | da | pad
  --traj FILE           trajectory JSONL (agentark.trajectory/1), or GSM8K example_model_solutions.jsonl,
                        or AgentArk inference output (the layout is detected); also a .parquet file or
                        a Hugging Face dataset id of such rows (--config / --split / --revision)
  --config / --split / --revision   the Hub dataset's config, split (default train) and revision
  --out FILE            training JSONL to write (TRL format: messages / prompt-completion / stepwise)
  --task T              gsm8k | math | mc | qa: task of AgentArk inference output (default gsm8k)
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
  --format F            rsft/da: messages (default) | prompt-completion (only the last assistant turn is trained);
                        DA's self-correction rows are always prompt-completion (the wrong attempt is never trained)
  --system TEXT         rsft/da: student system prompt (default: the task's solver prompt)
  --no-system           rsft/da: no system message
  --keep-calculator     rsft/da/pad paragraph: keep GSM8K <<a=b>> calculator annotations
  --keep-answer-line    rsft/da: keep the reasoning's own last line (default: canonical "#### n" / \\boxed{} / "Answer: X")
  --limit N             only the first N questions
`;

export async function run(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined> | null;
  try {
    values = parseFlags(
      argv,
      {
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
        config: { type: 'string' },
        split: { type: 'string' },
        revision: { type: 'string' },
        'pad-steps': { type: 'string', default: 'solution' },
        labels: { type: 'string', default: 'file' },
        'judge-base-url': { type: 'string' },
        'judge-model': { type: 'string' },
        'judge-api-key': { type: 'string' },
        'no-aggregator-last': { type: 'boolean', default: false },
      },
      USAGE,
    );
  } catch (e) {
    return reportUsageError('distill', e as UsageError);
  }
  if (!values) return 0;
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
    if (!DISTILL_STRATEGIES.includes(strategy))
      throw new UsageError(`--strategy must be rsft, da or pad, got ${JSON.stringify(strategy)}`);
    if (!values.traj) throw new UsageError('--traj is required');
    if (!values.out) throw new UsageError('--out is required');
    traj = values.traj as string;
    out = values.out as string;
    task = values.task as Task | undefined;
    if (task !== undefined && !isTask(task))
      throw new UsageError(`--task must be gsm8k, math, mc or qa, got ${JSON.stringify(task)}`);
    perQuestion = intFlag(values['per-question'] as string | undefined, 'per-question', undefined, { min: 1 });
    threshold = floatFlag(values.jaccard as string | undefined, 'jaccard', undefined, { above: 0, max: 1 });
    format = values.format as SftFormat;
    if (format !== 'messages' && format !== 'prompt-completion')
      throw new UsageError(`--format must be messages or prompt-completion, got ${JSON.stringify(format)}`);
    if (values.system !== undefined && values['no-system'])
      throw new UsageError('--system and --no-system are exclusive');
    limit = intFlag(values.limit as string | undefined, 'limit', undefined, { min: 0 });
    if (values['pad-steps'] !== 'solution' && values['pad-steps'] !== 'paragraph')
      throw new UsageError(`--pad-steps must be solution or paragraph, got ${JSON.stringify(values['pad-steps'])}`);
    if (values.labels !== 'file' && values.labels !== 'graded')
      throw new UsageError(`--labels must be file or graded, got ${JSON.stringify(values.labels)}`);
    const padSolutionOnly = argv.some((a) => /^--(labels|judge-base-url|judge-model|judge-api-key)(=|$)/.test(a));
    if (padSolutionOnly && (strategy !== 'pad' || values['pad-steps'] !== 'solution'))
      throw new UsageError('--labels and --judge-* apply to --strategy pad with --pad-steps solution only');
    if (strategy !== 'da' && (perQuestion !== undefined || threshold !== undefined || values['no-self-correct'])) {
      throw new UsageError('--per-question, --jaccard and --no-self-correct apply to --strategy da only');
    }
  } catch (e) {
    return reportUsageError('distill', e as UsageError, USAGE);
  }

  try {
    let text: string;
    const { isHubDatasetSpec, loadHubDatasetRows } = await import('../tasks/hub');
    if (/\.parquet$/i.test(traj) || (await isHubDatasetSpec(traj))) {
      // Rows of a Parquet file or a Hub dataset, as JSON lines for the layout detection below.
      let rows: unknown[];
      if (/\.parquet$/i.test(traj)) {
        const { readParquetRows, readParquetSource } = await import('../tasks/parquet');
        rows = (await readParquetRows(await readParquetSource(traj), traj)).map((r) => r.row);
      } else {
        const str = (k: string) => values[k] as string | undefined;
        rows = (
          await loadHubDatasetRows(traj, {
            config: str('config'),
            split: str('split') ?? 'train',
            revision: str('revision'),
          })
        ).rows.map((r) => r.row);
      }
      text = rows.map((r) => JSON.stringify(r, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))).join('\n');
    } else {
      try {
        text = await fsp.readFile(traj, 'utf8');
      } catch (e) {
        throw new Error(`cannot read --traj ${traj}: ${(e as Error).message}`);
      }
    }
    const warnings: string[] = [];
    const input = parseDistillInput(text, traj, {
      task,
      aggregatorLast: !values['no-aggregator-last'],
      onWarning: (m) => warnings.push(m),
    });
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    const records = limit !== undefined ? input.records.slice(0, limit) : input.records;
    const system = values['no-system'] ? null : (values.system as string | undefined);
    const clean = { stripCalculator: !values['keep-calculator'], answerLine: !values['keep-answer-line'] };
    const padSteps = values['pad-steps'] as 'solution' | 'paragraph';
    let padCandidates: ReturnType<typeof candidatesFromSets> | undefined;
    let judged: Map<string, boolean[]> | undefined;
    if (strategy === 'pad' && padSteps === 'solution') {
      const sets = input.sets && limit !== undefined ? input.sets.slice(0, limit) : input.sets;
      padCandidates = sets ? candidatesFromSets(sets) : candidatesFromRecords(records);
      const judgeUrl = values['judge-base-url'] as string | undefined;
      if (judgeUrl) {
        const model = (values['judge-model'] as string | undefined) ?? 'default';
        const engine = new OpenAIEngine({
          baseUrl: judgeUrl,
          apiKey: (values['judge-api-key'] as string | undefined) ?? process.env.OPENAI_API_KEY,
          model,
        });
        judged = await judgeLabels(padCandidates, engine, {
          model,
          onProgress: (d, t) => void (d % 50 === 0 || d === t ? process.stderr.write(`judge ${d}/${t}\n`) : 0),
        });
      }
    }
    const { rows, stats } = buildTrainingSet(strategy, records, {
      ...clean,
      system,
      format,
      perQuestion,
      threshold,
      selfCorrection: !values['no-self-correct'],
      padSteps,
      padCandidates,
      padLabels: { labels: values.labels as 'file' | 'graded', judged },
    });
    await writeJsonl(out, rows);
    const summary = {
      strategy,
      input: {
        file: traj,
        format: input.format,
        records: input.records.length,
        ...(input.format !== 'trajectory' ? { labelDisagreements: input.labelDisagreements.length } : {}),
      },
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
