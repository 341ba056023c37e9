/** `agentark serve`: a local model behind an OpenAI-compatible HTTP API on 127.0.0.1. */
import { LocalEngine, Runtime } from '../engine/local';
import { isLoopbackHost } from '../engine/server';
import {
  GENERATION_BUDGET_FLAG,
  intFlag,
  parseFlags,
  runtimeOptions,
  RUNTIME_FLAGS,
  stderrProgress,
  UsageError,
} from './args';
import { serveEngine } from './serve-http';

const USAGE = `usage: agentark serve --model <dir|url|hf-id> [--port P] [--host H] [--max-batch N]
       [--served-model-name NAME] [--api-key KEY] [--cors ORIGIN]...
       [--adapter PEFT_DIR] [--backend webgpu|cpu] [--dtype auto|f16|f32] [--quantize q8|q4] [--context-length N]
       [--memory-budget MIB]
  POST /v1/chat/completions (stream: true for server-sent events), GET /v1/models
  --served-model-name NAME  the model id clients must send (default: the model folder's name);
                            any other id is answered 404 model_not_found
  --api-key KEY             require "Authorization: Bearer KEY" (default $AGENTARK_API_KEY);
                            required when --host is not a loopback address
  --cors ORIGIN             let web pages from ORIGIN (e.g. http://localhost:5173) call the
                            server; repeatable; '*' allows any page. Default: none
  --memory-budget MIB       refuse to load when the memory planner's estimate (weights, the KV
                            cache of --max-batch sequences, a whole-context prefill) is above MIB`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(
    argv,
    {
      ...RUNTIME_FLAGS,
      ...GENERATION_BUDGET_FLAG,
      port: { type: 'string' },
      host: { type: 'string' },
      'max-batch': { type: 'string' },
      'served-model-name': { type: 'string' },
      'api-key': { type: 'string' },
      cors: { type: 'string', multiple: true },
    },
    USAGE,
  );
  if (!v) return 0;
  if (!v.model) throw new UsageError(`--model is required\n\n${USAGE}`);
  const host = (v.host as string | undefined) ?? '127.0.0.1';
  const apiKey = (v['api-key'] as string | undefined) ?? (process.env.AGENTARK_API_KEY || undefined);
  // Checked before the model loads, so a refused bind costs nothing.
  if (!isLoopbackHost(host) && !apiKey) {
    throw new UsageError(
      `--host ${host} exposes the model beyond this machine: set --api-key KEY (or AGENTARK_API_KEY) so only clients with the key can use it`,
    );
  }
  const cors = (v.cors as unknown as string[] | undefined) ?? [];
  const runtime = await Runtime.load(v.model as string, {
    ...runtimeOptions(v),
    maxBatch: intFlag(v['max-batch'] as string | undefined, 'max-batch', 8),
    onProgress: stderrProgress('load'),
  });
  process.stderr.write(`model ${runtime.modelId} on ${runtime.describeBackend()}\n`);
  const plan = runtime.memoryPlan;
  if (plan)
    process.stderr.write(`memory plan: about ${(plan.peakBytes / 2 ** 20).toFixed(0)} MiB peak (${plan.describe})\n`);
  try {
    await serveEngine(new LocalEngine(runtime), {
      port: intFlag(v.port as string | undefined, 'port', 8000),
      host,
      modelId: (v['served-model-name'] as string | undefined) ?? runtime.modelId,
      apiKey,
      cors,
    });
  } finally {
    runtime.dispose();
  }
  return 0;
}
