/**
 * Process reward model (PAD step b): a small head on the FROZEN student's final hidden states.
 * Each PAD row (TRL stepwise format: prompt, completions[], labels[]) gives one example per
 * completion, read where TRL's PRMTrainer puts its label: prompt, then each completion followed by
 * the step separator "\n", tokenized piece by piece, and the label on the separator's token
 * (AgentArk's solution-level rows make every completion a whole solution; `--pad-steps
 * paragraph` rows make it a paragraph). The hidden state there (computed on WebGPU by the student
 * itself, adapter off) plus the student's own confidence in the step's tokens is the feature.
 *
 * The head: a projection to a small embedding (ReLU) and a logistic score on it, trained with
 * AdamW on the objective of AgentArk's `prm/finetune2.py`: cross-entropy plus 0.5 × a supervised
 * contrastive term over the step embeddings of a batch (temperature 0.1: same-label steps pulled
 * together, different-label steps pushed apart). In finetune2.py the contrastive projector is
 * not a parameter of the trained model and the LLM is frozen (`--fix_llm`), so the term moves no
 * weight there; here the embedding it shapes is the one the score reads (`contrastive: 0` is
 * cross-entropy alone). A few thousand parameters: trained on the host.
 */
import type { Runtime } from '../engine/local';
import { Rng } from '../util/random';
import { writeSafetensors, readSafetensors } from '../formats/safetensors';

export interface StepwiseRow {
  prompt: string;
  completions: string[];
  labels: boolean[];
  id?: string;
}

export interface PrmHead {
  /** The score's weights: over the embedding when `proj` is set, else over the features. */
  weight: Float32Array;
  bias: number;
  /** Feature standardisation (per dimension), fitted on the training features. */
  mean: Float32Array;
  std: Float32Array;
  /** Embedding = ReLU(W·standardise(f) + b), W row-major [dim × features]. Absent: a linear head. */
  proj?: { weight: Float32Array; bias: Float32Array; dim: number };
}

/** TRL PRMTrainer's default step separator, appended after every completion. */
export const STEP_SEPARATOR = '\n';

/**
 * Token ids of a stepwise row as TRL's PRMTrainer builds them (prompt, then each completion and
 * the separator, each tokenized on its own) and the position of each completion's label: the
 * separator's last token.
 */
export function stepEnds(runtime: Runtime, row: StepwiseRow): { ids: number[]; ends: number[] } {
  const tok = runtime.requireTokenizer();
  const enc = (t: string) => tok.encode(t, { addSpecialTokens: false });
  const sep = enc(STEP_SEPARATOR);
  const ids = [...enc(row.prompt)];
  const ends: number[] = [];
  for (const step of row.completions) {
    ids.push(...enc(step), ...sep);
    ends.push(ids.length - 1);
  }
  return { ids, ends };
}

/**
 * Features of each step from the frozen student: its final hidden state at the step's label
 * token, plus the student's own confidence in the step's tokens (mean and minimum
 * log-probability, read from its LM head) — a model that has learnt the task finds a wrong step
 * surprising. Long rows keep their last tokens. Read with the adapter switched off, whatever
 * adapter the runtime has on: the head is fitted on, and scores, the base model's features.
 */
export async function stepFeatures(runtime: Runtime, row: StepwiseRow): Promise<Float32Array[]> {
  const adapter = runtime.model.getAdapter();
  if (adapter) runtime.model.setAdapter(null);
  try {
    return await baseStepFeatures(runtime, row);
  } finally {
    if (adapter) runtime.model.setAdapter(adapter);
  }
}

