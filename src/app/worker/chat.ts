/** Chat: one streamed assistant reply from the loaded model, with its timing. */
import type { Runtime } from '../../engine/local';
import type { ChatCompletionRequest, ChatMessage, FinishReason } from '../../engine/types';
import type { ChatStats } from '../api';
import type { Models } from './models';
import { emitter, type Tasks } from './tasks';

/** Positions kept free for the reply when fitting the history: the requested max tokens, at most a quarter of the context. */
function replyRoom(contextLength: number, maxTokens: number | undefined): number {
  return Math.max(1, Math.min(maxTokens ?? 256, Math.floor(contextLength / 4)));
}

/**
 * The conversation fitted to the context: the system message and the last user message always,
 * then as many of the most recent earlier turns as fit with room for the reply. Throws a clear
 * error when even the system prompt and the last message do not fit.
 */
export function fitToContext(
  runtime: Runtime,
  messages: ChatMessage[],
  maxTokens: number | undefined,
): { messages: ChatMessage[]; dropped: number; promptTokens: number } {
  const contextLength = runtime.generator.contextLength;
  const budget = contextLength - replyRoom(contextLength, maxTokens);
  const system = messages[0]?.role === 'system' ? [messages[0]] : [];
  const turns = messages.slice(system.length);
  const last = turns.at(-1);
  if (!last) throw new Error('There is no message to answer.');
  const count = (m: ChatMessage[]) => runtime.promptIds(m).length;
  const minimal = count([...system, last]);
  if (minimal > budget) {
    throw new Error(
      `This message${system.length ? ' and the system prompt' : ''} take ${minimal} tokens; ` +
        `the context holds ${contextLength}, with ${contextLength - budget} kept for the reply. ` +
        'Shorten the message or the system prompt, lower Max tokens, or load the model with a longer context on the Models page.',
    );
  }
  // Drop the oldest earlier turns (whole user/assistant pairs where possible) until the prompt fits.
  let start = 0;
  let tokens = count(messages);
  while (tokens > budget && start < turns.length - 1) {
    start++;
    if (turns[start]?.role === 'assistant' && start < turns.length - 1) start++;
    tokens = count([...system, ...turns.slice(start)]);
  }
  return { messages: [...system, ...turns.slice(start)], dropped: start, promptTokens: tokens };
}

export class Chat {
  constructor(
    private readonly tasks: Tasks,
    private readonly models: Models,
  ) {}

  async reply(taskId: string, req: ChatCompletionRequest, onDelta: (text: string) => void): Promise<ChatStats> {
    const { engine, runtime } = this.models.require();
    const fitted = fitToContext(runtime, req.messages, req.max_tokens);
    this.tasks.requireNo(['train', 'prm', 'rl', 'eval', 'bench'], 'chatting');
    const ctrl = this.tasks.start(taskId);
    const t0 = performance.now();
    let first = 0;
    let finishReason: FinishReason = 'stop';
    let promptTokens = 0;
    let completionTokens = 0;
    let deltas = 0;
    let text = '';
    const { emit, delivered } = emitter(onDelta);
    try {
      const stream = await engine.chat.completions.create(
        { ...req, messages: fitted.messages, stream: true, n: 1 },
        { signal: ctrl.signal },
      );
      for await (const chunk of stream) {
        for (const ch of chunk.choices) {
          if (ch.delta.content) {
            if (!first) first = performance.now();
            deltas++;
            text += ch.delta.content;
            emit(ch.delta.content);
          }
          if (ch.finish_reason) finishReason = ch.finish_reason;
        }
        if (chunk.usage) {
          promptTokens = chunk.usage.prompt_tokens;
          completionTokens = chunk.usage.completion_tokens;
        }
      }
    } finally {
      this.tasks.end(taskId, ctrl);
    }
    await delivered();
    const end = performance.now();
    if (ctrl.signal.aborted) finishReason = 'abort';
    const tokens = completionTokens || deltas;
    const decodeS = first ? (end - first) / 1000 : 0;
    return {
      text,
      promptTokens,
      completionTokens: tokens,
      ttftMs: first ? Math.round(first - t0) : Math.round(end - t0),
      totalMs: Math.round(end - t0),
      tokensPerS: decodeS > 0 && tokens > 1 ? (tokens - 1) / decodeS : tokens / Math.max((end - t0) / 1000, 1e-3),
      finishReason,
      droppedMessages: fitted.dropped,
    };
  }
}
