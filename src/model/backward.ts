/**
 * Training pass of the Llama-family model, llm.c style: the model's own forward, recording the
 * activations the backward reads (llama.ts, Activations), the masked causal-LM loss, and the
 * hand-written backward of every block, accumulating gradients into the trainable parameters
 * (LoRA A/B or every weight). Sequences of a micro-batch occupy KV slots 0..B-1 at positions
 * 0..T-1, so the K/V "cache" of a layer is its saved K/V activation.
 */
import type { WeightShape } from '../kernels/backend';
import { IGNORE_INDEX, type TrainOps } from '../kernels/train-backend';
import type { Projection } from '../formats/config';
import { Activations, type LayerActivations, type LlamaModel } from './llama';
import { chunkedLossHead } from './loss-head';

export interface LoraParam<T, W> {
  layer: number;
  module: Projection;
  a: W; // [r, in], f32, trainable in place
  b: W; // [out, r]
  rank: number;
  inFeatures: number;
  outFeatures: number;
  gradA: T;
  gradB: T;
}

/** Gradients of every weight in full fine-tuning, keyed by HF tensor name. */
export type FullGrads<T> = Map<string, T>;

export interface TrainableSet<T, W> {
  mode: 'lora' | 'full';
  /** Rebuild each block's activations in the backward instead of keeping them (--recompute). */
  recompute?: boolean;
  /** LoRA parameters keyed `${layer}.${module}`; the model's adapter holds the same A and B. */
  lora: Map<string, LoraParam<T, W>>;
  loraScale: number;
  loraDropout: number;
  full: FullGrads<T>;
}

export interface MicroBatch {
  inputIds: Uint32Array; // [batch * seqLen]
  labels: Int32Array; // aligned with inputIds, -100 ignored; shifted inside the loss
  batch: number;
  seqLen: number;
}

const PROJ_INDEX: Record<Projection, number> = {
  q_proj: 0,
  k_proj: 1,
  v_proj: 2,
  o_proj: 3,
  gate_proj: 4,
  up_proj: 5,
  down_proj: 6,
};

