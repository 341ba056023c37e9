/**
 * `npm run demo`: the whole AgentArk pipeline, headless, on the embedded model (offline), small
 * enough to run in under 8 minutes on a 2-core software adapter (measured 7:39) — and a check of
 * the shipped result.
 *
 *   debate over the first DEMO_TRAIN_QUESTIONS problems of the demo train split (5 agents x 2
 *   rounds, the base model; round 2 reads the other agents' final answers with the question
 *   restated, and the round-2 answers are voted on: src/demo/settings.ts)
 *   → R-SFT, DA and PAD training sets → a LoRA adapter per strategy
 *     (PAD: a process reward model head on the frozen student, then RL from the R-SFT adapter with
 *      PRM + verifiable reward)
 *   → evaluation on the first DEMO_TEST_QUESTIONS held-out problems: the base greedy (one call:
 *     the bar), the base sampled at the debate's temperature, the debate, and each student greedy.
 *   → the shipped result: public/data/demo-report.json (the Evaluate page) is the larger
 *     distillation `npm run demo:data` + `npm run demo:distill` produce (200 debated problems,
 *     300 held-out questions); this run re-evaluates the shipped student
 *     (public/models/default/adapter) on DEMO_CHECK_QUESTIONS of the report's questions and checks
 *     that it answers exactly as the report says (greedy decoding is deterministic).
 *
 * Prints the table and the distillation comparison (each student against the greedy base, with a
 * paired sign test) and writes trajectories, training sets, adapters and this run's report to
 * demo-output/ (DEMO_OUTPUT). It does not overwrite the shipped report or adapter.
 *
 * Sizes: DEMO_TRAIN_QUESTIONS (debated train questions, default 100), DEMO_TEST_QUESTIONS (default
 * 100), DEMO_RL_STEPS and DEMO_RL_QUESTIONS (the train-split pool RL samples its prompts from),
 * DEMO_CHECK_QUESTIONS (default 100; 0 skips the check). DEMO_ROBUSTNESS=1 adds the robustness
 * probes (perturbed questions) and DEMO_SELF_CORRECTION=1 the self-correction probe (a "review your
 * answer" turn the model never learned: it collapses every system) to the evaluation; without them the
 * run takes 10 minutes or less on this machine.
 *
 * DEMO_QUANTIZE=q8|q4 runs the whole chain on quantized frozen weights (the debate, the students'
 * QLoRA training, the PRM, RL and the evaluation); the shipped-student check then reports how many
 * answers the quantized base changes instead of requiring the f32 report's answers.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalEngine, Runtime } from '../src/engine/local';
import { loadQuestions } from '../src/tasks/datasets';
import { runDebateSet } from '../src/teach/debate';
import { studentMessages } from '../src/tasks/prompts';
import { DEMO_EVAL } from '../src/demo/eval-settings';
import { DEMO_DEBATE, DEMO_MAX_TOKENS, DEMO_SEED, DEMO_SYSTEM, DEMO_TEMPERATURE } from '../src/demo/settings';
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
import { evaluate, type EvalReport, type EvalSystem } from '../src/eval/harness';
import { debateGap, debateGapMarkdown, toMarkdown } from '../src/eval/report';
import { attachStructures } from '../src/cli/eval';
import type { QuantFormat } from '../src/quant/quantize';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL = path.join(ROOT, 'public/models/default');
const OUT = path.resolve(ROOT, process.env.DEMO_OUTPUT ?? 'demo-output');
const N_TRAIN = Number(process.env.DEMO_TRAIN_QUESTIONS ?? 100);
const N_TEST = Number(process.env.DEMO_TEST_QUESTIONS ?? 100);
const RL_STEPS = Number(process.env.DEMO_RL_STEPS ?? 6);
const RL_QUESTIONS = Number(process.env.DEMO_RL_QUESTIONS ?? 256);
const ROBUSTNESS = process.env.DEMO_ROBUSTNESS === '1';
const SELF_CORRECTION = process.env.DEMO_SELF_CORRECTION === '1';
const CHECK_QUESTIONS = Number(process.env.DEMO_CHECK_QUESTIONS ?? 100);
const QUANTIZE = parseQuantize(process.env.DEMO_QUANTIZE);
const SEED = DEMO_SEED;

function parseQuantize(v: string | undefined): QuantFormat | undefined {
  if (!v) return undefined;
  if (v === 'q8' || v === 'q4') return v;
  throw new Error(`DEMO_QUANTIZE must be q8 or q4, not '${v}'`);
}
const TEMPERATURE = DEMO_TEMPERATURE;
const SYSTEM = DEMO_SYSTEM;
const MAX_TOKENS = DEMO_MAX_TOKENS;
const DEBATE = DEMO_DEBATE;

const t0 = performance.now();
const log = (msg: string) => process.stderr.write(`[demo ${((performance.now() - t0) / 1000).toFixed(0)}s] ${msg}\n`);

const LORA: Partial<TrainOptions> = {
  mode: 'lora',
  rank: 16,
  alpha: 32,
  dropout: 0,
  targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  lr: 2e-3,
  batchSize: 8,
  schedule: 'cosine',
  warmupSteps: 5,
  seed: SEED,
};

async function trainAdapter(
  runtime: Runtime,
  name: string,
  rows: object[],
  epochs: number,
  init?: PeftAdapter,
): Promise<PeftAdapter> {
  const tok = runtime.requireTokenizer();
  const examples: TrainExample[] = [];
  let tooLong = 0;
  for (const [i, r] of rows.entries()) {
    try {
      examples.push(
        tokenizeRow(
          r,
          tok,
          { maxLength: runtime.generator.contextLength, vocabSize: runtime.model.config.vocabSize },
          `${name} row ${i + 1}`,
        ),
      );
    } catch (e) {
      // Self-correction rows quote four peers and can exceed the tiny model's context: skip those.
      if (!(e instanceof TrainingDataError) || !/longer than the context/.test(e.message)) throw e;
      tooLong++;
    }
  }
  if (tooLong) log(`${name}: skipped ${tooLong} rows longer than the context`);
  if (!examples.length) throw new Error(`${name}: no training rows fit the context`);
  const trainer = new Trainer(
    runtime.model,
    examples,
    { ...DEFAULT_TRAIN_OPTIONS, ...LORA, epochs, padTokenId: tok.padTokenId ?? 0 } as TrainOptions,
    init,
  );
  const reports = await trainer.run({
    onStep: (r) => void (r.step % 10 === 0 && log(`${name}: step ${r.step}/${r.totalSteps} loss ${r.loss.toFixed(3)}`)),
  });
  const adapter = await trainer.adapter();
  trainer.dispose();
  runtime.model.setAdapter(null);
  log(
    `${name}: ${examples.length} rows, ${reports.length} steps, loss ${reports[0]?.loss.toFixed(3)} → ${reports[reports.length - 1]?.loss.toFixed(3)}`,
  );
  await writeFilesAtomically(path.join(OUT, 'adapters', name), serializePeftAdapter(adapter));
  return adapter;
}

async function main(): Promise<void> {
  await fs.mkdir(OUT, { recursive: true });
  const runtime = await Runtime.load(MODEL, {
    maxBatch: 32,
    contextLength: 384,
    ...(QUANTIZE ? { quantize: QUANTIZE } : {}),
  });
  log(`model ${MODEL} on ${runtime.describeBackend()}`);
  const engine = new LocalEngine(runtime);
  const trainPool = await loadQuestions(path.join(ROOT, 'public/data/demo-train.jsonl'), 'gsm8k', {
    limit: Math.max(N_TRAIN, RL_QUESTIONS),
  });
  const train = trainPool.slice(0, N_TRAIN);
  const rlQuestions = trainPool.slice(0, RL_QUESTIONS);
  const testFile = path.join(ROOT, 'public/data/demo-test.jsonl');
  // The generator's arithmetic steps let the robustness probe change numbers and recompute answers.
  const test = attachStructures(
    await fs.readFile(testFile, 'utf8'),
    await loadQuestions(testFile, 'gsm8k', { limit: N_TEST }),
    testFile,
  );

  // 1. Teach: the debate over the train split, recorded as trajectories.
  const trajPath = path.join(OUT, 'trajectories.jsonl');
  await fs.rm(trajPath, { force: true });
  await runDebateSet(
    train,
    { ...DEBATE, engines: engine },
    { out: trajPath, onRecord: (_r, i) => void (i.done % 10 === 0 && log(`debate ${i.done}/${i.total}`)) },
  );
  const records = await readTrajectories(trajPath);
  const round1 = records.flatMap((r) => r.rounds[0].messages.map((m) => m.correct));
  log(
    `debate: ${records.length} questions, round-1 agent accuracy ${(round1.filter(Boolean).length / round1.length).toFixed(3)}, ` +
      `final ${(records.filter((r) => r.final.correct).length / records.length).toFixed(3)}`,
  );

  // 2. Distil: training sets in TRL format.
  const rsft = buildRsft(records, { system: SYSTEM });
  const da = buildDa(records, { system: SYSTEM, perQuestion: 4 });
  const pad = buildPad(records);
  for (const [name, rows] of [
    ['rsft', rsft.rows],
    ['da', da.rows],
    ['pad', pad.rows],
  ] as const)
    await fs.writeFile(path.join(OUT, `${name}.jsonl`), toJsonl(rows));
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
  for (const r of prmRows.slice(0, cut))
    (await stepFeatures(runtime, r)).forEach((f, k) => (feats.push(f), labels.push(r.labels[k])));
  const { head } = fitPrmHead(feats, labels, { epochs: 100, seed: SEED });
  const held = prmRows.slice(cut);
  const heldScores: number[] = [];
  for (const r of held) heldScores.push((await scoreSolution(runtime, head, r.prompt, r.completions)).solution);
  const prmAuc = auc(
    heldScores,
    held.map((r) => r.labels.every(Boolean)),
  );
  await fs.mkdir(path.join(OUT, 'prm'), { recursive: true });
  await fs.writeFile(
    path.join(OUT, 'prm', 'prm_head.safetensors'),
    serializePrmHead(head, { base_model: 'public/models/default' }),
  );
  log(`PRM: ${feats.length} step examples, held-out AUC ${prmAuc.toFixed(3)} on ${held.length} solutions`);
  const rlTrainer = new Trainer(
    runtime.model,
    rlQuestions.map((q) => {
      const ids = runtime.promptIds(studentMessages('gsm8k', q, { system: SYSTEM }));
      return { inputIds: ids, labels: ids };
    }),
    { ...DEFAULT_TRAIN_OPTIONS, ...LORA, lr: 5e-4, schedule: 'constant', steps: 1000 } as TrainOptions,
    adapters.rsft,
  );
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
    {
      ...DEFAULT_RL_OPTIONS,
      steps: RL_STEPS,
      groupSize: 4,
      promptsPerStep: 4,
      maxTokens: MAX_TOKENS,
      sampling: { temperature: 0.8 },
      ppoEpochs: 2,
      seed: SEED,
    },
    (r) => log(`PAD RL step ${r.step}: reward ${r.meanReward.toFixed(3)} kl ${r.meanKl.toFixed(4)}`),
  );
  adapters.pad = await rlTrainer.adapter();
  rlTrainer.dispose();
  runtime.model.setAdapter(null);
  await writeFilesAtomically(path.join(OUT, 'adapters', 'pad'), serializePeftAdapter(adapters.pad));
  for (const [name, a] of Object.entries(adapters)) await runtime.adapters.load(name, a);

  // 4. Evaluate on the held-out split: single-call systems greedy (as the paper evaluates), the
  // debate and one sample of the base at the debate's temperature.
  const base = () => runtime.adapters.activate(null);
  const systems: EvalSystem[] = [
    { kind: 'single', name: 'single agent (base, greedy)', engine, system: SYSTEM, temperature: 0, setup: base },
    { kind: 'single', name: `single agent (base, T ${TEMPERATURE})`, engine, system: SYSTEM, setup: base },
    {
      kind: 'debate',
      name: `debate 5x2, vote (base, T ${TEMPERATURE})`,
      engines: engine,
      debate: { ...DEBATE, concurrency: 1 },
      setup: base,
    },
    ...(['rsft', 'da', 'pad'] as const).map(
      (n): EvalSystem => ({
        kind: 'single',
        name: `student ${n.toUpperCase()} (greedy)`,
        engine,
        system: SYSTEM,
        temperature: 0,
        setup: () => runtime.adapters.activate(n),
      }),
    ),
  ];
  const report = await evaluate(test, systems, {
    task: 'gsm8k',
    maxTokens: MAX_TOKENS,
    temperature: TEMPERATURE,
    seed: SEED,
    concurrency: 6,
    robustness: ROBUSTNESS,
    selfCorrection: SELF_CORRECTION,
    dataset: 'public/data/demo-test.jsonl',
    onProgress: (e) => void (e.done % 20 === 0 && log(`eval ${e.phase} ${e.done}/${e.total}`)),
  });
  const [baseline, teacher] = [systems[0].name, systems[2].name];
  const students = systems.slice(3).map((s) => s.name);
  const gap = debateGap(report, baseline, teacher, students);
  const extra = {
    baseline,
    teacher,
    students,
    evalSettings: { ...DEMO_EVAL, temperature: TEMPERATURE },
    ...(QUANTIZE ? { quantize: QUANTIZE } : {}),
    temperature: TEMPERATURE,
    rl: rl.map((r) => r.meanReward),
    prmAuc,
    debateTrainFinalAccuracy: records.filter((r) => r.final.correct).length / records.length,
  };
  await fs.writeFile(path.join(OUT, 'report.json'), JSON.stringify({ ...report, demo: extra }, null, 2));
  const md = `${toMarkdown(report)}\n${debateGapMarkdown(gap)}`;
  await fs.writeFile(path.join(OUT, 'report.md'), md);
  console.log(
    `## This run (${N_TRAIN} debated train problems, first ${test.length} held-out problems${QUANTIZE ? `, ${QUANTIZE} weights` : ''})\n\n${md}`,
  );

  // 5. The shipped result (npm run demo:distill): the student beside the embedded model answers
  // the report's questions exactly as the report says.
  await checkShipped(runtime, engine);
  log(`done; outputs in ${OUT}`);
  runtime.dispose();
}

/** Re-evaluates the shipped student on the first CHECK_QUESTIONS of the shipped report's questions and compares answer by answer. */
async function checkShipped(runtime: Runtime, engine: LocalEngine): Promise<void> {
  const reportPath = path.join(ROOT, 'public/data/demo-report.json');
  const shipped = JSON.parse(await fs.readFile(reportPath, 'utf8')) as EvalReport & {
    demo?: {
      shipped?: string;
      rows?: {
        name: string;
        accuracy: number;
        correct: number;
        n: number;
        wilson95: [number, number];
        vsGreedyBase: { wins: number; losses: number; pValue: number } | null;
      }[];
    };
  };
  const rows = shipped.demo?.rows;
  if (rows) {
    console.log(
      `## Shipped result (${path.relative(ROOT, reportPath)}: ${shipped.dataset}, ${shipped.questions} questions)\n`,
    );
    console.log('| System | Accuracy | Wilson 95% | Won / lost vs greedy base, sign test |\n|---|---:|---:|---:|');
    for (const r of rows)
      console.log(
        `| ${r.name} | ${(100 * r.accuracy).toFixed(1)}% (${r.correct}/${r.n}) | ` +
          `${(100 * r.wilson95[0]).toFixed(1)}–${(100 * r.wilson95[1]).toFixed(1)}% | ` +
          `${r.vsGreedyBase ? `${r.vsGreedyBase.wins} / ${r.vsGreedyBase.losses}, p = ${r.vsGreedyBase.pValue.toPrecision(2)}` : '—'}` +
          ` |`,
      );
    console.log('');
  }
  const name = shipped.demo?.shipped;
  const sys = name ? shipped.systems.find((s) => s.name === name) : undefined;
  if (!CHECK_QUESTIONS || !sys)
    return void (
      CHECK_QUESTIONS && log(`no shipped student named in ${path.relative(ROOT, reportPath)}: nothing to check`)
    );
  const adapterDir = path.join(MODEL, 'adapter');
  await runtime.adapters.load('shipped', adapterDir);
  const all = await loadQuestions(path.join(ROOT, 'public/data/demo-test.jsonl'), 'gsm8k');
  const byId = new Map(all.map((q) => [String(q.id), q]));
  const expected = sys.questions.slice(0, CHECK_QUESTIONS);
  const questions = expected.map((q) => {
    const found = byId.get(q.id);
    if (!found)
      throw new Error(
        `${path.relative(ROOT, reportPath)} names question ${q.id}, which public/data/demo-test.jsonl does not have`,
      );
    return found;
  });
  const check = await evaluate(
    questions,
    [
      {
        kind: 'single',
        name: sys.name,
        engine,
        system: SYSTEM,
        temperature: 0,
        setup: () => runtime.adapters.activate('shipped'),
      },
    ],
    { task: 'gsm8k', maxTokens: MAX_TOKENS, seed: SEED, concurrency: 6, selfCorrection: false, robustness: false },
  );
  const got = check.systems[0]!.questions;
  const differ = got.filter((q, i) => q.extracted !== expected[i]!.extracted).length;
  const msg =
    `shipped ${sys.name} (${path.relative(ROOT, adapterDir)}) on the report's first ${got.length} questions: ` +
    `${got.filter((q) => q.correct).length} right (report: ${expected.filter((q) => q.correct).length}), ${differ} answers differ from the report`;
  // Greedy decoding of a fixed adapter is deterministic up to float summation order (batches are
  // composed differently here), so a handful of answers may flip; more means a different adapter.
  // On a quantized base the answers are expected to move: the count is the measurement.
  if (QUANTIZE) {
    log(`${msg} (${QUANTIZE} base; the report was measured on f32 weights)`);
    return;
  }
  if (differ > Math.max(3, got.length / 20))
    throw new Error(`${msg}: the shipped adapter does not reproduce the shipped report`);
  log(msg);
}

await main();
process.exit(0);
