import { describe, expect, it } from 'vitest';
import { answersEqual, extractAnswer, grade, lastBoxed, normalizeMath, referenceAnswer } from '../../src/tasks/answers';

describe('GSM8K extraction', () => {
  const cases: [string, string, string | null][] = [
    ['#### marker', 'She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18', '18'],
    ['#### beats a later number', 'So 18.\n#### 18\nThat is 3 more than 15', '18'],
    ['"The answer is"', 'Thus she has 7 left. The answer is 12.', '12'],
    ['"The final answer is" with colon and bold', 'The final answer is: **72**', '72'],
    ['"A:" line', 'He has 5 apples.\nA: 5', '5'],
    ['"Answer:" anywhere', 'Final answer: 42 apples', '42'],
    ['markdown bold Answer', '**Answer:** 72', '72'],
    ['\\boxed', 'Adding up gives 3 + 4 = 7, so the total is $\\boxed{7}$.', '7'],
    ['\\boxed with thousands', '\\boxed{1,234}', '1234'],
    ['boxed inside statement', 'The answer is $\\boxed{18}$.', '18'],
    ['last number fallback', 'She buys 5 apples, then 7 more, so 12 apples.', '12'],
    ['fallback ignores calculator annotations', 'She has 16-3-4=<<16-3-4=9>>9 eggs', '9'],
    ['hyphen between numbers is not a minus', 'Count 16-3', '3'],
    ['spaced minus is subtraction, not a sign', 'Then 10 - 5', '5'],
    ['dollar then space', 'Answer: $ 18', '18'],
    ['commas', 'The answer is 1,000,000.', '1000000'],
    ['dollar sign and cents', 'The answer is $1,234.50', '1234.5'],
    ['units after the number', 'A: 15 miles per hour', '15'],
    ['trailing period', 'The answer is 8.', '8'],
    ['negative number', 'A: -5', '-5'],
    ['negative with dollar', 'The answer is -$12.', '-12'],
    ['unicode minus', 'A: −7', '-7'],
    ['decimal', 'The answer is 0.25 dollars', '0.25'],
    ['leading-dot decimal', 'The answer is .5', '0.5'],
    ['trailing zeros', 'A: 18.00', '18'],
    ['terminating fraction becomes a decimal', 'Answer: 3/4', '0.75'],
    ['non-terminating fraction stays reduced', 'Answer: 2/6', '1/3'],
    ['fraction before a full stop', 'The answer is 3/4.', '0.75'],
    ['LaTeX fraction', 'So $\\boxed{\\frac{1}{2}}$ of the pie.', '0.5'],
    ['negative LaTeX fraction', 'The answer is $-\\dfrac{3}{4}$.', '-0.75'],
    ['percent', 'The answer is 50%.', '50'],
    ['exponent', 'The answer is 1e3', '1000'],
    ['equation in the statement: after the last "="', 'The answer is 3 + 4 = 7.', '7'],
    ['words instead of a number fall through', 'The answer is below.\nA: 9', '9'],
    ['no number at all', 'I do not know.', null],
    ['answer statement wins over a later stray number', 'The answer is 12.\nCheck: 3 * 4 = 12, plus 1 is 13.', '12'],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    expect(extractAnswer('gsm8k', text)).toBe(expected);
  });

  it('reference from a GSM8K solution, an "A:" ground truth and a bare number', () => {
    expect(referenceAnswer('gsm8k', 'Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs.\n#### 18')).toBe('18');
    expect(referenceAnswer('gsm8k', 'So 3 * 4 = <<3*4=12>>12.\nA: 1,200')).toBe('1200');
    expect(referenceAnswer('gsm8k', '  42 ')).toBe('42');
    expect(referenceAnswer('gsm8k', '')).toBeNull();
  });

  it('numeric equivalence', () => {
    expect(answersEqual('gsm8k', '1,000', '1000')).toBe(true);
    expect(answersEqual('gsm8k', '1000.0', '1000')).toBe(true);
    expect(answersEqual('gsm8k', '1e3', '1000')).toBe(true);
    expect(answersEqual('gsm8k', '0.75', '3/4')).toBe(true);
    expect(answersEqual('gsm8k', '$5', '5')).toBe(true);
    expect(answersEqual('gsm8k', '50%', '50')).toBe(true);
    expect(answersEqual('gsm8k', '-5', '5')).toBe(false);
    expect(answersEqual('gsm8k', '1/3', '0.33')).toBe(false);
    expect(answersEqual('gsm8k', null, '5')).toBe(false);
    expect(answersEqual('gsm8k', null, null)).toBe(false);
  });

  it('grade', () => {
    expect(grade('gsm8k', 'So it costs $18.00.\nThe answer is 18.', 'blah\n#### 18')).toEqual({
      extracted: '18',
      reference: '18',
      correct: true,
    });
    expect(grade('gsm8k', 'A: 17', '#### 18').correct).toBe(false);
    expect(grade('gsm8k', 'no idea', '#### 18')).toEqual({ extracted: null, reference: '18', correct: false });
  });
});

