/**
 * The LM head and its cross-entropy in chunks of rows and of vocabulary columns, so the
 * [tokens, vocab] logits matrix is never held whole: with a 152K vocabulary, 512 tokens of f32
 * logits are 311 MB, and their gradient as much again.
 *
 * A vocabulary that fits one column chunk is done a block of rows at a time: the rows' logits,
 * loss and dlogits, then dlogits back through the head into d(hidden) (and the head's weight
 * gradient in full fine-tuning), reusing two [chunkRows, vocab] buffers.
 *
 * A larger vocabulary is also split by columns (rows of the head weight, shared views of it): an
 * online log-sum-exp keeps each row's running max, sum of exponentials and label logit across the
 * column chunks (TrainOps.logSumExpChunk); then each column chunk's logits are computed again and
 * turned in place into dlogits from the finished per-row stats (crossEntropyChunkGrad), and sent
 * back as dX += dlogits · W_chunk and dW_chunk += dlogitsᵀ · X. One [chunkRows, chunkCols] buffer
 * is live at a time, for one more head matmul per step.
 */
import { WEIGHT_VIEW_ROW_ALIGN, type Backend, type WeightShape } from '../kernels/backend';
import { crossEntropyChunkLosses, IGNORE_INDEX, type TrainOps } from '../kernels/train-backend';
import type { LlamaModel } from './llama';

/** Bytes one logits chunk buffer may take (two are live when the vocabulary is one column chunk). */
export const LOGITS_CHUNK_BYTES = 16 * 2 ** 20;
/** Vocabulary columns per chunk when the vocabulary is larger (a multiple of WEIGHT_VIEW_ROW_ALIGN). */
export const LOGITS_CHUNK_COLUMNS = 32768;

export interface LossChunks {
  rows: number;
  cols: number;
}

/**
 * Chunk shape for `rows` rows of a vocabulary: the whole vocabulary when it is at most
 * `chunkColumns`, else `chunkColumns` columns; rows as many as fit `chunkBytes` (at least 1).
 */
export function lossChunks(
  vocab: number,
  rows: number,
  chunkBytes = LOGITS_CHUNK_BYTES,
  chunkColumns = LOGITS_CHUNK_COLUMNS,
): LossChunks {
  if (!(chunkColumns > 0) || chunkColumns % WEIGHT_VIEW_ROW_ALIGN !== 0)
    throw new Error(`loss chunk columns must be a positive multiple of ${WEIGHT_VIEW_ROW_ALIGN} (got ${chunkColumns})`);
  const cols = Math.min(vocab, chunkColumns);
  return { rows: Math.max(1, Math.min(rows, Math.floor(chunkBytes / (cols * 4)))), cols };
}

export interface LossHeadOptions<T> {
  /** RL: given every row's log-probability of its label (0 for unlabelled rows), d(loss)/d(logp) per row. */
  policyGradient?: (logp: Float32Array) => Float32Array;
  /** Full fine-tuning: the LM head weight's gradient, accumulated into. */
  headGrad?: T | null;
  chunkBytes?: number;
  /** Vocabulary columns per chunk (default LOGITS_CHUNK_COLUMNS). */
  chunkColumns?: number;
}

/** The LM head split into column chunks: views of its rows [c0, c0 + cols). */
function headChunks<T, W extends WeightShape, I>(be: Backend<T, W, I>, head: W, vocab: number, cols: number) {
  const chunks: { c0: number; cols: number; w: W }[] = [];
  for (let c0 = 0; c0 < vocab; c0 += cols) {
    const n = Math.min(cols, vocab - c0);
    chunks.push({ c0, cols: n, w: be.weightRows(head, c0, n) });
  }
  return chunks;
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
  const V = model.config.vocabSize;
  const chunks = lossChunks(V, labels.length, opts.chunkBytes, opts.chunkColumns);
  if (chunks.cols < V) return columnChunkedLossHead(be, ops, model, normed, labels, gradScale, chunks, opts);
  return rowChunkedLossHead(be, ops, model, normed, labels, gradScale, chunks.rows, opts);
}

