import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChatMessage } from '../../src/engine/types';
import type { Question } from '../../src/tasks/datasets';
import { runDebateSet } from '../../src/teach/debate';
import {
  OpenAIEngine,
  OpenAIEngineError,
  collectStream,
  parseRetryAfter,
  type RetryInfo,
} from '../../src/teach/openai-engine';
import { Semaphore } from '../../src/util/semaphore';
import { readTrajectories } from '../../src/teach/trajectory';
import { createFakeEngine } from '../helpers/fake-engine';
import { startFaultyServer, type Fault, type FaultyServer } from '../helpers/faulty-server';

const messages: ChatMessage[] = [{ role: 'user', content: 'What is 6 times 7?' }];
const open: FaultyServer[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
async function faulty(script: Fault[], opts: { after?: Fault; engine?: ReturnType<typeof createFakeEngine> } = {}) {
  const engine = opts.engine ?? createFakeEngine();
  const s = await startFaultyServer(engine, { script, after: opts.after });
  open.push(s);
  return { s, engine };
}
function client(baseUrl: string, extra: Partial<ConstructorParameters<typeof OpenAIEngine>[0]> = {}) {
  const retries: RetryInfo[] = [];
  const c = new OpenAIEngine({
    baseUrl,
    model: 'fake-model',
    timeoutMs: 400,
    backoffMs: 5,
    maxRetries: 4,
    concurrency: 1,
    onRetry: (r) => retries.push(r),
    ...extra,
  });
  return { c, retries };
}

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'openai-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('parseRetryAfter / Semaphore', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('1')).toBe(1000);
    expect(parseRetryAfter(' 2.5 ')).toBe(2500);
    const now = Date.parse('2024-01-01T00:00:00Z');
    expect(parseRetryAfter('Mon, 01 Jan 2024 00:00:03 GMT', now)).toBe(3000);
    expect(parseRetryAfter('Mon, 01 Jan 2023 00:00:03 GMT', now)).toBe(0);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });

  it('bounds concurrency and hands slots out in order', async () => {
    const sem = new Semaphore(2);
    const order: number[] = [];
    let inside = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        const release = await sem.acquire();
        inside++;
        peak = Math.max(peak, inside);
        order.push(i);
        await new Promise((r) => setTimeout(r, 5));
        inside--;
        release();
      }),
    );
    expect(peak).toBe(2);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
    expect(sem.available).toBe(2);
  });
});

