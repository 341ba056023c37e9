/**
 * The extra ops training needs — the backward of every forward op, the loss and the optimizers —
 * implemented on WebGPU (train-gpu.ts) and as CPU twins (train-cpu.ts) against which they are
 * tested. All training math is f32. `T` is the Backend's tensor handle (activations, gradients,
 * trainable parameters), `W` its weight handle (frozen base weights, possibly f16), `I` indices.
 *
 * Conventions: shapes are row-major; `accumulate` true means out += result, false means out = result.
 */

export const IGNORE_INDEX = 0xffffffff;

export interface AdamWParams {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for bias correction. */
  step: number;
  /** Multiplies the gradient first (gradient clipping by global norm). */
  gradScale: number;
}

export interface TrainOps<T, W, I> {
  /** dx[M,K] (+)= dy[M,N] · w[N,K]   (w may be a frozen weight W or a trainable tensor T of shape [N,K]) */
  matmulBackwardInput(dy: T, w: W | T, m: number, n: number, k: number, dx: T, accumulate: boolean): void;
  /** dw[N,K] (+)= dy[M,N]ᵀ · x[M,K] */
  matmulBackwardWeight(dy: T, x: T, m: number, n: number, k: number, dw: T, accumulate: boolean): void;
  /** out[M,N] = x[M,K] · w[N,K]ᵀ for a trainable f32 tensor w (LoRA A/B, full fine-tuning). */
  matmulTensor(x: T, w: T, m: number, n: number, k: number, out: T): void;
  /** dbias[N] (+)= Σ_m dy[m, :] */
  biasBackward(dy: T, m: number, n: number, dbias: T, accumulate: boolean): void;
  /** dx = RMSNorm backward (weight may be W or T); dweight (+)= Σ_rows (if given). */
  rmsnormBackward(dy: T, x: T, weight: W | T, rows: number, dim: number, eps: number, dx: T, dweight: T | null): void;
  /** In place: undo the rotation on the gradient (rotate by -angle). Same tables as forward rope. */
  ropeBackward(
    dx: T,
    positions: I,
    cos: W,
    sin: W,
    tokens: number,
    heads: number,
    headDim: number,
    maxPos: number,
  ): void;
  /**
   * Causal GQA attention backward for training batches: q [tokens, heads*hd]; k, v in cache layout
   * [slots, maxSeq, kvHeads*hd] exactly as the forward kv_write left them; token t sees positions
   * 0..positions[t] of slots[t]. Writes dq [tokens, heads*hd] and dk, dv in cache layout
   * (overwritten, summed over the query heads of each kv group and over queries).
   */
  attentionBackward(
    dout: T,
    q: T,
    k: T,
    v: T,
    slots: I,
    positions: I,
    tokens: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    maxSeq: number,
    slotCount: number,
    dq: T,
    dk: T,
    dv: T,
  ): void;
  /** Gather the rows written by kv_write back into token order: out[t, :] = cache[slots[t], positions[t], :] */
  kvGather(cache: T, slots: I, positions: I, tokens: number, kvDim: number, maxSeq: number, out: T): void;
  /** dgate, dup from dout for out = silu(gate) * up. */
  swigluBackward(dout: T, gate: T, up: T, n: number, dgate: T, dup: T): void;
  /** dtable[V, dim] (+)= scatter of dout rows by ids (no races: one thread per column). */
  embeddingBackward(dout: T, ids: I, tokens: number, vocab: number, dim: number, dtable: T, accumulate: boolean): void;
  /**
   * Softmax cross-entropy per row with labels (IGNORE_INDEX rows ignored): losses[row] (0 when
   * ignored) and dlogits = (softmax - onehot) · gradScale (0 rows when ignored). In place on
   * logits is not allowed; dlogits is separate.
   */
  crossEntropy(logits: T, labels: I, rows: number, vocab: number, gradScale: number, losses: T, dlogits: T): void;
  /**
   * Cross-entropy over the vocabulary in column chunks (online log-sum-exp): fold the chunk
   * logits[rows, cols] (vocabulary columns colOffset..colOffset+cols) into stats[rows, 3] =
   * (running max, sum of exp(z - max), z[label] once its chunk was seen); `first` starts afresh.
   * The loss of a row is max + log(sum) − z[label] (crossEntropyChunkLosses), 0 when ignored.
   */
  logSumExpChunk(logits: T, labels: I, rows: number, cols: number, colOffset: number, first: boolean, stats: T): void;
  /**
   * In place on one column chunk of logits: (softmax − onehot) · gradScale from the finished
   * stats of logSumExpChunk (0 rows for labels outside the vocabulary).
   */
  crossEntropyChunkGrad(
    logits: T,
    labels: I,
    stats: T,
    rows: number,
    cols: number,
    colOffset: number,
    vocab: number,
    gradScale: number,
  ): void;
  /** Inverted dropout with a counter-based hash RNG: out = x · keep(seed, i) / (1 - p). */
  dropout(x: T, n: number, p: number, seed: number, out: T): void;
  /** Sum of squares of x (for the global gradient norm); returned on the host. */
  sumSquares(x: T, n: number): Promise<number>;
  /** AdamW (decoupled weight decay) in place on param, m, v. */
  adamw(param: T, grad: T, m: T, v: T, n: number, p: AdamWParams): void;
  /** param -= lr · gradScale · grad */
  sgd(param: T, grad: T, n: number, lr: number, gradScale: number): void;
  /** x = 0 */
  zero(x: T, n: number): void;
  /** x[r, :] *= scale[r] (per-token weights of a policy-gradient loss). */
  scaleRows(x: T, scale: T, rows: number, cols: number): void;
}

/** Per-row losses from the finished stats [rows, 3] of TrainOps.logSumExpChunk (0 for ignored labels). */
export function crossEntropyChunkLosses(stats: Float32Array, labels: Uint32Array, vocab: number): Float32Array {
  return Float32Array.from(labels, (label, r) =>
    label >= vocab ? 0 : stats[r * 3] + Math.log(stats[r * 3 + 1]) - stats[r * 3 + 2],
  );
}
