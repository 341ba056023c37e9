/**
 * Any OpenAI-compatible HTTP endpoint (vLLM, llama.cpp server, Ollama, OpenAI itself, or this
 * project's own `agentark serve`) as a ChatEngine.
 *
 * - POST `${baseUrl}/chat/completions`, streaming (SSE) or not; GET `${baseUrl}/models`.
 * - A semaphore bounds in-flight requests (`concurrency`).
 * - Every attempt has a deadline (`timeoutMs`); for streams it bounds the wait for the headers
 *   and then every gap between two reads.
 * - Network errors, timeouts, malformed JSON, 5xx and 429 are retried with exponential backoff
 *   and jitter (429/503 honour `Retry-After`, seconds or an HTTP date); other 4xx fail at once.
 * - A stream is only retried before its first chunk reached the caller.
 * - Errors name the URL, the attempt and the reason of every failed attempt.
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
import { AbortError } from '../util/abort';
import { Semaphore } from '../util/semaphore';

/** What a request rejects with when the caller's signal aborted it. */
const aborted = (url: string) => new AbortError(`request to ${url} aborted by the caller`);

export interface OpenAIEngineOptions {
  /** e.g. `http://127.0.0.1:8000/v1` (a trailing slash is fine). */
  baseUrl: string;
  apiKey?: string;
  /** Model name sent when a request does not name one. */
  model: string;
  /** Requests in flight at once. Default 4. */
  concurrency?: number;
  /** Per-attempt deadline in ms. Default 120000. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 4 (so 5 attempts). */
  maxRetries?: number;
  /** First backoff in ms; doubles each retry, with ±50% jitter. Default 500. */
  backoffMs?: number;
  /** Upper bound for one backoff or Retry-After wait. Default 60000. */
  maxBackoffMs?: number;
  /** Extra headers (e.g. for proxies). */
  headers?: Record<string, string>;
  /** Called before each retry; handy for logging. */
  onRetry?: (info: RetryInfo) => void;
  /** Injected for tests; defaults to the global fetch. */
  fetch?: typeof fetch;
}

export interface RetryInfo {
  url: string;
  attempt: number;
  maxAttempts: number;
  reason: string;
  delayMs: number;
}

/** A failed request: `attempts` lists why each attempt failed. */
export class OpenAIEngineError extends Error {
  readonly url: string;
  readonly status?: number;
  readonly attempt: number;
  readonly attempts: string[];
  readonly retryable: boolean;
  constructor(
    message: string,
    init: { url: string; status?: number; attempt: number; attempts: string[]; retryable: boolean; cause?: unknown },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'OpenAIEngineError';
    this.url = init.url;
    this.status = init.status;
    this.attempt = init.attempt;
    this.attempts = init.attempts;
    this.retryable = init.retryable;
  }
}

/** One attempt's failure, before deciding whether to retry. */
class AttemptError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    readonly retryAfterMs?: number,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** Parses Retry-After (delta seconds or an HTTP date) into ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(parseFloat(v) * 1000);
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - now);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function excerpt(text: string, max = 300): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const c = cause instanceof Error ? `: ${cause.message}` : '';
    return `${err.message}${c}`;
  }
  return String(err);
}

const FINISH: Record<string, FinishReason> = {
  stop: 'stop',
  length: 'length',
  abort: 'abort',
  eos: 'stop',
  tool_calls: 'stop',
  content_filter: 'stop',
};
function normFinish(x: unknown): FinishReason {
  return (typeof x === 'string' && FINISH[x]) || 'stop';
}

function normUsage(u: unknown): ChatCompletionUsage | undefined {
  if (!u || typeof u !== 'object') return undefined;
  const o = u as Record<string, unknown>;
  const p = typeof o.prompt_tokens === 'number' ? o.prompt_tokens : 0;
  const c = typeof o.completion_tokens === 'number' ? o.completion_tokens : 0;
  const t = typeof o.total_tokens === 'number' ? o.total_tokens : p + c;
  return { prompt_tokens: p, completion_tokens: c, total_tokens: t };
}

