/**
 * The q8 / q4 weight formats: group-wise symmetric quantization of a Linear weight [rows, cols]
 * (HF layout [out, in]) along the input dimension. The rules are fixed so that anyone can
 * reproduce the dequantized weights bit for bit:
 *
 * - Each row is split into groups of 32 consecutive values (the last group of a row is shorter
 *   when cols % 32 != 0; its absmax covers only the values that exist).
 * - scale = f16(f32(absmax) / 127) for q8, f16(f32(absmax) / 7) for q4: the division is done in
 *   f32, then rounded to f16 to nearest, ties to even (what PyTorch's `(absmax / 127).half()` does).
 * - q = roundHalfEven(f32(w / scale)) clamped to [-127, 127] (q8) or [-8, 7] (q4); an all-zero
 *   group has scale 0 and q 0 (no division by zero).
 * - dequantized value = f32(q × scale) — exact in f32 (|q| ≤ 127 times an 11-bit mantissa).
 *
 * Storage (what the GPU kernels read, in u32 words, little-endian):
 * - `quants`: per row, ceil(cols / 32) groups, each padded to 32 values (padding is q = 0).
 *   q8: a group is 8 words; value j of the group is the byte j % 4 of word j / 4 (two's complement).
 *   q4: a group is 4 words; value j is the nibble j % 8 of word j / 8, i.e. bits 4·(j % 8) .. +3
 *   (two's complement), so within each byte the even-indexed value is the LOW nibble and the odd
 *   one the high nibble.
 * - `scales`: f16 bit patterns, row-major [rows, groups], two per u32 word (index i in the low
 *   half of word i / 2 when i is even, the high half when odd), so a shader without shader-f16
 *   reads them with unpack2x16float.
 */
import { f32BitsToF16Bits, f16ToF32 } from '../formats/dtype';

export type QuantFormat = 'q8' | 'q4';
export const QUANT_FORMATS: readonly QuantFormat[] = ['q8', 'q4'];
export const GROUP_SIZE = 32;

export interface QuantizedMatrix {
  format: QuantFormat;
  rows: number;
  cols: number;
  /** Packed quantized values, [rows, groups, wordsPerGroup] u32 words. */
  quants: Uint32Array;
  /** f16 bit patterns of the scales, [rows, groups], in a Uint16Array whose length is rounded up to even. */
  scales: Uint16Array;
}

/** Largest |q| the scale maps absmax to. */
export function qmax(format: QuantFormat): number {
  return format === 'q8' ? 127 : 7;
}

export function qmin(format: QuantFormat): number {
  return format === 'q8' ? -127 : -8;
}

/** u32 words one group of 32 values occupies. */
export function wordsPerGroup(format: QuantFormat): number {
  return format === 'q8' ? 8 : 4;
}

export function groupsPerRow(cols: number): number {
  return Math.ceil(cols / GROUP_SIZE);
}

/** Bytes the quantized matrix takes on the GPU (quant words + scale words). */
export function quantizedBytes(format: QuantFormat, rows: number, cols: number): number {
  const groups = rows * groupsPerRow(cols);
  return groups * wordsPerGroup(format) * 4 + Math.ceil(groups / 2) * 4;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  return f32BitsToF16Bits(u32Scratch[0]);
}

