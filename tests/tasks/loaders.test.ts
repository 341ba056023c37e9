/**
 * Question loaders on rows in the layouts the public datasets use (field names and types as in
 * their Hub files), as JSONL and as Parquet written by the test-only writer (snappy and zstd
 * pages, a row-group split, list and struct columns), and the short-answer QA metrics.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { answersEqual, extractAnswer, grade, qaExactMatch, qaF1, squadNormalize } from '../../src/tasks/answers';
import { loadQuestions, parseQuestions } from '../../src/tasks/datasets';
import { writeParquet, type Field } from '../helpers/parquet-writer';

const dir = mkdtempSync(path.join(tmpdir(), 'agentark-loaders-'));
const jsonl = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join('\n');

// MedMCQA (openlifescienceai/medmcqa): cop 0-based on the Hub; the original JSON release counts from 1.
const MEDMCQA = [
  {
    id: 'e9ad821a',
    question: 'Which vitamin is supplied from only animal source:',
    opa: 'Vitamin C',
    opb: 'Vitamin B7',
    opc: 'Vitamin B12',
    opd: 'Vitamin D',
    cop: 2,
    choice_type: 'single',
    exp: null,
    subject_name: 'Biochemistry',
    topic_name: 'Vitamins',
  },
  {
    id: 'e3d3c4e1',
    question: 'All of the following are surgical options for morbid obesity except -',
    opa: 'Adjustable gastric banding',
    opb: 'Biliopancreatic diversion',
    opc: 'Duodenal switch',
    opd: 'Roux en Y duodenal bypass',
    cop: 3,
    choice_type: 'multi',
    exp: null,
    subject_name: 'Surgery',
    topic_name: null,
  },
  {
    id: 'a1b2c3d4',
    question: 'Drug of choice for absence seizures:',
    opa: 'Ethosuximide',
    opb: 'Phenytoin',
    opc: 'Carbamazepine',
    opd: 'Gabapentin',
    cop: 0,
    choice_type: 'single',
    exp: null,
    subject_name: 'Pharmacology',
    topic_name: null,
  },
];

describe('multiple-choice loaders', () => {
  it('MedMCQA with 0-based cop (a 0 in the file says so)', () => {
    const qs = parseQuestions(jsonl(MEDMCQA), 'mc', 'medmcqa.jsonl');
    expect(qs.map((q) => [q.id, q.answer])).toEqual([
      ['e9ad821a', 'C'],
      ['e3d3c4e1', 'D'],
      ['a1b2c3d4', 'A'],
    ]);
    expect(qs[0]!.choices).toEqual(['Vitamin C', 'Vitamin B7', 'Vitamin B12', 'Vitamin D']);
    expect(qs[0]!.question).toMatch(/animal source:\n\nA\. Vitamin C\nB\. Vitamin B7\nC\. Vitamin B12\nD\. Vitamin D$/);
  });

  it('MedMCQA with 1-based cop (the original release: a 4 says so), or as told', () => {
    const oneBased = MEDMCQA.map((r) => ({ ...r, cop: r.cop + 1 }));
    expect(parseQuestions(jsonl(oneBased), 'mc', 'train.json').map((q) => q.answer)).toEqual(['C', 'D', 'A']);
    const ambiguous = jsonl(oneBased.slice(0, 1)); // cop 3: either base
    expect(() => parseQuestions(ambiguous, 'mc', 'dev.json')).toThrow(
      /cannot tell whether MedMCQA "cop" counts from 0 .* give --cop-base 0 or 1/,
    );
    expect(parseQuestions(ambiguous, 'mc', 'dev.json', { copBase: 1 })[0]!.answer).toBe('C');
    expect(parseQuestions(ambiguous, 'mc', 'dev.json', { copBase: 0 })[0]!.answer).toBe('D');
  });

  it('MedQA: options map + answer_idx', () => {
    const row = {
      question:
        'A 23-year-old pregnant woman at 22 weeks gestation presents with burning upon urination. ' +
        'Which of the following is the best treatment for this patient?',
      answer: 'Nitrofurantoin',
      options: { A: 'Ampicillin', B: 'Ceftriaxone', C: 'Doxycycline', D: 'Nitrofurantoin' },
      meta_info: 'step2&3',
      answer_idx: 'D',
    };
    const [q] = parseQuestions(jsonl([row]), 'mc', 'medqa.jsonl');
    expect(q).toMatchObject({ answer: 'D', choices: ['Ampicillin', 'Ceftriaxone', 'Doxycycline', 'Nitrofurantoin'] });
    expect(grade('mc', 'The safest option in pregnancy is nitrofurantoin.\nAnswer: D', q!.answer).correct).toBe(true);
  });

  it('MMLU: choices list + 0-based answer', () => {
    const row = {
      question: 'Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.',
      subject: 'abstract_algebra',
      choices: ['0', '4', '2', '6'],
      answer: 1,
    };
    const [q] = parseQuestions(jsonl([row]), 'mc', 'mmlu.jsonl');
    expect(q).toMatchObject({ answer: 'B', choices: ['0', '4', '2', '6'] });
  });
});

describe('maths loaders', () => {
  it('MetaMathQA: query + response ending "The answer is: X"', () => {
    const rows = [
      {
        query:
          'Gracie and Joe are choosing numbers on the complex plane. Joe chooses the point $1+2i$. ' +
          "Gracie chooses $-1+i$. How far apart are Gracie and Joe's points?",
        response:
          'The distance between two points $(x_1,y_1)$ and $(x_2,y_2)$ is $\\sqrt{(x_2-x_1)^2+(y_2-y_1)^2}$.\n' +
          'So the distance is $\\sqrt{(-1-1)^2+(1-2)^2}=\\sqrt{5}$.\nThe answer is: \\sqrt{5}',
        type: 'MATH_AnsAug',
        original_question: 'Gracie and Joe are choosing numbers on the complex plane. …',
      },
      {
        query:
          'Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?',
        response:
          'Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\nThe answer is: 10',
        type: 'GSM_Rephrased',
        original_question: '',
      },
    ];
    const [m] = parseQuestions(jsonl(rows.slice(0, 1)), 'math', 'metamath.jsonl');
    expect(grade('math', 'So the answer is $\\boxed{\\sqrt5}$.', m!.answer).correct).toBe(true);
    const [g] = parseQuestions(jsonl(rows.slice(1)), 'gsm8k', 'metamath.jsonl');
    expect(grade('gsm8k', '#### 10', g!.answer).correct).toBe(true);
  });

  it('MATH-500: problem + solution with \\boxed{} + answer', () => {
    const row = {
      problem:
        'Convert the point $(0,3)$ in rectangular coordinates to polar coordinates.  ' +
        'Enter your answer in the form $(r,\\theta),$ where $r > 0$ and $0 \\le \\theta < 2 \\pi.$',
      solution:
        'We have that $r = \\sqrt{0^2 + 3^2} = 3.$  Also, … $\\theta = \\frac{\\pi}{2}.$\n\n' +
        'Therefore, the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$',
      answer: '\\left( 3, \\frac{\\pi}{2} \\right)',
      subject: 'Precalculus',
      level: 2,
      unique_id: 'test/precalculus/807.json',
    };
    const [q] = parseQuestions(jsonl([row]), 'math', 'math500.jsonl');
    expect(q!.id).toBe('math500.jsonl#1');
    expect(
      grade('math', 'The point is $(3, \\pi/2)$, so the answer is \\boxed{(3,\\frac{\\pi}{2})}', q!.answer).correct,
    ).toBe(true);
  });

  it('AIME / AMC: integer answers, capitalised fields', () => {
    const rows = [
      { ID: '2024-I-1', Problem: 'Every morning Aya goes for a 9-kilometer-long walk…', Solution: '…', Answer: 204 },
      {
        id: 0,
        problem: 'Find the number of ordered pairs…',
        solution: '…',
        answer: '033',
        url: 'https://artofproblemsolving.com/wiki/…',
      },
    ];
    const qs = parseQuestions(jsonl(rows), 'math', 'aime.jsonl');
    expect(qs[0]!.question).toMatch(/^Every morning Aya/);
    expect(grade('math', '\\boxed{204}', qs[0]!.answer).correct).toBe(true);
    expect(grade('math', '\\boxed{33}', qs[1]!.answer).correct).toBe(true);
    expect(
      grade('gsm8k', 'The answer is 204.', parseQuestions(jsonl(rows.slice(0, 1)), 'gsm8k', 'aime.jsonl')[0]!.answer)
        .correct,
    ).toBe(true);
  });
});

describe('short-answer QA (SQuAD metrics)', () => {
  it('normalises as SQuAD does and scores EM and token F1', () => {
    expect(squadNormalize('The  Eiffel Tower!')).toBe('eiffel tower');
    expect(qaExactMatch('the Eiffel tower', 'Eiffel Tower.')).toBe(1);
    expect(qaExactMatch('Paris, France', 'Paris')).toBe(0);
    expect(qaF1('Paris, France', 'Paris')).toBeCloseTo(2 / 3, 12);
    expect(qaF1('a cat', 'the dog')).toBe(0);
    expect(qaF1('Richard Bertrand Spencer', 'Richard B. Spencer')).toBeCloseTo((2 * (2 / 3) * (2 / 3)) / (4 / 3), 12);
  });

  it('HotpotQA rows: EM as accuracy, F1 in the report; answers stated as Final Answer / Answer lines', () => {
    const row = {
      id: '5a8b57f25542995d1e6f1371',
      question: 'Were Scott Derrickson and Ed Wood of the same nationality?',
      answer: 'yes',
      type: 'comparison',
      level: 'hard',
    };
    const [q] = parseQuestions(jsonl([row]), 'qa', 'hotpot_dev.jsonl');
    expect(q).toMatchObject({ id: '5a8b57f25542995d1e6f1371', task: 'qa', answer: 'yes' });
    expect(extractAnswer('qa', 'Both are American.\nFinal Answer: Yes.')).toBe('Yes');
    expect(grade('qa', 'Both are American film-makers.\nAnswer: yes', q!.answer).correct).toBe(true);
    expect(grade('qa', 'Answer: no', q!.answer).correct).toBe(false);
    expect(answersEqual('qa', 'The Beatles', 'beatles')).toBe(true);
  });
});

describe('Parquet files', () => {
  const MMLU_FIELDS: Field[] = [
    { name: 'question', type: 'string' },
    { name: 'subject', type: 'string' },
    { name: 'choices', list: 'string' },
    { name: 'answer', type: 'int64' },
  ];
  const mmluRows = Array.from({ length: 7 }, (_, i) => ({
    question: `Question ${i + 1}: which is option ${'ABCD'[i % 4]}?`,
    subject: 'test',
    choices: ['w', 'x', 'y', 'z'],
    answer: i % 4,
  }));

  for (const codec of ['snappy', 'zstd'] as const) {
    it(`${codec} pages, three row groups, a list column: MMLU`, async () => {
      const file = path.join(dir, `mmlu-${codec}.parquet`);
      writeFileSync(file, writeParquet(MMLU_FIELDS, mmluRows, { codec, rowGroupSize: 3 }));
      const qs = await loadQuestions(file, 'mc');
      expect(qs.map((q) => q.answer).join('')).toBe('ABCDABC');
      expect(qs[6]).toMatchObject({ id: `mmlu-${codec}.parquet#7`, choices: ['w', 'x', 'y', 'z'] });
      expect((await loadQuestions(file, 'mc', { limit: 4 })).length).toBe(4);
    });
  }

  it('MedQA with a struct column of options; MedMCQA Parquet defaults to 0-based cop', async () => {
    const medqa = path.join(dir, 'medqa.parquet');
    writeFileSync(
      medqa,
      writeParquet(
        [
          { name: 'question', type: 'string' },
          { name: 'answer', type: 'string' },
          { name: 'options', struct: ['A', 'B', 'C', 'D'].map((name) => ({ name, type: 'string' as const })) },
          { name: 'answer_idx', type: 'string' },
        ],
        [
          {
            question: 'Best treatment?',
            answer: 'Nitrofurantoin',
            options: { A: 'Ampicillin', B: 'Ceftriaxone', C: 'Doxycycline', D: 'Nitrofurantoin' },
            answer_idx: 'D',
          },
        ],
        { codec: 'zstd' },
      ),
    );
    expect(await loadQuestions(medqa, 'mc')).toMatchObject([
      { answer: 'D', choices: ['Ampicillin', 'Ceftriaxone', 'Doxycycline', 'Nitrofurantoin'] },
    ]);
    const medmcqa = path.join(dir, 'medmcqa.parquet');
    const fields: Field[] = [
      { name: 'id', type: 'string' },
      { name: 'question', type: 'string' },
      ...['opa', 'opb', 'opc', 'opd'].map((name) => ({ name, type: 'string' as const })),
      { name: 'cop', type: 'int64' },
    ];
    writeFileSync(
      medmcqa,
      writeParquet(
        fields,
        [MEDMCQA[0]!, MEDMCQA[1]!].map(({ exp: _e, topic_name: _t, ...r }) => r),
        { codec: 'snappy' },
      ),
    );
    expect((await loadQuestions(medmcqa, 'mc')).map((q) => q.answer)).toEqual(['C', 'D']);
  });

  it('GSM8K layout; a broken file is named in the error', async () => {
    const file = path.join(dir, 'test-00000-of-00001.parquet');
    writeFileSync(
      file,
      writeParquet(
        [
          { name: 'question', type: 'string' },
          { name: 'answer', type: 'string' },
        ],
        [{ question: 'Janet has 3 apples and buys 4. How many?', answer: '3 + 4 = <<3+4=7>>7\n#### 7' }],
      ),
    );
    const [q] = await loadQuestions(file, 'gsm8k');
    expect(grade('gsm8k', '#### 7', q!.answer).correct).toBe(true);
    const bad = path.join(dir, 'broken.parquet');
    writeFileSync(bad, 'PAR1 not really');
    await expect(loadQuestions(bad, 'gsm8k')).rejects.toThrow(/broken\.parquet: not a readable Parquet file/);
  });
});

describe('parseQuestionFile (bytes, as a browser File gives them)', () => {
  it('reads Parquet by name or by its PAR1 magic, and JSONL otherwise', async () => {
    const { parseQuestionFile } = await import('../../src/tasks/datasets');
    const bytes = writeParquet(
      [
        { name: 'question', type: 'string' },
        { name: 'answer', type: 'string' },
      ],
      [{ question: 'What is 2 + 2?', answer: '#### 4' }],
      { codec: 'zstd' },
    );
    expect((await parseQuestionFile(bytes, 'upload.parquet', 'gsm8k'))[0]).toMatchObject({
      id: 'upload.parquet#1',
      question: 'What is 2 + 2?',
    });
    expect((await parseQuestionFile(bytes, 'unnamed', 'gsm8k'))[0]!.answer).toBe('#### 4');
    const text = new TextEncoder().encode('{"question": "What is 1 + 1?", "answer": "#### 2"}\n');
    expect((await parseQuestionFile(text, 'q.jsonl', 'gsm8k'))[0]!.id).toBe('q.jsonl#1');
  });
});
