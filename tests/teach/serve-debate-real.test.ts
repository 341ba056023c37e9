/**
 * The teacher end to end over real HTTP with this project's own runtime: `agentark serve` runs a
 * tiny model on 127.0.0.1 and `agentark debate --engine openai` drives 3 agents x 2 rounds through
 * it; the JSONL holds every round, its calls/tokens equal what the server counted, and a debate
 * killed half-way and restarted yields every question exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeTinyModel } from '../helpers/tiny-model';
import { agentark, REPO_ROOT } from '../helpers/reference';

const CLI = path.join(REPO_ROOT, 'bin/agentark.js');
const GSM8K = path.resolve(REPO_ROOT, 'public/data/gsm8k/test.jsonl');
const children: ChildProcess[] = [];

afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

function modelDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentark-serve-'));
  writeTinyModel(dir, { arch: 'qwen2', dtype: 'F32', seed: 8 });
  // The debate prompts are longer than the tiny fixture's default 512 positions.
  const cfg = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  cfg.max_position_embeddings = 4096;
  writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  return dir;
}

async function startServe(dir: string): Promise<{ url: string; stop: () => Promise<string> }> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'serve',
      '--model',
      dir,
      '--port',
      '0',
      '--served-model-name',
      'tiny',
      '--context-length',
      '2048',
      '--max-batch',
      '6',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const m = out.match(/at (http:\/\/127\.0\.0\.1:\d+\/v1)/);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  return {
    url,
    stop: () =>
      new Promise<string>((resolve) => {
        child.on('exit', () => resolve(err));
        child.kill('SIGTERM');
      }),
  };
}

function debateArgs(url: string, out: string, limit: number): string[] {
  return [
    'debate',
    '--data',
    GSM8K,
    '--task',
    'gsm8k',
    '--out',
    out,
    '--engine',
    'openai',
    '--base-url',
    url,
    '--api-model',
    'tiny',
    '--agents',
    '3',
    '--rounds',
    '2',
    '--limit',
    String(limit),
    '--max-tokens',
    '12',
    '--temperature',
    '0.8',
    '--seed',
    '1',
  ];
}

describe('agentark serve + agentark debate --engine openai', () => {
  it('records every round; calls and tokens equal what the server counted', async () => {
    const dir = modelDir();
    const server = await startServe(dir);
    const out = path.join(dir, 'traj.jsonl');
    agentark(debateArgs(server.url, out, 2));
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(2);
    let calls = 0;
    let prompt = 0;
    let completion = 0;
    for (const rec of lines) {
      expect(rec.rounds.length).toBe(2);
      for (const round of rec.rounds) expect(round.messages.length).toBe(3);
      calls += rec.totals.calls;
      prompt += rec.totals.promptTokens;
      completion += rec.totals.completionTokens;
    }
    expect(calls).toBe(2 * (3 * 2 + 1));
    const stats = (await server.stop()).match(/stopped: (\d+) completions, (\d+) prompt \+ (\d+) completion tokens/);
    expect(stats).not.toBeNull();
    expect([Number(stats![1]), Number(stats![2]), Number(stats![3])]).toEqual([calls, prompt, completion]);
  });

  it('a debate killed half-way and restarted yields every question exactly once', async () => {
    const dir = modelDir();
    const server = await startServe(dir);
    const out = path.join(dir, 'traj.jsonl');
    await new Promise<void>((resolve) => {
      const child = spawn(process.execPath, [CLI, ...debateArgs(server.url, out, 3)], { stdio: 'ignore' });
      children.push(child);
      const timer = setInterval(() => {
        let text = '';
        try {
          text = readFileSync(out, 'utf8');
        } catch {
          return;
        }
        if (text.split('\n').filter(Boolean).length >= 1) {
          child.kill('SIGKILL');
          clearInterval(timer);
        }
      }, 50);
      child.on('exit', () => {
        clearInterval(timer);
        resolve();
      });
    });
    const partial = readFileSync(out, 'utf8').trim().split('\n').length;
    expect(partial).toBeLessThan(3);
    agentark(debateArgs(server.url, out, 3));
    const ids = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l).id);
    expect(ids.length).toBe(3);
    expect(new Set(ids).size).toBe(3);
    await server.stop();
  });
});
