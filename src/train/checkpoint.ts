/**
 * Training checkpoints as plain files, so a killed run resumes exactly: the trainable tensors and
 * AdamW moments (trainer_state.safetensors), the step / epoch / data cursor and the options
 * (trainer_state.json), plus the current weights in their interoperable form — a PEFT adapter
 * (LoRA) or HF model.safetensors (full fine-tuning). Files are written to a temporary folder and
 * renamed into place, so a crash mid-write never leaves a half checkpoint.
 */
import { readSafetensors, writeSafetensors } from '../formats/safetensors';
import { serializePeftAdapter } from '../formats/peft';
import type { Trainer, TrainerState, TrainOptions } from './trainer';

export const TRAINER_STATE_VERSION = 'agentark.trainer/1';

export interface TrainerStateFile {
  version: string;
  state: TrainerState;
  options: TrainOptions;
  totalSteps: number;
  datasetSize: number;
  savedAt: string;
}

/** All files of a checkpoint, by name (pure: usable for OPFS in the browser too). */
export async function checkpointFiles(trainer: Trainer, extra: Record<string, string | Uint8Array> = {}): Promise<Record<string, string | Uint8Array>> {
  const snap = await trainer.snapshot();
  const tensors = [...snap].map(([name, data]) => ({ name, dtype: 'F32' as const, shape: [data.length], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }));
  const stateFile: TrainerStateFile = {
    version: TRAINER_STATE_VERSION,
    state: { ...trainer.state },
    options: trainer.opts,
    totalSteps: trainer.totalSteps,
    datasetSize: trainer.examples.length,
    savedAt: new Date().toISOString(),
  };
  const files: Record<string, string | Uint8Array> = {
    'trainer_state.json': JSON.stringify(stateFile, null, 2),
    'trainer_state.safetensors': writeSafetensors(tensors),
    ...extra,
  };
  if (trainer.set.mode === 'lora') Object.assign(files, serializePeftAdapter(await trainer.adapter()));
  else files['model.safetensors'] = await fullModelSafetensors(trainer);
  return files;
}

/** The model's current weights as HF model.safetensors (F32). */
export async function fullModelSafetensors(trainer: Trainer): Promise<Uint8Array> {
  const be = trainer.model.backend;
  const tensors = [];
  for (const [name, w] of trainer.namedWeights()) {
    const shape = w as { rows: number; cols: number };
    const data = await be.toHost(be.weightAsTensor(w), shape.rows * shape.cols);
    const isVector = shape.rows === 1 && !name.endsWith('proj.weight') && !name.includes('embed') && name !== 'lm_head.weight';
    tensors.push({ name, dtype: 'F32' as const, shape: isVector ? [shape.cols] : [shape.rows, shape.cols], data: new Uint8Array(data.buffer) });
  }
  return writeSafetensors(tensors);
}

export function parseTrainerState(json: string, where: string): TrainerStateFile {
  let parsed: TrainerStateFile;
  try {
    parsed = JSON.parse(json) as TrainerStateFile;
  } catch (e) {
    throw new Error(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (parsed.version !== TRAINER_STATE_VERSION) throw new Error(`${where}: unsupported trainer state version ${parsed.version}`);
  return parsed;
}

export function restoreFromFiles(trainer: Trainer, stateJson: string, tensorsBytes: Uint8Array, where: string): TrainerStateFile {
  const st = parseTrainerState(stateJson, where);
  if (st.datasetSize !== trainer.examples.length) {
    throw new Error(`${where}: the checkpoint was made on a dataset of ${st.datasetSize} rows, this one has ${trainer.examples.length}`);
  }
  const parsed = readSafetensors(tensorsBytes);
  const tensors = new Map<string, Float32Array>();
  for (const t of parsed.tensors) tensors.set(t.name, new Float32Array(t.data.slice().buffer));
  trainer.restore(tensors, st.state);
  return st;
}

// ---- Node file system -----------------------------------------------------------------------

export async function writeFilesAtomically(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const parent = path.dirname(path.resolve(dir));
  await fs.mkdir(parent, { recursive: true });
  const tmp = `${path.resolve(dir)}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  for (const [name, data] of Object.entries(files)) await fs.writeFile(path.join(tmp, name), data);
  const old = `${path.resolve(dir)}.old-${process.pid}`;
  const exists = await fs.stat(dir).then(() => true, () => false);
  if (exists) await fs.rename(dir, old);
  await fs.rename(tmp, dir);
  if (exists) await fs.rm(old, { recursive: true, force: true });
}

export async function saveCheckpoint(dir: string, trainer: Trainer, extra: Record<string, string | Uint8Array> = {}): Promise<void> {
  await writeFilesAtomically(dir, await checkpointFiles(trainer, extra));
}

/** Resume from `dir` if it holds a checkpoint; returns the restored state or null. */
export async function resumeCheckpoint(dir: string, trainer: Trainer): Promise<TrainerStateFile | null> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const stateJson = await fs.readFile(path.join(dir, 'trainer_state.json'), 'utf8').catch(() => null);
  if (stateJson === null) return null;
  const bytes = await fs.readFile(path.join(dir, 'trainer_state.safetensors'));
  return restoreFromFiles(trainer, stateJson, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path.join(dir, 'trainer_state.json'));
}
