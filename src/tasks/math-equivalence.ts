/**
 * Mathematical equivalence of two normalised MATH answers through a computer-algebra system:
 * @cortex-js/compute-engine (runs in the browser and in Node) parses both LaTeX strings and
 * decides `isEqual`; when it cannot decide (symbolic expressions such as x^2+2x+1 vs (x+1)^2), the
 * two are evaluated at a few fixed points of their free variables. Only the LaTeX normalisation
 * before this (answers.ts `normalizeMath`) is written by hand; the algebra is the library's.
 *
 * Used the way AgentArk's eval (its `grader.py`, after Hendrycks' MATH and Qwen's math evaluation)
 * uses sympy: string match first, then numeric, then symbolic equality.
 */
import { ComputeEngine } from '@cortex-js/compute-engine';

let engine: ComputeEngine | null = null;
const ce = () => (engine ??= new ComputeEngine());

type Boxed = ReturnType<ComputeEngine['parse']>;

/** Heads whose equality is structural (element-wise in order), not numeric. */
const STRUCTURAL = new Set(['Tuple', 'List', 'Set', 'Interval', 'Pair', 'Triple', 'Sequence', 'Delimiter']);

function head(e: Boxed): string | null {
  const j = e.json as unknown;
  return Array.isArray(j) && typeof j[0] === 'string' ? j[0] : null;
}

function hasError(j: unknown): boolean {
  if (Array.isArray(j)) return j[0] === 'Error' || j.some(hasError);
  return false;
}

/** A real value of `e` with its free variables set to `values`; null when not a finite real. */
function valueAt(e: Boxed, values: Record<string, number>): number | null {
  try {
    const v = e.subs(values).N();
    const re = v.re;
    const im = v.im;
    if (typeof re !== 'number' || !Number.isFinite(re)) return null;
    if (typeof im === 'number' && Math.abs(im) > 1e-9 * Math.max(1, Math.abs(re))) return null;
    return re;
  } catch {
    return null;
  }
}

const POINTS = [0.7317, 1.3791, -0.5123, 2.2461];

/**
 * Whether two LaTeX answers are mathematically equal. False when either does not parse, when
 * the CAS says they differ, or when a numeric check at fixed points disagrees. Tuples, sets and
 * intervals compare element-wise with their brackets (the caller splits those before).
 */
export function casEqual(a: string, b: string): boolean {
  let x: Boxed;
  let y: Boxed;
  try {
    x = ce().parse(a);
    y = ce().parse(b);
  } catch {
    return false;
  }
  if (!x.isValid || !y.isValid || hasError(x.json) || hasError(y.json)) return false;
  const hx = head(x);
  const hy = head(y);
  if ((hx && STRUCTURAL.has(hx)) || (hy && STRUCTURAL.has(hy))) return hx === hy && x.isSame(y);
  if (hx === 'Equal' || hy === 'Equal') return x.isSame(y);
  let eq: boolean | undefined;
  try {
    eq = x.isEqual(y);
  } catch {
    eq = undefined;
  }
  if (eq !== undefined) return eq;
  const vars = [...new Set([...x.unknowns, ...y.unknowns])];
  if (!vars.length) return false;
  for (const [k, p] of POINTS.entries()) {
    const values = Object.fromEntries(vars.map((v, i) => [v, p + 0.173 * i * (k + 1)]));
    const vx = valueAt(x, values);
    const vy = valueAt(y, values);
    if (vx === null || vy === null) return false;
    if (Math.abs(vx - vy) > 1e-8 * Math.max(1, Math.abs(vx), Math.abs(vy))) return false;
  }
  return true;
}
