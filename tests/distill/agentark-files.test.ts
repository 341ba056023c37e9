/**
 * AgentArk's own files (handwritten in tests/fixtures/agentark in the layouts its code writes):
 * both `*_infer.jsonl` layouts split into the final-round agents and the aggregator, and
 * `agentark distill --strategy pad` on the labelled form yields exactly the rows AgentArk's
 * prm/finetune2.py trains on (prompt = query, completions = solution texts, labels = the file's
 * labels, only questions with both a true and a false label).
 */
import { promises as fsp, readFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/distill';
import { parseDistillInput } from '../../src/distill/from-imported';
import { buildRsft } from '../../src/distill/rsft';
import { startServer } from '../../src/engine/server';
import { judgePrompt, parseJudgeVerdict } from '../../src/distill/pad-solutions';
import { importAgentArkOutput } from '../../src/teach/importers';
import { createFakeEngine } from '../helpers/fake-engine';

const fixtures = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/agentark');
const sequential = path.join(fixtures, 'llm_debate_infer_sequential.jsonl');
const vllm = path.join(fixtures, 'llm_debate_infer_vllm.jsonl');
const labelled = path.join(fixtures, 'llm_debate_infer_labeled_by_Qwen2.5-72B-Instruct.jsonl');

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'agentark-files-'));
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
    return { code: await fn(), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

const jsonl = (file: string) =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('AgentArk *_infer.jsonl layouts', () => {
  it('`Solution N:` and `===== Solution N =====` files give the same agents, and the last block is the aggregator', () => {
    const a = importAgentArkOutput(readFileSync(sequential, 'utf8'), 'gsm8k', 'seq');
    const b = importAgentArkOutput(readFileSync(vllm, 'utf8'), 'gsm8k', 'vllm');
    expect(a).toHaveLength(3);
    for (const sets of [a, b]) {
      for (const s of sets) {
        expect(s.solutions.map((x) => x.agent)).toEqual(['agent_1', 'agent_2', 'agent_3', 'aggregator']);
        expect(s.solutions.map((x) => x.role)).toEqual([undefined, undefined, undefined, 'aggregator']);
      }
    }
    expect(a.map((s) => s.solutions.map((x) => x.text))).toEqual(b.map((s) => s.solutions.map((x) => x.text)));
    expect(a[0]!.solutions[1]!.text).toBe('3 boxes and 4 apples: 3 + 4 = 7. Minus 2 gives 5.\nThe answer is 5.');
    expect(a[0]!.solutions[3]!.text).toBe(
      'Solutions 1 and 3 multiply correctly; solution 2 adds instead of multiplying.\nFinal Answer: 10',
    );
  });

  it("the aggregator becomes the record's LLM aggregator, not a fourth voter; R-SFT prefers it when correct", () => {
    const { records, format } = parseDistillInput(readFileSync(sequential, 'utf8'), sequential, { task: 'gsm8k' });
    expect(format).toBe('agentark');
    for (const r of records) {
      expect(r.rounds[0]!.messages.map((m) => m.agent)).toEqual(['agent_1', 'agent_2', 'agent_3']);
      expect(r.aggregator.kind).toBe('llm');
      expect(r.config).toMatchObject({ agents: 3, aggregator: 'llm' });
    }
    expect(records.map((r) => [r.aggregator.extracted, r.final.answer, r.final.correct])).toEqual([
      ['10', '10', true],
      ['180', '180', true],
      ['10', '10', true],
    ]);
    const rsft = buildRsft(records);
    expect(rsft.stats.bySource).toEqual({ aggregator: 3 });
    expect(rsft.rows[0]).toMatchObject({
      messages: [
        { role: 'system' },
        { role: 'user' },
        { role: 'assistant', content: expect.stringMatching(/^Solutions 1 and 3 multiply correctly/) },
      ],
    });
  });
});

describe('agentark distill --strategy pad on AgentArk files', () => {
  it('labelled file: exactly the rows prm/finetune2.py trains on (file labels, mixed-label questions only)', async () => {
    // finetune2.py's rule, applied to the raw JSON independently of the importer.
    const expected = jsonl(labelled)
      .filter((d) => (d.labels as boolean[]).includes(true) && (d.labels as boolean[]).includes(false))
      .map((d) => ({
        prompt: d.query,
        completions: (d.solutions as { text: string }[]).map((s) => s.text),
        labels: d.labels,
      }));
    expect(expected).toHaveLength(2);
    const out = path.join(dir, 'pad.jsonl');
    const r = await capture(() => run(['--strategy', 'pad', '--traj', labelled, '--out', out]));
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const rows = jsonl(out);
    expect(rows.map(({ prompt, completions, labels }) => ({ prompt, completions, labels }))).toEqual(expected);
    expect(rows.map((x) => x.agents)).toEqual([
      ['agent_1', 'agent_2', 'agent_3', 'aggregator'],
      ['agent_1', 'agent_2', 'agent_3', 'aggregator'],
    ]);
    const summary = JSON.parse(r.out);
    expect(summary).toMatchObject({
      strategy: 'pad',
      padSteps: 'solution',
      rows: 2,
      labelSource: { file: 2 },
      skipped: { 'all-correct': 1 },
    });
  });

  it('--labels graded re-grades instead (the judge\'s false on a correct "Final Answer: 180" is overruled)', async () => {
    const out = path.join(dir, 'pad-graded.jsonl');
    const r = await capture(() => run(['--strategy', 'pad', '--labels', 'graded', '--traj', labelled, '--out', out]));
    expect(r.code).toBe(0);
    expect(jsonl(out).map((x) => x.labels)).toEqual([
      [true, false, true, true],
      [true, true, false, true],
    ]);
  });

  it('raw `Solution N:` file: graded labels over the agents and the aggregator', async () => {
    const out = path.join(dir, 'pad-seq.jsonl');
    const r = await capture(() => run(['--strategy', 'pad', '--traj', sequential, '--out', out]));
    expect(r.code).toBe(0);
    const rows = jsonl(out);
    expect(rows.map((x) => [x.prompt, x.labels])).toEqual([
      ['Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?', [true, false, true, true]],
      ['A train travels 60 km per hour for 3 hours. How far does it go?', [true, true, false, true]],
    ]);
    expect(JSON.parse(r.out)).toMatchObject({ labelSource: { graded: 2 } });
  });

  it("--judge-base-url labels every solution with an LLM judge (label.py's prompt, true/false)", async () => {
    expect(parseJudgeVerdict(' True\n')).toBe(true);
    expect(parseJudgeVerdict('false')).toBe(false);
    expect(parseJudgeVerdict('maybe')).toBe(false);
    const judged = new RegExp(
      String.raw`^You are labeling whether a solution correctly solves a question\.[\s\S]*# GROUND TRUTH FINAL ANSWER:\n7\n` +
        String.raw`[\s\S]*Respond ONLY with: true or false[\s\S]*# CANDIDATE SOLUTION:\nS$`,
    );
    expect(judgePrompt('Q?', 'S', '7')).toMatch(judged);
    // A strict judge: true only when the solution says "The answer is <gt>" (so bare "Final Answer: n" is false).
    const judge = createFakeEngine({
      modelId: 'judge',
      reply: (req) => {
        const p = req.messages[0]!.content;
        const gt = /# GROUND TRUTH FINAL ANSWER:\n(.*)\n/.exec(p)![1]!;
        const sol = p.slice(p.indexOf('# CANDIDATE SOLUTION:\n'));
        return sol.includes(`The answer is ${gt}.`) ? 'true' : 'false';
      },
    });
    const server = await startServer(judge, { modelId: 'judge' });
    try {
      const out = path.join(dir, 'pad-judged.jsonl');
      const r = await capture(() =>
        run([
          '--strategy',
          'pad',
          '--traj',
          sequential,
          '--out',
          out,
          '--judge-base-url',
          server.baseUrl,
          '--judge-model',
          'judge',
        ]),
      );
      expect(r.code).toBe(0);
      expect(jsonl(out).map((x) => x.labels)).toEqual([
        [true, false, true, false],
        [true, true, false, false],
        [true, true, true, false],
      ]);
      expect(JSON.parse(r.out)).toMatchObject({ labelSource: { judge: 3 } });
      expect(judge.requests).toHaveLength(12);
      expect(judge.requests.every((q) => q.temperature === 0 && q.max_tokens === 5 && q.model === 'judge')).toBe(true);
    } finally {
      await server.close();
    }
  });

  it('usage errors for the PAD flags', async () => {
    const bad = await capture(() =>
      run(['--strategy', 'pad', '--pad-steps', 'sentence', '--traj', labelled, '--out', path.join(dir, 'x.jsonl')]),
    );
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/--pad-steps must be solution or paragraph/);
    const misplaced = await capture(() =>
      run(['--strategy', 'rsft', '--labels', 'graded', '--traj', labelled, '--out', path.join(dir, 'x.jsonl')]),
    );
    expect(misplaced.code).toBe(2);
    expect(misplaced.err).toMatch(/--labels and --judge-\* apply to --strategy pad with --pad-steps solution only/);
  });
});
