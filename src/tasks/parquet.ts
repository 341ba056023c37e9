/**
 * Parquet question files (the layout the Hugging Face Hub stores datasets in), read with
 * hyparquet and its compressors (snappy, zstd, gzip, brotli, lz4) — pure JavaScript, so the same
 * code runs in the browser. Nested columns come back as JS values: a list column (`choices`) as an
 * array, a struct (`options`) as an object; 64-bit integers as BigInt (converted by the row reader).
 */
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import type { LoadOptions, RawRow } from './datasets';

/** The rows of a Parquet file (at most `limit`), as RawRows numbered from 1. */
export async function readParquetRows(
  file: ArrayBuffer,
  sourceName: string,
  opts: { limit?: number } = {},
): Promise<RawRow[]> {
  let rows: Record<string, unknown>[];
  try {
    rows = (await parquetReadObjects({
      file,
      compressors,
      ...(opts.limit !== undefined ? { rowEnd: Math.max(0, Math.floor(opts.limit)) } : {}),
    })) as Record<string, unknown>[];
  } catch (e) {
    throw new Error(`${sourceName}: not a readable Parquet file: ${(e as Error).message}`);
  }
  return rows.map((row, i) => ({ row, index: i + 1, where: `${sourceName}: row ${i + 1}` }));
}

/** Reads a whole response body, reporting bytes as they arrive. */
export async function readBody(
  res: Response,
  phase: string,
  onProgress?: LoadOptions['onProgress'],
): Promise<ArrayBuffer> {
  const total = Number(res.headers.get('content-length') ?? 0);
  if (!res.body) return res.arrayBuffer();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let done = 0;
  while (true) {
    const { value, done: end } = await reader.read();
    if (end) break;
    chunks.push(value);
    done += value.byteLength;
    onProgress?.({ phase, done, total: Math.max(total, done), unit: 'bytes' });
  }
  if (total && done < total) throw new Error(`${phase}: download interrupted after ${done} of ${total} bytes`);
  const out = new Uint8Array(done);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out.buffer;
}

/** The bytes of a Parquet file from a path (Node) or an http(s) URL, with download progress. */
export async function readParquetSource(
  spec: string,
  opts: Pick<LoadOptions, 'onProgress' | 'signal'> = {},
): Promise<ArrayBuffer> {
  if (/^https?:\/\//i.test(spec)) {
    const res = await fetch(spec, { signal: opts.signal });
    if (!res.ok) throw new Error(`GET ${spec} failed: HTTP ${res.status} ${res.statusText}`);
    return readBody(res, `download ${spec}`, opts.onProgress);
  }
  const { readFile } = await import('node:fs/promises');
  try {
    const b = await readFile(spec);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  } catch (e) {
    throw new Error(`cannot read ${spec}: ${(e as Error).message}`);
  }
}