async function baseStepFeatures(runtime: Runtime, row: StepwiseRow): Promise<Float32Array[]> {
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

/** The standardised feature vector. */
function standardise(head: Pick<PrmHead, 'mean' | 'std'>, f: Float32Array): Float32Array {
  return Float32Array.from(f, (v, i) => (v - head.mean[i]!) / head.std[i]!);
}

/** P(step correct) for one step's features. */
export function scoreFeature(head: PrmHead, f: Float32Array): number {
  const x = standardise(head, f);
  if (!head.proj) {
    let z = head.bias;
    for (let i = 0; i < x.length; i++) z += head.weight[i]! * x[i]!;
    return sigmoid(z);
  }
  const { weight: W, bias: bp, dim: P } = head.proj;
  const F = x.length;
  let z = head.bias;
  for (let p = 0; p < P; p++) {
    let a = bp[p]!;
    for (let i = 0; i < F; i++) a += W[p * F + i]! * x[i]!;
    if (a > 0) z += head.weight[p]! * a;
  }
  return sigmoid(z);
}

export interface PrmTrainOptions {
  epochs?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  /** Weight of the supervised contrastive term (default 0.5, finetune2.py's; 0 = cross-entropy only). */
  contrastive?: number;
  /** Temperature of the contrastive term (default 0.1, finetune2.py's). */
  temperature?: number;
  /** Embedding size (default 32). */
  dim?: number;
  /** Examples per AdamW step (default 32); the contrastive term is over these. */
  batch?: number;
  onProgress?: (epoch: number, loss: number) => void;
}

/**
 * Supervised contrastive loss (Khosla et al. 2020, as finetune2.py's `contrastive_loss_fn`) of a
 * batch of embeddings `a` (rows of `dim`) and its gradient: cosine similarities over the
 * temperature, each anchor's log-probability of its same-label partners among all other rows,
 * averaged over partners and over the anchors that have one.
 */
export function supConLoss(
  a: Float32Array[],
  labels: readonly boolean[],
  temperature: number,
): { loss: number; grad: Float32Array[] } {
  const n = a.length;
  const dim = n ? a[0]!.length : 0;
  const norms = a.map((v) => Math.max(Math.hypot(...v), 1e-12));
  const u = a.map((v, i) => Float32Array.from(v, (x) => x / norms[i]!));
  const du = u.map(() => new Float32Array(dim));
  const anchors: number[] = [];
  for (let i = 0; i < n; i++) if (labels.some((l, j) => j !== i && l === labels[i])) anchors.push(i);
  let loss = 0;
  const sim = (i: number, j: number) => {
    let d = 0;
    for (let k = 0; k < dim; k++) d += u[i]![k]! * u[j]![k]!;
    return d / temperature;
  };
  for (const i of anchors) {
    const s = Array.from({ length: n }, (_, j) => (j === i ? -Infinity : sim(i, j)));
    const m = Math.max(...s);
    const z = s.reduce((acc, x) => acc + Math.exp(x - m), 0);
    const lse = m + Math.log(z);
    const pos = [...labels.keys()].filter((j) => j !== i && labels[j] === labels[i]);
    for (const j of pos) loss -= (s[j]! - lse) / pos.length;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      // d(loss_i)/d(s_ij) = softmax_ij − [j positive]/|P|, averaged over anchors.
      const g = (Math.exp(s[j]! - lse) - (labels[j] === labels[i] ? 1 / pos.length : 0)) / anchors.length / temperature;
      for (let k = 0; k < dim; k++) {
        du[i]![k] += g * u[j]![k]!;
        du[j]![k] += g * u[i]![k]!;
      }
    }
  }
  if (anchors.length) loss /= anchors.length;
  // Through the normalisation: da = (du − u (u·du)) / |a|.
  const grad = du.map((d, i) => {
    let dot = 0;
    for (let k = 0; k < dim; k++) dot += u[i]![k]! * d[k]!;
    return Float32Array.from(d, (x, k) => (x - u[i]![k]! * dot) / norms[i]!);
  });
  return { loss, grad };
}

