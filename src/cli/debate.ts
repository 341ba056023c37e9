/**
 * `agentark debate`: run the multi-agent debate over a question set and append the trajectories
 * to a JSONL log (resumable: questions already in the log are skipped).
 */
import type { ChatEngine } from '../engine/types';
import { isTask, type Task } from '../tasks/answers';
import { loadQuestions } from '../tasks/datasets';
import { DATA_FLAGS, DATA_HELP, dataOptions } from './data-flags';
import { runDebateSet, type DebateOptions } from '../teach/debate';
import { OpenAIEngine } from '../teach/openai-engine';
import { readTrajectories, summarizeTrajectories } from '../teach/trajectory';
import type { ProgressCallback } from '../progress';
import {
  choiceFlag,
  floatFlag,
  intFlag,
  parseFlags,
  reportUsageError,
  runtimeOptions,
  stderrProgress,
  UsageError,
} from './args';

export const USAGE = `usage: agentark debate --data FILE --out TRAJ.jsonl [options]

  --data FILE            questions (JSONL / JSON array; GSM8K, MATH or multiple-choice layout) or URL
  --task T               gsm8k | math | mc | qa (default gsm8k)
  --out FILE             trajectory JSONL to append to (existing questions are skipped)
  --agents N             debating agents (default 5)
  --rounds N             rounds including the independent first one (default 2)
  --aggregator A         llm | vote (default llm)
  --engine E             local | openai (default: openai when --base-url is given, else local)
  --model DIR            local engine: model directory
  --adapter DIR          local engine: optional LoRA adapter
  --backend B            local engine: webgpu | cpu (default webgpu)
  --dtype D              local engine: auto | f16 | f32 (default auto)
  --quantize q8|q4       local engine: frozen weights quantized on load (cached)
  --context-length N     local engine: context length
  --max-batch N          local engine: sequences decoded together (default agents x concurrency)
  --base-url URL         openai engine: e.g. http://127.0.0.1:8000/v1
  --api-model NAME       openai engine: model name to request
  --api-key K            openai engine: API key (default $OPENAI_API_KEY)
  --request-concurrency N  openai engine: HTTP requests in flight (default agents x concurrency)
  --timeout-ms MS        openai engine: per-request timeout (default 120000)
  --max-retries N        openai engine: retries per request (default 4)
  --limit N              only the first N questions
  --concurrency C        questions debated at once (default 1)
  --temperature T        agent temperature (default 0.7)
  --top-p P              agent top_p (default 1)
  --max-tokens N         max tokens per reply (default 1024)
  --seed S               base seed (agent i, round r gets S + i + 1000(r-1))
  --max-quoted-chars N   quote at most the last N characters of each other agent's answer
  --quote solution|answer  what agents and the aggregator read of the others: whole solutions
                         (default) or final answers only (a sparse debate)
  --restate-question     repeat the question in later rounds' turns (helps small models)
  --prompt-style default|compact  compact: short instructions (what the embedded demo model reads)
  --quiet                no per-question progress lines
${DATA_HELP}`;

async function loadLocalEngine(
  model: string,
  adapter: string | undefined,
  runtime: Record<string, unknown>,
): Promise<ChatEngine> {
  let mod: {
    createLocalEngine?: (
      o: { model: string; adapter?: string; onProgress?: ProgressCallback } & Record<string, unknown>,
    ) => Promise<ChatEngine>;
  };
  try {
    mod = await import('../engine/local');
  } catch (e) {
    throw new Error(
      `--engine local is not available (could not load src/engine/local: ${(e as Error).message}); use --engine openai --base-url URL`,
    );
  }
  if (typeof mod.createLocalEngine !== 'function')
    throw new Error('--engine local: src/engine/local does not export createLocalEngine');
  return mod.createLocalEngine({
    model,
    ...(adapter ? { adapter } : {}),
    ...runtime,
    onProgress: stderrProgress('load'),
  });
}

