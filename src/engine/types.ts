/**
 * The one interface every chat engine implements: this project's local WebGPU runtime, any
 * OpenAI-compatible HTTP endpoint, and WebLLM's MLCEngine. Shapes follow the OpenAI
 * chat-completions API (the subset WebLLM also exposes), so the debate teacher, the evaluation
 * and the chat page only ever see this.
 */

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface ChatCompletionRequest {
  messages: ChatMessage[];
  /** Model id; engines serving a single model may ignore it. */
  model?: string;
  stream?: boolean;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  /** Non-standard but accepted by vLLM / llama.cpp / WebLLM. */
  top_k?: number;
  repetition_penalty?: number;
  seed?: number;
  stop?: string | string[];
  /** Number of choices; the local engine decodes them as one batch. */
  n?: number;
}

export interface ChatCompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: { index: number; message: ChatMessage; finish_reason: FinishReason }[];
  usage: ChatCompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: number; delta: Partial<ChatMessage>; finish_reason: FinishReason | null }[];
  /** Present on the final chunk only. */
  usage?: ChatCompletionUsage;
}

export interface ChatCompletionOptions {
  /** Aborting stops generation; a non-streaming call then resolves with finish_reason 'abort'. */
  signal?: AbortSignal;
}

export interface ChatEngine {
  chat: {
    completions: {
      create(
        req: ChatCompletionRequest & { stream: true },
        opts?: ChatCompletionOptions,
      ): Promise<AsyncIterable<ChatCompletionChunk>>;
      create(req: ChatCompletionRequest & { stream?: false }, opts?: ChatCompletionOptions): Promise<ChatCompletion>;
      create(
        req: ChatCompletionRequest,
        opts?: ChatCompletionOptions,
      ): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
    };
  };
  /** Model ids this engine serves (for GET /v1/models). */
  models(): Promise<string[]>;
}

/**
 * A request the engine cannot serve as asked (the client's fault, not the engine's): carries the
 * HTTP status and OpenAI error code the server answers with, e.g. 400 `context_length_exceeded`.
 */
export class EngineRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly param?: string,
  ) {
    super(message);
    this.name = 'EngineRequestError';
  }
}