/** chunkedLossHead when the whole vocabulary fits one column chunk: logits and dlogits of whole rows. */
async function rowChunkedLossHead<T, W extends WeightShape, I>(
  be: Backend<T, W, I>,
  ops: TrainOps<T, W, I>,
  model: LlamaModel<T, W, I>,
  normed: T,
  labels: Uint32Array,
  gradScale: number,
  R: number,
  opts: LossHeadOptions<T>,
): Promise<{ losses: Float32Array; dnormed: T }> {
  const n = labels.length;
  const H = model.config.hiddenSize;
  const V = model.config.vocabSize;
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

/** chunkedLossHead over column chunks of the vocabulary (online log-sum-exp; see the file comment). */
async function columnChunkedLossHead<T, W extends WeightShape, I>(
  be: Backend<T, W, I>,
  ops: TrainOps<T, W, I>,
  model: LlamaModel<T, W, I>,
  normed: T,
  labels: Uint32Array,
  gradScale: number,
  chunks: LossChunks,
  opts: LossHeadOptions<T>,
): Promise<{ losses: Float32Array; dnormed: T }> {
  const n = labels.length;
  const H = model.config.hiddenSize;
  const V = model.config.vocabSize;
  const { rows: R, cols: C } = chunks;
  const heads = headChunks(be, model.lmHead, V, C);
  const xc = be.tensor(R * H, 'head.x');
  const logits = be.tensor(R * C, 'head.logits');
  const statsC = be.tensor(R * 3, 'head.stats');
  const statsAll = be.tensor(n * 3, 'head.all-stats');
  const dxc = be.tensor(R * H, 'head.dx');
  const dwc = opts.headGrad ? be.tensor(C * H, 'head.dw') : null;
  const dnormed = be.tensor(n * H, 'd.normed');
  const rowIndices = (r0: number, m: number) => be.indices(labels.subarray(r0, r0 + m));
  // Rows [r0, r0 + m): their stats over every column chunk into statsC (and statsAll).
  const rowStats = (r0: number, m: number, idx: I) => {
    for (const h of heads) {
      be.matmul(xc, h.w, null, m, logits);
      ops.logSumExpChunk(logits, idx, m, h.cols, h.c0, h.c0 === 0, statsC);
    }
    be.copy(statsC, 0, statsAll, r0 * 3, m * 3);
  };
  // Their gradient from the stats in statsC: each column chunk's logits again, dlogits in place,
  // then into d(normed) rows [r0, r0 + m) and the head's gradient.
  const rowGrad = (r0: number, m: number, idx: I, scale: number, rowScale: T | null) => {
    heads.forEach((h, j) => {
      be.matmul(xc, h.w, null, m, logits);
      ops.crossEntropyChunkGrad(logits, idx, statsC, m, h.cols, h.c0, V, scale);
      if (rowScale) ops.scaleRows(logits, rowScale, m, h.cols);
      ops.matmulBackwardInput(logits, h.w, m, h.cols, H, dxc, j > 0);
      if (opts.headGrad && dwc) {
        // The gradient rows of this chunk are accumulated through a chunk-sized buffer.
        be.copy(opts.headGrad, h.c0 * H, dwc, 0, h.cols * H);
        ops.matmulBackwardWeight(logits, xc, m, h.cols, H, dwc, true);
        be.copy(dwc, 0, opts.headGrad, h.c0 * H, h.cols * H);
      }
    });
    be.copy(dxc, 0, dnormed, r0 * H, m * H);
  };
  const losses = async () => crossEntropyChunkLosses(await be.toHost(statsAll, n * 3), labels, V);
  try {
    if (opts.policyGradient) {
      // RL needs every row's log-probability before any gradient: the stats of all rows first,
      // then d(loss)/d(logits) = −w · (softmax − onehot) per chunk.
      for (let r0 = 0; r0 < n; r0 += R) {
        const m = Math.min(R, n - r0);
        const idx = rowIndices(r0, m);
        be.copy(normed, r0 * H, xc, 0, m * H);
        rowStats(r0, m, idx);
        be.freeIndices(idx);
      }
      const rowLosses = await losses();
      const logp = rowLosses.map((l, i) => (labels[i] === IGNORE_INDEX ? 0 : -l));
      const w = opts.policyGradient(logp);
      if (w.length !== n) throw new Error(`policy gradient returned ${w.length} weights for ${n} rows`);
      for (let r0 = 0; r0 < n; r0 += R) {
        const m = Math.min(R, n - r0);
        const idx = rowIndices(r0, m);
        const rowScale = be.fromHost(w.subarray(r0, r0 + m).map((x) => -x));
        be.copy(normed, r0 * H, xc, 0, m * H);
        be.copy(statsAll, r0 * 3, statsC, 0, m * 3);
        rowGrad(r0, m, idx, 1, rowScale);
        be.free(rowScale);
        be.freeIndices(idx);
      }
      return { losses: rowLosses, dnormed };
    }
    for (let r0 = 0; r0 < n; r0 += R) {
      const m = Math.min(R, n - r0);
      const idx = rowIndices(r0, m);
      be.copy(normed, r0 * H, xc, 0, m * H);
      rowStats(r0, m, idx);
      rowGrad(r0, m, idx, gradScale, null);
      be.freeIndices(idx);
    }
    return { losses: await losses(), dnormed };
  } catch (e) {
    be.free(dnormed);
    throw e;
  } finally {
    for (const t of [xc, logits, statsC, statsAll, dxc]) be.free(t);
    if (dwc) be.free(dwc);
  }
}

/**
 * log p(ids[t] | ids[<t]) for t ≥ 1 (0 at t = 0) from final hidden states [n, hidden] on the host,
 * through the LM head in chunks of rows and vocabulary columns (online log-sum-exp; never the
 * whole [n, vocab] logits, and only one logits buffer): the PRM features and the RL
 * reference/old-policy log-probabilities.
 */
export async function chunkedTokenLogprobs<T, W extends WeightShape, I>(
  be: Backend<T, W, I>,
  ops: TrainOps<T, W, I>,
  model: LlamaModel<T, W, I>,
  hidden: Float32Array,
  ids: readonly number[],
  chunkBytes?: number,
  chunkColumns?: number,
): Promise<Float32Array> {
  const n = ids.length;
  const H = model.config.hiddenSize;
  const V = model.config.vocabSize;
  const out = new Float32Array(n);
  if (n < 2) return out;
  const { rows: R, cols: C } = lossChunks(V, n - 1, chunkBytes, chunkColumns);
  const heads = headChunks(be, model.lmHead, V, C);
  const logits = be.tensor(R * C, 'logp.logits');
  const stats = be.tensor(R * 3, 'logp.stats');
  try {
    // Row t of the hidden states predicts ids[t + 1].
    for (let r0 = 0; r0 < n - 1; r0 += R) {
      const m = Math.min(R, n - 1 - r0);
      const x = be.fromHost(hidden.subarray(r0 * H, (r0 + m) * H));
      const next = Uint32Array.from(ids.slice(r0 + 1, r0 + 1 + m));
      const idx = be.indices(next);
      for (const h of heads) {
        be.matmul(x, h.w, null, m, logits);
        ops.logSumExpChunk(logits, idx, m, h.cols, h.c0, h.c0 === 0, stats);
      }
      const l = crossEntropyChunkLosses(await be.toHost(stats, m * 3), next, V);
      for (let i = 0; i < m; i++) out[r0 + 1 + i] = -l[i];
      be.free(x);
      be.freeIndices(idx);
    }
  } finally {
    for (const t of [logits, stats]) be.free(t);
  }
  return out;
}
