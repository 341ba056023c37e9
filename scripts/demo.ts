/**
 * `npm run demo`: the whole AgentArk pipeline, headless, on the embedded model (offline).
 *
 *   debate over the demo train split (5 agents x 2 rounds + aggregator, the base model; round 2
 *   and the aggregator read the other agents' final answers: a sparse debate)
 *   → R-SFT, DA and PAD training sets → a LoRA adapter per strategy
 *     (PAD: a process reward model head on the frozen student, then RL from the R-SFT adapter with
 *      PRM + verifiable reward)
 *   → evaluation on the held-out test split: single agent, debate, and each distilled student.
 *
 * Prints the table and the distillation comparison (the share of the debate's lead over the
 * single agent that each student recovers, with a paired sign test), writes trajectories, training
 * sets, adapters and the report to demo-output/ (DEMO_OUTPUT), the report to
 * public/data/demo-report.json (the Evaluate page) and the best student's adapter to
 * public/models/default/adapter/ (the app loads it).
 *
 * Sizes: DEMO_TRAIN_QUESTIONS (debated train questions), DEMO_TEST_QUESTIONS, DEMO_RL_STEPS and
 * DEMO_RL_QUESTIONS (the train-split pool RL samples its prompts from; RL needs only questions and
 * reference answers) — the defaults fit the whole run in about 8 minutes on a 2-core software
 * adapter. DEMO_TEMPERATURE (default 0.7) is the sampling temperature of every system but the greedy
 * reference. DEMO_ROBUSTNESS=1 adds the robustness probes (perturbed questions) to the evaluation.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalEngine, Runtime } from '../src/engine/local';
import { loadQuestions } from '../src/tasks/datasets';
import { DEMO_EVAL } from '../src/demo/eval-settings';
import { SMALL_MODEL_DEBATE, runDebateSet, type DebateOptions } from '../src/teach/debate';
import { defaultAgentSystemPrompt, studentMessages } from '../src/tasks/prompts';
import { readTrajectories } from '../src/teach/trajectory';
import { buildRsft } from '../src/distill/rsft';
import { buildDa } from '../src/distill/da';
import { buildPad } from '../src/distill/pad-labels';
import { toJsonl } from '../src/distill/common';
import { fitPrmHead, auc, scoreSolution, stepFeatures, serializePrmHead, splitSteps } from '../src/distill/prm';
import { DEFAULT_RL_OPTIONS, runRl } from '../src/distill/rl';
import { tokenizeRow, TrainingDataError, type TrainExample } from '../src/train/data';
import { DEFAULT_TRAIN_OPTIONS, Trainer, type TrainOptions } from '../src/train/trainer';
import { serializePeftAdapter, type PeftAdapter } from '../src/formats/peft';
import { writeFilesAtomically } from '../src/train/checkpoint';
import { grade } from '../src/tasks/answers';
import { evaluate, type EvalSystem } from '../src/eval/harness';
import { debateGap, debateGapMarkdown, toMarkdown } from '../src/eval/report';
import { attachStructures } from '../src/cli/eval';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL = path.join(ROOT, 'public/models/default');
const OUT = path.resolve(ROOT, process.env.DEMO_OUTPUT ?? 'demo-output');
const N_TRAIN = Number(process.env.DEMO_TRAIN_QUESTIONS ?? 100);
const N_TEST = Number(process.env.DEMO_TEST_QUESTIONS ?? 100);
const RL_STEPS = Number(process.env.DEMO_RL_STEPS ?? 6);
const RL_QUESTIONS = Number(process.env.DEMO_RL_QUESTIONS ?? 256);
const ROBUSTNESS = process.env.DEMO_ROBUSTNESS === '1';
const SEED = DEMO_EVAL.seed;
// Every agent of the debate samples at this temperature, and so do the single agent and the
// students it is compared with: one of the debate's agents, alone. A greedy single agent is
// reported beside them for reference.
const TEMPERATURE = Number(process.env.DEMO_TEMPERATURE ?? DEMO_EVAL.temperature);
const SYSTEM = DEMO_EVAL.system;
const MAX_TOKENS = DEMO_EVAL.maxTokens;

const t0 = performance.now();
const log = (msg: string) => process.stderr.write(`[demo ${((performance.now() - t0) / 1000).toFixed(0)}s] ${msg}\n`);

// The agents, rounds and aggregator (a vote: see src/demo/eval-settings.ts) the app's Evaluate page starts from too.
const DEBATE: DebateOptions = { numAgents: DEMO_EVAL.agents, rounds: DEMO_EVAL.rounds, aggregator: DEMO_EVAL.aggregator, ...SMALL_MODEL_DEBATE, temperature: TEMPERATURE, max_tokens: MAX_TOKENS, seed: SEED, concurrency: 3 };
const LORA: Partial<TrainOptions> = { mode: 'lora', rank: 16, alpha: 32, dropout: 0, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], lr: 2e-3, batchSize: 8, schedule: 'cosine', warmupSteps: 5, seed: SEED };

async function trainAdapter(runtime: Runtime, name: string, rows: object[], epochs: number, init?: PeftAdapter): Promise<PeftAdapter> {
  const tok = runtime.requireTokenizer();
  const examples: TrainExample[] = [];
  let tooLong = 0;
  for (const [i, r] of rows.entries()) {
    try {
      examples.push(tokenizeRow(r, tok, { maxLength: runtime.generator.contextLength, vocabSize: runtime.model.config.vocabSize }, `${name} row ${i + 1}`));
    } catch (e) {
      // Self-correction rows quote four peers and can exceed the tiny model's context: skip those.
      if (!(e instanceof TrainingDataError) || !/longer than the context/.test(e.message)) throw e;
      tooLong++;
    }
  }
  if (tooLong) log(`${name}: skipped ${tooLong} rows longer than the context`);
  if (!examples.length) throw new Error(`${name}: no training rows fit the context`);
  const trainer = new Trainer(runtime.model, examples, { ...DEFAULT_TRAIN_OPTIONS, ...LORA, epochs, padTokenId: tok.padTokenId ?? 0 } as TrainOptions, init);
  const reports = await trainer.run({ onStep: (r) => void (r.step % 10 === 0 && log(`${name}: step ${r.step}/${r.totalSteps} loss ${r.loss.toFixed(3)}`)) });
  const adapter = await trainer.adapter();
  trainer.dispose();
  runtime.model.setAdapter(null);
  log(`${name}: ${examples.length} rows, ${reports.length} steps, loss ${reports[0]?.loss.toFixed(3)} → ${reports[reports.length - 1]?.loss.toFixed(3)}`);
  await writeFilesAtomically(path.join(OUT, 'adapters', name), serializePeftAdapter(adapter));
  return adapter;
}

async function main(): Promise<void> {
  await fs.mkdir(OUT, { recursive: true });
  const runtime = await Runtime.load(MODEL, { maxBatch: 32, contextLength: 384 });
  log(`model ${MODEL} on ${runtime.describeBackend()}`);
  const engine = new LocalEngine(runtime);
  const trainPool = await loadQuestions(path.join(ROOT, 'public/data/demo-train.jsonl'), 'gsm8k', { limit: Math.max(N_TRAIN, RL_QUESTIONS) });
  const train = trainPool.slice(0, N_TRAIN);
  const rlQuestions = trainPool.slice(0, RL_QUESTIONS);
  const testFile = path.join(ROOT, 'public/data/demo-test.jsonl');
  // The generator's arithmetic steps let the robustness probe change numbers and recompute answers.
  const test = attachStructures(await fs.readFile(testFile, 'utf8'), await loadQuestions(testFile, 'gsm8k', { limit: N_TEST }), testFile);

  // 1. Teach: the debate over the train split, recorded as trajectories.
  const trajPath = path.join(OUT, 'trajectories.jsonl');
  await fs.rm(trajPath, { force: true });
  await runDebateSet(train, { ...DEBATE, engines: engine }, { out: trajPath, onRecord: (_r, i) => void (i.done % 10 === 0 && log(`debate ${i.done}/${i.total}`)) });
  const records = await readTrajectories(trajPath);
  const round1 = records.flatMap((r) => r.rounds[0].messages.map((m) => m.correct));
  log(`debate: ${records.length} questions, round-1 agent accuracy ${(round1.filter(Boolean).length / round1.length).toFixed(3)}, ` + `final ${(records.filter((r) => r.final.correct).length / records.length).toFixed(3)}`);

  // 2. Distil: training sets in TRL format.
  const rsft = buildRsft(records, { system: SYSTEM });
  const da = buildDa(records, { system: SYSTEM, perQuestion: 4 });
  const pad = buildPad(records);
  for (const [name, rows] of [['rsft', rsft.rows], ['da', da.rows], ['pad', pad.rows]] as const) await fs.writeFile(path.join(OUT, `${name}.jsonl`), toJsonl(rows));
  log(`distil: R-SFT ${rsft.rows.length} rows, DA ${da.rows.length} rows, PAD ${pad.rows.length} stepwise rows`);

  // 3. Train: one LoRA adapter per strategy.
  const adapters: Record<string, PeftAdapter> = {};
  adapters.rsft = await trainAdapter(runtime, 'rsft', rsft.rows, 3);
  adapters.da = await trainAdapter(runtime, 'da', da.rows, 2);
  // PAD: PRM head on the frozen base student, then RL (RLOO + PPO-clip + KL) from the R-SFT adapter.
  const prmRows = pad.rows.map((r) => ({ prompt: r.prompt, completions: r.completions, labels: r.labels }));
  const cut = Math.floor(prmRows.length * 0.8);
  const feats: Float32Array[] = [];
  const labels: boolean[] = [];
  for (const r of prmRows.slice(0, cut)) (await stepFeatures(runtime, r)).forEach((f, k) => (feats.push(f), labels.push(r.labels[k])));
  const { head } = fitPrmHead(feats, labels, { epochs: 100, seed: SEED });
  const held = prmRows.slice(cut);
  const heldScores: number[] = [];
  for (const r of held) heldScores.push((await scoreSolution(runtime, head, r.prompt, r.completions)).solution);
  const prmAuc = auc(heldScores, held.map((r) => r.labels.every(Boolean)));
  await fs.mkdir(path.join(OUT, 'prm'), { recursive: true });
  await fs.writeFile(path.join(OUT, 'prm', 'prm_head.safetensors'), serializePrmHead(head, { base_model: 'public/models/default' }));
  log(`PRM: ${feats.length} step examples, held-out AUC ${prmAuc.toFixed(3)} on ${held.length} solutions`);
  const rlTrainer = new Trainer(runtime.model, rlQuestions.map((q) => { const ids = runtime.promptIds(studentMessages('gsm8k', q, { system: SYSTEM })); return { inputIds: ids, labels: ids }; }), { ...DEFAULT_TRAIN_OPTIONS, ...LORA, lr: 5e-4, schedule: 'constant', steps: 1000 } as TrainOptions, adapters.rsft);
  const byId = new Map(rlQuestions.map((q) => [q.id, q]));
  const rl = await runRl(
    runtime,
    rlTrainer,
    rlQuestions.map((q) => ({ id: q.id, prompt: runtime.promptIds(studentMessages('gsm8k', q, { system: SYSTEM })) })),
    async (s) => {
      const q = byId.get(s.prompt.id)!;
      const correct = grade('gsm8k', s.text, q.answer).correct ? 1 : 0;
      return correct + 0.5 * (await scoreSolution(runtime, head, q.question, splitSteps(s.text))).solution;
    },
    { ...DEFAULT_RL_OPTIONS, steps: RL_STEPS, groupSize: 4, promptsPerStep: 4, maxTokens: MAX_TOKENS, sampling: { temperature: 0.8 }, ppoEpochs: 2, seed: SEED },
    (r) => log(`PAD RL step ${r.step}: reward ${r.meanReward.toFixed(3)} kl ${r.meanKl.toFixed(4)}`),
  );
  adapters.pad = await rlTrainer.adapter();
  rlTrainer.dispose();
  runtime.model.setAdapter(null);
  await writeFilesAtomically(path.join(OUT, 'adapters', 'pad'), serializePeftAdapter(adapters.pad));
  for (const [name, a] of Object.entries(adapters)) await runtime.adapters.load(name, a);

  // 4. Evaluate on the held-out split.
  const systems: EvalSystem[] = [
    { kind: 'single', name: 'single agent (base)', engine, system: SYSTEM, setup: () => runtime.adapters.activate(null) },
    { kind: 'single', name: 'single agent (base, greedy)', engine, system: SYSTEM, temperature: 0, setup: () => runtime.adapters.activate(null) },
    { kind: 'debate', name: 'debate 5x2, vote (base)', engines: engine, debate: { ...DEBATE, concurrency: 1 }, setup: () => runtime.adapters.activate(null) },
    ...(['rsft', 'da', 'pad'] as const).map((n): EvalSystem => ({ kind: 'single', name: `student ${n.toUpperCase()}`, engine, system: SYSTEM, setup: () => runtime.adapters.activate(n) })),
  ];
  const report = await evaluate(test, systems, { task: 'gsm8k', maxTokens: MAX_TOKENS, temperature: TEMPERATURE, seed: SEED, concurrency: 6, robustness: ROBUSTNESS, dataset: 'public/data/demo-test.jsonl', onProgress: (e) => void (e.done % 20 === 0 && log(`eval ${e.phase} ${e.done}/${e.total}`)) });
  const [baseline, teacher] = [systems[0].name, systems[2].name];
  const students = systems.slice(3).map((s) => s.name);
  const gap = debateGap(report, baseline, teacher, students);
  const extra = { baseline, teacher, students, evalSettings: { ...DEMO_EVAL, temperature: TEMPERATURE }, temperature: TEMPERATURE, rl: rl.map((r) => r.meanReward), prmAuc, debateTrainFinalAccuracy: records.filter((r) => r.final.correct).length / records.length };
  await fs.writeFile(path.join(OUT, 'report.json'), JSON.stringify({ ...report, demo: extra }, null, 2));
  const md = `${toMarkdown(report)}\n${debateGapMarkdown(gap)}`;
  await fs.writeFile(path.join(OUT, 'report.md'), md);
  await fs.copyFile(path.join(OUT, 'report.json'), path.join(ROOT, 'public/data/demo-report.json'));

  // 5. Deploy: the best student's adapter goes beside the embedded model; the app loads it.
  const best = [...gap.students].sort((a, b) => b.accuracy - a.accuracy)[0];
  const bestKey = best.name.replace(/^student /, '').toLowerCase();
  const shipped = path.join(MODEL, 'adapter');
  await writeFilesAtomically(shipped, {
    ...serializePeftAdapter(adapters[bestKey]),
    'agentark.json': JSON.stringify({ name: best.name, strategy: bestKey, accuracy: best.accuracy, baseline: gap.baseline.accuracy, debate: gap.teacher.accuracy, questions: report.questions, verdict: best.verdict }, null, 2),
  });
  console.log(md);
  log(`shipped ${best.name} (${(100 * best.accuracy).toFixed(1)}%: ${best.verdict}) as ${path.relative(ROOT, shipped)}`);
  log(`done; outputs in ${OUT}`);
  runtime.dispose();
}

await main();
process.exit(0);
