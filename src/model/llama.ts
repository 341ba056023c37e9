/**
 * The Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) written once against the kernel Backend:
 * it owns the weights and runs one forward pass over a batch of tokens that may belong to several
 * sequences (each token carries its KV-cache slot and position). It knows nothing of sampling.
 */
import type { AnyBackend, KvCacheShape } from '../kernels/backend';
import type { ModelConfig } from '../formats/config';
import { ropeInvFreq } from '../formats/config';
import type { HostTensor } from '../formats/checkpoint';
import { toF16Bits, toFloat32 } from '../formats/checkpoint';
import type { QuantizedMatrix } from '../quant/quantize';

export interface LayerWeights<W> {
  inputNorm: W;
  q: W;
  k: W;
  v: W;
  o: W;
  qBias: W | null;
  kBias: W | null;
  vBias: W | null;
  oBias: W | null;
  qNorm: W | null;
  kNorm: W | null;
  postNorm: W;
  gate: W;
  up: W;
  down: W;
}

/** The projections LoRA can target, by their HF module names. */
export const PROJECTIONS = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type Projection = (typeof PROJECTIONS)[number];

/** Per-sequence KV storage for every layer: [slots, maxSeq, kvHeads * headDim], f32. */
export class KvCache<T> {
  constructor(
    readonly k: T[],
    readonly v: T[],
    readonly shape: KvCacheShape,
  ) {}
}

export interface ForwardBatch {
  ids: Uint32Array;
  positions: Uint32Array;
  slots: Uint32Array;
  /** Token rows whose logits are wanted (e.g. the last token of each sequence), or 'all'. */
  logitRows: number[] | 'all';
  /** 'hidden' returns the final-normed hidden states [rows, hidden] instead of logits (reward heads). */
  output?: 'logits' | 'hidden';
}

/**
 * A low-rank update added to a projection's output: y += scale · (x · Aᵀ) · Bᵀ. Kept separate from
 * the base weight so adapters can be swapped without touching (or copying) the base.
 */
export interface LoraDelta<W> {
  a: W; // [r, in]
  b: W; // [out, r]
  rank: number;
  scale: number;
}

export type AdapterWeights<W> = Map<string, LoraDelta<W>>; // key: `${layer}.${projection}`

export class LlamaModel<T = unknown, W = unknown, I = unknown> {
  readonly layers: LayerWeights<W>[];
  private adapter: AdapterWeights<W> | null = null;

  constructor(
    readonly backend: AnyBackend,
    readonly config: ModelConfig,
    readonly embed: W,
    layers: LayerWeights<W>[],
    readonly norm: W,
    readonly lmHead: W,
    readonly maxPositions: number,
    /** RoPE tables [maxPositions, headDim/2]. */
    readonly cos: W,
    readonly sin: W,
  ) {
    this.layers = layers;
  }