export async function run(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined> | null;
  try {
    values = parseFlags(
      argv,
      {
        data: { type: 'string' },
        ...DATA_FLAGS,
        task: { type: 'string', default: 'gsm8k' },
        out: { type: 'string' },
        agents: { type: 'string' },
        rounds: { type: 'string' },
        aggregator: { type: 'string', default: 'llm' },
        engine: { type: 'string' },
        model: { type: 'string' },
        adapter: { type: 'string' },
        backend: { type: 'string' },
        dtype: { type: 'string' },
        'context-length': { type: 'string' },
        quantize: { type: 'string' },
        'max-batch': { type: 'string' },
        'base-url': { type: 'string' },
        'api-model': { type: 'string' },
        'api-key': { type: 'string' },
        'request-concurrency': { type: 'string' },
        'timeout-ms': { type: 'string' },
        'max-retries': { type: 'string' },
        limit: { type: 'string' },
        concurrency: { type: 'string' },
        temperature: { type: 'string' },
        'top-p': { type: 'string' },
        'max-tokens': { type: 'string' },
        seed: { type: 'string' },
        'max-quoted-chars': { type: 'string' },
        quote: { type: 'string' },
        'restate-question': { type: 'boolean' },
        'prompt-style': { type: 'string' },
        quiet: { type: 'boolean', default: false },
      },
      USAGE,
    );
  } catch (e) {
    return reportUsageError('debate', e as UsageError);
  }
  if (!values) return 0;
  let opts: DebateOptions;
  let engine: ChatEngine;
  let data: string;
  let out: string;
  let limit: number | undefined;
  let task: Task;
  try {
    if (!values.data) throw new UsageError('--data is required');
    if (!values.out) throw new UsageError('--out is required');
    data = values.data as string;
    out = values.out as string;
    task = values.task as Task;
    if (!isTask(task)) throw new UsageError(`--task must be gsm8k, math, mc or qa, got ${JSON.stringify(task)}`);
    const aggregator = values.aggregator as string;
    if (aggregator !== 'llm' && aggregator !== 'vote')
      throw new UsageError(`--aggregator must be llm or vote, got ${JSON.stringify(aggregator)}`);
    const agents = intFlag(values.agents as string | undefined, 'agents', 5, { min: 1 });
    const concurrency = intFlag(values.concurrency as string | undefined, 'concurrency', 1, { min: 1 });
    limit = intFlag(values.limit as string | undefined, 'limit', undefined, { min: 0 });
    const temperature = floatFlag(values.temperature as string | undefined, 'temperature', undefined, {
      min: 0,
      max: 2,
    });
    const topP = floatFlag(values['top-p'] as string | undefined, 'top-p', undefined, { above: 0, max: 1 });
    const kind = (values.engine as string | undefined) ?? (values['base-url'] ? 'openai' : 'local');
    let model: string;
    if (kind === 'openai') {
      if (!values['base-url']) throw new UsageError('--engine openai needs --base-url');
      model = (values['api-model'] as string | undefined) ?? 'default';
      engine = new OpenAIEngine({
        baseUrl: values['base-url'] as string,
        apiKey: (values['api-key'] as string | undefined) ?? process.env.OPENAI_API_KEY,
        model,
        concurrency: intFlag(
          values['request-concurrency'] as string | undefined,
          'request-concurrency',
          agents * concurrency,
          { min: 1 },
        ),
        timeoutMs: intFlag(values['timeout-ms'] as string | undefined, 'timeout-ms', undefined, { min: 1 }),
        maxRetries: intFlag(values['max-retries'] as string | undefined, 'max-retries', undefined, { min: 0 }),
        onRetry: (r) =>
          process.stderr.write(`retry ${r.attempt}/${r.maxAttempts - 1} in ${r.delayMs} ms: ${r.url}: ${r.reason}\n`),
      });
    } else if (kind === 'local') {
      if (!values.model) throw new UsageError('--engine local needs --model DIR');
      model = values.model as string;
      let rt: Record<string, unknown>;
      try {
        rt = runtimeOptions(
          values as { backend?: string; dtype?: string; 'context-length'?: string; quantize?: string },
        );
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      rt.maxBatch = intFlag(values['max-batch'] as string | undefined, 'max-batch', agents * concurrency, { min: 1 });
      engine = await loadLocalEngine(model, values.adapter as string | undefined, rt);
    } else {
      throw new UsageError(`--engine must be local or openai, got ${JSON.stringify(kind)}`);
    }
    opts = {
      task,
      numAgents: agents,
      rounds: intFlag(values.rounds as string | undefined, 'rounds', 2, { min: 1 }),
      aggregator,
      model,
      temperature,
      top_p: topP,
      max_tokens: intFlag(values['max-tokens'] as string | undefined, 'max-tokens', undefined, { min: 1 }),
      seed: intFlag(values.seed as string | undefined, 'seed', undefined, { min: 0 }),
      maxQuotedChars: intFlag(values['max-quoted-chars'] as string | undefined, 'max-quoted-chars', undefined, {
        min: 1,
      }),
      quote: choiceFlag(values.quote as string | undefined, 'quote', ['solution', 'answer']),
      restateQuestion: values['restate-question'] === true,
      promptStyle: choiceFlag(values['prompt-style'] as string | undefined, 'prompt-style', ['default', 'compact']),
      concurrency,
      engines: engine,
    };
  } catch (e) {
    if (e instanceof UsageError) return reportUsageError('debate', e, USAGE);
    process.stderr.write(`agentark debate: ${(e as Error).message}\n`);
    return 1;
  }

  const ac = new AbortController();
  const onSigint = () => {
    process.stderr.write('\ninterrupted: finishing nothing further; the log stays consistent (rerun to resume)\n');
    ac.abort(new Error('SIGINT'));
  };
  process.once('SIGINT', onSigint);
  const t0 = performance.now();
  try {
    const questions = await loadQuestions(data, task, { limit, ...dataOptions(values, !!values.quiet) });
    const quiet = !!values.quiet;
    const res = await runDebateSet(questions, opts, {
      out,
      signal: ac.signal,
      onWarning: (m) => process.stderr.write(`warning: ${m}\n`),
      onRecord: (rec, { done, total }) => {
        if (quiet) return;
        const perRound = rec.rounds
          .map((r) => `r${r.round} ${r.messages.filter((m) => m.correct).length}/${r.messages.length}`)
          .join(' ');
        const tok = rec.totals.promptTokens + rec.totals.completionTokens;
        process.stderr.write(
          `[${done}/${total}] ${rec.id}: final=${rec.final.answer ?? '∅'} ${rec.final.correct ? 'correct' : 'wrong'} | ` +
            `${perRound} | ${rec.totals.calls} calls ${tok} tok ${(rec.totals.wallMs / 1000).toFixed(1)}s\n`,
        );
      },
      onError: (err, q) => process.stderr.write(`error on ${q.id}: ${err.message}\n`),
    });
    const ids = new Set(questions.map((q) => String(q.id)));
    const records = (await readTrajectories(out)).filter((r) => ids.has(r.id));
    const summary = {
      ...summarizeTrajectories(records),
      out,
      run: {
        completed: res.completed,
        skipped: res.skipped,
        failed: res.failed.length,
        aborted: res.aborted,
        ...(res.stoppedEarly ? { stoppedEarly: res.stoppedEarly } : {}),
        wallMs: Math.round(performance.now() - t0),
      },
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    if (res.aborted) return 130;
    return res.failed.length ? 1 : 0;
  } catch (e) {
    process.stderr.write(`agentark debate: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.off('SIGINT', onSigint);
  }
}
