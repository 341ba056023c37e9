/**
 * A minimal Parquet writer for tests only (no writer package is installed beside hyparquet): data
 * page v1, PLAIN values, RLE definition/repetition levels, Thrift compact metadata — enough for
 * string, integer and double columns, optional fields, list columns (the 3-level LIST layout the
 * Hub's files use: `choices.list.element`), struct columns (`options.A`…) and several row groups.
 *
 * Compression: real codec streams that real decoders read (hyparquet-compressors' in these tests),
 * written without a compressor: snappy as literal-only blocks, zstd as a frame of raw blocks.
 */

export type Codec = 'uncompressed' | 'snappy' | 'zstd';

export type ColumnType = 'string' | 'int64' | 'int32' | 'double';

export type Field =
  | { name: string; type: ColumnType; optional?: boolean }
  | { name: string; list: ColumnType }
  | { name: string; struct: { name: string; type: ColumnType }[] };

const CODEC: Record<Codec, number> = { uncompressed: 0, snappy: 1, zstd: 6 };
const PHYSICAL: Record<ColumnType, number> = { int32: 1, int64: 2, double: 5, string: 6 };

// ---------------------------------------------------------------------------------------------
// Thrift compact protocol

class Thrift {
  bytes: number[] = [];
  private last: number[] = [0];

  private varint(n: bigint | number): void {
    let v = BigInt(n);
    while (v >= 0x80n) {
      this.bytes.push(Number((v & 0x7fn) | 0x80n));
      v >>= 7n;
    }
    this.bytes.push(Number(v));
  }
  private zigzag(n: bigint | number): void {
    const v = BigInt(n);
    this.varint(v >= 0n ? v << 1n : (-v << 1n) - 1n);
  }
  private header(id: number, type: number): void {
    const delta = id - this.last[this.last.length - 1]!;
    if (delta > 0 && delta <= 15) this.bytes.push((delta << 4) | type);
    else {
      this.bytes.push(type);
      this.zigzag(id);
    }
    this.last[this.last.length - 1] = id;
  }
  i32(id: number, v: number): this {
    this.header(id, 5);
    this.zigzag(v);
    return this;
  }
  i64(id: number, v: number | bigint): this {
    this.header(id, 6);
    this.zigzag(v);
    return this;
  }
  string(id: number, s: string): this {
    this.header(id, 8);
    const b = new TextEncoder().encode(s);
    this.varint(b.length);
    this.bytes.push(...b);
    return this;
  }
  struct(id: number, body: (t: Thrift) => void): this {
    this.header(id, 12);
    this.last.push(0);
    body(this);
    this.bytes.push(0);
    this.last.pop();
    return this;
  }
  list(
    id: number,
    elemType: 'i32' | 'string' | 'struct',
    items: unknown[],
    write: (t: Thrift, item: unknown) => void,
  ): this {
    this.header(id, 9);
    const t = { i32: 5, string: 8, struct: 12 }[elemType];
    if (items.length < 15) this.bytes.push((items.length << 4) | t);
    else {
      this.bytes.push(0xf0 | t);
      this.varint(items.length);
    }
    for (const item of items) {
      if (elemType === 'struct') {
        this.last.push(0);
        write(this, item);
        this.bytes.push(0);
        this.last.pop();
      } else write(this, item);
    }
    return this;
  }
  rawI32(v: number): void {
    this.zigzag(v);
  }
  rawString(s: string): void {
    const b = new TextEncoder().encode(s);
    this.varint(b.length);
    this.bytes.push(...b);
  }
}

// ---------------------------------------------------------------------------------------------
// Codecs

function snappyLiteral(data: Uint8Array): Uint8Array {
  const out: number[] = [];
  let n = data.length;
  do {
    out.push(n >= 0x80 ? (n & 0x7f) | 0x80 : n);
    n >>>= 7;
  } while (n > 0);
  for (let i = 0; i < data.length; i += 60) {
    const chunk = data.subarray(i, Math.min(i + 60, data.length));
    out.push((chunk.length - 1) << 2, ...chunk);
  }
  return Uint8Array.from(out);
}

function zstdRaw(data: Uint8Array): Uint8Array {
  const out: number[] = [0x28, 0xb5, 0x2f, 0xfd, 0xa0]; // magic; single segment, 4-byte content size
  out.push(data.length & 0xff, (data.length >>> 8) & 0xff, (data.length >>> 16) & 0xff, (data.length >>> 24) & 0xff);
  const MAX = 1 << 17;
  let i = 0;
  do {
    const size = Math.min(MAX, data.length - i);
    const last = i + size >= data.length ? 1 : 0;
    const h = last | (0 << 1) | (size << 3); // raw block
    out.push(h & 0xff, (h >>> 8) & 0xff, (h >>> 16) & 0xff, ...data.subarray(i, i + size));
    i += size;
  } while (i < data.length);
  return Uint8Array.from(out);
}

