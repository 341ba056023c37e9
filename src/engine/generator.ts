/**
 * Generation with continuous batching: every step runs ONE forward pass over all live sequences —
 * the whole prompt of sequences that just joined (prefill) and the last token of the others
 * (decode) — each in its own KV-cache slot with its own sampling settings and stop conditions.
 * The debate's agents therefore decode together, and a request arriving mid-way joins at the next
 * step instead of waiting for the batch to drain.
 */
import type { LlamaModel, KvCache } from '../model/llama';
import { Rng } from '../util/random';
import { sampleToken, type SamplingParams } from './sampling';

export interface TokenDecoder {
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean }): string;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface GenerationRequest {
  prompt: number[];
  maxTokens: number;
  sampling?: SamplingParams;
  /** Stop when the decoded text contains one of these; the text is cut before it. */
  stop?: string[];
  /** Token ids that end generation; defaults to the model's EOS ids. */
  eosTokenIds?: number[];
  /** Keep going past EOS (to compare fixed-length continuations). */
  ignoreEos?: boolean;
  signal?: AbortSignal;
  /** Called for each new token with the text that became final (stop strings held back). */
  onToken?: (id: number, textDelta: string) => void;
}

export interface GenerationResult {
  /** New token ids, including the EOS token when generation ended on one. */
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  promptTokens: number;
  timings: {
    queuedMs: number;
    prefillMs: number;
    decodeMs: number;
    prefillTokensPerS: number;
    decodeTokensPerS: number;
  };
}

interface Sequence {
  req: GenerationRequest;
  resolve: (r: GenerationResult) => void;
  reject: (e: Error) => void;
  slot: number;
  tokens: number[];
  prefilled: boolean;
  rng: Rng;
  emitted: number;
  text: string;
  enqueuedAt: number;
  startedAt: number;
  prefillMs: number;
  decodeMs: number;
}

export interface GeneratorOptions {
  /** Sequences decoded together (KV-cache slots). */
  maxBatch?: number;
  /** Positions per sequence (prompt + completion). */
  contextLength?: number;
  /** Prompt tokens admitted into one step, so a long prompt does not stall running decodes. */
  prefillBudget?: number;
  /** Default stop ids (config.json, generation_config.json and tokenizer EOS merged). */
  eosTokenIds?: number[];
  /**
   * Decode steps run on the device in one go when every live sequence decodes greedily (the
   * argmax feeds the next step there; tokens come back once per burst). 1 turns bursts off.
   */
  greedyBurst?: number;
}

/** Greedy decode steps per burst: long enough to hide a readback, short enough to stream smoothly. */
const DEFAULT_GREEDY_BURST = 8;

export class Generator {
  readonly maxBatch: number;
  readonly contextLength: number;
  private readonly prefillBudget: number;
  private readonly eosTokenIds: number[];
  private readonly greedyBurst: number;
  private readonly cache: KvCache<unknown>;
  private readonly pending: Sequence[] = [];
  private readonly running: Sequence[] = [];
  private readonly freeSlots: number[];
  private loop: Promise<void> | null = null;

  constructor(
    readonly model: LlamaModel,
    readonly decoder: TokenDecoder | null,
    opts: GeneratorOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 8;
    this.contextLength = Math.min(opts.contextLength ?? 2048, model.maxPositions);
    this.prefillBudget = opts.prefillBudget ?? 1024;
    this.eosTokenIds = opts.eosTokenIds ?? model.config.eosTokenIds;
    this.greedyBurst = Math.max(1, Math.floor(opts.greedyBurst ?? DEFAULT_GREEDY_BURST));
    this.cache = model.createCache(this.maxBatch, this.contextLength);
    this.freeSlots = Array.from({ length: this.maxBatch }, (_, i) => this.maxBatch - 1 - i);
  }

