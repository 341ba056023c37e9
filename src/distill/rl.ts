/**
 * RL on the student's LoRA (PAD step c), all on the device that runs the student: for each prompt
 * sample G completions with the current adapter, reward each (verifiable reward + PRM step
 * rewards), take leave-one-out advantages (RLOO), and optimise the PPO-clip objective with a KL
 * penalty to the base model (k3 estimator, as in GRPO), token-mean normalised.
 */
import type { Runtime } from '../engine/local';
import type { SamplingParams } from '../engine/sampling';
import type { MicroBatch } from '../model/backward';
import type { Trainer } from '../train/trainer';

export interface RlPrompt {
  id: string;
  /** Prompt token ids (chat template already applied). */
  prompt: number[];
}

export interface RlSample {
  prompt: RlPrompt;
  tokens: number[];
  text: string;
}

export interface RlOptions {
  groupSize: number;
  promptsPerStep: number;
  steps: number;
  maxTokens: number;
  sampling: SamplingParams;
  /** PPO clip range ε. */
  clip: number;
  /** KL penalty β towards the base model. */
  klCoef: number;
  /** Optimisation passes over each batch of samples (ratio ≠ 1 from the second on). */
  ppoEpochs: number;
  seed: number;
}

export const DEFAULT_RL_OPTIONS: RlOptions = {
  groupSize: 4,
  promptsPerStep: 2,
  steps: 10,
  maxTokens: 64,
  sampling: { temperature: 1, topP: 1 },
  clip: 0.2,
  klCoef: 0.04,
  ppoEpochs: 2,
  seed: 0,
};

export interface RlStepReport {
  step: number;
  meanReward: number;
  meanKl: number;
  clipFraction: number;
  samples: number;
}

/** RLOO: each sample's reward minus the mean reward of the other samples of its prompt. */
export function leaveOneOutAdvantages(rewards: number[]): number[] {
  const g = rewards.length;
  if (g < 2) return rewards.map(() => 0);
  const sum = rewards.reduce((a, b) => a + b, 0);
  return rewards.map((r) => r - (sum - r) / (g - 1));
}

/** log p(token | prefix) of every completion token, from one forward pass over prompt + completion. */
async function completionLogprobs(runtime: Runtime, prompt: number[], completion: number[]): Promise<Float32Array> {
  const ids = [...prompt, ...completion];
  return (await runtime.tokenLogprobs(ids)).slice(prompt.length);
}

export interface PpoTokenStats {
  kl: number;
  clipped: boolean;
}

/**
 * d(loss)/d(logp) for one token of the PPO-clip + KL objective:
 * loss = −min(ρA, clip(ρ, 1−ε, 1+ε)A) + β·(e^(ref−logp) − (ref−logp) − 1), ρ = e^(logp − old).
 */
export function ppoTokenGradient(logp: number, oldLogp: number, refLogp: number, advantage: number, clip: number, klCoef: number): { grad: number } & PpoTokenStats {
  const ratio = Math.exp(logp - oldLogp);
  const unclipped = ratio * advantage;
  const clippedRatio = Math.min(Math.max(ratio, 1 - clip), 1 + clip);
  const clippedObj = clippedRatio * advantage;
  // The min picks the clipped branch only when it is strictly smaller; then the gradient is zero.
  const clipped = clippedObj < unclipped;
  const dObj = clipped ? 0 : ratio * advantage;
  const d = refLogp - logp;
  const kl = Math.exp(d) - d - 1;
  const dKl = 1 - Math.exp(d);
  return { grad: -dObj + klCoef * dKl, kl, clipped };
}

/**
 * Run RL. `trainer` must be a LoRA trainer over `runtime.model` (its adapter is the policy);
 * `reward` scores a sample (e.g. correctness + PRM). Returns one report per step.
 */
