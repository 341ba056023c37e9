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
    // Generation only: the plan is the KV cache and the prefill.
    const gen = JSON.parse(agentark([...args, '--no-train']).stdout.trim());
    expect(gen.trainStepS).toBeNull();
    expect(gen.peakGpuBytes).toBeGreaterThan(gen.weightGpuBytes);
    expect(Math.abs(gen.estimatedPeakGpuBytes / gen.peakGpuBytes - 1)).toBeLessThan(0.15);
    expect(agentark(['bench', '--model', dir, '--quantize', 'q3'], { allowFail: true }).stderr).toMatch(
      /--quantize must be q8 or q4/,
    );
    expect(agentark(['bench', '--model', dir, '--memory-budget', '0.001'], { allowFail: true }).stderr).toMatch(
      /above the budget/,
    );
  });

  it('--peer: onnxruntime-web on the same weights and adapter beside ours, with the ratios', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agentark-bench-peer-'));
    writeTinyModel(dir, { arch: 'qwen2', dtype: 'F32', tied: true, seed: 9 });
    const args = ['bench', '--model', dir, '--no-train', '--seq', '8', '--decode-tokens', '2', '--runs', '1'];
    const r = JSON.parse(agentark([...args, '--peer', '--json']).stdout.trim());
    expect(r.peer).toMatchObject({ prefillTokens: 8, decodeSteps: 2, ortEp: 'webgpu' });
    for (const k of ['prefillMs', 'decodeMsPerToken']) {
      expect(r.peer.ours[k], `ours ${k}`).toBeGreaterThan(0);
      expect(r.peer.ort[k], `onnxruntime-web ${k}`).toBeGreaterThan(0);
    }
    expect(r.peer.prefillRatio).toBeCloseTo(r.peer.ort.prefillMs / r.peer.ours.prefillMs, 6);
    // Both ran the same weights: the logits agree (onnxruntime's WebGPU EP deviates a little on
    // software adapters, src/eval/ort-peer.ts; a broken export would be off by the logits' scale).
    expect(r.peer.maxAbsDiff).toBeLessThan(0.5 * Math.max(1, r.peer.maxAbsLogit));
    expect(agentark([...args, '--peer', '--backend', 'cpu'], { allowFail: true }).stderr).toMatch(/--peer .*webgpu/);
    // onnxruntime-web's wasm start-up alone takes about 2 minutes on a busy 2-core machine.
  }, 900_000);
});
