import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { grade } from '../../src/tasks/answers';
import { importAgentArkOutput, importExampleModelSolutions, splitAgentArkResponse } from '../../src/teach/importers';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dataDir = path.resolve(repoRoot, 'public/data/gsm8k');
const exampleText = readFileSync(path.join(dataDir, 'example_model_solutions.jsonl'), 'utf8');
const SOLVERS = ['6b_finetuning', '6b_verification', '175b_finetuning', '175b_verification'];

describe('importExampleModelSolutions (real file)', () => {
  const first50 = importExampleModelSolutions(exampleText.split('\n').slice(0, 50).join('\n'));

  it('first 50 rows: four labelled solutions each, reference = ground truth', () => {
    expect(first50).toHaveLength(50);
    const raw = exampleText
      .split('\n')
      .slice(0, 50)
      .map((l) => JSON.parse(l) as Record<string, { solution: string; is_correct: boolean } | string>);
    first50.forEach((set, i) => {
      const row = raw[i]!;
      expect(set.id).toBe(`example_model_solutions.jsonl#${i + 1}`);
      expect(set.task).toBe('gsm8k');
      expect(set.question).toBe(row.question);
      expect(set.reference).toBe(row.ground_truth);
      expect(set.solutions.map((s) => s.agent).sort()).toEqual([...SOLVERS].sort());
      for (const s of set.solutions) {
        const orig = row[s.agent] as { solution: string; is_correct: boolean };
        expect(s.text).toBe(orig.solution);
        expect(s.label).toBe(orig.is_correct);
        expect(grade('gsm8k', s.text, set.reference).correct).toBe(s.label);
      }
    });
    expect(first50[0]!.question).toMatch(/^Janet’s ducks/);
  });

  it('whole file: 1,319 sets, 5,276 solutions, 2,001 labelled correct', () => {
    const all = importExampleModelSolutions(exampleText);
    expect(all).toHaveLength(1319);
    const sols = all.flatMap((s) => s.solutions);
    expect(sols).toHaveLength(5276);
    expect(sols.filter((s) => s.label === true)).toHaveLength(2001);
    expect(new Set(all.map((s) => s.id)).size).toBe(1319);
  });

  it('bad lines name the source and line', () => {
    expect(() => importExampleModelSolutions('{"question": "q"}\n', 'ems.jsonl')).toThrow(
      /ems\.jsonl:1: missing "ground_truth"/,
    );
    expect(() => importExampleModelSolutions('\n{oops\n', 'ems.jsonl')).toThrow(/ems\.jsonl:2: invalid JSON/);
  });
});

describe('importAgentArkOutput', () => {
  const response = [
    '===== Solution 1 =====',
    'First, 2 + 3 = 5.\nThe answer is 5.',
    '',
    '===== Solution 2 =====',
    'I think it is 6.\n#### 6',
    '===== Solution 3 =====',
    '\\boxed{5}',
  ].join('\n');

  it('splits ===== Solution N ===== blocks into agent_N; the last of several is the aggregator', () => {
    expect(splitAgentArkResponse(response)).toEqual([
      { agent: 'agent_1', text: 'First, 2 + 3 = 5.\nThe answer is 5.' },
      { agent: 'agent_2', text: 'I think it is 6.\n#### 6' },
      { agent: 'aggregator', text: '\\boxed{5}', role: 'aggregator' },
    ]);
    expect(splitAgentArkResponse(response, { aggregatorLast: false }).map((s) => s.agent)).toEqual([
      'agent_1',
      'agent_2',
      'agent_3',
    ]);
    expect(splitAgentArkResponse('just one answer: 4')).toEqual([{ agent: 'agent_1', text: 'just one answer: 4' }]);
    expect(splitAgentArkResponse('')).toEqual([]);
  });

  it('reads question/answer under any accepted key', () => {
    const text = [
      { query: 'What is 2+3?', gt: '5', response, token_stats: {} },
      { question: 'Q2', answer: '#### 7', response: '===== Solution 1 =====\nA: 7' },
      { problem: 'P3', ground_truth: '\\frac12', response: '=====Solution 1=====\n$\\boxed{0.5}$' },
      { query: 'Q4', solution: 'so \\boxed{4}', response: '===== Solution 2 =====\nfour' },
      { id: 'row-5', query: 'Q5', gt: '1', error: 'Inference Error: timeout' },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n');
    const sets = importAgentArkOutput(text, 'gsm8k', 'MATH/llm_debate_infer.jsonl');
    expect(sets).toHaveLength(4); // the failed inference row is skipped
    expect(sets[0]).toMatchObject({
      id: 'MATH/llm_debate_infer.jsonl#1',
      question: 'What is 2+3?',
      reference: '5',
      task: 'gsm8k',
    });
    expect(sets[0]!.solutions.map((s) => grade('gsm8k', s.text, sets[0]!.reference).correct)).toEqual([
      true,
      false,
      true,
    ]);
    expect(sets[1]).toMatchObject({ question: 'Q2', reference: '#### 7' });
    expect(sets[2]).toMatchObject({ question: 'P3', reference: '\\frac12' });
    expect(grade('math', sets[2]!.solutions[0]!.text, sets[2]!.reference).correct).toBe(true);
    expect(sets[3]!.reference).toBe('so \\boxed{4}');
    expect(sets[3]!.solutions).toEqual([{ agent: 'agent_2', text: 'four' }]);
  });

  it('accepts AgentArk labelled rows (solutions array with is_correct)', () => {
    const row = {
      query: 'q',
      gt: '3',
      solutions: [
        { id: 1, text: 'A: 3', is_correct: true },
        { id: 2, text: 'A: 4', is_correct: false },
      ],
      labels: [true, false],
    };
    const [set] = importAgentArkOutput(JSON.stringify(row), 'gsm8k');
    expect(set!.solutions).toEqual([
      { agent: 'agent_1', text: 'A: 3', label: true },
      { agent: 'aggregator', text: 'A: 4', label: false, role: 'aggregator' },
    ]);
  });

  it('errors name the line', () => {
    expect(() => importAgentArkOutput('{"query": "q", "gt": "1"}', 'gsm8k', 'out.jsonl')).toThrow(
      /out\.jsonl:1: no "response"/,
    );
    expect(() => importAgentArkOutput('\n{"gt": "1", "response": "x"}', 'gsm8k', 'out.jsonl')).toThrow(
      /out\.jsonl:2: no question/,
    );
    expect(() => importAgentArkOutput('{"query": "q", "response": "x"}', 'gsm8k', 'out.jsonl')).toThrow(
      /out\.jsonl:1: no reference/,
    );
  });
});