  generate(req: GenerationRequest): Promise<GenerationResult> {
    if (!req.prompt.length) return Promise.reject(new Error('the prompt is empty: at least one token is needed'));
    if (req.prompt.length >= this.contextLength) {
      return Promise.reject(
        new Error(
          `the prompt has ${req.prompt.length} tokens; the context holds ${this.contextLength} (prompt + completion)`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.pending.push({
        req,
        resolve,
        reject,
        slot: -1,
        tokens: [],
        prefilled: false,
        rng: new Rng(req.sampling?.seed ?? (Math.random() * 2 ** 32) >>> 0),
        emitted: 0,
        text: '',
        enqueuedAt: performance.now(),
        startedAt: 0,
        prefillMs: 0,
        decodeMs: 0,
      });
      this.loop ??= this.run();
    });
  }

  /**
   * Run `fn` with the KV cache while no generation is in flight (e.g. a full-sequence forward pass
   * for `logits` or evaluation scoring). Slot contents are overwritten.
   */
  async exclusive<R>(fn: (cache: KvCache<unknown>) => Promise<R>): Promise<R> {
    while (this.loop) await this.loop;
    return fn(this.cache);
  }

  /** Free the KV cache (the generator cannot be used afterwards). */
  dispose(): void {
    this.model.freeCache(this.cache as never);
  }

  private async run(): Promise<void> {
    // Never finish synchronously, so `this.loop` is assigned before it is cleared below. It is
    // cleared in the same microtask in which the loop sees no work — not after another await — so
    // a request that arrives a moment later starts a new loop instead of waiting on a finished one.
    await Promise.resolve();
    while (this.pending.length || this.running.length) {
      this.admit();
      if (!this.running.length) continue;
      try {
        await this.step();
      } catch (e) {
        // A failed forward pass (device lost, bad token) fails every live request, clearly.
        const err = e instanceof Error ? e : new Error(String(e));
        for (const s of this.running.splice(0)) {
          this.freeSlots.push(s.slot);
          s.reject(err);
        }
      }
    }
    this.loop = null;
  }

  private admit(): void {
    let budget = this.prefillBudget;
    while (this.pending.length && this.freeSlots.length) {
      const s = this.pending[0];
      if (s.req.signal?.aborted) {
        this.pending.shift();
        s.resolve(this.result(s, 'abort'));
        continue;
      }
      if (s.req.prompt.length > budget && budget < this.prefillBudget) break;
      this.pending.shift();
      budget -= s.req.prompt.length;
      s.slot = this.freeSlots.pop()!;
      s.startedAt = performance.now();
      this.running.push(s);
    }
  }

  /**
   * Steps the next burst may take: more than 1 only when every live sequence is decoding greedily
   * (no prompt to prefill, no sampling, no repetition penalty) and nobody waits for a slot; never
   * past a sequence's token budget or the context.
   */
  private burstLength(seqs: Sequence[]): number {
    if (this.greedyBurst <= 1 || this.pending.length) return 1;
    let steps = this.greedyBurst;
    for (const s of seqs) {
      const p = s.req.sampling ?? {};
      const penalty = p.repetitionPenalty && p.repetitionPenalty !== 1;
      if (!s.prefilled || (p.temperature ?? 1) > 0 || penalty) return 1;
      const used = s.req.prompt.length + s.tokens.length;
      steps = Math.min(steps, s.req.maxTokens - s.tokens.length, this.contextLength - used);
    }
    return Math.max(1, steps);
  }

  private async step(): Promise<void> {
    const seqs = this.running.slice();
    const burst = this.burstLength(seqs);
    if (burst > 1) return this.burstStep(seqs, burst);
    const ids: number[] = [];
    const positions: number[] = [];
    const slots: number[] = [];
    const logitRows: number[] = [];
    for (const s of seqs) {
      if (!s.prefilled) {
        s.req.prompt.forEach((id, p) => {
          ids.push(id);
          positions.push(p);
          slots.push(s.slot);
        });
      } else {
        ids.push(s.tokens[s.tokens.length - 1]);
        positions.push(s.req.prompt.length + s.tokens.length - 1);
        slots.push(s.slot);
      }
      logitRows.push(ids.length - 1);
    }
    const t0 = performance.now();
    const logits = await this.model.forward(
      { ids: Uint32Array.from(ids), positions: Uint32Array.from(positions), slots: Uint32Array.from(slots), logitRows },
      this.cache,
    );
    const ms = performance.now() - t0;
    const vocab = this.model.config.vocabSize;
    seqs.forEach((s, i) => {
      if (!s.prefilled) {
        s.prefilled = true;
        s.prefillMs += ms;
      } else {
        s.decodeMs += ms;
      }
      if (s.req.signal?.aborted) return this.finish(s, 'abort');
      const row = logits.slice(i * vocab, (i + 1) * vocab);
      const seen = s.req.sampling?.repetitionPenalty ? [...s.req.prompt, ...s.tokens] : [];
      this.accept(s, sampleToken(row, s.req.sampling ?? {}, s.rng, seen));
    });
  }

  /** `steps` greedy decode steps of every live sequence on the device, then their tokens in order. */
  private async burstStep(seqs: Sequence[], steps: number): Promise<void> {
    const t0 = performance.now();
    const tokens = await this.model.greedyDecode(
      {
        ids: Uint32Array.from(seqs, (s) => s.tokens[s.tokens.length - 1]),
        positions: Uint32Array.from(seqs, (s) => s.req.prompt.length + s.tokens.length - 1),
        slots: Uint32Array.from(seqs, (s) => s.slot),
      },
      this.cache,
      steps,
    );
    const ms = performance.now() - t0;
    for (const s of seqs) s.decodeMs += ms;
    for (let step = 0; step < steps; step++) {
      seqs.forEach((s, i) => {
        if (!this.running.includes(s)) return; // finished earlier in the burst
        if (s.req.signal?.aborted) return this.finish(s, 'abort');
        this.accept(s, tokens[step * seqs.length + i]);
      });
    }
  }

  /** Append a new token to a live sequence, stream it, and finish the sequence if it must stop. */
  private accept(s: Sequence, id: number): void {
    s.tokens.push(id);
    const eos = s.req.eosTokenIds ?? this.eosTokenIds;
    if (!s.req.ignoreEos && eos.includes(id)) {
      s.req.onToken?.(id, '');
      return this.finish(s, 'stop');
    }
    if (this.decoder) {
      s.text = this.decoder.decode(s.tokens, { skipSpecialTokens: true });
      const stopAt = firstStop(s.text, s.req.stop);
      if (stopAt >= 0) {
        s.text = s.text.slice(0, stopAt);
        return this.finish(s, 'stop', id);
      }
    }
    const delta = this.emitSafe(s);
    s.req.onToken?.(id, delta);
    if (s.tokens.length >= s.req.maxTokens || s.req.prompt.length + s.tokens.length >= this.contextLength) {
      return this.finish(s, 'length');
    }
  }

  /** Text that can no longer change: hold back a partial UTF-8 char and any prefix of a stop string. */
  private emitSafe(s: Sequence): string {
    let safe = s.text.length;
    while (safe > s.emitted && s.text.charCodeAt(safe - 1) === 0xfffd) safe--;
    for (const stop of s.req.stop ?? []) {
      for (let len = Math.min(stop.length - 1, safe); len > 0; len--) {
        if (s.text.endsWith(stop.slice(0, len))) {
          safe = Math.min(safe, s.text.length - len);
          break;
        }
      }
    }
    if (safe <= s.emitted) return '';
    const delta = s.text.slice(s.emitted, safe);
    s.emitted = safe;
    return delta;
  }

  private finish(s: Sequence, reason: FinishReason, lastId?: number): void {
    const rest = s.text.slice(s.emitted);
    s.emitted = s.text.length;
    if (rest || lastId !== undefined) s.req.onToken?.(lastId ?? -1, rest);
    this.running.splice(this.running.indexOf(s), 1);
    this.freeSlots.push(s.slot);
    s.resolve(this.result(s, reason));
  }

  private result(s: Sequence, reason: FinishReason): GenerationResult {
    const decoded = Math.max(0, s.tokens.length - 1);
    return {
      tokens: s.tokens,
      text: s.text,
      finishReason: reason,
      promptTokens: s.req.prompt.length,
      timings: {
        queuedMs: (s.startedAt || performance.now()) - s.enqueuedAt,
        prefillMs: s.prefillMs,
        decodeMs: s.decodeMs,
        prefillTokensPerS: s.prefillMs ? (s.req.prompt.length / s.prefillMs) * 1000 : 0,
        decodeTokensPerS: s.decodeMs ? (decoded / s.decodeMs) * 1000 : 0,
      },
    };
  }
}

function firstStop(text: string, stops: string[] | undefined): number {
  let at = -1;
  for (const stop of stops ?? []) {
    if (!stop) continue;
    const i = text.indexOf(stop);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}