/** Fit the head: AdamW on cross-entropy + `contrastive` × supervised contrastive (see the module comment). */
export function fitPrmHead(
  features: Float32Array[],
  labels: boolean[],
  opts: PrmTrainOptions = {},
): { head: PrmHead; losses: number[] } {
  if (!features.length) throw new Error('no PRM training examples (are the PAD rows empty?)');
  const F = features[0]!.length;
  const n = features.length;
  const mean = new Float32Array(F);
  const std = new Float32Array(F);
  for (const f of features) for (let i = 0; i < F; i++) mean[i] += f[i]! / n;
  for (const f of features) for (let i = 0; i < F; i++) std[i] += (f[i]! - mean[i]!) ** 2 / n;
  for (let i = 0; i < F; i++) std[i] = Math.sqrt(std[i]!) + 1e-6;
  const x = features.map((f) => standardise({ mean, std }, f));
  const {
    epochs = 200,
    lr = 0.01,
    weightDecay = 1e-2,
    seed = 0,
    contrastive = 0.5,
    temperature = 0.1,
    dim: P = 32,
    batch = 32,
  } = opts;
  const rng = new Rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next());
  // Parameters in one buffer: W [P×F], bp [P], w [P], b.
  const nW = P * F;
  const params = new Float32Array(nW + 2 * P + 1);
  for (let i = 0; i < nW; i++) params[i] = gauss() / Math.sqrt(F);
  for (let p = 0; p < P; p++) params[nW + P + p] = gauss() / Math.sqrt(P);
  const m = new Float32Array(params.length);
  const v = new Float32Array(params.length);
  const order = x.map((_, i) => i);
  const losses: number[] = [];
  let step = 0;
  for (let e = 0; e < epochs; e++) {
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    let epochLoss = 0;
    let batches = 0;
    for (let s0 = 0; s0 < n; s0 += batch) {
      const idx = order.slice(s0, s0 + batch);
      const B = idx.length;
      const g = new Float32Array(params.length);
      const pre = idx.map((i) => {
        const a = new Float32Array(P);
        for (let p = 0; p < P; p++) {
          let acc = params[nW + p]!;
          const row = p * F;
          for (let k = 0; k < F; k++) acc += params[row + k]! * x[i]![k]!;
          a[p] = acc;
        }
        return a;
      });
      const dPre = pre.map(() => new Float32Array(P));
      let loss = 0;
      idx.forEach((i, r) => {
        let z = params[nW + 2 * P]!;
        for (let p = 0; p < P; p++) if (pre[r]![p]! > 0) z += params[nW + P + p]! * pre[r]![p]!;
        const prob = sigmoid(z);
        const y = labels[i] ? 1 : 0;
        loss -= (y * Math.log(Math.max(prob, 1e-12)) + (1 - y) * Math.log(Math.max(1 - prob, 1e-12))) / B;
        const dz = (prob - y) / B;
        g[nW + 2 * P] += dz;
        for (let p = 0; p < P; p++) {
          if (pre[r]![p]! <= 0) continue;
          g[nW + P + p] += dz * pre[r]![p]!;
          dPre[r]![p] += dz * params[nW + P + p]!;
        }
      });
      if (contrastive > 0 && B > 1) {
        const sc = supConLoss(
          pre,
          idx.map((i) => labels[i]!),
          temperature,
        );
        loss += contrastive * sc.loss;
        sc.grad.forEach((gr, r) => {
          for (let p = 0; p < P; p++) dPre[r]![p] += contrastive * gr[p]!;
        });
      }
      idx.forEach((i, r) => {
        for (let p = 0; p < P; p++) {
          const d = dPre[r]![p]!;
          if (d === 0) continue;
          g[nW + p] += d;
          const row = p * F;
          for (let k = 0; k < F; k++) g[row + k] += d * x[i]![k]!;
        }
      });
      step++;
      const b1 = 0.9;
      const b2 = 0.999;
      for (let k = 0; k < params.length; k++) {
        m[k] = b1 * m[k]! + (1 - b1) * g[k]!;
        v[k] = b2 * v[k]! + (1 - b2) * g[k]! * g[k]!;
        const update = m[k]! / (1 - b1 ** step) / (Math.sqrt(v[k]! / (1 - b2 ** step)) + 1e-8);
        const decay = k < nW || (k >= nW + P && k < nW + 2 * P) ? weightDecay : 0;
        params[k] = params[k]! * (1 - lr * decay) - lr * update;
      }
      epochLoss += loss;
      batches++;
    }
    losses.push(epochLoss / batches);
    opts.onProgress?.(e + 1, epochLoss / batches);
  }
  return {
    head: {
      weight: params.slice(nW + P, nW + 2 * P),
      bias: params[nW + 2 * P]!,
      mean,
      std,
      proj: { weight: params.slice(0, nW), bias: params.slice(nW, nW + P), dim: P },
    },
    losses,
  };
}

/** Score each step of a solution; the solution's score is its weakest step (min), as is usual for PRMs. */
export async function scoreSolution(
  runtime: Runtime,
  head: PrmHead,
  prompt: string,
  steps: string[],
): Promise<{ steps: number[]; solution: number }> {
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
  const blocks = solution
    .split(/\n\s*\n/)
    .map((s) => s.trim())
    .filter(Boolean);
  return blocks.length > 1
    ? blocks
    : solution
        .split('\n')
        .map((s) => s.trim())
        .filter(Boolean);
}

export function serializePrmHead(head: PrmHead, meta: Record<string, string>): Uint8Array {
  const t = (name: string, data: Float32Array, shape = [data.length]) => ({
    name,
    dtype: 'F32',
    shape,
    data: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  });
  const tensors = [
    t('score.weight', head.weight),
    t('score.bias', Float32Array.of(head.bias)),
    t('feature.mean', head.mean),
    t('feature.std', head.std),
  ];
  if (head.proj)
    tensors.push(t('proj.weight', head.proj.weight, [head.proj.dim, head.mean.length]), t('proj.bias', head.proj.bias));
  return writeSafetensors(tensors, { format: 'pt', ...meta });
}

export function parsePrmHead(bytes: Uint8Array): PrmHead {
  const { tensors } = readSafetensors(bytes);
  const find = (name: string) => tensors.find((x) => x.name === name);
  const get = (name: string) => {
    const t = find(name);
    if (t?.dtype !== 'F32') throw new Error(`PRM head file is missing F32 tensor ${name}`);
    // A copy of exactly the tensor's bytes (a Node Buffer's slice() is a view of a shared pool).
    return new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
  };
  const head: PrmHead = {
    weight: get('score.weight'),
    bias: get('score.bias')[0]!,
    mean: get('feature.mean'),
    std: get('feature.std'),
  };
  if (find('proj.weight')) {
    const bias = get('proj.bias');
    head.proj = { weight: get('proj.weight'), bias, dim: bias.length };
    if (head.proj.weight.length !== bias.length * head.mean.length || head.weight.length !== bias.length)
      throw new Error('PRM head file: proj.weight, proj.bias and score.weight shapes disagree');
  }
  return head;
}
