import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  TRAJECTORY_SCHEMA,
  TrajectoryParseError,
  openTrajectoryLog,
  parseTrajectoryLine,
  readTrajectories,
  summarizeTrajectories,
  type TrajectoryRecord,
} from '../../src/teach/trajectory';

// biome-ignore lint/suspicious/noExplicitAny: the tests mutate records as free-form JSON
type FreeJson = any;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function makeRecord(id: string, correct = true, pad = ''): TrajectoryRecord {
  const msg = (agent: string, ok: boolean) => ({
    agent,
    model: 'm',
    params: { temperature: 0.7, top_p: 1, max_tokens: 64, seed: null },
    prompt: [
      { role: 'system' as const, content: 'sys' },
      { role: 'user' as const, content: `question ${id}${pad}` },
    ],
    completion: ok ? '#### 7' : '#### 8',
    usage: { prompt_tokens: 10, completion_tokens: 3 },
    latencyMs: 1.5,
    extracted: ok ? '7' : '8',
    correct: ok,
    finish_reason: 'stop' as const,
  });
  return {
    schema: TRAJECTORY_SCHEMA,
    id,
    question: `question ${id}`,
    reference: '#### 7',
    task: 'gsm8k',
    config: { agents: 2, rounds: 2, aggregator: 'vote' },
    rounds: [
      { round: 1, messages: [msg('agent1', false), msg('agent2', correct)] },
      { round: 2, messages: [msg('agent1', correct), msg('agent2', correct)] },
    ],
    aggregator: { kind: 'vote', extracted: correct ? '7' : '8', correct },
    final: { answer: correct ? '7' : '8', correct },
    totals: { calls: 4, promptTokens: 40, completionTokens: 12, wallMs: 10 },
    createdAt: new Date(0).toISOString(),
  };
}

let dir: string;
beforeAll(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'traj-'));
});
afterAll(async () => {
  await fsp.rm(dir, { recursive: true, force: true });
});

describe('parseTrajectoryLine', () => {
  it('accepts a valid record and round-trips it', () => {
    const r = makeRecord('a');
    expect(parseTrajectoryLine(JSON.stringify(r), 1)).toEqual(r);
  });

  it('rejects bad lines with the line number and the field', () => {
    const bad = (mut: (r: Record<string, FreeJson>) => void) => {
      const r = JSON.parse(JSON.stringify(makeRecord('x'))) as Record<string, FreeJson>;
      mut(r);
      return JSON.stringify(r);
    };
    expect(() => parseTrajectoryLine('{"schema": ', 7)).toThrow(/line 7: not valid JSON/);
    expect(() =>
      parseTrajectoryLine(
        bad((r) => delete r.schema),
        3,
      ),
    ).toThrow(/line 3: missing "schema"/);
    expect(() =>
      parseTrajectoryLine(
        bad((r) => (r.schema = 'agentark.trajectory/2')),
        3,
      ),
    ).toThrow(/unsupported schema "agentark.trajectory\/2"/);
    expect(() =>
      parseTrajectoryLine(
        bad((r) => (r.rounds[1].messages[0].usage.prompt_tokens = '10')),
        4,
      ),
    ).toThrow(/rounds\[1\]\.messages\[0\]\.usage\.prompt_tokens must be an integer/);
    expect(() =>
      parseTrajectoryLine(
        bad((r) => (r.rounds[0].messages[1].prompt = [{ role: 'user' }])),
        4,
      ),
    ).toThrow(/prompt\[0\] must be \{role, content\}/);
    expect(() =>
      parseTrajectoryLine(
        bad((r) => (r.task = 'squad')),
        2,
      ),
    ).toThrow(/task must be gsm8k, math, mc or qa/);
    expect(() =>
      parseTrajectoryLine(
        bad((r) => (r.final.correct = 'yes')),
        2,
      ),
    ).toThrow(/final\.correct must be a boolean/);
    expect(() =>
      parseTrajectoryLine(
        bad((r) => (r.aggregator = { kind: 'llm', extracted: '7', correct: true })),
        2,
      ),
    ).toThrow(/aggregator\.completion must be a string/);
    expect(() =>
      parseTrajectoryLine(
        bad((r) => delete r.totals.wallMs),
        2,
      ),
    ).toThrow(/totals\.wallMs/);
    expect(() => parseTrajectoryLine('[1,2]', 9)).toThrow(TrajectoryParseError);
  });
});

