/**
 * Process reward model (PAD step b): a small logistic head on the FROZEN student's final hidden
 * states. Each PAD row (TRL stepwise format: prompt, completions[] = steps, labels[]) gives one
 * example per step: the hidden state at the last token of "prompt + steps[0..k]" (computed on
 * WebGPU by the student itself) → label k. The head is trained with AdamW on binary cross-entropy
 * (a few hundred parameters: on the host); scoring a solution reads the same hidden states.
 */
import type { Runtime } from '../engine/local';
import { tokenLogprobs } from '../engine/sampling';
import { Rng } from '../util/random';
import { writeSafetensors, readSafetensors } from '../formats/safetensors';

export interface StepwiseRow {
  prompt: string;
  completions: string[];
  labels: boolean[];
  id?: string;
}

export interface PrmHead {
  weight: Float32Array; // [hidden]
  bias: number;
  /** Feature standardisation (per dimension), fitted on the training features. */
  mean: Float32Array;
  std: Float32Array;
}

export const STEP_SEPARATOR = '\n\n';

/** Token positions where each step ends, and the ids of the whole text. */
export function stepEnds(runtime: Runtime, row: StepwiseRow): { ids: number[]; ends: number[] } {
  const tok = runtime.requireTokenizer();
  let text = row.prompt;
  const ends: number[] = [];
  let ids: number[] = [];
  row.completions.forEach((step, k) => {
    text += (k === 0 ? '\n' : STEP_SEPARATOR) + step;
    ids = tok.encode(text, { addSpecialTokens: false });
    ends.push(ids.length - 1);
  });
  return { ids, ends };
}

/**
 * Features of each step from the frozen student: its final hidden state at the step's last token,
 * plus the student's own confidence in the step's tokens (mean and minimum log-probability, read
 * from its LM head) — a model that has learnt the task finds a wrong step surprising. Long rows
 * keep their last tokens.
 */
export async function stepFeatures(runtime: Runtime, row: StepwiseRow): Promise<Float32Array[]> {
  let { ids, ends } = stepEnds(runtime, row);
  const ctx = runtime.generator.contextLength;
  if (ids.length > ctx) {
    const cut = ids.length - ctx;
    ids = ids.slice(cut);
    ends = ends.map((e) => e - cut);
  }
  const valid = ends.map((e) => Math.max(0, e));
  const h = await runtime.hidden(ids, valid);
  const logp = await runtime.tokenLogprobs(ids);
  const H = runtime.model.config.hiddenSize;
  return valid.map((end, k) => {
    const start = k === 0 ? 1 : valid[k - 1] + 1;
    let sum = 0;
    let min = 0;
    for (let t = start; t <= end; t++) {
      sum += logp[t];
      min = Math.min(min, logp[t]);
    }
    const f = new Float32Array(H + 2);
    f.set(h.subarray(k * H, (k + 1) * H));
    f[H] = end >= start ? sum / (end - start + 1) : 0;
    f[H + 1] = min;
    return f;
  });
}

function sigmoid(z: number): number {
  return z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z));
}

export function scoreFeature(head: PrmHead, f: Float32Array): number {
  let z = head.bias;
  for (let i = 0; i < f.length; i++) z += head.weight[i] * ((f[i] - head.mean[i]) / head.std[i]);
  return sigmoid(z);
}

export interface PrmTrainOptions {
  epochs?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  onProgress?: (epoch: number, loss: number) => void;
}

