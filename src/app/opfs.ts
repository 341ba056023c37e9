/**
 * The browser's origin-private file system (OPFS, `navigator.storage.getDirectory()`), and the
 * training-run store the engine worker keeps in it so a reload (or a crash) during training
 * resumes from the last checkpoint.
 *
 * Layout of one run (folder `agentark-train/`):
 *
 *   run.json        RunMeta: settings, model id + config hash, step of the last complete
 *                   checkpoint and which slot holds it, loss history. Written last, so it only
 *                   ever points at a complete checkpoint.
 *   dataset.bin     the tokenized examples (encodeExamples), written once when the run starts.
 *   rows.jsonl      the training rows they came from (for reference / download).
 *   ckpt-a/, ckpt-b/ two checkpoint slots used alternately: `checkpointFiles(trainer)` output
 *                   (trainer_state.json + .safetensors, adapter_config.json + adapter_model.safetensors).
 *
 * A checkpoint is written into the slot run.json does NOT point at, then run.json is rewritten
 * to point at it; each file write itself is atomic (createWritable commits on close). So a reload
 * in the middle of a checkpoint leaves the previous one intact.
 *
 * Works in the page and in dedicated workers (createWritable, or a sync access handle where
 * createWritable is missing).
 */
import type { TrainExample } from '../train/data';

export function opfsAvailable(): boolean {
  return typeof navigator !== 'undefined' && typeof navigator.storage?.getDirectory === 'function';
}

/** The folder at `path` under the OPFS root; null when it does not exist and `create` is false. */
export async function opfsDir(path: string[], create = true): Promise<FileSystemDirectoryHandle | null> {
  let dir = await navigator.storage.getDirectory();
  for (const name of path) {
    try {
      dir = await dir.getDirectoryHandle(name, { create });
    } catch (e) {
      if ((e as DOMException).name === 'NotFoundError') return null;
      throw e;
    }
  }
  return dir;
}

type SyncHandle = {
  write(data: BufferSource, opts?: { at?: number }): number;
  truncate(n: number): void;
  flush(): void;
  close(): void;
};

/** Writes a whole file (replacing it). */
export async function writeFile(
  dir: FileSystemDirectoryHandle,
  name: string,
  data: string | Uint8Array,
): Promise<void> {
  const handle = await dir.getFileHandle(name, { create: true });
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  const h = handle as FileSystemFileHandle & {
    createWritable?: () => Promise<FileSystemWritableFileStream>;
    createSyncAccessHandle?: () => Promise<SyncHandle>;
  };
  if (typeof h.createWritable === 'function') {
    const w = await h.createWritable();
    try {
      await w.write(bytes as unknown as ArrayBuffer);
      await w.close();
    } catch (e) {
      await w.abort().catch(() => {});
      throw e;
    }
    return;
  }
  if (typeof h.createSyncAccessHandle === 'function') {
    const s = await h.createSyncAccessHandle();
    try {
      s.truncate(0);
      s.write(bytes as unknown as BufferSource, { at: 0 });
      s.flush();
    } finally {
      s.close();
    }
    return;
  }
  throw new Error('this browser cannot write files to its origin-private file system');
}

export async function readFile(dir: FileSystemDirectoryHandle, name: string): Promise<Uint8Array | null> {
  try {
    const f = await (await dir.getFileHandle(name)).getFile();
    return new Uint8Array(await f.arrayBuffer());
  } catch (e) {
    if ((e as DOMException).name === 'NotFoundError') return null;
    throw e;
  }
}

export async function readText(dir: FileSystemDirectoryHandle, name: string): Promise<string | null> {
  const b = await readFile(dir, name);
  return b === null ? null : new TextDecoder().decode(b);
}

