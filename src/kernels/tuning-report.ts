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

/** The row buckets of the shape keys (autotune.ts), in words. */
const GEMM_BUCKETS: Record<string, string> = { m32: 'M 9–32', m128: 'M 33–128', m512: 'M 129–512', mbig: 'M > 512' };
const ROW_BUCKETS: Record<string, string> = {
  'gemv:m1': 'M = 1',
  'gemv:m8': 'M 2–8',
  'attention_prefill:m32': 'tokens 16–32',
  'attention_prefill:m128': 'tokens 33–128',
  'attention_prefill:m512': 'tokens 129–512',
  'attention_prefill:mbig': 'tokens > 512',
  'attention_decode:m1': '1 token',
  'attention_decode:m8': 'tokens 2–15',
  'mlp_decode:m1': 'M = 1',
  'mlp_decode:m8': 'M 2–8',
};
/** decodeContextBucket's classes, in words. */
const CONTEXT_BUCKETS: Record<string, string> = { c256: 'cache ≤ 256', c1024: 'cache 257–1024', c4096: 'cache > 1024' };

/** A shape key's fields after the row bucket, in words. */
function shapeWords(family: string, rows: string, f: string[]): string {
  const num = (x: string | undefined) => x?.replace(/^[a-z]+/, '');
  if (family === 'attention_prefill' || family === 'attention_decode') {
    const [h, kv, d, c] = f;
    const context = c ? `, ${CONTEXT_BUCKETS[c] ?? c}` : '';
    return `${rows}, ${num(h)} heads / ${num(kv)} kv heads, head_dim ${num(d)}${context}`;
  }
  if (family === 'mlp_decode') {
    const [h, i, o, dtype] = f;
    return `${rows}, hidden ${num(h)}, intermediate ${num(i)}, o_proj K ${num(o)}, ${dtype} weights`;
  }
  const [n, k, dtype] = f;
  return `${rows}, N ${num(n)}, K ${num(k)}, ${dtype} weights`;
}
for (const f of ['gemm', 'gemm_dx', 'gemm_dw'])
  for (const [m, words] of Object.entries(GEMM_BUCKETS)) ROW_BUCKETS[`${f}:${m}`] = words;

/** The choices as table rows (the app's Device page), sorted by family then shape. */
export function choiceRows(t: TuningSummary): ChoiceRow[] {
  return Object.entries(t.choices)
    .sort((a, b) => a[0].localeCompare(b[0], 'en', { numeric: true }))
    .map(([key, r]) => {
      const [family, m, ...fields] = key.split(':');
      const rows = ROW_BUCKETS[`${family}:${m}`] ?? m;
      return {
        family,
        shape: shapeWords(family, rows, fields),
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
