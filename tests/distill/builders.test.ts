/**
 * R-SFT target selection, DA de-duplication and self-correction, PAD step labels and the text
 * clean-up, on small synthetic debates whose every message is written out here.
 */
import { describe, expect, it } from 'vitest';
import { answersEqual, extractAnswer, referenceAnswer, type Task } from '../../src/tasks/answers';
import {
  cleanReasoning,
  dedupTokens,
  hasReasoning,
  isNearDuplicate,
  jaccard,
  normalizeText,
  toFormat,
  wordNgrams,
  type MessagesRow,
  type PromptCompletionRow,
} from '../../src/distill/common';
import { studentMessages } from '../../src/tasks/prompts';
import { buildDa, critiquePrompt, distinctCorrectPaths, selfCorrections } from '../../src/distill/da';
import {
  buildPad,
  intermediateNumbers,
  labelSteps,
  numberKeys,
  splitSteps,
  stepEvidence,
} from '../../src/distill/pad-labels';
import { buildRsft, selectRsftTarget } from '../../src/distill/rsft';
import type { FinishReason } from '../../src/engine/types';
import {
  TRAJECTORY_SCHEMA,
  parseTrajectoryLine,
  type AgentMessage,
  type TrajectoryRecord,
} from '../../src/teach/trajectory';

type Msg = string | { text: string; finish?: FinishReason };

/** A trajectory record built from the texts of each round's agents (agent i = "agent<i+1>"). */
function makeRecord(opts: {
  id?: string;
  question: string;
  reference: string;
  rounds: Msg[][];
  aggregator?: string | null;
  task?: Task;
}): TrajectoryRecord {
  const task = opts.task ?? 'gsm8k';
  const ref = referenceAnswer(task, opts.reference);
  const graded = (text: string) => {
    const extracted = extractAnswer(task, text);
    return { extracted, correct: answersEqual(task, extracted, ref) };
  };
  const rounds = opts.rounds.map((msgs, ri) => ({
    round: ri + 1,
    messages: msgs.map((m, i): AgentMessage => {
      const text = typeof m === 'string' ? m : m.text;
      return {
        agent: `agent${i + 1}`,
        model: 'm',
        params: { temperature: 0.7, top_p: 1, max_tokens: 256, seed: null },
        prompt: [{ role: 'user', content: opts.question }],
        completion: text,
        usage: { prompt_tokens: 1, completion_tokens: 1 },
        latencyMs: 1,
        ...graded(text),
        finish_reason: typeof m === 'string' ? 'stop' : (m.finish ?? 'stop'),
      };
    }),
  }));
  const last = rounds[rounds.length - 1]!.messages;
  let aggregator: TrajectoryRecord['aggregator'];
  if (opts.aggregator != null) {
    const g = graded(opts.aggregator);
    aggregator = {
      kind: 'llm',
      model: 'm',
      prompt: [{ role: 'user', content: 'judge' }],
      completion: opts.aggregator,
      usage: { prompt_tokens: 1, completion_tokens: 1 },
      ...g,
    };
  } else {
    const first = last.find((m) => m.extracted !== null);
    aggregator = { kind: 'vote', extracted: first?.extracted ?? null, correct: first?.correct ?? false, votes: [] };
  }
  const rec: TrajectoryRecord = {
    schema: TRAJECTORY_SCHEMA,
    id: opts.id ?? 'q1',
    question: opts.question,
    reference: opts.reference,
    task,
    config: { agents: rounds[0]!.messages.length, rounds: rounds.length, aggregator: aggregator.kind },
    rounds,
    aggregator,
    final: { answer: aggregator.extracted, correct: aggregator.correct },
    totals: { calls: 0, promptTokens: 0, completionTokens: 0, wallMs: 0 },
    createdAt: '2025-01-01T00:00:00.000Z',
  };
  parseTrajectoryLine(JSON.stringify(rec), 1); // a valid record
  return rec;
}

const Q = 'Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?';
const REF = 'Tom has 3 * 4 = <<3*4=12>>12 apples.\nAfter eating 2 he has 12 - 2 = <<12-2=10>>10.\n#### 10';

