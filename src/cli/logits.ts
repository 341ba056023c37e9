/** `agentark logits`: the logits of one forward pass at every position, as JSON. */
import { Runtime } from '../engine/local';
import { idsFlag, parseFlags, runtimeOptions, RUNTIME_FLAGS, UsageError } from './args';

const USAGE = `usage: agentark logits --model <dir|url|hf-id> --ids 1,2,3 [--adapter PEFT_DIR] [--backend webgpu|cpu] [--dtype auto|f16|f32] [--quantize q8|q4]
  prints {"ids": [...], "logits": [[one float per vocab entry] for every position]}`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(argv, { ...RUNTIME_FLAGS, ids: { type: 'string' } }, USAGE);
  if (!v) return 0;
  if (!v.model || !v.ids) throw new UsageError(`--model and --ids are required\n\n${USAGE}`);
  const ids = idsFlag(v.ids as string);
  const opts = runtimeOptions(v);
  const runtime = await Runtime.load(v.model as string, {
    ...opts,
    contextLength: Math.max(ids.length, opts.contextLength ?? 0),
    maxBatch: 1,
  });
  try {
    const logits = await runtime.logits(ids);
    const V = runtime.model.config.vocabSize;
    const rows = ids.map((_, i) => Array.from(logits.subarray(i * V, (i + 1) * V)));
    process.stdout.write(`${JSON.stringify({ ids, logits: rows })}\n`);
    return 0;
  } finally {
    runtime.dispose();
  }
}
