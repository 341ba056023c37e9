/**
 * WebLLM (`@mlc-ai/web-llm`) as a ChatEngine, so a browser can run the debate teacher with one of
 * WebLLM's prebuilt models. web-llm is imported lazily: Node CLI paths never load it.
 *
 * The adapter serialises requests (an MLCEngine generates one reply at a time), maps AbortSignal
 * to `interruptGenerate()` and always asks for usage on streams.
 */
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionOptions,
  ChatCompletionRequest,
  ChatCompletionUsage,
  ChatEngine,
  FinishReason,
} from '../engine/types';
import type { ProgressCallback } from '../progress';
import { Semaphore } from '../util/semaphore';

/** The part of WebLLM's MLCEngine the adapter uses (so tests can pass a fake). */
export interface MLCEngineLike {
  chat: { completions: { create(req: Record<string, unknown>): Promise<unknown> } };
  interruptGenerate(): void | Promise<void>;
}

/** The part of a WebLLM ModelRecord we read. */
export interface WebLLMModelRecord {
  model_id: string;
  vram_required_MB?: number;
  low_resource_required?: boolean;
  required_features?: string[];
  model_type?: number;
}

export interface WebLLMModelFilter {
  /** Only models that run without the `shader-f16` WebGPU feature (f32 weights: q4f32 / q0f32). */
  withoutShaderF16?: boolean;
  /** Only models flagged low-resource by WebLLM. */
  lowResourceOnly?: boolean;
  /** Skip models needing more than this many MB of VRAM. */
  maxVramMB?: number;
}

/** Whether a WebLLM model record can run on an adapter without shader-f16. */
export function runsWithoutShaderF16(m: WebLLMModelRecord): boolean {
  if (m.required_features?.includes('shader-f16')) return false;
  const quant = /-(q\d+f\d+)(?:_\d+)?(?:-|$)/.exec(m.model_id)?.[1];
  return !!quant && quant.endsWith('f32');
}

/** Filters model records down to chat LLMs (no embedding or vision models) matching `filter`. */
export function filterTeacherModels(list: WebLLMModelRecord[], filter: WebLLMModelFilter = {}): string[] {
  return list
    .filter((m) => m.model_type === undefined || m.model_type === 0)
    .filter((m) => !filter.withoutShaderF16 || runsWithoutShaderF16(m))
    .filter((m) => !filter.lowResourceOnly || m.low_resource_required === true)
    .filter((m) => filter.maxVramMB === undefined || (m.vram_required_MB ?? Infinity) <= filter.maxVramMB)
    .map((m) => m.model_id);
}

async function loadWebLLM(): Promise<typeof import('@mlc-ai/web-llm')> {
  try {
    return await import('@mlc-ai/web-llm');
  } catch (e) {
    throw new Error(`cannot load @mlc-ai/web-llm (npm install @mlc-ai/web-llm): ${(e as Error).message}`);
  }
}

/** Ids of WebLLM's prebuilt chat models usable as debate teachers. */
export async function webllmTeacherModels(filter: WebLLMModelFilter = {}): Promise<string[]> {
  const web = await loadWebLLM();
  return filterTeacherModels(web.prebuiltAppConfig.model_list as WebLLMModelRecord[], filter);
}

const FINISH: Record<string, FinishReason> = { stop: 'stop', length: 'length', abort: 'abort', tool_calls: 'stop' };
const finish = (x: unknown): FinishReason => (typeof x === 'string' && FINISH[x]) || 'stop';

function usageOf(u: unknown): ChatCompletionUsage | undefined {
  if (!u || typeof u !== 'object') return undefined;
  const o = u as Record<string, unknown>;
  const p = Number(o.prompt_tokens ?? 0);
  const c = Number(o.completion_tokens ?? 0);
  return { prompt_tokens: p, completion_tokens: c, total_tokens: Number(o.total_tokens ?? p + c) };
}

/** Wraps an MLCEngine (or anything shaped like one) as a ChatEngine. */
export class WebLLMEngine implements ChatEngine {
  readonly chat: ChatEngine['chat'];
  private readonly lock = new Semaphore(1);

  constructor(
    readonly mlc: MLCEngineLike,
    readonly modelId: string,
  ) {
    const create = ((req: ChatCompletionRequest, o?: ChatCompletionOptions) =>
      this.create(req, o)) as ChatEngine['chat']['completions']['create'];
    this.chat = { completions: { create } };
  }

