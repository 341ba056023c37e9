/** `agentark prm train|eval`: the process reward model head on the frozen student (PAD step b). */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Runtime } from '../engine/local';
import { auc, fitPrmHead, parsePrmHead, scoreFeature, serializePrmHead, stepFeatures, type StepwiseRow } from '../distill/prm';
import { Rng } from '../engine/sampling';
import { floatFlag, intFlag, parseFlags, runtimeOptions, RUNTIME_FLAGS, stderrProgress, UsageError } from './args';

const USAGE = `usage: agentark prm train --model DIR --data pad.jsonl --out PRM_DIR [--holdout 0.2] [--epochs 100] [--lr 0.05] [--seed S] [--limit N] [--quantize q8|q4]
       agentark prm eval  --model DIR --prm PRM_DIR --data pad.jsonl [--limit N]
  pad.jsonl: TRL stepwise rows {"prompt", "completions": [steps], "labels": [bool]} (agentark distill --strategy pad).
  A solution's score is its weakest step; AUC is over solutions (all steps good = positive).`;

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
    if (typeof r.prompt !== 'string' || !Array.isArray(r.completions) || !Array.isArray(r.labels) || r.completions.length !== r.labels.length) {
      throw new Error(`${file}:${i + 1}: expected a TRL stepwise row {prompt, completions[], labels[]} of equal lengths`);
    }
    rows.push(r);
  });
  if (!rows.length) throw new Error(`${file}: no rows`);
  return limit ? rows.slice(0, limit) : rows;
}

async function solutionScores(runtime: Runtime, head: ReturnType<typeof parsePrmHead>, rows: StepwiseRow[]) {
  const scores: number[] = [];
  for (const r of rows) {
    const f = await stepFeatures(runtime, r);
    scores.push(Math.min(...f.map((x) => scoreFeature(head, x))));
  }
  return { scores, labels: rows.map((r) => r.labels.every(Boolean)) };
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'train' && sub !== 'eval') throw new UsageError(USAGE);
  const v = parseFlags(rest, { ...RUNTIME_FLAGS, data: { type: 'string' }, out: { type: 'string' }, prm: { type: 'string' }, holdout: { type: 'string' }, epochs: { type: 'string' }, lr: { type: 'string' }, seed: { type: 'string' }, limit: { type: 'string' } }, USAGE);
  if (!v) return 0;
  if (!v.model || !v.data) throw new UsageError(`--model and --data are required\n\n${USAGE}`);
  const rows = await readStepwise(v.data as string, intFlag(v.limit as string | undefined, 'limit'));
  const runtime = await Runtime.load(v.model as string, { ...runtimeOptions(v), maxBatch: 1, onProgress: stderrProgress('load') });
  try {
    if (sub === 'eval') {
      if (!v.prm) throw new UsageError(`--prm is required\n\n${USAGE}`);
      const head = parsePrmHead(new Uint8Array(await fs.readFile(path.join(v.prm as string, 'prm_head.safetensors'))));
      const { scores, labels } = await solutionScores(runtime, head, rows);
      console.log(JSON.stringify({ solutions: rows.length, auc: auc(scores, labels) }));
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
    const feats: Float32Array[] = [];
    const labels: boolean[] = [];
    for (const [i, r] of trainRows.entries()) {
      (await stepFeatures(runtime, r)).forEach((f, k) => {
        feats.push(f);
        labels.push(r.labels[k]);
      });
      if (i % 20 === 0) process.stderr.write(`features ${i + 1}/${trainRows.length}\n`);
    }
    const { head, losses } = fitPrmHead(feats, labels, { epochs: intFlag(v.epochs as string | undefined, 'epochs', 100), lr: floatFlag(v.lr as string | undefined, 'lr', 0.05), seed });
    const { scores, labels: solLabels } = testRows.length ? await solutionScores(runtime, head, testRows) : { scores: [], labels: [] };
    const heldOutAuc = testRows.length ? auc(scores, solLabels) : null;
    await fs.mkdir(v.out as string, { recursive: true });
    await fs.writeFile(path.join(v.out as string, 'prm_head.safetensors'), serializePrmHead(head, { base_model: String(v.model), features: 'final-norm hidden state at the last token of each step' }));
    const summary = { trainSolutions: trainRows.length, trainSteps: feats.length, heldOutSolutions: testRows.length, heldOutAuc, firstLoss: losses[0], finalLoss: losses[losses.length - 1], seed };
    await fs.writeFile(path.join(v.out as string, 'prm_config.json'), JSON.stringify({ base_model: v.model, hidden_size: runtime.model.config.hiddenSize, score: 'min over steps of sigmoid(w·standardise(h) + b)', ...summary }, null, 2));
    console.log(JSON.stringify(summary));
    return 0;
  } finally {
    runtime.dispose();
  }
}
