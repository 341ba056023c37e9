/**
 * `agentark distill` end to end: on GSM8K's real example_model_solutions.jsonl (format detected)
 * and on trajectories written by a real debate run (runDebateSet against the scripted fake
 * engine, in which one agent flips from wrong to right after reading its peers).
 */
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/distill';
import { grade } from '../../src/tasks/answers';
import type { MessagesRow, PromptCompletionRow, StepwiseRow } from '../../src/distill/common';
import { runDebateSet } from '../../src/teach/debate';
import type { Question } from '../../src/tasks/datasets';
import { createFakeEngine } from '../helpers/fake-engine';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const solutionsFile = path.resolve(repoRoot, 'public/data/gsm8k/example_model_solutions.jsonl');
type RawRow = { question: string; ground_truth: string } & Record<string, unknown>;
const raw: RawRow[] = readFileSync(solutionsFile, 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as RawRow);
const solvable = (rows: RawRow[]) =>
  rows.filter((r) =>
    Object.values(r).some((v) => typeof v === 'object' && v !== null && (v as { is_correct?: boolean }).is_correct),
  ).length;

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'distill-cli-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function capture(fn: () => Promise<number>) {
  let out = '';
  let err = '';
  const o = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    const code = await fn();
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const readJsonl = async <T>(f: string): Promise<T[]> =>
  (await fsp.readFile(f, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);

describe('agentark distill on example_model_solutions.jsonl', () => {
  it('rsft: detects the format, writes graded-correct rows and a summary of what was skipped', async () => {
    const out = path.join(dir, 'rsft.jsonl');
    const r = await capture(() => run(['--strategy', 'rsft', '--traj', solutionsFile, '--out', out, '--limit', '40']));
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out);
    const expected = solvable(raw.slice(0, 40));
    expect(s).toMatchObject({
      strategy: 'rsft',
      input: { format: 'example_model_solutions', records: 1319, labelDisagreements: 0 },
      questions: 40,
      rows: expected,
      written: expected,
      skipped: { 'no-correct-final-reasoning': 40 - expected },
      out,
    });
    const rows = await readJsonl<MessagesRow>(out);
    expect(rows).toHaveLength(expected);
    for (const row of rows) {
      const i = Number(row.id.split('#')[1]) - 1;
      expect(grade('gsm8k', row.messages[2]!.content, raw[i]!.ground_truth).correct).toBe(true);
    }
  });

  it('da: --per-question and --format prompt-completion', async () => {
    const out = path.join(dir, 'da.jsonl');
    const r = await capture(() =>
      run([
        '--strategy',
        'da',
        '--traj',
        solutionsFile,
        '--out',
        out,
        '--limit',
        '40',
        '--per-question',
        '2',
        '--format',
        'prompt-completion',
        '--no-system',
      ]),
    );
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out);
    const rows = await readJsonl<PromptCompletionRow>(out);
    expect(s.rows).toBe(rows.length);
    expect(s.bySource).toEqual({ da: rows.length });
    const perQ = new Map<string, number>();
    for (const row of rows) {
      expect(Object.keys(row).sort()).toEqual(['completion', 'id', 'prompt', 'source']);
      expect(row.prompt.map((m) => m.role)).toEqual(['user']);
      expect(row.completion.map((m) => m.role)).toEqual(['assistant']);
      const q = row.id.replace(/#da\d+$/, '');
      perQ.set(q, (perQ.get(q) ?? 0) + 1);
    }
    expect(Math.max(...perQ.values())).toBe(2);
    expect(perQ.size).toBe(solvable(raw.slice(0, 40)));
  });

  it('pad --pad-steps paragraph: one stepwise row per solution', async () => {
    const out = path.join(dir, 'pad.jsonl');
    const r = await capture(() =>
      run(['--strategy', 'pad', '--pad-steps', 'paragraph', '--traj', solutionsFile, '--out', out, '--limit', '25']),
    );
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out);
    const rows = await readJsonl<StepwiseRow>(out);
    expect(s).toMatchObject({ strategy: 'pad', questions: 25, solutions: 100, rows: rows.length });
    expect(rows.length + (s.skipped['duplicate-solution'] ?? 0)).toBe(100);
    expect(s.steps).toBe(rows.reduce((a, x) => a + x.labels.length, 0));
    expect(s.positiveSteps).toBe(rows.reduce((a, x) => a + x.labels.filter(Boolean).length, 0));
    expect(s.survived).toBe(rows.filter((x) => x.survived).length);
  });
});

