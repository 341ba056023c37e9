/**
 * Rendering and checking of `EvalReport`s (harness.ts): a Markdown summary (`toMarkdown`), the
 * distillation comparison (`debateGap`: how much of the debate's lead over the single agent each
 * student recovers, question by question) and a structural check for reports read back from JSON
 * (`parseEvalReport`, used by the web page).
 */
import { EVAL_SCHEMA, pairedComparisons, type EvalReport, type RobustnessEntry, type SystemReport } from './harness';
import { signTest, wilsonInterval } from './stats';

export { signTest } from './stats';

const pct = (x: number | null | undefined) => (x == null || !Number.isFinite(x) ? '—' : `${(100 * x).toFixed(1)}%`);
const signedPts = (x: number | null | undefined) =>
  x == null || !Number.isFinite(x) ? '—' : `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(1)}`;
const num = (x: number, digits = 1) => (Number.isInteger(x) ? String(x) : x.toFixed(digits));
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function robust(e: RobustnessEntry | null | undefined): string {
  if (!e) return '—';
  return `${pct(e.accuracy)} (${signedPts(e.delta)}, n=${e.n})`;
}

/** "[lo–hi]" in percent, one decimal. */
function interval(ci: readonly [number, number]): string {
  return `[${(100 * ci[0]).toFixed(1)}–${(100 * ci[1]).toFixed(1)}]`;
}

function accuracyCell(correct: number, n: number, ci?: readonly [number, number]): string {
  return `${pct(n ? correct / n : null)} (${correct}/${n}) ${interval(ci ?? wilsonInterval(correct, n))}`;
}

