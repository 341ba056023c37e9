/**
 * A deterministic scripted ChatEngine for tests. Replies are derived from the prompt (FNV hash of
 * every message plus the seed and temperature) through a seeded RNG, so identical requests give
 * identical replies; tokens are whitespace-separated words. It streams word by word, honours
 * max_tokens (finish_reason 'length') and AbortSignal, and counts calls and tokens.
 */
import { fnv1a } from '../../src/util/hash';
import { mulberry32 } from '../../src/util/random';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionOptions,
  ChatCompletionRequest,
  ChatEngine,
  FinishReason,
} from '../../src/engine/types';

export interface FakeEngineOptions {
  /** Produces the reply text; default: `defaultReply`. */
  reply?: (req: ChatCompletionRequest, ctx: { call: number; rng: () => number }) => string;
  /** Delay before replying (ms), or a function of the call. */
  delayMs?: number | ((req: ChatCompletionRequest, call: number) => number);
  /** Delay between streamed words (ms). */
  streamDelayMs?: number;
  modelId?: string;
}

export const seededRng = mulberry32;

export const countTokens = (s: string): number => s.split(/\s+/).filter(Boolean).length;

export function promptTokens(req: ChatCompletionRequest): number {
  // 3 tokens of overhead per message, like chat templates add.
  return req.messages.reduce((n, m) => n + 3 + countTokens(m.content), 0);
}

/** A GSM8K-style reply: a few words of "reasoning" and `#### <n>` with n in 0..3. */
export function defaultReply(_req: ChatCompletionRequest, ctx: { call: number; rng: () => number }): string {
  const n = Math.floor(ctx.rng() * 4);
  const words = ['first', 'compute', 'the', 'total', 'then', 'subtract', 'and', 'check'];
  const len = 3 + Math.floor(ctx.rng() * 5);
  const body = Array.from({ length: len }, () => words[Math.floor(ctx.rng() * words.length)]).join(' ');
  return `Let me think: ${body}.\n#### ${n}`;
}

export interface FakeEngine extends ChatEngine {
  calls: number;
  promptTokens: number;
  completionTokens: number;
  requests: ChatCompletionRequest[];
  aborted: number;
  /** Calls currently generating. */
  inFlight: number;
  maxInFlight: number;
}

function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (ms <= 0) return Promise.resolve(!signal?.aborted);
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', on);
      resolve(true);
    }, ms);
    const on = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal?.addEventListener('abort', on, { once: true });
  });
}

export function createFakeEngine(opts: FakeEngineOptions = {}): FakeEngine {
  const modelId = opts.modelId ?? 'fake-model';
  const replyFn = opts.reply ?? defaultReply;
  const self: FakeEngine = {
    calls: 0,
    promptTokens: 0,
    completionTokens: 0,
    requests: [],
    aborted: 0,
    inFlight: 0,
    maxInFlight: 0,
    async models() {
      return [modelId];
    },
    chat: {
      completions: {
        create: (async (req: ChatCompletionRequest, o?: ChatCompletionOptions) => {
          const call = ++self.calls;
          self.requests.push(req);
          const key = `${JSON.stringify(req.messages)}|${req.seed ?? ''}|${req.temperature ?? ''}`;
          const rng = seededRng(fnv1a(key));
          let text = replyFn(req, { call, rng });
          let words = text.split(/(\s+)/); // keep separators
          let finish: FinishReason = 'stop';
          const wordCount = countTokens(text);
          if (req.max_tokens !== undefined && wordCount > req.max_tokens) {
            let kept = 0;
            const out: string[] = [];
            for (const w of words) {
              if (w.trim()) {
                if (kept >= req.max_tokens) break;
                kept++;
              }
              out.push(w);
            }
            words = out;
            text = out.join('').trimEnd();
            finish = 'length';
          }
          const pt = promptTokens(req);
          const ct = countTokens(text);
          const id = `fake-${call}`;
          const created = 1_700_000_000 + call;
          const model = req.model ?? modelId;
          const delay = typeof opts.delayMs === 'function' ? opts.delayMs(req, call) : (opts.delayMs ?? 0);
          self.inFlight++;
          self.maxInFlight = Math.max(self.maxInFlight, self.inFlight);
          if (!req.stream) {
            try {
              const ok = await sleep(delay, o?.signal);
              if (!ok || o?.signal?.aborted) {
                self.aborted++;
                const done: ChatCompletion = {
                  id,
                  object: 'chat.completion',
                  created,
                  model,
                  choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'abort' }],
                  usage: { prompt_tokens: pt, completion_tokens: 0, total_tokens: pt },
                };
                return done;
              }
              self.promptTokens += pt;
              self.completionTokens += ct;
              const done: ChatCompletion = {
                id,
                object: 'chat.completion',
                created,
                model,
                choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: finish }],
                usage: { prompt_tokens: pt, completion_tokens: ct, total_tokens: pt + ct },
              };
              return done;
            } finally {
              self.inFlight--;
            }
          }
          const streamDelay = opts.streamDelayMs ?? 0;
          async function* gen(): AsyncGenerator<ChatCompletionChunk> {
            try {
              if (!(await sleep(delay, o?.signal))) {
                self.aborted++;
                return;
              }
              yield {
                id,
                object: 'chat.completion.chunk',
                created,
                model,
                choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }],
              };
              for (let i = 0; i < words.length; i++) {
                if (streamDelay && !(await sleep(streamDelay, o?.signal))) {
                  self.aborted++;
                  yield {
                    id,
                    object: 'chat.completion.chunk',
                    created,
                    model,
                    choices: [{ index: 0, delta: {}, finish_reason: 'abort' }],
                  };
                  return;
                }
                if (o?.signal?.aborted) {
                  self.aborted++;
                  return;
                }
                yield {
                  id,
                  object: 'chat.completion.chunk',
                  created,
                  model,
                  choices: [{ index: 0, delta: { content: words[i] }, finish_reason: null }],
                };
              }
              self.promptTokens += pt;
              self.completionTokens += ct;
              yield {
                id,
                object: 'chat.completion.chunk',
                created,
                model,
                choices: [{ index: 0, delta: {}, finish_reason: finish }],
                usage: { prompt_tokens: pt, completion_tokens: ct, total_tokens: pt + ct },
              };
            } finally {
              self.inFlight--;
            }
          }
          return gen();
        }) as ChatEngine['chat']['completions']['create'],
      },
    },
  };
  return self;
}
