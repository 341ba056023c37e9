import { describe, expect, it } from 'vitest';
import { arithmeticChecks, arithmeticErrors, checkedVote } from '../../src/demo/arithmetic';
import { generateProblems } from '../../src/demo/problems';

describe('arithmetic critic', () => {
  it('finds the step whose written result is wrong, with the right result', () => {
    const text = 'Zoe has 8 + 9 = 18 muffins.\nZoe has 18 - 2 = 16 muffins.\n#### 16';
    expect(arithmeticErrors(text)).toEqual([{ expression: '8 + 9 = 18', expected: 17 }]);
    expect(arithmeticChecks(text)).toBe(false);
    expect(arithmeticErrors('Ben has 3 * 4 = 12 eggs.\nBen has 12 - 5 = 8 eggs.')).toEqual([
      { expression: '12 - 5 = 8', expected: 7 },
    ]);
  });

  it('passes every generated reference solution and a solution with no steps', () => {
    for (const p of generateProblems({ seed: 3, count: 200, difficulty: 2, split: 'train' }))
      expect(arithmeticErrors(p.answer), p.answer).toEqual([]);
    expect(arithmeticChecks('#### 12')).toBe(true);
  });
});

describe('checkedVote', () => {
  it('votes among the answers whose arithmetic checks, and falls back to the plain vote', () => {
    const wrong = { completion: 'Zoe has 8 + 9 = 18 muffins.\n#### 18', extracted: '18' };
    const right = { completion: 'Zoe has 8 + 9 = 17 muffins.\n#### 17', extracted: '17' };
    expect(checkedVote([wrong, wrong, right])).toBe('17');
    expect(checkedVote([wrong, wrong, { ...wrong, extracted: '16' }])).toBe('18');
  });
});
