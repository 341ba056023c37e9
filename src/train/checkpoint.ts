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
export async function checkpointFiles(
  trainer: Trainer,
  extra: Record<string, string | Uint8Array> = {},
): Promise<Record<string, string | Uint8Array>> {
  const snap = await trainer.snapshot();
  const tensors = [...snap].map(([name, data]) => ({
    name,
    dtype: 'F32' as const,
    shape: [data.length],
    data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
  }));
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
    const isVector =
      shape.rows === 1 && !name.endsWith('proj.weight') && !name.includes('embed') && name !== 'lm_head.weight';
    tensors.push({
      name,
      dtype: 'F32' as const,
      shape: isVector ? [shape.cols] : [shape.rows, shape.cols],
      data: new Uint8Array(data.buffer),
    });
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
  if (parsed.version !== TRAINER_STATE_VERSION)
    throw new Error(`${where}: unsupported trainer state version ${parsed.version}`);
  return parsed;
}

export function restoreFromFiles(
  trainer: Trainer,
  stateJson: string,
  tensorsBytes: Uint8Array,
  where: string,
): TrainerStateFile {
  const st = parseTrainerState(stateJson, where);
  if (st.datasetSize !== trainer.examples.length) {
    throw new Error(
      `${where}: the checkpoint was made on a dataset of ${st.datasetSize} rows, this one has ${trainer.examples.length}`,
    );
  }
  const parsed = readSafetensors(tensorsBytes);
  const tensors = new Map<string, Float32Array>();
  for (const t of parsed.tensors) tensors.set(t.name, new Float32Array(t.data.slice().buffer));
  trainer.restore(tensors, st.state);
  return st;
}

// ---- Node file system -----------------------------------------------------------------------
//
// A folder is replaced in steps that each leave something usable behind:
//   1. write every file into `<dir>.tmp-<pid>` and fsync it   (a kill here: the old folder is intact)
//   2. rename it to `<dir>.ready-<pid>`                       (marks the new folder complete)
//   3. rename `<dir>` to `<dir>.old-<pid>`, then `.ready-` to `<dir>`, then delete `.old-`
// A kill anywhere in 3 leaves a complete `.ready-` (newest) and/or `.old-` folder, and
// recoverInterruptedSwap finishes the job: the newest complete folder becomes `<dir>` again.

const DEBRIS = /^(.*)\.(tmp|ready|old)-(\d+)$/;

interface Debris {
  kind: 'tmp' | 'ready' | 'old';
  path: string;
  mtimeMs: number;
}

async function findDebris(target: string): Promise<Debris[]> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const parent = path.dirname(target);
  const base = path.basename(target);
  const names = await fs.readdir(parent).catch(() => [] as string[]);
  const out: Debris[] = [];
  for (const name of names) {
    const m = DEBRIS.exec(name);
    if (!m || m[1] !== base) continue;
    const full = path.join(parent, name);
    const st = await fs.stat(full).catch(() => null);
    if (st?.isDirectory()) out.push({ kind: m[2] as Debris['kind'], path: full, mtimeMs: st.mtimeMs });
  }
  return out.sort((a, b) => b.mtimeMs - a.mtimeMs);
}

async function exists(p: string): Promise<boolean> {
  const fs = await import('node:fs/promises');
  return fs.stat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Completes (or rolls back) a folder swap interrupted by a kill, and clears the leftovers.
 * Returns what it did, one line per action, for the caller to report.
 */
export async function recoverInterruptedSwap(dir: string): Promise<string[]> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const target = path.resolve(dir);
  const debris = await findDebris(target);
  if (debris.length === 0) return [];
  const done: string[] = [];
  const ready = debris.find((d) => d.kind === 'ready');
  const old = debris.find((d) => d.kind === 'old');
  if (ready) {
    // The newest complete write: it becomes the folder (the current one, if any, was older).
    if (await exists(target)) await fs.rm(target, { recursive: true, force: true });
    await fs.rename(ready.path, target);
    done.push(`completed an interrupted swap: ${path.basename(ready.path)} → ${path.basename(target)}`);
  } else if (!(await exists(target)) && old) {
    await fs.rename(old.path, target);
    done.push(`restored ${path.basename(target)} from ${path.basename(old.path)} (the newer write had not finished)`);
  }
  if (await exists(target)) {
    for (const d of debris) {
      if (!(await exists(d.path))) continue; // the one renamed into place above
      await fs.rm(d.path, { recursive: true, force: true });
      done.push(`removed ${d.kind === 'tmp' ? 'an unfinished write' : 'a superseded copy'}: ${path.basename(d.path)}`);
    }
  }
  return done;
}

async function writeDirSynced(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  await fs.mkdir(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) {
    const fh = await fs.open(path.join(dir, name), 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

export async function writeFilesAtomically(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  const target = path.resolve(dir);
  await fs.mkdir(path.dirname(target), { recursive: true });
  await recoverInterruptedSwap(target);
  const tmp = `${target}.tmp-${process.pid}`;
  const ready = `${target}.ready-${process.pid}`;
  const old = `${target}.old-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await writeDirSynced(tmp, files);
  await fs.rename(tmp, ready);
  const had = await exists(target);
  if (had) await fs.rename(target, old);
  await fs.rename(ready, target);
  if (had) await fs.rm(old, { recursive: true, force: true });
}

export async function saveCheckpoint(
  dir: string,
  trainer: Trainer,
  extra: Record<string, string | Uint8Array> = {},
): Promise<void> {
  await writeFilesAtomically(dir, await checkpointFiles(trainer, extra));
}

export class CheckpointResumeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointResumeError';
  }
}

/**
 * Resume from `dir` if it holds a checkpoint; returns the restored state, or null when there is
 * no checkpoint at all. An interrupted swap is completed first (reported through `onNote`);
 * anything else that looks like a checkpoint but cannot be used is an error, never a silent
 * restart from step 0.
 */
export async function resumeCheckpoint(
  dir: string,
  trainer: Trainer,
  onNote?: (message: string) => void,
): Promise<TrainerStateFile | null> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  for (const note of await recoverInterruptedSwap(dir)) onNote?.(`${dir}: ${note}`);
  if (!(await exists(dir))) {
    const leftovers = await findDebris(path.resolve(dir));
    if (leftovers.length > 0) {
      throw new CheckpointResumeError(
        `--resume: no ${dir}, but unfinished checkpoint writes are next to it (${leftovers.map((d) => path.basename(d.path)).join(', ')}); ` +
          'they cannot be resumed from. Delete them to start over from step 0.',
      );
    }
    return null;
  }
  const stateFile = path.join(dir, 'trainer_state.json');
  const stateJson = await fs.readFile(stateFile, 'utf8').catch(() => null);
  if (stateJson === null) {
    const entries = await fs.readdir(dir).catch(() => [] as string[]);
    if (entries.length === 0) return null;
    throw new CheckpointResumeError(
      `--resume: ${dir} exists but has no trainer_state.json (it holds ${entries.slice(0, 5).join(', ')}` +
        `${entries.length > 5 ? ', ...' : ''}); not a checkpoint of this trainer`,
    );
  }
  const tensorsFile = path.join(dir, 'trainer_state.safetensors');
  const bytes = await fs.readFile(tensorsFile).catch((e: NodeJS.ErrnoException) => {
    throw new CheckpointResumeError(
      `--resume: ${tensorsFile} cannot be read (${e.code ?? e.message}); the checkpoint is incomplete`,
    );
  });
  return restoreFromFiles(
    trainer,
    stateJson,
    new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
    stateFile,
  );
}
