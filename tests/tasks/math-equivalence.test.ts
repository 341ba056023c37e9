/**
 * MATH grading: mathematically equal answers are equal. The references are answers of MATH /
 * MATH-500 test problems as the dataset writes them (the last \boxed{} of the solution); the
 * candidates are how a model might write the same answer — or a wrong one.
 */
import { describe, expect, it } from 'vitest';
import { answersEqual, extractAnswer, grade, referenceAnswer } from '../../src/tasks/answers';
import { casEqual } from '../../src/tasks/math-equivalence';

// [reference as in MATH, candidate, equal?]
const TABLE: [string, string, boolean][] = [
  // Fractions, decimals, slashes, \dfrac / \tfrac
  ['\\frac{14}{3}', '14/3', true],
  ['\\frac{14}{3}', '\\dfrac{14}{3}', true],
  ['\\frac{1}{2}', '0.5', true],
  ['\\frac{1}{2}', '\\tfrac12', true],
  ['\\frac{243}{625}', '0.3888', true],
  ['-\\frac{1}{3}', '\\frac{-1}{3}', true],
  ['-\\frac{1}{3}', '-0.33', false],
  ['\\frac{3}{56}', '\\frac{3}{65}', false],
  ['\\frac{7}{2}', '3.5', true],
  ['\\frac{1}{8}', '0.125', true],
  ['\\frac{5}{9}', '\\frac{10}{18}', true],
  ['\\frac{2}{3}', '0.67', false],
  // Radicals
  ['3\\sqrt{13}', '\\sqrt{117}', true],
  ['\\frac{\\sqrt{2}}{2}', '\\sqrt{2}/2', true],
  ['\\frac{\\sqrt{2}}{2}', '\\frac{1}{\\sqrt{2}}', true],
  ['\\frac{\\sqrt{3}}{3}', '\\frac{1}{\\sqrt3}', true],
  ['2\\sqrt{2}', '\\sqrt{8}', true],
  ['2\\sqrt{2}', '2\\sqrt{3}', false],
  ['\\sqrt{51}', '\\sqrt{52}', false],
  ['4\\sqrt{3}', '\\sqrt{48}', true],
  ['\\frac{5\\sqrt{2}}{2}', '\\frac{5}{\\sqrt{2}}', true],
  ['6 - 5i', '6-5i', true],
  ['\\sqrt[3]{2}', '2^{1/3}', true],
  // Pi and expressions
  ['\\frac{\\pi}{2}', '\\pi/2', true],
  ['\\frac{3\\pi}{4}', '0.75\\pi', true],
  ['\\frac{\\pi}{3}', '\\frac{\\pi}{6}', false],
  ['9\\pi', '9 \\pi', true],
  ['48\\pi', '48\\pi + 1', false],
  ['p - q', '-q + p', true],
  ['p - q', 'q - p', false],
  ['x^2+7x+10', '(x+2)(x+5)', true],
  ['x^2+7x+10', '(x+2)(x+6)', false],
  ['2x^2 - 4x + 2', '2(x-1)^2', true],
  ['\\frac{x+2}{x-1}', '1 + \\frac{3}{x-1}', true],
  ['4x^3 - 12x^2', '4x^2(x-3)', true],
  // Assignments, units, degrees, percent, money, text
  ['3', 'x = 3', true],
  ['-2', 'k=-2', true],
  ['90^\\circ', '90', true],
  ['30^\\circ', '30', true],
  ['75^\\circ', '105^\\circ', false],
  ['12\\text{ cm}', '12', true],
  ['4\\text{ inches}', '4', true],
  ['10\\%', '10', true],
  ['\\$18.90', '18.9', true],
  ['\\$32', '32.00', true],
  ['\\text{Evelyn}', 'Evelyn', true],
  ['\\text{Evelyn}', 'Joe', false],
  ['\\text{(C)}', 'C', true],
  ['1{,}008', '1008', true],
  ['10,080', '10080', true],
  // Tuples, points, intervals, sets, unions
  ['\\left( 3, \\frac{\\pi}{2} \\right)', '(3, \\pi/2)', true],
  ['\\left( 3, \\frac{\\pi}{2} \\right)', '(3, \\pi)', false],
  ['(6,31,-1)', '(6, 31, -1)', true],
  ['(1,-2)', '(-2,1)', false],
  ['[-2,7]', '\\left[-2, 7\\right]', true],
  ['[-2,7]', '(-2,7)', false],
  ['(-\\infty,-1) \\cup (1,\\infty)', '(-\\infty, -1)\\cup(1, \\infty)', true],
  ['(-\\infty,-1) \\cup (1,\\infty)', '(-\\infty, -1]\\cup[1, \\infty)', false],
  ['\\left(-\\frac{1}{2}, \\frac{3}{2}\\right)', '(-0.5, 1.5)', true],
  ['\\{1,2\\}', '\\{1, 2\\}', true],
  ['1,-2', '1, -2', true],
  // Integers and big numbers (AIME / AMC style)
  ['42', '42.0', true],
  ['27', '027', true],
  ['204', '240', false],
  ['\\binom{10}{3}', '120', true],
  ['\\dbinom{8}{4}', '70', true],
  ['1.2\\times 10^{3}', '1200', true],
  ['2^{10}', '1024', true],
  ['2^{10}', '1000', false],
  ['0', '-0', true],
];

describe('MATH equivalence table', () => {
  it(`has at least 60 pairs (${TABLE.length}), both equal and not equal`, () => {
    expect(TABLE.length).toBeGreaterThanOrEqual(60);
    expect(TABLE.filter((r) => r[2]).length).toBeGreaterThan(20);
    expect(TABLE.filter((r) => !r[2]).length).toBeGreaterThan(15);
  });

  for (const [ref, cand, equal] of TABLE) {
    it(`${ref}  ${equal ? '=' : '≠'}  ${cand}`, () => {
      // As a grader sees them: the reference's \boxed{} against a model's boxed answer.
      const r = referenceAnswer('math', `so the answer is $\\boxed{${ref}}$.`);
      const c = extractAnswer('math', `Therefore the final answer is \\boxed{${cand}}.`);
      expect(answersEqual('math', r, c)).toBe(equal);
      expect(answersEqual('math', c, r)).toBe(equal);
    });
  }

  it('grades a whole MATH solution against a model answer stated without a box', () => {
    const solution = 'The distance is $\\sqrt{(4-1)^2 + (6-2)^2} = \\sqrt{25} = \\boxed{5}$.';
    expect(grade('math', 'The final answer is $5.0$.', solution).correct).toBe(true);
    expect(grade('math', 'The answer is: \\frac{10}{2}', solution).correct).toBe(true);
    expect(grade('math', 'The answer is: 6', solution).correct).toBe(false);
  });

  it('the CAS check itself: symbolic identity by evaluation, unparsable input is not equal', () => {
    expect(casEqual('(a+b)^2', 'a^2+2ab+b^2')).toBe(true);
    expect(casEqual('\\sin^2 x + \\cos^2 x', '1')).toBe(true);
    expect(casEqual('\\frac{1}{3}', '0.333')).toBe(false);
    expect(casEqual('\\unknownmacro{3}', '3')).toBe(false);
  });
});
