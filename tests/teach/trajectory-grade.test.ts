/** `agentark grade` on small files: plain prediction rows and debate trajectories. */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/grade';
import { runDebate } from '../../src/teach/debate';
import { createFakeEngine } from '../helpers/fake-engine';

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'grade-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function capture(argv: string[]) {
  let out = '';
  let err = '';
  const o = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    const code = await run(argv);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('agentark grade', () => {
  it('grades {question, answer, prediction} rows and writes extracted + correct', async () => {
    const data = path.join(dir, 'preds.jsonl');
    const rows = [
      { question: 'a', answer: 'so 3 + 4 = 7\n#### 7', prediction: 'I think\n#### 7' },
      { question: 'b', answer: '#### 1,000', prediction: 'The answer is 1000.' },
      { question: 'c', answer: '#### 12', prediction: 'It is 13.\n#### 13' },
      { question: 'd', answer: '#### 5', prediction: 'no idea' },
    ];
    await fsp.writeFile(data, `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const outFile = path.join(dir, 'graded.jsonl');
    const r = await capture(['--task', 'gsm8k', '--data', data, '--out', outFile]);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out);
    expect(summary).toMatchObject({
      kind: 'predictions',
      task: 'gsm8k',
      rows: 4,
      correct: 2,
      accuracy: 0.5,
      unparsed: 1,
    });
    const graded = (await fsp.readFile(outFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(graded.map((g) => [g.question, g.extracted, g.correct])).toEqual([
      ['a', '7', true],
      ['b', '1000', true],
      ['c', '13', false],
      ['d', null, false],
    ]);
    expect(graded[0].prediction).toBe(rows[0]!.prediction); // rows kept whole
  });

  it('grades trajectories by their final answer and reports per-round accuracy', async () => {
    const engine = createFakeEngine({
      reply: (req) => (req.messages.length > 2 ? 'now\n#### 7' : `hmm\n#### ${req.seed === 0 ? 7 : 8}`),
    });
    const q = { id: 't1', question: 'q?', answer: '#### 7', task: 'gsm8k' as const };
    const rec1 = await runDebate(q, { numAgents: 2, rounds: 2, aggregator: 'vote', seed: 0 }, engine);
    const rec2 = await runDebate(
      { ...q, id: 't2', answer: '#### 9' },
      { numAgents: 2, rounds: 2, aggregator: 'vote', seed: 0 },
      engine,
    );
    const data = path.join(dir, 'traj.jsonl');
    await fsp.writeFile(data, `${JSON.stringify(rec1)}\n${JSON.stringify(rec2)}\n`);
    const outFile = path.join(dir, 'traj-graded.jsonl');
    const r = await capture(['--data', data, '--out', outFile]);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out);
    expect(s).toMatchObject({
      kind: 'trajectory',
      task: 'gsm8k',
      rows: 2,
      correct: 1,
      accuracy: 0.5,
      roundAccuracy: [0.25, 0.5],
    });
    const graded = (await fsp.readFile(outFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(graded.map((g) => [g.id, g.extracted, g.correct])).toEqual([
      ['t1', '7', true],
      ['t2', '7', false],
    ]);
    expect(graded[0].schema).toBe('agentark.trajectory/1');
  });

  it('bad flags and bad files fail clearly', async () => {
    const bad = await capture(['--bogus']);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/usage: agentark grade/);
    expect((await capture([])).err).toMatch(/--data is required/);
    expect((await capture(['--data', 'x', '--task', 'squad'])).code).toBe(2);
    expect((await capture(['--data', path.join(dir, 'missing.jsonl')])).err).toMatch(/cannot read/);
    const broken = path.join(dir, 'broken.jsonl');
    await fsp.writeFile(
      broken,
      '{"question": "a", "answer": "#### 1", "prediction": "1"}\n{oops}\n{"question": "b"}\n',
    );
    const r = await capture(['--data', broken]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/broken\.jsonl:2: not valid JSON/);
    const noPred = path.join(dir, 'nopred.jsonl');
    await fsp.writeFile(noPred, '{"question": "b", "answer": "#### 1"}\n');
    expect((await capture(['--data', noPred])).err).toMatch(/nopred\.jsonl:1: no prediction/);
  });
});