describe('R-SFT target selection', () => {
  it('takes the LLM aggregator output when it is correct', () => {
    const rec = makeRecord({
      question: Q,
      reference: REF,
      rounds: [['12 - 2 = 10\n#### 10', 'It is 9\n#### 9']],
      aggregator: 'Agent 1 is right: 3 * 4 = 12, 12 - 2 = 10.\nThe answer is 10',
    });
    expect(selectRsftTarget(rec)).toEqual({ text: rec.aggregator.completion, from: 'aggregator' });
    const { rows } = buildRsft([rec]);
    expect((rows[0] as MessagesRow).messages[2]!.content).toBe(
      'Agent 1 is right: 3 * 4 = 12, 12 - 2 = 10.\nThe answer is 10\n#### 10',
    );
  });

  it('else the final-round agent agreeing with the final answer, then the shortest; never a truncated one', () => {
    const long =
      'First 3 * 4 = 12 apples in total in all the boxes.\nThen 12 - 2 = 10 apples remain after eating.\n#### 10';
    const short = '3 * 4 = 12, 12 - 2 = 10\n#### 10';
    const rec = makeRecord({
      question: Q,
      reference: REF,
      rounds: [
        ['#### 10', '#### 10', '#### 10'],
        [long, { text: '#### 10', finish: 'length' }, short],
      ],
      aggregator: 'I cannot decide.\n#### 11',
    });
    expect(selectRsftTarget(rec)).toEqual({ text: short, from: 'agent:agent3' });
    // Agreement with the final answer beats length: with a vote whose answer is a different
    // spelling of 10 only agreeing messages are preferred (both agree here), so shortest wins.
    const vote = makeRecord({ question: Q, reference: REF, rounds: [[long, short]] });
    expect(selectRsftTarget(vote)).toMatchObject({ from: 'agent:agent2' });
  });

  it('equal lengths go to the earliest agent; correct answers in other notations count (math)', () => {
    const rec = makeRecord({
      task: 'math',
      question: 'What is 1/2?',
      reference: '\\boxed{\\frac{1}{2}}',
      rounds: [
        [
          'It is one half: \\boxed{0.5}',
          'So, it is: \\boxed{0.5}',
          'X: \\boxed{\\frac{1}{2}}',
          'Hence it is \\boxed{3}',
        ],
      ],
    });
    // agent2 and agent3 are both the shortest correct (22 characters); agent2 comes first.
    expect(rec.rounds[0]!.messages[1]!.completion.length).toBe(rec.rounds[0]!.messages[2]!.completion.length);
    expect(selectRsftTarget(rec)).toMatchObject({ from: 'agent:agent2' });
  });

  it('a bare verdict is no reasoning: a judge that only says "#### 10" gives way to an agent\'s worked answer', () => {
    const worked = '3 * 4 = 12, 12 - 2 = 10\n#### 10';
    const rec = makeRecord({
      question: Q,
      reference: REF,
      rounds: [['#### 10', worked, '  #### 10 ']],
      aggregator: '#### 10',
    });
    expect(selectRsftTarget(rec)).toEqual({ text: worked, from: 'agent:agent2' });
    expect(
      selectRsftTarget(makeRecord({ question: Q, reference: REF, rounds: [['#### 10']], aggregator: '#### 10' })),
    ).toEqual({ skip: 'no-correct-final-reasoning' });
    expect(distinctCorrectPaths(rec).paths.map((p) => p.agent)).toEqual(['agent2']);
    expect(hasReasoning('gsm8k', '#### 10')).toBe(false);
    expect(hasReasoning('gsm8k', 'So 10.\n#### 10')).toBe(true);
    expect(hasReasoning('math', '\\boxed{\\frac{1}{2}}')).toBe(false);
    expect(hasReasoning('math', 'It is one half: \\boxed{0.5}')).toBe(true);
    expect(hasReasoning('mc', 'Answer: B')).toBe(false);
    expect(hasReasoning('mc', 'Only B is prime.\nAnswer: B')).toBe(true);
  });

  it('skips questions without correct final reasoning, even if an earlier round was right', () => {
    const rec = makeRecord({
      question: Q,
      reference: REF,
      rounds: [
        ['#### 10', '#### 9'],
        ['#### 9', '#### 9'],
      ],
      aggregator: '#### 9',
    });
    expect(selectRsftTarget(rec)).toEqual({ skip: 'no-correct-final-reasoning' });
    const { rows, stats } = buildRsft([rec]);
    expect(rows).toHaveLength(0);
    expect(stats.skipped).toEqual({ 'no-correct-final-reasoning': 1 });
  });

  it('student prompt options and the prompt-completion layout', () => {
    const rec = makeRecord({ question: Q, reference: REF, rounds: [['12 - 2 = 10\n#### 10']] });
    const none = buildRsft([rec], { system: null }).rows[0] as MessagesRow;
    expect(none.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
    const custom = buildRsft([rec], { system: 'Be brief.' }).rows[0] as MessagesRow;
    expect(custom.messages[0]).toEqual({ role: 'system', content: 'Be brief.' });
    const pc = buildRsft([rec], { format: 'prompt-completion' }).rows[0] as PromptCompletionRow;
    expect(Object.keys(pc).sort()).toEqual(['completion', 'id', 'prompt', 'source']);
    expect(pc.prompt).toEqual(studentMessages('gsm8k', rec));
    expect(pc.completion).toEqual([{ role: 'assistant', content: '12 - 2 = 10\n#### 10' }]);
  });
});

describe('text clean-up', () => {
  it('removes calculator annotations and canonicalises the answer line without changing the answer', () => {
    expect(cleanReasoning('gsm8k', 'So 3 * 4 = <<3*4=12>>12\nA: 12')).toBe('So 3 * 4 = 12\n#### 12');
    expect(cleanReasoning('gsm8k', 'So it is 1,200 dollars.')).toBe('So it is 1,200 dollars.\n#### 1200');
    expect(cleanReasoning('gsm8k', 'x\n#### 5')).toBe('x\n#### 5');
    expect(cleanReasoning('gsm8k', 'x = <<1+1=2>>2\nA: 2', { stripCalculator: false, answerLine: false })).toBe(
      'x = <<1+1=2>>2\nA: 2',
    );
    expect(cleanReasoning('mc', 'B is right because ...')).toBe('B is right because ...\nAnswer: B');
    expect(cleanReasoning('math', 'So x = \\boxed{7}.')).toBe('So x = \\boxed{7}.');
  });
});

describe('DA de-duplication rules', () => {
  it('normalised text ignores case, whitespace and punctuation but keeps numbers and operators', () => {
    expect(normalizeText('  He has 3*4 = 12 apples!!\n\nSo: 12.')).toBe('he has 3 * 4 = 12 apples so 12');
    expect(normalizeText('1,000 + 2.5')).toBe('1000 + 2.5');
    expect(isNearDuplicate('He has 12 apples.', 'he has   12 APPLES')).toBe(true);
    expect(isNearDuplicate('He has 12 apples.', 'He has 13 apples.')).toBe(false);
    expect(isNearDuplicate('16 - 3 = 13', '16 + 3 = 13')).toBe(false);
    expect(dedupTokens('a <<3*4=12>>12')).toEqual(['a', '12']);
  });

  it('Jaccard over word 3-grams with the threshold', () => {
    const a = 'one two three four five six seven eight nine ten';
    const b = 'one two three four five six seven eight nine eleven'; // 7 of 8 grams shared, 9 in the union
    expect(jaccard(wordNgrams(a), wordNgrams(b))).toBeCloseTo(7 / 9, 12);
    expect(isNearDuplicate(a, b)).toBe(true);
    expect(isNearDuplicate(a, b, { threshold: 0.8 })).toBe(false);
    expect(wordNgrams('just two')).toEqual(new Set(['just two']));
  });

  it('keeps at most K distinct correct paths, in round then agent order', () => {
    const p1 = 'Each box has 4 apples, so 3 boxes have 12. Eating 2 leaves 10.\n#### 10';
    const p1b = 'each box has 4 apples so 3 boxes have 12 eating 2 leaves 10\n#### 10'; // same normalised text
    const p2 = 'Total apples: 3 * 4 = 12. Minus the 2 eaten: 12 - 2 = 10.\n#### 10';
    const p3 = 'Tom starts with twelve apples because three times four is twelve; two fewer is ten.\n#### 10';
    const wrong = 'He has 3 + 4 = 7 apples, minus 2 is 5.\n#### 5';
    const rec = makeRecord({
      question: Q,
      reference: REF,
      rounds: [
        [p1, wrong, p1b],
        [p2, p3, p1],
      ],
    });
    const all = buildDa([rec], { perQuestion: 4, selfCorrection: false });
    expect((all.rows as MessagesRow[]).map((r) => r.messages[2]!.content)).toEqual([p1, p2, p3]);
    expect((all.rows as MessagesRow[]).map((r) => r.id)).toEqual(['q1#da1', 'q1#da2', 'q1#da3']);
    expect(all.stats.skipped).toEqual({ 'duplicate-path': 2 });
    const two = buildDa([rec], { perQuestion: 2, selfCorrection: false });
    expect(two.rows).toHaveLength(2);
    expect(two.stats.skipped).toEqual({ 'duplicate-path': 2, 'over-per-question-limit': 1 });
    expect(() => buildDa([rec], { perQuestion: 0 })).toThrow(/perQuestion/);
  });
});

describe('DA self-correction examples', () => {
  const r1 = [
    'Agent one: 3 * 4 = 12, then 12 - 2 = 10.\n#### 10',
    'Agent two: 3 + 4 = 7 apples, 7 - 2 = 5.\n#### 5',
    'Agent three: 4 * 3 = 12 and 12 - 2 = 10.\n#### 10',
  ];
  const r2 = [
    'Agent one again: 12 - 2 = 10.\n#### 10',
    'I was wrong to add: 3 * 4 = 12, and 12 - 2 = 10.\n#### 10',
    'Agent three again: 10.\n#### 10',
  ];

  it('an agent wrong at round 1 and right at round 2 gives the four-turn conversation', () => {
    const rec = makeRecord({ question: Q, reference: REF, rounds: [r1, r2] });
    const sc = selfCorrections(rec);
    expect(sc).toHaveLength(1);
    const { rows, stats } = buildDa([rec], { perQuestion: 4 });
    const scRows = (rows as PromptCompletionRow[]).filter((r) => r.source === 'da-selfcorrect');
    expect(scRows).toHaveLength(1);
    expect(stats.bySource['da-selfcorrect']).toBe(1);
    // Always prompt-completion: the wrong attempt is in the (untrained) prompt, the fix alone is trained.
    expect(scRows[0]!.completion).toEqual([{ role: 'assistant', content: r2[1] }]);
    expect('messages' in scRows[0]!).toBe(false);
    const row = { id: scRows[0]!.id, messages: [...scRows[0]!.prompt, ...scRows[0]!.completion] };
    expect(row.id).toBe('q1#sc-agent2-r2');
    expect(row.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
    expect(row.messages[1]!.content).toBe(Q);
    expect(row.messages[2]!.content).toBe(r1[1]);
    const critique = row.messages[3]!.content;
    expect(critique).toBe(
      critiquePrompt('gsm8k', [
        { name: 'agent1', answer: r1[0]! },
        { name: 'agent3', answer: r1[2]! },
      ]),
    );
    expect(critique).toMatch(/^Here are other agents' solutions:/);
    expect(critique).toContain(r1[0]);
    expect(critique).toContain(r1[2]);
    expect(critique).not.toContain(r1[1]);
    expect(critique).toMatch(/Review your answer/);
    expect(row.messages[4]!.content).toBe(r2[1]);
    // The fix re-grades correct, the attempt wrong.
    const ref = referenceAnswer('gsm8k', REF);
    expect(answersEqual('gsm8k', extractAnswer('gsm8k', row.messages[4]!.content), ref)).toBe(true);
    expect(answersEqual('gsm8k', extractAnswer('gsm8k', row.messages[2]!.content), ref)).toBe(false);
  });

  it('a late fix quotes what the agent read just before it; right→wrong and wrong→wrong give nothing', () => {
    const rec = makeRecord({
      question: Q,
      reference: REF,
      rounds: [
        ['#### 10', 'first try\n#### 5', '#### 7'],
        ['#### 9', 'second try\n#### 6', '#### 7'],
        ['#### 9', 'third try: 12 - 2 = 10\n#### 10', '#### 8'],
      ],
    });
    const sc = selfCorrections(rec);
    expect(sc.map((s) => [s.agent, s.round])).toEqual([['agent2', 3]]);
    expect(sc[0]!.wrong).toBe('second try\n#### 6');
    expect(sc[0]!.critique).toContain('--- agent1 ---\n#### 9');
    expect(sc[0]!.critique).toContain('--- agent3 ---\n#### 7');
  });

  it('prompt-completion layout keeps the wrong attempt out of the trained completion', () => {
    const rec = makeRecord({ question: Q, reference: REF, rounds: [r1, r2] });
    const rows = buildDa([rec], { format: 'prompt-completion' }).rows as PromptCompletionRow[];
    const sc = rows.find((r) => r.source === 'da-selfcorrect')!;
    expect(sc.prompt.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user']);
    expect(sc.completion).toEqual([{ role: 'assistant', content: r2[1] }]);
    expect(
      toFormat(
        {
          messages: [
            { role: 'user', content: 'q' },
            { role: 'assistant', content: 'a' },
          ],
          id: 'x',
          source: 'da',
        },
        'prompt-completion',
      ),
    ).toEqual({
      prompt: [{ role: 'user', content: 'q' }],
      completion: [{ role: 'assistant', content: 'a' }],
      id: 'x',
      source: 'da',
    });
  });

  it('can be switched off', () => {
    const rec = makeRecord({ question: Q, reference: REF, rounds: [r1, r2] });
    const rows = buildDa([rec], { selfCorrection: false }).rows as MessagesRow[];
    expect(rows.every((r) => r.source === 'da')).toBe(true);
  });
});

describe('PAD step labels', () => {
  it('splits on blank lines, else on newlines', () => {
    expect(splitSteps('a\nb\n\nc\n')).toEqual(['a\nb', 'c']);
    expect(splitSteps('a\nb\n c ')).toEqual(['a', 'b', 'c']);
    expect(splitSteps('  ')).toEqual([]);
  });

  it('numbers: results of calculations, else new numbers; number words in the question count', () => {
    const qn = numberKeys('She has three cats and 4 dogs.');
    expect([...qn].sort()).toEqual(['3', '4']);
    expect(intermediateNumbers('3 * 4 = <<3*4=12>>12 and 12 - 2 = 10', qn)).toEqual(['12', '12', '10']);
    expect(intermediateNumbers('She keeps 4 dogs and gets 7 more', qn)).toEqual(['7']);
    expect(intermediateNumbers('It costs $1,250 = 1250 dollars', qn)).toEqual(['1250']);
  });

  it('labels a wrong solution up to its first inconsistent step, with both overrides', () => {
    const correct = 'Tom has 3 * 4 = 12 apples.\n\nAfter eating 2 he has 12 - 2 = 10.\n\n#### 10';
    const wrong = [
      'Tom has 3 * 4 = 12 apples.', // in a correct solution → true
      'He buys 5 more, so 12 + 5 = 17.', // 17 is no number of any correct solution → first bad
      'After eating 2 he has 12 - 2 = 10.', // verbatim in a correct solution → true again
      'So the answer is 17 - 2 = 15.', // false
      '#### 15', // last → false
    ].join('\n\n');
    const rec = makeRecord({ question: Q, reference: REF, rounds: [[correct, wrong]] });
    const ev = stepEvidence(rec);
    expect(labelSteps(splitSteps(wrong), false, ev)).toEqual([true, false, true, false, false]);
    const { rows, stats } = buildPad([rec]);
    expect(rows.map((r) => r.labels)).toEqual([
      [true, true, true],
      [true, false, true, false, false],
    ]);
    expect(rows[1]!.completions).toEqual(splitSteps(wrong));
    expect(rows.map((r) => r.survived)).toEqual([true, false]);
    expect(stats).toMatchObject({
      solutions: 2,
      rows: 2,
      correctSolutions: 1,
      wrongSolutions: 1,
      survived: 1,
      steps: 8,
      positiveSteps: 5,
      negativeSteps: 3,
    });
  });

  it('a wrong solution whose numbers are all consistent still has its last step false', () => {
    const rec = makeRecord({ question: Q, reference: REF, rounds: [['3 * 4 = 12\n12 - 2 = 10\n#### 12']] });
    expect(buildPad([rec]).rows[0]!.labels).toEqual([true, true, false]);
  });

  it('one-step wrong solution → [false]; duplicates across rounds dropped; survived follows the final answer', () => {
    const rec = makeRecord({
      question: Q,
      reference: REF,
      rounds: [
        ['#### 7', '#### 10'],
        ['#### 7', '#### 10'],
      ],
    });
    const { rows, stats } = buildPad([rec]);
    expect(rows.map((r) => [r.agent, r.round, r.labels, r.survived])).toEqual([
      ['agent1', 1, [false], true],
      ['agent2', 1, [true], false],
    ]);
    expect(stats.skipped).toEqual({ 'duplicate-solution': 2 });
    expect(buildPad([rec], { dedupe: false }).rows).toHaveLength(4);
  });
});
