/**
 * The Llama-family decoder (Llama, Mistral, Qwen2, Qwen3) against the kernel Backend: it owns the
 * weights and runs one forward pass over a batch of tokens that may belong to several sequences
 * (each token carries its KV-cache slot and position). It knows nothing of sampling. The same
 * forward serves training: given an Activations recorder it keeps what the backward reads
 * (backward.ts), as llm.c's forward fills its activation struct.
 */
import type { Backend, KvCacheShape, WeightShape } from '../kernels/backend';
import type { ModelConfig, Projection } from '../formats/config';
import { ropeInvFreq } from '../formats/config';
import type { HostTensor } from '../formats/checkpoint';
import { toF16Bits, toFloat32 } from '../formats/checkpoint';
import type { QuantizedMatrix } from '../quant/quantize';
import { interleaveCosSin } from '../kernels/fused-cpu';

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

/** The LayerWeights field of each projection. */
export const PROJECTION_FIELD = {
  q_proj: 'q',
  k_proj: 'k',
  v_proj: 'v',
  o_proj: 'o',
  gate_proj: 'gate',
  up_proj: 'up',
  down_proj: 'down',
} as const;

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

/** What the backward of one adapter reads: its (dropped-out) input and x·Aᵀ. */
export interface LoraActivations<T> {
  /** dropout(x), when the recorder applies dropout; otherwise the projection's input is used. */
  xd: T | null;
  xa: T;
}

/** What one layer's forward leaves for its backward. */
export interface LayerActivations<T> {
  /** The residual stream entering the layer. */
  xIn: T;
  /** input_layernorm(xIn): the input of q, k, v. */
  h1: T;
  /** q and k projections before q_norm / k_norm (Qwen3 only; null otherwise). */
  qRaw: T | null;
  kRaw: T | null;
  /** q as attention read it (normed, rotated). K and V are the layer's KV cache. */
  q: T;
  att: T;
  /** xIn + o_proj(att): the residual stream between attention and MLP. */
  x2: T;
  /** post_attention_layernorm(x2): the input of gate and up. */
  h2: T;
  gate: T;
  up: T;
  act: T;
  lora: Map<Projection, LoraActivations<T>>;
}

/**
 * Filled by a recorded forward pass: every activation the backward reads, per layer and at the
 * end, plus the index lists the backward kernels take. The recorder owns them: free() them after
 * the backward. `loraDropout`, when given, replaces an adapter's input by a dropped-out copy
 * (training); the backward rebuilds the same mask from (layer, projection).
 */
export class Activations<T, I> {
  readonly layers: LayerActivations<T>[] = [];
  ids: I | null = null;
  positions: I | null = null;
  slots: I | null = null;
  /** The residual stream after the last layer, its final norm, and the output (logits or hidden). */
  xOut: T | null = null;
  normed: T | null = null;
  output: T | null = null;

  /** Recomputation: the input of every block (the residual stream before it), in order. */
  readonly inputs: T[] = [];
  /** Tokens of the recorded batch. */
  tokens = 0;

  constructor(
    readonly loraDropout?: (x: T, rows: number, features: number, layer: number, proj: Projection) => T,
    /** Keep only each block's input (`inputs`); the backward rebuilds a block with recomputeLayer(). */
    readonly recompute = false,
  ) {}

  /** What the end of a recorded forward stored (throws when nothing was recorded). */
  recorded(): { ids: I; positions: I; slots: I; xOut: T; normed: T; output: T } {
    const { ids, positions, slots, xOut, normed, output } = this;
    if (ids === null || positions === null || slots === null || xOut === null || normed === null || output === null)
      throw new Error('no forward pass was recorded');
    return { ids, positions, slots, xOut, normed, output };
  }

