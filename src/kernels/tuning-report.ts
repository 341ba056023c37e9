/**
 * The autotuner's choices in words, for the CLI and the app's Device page (types only from
 * autotune.ts, so the page's bundle does not pull in the WGSL sources).
 */
import type { TuningSummary } from './autotune';

export interface ChoiceRow {
  family: string;
  /** The shape class in words: `M 33–128, N 896, K 896, f16 weights`. */
  shape: string;
  choice: string;
  /** Milliseconds per dispatch by candidate ('' when forced or not timed). */
  candidates: string;
  source: 'tuned' | 'cached' | 'forced';
}

/** The row buckets of gemvShapeKey and gemmShapeKey, in words. */
const ROW_BUCKETS: Record<string, string> = {
  'gemv:m1': 'M = 1',
  'gemv:m8': 'M 2–8',
  'gemm:m32': 'M 9–32',
  'gemm:m128': 'M 33–128',
  'gemm:m512': 'M 129–512',
  'gemm:mbig': 'M > 512',
};
for (const f of ['gemm_dx', 'gemm_dw'])
  for (const m of ['m32', 'm128', 'm512', 'mbig']) ROW_BUCKETS[`${f}:${m}`] = ROW_BUCKETS[`gemm:${m}`];

/** The choices as table rows (the app's Device page), sorted by family then shape. */
export function choiceRows(t: TuningSummary): ChoiceRow[] {
  return Object.entries(t.choices)
    .sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true }))
    .map(([key, r]) => {
      const [family, m, n, k, dtype] = key.split(':');
      return {
        family,
        shape: `${ROW_BUCKETS[`${family}:${m}`] ?? m}, N ${n?.slice(1)}, K ${k?.slice(1)}, ${dtype} weights`,
        choice: r.choice,
        candidates: Object.entries(r.ms)
          .map(([v, x]) => `${v} ${x.toFixed(x < 1 ? 3 : 1)} ms`)
          .join(', '),
        source: r.source,
      };
    });
}

/** One line per shape class: `gemm  M 33–128, N 896, K 896, f16 weights: tiled (tuned: register 3.1 ms, tiled 1.2 ms)`. */
export function describeChoices(t: TuningSummary): string[] {
  return choiceRows(t).map(
    (r) => `${r.family}  ${r.shape}: ${r.choice} (${r.source}${r.candidates ? `: ${r.candidates}` : ''})`,
  );
}