/** Fit the head (AdamW on class-balanced BCE). */
export function fitPrmHead(features: Float32Array[], labels: boolean[], opts: PrmTrainOptions = {}): { head: PrmHead; losses: number[] } {
  if (!features.length) throw new Error('no PRM training examples (are the PAD rows empty?)');
  const H = features[0].length;
  const n = features.length;
  const mean = new Float32Array(H);
  const std = new Float32Array(H);
  for (const f of features) for (let i = 0; i < H; i++) mean[i] += f[i] / n;
  for (const f of features) for (let i = 0; i < H; i++) std[i] += (f[i] - mean[i]) ** 2 / n;
  for (let i = 0; i < H; i++) std[i] = Math.sqrt(std[i]) + 1e-6;
  const x = features.map((f) => Float32Array.from(f, (v, i) => (v - mean[i]) / std[i]));
  const pos = labels.filter(Boolean).length;
  // Class weights so the head does not just learn the majority label.
  const wPos = pos ? n / (2 * pos) : 1;
  const wNeg = n - pos ? n / (2 * (n - pos)) : 1;
  const w = new Float32Array(H);
  let b = 0;
  const m = new Float32Array(H + 1);
  const v = new Float32Array(H + 1);
  const { epochs = 200, lr = 0.05, weightDecay = 1e-2, seed = 0 } = opts;
  const rng = new Rng(seed);
  const order = x.map((_, i) => i);
  const losses: number[] = [];
  const batch = 32;
  let step = 0;
  for (let e = 0; e < epochs; e++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    let epochLoss = 0;
    for (let s = 0; s < n; s += batch) {
      const g = new Float32Array(H + 1);
      const idx = order.slice(s, s + batch);
      for (const i of idx) {
        let z = b;
        for (let d = 0; d < H; d++) z += w[d] * x[i][d];
        const p = sigmoid(z);
        const y = labels[i] ? 1 : 0;
        const cw = labels[i] ? wPos : wNeg;
        epochLoss += -cw * (y * Math.log(Math.max(p, 1e-12)) + (1 - y) * Math.log(Math.max(1 - p, 1e-12)));
        const dz = (cw * (p - y)) / idx.length;
        for (let d = 0; d < H; d++) g[d] += dz * x[i][d];
        g[H] += dz;
      }
      step++;
      const b1 = 0.9;
      const b2 = 0.999;
      for (let d = 0; d <= H; d++) {
        m[d] = b1 * m[d] + (1 - b1) * g[d];
        v[d] = b2 * v[d] + (1 - b2) * g[d] * g[d];
        const update = (m[d] / (1 - b1 ** step)) / (Math.sqrt(v[d] / (1 - b2 ** step)) + 1e-8);
        if (d < H) w[d] = w[d] * (1 - lr * weightDecay) - lr * update;
        else b -= lr * update;
      }
    }
    losses.push(epochLoss / n);
    opts.onProgress?.(e + 1, epochLoss / n);
  }
  return { head: { weight: w, bias: b, mean, std }, losses };
}

/** Score each step of a solution; the solution's score is its weakest step (min), as is usual for PRMs. */
export async function scoreSolution(runtime: Runtime, head: PrmHead, prompt: string, steps: string[]): Promise<{ steps: number[]; solution: number }> {
  const feats = await stepFeatures(runtime, { prompt, completions: steps, labels: steps.map(() => true) });
  const scores = feats.map((f) => scoreFeature(head, f));
  return { steps: scores, solution: scores.length ? Math.min(...scores) : 0 };
}

/** Area under the ROC curve (ties count half): P(score of a positive > score of a negative). */
export function auc(scores: number[], labels: boolean[]): number {
  const pos = scores.filter((_, i) => labels[i]);
  const neg = scores.filter((_, i) => !labels[i]);
  if (!pos.length || !neg.length) return NaN;
  let wins = 0;
  for (const p of pos) for (const q of neg) wins += p > q ? 1 : p === q ? 0.5 : 0;
  return wins / (pos.length * neg.length);
}

export function splitSteps(solution: string): string[] {
  const blocks = solution.split(/\n\s*\n/).map((s) => s.trim()).filter(Boolean);
  return blocks.length > 1 ? blocks : solution.split('\n').map((s) => s.trim()).filter(Boolean);
}

export function serializePrmHead(head: PrmHead, meta: Record<string, string>): Uint8Array {
  const t = (name: string, data: Float32Array) => ({ name, dtype: 'F32', shape: [data.length], data: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) });
  return writeSafetensors([t('score.weight', head.weight), t('score.bias', Float32Array.of(head.bias)), t('feature.mean', head.mean), t('feature.std', head.std)], { format: 'pt', ...meta });
}

export function parsePrmHead(bytes: Uint8Array): PrmHead {
  const { tensors } = readSafetensors(bytes);
  const get = (name: string) => {
    const t = tensors.find((x) => x.name === name);
    if (!t || t.dtype !== 'F32') throw new Error(`PRM head file is missing F32 tensor ${name}`);
    return new Float32Array(t.data.slice().buffer);
  };
  return { weight: get('score.weight'), bias: get('score.bias')[0], mean: get('feature.mean'), std: get('feature.std') };
}
