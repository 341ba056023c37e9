/** `agentark generate`: one completion from a local model, as text or JSON. */
import { Runtime } from '../engine/local';
import {
  floatFlag,
  GENERATION_BUDGET_FLAG,
  idsFlag,
  intFlag,
  parseFlags,
  runtimeOptions,
  RUNTIME_FLAGS,
  stderrProgress,
  UsageError,
} from './args';

export const USAGE = `usage: agentark generate --model <dir|url|hf-id> (--prompt TEXT | --ids 1,2,3) [--chat]
       [--max-tokens N] [--temperature T] [--top-p P] [--top-k K] [--repetition-penalty R]
       [--seed S] [--stop STR] [--ignore-eos] [--json] [--adapter PEFT_DIR] [--backend webgpu|cpu] [--dtype auto|f16|f32] [--quantize q8|q4]
       [--context-length N] [--memory-budget MIB]

  --chat        wrap --prompt as a user message and apply the model's chat template
  --json        print {"ids", "generated", "text", "timings"} instead of streaming text
  --memory-budget MIB  refuse to load when the memory planner's estimate (weights + KV cache +
                a whole-context prefill) is above MIB, naming what to change`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(
    argv,
    {
      ...RUNTIME_FLAGS,
      ...GENERATION_BUDGET_FLAG,
      prompt: { type: 'string' },
      ids: { type: 'string' },
      chat: { type: 'boolean' },
      'max-tokens': { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      'top-k': { type: 'string' },
      'repetition-penalty': { type: 'string' },
      seed: { type: 'string' },
      stop: { type: 'string', multiple: true },
      'ignore-eos': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    USAGE,
  );
  if (!v) return 0;
  if (!v.model) throw new UsageError(`--model is required`);
  if ((v.prompt === undefined) === (v.ids === undefined)) throw new UsageError(`give exactly one of --prompt or --ids`);
  // Every flag is checked before the (possibly long) model load.
  const ids = v.ids !== undefined ? idsFlag(v.ids as string) : undefined;
  const maxTokens = intFlag(v['max-tokens'] as string | undefined, 'max-tokens', 64, { min: 1 });
  const sampling = {
    temperature: floatFlag(v.temperature as string | undefined, 'temperature', 0, { min: 0 }),
    topP: floatFlag(v['top-p'] as string | undefined, 'top-p', undefined, { above: 0, max: 1 }),
    topK: intFlag(v['top-k'] as string | undefined, 'top-k', undefined, { min: 0 }),
    repetitionPenalty: floatFlag(v['repetition-penalty'] as string | undefined, 'repetition-penalty', undefined, {
      above: 0,
    }),
    seed: intFlag(v.seed as string | undefined, 'seed', 0),
  };
  const runtime = await Runtime.load(v.model as string, {
    ...runtimeOptions(v),
    // One completion: one KV-cache slot (the memory plan and the cache hold one sequence, not 8).
    maxBatch: 1,
    onProgress: v.json ? undefined : stderrProgress('load'),
  });
  try {
    let prompt: number[];
    if (ids) prompt = ids;
    else if (v.chat) prompt = runtime.promptIds([{ role: 'user', content: v.prompt as string }]);
    else prompt = runtime.requireTokenizer().encode(v.prompt as string);
    const stream = !v.json && runtime.tokenizer;
    const result = await runtime.generate({
      prompt,
      maxTokens,
      sampling,
      stop: (v.stop as string[] | undefined) ?? [],
      ignoreEos: Boolean(v['ignore-eos']),
      onToken: stream ? (_id, delta) => process.stdout.write(delta) : undefined,
    });
    if (v.json) {
      console.log(
        JSON.stringify({
          ids: prompt,
          generated: result.tokens,
          text: result.text,
          finish_reason: result.finishReason,
          timings: { ...result.timings, backend: runtime.describeBackend() },
        }),
      );
    } else {
      if (stream) process.stdout.write('\n');
      else console.log(result.tokens.join(','));
      const t = result.timings;
      process.stderr.write(
        `[${result.finishReason}] prompt ${prompt.length} tok, ${t.prefillTokensPerS.toFixed(1)} tok/s prefill; ` +
          `${result.tokens.length} tok generated, ${t.decodeTokensPerS.toFixed(1)} tok/s decode — ${runtime.describeBackend()}\n`,
      );
    }
    return 0;
  } finally {
    runtime.dispose();
  }
}
