/** `agentark bench --model`: the JSON fields, the estimate next to the measured peak, and the quantized-weight cache on the second run. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeTinyModel } from '../helpers/tiny-model';
import { agentark } from '../helpers/reference';

describe('agentark bench', () => {
  it('--model DIR --quantize q8 --json: one object with the speed and memory fields; the second load reads the cache', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-bench-'));
    writeTinyModel(dir, { arch: 'qwen2', dtype: 'BF16', tied: true, seed: 8 });
    process.env.AGENTARK_CACHE_DIR = path.join(dir, 'cache');
    const args = [
      'bench',
      '--model',
      dir,
      '--quantize',
      'q8',
      '--batch',
      '2',
      '--seq',
      '24',
      '--decode-tokens',
      '3',
      '--runs',
      '2',
      '--json',
    ];
    const first = JSON.parse(agentark(args).stdout.trim());
    for (const k of [
      'prefillTokensPerS',
      'decodeTokensPerS',
      'trainStepS',
      'peakGpuBytes',
      'estimatedPeakGpuBytes',
      'coldLoadS',
    ]) {
      expect(first[k], k).toBeGreaterThan(0);
    }
    expect(first.adapter).toMatch(/features/);
    expect(first).toMatchObject({ weights: 'q8', batch: 2, seq: 24, quantizedFromCache: false });
    expect(Math.abs(first.estimatedPeakGpuBytes / first.peakGpuBytes - 1)).toBeLessThan(0.15);
    const second = JSON.parse(agentark(args).stdout.trim());
    expect(second.quantizedFromCache).toBe(true);
    expect(agentark(['bench', '--model', dir, '--quantize', 'q3'], { allowFail: true }).stderr).toMatch(
      /--quantize must be q8 or q4/,
    );
    expect(agentark(['bench', '--model', dir, '--memory-budget', '0.001'], { allowFail: true }).stderr).toMatch(
      /above the budget/,
    );
  });
});
