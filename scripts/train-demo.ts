/**
 * `npm run train:demo`: reproduces the embedded demo model in public/models/default/.
 *
 * 1. Seeded GSM8K-style problems (single-digit operands, 2 steps) → train/test question sets.
 * 2. A training corpus in the exact formats the model will be used in: answering alone, debate
 *    rounds (revising after reading 4 peers' answers, some wrong), and aggregating final answers —
 *    with the debate's compact prompts.
 * 3. A byte-level BPE tokenizer learned on that corpus (digits never merged) + ChatML template.
 * 4. A tiny Llama model trained from scratch with this project's trainer (`agentark train
 *    --mode full --from-scratch`), resumable (`--resume` is passed on every run; rerunning the
 *    script after an interruption continues from the last checkpoint).
 *
 * The shipped model was trained in stages as the compute budget was revised, and this script
 * replays them (each resumes the previous checkpoint, so the result equals one run with that
 * piecewise schedule, up to float summation order: the first 525 steps ran with earlier attention
 * kernels): a 700-step cosine schedule to step 150, a 420-step one to step 420, the
 * 700-step one again to step 525, then a warm restart onto a 1075-step cosine schedule to step
 * 1075. Last, a debate-weighted stage: 160 steps of full fine-tuning from those weights on fresh
 * rows (2,000 problems: half a single-agent row, one debate-round row and 0.3 aggregator rows each,
 * lr 1e-3), because revising after reading peers is the skill the main mix under-trains. Then two
 * self-play passes of 220 steps: in each, the model answers 1,000 fresh problems as five debate
 * agents, and is trained to revise after reading those actual answers and to judge them, against
 * the reference solutions — first at temperature 0.3 with whole solutions quoted, then at 0.7 with
 * final answers only and the question restated (the sparse debate `npm run demo` runs).
 *
 * Environment: DEMO_STEPS (one plain cosine schedule of that many steps instead of the stages),
 * DEMO_START_FROM (a model directory: skip the stages before self-play and start it from those
 * weights, e.g. the shipped model), DEMO_OUT (default public/models/default), DEMO_WORK (default
 * .cache/demo-train).
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  COMPACT_DEBATE_PROMPTS,
  demoCorpus,
  renderRow,
  selfPlayRows,
  toTrainingJsonl,
  writeQuestionSets,
} from '../src/demo/corpus';
import { buildDemoTokenizer } from '../src/demo/tokenizer';
import type { Problem } from '../src/demo/problems';
import { LocalEngine, Runtime } from '../src/engine/local';
import { runDebateSet } from '../src/teach/debate';
import { readTrajectories } from '../src/teach/trajectory';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const DEMO = {
  seed: 20261122,
  difficulty: 0 as const,
  trainProblems: 8000,
  testProblems: 400,
  vocabSize: 512,
  model: {
    hidden_size: 96,
    num_hidden_layers: 4,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 256,
  },
  contextLength: 384,
  /** The sampling temperature of the demo's agents (scripts/demo.ts DEMO_TEMPERATURE's default). */
  temperature: 0.7,
  // Rows per problem: answering alone, revising in a debate round, aggregating (compute is the budget).
  mix: { single: 1, debate: 0.3, aggregator: 0.1 },
  train: { batch: 16, lr: 3e-3, warmup: 50, schedule: 'cosine' },
  // Each stage resumes the previous one's checkpoint; `steps` sets that stage's cosine schedule.
  stages: process.env.DEMO_STEPS
    ? [{ steps: Number(process.env.DEMO_STEPS), stopAfter: Number(process.env.DEMO_STEPS) }]
    : [
        { steps: 700, stopAfter: 150 },
        { steps: 420, stopAfter: 420 },
        { steps: 700, stopAfter: 525 },
        { steps: 1075, stopAfter: 1075 },
      ],
  // Then a debate-weighted stage (full fine-tuning from those weights on fresh rows): revising
  // after reading peers is the skill the main mix under-trains.
  debateStage: process.env.DEMO_STEPS
    ? null
    : {
        problems: 2000,
        seed: 20261123,
        mix: { single: 0.5, debate: 1, aggregator: 0.3 },
        steps: 160,
        lr: 1e-3,
        warmup: 10,
      },
  // Last, self-play: the model answers fresh problems as 5 debate agents (round 1), and is
  // trained to revise after reading those actual answers and to judge them (see selfPlayRows):
  // first with whole solutions quoted, then as the demo debates — final answers only and the
  // question repeated next to where the reply starts (a model this small loses numbers stated a
  // few hundred tokens back). Synthetic mistakes taught the format; its own mistakes are what it
  // meets.
  selfPlay: process.env.DEMO_STEPS
    ? null
    : {
        from: 2000,
        problems: 1000,
        seed: 20261124,
        rows: { debatePerQuestion: 2, aggregatorPerQuestion: 1, singlePerQuestion: 0.5 },
        passes: [
          {
            name: 'self-play',
            temperature: 0.3,
            quote: 'solution' as const,
            restateQuestion: false,
            steps: 220,
            lr: 1e-3,
            warmup: 10,
          },
          {
            name: 'self-play-sparse',
            temperature: 0.7,
            quote: 'answer' as const,
            restateQuestion: true,
            steps: 220,
            lr: 1e-3,
            warmup: 10,
          },
        ],
      },
};