/** Links the caller's signal with a per-attempt deadline that can be re-armed (for stream reads). */
class AttemptController {
  readonly ac = new AbortController();
  timedOut = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly onOuter = () => this.ac.abort(new Error('aborted by caller'));
  constructor(
    private readonly timeoutMs: number,
    private readonly outer?: AbortSignal,
  ) {
    if (outer?.aborted) this.ac.abort(new Error('aborted by caller'));
    else outer?.addEventListener('abort', this.onOuter, { once: true });
    this.arm();
  }
  arm(): void {
    this.disarm();
    if (this.timeoutMs > 0 && Number.isFinite(this.timeoutMs)) {
      this.timer = setTimeout(() => {
        this.timedOut = true;
        this.ac.abort(new Error(`timed out after ${this.timeoutMs} ms`));
      }, this.timeoutMs);
    }
  }
  disarm(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
  dispose(): void {
    this.disarm();
    this.outer?.removeEventListener('abort', this.onOuter);
  }
  get signal(): AbortSignal {
    return this.ac.signal;
  }
  get callerAborted(): boolean {
    return !!this.outer?.aborted;
  }
}

export class OpenAIEngine implements ChatEngine {
  readonly baseUrl: string;
  readonly model: string;
  readonly concurrency: number;
  readonly timeoutMs: number;
  readonly maxRetries: number;
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
  private readonly apiKey?: string;
  private readonly extraHeaders: Record<string, string>;
  private readonly onRetry?: (info: RetryInfo) => void;
  private readonly fetchImpl: typeof fetch;
  private readonly sem: Semaphore;
  /** Counters for tests and logs. */
  readonly stats = { requests: 0, attempts: 0, retries: 0, failures: 0 };

  readonly chat: ChatEngine['chat'];

  constructor(opts: OpenAIEngineOptions) {
    if (!opts.baseUrl) throw new Error('OpenAIEngine: baseUrl is required');
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.model = opts.model;
    this.apiKey = opts.apiKey;
    this.concurrency = opts.concurrency ?? 4;
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.maxRetries = opts.maxRetries ?? 4;
    this.backoffMs = opts.backoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 60_000;
    this.extraHeaders = opts.headers ?? {};
    this.onRetry = opts.onRetry;
    this.fetchImpl = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.sem = new Semaphore(this.concurrency);
    const create = ((req: ChatCompletionRequest, o?: ChatCompletionOptions) =>
      this.create(req, o)) as ChatEngine['chat']['completions']['create'];
    this.chat = { completions: { create } };
  }

  private headers(json: boolean): Record<string, string> {
    const h: Record<string, string> = { accept: json ? 'application/json' : 'text/event-stream', ...this.extraHeaders };
    h['content-type'] = 'application/json';
    if (this.apiKey) h.authorization = `Bearer ${this.apiKey}`;
    return h;
  }

  private backoff(attempt: number, retryAfterMs?: number): number {
    if (retryAfterMs !== undefined) return Math.min(retryAfterMs, this.maxBackoffMs);
    const base = this.backoffMs * 2 ** (attempt - 1);
    const jitter = 0.5 + Math.random();
    return Math.min(Math.round(base * jitter), this.maxBackoffMs);
  }