  /**
   * Upload a checkpoint's tensors. Linear weights go to the backend's weight type (f16 or f32);
   * norms and biases stay f32. Host copies are dropped as each tensor is uploaded.
   */
  static fromTensors(backend: AnyBackend, config: ModelConfig, tensors: Map<string, HostTensor>, maxPositions: number, quantized?: Map<string, QuantizedMatrix>): LlamaModel {
    const take = (name: string): HostTensor => {
      const t = tensors.get(name);
      if (!t) throw new Error(`checkpoint is missing tensor ${name}`);
      return t;
    };
    const linear = (name: string) => {
      // q8/q4 weights (src/quant) replace the file's values; their host tensor is not needed.
      const q = quantized?.get(name);
      if (q) return backend.quantizedWeight(name, q);
      const t = take(name);
      const data = backend.weightType === 'f16' ? toF16Bits(t) : toFloat32(t);
      return backend.weight(name, data, t.shape[0], t.shape[1]);
    };
    const vec = (name: string) => backend.vector(name, toFloat32(take(name)));
    const opt = (name: string, present: boolean) => (present ? vec(name) : null);
    const c = config;
    const layers: LayerWeights<unknown>[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}.`;
      layers.push({
        inputNorm: vec(p + 'input_layernorm.weight'),
        q: linear(p + 'self_attn.q_proj.weight'),
        k: linear(p + 'self_attn.k_proj.weight'),
        v: linear(p + 'self_attn.v_proj.weight'),
        o: linear(p + 'self_attn.o_proj.weight'),
        qBias: opt(p + 'self_attn.q_proj.bias', c.attentionBias),
        kBias: opt(p + 'self_attn.k_proj.bias', c.attentionBias),
        vBias: opt(p + 'self_attn.v_proj.bias', c.attentionBias),
        oBias: opt(p + 'self_attn.o_proj.bias', c.outputBias),
        qNorm: opt(p + 'self_attn.q_norm.weight', c.qkNorm),
        kNorm: opt(p + 'self_attn.k_norm.weight', c.qkNorm),
        postNorm: vec(p + 'post_attention_layernorm.weight'),
        gate: linear(p + 'mlp.gate_proj.weight'),
        up: linear(p + 'mlp.up_proj.weight'),
        down: linear(p + 'mlp.down_proj.weight'),
      });
    }
    const embed = linear('model.embed_tokens.weight');
    const lmHead = c.tieWordEmbeddings ? embed : linear('lm_head.weight');
    const norm = vec('model.norm.weight');
    const { cos, sin } = ropeTables(c, maxPositions);
    return new LlamaModel(backend, c, embed, layers, norm, lmHead, maxPositions, backend.vector('rope.cos', cos), backend.vector('rope.sin', sin));
  }

  createCache(slots: number, maxSeq: number): KvCache<T> {
    if (maxSeq > this.maxPositions) throw new Error(`KV cache of ${maxSeq} positions exceeds the model's RoPE table (${this.maxPositions})`);
    const kvDim = this.config.numKvHeads * this.config.headDim;
    const n = slots * maxSeq * kvDim;
    const k: T[] = [];
    const v: T[] = [];
    for (let i = 0; i < this.config.numLayers; i++) {
      k.push(this.backend.tensor(n, `kv.k.${i}`));
      v.push(this.backend.tensor(n, `kv.v.${i}`));
    }
    return new KvCache(k, v, { slots, maxSeq, kvDim });
  }

  freeCache(cache: KvCache<T>): void {
    for (const t of [...cache.k, ...cache.v]) this.backend.free(t);
  }

  /** Free every weight on the backend (the model cannot be used afterwards). */
  dispose(): void {
    const be = this.backend;
    const all = new Set<W>([this.embed, this.lmHead, this.norm, this.cos, this.sin]);
    for (const L of this.layers) for (const w of Object.values(L)) if (w) all.add(w as W);
    for (const w of all) be.freeWeight(w);
  }

  setAdapter(adapter: AdapterWeights<W> | null): void {
    this.adapter = adapter;
  }

  getAdapter(): AdapterWeights<W> | null {
    return this.adapter;
  }

  /** out = x·Wᵀ + bias (+ the adapter's low-rank update for this projection, if any). */
  private project(x: T, w: W, bias: W | null, rows: number, out: T, layer: number, proj: Projection): void {
    const be = this.backend;
    be.matmul(x, w, bias, rows, out);
    const delta = this.adapter?.get(`${layer}.${proj}`);
    if (delta && delta.scale !== 0) {
      const outDim = (w as unknown as { rows: number }).rows;
      const xa = be.tensor(rows * delta.rank, 'lora.xa');
      be.matmul(x, delta.a, null, rows, xa);
      const upd = be.tensor(rows * outDim, 'lora.update');
      be.matmul(xa, delta.b, null, rows, upd);
      be.add(out, upd, rows * outDim, delta.scale);
      be.free(xa);
      be.free(upd);
    }
  }

