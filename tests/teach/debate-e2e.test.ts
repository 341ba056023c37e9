/**
 * End to end over real HTTP on 127.0.0.1: fake engine → startServer → OpenAIEngine → runDebateSet
 * over real GSM8K questions, with an abort half-way and a simulated crash mid-write.
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../../src/engine/server';
import type { ChatCompletionRequest } from '../../src/engine/types';
import { referenceAnswer } from '../../src/tasks/answers';
import { loadQuestions, type Question } from '../../src/tasks/datasets';
import { runDebateSet, type DebateOptions, type DebateSetResult } from '../../src/teach/debate';
import { OpenAIEngine } from '../../src/teach/openai-engine';
import { readTrajectories, summarizeTrajectories, type TrajectoryRecord } from '../../src/teach/trajectory';
import { createFakeEngine } from '../helpers/fake-engine';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const gsm8k = path.resolve(repoRoot, 'public/data/gsm8k/test.jsonl');

let dir: string;
let questions: Question[];
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'debate-e2e-'));
  questions = await loadQuestions(gsm8k, 'gsm8k', { limit: 8 });
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

/**
 * A fake "student": in round 1 it is right 60% of the time (by a seeded coin on the prompt); in a
 * debate round it adopts the most common answer among the quoted agents. The judge does the same.
 */
