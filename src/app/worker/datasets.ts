/**
 * Distillation in the app: trajectories (the last debate, the built-in example, a file) → training
 * rows with the strategy the page picked (src/distill/build.ts, the same builder as `agentark
 * distill`), kept by id for training and download, with token counts against the loaded model.
 */
import { buildTrainingSet, exampleTrajectories } from '../../distill/build';
import { toJsonl } from '../../distill/common';
import { parseDistillInput } from '../../distill/from-imported';
import type { TrajectoryRecord } from '../../teach/trajectory';
import {
  looksLikeTrainingRows,
  parseTrainingJsonl,
  tokenizeRow,
  TrainingDataError,
  type TrainExample,
} from '../../train/data';
import type { DatasetSummary, DistillSettings, TokenStats, TrainDataSource } from '../api';
import type { Debates } from './debate';
import type { LoadedRuntime, Models } from './models';

/** A built set: its rows, whether they fine-tune the student (PAD's train the reward model) and a name. */
export interface BuiltDataset {
  rows: object[];
  trainable: boolean;
  strategy: DatasetSummary['strategy'];
  source: string;
}

/** Rows → examples against the loaded model; rows too long for the context are counted and left out. */
export function tokenizeRows(
  m: LoadedRuntime,
  rows: object[],
  where: string,
): { examples: TrainExample[]; stats: TokenStats; errors: string[] } {
  const contextLength = m.runtime.generator.contextLength;
  const examples: TrainExample[] = [];
  const errors: string[] = [];
  let tooLong = 0;
  rows.forEach((row, i) => {
    try {
      examples.push(
        tokenizeRow(
          row,
          m.runtime.tokenizer,
          { maxLength: contextLength, vocabSize: m.runtime.model.config.vocabSize },
          `${where} row ${i + 1}`,
        ),
      );
    } catch (e) {
      if (e instanceof TrainingDataError && /longer than the context/.test(e.message)) tooLong++;
      else errors.push((e as Error).message);
    }
  });
  let tokens = 0;
  let labelled = 0;
  let longest = 0;
  for (const e of examples) {
    tokens += e.inputIds.length;
    longest = Math.max(longest, e.inputIds.length);
    for (let i = 1; i < e.labels.length; i++) if (e.labels[i]! >= 0) labelled++;
  }
  return { examples, stats: { examples: examples.length, tokens, labelled, longest, tooLong, contextLength }, errors };
}

export class Datasets {
  /** Built training sets by id (the last few only). */
  private readonly built = new Map<string, BuiltDataset>();
  private counter = 0;

  constructor(
    private readonly models: Models,
    private readonly debates: Debates,
  ) {}

  get(id: string): BuiltDataset {
    const ds = this.built.get(id);
    if (!ds) throw new Error('The training set is gone: build it again.');
    return ds;
  }

  jsonl(id: string): string {
    return toJsonl(this.get(id).rows);
  }

  async prepare(source: TrainDataSource, s: DistillSettings): Promise<DatasetSummary> {
    const warnings: string[] = [];
    let records: TrajectoryRecord[];
    let inputFormat: DatasetSummary['inputFormat'] = 'trajectory';
    let name: string;
    let rows: object[];
    let strategy: DatasetSummary['strategy'] = s.strategy;
    let stats: DatasetSummary['stats'];
    let trainable = true;

    if (source.kind === 'text' && looksLikeTrainingRows(source.text)) {
      rows = parseTrainingJsonl(source.text, source.name) as object[];
      if (s.limit > 0) rows = rows.slice(0, s.limit);
      name = source.name;
      inputFormat = 'training-rows';
      strategy = 'rows';
      records = [];
      stats = { rows: rows.length };
    } else {
      if (source.kind === 'debate') {
        records = this.debates.lastRecords();
        if (!records.length)
          throw new Error(
            'No debate has finished in this session yet: run one on the Teach page, or pick another source.',
          );
        name = `last debate (${records.length} record${records.length === 1 ? '' : 's'})`;
      } else if (source.kind === 'example') {
        records = exampleTrajectories(source.count);
        name = `built-in example (${records.length} demo problems)`;
      } else {
        const parsed = parseDistillInput(source.text, source.name, {
          task: s.task,
          onWarning: (m) => warnings.push(m),
        });
        records = parsed.records;
        inputFormat = parsed.format;
        name = source.name;
        if (parsed.labelDisagreements.length)
          warnings.push(
            `${parsed.labelDisagreements.length} solution label(s) in the file disagree with the re-grade (the re-grade is used).`,
          );
      }
      if (s.limit > 0) records = records.slice(0, s.limit);
      if (!records.length) throw new Error(`${name}: no records`);
      const set = buildTrainingSet(s.strategy, records, {
        stripCalculator: s.stripCalculator,
        answerLine: true,
        ...(s.systemPrompt ? {} : { system: null }),
        format: s.format,
        perQuestion: Math.max(1, Math.floor(s.perQuestion)),
        selfCorrection: s.selfCorrection,
        ...(s.padSteps ? { padSteps: s.padSteps } : {}),
      });
      rows = set.rows;
      stats = set.stats;
      trainable = set.studentRows;
    }
    const id = `ds${++this.counter}`;
    this.built.set(id, { rows, trainable, strategy, source: name });
    while (this.built.size > 4) this.built.delete(this.built.keys().next().value!);
    let tokens: TokenStats | null = null;
    const m = this.models.loaded;
    if (trainable && m && rows.length) {
      const t = tokenizeRows(m, rows, name);
      tokens = t.stats;
      if (t.errors.length) warnings.push(`${t.errors.length} row(s) cannot be used: ${t.errors[0]}`);
    }
    return {
      id,
      source: name,
      inputFormat,
      records: records.length,
      strategy,
      rows: rows.length,
      stats,
      warnings,
      trainable,
      tokens,
      preview: rows.length ? JSON.stringify(rows[0], null, 2) : '',
    };
  }
}
