/**
 * Rendering and checking of `EvalReport`s (harness.ts): a Markdown summary (`toMarkdown`) and a
 * structural check for reports read back from JSON (`parseEvalReport`, used by the web page).
 */
import { EVAL_SCHEMA, type EvalReport, type RobustnessEntry, type SystemReport } from './harness';

const pct = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(1)}%`);
const signedPts = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`);
const num = (x: number, digits = 1) => (Number.isInteger(x) ? String(x) : x.toFixed(digits));
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function robust(e: RobustnessEntry | null | undefined): string {
  if (!e) return '—';
  return `${pct(e.accuracy)} (${signedPts(e.delta)}, n=${e.n})`;
}

function row(s: SystemReport): string[] {
  const sc = s.selfCorrection;
  const pq = s.cost.perQuestion;
  return [
    cell(s.name),
    s.kind,
    `${pct(s.accuracy)} (${s.correct}/${s.n})`,
    sc ? `${pct(sc.attempt1)} → ${pct(sc.attempt2)}` : '—',
    sc ? signedPts(sc.delta) : '—',
    sc ? pct(sc.wrongToRight) : '—',
    sc ? pct(sc.rightToWrong) : '—',
    robust(s.robustness?.distractor),
    robust(s.robustness?.rename),
    num(pq.calls),
    num(pq.promptTokens),
    num(pq.completionTokens),
    (pq.wallMs / 1000).toFixed(2),
  ];
}

/** A Markdown report: a header, one table row per system, and notes on the columns. */
export function toMarkdown(report: EvalReport): string {
  const head = [
    'System',
    'Kind',
    'Accuracy',
    'Self-correction (1 → 2)',
    'Δ (pts)',
    'Wrong→right',
    'Right→wrong',
    'Distractor (Δ pts)',
    'Renamed (Δ pts)',
    'Calls/q',
    'Prompt tok/q',
    'Completion tok/q',
    'Wall s/q',
  ];
  const lines: string[] = [];
  lines.push(`# Evaluation: ${report.task}${report.dataset ? ` — ${cell(report.dataset)}` : ''}`);
  lines.push('');
  const st = report.settings;
  lines.push(
    `${report.questions} questions · max tokens ${st.maxTokens} · temperature ${st.temperature}` +
      `${st.seed !== null ? ` · seed ${st.seed}` : ''} · ${report.createdAt} · schema ${report.schema}`,
  );
  lines.push('');
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`| ${head.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`);
  for (const s of report.systems) lines.push(`| ${row(s).join(' | ')} |`);
  lines.push('');
  const notes = [
    'Accuracy: each question answered once (a single call, or a whole debate).',
    'Self-correction: attempt 2 answers a follow-up "Review your answer and fix it if it is wrong" turn; wrong→right and right→wrong are fractions of all questions (Δ = wrong→right − right→wrong); "—" for the debate.',
  ];
  if (report.perturbations) {
    const p = report.perturbations;
    notes.push(
      `Robustness: accuracy on perturbed questions, Δ against the same questions unperturbed. Distractor: an irrelevant sentence added (${p.distractor} questions). ` +
        `Renamed: person names changed (${p.rename.namesChanged}), numbers scaled with the answer recomputed (${p.rename.numbersScaled}); ${p.rename.changed} questions changed.`,
    );
  }
  notes.push('Cost: per question, for answering it once; tokens from the engines\' usage.');
  const errs = report.systems.filter((s) => s.errors > 0);
  if (errs.length) notes.push(`Failed calls (counted wrong): ${errs.map((s) => `${cell(s.name)} ${s.errors}`).join(', ')}.`);
  for (const n of notes) lines.push(`- ${n}`);
  lines.push('');
  return lines.join('\n');
}

/** Parses and checks a report read back from JSON (throws naming the first problem). */
export function parseEvalReport(json: string | unknown): EvalReport {
  const r = (typeof json === 'string' ? JSON.parse(json) : json) as Record<string, unknown>;
  const fail = (msg: string): never => {
    throw new Error(`not an eval report: ${msg}`);
  };
  if (typeof r !== 'object' || r === null) fail('not an object');
  if (r.schema !== EVAL_SCHEMA) fail(`schema ${JSON.stringify(r.schema)} (expected "${EVAL_SCHEMA}")`);
  if (typeof r.questions !== 'number') fail('questions must be a number');
  if (!Array.isArray(r.systems)) fail('systems must be an array');
  (r.systems as Record<string, unknown>[]).forEach((s, i) => {
    if (typeof s?.name !== 'string') fail(`systems[${i}].name must be a string`);
    if (s.kind !== 'single' && s.kind !== 'debate') fail(`systems[${i}].kind must be single or debate`);
    for (const k of ['n', 'correct', 'accuracy', 'errors']) if (typeof s[k] !== 'number') fail(`systems[${i}].${k} must be a number`);
    const c = s.cost as Record<string, unknown> | undefined;
    if (!c || typeof c.calls !== 'number' || typeof c.perQuestion !== 'object') fail(`systems[${i}].cost is malformed`);
  });
  return r as unknown as EvalReport;
}