export async function runRl(
  runtime: Runtime,
  trainer: Trainer,
  prompts: RlPrompt[],
  reward: (s: RlSample) => Promise<number> | number,
  opts: RlOptions,
  onStep?: (r: RlStepReport) => void,
): Promise<RlStepReport[]> {
  if (trainer.set.mode !== 'lora') throw new Error('RL trains the student LoRA: use a LoRA trainer');
  if (opts.groupSize < 2) throw new Error('RLOO needs at least 2 samples per prompt (--group-size)');
  const policy = runtime.model.getAdapter();
  const reports: RlStepReport[] = [];
  let cursor = 0;
  for (let step = 1; step <= opts.steps; step++) {
    const batchPrompts = Array.from({ length: Math.min(opts.promptsPerStep, prompts.length) }, () => prompts[cursor++ % prompts.length]);
    // 1. Sample G completions per prompt with the current policy (one batched decode).
    const samples: RlSample[] = [];
    const gens = await Promise.all(
      batchPrompts.flatMap((p, pi) =>
        Array.from({ length: opts.groupSize }, (_, g) =>
          runtime.generate({ prompt: p.prompt, maxTokens: opts.maxTokens, sampling: { ...opts.sampling, seed: opts.seed * 1_000_003 + step * 1009 + pi * 101 + g } }).then((r) => ({ p, r })),
        ),
      ),
    );
    for (const { p, r } of gens) samples.push({ prompt: p, tokens: r.tokens.length ? r.tokens : [], text: r.text });
    // 2. Rewards and leave-one-out advantages within each prompt's group.
    const rewards = await Promise.all(samples.map((s) => reward(s)));
    const advantages: number[] = [];
    for (let pi = 0; pi < batchPrompts.length; pi++) {
      advantages.push(...leaveOneOutAdvantages(rewards.slice(pi * opts.groupSize, (pi + 1) * opts.groupSize)));
    }
    // 3. Old (policy) and reference (base) log-probabilities of the sampled tokens.
    const kept = samples.map((s, i) => ({ s, a: advantages[i] })).filter((x) => x.s.tokens.length > 0);
    const old: Float32Array[] = [];
    const ref: Float32Array[] = [];
    for (const { s } of kept) old.push(await completionLogprobs(runtime, s.prompt.prompt, s.tokens));
    runtime.model.setAdapter(null);
    for (const { s } of kept) ref.push(await completionLogprobs(runtime, s.prompt.prompt, s.tokens));
    runtime.model.setAdapter(policy);
    // 4. PPO epochs: one micro-batch per sample (sequences differ in length), token-mean loss.
    const totalTokens = kept.reduce((a, k) => a + k.s.tokens.length, 0);
    const batches: MicroBatch[] = kept.map(({ s }) => {
      const ids = [...s.prompt.prompt, ...s.tokens];
      const labels = ids.map((id, i) => (i < s.prompt.prompt.length ? -100 : id));
      return { inputIds: Uint32Array.from(ids), labels: Int32Array.from(labels), batch: 1, seqLen: ids.length };
    });
    let klSum = 0;
    let clippedCount = 0;
    let counted = 0;
    for (let epoch = 0; epoch < opts.ppoEpochs; epoch++) {
      await trainer.stepOn(batches, (index, logp) => {
        const { s, a } = kept[index];
        const start = s.prompt.prompt.length - 1; // row predicting the first completion token
        const w = new Float32Array(logp.length);
        for (let j = 0; j < s.tokens.length; j++) {
          const t = ppoTokenGradient(logp[start + j], old[index][j], ref[index][j], a, opts.clip, opts.klCoef);
          w[start + j] = t.grad / totalTokens;
          if (epoch === opts.ppoEpochs - 1) {
            klSum += t.kl;
            clippedCount += t.clipped ? 1 : 0;
            counted++;
          }
        }
        return w;
      });
    }
    const report: RlStepReport = {
      step,
      meanReward: rewards.reduce((x, y) => x + y, 0) / rewards.length,
      meanKl: counted ? klSum / counted : 0,
      clipFraction: counted ? clippedCount / counted : 0,
      samples: samples.length,
    };
    reports.push(report);
    onStep?.(report);
  }
  return reports;
}
