import { describe, expect, it } from 'vitest';
import { dequantize, quantAt, quantize, quantizedBytes, roundHalfEven, sliceRows } from '../../src/quant/quantize';
import { randn } from '../helpers/rng';

describe('q8 / q4 quantization rules', () => {
  it('rounds half to even', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -3.5].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, -2, 2, -4]);
  });

  it('q8 reproduces hand-computed dequantized values bit for bit', () => {
    // absmax 2.54 -> f32(2.54 / 127) = 0.02 -> f16 0x251F = 1.2802734375 * 2^-6 = 0.0200042724609375
    const row = new Float32Array(32);
    row[0] = 2.54;
    row[1] = -1;
    row[2] = 0.01; // 0.01 / s = 0.49989... -> 0
    row[3] = -2.54;
    const q = quantize(row, 1, 32, 'q8');
    expect(q.scales[0]).toBe(0x251f);
    const s = 0.0200042724609375;
    expect([0, 1, 2, 3].map((c) => quantAt(q, 0, c))).toEqual([127, -50, 0, -127]);
    const d = dequantize(q);
    expect(Array.from(d.subarray(0, 4))).toEqual([
      Math.fround(127 * s),
      Math.fround(-50 * s),
      0,
      Math.fround(-127 * s),
    ]);
    expect(d[1]).toBe(-1.000213623046875);
    // byte j % 4 of word j / 4, two's complement: 127 = 0x7f, -50 = 0xce, 0, -127 = 0x81
    expect(q.quants[0]).toBe(0x8100ce7f);
  });

  it('q4 rounds ties to even, clamps to [-8, 7] and packs the even value in the low nibble', () => {
    // Group 0: absmax 7 -> scale f16(1) = 1 exactly, so q = round(w) with ties to even.
    // Group 1 (5 values, cols = 37): absmax 5e-7 -> 5e-7 / 7 rounds to the f16 subnormal 2^-24,
    // so 5e-7 / 2^-24 = 8.39 clamps to 7 and -5e-7 to -8.
    const w = new Float32Array(37);
    w.set([1, -1, 2.5, -2.5, 3.5, -3.5, 0.5, -7, 1.5, 7]);
    w.set([5e-7, -5e-7, 1e-7, 0, -6e-8], 32);
    const q = quantize(w, 1, 37, 'q4');
    expect(q.scales[0]).toBe(0x3c00); // 1.0
    expect(q.scales[1]).toBe(0x0001); // 2^-24
    expect(Array.from({ length: 10 }, (_, c) => quantAt(q, 0, c))).toEqual([1, -1, 2, -2, 4, -4, 0, -7, 2, 7]);
    expect(Array.from({ length: 5 }, (_, c) => quantAt(q, 0, 32 + c))).toEqual([7, -8, 2, 0, -1]);
    // nibbles of word 0: 1, -1 (0xf), 2, -2 (0xe), 4, -4 (0xc), 0, -7 (0x9), low nibble first
    expect(q.quants[0]).toBe(0x90c4e2f1);
    const d = dequantize(q);
    expect(Array.from(d.subarray(0, 10))).toEqual([1, -1, 2, -2, 4, -4, 0, -7, 2, 7]);
    expect(Array.from(d.subarray(32))).toEqual(
      [7 * 2 ** -24, -8 * 2 ** -24, 2 * 2 ** -24, 0, -1 * 2 ** -24].map(Math.fround),
    );
  });

  it('an all-zero group has scale 0 and dequantizes to 0; non-finite weights are refused', () => {
    const q = quantize(new Float32Array(40), 1, 40, 'q8');
    expect(Array.from(q.scales.subarray(0, 2))).toEqual([0, 0]);
    expect(dequantize(q).every((v) => v === 0)).toBe(true);
    expect(() => quantize(Float32Array.of(1, NaN), 1, 2, 'q4')).toThrow(/not finite/);
  });

  it('dequantized error is bounded by half a step, and row slices keep their values', () => {
    for (const format of ['q8', 'q4'] as const) {
      const [rows, cols] = [7, 70];
      const w = randn(rows * cols, 3);
      const q = quantize(w, rows, cols, format);
      const d = dequantize(q);
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          const g = Math.floor(c / 32);
          let absmax = 0;
          for (let i = g * 32; i < Math.min(cols, g * 32 + 32); i++)
            absmax = Math.max(absmax, Math.abs(w[r * cols + i]));
          const step = absmax / (format === 'q8' ? 127 : 7);
          expect(Math.abs(d[r * cols + c] - w[r * cols + c])).toBeLessThanOrEqual(step * 0.51 + 1e-7);
        }
      }
      expect(Array.from(dequantize(sliceRows(q, 2, 5)))).toEqual(Array.from(d.subarray(2 * cols, 5 * cols)));
      expect(quantizedBytes(format, rows, cols)).toBe(q.quants.byteLength + Math.ceil((rows * 3) / 2) * 4);
    }
  });
});