  /** One forward pass; returns logits [logitRows, vocab] (or hidden states) as f32 on the host. */
  async forward(batch: ForwardBatch, cache: KvCache<T>): Promise<Float32Array> {
    const be = this.backend;
    const c = this.config;
    const n = batch.ids.length;
    for (let i = 0; i < n; i++) {
      if (batch.ids[i] >= c.vocabSize) throw new Error(`token id ${batch.ids[i]} is outside the vocabulary (${c.vocabSize})`);
      if (batch.positions[i] >= cache.shape.maxSeq) throw new Error(`position ${batch.positions[i]} is past the context length (${cache.shape.maxSeq})`);
      if (batch.slots[i] >= cache.shape.slots) throw new Error(`slot ${batch.slots[i]} is past the cache's ${cache.shape.slots} slots`);
    }
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const I = c.intermediateSize;
    const ids = be.indices(batch.ids);
    const positions = be.indices(batch.positions);
    const slots = be.indices(batch.slots);
    const x = be.tensor(n * H, 'x');
    const h = be.tensor(n * H, 'h');
    const q = be.tensor(n * qDim, 'q');
    const k = be.tensor(n * kvDim, 'k');
    const v = be.tensor(n * kvDim, 'v');
    const att = be.tensor(n * qDim, 'att');
    const proj = be.tensor(n * H, 'proj');
    const gate = be.tensor(n * I, 'gate');
    const up = be.tensor(n * I, 'up');
    const act = be.tensor(n * I, 'act');
    // WebGPU forbids binding one buffer as both input and output, so q/k norms write elsewhere.
    const qn = c.qkNorm ? be.tensor(n * qDim, 'q.norm') : q;
    const kn = c.qkNorm ? be.tensor(n * kvDim, 'k.norm') : k;
    be.embedding(ids, this.embed, n, x);
    for (let li = 0; li < c.numLayers; li++) {
      const L = this.layers[li];
      be.rmsnorm(x, L.inputNorm, n, H, c.rmsNormEps, h);
      this.project(h, L.q, L.qBias, n, q, li, 'q_proj');
      this.project(h, L.k, L.kBias, n, k, li, 'k_proj');
      this.project(h, L.v, L.vBias, n, v, li, 'v_proj');
      if (L.qNorm && L.kNorm) {
        // Qwen3: RMSNorm over each head's vector, before RoPE.
        be.rmsnorm(q, L.qNorm, n * c.numHeads, c.headDim, c.rmsNormEps, qn);
        be.rmsnorm(k, L.kNorm, n * c.numKvHeads, c.headDim, c.rmsNormEps, kn);
      }
      be.rope(qn, positions, this.cos, this.sin, n, c.numHeads, c.headDim, this.maxPositions);
      be.rope(kn, positions, this.cos, this.sin, n, c.numKvHeads, c.headDim, this.maxPositions);
      be.kvWrite(kn, v, cache.k[li], cache.v[li], slots, positions, n, cache.shape);
      be.attention(qn, cache.k[li], cache.v[li], slots, positions, n, c.numHeads, c.numKvHeads, c.headDim, cache.shape.maxSeq, att);
      this.project(att, L.o, L.oBias, n, proj, li, 'o_proj');
      be.add(x, proj, n * H);
      be.rmsnorm(x, L.postNorm, n, H, c.rmsNormEps, h);
      this.project(h, L.gate, null, n, gate, li, 'gate_proj');
      this.project(h, L.up, null, n, up, li, 'up_proj');
      be.swiglu(gate, up, n * I, act);
      this.project(act, L.down, null, n, proj, li, 'down_proj');
      be.add(x, proj, n * H);
    }
    const rows = batch.logitRows === 'all' ? null : batch.logitRows;
    const m = rows ? rows.length : n;
    let last = x;
    if (rows) {
      last = be.tensor(m * H, 'x.rows');
      be.gatherRows(x, rows, H, last);
    }
    const normed = be.tensor(m * H, 'x.norm');
    be.rmsnorm(last, this.norm, m, H, c.rmsNormEps, normed);
    const hiddenOnly = batch.output === 'hidden';
    const logits = be.tensor(hiddenOnly ? 1 : m * c.vocabSize, 'logits');
    if (!hiddenOnly) be.matmul(normed, this.lmHead, null, m, logits);
    const out = hiddenOnly ? await be.toHost(normed, m * H) : await be.toHost(logits, m * c.vocabSize);
    for (const t of [x, h, q, k, v, att, proj, gate, up, act, normed, logits]) be.free(t);
    if (c.qkNorm) for (const t of [qn, kn]) be.free(t);
    if (rows) be.free(last);
    for (const i of [ids, positions, slots]) be.freeIndices(i);
    return out;
  }
}

/**
 * cos/sin tables [maxPositions, headDim/2] as HF computes them: angle = f32(inv_freq · position),
 * then cos/sin of that f32 angle. Computing them on the host keeps GPU cos() precision out of it.
 */
export function ropeTables(config: ModelConfig, maxPositions: number): { cos: Float32Array; sin: Float32Array } {
  const inv = ropeInvFreq(config);
  const half = inv.length;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let j = 0; j < half; j++) {
      const angle = Math.fround(inv[j] * p);
      cos[p * half + j] = Math.cos(angle);
      sin[p * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin };
}