/** Round 1 of a 5-agent debate by the model in `modelDir` over `problems`, as trajectories. */
async function selfPlayRound(
  modelDir: string,
  problems: readonly Problem[],
  temperature: number,
  seed: number,
  out: string,
): Promise<void> {
  const runtime = await Runtime.load(modelDir, { maxBatch: 32, contextLength: DEMO.contextLength });
  try {
    await fs.rm(out, { force: true });
    const questions = problems.map((p) => ({
      id: p.id,
      question: p.question,
      answer: p.answer,
      task: 'gsm8k' as const,
    }));
    const t0 = performance.now();
    await runDebateSet(
      questions,
      {
        numAgents: 5,
        rounds: 1,
        aggregator: 'vote',
        promptStyle: 'compact',
        temperature,
        max_tokens: 64,
        seed,
        concurrency: 6,
        engines: new LocalEngine(runtime),
      },
      {
        out,
        onRecord: (_r, i) =>
          void (
            i.done % 100 === 0 &&
            console.error(
              `self-play: ${i.done}/${i.total} questions, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
            )
          ),
      },
    );
  } finally {
    runtime.dispose();
  }
}

/** One `agentark train` run, its output appended to the training log. */
async function runTrain(args: string[], log: fs.FileHandle): Promise<void> {
  await log.write(`# ${new Date().toISOString()} node ${args.slice(1).join(' ')}\n`);
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stderr.on('data', (d: Buffer) => {
      process.stderr.write(d);
      void log.write(d.toString());
    });
    child.stdout.on('data', (d: Buffer) => {
      process.stdout.write(d);
      void log.write(d.toString());
    });
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new Error(`training exited with ${code}; rerun to resume from the last checkpoint`);
}

async function main(): Promise<void> {
  const out = path.resolve(ROOT, process.env.DEMO_OUT ?? 'public/models/default');
  const work = path.resolve(ROOT, process.env.DEMO_WORK ?? '.cache/demo-train');
  const base = path.join(work, 'base');
  await fs.mkdir(base, { recursive: true });
  const dataDir = path.resolve(ROOT, 'public/data');
  const { train, test } = await writeQuestionSets(dataDir, {
    seed: DEMO.seed,
    difficulty: DEMO.difficulty,
    trainCount: DEMO.trainProblems,
    testCount: DEMO.testProblems,
  });
  await fs.rename(path.join(dataDir, 'train.jsonl'), path.join(dataDir, 'demo-train.jsonl')).catch(() => {});
  await fs.rename(path.join(dataDir, 'test.jsonl'), path.join(dataDir, 'demo-test.jsonl')).catch(() => {});
  const rows = demoCorpus({ seed: DEMO.seed, problems: train, prompts: COMPACT_DEBATE_PROMPTS, mix: DEMO.mix });
  const tok = buildDemoTokenizer(rows.map(renderRow), { vocabSize: DEMO.vocabSize });
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    vocab_size: tok.size,
    ...DEMO.model,
    head_dim: DEMO.model.hidden_size / DEMO.model.num_attention_heads,
    hidden_act: 'silu',
    max_position_embeddings: DEMO.contextLength,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    attention_bias: false,
    mlp_bias: false,
    initializer_range: 0.02,
    bos_token_id: null,
    eos_token_id: tok.ids.imEnd,
    pad_token_id: tok.ids.endoftext,
    torch_dtype: 'float32',
  };
  await fs.writeFile(path.join(base, 'config.json'), JSON.stringify(config, null, 2));
  await fs.writeFile(path.join(base, 'tokenizer.json'), JSON.stringify(tok.tokenizerJson));
  await fs.writeFile(path.join(base, 'tokenizer_config.json'), JSON.stringify(tok.tokenizerConfig, null, 2));
  // Sampling as the demo runs it (debate agents, single agent and students alike).
  const generationConfig = JSON.stringify(
    { eos_token_id: tok.ids.imEnd, pad_token_id: tok.ids.endoftext, temperature: DEMO.temperature, do_sample: true },
    null,
    2,
  );
  await fs.writeFile(path.join(base, 'generation_config.json'), generationConfig);
  const corpus = path.join(work, 'corpus.jsonl');
  await fs.writeFile(corpus, toTrainingJsonl(rows, { stripMeta: true }));
  console.error(
    `demo: ${train.length} train / ${test.length} test problems, ${rows.length} corpus rows, tokenizer ${tok.size} tokens`,
  );

  const t = DEMO.train;
  const startFrom = process.env.DEMO_START_FROM ? path.resolve(process.env.DEMO_START_FROM) : null;
  const logPath = path.join(work, 'training-log.txt');
  // Starting from a shipped model continues its log.
  if (startFrom)
    await fs.copyFile(path.join(startFrom, 'training-log.txt'), logPath, fs.constants.COPYFILE_EXCL).catch(() => {});
  const log = await fs.open(logPath, 'a');
  const common = [
    '--batch',
    String(t.batch),
    '--schedule',
    t.schedule,
    '--context-length',
    String(DEMO.contextLength),
    '--group-by-length',
    '--checkpoint-every',
    '25',
    '--resume',
  ];
  let final = startFrom ?? path.join(work, 'trained');
  try {
    for (const stage of startFrom ? [] : DEMO.stages) {
      await runTrain(
        [
          path.join(ROOT, 'bin/agentark.js'),
          'train',
          '--model',
          base,
          '--from-scratch',
          '--mode',
          'full',
          '--data',
          corpus,
          '--out',
          final,
          '--steps',
          String(stage.steps),
          '--stop-after',
          String(stage.stopAfter),
          '--lr',
          String(t.lr),
          '--warmup',
          String(t.warmup),
          '--seed',
          String(DEMO.seed),
          ...common,
        ],
        log,
      );
    }
    const ds = startFrom ? null : DEMO.debateStage;
    if (ds) {
      const dsCorpus = path.join(work, 'corpus-debate.jsonl');
      await fs.writeFile(
        dsCorpus,
        toTrainingJsonl(
          demoCorpus({
            seed: ds.seed,
            problems: train.slice(0, ds.problems),
            prompts: COMPACT_DEBATE_PROMPTS,
            mix: ds.mix,
          }),
          { stripMeta: true },
        ),
      );
      const from = final;
      final = path.join(work, 'trained-debate');
      await runTrain(
        [
          path.join(ROOT, 'bin/agentark.js'),
          'train',
          '--model',
          from,
          '--mode',
          'full',
          '--data',
          dsCorpus,
          '--out',
          final,
          '--steps',
          String(ds.steps),
          '--lr',
          String(ds.lr),
          '--warmup',
          String(ds.warmup),
          '--seed',
          String(ds.seed),
          ...common,
        ],
        log,
      );
    }
    const sp = DEMO.selfPlay;
    if (sp) {
      for (const [k, pass] of sp.passes.entries()) {
        // Each pass: the current model answers its own slice of fresh problems (round 1, on
        // policy); a finished round from an interrupted run is reused (generating it takes minutes).
        const trajectories = path.join(work, `${pass.name}-round1.jsonl`);
        const done = await readTrajectories(trajectories).then(
          (r) => r.length,
          () => 0,
        );
        const from0 = sp.from + k * sp.problems;
        if (done !== sp.problems)
          await selfPlayRound(
            final,
            train.slice(from0, from0 + sp.problems),
            pass.temperature,
            sp.seed + k,
            trajectories,
          );
        const spRows = selfPlayRows(await readTrajectories(trajectories), {
          seed: sp.seed,
          prompts: COMPACT_DEBATE_PROMPTS,
          quote: pass.quote,
          restateQuestion: pass.restateQuestion,
          ...sp.rows,
        });
        const spCorpus = path.join(work, `corpus-${pass.name}.jsonl`);
        await fs.writeFile(spCorpus, toTrainingJsonl(spRows, { stripMeta: true }));
        await log.write(
          `# ${pass.name}: ${sp.problems} problems answered by ${path.relative(ROOT, final)} at temperature ${pass.temperature}; ` +
            `peers quoted as ${pass.quote}s${pass.restateQuestion ? ', question restated' : ''}; ${spRows.length} rows\n`,
        );
        const from = final;
        final = path.join(work, `trained-${pass.name}`);
        await runTrain(
          [
            path.join(ROOT, 'bin/agentark.js'),
            'train',
            '--model',
            from,
            '--mode',
            'full',
            '--data',
            spCorpus,
            '--out',
            final,
            '--steps',
            String(pass.steps),
            '--lr',
            String(pass.lr),
            '--warmup',
            String(pass.warmup),
            '--seed',
            String(sp.seed),
            ...common,
          ],
          log,
        );
      }
    }
  } finally {
    await log.close();
  }
  await fs.mkdir(out, { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    await fs.copyFile(path.join(final, f), path.join(out, f));
  }
  await fs.writeFile(path.join(out, 'generation_config.json'), generationConfig);
  // The model card (README.md beside the weights) is kept by hand: it records measurements.
  await fs.copyFile(path.join(work, 'training-log.txt'), path.join(out, 'training-log.txt'));
  console.error(`demo model written to ${out}`);
}

await main();
