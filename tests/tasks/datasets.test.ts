import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grade, referenceAnswer } from '../../src/tasks/answers';
import { loadQuestions, parseQuestions } from '../../src/tasks/datasets';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const gsm8kTest = path.resolve(repoRoot, 'public/data/gsm8k/test.jsonl');

const jsonl = (...rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

describe('parseQuestions', () => {
  it('GSM8K rows keep the full solution as the reference; ids are <basename>#<line>', () => {
    const text = jsonl(
      { question: 'What is 2+3?', answer: 'Add them: 2+3=<<2+3=5>>5\n#### 5' },
      { question: 'What is 10*10?', answer: '#### 100' },
    );
    const qs = parseQuestions(text, 'gsm8k', '/some/dir/train.jsonl');
    expect(qs).toEqual([
      { id: 'train.jsonl#1', question: 'What is 2+3?', answer: 'Add them: 2+3=<<2+3=5>>5\n#### 5', task: 'gsm8k' },
      { id: 'train.jsonl#2', question: 'What is 10*10?', answer: '#### 100', task: 'gsm8k' },
    ]);
    expect(referenceAnswer('gsm8k', qs[0]!.answer)).toBe('5');
  });

  it('uses an explicit id field; blank lines are skipped but line numbers stay physical', () => {
    const text = `\n${JSON.stringify({ id: 'q-7', question: 'a?', answer: '1' })}\n\n${JSON.stringify({ question: 'b?', answer: '2' })}\n`;
    const qs = parseQuestions(text, 'gsm8k', 'x.jsonl');
    expect(qs.map((q) => q.id)).toEqual(['q-7', 'x.jsonl#4']);
    expect(parseQuestions(jsonl({ id: 12, question: 'a?', answer: '1' }), 'gsm8k', 'x.jsonl')[0]!.id).toBe('12');
  });

  it('MATH rows: problem/solution, with an optional bare answer', () => {
    const solution = 'We have $x = \\boxed{\\dfrac{1}{2}}$.';
    const qs = parseQuestions(
      jsonl(
        { problem: 'Solve 2x = 1.', solution },
        { problem: 'Solve 2x = 1.', solution, answer: '\\frac{1}{2}' },
        { problem: 'What is 1+1?', solution: 'Clearly two.', answer: '2' },
        { problem: 'Mismatch', solution: '\\boxed{3}', answer: '4' },
      ),
      'math',
      'math.jsonl',
    );
    expect(qs[0]).toEqual({ id: 'math.jsonl#1', question: 'Solve 2x = 1.', answer: solution, task: 'math' });
    expect(qs[1]!.answer).toBe(solution); // agrees with the box: keep the full solution
    expect(qs[2]!.answer).toBe('2'); // no box in the solution: the bare answer is the reference
    expect(qs[3]!.answer).toBe('4'); // disagreement: the explicit answer wins
    expect(grade('math', 'so \\boxed{0.5}', qs[0]!.answer).correct).toBe(true);
  });

  it('multiple choice with a choices array and a letter answer', () => {
    const [q] = parseQuestions(
      jsonl({ question: 'Which is a prime?', choices: ['4', '6', '7', '9'], answer: 'C' }),
      'mc',
      'mc.jsonl',
    );
    expect(q).toEqual({
      id: 'mc.jsonl#1',
      question: 'Which is a prime?\n\nA. 4\nB. 6\nC. 7\nD. 9',
      answer: 'C',
      task: 'mc',
      choices: ['4', '6', '7', '9'],
    });
  });

  it('multiple choice with A..D fields, 0-based index answers, ARC-style choices and text answers', () => {
    const qs = parseQuestions(
      jsonl(
        { question: 'Q1', A: 'red', B: 'green', C: 'blue', D: 'black', answer: 'b' },
        { question: 'Q2', choices: ['x', 'y', 'z'], answer: 2 },
        { question: 'Q3', choices: { text: ['p', 'q', 'r', 's'], label: ['1', '2', '3', '4'] }, answerKey: '4' },
        { question: 'Q4', choices: ['cat', 'dog'], answer: 'dog' },
        { question: 'Q5', choices: ['a', 'b', 'c', 'd', 'e'], answer: '(E)' },
        {
          question: 'Q6',
          choices: [
            { label: 'A', text: 'one' },
            { label: 'B', text: 'two' },
          ],
          answerKey: 'A',
        },
      ),
      'mc',
      'mc.jsonl',
    );
    expect(qs.map((q) => q.answer)).toEqual(['B', 'C', 'D', 'B', 'E', 'A']);
    expect(qs[0]!.question).toBe('Q1\n\nA. red\nB. green\nC. blue\nD. black');
    expect(qs[2]!.choices).toEqual(['p', 'q', 'r', 's']);
    expect(qs[5]!.question).toBe('Q6\n\nA. one\nB. two');
  });

  it('multiple choice whose question already lists the choices', () => {
    const [q] = parseQuestions(jsonl({ question: 'Pick one:\n(A) 1\n(B) 2', answer: '(B)' }), 'mc', 'm.jsonl');
    expect(q).toEqual({ id: 'm.jsonl#1', question: 'Pick one:\n(A) 1\n(B) 2', answer: 'B', task: 'mc' });
  });

  it('plain {question, answer} and AgentArk {query, gt}', () => {
    const qs = parseQuestions(jsonl({ question: 'q', answer: 7 }, { query: 'p', gt: '9' }), 'gsm8k', 'plain.jsonl');
    expect(qs.map((q) => [q.question, q.answer])).toEqual([
      ['q', '7'],
      ['p', '9'],
    ]);
  });

  it('accepts a JSON array (AgentArk datasets/data/*.json)', () => {
    const qs = parseQuestions(
      JSON.stringify([
        { query: 'a', gt: '1' },
        { query: 'b', gt: '2' },
      ]),
      'gsm8k',
      'data/GSM8K.json',
    );
    expect(qs.map((q) => q.id)).toEqual(['GSM8K.json#1', 'GSM8K.json#2']);
  });

  it('errors name the file and the line', () => {
    const bad = `${JSON.stringify({ question: 'ok', answer: '1' })}\n{"question": "broken"\n`;
    expect(() => parseQuestions(bad, 'gsm8k', 'data/bad.jsonl')).toThrow(/data\/bad\.jsonl:2: invalid JSON/);
    expect(() => parseQuestions(jsonl({ answer: '1' }), 'gsm8k', 'f.jsonl')).toThrow(/f\.jsonl:1: no question/);
    expect(() => parseQuestions(jsonl({ question: 'q' }), 'gsm8k', 'f.jsonl')).toThrow(/f\.jsonl:1: no answer/);
    expect(() => parseQuestions(`\n\n${jsonl({ question: 'q', answer: 'none' })}`, 'gsm8k', 'f.jsonl')).toThrow(
      /f\.jsonl:3: cannot find a gsm8k reference/,
    );
    expect(() => parseQuestions('[1,2]\n', 'gsm8k', 'f.jsonl')).toThrow(/f\.jsonl: item 1: expected a JSON object/);
    expect(() => parseQuestions(jsonl({ question: 'q', choices: ['a', 'b'], answer: 'D' }), 'mc', 'm.jsonl')).toThrow(
      /m\.jsonl:1: answer index 3 out of range/,
    );
    expect(() =>
      parseQuestions(jsonl({ question: 'q', choices: ['a', 'b'], answer: 'zebra' }), 'mc', 'm.jsonl'),
    ).toThrow(/m\.jsonl:1: cannot read answer/);
    expect(() => parseQuestions(jsonl(42), 'gsm8k', 'n.jsonl')).toThrow(/n\.jsonl:1: expected a JSON object/);
  });
});

describe('loadQuestions', () => {
  it('loads the real GSM8K test set (1,319 questions) with stable ids and gradable references', async () => {
    const qs = await loadQuestions(gsm8kTest, 'gsm8k');
    expect(qs).toHaveLength(1319);
    expect(qs[0]!.id).toBe('test.jsonl#1');
    expect(qs[0]!.question).toMatch(/^Janet’s ducks lay 16 eggs/);
    expect(referenceAnswer('gsm8k', qs[0]!.answer)).toBe('18');
    expect(new Set(qs.map((q) => q.id)).size).toBe(1319);
    for (const q of qs) expect(referenceAnswer('gsm8k', q.answer)).toMatch(/^-?\d+(\.\d+)?$/);
  });

  it('honours limit', async () => {
    const qs = await loadQuestions(gsm8kTest, 'gsm8k', { limit: 5 });
    expect(qs.map((q) => q.id)).toEqual(['#1', '#2', '#3', '#4', '#5'].map((s) => `test.jsonl${s}`));
  });

  it('limit stops before a later bad line', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'datasets-'));
    try {
      const file = path.join(dir, 'partial.jsonl');
      writeFileSync(file, `${JSON.stringify({ question: 'a', answer: '1' })}\nnot json\n`);
      await expect(loadQuestions(file, 'gsm8k', { limit: 1 })).resolves.toHaveLength(1);
      await expect(loadQuestions(file, 'gsm8k')).rejects.toThrow(/partial\.jsonl:2: invalid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a missing file is a clear error', async () => {
    await expect(loadQuestions('/nonexistent/q.jsonl', 'gsm8k')).rejects.toThrow(/cannot read \/nonexistent\/q\.jsonl/);
  });

  describe('over http', () => {
    let server: Server;
    let base = '';
    beforeAll(async () => {
      server = createServer((req, res) => {
        if (req.url?.split('?')[0] === '/sets/mc.jsonl') {
          res.writeHead(200, { 'content-type': 'application/jsonl' });
          res.end(jsonl({ question: 'Q?', choices: ['a', 'b'], answer: 1 }));
        } else {
          res.writeHead(404);
          res.end('nope');
        }
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('fetches a URL; ids use the URL basename', async () => {
      const qs = await loadQuestions(`${base}/sets/mc.jsonl?x=1`, 'mc');
      expect(qs).toEqual([
        { id: 'mc.jsonl#1', question: 'Q?\n\nA. a\nB. b', answer: 'B', task: 'mc', choices: ['a', 'b'] },
      ]);
    });

    it('HTTP errors name the URL and status', async () => {
      await expect(loadQuestions(`${base}/missing.jsonl`, 'gsm8k')).rejects.toThrow(/missing\.jsonl failed: HTTP 404/);
    });
  });
});