export async function removeEntry(dir: FileSystemDirectoryHandle, name: string): Promise<void> {
  try {
    await dir.removeEntry(name, { recursive: true });
  } catch (e) {
    if ((e as DOMException).name !== 'NotFoundError') throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Tokenized datasets

const DATASET_MAGIC = 0x41524b44; // "ARKD"

/** Examples → bytes: [magic, count, then per example: length, ids…, labels…] as int32. */
export function encodeExamples(examples: TrainExample[]): Uint8Array {
  let n = 2;
  for (const e of examples) n += 1 + 2 * e.inputIds.length;
  const out = new Int32Array(n);
  out[0] = DATASET_MAGIC;
  out[1] = examples.length;
  let o = 2;
  for (const e of examples) {
    out[o++] = e.inputIds.length;
    out.set(e.inputIds, o);
    o += e.inputIds.length;
    out.set(e.labels, o);
    o += e.labels.length;
  }
  return new Uint8Array(out.buffer);
}

export function decodeExamples(bytes: Uint8Array): TrainExample[] {
  if (bytes.byteLength % 4 !== 0 || bytes.byteLength < 8) throw new Error('stored dataset is truncated');
  const a = new Int32Array(bytes.slice().buffer);
  if (a[0] !== DATASET_MAGIC) throw new Error('stored dataset has an unknown format');
  const count = a[1]!;
  const out: TrainExample[] = [];
  let o = 2;
  for (let i = 0; i < count; i++) {
    const len = a[o++]!;
    if (o + 2 * len > a.length) throw new Error('stored dataset is truncated');
    out.push({ inputIds: Array.from(a.subarray(o, o + len)), labels: Array.from(a.subarray(o + len, o + 2 * len)) });
    o += 2 * len;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The training-run store

export const RUN_DIR = 'agentark-train';
export const RUN_META_VERSION = 'agentark.webrun/1';

export interface RunMeta<S = unknown> {
  version: typeof RUN_META_VERSION;
  runId: string;
  /** Adapter name the run registers when it finishes. */
  name: string;
  /** LoadedModel.id and a hash of the model config: resume only on the same model. */
  modelId: string;
  modelKey: string;
  /** Page-level settings of the run (hyperparameters, checkpoint interval…). */
  settings: S;
  /** Where the data came from (for the UI). */
  source: string;
  examples: number;
  totalSteps: number;
  /** Step of the last complete checkpoint (0 = none yet). */
  step: number;
  /** Slot holding that checkpoint. */
  slot: 'a' | 'b' | null;
  /** 'running' when the page went away mid-run (resume automatically); 'paused' when the user paused. */
  status: 'running' | 'paused';
  history: { step: number; loss: number; lr: number }[];
  createdAt: string;
  savedAt: string;
}

export interface StoredCheckpoint<S = unknown> {
  meta: RunMeta<S>;
  examples: TrainExample[];
  /** The checkpoint files of meta.slot (empty when no checkpoint was written yet). */
  files: Record<string, Uint8Array>;
}

const slotDir = (slot: 'a' | 'b') => `ckpt-${slot}`;

async function runDir(create: boolean): Promise<FileSystemDirectoryHandle | null> {
  return opfsDir([RUN_DIR], create);
}

/** The stored run's metadata, or null when there is none (or it is unreadable). */
export async function readRunMeta<S>(): Promise<RunMeta<S> | null> {
  if (!opfsAvailable()) return null;
  const dir = await runDir(false);
  if (!dir) return null;
  const text = await readText(dir, 'run.json');
  if (!text) return null;
  try {
    const meta = JSON.parse(text) as RunMeta<S>;
    return meta.version === RUN_META_VERSION ? meta : null;
  } catch {
    return null;
  }
}

/** Starts a new stored run (replacing any other): dataset first, then run.json. */
export async function beginRun<S>(meta: RunMeta<S>, examples: TrainExample[], rowsJsonl: string): Promise<void> {
  await discardRun();
  const dir = (await runDir(true))!;
  await writeFile(dir, 'dataset.bin', encodeExamples(examples));
  await writeFile(dir, 'rows.jsonl', rowsJsonl);
  await writeFile(dir, 'run.json', JSON.stringify(meta));
}

/** Writes a checkpoint into the free slot, then points run.json at it. Returns the bytes written. */
export async function writeCheckpoint<S>(
  meta: RunMeta<S>,
  files: Record<string, string | Uint8Array>,
): Promise<{ meta: RunMeta<S>; bytes: number }> {
  const dir = (await runDir(true))!;
  const slot: 'a' | 'b' = meta.slot === 'a' ? 'b' : 'a';
  await removeEntry(dir, slotDir(slot));
  const sd = await dir.getDirectoryHandle(slotDir(slot), { create: true });
  let bytes = 0;
  for (const [name, data] of Object.entries(files)) {
    await writeFile(sd, name, data);
    bytes += typeof data === 'string' ? data.length : data.byteLength;
  }
  const next: RunMeta<S> = { ...meta, slot, savedAt: new Date().toISOString() };
  await writeFile(dir, 'run.json', JSON.stringify(next));
  return { meta: next, bytes };
}

/** Rewrites run.json only (e.g. the status). */
export async function updateRunMeta<S>(meta: RunMeta<S>): Promise<void> {
  const dir = await runDir(false);
  if (dir) await writeFile(dir, 'run.json', JSON.stringify({ ...meta, savedAt: new Date().toISOString() }));
}

/** Everything needed to resume the stored run. */
export async function loadRun<S>(): Promise<StoredCheckpoint<S> | null> {
  const meta = await readRunMeta<S>();
  if (!meta) return null;
  const dir = (await runDir(false))!;
  const data = await readFile(dir, 'dataset.bin');
  if (!data) throw new Error('the stored training run has no dataset (it was cut off while starting)');
  const examples = decodeExamples(data);
  const files: Record<string, Uint8Array> = {};
  if (meta.slot) {
    const sd = await dir.getDirectoryHandle(slotDir(meta.slot));
    for await (const [name, entry] of (
      sd as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }
    ).entries()) {
      if (entry.kind === 'file')
        files[name] = new Uint8Array(await (await (entry as FileSystemFileHandle).getFile()).arrayBuffer());
    }
  }
  return { meta, examples, files };
}

export async function discardRun(): Promise<void> {
  if (!opfsAvailable()) return;
  const root = await navigator.storage.getDirectory();
  await removeEntry(root, RUN_DIR);
}
