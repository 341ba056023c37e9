/**
 * The LM head and its cross-entropy in chunks of rows, so the [tokens, vocab] logits matrix is
 * never held whole: with a 152K vocabulary, 512 tokens of f32 logits are 311 MB, and their
 * gradient as much again. Each chunk computes its rows' logits, loss and dlogits, sends dlogits
 * back through the head into d(hidden) (and the head's weight gradient in full fine-tuning), and
 * reuses the same two [chunkRows, vocab] buffers for the next rows.
 */
import type { Backend, WeightShape } from '../kernels/backend';
import { IGNORE_INDEX, type TrainOps } from '../kernels/train-backend';
import type { LlamaModel } from './llama';

/** Bytes one [chunkRows, vocab] f32 logits buffer may take (two are live: logits and dlogits). */
export const LOGITS_CHUNK_BYTES = 16 * 2 ** 20;

/** Rows per chunk for a vocabulary: as many as fit LOGITS_CHUNK_BYTES, at least 1, at most `rows`. */
export function lossChunkRows(vocab: number, rows: number, chunkBytes = LOGITS_CHUNK_BYTES): number {
  return Math.max(1, Math.min(rows, Math.floor(chunkBytes / (vocab * 4))));
}

export interface LossHeadOptions<T> {
  /** RL: given every row's log-probability of its label (0 for unlabelled rows), d(loss)/d(logp) per row. */
  policyGradient?: (logp: Float32Array) => Float32Array;
  /** Full fine-tuning: the LM head weight's gradient, accumulated into. */
  headGrad?: T | null;
  chunkBytes?: number;
}

/**
 * Cross-entropy of `normed` [n, hidden] through the model's LM head against `labels` (IGNORE_INDEX
 * rows ignored), gradient scaled by gradScale. Returns each row's loss on the host and
 * d(loss)/d(normed) [n, hidden] on the backend (the caller frees it).
 */
export async function chunkedLossHead<T, W extends WeightShape, I>(
  be: Backend<T, W, I>,
  ops: TrainOps<T, W, I>,
  model: LlamaModel<T, W, I>,
  normed: T,
  labels: Uint32Array,
  gradScale: number,
  opts: LossHeadOptions<T> = {},
): Promise<{ losses: Float32Array; dnormed: T }> {
  const n = labels.length;
  const H = model.config.hiddenSize;
  const V = model.config.vocabSize;
  const R = lossChunkRows(V, n, opts.chunkBytes);
  const xc = be.tensor(R * H, 'head.x');
  const logits = be.tensor(R * V, 'head.logits');
  const dlogits = be.tensor(R * V, 'head.dlogits');
  const lossesC = be.tensor(R, 'head.losses');
  const dxc = be.tensor(R * H, 'head.dx');
  const dnormed = be.tensor(n * H, 'd.normed');
  const losses = new Float32Array(n);
  // Logits and cross-entropy of rows [r0, r0 + m) into the chunk buffers.
  const forwardChunk = (r0: number, m: number, scale: number) => {
    be.copy(normed, r0 * H, xc, 0, m * H);
    be.matmul(xc, model.lmHead, null, m, logits);
    const idx = be.indices(labels.subarray(r0, r0 + m));
    ops.crossEntropy(logits, idx, m, V, scale, lossesC, dlogits);
    be.freeIndices(idx);
  };
  const backwardChunk = (m: number, r0: number) => {
    ops.matmulBackwardInput(dlogits, model.lmHead, m, V, H, dxc, false);
    be.copy(dxc, 0, dnormed, r0 * H, m * H);
    if (opts.headGrad) ops.matmulBackwardWeight(dlogits, xc, m, V, H, opts.headGrad, true);
  };
  try {
    if (opts.policyGradient) {
      // RL needs every row's log-probability before any gradient: a first pass for the losses,
      // then the logits again per chunk with d(loss)/d(logits) = −w · (softmax − onehot).
      for (let r0 = 0; r0 < n; r0 += R) {
        const m = Math.min(R, n - r0);
        forwardChunk(r0, m, 1);
        losses.set(await be.toHost(lossesC, m), r0);
      }
      const logp = losses.map((l, i) => (labels[i] === IGNORE_INDEX ? 0 : -l));
      const w = opts.policyGradient(logp);
      if (w.length !== n) throw new Error(`policy gradient returned ${w.length} weights for ${n} rows`);
      for (let r0 = 0; r0 < n; r0 += R) {
        const m = Math.min(R, n - r0);
        forwardChunk(r0, m, 1);
        const rowScale = be.fromHost(w.subarray(r0, r0 + m).map((x) => -x));
        ops.scaleRows(dlogits, rowScale, m, V);
        backwardChunk(m, r0);
        be.free(rowScale);
      }
    } else {
      const all = be.tensor(n, 'head.all-losses');
      for (let r0 = 0; r0 < n; r0 += R) {
        const m = Math.min(R, n - r0);
        forwardChunk(r0, m, gradScale);
        be.copy(lossesC, 0, all, r0, m);
        backwardChunk(m, r0);
      }
      losses.set(await be.toHost(all, n));
      be.free(all);
    }
  } catch (e) {
    be.free(dnormed);
    throw e;
  } finally {
    for (const t of [xc, logits, dlogits, lossesC, dxc]) be.free(t);
  }
  return { losses, dnormed };
}

/**
 * log p(ids[t] | ids[<t]) for t ≥ 1 (0 at t = 0) from final hidden states [n, hidden] on the host,
 * through the LM head in row chunks (never the whole [n, vocab] logits): the PRM features and
 * the RL reference/old-policy log-probabilities.
 */
export async function chunkedTokenLogprobs<T, W extends WeightShape, I>(
  be: Backend<T, W, I>,
  ops: TrainOps<T, W, I>,
  model: LlamaModel<T, W, I>,
  hidden: Float32Array,
  ids: readonly number[],
  chunkBytes?: number,
): Promise<Float32Array> {
  const n = ids.length;
  const H = model.config.hiddenSize;
  const V = model.config.vocabSize;
  const out = new Float32Array(n);
  if (n < 2) return out;
  const R = lossChunkRows(V, n - 1, chunkBytes);
  const logits = be.tensor(R * V, 'logp.logits');
  const dlogits = be.tensor(R * V, 'logp.dlogits');
  const lossesC = be.tensor(R, 'logp.losses');
  try {
    // Row t of the hidden states predicts ids[t + 1].
    for (let r0 = 0; r0 < n - 1; r0 += R) {
      const m = Math.min(R, n - 1 - r0);
      const x = be.fromHost(hidden.subarray(r0 * H, (r0 + m) * H));
      be.matmul(x, model.lmHead, null, m, logits);
      const idx = be.indices(Uint32Array.from(ids.slice(r0 + 1, r0 + 1 + m)));
      ops.crossEntropy(logits, idx, m, V, 0, lossesC, dlogits);
      const l = await be.toHost(lossesC, m);
      for (let i = 0; i < m; i++) out[r0 + 1 + i] = -l[i];
      be.free(x);
      be.freeIndices(idx);
    }
  } finally {
    for (const t of [logits, dlogits, lossesC]) be.free(t);
  }
  return out;
}
