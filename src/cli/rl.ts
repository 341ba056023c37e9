/**
 * `agentark rl`: RL on the student's LoRA with verifiable + PRM rewards (PAD step c). Defaults
 * follow AgentArk's GRPO run (PRMVR step rewards, RLOO over 8 samples, KL 0.001 in the reward,
 * PPO-clip 0.2, from the base model); `--reward scalar` is this project's earlier mode.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Runtime } from '../engine/local';
import { loadPeftAdapter, serializePeftAdapter } from '../formats/peft';
import { loadQuestions } from '../tasks/datasets';
import { grade, type Task } from '../tasks/answers';
import { formatQuestion, studentMessages } from '../tasks/prompts';
import { parsePrmHead, scoreFeature, scoreSolution, splitSteps, stepFeatures } from '../distill/prm';
import { DEFAULT_RL_OPTIONS, PAPER_RL_OPTIONS, runRl, type RlPrompt } from '../distill/rl';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../train/trainer';
import { writeFilesAtomically } from '../train/checkpoint';
import type { Projection } from '../formats/config';
import { floatFlag, intFlag, parseFlags, runtimeOptions, RUNTIME_FLAGS, stderrProgress, UsageError } from './args';
import { DATA_FLAGS, DATA_HELP, dataOptions } from './data-flags';

export const USAGE = `usage: agentark rl --model DIR --data questions.jsonl --task gsm8k --out ADAPTER_DIR [options]

  --reward M             prmvr (default: AgentArk's PRMVR — PRM score P(correct) − P(wrong) at each
                         "\\n\\n"-separated step's last token, softmin-weighted towards the weakest step,
                         plus the verifiable reward 0 right / −1 wrong at the last token, RLOO baselines,
                         KL to the base subtracted from the reward) | scalar (this project's earlier mode:
                         1 for a right answer + prm-weight x the weakest step's PRM score, KL as a loss term)
  --prm DIR              the PRM head (agentark prm train); prmvr without it: verifiable reward only
  --init-adapter DIR     start from this LoRA ("R-SFT then RL"); default: from the base model, as the
                         paper's GRPO run (a fresh LoRA, B = 0)
  --samples N            completions per prompt, the RLOO group (default 8; --group-size is an alias)
  --kl X                 KL coefficient (default prmvr 0.001, in the reward; scalar 0.04, in the loss)
  --softmin-temperature T  prmvr: temperature of the weakest-step weighting (default 0.1)
  --vr-coef X            prmvr: coefficient of the verifiable reward (default 1.0)
  --clip E               PPO clip range (default 0.2)
  --temperature T        sampling temperature (default prmvr 0.5, scalar 1)
  --max-tokens N         tokens per completion (default prmvr 256, scalar 128)
  --ppo-epochs N         optimisation passes per batch (default prmvr 1, scalar 2)
  --prm-weight X         scalar: weight of the PRM score (default 0.5)
  --prompts-per-step N   prompts per RL step (default 2)
  --steps N              RL steps (default 10)
  --lr X                 learning rate (default 1e-4)
  --rank R --alpha A --targets q_proj,v_proj   the LoRA (default 8, 16, q_proj,v_proj)
  --limit N --seed S
  --quantize q8|q4 --backend webgpu|cpu --dtype auto|f16|f32   the base model's runtime
${DATA_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(
    argv,
    {
      ...RUNTIME_FLAGS,
      ...DATA_FLAGS,
      data: { type: 'string' },
      task: { type: 'string' },
      out: { type: 'string' },
      'init-adapter': { type: 'string' },
      prm: { type: 'string' },
      'prm-weight': { type: 'string' },
      'group-size': { type: 'string' },
      samples: { type: 'string' },
      reward: { type: 'string' },
      'softmin-temperature': { type: 'string' },
      'vr-coef': { type: 'string' },
      'prompts-per-step': { type: 'string' },
      steps: { type: 'string' },
      'ppo-epochs': { type: 'string' },
      lr: { type: 'string' },
      clip: { type: 'string' },
      kl: { type: 'string' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      rank: { type: 'string' },
      alpha: { type: 'string' },
      targets: { type: 'string' },
      limit: { type: 'string' },
      seed: { type: 'string' },
    },
    USAGE,
  );
  if (!v) return 0;
  for (const req of ['model', 'data', 'out'] as const) if (!v[req]) throw new UsageError(`--${req} is required`);
  const task = ((v.task as string | undefined) ?? 'gsm8k') as Task;
  const mode = ((v.reward as string | undefined) ?? 'prmvr') as 'prmvr' | 'scalar';
  if (mode !== 'prmvr' && mode !== 'scalar')
    throw new UsageError(`--reward must be prmvr or scalar, got '${v.reward}'\n\n${USAGE}`);
  if (v.samples && v['group-size']) throw new UsageError('--samples and --group-size are the same setting: give one');
  const base = mode === 'prmvr' ? PAPER_RL_OPTIONS : { ...DEFAULT_RL_OPTIONS, maxTokens: 128 };
  let dataOpts: ReturnType<typeof dataOptions>;
  try {
    dataOpts = dataOptions(v);
  } catch (e) {
    throw new UsageError(`${(e as Error).message}\n\n${USAGE}`);
  }
  const questions = await loadQuestions(v.data as string, task, {
    limit: intFlag(v.limit as string | undefined, 'limit'),
    ...dataOpts,
  });
  const opts = { ...runtimeOptions(v), adapter: undefined };
  const runtime = await Runtime.load(v.model as string, {
    ...opts,
    dtype: opts.dtype === 'auto' ? 'f32' : opts.dtype,
    maxBatch: 16,
    onProgress: stderrProgress('load'),
  });
  const prompts: RlPrompt[] = questions.map((q) => ({ id: q.id, prompt: runtime.promptIds(studentMessages(task, q)) }));
  const byId = new Map(questions.map((q) => [q.id, q]));
  const steps = intFlag(v.steps as string | undefined, 'steps', 10);
  const ppoEpochs = intFlag(v['ppo-epochs'] as string | undefined, 'ppo-epochs', base.ppoEpochs);
  const init = v['init-adapter'] ? await loadPeftAdapter(v['init-adapter'] as string) : undefined;
  const trainer = new Trainer(
    runtime.model,
    prompts.map((p) => ({ inputIds: p.prompt, labels: p.prompt })),
    {
      ...DEFAULT_TRAIN_OPTIONS,
      mode: 'lora',
      rank: intFlag(v.rank as string | undefined, 'rank', 8),
      alpha: floatFlag(v.alpha as string | undefined, 'alpha', 16)!,
      targets: ((v.targets as string | undefined)?.split(',') ?? ['q_proj', 'v_proj']) as Projection[],
      lr: floatFlag(v.lr as string | undefined, 'lr', 1e-4)!,
      schedule: 'constant',
      steps: steps * ppoEpochs,
      seed: intFlag(v.seed as string | undefined, 'seed', 0),
    },
    init,
  );
  const prm = v.prm
    ? parsePrmHead(new Uint8Array(await fs.readFile(path.join(v.prm as string, 'prm_head.safetensors'))))
    : null;
  const prmWeight = floatFlag(v['prm-weight'] as string | undefined, 'prm-weight', 0.5)!;
  const reports = await runRl(
    runtime,
    trainer,
    prompts,
    async (s) => {
      const q = byId.get(s.prompt.id)!;
      if (mode === 'prmvr') {
        const g = grade(task, s.text, q.answer);
        const correct = g.reference === null ? null : g.correct;
        if (!prm || !s.steps.length) return { stepScores: s.steps.map(() => 0), correct };
        // The PRM reads the base (stepFeatures switches the policy's adapter off), as it was fitted.
        const feats = await stepFeatures(runtime, {
          prompt: formatQuestion(q),
          completions: s.steps,
          labels: s.steps.map(() => true),
        });
        return { stepScores: feats.map((f) => 2 * scoreFeature(prm, f) - 1), correct };
      }
      const verifiable = grade(task, s.text, q.answer).correct ? 1 : 0;
      if (!prm) return verifiable;
      const { solution } = await scoreSolution(runtime, prm, q.question, splitSteps(s.text));
      return verifiable + prmWeight * solution;
    },
    {
      ...base,
      steps,
      ppoEpochs,
      groupSize: intFlag((v.samples ?? v['group-size']) as string | undefined, 'samples', base.groupSize),
      promptsPerStep: intFlag(v['prompts-per-step'] as string | undefined, 'prompts-per-step', base.promptsPerStep),
      maxTokens: intFlag(v['max-tokens'] as string | undefined, 'max-tokens', base.maxTokens),
      clip: floatFlag(v.clip as string | undefined, 'clip', base.clip)!,
      klCoef: floatFlag(v.kl as string | undefined, 'kl', base.klCoef)!,
      softminTemperature: floatFlag(v['softmin-temperature'] as string | undefined, 'softmin-temperature', 0.1)!,
      verifiableCoef: floatFlag(v['vr-coef'] as string | undefined, 'vr-coef', 1.0)!,
      sampling: {
        temperature: floatFlag(v.temperature as string | undefined, 'temperature', base.sampling.temperature)!,
      },
      seed: intFlag(v.seed as string | undefined, 'seed', 0),
    },
    (r) =>
      process.stderr.write(
        `rl step ${r.step}/${steps} reward ${r.meanReward.toFixed(3)} kl ${r.meanKl.toFixed(4)} clip ${r.clipFraction.toFixed(2)}\n`,
      ),
  );
  await writeFilesAtomically(v.out as string, serializePeftAdapter(await trainer.adapter()));
  console.log(
    JSON.stringify({
      reward: mode,
      from: v['init-adapter'] ? `adapter ${v['init-adapter']}` : 'base',
      steps: reports.length,
      meanReward: reports.map((r) => r.meanReward),
      out: v.out,
    }),
  );
  trainer.dispose();
  runtime.dispose();
  return 0;
}
