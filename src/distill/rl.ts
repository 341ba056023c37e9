/**
 * RL on the student's LoRA (PAD step c), all on the device that runs the student: for each prompt
 * sample G completions with the current adapter, reward them, and optimise the PPO-clip objective.
 * Two reward modes:
 *
 * - `prmvr` (default; AgentArk's GRPO run: `openrlhf` PURE trainer, `--reward_mode PRMVR
 *   --advantage_estimator rloo --reward_baseline token --init_kl_coef 0.001`): the completion is
 *   split into steps at tokens ending in "\n\n"; each step gets the PRM's P(correct) − P(wrong)
 *   at its last token, weighted towards the weakest step (softmin over the completion's steps,
 *   temperature 0.1: the weighted sum approximates the minimum); a leave-one-out baseline (the
 *   other samples' process reward per token, times the step's tokens) is subtracted at each step
 *   end; the verifiable reward (0 right, −1 wrong) minus the other samples' mean goes to the last
 *   token (coefficient 1.0); the KL to the base (log π − log π_base per token, coefficient 0.001)
 *   is subtracted from every token's reward; the advantage of a token is its return (the sum of
 *   the rewards from it to the end), zero on step-end tokens; PPO-clip 0.2 per token, averaged
 *   over each sequence's tokens, then over sequences.
 * - `scalar` (this project's earlier mode): one number per completion, RLOO advantages for every
 *   token, and the KL to the base as a loss term (k3 estimator, as in GRPO), token-mean
 *   normalised.
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
  /** 'prmvr' (default) or 'scalar': see the module comment. */
  rewardMode?: 'prmvr' | 'scalar';
  /** prmvr: softmin temperature over the steps' process rewards (default 0.1). */
  softminTemperature?: number;
  /** prmvr: coefficient of the verifiable reward (default 1.0). */
  verifiableCoef?: number;
  groupSize: number;
  promptsPerStep: number;
  steps: number;
  maxTokens: number;
  sampling: SamplingParams;
  /** PPO clip range ε. */
  clip: number;
  /** KL coefficient β towards the base model: in the reward (prmvr) or the loss (scalar). */
  klCoef: number;
  /** Optimisation passes over each batch of samples (ratio ≠ 1 from the second on). */
  ppoEpochs: number;
  seed: number;
}

