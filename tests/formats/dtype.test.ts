import { describe, expect, it } from 'vitest';
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/formats/dtype';

function f32FromBits(...bits: number[]): Float32Array {
  return new Float32Array(new Uint32Array(bits).buffer);
}

const allU16 = new Uint16Array(65536).map((_, i) => i);

/** Independent reference: nearest finite f16 by search over the value table, ties to the even pattern. */
function referenceF16(v: number, table: Float32Array): number {
  if (Number.isNaN(v)) return 0x7e00;
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a >= 65520) return sign | 0x7c00; // IEEE overflow threshold under round-to-nearest-even
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (table[mid] <= a) lo = mid;
    else hi = mid - 1;
  }
  if (lo === 0x7bff) return sign | lo;
  const below = a - table[lo];
  const above = table[lo + 1] - a;
  const pick = below < above ? lo : above < below ? lo + 1 : lo % 2 === 0 ? lo : lo + 1;
  return sign | pick;
}

describe('bf16', () => {
  it('widens known patterns', () => {
    const out = bf16ToF32(new Uint16Array([0x3f80, 0xc000, 0x7f80, 0xff80, 0x0000, 0x8000, 0x3e20]));
    expect(Array.from(out.slice(0, 4))).toEqual([1, -2, Infinity, -Infinity]);
    expect(Object.is(out[4], 0)).toBe(true);
    expect(Object.is(out[5], -0)).toBe(true);
    expect(out[6]).toBe(0.15625);
    expect(Number.isNaN(bf16ToF32(new Uint16Array([0x7fc0]))[0])).toBe(true);
  });

  it('round-trips every bf16 pattern (NaNs stay NaN)', () => {
    const back = f32ToBf16Bits(bf16ToF32(allU16));
    for (let h = 0; h < 65536; h++) {
      const nanPattern = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
      if (nanPattern) expect((back[h] & 0x7f80) === 0x7f80 && (back[h] & 0x7f) !== 0).toBe(true);
      else if (back[h] !== h) expect.fail(`bf16 0x${h.toString(16)} came back as 0x${back[h].toString(16)}`);
    }
  });

  it('rounds to nearest, ties to even', () => {
    const inputs = new Float32Array([
      1 + 2 ** -8, // exactly halfway between 1 and 1+2^-7: even is 1
      1 + 3 * 2 ** -8, // halfway between 1+2^-7 and 1+2^-6: even is the upper
      1 + 2 ** -8 + 2 ** -20, // just above halfway: up
      -(1 + 2 ** -8 + 2 ** -20),
    ]);
    expect(Array.from(f32ToBf16Bits(inputs))).toEqual([0x3f80, 0x3f82, 0x3f81, 0xbf81]);
  });

  it('keeps infinities, overflows the largest float to infinity, keeps NaN a NaN', () => {
    const out = f32ToBf16Bits(f32FromBits(0x7f800000, 0xff800000, 0x7f7fffff, 0x7f800001, 0xffc00000));
    expect(Array.from(out.slice(0, 3))).toEqual([0x7f80, 0xff80, 0x7f80]);
    // A signalling NaN whose payload sits in the dropped bits must not turn into infinity.
    expect(out[3] & 0x7f).not.toBe(0);
    expect(out[4]).toBe(0xffc0);
  });
});

describe('f16', () => {
  it('widens known patterns', () => {
    const out = f16ToF32(new Uint16Array([0x3c00, 0x0001, 0x03ff, 0x0400, 0x7bff, 0xc000, 0x7c00, 0xfc00, 0x8000]));
    expect(Array.from(out.slice(0, 8))).toEqual([
      1,
      2 ** -24,
      1023 * 2 ** -24,
      2 ** -14,
      65504,
      -2,
      Infinity,
      -Infinity,
    ]);
    expect(Object.is(out[8], -0)).toBe(true);
    expect(Number.isNaN(f16ToF32(new Uint16Array([0x7e00]))[0])).toBe(true);
  });

  it('round-trips every f16 pattern (NaNs stay NaN)', () => {
    const back = f32ToF16Bits(f16ToF32(allU16));
    for (let h = 0; h < 65536; h++) {
      const nanPattern = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (nanPattern) expect((back[h] & 0x7c00) === 0x7c00 && (back[h] & 0x3ff) !== 0).toBe(true);
      else if (back[h] !== h) expect.fail(`f16 0x${h.toString(16)} came back as 0x${back[h].toString(16)}`);
    }
  });

  it('rounds to nearest even at normal, subnormal and overflow boundaries', () => {
    const inputs = new Float32Array([
      1 + 2 ** -11, // halfway: stays 1
      1 + 3 * 2 ** -11, // halfway: goes up to the even pattern
      65519, // below the overflow threshold
      65520, // exactly halfway between 65504 and 2^16: rounds (to even) to infinity
      2 ** -25, // half the smallest subnormal: ties to 0
      2 ** -25 * 1.0000001, // just above: smallest subnormal
      3 * 2 ** -25, // 1.5 subnormal units: ties up to 2
      1023.5 * 2 ** -24, // largest subnormal + half: carries into the smallest normal
      2 ** -26, // far below: zero
      -(2 ** -26), // keeps the sign
      1e9,
    ]);
    expect(Array.from(f32ToF16Bits(inputs))).toEqual([
      0x3c00, 0x3c02, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x0002, 0x0400, 0x0000, 0x8000, 0x7c00,
    ]);
  });

  it('matches a brute-force nearest-value reference on random floats', () => {
    const table = f16ToF32(allU16);
    const bits = new Uint32Array(50_000);
    let state = 12345;
    for (let i = 0; i < bits.length; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      // Concentrate exponents in and around the f16 range so every branch is hit often.
      const exponent = 96 + (state % 48);
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      bits[i] = ((state & 1) << 31) | (exponent << 23) | (state >>> 9);
    }
    const values = new Float32Array(bits.buffer);
    const out = f32ToF16Bits(values);
    for (let i = 0; i < values.length; i++) {
      const want = referenceF16(values[i], table);
      if (out[i] !== want) expect.fail(`${values[i]}: got 0x${out[i].toString(16)}, want 0x${want.toString(16)}`);
    }
  });
});
