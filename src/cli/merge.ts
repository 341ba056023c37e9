/** `agentark merge`: fold a PEFT LoRA adapter into its base model and write an HF checkpoint. */
import { loadCheckpoint, readModelSideFiles } from '../formats/checkpoint';
import { openSource } from '../formats/source';
import { loadPeftAdapter } from '../formats/peft';
import { writeSafetensors } from '../formats/safetensors';
import { mergeAdapter } from '../engine/adapters';
import { writeFilesAtomically } from '../train/checkpoint';
import { parseFlags, quantizeFlag, stderrProgress, UsageError } from './args';
import { dequantizeInto, quantizeWeights } from '../quant/weights';

const USAGE = `usage: agentark merge --model <dir|url|hf-id> --adapter <PEFT dir> --out <dir> [--quantize q8|q4 [--dtype f32|f16]]
  writes config.json, model.safetensors (same dtypes as the base) and the tokenizer files.
  --quantize: the adapter was trained on a q8/q4 base (QLoRA); it is merged into the DEQUANTIZED
  base (the weights it was trained against), written in --dtype (default f32).`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(
    argv,
    {
      model: { type: 'string' },
      adapter: { type: 'string' },
      out: { type: 'string' },
      quantize: { type: 'string' },
      dtype: { type: 'string' },
    },
    USAGE,
  );
  if (!v) return 0;
  if (!v.model || !v.adapter || !v.out) throw new UsageError(`--model, --adapter and --out are required\n\n${USAGE}`);
  const source = openSource(v.model as string);
  const ckpt = await loadCheckpoint(source, { onProgress: stderrProgress('load') });
  const adapter = await loadPeftAdapter(v.adapter as string);
  const quantized = quantizeFlag(v.quantize as string | undefined);
  const dtype = (v.dtype as string | undefined) ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new UsageError(`--dtype must be f32 or f16, got '${dtype}'`);
  if (v.dtype && !quantized)
    throw new UsageError('--dtype applies with --quantize (otherwise the merged model keeps the base dtypes)');
  if (quantized) {
    const q = await quantizeWeights(ckpt.config, ckpt.tensors, quantized, { onProgress: stderrProgress('load') });
    dequantizeInto(ckpt.tensors, q.matrices, dtype === 'f16' ? 'F16' : 'F32');
    process.stderr.write(
      `merging into the ${quantized}-dequantized base (what the adapter was trained on), written as ${dtype}\n`,
    );
  }
  const merged = mergeAdapter(ckpt.config, ckpt.tensors, adapter);
  const files: Record<string, string | Uint8Array> = {
    'model.safetensors': writeSafetensors(
      [...merged.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: t.data })),
      { format: 'pt' },
    ),
  };
  Object.assign(files, await readModelSideFiles(source));
  await writeFilesAtomically(v.out as string, files);
  console.log(
    JSON.stringify({
      out: v.out,
      mergedModules: adapter.pairs.length,
      tensors: merged.size,
      ...(quantized ? { base: `${quantized} dequantized`, dtype } : {}),
    }),
  );
  return 0;
}
