/**
 * Next-token selection from one row of logits: repetition penalty (HF/CTRL style), temperature,
 * top-k, top-p, and a seeded RNG per sequence so runs are reproducible.
 */
import type { Rng } from '../util/random';
import { argmaxRow } from '../kernels/cpu';

export interface SamplingParams {
  /** 0 (or below) means greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  /** > 1 discourages tokens already in the prompt or the output. */
  repetitionPenalty?: number;
  seed?: number;
}

export function argmax(logits: Float32Array): number {
  return argmaxRow(logits);
}

/** logp[t] = log p(ids[t] | ids[<t]) from full-sequence logits [ids.length, vocab] (0 for t = 0). */
export function tokenLogprobs(logits: Float32Array, ids: readonly number[], vocab: number): Float32Array {
  const out = new Float32Array(ids.length);
  for (let t = 1; t < ids.length; t++) {
    const row = logits.subarray((t - 1) * vocab, t * vocab);
    let max = -Infinity;
    for (let i = 0; i < vocab; i++) max = Math.max(max, row[i]);
    let sum = 0;
    for (let i = 0; i < vocab; i++) sum += Math.exp(row[i] - max);
    out[t] = row[ids[t]] - max - Math.log(sum);
  }
  return out;
}

/** Apply the repetition penalty in place to the tokens seen so far (HF RepetitionPenaltyLogitsProcessor). */
export function applyRepetitionPenalty(logits: Float32Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const l = logits[id];
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/** Pick the next token. `logits` may be modified. */
export function sampleToken(logits: Float32Array, params: SamplingParams, rng: Rng, seen: readonly number[]): number {
  if (params.repetitionPenalty && params.repetitionPenalty !== 1)
    applyRepetitionPenalty(logits, seen, params.repetitionPenalty);
  const temperature = params.temperature ?? 1;
  if (temperature <= 0) return argmax(logits);
  const topK = params.topK && params.topK > 0 ? Math.min(params.topK, logits.length) : logits.length;
  const topP = params.topP ?? 1;
  // Candidates sorted by logit, descending; ties keep the lower id first (deterministic).
  let order: number[];
  if (topK < logits.length) {
    order = partialTopK(logits, topK);
  } else {
    order = Array.from({ length: logits.length }, (_, i) => i);
    order.sort((a, b) => logits[b] - logits[a] || a - b);
  }
  const max = logits[order[0]];
  const probs = order.map((i) => Math.exp((logits[i] - max) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (topP < 1) {
    // Keep the smallest prefix whose mass reaches top_p (always at least one token).
    let cum = 0;
    let keep = 0;
    while (keep < probs.length) {
      cum += probs[keep] / total;
      keep++;
      if (cum >= topP) break;
    }
    probs.length = keep;
    order.length = keep;
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * total;
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i];
    if (r < 0) return order[i];
  }
  return order[probs.length - 1];
}

function partialTopK(logits: Float32Array, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < logits.length; i++) {
    if (top.length < k || logits[i] > logits[top[top.length - 1]]) {
      let j = top.length < k ? top.length : k - 1;
      if (top.length < k) top.push(i);
      while (j > 0 && logits[top[j - 1]] < logits[i]) {
        top[j] = top[j - 1];
        j--;
      }
      top[j] = i;
    }
  }
  return top;
}