/** Round half to even (PyTorch / NumPy `round`), on an f32 value. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // half up
  if (r - x === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

let f16Values: Float32Array | null = null;
function f16Value(bits: number): number {
  f16Values ??= f16ToF32(Uint16Array.from({ length: 65536 }, (_, i) => i));
  return f16Values[bits];
}

/** Quantize a [rows, cols] f32 weight by the rules above. */
export function quantize(w: Float32Array, rows: number, cols: number, format: QuantFormat): QuantizedMatrix {
  if (w.length !== rows * cols) throw new Error(`quantize: ${w.length} values for shape [${rows}, ${cols}]`);
  const groups = groupsPerRow(cols);
  const wpg = wordsPerGroup(format);
  const quants = new Uint32Array(rows * groups * wpg);
  const scales = new Uint16Array(rows * groups + ((rows * groups) & 1));
  const lo = qmin(format);
  const hi = qmax(format);
  const perWord = format === 'q8' ? 4 : 8;
  const bits = format === 'q8' ? 8 : 4;
  const mask = (1 << bits) - 1;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const start = r * cols + g * GROUP_SIZE;
      const end = r * cols + Math.min(cols, (g + 1) * GROUP_SIZE);
      let absmax = 0;
      for (let i = start; i < end; i++) {
        const a = Math.abs(w[i]);
        if (!(a < Infinity))
          throw new Error(`quantize: weight value ${w[i]} at row ${r}, column ${i - r * cols} is not finite`);
        if (a > absmax) absmax = a;
      }
      const scaleBits = f32ToF16(Math.fround(absmax / hi));
      const scale = f16Value(scaleBits);
      scales[r * groups + g] = scaleBits;
      if (scale === 0) continue; // all-zero group: q = 0, already the packed value
      const base = (r * groups + g) * wpg;
      // Hot loop (every weight of the model): round half to even and clamp inline, and build each
      // packed word in a local before storing it.
      let word = 0;
      let filled = 0;
      let at = base;
      for (let i = start; i < end; i++) {
        const v = Math.fround(w[i] / scale);
        let q = Math.round(v);
        if (q - v === 0.5 && (q & 1) !== 0) q -= 1;
        if (q > hi) q = hi;
        else if (q < lo) q = lo;
        word |= (q & mask) << (bits * filled);
        if (++filled === perWord) {
          quants[at++] = word >>> 0;
          word = 0;
          filled = 0;
        }
      }
      if (filled) quants[at] = word >>> 0;
    }
  }
  return { format, rows, cols, quants, scales };
}

/** The quantized value q (sign-extended) at (row, col). */
export function quantAt(m: QuantizedMatrix, row: number, col: number): number {
  const groups = groupsPerRow(m.cols);
  const g = Math.floor(col / GROUP_SIZE);
  const j = col % GROUP_SIZE;
  const word = m.quants[(row * groups + g) * wordsPerGroup(m.format) + Math.floor(j / (m.format === 'q8' ? 4 : 8))];
  if (m.format === 'q8') return (word << (24 - 8 * (j % 4))) >> 24;
  return (word << (28 - 4 * (j % 8))) >> 28;
}

/** The f32 value of every scale, [rows, groups]. */
export function scaleValues(m: QuantizedMatrix): Float32Array {
  return f16ToF32(m.scales.subarray(0, m.rows * groupsPerRow(m.cols)));
}

/** The dequantized weight [rows, cols] in f32 (exact: q × scale). */
export function dequantize(m: QuantizedMatrix): Float32Array {
  const out = new Float32Array(m.rows * m.cols);
  dequantizeRows(m, 0, m.rows, out);
  return out;
}

/** Dequantize rows [r0, r1) into out[(r - r0) * cols + c]. */
export function dequantizeRows(m: QuantizedMatrix, r0: number, r1: number, out: Float32Array): void {
  const groups = groupsPerRow(m.cols);
  const scales = scaleValues(m);
  for (let r = r0; r < r1; r++) {
    for (let c = 0; c < m.cols; c++) {
      out[(r - r0) * m.cols + c] = Math.fround(quantAt(m, r, c) * scales[r * groups + Math.floor(c / GROUP_SIZE)]);
    }
  }
}

/** Rows [r0, r1) of a quantized matrix as a quantized matrix of its own (row shards on the GPU). */
export function sliceRows(m: QuantizedMatrix, r0: number, r1: number): QuantizedMatrix {
  const groups = groupsPerRow(m.cols);
  const wpg = wordsPerGroup(m.format);
  const n = (r1 - r0) * groups;
  const scales = new Uint16Array(n + (n & 1));
  scales.set(m.scales.subarray(r0 * groups, r1 * groups));
  return {
    format: m.format,
    rows: r1 - r0,
    cols: m.cols,
    quants: m.quants.slice(r0 * groups * wpg, r1 * groups * wpg),
    scales,
  };
}