describe('OpenAIEngine against a faulty server', () => {
  it('retries 500, a hang past the timeout, malformed JSON and 429 (Retry-After: 1), then succeeds', async () => {
    const { s, engine } = await faulty(['500', 'hang', 'malformed', '429']);
    const { c, retries } = client(s.baseUrl);
    const t0 = Date.now();
    const res = await c.chat.completions.create({ messages });
    const ms = Date.now() - t0;
    expect(res.choices[0]!.message.content).toMatch(/#### \d/);
    expect(s.log.map((l) => l.fault)).toEqual(['500', 'hang', 'malformed', '429', 'ok']);
    expect(retries.map((r) => r.attempt)).toEqual([1, 2, 3, 4]);
    expect(retries[0]!.reason).toMatch(/HTTP 500.*scripted internal error/);
    expect(retries[1]!.reason).toMatch(/timed out after 400 ms/);
    expect(retries[2]!.reason).toMatch(/malformed JSON from http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions/);
    expect(retries[3]!.reason).toMatch(/HTTP 429/);
    expect(retries[3]!.delayMs).toBe(1000); // Retry-After honoured
    expect(ms).toBeGreaterThanOrEqual(1400); // 400 ms timeout + 1 s Retry-After
    expect(c.stats).toMatchObject({ requests: 1, attempts: 5, retries: 4, failures: 0 });
    expect(engine.calls).toBe(1);
    expect(s.inner.stats.completions).toBe(1);
    expect(res.usage.prompt_tokens).toBe(s.inner.stats.promptTokens);
  });

  it('honours Retry-After given as an HTTP date, and 503', async () => {
    const { s } = await faulty(['429-date', '503']);
    const { c, retries } = client(s.baseUrl);
    await c.chat.completions.create({ messages });
    expect(retries).toHaveLength(2);
    expect(retries[0]!.delayMs).toBeGreaterThan(200);
    expect(retries[0]!.delayMs).toBeLessThanOrEqual(1500);
    expect(retries[1]!.delayMs).toBe(1000);
  });

  it('gives up after maxRetries with an error naming the URL, the attempts and why', async () => {
    const { s } = await faulty([], { after: '500' });
    const { c } = client(s.baseUrl, { maxRetries: 2 });
    const err = (await c.chat.completions.create({ messages }).catch((e) => e)) as OpenAIEngineError;
    expect(err).toBeInstanceOf(OpenAIEngineError);
    expect(s.log).toHaveLength(3);
    expect(err.message).toContain(`POST ${s.baseUrl}/chat/completions gave up after 3 attempts`);
    expect(err.message).toContain('HTTP 500');
    expect(err.message).toContain('scripted internal error');
    expect(err.message).toMatch(/attempt 1: .*\n.*attempt 2: .*\n.*attempt 3: /);
    expect(err.attempt).toBe(3);
    expect(err.status).toBe(500);
    expect(err.url).toBe(`${s.baseUrl}/chat/completions`);
  });

  it('does not retry other 4xx; the error quotes status and body', async () => {
    const { s } = await faulty(['400']);
    const { c, retries } = client(s.baseUrl);
    const err = (await c.chat.completions.create({ messages }).catch((e) => e)) as OpenAIEngineError;
    expect(s.log).toHaveLength(1);
    expect(retries).toHaveLength(0);
    expect(err.message).toMatch(
      /failed on attempt 1\/5 \(not retryable\): HTTP 400 Bad Request: scripted bad request: messages is broken/,
    );
    expect(err.retryable).toBe(false);
  });

  it('retries connection drops; a dead endpoint names the URL', async () => {
    const { s } = await faulty(['drop', 'drop']);
    const { c, retries } = client(s.baseUrl);
    await c.chat.completions.create({ messages });
    expect(retries.map((r) => r.reason.startsWith('network error'))).toEqual([true, true]);
    const dead = new OpenAIEngine({ baseUrl: 'http://127.0.0.1:9/v1', model: 'x', maxRetries: 1, backoffMs: 1 });
    await expect(dead.chat.completions.create({ messages })).rejects.toThrow(
      /POST http:\/\/127\.0\.0\.1:9\/v1\/chat\/completions gave up after 2 attempts: network error/,
    );
  });

  it('streaming: retried before the first chunk (bad SSE, 500), content equals non-streaming', async () => {
    const { s } = await faulty(['bad-sse', '500']);
    const { c, retries } = client(s.baseUrl);
    const req = { messages, seed: 9, temperature: 0.4 };
    const streamed = await collectStream(await c.chat.completions.create({ ...req, stream: true }));
    expect(retries).toHaveLength(2);
    expect(retries[0]!.reason).toMatch(/malformed JSON in event stream from http/);
    const plain = await c.chat.completions.create({ ...req, stream: false });
    expect(streamed.choices[0]!.message.content).toBe(plain.choices[0]!.message.content);
    expect(streamed.usage).toEqual(plain.usage);
    expect(streamed.usage.completion_tokens).toBeGreaterThan(0);
  });

  it('the semaphore bounds requests in flight', async () => {
    const engine = createFakeEngine({ delayMs: 30 });
    const { s } = await faulty([], { engine });
    const { c } = client(s.baseUrl, { concurrency: 3, timeoutMs: 5000 });
    await Promise.all(
      Array.from({ length: 9 }, (_, i) =>
        c.chat.completions.create({ messages: [{ role: 'user', content: `q${i}` }] }),
      ),
    );
    expect(engine.calls).toBe(9);
    expect(engine.maxInFlight).toBe(3);
  });

  it('a caller abort resolves with finish_reason abort, without retries', async () => {
    const engine = createFakeEngine({ delayMs: 3000 });
    const { s } = await faulty([], { engine });
    const { c, retries } = client(s.baseUrl, { timeoutMs: 10_000 });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const t0 = Date.now();
    const res = await c.chat.completions.create({ messages }, { signal: ac.signal });
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(res.choices[0]!.finish_reason).toBe('abort');
    expect(retries).toHaveLength(0);
  });

  it('models() lists the served ids; sends the API key', async () => {
    const { s } = await faulty(['500']);
    const { c } = client(s.baseUrl, { apiKey: 'sk-test' });
    expect(await c.models()).toEqual(['fake-model']);
    expect(s.log.map((l) => l.path)).toEqual(['/v1/models', '/v1/models']);
  });

  it('a debate set through faults: retries absorbed, failed questions not written, rerun completes, no line lost', async () => {
    // 2 agents x 1 round + vote = 2 calls per question, concurrency 1 → deterministic order.
    const questions: Question[] = Array.from({ length: 4 }, (_, i) => ({
      id: `q${i}`,
      question: `What is ${i} + 1?`,
      answer: `#### ${i + 1}`,
      task: 'gsm8k',
    }));
    const { s } = await faulty(['500', 'malformed', 'ok', 'ok', 'ok', '429', '500', '500', '500']);
    const { c, retries } = client(s.baseUrl, { maxRetries: 2 });
    const out = path.join(dir, 'faults.jsonl');
    const errors: string[] = [];
    const r1 = await runDebateSet(
      questions,
      { numAgents: 2, rounds: 1, aggregator: 'vote', engines: c },
      { out, onError: (e) => errors.push(e.message) },
    );
    // Requests are serialized (concurrency 1): q0's agents get 500 and malformed, then ok, ok;
    // q1's first agent ok, its second 429, 500, 500 → gives up; q2 absorbs the last 500.
    expect(retries).toHaveLength(5);
    expect(r1.failed).toHaveLength(1);
    expect(errors[0]).toMatch(/gave up after 3 attempts: HTTP 500/);
    expect(r1.completed).toBe(3);
    const written = await readTrajectories(out);
    expect(written).toHaveLength(3);
    const failedId = r1.failed[0]!.id;
    expect(written.map((r) => r.id)).not.toContain(failedId);
    // Calls and tokens in the log equal what the server actually served (successful requests only)...
    const served = s.inner.stats;
    // ...except the one call of the failed question that succeeded before its other agent gave up.
    const recorded = written.reduce((n, r) => n + r.totals.calls, 0);
    expect(recorded).toBe(6);
    expect(served.completions).toBe(7);
    // Rerun: only the failed question is debated; the log then holds every question exactly once.
    const r2 = await runDebateSet(questions, { numAgents: 2, rounds: 1, aggregator: 'vote', engines: c }, { out });
    expect(r2).toMatchObject({ skipped: 3, completed: 1, failed: [] });
    const all = await readTrajectories(out);
    expect(all.map((r) => r.id).sort()).toEqual(['q0', 'q1', 'q2', 'q3']);
    expect(all.every((r) => r.rounds[0]!.messages.length === 2)).toBe(true);
  });
});
