/**
 * The demo's distillation comparison: the debate's lead over the single agent and the share of it
 * each student recovers, question by question, checked against hand-computed values.
 */
import { describe, expect, it } from 'vitest';
import { debateGap, debateGapMarkdown, signTest } from '../../src/eval/report';
import type { EvalReport, SystemReport } from '../../src/eval/harness';

function system(name: string, kind: 'single' | 'debate', right: boolean[], calls: number): SystemReport {
  const correct = right.filter(Boolean).length;
  return {
    name,
    kind,
    n: right.length,
    correct,
    accuracy: correct / right.length,
    questions: right.map((c, i) => ({ id: `q${i}`, correct: c, extracted: null })),
    cost: { perQuestion: { calls } },
  } as unknown as SystemReport;
}

describe('debateGap', () => {
  it('sign test: exact two-sided binomial tails', () => {
    expect(signTest(0, 5)).toBeCloseTo(2 / 32, 12);
    expect(signTest(1, 9)).toBeCloseTo((2 * (1 + 10)) / 1024, 12);
    expect(signTest(9, 1)).toBeCloseTo((2 * (1 + 10)) / 1024, 12);
    expect(signTest(3, 3)).toBe(1);
    expect(signTest(0, 0)).toBe(1);
  });

  it('per-student delta, paired wins/losses, share of the lead and an honest verdict', () => {
    const T = true;
    const F = false;
    //                       q0 q1 q2 q3 q4 q5 q6 q7 q8 q9
    const base = system('single', 'single', [T, F, F, F, F, T, F, F, F, T], 1); // 3/10
    const debate = system('debate', 'debate', [T, T, T, T, F, T, T, F, F, T], 11); // 7/10: +4, wins 4, losses 0
    const good = system('student A', 'single', [T, T, T, F, F, F, F, F, F, T], 1); // 4/10: wins 2 (q1,q2), loses 1 (q5)
    const same = system('student B', 'single', [F, T, F, F, F, T, F, F, F, T], 1); // 3/10: wins 1, loses 1
    const worse = system('student C', 'single', [F, F, F, F, F, T, F, F, F, T], 1); // 2/10
    const report = { systems: [base, debate, good, same, worse] } as unknown as EvalReport;
    const g = debateGap(report, 'single', 'debate');
    expect(g.gap).toBeCloseTo(0.4, 12);
    expect(g.teacher).toMatchObject({ wins: 4, losses: 0, callsPerQuestion: 11 });
    expect(g.teacher.pValue).toBeCloseTo(2 / 16, 12);
    const [a, b, c] = g.students;
    expect(a).toMatchObject({ name: 'student A', wins: 2, losses: 1 });
    expect(a.delta).toBeCloseTo(0.1, 12);
    expect(a.gapClosed).toBeCloseTo(0.25, 12);
    expect(a.verdict).toBe("helps: recovers 25% of the debate's lead (not significant at this size)");
    expect(b.verdict).toMatch(/^does not help/);
    expect(c.verdict).toMatch(/^hurts/);
    const md = debateGapMarkdown(g);
    expect(md).toContain('| student A | 40.0% | +10.0 | 2 / 1 |');
    expect(md).toContain('a lead of +40.0 pts');
    expect(md).not.toContain('round-1 agents');
    // With the debate's per-round agent accuracy, the comparison names its round-1 agents too.
    (debate as { roundAccuracy?: number[] }).roundAccuracy = [0.35, 0.5];
    expect(debateGapMarkdown(debateGap(report, 'single', 'debate'))).toContain(
      'Its round-1 agents — each one independent sample of the same model on the same questions — are right 35.0% of the time.',
    );
    expect(() => debateGap(report, 'single', 'nope')).toThrow(/no system named 'nope'/);
    // Named students only: other rows (a greedy reference, say) stay out of the comparison.
    expect(debateGap(report, 'single', 'debate', ['student C', 'student A']).students.map((s) => s.name)).toEqual([
      'student C',
      'student A',
    ]);
    expect(() => debateGap(report, 'single', 'debate', ['student X'])).toThrow(/no system named 'student X'/);
  });
});