  /**
   * Runs `attemptFn` with retries. `attemptFn` gets a controller whose signal it must pass to fetch;
   * it throws AttemptError (retryable or not) or returns a value. The semaphore slot is held during
   * an attempt and released during backoff; `holdSlot` lets a stream keep its slot after success.
   */
  private async withRetries<T>(
    method: string,
    url: string,
    signal: AbortSignal | undefined,
    attemptFn: (ctl: AttemptController) => Promise<T>,
    keepSlot?: (value: T, release: () => void, ctl: AttemptController) => T,
  ): Promise<T> {
    this.stats.requests++;
    const maxAttempts = this.maxRetries + 1;
    const reasons: string[] = [];
    for (let attempt = 1; ; attempt++) {
      if (signal?.aborted) throw aborted(url);
      const release = await this.sem.acquire(signal).catch(() => {
        throw aborted(url);
      });
      const ctl = new AttemptController(this.timeoutMs, signal);
      this.stats.attempts++;
      let err: AttemptError;
      try {
        const value = await attemptFn(ctl);
        if (keepSlot) return keepSlot(value, release, ctl);
        ctl.dispose();
        release();
        return value;
      } catch (e) {
        ctl.dispose();
        if (!ctl.signal.aborted) ctl.ac.abort(new Error('attempt failed')); // drop any half-read body
        release();
        if (ctl.callerAborted || e instanceof AbortError) throw aborted(url);
        if (e instanceof AttemptError) err = e;
        else if (ctl.timedOut)
          err = new AttemptError(`timed out after ${this.timeoutMs} ms`, true, undefined, undefined, e);
        else err = new AttemptError(`network error: ${describe(e)}`, true, undefined, undefined, e);
      }
      reasons.push(`attempt ${attempt}: ${err.message}`);
      if (!err.retryable || attempt >= maxAttempts) {
        this.stats.failures++;
        const why = err.retryable
          ? `gave up after ${attempt} attempt${attempt > 1 ? 's' : ''}`
          : `failed on attempt ${attempt}/${maxAttempts} (not retryable)`;
        throw new OpenAIEngineError(
          `${method} ${url} ${why}: ${err.message}${reasons.length > 1 ? `\n  ${reasons.join('\n  ')}` : ''}`,
          {
            url,
            status: err.status,
            attempt,
            attempts: reasons,
            retryable: err.retryable,
            cause: err,
          },
        );
      }
      const delayMs = this.backoff(attempt, err.retryAfterMs);
      this.stats.retries++;
      this.onRetry?.({ url, attempt, maxAttempts, reason: err.message, delayMs });
      try {
        await sleep(delayMs, signal);
      } catch {
        throw aborted(url);
      }
    }
  }

  /** Checks the status; throws an AttemptError describing it (retryable for 5xx/429/408). */
  private async checkStatus(res: Response): Promise<void> {
    if (res.ok) return;
    let body = '';
    try {
      body = await res.text();
    } catch {
      /* ignore */
    }
    const retryable = res.status >= 500 || res.status === 429 || res.status === 408;
    let msg = body;
    try {
      const j = JSON.parse(body) as { error?: { message?: string } | string; message?: string };
      const m = typeof j.error === 'string' ? j.error : (j.error?.message ?? j.message);
      if (m) msg = m;
    } catch {
      /* not JSON */
    }
    const retryAfterMs = retryable ? parseRetryAfter(res.headers.get('retry-after')) : undefined;
    throw new AttemptError(
      `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${msg ? `: ${excerpt(msg)}` : ''}` +
        `${retryAfterMs !== undefined ? ` (Retry-After ${retryAfterMs} ms)` : ''}`,
      retryable,
      res.status,
      retryAfterMs,
    );
  }

  async models(): Promise<string[]> {
    const url = `${this.baseUrl}/models`;
    return this.withRetries('GET', url, undefined, async (ctl) => {
      const res = await this.fetchImpl(url, { method: 'GET', headers: this.headers(true), signal: ctl.signal });
      await this.checkStatus(res);
      const text = await res.text();
      let j: unknown;
      try {
        j = JSON.parse(text);
      } catch {
        throw new AttemptError(`malformed JSON from ${url}: ${excerpt(text, 200)}`, true);
      }
      const data = (j as { data?: unknown }).data;
      if (!Array.isArray(data))
        throw new AttemptError(`unexpected response from ${url} (no "data" array): ${excerpt(text, 200)}`, true);
      return data.map((m) => String((m as { id?: unknown }).id));
    });
  }

