/**
 * Training pass of the Llama-family model, llm.c style: one hand-written forward that keeps the
 * activations each backward step needs, the masked causal-LM loss, and the hand-written backward
 * of every block, accumulating gradients into the trainable parameters (LoRA A/B or every weight).
 * Sequences of a micro-batch occupy KV slots 0..B-1 at positions 0..T-1, so the forward kernels
 * are exactly the inference ones, and the K/V "cache" of a layer is its saved K/V activation.
 */
import type { AnyBackend } from '../kernels/backend';
import { IGNORE_INDEX, type TrainOps } from '../kernels/train-backend';
import type { LayerWeights, LlamaModel, Projection } from './llama';
import { chunkedLossHead } from './loss-head';

/* eslint-disable @typescript-eslint/no-explicit-any */
type T = any;
type W = any;

export interface LoraParam {
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
export type FullGrads = Map<string, T>;

export interface TrainableSet {
  mode: 'lora' | 'full';
  /** LoRA parameters keyed `${layer}.${module}`. */
  lora: Map<string, LoraParam>;
  loraScale: number;
  loraDropout: number;
  full: FullGrads;
}

export interface MicroBatch {
  inputIds: Uint32Array; // [batch * seqLen]
  labels: Int32Array; // aligned with inputIds, -100 ignored; shifted inside the loss
  batch: number;
  seqLen: number;
}

interface LoraActs {
  xd: T | null; // dropout(x), when dropout > 0
  xa: T; // xd · Aᵀ
}

interface LayerActs {
  xIn: T;
  h1: T;
  qRaw: T | null;
  kRaw: T | null;
  q: T;
  kCache: T;
  vCache: T;
  att: T;
  x2: T;
  h2: T;
  gate: T;
  up: T;
  act: T;
  lora: Map<Projection, LoraActs>;
}

const PROJ_INDEX: Record<Projection, number> = { q_proj: 0, k_proj: 1, v_proj: 2, o_proj: 3, gate_proj: 4, up_proj: 5, down_proj: 6 };

/** Per-(step, layer, module) dropout seed: the backward reuses it to rebuild the same mask. */
export function dropoutSeed(stepSeed: number, layer: number, module: Projection): number {
  let h = (stepSeed ^ Math.imul(layer + 1, 0x9e3779b1) ^ Math.imul(PROJ_INDEX[module] + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
  return (h ^ (h >>> 15)) >>> 0;
}

export function hfName(layer: number, module: Projection | 'input_layernorm' | 'post_attention_layernorm' | 'q_norm' | 'k_norm', kind: 'weight' | 'bias' = 'weight'): string {
  const attn = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'q_norm', 'k_norm'].includes(module);
  const mlp = ['gate_proj', 'up_proj', 'down_proj'].includes(module);
  return `model.layers.${layer}.${attn ? 'self_attn.' : mlp ? 'mlp.' : ''}${module}.${kind}`;
}

export class TrainingPass {
  private readonly be: AnyBackend;

  constructor(
    readonly model: LlamaModel,
    readonly ops: TrainOps<T, W, any>,
    readonly params: TrainableSet,
  ) {
    this.be = model.backend;
  }

  private copy(src: T, n: number, label: string): T {
    const out = this.be.tensor(n, label);
    this.be.gatherRows(src, [0], n, out);
    return out;
  }

  private projOut(w: W): number {
    return (w as { rows: number }).rows;
  }

  /** out = x·Wᵀ + b (+ scale · B·A·dropout(x)) and remember what the backward needs. */
  private project(x: T, w: W, bias: W | null, n: number, out: T, layer: number, module: Projection, acts: LayerActs, stepSeed: number): void {
    const be = this.be;
    be.matmul(x, w, bias, n, out);
    const p = this.params.lora.get(`${layer}.${module}`);
    if (!p) return;
    let xd: T | null = null;
    if (this.params.loraDropout > 0) {
      xd = be.tensor(n * p.inFeatures, 'lora.xd');
      this.ops.dropout(x, n * p.inFeatures, this.params.loraDropout, dropoutSeed(stepSeed, layer, module), xd);
    }
    const xa = be.tensor(n * p.rank, 'lora.xa');
    be.matmul(xd ?? x, p.a, null, n, xa);
    const upd = be.tensor(n * p.outFeatures, 'lora.upd');
    be.matmul(xa, p.b, null, n, upd);
    be.add(out, upd, n * p.outFeatures, this.params.loraScale);
    be.free(upd);
    acts.lora.set(module, { xd, xa });
  }

  /**
   * dx (+)= dy·W (+ the LoRA path), and the parameter gradients of this projection.
   * `x` is the projection's input saved by the forward.
   */
  private projectBackward(dy: T, x: T, w: W, n: number, dx: T, accumulate: boolean, layer: number, module: Projection, acts: LayerActs, stepSeed: number, hasBias: boolean): void {
    const { be, ops } = this;
    const outDim = this.projOut(w);
    const inDim = (w as { cols: number }).cols;
    ops.matmulBackwardInput(dy, w, n, outDim, inDim, dx, accumulate);
    if (this.params.mode === 'full') {
      ops.matmulBackwardWeight(dy, x, n, outDim, inDim, this.params.full.get(hfName(layer, module)), true);
      if (hasBias) ops.biasBackward(dy, n, outDim, this.params.full.get(hfName(layer, module, 'bias')), true);
      return;
    }
    const p = this.params.lora.get(`${layer}.${module}`);
    if (!p) return;
    const a = acts.lora.get(module)!;
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
    const { be, ops, model } = this;
    const c = model.config;
    const n = mb.batch * mb.seqLen;
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const I = c.intermediateSize;
    const V = c.vocabSize;
    const eps = c.rmsNormEps;
    if (mb.seqLen > model.maxPositions) throw new Error(`a training row of ${mb.seqLen} tokens exceeds the context length ${model.maxPositions}`);

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
    const positions = be.indices(Uint32Array.from({ length: n }, (_, i) => i % mb.seqLen));
    const slots = be.indices(Uint32Array.from({ length: n }, (_, i) => Math.floor(i / mb.seqLen)));
    const ids = be.indices(mb.inputIds);
    const cacheShape = { slots: mb.batch, maxSeq: mb.seqLen, kvDim };
    const { cos, sin } = model;

    // ---- forward, keeping activations ----
    let x = be.tensor(n * H, 'x');
    be.embedding(ids, model.embed, n, x);
    const layerActs: LayerActs[] = [];
    const proj = be.tensor(n * H, 'proj');
    for (let li = 0; li < c.numLayers; li++) {
      const L: LayerWeights<W> = model.layers[li];
      const a: LayerActs = {
        xIn: x,
        h1: be.tensor(n * H, 'h1'),
        qRaw: null,
        kRaw: null,
        q: be.tensor(n * qDim, 'q'),
        kCache: be.tensor(n * kvDim, 'k'),
        vCache: be.tensor(n * kvDim, 'v'),
        att: be.tensor(n * qDim, 'att'),
        x2: null,
        h2: be.tensor(n * H, 'h2'),
        gate: be.tensor(n * I, 'gate'),
        up: be.tensor(n * I, 'up'),
        act: be.tensor(n * I, 'act'),
        lora: new Map(),
      };
      be.rmsnorm(x, L.inputNorm, n, H, eps, a.h1);
      const k = be.tensor(n * kvDim, 'k.tok');
      const v = be.tensor(n * kvDim, 'v.tok');
      if (c.qkNorm) {
        a.qRaw = be.tensor(n * qDim, 'q.raw');
        a.kRaw = be.tensor(n * kvDim, 'k.raw');
        this.project(a.h1, L.q, L.qBias, n, a.qRaw, li, 'q_proj', a, stepSeed);
        this.project(a.h1, L.k, L.kBias, n, a.kRaw, li, 'k_proj', a, stepSeed);
        be.rmsnorm(a.qRaw, L.qNorm, n * c.numHeads, c.headDim, eps, a.q);
        be.rmsnorm(a.kRaw, L.kNorm, n * c.numKvHeads, c.headDim, eps, k);
      } else {
        this.project(a.h1, L.q, L.qBias, n, a.q, li, 'q_proj', a, stepSeed);
        this.project(a.h1, L.k, L.kBias, n, k, li, 'k_proj', a, stepSeed);
      }
      this.project(a.h1, L.v, L.vBias, n, v, li, 'v_proj', a, stepSeed);
      be.rope(a.q, positions, cos, sin, n, c.numHeads, c.headDim, model.maxPositions);
      be.rope(k, positions, cos, sin, n, c.numKvHeads, c.headDim, model.maxPositions);
      be.kvWrite(k, v, a.kCache, a.vCache, slots, positions, n, cacheShape);
      be.free(k);
      be.free(v);
      be.attention(a.q, a.kCache, a.vCache, slots, positions, n, c.numHeads, c.numKvHeads, c.headDim, mb.seqLen, a.att);
      this.project(a.att, L.o, L.oBias, n, proj, li, 'o_proj', a, stepSeed);
      a.x2 = this.copy(x, n * H, 'x2');
      be.add(a.x2, proj, n * H);
      be.rmsnorm(a.x2, L.postNorm, n, H, eps, a.h2);
      this.project(a.h2, L.gate, null, n, a.gate, li, 'gate_proj', a, stepSeed);
      this.project(a.h2, L.up, null, n, a.up, li, 'up_proj', a, stepSeed);
      be.swiglu(a.gate, a.up, n * I, a.act);
      this.project(a.act, L.down, null, n, proj, li, 'down_proj', a, stepSeed);
      x = this.copy(a.x2, n * H, 'x');
      be.add(x, proj, n * H);
      layerActs.push(a);
    }
    const xL = x;
    const normed = be.tensor(n * H, 'x.norm');
    be.rmsnorm(xL, model.norm, n, H, eps, normed);
    // ---- loss and backward through the LM head, in row chunks (see loss-head.ts) ----
    const full = this.params.mode === 'full' ? this.params.full : null;
    const headGrad = full ? full.get(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight') : null;
    const head = await chunkedLossHead(be, ops, model, normed, shifted, gradScale, { policyGradient, headGrad });
    const lossHost = head.losses;
    const dnormed = head.dnormed;

    // ---- backward ----
    const dx = be.tensor(n * H, 'dx');
    ops.rmsnormBackward(dnormed, xL, model.norm, n, H, eps, dx, full ? full.get('model.norm.weight') : null);
    const dtmp = be.tensor(n * H, 'd.tmp');
    const dact = be.tensor(n * I, 'd.act');
    const dgate = be.tensor(n * I, 'd.gate');
    const dup = be.tensor(n * I, 'd.up');
    const datt = be.tensor(n * qDim, 'd.att');
    const dq = be.tensor(n * qDim, 'd.q');
    const dk = be.tensor(n * kvDim, 'd.k');
    const dv = be.tensor(n * kvDim, 'd.v');
    const dqRaw = c.qkNorm ? be.tensor(n * qDim, 'd.q.raw') : null;
    const dkRaw = c.qkNorm ? be.tensor(n * kvDim, 'd.k.raw') : null;
    for (let li = c.numLayers - 1; li >= 0; li--) {
      const L: LayerWeights<W> = model.layers[li];
      const a = layerActs[li];
      // MLP branch: x_out = x2 + down(swiglu(gate(h2), up(h2))), h2 = norm(x2)
      this.projectBackward(dx, a.act, L.down, n, dact, false, li, 'down_proj', a, stepSeed, false);
      ops.swigluBackward(dact, a.gate, a.up, n * I, dgate, dup);
      this.projectBackward(dgate, a.h2, L.gate, n, dtmp, false, li, 'gate_proj', a, stepSeed, false);
      this.projectBackward(dup, a.h2, L.up, n, dtmp, true, li, 'up_proj', a, stepSeed, false);
      const dbranch = be.tensor(n * H, 'd.branch');
      ops.rmsnormBackward(dtmp, a.x2, L.postNorm, n, H, eps, dbranch, full ? full.get(hfName(li, 'post_attention_layernorm')) : null);
      be.add(dx, dbranch, n * H);
      // Attention branch: x2 = xIn + o(attn(rope(q), rope(k), v)), q/k/v from h1 = norm(xIn)
      this.projectBackward(dx, a.att, L.o, n, datt, false, li, 'o_proj', a, stepSeed, Boolean(L.oBias));
      ops.attentionBackward(datt, a.q, a.kCache, a.vCache, slots, positions, n, c.numHeads, c.numKvHeads, c.headDim, mb.seqLen, mb.batch, dq, dk, dv);
      ops.ropeBackward(dq, positions, cos, sin, n, c.numHeads, c.headDim, model.maxPositions);
      ops.ropeBackward(dk, positions, cos, sin, n, c.numKvHeads, c.headDim, model.maxPositions);
      let dqProj = dq;
      let dkProj = dk;
      if (c.qkNorm) {
        ops.rmsnormBackward(dq, a.qRaw, L.qNorm, n * c.numHeads, c.headDim, eps, dqRaw, full ? full.get(hfName(li, 'q_norm')) : null);
        ops.rmsnormBackward(dk, a.kRaw, L.kNorm, n * c.numKvHeads, c.headDim, eps, dkRaw, full ? full.get(hfName(li, 'k_norm')) : null);
        dqProj = dqRaw;
        dkProj = dkRaw;
      }
      this.projectBackward(dqProj, a.h1, L.q, n, dtmp, false, li, 'q_proj', a, stepSeed, Boolean(L.qBias));
      this.projectBackward(dkProj, a.h1, L.k, n, dtmp, true, li, 'k_proj', a, stepSeed, Boolean(L.kBias));
      this.projectBackward(dv, a.h1, L.v, n, dtmp, true, li, 'v_proj', a, stepSeed, Boolean(L.vBias));
      ops.rmsnormBackward(dtmp, a.xIn, L.inputNorm, n, H, eps, dbranch, full ? full.get(hfName(li, 'input_layernorm')) : null);
      be.add(dx, dbranch, n * H);
      be.free(dbranch);
    }
    if (full) ops.embeddingBackward(dx, ids, n, V, H, full.get('model.embed_tokens.weight'), true);

    let lossSum = 0;
    for (let i = 0; i < n; i++) lossSum += lossHost[i];

    // ---- release ----
    const free = [xL, normed, dnormed, dx, dtmp, dact, dgate, dup, datt, dq, dk, dv, proj];
    if (dqRaw) free.push(dqRaw, dkRaw);
    for (const a of layerActs) {
      free.push(a.xIn, a.h1, a.q, a.kCache, a.vCache, a.att, a.x2, a.h2, a.gate, a.up, a.act);
      if (a.qRaw) free.push(a.qRaw, a.kRaw);
      for (const l of a.lora.values()) {
        free.push(l.xa);
        if (l.xd) free.push(l.xd);
      }
    }
    for (const t of free) be.free(t);
    for (const i of [positions, slots, ids]) be.freeIndices(i);
    return { lossSum, tokens };
  }
}