function debatingFake(delayMs = 0) {
  const refs = new Map<string, string>();
  return {
    refs,
    engine: createFakeEngine({
      delayMs,
      reply: (req: ChatCompletionRequest, { rng }) => {
        const last = req.messages[req.messages.length - 1]!.content;
        const quoted = [...last.matchAll(/#### (-?\d+)/g)].map((m) => m[1]!);
        if (quoted.length) {
          const counts = new Map<string, number>();
          for (const a of quoted) counts.set(a, (counts.get(a) ?? 0) + 1);
          const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
          return `Reviewing the others, I agree with ${best}.\n#### ${best}`;
        }
        const q = [...refs.keys()].find((k) => last.includes(k));
        const right = q ? refs.get(q)! : '0';
        const answer = rng() < 0.6 ? right : String(Number(right) + 1 + Math.floor(rng() * 3));
        return `Step by step the result is ${answer}.\n#### ${answer}`;
      },
    }),
  };
}

function sumUsage(recs: TrajectoryRecord[]) {
  let calls = 0;
  let prompt = 0;
  let completion = 0;
  for (const r of recs) {
    const msgs = [...r.rounds.flatMap((x) => x.messages), ...(r.aggregator.usage ? [r.aggregator] : [])];
    calls += msgs.length;
    prompt += msgs.reduce((s, m) => s + m.usage!.prompt_tokens, 0);
    completion += msgs.reduce((s, m) => s + m.usage!.completion_tokens, 0);
    // Totals are consistent with the per-message usages.
    expect(r.totals).toMatchObject({
      calls: msgs.length,
      promptTokens: msgs.reduce((s, m) => s + m.usage!.prompt_tokens, 0),
      completionTokens: msgs.reduce((s, m) => s + m.usage!.completion_tokens, 0),
    });
  }
  return { calls, prompt, completion };
}

describe('debate over HTTP (GSM8K)', () => {
  it('3 agents x 2 rounds with an llm judge: every round in the JSONL; calls and tokens equal the server stats', async () => {
    const { engine, refs } = debatingFake();
    for (const q of questions) refs.set(q.question, referenceAnswer('gsm8k', q.answer)!);
    const server = await startServer(engine, { modelId: 'fake-student' });
    try {
      const client = new OpenAIEngine({ baseUrl: server.baseUrl, model: 'fake-student', concurrency: 6 });
      const out = path.join(dir, 'full.jsonl');
      const progress: number[] = [];
      const opts: DebateOptions = {
        numAgents: 3,
        rounds: 2,
        aggregator: 'llm',
        seed: 42,
        concurrency: 2,
        max_tokens: 256,
        engines: client,
      };
      const res = await runDebateSet(questions.slice(0, 5), opts, { out, onProgress: (e) => progress.push(e.done) });
      expect(res).toMatchObject({ total: 5, skipped: 0, completed: 5, failed: [], aborted: false });
      expect(progress[0]).toBe(0);
      expect(progress[progress.length - 1]).toBe(5);

      const recs = await readTrajectories(out);
      expect(recs.map((r) => r.id).sort()).toEqual(
        questions
          .slice(0, 5)
          .map((q) => q.id)
          .sort(),
      );
      for (const r of recs) {
        expect(r.schema).toBe('agentark.trajectory/1');
        expect(r.rounds.map((x) => x.round)).toEqual([1, 2]);
        expect(r.rounds.every((x) => x.messages.length === 3)).toBe(true);
        expect(r.aggregator.kind).toBe('llm');
        expect(r.reference).toBe(questions.find((q) => q.id === r.id)!.answer);
        // Round-2 prompts carry the other agents' round-1 answers.
        r.rounds[1]!.messages.forEach((m, i) => {
          r.rounds[0]!.messages.forEach((o, j) => {
            if (i !== j) expect(m.prompt[3]!.content).toContain(o.completion);
          });
        });
        // This fake adopts an answer quoted from the others: so round 2 only holds round-1 answers of others.
        r.rounds[1]!.messages.forEach((m, i) =>
          expect(r.rounds[0]!.messages.filter((_, j) => j !== i).map((o) => o.extracted)).toContain(m.extracted),
        );
      }
      const used = sumUsage(recs);
      expect(used.calls).toBe(5 * 7);
      expect(server.stats.completions).toBe(used.calls);
      expect(server.stats.requests).toBe(used.calls);
      expect(server.stats.promptTokens).toBe(used.prompt);
      expect(server.stats.completionTokens).toBe(used.completion);
      expect(engine.promptTokens).toBe(used.prompt);
      const s = summarizeTrajectories(recs);
      expect(s.roundAccuracy).toHaveLength(2);
      expect(s.calls).toBe(35);
    } finally {
      await server.close();
    }
  });

  it('abort half-way, then a crash mid-write; reruns finish every question exactly once', async () => {
    const out = path.join(dir, 'resume.jsonl');
    const opts = (client: OpenAIEngine): DebateOptions => ({
      numAgents: 3,
      rounds: 2,
      aggregator: 'vote',
      seed: 1,
      concurrency: 2,
      engines: client,
    });

    // Run 1: abort after 3 questions are written.
    const a = debatingFake(15);
    for (const q of questions) a.refs.set(q.question, referenceAnswer('gsm8k', q.answer)!);
    const serverA = await startServer(a.engine);
    const ac = new AbortController();
    let r1: DebateSetResult;
    try {
      const client = new OpenAIEngine({ baseUrl: serverA.baseUrl, model: 'fake-model', concurrency: 6 });
      r1 = await runDebateSet(questions, opts(client), {
        out,
        signal: ac.signal,
        onRecord: (_rec, { done }) => {
          if (done === 3) ac.abort();
        },
      });
    } finally {
      await serverA.close();
    }
    expect(r1.aborted).toBe(true);
    expect(r1.completed).toBeGreaterThanOrEqual(3);
    expect(r1.completed).toBeLessThan(questions.length);
    const afterAbort = await readTrajectories(out);
    expect(afterAbort).toHaveLength(r1.completed);
    expect(new Set(afterAbort.map((r) => r.id)).size).toBe(afterAbort.length);
    // Calls of abandoned questions reached the server but nothing half was written.
    expect(sumUsage(afterAbort).calls).toBeLessThanOrEqual(serverA.stats.completions);

    // Simulated crash: the last record was only half written.
    const text = await fsp.readFile(out, 'utf8');
    const lastStart = text.lastIndexOf('\n', text.length - 2) + 1;
    const lastLine = text.slice(lastStart);
    await fsp.writeFile(out, text.slice(0, lastStart) + lastLine.slice(0, Math.floor(lastLine.length / 2)));
    const survivors = afterAbort.slice(0, -1).map((r) => r.id);

    // Run 2 on a fresh server: only the missing questions are debated.
    const b = debatingFake();
    for (const q of questions) b.refs.set(q.question, referenceAnswer('gsm8k', q.answer)!);
    const serverB = await startServer(b.engine);
    const warnings: string[] = [];
    try {
      const client = new OpenAIEngine({ baseUrl: serverB.baseUrl, model: 'fake-model', concurrency: 6 });
      const r2 = await runDebateSet(questions, opts(client), { out, onWarning: (w) => warnings.push(w) });
      expect(r2).toMatchObject({
        total: questions.length,
        skipped: survivors.length,
        completed: questions.length - survivors.length,
        failed: [],
        aborted: false,
      });
    } finally {
      await serverB.close();
    }
    expect(warnings.some((w) => /truncated a partial last line .* at byte offset \d+/.test(w))).toBe(true);

    const all = await readTrajectories(out);
    expect(all.map((r) => r.id).sort()).toEqual(questions.map((q) => q.id).sort()); // each exactly once
    expect(all.slice(0, survivors.length).map((r) => r.id)).toEqual(survivors); // complete lines untouched
    for (const r of all) {
      expect(r.rounds).toHaveLength(2);
      expect(r.rounds.every((x) => x.messages.length === 3)).toBe(true);
    }
    // What run 2 wrote equals what server B served.
    const fresh = all.slice(survivors.length);
    const used = sumUsage(fresh);
    expect(serverB.stats.completions).toBe(used.calls);
    expect(serverB.stats.promptTokens).toBe(used.prompt);
    expect(serverB.stats.completionTokens).toBe(used.completion);

    // Run 3: nothing left to do, nothing requested.
    const c = debatingFake();
    const serverC = await startServer(c.engine);
    try {
      const client = new OpenAIEngine({ baseUrl: serverC.baseUrl, model: 'fake-model' });
      const r3 = await runDebateSet(questions, opts(client), { out });
      expect(r3).toMatchObject({ skipped: questions.length, completed: 0 });
      expect(serverC.stats.requests).toBe(0);
    } finally {
      await serverC.close();
    }
  });
});
