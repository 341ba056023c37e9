/**
 * KaTeX settings for rendering model output, which is untrusted: `maxSize` caps any
 * user-specified size in em (\\rule{2000em}{2000em} would otherwise be a 32,000 px element) and
 * `maxExpand` caps macro expansion (a self-referencing \\def would loop). Kept apart from
 * markdown.ts so it can be checked without a DOM.
 */
export const KATEX_OPTIONS = {
  throwOnError: false,
  nonStandard: true,
  output: 'htmlAndMathml',
  maxSize: 20,
  maxExpand: 200,
  trust: false,
  strict: 'ignore',
} as const;
