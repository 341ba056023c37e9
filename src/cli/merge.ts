/** `agentark merge`: fold a PEFT LoRA adapter into its base model and write an HF checkpoint. */
import { loadCheckpoint, readModelSideFiles } from '../formats/checkpoint';
import { openSource } from '../formats/source';
import { loadPeftAdapter } from '../formats/peft';
import { writeSafetensors } from '../formats/safetensors';
import { mergeAdapter } from '../engine/adapters';
import { writeFilesAtomically } from '../train/checkpoint';
import { parseFlags, stderrProgress, UsageError } from './args';

const USAGE = `usage: agentark merge --model <dir|url|hf-id> --adapter <PEFT dir> --out <dir>
  writes config.json, model.safetensors (same dtypes as the base) and the tokenizer files`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(argv, { model: { type: 'string' }, adapter: { type: 'string' }, out: { type: 'string' } }, USAGE);
  if (!v) return 0;
  if (!v.model || !v.adapter || !v.out) throw new UsageError(`--model, --adapter and --out are required\n\n${USAGE}`);
  const source = openSource(v.model as string);
  const ckpt = await loadCheckpoint(source, { onProgress: stderrProgress('load') });
  const adapter = await loadPeftAdapter(v.adapter as string);
  const merged = mergeAdapter(ckpt.config, ckpt.tensors, adapter);
  const files: Record<string, string | Uint8Array> = {
    'model.safetensors': writeSafetensors([...merged.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: t.data })), { format: 'pt' }),
  };
  Object.assign(files, await readModelSideFiles(source));
  await writeFilesAtomically(v.out as string, files);
  console.log(JSON.stringify({ out: v.out, mergedModules: adapter.pairs.length, tensors: merged.size }));
  return 0;
}
