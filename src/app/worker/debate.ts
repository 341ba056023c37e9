/**
 * The debate on the Teach page: the teacher engines (the loaded model, WebLLM, an OpenAI-compatible
 * server), a debate over a list of questions streamed call by call, and the trajectories of the
 * last debate (the Distil & train page can distil them).
 */
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionOptions,
  ChatCompletionRequest,
  ChatEngine,
} from '../../engine/types';
import type { Question } from '../../tasks/datasets';
import { runDebate, SMALL_MODEL_DEBATE, type DebateOptions } from '../../teach/debate';
import { collectStream, OpenAIEngine } from '../../teach/openai-engine';
import type { TrajectoryRecord } from '../../teach/trajectory';
import type { DebateEvent, DebateRunResult, DebateRunSettings, DebateSlot, TeacherEngineSpec } from '../api';
import type { Models } from './models';
import { emitter, type Tasks } from './tasks';

/**
 * Wraps a teacher engine for one question so every call streams to the page. runDebate asks for
 * plain completions and starts a round's calls in agent order, then the aggregator, so the n-th
 * call identifies its round and agent.
 */
function tapEngine(
  base: ChatEngine,
  index: number,
  agents: number,
  rounds: number,
  emit: (e: DebateEvent) => void,
): ChatEngine {
  let calls = 0;
  const create = async (
    req: ChatCompletionRequest,
    opts?: ChatCompletionOptions,
  ): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> => {
    if (req.stream) return base.chat.completions.create(req, opts);
    const n = calls++;
    const round = Math.min(Math.floor(n / agents) + 1, rounds + 1);
    const slot: DebateSlot = n >= agents * rounds ? 'aggregator' : n % agents;
    emit({ type: 'call', index, round, slot });
    const stream = await base.chat.completions.create({ ...req, stream: true }, opts);
    const tapped = (async function* () {
      for await (const chunk of stream) {
        for (const ch of chunk.choices)
          if (ch.delta.content) emit({ type: 'delta', index, round, slot, text: ch.delta.content });
        yield chunk;
      }
    })();
    const completion = await collectStream(tapped);
    emit({ type: 'call-done', index, round, slot, finishReason: completion.choices[0]?.finish_reason ?? 'stop' });
    return completion;
  };
  return {
    chat: { completions: { create: create as ChatEngine['chat']['completions']['create'] } },
    models: () => base.models(),
  };
}

export class Debates {
  private webllm: { model: string; engine: ChatEngine } | null = null;
  /** Trajectories of the last debate. */
  private last: TrajectoryRecord[] = [];

  constructor(
    private readonly tasks: Tasks,
    private readonly models: Models,
  ) {}

  /** The trajectories of the last debate run (a copy). */
  lastRecords(): TrajectoryRecord[] {
    return [...this.last];
  }

  async webllmModels(withoutF16: boolean): Promise<string[]> {
    const { webllmTeacherModels } = await import('../../teach/webllm-engine');
    return webllmTeacherModels({ withoutShaderF16: withoutF16 });
  }

  private async teacherEngine(
    spec: TeacherEngineSpec,
    emit: (e: DebateEvent) => void,
  ): Promise<{ engine: ChatEngine; model: string }> {
    switch (spec.kind) {
      case 'local': {
        const m = this.models.require();
        return { engine: m.engine, model: m.info.id };
      }
      case 'openai':
        if (!spec.baseUrl)
          throw new Error('Enter the base URL of the OpenAI-compatible server (e.g. http://127.0.0.1:8000/v1).');
        if (!spec.model) throw new Error('Enter the model name the server should use.');
        return {
          engine: new OpenAIEngine({
            baseUrl: spec.baseUrl,
            apiKey: spec.apiKey || undefined,
            model: spec.model,
            concurrency: spec.concurrency ?? 4,
          }),
          model: spec.model,
        };
      case 'webllm': {
        if (this.webllm?.model !== spec.model) {
          this.webllm = null;
          emit({
            type: 'status',
            text: `Loading WebLLM model ${spec.model} (downloads weights and a model library on first use)…`,
            progress: 0,
          });
          const { createWebLLMEngine } = await import('../../teach/webllm-engine');
          const engine = await createWebLLMEngine(spec.model, {
            onProgress: (e) =>
              emit({
                type: 'status',
                text: `Loading WebLLM model ${spec.model}…`,
                progress: e.total ? e.done / e.total : 0,
              }),
          });
          this.webllm = { model: spec.model, engine };
        }
        return { engine: this.webllm.engine, model: spec.model };
      }
    }
  }

  async run(
    taskId: string,
    questions: Question[],
    settings: DebateRunSettings,
    onEvent: (e: DebateEvent) => void,
  ): Promise<DebateRunResult> {
    if (settings.engine.kind === 'local') this.tasks.requireNo(['train', 'prm', 'rl', 'eval', 'bench'], 'debating');
    const ctrl = this.tasks.start(taskId);
    this.last = [];
    const { emit, delivered } = emitter(onEvent);
    const t0 = performance.now();
    const failed: { id: string; error: string }[] = [];
    let completed = 0;
    try {
      const { engine, model } = await this.teacherEngine(settings.engine, emit);
      const agents = Math.max(1, Math.floor(settings.agents));
      const rounds = Math.max(1, Math.floor(settings.rounds));
      const opts: DebateOptions = {
        numAgents: agents,
        rounds,
        aggregator: settings.aggregator,
        model,
        temperature: settings.temperature,
        top_p: settings.top_p,
        max_tokens: settings.max_tokens,
        ...(settings.seed !== undefined ? { seed: settings.seed } : {}),
        ...(settings.task ? { task: settings.task } : {}),
        ...(settings.format === 'small' ? SMALL_MODEL_DEBATE : {}),
      };
      const names = Array.from({ length: agents }, (_, i) => `agent${i + 1}`);
      for (let index = 0; index < questions.length && !ctrl.signal.aborted; index++) {
        const q = questions[index]!;
        emit({
          type: 'question',
          index,
          id: q.id,
          question: q.question,
          agents: names,
          rounds,
          aggregator: settings.aggregator,
        });
        try {
          const record = await runDebate(q, opts, tapEngine(engine, index, agents, rounds, emit), ctrl.signal);
          if (ctrl.signal.aborted) break;
          completed++;
          this.last.push(record);
          emit({ type: 'record', index, record });
        } catch (e) {
          if (ctrl.signal.aborted) break;
          const error = (e as Error).message ?? String(e);
          failed.push({ id: q.id, error });
          emit({ type: 'failed', index, id: q.id, error });
        }
      }
    } finally {
      this.tasks.end(taskId, ctrl);
    }
    await delivered();
    return { completed, failed, aborted: ctrl.signal.aborted, wallMs: Math.round(performance.now() - t0) };
  }
}
