/** `agentark prm train|eval`: the process reward model head on the frozen student (PAD step b). */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Runtime } from '../engine/local';
import {
  auc,
  fitPrmHead,
  parsePrmHead,
  scoreFeature,
  serializePrmHead,
  stepFeatures,
  type StepwiseRow,
} from '../distill/prm';
import { Rng } from '../util/random';
import { floatFlag, intFlag, parseFlags, runtimeOptions, RUNTIME_FLAGS, stderrProgress, UsageError } from './args';

const USAGE = `usage: agentark prm train --model DIR --data pad.jsonl --out PRM_DIR [options]
       agentark prm eval  --model DIR --prm PRM_DIR --data pad.jsonl [--limit N]
  pad.jsonl: TRL stepwise rows {"prompt", "completions": [steps], "labels": [bool]} (agentark distill
  --strategy pad: AgentArk's rows, one completion per solution; or --pad-steps paragraph rows).

  --contrastive W   weight of the supervised contrastive term (default 0.5, AgentArk prm/finetune2.py;
                    0 = cross-entropy only). train also fits the other setting on the same features and
                    reports both held-out AUCs
  --temperature T   contrastive temperature (default 0.1)
  --dim N           embedding size of the head (default 32)
  --holdout F       share of questions held out for the AUC (default 0.2)
  --epochs N        (default 100)   --lr X (default 0.01)   --seed S   --limit N
  --quantize q8|q4  the student's weights (features from the quantized base)
  AUC: over the held-out completions (each labelled step: a solution, or a paragraph), by P(correct).`;

export async function readStepwise(file: string, limit?: number): Promise<StepwiseRow[]> {
  const text = await fs.readFile(file, 'utf8');
  const rows: StepwiseRow[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let r: StepwiseRow;
    try {
      r = JSON.parse(line) as StepwiseRow;
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (
      typeof r.prompt !== 'string' ||
      !Array.isArray(r.completions) ||
      !Array.isArray(r.labels) ||
      r.completions.length !== r.labels.length
    ) {
      throw new Error(
        `${file}:${i + 1}: expected a TRL stepwise row {prompt, completions[], labels[]} of equal lengths`,
      );
    }
    rows.push(r);
  });
  if (!rows.length) throw new Error(`${file}: no rows`);
  return limit ? rows.slice(0, limit) : rows;
}

/** Every labelled step of `rows` with its features. */
async function stepExamples(runtime: Runtime, rows: StepwiseRow[], onRow?: (i: number) => void) {
  const feats: Float32Array[] = [];
  const labels: boolean[] = [];
  for (const [i, r] of rows.entries()) {
    (await stepFeatures(runtime, r)).forEach((f, k) => {
      feats.push(f);
      labels.push(r.labels[k]!);
    });
    onRow?.(i);
  }
  return { feats, labels };
}

