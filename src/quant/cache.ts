/**
 * Where quantized weights are kept between loads: files under a cache folder in Node
 * ($AGENTARK_CACHE_DIR, else $XDG_CACHE_HOME/agentark, else ~/.cache/agentark; subfolder
 * `quantized/`), and the origin-private file system (folder `agentark-quantized`) in a browser.
 */
export interface QuantCache {
  /** Human-readable location (for logs). */
  readonly where: string;
  get(key: string): Promise<Uint8Array | null>;
  put(key: string, data: Uint8Array): Promise<void>;
}

const isNode = typeof process !== 'undefined' && Boolean(process.versions?.node) && typeof window === 'undefined';

/** A folder of `<key>.bin` files; writes go to a temporary name first, then rename. */
export async function nodeQuantCache(dir: string): Promise<QuantCache> {
  const fs = await import('node:fs/promises');
  const path = await import('node:path');
  return {
    where: dir,
    async get(key) {
      try {
        return new Uint8Array(await fs.readFile(path.join(dir, `${key}.bin`)));
      } catch {
        return null;
      }
    },
    async put(key, data) {
      try {
        await fs.mkdir(dir, { recursive: true });
        const tmp = path.join(dir, `${key}.bin.tmp-${process.pid}`);
        await fs.writeFile(tmp, data);
        await fs.rename(tmp, path.join(dir, `${key}.bin`));
      } catch (e) {
        // A read-only or full disk must not fail the load: the weights are quantized in memory.
        process.stderr.write(`warning: could not cache quantized weights in ${dir}: ${(e as Error).message}\n`);
      }
    },
  };
}

export async function opfsQuantCache(): Promise<QuantCache | null> {
  const storage = (
    globalThis as { navigator?: { storage?: { getDirectory?: () => Promise<FileSystemDirectoryHandle> } } }
  ).navigator?.storage;
  if (!storage?.getDirectory) return null;
  const root = await storage.getDirectory();
  const dir = await root.getDirectoryHandle('agentark-quantized', { create: true });
  return {
    where: 'OPFS agentark-quantized/',
    async get(key) {
      try {
        const file = await (await dir.getFileHandle(`${key}.bin`)).getFile();
        return new Uint8Array(await file.arrayBuffer());
      } catch {
        return null;
      }
    },
    async put(key, data) {
      try {
        const handle = await dir.getFileHandle(`${key}.bin`, { create: true });
        const w = await (
          handle as FileSystemFileHandle & { createWritable(): Promise<FileSystemWritableFileStream> }
        ).createWritable();
        await w.write(data as Uint8Array<ArrayBuffer>);
        await w.close();
      } catch {
        // Quota exceeded or no writable streams: the next load quantizes again.
      }
    },
  };
}

export async function defaultQuantCache(): Promise<QuantCache | null> {
  if (isNode) {
    const path = await import('node:path');
    const os = await import('node:os');
    const root =
      process.env.AGENTARK_CACHE_DIR ??
      (process.env.XDG_CACHE_HOME
        ? path.join(process.env.XDG_CACHE_HOME, 'agentark')
        : path.join(os.homedir(), '.cache', 'agentark'));
    return nodeQuantCache(path.join(root, 'quantized'));
  }
  return opfsQuantCache();
}
