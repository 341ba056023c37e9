/**
 * `agentark prm train` (BCE + 0.5 x SupCon, both held-out AUCs reported) and `agentark rl` (PRMVR
 * from the base by default, `--reward scalar` the earlier mode) end to end on a tiny model.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { run as prmRun } from '../../src/cli/prm';
import { run as rlRun } from '../../src/cli/rl';
import { parsePrmHead } from '../../src/distill/prm';
import { writeTinyModel } from '../helpers/tiny-model';

async function capture(fn: () => Promise<number>) {
  let out = '';
  let err = '';
  const o = vi.spyOn(console, 'log').mockImplementation((s: unknown) => void (out += `${String(s)}\n`));
  const w = vi
    .spyOn(process.stdout, 'write')
    .mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi
    .spyOn(process.stderr, 'write')
    .mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  try {
    return { code: await fn(), out, err };
  } finally {
    o.mockRestore();
    w.mockRestore();
    e.mockRestore();
  }
}

describe('agentark prm train / rl', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'agentark-prm-rl-cli-'));
  const model = path.join(dir, 'model');
  writeTinyModel(model, { arch: 'qwen2', dtype: 'F32', seed: 4 });
  // AgentArk-style PAD rows: whole solutions as completions, mixed labels.
  const rows = Array.from({ length: 10 }, (_, i) => ({
    prompt: `What is ${i} + ${i}?`,
    completions: [
      `${i} + ${i} = ${2 * i}. The answer is ${2 * i}.`,
      `${i} + ${i} = ${2 * i + 1}. The answer is ${2 * i + 1}.`,
      `Final Answer: ${2 * i}`,
    ],
    labels: [true, false, true],
  }));
  const pad = path.join(dir, 'pad.jsonl');
  writeFileSync(pad, rows.map((r) => JSON.stringify(r)).join('\n'));
  const questions = path.join(dir, 'q.jsonl');
  writeFileSync(
    questions,
    Array.from({ length: 3 }, (_, i) =>
      JSON.stringify({ question: `What is ${i} + 1?`, answer: `#### ${i + 1}` }),
    ).join('\n'),
  );

  it('prm train reports held-out AUC with and without the contrastive term and writes the head', async () => {
    const out = path.join(dir, 'prm');
    const r = await capture(() =>
      prmRun([
        'train',
        '--model',
        model,
        '--data',
        pad,
        '--out',
        out,
        '--epochs',
        '5',
        '--holdout',
        '0.3',
        '--seed',
        '1',
        '--dim',
        '8',
      ]),
    );
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.out.trim().split('\n').pop()!);
    expect(summary).toMatchObject({ trainRows: 7, heldOutRows: 3, trainSteps: 21, heldOutSteps: 9, contrastive: 0.5 });
    expect(typeof summary.heldOutAuc).toBe('number');
    expect(summary.heldOutAucOther).toEqual({ contrastive: 0, auc: expect.any(Number) });
    const head = parsePrmHead(readFileSync(path.join(out, 'prm_head.safetensors')));
    expect(head.proj?.dim).toBe(8);
    const again = await capture(() =>
      prmRun([
        'train',
        '--model',
        model,
        '--data',
        pad,
        '--out',
        path.join(dir, 'prm0'),
        '--epochs',
        '2',
        '--contrastive',
        '0',
      ]),
    );
    expect(JSON.parse(again.out.trim().split('\n').pop()!)).toMatchObject({
      contrastive: 0,
      heldOutAucOther: { contrastive: 0.5, auc: expect.any(Number) },
    });
  });

  it('rl: PRMVR from the base by default; --reward scalar; --help names the defaults', async () => {
    const r = await capture(() =>
      rlRun([
        '--model',
        model,
        '--data',
        questions,
        '--prm',
        path.join(dir, 'prm'),
        '--out',
        path.join(dir, 'rl'),
        '--samples',
        '2',
        '--prompts-per-step',
        '1',
        '--steps',
        '1',
        '--max-tokens',
        '4',
        '--rank',
        '2',
        '--alpha',
        '4',
      ]),
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out.trim().split('\n').pop()!)).toMatchObject({ reward: 'prmvr', from: 'base', steps: 1 });
    const s = await capture(() =>
      rlRun([
        '--model',
        model,
        '--data',
        questions,
        '--reward',
        'scalar',
        '--out',
        path.join(dir, 'rl2'),
        '--samples',
        '2',
        '--prompts-per-step',
        '1',
        '--steps',
        '1',
        '--max-tokens',
        '4',
        '--rank',
        '2',
        '--alpha',
        '4',
      ]),
    );
    expect(JSON.parse(s.out.trim().split('\n').pop()!)).toMatchObject({ reward: 'scalar', from: 'base' });
    const help = await capture(() => rlRun(['--help']));
    expect(help.out).toMatch(/--reward M +prmvr \(default/);
    expect(help.out).toMatch(/--samples N .*\(default 8/);
    expect(help.out).toMatch(/--kl X .*default prmvr 0\.001, in the reward/);
    expect(help.out).toMatch(/--init-adapter DIR .*default: from the base model/s);
    await expect(
      rlRun(['--model', model, '--data', questions, '--out', path.join(dir, 'x'), '--reward', 'best']),
    ).rejects.toThrow(/--reward must be prmvr or scalar/);
  });
});