describe('openTrajectoryLog', () => {
  it('appends, reports finished ids on reopen, and reads back', async () => {
    const file = path.join(dir, 'sub', 'a.jsonl');
    const log = await openTrajectoryLog(file);
    expect(log.finishedIds.size).toBe(0);
    await Promise.all([log.append(makeRecord('1')), log.append(makeRecord('2', false)), log.append(makeRecord('3'))]);
    expect([...log.finishedIds].sort()).toEqual(['1', '2', '3']);
    await log.close();
    const log2 = await openTrajectoryLog(file);
    expect([...log2.finishedIds].sort()).toEqual(['1', '2', '3']);
    expect(log2.warnings).toEqual([]);
    await log2.append(makeRecord('4'));
    await log2.close();
    const recs = await readTrajectories(file);
    expect(recs.map((r) => r.id).sort()).toEqual(['1', '2', '3', '4']);
    const text = await fsp.readFile(file, 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(text.trim().split('\n')).toHaveLength(4);
    await expect(log2.append(makeRecord('5'))).rejects.toThrow(/closed/);
  });

  it('refuses to write an invalid record', async () => {
    const log = await openTrajectoryLog(path.join(dir, 'inv.jsonl'));
    const r = makeRecord('x') as FreeJson;
    delete r.final;
    await expect(log.append(r)).rejects.toThrow(/final must be an object/);
    await log.close();
    expect(await fsp.readFile(path.join(dir, 'inv.jsonl'), 'utf8')).toBe('');
  });

  it('truncates a partial last line (crash mid-write), warning with its byte offset, keeping complete lines', async () => {
    const file = path.join(dir, 'crash.jsonl');
    const good = `${JSON.stringify(makeRecord('1'))}\n${JSON.stringify(makeRecord('2'))}\n`;
    const partial = JSON.stringify(makeRecord('3')).slice(0, 57);
    await fsp.writeFile(file, good + partial);
    const warnings: string[] = [];
    const log = await openTrajectoryLog(file, { onWarning: (m) => warnings.push(m) });
    const offset = Buffer.byteLength(good);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`byte offset ${offset}`);
    expect(warnings[0]).toContain(`${partial.length} bytes`);
    expect([...log.finishedIds]).toEqual(['1', '2']);
    expect((await fsp.stat(file)).size).toBe(offset);
    await log.append(makeRecord('3'));
    await log.close();
    expect((await readTrajectories(file)).map((r) => r.id)).toEqual(['1', '2', '3']);
  });

  it("refuses, untouched, a file that is not a trajectory log (debate --out on someone else's file)", async () => {
    const cases: [string, string][] = [
      ['results.json', '{"accuracy": 0.5, "runs": [1, 2, 3]}'], // one JSON line, no newline
      ['pretty.json', '{\n  "accuracy": 0.5\n}\n'],
      ['notes.txt', 'some notes\nmore notes'],
      ['after-ours.jsonl', `${JSON.stringify(makeRecord('1'))}\nsomething else without a newline`],
      ['short.jsonl', '{"sch'], // a prefix of a record, but with no record of ours before it
    ];
    for (const [name, content] of cases) {
      const file = path.join(dir, name);
      await fsp.writeFile(file, content);
      await expect(openTrajectoryLog(file), name).rejects.toThrow(
        /refusing to (write|append) to it, the file is left untouched/,
      );
      expect(await fsp.readFile(file, 'utf8'), name).toBe(content);
    }
    // A first record cut mid-write is ours: repaired.
    const first = path.join(dir, 'first-cut.jsonl');
    await fsp.writeFile(first, JSON.stringify(makeRecord('1')).slice(0, 80));
    const log = await openTrajectoryLog(first);
    await log.close();
    expect(await fsp.readFile(first, 'utf8')).toBe('');
  });

  it('validates numbers used as indices and sizes (round 1e9 is an error, not a heap crash)', () => {
    const bad = (mutate: (r: Record<string, FreeJson>) => void, re: RegExp) => {
      const r = JSON.parse(JSON.stringify(makeRecord('1')));
      mutate(r);
      expect(() => parseTrajectoryLine(JSON.stringify(r), 3)).toThrow(re);
    };
    bad((r) => (r.rounds[1].round = 1e9), /line 3: rounds\[1\]\.round must be an integer in \[1, 2\], got 1000000000/);
    bad((r) => (r.rounds[0].round = 0), /rounds\[0\]\.round must be an integer/);
    bad((r) => (r.rounds[0].round = 1.5), /rounds\[0\]\.round must be an integer/);
    bad((r) => (r.config.rounds = 1e9), /config\.rounds must be an integer in \[1, 1000\]/);
    bad((r) => (r.config.agents = -1), /config\.agents must be an integer/);
    bad((r) => (r.config.rounds = 1), /rounds has 2 entries but config\.rounds is 1/);
    bad((r) => (r.rounds[0].messages[0].usage.prompt_tokens = -5), /usage\.prompt_tokens must be an integer/);
    bad((r) => (r.totals.calls = 0.5), /totals\.calls must be an integer/);
  });

  it('readTrajectories skips (but does not repair) a partial tail', async () => {
    const file = path.join(dir, 'tail.jsonl');
    await fsp.writeFile(file, `${JSON.stringify(makeRecord('1'))}\n{"schema":"agentark.tr`);
    const w: string[] = [];
    expect((await readTrajectories(file, { onWarning: (m) => w.push(m) })).map((r) => r.id)).toEqual(['1']);
    expect(w[0]).toMatch(/partial last line/);
    expect((await fsp.readFile(file, 'utf8')).endsWith('"agentark.tr')).toBe(true);
  });

  it('a complete last line missing only its newline is kept and the newline added', async () => {
    const file = path.join(dir, 'nonl.jsonl');
    await fsp.writeFile(file, `${JSON.stringify(makeRecord('1'))}\n${JSON.stringify(makeRecord('2'))}`);
    const log = await openTrajectoryLog(file);
    expect([...log.finishedIds]).toEqual(['1', '2']);
    await log.append(makeRecord('3'));
    await log.close();
    expect((await readTrajectories(file)).map((r) => r.id)).toEqual(['1', '2', '3']);
  });

  it('a corrupt complete line is an error naming the line, not silently dropped', async () => {
    const file = path.join(dir, 'corrupt.jsonl');
    const content = `${JSON.stringify(makeRecord('1'))}\n{"oops": 1}\n${JSON.stringify(makeRecord('2'))}\n`;
    await fsp.writeFile(file, content);
    await expect(openTrajectoryLog(file)).rejects.toThrow(/line 2: .*missing "schema"/);
    await expect(readTrajectories(file)).rejects.toThrow(/line 2/);
    expect(await fsp.readFile(file, 'utf8')).toBe(content);
  });

  it('survives SIGKILL during appends: only complete lines, or one partial tail that the next open repairs', async () => {
    const file = path.join(dir, 'killed.jsonl');
    const child = path.join(dir, 'writer.mts');
    const trajPath = path.join(repoRoot, 'src/teach/trajectory.ts');
    // The child appends copies of one big record with ids 0, 1, 2, ...
    const template = makeRecord('0', true, 'x'.repeat(20000));
    await fsp.writeFile(
      child,
      `import { openTrajectoryLog } from ${JSON.stringify(trajPath)};
       const template = ${JSON.stringify(template)};
       const log = await openTrajectoryLog(${JSON.stringify(file)});
       process.stdout.write('ready');
       for (let i = 0; i < 20000; i++) await log.append({ ...template, id: String(i), question: 'question ' + i });
       await log.close();
      `,
    );
    const proc = spawn(process.execPath, ['--import', 'tsx', child], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
    let stderr = '';
    proc.stderr.on('data', (d) => (stderr += d));
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`writer did not start: ${stderr}`)), 60_000);
      proc.stdout.on('data', () => {
        clearTimeout(t);
        resolve();
      });
      void exited.then((c) => reject(new Error(`writer exited early (${c}): ${stderr}`)));
    });
    // Let it write for a while, then kill it hard.
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setTimeout(r, 25));
      const st = await fsp.stat(file).catch(() => null);
      if (st && st.size > 2_000_000) break;
    }
    proc.kill('SIGKILL');
    await exited;
    expect(stderr).toBe('');
    const buf = await fsp.readFile(file);
    expect(buf.length).toBeGreaterThan(0);
    const complete = buf
      .subarray(0, buf.lastIndexOf(0x0a) + 1)
      .toString('utf8')
      .split('\n')
      .filter(Boolean);
    expect(complete.length).toBeGreaterThan(3);
    complete.forEach((l, i) => expect(parseTrajectoryLine(l, i + 1).id).toBe(String(i))); // no duplicates, no gaps
    const log = await openTrajectoryLog(file);
    expect(log.finishedIds.size).toBe(complete.length);
    await log.append(makeRecord('after'));
    await log.close();
    const all = await readTrajectories(file);
    expect(all.map((r) => r.id)).toEqual([...complete.map((_, i) => String(i)), 'after']);
  });
});

describe('summarizeTrajectories', () => {
  it('computes final and per-round accuracy and token totals', () => {
    const s = summarizeTrajectories([makeRecord('1'), makeRecord('2', false), makeRecord('3')]);
    expect(s.questions).toBe(3);
    expect(s.correct).toBe(2);
    expect(s.accuracy).toBeCloseTo(2 / 3, 4);
    // round 1: agent1 always wrong, agent2 right when correct → 2/6; round 2: 4/6.
    expect(s.roundAccuracy[0]).toBeCloseTo(2 / 6, 4);
    expect(s.roundAccuracy[1]).toBeCloseTo(4 / 6, 4);
    expect(s.calls).toBe(12);
    expect(s.promptTokens).toBe(120);
    expect(s.completionTokens).toBe(36);
  });
});
