import { describe, expect, it } from 'vitest';
import {
  parseSafetensorsHeader,
  readSafetensors,
  writeSafetensors,
  type TensorToWrite,
} from '../../src/formats/safetensors';

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** A file from a literal header object and data section, as a foreign writer might produce it. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), headerLengthOverride?: bigint): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLengthOverride ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('writeSafetensors / parseSafetensorsHeader', () => {
  const tensors: TensorToWrite[] = [
    { name: 'b.f16', dtype: 'F16', shape: [3], data: bytesOf(new Uint16Array([0x3c00, 0x4000, 0x4200])) },
    { name: 'a.f32', dtype: 'F32', shape: [2, 2], data: bytesOf(new Float32Array([1, 2, 3, 4])) },
    { name: 'c.bf16', dtype: 'BF16', shape: [1], data: bytesOf(new Uint16Array([0x3f80])) },
    { name: 'd.scalar', dtype: 'F32', shape: [], data: bytesOf(new Float32Array([7])) },
    { name: 'e.empty', dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
  ];

  it('round-trips names, dtypes, shapes, bytes and metadata', () => {
    const file = writeSafetensors(tensors, { format: 'pt' });
    const { tensors: back, metadata } = readSafetensors(file);
    expect(metadata).toEqual({ format: 'pt' });
    const byName = new Map(back.map((t) => [t.name, t]));
    for (const t of tensors) {
      const got = byName.get(t.name)!;
      expect(got.dtype).toBe(t.dtype);
      expect(got.shape).toEqual(t.shape);
      expect(Array.from(got.data)).toEqual(Array.from(t.data));
    }
  });

  it('lays out like the reference library: space-padded header, 8-aligned data, aligned tensors', () => {
    const file = writeSafetensors(tensors);
    const header = parseSafetensorsHeader(file, file.length);
    expect(header.dataStart % 8).toBe(0);
    const json = new TextDecoder().decode(file.subarray(8, header.dataStart));
    expect(json.trimEnd().endsWith('}')).toBe(true);
    expect(/^ *$/.test(json.slice(json.trimEnd().length))).toBe(true);
    for (const t of header.tensors) expect((t.begin - header.dataStart) % (t.dtype === 'F32' ? 4 : 2)).toBe(0);
    // Wider dtypes first, then by name.
    expect(header.tensors.map((t) => t.name)).toEqual(['a.f32', 'd.scalar', 'e.empty', 'b.f16', 'c.bf16']);
  });

  it('reads a hand-made file in the documented format', () => {
    const data = bytesOf(new Float32Array([1.5, -2]));
    const file = rawFile(
      { __metadata__: { format: 'pt' }, w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } },
      data,
    );
    const [t] = readSafetensors(file).tensors;
    expect(Array.from(new Float32Array(t.data.slice().buffer))).toEqual([1.5, -2]);
  });

  it('rejects mismatched input to the writer', () => {
    expect(() => writeSafetensors([{ name: 'x', dtype: 'F32', shape: [3], data: new Uint8Array(8) }])).toThrow(
      /tensor "x": F32 \[3\] needs 12 bytes, got 8/,
    );
    expect(() =>
      writeSafetensors([
        { name: 'x', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
        { name: 'x', dtype: 'F32', shape: [1], data: new Uint8Array(4) },
      ]),
    ).toThrow(/duplicate tensor name "x"/);
  });
});

describe('parseSafetensorsHeader errors', () => {
  const ok = { w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  it('header length past end of file', () => {
    const file = rawFile(ok, new Uint8Array(8), 1_000_000n);
    expect(() => parseSafetensorsHeader(file, file.length, { fileName: 'model.safetensors' })).toThrow(
      `model.safetensors: header length 1000000 past end of file (size ${file.length})`,
    );
    const huge = rawFile(ok, new Uint8Array(8), 0xffffffffffffffffn);
    expect(() => parseSafetensorsHeader(huge, huge.length)).toThrow(
      /header length 18446744073709551615 past end of file/,
    );
  });

  it('file too small for a header', () => {
    expect(() => parseSafetensorsHeader(new Uint8Array(5), 5)).toThrow(/too small to hold a safetensors header/);
  });

  it('invalid JSON', () => {
    const file = rawFile(ok);
    file[8] = 0x5b; // '[' instead of '{'
    expect(() => parseSafetensorsHeader(file, file.length)).toThrow(/header is not valid JSON/);
  });

  it('unsupported dtype, naming the tensor', () => {
    const file = rawFile({ 'model.q': { dtype: 'I8', shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4));
    expect(() => parseSafetensorsHeader(file, file.length)).toThrow(
      'tensor "model.q" has unsupported dtype I8; supported: F32, F16, BF16',
    );
    // A caller that only needs some tensors can still parse (and bounds-check) the rest.
    expect(parseSafetensorsHeader(file, file.length, { allowUnsupportedDtypes: true }).tensors[0].dtype).toBe('I8');
    const bogus = rawFile({ x: { dtype: 'F7', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1));
    expect(() => parseSafetensorsHeader(bogus, bogus.length, { allowUnsupportedDtypes: true })).toThrow(
      /unknown dtype "F7"/,
    );
  });

  it('offsets that disagree with shape × dtype', () => {
    const file = rawFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
    expect(() => parseSafetensorsHeader(file, file.length)).toThrow(
      'tensor "w": data_offsets [0, 8] span 8 bytes, but F32 [3] needs 12',
    );
  });

  it('data past the end of the file (truncated)', () => {
    const file = rawFile(ok, new Uint8Array(8));
    const truncated = file.subarray(0, file.length - 3);
    expect(() => parseSafetensorsHeader(truncated, truncated.length, { fileName: 'x.safetensors' })).toThrow(
      /x.safetensors: file truncated: tensor "w" ends at data offset 8 but the data section is only 5 bytes/,
    );
  });

  it('overlapping tensors', () => {
    const file = rawFile(
      { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } },
      new Uint8Array(8),
    );
    expect(() => parseSafetensorsHeader(file, file.length)).toThrow(/tensors "a" and "b" overlap/);
  });

  it('malformed entries', () => {
    const shape = rawFile({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4));
    expect(() => parseSafetensorsHeader(shape, shape.length)).toThrow(/tensor "w" has invalid shape \[-1\]/);
    const offsets = rawFile({ w: { dtype: 'F32', shape: [1], data_offsets: [4] } }, new Uint8Array(4));
    expect(() => parseSafetensorsHeader(offsets, offsets.length)).toThrow(/invalid data_offsets/);
  });
});