function row(s: SystemReport): string[] {
  const sc = s.selfCorrection;
  const pq = s.cost.perQuestion;
  return [
    cell(s.name),
    s.kind,
    accuracyCell(s.correct, s.n, s.ci95),
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
    'Accuracy [95% CI]',
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
  const decoding = !st.decodings?.length
    ? ` · temperature ${st.temperature}`
    : ` · ${st.decodings.join(' + ')}${st.decodings.includes('sampled') ? ` (sampled at temperature ${st.temperature || 'of each system'})` : ''}`;
  lines.push(
    `${report.questions} questions · max tokens ${st.maxTokens}${decoding}` +
      `${st.seed !== null ? ` · seed ${st.seed}` : ''} · ${report.createdAt} · schema ${report.schema}`,
  );
  lines.push('');
  lines.push(`| ${head.join(' | ')} |`);
  lines.push(`| ${head.map((_, i) => (i < 2 ? '---' : '---:')).join(' | ')} |`);
  for (const s of report.systems) lines.push(`| ${row(s).join(' | ')} |`);
  lines.push('');
  if (report.sets && report.sets.length > 1) {
    const sets = report.sets;
    lines.push('## Accuracy per task [95% CI]');
    lines.push('');
    lines.push(`| System | ${sets.map((x) => `${cell(x.name)} (${x.task}, n=${x.questions})`).join(' | ')} |`);
    lines.push(`| --- | ${sets.map(() => '---:').join(' | ')} |`);
    for (const s of report.systems) {
      lines.push(
        `| ${cell(s.name)} | ${sets
          .map((x) => {
            const a = s.bySet?.[x.name];
            return a ? accuracyCell(a.correct, a.n, a.ci95) : '—';
          })
          .join(' | ')} |`,
      );
    }
    lines.push('');
  }
  const comparisons = report.comparisons ?? pairedComparisons(report.systems);
  if (comparisons.length) {
    lines.push('## Paired comparison with the single agent');
    lines.push('');
    lines.push('| System | Against | Δ (pts) | Won / lost | Sign test p |');
    lines.push('| --- | --- | ---: | ---: | ---: |');
    for (const c of comparisons)
      lines.push(
        `| ${cell(c.system)} | ${cell(c.baseline)} | ${signedPts(c.delta)} | ${c.wins} / ${c.losses} | ${c.pValue.toPrecision(2)} |`,
      );
    lines.push('');
  }
  const notes = [
    'Accuracy: each question answered once (a single call, a majority vote over samples, or a whole debate); 95% Wilson interval in brackets.',
    'Paired comparison: on the same questions, won = right where the single agent of the same decoding is wrong, ' +
      'lost = the reverse; two-sided exact sign test.',
    'Self-correction: attempt 2 answers a follow-up "Review your answer and fix it if it is wrong" turn; ' +
      'wrong→right and right→wrong are fractions of all questions (Δ = wrong→right − right→wrong); ' +
      '"—" for the debate and self-consistency.',
  ];
  if (report.perturbations) {
    const p = report.perturbations;
    notes.push(
      `Robustness: accuracy on perturbed questions, Δ against the same questions unperturbed. ` +
        `Distractor: an irrelevant sentence added (${p.distractor} questions). ` +
        `Renamed: person names changed (${p.rename.namesChanged}), ` +
        `numbers scaled with the answer recomputed (${p.rename.numbersScaled}); ${p.rename.changed} questions changed.`,
    );
  }
  for (const s of report.systems) {
    if (s.roundAccuracy?.length)
      notes.push(
        `${cell(s.name)}: agents' answers right in ${s.roundAccuracy.map((a, k) => `round ${k + 1} ${pct(a)}`).join(', ')} ` +
          '(round 1: one independent sample per agent and question).',
      );
  }
  const f1 = report.systems.filter((s) => s.f1 !== undefined);
  if (f1.length)
    notes.push(
      `Short-answer QA: accuracy is SQuAD exact match; mean SQuAD token F1 — ${f1.map((s) => `${cell(s.name)} ${pct(s.f1)}`).join(', ')}.`,
    );
  notes.push("Cost: per question, for answering it once; tokens from the engines' usage.");
  const errs = report.systems.filter((s) => s.errors > 0);
  if (errs.length)
    notes.push(`Failed calls (counted wrong): ${errs.map((s) => `${cell(s.name)} ${s.errors}`).join(', ')}.`);
  for (const n of notes) lines.push(`- ${n}`);
  lines.push('');
  return lines.join('\n');
}

/** One student against the baseline single agent and the debate teacher. */
export interface GapRow {
  name: string;
  accuracy: number;
  /** Accuracy minus the baseline's (fraction). */
  delta: number;
  /** Questions the student gets right and the baseline wrong, and the reverse. */
  wins: number;
  losses: number;
  /** Two-sided exact sign test on wins vs losses: how likely a difference this big is by chance. */
  pValue: number;
  /** delta / (debate accuracy − baseline accuracy); null when the debate does not lead. */
  gapClosed: number | null;
  callsPerQuestion: number;
  verdict: string;
}

export interface DebateGap {
  baseline: { name: string; accuracy: number; callsPerQuestion: number };
  /** `roundAccuracy`: the debate's agents' accuracy per round, when the report has it. */
  teacher: {
    name: string;
    accuracy: number;
    callsPerQuestion: number;
    wins: number;
    losses: number;
    pValue: number;
    roundAccuracy?: number[];
  };
  /** Debate accuracy minus baseline accuracy. */
  gap: number;
  students: GapRow[];
}

function pairedCounts(a: SystemReport, b: SystemReport): { wins: number; losses: number } {
  const byId = new Map(b.questions.map((q) => [q.id, q.correct]));
  let wins = 0;
  let losses = 0;
  for (const q of a.questions) {
    const other = byId.get(q.id);
    if (other === undefined) continue;
    if (q.correct && !other) wins++;
    if (!q.correct && other) losses++;
  }
  return { wins, losses };
}

/**
 * The AgentArk comparison: the debate's lead over the single agent, and for every other system
 * (a distilled student) its change against the single agent, question by question, and the share
 * of the debate's lead it recovers — with a plain verdict, so a strategy that does not help says so.
 * `studentNames` limits the students to those systems (other rows, e.g. a greedy reference, stay
 * out of the comparison).
 */
export function debateGap(
  report: EvalReport,
  baselineName: string,
  teacherName: string,
  studentNames?: readonly string[],
): DebateGap {
  const find = (name: string) => {
    const s = report.systems.find((x) => x.name === name);
    if (!s)
      throw new Error(
        `the report has no system named '${name}' (it has ${report.systems.map((x) => `'${x.name}'`).join(', ')})`,
      );
    return s;
  };
  const base = find(baselineName);
  const teacher = find(teacherName);
  const gap = teacher.accuracy - base.accuracy;
  const t = pairedCounts(teacher, base);
  const students = (
    studentNames ? studentNames.map(find) : report.systems.filter((s) => s !== base && s !== teacher)
  ).map((s): GapRow => {
    const { wins, losses } = pairedCounts(s, base);
    const delta = s.accuracy - base.accuracy;
    const pValue = signTest(wins, losses);
    const gapClosed = gap > 0 ? delta / gap : null;
    let verdict: string;
    if (delta < 0) verdict = 'hurts: below the single agent';
    else if (delta === 0) verdict = 'does not help: same accuracy as the single agent';
    else if (gapClosed === null) verdict = 'helps, but the debate has no lead to close';
    else
      verdict = `helps: recovers ${(100 * gapClosed).toFixed(0)}% of the debate's lead${pValue >= 0.05 ? ' (not significant at this size)' : ''}`;
    return {
      name: s.name,
      accuracy: s.accuracy,
      delta,
      wins,
      losses,
      pValue,
      gapClosed,
      callsPerQuestion: s.cost.perQuestion.calls,
      verdict,
    };
  });
  return {
    baseline: { name: base.name, accuracy: base.accuracy, callsPerQuestion: base.cost.perQuestion.calls },
    teacher: {
      name: teacher.name,
      accuracy: teacher.accuracy,
      callsPerQuestion: teacher.cost.perQuestion.calls,
      ...t,
      pValue: signTest(t.wins, t.losses),
      ...(teacher.roundAccuracy ? { roundAccuracy: teacher.roundAccuracy } : {}),
    },
    gap,
    students,
  };
}

/** The comparison as a Markdown section (the demo appends it to its report). */
export function debateGapMarkdown(g: DebateGap): string {
  const lines = ["## Distillation: how much of the debate's lead each student recovers", ''];
  lines.push(
    `The debate (${cell(g.teacher.name)}, ${num(g.teacher.callsPerQuestion)} calls/q) ` +
      `scores ${pct(g.teacher.accuracy)} against ${pct(g.baseline.accuracy)} for the single agent ` +
      `(${cell(g.baseline.name)}, ${num(g.baseline.callsPerQuestion)} call/q): a lead of ${signedPts(g.gap)} pts ` +
      `(right on ${g.teacher.wins} questions the single agent misses, wrong on ${g.teacher.losses} it gets; sign test p = ${g.teacher.pValue.toPrecision(2)}).`,
  );
  const r1 = g.teacher.roundAccuracy?.[0];
  if (r1 !== undefined)
    lines[lines.length - 1] +=
      ` Its round-1 agents — each one independent sample of the same model on the same questions — are right ${pct(r1)} of the time.`;
  lines.push('');
  lines.push(
    "| Student | Accuracy | vs single (pts) | Won / lost vs single | Sign test p | Share of the debate's lead | Calls/q | Verdict |",
  );
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const s of g.students) {
    lines.push(
      `| ${cell(s.name)} | ${pct(s.accuracy)} | ${signedPts(s.delta)} | ${s.wins} / ${s.losses} | ` +
        `${s.pValue.toPrecision(2)} | ${s.gapClosed === null ? '—' : pct(s.gapClosed)} | ${num(s.callsPerQuestion)} | ${cell(s.verdict)} |`,
    );
  }
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
    if (s.kind !== 'single' && s.kind !== 'debate' && s.kind !== 'self-consistency')
      fail(`systems[${i}].kind must be single, debate or self-consistency`);
    for (const k of ['n', 'correct', 'accuracy', 'errors'])
      if (typeof s[k] !== 'number') fail(`systems[${i}].${k} must be a number`);
    const c = s.cost as Record<string, unknown> | undefined;
    if (!c || typeof c.calls !== 'number' || typeof c.perQuestion !== 'object') fail(`systems[${i}].cost is malformed`);
  });
  return r as unknown as EvalReport;
}