const stepAuc = (head: ReturnType<typeof parsePrmHead>, ex: { feats: Float32Array[]; labels: boolean[] }) =>
  auc(
    ex.feats.map((f) => scoreFeature(head, f)),
    ex.labels,
  );

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'train' && sub !== 'eval') throw new UsageError(USAGE);
  const v = parseFlags(
    rest,
    {
      ...RUNTIME_FLAGS,
      data: { type: 'string' },
      out: { type: 'string' },
      prm: { type: 'string' },
      holdout: { type: 'string' },
      epochs: { type: 'string' },
      lr: { type: 'string' },
      seed: { type: 'string' },
      limit: { type: 'string' },
      contrastive: { type: 'string' },
      temperature: { type: 'string' },
      dim: { type: 'string' },
    },
    USAGE,
  );
  if (!v) return 0;
  if (!v.model || !v.data) throw new UsageError(`--model and --data are required\n\n${USAGE}`);
  const rows = await readStepwise(v.data as string, intFlag(v.limit as string | undefined, 'limit'));
  const runtime = await Runtime.load(v.model as string, {
    ...runtimeOptions(v),
    maxBatch: 1,
    onProgress: stderrProgress('load'),
  });
  try {
    if (sub === 'eval') {
      if (!v.prm) throw new UsageError(`--prm is required\n\n${USAGE}`);
      const head = parsePrmHead(new Uint8Array(await fs.readFile(path.join(v.prm as string, 'prm_head.safetensors'))));
      const ex = await stepExamples(runtime, rows);
      console.log(JSON.stringify({ rows: rows.length, steps: ex.labels.length, auc: stepAuc(head, ex) }));
      return 0;
    }
    if (!v.out) throw new UsageError(`--out is required\n\n${USAGE}`);
    const seed = intFlag(v.seed as string | undefined, 'seed', 0);
    const holdout = floatFlag(v.holdout as string | undefined, 'holdout', 0.2)!;
    // Hold out whole prompts (questions), not single solutions, so the AUC is on unseen questions.
    const prompts = [...new Set(rows.map((r) => r.prompt))];
    const rng = new Rng(seed);
    for (let i = prompts.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [prompts[i], prompts[j]] = [prompts[j], prompts[i]];
    }
    const heldOut = new Set(prompts.slice(0, Math.round(prompts.length * holdout)));
    const trainRows = rows.filter((r) => !heldOut.has(r.prompt));
    const testRows = rows.filter((r) => heldOut.has(r.prompt));
    const train = await stepExamples(
      runtime,
      trainRows,
      (i) => void (i % 20 === 0 && process.stderr.write(`features ${i + 1}/${trainRows.length}\n`)),
    );
    const test = await stepExamples(runtime, testRows);
    const contrastive = floatFlag(v.contrastive as string | undefined, 'contrastive', 0.5)!;
    if (!(contrastive >= 0)) throw new UsageError(`--contrastive must be >= 0, got '${v.contrastive}'`);
    const fitOpts = {
      epochs: intFlag(v.epochs as string | undefined, 'epochs', 100),
      lr: floatFlag(v.lr as string | undefined, 'lr', 0.01),
      temperature: floatFlag(v.temperature as string | undefined, 'temperature', 0.1),
      dim: intFlag(v.dim as string | undefined, 'dim', 32),
      seed,
    };
    const { head, losses } = fitPrmHead(train.feats, train.labels, { ...fitOpts, contrastive });
    // The other setting on the same features, for the comparison the report asks for.
    const otherWeight = contrastive > 0 ? 0 : 0.5;
    const other = fitPrmHead(train.feats, train.labels, { ...fitOpts, contrastive: otherWeight }).head;
    const heldOutAuc = test.labels.length ? stepAuc(head, test) : null;
    const heldOutAucOther = test.labels.length ? stepAuc(other, test) : null;
    await fs.mkdir(v.out as string, { recursive: true });
    await fs.writeFile(
      path.join(v.out as string, 'prm_head.safetensors'),
      serializePrmHead(head, {
        base_model: String(v.model),
        features: "final-norm hidden state at each completion's separator token + mean/min token log-probability",
        contrastive: String(contrastive),
      }),
    );
    const summary = {
      trainRows: trainRows.length,
      trainSteps: train.labels.length,
      heldOutRows: testRows.length,
      heldOutSteps: test.labels.length,
      contrastive,
      heldOutAuc,
      // The same features and settings with the other objective (0 ↔ 0.5), for comparison.
      heldOutAucOther: { contrastive: otherWeight, auc: heldOutAucOther },
      firstLoss: losses[0],
      finalLoss: losses[losses.length - 1],
      seed,
    };
    await fs.writeFile(
      path.join(v.out as string, 'prm_config.json'),
      JSON.stringify(
        {
          base_model: v.model,
          hidden_size: runtime.model.config.hiddenSize,
          score: 'sigmoid(w·relu(W·standardise(f) + b0) + b) per step',
          ...summary,
        },
        null,
        2,
      ),
    );
    console.log(JSON.stringify(summary));
    return 0;
  } finally {
    runtime.dispose();
  }
}
