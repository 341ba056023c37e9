/**
 * One non-streaming chat completion from any ChatEngine, as the debate and the evaluation use it:
 * the first choice's text, its finish reason, the token usage and the wall time. An abort (the
 * signal, or a completion that finished with 'abort') is an AbortError; an engine that returns no
 * choice is an Error naming what was asked.
 */
import { AbortError } from '../util/abort';
import type { ChatCompletionRequest, ChatEngine, FinishReason } from './types';

export interface CompletionResult {
  text: string;
  finishReason: FinishReason;
  usage: { prompt_tokens: number; completion_tokens: number };
  /** Wall time of the call in ms, to 0.1 ms. */
  latencyMs: number;
}

export interface CompleteOptions {
  signal?: AbortSignal;
  /** What the call is for, in error messages: "question 17". */
  label?: string;
}

export async function complete(
  engine: ChatEngine,
  req: ChatCompletionRequest,
  opts: CompleteOptions = {},
): Promise<CompletionResult> {
  const { signal, label } = opts;
  const what = label ? ` for ${label}` : '';
  if (signal?.aborted) throw new AbortError(`completion${what} aborted`);
  const t0 = performance.now();
  const res = await engine.chat.completions.create({ ...req, stream: false }, { signal });
  const latencyMs = Math.round((performance.now() - t0) * 10) / 10;
  const choice = res.choices[0];
  if (signal?.aborted || choice?.finish_reason === 'abort') throw new AbortError(`completion${what} aborted`);
  if (!choice) throw new Error(`engine returned no choices${what}`);
  return {
    text: choice.message.content ?? '',
    finishReason: choice.finish_reason,
    usage: { prompt_tokens: res.usage?.prompt_tokens ?? 0, completion_tokens: res.usage?.completion_tokens ?? 0 },
    latencyMs,
  };
}
