/**
 * The statistics of the evaluation report: a confidence interval for an accuracy and a paired
 * test for two systems answering the same questions. Pure functions.
 */

/**
 * Wilson score interval for `k` successes in `n` trials (default 95%: z = 1.96). Unlike the
 * normal approximation it stays inside [0, 1] and is not zero-width at 0% or 100% — the cases a
 * small evaluation hits. [0, 1] when n = 0.
 */
export function wilsonInterval(k: number, n: number, z = 1.959963984540054): [number, number] {
  if (!(n > 0)) return [0, 1];
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // At k = 0 and k = n the bound is exactly 0 / 1; say so instead of 1 − ε.
  return [k <= 0 ? 0 : Math.max(0, centre - half), k >= n ? 1 : Math.min(1, centre + half)];
}

/**
 * Two-sided exact binomial sign test (p = 1/2) for `a` successes against `b` failures: the paired
 * test of two systems on the same questions, where `a` counts questions only the first gets right
 * and `b` those only the second gets right (ties carry no information and are dropped).
 */
export function signTest(a: number, b: number): number {
  const n = a + b;
  if (n === 0) return 1;
  const k = Math.min(a, b);
  let tail = 0;
  let c = 1; // C(n, i)
  for (let i = 0; i <= k; i++) {
    tail += c;
    c = (c * (n - i)) / (i + 1);
  }
  return Math.min(1, (2 * tail) / 2 ** n);
}