function compress(codec: Codec, data: Uint8Array): Uint8Array {
  return codec === 'snappy' ? snappyLiteral(data) : codec === 'zstd' ? zstdRaw(data) : data;
}

// ---------------------------------------------------------------------------------------------
// Levels and values

/** RLE/bit-packed hybrid with RLE runs only, prefixed by its 4-byte length (data page v1). */
function levels(values: number[], maxLevel: number): number[] {
  const width = Math.ceil(Math.log2(maxLevel + 1));
  const bytesPer = Math.ceil(width / 8);
  const body: number[] = [];
  for (let i = 0; i < values.length; ) {
    let j = i;
    while (j < values.length && values[j] === values[i]) j++;
    let h = (j - i) << 1;
    do {
      body.push(h >= 0x80 ? (h & 0x7f) | 0x80 : h);
      h >>>= 7;
    } while (h > 0);
    for (let b = 0; b < bytesPer; b++) body.push((values[i]! >>> (8 * b)) & 0xff);
    i = j;
  }
  const n = body.length;
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff, ...body];
}

function plain(type: ColumnType, values: unknown[]): number[] {
  const out: number[] = [];
  for (const v of values) {
    if (type === 'string') {
      const b = new TextEncoder().encode(String(v));
      out.push(b.length & 0xff, (b.length >>> 8) & 0xff, (b.length >>> 16) & 0xff, (b.length >>> 24) & 0xff, ...b);
    } else if (type === 'int32') {
      const dv = new DataView(new ArrayBuffer(4));
      dv.setInt32(0, Number(v), true);
      out.push(...new Uint8Array(dv.buffer));
    } else if (type === 'int64') {
      const dv = new DataView(new ArrayBuffer(8));
      dv.setBigInt64(0, BigInt(v as number), true);
      out.push(...new Uint8Array(dv.buffer));
    } else {
      const dv = new DataView(new ArrayBuffer(8));
      dv.setFloat64(0, Number(v), true);
      out.push(...new Uint8Array(dv.buffer));
    }
  }
  return out;
}

interface Leaf {
  path: string[];
  type: ColumnType;
  maxDef: number;
  maxRep: number;
  /** Values, definition and repetition levels of a set of rows. */
  shred(rows: Record<string, unknown>[]): { values: unknown[]; def: number[]; rep: number[]; count: number };
}

function leaves(fields: Field[]): Leaf[] {
  const out: Leaf[] = [];
  for (const f of fields) {
    if ('type' in f) {
      const optional = f.optional ?? true;
      out.push({
        path: [f.name],
        type: f.type,
        maxDef: optional ? 1 : 0,
        maxRep: 0,
        shred: (rows) => {
          const values: unknown[] = [];
          const def: number[] = [];
          for (const r of rows) {
            const v = r[f.name];
            if (v === null || v === undefined) {
              if (!optional) throw new Error(`required column ${f.name} is null`);
              def.push(0);
            } else {
              values.push(v);
              def.push(optional ? 1 : 0);
            }
          }
          return { values, def, rep: [], count: rows.length };
        },
      });
    } else if ('list' in f) {
      // optional group f (LIST) { repeated group list { optional element } }: maxDef 3, maxRep 1.
      out.push({
        path: [f.name, 'list', 'element'],
        type: f.list,
        maxDef: 3,
        maxRep: 1,
        shred: (rows) => {
          const values: unknown[] = [];
          const def: number[] = [];
          const rep: number[] = [];
          for (const r of rows) {
            const v = r[f.name] as unknown[] | null | undefined;
            if (v === null || v === undefined) {
              def.push(0);
              rep.push(0);
            } else if (!v.length) {
              def.push(1);
              rep.push(0);
            } else {
              v.forEach((x, i) => {
                rep.push(i === 0 ? 0 : 1);
                if (x === null || x === undefined) def.push(2);
                else {
                  def.push(3);
                  values.push(x);
                }
              });
            }
          }
          return { values, def, rep, count: def.length };
        },
      });
    } else {
      // optional group f { optional child … }: each child column has maxDef 2.
      for (const c of f.struct) {
        out.push({
          path: [f.name, c.name],
          type: c.type,
          maxDef: 2,
          maxRep: 0,
          shred: (rows) => {
            const values: unknown[] = [];
            const def: number[] = [];
            for (const r of rows) {
              const g = r[f.name] as Record<string, unknown> | null | undefined;
              if (g === null || g === undefined) def.push(0);
              else if (g[c.name] === null || g[c.name] === undefined) def.push(1);
              else {
                def.push(2);
                values.push(g[c.name]);
              }
            }
            return { values, def, rep: [], count: rows.length };
          },
        });
      }
    }
  }
  return out;
}

