/** `agentark rl`: RL on the student's LoRA with verifiable + PRM rewards (PAD step c). */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Runtime } from '../engine/local';
import { loadPeftAdapter, serializePeftAdapter } from '../formats/peft';
import { loadQuestions } from '../tasks/datasets';
import { grade, type Task } from '../tasks/answers';
import { studentMessages } from '../tasks/prompts';
import { parsePrmHead, scoreSolution, splitSteps } from '../distill/prm';
import { DEFAULT_RL_OPTIONS, runRl, type RlPrompt } from '../distill/rl';
import { DEFAULT_TRAIN_OPTIONS, Trainer } from '../train/trainer';
import { writeFilesAtomically } from '../train/checkpoint';
import type { Projection } from '../model/llama';
import { floatFlag, intFlag, parseFlags, runtimeOptions, RUNTIME_FLAGS, stderrProgress, UsageError } from './args';

export const USAGE = `usage: agentark rl --model DIR --data questions.jsonl --task gsm8k --out ADAPTER_DIR
       [--init-adapter DIR] [--prm PRM_DIR] [--prm-weight 0.5] [--group-size 4] [--prompts-per-step 2]
       [--steps 10] [--ppo-epochs 2] [--lr 1e-4] [--clip 0.2] [--kl 0.04] [--max-tokens 128]
       [--temperature 1] [--rank 8] [--alpha 16] [--targets q_proj,v_proj] [--limit N] [--seed S]
       [--quantize q8|q4] [--backend webgpu|cpu] [--dtype auto|f16|f32]
  reward = 1 for a correct final answer + prm-weight x (PRM score of the weakest step)`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(
    argv,
    {
      ...RUNTIME_FLAGS,
      data: { type: 'string' }, task: { type: 'string' }, out: { type: 'string' }, 'init-adapter': { type: 'string' }, prm: { type: 'string' },
      'prm-weight': { type: 'string' }, 'group-size': { type: 'string' }, 'prompts-per-step': { type: 'string' }, steps: { type: 'string' },
      'ppo-epochs': { type: 'string' }, lr: { type: 'string' }, clip: { type: 'string' }, kl: { type: 'string' }, 'max-tokens': { type: 'string' },
      temperature: { type: 'string' }, rank: { type: 'string' }, alpha: { type: 'string' }, targets: { type: 'string' }, limit: { type: 'string' }, seed: { type: 'string' },
    },
    USAGE,
  );
  if (!v) return 0;
  for (const req of ['model', 'data', 'out'] as const) if (!v[req]) throw new UsageError(`--${req} is required`);
  const task = ((v.task as string | undefined) ?? 'gsm8k') as Task;
  const questions = await loadQuestions(v.data as string, task, { limit: intFlag(v.limit as string | undefined, 'limit') });
  const opts = { ...runtimeOptions(v), adapter: undefined };
  const runtime = await Runtime.load(v.model as string, { ...opts, dtype: opts.dtype === 'auto' ? 'f32' : opts.dtype, maxBatch: 16, onProgress: stderrProgress('load') });
  const prompts: RlPrompt[] = questions.map((q) => ({ id: q.id, prompt: runtime.promptIds(studentMessages(task, q)) }));
  const byId = new Map(questions.map((q) => [q.id, q]));
  const steps = intFlag(v.steps as string | undefined, 'steps', 10);
  const ppoEpochs = intFlag(v['ppo-epochs'] as string | undefined, 'ppo-epochs', 2);
  const init = v['init-adapter'] ? await loadPeftAdapter(v['init-adapter'] as string) : undefined;
  const trainer = new Trainer(runtime.model, prompts.map((p) => ({ inputIds: p.prompt, labels: p.prompt })), {
    ...DEFAULT_TRAIN_OPTIONS,
    mode: 'lora',
    rank: intFlag(v.rank as string | undefined, 'rank', 8),
    alpha: floatFlag(v.alpha as string | undefined, 'alpha', 16)!,
    targets: ((v.targets as string | undefined)?.split(',') ?? ['q_proj', 'v_proj']) as Projection[],
    lr: floatFlag(v.lr as string | undefined, 'lr', 1e-4)!,
    schedule: 'constant',
    steps: steps * ppoEpochs,
    seed: intFlag(v.seed as string | undefined, 'seed', 0),
  }, init);
  const prm = v.prm ? parsePrmHead(new Uint8Array(await fs.readFile(path.join(v.prm as string, 'prm_head.safetensors')))) : null;
  const prmWeight = floatFlag(v['prm-weight'] as string | undefined, 'prm-weight', 0.5)!;
  const reports = await runRl(
    runtime,
    trainer,
    prompts,
    async (s) => {
      const q = byId.get(s.prompt.id)!;
      const verifiable = grade(task, s.text, q.answer).correct ? 1 : 0;
      if (!prm) return verifiable;
      const { solution } = await scoreSolution(runtime, prm, q.question, splitSteps(s.text));
      return verifiable + prmWeight * solution;
    },
    {
      ...DEFAULT_RL_OPTIONS,
      steps,
      ppoEpochs,
      groupSize: intFlag(v['group-size'] as string | undefined, 'group-size', 4),
      promptsPerStep: intFlag(v['prompts-per-step'] as string | undefined, 'prompts-per-step', 2),
      maxTokens: intFlag(v['max-tokens'] as string | undefined, 'max-tokens', 128),
      clip: floatFlag(v.clip as string | undefined, 'clip', 0.2)!,
      klCoef: floatFlag(v.kl as string | undefined, 'kl', 0.04)!,
      sampling: { temperature: floatFlag(v.temperature as string | undefined, 'temperature', 1)! },
      seed: intFlag(v.seed as string | undefined, 'seed', 0),
    },
    (r) => process.stderr.write(`rl step ${r.step}/${steps} reward ${r.meanReward.toFixed(3)} kl ${r.meanKl.toFixed(4)} clip ${r.clipFraction.toFixed(2)}\n`),
  );
  await writeFilesAtomically(v.out as string, serializePeftAdapter(await trainer.adapter()));
  console.log(JSON.stringify({ steps: reports.length, meanReward: reports.map((r) => r.meanReward), out: v.out }));
  trainer.dispose();
  runtime.dispose();
  return 0;
}