  private body(req: ChatCompletionRequest, stream: boolean): string {
    const b: Record<string, unknown> = { ...req, model: req.model ?? this.model, stream };
    if (stream) b.stream_options = { include_usage: true };
    for (const k of Object.keys(b)) if (b[k] === undefined) delete b[k];
    return JSON.stringify(b);
  }

  create(
    req: ChatCompletionRequest,
    opts?: ChatCompletionOptions,
  ): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    return req.stream ? this.createStream(req, opts?.signal) : this.createOnce(req, opts?.signal);
  }

  private async createOnce(req: ChatCompletionRequest, signal?: AbortSignal): Promise<ChatCompletion> {
    const url = `${this.baseUrl}/chat/completions`;
    const body = this.body(req, false);
    try {
      return await this.withRetries('POST', url, signal, async (ctl) => {
        const res = await this.fetchImpl(url, {
          method: 'POST',
          headers: this.headers(true),
          body,
          signal: ctl.signal,
        });
        await this.checkStatus(res);
        const text = await res.text();
        let j: Record<string, unknown>;
        try {
          j = JSON.parse(text) as Record<string, unknown>;
        } catch {
          throw new AttemptError(`malformed JSON from ${url}: ${excerpt(text, 200) || '(empty body)'}`, true);
        }
        return this.normCompletion(j, url, text);
      });
    } catch (e) {
      if (e instanceof AbortError) return this.abortedCompletion(req);
      throw e;
    }
  }

