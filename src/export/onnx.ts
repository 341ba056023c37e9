/**
 * `agentark export --format onnx`: a checkpoint (with a LoRA adapter merged in, if given) as an
 * ONNX decoder folder that transformers.js and onnxruntime load as is:
 *
 *   config.json (+ transformers.js_config), generation_config.json, tokenizer files,
 *   onnx/model.onnx (+ onnx/model.onnx_data[_N] when the weights pass protobuf's 2 GB limit).
 *
 * The weights are exported in f32 (the runtime's reference precision).
 */
import type { Checkpoint } from '../formats/checkpoint';
import type { PeftAdapter } from '../formats/peft';
import { mergeAdapter } from '../engine/adapters';
import { buildDecoderGraph, ONNX_OPSETS } from './onnx-decoder';

/** Protobuf messages cannot exceed 2 GiB; keep a margin for the graph itself. */
const INLINE_LIMIT_BYTES = 2 ** 31 - 2 ** 26;
/** External data files are cut at this size (transformers.js loads up to 100 chunks; browsers balk at huge ArrayBuffers). */
const DEFAULT_CHUNK_BYTES = 2 ** 31 - 2 ** 26;

export interface OnnxExportOptions {
  adapter?: PeftAdapter | null;
  /** 'auto' (default): external data only past the 2 GB protobuf limit; 'always' forces it. */
  externalData?: 'auto' | 'always';
  /** Largest external data file (tests use a small value to exercise chunking). */
  chunkBytes?: number;
  /** The producing software's name and version, recorded in the model. */
  producer?: string;
}

/** Files of the export by relative path; a file may be given as a list of parts (written in order). */
export type ExportFiles = Map<string, string | Uint8Array | Uint8Array[]>;

export interface OnnxExport {
  files: ExportFiles;
  externalDataFiles: string[];
  weightBytes: number;
  mergedModules: number;
}

/** Build every file of the export in memory (no I/O: usable in the browser as well as in Node). */
export function onnxExportFiles(
  ckpt: Checkpoint,
  sideFiles: Record<string, string>,
  opts: OnnxExportOptions = {},
): OnnxExport {
  const tensors = opts.adapter ? mergeAdapter(ckpt.config, ckpt.tensors, opts.adapter) : ckpt.tensors;
  const graph = buildDecoderGraph(ckpt.config, tensors);
  const weightBytes = graph.weightBytes();
  const external = opts.externalData === 'always' || weightBytes > INLINE_LIMIT_BYTES;
  const { model, externalData } = graph.serialize(
    ONNX_OPSETS,
    {
      producer: opts.producer ?? 'agentark-web',
      docString: `${ckpt.config.hfArchitecture} decoder exported from ${ckpt.source}${opts.adapter ? ' with a merged LoRA adapter' : ''}`,
    },
    external ? { fileName: 'model.onnx_data', chunkBytes: opts.chunkBytes ?? DEFAULT_CHUNK_BYTES } : undefined,
  );
  const files: ExportFiles = new Map();
  files.set('onnx/model.onnx', model);
  for (const [name, parts] of externalData) files.set(`onnx/${name}`, parts);
  files.set('config.json', exportConfigJson(ckpt, sideFiles['config.json'], externalData.size));
  files.set('generation_config.json', sideFiles['generation_config.json'] ?? defaultGenerationConfig(ckpt));
  for (const [name, text] of Object.entries(sideFiles)) if (!files.has(name)) files.set(name, text);
  return {
    files,
    externalDataFiles: [...externalData.keys()],
    weightBytes,
    mergedModules: opts.adapter?.pairs.length ?? 0,
  };
}

/**
 * The checkpoint's config.json plus what transformers.js reads: `model_type` and `head_dim` (it
 * sizes the empty KV cache from them) and `transformers.js_config` (dtype, external data chunks).
 */
function exportConfigJson(ckpt: Checkpoint, original: string | undefined, externalChunks: number): string {
  const c = ckpt.config;
  const json: Record<string, unknown> = original ? JSON.parse(original) : { architectures: [c.hfArchitecture] };
  json.model_type ??= c.architecture;
  json.head_dim ??= c.headDim;
  json.num_key_value_heads ??= c.numKvHeads;
  const tjs: Record<string, unknown> = {
    ...((json['transformers.js_config'] as Record<string, unknown> | undefined) ?? {}),
    dtype: 'fp32',
  };
  if (externalChunks > 0) tjs.use_external_data_format = externalChunks === 1 ? true : externalChunks;
  else delete tjs.use_external_data_format;
  json['transformers.js_config'] = tjs;
  return `${JSON.stringify(json, null, 2)}\n`;
}

function defaultGenerationConfig(ckpt: Checkpoint): string {
  const g: Record<string, unknown> = {};
  if (ckpt.config.bosTokenId !== null) g.bos_token_id = ckpt.config.bosTokenId;
  if (ckpt.eosTokenIds.length) g.eos_token_id = ckpt.eosTokenIds.length === 1 ? ckpt.eosTokenIds[0] : ckpt.eosTokenIds;
  return `${JSON.stringify(g, null, 2)}\n`;
}

/**
 * Write the export into `outDir` through a temporary sibling folder renamed into place, so a
 * failure part-way never leaves a half-written model (and an existing folder is replaced whole).
 */
export async function writeExport(outDir: string, files: ExportFiles): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const target = path.resolve(outDir);
  await fs.mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  try {
    for (const [name, data] of files) {
      const file = path.join(tmp, name);
      await fs.mkdir(path.dirname(file), { recursive: true });
      if (Array.isArray(data)) {
        const handle = await fs.open(file, 'w');
        try {
          for (const part of data) await handle.write(part);
        } finally {
          await handle.close();
        }
      } else {
        await fs.writeFile(file, data);
      }
    }
  } catch (e) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = `${target}.old-${process.pid}`;
  const exists = await fs.stat(target).then(
    () => true,
    () => false,
  );
  if (exists) await fs.rename(target, old);
  await fs.rename(tmp, target);
  if (exists) await fs.rm(old, { recursive: true, force: true });
}