/** Per-(step, layer, module) dropout seed: the backward reuses it to rebuild the same mask. */
export function dropoutSeed(stepSeed: number, layer: number, module: Projection): number {
  let h = (stepSeed ^ Math.imul(layer + 1, 0x9e3779b1) ^ Math.imul(PROJ_INDEX[module] + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

export function hfName(
  layer: number,
  module: Projection | 'input_layernorm' | 'post_attention_layernorm' | 'q_norm' | 'k_norm',
  kind: 'weight' | 'bias' = 'weight',
): string {
  const attn = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'q_norm', 'k_norm'].includes(module);
  const mlp = ['gate_proj', 'up_proj', 'down_proj'].includes(module);
  return `model.layers.${layer}.${attn ? 'self_attn.' : mlp ? 'mlp.' : ''}${module}.${kind}`;
}

export class TrainingPass<T, W extends WeightShape, I> {
  constructor(
    readonly model: LlamaModel<T, W, I>,
    readonly ops: TrainOps<T, W, I>,
    readonly params: TrainableSet<T, W>,
  ) {
    // The forward applies the model's adapter; the backward's gradients are those of this set.
    const adapter = model.getAdapter();
    for (const [key, p] of params.lora) {
      const d = adapter?.get(key);
      if (!d || d.a !== p.a || d.b !== p.b || d.scale !== params.loraScale)
        throw new Error(`the model's adapter does not hold the LoRA weights being trained at ${key}`);
    }
    if (params.mode === 'full' && adapter?.size) throw new Error('full fine-tuning needs the model without an adapter');
  }

  /** The gradient buffer of a weight in full fine-tuning. */
  private fullGrad(name: string): T {
    const g = this.params.full.get(name);
    if (g === undefined) throw new Error(`no gradient buffer for ${name}`);
    return g;
  }

  /**
   * dx (+)= dy·W (+ the LoRA path), and the parameter gradients of this projection.
   * `x` is the projection's input saved by the forward.
   */
  private projectBackward(
    dy: T,
    x: T,
    w: W,
    n: number,
    dx: T,
    accumulate: boolean,
    layer: number,
    module: Projection,
    acts: LayerActivations<T>,
    stepSeed: number,
    hasBias: boolean,
  ): void {
    const { ops } = this;
    const be = this.model.backend;
    const outDim = w.rows;
    const inDim = w.cols;
    ops.matmulBackwardInput(dy, w, n, outDim, inDim, dx, accumulate);
    if (this.params.mode === 'full') {
      ops.matmulBackwardWeight(dy, x, n, outDim, inDim, this.fullGrad(hfName(layer, module)), true);
      if (hasBias) ops.biasBackward(dy, n, outDim, this.fullGrad(hfName(layer, module, 'bias')), true);
      return;
    }
    const p = this.params.lora.get(`${layer}.${module}`);
    if (!p) return;
    const a = acts.lora.get(module);
    if (!a) throw new Error(`the forward recorded no LoRA activations for layer ${layer} ${module}`);
    const dys = be.tensor(n * outDim, 'lora.dys');
    ops.zero(dys, n * outDim);
    be.add(dys, dy, n * outDim, this.params.loraScale);
    ops.matmulBackwardWeight(dys, a.xa, n, outDim, p.rank, p.gradB, true);
    const dxa = be.tensor(n * p.rank, 'lora.dxa');
    ops.matmulBackwardInput(dys, p.b, n, outDim, p.rank, dxa, false);
    ops.matmulBackwardWeight(dxa, a.xd ?? x, n, p.rank, inDim, p.gradA, true);
    const dxd = be.tensor(n * inDim, 'lora.dxd');
    ops.matmulBackwardInput(dxa, p.a, n, p.rank, inDim, dxd, false);
    if (a.xd) {
      // Inverted dropout is a fixed elementwise scaling: its backward is the same mask again.
      const masked = be.tensor(n * inDim, 'lora.dxd.masked');
      ops.dropout(dxd, n * inDim, this.params.loraDropout, dropoutSeed(stepSeed, layer, module), masked);
      be.add(dx, masked, n * inDim);
      be.free(masked);
    } else {
      be.add(dx, dxd, n * inDim);
    }
    for (const t of [dys, dxa, dxd]) be.free(t);
  }

  /**
   * Forward + loss + backward for one micro-batch. Gradients are ADDED to the trainable set's
   * gradient buffers, scaled by `gradScale` (1 / unmasked tokens of the whole optimizer step, so
   * the loss is HF's mean over unmasked tokens even with gradient accumulation).
   * Returns the summed loss over this micro-batch's unmasked tokens and their count.
   */
  async step(
    mb: MicroBatch,
    gradScale: number,
    stepSeed: number,
    policyGradient?: (logp: Float32Array) => Float32Array,
  ): Promise<{ lossSum: number; tokens: number }> {
    const { ops, model } = this;
    const be = model.backend;
    const c = model.config;
    const n = mb.batch * mb.seqLen;
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const I = c.intermediateSize;
    const V = c.vocabSize;
    const eps = c.rmsNormEps;
    if (mb.seqLen > model.maxPositions)
      throw new Error(`a training row of ${mb.seqLen} tokens exceeds the context length ${model.maxPositions}`);

    // Shifted labels: row (b, t) predicts labels[b, t+1].
    const shifted = new Uint32Array(n).fill(IGNORE_INDEX);
    let tokens = 0;
    for (let b = 0; b < mb.batch; b++) {
      for (let t = 0; t + 1 < mb.seqLen; t++) {
        const l = mb.labels[b * mb.seqLen + t + 1];
        if (l >= 0) {
          if (l >= V) throw new Error(`label ${l} is outside the vocabulary (${V})`);
          shifted[b * mb.seqLen + t] = l;
          tokens++;
        }
      }
    }

    // ---- the model's forward, recording activations ----
    const dropoutP = this.params.loraDropout;
    const acts = new Activations<T, I>(
      dropoutP > 0
        ? (x, rows, features, layer, proj) => {
            const xd = be.tensor(rows * features, 'lora.xd');
            ops.dropout(x, rows * features, dropoutP, dropoutSeed(stepSeed, layer, proj), xd);
            return xd;
          }
        : undefined,
      this.params.recompute ?? false,
    );
    const cache = model.createCache(mb.batch, mb.seqLen);
    const batch = {
      ids: mb.inputIds,
      positions: Uint32Array.from({ length: n }, (_, i) => i % mb.seqLen),
      slots: Uint32Array.from({ length: n }, (_, i) => Math.floor(i / mb.seqLen)),
      logitRows: 'all' as const,
      // The LM head runs in row chunks below (loss-head.ts): the forward stops at the final norm.
      output: 'hidden' as const,
    };
    const temps: T[] = [];
    try {
      model.forwardOnDevice(batch, cache, acts);
      const { positions, slots, ids, xOut: xL, normed } = acts.recorded();
      const { cos, sin } = model;
      const full = this.params.mode === 'full';
      // ---- loss and the backward through the LM head, in row chunks ----
      const headGrad = full
        ? this.fullGrad(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight')
        : null;
      const head = await chunkedLossHead(be, ops, model, normed, shifted, gradScale, { policyGradient, headGrad });
      const lossHost = head.losses;
      const dnormed = head.dnormed;
      temps.push(dnormed);

      // ---- backward ----
      const normGrad = (name: string): T | null => (full ? this.fullGrad(name) : null);
      const tensor = (size: number, label: string): T => {
        const t = be.tensor(size, label);
        temps.push(t);
        return t;
      };
      const dx = tensor(n * H, 'dx');
      ops.rmsnormBackward(dnormed, xL, model.norm, n, H, eps, dx, normGrad('model.norm.weight'));
      const dtmp = tensor(n * H, 'd.tmp');
      const dbranch = tensor(n * H, 'd.branch');
      const dact = tensor(n * I, 'd.act');
      const dgate = tensor(n * I, 'd.gate');
      const dup = tensor(n * I, 'd.up');
      const datt = tensor(n * qDim, 'd.att');
      const dq = tensor(n * qDim, 'd.q');
      const dk = tensor(n * kvDim, 'd.k');
      const dv = tensor(n * kvDim, 'd.v');
      const dqRaw = c.qkNorm ? tensor(n * qDim, 'd.q.raw') : null;
      const dkRaw = c.qkNorm ? tensor(n * kvDim, 'd.k.raw') : null;
      for (let li = c.numLayers - 1; li >= 0; li--) {
        const L = model.layers[li];
        // With recomputation, the block's forward runs again here from its saved input.
        const a = acts.recompute ? model.recomputeLayer(li, acts, cache) : acts.layers[li];
        // MLP branch: x_out = x2 + down(swiglu(gate(h2), up(h2))), h2 = norm(x2)
        this.projectBackward(dx, a.act, L.down, n, dact, false, li, 'down_proj', a, stepSeed, false);
        ops.swigluBackward(dact, a.gate, a.up, n * I, dgate, dup);
        this.projectBackward(dgate, a.h2, L.gate, n, dtmp, false, li, 'gate_proj', a, stepSeed, false);
        this.projectBackward(dup, a.h2, L.up, n, dtmp, true, li, 'up_proj', a, stepSeed, false);
        ops.rmsnormBackward(
          dtmp,
          a.x2,
          L.postNorm,
          n,
          H,
          eps,
          dbranch,
          normGrad(hfName(li, 'post_attention_layernorm')),
        );
        be.add(dx, dbranch, n * H);
        // Attention branch: x2 = xIn + o(attn(rope(q), rope(k), v)), q/k/v from h1 = norm(xIn)
        this.projectBackward(dx, a.att, L.o, n, datt, false, li, 'o_proj', a, stepSeed, Boolean(L.oBias));
        ops.attentionBackward(
          datt,
          a.q,
          cache.k[li],
          cache.v[li],
          slots,
          positions,
          n,
          c.numHeads,
          c.numKvHeads,
          c.headDim,
          mb.seqLen,
          mb.batch,
          dq,
          dk,
          dv,
        );
        ops.ropeBackward(dq, positions, cos, sin, n, c.numHeads, c.headDim, model.maxPositions);
        ops.ropeBackward(dk, positions, cos, sin, n, c.numKvHeads, c.headDim, model.maxPositions);
        let dqProj = dq;
        let dkProj = dk;
        if (a.qRaw && a.kRaw && L.qNorm && L.kNorm && dqRaw && dkRaw) {
          ops.rmsnormBackward(
            dq,
            a.qRaw,
            L.qNorm,
            n * c.numHeads,
            c.headDim,
            eps,
            dqRaw,
            normGrad(hfName(li, 'q_norm')),
          );
          ops.rmsnormBackward(
            dk,
            a.kRaw,
            L.kNorm,
            n * c.numKvHeads,
            c.headDim,
            eps,
            dkRaw,
            normGrad(hfName(li, 'k_norm')),
          );
          dqProj = dqRaw;
          dkProj = dkRaw;
        }
        this.projectBackward(dqProj, a.h1, L.q, n, dtmp, false, li, 'q_proj', a, stepSeed, Boolean(L.qBias));
        this.projectBackward(dkProj, a.h1, L.k, n, dtmp, true, li, 'k_proj', a, stepSeed, Boolean(L.kBias));
        this.projectBackward(dv, a.h1, L.v, n, dtmp, true, li, 'v_proj', a, stepSeed, Boolean(L.vBias));
        ops.rmsnormBackward(dtmp, a.xIn, L.inputNorm, n, H, eps, dbranch, normGrad(hfName(li, 'input_layernorm')));
        be.add(dx, dbranch, n * H);
        if (acts.recompute) model.freeRecomputed(a);
      }
      if (full) ops.embeddingBackward(dx, ids, n, V, H, this.fullGrad('model.embed_tokens.weight'), true);

      let lossSum = 0;
      for (let i = 0; i < n; i++) lossSum += lossHost[i];
      return { lossSum, tokens };
    } finally {
      for (const t of temps) be.free(t);
      acts.free(be);
      model.freeCache(cache);
    }
  }
}