  /** Free every recorded tensor and index list on `backend`. */
  free(backend: Backend<T, WeightShape, I>): void {
    const tensors = new Set<T>();
    for (const a of this.layers) {
      for (const t of [a.xIn, a.h1, a.qRaw, a.kRaw, a.q, a.att, a.x2, a.h2, a.gate, a.up, a.act]) if (t) tensors.add(t);
      for (const l of a.lora.values()) for (const t of [l.xd, l.xa]) if (t) tensors.add(t);
    }
    for (const t of [this.xOut, this.normed, this.output, ...this.inputs]) if (t) tensors.add(t);
    for (const t of tensors) backend.free(t);
    this.inputs.length = 0;
    for (const i of [this.ids, this.positions, this.slots]) if (i) backend.freeIndices(i);
    this.layers.length = 0;
    this.xOut = this.normed = this.output = null;
    this.ids = this.positions = this.slots = null;
  }
}

export class LlamaModel<T = unknown, W extends WeightShape = WeightShape, I = unknown> {
  readonly layers: LayerWeights<W>[];
  private adapter: AdapterWeights<W> | null = null;
  /**
   * Inference with few rows (decode) runs the fused ops where the backend takes them (RMSNorm in
   * the projections' prologue, SwiGLU and the residual add in their epilogues, RoPE of q and k
   * with the KV write: 6 dispatches a layer instead of 16). false: the separate ops (benchmarks compare both).
   */
  fusedDecode = true;

