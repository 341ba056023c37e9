/** The CLI's one flag layer: every command reports bad flags the same way. */
import { describe, expect, it, vi } from 'vitest';
import { choiceFlag, floatFlag, intFlag, parseFlags, reportUsageError, UsageError } from '../../src/cli/args';
import { main } from '../../src/cli/main';

describe('CLI flags', () => {
  it('reads integers and numbers with bounds, naming the flag and the value on error', () => {
    expect(intFlag(undefined, 'n', 5)).toBe(5);
    expect(intFlag(undefined, 'n')).toBeUndefined();
    expect(intFlag('7', 'n', 5, { min: 1 })).toBe(7);
    expect(() => intFlag('0', 'agents', 5, { min: 1 })).toThrow(
      new UsageError('--agents must be an integer >= 1, got "0"'),
    );
    expect(() => intFlag('1.5', 'n')).toThrow(/--n must be an integer, got "1.5"/);
    expect(() => intFlag('', 'n')).toThrow(/--n must be an integer/);
    expect(floatFlag('0.5', 'top-p', undefined, { above: 0, max: 1 })).toBe(0.5);
    expect(() => floatFlag('0', 'top-p', undefined, { above: 0, max: 1 })).toThrow(
      /--top-p must be a number in \(0, 1\], got "0"/,
    );
    expect(() => floatFlag('3', 't', 0, { min: 0, max: 2 })).toThrow(/--t must be a number in \[0, 2\]/);
    expect(() => floatFlag('x', 't')).toThrow(/--t must be a number, got "x"/);
    expect(choiceFlag(undefined, 'q', ['a', 'b'], 'a')).toBe('a');
    expect(choiceFlag('b', 'q', ['a', 'b'])).toBe('b');
    expect(() => choiceFlag('c', 'q', ['a', 'b', 'd'])).toThrow(/--q must be a, b or d, got "c"/);
  });

  it('parses flags, prints the usage for --help and turns parse errors into usage errors carrying it', () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(parseFlags(['--x', '1'], { x: { type: 'string' } }, 'usage: x')).toEqual({ x: '1' });
      expect(parseFlags(['-h'], { x: { type: 'string' } }, 'usage: x')).toBeNull();
      expect(out).toHaveBeenCalledWith('usage: x\n');
    } finally {
      out.mockRestore();
    }
    let err: unknown;
    try {
      parseFlags(['--y'], { x: { type: 'string' } }, 'usage: x');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as UsageError).usage).toBe('usage: x');
  });

  it('reports usage errors as "agentark <command>: message" plus the usage, exit code 2, from every command', async () => {
    let text = '';
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
      text += String(s);
      return true;
    });
    try {
      expect(reportUsageError('x', new UsageError('bad', 'usage: x'))).toBe(2);
      expect(text).toBe('agentark x: bad\n\nusage: x\n');
      const cases: [string, string[], RegExp][] = [
        ['generate', ['--model', 'm', '--ids', '1', '--max-tokens=x'], /--max-tokens must be an integer, got "x"/],
        [
          'debate',
          ['--data', 'd', '--out', 'o', '--base-url', 'http://127.0.0.1:9/v1', '--agents', '0'],
          /--agents must be an integer >= 1/,
        ],
        [
          'eval',
          ['--data', 'd', '--out', 'o', '--base-url', 'http://127.0.0.1:9/v1', '--temperature', '3'],
          /--temperature must be a number in \[0, 2\]/,
        ],
        [
          'distill',
          ['--strategy', 'da', '--traj', 't', '--out', 'o', '--jaccard', '0'],
          /--jaccard must be a number in \(0, 1\]/,
        ],
        ['grade', ['--data', 'd', '--task', 'squad'], /--task must be gsm8k, math, mc or qa, got "squad"/],
        ['grade', ['--bogus'], /Unknown option '--bogus'/],
      ];
      for (const [command, argv, message] of cases) {
        text = '';
        expect(await main([command, ...argv]), command).toBe(2);
        expect(text, command).toMatch(new RegExp(`^agentark ${command}: ${message.source}`));
        expect(text, command).toMatch(new RegExp(`\n\nusage: agentark ${command}`));
      }
    } finally {
      err.mockRestore();
    }
  });
});