describe('MATH extraction', () => {
  it('lastBoxed matches nested braces and skips unterminated boxes', () => {
    expect(lastBoxed('\\boxed{\\frac{a+b}{\\sqrt{2}}} tail')).toBe('\\frac{a+b}{\\sqrt{2}}');
    expect(lastBoxed('first \\boxed{1} then \\boxed{2}')).toBe('2');
    expect(lastBoxed('\\boxed{3} then truncated \\boxed{\\frac{1}{')).toBe('3');
    expect(lastBoxed('\\fbox{7}')).toBe('7');
    expect(lastBoxed('so $\\boxed 7$')).toBe('7');
    expect(lastBoxed('\\boxed{\\{1,2\\}}')).toBe('\\{1,2\\}');
    expect(lastBoxed('nothing')).toBeNull();
  });

  const cases: [string, string, string | null][] = [
    ['nested braces', 'so $\\boxed{\\frac{\\sqrt{3}}{2}}$.', '\\frac{\\sqrt{3}}{2}'],
    ['\\dfrac', '\\boxed{\\dfrac{1}{2}}', '\\frac{1}{2}'],
    ['\\tfrac', '\\boxed{\\tfrac{1}{2}}', '\\frac{1}{2}'],
    ['\\frac12 shorthand', '\\boxed{\\dfrac12}', '\\frac{1}{2}'],
    ['\\sqrt2 shorthand', '\\boxed{2\\sqrt2}', '2\\sqrt{2}'],
    ['spaces', '\\boxed{ x + 1 }', 'x+1'],
    ['\\left \\right', '\\boxed{\\left( 1, 2 \\right)}', '(1,2)'],
    ['^\\circ', '\\boxed{90^\\circ}', '90'],
    ['^{\\circ}', '\\boxed{90^{\\circ}}', '90'],
    ['\\text units', '\\boxed{5\\text{ cm}}', '5'],
    ['\\text units squared', '\\boxed{12 \\text{ square feet}}', '12'],
    ['\\mbox units', '\\boxed{3\\mbox{ inches}}', '3'],
    ['text-only answer is kept', '\\boxed{\\text{Monday}}', 'Monday'],
    ['\\$', '\\boxed{\\$18.50}', '18.5'],
    ['\\!', '\\boxed{10\\!000}', '10000'],
    ['{,} thousands', '\\boxed{1{,}000}', '1000'],
    ['trailing period', '\\boxed{5.}', '5'],
    ['percent', '\\boxed{50\\%}', '50'],
    ['single variable assignment', '\\boxed{x=5}', '5'],
    ['greek variable assignment', '\\boxed{\\theta = 30^\\circ}', '30'],
    ['a/b', '\\boxed{3/4}', '\\frac{3}{4}'],
    ['last box wins', '\\boxed{1} ... \\boxed{{2}}', '2'],
    [
      'Minerva "final answer is $x$"',
      'Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.',
      '\\frac{3}{4}',
    ],
    ['inline math later in the statement', 'So the answer is then $x = 7$, as required.', '7'],
    ['no box: last number', 'so x equals 12', '12'],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    expect(extractAnswer('math', text)).toBe(expected);
  });

  it('reference from a MATH solution (last box) or a bare answer', () => {
    expect(referenceAnswer('math', 'We get $x = \\boxed{\\dfrac{1}{2}}$ and $\\boxed{\\frac{a+b}{\\sqrt{2}}}$.')).toBe(
      '\\frac{a+b}{\\sqrt{2}}',
    );
    expect(referenceAnswer('math', '\\frac{1}{2}')).toBe('\\frac{1}{2}');
    expect(referenceAnswer('math', '$5$')).toBe('5');
    expect(referenceAnswer('math', '(1, 2)')).toBe('(1,2)');
  });

  it('equivalence: 0.5 = \\frac12 = \\frac{1}{2} = 1/2', () => {
    for (const a of ['0.5', '\\frac12', '\\frac{1}{2}', '\\dfrac{1}{2}', '1/2', '.5', '0.50']) {
      for (const b of ['0.5', '\\frac{1}{2}']) expect(answersEqual('math', a, b), `${a} vs ${b}`).toBe(true);
    }
    expect(answersEqual('math', '-\\frac{1}{2}', '-0.5')).toBe(true);
    expect(answersEqual('math', '\\frac{-1}{2}', '-0.5')).toBe(true);
    expect(answersEqual('math', '(1,\\frac12)', '(1, 0.5)')).toBe(true);
    expect(answersEqual('math', '(1,2)', '[1,2]')).toBe(false);
    expect(answersEqual('math', '\\frac{1}{3}', '0.33')).toBe(false);
    expect(answersEqual('math', '2\\sqrt{2}', '2 \\sqrt 2')).toBe(true);
    expect(answersEqual('math', 'x+1', '1+x')).toBe(true); // symbolic algebra (math-equivalence.ts)
    expect(answersEqual('math', '', '')).toBe(false);
  });

  it('normalizeMath is idempotent', () => {
    for (const s of ['\\dfrac12', '90^\\circ', '5\\text{ cm}', 'x=5', '\\left(1,2\\right)', '1{,}000', '3/4']) {
      const once = normalizeMath(s);
      expect(normalizeMath(once)).toBe(once);
    }
  });

  it('grade', () => {
    expect(grade('math', 'Thus $\\boxed{0.5}$.', 'so the answer is $\\boxed{\\frac{1}{2}}$.').correct).toBe(true);
    expect(grade('math', 'Thus $\\boxed{\\frac{1}{3}}$.', '\\boxed{\\frac{1}{2}}').correct).toBe(false);
  });
});