  constructor(
    readonly backend: Backend<T, W, I>,
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
  static fromTensors<T, W extends WeightShape, I>(
    backend: Backend<T, W, I>,
    config: ModelConfig,
    tensors: Map<string, HostTensor>,
    maxPositions: number,
    quantized?: Map<string, QuantizedMatrix>,
  ): LlamaModel<T, W, I> {
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
    const layers: LayerWeights<W>[] = [];
    for (let i = 0; i < c.numLayers; i++) {
      const p = `model.layers.${i}.`;
      layers.push({
        inputNorm: vec(`${p}input_layernorm.weight`),
        q: linear(`${p}self_attn.q_proj.weight`),
        k: linear(`${p}self_attn.k_proj.weight`),
        v: linear(`${p}self_attn.v_proj.weight`),
        o: linear(`${p}self_attn.o_proj.weight`),
        qBias: opt(`${p}self_attn.q_proj.bias`, c.attentionBias),
        kBias: opt(`${p}self_attn.k_proj.bias`, c.attentionBias),
        vBias: opt(`${p}self_attn.v_proj.bias`, c.attentionBias),
        oBias: opt(`${p}self_attn.o_proj.bias`, c.outputBias),
        qNorm: opt(`${p}self_attn.q_norm.weight`, c.qkNorm),
        kNorm: opt(`${p}self_attn.k_norm.weight`, c.qkNorm),
        postNorm: vec(`${p}post_attention_layernorm.weight`),
        gate: linear(`${p}mlp.gate_proj.weight`),
        up: linear(`${p}mlp.up_proj.weight`),
        down: linear(`${p}mlp.down_proj.weight`),
      });
    }
    const embed = linear('model.embed_tokens.weight');
    const lmHead = c.tieWordEmbeddings ? embed : linear('lm_head.weight');
    const norm = vec('model.norm.weight');
    const { cos, sin } = ropeTables(c, maxPositions);
    return new LlamaModel(
      backend,
      c,
      embed,
      layers,
      norm,
      lmHead,
      maxPositions,
      backend.vector('rope.cos', cos),
      backend.vector('rope.sin', sin),
    );
  }

  createCache(slots: number, maxSeq: number): KvCache<T> {
    if (maxSeq > this.maxPositions)
      throw new Error(`KV cache of ${maxSeq} positions exceeds the model's RoPE table (${this.maxPositions})`);
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

  private cosSinTable: W | null = null;

  /** The RoPE tables interleaved as (cos, sin) pairs for the fused decode op, made on first use. */
  private cosSin(): W {
    if (!this.cosSinTable) {
      const { cos, sin } = ropeTables(this.config, this.maxPositions);
      this.cosSinTable = this.backend.vector('rope.cos_sin', interleaveCosSin(cos, sin));
    }
    return this.cosSinTable;
  }

  /** Free every weight on the backend (the model cannot be used afterwards). */
  dispose(): void {
    const be = this.backend;
    const all = new Set<W>([this.embed, this.lmHead, this.norm, this.cos, this.sin]);
    if (this.cosSinTable) all.add(this.cosSinTable);
    for (const L of this.layers) for (const w of Object.values(L)) if (w) all.add(w as W);
    for (const w of all) be.freeWeight(w);
  }

  setAdapter(adapter: AdapterWeights<W> | null): void {
    this.adapter = adapter;
  }

  getAdapter(): AdapterWeights<W> | null {
    return this.adapter;
  }

  /**
   * out = x·Wᵀ + bias (+ the adapter's low-rank update for this projection, if any). Recording, the
   * adapter's input (after dropout) and x·Aᵀ are kept for the backward.
   */
  private project(
    x: T,
    w: W,
    bias: W | null,
    rows: number,
    out: T,
    layer: number,
    proj: Projection,
    acts: LayerActivations<T> | null,
    record: Activations<T, I> | undefined,
  ): void {
    const be = this.backend;
    be.matmul(x, w, bias, rows, out);
    const delta = this.adapter?.get(`${layer}.${proj}`);
    if (!delta || (delta.scale === 0 && !acts)) return;
    // Training applies LoRA dropout whether or not this pass keeps the activations (recomputation).
    const xd = record?.loraDropout ? record.loraDropout(x, rows, w.cols, layer, proj) : null;
    const xa = be.tensor(rows * delta.rank, 'lora.xa');
    be.matmul(xd ?? x, delta.a, null, rows, xa);
    const upd = be.tensor(rows * w.rows, 'lora.update');
    be.matmul(xa, delta.b, null, rows, upd);
    be.add(out, upd, rows * w.rows, delta.scale);
    be.free(upd);
    if (acts) acts.lora.set(proj, { xd, xa });
    else {
      be.free(xa);
      if (xd) be.free(xd);
    }
  }

  /** One forward pass; returns logits [logitRows, vocab] (or hidden states) as f32 on the host. */
  async forward(batch: ForwardBatch, cache: KvCache<T>): Promise<Float32Array> {
    const { output, length } = this.forwardOnDevice(batch, cache);
    try {
      return await this.backend.toHost(output, length);
    } finally {
      this.backend.free(output);
    }
  }

  /**
   * `steps` greedy decode steps of one token per sequence, recorded back to back on the device:
   * each step's argmax is the next step's input ids, without a round trip to the host, and all
   * steps' tokens are read back once ([steps, rows], row r of `batch` at step s at s·rows + r).
   * Step s of row r runs at position positions[r] + s. Equal to `steps` calls of forward() with
   * the host's argmax; a sequence that would stop earlier (EOS, a stop string) only wastes its
   * later steps, whose cache entries lie past its end and are never read.
   */
  async greedyDecode(
    batch: Pick<ForwardBatch, 'ids' | 'positions' | 'slots'>,
    cache: KvCache<T>,
    steps: number,
  ): Promise<Uint32Array> {
    const be = this.backend;
    const rows = batch.ids.length;
    if (!Number.isInteger(steps) || steps < 1)
      throw new Error(`greedyDecode: steps must be a positive integer, got ${steps}`);
    for (let r = 0; r < rows; r++) {
      if (batch.positions[r] + steps > cache.shape.maxSeq)
        throw new Error(
          `greedyDecode: ${steps} steps from position ${batch.positions[r]} run past the context length (${cache.shape.maxSeq})`,
        );
    }
    const all = Array.from({ length: rows }, (_, r) => r);
    // Everything the burst reads from the host is uploaded before its first step is recorded: an
    // upload submits the work recorded before it, so uploads between steps would split the burst
    // into one submission per step.
    this.checkVocabulary(batch.ids);
    const tokens = be.indices(new Uint32Array(steps * rows));
    // Two id lists in turn: step s reads ids[s % 2] while its argmax writes the other one.
    const ids = [be.indices(Uint32Array.from(batch.ids)), be.indices(new Uint32Array(rows))];
    const slots = be.indices(Uint32Array.from(batch.slots));
    const stepPositions = Array.from({ length: steps }, (_, s) => batch.positions.map((p) => p + s));
    const positions = stepPositions.map((p) => be.indices(p));
    // The next step's input embedding, written by this step's argmax (no embedding dispatch).
    let embedded: T | undefined;
    try {
      for (let s = 0; s < steps; s++) {
        const step = { ids: batch.ids, positions: stepPositions[s], slots: batch.slots, logitRows: all };
        const onDevice = { ids: ids[s % 2], positions: positions[s], slots, embedded };
        const { output } = this.forwardOnDevice(step, cache, undefined, onDevice);
        embedded = undefined; // the forward took it over (and freed it)
        if (s + 1 < steps) embedded = be.tensor(rows * this.config.hiddenSize, 'x');
        const embed = embedded && { table: this.embed, out: embedded };
        be.argmaxRows(output, rows, this.config.vocabSize, ids[(s + 1) % 2], tokens, s * rows, embed);
        be.free(output);
        // Each step is submitted as soon as it is recorded, so the device runs it while the next
        // one is recorded (bench decode, side by side: tiny-0.11M 0.83 vs 1.31 ms/step as one
        // submission per burst; no loss on larger models).
        be.flush();
      }
      return await be.indicesToHost(tokens, steps * rows);
    } finally {
      if (embedded) be.free(embedded);
      for (const i of [tokens, ...ids, slots, ...positions]) be.freeIndices(i);
    }
  }

  private checkVocabulary(ids: ArrayLike<number>): void {
    for (let i = 0; i < ids.length; i++)
      if (ids[i] >= this.config.vocabSize)
        throw new Error(`token id ${ids[i]} is outside the vocabulary (${this.config.vocabSize})`);
  }

  /** One block's activation buffers (xIn given; x2 is set by the block). */
  private layerBuffers(xIn: T, n: number): LayerActivations<T> {
    const be = this.backend;
    const c = this.config;
    const H = c.hiddenSize;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const I = c.intermediateSize;
    return {
      xIn,
      h1: be.tensor(n * H, 'h1'),
      // WebGPU forbids binding one buffer as both input and output, so q/k norms write elsewhere.
      qRaw: c.qkNorm ? be.tensor(n * qDim, 'q.raw') : null,
      kRaw: c.qkNorm ? be.tensor(n * kvDim, 'k.raw') : null,
      q: be.tensor(n * qDim, 'q'),
      att: be.tensor(n * qDim, 'att'),
      x2: xIn,
      h2: be.tensor(n * H, 'h2'),
      gate: be.tensor(n * I, 'gate'),
      up: be.tensor(n * I, 'up'),
      act: be.tensor(n * I, 'act'),
      lora: new Map(),
    };
  }

  /** Free what layerBuffers() allocated (not xIn, not x2). */
  private freeLayerBuffers(a: LayerActivations<T>): void {
    for (const t of [a.h1, a.qRaw, a.kRaw, a.q, a.att, a.h2, a.gate, a.up, a.act]) if (t) this.backend.free(t);
  }

  private layerScratch(n: number): { k: T; v: T; proj: T } {
    const be = this.backend;
    const c = this.config;
    const kvDim = c.numKvHeads * c.headDim;
    return { k: be.tensor(n * kvDim, 'k'), v: be.tensor(n * kvDim, 'v'), proj: be.tensor(n * c.hiddenSize, 'proj') };
  }

  /**
   * Block `li` on the residual stream x into the buffers `a`; returns the block's output. With
   * `keepInputs`, residual sums go to new tensors (x and x2 stay what the backward reads); `acts`
   * keeps the adapters' inputs; `record` applies its LoRA dropout (training).
   */
  private layerForward(
    li: number,
    x: T,
    a: LayerActivations<T>,
    acts: LayerActivations<T> | null,
    record: Activations<T, I> | undefined,
    s: { k: T; v: T; proj: T; positions: I; slots: I; cache: KvCache<T>; n: number; distinctSlots?: boolean },
    keepInputs: boolean,
  ): T {
    const be = this.backend;
    const c = this.config;
    const { k, v, proj, positions, slots, cache, n } = s;
    const H = c.hiddenSize;
    const eps = c.rmsNormEps;
    /** x + y: in place, or (keeping inputs) into a new tensor so that x stays what the backward reads. */
    const residual = (x: T, y: T, label: string): T => {
      if (!keepInputs) {
        be.add(x, y, n * H);
        return x;
      }
      const out = be.tensor(n * H, label);
      be.gatherRows(x, [0], n * H, out);
      be.add(out, y, n * H);
      return out;
    };
    const L = this.layers[li];
    a.xIn = x;
    // Decode's fused ops (inference only: training reads the separate activations). Each group
    // fuses when its weights allow (no bias, no active adapter, a weight the backend fuses).
    const fuse = this.fusedDecode && !keepInputs && !acts && !record;
    const plain = (proj: Projection) => {
      const delta = this.adapter?.get(`${li}.${proj}`);
      return !delta || delta.scale === 0;
    };
    const fusable = (w: W, proj: Projection) => fuse && plain(proj) && be.canFuse(w, n);
    if (
      !a.qRaw &&
      !L.qBias &&
      !L.kBias &&
      !L.vBias &&
      fusable(L.q, 'q_proj') &&
      fusable(L.k, 'k_proj') &&
      fusable(L.v, 'v_proj')
    ) {
      be.normMatmul(x, L.inputNorm, eps, [L.q, L.k, L.v], n, [a.q, k, v]);
    } else {
      be.rmsnorm(x, L.inputNorm, n, H, eps, a.h1);
      this.project(a.h1, L.q, L.qBias, n, a.qRaw ?? a.q, li, 'q_proj', acts, record);
      this.project(a.h1, L.k, L.kBias, n, a.kRaw ?? k, li, 'k_proj', acts, record);
      this.project(a.h1, L.v, L.vBias, n, v, li, 'v_proj', acts, record);
    }
    if (a.qRaw && a.kRaw && L.qNorm && L.kNorm) {
      // Qwen3: RMSNorm over each head's vector, before RoPE.
      be.rmsnorm(a.qRaw, L.qNorm, n * c.numHeads, c.headDim, eps, a.q);
      be.rmsnorm(a.kRaw, L.kNorm, n * c.numKvHeads, c.headDim, eps, k);
    }
    // The attention output: a.att, or (decode, in one dispatch where the backend can) wherever
    // ropeKvAttention leaves it.
    let att: T | null = null;
    if (fuse) {
      const heads = [c.numHeads, c.numKvHeads, c.headDim, this.maxPositions] as const;
      const cacheLayer = [cache.k[li], cache.v[li], slots, positions, this.cosSin()] as const;
      if (s.distinctSlots) att = be.ropeKvAttention(a.q, k, v, ...cacheLayer, n, ...heads, cache.shape, a.att);
      else be.ropeKvWrite(a.q, k, v, ...cacheLayer, n, ...heads, cache.shape);
    } else {
      be.rope(a.q, positions, this.cos, this.sin, n, c.numHeads, c.headDim, this.maxPositions);
      be.rope(k, positions, this.cos, this.sin, n, c.numKvHeads, c.headDim, this.maxPositions);
      be.kvWrite(k, v, cache.k[li], cache.v[li], slots, positions, n, cache.shape);
    }
    if (!att) {
      const dims = [n, c.numHeads, c.numKvHeads, c.headDim, cache.shape.maxSeq] as const;
      be.attention(a.q, cache.k[li], cache.v[li], slots, positions, ...dims, a.att);
      att = a.att;
    }
    const oFused = !L.oBias && fusable(L.o, 'o_proj');
    const mlpFused = fusable(L.gate, 'gate_proj') && fusable(L.up, 'up_proj');
    const downFused = fusable(L.down, 'down_proj');
    if (oFused && mlpFused && downFused) {
      // The new residual stream is x updated in place, or `proj` where the backend ran a kernel
      // that cannot update it in place (the caller then takes x as the next layer's scratch).
      const mlp = { o: L.o, norm: L.postNorm, gate: L.gate, up: L.up, down: L.down };
      a.x2 = be.mlpDecode(att, x, mlp, eps, n, proj, a.act);
      return a.x2;
    }
    if (oFused) {
      be.matmulAdd(att, L.o, n, x);
      a.x2 = x;
    } else {
      this.project(att, L.o, L.oBias, n, proj, li, 'o_proj', acts, record);
      a.x2 = residual(x, proj, 'x2');
    }
    if (mlpFused) {
      be.normSwiglu(a.x2, L.postNorm, eps, L.gate, L.up, n, a.act);
    } else {
      be.rmsnorm(a.x2, L.postNorm, n, H, eps, a.h2);
      this.project(a.h2, L.gate, null, n, a.gate, li, 'gate_proj', acts, record);
      this.project(a.h2, L.up, null, n, a.up, li, 'up_proj', acts, record);
      be.swiglu(a.gate, a.up, n * c.intermediateSize, a.act);
    }
    if (downFused) {
      be.matmulAdd(a.act, L.down, n, a.x2);
      return a.x2;
    }
    this.project(a.act, L.down, null, n, proj, li, 'down_proj', acts, record);
    return residual(a.x2, proj, 'x');
  }

  /**
   * Recomputation (--recompute): block `li`'s activations rebuilt from its recorded input, for its
   * backward. The caller frees them with freeRecomputed() after that block's backward.
   */
  recomputeLayer(li: number, record: Activations<T, I>, cache: KvCache<T>): LayerActivations<T> {
    const { positions, slots } = record.recorded();
    const x = record.inputs[li];
    const n = record.tokens;
    const a = this.layerBuffers(x, n);
    const scratch = this.layerScratch(n);
    const out = this.layerForward(li, x, a, a, record, { ...scratch, positions, slots, cache, n }, true);
    this.backend.free(out);
    for (const t of Object.values(scratch)) this.backend.free(t);
    return a;
  }

  /** Free a recomputed block's activations (not its input, which the recorder owns). */
  freeRecomputed(a: LayerActivations<T>): void {
    this.freeLayerBuffers(a);
    this.backend.free(a.x2);
    for (const l of a.lora.values()) for (const t of [l.xd, l.xa]) if (t) this.backend.free(t);
  }

  /**
   * The forward pass, leaving its output (logits [rows, vocab], or hidden states [rows, hidden])
   * on the device: the caller frees it, unless `record` is given, which then owns it along with
   * every activation the backward reads (see Activations). Recording keeps each layer's tensors
   * instead of reusing one set, and leaves the residual stream of every layer intact.
   */
  forwardOnDevice(
    batch: ForwardBatch,
    cache: KvCache<T>,
    record?: Activations<T, I>,
    /**
     * Index lists already on the device (a greedy burst's ids from the previous argmax, and its
     * positions and slots uploaded once): those of `batch` are then only checked, not uploaded, and
     * they stay the caller's to free. Uploading is what would submit the work recorded so far.
     * `embedded`: the ids' embeddings, already gathered (by the previous step's argmax); the
     * forward takes it over as its residual stream and frees it.
     */
    onDevice: { ids?: I; positions?: I; slots?: I; embedded?: T } = {},
  ): { output: T; length: number } {
    const be = this.backend;
    const c = this.config;
    const n = batch.ids.length;
    if (!onDevice.ids) this.checkVocabulary(batch.ids);
    for (let i = 0; i < n; i++) {
      if (batch.positions[i] >= cache.shape.maxSeq)
        throw new Error(`position ${batch.positions[i]} is past the context length (${cache.shape.maxSeq})`);
      if (batch.slots[i] >= cache.shape.slots)
        throw new Error(`slot ${batch.slots[i]} is past the cache's ${cache.shape.slots} slots`);
    }
    const H = c.hiddenSize;
    const eps = c.rmsNormEps;
    // A record frees its index lists with the activations, so they must be its own.
    if (record && (onDevice.ids || onDevice.positions || onDevice.slots || onDevice.embedded))
      throw new Error('forwardOnDevice: a recorded forward uploads its own index lists');
    const uploaded: I[] = [];
    const upload = (data: Uint32Array): I => {
      const i = be.indices(data);
      uploaded.push(i);
      return i;
    };
    const ids = onDevice.ids ?? upload(batch.ids);
    const positions = onDevice.positions ?? upload(batch.positions);
    const slots = onDevice.slots ?? upload(batch.slots);
    const scratch = this.layerScratch(n);
    const { k, v } = scratch;
    let proj = scratch.proj;
    // Tokens each in a slot of their own (decode) may take attention with its RoPE and cache write.
    const distinctSlots = new Set(batch.slots).size === n;
    let x = onDevice.embedded;
    if (!x) {
      x = be.tensor(n * H, 'x');
      be.embedding(ids, this.embed, n, x);
    }
    // Recomputation keeps only each block's input; its activations are rebuilt in the backward.
    const keepAll = record && !record.recompute;
    const shared = keepAll ? null : this.layerBuffers(x, n);
    for (let li = 0; li < c.numLayers; li++) {
      const a = shared ?? this.layerBuffers(x, n);
      if (record?.recompute) record.inputs.push(x);
      const next = this.layerForward(
        li,
        x,
        a,
        keepAll ? a : null,
        record,
        { k, v, proj, positions, slots, cache, n, distinctSlots },
        Boolean(record),
      );
      if (record?.recompute && a.x2 !== x) be.free(a.x2);
      // A layer whose MLP input side ran as one dispatch leaves the stream in proj (see layerForward).
      if (next === proj) proj = x;
      x = next;
      if (keepAll) record.layers.push(a);
    }
    for (const t of [k, v, proj]) be.free(t);
    if (shared) this.freeLayerBuffers(shared);
    // Logits for every row in order (a decode step's one row) need no gather: a copy between
    // compute passes costs a pass break per step.
    const everyRow =
      batch.logitRows === 'all' || (batch.logitRows.length === n && batch.logitRows.every((r, i) => r === i));
    const rows = everyRow ? null : (batch.logitRows as number[]);
    const m = rows ? rows.length : n;
    let last = x;
    if (rows) {
      last = be.tensor(m * H, 'x.rows');
      be.gatherRows(x, rows, H, last);
    }
    const hiddenOnly = batch.output === 'hidden';
    let output: T;
    if (!hiddenOnly && !record && this.fusedDecode && be.canFuse(this.lmHead, m)) {
      // The final norm in the LM head's prologue (decode).
      output = be.tensor(m * c.vocabSize, 'logits');
      be.normMatmul(last, this.norm, eps, [this.lmHead], m, [output]);
      be.free(x);
      if (rows) be.free(last);
      for (const i of uploaded) be.freeIndices(i);
      return { output, length: m * c.vocabSize };
    }
    const normed = be.tensor(m * H, 'x.norm');
    be.rmsnorm(last, this.norm, m, H, eps, normed);
    output = normed;
    if (!hiddenOnly) {
      output = be.tensor(m * c.vocabSize, 'logits');
      be.matmul(normed, this.lmHead, null, m, output);
    }
    if (rows) be.free(last);
    if (record) {
      Object.assign(record, { ids, positions, slots, xOut: x, normed, output, tokens: n });
    } else {
      be.free(x);
      if (!hiddenOnly) be.free(normed);
      for (const i of uploaded) be.freeIndices(i);
    }
    return { output, length: m * (hiddenOnly ? H : c.vocabSize) };
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