describe('agentark distill on debate trajectories', () => {
  const questions: Question[] = [
    {
      id: 'a',
      question: 'Ann has 2 pens and buys 3 more. How many pens does she have?',
      answer: '2 + 3 = 5\n#### 5',
      task: 'gsm8k',
    },
    {
      id: 'b',
      question: 'A car has 4 wheels. How many wheels do 6 cars have?',
      answer: '4 * 6 = 24\n#### 24',
      task: 'gsm8k',
    },
    {
      id: 'c',
      question: 'Bo had 10 coins and lost 7. How many are left?',
      answer: '10 - 7 = 3\n#### 3',
      task: 'gsm8k',
    },
  ];
  const answers: Record<string, number> = { pens: 5, wheels: 24, coins: 3 };

  async function debateFile(): Promise<string> {
    // agent2 is wrong in round 1 and right after reading its peers; question c is never solved.
    const engine = createFakeEngine({
      reply: (req) => {
        const all = req.messages.map((m) => m.content).join('\n');
        const key = Object.keys(answers).find((k) => req.messages[1]!.content.includes(k) || all.includes(k))!;
        const right = answers[key]!;
        const debated = req.messages.some((m) => m.content.startsWith('Here are the latest solutions'));
        const judge = req.messages[0]!.content.includes('impartial judge');
        const agent2 = req.seed === 2 || req.seed === 1002;
        if (key === 'coins') return `I think it is ${right + 1}.\n#### ${right + 1}`;
        if (judge) return `The agents agree on ${right}.\n#### ${right}`;
        if (agent2 && !debated) return `Adding everything gives ${right + 10}.\n#### ${right + 10}`;
        if (agent2) return `After reading the others I see my mistake; the total is ${right}.\n#### ${right}`;
        return `Working it out carefully gives ${right} for ${key}.\n#### ${right}`;
      },
    });
    const out = path.join(dir, 'traj.jsonl');
    await fsp.rm(out, { force: true });
    const res = await runDebateSet(
      questions,
      { numAgents: 3, rounds: 2, aggregator: 'llm', seed: 1, engines: engine },
      { out },
    );
    expect(res.completed).toBe(3);
    return out;
  }

  it('rsft takes the correct aggregator outputs and skips the unsolved question', async () => {
    const traj = await debateFile();
    const out = path.join(dir, 'rsft-traj.jsonl');
    const r = await capture(() => run(['--strategy', 'rsft', '--traj', traj, '--out', out]));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      input: { format: 'trajectory', records: 3 },
      questions: 3,
      rows: 2,
      skipped: { 'no-correct-final-reasoning': 1 },
      bySource: { aggregator: 2 },
    });
    const rows = await readJsonl<MessagesRow>(out);
    expect(rows.map((x) => [x.id, x.messages[2]!.content])).toEqual([
      ['a', 'The agents agree on 5.\n#### 5'],
      ['b', 'The agents agree on 24.\n#### 24'],
    ]);
  });

  it('da finds the wrong→right flips as self-correction conversations', async () => {
    const traj = await debateFile();
    const out = path.join(dir, 'da-traj.jsonl');
    const r = await capture(() => run(['--strategy', 'da', '--traj', traj, '--out', out, '--per-question', '3']));
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out);
    const rows = await readJsonl<MessagesRow & Partial<PromptCompletionRow>>(out);
    const sc = rows
      .filter((x) => x.source === 'da-selfcorrect')
      .map((x) => {
        // Self-correction rows are prompt-completion even with the default --format messages.
        expect(x.completion).toHaveLength(1);
        return { ...x, messages: [...x.prompt!, ...x.completion!] };
      });
    expect(sc.map((x) => x.id)).toEqual(['a#sc-agent2-r2', 'b#sc-agent2-r2']);
    expect(s.bySource['da-selfcorrect']).toBe(2);
    for (const x of sc) {
      expect(x.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant']);
      expect(x.messages[2]!.content).toMatch(/^Adding everything gives/);
      expect(x.messages[3]!.content).toMatch(/^Here are other agents' solutions:/);
      expect(x.messages[3]!.content).toContain('--- agent1 ---\nWorking it out carefully');
      expect(x.messages[4]!.content).toMatch(/^After reading the others I see my mistake/);
    }
    // Paths: agent1 and agent3 give the same text (a duplicate), agent2's fix is distinct.
    const paths = rows.filter((x) => x.source === 'da');
    expect(paths.map((x) => x.id)).toEqual(['a#da1', 'a#da2', 'b#da1', 'b#da2']);
  });

  it('usage errors exit 2 with the usage text', async () => {
    const r1 = await capture(() => run(['--traj', 'x', '--out', 'y']));
    expect(r1.code).toBe(2);
    expect(r1.err).toMatch(/--strategy is required/);
    expect(r1.err).toMatch(/usage: agentark distill/);
    expect((await capture(() => run(['--strategy', 'kd', '--traj', 'x', '--out', 'y']))).err).toMatch(
      /--strategy must be rsft, da or pad/,
    );
    expect(
      (await capture(() => run(['--strategy', 'rsft', '--traj', 'x', '--out', 'y', '--per-question', '2']))).err,
    ).toMatch(/apply to --strategy da only/);
    expect(
      (await capture(() => run(['--strategy', 'da', '--traj', 'x', '--out', 'y', '--per-question', '0']))).err,
    ).toMatch(/--per-question must be an integer >= 1/);
    expect(
      (await capture(() => run(['--strategy', 'da', '--traj', 'x', '--out', 'y', '--jaccard', '1.5']))).err,
    ).toMatch(/--jaccard/);
    expect((await capture(() => run(['--bogus']))).code).toBe(2);
    const missing = await capture(() =>
      run(['--strategy', 'rsft', '--traj', path.join(dir, 'nope.jsonl'), '--out', path.join(dir, 'o.jsonl')]),
    );
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot read --traj/);
    const bad = path.join(dir, 'bad.jsonl');
    await fsp.writeFile(bad, '{"foo": 1}\n');
    const unk = await capture(() => run(['--strategy', 'rsft', '--traj', bad, '--out', path.join(dir, 'o.jsonl')]));
    expect(unk.code).toBe(1);
    expect(unk.err).toMatch(/unrecognised input/);
    const help = await capture(() => run(['--help']));
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/--per-question K/);
  });
});