describe('multiple-choice extraction', () => {
  const cases: [string, string, string | null][] = [
    ['Answer: C', 'Some reasoning.\nAnswer: C', 'C'],
    ['The answer is (C)', 'Thus the answer is (C).', 'C'],
    ['correct answer with bold and text', 'The correct answer is: **B) 42**', 'B'],
    ['Answer: **D**', 'Answer: **D**', 'D'],
    ['lower-case letter in parentheses', 'answer: (c)', 'C'],
    ['\\boxed{C}', 'So $\\boxed{C}$', 'C'],
    ['\\boxed{\\text{(B)}}', '$\\boxed{\\text{(B)}}$', 'B'],
    ['(C) alone', 'I pick (D) here', 'D'],
    ['**C**', 'the choice is **B**', 'B'],
    ['lone letter at end', 'Let me think.\nB is unlikely.\nC', 'C'],
    ['lone letter with punctuation', 'reasoning...\n(E).', 'E'],
    ['"X is correct"', 'Option A is incorrect. Option C is correct.', 'C'],
    ['correct option is', 'Hence the correct option is B.', 'B'],
    ['explicit statement beats stray letters', '(A) fails and (B) fails. Answer: (C)\nNote (D) is close.', 'C'],
    ['explicit statement beats a later stray bold', 'The answer is C.\n**A** is a distractor.', 'C'],
    ['the later of two explicit statements wins', 'The answer is (B). Wait, recheck: the answer is D.', 'D'],
    ['article "a" is not a choice', 'The answer is a bit tricky. Final answer: E', 'E'],
    ['sentence starting with A is not a choice', 'A cat sat on the mat.', null],
    ['restated choice as last line', 'So we want the bigger one.\nC. 42', 'C'],
    ['nothing', 'no idea', null],
  ];
  it.each(cases)('%s', (_name, text, expected) => {
    expect(extractAnswer('mc', text)).toBe(expected);
  });

  it('reference letters and grading', () => {
    expect(referenceAnswer('mc', 'C')).toBe('C');
    expect(referenceAnswer('mc', '(b)')).toBe('B');
    expect(referenceAnswer('mc', 'The answer is D')).toBe('D');
    expect(answersEqual('mc', 'c', 'C')).toBe(true);
    expect(answersEqual('mc', 'A', 'B')).toBe(false);
    expect(grade('mc', 'The answer is (B)', 'B')).toEqual({ extracted: 'B', reference: 'B', correct: true });
  });
});