/** The scalar mode's settings (KL as a k3 loss term, 0.04). */
export const DEFAULT_RL_OPTIONS: RlOptions = {
  rewardMode: 'scalar',
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

/** AgentArk's GRPO settings (README: `--n_samples_per_prompt 8 --temperature 0.5 --init_kl_coef 0.001`, PRMVR, RLOO). */
export const PAPER_RL_OPTIONS: RlOptions = {
  rewardMode: 'prmvr',
  softminTemperature: 0.1,
  verifiableCoef: 1.0,
  groupSize: 8,
  promptsPerStep: 2,
  steps: 10,
  maxTokens: 256,
  sampling: { temperature: 0.5, topP: 1 },
  clip: 0.2,
  klCoef: 0.001,
  ppoEpochs: 1,
  seed: 0,
};

/** What the prmvr reward callback returns for one completion. */
export interface ProcessReward {
  /** P(correct) − P(wrong) of each step, in [−1, 1] (one per step passed in). */
  stepScores: number[];
  /** Whether the final answer is right; null when there is no reference (verifiable reward 0). */
  correct: boolean | null;
}

/** A completion's steps: token spans ending at a token whose text ends in "\n\n", the last at the last token. */
export function stepSpans(
  tokens: readonly number[],
  decodeToken: (id: number) => string,
): { start: number; end: number; separator: boolean }[] {
  const spans: { start: number; end: number; separator: boolean }[] = [];
  let start = 0;
  for (let i = 0; i < tokens.length; i++) {
    if (decodeToken(tokens[i]!).endsWith('\n\n')) {
      spans.push({ start, end: i, separator: true });
      start = i + 1;
    }
  }
  if (start < tokens.length || !spans.length)
    spans.push({ start, end: Math.max(tokens.length - 1, 0), separator: false });
  else spans[spans.length - 1]!.separator = false; // the last token ends the completion (PURE marks it as the eos step)
  return spans;
}

/** softmax(−r/T)·r per step: the weighted sum approximates min(r) as T → 0 (PURE's min-form credit assignment). */
export function softminWeighted(scores: readonly number[], temperature: number): number[] {
  if (!scores.length) return [];
  const z = scores.map((r) => -r / temperature);
  const m = Math.max(...z);
  const e = z.map((x) => Math.exp(x - m));
  const sum = e.reduce((a, b) => a + b, 0);
  return scores.map((r, k) => (e[k]! / sum) * r);
}

export interface PrmvrSample {
  /** Completion length in tokens. */
  length: number;
  /** Token index where each step ends (its reward position) and its number of tokens before that. */
  steps: { end: number; tokens: number }[];
  /** Raw process scores per step, P(correct) − P(wrong). */
  scores: number[];
  /** 0 right, −1 wrong, 0 without a reference. */
  verifiable: number;
}

/**
 * The token rewards of one prompt's group before the KL term (PURE's `process_experiences` with
 * `reward_baseline token`): softmin-weighted process rewards at step ends minus the leave-one-out
 * per-token baseline times the step's tokens, plus the leave-one-out verifiable reward at the last token.
 */
export function prmvrGroupRewards(
  group: readonly PrmvrSample[],
  opts: { temperature?: number; verifiableCoef?: number } = {},
): Float64Array[] {
  const T = opts.temperature ?? 0.1;
  const coef = opts.verifiableCoef ?? 1.0;
  const g = group.length;
  const weighted = group.map((s) => softminWeighted(s.scores, T));
  const outcome = weighted.map((w) => w.reduce((a, b) => a + b, 0));
  const totalOutcome = outcome.reduce((a, b) => a + b, 0);
  const totalLength = group.reduce((a, s) => a + s.length, 0);
  const totalVr = group.reduce((a, s) => a + s.verifiable, 0);
  return group.map((s, i) => {
    const r = new Float64Array(s.length);
    const otherLen = totalLength - s.length;
    const perToken = g > 1 && otherLen > 0 ? (totalOutcome - outcome[i]!) / otherLen : 0;
    s.steps.forEach((st, k) => {
      r[st.end] += weighted[i]![k]! - perToken * st.tokens;
    });
    const vrBaseline = g > 1 ? (totalVr - s.verifiable) / (g - 1) : 0;
    if (s.length) r[s.length - 1] += coef * (s.verifiable - vrBaseline);
    return r;
  });
}

/** Returns (reverse cumulative sums) of token rewards, zeroed on step-end tokens (PURE masks their advantage). */
export function tokenAdvantages(rewards: Float64Array, stepEnds: readonly number[]): Float64Array {
  const adv = new Float64Array(rewards.length);
  let acc = 0;
  for (let t = rewards.length - 1; t >= 0; t--) {
    acc += rewards[t]!;
    adv[t] = acc;
  }
  for (const e of stepEnds) if (e < adv.length) adv[e] = 0;
  return adv;
}

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
export function ppoTokenGradient(
  logp: number,
  oldLogp: number,
  refLogp: number,
  advantage: number,
  clip: number,
  klCoef: number,
): { grad: number } & PpoTokenStats {
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
  reward: (s: RlSample & { steps: string[] }) => Promise<number | ProcessReward> | number | ProcessReward,
  opts: RlOptions,
  onStep?: (r: RlStepReport) => void,
): Promise<RlStepReport[]> {
  if (trainer.set.mode !== 'lora') throw new Error('RL trains the student LoRA: use a LoRA trainer');
  if (opts.groupSize < 2) throw new Error('RLOO needs at least 2 samples per prompt (--samples)');
  const mode = opts.rewardMode ?? 'scalar';
  const policy = runtime.model.getAdapter();
  const tok = mode === 'prmvr' ? runtime.requireTokenizer() : null;
  const decodeToken = (id: number) => tok!.decode([id], { skipSpecialTokens: false });
  const reports: RlStepReport[] = [];
  let cursor = 0;
  for (let step = 1; step <= opts.steps; step++) {
    const batchPrompts = Array.from(
      { length: Math.min(opts.promptsPerStep, prompts.length) },
      () => prompts[cursor++ % prompts.length],
    );
    // 1. Sample G completions per prompt with the current policy (one batched decode).
    const samples: RlSample[] = [];
    const gens = await Promise.all(
      batchPrompts.flatMap((p, pi) =>
        Array.from({ length: opts.groupSize }, (_, g) =>
          runtime
            .generate({
              prompt: p.prompt,
              maxTokens: opts.maxTokens,
              sampling: { ...opts.sampling, seed: opts.seed * 1_000_003 + step * 1009 + pi * 101 + g },
            })
            .then((r) => ({ p, r })),
        ),
      ),
    );
    for (const { p, r } of gens) samples.push({ prompt: p, tokens: r.tokens.length ? r.tokens : [], text: r.text });
    // 2. Rewards (a PRM reads the base: stepFeatures switches the adapter off).
    const spans = samples.map((s) => (mode === 'prmvr' && s.tokens.length ? stepSpans(s.tokens, decodeToken) : []));
    const stepTexts = samples.map((s, i) =>
      mode === 'prmvr'
        ? spans[i]!.map((sp) =>
            tok!
              .decode(s.tokens.slice(sp.start, sp.separator ? sp.end : sp.end + 1), { skipSpecialTokens: true })
              .trim(),
          )
        : [],
    );
    const raw = await Promise.all(samples.map((s, i) => reward({ ...s, steps: stepTexts[i]! })));
    let rewards: number[];
    let tokenRewards: Float64Array[] | null = null;
    const advantages: number[] = [];
    if (mode === 'prmvr') {
      const pr = raw.map((r) => {
        if (typeof r === 'number')
          throw new Error('rewardMode prmvr: the reward callback must return {stepScores, correct}');
        return r;
      });
      tokenRewards = [];
      for (let pi = 0; pi < batchPrompts.length; pi++) {
        const group = samples.slice(pi * opts.groupSize, (pi + 1) * opts.groupSize).map((s, g): PrmvrSample => {
          const i = pi * opts.groupSize + g;
          const sp = spans[i]!;
          const scores = pr[i]!.stepScores;
          if (scores.length !== sp.length)
            throw new Error(`rewardMode prmvr: ${scores.length} step scores for ${sp.length} steps`);
          return {
            length: s.tokens.length,
            steps: sp.map((x) => ({ end: x.end, tokens: x.end - x.start })),
            scores,
            verifiable: pr[i]!.correct === false ? -1 : 0,
          };
        });
        tokenRewards.push(
          ...prmvrGroupRewards(group, { temperature: opts.softminTemperature, verifiableCoef: opts.verifiableCoef }),
        );
      }
      rewards = tokenRewards.map((r) => r.reduce((a, b) => a + b, 0));
      advantages.push(...rewards.map(() => 0));
    } else {
      rewards = raw.map((r) => {
        if (typeof r !== 'number') throw new Error('rewardMode scalar: the reward callback must return a number');
        return r;
      });
      for (let pi = 0; pi < batchPrompts.length; pi++) {
        advantages.push(...leaveOneOutAdvantages(rewards.slice(pi * opts.groupSize, (pi + 1) * opts.groupSize)));
      }
    }
    // 3. Old (policy) and reference (base) log-probabilities of the sampled tokens.
    const kept = samples.map((s, i) => ({ s, a: advantages[i]!, i })).filter((x) => x.s.tokens.length > 0);
    const old: Float32Array[] = [];
    const ref: Float32Array[] = [];
    for (const { s } of kept) old.push(await completionLogprobs(runtime, s.prompt.prompt, s.tokens));
    runtime.model.setAdapter(null);
    for (const { s } of kept) ref.push(await completionLogprobs(runtime, s.prompt.prompt, s.tokens));
    runtime.model.setAdapter(policy);
    // prmvr: KL to the base in the reward (k1: log π − log π_base per token), then per-token advantages.
    const tokenAdv = tokenRewards
      ? kept.map(({ s, i }, k) => {
          const r = Float64Array.from(tokenRewards![i]!);
          for (let j = 0; j < s.tokens.length; j++) r[j] -= opts.klCoef * (old[k]![j]! - ref[k]![j]!);
          return tokenAdvantages(
            r,
            spans[i]!.map((sp) => sp.end),
          );
        })
      : null;
    // 4. PPO epochs: one micro-batch per sample (sequences differ in length); scalar: token-mean
    // loss with the KL term; prmvr: each sequence's token mean, averaged over sequences.
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
          const t = tokenAdv
            ? ppoTokenGradient(logp[start + j]!, old[index]![j]!, ref[index]![j]!, tokenAdv[index]![j]!, opts.clip, 0)
            : ppoTokenGradient(logp[start + j]!, old[index]![j]!, ref[index]![j]!, a, opts.clip, opts.klCoef);
          w[start + j] = tokenAdv ? t.grad / (s.tokens.length * kept.length) : t.grad / totalTokens;
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