  /** What a non-streaming call resolves with when the caller aborts (per the ChatEngine contract). */
  private abortedCompletion(req: ChatCompletionRequest): ChatCompletion {
    return {
      id: `aborted-${Date.now()}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: req.model ?? this.model,
      choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'abort' }],
      usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
  }

  private normCompletion(j: Record<string, unknown>, url: string, text: string): ChatCompletion {
    if (j && typeof j === 'object' && 'error' in j && !('choices' in j)) {
      const e = j.error as { message?: string } | string;
      throw new AttemptError(
        `error body from ${url}: ${excerpt(typeof e === 'string' ? e : (e?.message ?? JSON.stringify(e)))}`,
        true,
      );
    }
    const choices = j.choices;
    if (!Array.isArray(choices) || choices.length === 0) {
      throw new AttemptError(`unexpected response from ${url} (no "choices"): ${excerpt(text, 200)}`, true);
    }
    return {
      id: String(j.id ?? `chatcmpl-${Date.now()}`),
      object: 'chat.completion',
      created: typeof j.created === 'number' ? j.created : Math.floor(Date.now() / 1000),
      model: String(j.model ?? this.model),
      choices: choices.map((c: Record<string, unknown>, i: number) => {
        const m = (c.message ?? {}) as { role?: string; content?: unknown };
        return {
          index: typeof c.index === 'number' ? c.index : i,
          message: { role: 'assistant' as const, content: typeof m.content === 'string' ? m.content : '' },
          finish_reason: normFinish(c.finish_reason),
        };
      }),
      usage: normUsage(j.usage) ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
    };
  }

  private async createStream(
    req: ChatCompletionRequest,
    signal?: AbortSignal,
  ): Promise<AsyncIterable<ChatCompletionChunk>> {
    const url = `${this.baseUrl}/chat/completions`;
    const body = this.body(req, true);
    type Opened = {
      reader: ReadableStreamDefaultReader<Uint8Array>;
      first: ChatCompletionChunk[];
      rest: string;
      done: boolean;
    };
    let slotRelease: () => void = () => {};
    let slotCtl: AttemptController | undefined;
    // The attempt covers the headers and the first data event, so glitches there are retried.
    const opened = await this.withRetries<Opened>(
      'POST',
      url,
      signal,
      async (ctl) => {
        const res = await this.fetchImpl(url, {
          method: 'POST',
          headers: this.headers(false),
          body,
          signal: ctl.signal,
        });
        await this.checkStatus(res);
        const ctype = res.headers.get('content-type') ?? '';
        if (!ctype.includes('text/event-stream')) {
          // Some servers ignore stream: true; accept a plain completion and replay it as chunks.
          const text = await res.text();
          let j: Record<string, unknown>;
          try {
            j = JSON.parse(text) as Record<string, unknown>;
          } catch {
            throw new AttemptError(
              `malformed response from ${url} (expected an event stream, got ${ctype || 'no content-type'}): ${excerpt(text, 200)}`,
              true,
            );
          }
          const c = this.normCompletion(j, url, text);
          return { reader: emptyReader(), first: completionToChunks(c), rest: '', done: true };
        }
        if (!res.body) throw new AttemptError(`empty body from ${url}`, true);
        const reader = res.body.getReader();
        const parser = new SSEParser(url);
        const first: ChatCompletionChunk[] = [];
        let done = false;
        while (first.length === 0 && !done) {
          ctl.arm();
          const r = await reader.read();
          ctl.disarm();
          if (r.done) {
            done = true;
            first.push(...parser.end());
            if (!parser.sawDone && first.length === 0)
              throw new AttemptError(`stream from ${url} ended before any data`, true);
            break;
          }
          first.push(...parser.push(r.value));
          if (parser.sawDone) done = true;
        }
        return { reader, first, rest: parser.buffer, done, parser } as Opened & { parser: SSEParser };
      },
      (value, release, ctl) => {
        ctl.disarm();
        slotRelease = release;
        slotCtl = ctl;
        return value;
      },
    );
    const parser = (opened as Opened & { parser?: SSEParser }).parser;
    const timeoutMs = this.timeoutMs;
    const finish = () => {
      slotCtl?.dispose();
      slotRelease();
    };
    return {
      [Symbol.asyncIterator]: async function* () {
        try {
          for (const c of opened.first) yield c;
          if (opened.done || !parser) return;
          for (;;) {
            slotCtl?.arm();
            let r: ReadableStreamReadResult<Uint8Array>;
            try {
              r = await opened.reader.read();
              slotCtl?.disarm();
            } catch (e) {
              if (slotCtl?.callerAborted) return;
              if (slotCtl?.timedOut)
                throw new OpenAIEngineError(`POST ${url}: stream stalled for more than ${timeoutMs} ms`, {
                  url,
                  attempt: 1,
                  attempts: [],
                  retryable: false,
                  cause: e,
                });
              throw new OpenAIEngineError(`POST ${url}: stream broke: ${describe(e)}`, {
                url,
                attempt: 1,
                attempts: [],
                retryable: false,
                cause: e,
              });
            }
            if (r.done) {
              for (const c of parser.end()) yield c;
              return;
            }
            let chunks: ChatCompletionChunk[];
            try {
              chunks = parser.push(r.value);
            } catch (e) {
              throw new OpenAIEngineError(`POST ${url}: ${describe(e)}`, {
                url,
                attempt: 1,
                attempts: [],
                retryable: false,
                cause: e,
              });
            }
            for (const c of chunks) yield c;
            if (parser.sawDone) return;
          }
        } finally {
          opened.reader.cancel().catch(() => {});
          finish();
        }
      },
    };
  }
}

function emptyReader(): ReadableStreamDefaultReader<Uint8Array> {
  return new ReadableStream<Uint8Array>({ start: (c) => c.close() }).getReader();
}

function completionToChunks(c: ChatCompletion): ChatCompletionChunk[] {
  const base = { id: c.id, object: 'chat.completion.chunk' as const, created: c.created, model: c.model };
  return [
    {
      ...base,
      choices: c.choices.map((ch) => ({
        index: ch.index,
        delta: { role: 'assistant' as const, content: ch.message.content },
        finish_reason: ch.finish_reason,
      })),
    },
    { ...base, choices: [], usage: c.usage },
  ];
}

/** Incremental `text/event-stream` parser yielding chat.completion.chunk objects. */
export class SSEParser {
  buffer = '';
  sawDone = false;
  private readonly decoder = new TextDecoder();
  private dataLines: string[] = [];
  constructor(private readonly url: string) {}

  push(bytes: Uint8Array | string): ChatCompletionChunk[] {
    this.buffer += typeof bytes === 'string' ? bytes : this.decoder.decode(bytes, { stream: true });
    const out: ChatCompletionChunk[] = [];
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      let line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      this.line(line, out);
    }
    return out;
  }

  end(): ChatCompletionChunk[] {
    const out: ChatCompletionChunk[] = [];
    if (this.buffer) {
      const rest = this.buffer;
      this.buffer = '';
      this.line(rest, out);
    }
    this.line('', out);
    return out;
  }

  private line(line: string, out: ChatCompletionChunk[]): void {
    if (line === '') {
      if (this.dataLines.length) {
        const data = this.dataLines.join('\n');
        this.dataLines = [];
        this.event(data, out);
      }
      return;
    }
    if (line.startsWith(':')) return; // comment / keep-alive
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.dataLines.push(value);
  }

  private event(data: string, out: ChatCompletionChunk[]): void {
    if (this.sawDone) return;
    if (data.trim() === '[DONE]') {
      this.sawDone = true;
      return;
    }
    let j: Record<string, unknown>;
    try {
      j = JSON.parse(data) as Record<string, unknown>;
    } catch {
      throw new AttemptError(`malformed JSON in event stream from ${this.url}: ${excerpt(data, 200)}`, true);
    }
    if ('error' in j && !('choices' in j)) {
      const e = j.error as { message?: string } | string;
      throw new AttemptError(
        `error event from ${this.url}: ${excerpt(typeof e === 'string' ? e : (e?.message ?? JSON.stringify(e)))}`,
        true,
      );
    }
    const choices = Array.isArray(j.choices) ? j.choices : [];
    const chunk: ChatCompletionChunk = {
      id: String(j.id ?? ''),
      object: 'chat.completion.chunk',
      created: typeof j.created === 'number' ? j.created : Math.floor(Date.now() / 1000),
      model: String(j.model ?? ''),
      choices: choices.map((c: Record<string, unknown>, i: number) => {
        const d = (c.delta ?? {}) as { role?: string; content?: unknown };
        const delta: ChatCompletionChunk['choices'][number]['delta'] = {};
        if (d.role === 'assistant' || d.role === 'user' || d.role === 'system') delta.role = d.role;
        if (typeof d.content === 'string') delta.content = d.content;
        return {
          index: typeof c.index === 'number' ? c.index : i,
          delta,
          finish_reason: c.finish_reason == null ? null : normFinish(c.finish_reason),
        };
      }),
    };
    const u = normUsage(j.usage);
    if (u) chunk.usage = u;
    out.push(chunk);
  }
}

/** Drains a chunk stream into one completion (content per choice, last finish_reason, last usage). */
export async function collectStream(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletion> {
  const contents: string[] = [];
  const finishes: (FinishReason | null)[] = [];
  let id = '';
  let model = '';
  let created = Math.floor(Date.now() / 1000);
  let usage: ChatCompletionUsage | undefined;
  for await (const c of stream) {
    id ||= c.id;
    model ||= c.model;
    created = c.created ?? created;
    for (const ch of c.choices) {
      contents[ch.index] = (contents[ch.index] ?? '') + (ch.delta.content ?? '');
      if (ch.finish_reason) finishes[ch.index] = ch.finish_reason;
    }
    if (c.usage) usage = c.usage;
  }
  const n = Math.max(contents.length, finishes.length, 1);
  return {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: Array.from({ length: n }, (_, i) => ({
      index: i,
      message: { role: 'assistant' as const, content: contents[i] ?? '' },
      finish_reason: finishes[i] ?? 'stop',
    })),
    usage: usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 },
  };
}
