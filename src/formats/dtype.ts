/**
 * Conversions between float32 and the 16-bit float formats checkpoints are stored in.
 * All conversions are bit-exact: f16/bf16 → f32 is lossless, f32 → f16/bf16 rounds to nearest,
 * ties to even (what PyTorch's `.half()` / `.bfloat16()` do), and keeps inf/NaN/signed zero.
 */

/** Reinterprets a Float32Array's storage as raw u32 bit patterns (no copy). */
function bitsOf(f: Float32Array): Uint32Array {
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}

/** bfloat16 is the top half of a float32, so widening is a 16-bit shift. */
export function bf16ToF32(u16: Uint16Array): Float32Array {
  const out = new Float32Array(u16.length);
  const outBits = bitsOf(out);
  for (let i = 0; i < u16.length; i++) outBits[i] = u16[i] << 16;
  return out;
}

let f16Table: Float32Array | null = null;

/** Value of every f16 bit pattern; 256 KiB, built once, makes widening a table lookup. */
function f16ToF32Table(): Float32Array {
  if (f16Table) return f16Table;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    let value: number;
    if (exponent === 0)
      value = mantissa * 2 ** -24; // zero or subnormal
    else if (exponent === 0x1f) value = mantissa ? NaN : Infinity;
    else value = (1 + mantissa / 1024) * 2 ** (exponent - 15);
    table[h] = sign * value;
  }
  f16Table = table;
  return table;
}

export function f16ToF32(u16: Uint16Array): Float32Array {
  const table = f16ToF32Table();
  const out = new Float32Array(u16.length);
  for (let i = 0; i < u16.length; i++) out[i] = table[u16[i]];
  return out;
}

/** One float32 bit pattern → f16 bit pattern, round-to-nearest-even. */
export function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) {
    // Infinity stays infinity; NaN stays a (quiet) NaN even if its payload lives in the dropped bits.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7c00 | 0x200 | (mantissa >>> 13);
  }
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00; // too large: overflows to infinity
  if (halfExponent <= 0) {
    // Result is an f16 subnormal (or zero): value = m * 2^-24 with the implicit bit made explicit.
    if (halfExponent < -10) return sign; // below half the smallest subnormal: rounds to ±0
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const halfway = 1 << (shift - 1);
    const remainder = mantissa & ((1 << shift) - 1);
    let half = mantissa >>> shift;
    if (remainder > halfway || (remainder === halfway && half & 1)) half++; // may carry into the smallest normal: still correct
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && half & 1)) half++; // a carry into the exponent is correct, up to infinity
  return sign | half;
}

export function f32ToF16Bits(f: Float32Array): Uint16Array {
  const bits = bitsOf(f);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/** One float32 bit pattern → bf16 bit pattern, round-to-nearest-even. */
export function f32BitsToBf16Bits(x: number): number {
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
    // NaN: truncating could clear every mantissa bit and turn it into infinity, so force the quiet bit.
    return ((x >>> 16) | 0x40) & 0xffff;
  }
  // Adding 0x7fff (+1 when the kept lsb is odd) carries into bit 16 exactly when rounding up is due.
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f32ToBf16Bits(f: Float32Array): Uint16Array {
  const bits = bitsOf(f);
  const out = new Uint16Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = f32BitsToBf16Bits(bits[i]);
  return out;
}
