import { mulberry32 } from '../../src/util/random';

/** Seeded PRNG for reproducible random test inputs. */
export const rng = mulberry32;

export function randn(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12);
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r()) * scale;
  }
  return out;
}

/** max |a - b| / max |b|: the error relative to the reference `b`'s largest magnitude (Infinity on a length mismatch). */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 1e-12;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  if (a.length !== b.length) return Infinity;
  return num / den;
}
