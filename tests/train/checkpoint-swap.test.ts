/**
 * The checkpoint folder swap survives a kill at any point: resume finds and completes (or rolls
 * back) an interrupted swap, and --resume fails loudly on debris it cannot use instead of quietly
 * starting from step 0.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recoverInterruptedSwap, resumeCheckpoint, writeFilesAtomically } from '../../src/train/checkpoint';
import type { Trainer } from '../../src/train/trainer';

let root: string;
let n = 0;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'agentark-swap-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const fresh = () => path.join(root, `case${n++}`, 'checkpoint');
const write = (dir: string, step: number) => {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'step.txt'), String(step));
};
const stepOf = (dir: string) => Number(fs.readFileSync(path.join(dir, 'step.txt'), 'utf8'));
const siblings = (dir: string) => fs.readdirSync(path.dirname(dir)).sort();
/** Only the error paths run before a trainer is touched. */
const noTrainer = {} as Trainer;

describe('checkpoint folder swap', () => {
  it('writeFilesAtomically replaces the folder and leaves nothing else behind', async () => {
    const dir = fresh();
    await writeFilesAtomically(dir, { 'step.txt': '1' });
    await writeFilesAtomically(dir, { 'step.txt': '2' });
    expect(stepOf(dir)).toBe(2);
    expect(siblings(dir)).toEqual(['checkpoint']);
  });

  it('killed between the two renames (old + ready, no folder): the newer checkpoint is put in place', async () => {
    const dir = fresh();
    write(`${dir}.old-111`, 50);
    write(`${dir}.ready-111`, 100);
    const notes: string[] = [];
    await expect(resumeCheckpoint(dir, noTrainer, (m) => notes.push(m))).rejects.toThrow(/no trainer_state\.json/); // our fake checkpoint has no state file
    expect(stepOf(dir)).toBe(100);
    expect(siblings(dir)).toEqual(['checkpoint']);
    expect(notes.join('\n')).toMatch(/completed an interrupted swap: checkpoint\.ready-111 → checkpoint/);
    expect(notes.join('\n')).toMatch(/removed a superseded copy: checkpoint\.old-111/);
  });

  it('killed while writing the new files (old folder renamed away is impossible then; tmp only): the folder stays, tmp goes', async () => {
    const dir = fresh();
    write(dir, 50);
    write(`${dir}.tmp-222`, 100); // unfinished
    expect(await recoverInterruptedSwap(dir)).toEqual(['removed an unfinished write: checkpoint.tmp-222']);
    expect(stepOf(dir)).toBe(50);
    expect(siblings(dir)).toEqual(['checkpoint']);
  });

  it('killed after the first rename with an unfinished newer write: rolled back to the old folder', async () => {
    const dir = fresh();
    write(`${dir}.old-333`, 50);
    write(`${dir}.tmp-333`, 100);
    const done = await recoverInterruptedSwap(dir);
    expect(done[0]).toMatch(/restored checkpoint from checkpoint\.old-333/);
    expect(stepOf(dir)).toBe(50);
    expect(siblings(dir)).toEqual(['checkpoint']);
  });

  it('a complete write renamed to ready before the old folder moved: the newer one wins', async () => {
    const dir = fresh();
    write(dir, 50);
    write(`${dir}.ready-444`, 100);
    await recoverInterruptedSwap(dir);
    expect(stepOf(dir)).toBe(100);
    expect(siblings(dir)).toEqual(['checkpoint']);
  });

  it('--resume fails loudly on debris it cannot use, and on a folder that is not a checkpoint', async () => {
    const dir = fresh();
    write(`${dir}.tmp-555`, 100); // the first checkpoint was being written: nothing complete
    await expect(resumeCheckpoint(dir, noTrainer)).rejects.toThrow(
      /no .*checkpoint, but unfinished checkpoint writes are next to it \(checkpoint\.tmp-555\); they cannot be resumed from\. Delete them/,
    );
    expect(fs.existsSync(`${dir}.tmp-555`)).toBe(true); // left for the user to inspect

    const other = fresh();
    write(other, 1);
    await expect(resumeCheckpoint(other, noTrainer)).rejects.toThrow(
      /exists but has no trainer_state\.json \(it holds step\.txt\)/,
    );
    fs.writeFileSync(path.join(other, 'trainer_state.json'), '{}');
    await expect(resumeCheckpoint(other, noTrainer)).rejects.toThrow(
      /trainer_state\.safetensors cannot be read \(ENOENT\); the checkpoint is incomplete/,
    );

    // Nothing at all: a fresh start, no error.
    expect(await resumeCheckpoint(fresh(), noTrainer)).toBeNull();
  });

  it("someone else's similarly named folders are left alone", async () => {
    const dir = fresh();
    write(dir, 1);
    write(`${dir}.backup`, 2);
    write(`${dir}.old-notanumber`, 3);
    expect(await recoverInterruptedSwap(dir)).toEqual([]);
    expect(siblings(dir)).toEqual(['checkpoint', 'checkpoint.backup', 'checkpoint.old-notanumber']);
  });
});
