/** `agentark debate` end to end against a local OpenAI-compatible server. */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { run } from '../../src/cli/debate';
import { serveEngine } from '../../src/cli/serve-http';
import { startServer } from '../../src/engine/server';
import { readTrajectories } from '../../src/teach/trajectory';
import { createFakeEngine } from '../helpers/fake-engine';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const gsm8k = path.resolve(repoRoot, 'public/data/gsm8k/test.jsonl');

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'debate-cli-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

async function capture<T>(fn: () => Promise<T>) {
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

describe('agentark debate', () => {
  it('runs over HTTP, prints a line per question and a JSON summary, and resumes', async () => {
    const engine = createFakeEngine();
    const server = await startServer(engine, { modelId: 'fake' });
    try {
      const out = path.join(dir, 'traj.jsonl');
      const args = [
        '--data',
        gsm8k,
        '--task',
        'gsm8k',
        '--out',
        out,
        '--agents',
        '3',
        '--rounds',
        '2',
        '--aggregator',
        'vote',
        '--engine',
        'openai',
        '--base-url',
        server.baseUrl,
        '--api-model',
        'fake',
        '--seed',
        '3',
        '--max-tokens',
        '128',
        '--temperature',
        '0.8',
        '--quote',
        'answer',
        '--restate-question',
      ];
      const r = await capture(() => run([...args, '--limit', '3', '--concurrency', '2']));
      expect(r.code).toBe(0);
      expect(r.err.match(/^\[\d\/3\] .*final=.*\| r1 \d\/3 r2 \d\/3 \| 6 calls/gm)).toHaveLength(3);
      const s = JSON.parse(r.out);
      expect(s).toMatchObject({
        questions: 3,
        calls: 18,
        out,
        run: { completed: 3, skipped: 0, failed: 0, aborted: false },
      });
      expect(s.roundAccuracy).toHaveLength(2);
      expect(typeof s.accuracy).toBe('number');
      expect(s.promptTokens).toBe(server.stats.promptTokens);
      expect(s.completionTokens).toBe(server.stats.completionTokens);
      const recs = await readTrajectories(out);
      expect(recs).toHaveLength(3);
      expect(recs[0]!.rounds[0]!.messages[0]!.params).toEqual({ temperature: 0.8, top_p: 1, max_tokens: 128, seed: 3 });
      expect(recs[0]!.rounds[0]!.messages[0]!.model).toBe('fake');
      // --quote answer --restate-question: round 2 reads "#### n" lines, then the question again.
      const turn = recs[0]!.rounds[1]!.messages[0]!.prompt[3]!.content;
      expect(turn).toContain(`--- agent2 ---\n#### ${recs[0]!.rounds[0]!.messages[1]!.extracted}\n`);
      expect(turn).toContain(`Question: ${recs[0]!.question}`);
      // Resume with a larger limit: only the new questions are debated; the summary covers all 4.
      const before = server.stats.completions;
      const r2 = await capture(() => run([...args, '--limit', '4']));
      expect(r2.code).toBe(0);
      expect(JSON.parse(r2.out)).toMatchObject({ questions: 4, run: { completed: 1, skipped: 3 } });
      expect(server.stats.completions - before).toBe(6);
    } finally {
      await server.close();
    }
  });

  it('usage errors exit 2 with the usage text; unavailable engines fail clearly', async () => {
    const bad = await capture(() => run(['--nope']));
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/usage: agentark debate/);
    expect((await capture(() => run(['--data', 'x']))).err).toMatch(/--out is required/);
    expect(
      (
        await capture(() =>
          run(['--data', 'x', '--out', 'y', '--aggregator', 'mean', '--base-url', 'http://127.0.0.1:1/v1']),
        )
      ).err,
    ).toMatch(/--aggregator must be llm or vote/);
    expect(
      (await capture(() => run(['--data', 'x', '--out', 'y', '--agents', '0', '--base-url', 'http://127.0.0.1:1/v1'])))
        .err,
    ).toMatch(/--agents must be an integer >= 1/);
    expect(
      (
        await capture(() =>
          run(['--data', 'x', '--out', 'y', '--quote', 'summary', '--base-url', 'http://127.0.0.1:1/v1']),
        )
      ).err,
    ).toMatch(/--quote must be solution or answer/);
    expect(
      (
        await capture(() =>
          run(['--data', 'x', '--out', 'y', '--prompt-style', 'tiny', '--base-url', 'http://127.0.0.1:1/v1']),
        )
      ).err,
    ).toMatch(/--prompt-style must be default or compact/);
    expect((await capture(() => run(['--data', 'x', '--out', 'y', '--engine', 'openai']))).err).toMatch(
      /needs --base-url/,
    );
    expect((await capture(() => run(['--data', 'x', '--out', 'y', '--engine', 'local']))).err).toMatch(/needs --model/);
    const help = await capture(() => run(['--help']));
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/--aggregator/);
  });

  it('a dead endpoint: questions fail after retries, nothing is written, exit code 1', async () => {
    const out = path.join(dir, 'dead.jsonl');
    const r = await capture(() =>
      run([
        '--data',
        gsm8k,
        '--out',
        out,
        '--limit',
        '2',
        '--agents',
        '2',
        '--rounds',
        '1',
        '--base-url',
        'http://127.0.0.1:9/v1',
        '--max-retries',
        '1',
        '--timeout-ms',
        '2000',
      ]),
    );
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /error on test\.jsonl#1: POST http:\/\/127\.0\.0\.1:9\/v1\/chat\/completions gave up after 2 attempts/,
    );
    expect(JSON.parse(r.out)).toMatchObject({ questions: 0, run: { completed: 0, failed: 2 } });
    expect(await fsp.readFile(out, 'utf8')).toBe('');
  });
});

describe('serveEngine', () => {
  it('prints the URL, serves, and stops on its signal', async () => {
    const ac = new AbortController();
    let url = '';
    const r = await capture(() =>
      serveEngine(createFakeEngine(), {
        port: 0,
        modelId: 'fake-served',
        signal: ac.signal,
        onListening: (s) => {
          url = s.baseUrl;
          void fetch(`${s.baseUrl}/models`)
            .then((res) => res.json())
            .then((j) => {
              expect((j as { data: { id: string }[] }).data[0]!.id).toBe('fake-served');
              ac.abort();
            });
        },
      }),
    );
    expect(r.code).toBe(0);
    expect(r.out).toContain(`serving fake-served at ${url}`);
  });
});
