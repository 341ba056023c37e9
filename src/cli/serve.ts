/** `agentark serve`: a local model behind an OpenAI-compatible HTTP API on 127.0.0.1. */
import { LocalEngine, Runtime } from '../engine/local';
import { intFlag, parseFlags, runtimeOptions, RUNTIME_FLAGS, stderrProgress, UsageError } from './args';
import { serveEngine } from './serve-http';

const USAGE = `usage: agentark serve --model <dir|url|hf-id> [--port P] [--host H] [--max-batch N]
       [--adapter PEFT_DIR] [--backend webgpu|cpu] [--dtype auto|f16|f32] [--quantize q8|q4] [--context-length N]
  POST /v1/chat/completions (stream: true for server-sent events), GET /v1/models`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(argv, { ...RUNTIME_FLAGS, port: { type: 'string' }, host: { type: 'string' }, 'max-batch': { type: 'string' } }, USAGE);
  if (!v) return 0;
  if (!v.model) throw new UsageError(`--model is required\n\n${USAGE}`);
  const runtime = await Runtime.load(v.model as string, {
    ...runtimeOptions(v),
    maxBatch: intFlag(v['max-batch'] as string | undefined, 'max-batch', 8),
    onProgress: stderrProgress('load'),
  });
  process.stderr.write(`model ${runtime.modelId} on ${runtime.describeBackend()}\n`);
  await serveEngine(new LocalEngine(runtime), {
    port: intFlag(v.port as string | undefined, 'port', 8000),
    host: (v.host as string | undefined) ?? '127.0.0.1',
    modelId: runtime.modelId,
  });
  runtime.dispose();
  return 0;
}