function schemaElements(fields: Field[]): ((t: Thrift) => void)[] {
  const els: ((t: Thrift) => void)[] = [(t) => t.string(4, 'schema').i32(5, fields.length)];
  const leaf = (name: string, type: ColumnType, repetition: number) => (t: Thrift) => {
    t.i32(1, PHYSICAL[type]).i32(3, repetition).string(4, name);
    if (type === 'string') t.i32(6, 0); // UTF8
  };
  for (const f of fields) {
    if ('type' in f) els.push(leaf(f.name, f.type, (f.optional ?? true) ? 1 : 0));
    else if ('list' in f) {
      els.push((t) => t.i32(3, 1).string(4, f.name).i32(5, 1).i32(6, 3)); // LIST
      els.push((t) => t.i32(3, 2).string(4, 'list').i32(5, 1));
      els.push(leaf('element', f.list, 1));
    } else {
      els.push((t) => t.i32(3, 1).string(4, f.name).i32(5, f.struct.length));
      for (const c of f.struct) els.push(leaf(c.name, c.type, 1));
    }
  }
  return els;
}

/** A Parquet file of `rows` with the given fields, codec and rows per row group. */
export function writeParquet(
  fields: Field[],
  rows: Record<string, unknown>[],
  opts: { codec?: Codec; rowGroupSize?: number } = {},
): Uint8Array {
  const codec = opts.codec ?? 'snappy';
  const groupSize = opts.rowGroupSize ?? (rows.length || 1);
  const cols = leaves(fields);
  const out: number[] = [0x50, 0x41, 0x52, 0x31]; // PAR1
  const groups: {
    chunks: { leaf: Leaf; offset: number; count: number; compressed: number; uncompressed: number }[];
    rows: number;
  }[] = [];
  for (let g = 0; g < Math.max(1, Math.ceil(rows.length / groupSize)); g++) {
    const part = rows.slice(g * groupSize, (g + 1) * groupSize);
    const chunks: (typeof groups)[number]['chunks'] = [];
    for (const leaf of cols) {
      const { values, def, rep, count } = leaf.shred(part);
      const body = Uint8Array.from([
        ...(leaf.maxRep ? levels(rep, leaf.maxRep) : []),
        ...(leaf.maxDef ? levels(def, leaf.maxDef) : []),
        ...plain(leaf.type, values),
      ]);
      const packed = compress(codec, body);
      const header = new Thrift()
        .i32(1, 0) // DATA_PAGE
        .i32(2, body.length)
        .i32(3, packed.length)
        .struct(5, (t) => t.i32(1, count).i32(2, 0).i32(3, 3).i32(4, 3));
      header.bytes.push(0);
      const offset = out.length;
      out.push(...header.bytes, ...packed);
      chunks.push({
        leaf,
        offset,
        count,
        compressed: header.bytes.length + packed.length,
        uncompressed: header.bytes.length + body.length,
      });
    }
    groups.push({ chunks, rows: part.length });
  }
  const meta = new Thrift()
    .i32(1, 1)
    .list(2, 'struct', schemaElements(fields), (t, el) => (el as (t: Thrift) => void)(t))
    .i64(3, rows.length)
    .list(4, 'struct', groups, (t, grp) => {
      const g = grp as (typeof groups)[number];
      t.list(1, 'struct', g.chunks, (t2, ch) => {
        const c = ch as (typeof g.chunks)[number];
        t2.i64(2, c.offset).struct(3, (m) =>
          m
            .i32(1, PHYSICAL[c.leaf.type])
            .list(2, 'i32', [0, 3], (x, e) => x.rawI32(e as number))
            .list(3, 'string', c.leaf.path, (x, e) => x.rawString(e as string))
            .i32(4, CODEC[codec])
            .i64(5, c.count)
            .i64(6, c.uncompressed)
            .i64(7, c.compressed)
            .i64(9, c.offset),
        );
      })
        .i64(
          2,
          g.chunks.reduce((a, c) => a + c.uncompressed, 0),
        )
        .i64(3, g.rows);
    })
    .string(6, 'agentark-web test writer');
  meta.bytes.push(0);
  const len = meta.bytes.length;
  out.push(
    ...meta.bytes,
    len & 0xff,
    (len >>> 8) & 0xff,
    (len >>> 16) & 0xff,
    (len >>> 24) & 0xff,
    0x50,
    0x41,
    0x52,
    0x31,
  );
  return Uint8Array.from(out);
}