  async models(): Promise<string[]> {
    return [this.modelId];
  }

  private toRequest(req: ChatCompletionRequest): Record<string, unknown> {
    // WebLLM has no top_k; model is omitted so the loaded model is used.
    const { top_k: _k, model: _m, ...rest } = req;
    const out: Record<string, unknown> = { ...rest };
    if (req.stream) out.stream_options = { include_usage: true };
    for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
    return out;
  }

  private aborted(_req: ChatCompletionRequest): ChatCompletion {
    return {
      id: `webllm-aborted-${Date.now()}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: this.modelId,
      choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'abort' }],
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
  }

  async create(
    req: ChatCompletionRequest,
    opts?: ChatCompletionOptions,
  ): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    const signal = opts?.signal;
    let release: () => void;
    try {
      release = await this.lock.acquire(signal);
    } catch {
      if (req.stream) return (async function* () {})();
      return this.aborted(req);
    }
    const onAbort = () => {
      void Promise.resolve(this.mlc.interruptGenerate()).catch(() => {});
    };
    if (signal?.aborted) {
      release();
      if (req.stream) return (async function* () {})();
      return this.aborted(req);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    const cleanup = () => {
      signal?.removeEventListener('abort', onAbort);
      release();
    };
    let raw: unknown;
    try {
      raw = await this.mlc.chat.completions.create(this.toRequest(req));
    } catch (e) {
      cleanup();
      throw e;
    }
    if (!req.stream) {
      cleanup();
      const r = raw as Record<string, unknown>;
      const choices = (Array.isArray(r.choices) ? r.choices : []) as Record<string, unknown>[];
      const out: ChatCompletion = {
        id: String(r.id ?? `webllm-${Date.now()}`),
        object: 'chat.completion',
        created: Number(r.created ?? Math.floor(Date.now() / 1000)),
        model: this.modelId,
        choices: choices.map((c, i) => ({
          index: typeof c.index === 'number' ? c.index : i,
          message: {
            role: 'assistant' as const,
            content: String((c.message as { content?: unknown } | undefined)?.content ?? ''),
          },
          finish_reason: signal?.aborted ? 'abort' : finish(c.finish_reason),
        })),
        usage: usageOf(r.usage) ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
      };
      return out;
    }
    const modelId = this.modelId;
    const source = raw as AsyncIterable<Record<string, unknown>>;
    return (async function* (): AsyncGenerator<ChatCompletionChunk> {
      try {
        for await (const c of source) {
          const choices = (Array.isArray(c.choices) ? c.choices : []) as Record<string, unknown>[];
          const chunk: ChatCompletionChunk = {
            id: String(c.id ?? ''),
            object: 'chat.completion.chunk',
            created: Number(c.created ?? Math.floor(Date.now() / 1000)),
            model: modelId,
            choices: choices.map((ch, i) => {
              const d = (ch.delta ?? {}) as { role?: unknown; content?: unknown };
              const delta: ChatCompletionChunk['choices'][number]['delta'] = {};
              if (d.role === 'assistant') delta.role = 'assistant';
              if (typeof d.content === 'string') delta.content = d.content;
              return {
                index: typeof ch.index === 'number' ? ch.index : i,
                delta,
                finish_reason: ch.finish_reason == null ? null : finish(ch.finish_reason),
              };
            }),
          };
          const u = usageOf(c.usage);
          if (u) chunk.usage = u;
          yield chunk;
        }
      } finally {
        cleanup();
      }
    })();
  }
}

/**
 * Loads a WebLLM prebuilt model (downloads weights into the browser cache) and wraps it. Browser
 * only in practice: WebLLM needs WebGPU and the Cache/IndexedDB APIs.
 */
export async function createWebLLMEngine(
  modelId: string,
  opts: { onProgress?: ProgressCallback } = {},
): Promise<WebLLMEngine> {
  const web = await loadWebLLM();
  const mlc = await web.CreateMLCEngine(modelId, {
    initProgressCallback: (r: { progress: number; text?: string }) => {
      opts.onProgress?.({ phase: 'load', done: Math.round((r.progress ?? 0) * 1000), total: 1000, unit: 'items' });
    },
  });
  return new WebLLMEngine(mlc as unknown as MLCEngineLike, modelId);
}
