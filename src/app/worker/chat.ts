/** Chat: one streamed assistant reply from the loaded model, with its timing. */
import type { ChatCompletionRequest, FinishReason } from '../../engine/types';
import type { ChatStats } from '../api';
import type { Models } from './models';
import { emitter, type Tasks } from './tasks';

export class Chat {
  constructor(
    private readonly tasks: Tasks,
    private readonly models: Models,
  ) {}

  async reply(taskId: string, req: ChatCompletionRequest, onDelta: (text: string) => void): Promise<ChatStats> {
    const { engine } = this.models.require();
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
      const stream = await engine.chat.completions.create({ ...req, stream: true, n: 1 }, { signal: ctrl.signal });
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
    };
  }
}
