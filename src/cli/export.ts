/** `agentark export`: the (merged) student as an ONNX decoder folder for transformers.js / onnxruntime. */
import { loadCheckpoint, readModelSideFiles } from '../formats/checkpoint';
import { openSource } from '../formats/source';
import { loadPeftAdapter } from '../formats/peft';
import { onnxExportFiles, writeExport } from '../export/onnx';
import { parseFlags, stderrProgress, UsageError } from './args';

const USAGE = `usage: agentark export --model <dir|url|hf-id> [--adapter <PEFT dir>] --format onnx --out <dir> [--external-data]
  writes onnx/model.onnx (f32; the transformers.js / Optimum decoder interface with past key values),
  config.json, generation_config.json and the tokenizer files. Weights go to onnx/model.onnx_data
  when they pass protobuf's 2 GB limit, or always with --external-data.`;

export async function run(argv: string[]): Promise<number> {
  const v = parseFlags(
    argv,
    {
      model: { type: 'string' },
      adapter: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      'external-data': { type: 'boolean' },
    },
    USAGE,
  );
  if (!v) return 0;
  if (!v.model || !v.out) throw new UsageError(`--model and --out are required\n\n${USAGE}`);
  const format = v.format ?? 'onnx';
  if (format !== 'onnx') throw new UsageError(`--format must be onnx, got '${format}'\n\n${USAGE}`);
  const source = openSource(v.model as string);
  const ckpt = await loadCheckpoint(source, { onProgress: stderrProgress('load') });
  const adapter = v.adapter ? await loadPeftAdapter(v.adapter as string) : null;
  const result = onnxExportFiles(ckpt, await readModelSideFiles(source), {
    adapter,
    externalData: v['external-data'] ? 'always' : 'auto',
  });
  await writeExport(v.out as string, result.files);
  console.log(
    JSON.stringify({
      out: v.out,
      format,
      files: [...result.files.keys()],
      weightBytes: result.weightBytes,
      mergedModules: result.mergedModules,
    }),
  );
  return 0;
}
